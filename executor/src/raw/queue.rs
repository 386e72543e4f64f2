//! Intrusive FIFO run queue of `Notified` tasks, linked through `Header::next`.
//!
//! Pushing and popping never allocate: the link lives in the task block. A queue owns the
//! `Notified` handles it holds (and so, by invariant I1 of `raw::task`, their links); it is
//! `!Sync`, because only the owning CPU touches its run queues (DragonFly's `gd_tdrunq`).

use core::marker::PhantomData;
use core::ptr::NonNull;

use super::task::{Header, Notified};

/// A FIFO of owned `Notified` tasks.
///
/// Invariants: `head`..`tail` is a chain of `len` headers obtained from `Notified::into_raw`,
/// linked by their `next` fields; each is rebuilt exactly once by `pop_front` or `drop`.
pub(crate) struct RunQueue {
    head: Option<NonNull<Header>>,
    tail: Option<NonNull<Header>>,
    len: usize,
    _not_sync: PhantomData<core::cell::Cell<()>>,
}

// SAFETY: the queue owns its Notified handles, which are Send; moving the whole queue to
// another thread moves that ownership with it.
unsafe impl Send for RunQueue {}

impl RunQueue {
    pub(crate) const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
            _not_sync: PhantomData,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn push_back(&mut self, mut task: Notified) {
        task.set_next(None);
        let raw = task.into_raw();
        match self.tail {
            None => self.head = Some(raw),
            Some(tail) => {
                // SAFETY:
                // 1. `tail` came from `into_raw` and is still owned by this queue (invariant).
                // 2. We rebuild it only to write its link, then give it back with `into_raw`,
                //    so it is still rebuilt exactly once overall.
                let mut tail_task = unsafe { Notified::from_raw(tail) };
                tail_task.set_next(Some(raw));
                let _ = tail_task.into_raw();
            }
        }
        self.tail = Some(raw);
        self.len += 1;
    }

    pub(crate) fn pop_front(&mut self) -> Option<Notified> {
        let head = self.head?;
        // SAFETY: `head` came from `into_raw` and is owned by this queue; we unlink it
        // here, so this is its one rebuild (invariant).
        let task = unsafe { Notified::from_raw(head) };
        self.head = task.next();
        if self.head.is_none() {
            self.tail = None;
        }
        self.len -= 1;
        Some(task)
    }
}

impl Drop for RunQueue {
    fn drop(&mut self) {
        while let Some(task) = self.pop_front() {
            drop(task);
        }
    }
}
