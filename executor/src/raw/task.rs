//! Task header, task storage, the raw waker vtable and the join slot.
//!
//! A task is one heap block: `TaskCell<F, S> = { Header, scheduler S, stage }`. The waker's
//! data pointer and every queue link are `NonNull<Header>`; the per-(F, S) `Vtable` in the
//! header recovers the concrete type. No allocation happens after spawn: waking, queueing
//! and sending a task across CPUs move this one pointer.
//!
//! # The state word
//!
//! ```text
//!  bit 0 SCHEDULED   a `Notified` exists (queued or in an IPI), or must be made after the
//!                    running poll returns
//!  bit 1 RUNNING     the holder of the `Notified` is polling the future
//!  bit 2 COMPLETE    the future is gone; the stage holds the output (or `Cancelled`)
//!  bit 3 CANCELLED   cancel was requested; the next run drops the future instead of polling
//!  bit 4 JOIN_INTEREST  a `RawJoin` (JoinHandle) is alive
//!  bit 5 JOIN_WAKER  the join-waker slot holds a waker the executor may read
//!  bits 6.. refcount (one per `Notified`, per `Waker`, per `RawJoin`)
//!
//!          (1) wake: CAS idle -> SCHEDULED, +1 ref, hand a Notified to S::schedule
//!   idle ---------------------------------------------------------> scheduled
//!    ^                                                                 |
//!    | (3) poll Pending, no wake meanwhile: clear RUNNING, -1 ref     | (2) Notified::run:
//!    |                                                                 v   SCHEDULED -> RUNNING
//!    +--------------------------------------------------------------- running
//!          (4) wake while running: set SCHEDULED only; after the poll   |  |
//!              `run` returns `Rescheduled(Notified)` and the executor   |  | (5) Ready or cancelled:
//!              queues it again (a wake during a poll is never lost)  <--+  v   COMPLETE, wake joiner
//!                                                                          complete
//! ```
//!
//! Invariants the unsafe code below relies on (all established in this file):
//! - I1: at most one `Notified` exists per task (only transition (1) makes one, and only
//!   when SCHEDULED was clear; transition (4) sets SCHEDULED without making one, and the
//!   running `Notified` is handed back instead). So its holder has exclusive use of `next`,
//!   `local` and, while RUNNING, of the stage.
//! - I2: the block is freed exactly once, when the refcount drops to zero.
//! - I3: the stage holds `Finished`/`Cancelled` before COMPLETE is published (Release), and
//!   after COMPLETE only the join side (or the last reference) touches it.
//! - I4: the join-waker slot is written by the join side only while JOIN_WAKER is clear and
//!   COMPLETE is clear; the executor reads it only after its own RMW set COMPLETE while
//!   JOIN_WAKER was set.

use alloc::boxed::Box;
use core::future::Future;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};
use crate::task_local::TaskLocal;

const SCHEDULED: usize = 1 << 0;
const RUNNING: usize = 1 << 1;
const COMPLETE: usize = 1 << 2;
const CANCELLED: usize = 1 << 3;
const JOIN_INTEREST: usize = 1 << 4;
const JOIN_WAKER: usize = 1 << 5;
const REF_ONE: usize = 1 << 6;
const REF_MASK: usize = !(REF_ONE - 1);

/// The error a join yields when its task was cancelled before it finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl core::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("task was cancelled")
    }
}

/// Where a woken task goes. Implemented by the executor's runtime handle (and by loom
/// models). `schedule` receives the one `Notified` of the task (invariant I1).
pub(crate) trait Schedule: Send + Sync + 'static {
    fn schedule(&self, task: Notified);

    /// A `Notified` that arrived by IPI (a remote wake or `spawn_on`); by default the same.
    fn schedule_arrived(&self, task: Notified) {
        self.schedule(task);
    }
}

/// Per-task immutable facts, fixed at spawn.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskMeta {
    /// Index of the owning CPU.
    pub owner: u32,
    /// Priority level (index into the run queues).
    pub level: u8,
}

struct Vtable {
    poll: unsafe fn(NonNull<Header>) -> bool,
    cancel_stage: unsafe fn(NonNull<Header>),
    drop_output: unsafe fn(NonNull<Header>),
    dealloc: unsafe fn(NonNull<Header>),
    schedule: unsafe fn(NonNull<Header>, Notified),
    schedule_arrived: unsafe fn(NonNull<Header>, Notified),
    read_output: unsafe fn(NonNull<Header>, *mut ()),
}

/// The first field of every task block. Fields are private to this module (see the
/// invariants in the module doc).
#[repr(C)]
pub(crate) struct Header {
    state: AtomicUsize,
    vtable: &'static Vtable,
    meta: TaskMeta,
    /// Run-queue link; used only by the holder of the task's `Notified` (I1).
    next: UnsafeCell<Option<NonNull<Header>>>,
    /// Executor-private per-task data (token set); used only by the `Notified` holder (I1).
    local: UnsafeCell<TaskLocal>,
    /// Join waker; guarded by JOIN_WAKER / COMPLETE (I4).
    join_waker: UnsafeCell<Option<Waker>>,
}

enum Stage<F: Future> {
    Running(F),
    Finished(F::Output),
    Cancelled,
    Consumed,
}

#[repr(C)]
struct TaskCell<F: Future, S> {
    header: Header,
    scheduler: S,
    stage: UnsafeCell<Stage<F>>,
}

// ---------------------------------------------------------------------------------------
// Spawning
// ---------------------------------------------------------------------------------------

/// Allocates a task. Returns its one `Notified` (not yet queued) and its join side.
/// The state starts SCHEDULED with two references (the `Notified` and the `RawJoin`).
pub(crate) fn spawn<F, S>(
    future: F,
    scheduler: S,
    meta: TaskMeta,
    local: TaskLocal,
) -> (Notified, RawJoin<F::Output>)
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    let cell = Box::new(TaskCell {
        header: Header {
            state: AtomicUsize::new(SCHEDULED | JOIN_INTEREST | (2 * REF_ONE)),
            vtable: vtable_for::<F, S>(),
            meta,
            next: UnsafeCell::new(None),
            local: UnsafeCell::new(local),
            join_waker: UnsafeCell::new(None),
        },
        scheduler,
        stage: UnsafeCell::new(Stage::Running(future)),
    });
    // `TaskCell` is repr(C) with the header first, so the block pointer is a header pointer.
    let header = NonNull::from(Box::leak(cell)).cast::<Header>();
    (
        Notified { header },
        RawJoin {
            header,
            _output: PhantomData,
        },
    )
}

fn vtable_for<F, S>() -> &'static Vtable
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
    S: Schedule,
{
    trait HasVtable {
        const VTABLE: Vtable;
    }
    struct Pair<F, S>(PhantomData<(F, S)>);
    impl<F, S> HasVtable for Pair<F, S>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
        S: Schedule,
    {
        const VTABLE: Vtable = Vtable {
            poll: poll_impl::<F, S>,
            cancel_stage: cancel_stage_impl::<F, S>,
            drop_output: drop_output_impl::<F, S>,
            dealloc: dealloc_impl::<F, S>,
            schedule: schedule_impl::<F, S>,
            schedule_arrived: schedule_arrived_impl::<F, S>,
            read_output: read_output_impl::<F, S>,
        };
    }
    &<Pair<F, S> as HasVtable>::VTABLE
}

/// Typed view of the block behind a header pointer.
///
/// # Safety
/// `header` must point at a live `TaskCell<F, S>` (the vtable it was built with).
unsafe fn cell<'a, F: Future, S>(header: NonNull<Header>) -> &'a TaskCell<F, S> {
    // SAFETY: the caller guarantees the block is a live `TaskCell<F, S>`; the header is its
    // first field of a repr(C) struct, so the cast recovers the original allocation.
    unsafe { header.cast::<TaskCell<F, S>>().as_ref() }
}

/// Polls the future once. Returns true when it finished (the output is stored).
///
/// # Safety
/// The caller holds the task's `Notified` and has set RUNNING (I1), and the block is live.
unsafe fn poll_impl<F, S>(header: NonNull<Header>) -> bool
where
    F: Future + Send + 'static,
    S: Schedule,
{
    // SAFETY: 1. the block is live (caller). 2. its vtable was built for (F, S).
    let cell = unsafe { cell::<F, S>(header) };
    // The waker borrows our reference; ManuallyDrop keeps it from releasing one.
    let waker = ManuallyDrop::new(
        // SAFETY: the data pointer is a live task header and the vtable is ours; the
        // waker does not outlive this call (ManuallyDrop, dropped by nobody), so it needs
        // no reference of its own.
        unsafe { Waker::from_raw(RawWaker::new(header.as_ptr() as *const (), &WAKER_VTABLE)) },
    );
    let mut cx = Context::from_waker(&waker);
    cell.stage.with_mut(|stage| {
        // SAFETY:
        // 1. RUNNING is set by the caller and only the `Notified` holder sets it (I1), so
        //    nothing else reads or writes the stage during this poll.
        // 2. The future is never moved out of the heap block while in `Running`, so the
        //    pin projection is sound; it is dropped in place.
        let stage = unsafe { &mut *stage };
        let Stage::Running(future) = stage else {
            panic!("executor: polled a task whose future is gone (internal bug)");
        };
        // SAFETY: see 2 above: the future lives in the pinned heap block until dropped.
        let future = unsafe { Pin::new_unchecked(future) };
        match future.poll(&mut cx) {
            Poll::Ready(output) => {
                *stage = Stage::Finished(output);
                true
            }
            Poll::Pending => false,
        }
    })
}

/// # Safety
/// As for `poll_impl`: exclusive stage access via RUNNING (I1).
unsafe fn cancel_stage_impl<F: Future, S>(header: NonNull<Header>) {
    // SAFETY: the block is live and typed (F, S) (caller).
    let cell = unsafe { cell::<F, S>(header) };
    cell.stage.with_mut(|stage| {
        // SAFETY: RUNNING held by the caller: exclusive access (I1).
        unsafe { *stage = Stage::Cancelled };
    });
}

/// # Safety
/// COMPLETE is set and the caller is the one party entitled to drop the output (I3).
unsafe fn drop_output_impl<F: Future, S>(header: NonNull<Header>) {
    // SAFETY: the block is live and typed (F, S) (caller).
    let cell = unsafe { cell::<F, S>(header) };
    cell.stage.with_mut(|stage| {
        // SAFETY: after COMPLETE only the entitled party touches the stage (I3).
        unsafe { *stage = Stage::Consumed };
    });
}

/// # Safety
/// The refcount reached zero (I2): no other pointer to the block is used again.
unsafe fn dealloc_impl<F: Future, S>(header: NonNull<Header>) {
    // SAFETY: the block came from `Box::leak` in `spawn` with this exact type, and the
    // refcount hit zero so this is the last use (I2).
    drop(unsafe { Box::from_raw(header.cast::<TaskCell<F, S>>().as_ptr()) });
}

/// # Safety
/// The block is live and typed (F, S).
unsafe fn schedule_impl<F: Future, S: Schedule>(header: NonNull<Header>, task: Notified) {
    // SAFETY: the block is live (the `Notified` passed in holds a reference) and typed.
    let cell = unsafe { cell::<F, S>(header) };
    cell.scheduler.schedule(task);
}

/// # Safety
/// The block is live and typed (F, S).
unsafe fn schedule_arrived_impl<F: Future, S: Schedule>(header: NonNull<Header>, task: Notified) {
    // SAFETY: the block is live (the `Notified` passed in holds a reference) and typed.
    let cell = unsafe { cell::<F, S>(header) };
    cell.scheduler.schedule_arrived(task);
}

/// # Safety
/// COMPLETE is set, the caller is the join side, and `dst` points at a
/// `Poll<Result<F::Output, Cancelled>>`.
unsafe fn read_output_impl<F: Future, S>(header: NonNull<Header>, dst: *mut ()) {
    // SAFETY: the block is live and typed (F, S) (caller).
    let cell = unsafe { cell::<F, S>(header) };
    let taken = cell.stage.with_mut(|stage| {
        // SAFETY: after COMPLETE only the join side touches the stage (I3).
        unsafe { core::mem::replace(&mut *stage, Stage::Consumed) }
    });
    let result = match taken {
        Stage::Finished(output) => Ok(output),
        Stage::Cancelled => Err(Cancelled),
        Stage::Running(_) | Stage::Consumed => {
            panic!("JoinHandle polled again after it returned Ready")
        }
    };
    // SAFETY: the caller guarantees `dst` has this type (`RawJoin<F::Output>` was built for
    // this task by `spawn`).
    unsafe { *dst.cast::<Poll<Result<F::Output, Cancelled>>>() = Poll::Ready(result) };
}

// ---------------------------------------------------------------------------------------
// References and waking
// ---------------------------------------------------------------------------------------

fn header_ref<'a>(header: NonNull<Header>) -> &'a Header {
    // SAFETY: every caller holds a reference count on the block (a Notified, Waker or
    // RawJoin), so the header is live for as long as the caller uses it.
    unsafe { header.as_ref() }
}

fn ref_inc(header: NonNull<Header>) {
    let prev = header_ref(header)
        .state
        .fetch_add(REF_ONE, Ordering::Relaxed);
    // Like Arc: a refcount this large means leaked wakers; stop before it wraps.
    assert!(prev < (usize::MAX >> 1), "executor: task refcount overflow");
}

/// Drops one reference; frees the block at zero (I2).
fn ref_dec(header: NonNull<Header>) {
    let prev = header_ref(header)
        .state
        .fetch_sub(REF_ONE, Ordering::AcqRel);
    debug_assert!(
        prev & REF_MASK >= REF_ONE,
        "executor: task refcount underflow"
    );
    if prev & REF_MASK == REF_ONE {
        let dealloc = header_ref(header).vtable.dealloc;
        // SAFETY: our reference was the last (I2): nobody else can reach the block.
        unsafe { dealloc(header) };
    }
}

/// Transition (1) or (4). Never allocates, never locks; the scheduler routes the Notified.
fn wake_by_ref(header: NonNull<Header>) {
    let h = header_ref(header);
    let mut cur = h.state.load(Ordering::Acquire);
    loop {
        if cur & (COMPLETE | SCHEDULED) != 0 {
            return;
        }
        let (next, make_notified) = if cur & RUNNING != 0 {
            (cur | SCHEDULED, false)
        } else {
            ((cur + REF_ONE) | SCHEDULED, true)
        };
        match h
            .state
            .compare_exchange_weak(cur, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => {
                if make_notified {
                    let schedule = h.vtable.schedule;
                    // SAFETY: the block is live (we hold a reference plus the new one) and the
                    // vtable matches it. The Notified is the only one (I1: SCHEDULED was clear).
                    unsafe { schedule(header, Notified { header }) };
                }
                return;
            }
            Err(actual) => cur = actual,
        }
    }
}

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

fn waker_header(data: *const ()) -> NonNull<Header> {
    // The data pointer of our wakers is always a non-null task header pointer.
    NonNull::new(data as *mut Header).expect("executor: null task waker")
}

fn waker_clone(data: *const ()) -> RawWaker {
    ref_inc(waker_header(data));
    RawWaker::new(data, &WAKER_VTABLE)
}

fn waker_wake(data: *const ()) {
    let header = waker_header(data);
    wake_by_ref(header);
    ref_dec(header);
}

fn waker_wake_by_ref(data: *const ()) {
    wake_by_ref(waker_header(data));
}

fn waker_drop(data: *const ()) {
    ref_dec(waker_header(data));
}

// ---------------------------------------------------------------------------------------
// Notified: the right to queue and run a task
// ---------------------------------------------------------------------------------------

/// The unique handle of a scheduled task (I1). Owning it means owning its queue link,
/// its `TaskLocal`, and the right to poll it. Dropping it without running releases its
/// reference only (the future stays until the last reference goes).
pub(crate) struct Notified {
    header: NonNull<Header>,
}

// SAFETY: a Notified is a counted reference to a task whose future and output are Send
// (bounds on `spawn`); the header's shared fields are atomics, and the unsynchronised ones
// are only used by the unique Notified holder (I1), which moves with it.
unsafe impl Send for Notified {}

/// What `Notified::run` did.
pub(crate) enum RunOutcome {
    /// Woken during the poll: the caller must queue it again.
    Rescheduled(Notified),
    /// The hooks refused to poll (tokens busy): still scheduled, queue it again.
    PassedOver(Notified),
    /// Pending and not woken: it waits for a waker.
    Idle,
    /// Finished or cancelled; the joiner was woken.
    Completed,
}

/// Called around each poll by `Notified::run` (the executor's token acquisition).
pub(crate) trait RunHooks {
    /// Return false to pass the task over without polling it.
    fn before_poll(&mut self, local: &mut TaskLocal) -> bool;
    fn after_poll(&mut self, local: &mut TaskLocal);
    /// The task finished or was cancelled; called before its joiner is woken.
    fn completed(&mut self);
}

impl Notified {
    pub(crate) fn meta(&self) -> TaskMeta {
        header_ref(self.header).meta
    }

    /// Transitions (2) then (3), (4) or (5).
    pub(crate) fn run(self, hooks: &mut impl RunHooks) -> RunOutcome {
        let header = self.header;
        let h = header_ref(header);
        let hooked = h.state.load(Ordering::Acquire) & CANCELLED == 0;
        if hooked {
            let go = h.local.with_mut(|local| {
                // SAFETY: we hold the Notified, so nobody else touches `local` (I1).
                hooks.before_poll(unsafe { &mut *local })
            });
            if !go {
                return RunOutcome::PassedOver(self);
            }
        }
        // (2): SCHEDULED -> RUNNING.
        let prev = h.state.fetch_xor(SCHEDULED | RUNNING, Ordering::AcqRel);
        debug_assert!(
            prev & SCHEDULED != 0 && prev & (RUNNING | COMPLETE) == 0,
            "executor: bad state {prev:#x}"
        );
        let finished = if prev & CANCELLED != 0 {
            // SAFETY: RUNNING is ours (I1).
            unsafe { (h.vtable.cancel_stage)(header) };
            if hooked {
                // Cancelled between the check and the transition: release what we took.
                h.local.with_mut(|local| {
                    // SAFETY: still the Notified holder (I1).
                    hooks.after_poll(unsafe { &mut *local })
                });
            }
            true
        } else {
            // SAFETY: RUNNING is ours (I1) and the block is live (we hold a reference).
            let ready = unsafe { (h.vtable.poll)(header) };
            h.local.with_mut(|local| {
                // SAFETY: still the Notified holder (I1).
                hooks.after_poll(unsafe { &mut *local })
            });
            ready
        };
        if finished {
            hooks.completed();
            self.complete();
            return RunOutcome::Completed;
        }
        // (3) or (4).
        let mut cur = h.state.load(Ordering::Acquire);
        loop {
            if cur & SCHEDULED != 0 {
                // (4): a wake (or cancel) arrived during the poll; we keep the Notified.
                match h.state.compare_exchange_weak(
                    cur,
                    cur & !RUNNING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return RunOutcome::Rescheduled(self),
                    Err(actual) => cur = actual,
                }
            } else {
                match h.state.compare_exchange_weak(
                    cur,
                    cur & !RUNNING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        // Our reference goes with the Notified.
                        drop(self);
                        return RunOutcome::Idle;
                    }
                    Err(actual) => cur = actual,
                }
            }
        }
    }

    /// Transition (5). Called with RUNNING held and the stage already final.
    fn complete(self) {
        let header = self.header;
        let h = header_ref(header);
        // Release publishes the stage (I3).
        let prev = h.state.fetch_xor(RUNNING | COMPLETE, Ordering::AcqRel);
        if prev & JOIN_INTEREST == 0 {
            // SAFETY: COMPLETE is set and no join side exists, so we are the one party
            // entitled to drop the output (I3).
            unsafe { (h.vtable.drop_output)(header) };
        } else if prev & JOIN_WAKER != 0 {
            h.join_waker.with(|slot| {
                // SAFETY: our RMW set COMPLETE while JOIN_WAKER was set, so the join side
                // will not write the slot again (I4).
                if let Some(waker) = unsafe { &*slot } {
                    waker.wake_by_ref();
                }
            });
        }
        drop(self);
    }

    /// Drops the future without polling it (shutdown): joiners see `Err(Cancelled)`.
    pub(crate) fn cancel_now(self) {
        let h = header_ref(self.header);
        h.state.fetch_or(CANCELLED, Ordering::AcqRel);
        // A cancelled run drops the future without consulting the hooks.
        let _ = self.run(&mut NoHooks);
    }

    /// Turns this Notified into an IPI message that, run on the target CPU, hands it to
    /// the task's scheduler there. The message must be delivered exactly once.
    pub(crate) fn into_ipi(self) -> crate::IpiMsg {
        let me = ManuallyDrop::new(self);
        crate::IpiMsg {
            func: schedule_from_ipi,
            arg1: me.header.as_ptr() as usize,
            arg2: 0,
        }
    }

    /// The run-queue link (used by `raw::queue`).
    pub(super) fn set_next(&mut self, next: Option<NonNull<Header>>) {
        header_ref(self.header).next.with_mut(|slot| {
            // SAFETY: we hold the Notified: exclusive use of `next` (I1).
            unsafe { *slot = next };
        });
    }

    pub(super) fn next(&self) -> Option<NonNull<Header>> {
        header_ref(self.header).next.with(|slot| {
            // SAFETY: we hold the Notified: exclusive use of `next` (I1).
            unsafe { *slot }
        })
    }

    pub(super) fn into_raw(self) -> NonNull<Header> {
        ManuallyDrop::new(self).header
    }

    /// # Safety
    /// `header` came from `into_raw` of a Notified that was not rebuilt since.
    pub(super) unsafe fn from_raw(header: NonNull<Header>) -> Self {
        Notified { header }
    }
}

impl Drop for Notified {
    fn drop(&mut self) {
        ref_dec(self.header);
    }
}

struct NoHooks;

impl RunHooks for NoHooks {
    fn before_poll(&mut self, _: &mut TaskLocal) -> bool {
        true
    }
    fn after_poll(&mut self, _: &mut TaskLocal) {}
    fn completed(&mut self) {}
}

/// The IPI function behind `Notified::into_ipi`. Private: the only way to get a pointer to
/// it is `into_ipi`, whose message the executor moves into one ring slot and runs once.
fn schedule_from_ipi(arg1: usize, _arg2: usize) {
    let header = NonNull::new(arg1 as *mut Header).expect("executor: null task in wake IPI");
    // SAFETY: `arg1` was produced by `into_ipi` (this fn is private to that path) and each
    // IPI message is executed exactly once, so this rebuilds that unique Notified once.
    let task = unsafe { Notified::from_raw(header) };
    let schedule = header_ref(header).vtable.schedule_arrived;
    // SAFETY: the block is live (the Notified holds a reference) and the vtable matches.
    unsafe { schedule(header, task) };
}

// ---------------------------------------------------------------------------------------
// The join side
// ---------------------------------------------------------------------------------------

/// The join side of a task: one reference plus JOIN_INTEREST.
pub(crate) struct RawJoin<T> {
    header: NonNull<Header>,
    _output: PhantomData<T>,
}

// SAFETY: the join side only reads the output (T: Send) after COMPLETE (I3) and touches
// the join-waker slot under the JOIN_WAKER protocol (I4); everything else is atomic.
unsafe impl<T: Send> Send for RawJoin<T> {}
// SAFETY: `&RawJoin` only exposes `cancel` and `is_finished`, which are atomic operations.
unsafe impl<T: Send> Sync for RawJoin<T> {}

impl<T> RawJoin<T> {
    pub(crate) fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, Cancelled>> {
        if !self.can_read_output(cx.waker()) {
            return Poll::Pending;
        }
        let mut out: Poll<Result<T, Cancelled>> = Poll::Pending;
        let h = header_ref(self.header);
        // SAFETY: COMPLETE was observed with Acquire by `can_read_output`, we are the join
        // side, and `out` has the type this RawJoin was created for (in `spawn`).
        unsafe {
            (h.vtable.read_output)(
                self.header,
                (&mut out as *mut Poll<Result<T, Cancelled>>).cast(),
            )
        };
        out
    }

    /// The JOIN_WAKER protocol (I4). True once the output can be read.
    fn can_read_output(&self, waker: &Waker) -> bool {
        let h = header_ref(self.header);
        let mut cur = h.state.load(Ordering::Acquire);
        if cur & COMPLETE != 0 {
            return true;
        }
        if cur & JOIN_WAKER != 0 {
            let same = h.join_waker.with(|slot| {
                // SAFETY: reading while JOIN_WAKER is set is fine: only we write the slot,
                // and the executor only reads it (I4).
                unsafe { (*slot).as_ref().is_some_and(|w| w.will_wake(waker)) }
            });
            if same {
                return false;
            }
            // Take the slot back before writing it.
            loop {
                if cur & COMPLETE != 0 {
                    return true;
                }
                match h.state.compare_exchange_weak(
                    cur,
                    cur & !JOIN_WAKER,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
        }
        h.join_waker.with_mut(|slot| {
            // SAFETY: JOIN_WAKER is clear and COMPLETE was clear: the executor does not read
            // the slot now and will not until we set JOIN_WAKER again (I4).
            unsafe { *slot = Some(waker.clone()) };
        });
        let mut cur = h.state.load(Ordering::Acquire);
        loop {
            if cur & COMPLETE != 0 {
                return true;
            }
            match h.state.compare_exchange_weak(
                cur,
                cur | JOIN_WAKER,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return false,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Requests cancellation and wakes the task so its owner drops the future.
    pub(crate) fn cancel(&self) {
        let h = header_ref(self.header);
        let prev = h.state.fetch_or(CANCELLED, Ordering::AcqRel);
        if prev & (COMPLETE | CANCELLED) == 0 {
            wake_by_ref(self.header);
        }
    }

    pub(crate) fn is_finished(&self) -> bool {
        header_ref(self.header).state.load(Ordering::Acquire) & COMPLETE != 0
    }

    pub(crate) fn owner(&self) -> u32 {
        header_ref(self.header).meta.owner
    }
}

impl<T> Drop for RawJoin<T> {
    fn drop(&mut self) {
        let h = header_ref(self.header);
        let prev = h.state.fetch_and(!JOIN_INTEREST, Ordering::AcqRel);
        if prev & COMPLETE != 0 {
            // SAFETY: COMPLETE is set and we cleared JOIN_INTEREST after it, so the executor
            // left the output to us (I3).
            unsafe { (h.vtable.drop_output)(self.header) };
        }
        ref_dec(self.header);
    }
}
