//! Helpers shared by the hosted integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use executor::CpuId;
use executor::hosted::Machine;

/// An event trace shared by the tasks of a test.
#[derive(Clone, Default)]
pub struct Trace(Arc<Mutex<Vec<String>>>);

impl Trace {
    pub fn push(&self, event: impl Into<String>) {
        self.0.lock().unwrap().push(event.into());
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// `block_on` with a wall-clock watchdog run by the test thread, so a lost wake-up fails
/// the test instead of hanging it.
pub fn block_on_within<F>(m: &Machine, cpu: CpuId, limit: Duration, future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let handle = m
        .spawn_on(cpu, async move {
            let out = future.await;
            let _ = tx.send(out);
        })
        .expect("spawn root");
    match rx.recv_timeout(limit) {
        Ok(out) => out,
        Err(_) => {
            handle.cancel();
            panic!("stuck: no result within {limit:?} (lost wake-up or deadlock)");
        }
    }
}

/// A one-shot event: `wait()` completes after `set()`.
#[derive(Clone, Default)]
pub struct Event(Arc<EventInner>);

#[derive(Default)]
pub struct EventInner {
    set: std::sync::atomic::AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Event {
    pub fn set(&self) {
        self.0.set.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(w) = self.0.waker.lock().unwrap().take() {
            w.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.0.set.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn wait(&self) -> EventWait {
        EventWait(self.clone())
    }
}

pub struct EventWait(Event);

impl Future for EventWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0.is_set() {
            return Poll::Ready(());
        }
        *self.0.0.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.0.is_set() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Spins (the calling CPU thread) until `cond` holds, with a wall-clock limit.
pub fn spin_until(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        std::thread::yield_now();
    }
}

/// A future that never completes; sets `dropped` when dropped.
pub struct Forever(pub Arc<std::sync::atomic::AtomicBool>);

impl Future for Forever {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for Forever {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Blocks the test thread on a join handle; panics if the task was cancelled.
pub fn block_on_join<T>(handle: executor::JoinHandle<T>) -> T {
    executor::hosted::block_on_thread(handle).expect("task cancelled")
}
