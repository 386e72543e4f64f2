// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared fixtures for the fs integration tests.
#![allow(dead_code)]

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use fs::{
    Vfs,
    devfs::Devfs,
    platform::{Clock, EntropySource, NullConsole, TickClock},
    service::try_complete_inline,
    tmpfs::Tmpfs,
};

/// Runs a VFS future that must complete inline (tmpfs and devfs always do).
#[track_caller]
pub fn inline<F: std::future::Future>(fut: F) -> F::Output {
    try_complete_inline(fut).expect("operation did not complete inline")
}

/// A deterministic xorshift entropy source.
pub struct TestEntropy(AtomicU64);

impl TestEntropy {
    pub fn new(seed: u64) -> TestEntropy {
        TestEntropy(AtomicU64::new(seed | 1))
    }
}

impl EntropySource for TestEntropy {
    fn fill(&self, buf: &mut [u8]) {
        for b in buf {
            let mut x = self.0.load(Ordering::Relaxed);
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0.store(x, Ordering::Relaxed);
            *b = x as u8;
        }
    }
}

pub fn clock() -> Arc<dyn Clock> {
    Arc::new(TickClock::new(1_700_000_000_000_000_000))
}

/// A VFS with a tmpfs root.
pub fn tmpfs_vfs() -> (Arc<Vfs>, Arc<Tmpfs>) {
    let tmpfs = Arc::new(Tmpfs::new(clock()));
    (Arc::new(Vfs::new(tmpfs.clone())), tmpfs)
}

pub fn devfs() -> Arc<Devfs> {
    Arc::new(Devfs::new(
        clock(),
        Arc::new(TestEntropy::new(42)),
        Arc::new(NullConsole),
    ))
}
