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

/// Waits for a task on the hosted machine, failing the test (instead of hanging it) if
/// the task does not finish in time, e.g. because an assertion inside it panicked its CPU.
#[track_caller]
pub fn join<T>(handle: executor::JoinHandle<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !handle.is_finished() {
        assert!(
            std::time::Instant::now() < deadline,
            "task did not finish (did it panic on its CPU?)"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    executor::hosted::block_on_thread(handle).expect("task was cancelled")
}

/// Runs `future` on `cpu` of `machine` and waits for it, with `join`'s deadline.
#[track_caller]
pub fn run_on<F>(machine: &executor::hosted::Machine, cpu: u32, future: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    join(
        machine
            .spawn_on(executor::CpuId(cpu), future)
            .expect("spawn"),
    )
}

/// Serialises the tests of one binary that start a hosted machine: each machine's CPUs
/// are std threads, and two machines at once would only compete for the host's cores
/// (the executor's platform hooks are process-wide, too).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
