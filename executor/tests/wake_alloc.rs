//! Waking a task allocates nothing, on the owner CPU or across CPUs (the waker's data
//! pointer is the task; a remote wake is one IPI ring slot). Counted per thread by
//! `allocation-counter`'s global allocator.
// Hosted tests use real threads and atomics; under `--cfg loom` only the loom models run.
#![cfg(not(loom))]

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use allocation_counter::measure;
use executor::CpuId;
use executor::hosted::Machine;

type WakerSlot = Arc<Mutex<Option<Waker>>>;

/// A task that parks its waker in `slot` and stays pending for `polls` polls.
fn parker(slot: WakerSlot, polls: usize) -> impl Future<Output = usize> + Send {
    let mut seen = 0;
    std::future::poll_fn(move |cx| {
        seen += 1;
        if seen > polls {
            return Poll::Ready(seen);
        }
        let mut g = slot.lock().unwrap();
        if !g.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *g = Some(cx.waker().clone());
        }
        Poll::Pending
    })
}

async fn wait_parked(slot: &WakerSlot) -> Waker {
    loop {
        if let Some(w) = slot.lock().unwrap().clone() {
            return w;
        }
        executor::yield_now().await;
    }
}

#[test]
fn waking_a_task_of_this_cpu_allocates_nothing() {
    let m = Machine::start(1);
    let allocations = m.block_on(CpuId(0), async {
        let slot = WakerSlot::default();
        let task = executor::spawn(parker(slot.clone(), 500));
        let waker = wait_parked(&slot).await;
        // Control: the counter does see this thread's allocations.
        assert_eq!(
            measure(|| drop(std::hint::black_box(Box::new(1u64)))).count_total,
            1
        );
        let mut allocations = 0;
        for _ in 0..500 {
            allocations += measure(|| waker.wake_by_ref()).count_total;
            executor::yield_now().await; // the woken task runs, parks again
        }
        assert_eq!(task.await.unwrap(), 501);
        allocations
    });
    assert_eq!(allocations, 0);
    assert!(m.stats(CpuId(0)).local_wakes >= 500);
}

#[test]
fn waking_a_task_of_another_cpu_allocates_nothing() {
    let m = Machine::start(2);
    let allocations = m.block_on(CpuId(0), async {
        let slot = WakerSlot::default();
        let task = executor::spawn_on(CpuId(1), parker(slot.clone(), 200)).unwrap();
        let waker = wait_parked(&slot).await;
        let mut allocations = 0;
        for _ in 0..200 {
            allocations += measure(|| waker.wake_by_ref()).count_total;
            // Give CPU 1 time to poll it again before the next wake.
            for _ in 0..50 {
                executor::yield_now().await;
            }
        }
        task.cancel();
        allocations
    });
    assert_eq!(allocations, 0);
    assert!(m.stats(CpuId(0)).remote_wakes >= 1);
}
