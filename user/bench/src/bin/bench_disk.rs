// SPDX-License-Identifier: MIT OR Apache-2.0
//! Block-device figures as peer-linux's b_disk, every operation through the ring:
//! `disk_randread_4k_qd1` (one 4 KiB `Pread` in flight), `disk_randread_4k_qd32` (32 in
//! flight; each completion is reaped as it comes and its slot resubmitted at once),
//! `disk_seqread_1m` and `disk_seqwrite_1m` (1 MiB `Pread`/`Pwrite`, one in flight).
//!
//! Usage: bench_disk [DEVICE [ROW]] (default /dev/vda, every row; ROW is one of the names
//! above, to run just that one, e.g. while profiling), opened with `OpenFlags::DIRECT`. When it
//! cannot be opened the program prints `SKIP bench_disk: <device>: <error>` and exits 0.
//!
//! The same pattern as b_disk.c: random reads pick 4 KiB blocks over the whole disk from
//! one splitmix64 stream with a fixed seed (restarted for each random row), so both
//! systems read the same blocks in the same order. The sequential rows move through the
//! data region [1 MiB, disk end) and wrap back to 1 MiB; the first MiB is never written
//! (a test image may keep patterns there). Work per sample is fixed: 1024 reads (QD1),
//! 8192 reads (QD32), 256 MiB (sequential); one warm-up sample, then BENCH_SAMPLES timed
//! ones. The RESULT line adds `bytes_per_op` and the rate of the median: `iops=` for the
//! random rows, `mb_per_s=` (10^6 bytes per second) for the sequential ones.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use alloc::string::String;
use alloc::vec::Vec;

use libc_shim::abi::{Opcode, OpenFlags, Sqe, Whence};
use libc_shim::{Ring, RingOptions, sys};

libc_shim::entry!(main);

const BLK: usize = 4096;
const BIG: usize = 1 << 20;
const QD: usize = 32;
const DATA_START: u64 = 1 << 20;
const DISK_SEED: u64 = 0x0d15_c0de_5eed_f00d;
const QD1_OPS: u64 = 1024;
const QD32_OPS: u64 = 8192;
const SEQ_OPS: u64 = 256;
const NAMES: [&str; 4] = [
    "disk_randread_4k_qd1",
    "disk_randread_4k_qd32",
    "disk_seqread_1m",
    "disk_seqwrite_1m",
];

/// splitmix64, the generator of b_disk.c.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

struct Disk {
    fd: i32,
    size: u64,
    blocks: u64,
    seq_pos: u64,
    rng: SplitMix,
    ring: Ring,
    /// `QD` slots of 4 KiB, then 1 MiB; 4 KiB aligned and never freed, so every address
    /// the kernel is given stays valid for as long as it may use it.
    buf: &'static mut [u8],
    /// The first error seen in the current row.
    err: Option<String>,
    /// Run only this row.
    only: Option<&'static str>,
}

impl Disk {
    fn rand_off(&mut self) -> u64 {
        (self.rng.next() % self.blocks) * BLK as u64
    }

    fn seq_off(&mut self) -> u64 {
        if self.seq_pos + BIG as u64 > self.size {
            self.seq_pos = DATA_START;
        }
        let o = self.seq_pos;
        self.seq_pos += BIG as u64;
        o
    }

    fn note(&mut self, why: impl FnOnce() -> String) {
        if self.err.is_none() {
            self.err = Some(why());
        }
    }

    /// Queues one `Pread`/`Pwrite` of `len` bytes at `off` from byte `at` of the buffer.
    fn push(&mut self, op: Opcode, at: usize, len: usize, off: u64, user_data: u64) {
        let mut s = Sqe::new(op);
        s.fd = self.fd;
        s.addr = self.buf[at..at + len].as_mut_ptr() as u64;
        s.len = len as u32;
        s.off = off;
        s.user_data = user_data;
        // SAFETY: the address range lies inside `buf`, which is leaked ('static), so it
        // stays valid until (and after) the completion is reaped.
        if unsafe { self.ring.try_push(&s) }.is_err() {
            self.note(|| "SQ full".into());
        }
    }

    /// Waits for and reaps one completion; returns its user_data.
    fn reap_one(&mut self, want: usize) -> u64 {
        loop {
            if let Some((cqe, _)) = self.ring.try_reap() {
                match cqe.result() {
                    Ok(n) if n as usize == want => {}
                    Ok(n) => self.note(|| alloc::format!("short transfer: {n} of {want}")),
                    Err(e) => self.note(|| alloc::format!("I/O error: {e}")),
                }
                return cqe.user_data;
            }
            if let Err(e) = self.ring.submit_and_wait(1) {
                self.note(|| alloc::format!("ring_enter: {e}"));
                return u64::MAX;
            }
        }
    }

    /// One op at a time: push, one RingEnter that submits and waits, reap.
    fn qd1(&mut self, op: Opcode, len: usize, seq: bool, n: u64) -> u64 {
        let at = if len == BLK { 0 } else { QD * BLK };
        let t0 = sys::now_ns();
        for _ in 0..n {
            let off = if seq { self.seq_off() } else { self.rand_off() };
            self.push(op, at, len, off, 0);
            if self.reap_one(len) == u64::MAX {
                break;
            }
        }
        sys::now_ns() - t0
    }

    /// `n` random 4 KiB reads with `QD` in flight.
    fn qd32(&mut self, n: u64) -> u64 {
        let t0 = sys::now_ns();
        let mut issued = 0;
        let mut done = 0;
        for slot in 0..QD.min(n as usize) {
            let off = self.rand_off();
            self.push(Opcode::Pread, slot * BLK, BLK, off, slot as u64);
            issued += 1;
        }
        while done < n {
            let slot = self.reap_one(BLK);
            if slot == u64::MAX {
                break;
            }
            done += 1;
            if issued < n {
                let off = self.rand_off();
                self.push(Opcode::Pread, slot as usize * BLK, BLK, off, slot);
                issued += 1;
            }
        }
        sys::now_ns() - t0
    }
}

/// Runs `body(ops)` once to warm up and `samples` times timed, then prints the RESULT line.
fn row(
    d: &mut Disk,
    s: &common::Settings,
    name: &str,
    ops: u64,
    bytes: usize,
    iops: bool,
    mut body: impl FnMut(&mut Disk, u64) -> u64,
) {
    if d.only.is_some_and(|only| only != name) {
        return;
    }
    d.err = None;
    body(d, ops);
    let mut v: Vec<f64> = (0..s.samples)
        .map(|_| body(d, ops) as f64 / ops as f64)
        .collect();
    if let Some(why) = d.err.take() {
        common::fail(name, &why);
        return;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(core::cmp::Ordering::Equal));
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    };
    let rate = if iops {
        alloc::format!("iops={:.0}", 1e9 / med)
    } else {
        alloc::format!("mb_per_s={:.1}", bytes as f64 * 1e3 / med)
    };
    libc_shim::println!(
        "RESULT {name} ns_per_op={med:.3} min={:.3} max={:.3} samples={n} iters={ops} bytes_per_op={bytes} {rate}",
        v[0],
        v[n - 1]
    );
}

fn disk_size(fd: i32) -> Option<u64> {
    match sys::lseek(fd, 0, Whence::End) {
        Ok(n) if n > 0 => Some(n),
        _ => sys::fstat(fd).ok().map(|st| st.st_size.max(0) as u64),
    }
}

fn main(args: libc_shim::Args) -> i32 {
    let s = common::Settings::from_env(&args);
    let dev = args.get(1).unwrap_or("/dev/vda");
    let only = args.get(2);
    if let Some(only) = only
        && !NAMES.contains(&only)
    {
        libc_shim::println!("bench_disk: no row {only:?}; rows: {NAMES:?}");
        return 2;
    }
    let fd = match sys::open(dev, OpenFlags::READ_WRITE.union(OpenFlags::DIRECT), 0) {
        Ok(fd) => fd,
        Err(e) => {
            libc_shim::println!("SKIP bench_disk: {dev}: {e}");
            return 0;
        }
    };
    let size = disk_size(fd).unwrap_or(0);
    if size < DATA_START + BIG as u64 {
        for name in NAMES {
            common::fail(name, &alloc::format!("{dev}: size {size}, less than 2 MiB"));
        }
        return 1;
    }
    let ring = match Ring::setup(RingOptions::new(2 * QD as u32)) {
        Ok(r) => r,
        Err(e) => {
            for name in NAMES {
                common::fail(name, &alloc::format!("ring setup: {e}"));
            }
            return 1;
        }
    };
    let raw = alloc::vec![0xa5u8; QD * BLK + BIG + BLK].leak();
    let skip = raw.as_ptr().align_offset(BLK);
    let mut d = Disk {
        fd,
        size,
        blocks: size / BLK as u64,
        seq_pos: DATA_START,
        rng: SplitMix(DISK_SEED),
        ring,
        buf: &mut raw[skip..skip + QD * BLK + BIG],
        err: None,
        only,
    };
    libc_shim::println!("NOTE bench_disk {dev}: {size} bytes, DIRECT, seed {DISK_SEED:#x}");
    row(&mut d, &s, NAMES[0], QD1_OPS, BLK, true, |d, n| {
        d.qd1(Opcode::Pread, BLK, false, n)
    });
    d.rng = SplitMix(DISK_SEED);
    row(&mut d, &s, NAMES[1], QD32_OPS, BLK, true, |d, n| d.qd32(n));
    row(&mut d, &s, NAMES[2], SEQ_OPS, BIG, false, |d, n| {
        d.qd1(Opcode::Pread, BIG, true, n)
    });
    d.seq_pos = DATA_START;
    row(&mut d, &s, NAMES[3], SEQ_OPS, BIG, false, |d, n| {
        d.qd1(Opcode::Pwrite, BIG, true, n)
    });
    let _ = sys::close(fd);
    0
}
