//! The one door to atomics, `UnsafeCell`, `Arc` and locks (STYLE.md C.7).
//!
//! Under `--cfg loom` these are loom's model-checked types; otherwise core's atomics,
//! alloc's `Arc` and `spin`'s mutex. Nothing else in the crate names `core::sync`,
//! `core::cell::UnsafeCell` or `alloc::sync` directly, so a loom run checks every
//! cross-CPU protocol we wrote.

#[cfg(loom)]
mod imp {
    pub use loom::cell::UnsafeCell;
    pub use loom::sync::Arc;
    pub use loom::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

    /// A mutex with the `spin::Mutex` shape (`lock()` returns the guard directly).
    #[derive(Debug, Default)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub fn lock(&self) -> loom::sync::MutexGuard<'_, T> {
            self.0.lock().expect("loom mutex poisoned")
        }
    }
}

#[cfg(not(loom))]
mod imp {
    pub use alloc::sync::Arc;
    pub use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};

    pub use spin::Mutex;

    /// `UnsafeCell` with loom's closure API, so `raw/` code reads the same under both cfgs.
    #[derive(Debug)]
    pub struct UnsafeCell<T>(core::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub const fn new(value: T) -> Self {
            Self(core::cell::UnsafeCell::new(value))
        }

        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}

pub(crate) use imp::*;

/// alloc's `Arc` under every cfg, for std APIs that require it (`Wake`, the hosted
/// thread table). Never for cross-CPU protocol state, which loom must see.
#[cfg(any(feature = "hosted", loom))]
pub(crate) use alloc::sync::Arc as StdArc;
