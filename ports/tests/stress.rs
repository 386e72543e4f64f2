// SPDX-License-Identifier: MIT OR Apache-2.0
//! Stress: a million cross-CPU messages, both directions at once, no lost wake-up.
//!
//! Size: 1,000,000 messages in a release build (`cargo test --release -p ports --test
//! stress`, a few seconds), 100,000 in a debug build so plain `cargo test` stays quick
//! on a shared 2-core machine. `PORTS_STRESS_MESSAGES=n` overrides either. A lost
//! wake-up shows up as a hang, so the run is guarded by a watchdog.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use ports::{AlwaysQueue, Port, ReplyPort};

fn messages() -> u64 {
    std::env::var("PORTS_STRESS_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if cfg!(debug_assertions) {
            100_000
        } else {
            1_000_000
        })
}

/// Messages in flight per direction in the windowed phase.
const WINDOW: u64 = 128;

/// Sends `n` messages to `port` keeping `WINDOW` in flight, then `n` strict round trips
/// with `call`; checks every reply, in order.
async fn drive(port: Port<Msg>, n: u64) -> u64 {
    let mut reply_port = ReplyPort::new();
    let mut sent = 0;
    let mut next_reply = 0;
    while next_reply < n {
        while sent < n && sent - next_reply < WINDOW {
            port.send(Msg::new(sent), &reply_port);
            sent += 1;
        }
        let m = reply_port.recv().await.expect("served");
        assert_eq!(m.id, next_reply, "FIFO per sender-receiver pair");
        assert_eq!(m.value, next_reply + 1000);
        next_reply += 1;
    }
    for id in 0..n {
        let m = port.call(Msg::new(id)).await.expect("served");
        assert_eq!(m.value, id + 1000);
    }
    2 * n
}

#[test]
fn a_million_cross_cpu_messages_with_no_lost_wakeup() {
    let total = messages();
    // Two directions, each split between windowed sends and strict round trips.
    let per_phase = total / 4;
    let (done_tx, done_rx) = mpsc::channel();
    let started = Instant::now();
    let worker = std::thread::spawn(move || {
        let machine = machine();
        let (port_on_1, server_1) = Port::executor(CPU1, AlwaysQueue);
        let (port_on_0, server_0) = Port::executor(CPU0, AlwaysQueue);
        let served = run(&machine, CPU0, async move {
            let s1 = spawn_on(CPU1, serve_n(server_1, 2 * per_phase as usize));
            let s0 = spawn_on(CPU0, serve_n(server_0, 2 * per_phase as usize));
            let from_1 = spawn_on(CPU1, drive(port_on_0, per_phase));
            let from_0 = drive(port_on_1, per_phase).await;
            let from_1 = join(from_1).await;
            join(s0).await;
            join(s1).await;
            from_0 + from_1
        });
        done_tx.send(served).unwrap();
    });
    let served = done_rx
        .recv_timeout(Duration::from_secs(300))
        .expect("no progress for 300 s: a lost wake-up");
    worker.join().unwrap();
    assert_eq!(served, 4 * per_phase);
    eprintln!(
        "stress: {served} cross-CPU messages in {:?}",
        started.elapsed()
    );
}
