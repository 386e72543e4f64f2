/* 9. Block device: four rows on a raw disk (default /dev/vda) opened with
 * O_DIRECT, so the guest's page cache is out of the path.
 *
 *   disk_randread_4k_qd1   4 KiB pread()s at random 4 KiB-aligned offsets, one at a time
 *   disk_randread_4k_qd32  the same offsets, 32 reads in flight through io_uring
 *                          (raw syscalls; each completion is resubmitted at once)
 *   disk_seqread_1m        1 MiB pread()s, sequential over the data region
 *   disk_seqwrite_1m       1 MiB pwrite()s, sequential over the data region
 *
 * Offsets: one splitmix64 stream with a fixed seed (DISK_SEED) drives both random
 * rows (block = next() % blocks, over the whole disk), so every system that runs
 * this reads the same blocks in the same order. The sequential rows use the data
 * region [1 MiB, disk end): the first MiB is never written (a test image may keep
 * patterns there), and a position wraps back to 1 MiB at the end.
 *
 * Work per sample is fixed, not calibrated (the same on every system):
 * 1024 reads (QD1), 8192 reads (QD32), 256 MiB (sequential, wrapping); one warm-up sample,
 * then BENCH_SAMPLES timed ones. Output: the harness's RESULT line plus
 * bytes_per_op and the derived rate of the median: iops= for the random rows,
 * mb_per_s= (10^6 bytes per second) for the sequential ones.
 * Usage: b_disk [DEVICE]
 */
#include "common.h"
#include <fcntl.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>

#define BLK 4096u
#define BIG (1u << 20)
#define QD 32u
#define DATA_START (1ull << 20)
#define DISK_SEED 0x0d15c0de5eedf00dull
#define QD1_OPS 1024
#define QD32_OPS 8192
#define SEQ_OPS 256

static uint64_t rng_state;

static uint64_t splitmix64(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct disk {
	int fd;
	uint64_t size, blocks;
	uint64_t seq_pos; /* next sequential offset */
	char *buf;        /* QD x 4 KiB, then 1 MiB; 4 KiB aligned */
	int err;          /* first error (-errno or short transfer) */
};

static uint64_t rand_off(struct disk *d)
{
	return (splitmix64() % d->blocks) * BLK;
}

static uint64_t seq_off(struct disk *d)
{
	if (d->seq_pos + BIG > d->size)
		d->seq_pos = DATA_START;
	uint64_t o = d->seq_pos;
	d->seq_pos += BIG;
	return o;
}

static void note_err(struct disk *d, long r, long want)
{
	if (r != want && !d->err)
		d->err = r < 0 ? -errno : -EIO;
}

static uint64_t body_qd1(void *p, long n)
{
	struct disk *d = p;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		note_err(d, pread(d->fd, d->buf, BLK, (off_t)rand_off(d)), BLK);
	return now_ns() - t0;
}

static uint64_t body_seqread(void *p, long n)
{
	struct disk *d = p;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		note_err(d, pread(d->fd, d->buf + QD * BLK, BIG, (off_t)seq_off(d)), BIG);
	return now_ns() - t0;
}

static uint64_t body_seqwrite(void *p, long n)
{
	struct disk *d = p;
	uint64_t t0 = now_ns();
	for (long i = 0; i < n; i++)
		note_err(d, pwrite(d->fd, d->buf + QD * BLK, BIG, (off_t)seq_off(d)), BIG);
	return now_ns() - t0;
}

/* ------------------------------------------------------------ io_uring, raw */
struct uring {
	int fd;
	unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
	unsigned *cq_head, *cq_tail, *cq_mask;
	struct io_uring_sqe *sqes;
	struct io_uring_cqe *cqes;
	struct disk *d;
};

static int uring_init(struct uring *u, unsigned entries)
{
	struct io_uring_params prm;
	memset(&prm, 0, sizeof prm);
	u->fd = (int)syscall(__NR_io_uring_setup, entries, &prm);
	if (u->fd < 0)
		return -errno;
	size_t sq_len = prm.sq_off.array + prm.sq_entries * sizeof(unsigned);
	size_t cq_len = prm.cq_off.cqes + prm.cq_entries * sizeof(struct io_uring_cqe);
	if (prm.features & IORING_FEAT_SINGLE_MMAP)
		sq_len = cq_len = sq_len > cq_len ? sq_len : cq_len;
	char *sq = mmap(NULL, sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			u->fd, IORING_OFF_SQ_RING);
	if (sq == MAP_FAILED)
		return -errno;
	char *cq = sq;
	if (!(prm.features & IORING_FEAT_SINGLE_MMAP)) {
		cq = mmap(NULL, cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			  u->fd, IORING_OFF_CQ_RING);
		if (cq == MAP_FAILED)
			return -errno;
	}
	u->sqes = mmap(NULL, prm.sq_entries * sizeof(struct io_uring_sqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQES);
	if (u->sqes == MAP_FAILED)
		return -errno;
	u->sq_head = (unsigned *)(sq + prm.sq_off.head);
	u->sq_tail = (unsigned *)(sq + prm.sq_off.tail);
	u->sq_mask = (unsigned *)(sq + prm.sq_off.ring_mask);
	u->sq_array = (unsigned *)(sq + prm.sq_off.array);
	u->cq_head = (unsigned *)(cq + prm.cq_off.head);
	u->cq_tail = (unsigned *)(cq + prm.cq_off.tail);
	u->cq_mask = (unsigned *)(cq + prm.cq_off.ring_mask);
	u->cqes = (struct io_uring_cqe *)(cq + prm.cq_off.cqes);
	return 0;
}

/* Queue a 4 KiB read at the next random offset into slot `slot`'s buffer. */
static void uring_queue_read(struct uring *u, unsigned slot)
{
	unsigned tail = *u->sq_tail; /* only we write it */
	unsigned idx = tail & *u->sq_mask;
	struct io_uring_sqe *s = &u->sqes[idx];
	memset(s, 0, sizeof *s);
	s->opcode = IORING_OP_READ;
	s->fd = u->d->fd;
	s->addr = (uint64_t)(uintptr_t)(u->d->buf + slot * BLK);
	s->len = BLK;
	s->off = rand_off(u->d);
	s->user_data = slot;
	u->sq_array[idx] = idx;
	__atomic_store_n(u->sq_tail, tail + 1, __ATOMIC_RELEASE);
}

static int uring_enter(struct uring *u, unsigned submit, unsigned wait)
{
	long r = syscall(__NR_io_uring_enter, u->fd, submit, wait,
			 wait ? IORING_ENTER_GETEVENTS : 0, NULL, 0);
	return r < 0 ? -errno : (int)r;
}

/* n reads in all, QD in flight; a completion's slot is refilled right away. */
static uint64_t body_qd32(void *p, long n)
{
	struct uring *u = p;
	uint64_t t0 = now_ns();
	long issued = 0, done = 0;
	unsigned pending = 0; /* queued, not yet handed to io_uring_enter */
	for (unsigned s = 0; s < QD && issued < n; s++, issued++, pending++)
		uring_queue_read(u, s);
	while (done < n) {
		int r = uring_enter(u, pending, 1);
		if (r < 0) {
			if (r == -EINTR)
				continue;
			if (!u->d->err)
				u->d->err = r;
			break;
		}
		pending -= (unsigned)r;
		unsigned head = *u->cq_head;
		unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
		for (; head != tail; head++) {
			struct io_uring_cqe *c = &u->cqes[head & *u->cq_mask];
			if (c->res != (int)BLK && !u->d->err)
				u->d->err = c->res < 0 ? c->res : -EIO;
			done++;
			if (issued < n) {
				uring_queue_read(u, (unsigned)c->user_data);
				issued++;
				pending++;
			}
		}
		__atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
	}
	return now_ns() - t0;
}

/* ------------------------------------------------------------ reporting */
static void report(const char *name, struct disk *d, bench_body body, void *ctx,
		   long ops, double bytes_per_op, int rate_is_iops)
{
	int n = bench_samples();
	double v[128];
	d->err = 0;
	body(ctx, ops); /* warm-up */
	for (int i = 0; i < n; i++)
		v[i] = (double)body(ctx, ops) / (double)ops;
	if (d->err) {
		char why[96];
		snprintf(why, sizeof why, "I/O error: %s", strerror(-d->err));
		fail(name, why);
		return;
	}
	double med = median_of(v, n);
	printf("RESULT %s ns_per_op=%.3f min=%.3f max=%.3f samples=%d iters=%ld bytes_per_op=%.0f",
	       name, med, v[0], v[n - 1], n, ops, bytes_per_op);
	if (rate_is_iops)
		printf(" iops=%.0f\n", 1e9 / med);
	else
		printf(" mb_per_s=%.1f\n", bytes_per_op * 1e3 / med);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/vda";
	static const char *names[] = { "disk_randread_4k_qd1", "disk_randread_4k_qd32",
				       "disk_seqread_1m", "disk_seqwrite_1m" };
	struct disk d;
	memset(&d, 0, sizeof d);
	d.fd = open(dev, O_RDWR | O_DIRECT);
	off_t end = d.fd < 0 ? -1 : lseek(d.fd, 0, SEEK_END);
	if (d.fd < 0 || end < (off_t)(DATA_START + BIG)) {
		char why[128];
		snprintf(why, sizeof why, "%s: %s", dev,
			 d.fd < 0 ? strerror(errno) : "smaller than 2 MiB or unseekable");
		for (int i = 0; i < 4; i++)
			fail(names[i], why);
		return 1;
	}
	d.size = (uint64_t)end;
	d.blocks = d.size / BLK;
	d.seq_pos = DATA_START;
	if (posix_memalign((void **)&d.buf, BLK, QD * BLK + BIG))
		return 1;
	memset(d.buf, 0xa5, QD * BLK + BIG);
	printf("NOTE b_disk %s: %llu bytes, O_DIRECT, seed %#llx\n", dev,
	       (unsigned long long)d.size, (unsigned long long)DISK_SEED);

	rng_state = DISK_SEED;
	report(names[0], &d, body_qd1, &d, QD1_OPS, BLK, 1);

	struct uring u;
	memset(&u, 0, sizeof u);
	u.d = &d;
	int r = uring_init(&u, 2 * QD);
	if (r < 0) {
		char why[96];
		snprintf(why, sizeof why, "io_uring_setup: %s", strerror(-r));
		fail(names[1], why);
	} else {
		rng_state = DISK_SEED;
		report(names[1], &d, body_qd32, &u, QD32_OPS, BLK, 1);
	}

	report(names[2], &d, body_seqread, &d, SEQ_OPS, BIG, 0);
	d.seq_pos = DATA_START;
	report(names[3], &d, body_seqwrite, &d, SEQ_OPS, BIG, 0);
	return 0;
}
