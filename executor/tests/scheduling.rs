//! Scheduling order, asserted on event traces: priorities, round-robin, re-poll on wake.
// Hosted tests use real threads and atomics; under `--cfg loom` only the loom models run.
#![cfg(not(loom))]

mod common;

use std::time::Duration;

use common::{Trace, block_on_within};
use executor::hosted::Machine;
use executor::{CpuId, Priority, spawn_with, yield_now};

fn looping(
    trace: Trace,
    name: &'static str,
    priority: Priority,
    rounds: usize,
) -> executor::JoinHandle<()> {
    spawn_with(priority, async move {
        for i in 0..rounds {
            trace.push(format!("{name}{i}"));
            yield_now().await;
        }
    })
}

#[test]
fn higher_levels_run_first_and_equal_levels_round_robin() {
    let m = Machine::start(1);
    let trace = Trace::default();
    let t = trace.clone();
    block_on_within(&m, CpuId(0), Duration::from_secs(10), async move {
        // Spawned while the root runs, so all of them are queued before any runs.
        let handles = [
            looping(t.clone(), "A", Priority::Kernel, 2),
            looping(t.clone(), "B", Priority::Kernel, 2),
            looping(t.clone(), "U", Priority::User, 2),
            looping(t.clone(), "I", Priority::Interrupt, 2),
            looping(t.clone(), "Z", Priority::Idle, 1),
        ];
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(
        trace.take(),
        ["I0", "I1", "A0", "B0", "A1", "B1", "U0", "U1", "Z0"]
    );
}

#[test]
fn a_task_woken_during_its_own_poll_is_polled_again() {
    let m = Machine::start(1);
    let polls = m.block_on(CpuId(0), async {
        let mut polls = 0;
        std::future::poll_fn(|cx| {
            polls += 1;
            if polls < 5 {
                // Wake while running: must be re-polled, not lost.
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        polls
    });
    assert_eq!(polls, 5);
}

#[test]
fn spawned_tasks_run_in_fifo_order_within_a_level() {
    let m = Machine::start(1);
    let trace = Trace::default();
    let t = trace.clone();
    m.block_on(CpuId(0), async move {
        let hs: Vec<_> = (0..5)
            .map(|i| {
                let t = t.clone();
                executor::spawn(async move { t.push(format!("t{i}")) })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    assert_eq!(trace.take(), ["t0", "t1", "t2", "t3", "t4"]);
}

#[test]
fn stats_count_polls_spawns_and_local_wakes() {
    let m = Machine::start(1);
    m.block_on(CpuId(0), async {
        let h = executor::spawn(async {
            for _ in 0..3 {
                yield_now().await;
            }
        });
        h.await.unwrap();
    });
    let s = m.stats(CpuId(0));
    // Root + child spawned and completed; child polled 4 times, root at least twice.
    assert_eq!(s.tasks_spawned, 2);
    assert_eq!(s.tasks_completed, 2);
    assert_eq!(s.tasks_live, 0);
    assert!(s.polls >= 6, "{s:?}");
    // Three yields plus the child's completion waking the root (the join waker).
    assert!(s.local_wakes >= 4, "{s:?}");
    assert_eq!(s.remote_wakes, 0);
}

#[test]
fn a_woken_higher_priority_task_runs_before_queued_lower_ones() {
    let m = Machine::start(1);
    let trace = Trace::default();
    let t = trace.clone();
    block_on_within(&m, CpuId(0), Duration::from_secs(10), async move {
        let ev = common::Event::default();
        let (t_i, ev_i) = (t.clone(), ev.clone());
        let i = spawn_with(Priority::Interrupt, async move {
            t_i.push("I wait");
            ev_i.wait().await;
            t_i.push("I woken");
        });
        let (t_a, ev_a) = (t.clone(), ev.clone());
        let a = spawn_with(Priority::Kernel, async move {
            t_a.push("A0");
            ev_a.set(); // wakes I, which jumps ahead of B
            yield_now().await;
            t_a.push("A1");
        });
        let b = looping(t.clone(), "B", Priority::Kernel, 2);
        i.await.unwrap();
        a.await.unwrap();
        b.await.unwrap();
    });
    assert_eq!(trace.take(), ["I wait", "A0", "I woken", "B0", "A1", "B1"]);
}
