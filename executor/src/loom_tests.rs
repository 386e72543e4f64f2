//! loom models of the cross-CPU protocols: the IPI ring, the task state word (wake during
//! poll, cancel), the join handoff, and a remote wake through a ring.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p executor --release --lib loom`

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use loom::sync::Mutex;
use loom::thread;

use crate::IpiMsg;
use crate::raw::ring::{Endpoints, IPIQ_CAPACITY, RingMatrix};
use crate::raw::task::{
    self, Cancelled, Notified, RawJoin, RunHooks, RunOutcome, Schedule, TaskMeta,
};
use crate::sync::{Arc, AtomicBool, AtomicUsize, Ordering, StdArc};
use crate::task_local::TaskLocal;

fn nop(_: usize, _: usize) {}

#[test]
fn loom_ipi_ring_is_fifo_across_threads() {
    loom::model(|| {
        let matrix = Arc::new(RingMatrix::new(2));
        let consumer = RingMatrix::claim(&matrix, 1).expect("cpu1 free");
        let m = matrix.clone();
        let producer = thread::spawn(move || {
            let ends = RingMatrix::claim(&m, 0).expect("cpu0 free");
            for i in 0..3 {
                let mut msg = IpiMsg {
                    func: nop,
                    arg1: i,
                    arg2: 0,
                };
                loop {
                    match ends.push(1, msg) {
                        Ok(()) => break,
                        Err(back) => {
                            msg = back;
                            thread::yield_now();
                        }
                    }
                }
            }
        });
        let mut got = Vec::new();
        while got.len() < 3 {
            match consumer.pop(0) {
                Some(msg) => got.push(msg.arg1),
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, [0, 1, 2]);
        assert!(consumer.pop(0).is_none());
    });
}

#[test]
fn loom_ipi_ring_refuses_when_full_and_endpoints_are_unique() {
    loom::model(|| {
        let matrix = Arc::new(RingMatrix::new(2));
        let a = RingMatrix::claim(&matrix, 0).expect("free");
        assert!(
            RingMatrix::claim(&matrix, 0).is_none(),
            "a CPU's ring ends are handed out once"
        );
        let b = RingMatrix::claim(&matrix, 1).expect("free");
        for i in 0..IPIQ_CAPACITY {
            assert!(
                a.push(
                    1,
                    IpiMsg {
                        func: nop,
                        arg1: i,
                        arg2: 0
                    }
                )
                .is_ok()
            );
        }
        assert!(
            a.push(
                1,
                IpiMsg {
                    func: nop,
                    arg1: 99,
                    arg2: 0
                }
            )
            .is_err()
        );
        assert_eq!(a.outgoing(1), IPIQ_CAPACITY);
        let t = thread::spawn(move || b.pop(0).map(|m| m.arg1));
        assert_eq!(t.join().unwrap(), Some(0));
        assert!(
            a.push(
                1,
                IpiMsg {
                    func: nop,
                    arg1: 32,
                    arg2: 0
                }
            )
            .is_ok()
        );
        drop(a);
        assert!(RingMatrix::claim(&matrix, 0).is_some(), "released on drop");
    });
}

// ---------------------------------------------------------------------------------------
// Task state word
// ---------------------------------------------------------------------------------------

/// A scheduler that queues woken tasks for the model's "CPU" thread.
#[derive(Clone)]
struct TestSched {
    queue: Arc<Mutex<VecDeque<Notified>>>,
    /// When set, `schedule` sends through this ring end (a remote wake) instead.
    remote: Option<Arc<Mutex<Endpoints>>>,
}

impl Schedule for TestSched {
    fn schedule(&self, task: Notified) {
        match &self.remote {
            Some(ends) => {
                let ends = ends.lock().unwrap();
                ends.push(0, task.into_ipi())
                    .unwrap_or_else(|_| panic!("ring full in a 1-message model"));
            }
            None => self.queue.lock().unwrap().push_back(task),
        }
    }

    fn schedule_arrived(&self, task: Notified) {
        self.queue.lock().unwrap().push_back(task);
    }
}

struct Hooks;

impl RunHooks for Hooks {
    fn before_poll(&mut self, _: &mut TaskLocal) -> bool {
        true
    }
    fn after_poll(&mut self, _: &mut TaskLocal) {}
    fn completed(&mut self) {}
}

/// Pending until `go` is set; parks its waker in `slot`. Output: number of polls.
struct WaitFor {
    go: Arc<AtomicBool>,
    slot: Arc<Mutex<Option<Waker>>>,
    polls: usize,
}

impl Future for WaitFor {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        self.polls += 1;
        *self.slot.lock().unwrap() = Some(cx.waker().clone());
        if self.go.load(Ordering::Acquire) {
            Poll::Ready(self.polls)
        } else {
            Poll::Pending
        }
    }
}

type WaitForParts = (
    Notified,
    RawJoin<usize>,
    Arc<AtomicBool>,
    Arc<Mutex<Option<Waker>>>,
);

fn spawn_wait_for(sched: TestSched) -> WaitForParts {
    let go = Arc::new(AtomicBool::new(false));
    let slot = Arc::new(Mutex::new(None));
    let fut = WaitFor {
        go: go.clone(),
        slot: slot.clone(),
        polls: 0,
    };
    let (n, j) = task::spawn(
        fut,
        sched,
        TaskMeta { owner: 0, level: 2 },
        TaskLocal::default(),
    );
    (n, j, go, slot)
}

/// The model's CPU: runs queued tasks until one completes.
fn run_until_complete(queue: &Mutex<VecDeque<Notified>>, ends: Option<&Endpoints>) {
    loop {
        if let Some(ends) = ends {
            while let Some(msg) = ends.pop(1) {
                (msg.func)(msg.arg1, msg.arg2);
            }
        }
        let next = queue.lock().unwrap().pop_front();
        match next {
            Some(task) => match task.run(&mut Hooks) {
                RunOutcome::Rescheduled(t) | RunOutcome::PassedOver(t) => {
                    queue.lock().unwrap().push_back(t)
                }
                RunOutcome::Idle => {}
                RunOutcome::Completed => return,
            },
            None => thread::yield_now(),
        }
    }
}

fn waker_from_slot(slot: &Mutex<Option<Waker>>) -> Waker {
    loop {
        if let Some(w) = slot.lock().unwrap().clone() {
            return w;
        }
        thread::yield_now();
    }
}

#[test]
fn loom_wake_racing_with_poll_is_never_lost() {
    loom::model(|| {
        let sched = TestSched {
            queue: Arc::new(Mutex::new(VecDeque::new())),
            remote: None,
        };
        let (notified, mut join, go, slot) = spawn_wait_for(sched.clone());
        sched.queue.lock().unwrap().push_back(notified);
        let waker_thread = thread::spawn(move || {
            let w = waker_from_slot(&slot);
            go.store(true, Ordering::Release);
            w.wake();
        });
        run_until_complete(&sched.queue, None);
        waker_thread.join().unwrap();
        let mut cx = Context::from_waker(Waker::noop());
        match join.poll_join(&mut cx) {
            Poll::Ready(Ok(polls)) => assert!((1..=3).contains(&polls), "{polls}"),
            other => panic!(
                "join not ready after completion: {:?}",
                other.map(|r| r.is_ok())
            ),
        }
    });
}

#[test]
fn loom_remote_wake_through_the_ipi_ring() {
    loom::model(|| {
        let matrix = Arc::new(RingMatrix::new(2));
        let cpu0 = RingMatrix::claim(&matrix, 0).expect("free");
        let cpu1 = Arc::new(Mutex::new(RingMatrix::claim(&matrix, 1).expect("free")));
        let queue = Arc::new(Mutex::new(VecDeque::new()));
        let sched = TestSched {
            queue: queue.clone(),
            remote: Some(cpu1),
        };
        let (notified, _join, go, slot) = spawn_wait_for(sched);
        queue.lock().unwrap().push_back(notified);
        let remote_cpu = thread::spawn(move || {
            let w = waker_from_slot(&slot);
            go.store(true, Ordering::Release);
            w.wake(); // -> schedule -> into_ipi -> ring (1, 0)
        });
        run_until_complete(&queue, Some(&cpu0));
        remote_cpu.join().unwrap();
    });
}

#[test]
fn loom_join_waker_is_woken_when_the_task_completes() {
    loom::model(|| {
        struct Flag(AtomicBool);
        impl alloc::task::Wake for Flag {
            fn wake(self: StdArc<Self>) {
                self.0.store(true, Ordering::Release);
            }
        }
        let sched = TestSched {
            queue: Arc::new(Mutex::new(VecDeque::new())),
            remote: None,
        };
        let (notified, mut join) = task::spawn(
            async { 7 },
            sched.clone(),
            TaskMeta { owner: 0, level: 2 },
            TaskLocal::default(),
        );
        let cpu = thread::spawn(move || {
            let _ = notified.run(&mut Hooks);
        });
        let flag = StdArc::new(Flag(AtomicBool::new(false)));
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        let out = match join.poll_join(&mut cx) {
            Poll::Ready(r) => r,
            Poll::Pending => {
                while !flag.0.load(Ordering::Acquire) {
                    thread::yield_now();
                }
                match join.poll_join(&mut cx) {
                    Poll::Ready(r) => r,
                    Poll::Pending => panic!("woken but not complete"),
                }
            }
        };
        cpu.join().unwrap();
        assert_eq!(out, Ok(7));
    });
}

#[test]
fn loom_cancel_racing_with_the_owner() {
    loom::model(|| {
        let sched = TestSched {
            queue: Arc::new(Mutex::new(VecDeque::new())),
            remote: None,
        };
        let dropped = Arc::new(AtomicUsize::new(0));
        struct Pend(Arc<AtomicUsize>);
        impl Future for Pend {
            type Output = ();
            fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
                Poll::Pending
            }
        }
        impl Drop for Pend {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (notified, join) = task::spawn(
            Pend(dropped.clone()),
            sched.clone(),
            TaskMeta { owner: 0, level: 2 },
            TaskLocal::default(),
        );
        sched.queue.lock().unwrap().push_back(notified);
        let join = Arc::new(Mutex::new(join));
        let j = join.clone();
        let canceller = thread::spawn(move || j.lock().unwrap().cancel());
        run_until_complete(&sched.queue, None);
        canceller.join().unwrap();
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            1,
            "future dropped exactly once"
        );
        let mut cx = Context::from_waker(Waker::noop());
        let r = join.lock().unwrap().poll_join(&mut cx);
        assert!(matches!(r, Poll::Ready(Err(Cancelled))));
    });
}

#[test]
fn loom_concurrent_wakes_make_exactly_one_notified() {
    loom::model(|| {
        let sched = TestSched {
            queue: Arc::new(Mutex::new(VecDeque::new())),
            remote: None,
        };
        let (notified, _join, _go, slot) = spawn_wait_for(sched.clone());
        // First poll: Pending, waker parked, task idle.
        assert!(matches!(notified.run(&mut Hooks), RunOutcome::Idle));
        let w1 = slot.lock().unwrap().clone().expect("parked");
        let w2 = w1.clone();
        let a = thread::spawn(move || w1.wake());
        let b = thread::spawn(move || w2.wake());
        a.join().unwrap();
        b.join().unwrap();
        // Invariant I1: one Notified, however many wakers raced.
        assert_eq!(sched.queue.lock().unwrap().len(), 1);
        // Tear down (loom checks for leaks): break the waker cycle, cancel the task.
        drop(slot.lock().unwrap().take());
        let task = sched.queue.lock().unwrap().pop_front().expect("queued");
        task.cancel_now();
    });
}
