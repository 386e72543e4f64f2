// SPDX-License-Identifier: MIT OR Apache-2.0
//! Allocation budget, proven with a counting global allocator: zero allocations on the
//! inline path, exactly one fixed-size allocation per queued message, and no leak when a
//! call is dropped mid-flight.
//!
//! Only the hosted CPU threads are counted (they are marked by `machine_counted`): a
//! cross-CPU put allocates on one CPU and frees on the other, while the test harness's
//! own threads allocate whenever they like. The tests of this binary take `SERIAL`, so
//! one window is open at a time.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Poll;

use common::*;
use ports::{Port, ReplyPort};

struct Counting;

thread_local! {
    /// Set on the hosted CPU threads: only their allocations are counted.
    static IS_CPU_THREAD: Cell<bool> = const { Cell::new(false) };
}

fn counted_thread() -> bool {
    // `try_with`: the allocator also runs while thread-locals are being torn down.
    IS_CPU_THREAD.try_with(Cell::get).unwrap_or(false)
}

/// A two-CPU machine whose CPU threads are counted.
fn machine_counted() -> executor::hosted::Machine {
    let machine = machine();
    for cpu in [CPU0, CPU1] {
        run(&machine, cpu, async { IS_CPU_THREAD.with(|c| c.set(true)) });
    }
    machine
}

static ENABLED: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static LIVE_BYTES: AtomicI64 = AtomicI64::new(0);
static MIN_SIZE: AtomicUsize = AtomicUsize::new(usize::MAX);
static MAX_SIZE: AtomicUsize = AtomicUsize::new(0);
/// Live allocations per size (index `size / 8`, capped): a free of something allocated
/// before the window (the executor reclaiming an earlier task) lands in another class
/// than the envelopes, so the envelopes' class shows exactly what the window leaked.
static LIVE_BY_CLASS: [AtomicI64; 129] = [const { AtomicI64::new(0) }; 129];

fn class(size: usize) -> usize {
    (size / 8).min(128)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so
// `System`'s guarantees are ours; the bookkeeping only touches atomics and a
// const-initialised thread-local `Cell<bool>` (no allocation, no reentrancy).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if ENABLED.load(Ordering::Relaxed) && counted_thread() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            LIVE_BYTES.fetch_add(layout.size() as i64, Ordering::Relaxed);
            MIN_SIZE.fetch_min(layout.size(), Ordering::Relaxed);
            MAX_SIZE.fetch_max(layout.size(), Ordering::Relaxed);
            LIVE_BY_CLASS[class(layout.size())].fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ENABLED.load(Ordering::Relaxed) && counted_thread() {
            LIVE_BYTES.fetch_sub(layout.size() as i64, Ordering::Relaxed);
            LIVE_BY_CLASS[class(layout.size())].fetch_sub(1, Ordering::Relaxed);
        }
        // SAFETY: forwarded unchanged; `ptr` came from `System.alloc` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

static SERIAL: Mutex<()> = Mutex::new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    allocs: u64,
    /// Bytes allocated minus bytes freed in the window, all classes (informational).
    live_bytes: i64,
    /// Allocations of the window's (single) size still live at its end: the leak check.
    live_of_size: i64,
    min_size: usize,
    max_size: usize,
}

fn start_counting() {
    ALLOCS.store(0, Ordering::SeqCst);
    LIVE_BYTES.store(0, Ordering::SeqCst);
    MIN_SIZE.store(usize::MAX, Ordering::SeqCst);
    MAX_SIZE.store(0, Ordering::SeqCst);
    for live in &LIVE_BY_CLASS {
        live.store(0, Ordering::SeqCst);
    }
    ENABLED.store(true, Ordering::SeqCst);
}

fn stop_counting() -> Window {
    ENABLED.store(false, Ordering::SeqCst);
    let max_size = MAX_SIZE.load(Ordering::SeqCst);
    Window {
        allocs: ALLOCS.load(Ordering::SeqCst),
        live_bytes: LIVE_BYTES.load(Ordering::SeqCst),
        live_of_size: LIVE_BY_CLASS[class(max_size)].load(Ordering::SeqCst),
        min_size: MIN_SIZE.load(Ordering::SeqCst),
        max_size: MAX_SIZE.load(Ordering::SeqCst),
    }
}

const N: u64 = 1000;

#[test]
fn inline_call_put_and_function_ports_allocate_nothing() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let machine = machine_counted();
    let (port, _server) = port_for(Path::Inline);
    let spin_port = Port::spin(|mut m: Msg| {
        m.value += 1;
        m
    });
    let function_port = Port::function(|mut m: Msg| {
        m.value += 1;
        m
    });
    let window = run(&machine, CPU0, async move {
        let reply_port = ReplyPort::new();
        // Warm up anything lazily initialised on this CPU (thread-locals, the registry).
        let _ = port.call(Msg::new(0)).await;
        start_counting();
        let mut sum = 0;
        for id in 0..N {
            let mut call = port.call(Msg::new(id));
            let Poll::Ready(reply) = poll_once(&mut call).await else {
                panic!("inline")
            };
            sum += reply.expect("served").value;
            let Poll::Ready(reply) = port.put(Msg::new(id), &reply_port) else {
                panic!("inline")
            };
            sum += reply.expect("served").value;
            sum += spin_port.call(Msg::new(id)).await.expect("served").value;
            sum += function_port
                .call(Msg::new(id))
                .await
                .expect("served")
                .value;
        }
        let window = stop_counting();
        assert!(sum > 0);
        window
    });
    assert_eq!(
        window.allocs, 0,
        "the inline path allocates nothing: {window:?}"
    );
}

#[test]
fn a_queued_message_costs_exactly_one_fixed_size_allocation() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let machine = machine_counted();
    for path in [Path::QueuedLocal, Path::QueuedRemote] {
        let (port, server) = port_for(path);
        let (calls, sends) = run(&machine, CPU0, async move {
            let server_task = start_server(path, server, 2 * N as usize + 2);
            let mut reply_port = ReplyPort::new();
            // Warm up: first wake-ups, waker clones, lazily created queues.
            let _ = port.call(Msg::new(0)).await;
            port.send(Msg::new(0), &reply_port);
            let _ = reply_port.recv().await;

            start_counting();
            for id in 0..N {
                let reply = port.call(Msg::new(id)).await.expect("served");
                assert_eq!(reply.value, id + 1000);
            }
            let calls = stop_counting();

            start_counting();
            for id in 0..N {
                port.send(Msg::new(id), &reply_port);
            }
            for id in 0..N {
                assert_eq!(reply_port.recv().await.expect("served").id, id);
            }
            let sends = stop_counting();
            let _server = join(server_task).await;
            (calls, sends)
        });
        for (what, w) in [("call", calls), ("send", sends)] {
            assert_eq!(
                w.allocs, N,
                "{path:?} {what}: one allocation per queued message: {w:?}"
            );
            assert_eq!(
                w.min_size, w.max_size,
                "{path:?} {what}: all of one fixed size: {w:?}"
            );
            assert_eq!(
                w.live_of_size, 0,
                "{path:?} {what}: every envelope freed: {w:?}"
            );
        }
    }
}

#[test]
fn send_of_an_inline_completion_costs_one_allocation() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let machine = machine_counted();
    let (port, _server) = port_for(Path::Inline);
    let w = run(&machine, CPU0, async move {
        let mut reply_port = ReplyPort::new();
        port.send(Msg::new(0), &reply_port);
        let _ = reply_port.recv().await;
        start_counting();
        for id in 0..N {
            port.send(Msg::new(id), &reply_port);
            assert_eq!(reply_port.recv().await.expect("served").id, id);
        }
        stop_counting()
    });
    assert_eq!(
        (w.allocs, w.min_size, w.live_of_size),
        (N, w.max_size, 0),
        "{w:?}"
    );
}

#[test]
fn dropped_calls_leak_nothing_and_the_target_still_completes() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let machine = machine_counted();
    for path in [Path::QueuedLocal, Path::QueuedRemote] {
        let (port, server) = port_for(path);
        let drops = Drops::default();
        let d = drops.clone();
        let served = Arc::new(AtomicU64::new(0));
        let served_by_server = served.clone();
        let w = run(&machine, CPU0, async move {
            let mut server = server;
            let server_task = spawn_on(path.port_cpu(), async move {
                for _ in 0..=N {
                    let mut req = server.recv().await;
                    req.msg_mut().serve();
                    req.reply(); // for an orphaned call, the message is dropped here
                    served_by_server.fetch_add(1, Ordering::SeqCst);
                }
                server
            });
            let _ = port.call(Msg::new(0)).await;
            start_counting();
            // Batches of 8 keep the executor's IPI ring far from full (a full ring is the
            // executor's business and may allocate; it is not what this test measures).
            for batch in 0..N / 8 {
                for id in batch * 8..(batch + 1) * 8 {
                    let mut call = port.call(Msg::counted(id, &d));
                    assert!(poll_once(&mut call).await.is_pending());
                    drop(call); // cancel mid-flight; the server still serves and replies
                }
                // Wait for the server without joining it (a join frees the task, which
                // was allocated before the window opened).
                while served.load(Ordering::SeqCst) < (batch + 1) * 8 + 1 {
                    yield_now().await;
                }
            }
            let w = stop_counting();
            let _server = join(server_task).await;
            w
        });
        assert_eq!(
            drops.count(),
            N as usize,
            "{path:?}: every message dropped exactly once"
        );
        assert_eq!(w.live_of_size, 0, "{path:?}: nothing leaked: {w:?}");
        assert_eq!(w.min_size, w.max_size, "{path:?}: {w:?}");
        assert_eq!(w.allocs, N, "{path:?}: {w:?}");
    }
}
