// SPDX-License-Identifier: MIT OR Apache-2.0
//! A single-threaded async runtime over the ring.
//!
//! Every operation is an [`Op`] future keyed by a fresh `user_data`. The executor polls
//! ready tasks; when all are waiting it makes one `RingEnter` that submits everything
//! queued and waits for at least one completion, then wakes the futures whose completions
//! arrived. Entries that find the SQ full wait in a backlog and are pushed as slots free
//! up, so nothing is lost. Buffers are owned (`Vec<u8>` in, `Vec<u8>` out); an `Op`
//! dropped before its completion asks the kernel to cancel, and the ring keeps the buffer
//! until the completion arrives.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::rc::Rc;
use alloc::sync::Arc;
use alloc::task::Wake;
use alloc::vec::Vec;
use core::cell::{Cell, RefCell};
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll, Waker};

use abi::{Errno, Opcode, Sqe};

use crate::io::IoError;
use crate::ring::{Keep, OwnedSqe, PushError, Ring, RingOptions};

/// A completion as the runtime hands it back: the result and the buffer, if any.
type Done = (i32, Option<Keep>);

enum Slot {
    /// Submitted (or in the backlog); the waker of the future waiting for it.
    Waiting(Option<Waker>),
    /// Completed, not yet taken by its future.
    Done(Done),
    /// Its future was dropped; the completion is discarded.
    Abandoned,
}

struct Inner {
    ring: RefCell<Ring>,
    slots: RefCell<BTreeMap<u64, Slot>>,
    backlog: RefCell<VecDeque<OwnedSqe>>,
    next_user_data: Cell<u64>,
    tasks: RefCell<Vec<Task>>,
    spawned: RefCell<Vec<Task>>,
}

struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    flag: Arc<Flag>,
}

/// A wake flag: set by the waker, cleared by the executor before polling.
struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::Release);
    }
}

/// The runtime: a cheap handle (clone it into tasks).
#[derive(Clone)]
pub struct Runtime(Rc<Inner>);

impl Runtime {
    /// A runtime over a new ring.
    ///
    /// # Errors
    /// From `RingSetup`.
    pub fn new(options: RingOptions) -> Result<Runtime, Errno> {
        Ring::setup(options).map(Runtime::with_ring)
    }

    /// A runtime over an existing ring.
    pub fn with_ring(ring: Ring) -> Runtime {
        Runtime(Rc::new(Inner {
            ring: RefCell::new(ring),
            slots: RefCell::new(BTreeMap::new()),
            backlog: RefCell::new(VecDeque::new()),
            next_user_data: Cell::new(1),
            tasks: RefCell::new(Vec::new()),
            spawned: RefCell::new(Vec::new()),
        }))
    }

    /// A fresh `user_data`.
    fn next_id(&self) -> u64 {
        let id = self.0.next_user_data.get();
        self.0.next_user_data.set(id.wrapping_add(1).max(1));
        id
    }

    /// Operations submitted whose completion has not been taken.
    pub fn in_flight(&self) -> usize {
        self.0.slots.borrow().len()
    }

    /// Submits `entry` (its `user_data` is replaced by a fresh one) and returns the future
    /// of its completion.
    pub fn submit(&self, mut entry: OwnedSqe) -> Op {
        let id = self.next_id();
        entry.set_user_data(id);
        self.0.slots.borrow_mut().insert(id, Slot::Waiting(None));
        self.0.backlog.borrow_mut().push_back(entry);
        self.flush_backlog();
        Op {
            rt: self.clone(),
            user_data: id,
        }
    }

    /// Submits an entry that names no memory (`Nop`, `Timeout`, `Cancel`, ...).
    ///
    /// # Errors
    /// `EFAULT` if the entry names memory: use an owned constructor instead.
    pub fn submit_scalar(&self, sqe: Sqe) -> Result<Op, Errno> {
        let entry = OwnedSqe::scalar(sqe).map_err(|_| Errno::Fault)?;
        Ok(self.submit(entry))
    }

    /// Moves backlog entries into the SQ while there is room.
    fn flush_backlog(&self) {
        let mut backlog = self.0.backlog.borrow_mut();
        let mut ring = self.0.ring.borrow_mut();
        while let Some(entry) = backlog.pop_front() {
            match ring.try_push_owned(entry) {
                Ok(()) => {}
                Err((PushError::Full, entry)) => {
                    backlog.push_front(entry);
                    break;
                }
                Err((PushError::NamesMemory, entry)) => {
                    // Cannot happen: user_data values are fresh. Complete it with EINVAL.
                    debug_assert!(false, "duplicate user_data {}", entry.user_data());
                    let done = (Errno::Inval.to_syscall_result() as i32, None);
                    self.complete(entry.user_data(), done);
                }
            }
        }
    }

    fn complete(&self, user_data: u64, done: Done) {
        let mut slots = self.0.slots.borrow_mut();
        match slots.remove(&user_data) {
            Some(Slot::Waiting(waker)) => {
                slots.insert(user_data, Slot::Done(done));
                if let Some(w) = waker {
                    w.wake();
                }
            }
            Some(Slot::Abandoned) | None => {} // dropped future, or an untracked entry
            Some(Slot::Done(old)) => {
                slots.insert(user_data, Slot::Done(old));
            }
        }
    }

    /// Reaps every available completion and wakes their futures. Returns how many.
    pub fn reap(&self) -> usize {
        let mut n = 0;
        loop {
            let next = self.0.ring.borrow_mut().try_reap();
            let Some((cqe, keep)) = next else { break };
            n += 1;
            self.complete(cqe.user_data, (cqe.res, keep));
        }
        if n > 0 {
            self.flush_backlog();
        }
        n
    }

    /// Submits what is queued and waits for at least one completion (one `RingEnter`),
    /// then reaps.
    ///
    /// # Errors
    /// From `RingEnter`.
    pub fn turn(&self) -> Result<usize, Errno> {
        self.flush_backlog();
        if self.reap() > 0 {
            return Ok(0);
        }
        let waiting = self.in_flight() > 0;
        let result = self
            .0
            .ring
            .borrow_mut()
            .submit_and_wait(if waiting { 1 } else { 0 });
        match result {
            Ok(_) | Err(Errno::Time) | Err(Errno::Intr) => {}
            Err(e) => return Err(e),
        }
        Ok(self.reap())
    }

    /// Starts `future` as a task; it runs while `block_on` runs.
    pub fn spawn(&self, future: impl Future<Output = ()> + 'static) {
        self.0.spawned.borrow_mut().push(Task {
            future: Box::pin(future),
            flag: Arc::new(Flag(AtomicBool::new(true))),
        });
    }

    /// Runs `future` (and the spawned tasks) until `future` completes.
    ///
    /// # Panics
    /// If every task waits and nothing is in flight (a deadlock), or `RingEnter` fails.
    pub fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        let mut future = core::pin::pin!(future);
        let main_flag = Arc::new(Flag(AtomicBool::new(true)));
        let main_waker = Waker::from(main_flag.clone());
        loop {
            let mut progressed = false;
            if main_flag.0.swap(false, Ordering::Acquire) {
                progressed = true;
                if let Poll::Ready(v) = future.as_mut().poll(&mut Context::from_waker(&main_waker))
                {
                    return v;
                }
            }
            progressed |= self.poll_tasks();
            if !progressed {
                if self.in_flight() == 0 && self.0.backlog.borrow().is_empty() {
                    panic!("block_on: every task waits and no operation is in flight");
                }
                if let Err(e) = self.turn() {
                    panic!("block_on: ring_enter failed: {e}");
                }
            }
        }
    }

    /// Polls the spawned tasks that were woken. Returns whether any was polled.
    fn poll_tasks(&self) -> bool {
        let new = core::mem::take(&mut *self.0.spawned.borrow_mut());
        let mut tasks = core::mem::take(&mut *self.0.tasks.borrow_mut());
        tasks.extend(new);
        let mut polled = false;
        tasks.retain_mut(|task| {
            if !task.flag.0.swap(false, Ordering::Acquire) {
                return true;
            }
            polled = true;
            let waker = Waker::from(task.flag.clone());
            task.future
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        });
        let mut slot = self.0.tasks.borrow_mut();
        tasks.append(&mut slot);
        *slot = tasks;
        polled
    }

    // --- Operations ---------------------------------------------------------------

    /// `Nop` through the ring.
    pub async fn nop(&self) -> Result<(), Errno> {
        self.submit(OwnedSqe::scalar(Sqe::new(Opcode::Nop)).expect("no memory"))
            .await
            .0
            .map(drop)
    }

    /// Reads up to `buf.len()` bytes (at `offset`, or the file position for `None`).
    /// Returns the buffer truncated to what was read.
    pub async fn read(
        &self,
        fd: i32,
        buf: Vec<u8>,
        offset: Option<u64>,
    ) -> (Result<usize, Errno>, Vec<u8>) {
        let (res, keep) = self.submit(OwnedSqe::read(fd, buf, offset, 0)).await;
        let mut buf = take_vec(keep);
        if let Ok(n) = res {
            buf.truncate(n as usize);
        }
        (res.map(|n| n as usize), buf)
    }

    /// Writes `buf` (at `offset`, or the file position for `None`); returns the buffer.
    pub async fn write(
        &self,
        fd: i32,
        buf: Vec<u8>,
        offset: Option<u64>,
    ) -> (Result<usize, Errno>, Vec<u8>) {
        let (res, keep) = self.submit(OwnedSqe::write(fd, buf, offset, 0)).await;
        (res.map(|n| n as usize), take_vec(keep))
    }

    /// Sleeps `ns` nanoseconds (a `Timeout`; `ETIME` is the normal outcome).
    pub async fn sleep(&self, ns: u64) -> Result<(), Errno> {
        let mut s = Sqe::new(Opcode::Timeout);
        s.addr = ns;
        match self.submit(OwnedSqe::scalar(s).expect("no memory")).await.0 {
            Ok(_) | Err(Errno::Time) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Asks the kernel to cancel the operation with `user_data` (see [`Op::user_data`]).
    pub async fn cancel(&self, user_data: u64) -> Result<(), Errno> {
        let mut s = Sqe::new(Opcode::Cancel);
        s.addr = user_data;
        self.submit(OwnedSqe::scalar(s).expect("no memory"))
            .await
            .0
            .map(drop)
    }
}

fn take_vec(keep: Option<Keep>) -> Vec<u8> {
    keep.and_then(|k| k.downcast::<Vec<u8>>().ok())
        .map(|b| *b)
        .unwrap_or_default()
}

/// The future of one submitted entry: `(result, buffer)`.
pub struct Op {
    rt: Runtime,
    user_data: u64,
}

impl Op {
    /// The `user_data` the entry was submitted with (for `cancel`).
    pub fn user_data(&self) -> u64 {
        self.user_data
    }
}

impl Future for Op {
    type Output = (Result<u32, Errno>, Option<Keep>);

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slots = self.rt.0.slots.borrow_mut();
        match slots.remove(&self.user_data) {
            Some(Slot::Done((res, keep))) => {
                let res = if res >= 0 {
                    Ok(res as u32)
                } else {
                    Err(Errno::from_i32(-res).unwrap_or(Errno::Io))
                };
                Poll::Ready((res, keep))
            }
            Some(Slot::Waiting(_)) => {
                slots.insert(self.user_data, Slot::Waiting(Some(cx.waker().clone())));
                Poll::Pending
            }
            Some(Slot::Abandoned) | None => Poll::Ready((Err(Errno::Canceled), None)),
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        let mut slots = self.rt.0.slots.borrow_mut();
        if let Some(Slot::Waiting(_)) = slots.get(&self.user_data) {
            slots.insert(self.user_data, Slot::Abandoned);
            drop(slots);
            // Still in the backlog? Then the kernel never saw it: just forget it.
            let mut backlog = self.rt.0.backlog.borrow_mut();
            if let Some(i) = backlog.iter().position(|e| e.user_data() == self.user_data) {
                backlog.remove(i);
                self.rt.0.slots.borrow_mut().remove(&self.user_data);
                return;
            }
            drop(backlog);
            // Ask to cancel; the Abandoned slot swallows the completion, and the ring keeps
            // the buffer until then.
            let mut s = Sqe::new(Opcode::Cancel);
            s.addr = self.user_data;
            let id = self.rt.next_id();
            s.user_data = id;
            self.rt.0.slots.borrow_mut().insert(id, Slot::Abandoned);
            if let Ok(entry) = OwnedSqe::scalar(s) {
                self.rt.0.backlog.borrow_mut().push_back(entry);
            }
        } else {
            slots.remove(&self.user_data);
        }
    }
}

/// A descriptor used through the ring, implementing `embedded_io_async`.
pub struct AsyncFd {
    rt: Runtime,
    fd: i32,
}

impl AsyncFd {
    /// Uses `fd` (not closed on drop) through `rt`.
    pub fn new(rt: &Runtime, fd: i32) -> AsyncFd {
        AsyncFd { rt: rt.clone(), fd }
    }
}

impl embedded_io_async::ErrorType for AsyncFd {
    type Error = IoError;
}

impl embedded_io_async::Read for AsyncFd {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        // A bounce buffer owned by the ring: `buf` is only borrowed by this future, which
        // may be dropped while the kernel still writes.
        let (res, data) = self.rt.read(self.fd, alloc::vec![0; buf.len()], None).await;
        let n = res?;
        buf[..n].copy_from_slice(&data[..n]);
        Ok(n)
    }
}

impl embedded_io_async::Write for AsyncFd {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        let (res, _) = self.rt.write(self.fd, buf.to_vec(), None).await;
        Ok(res?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::fake;

    fn runtime(entries: u32) -> Runtime {
        fake::reset();
        Runtime::new(RingOptions::new(entries)).unwrap()
    }

    #[test]
    fn block_on_waits_for_many_with_one_enter_per_turn() {
        let rt = runtime(8);
        let out = rt.block_on({
            let rt = rt.clone();
            async move {
                let a = rt.nop();
                let b = rt.nop();
                let c = rt.sleep(5);
                (a.await, b.await, c.await)
            }
        });
        assert_eq!(out, (Ok(()), Ok(()), Ok(())));
        assert_eq!(rt.in_flight(), 0);
    }

    #[test]
    fn more_ops_than_slots_go_through_the_backlog() {
        let rt = runtime(4);
        let finished = Rc::new(Cell::new(0));
        for _ in 0..10 {
            let rt2 = rt.clone();
            let finished = finished.clone();
            rt.spawn(async move {
                for _ in 0..20 {
                    rt2.nop().await.unwrap();
                }
                finished.set(finished.get() + 1);
            });
        }
        rt.block_on({
            let rt = rt.clone();
            let finished = finished.clone();
            async move {
                for _ in 0..100 {
                    rt.nop().await.unwrap();
                }
                while finished.get() < 10 {
                    rt.nop().await.unwrap();
                }
            }
        });
        assert!(fake::with(|k| k.consumed) >= 300);
        assert_eq!(rt.in_flight(), 0);
        assert!(rt.0.tasks.borrow().is_empty());
    }

    #[test]
    fn owned_write_returns_the_buffer() {
        let rt = runtime(4);
        fake::with(|k| {
            k.hook = None;
        });
        let (res, buf) = rt.block_on(rt.write(9, b"hello".to_vec(), None));
        // The fake only completes Nop/Timeout/Cancel on the ring; others are EINVAL.
        assert_eq!(res, Err(Errno::Inval));
        assert_eq!(buf, b"hello");
    }

    #[test]
    fn a_dropped_op_is_cancelled_and_its_completion_swallowed() {
        let rt = runtime(4);
        let op = rt
            .submit_scalar({
                let mut s = Sqe::new(Opcode::Timeout);
                s.addr = 1_000_000_000;
                s
            })
            .unwrap();
        drop(op);
        rt.block_on(rt.nop()).unwrap();
        // Timeout, the Cancel the drop queued, and the Nop all reached the kernel...
        assert_eq!(fake::with(|k| k.consumed), 3);
        // ...and the cancelled completion was swallowed, not left behind.
        assert_eq!(rt.in_flight(), 0);
    }

    #[test]
    #[should_panic(expected = "no operation is in flight")]
    fn a_deadlock_is_reported() {
        let rt = runtime(4);
        rt.block_on(core::future::pending::<()>());
    }
}
