//! The executor on every CPU: the kernel's `executor::Platform` and the
//! per-CPU run loops.
//!
//! Each application processor binds its `LocalCpu` from the one `Runtime`,
//! keeps it in a `hal::percpu::CpuLocal` (only its CPU touches it) and runs
//! `LocalCpu::run` forever. Idle is DragonFly's race-free sleep: interrupts
//! off (`prepare_to_sleep`), re-check for work, then `sti; hlt` (the
//! interrupt shadow of `sti` means a wake IPI cannot slip in between), with
//! the APIC timer armed for the next timer-wheel deadline (tickless: no
//! periodic tick); within `IDLE_POLL_NS` of a deadline the CPU polls the
//! clock instead of halting. Before halting, an idle CPU polls for an
//! interrupt for an adaptive window (as Linux's haltpoll does), so work that
//! comes within microseconds costs no halt and wake-up. Interrupt handlers
//! here acknowledge and return; the loop finds the work when HLT or the poll
//! returns.
//!
//! The boot CPU binds CPU 0 too. Its thread of control (the kernel console
//! or the in-kernel test runner) is not a task, so it drives CPU 0's
//! executor with [`run_until`] whenever it waits: tasks spawned on CPU 0 run
//! then, and an idle boot CPU halts like the others.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use executor::{CpuId, LocalCpu, Platform, Runtime};
use hal::arch::{apic, smp, time, trap};
use x86_64::instructions::interrupts;

/// Wakes a CPU from HLT so it drains its IPI rings.
pub const VECTOR_WAKE: u8 = 0xf0;
/// The one-shot APIC timer armed for the next timer deadline.
pub const VECTOR_TIMER: u8 = 0xf8;

struct KernelPlatform {
    cpus: usize,
}

impl Platform for KernelPlatform {
    fn cpu_count(&self) -> usize {
        self.cpus
    }

    fn current_cpu(&self) -> Option<CpuId> {
        let index = hal::cpu_index();
        (index < self.cpus).then_some(CpuId(index as u32))
    }

    fn send_ipi(&self, target: CpuId) {
        // Signalling ourselves (an MSI handler posting to this CPU's
        // executor): no IPI needed. `npoll` is set already, and this CPU
        // looks at it before it next halts (the sleep protocol re-checks
        // with interrupts off) or at its next interrupt point.
        if target.index() == hal::cpu_index() {
            return;
        }
        if let Some(apic_id) = smp::apic_id_of(target.index()) {
            apic::send_ipi(apic_id, VECTOR_WAKE);
        }
    }

    fn prepare_to_sleep(&self, _cpu: CpuId) {
        interrupts::disable();
    }

    fn abort_sleep(&self, _cpu: CpuId) {
        interrupts::enable();
    }

    fn sleep(&self, cpu: CpuId, deadline_ns: Option<u64>) {
        let i = cpu.index();
        let now = time::now_ns();
        let mut poll_until = now + POLL_WINDOW[i].load(Ordering::Relaxed);
        if let Some(deadline) = deadline_ns {
            if deadline <= now {
                interrupts::enable();
                return;
            }
            if deadline - now <= IDLE_POLL_NS {
                // Close to the deadline: poll instead of halting (a halted
                // vCPU wakes late by the host's timer slack), but leave at
                // once if an interrupt brings work.
                if !poll_for_interrupt(deadline) {
                    interrupts::enable();
                }
                return;
            }
            poll_until = poll_until.min(deadline - IDLE_POLL_NS);
        }
        // Poll a while before halting: work that comes soon (a disk
        // completion, a message from another CPU) is then taken without a
        // halt and a wake-up, which cost far more than the wait itself
        // under a hypervisor or TCG (the vCPU thread sleeps and is woken by
        // the host). The window adapts to how long halts turn out to last.
        if poll_until > now && poll_for_interrupt(poll_until) {
            return;
        }
        let halted_at = time::now_ns();
        if let Some(deadline) = deadline_ns {
            // Halt until shortly before the deadline; the next call polls.
            // A timer armed earlier (a time slice, say) stays: it wakes us
            // early, and that call arms the real one. Re-arming on every
            // idle entry would cost an APIC write (a hypervisor trap, and a
            // host timer reprogrammed) per blocking request.
            let wake_at = deadline - IDLE_POLL_NS;
            let armed = TIMER_DEADLINE[i].load(Ordering::Relaxed);
            if armed <= halted_at || armed > wake_at {
                arm_timer(i, wake_at.saturating_sub(halted_at).max(1));
            }
        }
        refresh_tlb(i, halted_at);
        interrupts::enable_and_hlt();
        adapt_poll_window(i, time::now_ns().saturating_sub(halted_at));
    }

    fn now_ns(&self) -> u64 {
        time::now_ns()
    }
}

static RUNTIME: spin::Once<Runtime> = spin::Once::new();
static LOCAL: hal::percpu::CpuLocal<&'static LocalCpu> = hal::percpu::CpuLocal::new();

fn context_hook(f: &mut dyn FnMut(Option<&LocalCpu>)) {
    LOCAL.with(|local| f(local.copied()));
}

fn local_getter() -> Option<&'static LocalCpu> {
    LOCAL.with(|local| local.copied())
}

/// How close to a timer deadline an idle CPU polls instead of halting:
/// a halted vCPU is woken by a host timer, which the host delays by its
/// timer slack (50 us by default on Linux), so halting up to the deadline
/// would overshoot by that much.
const IDLE_POLL_NS: u64 = 100_000;

/// The poll-before-halt window of each CPU (0: halt at once), adapted as
/// Linux's haltpoll governor does: a halt that ended within
/// `HALT_POLL_MAX_NS` means polling that long would have caught the wake-up,
/// so the window grows; a longer halt means polling was wasted, so it shrinks.
/// An idle CPU with nothing coming therefore soon halts at once again.
static POLL_WINDOW: [AtomicU64; hal::percpu::MAX_CPUS] =
    [const { AtomicU64::new(0) }; hal::percpu::MAX_CPUS];
/// The smallest poll window (below it, none).
const HALT_POLL_MIN_NS: u64 = 10_000;
/// The largest poll window, and the longest halt that makes it grow: 200 us
/// by default, `haltpoll=USECS` on the kernel command line (0: never poll).
static HALT_POLL_MAX_NS: AtomicU64 = AtomicU64::new(200_000);

/// Applies `haltpoll=USECS` from the kernel command line (a bad value was
/// warned about at boot and keeps the default).
fn configure_halt_poll(halt_poll_us: Option<u64>) {
    if let Some(us) = halt_poll_us {
        HALT_POLL_MAX_NS.store(us.saturating_mul(1000), Ordering::Relaxed);
    }
    let max = HALT_POLL_MAX_NS.load(Ordering::Relaxed);
    log::info!(target: "sched", "idle CPUs poll up to {} us before halting", max / 1000);
}

fn adapt_poll_window(cpu: usize, halted_ns: u64) {
    let window = &POLL_WINDOW[cpu];
    let now = window.load(Ordering::Relaxed);
    let max = HALT_POLL_MAX_NS.load(Ordering::Relaxed);
    let next = if max < HALT_POLL_MIN_NS {
        0
    } else if halted_ns <= max {
        (now * 2).clamp(HALT_POLL_MIN_NS, max)
    } else if now / 2 < HALT_POLL_MIN_NS {
        0
    } else {
        now / 2
    };
    window.store(next, Ordering::Relaxed);
}

/// Spins with interrupts enabled until this CPU takes an interrupt (its
/// handler may have given the executor work) or `until_ns` passes. Returns
/// true with interrupts enabled if an interrupt came; false with them
/// disabled again (checked once more with them off, so none slips past).
fn poll_for_interrupt(until_ns: u64) -> bool {
    let seen = trap::interrupts_taken();
    interrupts::enable();
    while time::now_ns() < until_ns {
        if trap::interrupts_taken() != seen {
            return true;
        }
        core::hint::spin_loop();
    }
    interrupts::disable();
    if trap::interrupts_taken() != seen {
        interrupts::enable();
        return true;
    }
    false
}

/// How often a CPU flushes its whole TLB, at most: see [`refresh_tlb`].
const TLB_REFRESH_NS: u64 = 20_000_000;

/// When each CPU last flushed its TLB in [`refresh_tlb`].
static TLB_REFRESHED_AT: [AtomicU64; hal::percpu::MAX_CPUS] =
    [const { AtomicU64::new(0) }; hal::percpu::MAX_CPUS];

/// Flushes this CPU's TLB if `TLB_REFRESH_NS` have passed since the last
/// time (called before halting, and when a time slice is re-armed).
///
/// This is for software TLBs. QEMU's TCG keeps one per vCPU and resizes it
/// to the working set only when the guest flushes it. Damselfly seldom
/// switches address spaces: a CPU that runs one program never does, and a
/// CPU that was idle since boot never has. So without this a vCPU keeps the
/// TLB it had, for instance the small one it had while idle, and a program
/// with a larger working set misses in it all the time. 4 KiB random disk
/// reads at queue depth 32 ran a quarter slower on the CPU that had been
/// idle since boot than on the other (README, issue 7). On hardware the
/// cost is one refill per period: microseconds every 20 ms.
fn refresh_tlb(cpu: usize, now: u64) {
    let last = &TLB_REFRESHED_AT[cpu];
    if now.saturating_sub(last.load(Ordering::Relaxed)) >= TLB_REFRESH_NS {
        last.store(now, Ordering::Relaxed);
        hal::mm::space::flush_local_tlb();
    }
}

/// APs that have bound their `LocalCpu`.
static BOUND: AtomicU64 = AtomicU64::new(0);

/// The timer: nothing is armed any more; the executor loop does the work.
fn timer_fired(_vector: u8) {
    let cpu = hal::cpu_index();
    if let (Some(deadline), Some(slice)) = (TIMER_DEADLINE.get(cpu), SLICE_ARMED.get(cpu)) {
        slice.store(false, Ordering::Relaxed);
        deadline.store(0, Ordering::Relaxed);
    }
}

/// The wake IPI: nothing to do (every interrupt is counted by `hal`, which
/// a polling idle CPU watches; the executor loop finds the work).
fn wake(_vector: u8) {}

/// Drives this CPU's executor until `stop()` holds, checking it at least
/// every `poll_ns` (it may depend on other CPUs, which do not wake us).
/// Before the executor is bound (or if binding failed) it halts between checks.
pub fn run_until(stop: &mut dyn FnMut() -> bool, poll_ns: u64) {
    match LOCAL.with(|local| local.copied()) {
        Some(local) => local.run_until(stop, poll_ns),
        None => {
            while !stop() {
                time::halt_for_ns(poll_ns);
            }
        }
    }
}

/// Longest a user thread runs before the timer takes the CPU back.
pub const TIME_SLICE_NS: u64 = 4_000_000;

/// The APIC timer deadline armed on each CPU (0: none pending).
static TIMER_DEADLINE: [AtomicU64; hal::percpu::MAX_CPUS] =
    [const { AtomicU64::new(0) }; hal::percpu::MAX_CPUS];

/// Per CPU: the armed deadline is one [`arm_time_slice`] armed or checked,
/// and it has neither fired nor been replaced since. While this holds the
/// deadline is at most a time slice away from when it was checked, so it
/// still is: the next entry to user mode needs no clock read.
static SLICE_ARMED: [AtomicBool; hal::percpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; hal::percpu::MAX_CPUS];

fn arm_timer(cpu: usize, after_ns: u64) {
    SLICE_ARMED[cpu].store(false, Ordering::Relaxed);
    let deadline = time::now_ns() + after_ns;
    TIMER_DEADLINE[cpu].store(deadline, Ordering::Relaxed);
    time::arm_oneshot_ns(VECTOR_TIMER, after_ns);
}

/// Before entering user mode: makes sure the timer fires within a time
/// slice (so a spinning program gives the CPU back, and this CPU's timers
/// run). Cheap when a suitable deadline is armed already.
///
/// Call with interrupts disabled: a deadline that passes between the check
/// and user mode then interrupts the thread at once.
pub fn arm_time_slice() {
    let cpu = hal::cpu_index();
    if SLICE_ARMED[cpu].load(Ordering::Relaxed) {
        return; // a clock read (a host call under TCG) spared per system call
    }
    let now = time::now_ns();
    refresh_tlb(cpu, now);
    let armed = TIMER_DEADLINE[cpu].load(Ordering::Relaxed);
    if !(armed > now && armed <= now + TIME_SLICE_NS) {
        arm_timer(cpu, TIME_SLICE_NS);
    }
    SLICE_ARMED[cpu].store(true, Ordering::Relaxed);
}

/// Interrupts `cpu` (a wake IPI): a user thread running there comes back
/// to the kernel and its task sees whatever changed (a kill).
pub fn kick(cpu: usize) {
    if cpu == hal::cpu_index() {
        return; // we are in the kernel here already
    }
    if let Some(apic_id) = smp::apic_id_of(cpu) {
        apic::send_ipi(apic_id, VECTOR_WAKE);
    }
}

/// Runs this CPU's executor forever (the boot CPU, once userland runs).
pub fn run_forever() -> ! {
    if let Some(local) = LOCAL.with(|local| local.copied()) {
        local.run();
    }
    log::error!(target: "sched", "CPU {}: no executor to run; parking", hal::cpu_index());
    loop {
        interrupts::enable_and_hlt();
    }
}

/// The runtime, once [`start`] has run.
#[cfg_attr(not(feature = "ktest"), allow(dead_code))] // the test runner hands it to the suite
pub fn runtime() -> Option<&'static Runtime> {
    RUNTIME.get()
}

/// Creates the runtime for every online CPU and wakes the APIs waiting for
/// it (boot CPU, once, after `smp::start_aps`).
pub fn start() {
    let cpus = smp::online_cpus();
    configure_halt_poll(hal::boot::info().and_then(|i| i.options().halt_poll_us));
    for (vector, handler) in [(VECTOR_WAKE, wake as fn(u8)), (VECTOR_TIMER, timer_fired)] {
        if trap::set_interrupt_handler(vector, handler).is_err() {
            log::error!(target: "sched", "vector {vector:#x} is taken; CPUs may miss wake-ups");
        }
    }
    executor::set_context_hook(context_hook);
    executor::set_local_getter(local_getter);
    let runtime = RUNTIME.call_once(|| Runtime::new(Box::new(KernelPlatform { cpus })));
    match runtime.bind(CpuId(0)) {
        Ok(local) => LOCAL.set(Box::leak(Box::new(local))),
        Err(e) => log::error!(target: "sched", "CPU 0 cannot bind its executor: {e:?}"),
    }
    for index in 1..cpus {
        if let Some(apic_id) = smp::apic_id_of(index) {
            apic::send_ipi(apic_id, VECTOR_WAKE);
        }
    }
    // Boot goes on only when every AP has bound its executor (binding
    // allocates: nothing may race the boot CPU's later work for the heap).
    let deadline = time::now_ns() + 5_000_000_000;
    while BOUND.load(Ordering::SeqCst) < (cpus - 1) as u64 && time::now_ns() < deadline {
        time::halt_for_ns(100_000);
    }
    let bound = BOUND.load(Ordering::SeqCst);
    if bound < (cpus - 1) as u64 {
        log::error!(target: "sched", "only {bound} of {} APs bound their executor", cpus - 1);
    }
    log::info!(target: "sched", "executors running on CPUs 0..{cpus}");
}

/// An application processor's life after bring-up: wait for the runtime,
/// bind this CPU, run its executor forever.
pub fn ap_main(index: usize) -> ! {
    let runtime = loop {
        if let Some(runtime) = RUNTIME.get() {
            break runtime;
        }
        interrupts::enable_and_hlt(); // `start` sends a wake IPI
    };
    interrupts::disable();
    let local = match runtime.bind(CpuId(index as u32)) {
        Ok(local) => Box::leak(Box::new(local)),
        Err(e) => {
            log::error!(target: "sched", "CPU {index} cannot bind its executor: {e:?}; parking");
            loop {
                interrupts::enable_and_hlt();
            }
        }
    };
    LOCAL.set(local);
    BOUND.fetch_add(1, Ordering::SeqCst);
    interrupts::enable();
    local.run();
    log::error!(target: "sched", "CPU {index}: executor stopped; parking");
    loop {
        interrupts::enable_and_hlt();
    }
}
