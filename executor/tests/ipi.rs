//! IPI queues, remote wakes, critical sections and interrupts on a hosted machine.
// Hosted tests use real threads and atomics; under `--cfg loom` only the loom models run.
#![cfg(not(loom))]

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Event, Trace, block_on_within, spin_until};
use executor::hosted::Machine;
use executor::{CpuId, IPIQ_CAPACITY, IpiMsg, crit_enter, crit_exit, interrupt_point, ipi_send};

#[test]
fn remote_wake_goes_through_the_owner_ipi_queue() {
    let m = Machine::start(2);
    let ev = Event::default();
    let waiter_ev = ev.clone();
    let waiter = m
        .spawn_on(CpuId(1), async move {
            waiter_ev.wait().await;
            executor::current_cpu()
        })
        .unwrap();
    // Let the waiter park its waker, then wake it from CPU 0.
    spin_until("waiter polled", || m.stats(CpuId(1)).polls >= 1);
    m.block_on(CpuId(0), async move { ev.set() });
    assert_eq!(common::block_on_join(waiter), CpuId(1));
    let s0 = m.stats(CpuId(0));
    let s1 = m.stats(CpuId(1));
    assert_eq!(s0.remote_wakes, 1, "{s0:?}");
    assert!(s1.ipis_received >= 1, "{s1:?}");
    assert!(s0.ipis_sent + s0.ipis_avoided >= 1, "{s0:?}");
}

static FIFO_LOG: Mutex<Vec<usize>> = Mutex::new(Vec::new());

fn log_fifo(a: usize, b: usize) {
    assert_eq!(
        executor::current_cpu(),
        CpuId(b as u32),
        "ran on the target CPU"
    );
    FIFO_LOG.lock().unwrap().push(a);
}

#[test]
fn ipi_messages_run_on_the_target_in_fifo_order() {
    let m = Machine::start(2);
    let n = 10 * IPIQ_CAPACITY;
    m.block_on(CpuId(0), async move {
        for i in 0..n {
            ipi_send(
                CpuId(1),
                IpiMsg {
                    func: log_fifo,
                    arg1: i,
                    arg2: 1,
                },
            );
        }
    });
    spin_until("all messages ran", || FIFO_LOG.lock().unwrap().len() == n);
    assert_eq!(*FIFO_LOG.lock().unwrap(), (0..n).collect::<Vec<_>>());
}

static INLINE_RAN: AtomicBool = AtomicBool::new(false);

fn mark_inline(_: usize, _: usize) {
    INLINE_RAN.store(true, Ordering::SeqCst);
}

#[test]
fn ipi_to_self_runs_inline() {
    let m = Machine::start(2);
    let ran_before_return = m.block_on(CpuId(1), async {
        ipi_send(
            CpuId(1),
            IpiMsg {
                func: mark_inline,
                arg1: 0,
                arg2: 0,
            },
        );
        INLINE_RAN.load(Ordering::SeqCst)
    });
    assert!(ran_before_return);
    let s = m.stats(CpuId(1));
    assert_eq!(s.ipis_sent + s.ipis_avoided, 0, "no queue, no IPI: {s:?}");
}

#[test]
fn ipi_to_a_missing_cpu_is_an_error() {
    let m = Machine::start(2);
    let r = m.block_on(CpuId(0), async {
        executor::try_ipi_send(
            CpuId(9),
            IpiMsg {
                func: mark_inline,
                arg1: 0,
                arg2: 0,
            },
        )
    });
    assert_eq!(r, Err(executor::SpawnError::NoSuchCpu));
    assert!(
        m.ipi_send(
            CpuId(5),
            IpiMsg {
                func: mark_inline,
                arg1: 0,
                arg2: 0
            }
        )
        .is_err()
    );
}

static AVOID_COUNT: AtomicUsize = AtomicUsize::new(0);

fn count_avoid(_: usize, _: usize) {
    AVOID_COUNT.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn no_hardware_ipi_while_the_target_has_not_drained() {
    let m = Machine::start(2);
    let release = std::sync::Arc::new(AtomicBool::new(false));
    let started = std::sync::Arc::new(AtomicBool::new(false));
    let (r, s) = (release.clone(), started.clone());
    // CPU 1 is busy inside one long poll, so it does not drain its queues.
    let busy = m
        .spawn_on(CpuId(1), async move {
            s.store(true, Ordering::SeqCst);
            while !r.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
        })
        .unwrap();
    spin_until("busy task started", || started.load(Ordering::SeqCst));
    let sends = IPIQ_CAPACITY / 2 - 1;
    m.block_on(CpuId(0), async move {
        for _ in 0..sends {
            ipi_send(
                CpuId(1),
                IpiMsg {
                    func: count_avoid,
                    arg1: 0,
                    arg2: 0,
                },
            );
        }
        release.store(true, Ordering::SeqCst);
    });
    common::block_on_join(busy);
    spin_until("messages ran", || {
        AVOID_COUNT.load(Ordering::SeqCst) == sends
    });
    let s0 = m.stats(CpuId(0));
    assert_eq!(
        s0.ipis_sent, 1,
        "only the first send interrupts CPU 1: {s0:?}"
    );
    assert_eq!(s0.ipis_avoided, sends as u64 - 1, "{s0:?}");
}

static FLOOD: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static FLOOD_READY: AtomicUsize = AtomicUsize::new(0);

fn flood_recv(_: usize, target: usize) {
    FLOOD[target].fetch_add(1, Ordering::Relaxed);
}

#[test]
fn two_cpus_flooding_each_other_do_not_deadlock() {
    let m = Machine::start(2);
    const N: usize = 20_000;
    let flood = |me: u32| async move {
        let other = 1 - me;
        FLOOD_READY.fetch_add(1, Ordering::SeqCst);
        // Both CPUs send from inside one poll, never yielding: only the half-full drain
        // rule lets each make progress.
        while FLOOD_READY.load(Ordering::SeqCst) < 2 {
            std::thread::yield_now();
        }
        for i in 0..N {
            ipi_send(
                CpuId(other),
                IpiMsg {
                    func: flood_recv,
                    arg1: i,
                    arg2: other as usize,
                },
            );
        }
    };
    let a = m.spawn_on(CpuId(0), flood(0)).unwrap();
    let b = m.spawn_on(CpuId(1), flood(1)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        common::block_on_join(a);
        common::block_on_join(b);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("flooding CPUs deadlocked");
    spin_until("all delivered", || {
        FLOOD[0].load(Ordering::Relaxed) == N && FLOOD[1].load(Ordering::Relaxed) == N
    });
    let full = m.stats(CpuId(0)).ipiq_full + m.stats(CpuId(1)).ipiq_full;
    assert!(
        full > 0,
        "the queues did fill up (otherwise this test proved nothing)"
    );
}

// --- critical sections ---------------------------------------------------------------

static CRIT_TRACE: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());
static CRIT_SENT: AtomicBool = AtomicBool::new(false);
static CRIT_GO: AtomicBool = AtomicBool::new(false);

fn crit_ipi(_: usize, _: usize) {
    CRIT_TRACE.lock().unwrap().push("ipi");
}

#[test]
fn ipi_inside_a_critical_section_runs_at_the_outermost_exit() {
    let m = Machine::start(2);
    let sender = m
        .spawn_on(CpuId(1), async {
            spin_until("go", || CRIT_GO.load(Ordering::SeqCst));
            ipi_send(
                CpuId(0),
                IpiMsg {
                    func: crit_ipi,
                    arg1: 0,
                    arg2: 0,
                },
            );
            CRIT_SENT.store(true, Ordering::SeqCst);
        })
        .unwrap();
    m.block_on(CpuId(0), async {
        let log = |e| CRIT_TRACE.lock().unwrap().push(e);
        crit_enter();
        crit_enter();
        CRIT_GO.store(true, Ordering::SeqCst);
        spin_until("sent", || CRIT_SENT.load(Ordering::SeqCst));
        interrupt_point(); // the IPI "arrives" here, inside the section
        log("inner exit");
        crit_exit();
        interrupt_point();
        log("outer exit");
        crit_exit(); // 1 -> 0: deferred work runs now
        log("after");
    });
    common::block_on_join(sender);
    assert_eq!(
        *CRIT_TRACE.lock().unwrap(),
        ["inner exit", "outer exit", "ipi", "after"]
    );
}

static INT_TRACE: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn on_interrupt(arg: usize) {
    INT_TRACE.lock().unwrap().push(format!("irq{arg}"));
}

#[test]
fn interrupts_are_deferred_by_critical_sections_and_run_outside() {
    let m = Machine::start(1);
    let raised = Event::default();
    let entered = Event::default();
    let (r, en) = (raised.clone(), entered.clone());
    let task = m
        .spawn_on(CpuId(0), async move {
            let log = |e: &str| INT_TRACE.lock().unwrap().push(e.to_string());
            crit_enter();
            en.set();
            spin_until("raised", || r.is_set());
            interrupt_point();
            log("in crit");
            crit_exit();
            log("after crit");
            spin_until("second raised", || {
                r.is_set() && INT_TRACE.lock().unwrap().len() == 3
            });
        })
        .unwrap();
    spin_until("task inside its critical section", || entered.is_set());
    m.raise_interrupt(CpuId(0), on_interrupt, 1).unwrap();
    raised.set();
    common::block_on_join(task);
    assert_eq!(
        *INT_TRACE.lock().unwrap(),
        ["in crit", "irq1", "after crit"]
    );
    // Outside a critical section an interrupt runs at the next interrupt point (the loop).
    m.raise_interrupt(CpuId(0), on_interrupt, 2).unwrap();
    spin_until("irq2", || INT_TRACE.lock().unwrap().len() == 4);
    assert_eq!(INT_TRACE.lock().unwrap()[3], "irq2");
}

#[test]
fn crit_exit_without_enter_is_reported() {
    let m = Machine::start(1);
    let _detached = m.spawn_on(CpuId(0), async { crit_exit() }).unwrap();
    // The task panics on its CPU thread; the machine hands the panic over at shutdown.
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        std::thread::sleep(Duration::from_millis(50));
        m.shutdown()
    }));
    let err = joined.expect_err("crit_exit without crit_enter must panic");
    let msg = err
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string()));
    assert!(
        msg.unwrap_or_default()
            .contains("crit_exit without a matching crit_enter")
    );
}

#[test]
fn many_remote_wakes_all_arrive() {
    let m = Machine::start(3);
    let trace = Trace::default();
    let t = trace.clone();
    let n = 300;
    block_on_within(&m, CpuId(0), Duration::from_secs(20), async move {
        let mut events = Vec::new();
        let mut handles = Vec::new();
        for i in 0..n {
            let ev = Event::default();
            let e = ev.clone();
            let t = t.clone();
            let cpu = CpuId(1 + (i % 2) as u32);
            handles.push(
                executor::spawn_on(cpu, async move {
                    e.wait().await;
                    t.push("woken");
                })
                .unwrap(),
            );
            events.push(ev);
        }
        for ev in &events {
            executor::yield_now().await;
            ev.set();
        }
        for h in handles {
            h.await.unwrap();
        }
    });
    assert_eq!(trace.take().len(), n);
}

/// Regression (found by the ring stress test): a waker called while holding a lock must
/// not wait for the target CPU to drain its queue, because the target may be blocked on
/// that very lock. Here CPU 1 blocks on `lock` inside a poll while CPU 0, holding it, wakes
/// more of CPU 1's tasks than the ring can take.
#[test]
fn waking_many_remote_tasks_with_a_lock_held_does_not_wait_for_the_target() {
    let m = Machine::start(2);
    let n = 3 * IPIQ_CAPACITY;
    let events: Vec<Event> = (0..n).map(|_| Event::default()).collect();
    let mut waiters = Vec::new();
    for ev in &events {
        let ev = ev.clone();
        waiters.push(
            m.spawn_on(CpuId(1), async move { ev.wait().await })
                .unwrap(),
        );
    }
    spin_until("waiters parked", || m.stats(CpuId(1)).polls >= n as u64);
    let lock = std::sync::Arc::new(Mutex::new(()));
    let blocker_ready = Event::default();
    let (l, br) = (lock.clone(), blocker_ready.clone());
    let guard_taken = Event::default();
    let gt = guard_taken.clone();
    let blocker = m
        .spawn_on(CpuId(1), async move {
            spin_until("guard taken", || gt.is_set());
            br.set();
            drop(l.lock().unwrap()); // blocks CPU 1 inside this poll
        })
        .unwrap();
    block_on_within(&m, CpuId(0), Duration::from_secs(10), async move {
        let g = lock.lock().unwrap();
        guard_taken.set();
        spin_until("CPU 1 about to block", || blocker_ready.is_set());
        std::thread::sleep(Duration::from_millis(5));
        for ev in &events {
            ev.set(); // remote wakes while holding `lock`
        }
        drop(g);
    });
    common::block_on_join(blocker);
    for w in waiters {
        common::block_on_join(w);
    }
    assert!(m.stats(CpuId(0)).ipiq_full > 0, "the ring did fill up");
}

static VECTOR_LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn on_vector(arg: usize) {
    VECTOR_LOG.lock().unwrap().push(format!("vector arg {arg}"));
}

#[test]
fn posted_interrupt_vectors_coalesce_and_respect_critical_sections() {
    use executor::InterruptError;
    let m = Machine::start(2);
    let rt = m.runtime();
    rt.register_interrupt(CpuId(0), 5, on_vector, 55).unwrap();
    assert_eq!(
        rt.register_interrupt(CpuId(0), 5, on_vector, 1),
        Err(InterruptError::AlreadyRegistered)
    );
    assert_eq!(
        rt.register_interrupt(CpuId(0), 64, on_vector, 1),
        Err(InterruptError::NoSuchVector)
    );
    assert_eq!(
        rt.post_interrupt(CpuId(2), 5),
        Err(InterruptError::NoSuchCpu)
    );
    let inside = Event::default();
    let posted = Event::default();
    let (i, p) = (inside.clone(), posted.clone());
    let task = m
        .spawn_on(CpuId(0), async move {
            let log = |e: &str| VECTOR_LOG.lock().unwrap().push(e.to_string());
            crit_enter();
            i.set();
            spin_until("posted", || p.is_set());
            interrupt_point(); // deferred
            log("in crit");
            crit_exit(); // runs the handler once
            log("after crit");
        })
        .unwrap();
    spin_until("inside", || inside.is_set());
    rt.post_interrupt(CpuId(0), 5).unwrap();
    rt.post_interrupt(CpuId(0), 5).unwrap(); // coalesces with the first
    posted.set();
    common::block_on_join(task);
    assert_eq!(
        *VECTOR_LOG.lock().unwrap(),
        ["in crit", "vector arg 55", "after crit"]
    );
}
