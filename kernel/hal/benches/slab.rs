//! Slab allocator vs global-lock allocators: local alloc+free cost, scaling
//! with 1, 2 and 4 threads, and the cost of a remote free.
//!
//! Run with `cargo bench -p hal --bench slab`. Each thread plays one CPU
//! index; the baselines are `talc` and `linked_list_allocator` (the boot
//! heap's allocator), each behind one `spin::Mutex`, over a 64 MiB arena.
//! Every figure is the best of several runs, since the host is shared. On a
//! 2-core host the 4-thread rows oversubscribe the cores: read them as "what
//! happens under preemption" (a preempted lock holder stalls every other
//! thread), not as 4-CPU scaling.

use std::alloc::Layout;
use std::collections::HashMap;
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use hal::mm::slab::{OutOfPages, PAGE_SIZE, PageSource, SlabAllocator};

// ---------------------------------------------------------------------------
// Allocators under test
// ---------------------------------------------------------------------------

/// What the benchmark needs of an allocator.
///
/// # Safety
/// `alloc` returns memory valid for `layout` until passed to `free`.
unsafe trait BenchAlloc: Sync {
    const NAME: &'static str;
    /// # Safety
    /// No other thread uses `cpu` at the same time.
    unsafe fn alloc(&self, cpu: usize, layout: Layout) -> NonNull<u8>;
    /// # Safety
    /// As `alloc`, and `ptr` came from `alloc(_, layout)` and is not used again.
    unsafe fn free(&self, cpu: usize, ptr: NonNull<u8>, layout: Layout);
    /// Owner-side work that a remote free defers (none for the baselines).
    ///
    /// # Safety
    /// As `alloc`.
    unsafe fn drain(&self, _cpu: usize) {}
}

/// Pages from std's allocator, remembering each run's layout.
#[derive(Default)]
struct StdPages(Mutex<HashMap<usize, Layout>>);

// SAFETY:
// 1. Runs come from `std::alloc::alloc` with the requested size and alignment.
// 2. A mutex guards the map; std's allocator is thread-safe and is not the
//    slab allocator.
unsafe impl PageSource for StdPages {
    fn alloc_pages(&self, nr_pages: usize, align_bytes: usize) -> Result<NonNull<u8>, OutOfPages> {
        let layout = Layout::from_size_align(nr_pages * PAGE_SIZE, align_bytes).unwrap();
        // SAFETY: non-zero size.
        let ptr = NonNull::new(unsafe { std::alloc::alloc(layout) }).ok_or(OutOfPages)?;
        self.0.lock().unwrap().insert(ptr.as_ptr().addr(), layout);
        Ok(ptr)
    }

    unsafe fn free_pages(&self, addr: NonNull<u8>, _nr_pages: usize) {
        let layout = self
            .0
            .lock()
            .unwrap()
            .remove(&addr.as_ptr().addr())
            .unwrap();
        // SAFETY: `addr` came from `std::alloc::alloc(layout)`.
        unsafe { std::alloc::dealloc(addr.as_ptr(), layout) };
    }
}

type Slab = SlabAllocator<StdPages, 8>;

// SAFETY: the slab allocator's contract: memory stays valid until freed.
unsafe impl BenchAlloc for Slab {
    const NAME: &'static str = "slab";

    unsafe fn alloc(&self, cpu: usize, layout: Layout) -> NonNull<u8> {
        // SAFETY: the CPU contract is the caller's (one thread per index).
        unsafe { SlabAllocator::alloc(self, cpu, layout) }.expect("bench out of memory")
    }

    unsafe fn free(&self, cpu: usize, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: caller contract.
        unsafe { SlabAllocator::free(self, cpu, ptr, layout) }
    }

    unsafe fn drain(&self, cpu: usize) {
        // SAFETY: caller contract.
        unsafe { self.drain_remote(cpu) }
    }
}

const ARENA_BYTES: usize = 64 << 20;

fn arena() -> *mut u8 {
    let layout = Layout::from_size_align(ARENA_BYTES, PAGE_SIZE).unwrap();
    // SAFETY: non-zero size; the arena is leaked on purpose (one per run).
    unsafe { std::alloc::alloc(layout) }
}

/// talc behind one spin lock.
struct TalcLocked(spin::Mutex<talc::base::Talc<talc::source::Manual, talc::DefaultBinning>>);

impl TalcLocked {
    fn new() -> Self {
        let mut talc = talc::base::Talc::new(talc::source::Manual);
        // SAFETY: the arena is fresh, leaked memory nothing else uses.
        unsafe { talc.claim(arena(), ARENA_BYTES) }.expect("arena too small for talc");
        Self(spin::Mutex::new(talc))
    }
}

// SAFETY: talc hands out claimed arena memory until it is deallocated.
unsafe impl BenchAlloc for TalcLocked {
    const NAME: &'static str = "talc+lock";

    unsafe fn alloc(&self, _cpu: usize, layout: Layout) -> NonNull<u8> {
        // SAFETY: `layout` has a non-zero size in every bench.
        unsafe { self.0.lock().allocate(layout) }.expect("bench out of memory")
    }

    unsafe fn free(&self, _cpu: usize, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: `ptr` came from `allocate(layout)` (caller contract).
        unsafe { self.0.lock().deallocate(ptr.as_ptr(), layout) }
    }
}

/// linked_list_allocator behind one spin lock (the boot heap's shape).
struct ListLocked(spin::Mutex<linked_list_allocator::Heap>);

impl ListLocked {
    fn new() -> Self {
        let mut heap = linked_list_allocator::Heap::empty();
        // SAFETY: the arena is fresh, leaked memory nothing else uses.
        unsafe { heap.init(arena(), ARENA_BYTES) };
        Self(spin::Mutex::new(heap))
    }
}

// SAFETY: the heap hands out arena memory until it is deallocated.
unsafe impl BenchAlloc for ListLocked {
    const NAME: &'static str = "list+lock";

    unsafe fn alloc(&self, _cpu: usize, layout: Layout) -> NonNull<u8> {
        self.0
            .lock()
            .allocate_first_fit(layout)
            .expect("bench out of memory")
    }

    unsafe fn free(&self, _cpu: usize, ptr: NonNull<u8>, layout: Layout) {
        // SAFETY: `ptr` came from `allocate_first_fit(layout)` (caller contract).
        unsafe { self.0.lock().deallocate(ptr, layout) }
    }
}

// ---------------------------------------------------------------------------
// Workloads
// ---------------------------------------------------------------------------

const RUNS: usize = 5;

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..RUNS).map(|_| f()).min().unwrap()
}

const L64: Layout = match Layout::from_size_align(64, 8) {
    Ok(l) => l,
    Err(_) => panic!(),
};

/// ns per alloc+free pair of 64 B, freed at once, one thread.
fn local_pair<A: BenchAlloc>(a: &A) -> f64 {
    const N: u32 = 2_000_000;
    let t = best(|| {
        let start = Instant::now();
        for _ in 0..N {
            // SAFETY: one thread uses CPU 0; the pointer is freed once.
            unsafe {
                let p = a.alloc(0, L64);
                a.free(0, black_box(p), L64);
            }
        }
        start.elapsed()
    });
    t.as_nanos() as f64 / f64::from(N)
}

/// ns per alloc+free of 64 B in batches of 128 (allocate all, free all).
fn local_batch<A: BenchAlloc>(a: &A) -> f64 {
    const BATCH: usize = 128;
    const ROUNDS: usize = 10_000;
    let mut held = Vec::with_capacity(BATCH);
    let t = best(|| {
        let start = Instant::now();
        for _ in 0..ROUNDS {
            for _ in 0..BATCH {
                // SAFETY: one thread uses CPU 0.
                held.push(unsafe { a.alloc(0, L64) });
            }
            for p in held.drain(..) {
                // SAFETY: one thread uses CPU 0; each pointer is freed once.
                unsafe { a.free(0, black_box(p), L64) };
            }
        }
        start.elapsed()
    });
    t.as_nanos() as f64 / (BATCH * ROUNDS) as f64
}

/// Sizes of the throughput mix: small kernel objects, 16 B to 1 KiB.
const MIX: [usize; 8] = [16, 24, 48, 64, 96, 128, 256, 1024];

#[cfg(target_os = "linux")]
#[repr(C)]
struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
}

#[cfg(target_os = "linux")]
unsafe extern "C" {
    // From the C library std already links.
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
}

/// On-CPU time of the calling thread, if the host can tell.
#[cfg(target_os = "linux")]
fn thread_cpu_ns() -> Option<u64> {
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec of the C layout on
    // x86_64/aarch64 Linux, and the clock id is a valid Linux clock.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_ns() -> Option<u64> {
    None
}

/// Throughput with `threads` threads, each its own CPU index, each
/// allocating batches of 32 mixed sizes and freeing them. Returns million
/// alloc+free pairs per second of wall time, and per second of each
/// thread's own on-CPU time summed over threads (what the threads would do
/// with a core each and no other load; `NaN` without schedstat). Spinning on
/// a lock counts as on-CPU time, so lock contention still shows.
fn throughput<A: BenchAlloc>(a: &A, threads: usize) -> (f64, f64) {
    const PER_THREAD: usize = 4_000_000;
    const BATCH: usize = 32;
    let mut wall_best = 0.0f64;
    let mut cpu_best = 0.0f64;
    for _ in 0..RUNS {
        let barrier = Barrier::new(threads);
        let times: Vec<(Duration, Option<u64>)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|cpu| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        let mut held = Vec::with_capacity(BATCH);
                        barrier.wait();
                        let cpu_start = thread_cpu_ns();
                        let start = Instant::now();
                        for round in 0..PER_THREAD / BATCH {
                            for i in 0..BATCH {
                                let l = Layout::from_size_align(MIX[(round + i) % MIX.len()], 8)
                                    .unwrap();
                                // SAFETY: this thread alone uses index `cpu`.
                                held.push((unsafe { a.alloc(cpu, l) }, l));
                            }
                            for (p, l) in held.drain(..) {
                                // SAFETY: as above; each pointer is freed once.
                                unsafe { a.free(cpu, black_box(p), l) };
                            }
                        }
                        let wall = start.elapsed();
                        let on_cpu = thread_cpu_ns()
                            .zip(cpu_start)
                            .map(|(end, start)| end - start);
                        (wall, on_cpu)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let ops = (PER_THREAD / BATCH * BATCH) as f64;
        // Wall time of the slowest thread.
        let wall = times.iter().map(|t| t.0).max().unwrap();
        wall_best = wall_best.max(threads as f64 * ops / wall.as_secs_f64() / 1e6);
        let per_cpu: Option<f64> = times
            .iter()
            .map(|t| t.1.map(|ns| ops / ns as f64 * 1e3))
            .sum();
        cpu_best = cpu_best.max(per_cpu.unwrap_or(f64::NAN));
    }
    (wall_best, cpu_best)
}

/// Remote free, uncontended, one thread: CPU 0 allocates N objects, CPU 1
/// frees them all (timed), then CPU 0 drains its remote list (timed).
/// Returns (ns per remote free, ns per drained object).
fn remote_free_cost<A: BenchAlloc>(a: &A) -> (f64, f64) {
    const N: usize = 4096;
    let mut held = Vec::with_capacity(N);
    let mut free_ns = f64::MAX;
    let mut drain_ns = f64::MAX;
    for _ in 0..RUNS * 20 {
        for _ in 0..N {
            // SAFETY: one thread, which plays CPU 0 and then CPU 1.
            held.push(unsafe { a.alloc(0, L64) });
        }
        let start = Instant::now();
        for p in held.drain(..) {
            // SAFETY: as above; each pointer is freed once.
            unsafe { a.free(1, black_box(p), L64) };
        }
        let freed = start.elapsed();
        let start = Instant::now();
        // SAFETY: one thread.
        unsafe { a.drain(0) };
        let drained = start.elapsed();
        free_ns = free_ns.min(freed.as_nanos() as f64 / N as f64);
        drain_ns = drain_ns.min(drained.as_nanos() as f64 / N as f64);
    }
    (free_ns, drain_ns)
}

/// Two threads, every free remote: each allocates batches of 256 x 64 B and
/// hands them to the other thread, which frees them. Million alloc+free
/// pairs per second over both threads (hand-off cost included, amortised
/// over the batch).
fn cross_free_throughput<A: BenchAlloc>(a: &A) -> f64 {
    const BATCH: usize = 256;
    const ROUNDS: usize = 2_000;
    let t = best(|| {
        let inboxes: [spin::Mutex<Vec<Vec<usize>>>; 2] = Default::default();
        let barrier = Barrier::new(2);
        let start = Instant::now();
        std::thread::scope(|s| {
            for cpu in 0..2 {
                let (inboxes, barrier) = (&inboxes, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let mut freed = 0;
                    let mut round = 0;
                    while freed < ROUNDS || round < ROUNDS {
                        if round < ROUNDS {
                            let batch = (0..BATCH)
                                .map(|_| {
                                    // SAFETY: this thread alone uses index `cpu`.
                                    unsafe { a.alloc(cpu, L64) }.as_ptr().expose_provenance()
                                })
                                .collect();
                            inboxes[1 - cpu].lock().push(batch);
                            round += 1;
                        }
                        let got = core::mem::take(&mut *inboxes[cpu].lock());
                        for batch in got {
                            for addr in batch {
                                let p = NonNull::new(std::ptr::with_exposed_provenance_mut(addr))
                                    .unwrap();
                                // SAFETY: as above; the other thread gave this
                                // pointer up, and it is freed once.
                                unsafe { a.free(cpu, p, L64) };
                            }
                            freed += 1;
                        }
                    }
                    // SAFETY: this thread alone uses index `cpu`.
                    unsafe { a.drain(cpu) };
                });
            }
        });
        start.elapsed()
    });
    (2 * BATCH * ROUNDS) as f64 / t.as_secs_f64() / 1e6
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

struct Results {
    pair: f64,
    batch: f64,
    /// (wall, on-CPU) throughput with 1, 2, 4 threads.
    tput: [(f64, f64); 3],
    remote: (f64, f64),
    cross: f64,
}

fn measure<A: BenchAlloc>(a: &A) -> Results {
    let step = |what: &str| eprintln!("{}: {what}", A::NAME);
    step("local");
    let (pair, batch) = (local_pair(a), local_batch(a));
    step("throughput");
    let tput = [throughput(a, 1), throughput(a, 2), throughput(a, 4)];
    step("remote free");
    let remote = remote_free_cost(a);
    let cross = cross_free_throughput(a);
    Results {
        pair,
        batch,
        tput,
        remote,
        cross,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--test") {
        // `cargo test --benches` runs this too; nothing to check quickly.
        return;
    }
    let slab = measure(&Slab::new(StdPages::default()));
    let talc = measure(&TalcLocked::new());
    let list = measure(&ListLocked::new());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());

    println!("\nslab vs global-lock allocators (best of {RUNS} runs, {cores} host cores)\n");
    println!("| metric | slab | talc+lock | list+lock | talc/slab | list/slab |");
    println!("|---|---:|---:|---:|---:|---:|");
    let row = |name: &str, s: f64, t: f64, l: f64, unit: &str, lower_is_better: bool| {
        let (rt, rl) = if lower_is_better {
            (t / s, l / s)
        } else {
            (s / t, s / l)
        };
        println!(
            "| {name} | {s:.1} {unit} | {t:.1} {unit} | {l:.1} {unit} | {rt:.2}x | {rl:.2}x |"
        );
    };
    row(
        "local alloc+free 64 B, pair",
        slab.pair,
        talc.pair,
        list.pair,
        "ns",
        true,
    );
    row(
        "local alloc+free 64 B, batch 128",
        slab.batch,
        talc.batch,
        list.batch,
        "ns",
        true,
    );
    for (i, n) in [1, 2, 4].iter().enumerate() {
        let name = format!("throughput {n} thread(s), Mops/s wall");
        row(
            &name,
            slab.tput[i].0,
            talc.tput[i].0,
            list.tput[i].0,
            "",
            false,
        );
    }
    for (i, n) in [1, 2, 4].iter().enumerate() {
        let name = format!("throughput {n} thread(s), Mops/s on-CPU");
        row(
            &name,
            slab.tput[i].1,
            talc.tput[i].1,
            list.tput[i].1,
            "",
            false,
        );
    }
    row(
        "remote free 64 B (uncontended)",
        slab.remote.0,
        talc.remote.0,
        list.remote.0,
        "ns",
        true,
    );
    println!(
        "| remote free: owner's drain per object | {:.1} ns | - | - | | |",
        slab.remote.1
    );
    row(
        "2 threads, every free remote, Mops/s",
        slab.cross,
        talc.cross,
        list.cross,
        "",
        false,
    );
    println!("\nscaling (throughput N threads / 1 thread):");
    println!("| allocator | 2 wall | 4 wall | 2 on-CPU | 4 on-CPU |");
    println!("|---|---:|---:|---:|---:|");
    for (name, r) in [("slab", &slab), ("talc+lock", &talc), ("list+lock", &list)] {
        println!(
            "| {name} | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
            r.tput[1].0 / r.tput[0].0,
            r.tput[2].0 / r.tput[0].0,
            r.tput[1].1 / r.tput[0].1,
            r.tput[2].1 / r.tput[0].1,
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("\nratios: >1 means the slab is better. Throughput pairs are alloc+free.");
    println!("wall: threads share the host's cores with whatever else runs;");
    println!("on-CPU: each thread's ops per second of its own CPU time, summed");
    println!("(spinning on a lock counts). Load average: {}", load.trim());
}
