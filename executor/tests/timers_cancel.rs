//! Timers (`sleep`, `timeout`) and cancellation on a hosted machine.
// Hosted tests use real threads and atomics; under `--cfg loom` only the loom models run.
#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{Event, Forever, Trace, block_on_within, spin_until};
use executor::hosted::Machine;
use executor::{Cancelled, CpuId, Elapsed, sleep, timeout, yield_now};

#[test]
fn sleep_waits_at_least_its_duration() {
    let m = Machine::start(1);
    let start = Instant::now();
    m.block_on(CpuId(0), async { sleep(Duration::from_millis(20)).await });
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(20), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(m.stats(CpuId(0)).timers_fired >= 1);
}

#[test]
fn sleepers_wake_in_deadline_order() {
    let m = Machine::start(1);
    let trace = Trace::default();
    let t = trace.clone();
    block_on_within(&m, CpuId(0), Duration::from_secs(10), async move {
        let hs: Vec<_> = [30u64, 10, 20]
            .into_iter()
            .map(|ms| {
                let t = t.clone();
                executor::spawn(async move {
                    sleep(Duration::from_millis(ms)).await;
                    t.push(format!("{ms}ms"));
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    assert_eq!(trace.take(), ["10ms", "20ms", "30ms"]);
}

#[test]
fn timeout_expires_on_a_pending_future_and_passes_a_ready_one() {
    let m = Machine::start(1);
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let (late, early) = block_on_within(&m, CpuId(0), Duration::from_secs(10), async move {
        let late = timeout(Duration::from_millis(10), Forever(d)).await;
        let early = timeout(Duration::from_secs(60), async { 5 }).await;
        (late, early)
    });
    assert_eq!(late, Err(Elapsed));
    assert!(
        dropped.load(Ordering::SeqCst),
        "the timed-out future was dropped"
    );
    assert_eq!(early, Ok(5));
}

#[test]
fn a_dropped_sleep_does_not_wake_its_task_later() {
    let m = Machine::start(1);
    block_on_within(&m, CpuId(0), Duration::from_secs(10), async {
        // Arm a timer, then drop it; a second, longer sleep must be the only wake source.
        let mut s = Box::pin(sleep(Duration::from_millis(5)));
        let _ = futures_poll_once(s.as_mut()).await;
        drop(s);
        sleep(Duration::from_millis(30)).await;
    });
    assert_eq!(
        m.stats(CpuId(0)).timers_fired,
        1,
        "only the second sleep's timer fired"
    );
}

async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> std::task::Poll<F::Output> {
    std::future::poll_fn(|cx| std::task::Poll::Ready(std::pin::Pin::new(&mut f).poll(cx))).await
}

#[test]
fn a_sleep_on_another_cpu_uses_that_cpus_wheel() {
    let m = Machine::start(2);
    let start = Instant::now();
    m.block_on(CpuId(0), async {
        executor::spawn_on(CpuId(1), async { sleep(Duration::from_millis(15)).await })
            .unwrap()
            .await
            .unwrap()
    });
    assert!(start.elapsed() >= Duration::from_millis(15));
    assert_eq!(m.stats(CpuId(1)).timers_fired, 1);
    assert_eq!(m.stats(CpuId(0)).timers_fired, 0);
}

// --- cancellation ------------------------------------------------------------------

#[test]
fn cancel_drops_a_pending_task_and_its_join_yields_cancelled() {
    let m = Machine::start(2);
    let dropped = Arc::new(AtomicBool::new(false));
    let d = dropped.clone();
    let r = block_on_within(&m, CpuId(0), Duration::from_secs(10), async move {
        let h = executor::spawn_on(CpuId(1), Forever(d)).unwrap();
        yield_now().await;
        h.cancel();
        h.await
    });
    assert_eq!(r, Err(Cancelled));
    assert!(dropped.load(Ordering::SeqCst));
    spin_until("completion counted", || m.stats(CpuId(1)).tasks_live == 0);
}

#[test]
fn cancel_after_completion_keeps_the_output() {
    let m = Machine::start(1);
    let r = m.block_on(CpuId(0), async {
        let h = executor::spawn(async { 9 });
        while !h.is_finished() {
            yield_now().await;
        }
        h.abort();
        h.await
    });
    assert_eq!(r, Ok(9));
}

#[test]
fn cancel_of_a_task_that_is_running_takes_effect_after_its_poll() {
    let m = Machine::start(2);
    let in_poll = Event::default();
    let dropped = Arc::new(AtomicBool::new(false));
    let (ip, d) = (in_poll.clone(), dropped.clone());
    let go = Arc::new(AtomicBool::new(false));
    let g = go.clone();
    let h = m
        .spawn_on(CpuId(1), async move {
            let _guard = Forever(d.clone());
            ip.set();
            spin_until("cancel requested", || g.load(Ordering::SeqCst));
            // Still running: nothing was dropped under our feet.
            assert!(!d.load(Ordering::SeqCst));
            Forever(Arc::new(AtomicBool::new(false))).await
        })
        .unwrap();
    spin_until("task inside its poll", || in_poll.is_set());
    h.cancel();
    go.store(true, Ordering::SeqCst);
    assert_eq!(executor::hosted::block_on_thread(h), Err(Cancelled));
    assert!(dropped.load(Ordering::SeqCst));
}

#[test]
fn dropping_the_handle_detaches_the_task() {
    let m = Machine::start(2);
    let ev = Event::default();
    let e = ev.clone();
    let finished = Event::default();
    let f = finished.clone();
    drop(m.spawn_on(CpuId(1), async move {
        e.wait().await;
        f.set();
    }));
    ev.set();
    spin_until("detached task finished", || finished.is_set());
}

#[test]
fn shutdown_cancels_queued_tasks() {
    let m = Machine::start(2);
    let dropped: Vec<_> = (0..4).map(|_| Arc::new(AtomicBool::new(false))).collect();
    let mut handles = Vec::new();
    for (i, d) in dropped.iter().enumerate() {
        let d = d.clone();
        handles.push(
            m.spawn_on(CpuId(i as u32 % 2), async move {
                let _g = Forever(d);
                loop {
                    yield_now().await;
                }
            })
            .unwrap(),
        );
    }
    std::thread::sleep(Duration::from_millis(10));
    m.shutdown();
    for d in &dropped {
        assert!(d.load(Ordering::SeqCst), "future dropped at shutdown");
    }
    for h in handles {
        assert_eq!(executor::hosted::block_on_thread(h), Err(Cancelled));
    }
}

#[test]
fn now_ns_is_the_clock_sleep_measures_against() {
    let m = Machine::start(1);
    let (before, deadline, after) = m.block_on(CpuId(0), async {
        let before = executor::now_ns();
        let s = sleep(Duration::from_millis(20));
        let deadline = s.deadline_ns();
        s.await;
        (before, deadline, executor::now_ns())
    });
    assert!(deadline >= before + 20_000_000, "{before} {deadline}");
    assert!(
        after >= deadline,
        "woken before the deadline: {after} < {deadline}"
    );
}

#[test]
#[should_panic(expected = "executor::now_ns called outside a CPU")]
fn now_ns_outside_a_cpu_panics() {
    let _m = Machine::start(1);
    executor::now_ns();
}
