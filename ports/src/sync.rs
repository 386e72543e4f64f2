// SPDX-License-Identifier: MIT OR Apache-2.0
//! Synchronisation shim: loom's types under `--cfg loom`, `spin` and `alloc` otherwise.
//!
//! Everything the reply handoff shares between CPUs (the envelope state, the intrusive
//! queue links, the reply queue) takes its `Mutex` and `Arc` from here, so the loom model
//! in `tests/loom_reply.rs` explores exactly the code that runs in the kernel. The port
//! registry (`remote.rs`) and spin ports use `spin` directly: they are not part of the model.

#[cfg(loom)]
pub(crate) use loom::sync::Arc;

#[cfg(not(loom))]
pub(crate) use alloc::sync::Arc;

/// A mutual-exclusion lock whose `lock` cannot fail (no poisoning in a kernel).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
}

#[cfg(loom)]
pub(crate) type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
#[cfg(not(loom))]
pub(crate) type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    #[cfg(not(loom))]
    pub(crate) const fn new(value: T) -> Self {
        Self {
            inner: spin::Mutex::new(value),
        }
    }

    #[cfg(loom)]
    pub(crate) fn new(value: T) -> Self {
        Self {
            inner: loom::sync::Mutex::new(value),
        }
    }

    #[inline]
    pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(loom)]
        return self
            .inner
            .lock()
            .expect("loom mutexes are never poisoned in our models");
        #[cfg(not(loom))]
        return self.inner.lock();
    }
}

/// Stores `cx`'s waker in `slot` unless an equivalent one is already there, and returns
/// the waker it replaced. The caller drops that one only after releasing its lock: a
/// waker's drop runs executor code (it may free a task, and the task's future), which
/// must never run under one of our spin locks.
#[must_use = "drop the replaced waker after unlocking"]
pub(crate) fn register_waker(
    slot: &mut Option<core::task::Waker>,
    cx: &core::task::Context<'_>,
) -> Option<core::task::Waker> {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => None,
        _ => slot.replace(cx.waker().clone()),
    }
}
