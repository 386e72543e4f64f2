// SPDX-License-Identifier: MIT OR Apache-2.0
//! loom models of the reply handoff: envelope state, reply queue, abort and orphaning.
//!
//! Run: `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test -p ports --lib --release loom`.
//! Each model has a "target" thread that replies while the originator awaits, aborts
//! or drops the call, and checks that the reply is seen exactly once, that a parked
//! originator is always woken (no lost wake-up), and that the message is dropped exactly
//! once and only after the target let go of it.

use core::future::poll_fn;
use core::task::Waker;

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::thread;

use crate::envelope::Envelope;
use crate::reply_port::ReplyPort;
use crate::sync::Arc;

/// A message that counts its drops.
struct Msg {
    value: u32,
    drops: Arc<AtomicUsize>,
}

impl Drop for Msg {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn msg(value: u32, drops: &Arc<AtomicUsize>) -> Msg {
    Msg {
        value,
        drops: drops.clone(),
    }
}

/// The target takes the message out (as `Server::recv` does) and replies with it.
fn serve(env: Arc<Envelope<Msg>>) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let mut m = env.take_msg().expect("queued");
        m.value += 1;
        Envelope::complete(env, Ok(m));
    })
}

#[test]
fn loom_call_reply_wakes_the_waiting_caller() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let env = Envelope::new_call(msg(1, &drops), Waker::noop().clone());
        let target = serve(env.clone());
        let reply = loom::future::block_on(poll_fn(|cx| env.poll_reply(cx)));
        let reply = reply.ok().expect("replied");
        assert_eq!(reply.value, 2);
        target.join().unwrap();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            0,
            "the reply is live until the caller drops it"
        );
        drop(reply);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn loom_dropped_call_frees_the_message_once_after_the_reply() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let env = Envelope::new_call(msg(1, &drops), Waker::noop().clone());
        let target = {
            let env = env.clone();
            let drops = drops.clone();
            thread::spawn(move || {
                let mut m = env.take_msg().expect("queued");
                // The target still owns a live message even if the caller is gone.
                assert_eq!(drops.load(Ordering::SeqCst), 0);
                m.value += 1;
                Envelope::complete(env, Ok(m));
            })
        };
        env.orphan();
        assert!(env.is_abort_requested() || drops.load(Ordering::SeqCst) == 1);
        drop(env);
        target.join().unwrap();
        assert_eq!(
            drops.load(Ordering::SeqCst),
            1,
            "dropped exactly once, by whoever went last"
        );
    });
}

#[test]
fn loom_send_reply_reaches_the_reply_port() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut reply_port = ReplyPort::new();
        let env = Envelope::new_send(msg(7, &drops), reply_port.queue().clone());
        let target = serve(env);
        let reply = loom::future::block_on(reply_port.recv());
        assert_eq!(reply.ok().expect("replied").value, 8);
        target.join().unwrap();
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    });
}

#[test]
fn loom_abort_races_reply_and_the_reply_still_arrives() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let env = Envelope::new_call(msg(1, &drops), Waker::noop().clone());
        let target = serve(env.clone());
        let aborted = env.request_abort();
        let reply = loom::future::block_on(poll_fn(|cx| env.poll_reply(cx)));
        target.join().unwrap();
        assert_eq!(
            reply
                .ok()
                .expect("abort is advisory: the reply arrives")
                .value,
            2
        );
        // An abort that was accepted is visible to the target until the reply.
        if aborted {
            assert!(env.is_abort_requested());
        }
    });
}

#[test]
fn loom_two_replies_race_onto_one_reply_port() {
    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut reply_port = ReplyPort::new();
        let a = serve(Envelope::new_send(
            msg(10, &drops),
            reply_port.queue().clone(),
        ));
        let b = serve(Envelope::new_send(
            msg(20, &drops),
            reply_port.queue().clone(),
        ));
        let first = loom::future::block_on(reply_port.recv())
            .ok()
            .expect("replied")
            .value;
        let second = loom::future::block_on(reply_port.recv())
            .ok()
            .expect("replied")
            .value;
        let mut got = [first, second];
        got.sort_unstable();
        assert_eq!(got, [11, 21], "both replies arrive, each once");
        a.join().unwrap();
        b.join().unwrap();
        assert!(reply_port.try_recv().is_none());
        assert_eq!(drops.load(Ordering::SeqCst), 2);
    });
}
