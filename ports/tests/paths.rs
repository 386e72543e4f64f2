// SPDX-License-Identifier: MIT OR Apache-2.0
//! Port behaviour on the three paths: inline, queued on the same CPU, queued on another
//! CPU (two executors on two std threads).

mod common;

use std::pin::pin;
use std::task::Poll;

use common::*;
use futures_core::Stream;
use ports::{AlwaysQueue, Handled, Port, PortError, ReplyPort};

#[test]
fn call_replies_on_every_path_and_is_ready_on_first_poll_only_inline() {
    let machine = machine();
    for path in PATHS {
        let (port, server) = port_for(path);
        let out = run(&machine, CPU0, async move {
            let server_task = start_server(path, server, 3);
            let mut results = Vec::new();
            for id in 0..3 {
                let mut call = port.call(Msg::new(id));
                let first = poll_once(&mut call).await;
                let (ready_first, reply) = match first {
                    Poll::Ready(reply) => (true, reply),
                    Poll::Pending => {
                        assert!(call.is_queued());
                        (false, call.await)
                    }
                };
                let m = reply.expect("served");
                results.push((ready_first, m.id, m.value, m.served_on));
            }
            let _server = join(server_task).await;
            results
        });
        for (id, (ready_first, got_id, value, served_on)) in out.into_iter().enumerate() {
            assert_eq!(
                ready_first,
                path == Path::Inline,
                "{path:?}: Ready on first poll iff inline"
            );
            assert_eq!(got_id, id as u64);
            assert_eq!(
                value,
                id as u64 + 1000,
                "{path:?}: the reply carries the target's result"
            );
            assert_eq!(
                served_on,
                Some(path.port_cpu()),
                "{path:?}: served on the port's CPU"
            );
        }
    }
}

#[test]
fn put_is_ready_inline_and_pending_when_queued_with_the_reply_on_the_reply_port() {
    let machine = machine();
    for path in PATHS {
        let (port, server) = port_for(path);
        let (ready, reply_len_after_put, reply) = run(&machine, CPU0, async move {
            let server_task = start_server(path, server, 1);
            let mut reply_port = ReplyPort::new();
            let polled = port.put(Msg::new(7), &reply_port);
            let ready = polled.is_ready();
            // An inline reply is handed back by `put` itself, not posted to the port.
            let len = reply_port.len();
            let reply = match polled {
                Poll::Ready(reply) => reply,
                Poll::Pending => reply_port.recv().await,
            };
            let _server = join(server_task).await;
            (ready, len, reply.expect("served").value)
        });
        assert_eq!(ready, path == Path::Inline, "{path:?}");
        if path != Path::QueuedRemote {
            // (The remote server may already have replied onto the reply port.)
            assert_eq!(reply_len_after_put, 0, "{path:?}");
        }
        assert_eq!(reply, 1007, "{path:?}");
    }
}

#[test]
fn send_always_replies_through_the_reply_port_even_inline() {
    let machine = machine();
    for path in PATHS {
        let (port, server) = port_for(path);
        let values = run(&machine, CPU0, async move {
            let server_task = start_server(path, server, 4);
            let mut reply_port = ReplyPort::new();
            for id in 0..4 {
                port.send(Msg::new(id), &reply_port);
            }
            if path == Path::Inline {
                assert_eq!(
                    reply_port.len(),
                    4,
                    "inline replies are already queued on the reply port"
                );
            }
            let mut values = Vec::new();
            for _ in 0..4 {
                values.push(reply_port.recv().await.expect("served").value);
            }
            assert!(reply_port.try_recv().is_none());
            let _server = join(server_task).await;
            values
        });
        assert_eq!(
            values,
            vec![1000, 1001, 1002, 1003],
            "{path:?}: FIFO replies"
        );
    }
}

#[test]
fn reply_port_is_a_stream() {
    let machine = machine();
    for path in PATHS {
        let (port, server) = port_for(path);
        let ids = run(&machine, CPU0, async move {
            let server_task = start_server(path, server, 3);
            let mut reply_port = pin!(ReplyPort::new());
            for id in 0..3 {
                port.send(Msg::new(id), &reply_port);
            }
            let mut ids = Vec::new();
            while ids.len() < 3 {
                let next = std::future::poll_fn(|cx| reply_port.as_mut().poll_next(cx)).await;
                ids.push(
                    next.expect("a reply port stream never ends")
                        .expect("served")
                        .id,
                );
            }
            let _server = join(server_task).await;
            ids
        });
        assert_eq!(ids, vec![0, 1, 2], "{path:?}");
    }
}

#[test]
fn fifo_holds_per_sender_receiver_pair_across_cpus() {
    const N: u64 = 2000;
    let machine = machine();
    for path in [Path::QueuedLocal, Path::QueuedRemote] {
        let (port, mut server) = port_for(path);
        let (seen, replies) = run(&machine, CPU0, async move {
            let server_task = spawn_on(path.port_cpu(), async move {
                let mut seen = Vec::new();
                for _ in 0..N {
                    let req = server.recv().await;
                    seen.push(req.msg().id);
                    req.reply();
                }
                (seen, server)
            });
            let mut reply_port = ReplyPort::new();
            for id in 0..N {
                port.send(Msg::new(id), &reply_port);
                if id.is_multiple_of(64) {
                    yield_now().await; // let the server interleave with the sender
                }
            }
            let mut replies = Vec::new();
            for _ in 0..N {
                replies.push(reply_port.recv().await.expect("served").id);
            }
            let (seen, _server) = join(server_task).await;
            (seen, replies)
        });
        let expected: Vec<u64> = (0..N).collect();
        assert_eq!(
            seen, expected,
            "{path:?}: the target sees the sender's order"
        );
        assert_eq!(
            replies, expected,
            "{path:?}: replies come back in the same order"
        );
    }
}

#[test]
fn inline_handler_runs_on_the_port_cpu_when_put_from_another_cpu() {
    let machine = machine();
    let (port, _server) = Port::executor(CPU1, |mut m: Msg| {
        m.serve();
        Handled::Done(m)
    });
    let (served_on, queued) = run(&machine, CPU0, async move {
        let mut call = port.call(Msg::new(1));
        assert!(
            poll_once(&mut call).await.is_pending(),
            "a cross-CPU put is always asynchronous"
        );
        let queued = call.is_queued();
        (call.await.expect("served").served_on, queued)
    });
    assert!(queued);
    assert_eq!(
        served_on,
        Some(CPU1),
        "the handler ran on its own CPU, from the IPI"
    );
}

#[test]
fn forward_hands_the_message_to_a_new_target_and_the_reply_to_the_originator() {
    let machine = machine();
    for path in PATHS {
        // First hop: a queueing port on CPU1 whose server forwards to the port of `path`.
        let (front, mut front_server) = Port::<Msg>::executor(CPU1, AlwaysQueue);
        let (back, back_server) = port_for(path);
        let back_for_front = back.clone();
        let reply = run(&machine, CPU0, async move {
            let back_task = start_server(path, back_server, 1);
            let front_task = spawn_on(CPU1, async move {
                let mut req = front_server.recv().await;
                req.msg_mut().value += 1; // the first target may work on it too
                req.forward(&back_for_front);
                front_server
            });
            let reply = front.call(Msg::new(5)).await;
            let _front = join(front_task).await;
            let _back = join(back_task).await;
            reply
        });
        let m = reply.expect("served by the second target");
        assert_eq!(
            m.value,
            5 + 1 + 1000,
            "{path:?}: both targets worked on the message"
        );
        assert_eq!(m.served_on, Some(path.port_cpu()), "{path:?}");
        drop(back);
    }
}

#[test]
fn forward_to_an_inline_port_replies_at_once() {
    let machine = machine();
    let (front, mut front_server) = Port::<Msg>::executor(CPU0, AlwaysQueue);
    let back = Port::function(|mut m: Msg| {
        m.value += 1000;
        m
    });
    let value = run(&machine, CPU0, async move {
        let task = spawn_on(CPU0, async move {
            front_server.recv().await.forward(&back);
            front_server
        });
        let value = front.call(Msg::new(1)).await.expect("served").value;
        let _server = join(task).await;
        value
    });
    assert_eq!(value, 1001);
}

#[test]
fn abort_is_advisory_and_the_target_still_replies() {
    let machine = machine();
    for path in [Path::QueuedLocal, Path::QueuedRemote] {
        let (port, mut server) = port_for(path);
        let (aborted_accepted, target_saw_abort, reply_value) = run(&machine, CPU0, async move {
            let server_task = spawn_on(path.port_cpu(), async move {
                let mut req = server.recv().await;
                // Wait for the abort like a driver waiting for a device or an abort.
                req.aborted().await;
                let saw = req.is_abort_requested();
                req.msg_mut().value = 0xAB07; // protocol-level "aborted" result
                req.reply();
                (saw, server)
            });
            let mut call = port.call(Msg::new(1));
            assert!(poll_once(&mut call).await.is_pending());
            let accepted = call.abort();
            let reply = call.await.expect("abort never loses the reply");
            let (saw, _server) = join(server_task).await;
            (accepted, saw, reply.value)
        });
        assert!(aborted_accepted, "{path:?}");
        assert!(target_saw_abort, "{path:?}");
        assert_eq!(reply_value, 0xAB07, "{path:?}");
    }
}

#[test]
fn abort_of_an_inline_or_unstarted_call_is_refused() {
    let machine = machine();
    let (port, _server) = port_for(Path::Inline);
    let (before, after) = run(&machine, CPU0, async move {
        let mut call = port.call(Msg::new(1));
        let before = call.abort();
        assert!(poll_once(&mut call).await.is_ready());
        (before, call.abort())
    });
    assert!(!before && !after);
}

#[test]
fn abort_racing_the_reply_never_loses_or_duplicates_it() {
    const ROUNDS: u64 = 2000;
    let machine = machine();
    let (port, mut server) = Port::<Msg>::executor(CPU1, AlwaysQueue);
    let (accepted, values) = run(&machine, CPU0, async move {
        let server_task = spawn_on(CPU1, async move {
            for _ in 0..ROUNDS {
                let mut req = server.recv().await;
                req.msg_mut().serve();
                req.reply(); // races the abort from CPU0
            }
            server
        });
        let mut accepted = 0;
        let mut values = Vec::new();
        for id in 0..ROUNDS {
            let mut call = port.call(Msg::new(id));
            assert!(poll_once(&mut call).await.is_pending());
            if call.abort() {
                accepted += 1;
            }
            values.push(call.await.expect("replied").value);
        }
        let _server = join(server_task).await;
        (accepted, values)
    });
    assert_eq!(values, (0..ROUNDS).map(|id| id + 1000).collect::<Vec<_>>());
    // Which side wins each race is timing; both outcomes were legal, none was lost.
    assert!(accepted <= ROUNDS);
}

#[test]
fn dropping_a_call_mid_flight_keeps_the_message_alive_until_the_target_replies() {
    let machine = machine();
    for path in [Path::QueuedLocal, Path::QueuedRemote] {
        let drops = Drops::default();
        let (port, mut server) = port_for(path);
        let d = drops.clone();
        let (alive_in_target, saw_abort, dropped_after) = run(&machine, CPU0, async move {
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let mut call = port.call(Msg::counted(1, &d));
            assert!(poll_once(&mut call).await.is_pending());
            drop(call); // cancel mid-flight
            assert_eq!(d.count(), 0, "the queued message outlives the dropped call");
            let d2 = d.clone();
            let server_task = spawn_on(path.port_cpu(), async move {
                let mut req = server.recv().await;
                let alive = d2.count() == 0;
                let saw_abort = req.is_abort_requested();
                req.msg_mut().serve(); // the target still uses the message's memory
                req.reply(); // the orphaned reply is dropped here, once
                go_tx.send(()).unwrap();
                (alive, saw_abort, server)
            });
            let (alive, saw_abort, _server) = join(server_task).await;
            go_rx.recv().unwrap();
            (alive, saw_abort, d.count())
        });
        assert!(
            alive_in_target,
            "{path:?}: never freed while the target holds it"
        );
        assert!(saw_abort, "{path:?}: dropping a call requests an abort");
        assert_eq!(
            dropped_after, 1,
            "{path:?}: freed exactly once, by the reply"
        );
        assert_eq!(drops.count(), 1);
    }
}

#[test]
fn dropping_a_call_after_the_reply_arrived_frees_the_reply_once() {
    let machine = machine();
    let drops = Drops::default();
    let (port, server) = port_for(Path::QueuedRemote);
    let d = drops.clone();
    run(&machine, CPU0, async move {
        let server_task = start_server(Path::QueuedRemote, server, 1);
        let mut call = port.call(Msg::counted(1, &d));
        assert!(poll_once(&mut call).await.is_pending());
        let _server = join(server_task).await; // replied, reply waiting in the envelope
        assert_eq!(d.count(), 0);
        drop(call);
    });
    assert_eq!(drops.count(), 1);
}

#[test]
fn a_dropped_request_bounces_the_message_back_unreplied() {
    let machine = machine();
    for path in [Path::QueuedLocal, Path::QueuedRemote] {
        let (port, mut server) = port_for(path);
        let reply = run(&machine, CPU0, async move {
            let task = spawn_on(path.port_cpu(), async move {
                drop(server.recv().await);
                server
            });
            let reply = port.call(Msg::new(3)).await;
            let _server = join(task).await;
            reply
        });
        let (error, msg) = reply.expect_err("not replied");
        assert_eq!(error, PortError::Unreplied, "{path:?}");
        assert_eq!(msg.id, 3, "{path:?}: the message comes back");
    }
}

#[test]
fn a_closed_port_bounces_queued_and_new_messages() {
    let machine = machine();
    for path in [Path::QueuedLocal, Path::QueuedRemote] {
        let (port, server) = port_for(path);
        let (queued, later) = run(&machine, CPU0, async move {
            let mut reply_port = ReplyPort::new();
            port.send(Msg::new(1), &reply_port);
            // Drop the server on its own CPU while message 1 waits in its queue.
            join(spawn_on(path.port_cpu(), async move { drop(server) })).await;
            let queued = reply_port.recv().await;
            let later = port.call(Msg::new(2)).await;
            (queued, later)
        });
        assert_eq!(queued.expect_err("closed").0, PortError::Closed, "{path:?}");
        let (error, msg) = later.expect_err("closed");
        assert_eq!((error, msg.id), (PortError::Closed, 2), "{path:?}");
    }
}

#[test]
fn a_port_on_a_missing_cpu_is_an_error_not_a_crash() {
    let machine = machine();
    let (port, _server) = Port::<Msg>::executor(CpuId(7), AlwaysQueue);
    let (call, put, sent) = run(&machine, CPU0, async move {
        let call = port.call(Msg::new(1)).await;
        let mut reply_port = ReplyPort::new();
        let put = port.put(Msg::new(2), &reply_port);
        port.send(Msg::new(3), &reply_port);
        (call, put, reply_port.recv().await)
    });
    assert_eq!(call.expect_err("no cpu7").0, PortError::NoSuchCpu);
    match put {
        Poll::Ready(Err((PortError::NoSuchCpu, msg))) => assert_eq!(msg.id, 2),
        other => panic!("expected NoSuchCpu, got {other:?}"),
    }
    assert_eq!(sent.expect_err("no cpu7").0, PortError::NoSuchCpu);
}

#[test]
fn spin_port_serves_every_cpu_inline_under_its_lock() {
    let machine = machine();
    let mut total = 0u64;
    let port = Port::spin(move |mut m: Msg| {
        total += m.value; // handler state, serialized by the spin lock
        m.value = total;
        m.served_on = Some(here());
        m
    });
    let p0 = port.clone();
    let p1 = port.clone();
    let a = run(&machine, CPU0, async move {
        let mut call = p0.call(Msg::new(1));
        let Poll::Ready(reply) = poll_once(&mut call).await else {
            panic!("spin ports are inline")
        };
        reply.expect("served")
    });
    let b = run(&machine, CPU1, async move {
        p1.call(Msg::new(2)).await.expect("served")
    });
    assert_eq!(
        (a.value, a.served_on),
        (1, Some(CPU0)),
        "runs on the caller's CPU"
    );
    assert_eq!(
        (b.value, b.served_on),
        (3, Some(CPU1)),
        "state persists across CPUs"
    );
    assert_eq!(port.cpu(), None);
}

#[test]
fn function_port_is_a_direct_call_on_any_cpu() {
    let machine = machine();
    let port = Port::function(|mut m: Msg| {
        m.serve();
        m
    });
    for cpu in [CPU0, CPU1] {
        let p = port.clone();
        let (ready, m) = run(&machine, cpu, async move {
            let mut call = p.call(Msg::new(4));
            match poll_once(&mut call).await {
                Poll::Ready(reply) => (true, reply.expect("served")),
                Poll::Pending => (false, call.await.expect("served")),
            }
        });
        assert!(ready);
        assert_eq!((m.value, m.served_on), (1004, Some(cpu)));
    }
}

#[test]
fn handler_can_mix_inline_and_queued_completion() {
    let machine = machine();
    for port_cpu in [CPU0, CPU1] {
        // Even ids complete inline ("cache hit"), odd ids go to the server ("miss").
        let (port, server) = Port::executor(port_cpu, |mut m: Msg| {
            if m.id.is_multiple_of(2) {
                m.serve();
                Handled::Done(m)
            } else {
                Handled::Queue(m)
            }
        });
        let out = run(&machine, CPU0, async move {
            let task = spawn_on(port_cpu, serve_n(server, 2));
            let mut out = Vec::new();
            for id in 0..4 {
                let mut call = port.call(Msg::new(id));
                let inline = poll_once(&mut call).await.is_ready();
                out.push(inline);
                if !inline {
                    assert_eq!(call.await.expect("served").value, id + 1000);
                }
            }
            let _server = join(task).await;
            out
        });
        let local = port_cpu == CPU0;
        assert_eq!(
            out,
            vec![local, false, local, false],
            "port on {port_cpu:?}"
        );
    }
}

#[test]
fn an_unpolled_call_dropped_drops_its_message_unserved() {
    let machine = machine();
    for path in PATHS {
        let drops = Drops::default();
        let (port, mut server) = port_for(path);
        let d = drops.clone();
        let (dropped, queued) = run(&machine, CPU0, async move {
            drop(port.call(Msg::counted(1, &d))); // never polled: nothing was sent
            let dropped = d.count();
            let queued = join(spawn_on(path.port_cpu(), async move {
                server.try_recv().is_some()
            }))
            .await;
            (dropped, queued)
        });
        assert_eq!(
            dropped, 1,
            "{path:?}: the unsent message is dropped with the call"
        );
        assert!(!queued, "{path:?}: nothing reached the port");
    }
}

#[test]
fn server_is_a_stream_of_requests() {
    let machine = machine();
    for path in [Path::QueuedLocal, Path::QueuedRemote] {
        let (port, server) = port_for(path);
        let values = run(&machine, CPU0, async move {
            let task = spawn_on(path.port_cpu(), async move {
                let mut server = pin!(server);
                for _ in 0..3 {
                    let next = std::future::poll_fn(|cx| server.as_mut().poll_next(cx)).await;
                    let mut req = next.expect("a server stream never ends");
                    req.msg_mut().serve();
                    req.reply();
                }
            });
            let mut values = Vec::new();
            for id in 0..3 {
                values.push(port.call(Msg::new(id)).await.expect("served").value);
            }
            join(task).await;
            values
        });
        assert_eq!(values, vec![1000, 1001, 1002], "{path:?}");
    }
}

#[test]
fn fifo_holds_for_each_of_two_senders_on_different_cpus() {
    const N: u64 = 3000;
    let machine = machine();
    // The port lives on CPU0: one sender is local (direct queue), one remote (inbox + IPI).
    let (port, mut server) = Port::<Msg>::executor(CPU0, AlwaysQueue);
    let remote_port = port.clone();
    let seen = run(&machine, CPU0, async move {
        let server_task = spawn_on(CPU0, async move {
            let mut seen = Vec::new();
            for _ in 0..2 * N {
                let req = server.recv().await;
                seen.push(req.msg().id);
                req.reply();
            }
            (seen, server)
        });
        // Sender ids: local ids 0..N, remote ids N..2N.
        let remote = spawn_on(CPU1, async move {
            let mut reply_port = ReplyPort::new();
            for id in N..2 * N {
                remote_port.send(Msg::new(id), &reply_port);
            }
            for _ in 0..N {
                reply_port.recv().await.expect("served");
            }
        });
        let mut reply_port = ReplyPort::new();
        for id in 0..N {
            port.send(Msg::new(id), &reply_port);
            if id.is_multiple_of(100) {
                yield_now().await;
            }
        }
        for _ in 0..N {
            reply_port.recv().await.expect("served");
        }
        join(remote).await;
        join(server_task).await.0
    });
    let local: Vec<u64> = seen.iter().copied().filter(|&id| id < N).collect();
    let remote: Vec<u64> = seen.iter().copied().filter(|&id| id >= N).collect();
    assert_eq!(
        local,
        (0..N).collect::<Vec<_>>(),
        "the local sender's order holds"
    );
    assert_eq!(
        remote,
        (N..2 * N).collect::<Vec<_>>(),
        "the remote sender's order holds"
    );
}

/// The executor's per-CPU counters around `work`, read after a barrier task (the
/// counters of a task's last poll are bumped after the poll returns).
fn stats_delta(
    machine: &executor::hosted::Machine,
    cpu: CpuId,
    work: impl FnOnce(),
) -> (u64, u64, u64) {
    let before = machine.stats(cpu);
    work();
    run(machine, cpu, async {});
    let after = machine.stats(cpu);
    (
        after.polls - before.polls,
        after.local_wakes - before.local_wakes,
        after.ipis_received - before.ipis_received,
    )
}

#[test]
fn an_inline_call_never_switches_tasks_and_a_queued_one_does() {
    const N: u64 = 500;
    let machine = machine();
    // Inline: the calling task is polled once and never woken, whatever N is.
    let (port, _server) = port_for(Path::Inline);
    let (polls, wakes, _) = stats_delta(&machine, CPU0, || {
        run(&machine, CPU0, async move {
            for id in 0..N {
                port.call(Msg::new(id)).await.expect("served");
            }
        })
    });
    assert_eq!(
        (polls, wakes),
        (2, 0),
        "one poll of the caller, one of the barrier task"
    );

    // Queued on the same CPU: every call suspends the caller and runs the server.
    let (port, server) = port_for(Path::QueuedLocal);
    let server_task = machine.spawn_on(CPU0, serve_n(server, N as usize)).unwrap();
    let (polls, wakes, _) = stats_delta(&machine, CPU0, || {
        run(&machine, CPU0, async move {
            for id in 0..N {
                port.call(Msg::new(id)).await.expect("served");
            }
        })
    });
    assert!(
        polls >= 2 * N && wakes >= 2 * N,
        "polls {polls}, wakes {wakes}"
    );
    drop(server_task);

    // Queued on another CPU: the messages arrive on CPU1 through its IPI queue.
    let (port, server) = port_for(Path::QueuedRemote);
    let server_task = machine.spawn_on(CPU1, serve_n(server, N as usize)).unwrap();
    let (polls_1, _, ipis_1) = stats_delta(&machine, CPU1, || {
        run(&machine, CPU0, async move {
            for id in 0..N {
                port.call(Msg::new(id)).await.expect("served");
            }
        })
    });
    assert!(ipis_1 >= N, "one IPI per cross-CPU put at least: {ipis_1}");
    assert!(polls_1 >= N, "the server ran on CPU1: {polls_1}");
    drop(server_task);
}

#[test]
fn dropping_a_whole_port_with_messages_in_flight_bounces_them_and_stale_ipis_are_harmless() {
    // The port on CPU1 is dropped from CPU0 right after a cross-CPU send, so its message
    // is in the inbox, in the IPI being drained, or in the server queue: every case must
    // bounce it `Closed`. Ports are created and dropped in a loop, so registry slots are
    // reused while IPIs naming the old generation may still be on their way.
    const ROUNDS: u64 = 300;
    let machine = machine();
    let errors = run(&machine, CPU0, async move {
        let mut reply_port = ReplyPort::new();
        let mut errors = Vec::new();
        for id in 0..ROUNDS {
            let (port, server) = Port::<Msg>::executor(CPU1, AlwaysQueue);
            port.send(Msg::new(id), &reply_port);
            drop(server);
            drop(port);
            let (error, msg) = reply_port.recv().await.expect_err("nobody serves it");
            assert_eq!(msg.id, id, "the message comes back");
            errors.push(error);
        }
        errors
    });
    assert!(errors.iter().all(|e| *e == PortError::Closed), "{errors:?}");
}

#[test]
fn per_cpu_port_serves_each_caller_on_its_own_cpu_and_forwards_keep_working() {
    let machine = machine();
    // Member i lives on CPU i and queues (a server task per CPU), so "served on" shows
    // which member took the message.
    let (m0, s0) = Port::<Msg>::executor(CPU0, AlwaysQueue);
    let (m1, s1) = Port::<Msg>::executor(CPU1, AlwaysQueue);
    let port = Port::per_cpu(vec![m0, m1]).expect("two members");
    assert!(
        Port::<Msg>::per_cpu(Vec::new()).is_none(),
        "no members, no port"
    );
    spawn_on_machine(&machine, CPU0, s0);
    spawn_on_machine(&machine, CPU1, s1);
    for cpu in [CPU0, CPU1, CPU0] {
        let port = port.clone();
        let (served_on, local_cpu) = run(&machine, cpu, async move {
            let reply = port.call(Msg::new(1)).await.expect("served");
            (reply.served_on, port.cpu())
        });
        assert_eq!(
            served_on,
            Some(cpu),
            "a call from {cpu:?} is served by its member"
        );
        assert_eq!(local_cpu, Some(cpu), "cpu() names the caller's member");
    }
    // A put from CPU1 is queued locally (Pending), its reply arrives on the reply port.
    let port2 = port.clone();
    let served_on = run(&machine, CPU1, async move {
        let mut reply_port = ReplyPort::new();
        let polled = port2.put(Msg::new(2), &reply_port);
        assert!(polled.is_pending(), "the member queues");
        reply_port.recv().await.expect("served").served_on
    });
    assert_eq!(served_on, Some(CPU1));
}

/// Serves forever on `cpu` (detached).
fn spawn_on_machine(
    machine: &executor::hosted::Machine,
    cpu: CpuId,
    mut server: ports::Server<Msg>,
) {
    let task = machine
        .spawn_on(cpu, async move {
            loop {
                let mut req = server.recv().await;
                req.msg_mut().serve();
                req.reply();
            }
        })
        .expect("test CPUs exist");
    drop(task); // detached
}
