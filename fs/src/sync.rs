// SPDX-License-Identifier: MIT OR Apache-2.0
//! Synchronisation shim: loom's types under `--cfg loom`, `spin` and `core` otherwise.
//!
//! The state that fs shares between CPUs and reasons about (the namecache map and its
//! generation, an open file's position lock) takes its atomics and locks from here, so
//! the loom models (`RUSTFLAGS="--cfg loom" cargo test -p fs --lib --release loom`)
//! explore the code that runs in the kernel.

use core::ops::{Deref, DerefMut};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicU64, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A lock whose `lock` cannot fail (no poisoning in a kernel).
#[derive(Debug, Default)]
pub(crate) struct Mutex<T> {
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
}

impl<T> Mutex<T> {
    pub(crate) fn lock(&self) -> impl DerefMut<Target = T> + '_ {
        #[cfg(loom)]
        return self
            .inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        #[cfg(not(loom))]
        return self.inner.lock();
    }
}

/// A reader-writer lock whose `read` and `write` cannot fail.
#[derive(Debug, Default)]
pub(crate) struct RwLock<T> {
    #[cfg(loom)]
    inner: loom::sync::RwLock<T>,
    #[cfg(not(loom))]
    inner: spin::RwLock<T>,
}

impl<T> RwLock<T> {
    pub(crate) fn new(value: T) -> Self {
        #[cfg(loom)]
        let inner = loom::sync::RwLock::new(value);
        #[cfg(not(loom))]
        let inner = spin::RwLock::new(value);
        RwLock { inner }
    }

    pub(crate) fn read(&self) -> impl Deref<Target = T> + '_ {
        #[cfg(loom)]
        return self
            .inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        #[cfg(not(loom))]
        return self.inner.read();
    }

    pub(crate) fn write(&self) -> impl DerefMut<Target = T> + '_ {
        #[cfg(loom)]
        return self
            .inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        #[cfg(not(loom))]
        return self.inner.write();
    }
}
