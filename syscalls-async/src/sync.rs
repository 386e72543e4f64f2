// SPDX-License-Identifier: MIT OR Apache-2.0
//! Small async building blocks: a broadcast [`Notify`], a [`CancelToken`] and a
//! [`race`] of two futures.
//!
//! `Notify` is the only waiting primitive in the crate. Waiters check their condition,
//! register, and check again, so a notification between the first check and the
//! registration is never lost.

use alloc::vec::Vec;
use core::{
    future::{Future, poll_fn},
    pin::pin,
    sync::atomic::{AtomicBool, AtomicU64, Ordering, fence},
    task::{Poll, Waker},
};

use futures_util::task::AtomicWaker;

/// A broadcast wake-up: `notify` wakes every registered waiter.
#[derive(Default)]
pub(crate) struct Notify {
    generation: AtomicU64,
    /// True while `wakers` may hold a waker (changed under its lock): `notify` skips the
    /// lock when nobody waits, the usual case on the ring's fast path.
    waiting: AtomicBool,
    wakers: spin::Mutex<Vec<Waker>>,
}

impl Notify {
    pub(crate) const fn new() -> Notify {
        Notify {
            generation: AtomicU64::new(0),
            waiting: AtomicBool::new(false),
            wakers: spin::Mutex::new(Vec::new()),
        }
    }

    /// Wakes every waiter (they re-check their condition). Inline: with nobody waiting it
    /// is an increment, a fence and a load; the wake-ups are out of line.
    #[inline]
    pub(crate) fn notify(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        // Pairs with the fence in `register`: either this load sees the waiter's flag, or
        // the waiter's re-check, after its fence, sees what changed before this call.
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) {
            self.wake_all();
        }
    }

    /// [`Notify::notify`]'s part for registered waiters.
    #[inline(never)]
    fn wake_all(&self) {
        let mut wakers = self.wakers.lock();
        self.waiting.store(false, Ordering::Relaxed);
        if wakers.len() <= 1 {
            // The usual single waiter: popped, so the list keeps its room (no
            // allocation at the next `register`); woken outside the lock.
            let waker = wakers.pop();
            drop(wakers);
            if let Some(w) = waker {
                w.wake();
            }
            return;
        }
        let all = core::mem::take(&mut *wakers);
        drop(wakers);
        for w in all {
            w.wake();
        }
    }

    /// Incremented by every `notify`.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn register(&self, waker: &Waker) {
        let mut wakers = self.wakers.lock();
        if !wakers.iter().any(|w| w.will_wake(waker)) {
            wakers.push(waker.clone());
        }
        self.waiting.store(true, Ordering::Relaxed);
        drop(wakers);
        // See `notify`: the caller checks its condition again after this.
        fence(Ordering::SeqCst);
    }

    /// Waits until `check` returns `Some`.
    ///
    /// # Cancel safety
    /// Dropping the future loses nothing (a stale waker is dropped at the next `notify`).
    pub(crate) async fn wait_until<T>(&self, mut check: impl FnMut() -> Option<T>) -> T {
        poll_fn(|cx| {
            if let Some(v) = check() {
                return Poll::Ready(v);
            }
            self.register(cx.waker());
            match check() {
                Some(v) => Poll::Ready(v),
                None => Poll::Pending,
            }
        })
        .await
    }
}

/// "Please stop": set once by `Cancel`, a link timeout or process exit; the operation's
/// wrapper sees it at its next poll, drops the operation and completes with `ECANCELED`.
///
/// A token has one waiter (the wrapper of its entry, or of its link timeout), so it keeps
/// one waker in place rather than a list: registering allocates nothing.
#[derive(Default)]
pub(crate) struct CancelToken {
    cancelled: AtomicBool,
    waiter: AtomicWaker,
}

impl CancelToken {
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.waiter.wake();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once the token is cancelled.
    ///
    /// # Cancel safety
    /// Dropping the future loses nothing. Only one future may wait at a time (a second
    /// one would take the waker's place).
    pub(crate) async fn cancelled(&self) {
        poll_fn(|cx| {
            if self.is_cancelled() {
                return Poll::Ready(());
            }
            self.waiter.register(cx.waker());
            if self.is_cancelled() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

/// Which of two raced futures finished first.
pub(crate) enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Polls `a` then `b` until one completes; the other is dropped. `a` wins a tie.
pub(crate) async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(v) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        if let Poll::Ready(v) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(v));
        }
        Poll::Pending
    })
    .await
}
