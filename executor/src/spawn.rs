//! The task API used everywhere: `spawn*`, `JoinHandle`, IPI sends, critical sections.
//!
//! All of these find the current CPU through the platform's context hook (see
//! `set_context_hook`); functions that need a CPU say so under `# Panics` or return
//! `SpawnError::NoCurrentCpu`.

use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::raw::task::{Cancelled, RawJoin};
use crate::runtime::{LocalCpu, with_local};
use crate::token::TokenRef;
use crate::{CpuId, IpiMsg, Priority};

/// Why a spawn (or an IPI send) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// The target CPU does not exist on this machine.
    NoSuchCpu,
    /// Called from a thread that is not one of the machine's CPUs.
    NoCurrentCpu,
    /// The machine is shutting down.
    ShuttingDown,
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SpawnError::NoSuchCpu => "no such CPU",
            SpawnError::NoCurrentCpu => "not called on an executor CPU",
            SpawnError::ShuttingDown => "the machine is shutting down",
        })
    }
}

/// Why `try_ipi_send` was refused.
pub type IpiError = SpawnError;

/// Owned permission to wait for a task's output.
///
/// Awaiting it yields `Ok(output)`, or `Err(Cancelled)` if the task was cancelled (by
/// `cancel` or by machine shutdown) before it finished. Dropping it detaches the task: it
/// keeps running and its output is dropped.
#[derive(Debug)]
pub struct JoinHandle<T> {
    raw: RawJoin<T>,
}

impl<T> core::fmt::Debug for RawJoin<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RawJoin")
            .field("owner", &self.owner())
            .finish_non_exhaustive()
    }
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(raw: RawJoin<T>) -> Self {
        Self { raw }
    }

    /// Requests cancellation: the owning CPU drops the future instead of polling it again
    /// (at its next turn; a running poll finishes first). No effect once it finished.
    ///
    /// # Context
    /// Any thread; never blocks.
    pub fn cancel(&self) {
        self.raw.cancel();
    }

    /// Same as `cancel` (tokio's name).
    pub fn abort(&self) {
        self.cancel();
    }

    /// True once the task finished or was cancelled (its output, if any, is ready).
    pub fn is_finished(&self) -> bool {
        self.raw.is_finished()
    }

    /// The CPU that owns the task.
    pub fn cpu(&self) -> CpuId {
        CpuId(self.raw.owner())
    }
}

// The handle never pins the output in place; it only holds a pointer to the task.
impl<T> Unpin for JoinHandle<T> {}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, Cancelled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.raw.poll_join(cx)
    }
}

/// Spawn options: priority, target CPU, token set.
#[derive(Debug, Default, Clone)]
pub struct TaskBuilder {
    priority: Priority,
    cpu: Option<CpuId>,
    tokens: Vec<TokenRef>,
}

impl TaskBuilder {
    /// Kernel priority, current CPU, no tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the priority level.
    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    /// Spawns on `cpu` instead of the current CPU.
    pub fn cpu(mut self, cpu: CpuId) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// Adds a token to the task's token set (held during each poll).
    pub fn token(mut self, token: TokenRef) -> Self {
        self.tokens.push(token);
        self
    }

    /// Adds several tokens.
    pub fn tokens(mut self, tokens: impl IntoIterator<Item = TokenRef>) -> Self {
        self.tokens.extend(tokens);
        self
    }

    /// Creates the task. It never runs inline: it is queued on its CPU (through the IPI
    /// queue when that is another CPU).
    ///
    /// # Errors
    /// `NoSuchCpu` for a CPU the machine does not have; `NoCurrentCpu` off-CPU (use
    /// `Runtime::spawn_on` or `hosted::Machine::spawn_on` there); `ShuttingDown`.
    ///
    /// # Context
    /// On a CPU; never blocks (may drain our IPI queues if the target's is half full).
    pub fn spawn<F>(self, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let mut future = Some(future);
        with_local(move |local| {
            let local = local.ok_or(SpawnError::NoCurrentCpu)?;
            let cpu = self.cpu.unwrap_or(local.cpu());
            local.runtime().spawn_task(
                Some(local),
                cpu,
                self.priority,
                self.tokens,
                future.take().expect("once"),
            )
        })
    }
}

fn on_cpu<R>(what: &str, f: impl FnOnce(&LocalCpu) -> R) -> R {
    with_local(|local| match local {
        Some(local) => f(local),
        None => panic!("executor::{what} called outside an executor CPU"),
    })
}

/// Spawns `future` on the current CPU at `Priority::Kernel`.
///
/// # Panics
/// Off-CPU or during shutdown (use `TaskBuilder::spawn` for an error value).
///
/// # Context
/// On a CPU (a task, an IPI function, an interrupt handler). Never blocks; allocates the
/// task block once; the task is queued, never run inline.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    TaskBuilder::new()
        .spawn(future)
        .unwrap_or_else(|e| panic!("executor::spawn: {e}"))
}

/// Spawns `future` on the current CPU at `priority`.
///
/// # Panics
/// Off-CPU or during shutdown.
///
/// # Context
/// As `spawn`.
pub fn spawn_with<F>(priority: Priority, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    TaskBuilder::new()
        .priority(priority)
        .spawn(future)
        .unwrap_or_else(|e| panic!("executor::spawn_with: {e}"))
}

/// Spawns `future` on the current CPU with a token set: the executor holds all of
/// `tokens` during each poll (see `token`).
///
/// # Panics
/// Off-CPU or during shutdown.
///
/// # Context
/// As `spawn`.
pub fn spawn_with_tokens<F>(tokens: &[TokenRef], future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    TaskBuilder::new()
        .tokens(tokens.iter().cloned())
        .spawn(future)
        .unwrap_or_else(|e| panic!("executor::spawn_with_tokens: {e}"))
}

/// Spawns `future` on `cpu` (DragonFly's remote `lwkt_schedule`: the new task travels
/// through the IPI queue).
///
/// # Errors
/// `NoSuchCpu`, `NoCurrentCpu`, `ShuttingDown` (see `TaskBuilder::spawn`).
///
/// # Context
/// On a CPU. Never blocks: when the ring to `cpu` is half full the new task waits on an
/// intrusive overflow list and is sent as the ring drains.
pub fn spawn_on<F>(cpu: CpuId, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    TaskBuilder::new().cpu(cpu).spawn(future)
}

/// The CPU the caller runs on.
///
/// # Panics
/// Off-CPU (use `current_cpu_checked`).
pub fn current_cpu() -> CpuId {
    on_cpu("current_cpu", LocalCpu::cpu)
}

/// The CPU the caller runs on, or `None` off-CPU.
pub fn current_cpu_checked() -> Option<CpuId> {
    with_local(|l| l.map(LocalCpu::cpu))
}

/// Number of CPUs of the current machine.
///
/// # Panics
/// Off-CPU.
pub fn cpu_count() -> usize {
    on_cpu("cpu_count", |l| l.runtime().cpu_count())
}

/// DragonFly `lwkt_send_ipiq`: runs `msg.func(msg.arg1, msg.arg2)` on `target` inside its
/// executor loop; inline when `target` is the current CPU. FIFO per (sender, target).
///
/// # Panics
/// Off-CPU or for a CPU that does not exist (use `try_ipi_send`).
///
/// # Context
/// On a CPU. Never allocates. If the ring to `target` is half full, drains this CPU's own
/// incoming rings until it is below a quarter (so two CPUs flooding each other progress).
pub fn ipi_send(target: CpuId, msg: IpiMsg) {
    try_ipi_send(target, msg).unwrap_or_else(|e| panic!("executor::ipi_send to {target}: {e}"));
}

/// `ipi_send` with an error value instead of a panic.
///
/// # Errors
/// `NoSuchCpu` for a CPU the machine does not have; `NoCurrentCpu` off-CPU.
pub fn try_ipi_send(target: CpuId, msg: IpiMsg) -> Result<(), IpiError> {
    let mut msg = Some(msg);
    with_local(|local| {
        let local = local.ok_or(SpawnError::NoCurrentCpu)?;
        if target.index() >= local.runtime().cpu_count() {
            return Err(SpawnError::NoSuchCpu);
        }
        local.send_ipi_msg(target.index(), msg.take().expect("once"));
        Ok(())
    })
}

/// Enters a critical section (DragonFly `crit_enter`): IPI and interrupt work arriving
/// until the matching outermost `crit_exit` is deferred to that exit. Nestable.
///
/// # Panics
/// Off-CPU.
///
/// # Context
/// On a CPU. Enter and exit within one poll: a task must not return from `poll` inside a
/// critical section (debug assertion).
pub fn crit_enter() {
    on_cpu("crit_enter", LocalCpu::crit_enter);
}

/// Leaves a critical section; the outermost exit runs deferred work.
///
/// # Panics
/// Off-CPU, or without a matching `crit_enter`.
///
/// # Context
/// On a CPU. The outermost exit may run IPI functions and interrupt handlers inline.
pub fn crit_exit() {
    on_cpu("crit_exit", LocalCpu::crit_exit);
}

/// True inside a critical section.
pub fn in_critical_section() -> bool {
    with_local(|l| l.is_some_and(|l| l.crit_count() > 0))
}

/// A critical section as a guard: `crit_enter` now, `crit_exit` on drop.
#[derive(Debug)]
pub struct CritSection {
    _not_send: core::marker::PhantomData<*const ()>,
}

/// Enters a critical section left when the guard drops. Hold it only within one poll.
///
/// # Panics
/// Off-CPU.
pub fn crit_section() -> CritSection {
    crit_enter();
    CritSection {
        _not_send: core::marker::PhantomData,
    }
}

impl Drop for CritSection {
    fn drop(&mut self) {
        crit_exit();
    }
}

/// Where an interrupt may be taken: runs pending IPI and interrupt work now, or (inside a
/// critical section) defers it to the outermost `crit_exit`. The kernel calls this from its
/// IPI vector; on the hosted platform a task calls it to be "interrupted" mid-poll. The run
/// loop calls it between polls. Off-CPU it does nothing.
pub fn interrupt_point() {
    with_local(|l| {
        if let Some(l) = l {
            l.interrupt_point();
        }
    });
}

/// Replaces the running task's token set from its next poll on (the current poll keeps
/// what it holds; everything is released when it returns, as always).
///
/// # Panics
/// Off-CPU.
///
/// # Context
/// Inside a task's poll (from an IPI function it would apply to the next task polled).
pub fn set_task_tokens(tokens: &[TokenRef]) {
    on_cpu("set_task_tokens", |l| l.set_next_tokens(tokens.to_vec()));
}

/// Yields once: the task goes to the tail of its priority level (round-robin).
///
/// # Cancel safety
/// Cancel safe: it holds nothing.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Future of `yield_now`.
#[derive(Debug)]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
