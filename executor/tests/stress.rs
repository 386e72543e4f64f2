//! Stress: N CPUs x M tasks passing wake-ups around a ring; any lost wake-up hangs a task
//! and trips the watchdog.
// Hosted tests use real threads and atomics; under `--cfg loom` only the loom models run.
#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use common::block_on_within;
use executor::hosted::Machine;
use executor::{CpuId, Priority, TaskBuilder};

struct Slot {
    inbox: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

struct Ring {
    slots: Vec<Slot>,
    hops: AtomicU64,
    target: u64,
    done: AtomicBool,
}

impl Ring {
    fn deliver(&self, i: usize) {
        let slot = &self.slots[i % self.slots.len()];
        slot.inbox.fetch_add(1, Ordering::SeqCst);
        if let Some(w) = slot.waker.lock().unwrap().take() {
            w.wake();
        }
    }

    fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
        for slot in &self.slots {
            if let Some(w) = slot.waker.lock().unwrap().take() {
                w.wake();
            }
        }
    }
}

fn run_ring(
    cpus: usize,
    tasks_per_cpu: usize,
    circulating: usize,
    hops: u64,
) -> (u64, Vec<executor::CpuStats>) {
    let m = Machine::start(cpus);
    let n = cpus * tasks_per_cpu;
    let ring = Arc::new(Ring {
        slots: (0..n)
            .map(|_| Slot {
                inbox: AtomicU64::new(0),
                waker: Mutex::new(None),
            })
            .collect(),
        hops: AtomicU64::new(0),
        target: hops,
        done: AtomicBool::new(false),
    });
    let r = ring.clone();
    let received = block_on_within(&m, CpuId(0), Duration::from_secs(25), async move {
        let mut handles = Vec::new();
        for i in 0..n {
            let ring = r.clone();
            let priority = if i % 3 == 0 {
                Priority::User
            } else {
                Priority::Kernel
            };
            let h = TaskBuilder::new()
                .cpu(CpuId((i % cpus) as u32))
                .priority(priority)
                .spawn(async move {
                    let mut received = 0u64;
                    std::future::poll_fn(|cx| {
                        loop {
                            let slot = &ring.slots[i];
                            let got = slot.inbox.swap(0, Ordering::SeqCst);
                            for _ in 0..got {
                                received += 1;
                                if ring.hops.fetch_add(1, Ordering::SeqCst) + 1 == ring.target {
                                    ring.finish();
                                }
                                ring.deliver(i + 1 + (received as usize % 7));
                            }
                            if ring.done.load(Ordering::SeqCst) {
                                return Poll::Ready(());
                            }
                            *slot.waker.lock().unwrap() = Some(cx.waker().clone());
                            // Re-check after publishing the waker: the classic lost-wake race.
                            if slot.inbox.load(Ordering::SeqCst) == 0
                                && !ring.done.load(Ordering::SeqCst)
                            {
                                return Poll::Pending;
                            }
                        }
                    })
                    .await;
                    received
                })
                .unwrap();
            handles.push(h);
        }
        for k in 0..circulating {
            r.deliver(k * n / circulating);
        }
        let mut total = 0;
        for h in handles {
            total += h.await.unwrap();
        }
        total
    });
    // The root wrapper sends its result just before it completes.
    common::spin_until("every task completed", || {
        (0..cpus).all(|c| m.stats(CpuId(c as u32)).tasks_live == 0)
    });
    let stats = (0..cpus).map(|c| m.stats(CpuId(c as u32))).collect();
    (received, stats)
}

#[test]
fn four_cpus_a_thousand_tasks_no_lost_wakeups() {
    let hops = 200_000;
    let (received, stats) = run_ring(4, 250, 32, hops);
    // Every hop was received by someone; tokens still in flight when `done` was set may add
    // a few more receptions, never fewer.
    assert!(received >= hops, "received {received} of {hops}");
    let remote: u64 = stats.iter().map(|s| s.remote_wakes).sum();
    let live: u64 = stats.iter().map(|s| s.tasks_live).sum();
    assert!(remote > 0, "{stats:?}");
    assert_eq!(live, 0, "{stats:?}");
}

#[test]
fn two_cpus_few_tasks_many_hops() {
    let (received, _) = run_ring(2, 3, 4, 30_000);
    assert!(received >= 30_000);
}

/// Regression: a sender could set the target's `npoll` just after the target drained the
/// message it was signalling; the target then slept with `npoll` still set and every later
/// sender skipped the IPI (lost wake-up, found by the ring stress test above). Ping-pong
/// with both CPUs going idle between hops hits that window often.
#[test]
fn ping_pong_between_cpus_that_go_idle() {
    let m = Machine::start(2);
    let rounds = 20_000;
    let n = block_on_within(&m, CpuId(0), Duration::from_secs(25), async move {
        let ping = Arc::new(Mutex::new((0u32, None::<Waker>, None::<Waker>)));
        let p2 = ping.clone();
        let pong = executor::spawn_on(CpuId(1), async move {
            let mut seen = 0;
            std::future::poll_fn(|cx| {
                let mut g = p2.lock().unwrap();
                while !g.0.is_multiple_of(2) {
                    g.0 += 1;
                    seen += 1;
                    if let Some(w) = g.1.take() {
                        w.wake();
                    }
                }
                if seen == rounds {
                    return Poll::Ready(seen);
                }
                g.2 = Some(cx.waker().clone());
                Poll::Pending
            })
            .await
        })
        .unwrap();
        let mut sent = 0;
        std::future::poll_fn(|cx| {
            let mut g = ping.lock().unwrap();
            if g.0.is_multiple_of(2) && sent < rounds {
                g.0 += 1;
                sent += 1;
                if let Some(w) = g.2.take() {
                    w.wake();
                }
            }
            if sent == rounds && g.0 == 2 * rounds {
                return Poll::Ready(());
            }
            g.1 = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        pong.await.unwrap()
    });
    assert_eq!(n, rounds);
}
