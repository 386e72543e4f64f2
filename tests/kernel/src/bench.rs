//! In-guest benchmarks of issue 4 (`cargo xtask bench`): one-way IPI
//! latency, and the per-CPU slab heap against a single global-lock heap
//! (`hal::mm::locked_heap`, linked_list_allocator behind one spin lock) at
//! 1, 2 and 4 CPUs, plus the cost of a remote free.
//!
//! Each prints `RESULT <name> ns_per_op=<median> min=<> max=<> samples=<n>`
//! and extra fields after those. Times come from the TSC, which QEMU keeps
//! in step across vCPUs, so a stamp taken on one CPU compares with one
//! taken on another. Under TCG the figures are emulation costs: compare
//! rows with each other, not with hardware.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::Layout;
use core::future::Future;
use core::hint::black_box;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};

use executor::CpuId;
use hal::arch::cpu::rdtsc;
use hal::mm::locked_heap::{GlobalLockHeap, LockedBlock};

use crate::sched::runtime;

/// A vector nobody else routes (0xf0 wake, 0xf1..0xf4 report tests, 0xf8
/// executor timer, 0xf9 halt timer).
const VECTOR_BENCH_IPI: u8 = 0xf5;

fn ncpus() -> usize {
    hal::arch::smp::online_cpus()
}

fn spawn_on(cpu: usize, future: impl Future<Output = ()> + Send + 'static) {
    runtime()
        .spawn_on(CpuId(cpu as u32), future)
        .expect("spawn_on an online CPU");
}

fn cycles_to_ns(cycles: u64) -> u64 {
    hal::arch::time::tsc_ticks_to_ns(cycles)
}

/// Sorts `samples` and prints its `RESULT` line with `extra` fields.
fn result(name: &str, samples: &mut [u64], extra: core::fmt::Arguments<'_>) {
    samples.sort_unstable();
    let n = samples.len();
    log::info!(
        target: "bench",
        "RESULT {name} ns_per_op={} min={} max={} samples={n} {extra}",
        samples[n / 2],
        samples[0],
        samples[n - 1]
    );
}

fn median(samples: &[u64]) -> u64 {
    let mut s: Vec<u64> = samples.to_vec();
    s.sort_unstable();
    s[s.len() / 2]
}

// ---------------------------------------------------------------------------
// IPI one-way latency
// ---------------------------------------------------------------------------

static IPI_SEEN_TSC: AtomicU64 = AtomicU64::new(0);

fn ipi_arrived(_vector: u8) {
    IPI_SEEN_TSC.store(rdtsc(), SeqCst);
}

/// One IPI from CPU 0 to CPU 1: cycles from just before the ICR write to
/// the handler's TSC stamp; `None` if it never arrived.
fn one_ipi(apic_id: u32) -> Option<u64> {
    IPI_SEEN_TSC.store(0, SeqCst);
    let sent = rdtsc();
    hal::arch::apic::send_ipi(apic_id, VECTOR_BENCH_IPI);
    // The stamps tell the latency, so the sender need not watch closely:
    // it halts, leaving the host's cores to the receiving vCPU.
    let deadline = hal::arch::time::now_ns() + 1_000_000_000;
    loop {
        let seen = IPI_SEEN_TSC.load(SeqCst);
        if seen != 0 {
            return Some(seen.saturating_sub(sent));
        }
        if hal::arch::time::now_ns() > deadline {
            return None;
        }
        hal::arch::time::halt_for_ns(20_000);
    }
}

/// `RESULT ipi_one_way_{idle,busy}`: CPU 0 sends a fixed IPI to CPU 1,
/// which is either halted in its idle loop or running a task that spins.
pub fn bench_ipi_one_way() {
    const SAMPLES: usize = 201;
    static STOP: AtomicBool = AtomicBool::new(false);
    static SPINNING: AtomicBool = AtomicBool::new(false);
    if ncpus() < 2 {
        log::info!(target: "bench", "bench_ipi_one_way skipped: needs -smp 2 or more");
        return;
    }
    // Err means the handler is already ours (the test ran before in this boot).
    let _ = hal::arch::trap::set_interrupt_handler(VECTOR_BENCH_IPI, ipi_arrived);
    let apic_id = hal::arch::smp::apic_id_of(1).expect("CPU 1 has an APIC id");

    // Receiver halted: wait between IPIs so CPU 1 is back in `hlt`.
    let mut idle = [0u64; SAMPLES];
    for slot in &mut idle {
        hal::arch::time::halt_for_ns(300_000);
        *slot = one_ipi(apic_id).expect("the IPI reached halted CPU 1");
    }
    // Receiver busy: a task on CPU 1 spins with interrupts on.
    STOP.store(false, SeqCst);
    SPINNING.store(false, SeqCst);
    spawn_on(1, async {
        SPINNING.store(true, SeqCst);
        while !STOP.load(SeqCst) {
            core::hint::spin_loop();
        }
        SPINNING.store(false, SeqCst);
    });
    assert!(
        crate::wait_until(|| SPINNING.load(SeqCst), 5_000_000_000),
        "the spinning task did not start on CPU 1"
    );
    let mut busy = [0u64; SAMPLES];
    for slot in &mut busy {
        hal::arch::time::halt_for_ns(20_000);
        *slot = one_ipi(apic_id).expect("the IPI reached busy CPU 1");
    }
    STOP.store(true, SeqCst);
    assert!(
        crate::wait_until(|| !SPINNING.load(SeqCst), 5_000_000_000),
        "the spinning task did not stop"
    );
    for (name, cycles) in [
        ("ipi_one_way_idle", &mut idle),
        ("ipi_one_way_busy", &mut busy),
    ] {
        let c = median(cycles);
        let mut ns: Vec<u64> = cycles.iter().map(|&c| cycles_to_ns(c)).collect();
        result(name, &mut ns, format_args!("iters=1 cycles_per_op={c}"));
    }
}

// ---------------------------------------------------------------------------
// Allocators: per-CPU slab heap vs one global lock
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Heap {
    /// The kernel heap (`#[global_allocator]`: the per-CPU slab allocator).
    Slab,
    /// `GlobalLockHeap`: linked_list_allocator behind one spin lock.
    Locked,
    /// No allocation, 64 adds: what the host lets k vCPUs scale to at best.
    Control,
}

impl Heap {
    fn name(self) -> &'static str {
        match self {
            Heap::Slab => "slab",
            Heap::Locked => "locked",
            Heap::Control => "control",
        }
    }
}

/// The baseline's private region: 4 MiB taken once from the kernel heap.
fn locked_heap() -> &'static GlobalLockHeap {
    static LOCKED: spin::Once<&'static GlobalLockHeap> = spin::Once::new();
    LOCKED.call_once(|| GlobalLockHeap::leak_new(4 << 20).expect("4 MiB for the baseline heap"))
}

/// A block from either heap; dropping it frees it on the running CPU.
enum Block {
    Slab(#[allow(dead_code)] Box<[MaybeUninit<u8>]>), // held only to be dropped
    Locked(#[allow(dead_code)] LockedBlock),
}

fn alloc_block(heap: Heap, size: usize) -> Block {
    match heap {
        Heap::Slab | Heap::Control => Block::Slab(Box::new_uninit_slice(size)),
        Heap::Locked => Block::Locked(
            locked_heap()
                .alloc(Layout::from_size_align(size, 1).expect("layout"))
                .expect("the baseline heap has room"),
        ),
    }
}

/// `n` alloc+free pairs of `size` bytes; `black_box` keeps each pair.
fn alloc_free_pairs(heap: Heap, size: usize, n: u64) {
    match heap {
        Heap::Slab => {
            for _ in 0..n {
                drop(black_box(Box::<[u8]>::new_uninit_slice(size)));
            }
        }
        Heap::Locked => {
            let (heap, layout) = (
                locked_heap(),
                Layout::from_size_align(size, 1).expect("layout"),
            );
            for _ in 0..n {
                drop(black_box(
                    heap.alloc(layout).expect("the baseline heap has room"),
                ));
            }
        }
        Heap::Control => {
            for i in 0..n {
                let mut x = i;
                for _ in 0..64 {
                    x = black_box(x + 1);
                }
            }
        }
    }
}

const MAX: usize = 64;
static READY: AtomicUsize = AtomicUsize::new(0);
static DONE: AtomicUsize = AtomicUsize::new(0);
static START: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];
static END: [AtomicU64; MAX] = [const { AtomicU64::new(0) }; MAX];

/// CPUs 0..k each do `n` alloc+free pairs at once (a spin barrier lines
/// them up); returns the wall time from the first start to the last end,
/// in TSC cycles.
fn concurrent_round(heap: Heap, size: usize, k: usize, n: u64) -> u64 {
    READY.store(0, SeqCst);
    DONE.store(0, SeqCst);
    for cpu in 0..k {
        spawn_on(cpu, async move {
            READY.fetch_add(1, SeqCst);
            while READY.load(SeqCst) < k {
                core::hint::spin_loop();
            }
            START[cpu].store(rdtsc(), SeqCst);
            alloc_free_pairs(heap, size, n);
            END[cpu].store(rdtsc(), SeqCst);
            DONE.fetch_add(1, SeqCst);
        });
    }
    assert!(
        crate::wait_until(|| DONE.load(SeqCst) == k, 60_000_000_000),
        "an allocator round did not finish"
    );
    let first = (0..k).map(|c| START[c].load(SeqCst)).min().unwrap_or(0);
    let last = (0..k).map(|c| END[c].load(SeqCst)).max().unwrap_or(0);
    last - first
}

/// `RESULT {slab,locked}_alloc_free_{64B,1KiB}_{1,2,4}cpu`: ns per alloc+free
/// pair on each CPU while k CPUs run at once (wall time / pairs per CPU),
/// with total throughput (`mops`, million pairs per second), and
/// `RESULT {heap}_throughput_{size}_{k}cpu_vs_1cpu` with the ratio of the
/// medians (`ratio`) and of the best samples (`ratio_best`: the host is
/// shared, and a descheduled vCPU only ever adds time). The samples for
/// 1, 2 and 4 CPUs interleave, so a busy spell on the host hits them alike.
pub fn bench_alloc_free_scaling() {
    const SAMPLES: usize = 9;
    const PAIRS: u64 = 20_000;
    let cpus = ncpus();
    let ks: Vec<usize> = [1, 2, 4].into_iter().filter(|&k| k <= cpus).collect();
    for (size, label, heaps) in [
        (0, "64adds", &[Heap::Control][..]),
        (64, "64B", &[Heap::Slab, Heap::Locked]),
        (1024, "1KiB", &[Heap::Slab, Heap::Locked]),
    ] {
        for &heap in heaps {
            let mut ns: Vec<Vec<u64>> = ks.iter().map(|_| Vec::new()).collect();
            for &k in &ks {
                concurrent_round(heap, size, k, PAIRS / 4); // warm the caches and slabs
            }
            for _ in 0..SAMPLES {
                for (i, &k) in ks.iter().enumerate() {
                    ns[i].push(cycles_to_ns(concurrent_round(heap, size, k, PAIRS)) / PAIRS);
                }
            }
            let mops = |k: usize, per_op: u64| k as f64 * 1_000.0 / per_op.max(1) as f64;
            let (one_median, one_best) = (median(&ns[0]), *ns[0].iter().min().unwrap_or(&1));
            for (i, &k) in ks.iter().enumerate() {
                let (per_op, best) = (median(&ns[i]), *ns[i].iter().min().unwrap_or(&1));
                let name = match heap {
                    Heap::Control => alloc::format!("control_{label}_{k}cpu"),
                    _ => alloc::format!("{}_alloc_free_{label}_{k}cpu", heap.name()),
                };
                let m = mops(k, per_op);
                result(
                    &name,
                    &mut ns[i],
                    format_args!("iters={PAIRS} cpus={k} mops={m:.2}"),
                );
                if k > 1 {
                    let ratio = m / mops(1, one_median);
                    let ratio_best = mops(k, best) / mops(1, one_best);
                    let name = alloc::format!("{}_throughput_{label}_{k}cpu_vs_1cpu", heap.name());
                    result(
                        &name,
                        &mut [per_op],
                        format_args!("ratio={ratio:.2} ratio_best={ratio_best:.2}"),
                    );
                }
            }
        }
    }
    if cpus < 4 {
        log::info!(target: "bench", "bench_alloc_free_scaling: {cpus} CPUs online; the 4-CPU rows need -smp 4");
    }
}

/// `RESULT {slab,locked}_remote_free_{64B,1KiB}`: CPU `a` allocates a batch,
/// CPU `b` frees it (timed, ns per free); for the slab heap also
/// `RESULT slab_remote_drain_{size}`: `a` then takes the objects back
/// (`hal::mm::drain_remote_frees`, ns per object).
pub fn bench_remote_free() {
    const SAMPLES: usize = 7;
    const BATCH: usize = 1_000;
    static SLOT: spin::Mutex<Option<Vec<Block>>> = spin::Mutex::new(None);
    static PHASE: AtomicUsize = AtomicUsize::new(0);
    static FREE_CYCLES: AtomicU64 = AtomicU64::new(0);
    static DRAIN_CYCLES: AtomicU64 = AtomicU64::new(0);
    let cpus = ncpus();
    if cpus < 2 {
        log::info!(target: "bench", "bench_remote_free skipped: needs -smp 2 or more");
        return;
    }
    // The allocating CPU spins while the other frees, so its idle loop
    // cannot drain the remote frees before the timed drain.
    let (a, b) = if cpus >= 3 { (1, 2) } else { (1, 0) };
    for (size, label) in [(64, "64B"), (1024, "1KiB")] {
        for heap in [Heap::Slab, Heap::Locked] {
            let mut free_ns = Vec::new();
            let mut drain_ns = Vec::new();
            for sample in 0..=SAMPLES {
                PHASE.store(0, SeqCst);
                spawn_on(a, async move {
                    let batch: Vec<Block> = (0..BATCH).map(|_| alloc_block(heap, size)).collect();
                    *SLOT.lock() = Some(batch);
                    PHASE.store(1, SeqCst);
                    while PHASE.load(SeqCst) < 2 {
                        core::hint::spin_loop();
                    }
                    let t0 = rdtsc();
                    hal::mm::drain_remote_frees();
                    DRAIN_CYCLES.store(rdtsc() - t0, SeqCst);
                    PHASE.store(3, SeqCst);
                });
                spawn_on(b, async move {
                    while PHASE.load(SeqCst) < 1 {
                        core::hint::spin_loop();
                    }
                    let mut batch = SLOT.lock().take().expect("the batch");
                    let t0 = rdtsc();
                    while let Some(block) = batch.pop() {
                        drop(block);
                    }
                    FREE_CYCLES.store(rdtsc() - t0, SeqCst);
                    drop(batch);
                    PHASE.store(2, SeqCst);
                });
                assert!(
                    crate::wait_until(|| PHASE.load(SeqCst) == 3, 60_000_000_000),
                    "a remote-free round did not finish"
                );
                if sample > 0 {
                    // Sample 0 warms up.
                    free_ns.push(cycles_to_ns(FREE_CYCLES.load(SeqCst)) / BATCH as u64);
                    drain_ns.push(cycles_to_ns(DRAIN_CYCLES.load(SeqCst)) / BATCH as u64);
                }
            }
            let name = alloc::format!("{}_remote_free_{label}", heap.name());
            result(
                &name,
                &mut free_ns,
                format_args!("iters={BATCH} alloc_cpu={a} free_cpu={b}"),
            );
            if heap == Heap::Slab {
                let name = alloc::format!("slab_remote_drain_{label}");
                result(&name, &mut drain_ns, format_args!("iters={BATCH} cpu={a}"));
            }
        }
    }
}
