//! Serializing tokens under contention from several CPUs.
// Hosted tests use real threads and atomics; under `--cfg loom` only the loom models run.
#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Event, Trace, block_on_within, spin_until};
use executor::hosted::Machine;
use executor::{CpuId, TaskBuilder, Token, TokenRef, set_task_tokens, yield_now};

fn leak_token() -> &'static Token {
    Box::leak(Box::new(Token::new()))
}

#[test]
fn exclusive_token_serializes_polls_across_cpus() {
    let m = Machine::start(4);
    let token = leak_token();
    let inside = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(0));
    let (tasks_per_cpu, rounds) = (6, 40);
    let (i2, c2) = (inside.clone(), counter.clone());
    block_on_within(&m, CpuId(0), Duration::from_secs(20), async move {
        let mut handles = Vec::new();
        for cpu in 0..4 {
            for _ in 0..tasks_per_cpu {
                let (inside, counter) = (i2.clone(), c2.clone());
                let h = TaskBuilder::new()
                    .cpu(CpuId(cpu))
                    .token(TokenRef::exclusive(token))
                    .spawn(async move {
                        for _ in 0..rounds {
                            assert!(
                                !inside.swap(true, Ordering::SeqCst),
                                "two tasks inside the token at once"
                            );
                            assert!(token.is_held_exclusive());
                            // A deliberately racy read-modify-write: only the token makes it safe.
                            let v = counter.load(Ordering::Relaxed);
                            for _ in 0..50 {
                                std::hint::spin_loop();
                            }
                            counter.store(v + 1, Ordering::Relaxed);
                            inside.store(false, Ordering::SeqCst);
                            yield_now().await;
                        }
                    })
                    .unwrap();
                handles.push(h);
            }
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(
        counter.load(Ordering::SeqCst),
        4 * tasks_per_cpu as u64 * rounds
    );
    assert!(!token.is_held_exclusive(), "released after the last poll");
}

#[test]
fn shared_holders_exclude_exclusive_ones() {
    let m = Machine::start(3);
    let token = leak_token();
    let readers = Arc::new(AtomicUsize::new(0));
    let writer = Arc::new(AtomicBool::new(false));
    let max_readers = Arc::new(AtomicUsize::new(0));
    let (r2, w2, mr2) = (readers.clone(), writer.clone(), max_readers.clone());
    block_on_within(&m, CpuId(0), Duration::from_secs(20), async move {
        let mut handles = Vec::new();
        for i in 0..12u32 {
            let (readers, writer, max_readers) = (r2.clone(), w2.clone(), mr2.clone());
            let is_writer = i % 4 == 0;
            let tref = if is_writer {
                TokenRef::exclusive(token)
            } else {
                TokenRef::shared(token)
            };
            let h = TaskBuilder::new()
                .cpu(CpuId(i % 3))
                .token(tref)
                .spawn(async move {
                    for _ in 0..30 {
                        if is_writer {
                            assert!(!writer.swap(true, Ordering::SeqCst), "two writers");
                            assert_eq!(
                                readers.load(Ordering::SeqCst),
                                0,
                                "writer alongside readers"
                            );
                            std::thread::yield_now();
                            writer.store(false, Ordering::SeqCst);
                        } else {
                            let n = readers.fetch_add(1, Ordering::SeqCst) + 1;
                            max_readers.fetch_max(n, Ordering::SeqCst);
                            assert!(!writer.load(Ordering::SeqCst), "reader alongside a writer");
                            std::thread::yield_now();
                            readers.fetch_sub(1, Ordering::SeqCst);
                        }
                        yield_now().await;
                    }
                })
                .unwrap();
            handles.push(h);
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(readers.load(Ordering::SeqCst), 0);
}

#[test]
fn tokens_are_released_at_each_pending() {
    let m = Machine::start(2);
    let token = leak_token();
    let ev = Event::default();
    let e = ev.clone();
    let out = block_on_within(&m, CpuId(0), Duration::from_secs(10), async move {
        // A holds the token during its polls but waits (Pending) for B, which needs the same
        // token: if A kept it across the await, this would deadlock.
        let a = TaskBuilder::new()
            .token(TokenRef::exclusive(token))
            .spawn(async move {
                assert!(token.is_held_exclusive());
                e.wait().await;
                assert!(token.is_held_exclusive(), "re-acquired for the next poll");
                "a done"
            })
            .unwrap();
        let b = TaskBuilder::new()
            .cpu(CpuId(1))
            .token(TokenRef::exclusive(token))
            .spawn(async move {
                ev.set();
                "b done"
            })
            .unwrap();
        (a.await.unwrap(), b.await.unwrap())
    });
    assert_eq!(out, ("a done", "b done"));
}

#[test]
fn cyclic_acquisition_orders_do_not_deadlock() {
    let m = Machine::start(3);
    let t1 = leak_token();
    let t2 = leak_token();
    let t3 = leak_token();
    let done = block_on_within(&m, CpuId(0), Duration::from_secs(20), async move {
        let orders = [[t1, t2, t3], [t2, t3, t1], [t3, t1, t2]];
        let mut handles = Vec::new();
        for (cpu, order) in orders.iter().enumerate() {
            for _ in 0..3 {
                let h = TaskBuilder::new()
                    .cpu(CpuId(cpu as u32))
                    .tokens(order.iter().map(|t| TokenRef::exclusive(t)))
                    .spawn(async move {
                        for _ in 0..100 {
                            assert!(
                                t1.is_held_exclusive()
                                    && t2.is_held_exclusive()
                                    && t3.is_held_exclusive()
                            );
                            yield_now().await;
                        }
                    })
                    .unwrap();
                handles.push(h);
            }
        }
        let n = handles.len();
        for h in handles {
            h.await.unwrap();
        }
        n
    });
    assert_eq!(done, 9);
}

#[test]
fn a_task_with_busy_tokens_is_passed_over_not_spun_on() {
    let m = Machine::start(2);
    let token = leak_token();
    let release = Arc::new(AtomicBool::new(false));
    let holding = Event::default();
    let (r, h) = (release.clone(), holding.clone());
    // Off-CPU, the builder reports an error value instead of panicking.
    let off_cpu = TaskBuilder::new().cpu(CpuId(1)).spawn(async {});
    assert_eq!(off_cpu.map(|_| ()), Err(executor::SpawnError::NoCurrentCpu));
    // CPU 1 holds the token inside one long poll.
    let holder = m
        .block_on(CpuId(1), async move {
            TaskBuilder::new()
                .token(TokenRef::exclusive(token))
                .spawn(async move {
                    h.set();
                    spin_until("release", || r.load(Ordering::SeqCst));
                })
        })
        .unwrap();
    spin_until("holder holds the token", || holding.is_set());
    let trace = Trace::default();
    let t = trace.clone();
    let rel = release.clone();
    block_on_within(&m, CpuId(0), Duration::from_secs(10), async move {
        let t1 = t.clone();
        let blocked = TaskBuilder::new()
            .token(TokenRef::exclusive(token))
            .spawn(async move { t1.push("tokened task ran") })
            .unwrap();
        let t2 = t.clone();
        let free = executor::spawn(async move {
            t2.push("free task ran");
            // The tokened task is still waiting: it was passed over, and we got the CPU.
            rel.store(true, Ordering::SeqCst);
        });
        free.await.unwrap();
        blocked.await.unwrap();
    });
    common::block_on_join(holder);
    assert_eq!(trace.take(), ["free task ran", "tokened task ran"]);
    assert!(m.stats(CpuId(0)).token_misses >= 1);
}

#[test]
fn a_task_can_change_its_token_set_between_polls() {
    let m = Machine::start(1);
    let token = leak_token();
    let seen = m.block_on(CpuId(0), async move {
        let mut seen = vec![token.is_held_exclusive()];
        set_task_tokens(&[TokenRef::exclusive(token)]);
        seen.push(token.is_held_exclusive()); // not before the next poll
        yield_now().await;
        seen.push(token.is_held_exclusive());
        set_task_tokens(&[]);
        yield_now().await;
        seen.push(token.is_held_exclusive());
        seen
    });
    assert_eq!(seen, [false, false, true, false]);
}

#[test]
fn pool_tokens_serialize_by_address() {
    let m = Machine::start(2);
    let object = Box::leak(Box::new([0u64; 4]));
    let addr = object as *const _ as usize;
    let counter = Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    block_on_within(&m, CpuId(0), Duration::from_secs(10), async move {
        let mut hs = Vec::new();
        for i in 0..8u32 {
            let c = c.clone();
            let token = executor::pool_token(addr as *const u8);
            hs.push(
                TaskBuilder::new()
                    .cpu(CpuId(i % 2))
                    .token(TokenRef::exclusive(token))
                    .spawn(async move {
                        for _ in 0..50 {
                            let v = c.load(Ordering::Relaxed);
                            std::hint::spin_loop();
                            c.store(v + 1, Ordering::Relaxed);
                            yield_now().await;
                        }
                    })
                    .unwrap(),
            );
        }
        for h in hs {
            h.await.unwrap();
        }
    });
    assert_eq!(counter.load(Ordering::SeqCst), 400);
}
