//! The machine-wide `Runtime` and the per-CPU `LocalCpu`: run loop, IPI queues, critical
//! sections, interrupts, timers.
//!
//! `Runtime` is shared by all CPUs and holds only what crosses CPUs: the IPI rings, each
//! CPU's `npoll` flag, pending-source mask, foreign inbox and counters. `LocalCpu` is the
//! part only its own CPU touches (DragonFly's `globaldata`): run queues, critical-section
//! count, timer wheel. It is `!Sync`; the platform keeps it where the current CPU can find
//! it (hosted: a thread-local; kernel: the GS-based per-CPU area) and exposes it through
//! the context hook (`set_context_hook`).
//!
//! # One loop iteration (`LocalCpu::run`)
//! 1. `interrupt_point`: drain incoming IPI rings, the foreign inbox, pending interrupts;
//! 2. fire expired timers;
//! 3. take the head of the highest non-empty level; acquire its tokens or pass it over;
//!    poll it; queue it again if it was woken meanwhile;
//! 4. nothing runnable: `prepare_to_sleep`, re-check, `sleep` until the next deadline.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::task::Waker;

use crossbeam_utils::CachePadded;

use crate::cpu::{StatCounters, bump};
use crate::raw::queue::RunQueue;
use crate::raw::ring::{Endpoints, IPIQ_CAPACITY, RingMatrix};
use crate::raw::task::{self, Notified, RunHooks, RunOutcome, Schedule, TaskMeta};
use crate::sync::{Arc, AtomicBool, AtomicU32, AtomicU64, Mutex, Ordering, fence};
use crate::task_local::TaskLocal;
use crate::timer::{DEFAULT_TICK_NS, TimerKey, TimerWheel};
use crate::token::{TokenRef, TokenSet};
use crate::{CpuId, CpuStats, IpiMsg, JoinHandle, Platform, Priority, SpawnError};

/// Most CPUs one runtime drives (the pending-source mask is one `u64`).
pub const MAX_CPUS: usize = 64;

const REQ_INBOX: u32 = 1 << 0;
const REQ_INTERRUPT: u32 = 1 << 1;
const REQ_VECTOR: u32 = 1 << 2;

/// Interrupt vectors per CPU for `post_interrupt` (one bit each in a `u64`).
pub const INTERRUPT_VECTORS: usize = 64;

/// Work handed to a CPU by a thread that is not one of its CPUs (a test thread, a
/// simulated device).
enum Inbound {
    Task(Notified),
    Ipi(IpiMsg),
}

/// Deferred interrupt work: `handler(arg)`.
type InterruptWork = (fn(usize), usize);

/// The cross-CPU part of one CPU.
struct CpuShared {
    /// Set by a sender that signalled this CPU; cleared when it finished draining
    /// (DragonFly `gd_npoll`).
    npoll: CachePadded<AtomicBool>,
    /// Bit `i`: ring `(i, this)` may hold messages (DragonFly `gd_ipimask`).
    ipimask: AtomicU64,
    /// `REQ_*` bits for the inbox and interrupts.
    reqflags: AtomicU32,
    inbox: Mutex<VecDeque<Inbound>>,
    interrupts: Mutex<VecDeque<InterruptWork>>,
    /// Handlers of `post_interrupt` vectors, registered once each.
    vectors: Box<[spin::Once<InterruptWork>]>,
    /// Bit `v`: vector `v` was posted and not yet handled (DragonFly `gd_ipending`).
    ipending: AtomicU64,
    stats: StatCounters,
}

struct Shared {
    platform: Box<dyn Platform>,
    cpus: Box<[CpuShared]>,
    rings: Arc<RingMatrix>,
    shutdown: AtomicBool,
}

/// A machine's executors: one per CPU, sharing IPI rings. See the module docs. A cheap
/// handle (one reference count); every task holds one.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Shared>,
}

impl core::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Runtime")
            .field("cpus", &self.inner.cpus.len())
            .finish_non_exhaustive()
    }
}

/// Why `register_interrupt` or `post_interrupt` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptError {
    /// The CPU id is out of range.
    NoSuchCpu,
    /// The vector is not below `INTERRUPT_VECTORS`.
    NoSuchVector,
    /// The vector already has a handler.
    AlreadyRegistered,
}

/// Why `Runtime::bind` refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    /// The CPU id is out of range.
    NoSuchCpu,
    /// Another `LocalCpu` for this CPU is alive.
    AlreadyBound,
}

impl Runtime {
    /// A runtime for `platform.cpu_count()` CPUs.
    ///
    /// # Panics
    /// If the platform reports 0 or more than `MAX_CPUS` CPUs.
    pub fn new(platform: Box<dyn Platform>) -> Self {
        let n = platform.cpu_count();
        assert!(
            (1..=MAX_CPUS).contains(&n),
            "executor: {n} CPUs requested, 1..={MAX_CPUS} supported"
        );
        let cpus = (0..n)
            .map(|_| CpuShared {
                npoll: CachePadded::new(AtomicBool::new(false)),
                ipimask: AtomicU64::new(0),
                reqflags: AtomicU32::new(0),
                inbox: Mutex::new(VecDeque::new()),
                interrupts: Mutex::new(VecDeque::new()),
                vectors: (0..INTERRUPT_VECTORS).map(|_| spin::Once::new()).collect(),
                ipending: AtomicU64::new(0),
                stats: StatCounters::default(),
            })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let shared = Shared {
            platform,
            cpus,
            rings: Arc::new(RingMatrix::new(n)),
            shutdown: AtomicBool::new(false),
        };
        Self {
            inner: Arc::new(shared),
        }
    }

    /// True if both handles name the same runtime.
    pub fn same(&self, other: &Runtime) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Number of CPUs.
    pub fn cpu_count(&self) -> usize {
        self.inner.cpus.len()
    }

    /// The platform under this runtime.
    pub fn platform(&self) -> &dyn Platform {
        &*self.inner.platform
    }

    /// Creates the CPU-local half for `cpu`, to be kept where the context hook finds it and
    /// driven by `LocalCpu::run` on that CPU.
    ///
    /// # Errors
    /// `NoSuchCpu` for an id out of range, `AlreadyBound` while another `LocalCpu` for the
    /// same CPU is alive.
    pub fn bind(&self, cpu: CpuId) -> Result<LocalCpu, BindError> {
        if cpu.index() >= self.cpu_count() {
            return Err(BindError::NoSuchCpu);
        }
        let rings =
            RingMatrix::claim(&self.inner.rings, cpu.index()).ok_or(BindError::AlreadyBound)?;
        let now = self.inner.platform.now_ns();
        Ok(LocalCpu {
            rt: self.clone(),
            cpu,
            rings,
            queues: RefCell::new(core::array::from_fn(|_| RunQueue::new())),
            crit: Cell::new(0),
            deferred: Cell::new(false),
            passed_over: Cell::new(0),
            timers: RefCell::new(TimerWheel::new(DEFAULT_TICK_NS, now)),
            next_tokens: RefCell::new(None),
            overflow: RefCell::new((0..self.cpu_count()).map(|_| RunQueue::new()).collect()),
            overflow_mask: Cell::new(0),
        })
    }

    /// Counters of one CPU.
    ///
    /// # Panics
    /// If `cpu` is out of range.
    pub fn stats(&self, cpu: CpuId) -> CpuStats {
        self.inner.cpus[cpu.index()].stats.snapshot()
    }

    /// Asks every CPU's `run` loop to return (queued tasks are cancelled there).
    pub fn shutdown(&self) {
        self.inner.shutdown.store(true, Ordering::Release);
        for cpu in 0..self.cpu_count() {
            self.inner.platform.send_ipi(CpuId(cpu as u32));
        }
    }

    /// True once `shutdown` was called.
    pub fn is_shut_down(&self) -> bool {
        self.inner.shutdown.load(Ordering::Acquire)
    }

    /// Spawns from any thread (a CPU of this runtime or not).
    ///
    /// # Errors
    /// `NoSuchCpu` if `cpu` is out of range; `ShuttingDown` after `shutdown`.
    pub fn spawn_on<F>(&self, cpu: CpuId, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let rt = self.clone();
        let mut future = Some(future);
        with_local(move |local| {
            let local = local.filter(|l| l.rt.same(&rt));
            rt.spawn_task(
                local,
                cpu,
                Priority::Kernel,
                Vec::new(),
                future.take().expect("called once"),
            )
        })
    }

    /// Runs `msg.func(msg.arg1, msg.arg2)` on `cpu`, from any thread: through the ring
    /// when called on one of this runtime's CPUs, else through the target's inbox.
    ///
    /// # Errors
    /// `NoSuchCpu` if `cpu` is out of range.
    pub fn ipi_send(&self, cpu: CpuId, msg: IpiMsg) -> Result<(), SpawnError> {
        if cpu.index() >= self.cpu_count() {
            return Err(SpawnError::NoSuchCpu);
        }
        let mut msg = Some(msg);
        with_local(|local| {
            if let Some(l) = local.filter(|l| l.rt.same(self)) {
                l.send_ipi_msg(cpu.index(), msg.take().expect("once"));
            }
        });
        if let Some(msg) = msg {
            self.inject(cpu.index(), Inbound::Ipi(msg));
        }
        Ok(())
    }

    /// Queues interrupt work on `cpu` and signals it: `handler(arg)` runs there at its next
    /// interrupt point outside a critical section (deferred to `crit_exit` inside one).
    /// This is the hosted stand-in for a device interrupt.
    ///
    /// # Errors
    /// `NoSuchCpu` if `cpu` is out of range.
    pub fn raise_interrupt(
        &self,
        cpu: CpuId,
        handler: fn(usize),
        arg: usize,
    ) -> Result<(), SpawnError> {
        let shared = self
            .inner
            .cpus
            .get(cpu.index())
            .ok_or(SpawnError::NoSuchCpu)?;
        shared.interrupts.lock().push_back((handler, arg));
        shared.reqflags.fetch_or(REQ_INTERRUPT, Ordering::SeqCst);
        self.signal(cpu.index());
        Ok(())
    }

    /// Registers `handler(arg)` for interrupt vector `vector` of `cpu` (once per vector).
    ///
    /// # Errors
    /// `NoSuchCpu`, `NoSuchVector`, `AlreadyRegistered`.
    pub fn register_interrupt(
        &self,
        cpu: CpuId,
        vector: usize,
        handler: fn(usize),
        arg: usize,
    ) -> Result<(), InterruptError> {
        let shared = self
            .inner
            .cpus
            .get(cpu.index())
            .ok_or(InterruptError::NoSuchCpu)?;
        let slot = shared
            .vectors
            .get(vector)
            .ok_or(InterruptError::NoSuchVector)?;
        let mut fresh = false;
        slot.call_once(|| {
            fresh = true;
            (handler, arg)
        });
        if fresh {
            Ok(())
        } else {
            Err(InterruptError::AlreadyRegistered)
        }
    }

    /// Marks registered vector `vector` pending on `cpu` and signals it: the handler runs
    /// there at its next interrupt point outside a critical section. Lock-free and
    /// allocation-free, so a hardware interrupt handler may call it (DragonFly's
    /// `ipending` bit plus `splz`). Posting an already pending vector coalesces.
    ///
    /// # Errors
    /// `NoSuchCpu`, `NoSuchVector` (posting an unregistered vector is not an error; it
    /// runs nothing).
    ///
    /// # Context
    /// Any thread or interrupt context; never blocks, never allocates.
    pub fn post_interrupt(&self, cpu: CpuId, vector: usize) -> Result<(), InterruptError> {
        let shared = self
            .inner
            .cpus
            .get(cpu.index())
            .ok_or(InterruptError::NoSuchCpu)?;
        if vector >= INTERRUPT_VECTORS {
            return Err(InterruptError::NoSuchVector);
        }
        shared.ipending.fetch_or(1 << vector, Ordering::Release);
        shared.reqflags.fetch_or(REQ_VECTOR, Ordering::SeqCst);
        self.signal(cpu.index());
        Ok(())
    }

    pub(crate) fn spawn_task<F>(
        &self,
        local: Option<&LocalCpu>,
        cpu: CpuId,
        priority: Priority,
        tokens: Vec<TokenRef>,
        future: F,
    ) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let target = cpu.index();
        if target >= self.cpu_count() {
            return Err(SpawnError::NoSuchCpu);
        }
        if self.is_shut_down() {
            return Err(SpawnError::ShuttingDown);
        }
        let meta = TaskMeta {
            owner: cpu.0,
            level: priority.level() as u8,
        };
        let task_local = TaskLocal {
            tokens: TokenSet::new(tokens),
        };
        let (notified, join) = task::spawn(future, self.clone(), meta, task_local);
        self.inner.cpus[target]
            .stats
            .tasks_spawned
            .fetch_add(1, Ordering::Relaxed);
        match local {
            Some(l) if l.cpu == cpu => l.enqueue(notified),
            Some(l) => l.send_task(target, notified),
            None => self.inject(target, Inbound::Task(notified)),
        }
        Ok(JoinHandle::new(join))
    }

    /// Hands work to `cpu` from a thread that is not one of our CPUs.
    fn inject(&self, cpu: usize, item: Inbound) {
        let shared = &self.inner.cpus[cpu];
        shared.inbox.lock().push_back(item);
        shared.reqflags.fetch_or(REQ_INBOX, Ordering::SeqCst);
        self.signal(cpu);
    }

    /// Interrupts `cpu` unless it is already draining. True if an IPI was sent.
    ///
    /// The pending bit was set (SeqCst) before this SeqCst swap; the target stores
    /// `npoll = false`, fences (SeqCst) and re-reads the pending bits. So either we see
    /// `false` and send the IPI, or the target's re-read sees our bit (no lost wake-up).
    fn signal(&self, cpu: usize) -> bool {
        if self.inner.cpus[cpu].npoll.swap(true, Ordering::SeqCst) {
            false
        } else {
            self.inner.platform.send_ipi(CpuId(cpu as u32));
            true
        }
    }
}

impl Schedule for Runtime {
    fn schedule(&self, task: Notified) {
        let owner = task.meta().owner as usize;
        let mut task = Some(task);
        with_local(|local| {
            let Some(l) = local.filter(|l| l.rt.same(self)) else {
                return;
            };
            let t = task.take().expect("once");
            if l.cpu.index() == owner {
                bump(&l.shared().stats.local_wakes);
                l.enqueue(t);
            } else {
                bump(&l.shared().stats.remote_wakes);
                l.send_task(owner, t);
            }
        });
        if let Some(t) = task {
            self.inject(owner, Inbound::Task(t));
        }
    }

    fn schedule_arrived(&self, task: Notified) {
        let owner = task.meta().owner as usize;
        let mut task = Some(task);
        with_local(|local| {
            if let Some(l) = local.filter(|l| l.rt.same(self) && l.cpu.index() == owner) {
                l.enqueue(task.take().expect("once"));
            }
        });
        if let Some(t) = task {
            self.schedule(t);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The context hook
// ---------------------------------------------------------------------------------------

/// How the executor finds the current CPU's `LocalCpu`: the platform's accessor. It must
/// call its argument exactly once, with the `LocalCpu` bound to the calling thread/CPU, or
/// `None` if the caller is not a CPU. Hosted: a thread-local; kernel: the GS-based area.
pub type ContextHook = fn(&mut dyn FnMut(Option<&LocalCpu>));

static CONTEXT_HOOK: spin::Once<ContextHook> = spin::Once::new();

/// Installs the context hook (once per process; later calls are ignored and return false).
pub fn set_context_hook(hook: ContextHook) -> bool {
    install_once(&CONTEXT_HOOK, hook)
}

/// Sets `cell` to `value` unless it is set already; returns whether this call set it.
fn install_once<T>(cell: &spin::Once<T>, value: T) -> bool {
    let mut installed = false;
    cell.call_once(|| {
        installed = true;
        value
    });
    installed
}

/// A faster form of the context hook for platforms whose `LocalCpu`s live for ever (the
/// kernel: one per CPU, leaked at bring-up): returns the calling CPU's, or `None` if the
/// caller is not a CPU. Every executor entry point asks for it (a spawn, a wake-up, a
/// port call), so it saves the closure round trip of [`ContextHook`].
pub type LocalGetter = fn() -> Option<&'static LocalCpu>;

static LOCAL_GETTER: spin::Once<LocalGetter> = spin::Once::new();

/// Installs the fast accessor (once per process; later calls are ignored and return
/// false). When installed it is used instead of the context hook.
pub fn set_local_getter(getter: LocalGetter) -> bool {
    install_once(&LOCAL_GETTER, getter)
}

/// Runs `f` with the current CPU's `LocalCpu` (or `None` off-CPU).
#[inline]
pub(crate) fn with_local<R>(f: impl FnOnce(Option<&LocalCpu>) -> R) -> R {
    if let Some(get) = LOCAL_GETTER.get() {
        return f(get());
    }
    let Some(hook) = CONTEXT_HOOK.get() else {
        return f(None);
    };
    let mut f = Some(f);
    let mut out = None;
    hook(&mut |local| {
        if let Some(f) = f.take() {
            out = Some(f(local));
        }
    });
    match out {
        Some(out) => out,
        // The hook did not call us; behave as off-CPU.
        None => (f
            .take()
            .expect("hook called the closure but produced nothing"))(None),
    }
}

// ---------------------------------------------------------------------------------------
// LocalCpu
// ---------------------------------------------------------------------------------------

/// The CPU-local executor state (run queues, crit count, timers). Only its CPU uses it.
pub struct LocalCpu {
    rt: Runtime,
    cpu: CpuId,
    rings: Endpoints,
    queues: RefCell<[RunQueue; Priority::LEVELS]>,
    crit: Cell<u32>,
    /// IPI or interrupt work arrived inside a critical section (DragonFly `gd_reqflags`).
    deferred: Cell<bool>,
    /// Consecutive tasks passed over for busy tokens.
    passed_over: Cell<usize>,
    timers: RefCell<TimerWheel<Waker>>,
    /// A token set the running task asked for, applied when its poll returns.
    next_tokens: RefCell<Option<Vec<TokenRef>>>,
    /// Per target CPU: woken tasks waiting for room in our ring to that CPU.
    overflow: RefCell<Vec<RunQueue>>,
    /// Bit `i`: `overflow[i]` is not empty.
    overflow_mask: Cell<u64>,
}

impl core::fmt::Debug for LocalCpu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocalCpu")
            .field("cpu", &self.cpu)
            .finish_non_exhaustive()
    }
}

struct TokenHooks<'a> {
    local: &'a LocalCpu,
}

impl RunHooks for TokenHooks<'_> {
    fn before_poll(&mut self, task: &mut TaskLocal) -> bool {
        task.tokens.is_empty() || task.tokens.try_acquire_all()
    }

    fn after_poll(&mut self, task: &mut TaskLocal) {
        bump(&self.local.shared().stats.polls);
        task.tokens.release_all();
        if let Some(next) = self.local.next_tokens.borrow_mut().take() {
            task.tokens.replace(next);
        }
    }

    fn completed(&mut self) {
        bump(&self.local.shared().stats.tasks_completed);
    }
}

impl LocalCpu {
    /// This CPU.
    pub fn cpu(&self) -> CpuId {
        self.cpu
    }

    /// The runtime this CPU belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    pub(crate) fn runtime_id(&self) -> usize {
        Arc::as_ptr(&self.rt.inner) as usize
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.rt.inner.platform.now_ns()
    }

    fn shared(&self) -> &CpuShared {
        &self.rt.inner.cpus[self.cpu.index()]
    }

    pub(crate) fn enqueue(&self, task: Notified) {
        let level = task.meta().level as usize;
        self.queues.borrow_mut()[level].push_back(task);
    }

    fn dequeue(&self) -> Option<Notified> {
        let mut queues = self.queues.borrow_mut();
        queues.iter_mut().rev().find_map(RunQueue::pop_front)
    }

    fn runnable(&self) -> usize {
        self.queues.borrow().iter().map(RunQueue::len).sum()
    }

    /// Drives this CPU until the runtime shuts down, then cancels what is still queued.
    ///
    /// # Context
    /// On this CPU, with the context hook able to find `self`.
    pub fn run(&self) {
        self.drive(&mut || false, None);
        self.teardown();
    }

    /// Drives this CPU until `stop()` returns true (checked between polls), without
    /// tearing anything down: the caller keeps the CPU afterwards.
    ///
    /// For a thread of control that is not a task (the boot CPU's test runner) and
    /// must wait for work elsewhere while this CPU's tasks keep running. `stop` may
    /// depend on other CPUs without waking this one, so idle sleeps last at most
    /// `poll_ns` before `stop` is checked again.
    ///
    /// # Context
    /// On this CPU, with the context hook able to find `self`, not from inside a task.
    pub fn run_until(&self, stop: &mut dyn FnMut() -> bool, poll_ns: u64) {
        self.drive(stop, Some(poll_ns));
    }

    /// The run loop: until shutdown or `stop()`, idle sleeps bounded by `poll_ns`.
    fn drive(&self, stop: &mut dyn FnMut() -> bool, poll_ns: Option<u64>) {
        loop {
            self.flush_overflow();
            self.interrupt_point();
            self.fire_timers();
            if stop() || self.rt.is_shut_down() {
                return;
            }
            if !self.run_one() {
                self.idle(poll_ns);
            }
        }
    }

    /// Takes one task and polls it. False if nothing was runnable.
    fn run_one(&self) -> bool {
        let Some(task) = self.dequeue() else {
            return false;
        };
        let stats = &self.shared().stats;
        match task.run(&mut TokenHooks { local: self }) {
            RunOutcome::Rescheduled(task) => {
                // Woken while running (by anyone): handled here with no message.
                bump(&stats.local_wakes);
                self.passed_over.set(0);
                self.enqueue(task);
            }
            RunOutcome::Idle | RunOutcome::Completed => self.passed_over.set(0),
            RunOutcome::PassedOver(task) => {
                bump(&stats.token_misses);
                self.enqueue(task);
                let passed = self.passed_over.get() + 1;
                if passed >= self.runnable() {
                    // Every runnable task waits for tokens held elsewhere: spin politely
                    // (DragonFly spins through its idle thread here).
                    self.passed_over.set(0);
                    self.rt.inner.platform.relax();
                } else {
                    self.passed_over.set(passed);
                }
            }
        }
        debug_assert_eq!(
            self.crit.get(),
            0,
            "executor: a task returned from poll inside a critical section"
        );
        true
    }

    /// Sleeps until work arrives or the next timer is due; with `max_ns`, no
    /// longer than that either.
    fn idle(&self, max_ns: Option<u64>) {
        let platform = &*self.rt.inner.platform;
        if self.overflow_mask.get() != 0 {
            // Wakes wait for a target to drain its queue; it was signalled. Keep trying.
            platform.relax();
            return;
        }
        platform.prepare_to_sleep(self.cpu);
        if self.has_work() {
            platform.abort_sleep(self.cpu);
            return;
        }
        let timer = self.timers.borrow_mut().next_deadline();
        let limit = max_ns.map(|max| platform.now_ns().saturating_add(max));
        let deadline = match (timer, limit) {
            (Some(t), Some(l)) => Some(t.min(l)),
            (t, l) => t.or(l),
        };
        platform.sleep(self.cpu, deadline);
    }

    fn has_work(&self) -> bool {
        let shared = self.shared();
        self.runnable() != 0
            || shared.npoll.load(Ordering::SeqCst)
            || shared.ipimask.load(Ordering::SeqCst) != 0
            || shared.reqflags.load(Ordering::SeqCst) != 0
            || self.rings.has_incoming()
            || self.rt.is_shut_down()
    }

    /// Cancels everything still queued (shutdown).
    fn teardown(&self) {
        self.process_ipiq();
        while let Some(task) = self.dequeue() {
            task.cancel_now();
            bump(&self.shared().stats.tasks_completed);
        }
        let wheel = core::mem::replace(
            &mut *self.timers.borrow_mut(),
            TimerWheel::new(DEFAULT_TICK_NS, 0),
        );
        drop(wheel);
    }

    // -----------------------------------------------------------------------------------
    // Critical sections and interrupt points
    // -----------------------------------------------------------------------------------

    pub(crate) fn crit_enter(&self) {
        self.crit.set(self.crit.get() + 1);
    }

    pub(crate) fn crit_exit(&self) {
        let count = self.crit.get();
        assert!(
            count > 0,
            "executor: crit_exit without a matching crit_enter"
        );
        self.crit.set(count - 1);
        if count == 1 && self.deferred.replace(false) {
            // DragonFly's splz() on the 1 -> 0 transition.
            self.process_ipiq();
        }
    }

    pub(crate) fn crit_count(&self) -> u32 {
        self.crit.get()
    }

    /// Where an interrupt is taken: runs pending IPI and interrupt work now, or records it
    /// for the outermost `crit_exit` when inside a critical section.
    pub(crate) fn interrupt_point(&self) {
        let shared = self.shared();
        // `npoll` counts too: a sender may have set it after our last drain found its
        // message already gone. Left set, it would make every later sender skip the IPI
        // while we sleep (a lost wake-up the stress test caught). Draining clears it.
        let pending = shared.ipimask.load(Ordering::Relaxed) != 0
            || shared.reqflags.load(Ordering::Relaxed) != 0
            || shared.npoll.load(Ordering::Relaxed);
        if !pending {
            return;
        }
        if self.crit.get() > 0 {
            self.deferred.set(true);
        } else {
            self.process_ipiq();
        }
    }

    /// Drains every incoming ring, the inbox and pending interrupts, then releases `npoll`
    /// and re-checks (DragonFly `lwkt_process_ipiq`). Work runs inside a critical section.
    fn process_ipiq(&self) {
        let shared = self.shared();
        self.crit_enter();
        loop {
            let mask = shared.ipimask.swap(0, Ordering::Acquire);
            let mut bits = mask;
            while bits != 0 {
                let from = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                while let Some(msg) = self.rings.pop(from) {
                    bump(&shared.stats.ipis_received);
                    (msg.func)(msg.arg1, msg.arg2);
                }
            }
            let req = shared.reqflags.swap(0, Ordering::Acquire);
            if req & REQ_INBOX != 0 {
                loop {
                    let item = shared.inbox.lock().pop_front();
                    match item {
                        None => break,
                        Some(Inbound::Task(task)) => self.enqueue(task),
                        Some(Inbound::Ipi(msg)) => (msg.func)(msg.arg1, msg.arg2),
                    }
                }
            }
            if req & REQ_VECTOR != 0 {
                let mut pending = shared.ipending.swap(0, Ordering::Acquire);
                while pending != 0 {
                    let vector = pending.trailing_zeros() as usize;
                    pending &= pending - 1;
                    if let Some((handler, arg)) = shared.vectors[vector].get() {
                        handler(*arg);
                    }
                }
            }
            if req & REQ_INTERRUPT != 0 {
                loop {
                    let item = shared.interrupts.lock().pop_front();
                    match item {
                        None => break,
                        Some((handler, arg)) => handler(arg),
                    }
                }
            }
            shared.npoll.store(false, Ordering::SeqCst);
            fence(Ordering::SeqCst);
            if shared.ipimask.load(Ordering::SeqCst) == 0
                && shared.reqflags.load(Ordering::SeqCst) == 0
            {
                break;
            }
        }
        // Work that arrived while we drained was drained too.
        self.deferred.set(false);
        let count = self.crit.get();
        self.crit.set(count - 1);
    }

    /// DragonFly `lwkt_send_ipiq3`: inline to self; else wait (draining our own incoming
    /// queues) while the ring is half full, write the slot, and send a hardware IPI only if
    /// the target is not already draining.
    pub(crate) fn send_ipi_msg(&self, target: usize, msg: IpiMsg) {
        if target == self.cpu.index() {
            (msg.func)(msg.arg1, msg.arg2);
            return;
        }
        let stats = &self.shared().stats;
        if self.rings.outgoing(target) >= IPIQ_CAPACITY / 2 {
            bump(&stats.ipiq_full);
            // Two CPUs flooding each other both end up here and both drain: no deadlock.
            while self.rings.outgoing(target) > IPIQ_CAPACITY / 4 {
                self.process_ipiq();
                self.rt.inner.platform.relax();
            }
        }
        let mut msg = msg;
        loop {
            match self.rings.push(target, msg) {
                Ok(()) => break,
                Err(back) => {
                    msg = back;
                    self.process_ipiq();
                    self.rt.inner.platform.relax();
                }
            }
        }
        self.published(target);
    }

    /// After a push to ring `(self, target)`: mark the source and signal the target unless
    /// it is already draining (DragonFly's "IPI avoided").
    fn published(&self, target: usize) {
        let stats = &self.shared().stats;
        let dest = &self.rt.inner.cpus[target];
        dest.ipimask
            .fetch_or(1 << self.cpu.index(), Ordering::SeqCst);
        if self.rt.signal(target) {
            bump(&stats.ipis_sent);
        } else {
            bump(&stats.ipis_avoided);
        }
    }

    /// Hands a woken (or newly spawned) task to its owner `target` as a wake message.
    ///
    /// Unlike `send_ipi_msg` this never waits: when the ring is half full the task goes to
    /// an intrusive per-target overflow list (no allocation) that `flush_overflow` moves
    /// into the ring as it drains. A waker may be called with locks held, and waiting here
    /// for a target that is itself waiting for that lock would deadlock.
    pub(crate) fn send_task(&self, target: usize, task: Notified) {
        let bit = 1u64 << target;
        if self.overflow_mask.get() & bit == 0 && self.rings.outgoing(target) < IPIQ_CAPACITY / 2 {
            if let Err(_back) = self.rings.push(target, task.into_ipi()) {
                unreachable!("executor: ring below half full refused a push");
            }
            self.published(target);
        } else {
            bump(&self.shared().stats.ipiq_full);
            self.overflow.borrow_mut()[target].push_back(task);
            self.overflow_mask.set(self.overflow_mask.get() | bit);
        }
    }

    /// Moves overflowed wakes into their rings while there is room.
    fn flush_overflow(&self) {
        let mut pending = self.overflow_mask.get();
        while pending != 0 {
            let target = pending.trailing_zeros() as usize;
            pending &= pending - 1;
            let mut moved = false;
            loop {
                if self.rings.outgoing(target) >= IPIQ_CAPACITY / 2 {
                    break;
                }
                let Some(task) = self.overflow.borrow_mut()[target].pop_front() else {
                    self.overflow_mask
                        .set(self.overflow_mask.get() & !(1 << target));
                    break;
                };
                if let Err(_back) = self.rings.push(target, task.into_ipi()) {
                    unreachable!("executor: ring below half full refused a push");
                }
                moved = true;
            }
            if moved {
                self.published(target);
            }
        }
    }

    // -----------------------------------------------------------------------------------
    // Timers
    // -----------------------------------------------------------------------------------

    fn fire_timers(&self) {
        let mut expired = Vec::new();
        {
            let mut wheel = self.timers.borrow_mut();
            if wheel.is_empty() {
                return;
            }
            let now = self.rt.inner.platform.now_ns();
            if wheel.next_deadline().is_some_and(|d| d > now) {
                return;
            }
            wheel.advance(now, &mut expired);
        }
        let stats = &self.shared().stats;
        for waker in expired {
            bump(&stats.timers_fired);
            waker.wake();
        }
    }

    pub(crate) fn insert_timer(&self, deadline_ns: u64, waker: Waker) -> TimerKey {
        self.timers.borrow_mut().insert(deadline_ns, waker)
    }

    /// Refreshes the waker of a pending timer; false if it is no longer pending.
    pub(crate) fn update_timer(&self, key: TimerKey, waker: &Waker) -> bool {
        match self.timers.borrow_mut().get_mut(key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    pub(crate) fn remove_timer(&self, key: TimerKey) {
        // During teardown the wheel may be borrowed; the entry then dies with it.
        let removed = self
            .timers
            .try_borrow_mut()
            .ok()
            .and_then(|mut w| w.remove(key));
        drop(removed);
    }

    pub(crate) fn set_next_tokens(&self, tokens: Vec<TokenRef>) {
        *self.next_tokens.borrow_mut() = Some(tokens);
    }
}
