// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ring engine: inline completion, chains, drain, timeouts, cancel, back-pressure,
//! polled mode, exit with operations in flight, corrupt headers.

mod common;

use std::collections::BTreeMap;

use abi::{
    Cqe, Errno, Opcode, RingEnterFlags, SqeFlags,
    ring::{CQ_OVERFLOW, RING_SETUP_POLLED, SQ_CORRUPT, SQ_CQ_FULL, SQ_NEED_WAKEUP, ring_header},
};
use common::*;

const GETEVENTS: u32 = RingEnterFlags::GETEVENTS.bits();
const ERR: fn(Errno) -> i64 = Errno::to_syscall_result;

fn e(errno: Errno) -> i32 {
    ERR(errno) as i32
}

fn flagged(mut s: abi::Sqe, f: SqeFlags) -> abi::Sqe {
    s.flags = f.bits();
    s
}

fn bad_read(user_data: u64) -> abi::Sqe {
    let mut s = sqe(Opcode::Read, user_data);
    s.fd = 99;
    s
}

fn by_user_data(c: &[Cqe]) -> BTreeMap<u64, i32> {
    c.iter().map(|c| (c.user_data, c.res)).collect()
}

#[test]
fn inline_completions_are_posted_before_ring_enter_returns() {
    let mut w = World::new();
    let ring = w.setup_ring(32, 0, 0, 0);
    for i in 0..32 {
        ring.push(nop(i));
    }
    assert_eq!(w.enter(32, 0, 0, 0), 32);
    // No task has run: everything completed inline.
    let c = ring.reap();
    assert_eq!(c.len(), 32);
    assert!(
        c.iter()
            .enumerate()
            .all(|(i, c)| c.user_data == i as u64 && c.res == 0)
    );
    assert_eq!(ring.sq(ring_header::HEAD), 32);
}

#[test]
fn a_failed_link_cancels_the_rest_of_the_chain() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(flagged(nop(1), SqeFlags::LINK));
    ring.push(flagged(bad_read(2), SqeFlags::LINK));
    ring.push(flagged(nop(3), SqeFlags::LINK));
    ring.push(nop(4));
    ring.push(nop(5)); // a new chain
    assert_eq!(w.enter(5, 5, GETEVENTS, 0), 5);
    let c = by_user_data(&ring.reap());
    assert_eq!(c[&1], 0);
    assert_eq!(c[&2], e(Errno::BadF));
    assert_eq!(c[&3], e(Errno::Canceled));
    assert_eq!(c[&4], e(Errno::Canceled));
    assert_eq!(c[&5], 0);
}

#[test]
fn a_hardlink_continues_after_a_failure() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(flagged(bad_read(1), SqeFlags::HARDLINK));
    ring.push(flagged(nop(2), SqeFlags::LINK));
    ring.push(nop(3));
    assert_eq!(w.enter(3, 3, GETEVENTS, 0), 3);
    let c = by_user_data(&ring.reap());
    assert_eq!((c[&1], c[&2], c[&3]), (e(Errno::BadF), 0, 0));
}

#[test]
fn linked_entries_run_in_order_and_wait_for_each_other() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(flagged(sleep_sqe(1, 3_000_000), SqeFlags::LINK));
    ring.push(flagged(sleep_sqe(2, 2_000_000), SqeFlags::LINK));
    ring.push(nop(3));
    assert_eq!(w.enter(3, 3, GETEVENTS, 0), 3);
    let c = ring.reap();
    assert_eq!(
        c.iter().map(|c| c.user_data).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(w.now(), 5_000_000, "the two sleeps ran one after the other");
}

#[test]
fn a_chain_ends_at_the_end_of_the_batch() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(flagged(bad_read(1), SqeFlags::LINK));
    assert_eq!(w.enter(1, 1, GETEVENTS, 0), 1);
    ring.push(nop(2));
    assert_eq!(w.enter(1, 1, GETEVENTS, 0), 1);
    let c = by_user_data(&ring.reap());
    assert_eq!((c[&1], c[&2]), (e(Errno::BadF), 0));
}

#[test]
fn drain_waits_for_everything_before_and_holds_everything_after() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(sleep_sqe(1, 10_000_000));
    ring.push(flagged(nop(2), SqeFlags::DRAIN));
    ring.push(nop(3));
    assert_eq!(w.enter(3, 0, 0, 0), 3);
    assert!(ring.reap().is_empty(), "the nops wait behind the drain");
    let stats = w.proc.ring().unwrap().stats();
    assert_eq!((stats.in_flight, stats.deferred), (1, 2));
    assert_eq!(w.enter(0, 3, GETEVENTS, 0), 0);
    let c = ring.reap();
    assert_eq!(
        c.iter().map(|c| c.user_data).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(w.now(), 10_000_000);
}

#[test]
fn timeouts_fire_with_etime_at_their_deadline() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    let mut t = sqe(Opcode::Timeout, 1);
    t.addr = 7_000_000;
    ring.push(t);
    ring.push(nop(2));
    assert_eq!(w.enter(2, 1, GETEVENTS, 0), 2);
    assert_eq!(
        ring.reap().iter().map(|c| c.user_data).collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(w.enter(0, 1, GETEVENTS, 0), 0);
    let c = ring.reap();
    assert_eq!((c[0].user_data, c[0].res), (1, e(Errno::Time)));
    assert_eq!(w.now(), 7_000_000);
}

#[test]
fn a_link_timeout_cancels_a_slow_op() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(flagged(sleep_sqe(1, 1_000_000_000), SqeFlags::LINK));
    let mut lt = sqe(Opcode::LinkTimeout, 2);
    lt.addr = 1_000_000;
    ring.push(lt);
    assert_eq!(w.enter(2, 2, GETEVENTS, 0), 2);
    let c = by_user_data(&ring.reap());
    assert_eq!((c[&1], c[&2]), (e(Errno::Canceled), e(Errno::Time)));
    assert_eq!(w.now(), 1_000_000);
}

#[test]
fn a_link_timeout_is_cancelled_when_the_op_wins_and_the_chain_goes_on() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(flagged(sleep_sqe(1, 1_000), SqeFlags::LINK));
    let mut lt = flagged(sqe(Opcode::LinkTimeout, 2), SqeFlags::LINK);
    lt.addr = 1_000_000_000;
    ring.push(lt);
    ring.push(nop(3));
    assert_eq!(w.enter(3, 3, GETEVENTS, 0), 3);
    let c = by_user_data(&ring.reap());
    assert_eq!((c[&1], c[&2], c[&3]), (0, e(Errno::Canceled), 0));
    assert_eq!(w.now(), 1_000);
}

#[test]
fn a_link_timeout_without_a_linked_op_is_invalid() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    let mut lt = sqe(Opcode::LinkTimeout, 1);
    lt.addr = 10;
    ring.push(lt);
    assert_eq!(w.enter(1, 1, GETEVENTS, 0), 1);
    assert_eq!(ring.reap()[0].res, e(Errno::Inval));
}

#[test]
fn cancel_by_user_data_on_both_doors() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(sleep_sqe(5, 1_000_000_000));
    ring.push(sleep_sqe(6, 1_000_000_000));
    assert_eq!(w.enter(2, 0, 0, 0), 2);
    let mut c = sqe(Opcode::Cancel, 50);
    c.addr = 5;
    ring.push(c);
    let mut c2 = sqe(Opcode::Cancel, 51);
    c2.addr = 12345;
    ring.push(c2);
    assert_eq!(w.enter(2, 3, GETEVENTS, 0), 2);
    let got = by_user_data(&ring.reap());
    assert_eq!(got[&50], 0);
    assert_eq!(got[&51], e(Errno::NoEnt));
    assert_eq!(got[&5], e(Errno::Canceled));
    // The trap door can cancel ring operations too.
    let mut t = sqe(Opcode::Cancel, 0);
    t.addr = 6;
    assert_eq!(w.trap(t), 0);
    assert_eq!(
        w.trap(t),
        ERR(Errno::Already),
        "asked already, not completed yet"
    );
    w.settle();
    let got = ring.reap();
    assert_eq!((got[0].user_data, got[0].res), (6, e(Errno::Canceled)));
    assert_eq!(w.trap(t), ERR(Errno::NoEnt), "completed: nothing to cancel");
    assert!(w.now() < 1_000_000_000);
}

#[test]
fn skip_success_posts_only_failures() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(flagged(nop(1), SqeFlags::SKIP_SUCCESS));
    ring.push(flagged(bad_read(2), SqeFlags::SKIP_SUCCESS));
    ring.push(nop(3));
    assert_eq!(w.enter(3, 0, 0, 0), 3);
    let c = by_user_data(&ring.reap());
    assert_eq!(c.len(), 2);
    assert_eq!((c[&2], c[&3]), (e(Errno::BadF), 0));
}

#[test]
fn force_async_skips_the_inline_poll() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(flagged(nop(1), SqeFlags::FORCE_ASYNC));
    assert_eq!(w.enter(1, 0, 0, 0), 1);
    assert!(ring.reap().is_empty());
    w.settle();
    assert_eq!(ring.reap()[0].user_data, 1);
}

#[test]
fn a_full_cq_overflows_into_the_kernel_and_nothing_is_lost() {
    let mut w = World::new();
    let ring = w.setup_ring(4, 4, 0, 0);
    for i in 0..4 {
        ring.push(nop(i));
    }
    assert_eq!(w.enter(4, 0, 0, 0), 4);
    for i in 4..8 {
        ring.push(nop(i));
    }
    assert_eq!(w.enter(4, 0, 0, 0), 4, "the CQ was not overflowing yet");
    assert_ne!(ring.cq(ring_header::FLAGS) & CQ_OVERFLOW, 0);
    assert_ne!(ring.sq(ring_header::FLAGS) & SQ_CQ_FULL, 0);
    assert_eq!(ring.cq(ring_header::OVERFLOW), 4);
    ring.push(nop(8));
    assert_eq!(w.enter(1, 0, 0, 0), ERR(Errno::Busy));
    let mut all = ring.reap();
    assert_eq!(all.len(), 4);
    // Reaping makes room; the next enter flushes the overflow.
    assert_eq!(w.enter(0, 4, GETEVENTS, 0), 0);
    assert_eq!(ring.cq(ring_header::FLAGS) & CQ_OVERFLOW, 0);
    assert_eq!(ring.sq(ring_header::FLAGS) & SQ_CQ_FULL, 0);
    all.extend(ring.reap());
    assert_eq!(w.enter(1, 1, GETEVENTS, 0), 1);
    all.extend(ring.reap());
    let ids: Vec<u64> = all.iter().map(|c| c.user_data).collect();
    assert_eq!(
        ids,
        (0..9).collect::<Vec<_>>(),
        "every completion, in order, once"
    );
}

#[test]
fn many_async_completions_through_a_tiny_cq_are_counted_exactly() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 8, 0, 0);
    let mut rng = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let total = 2000u64;
    let mut pushed = 0u64;
    let mut got: Vec<Cqe> = Vec::new();
    while (got.len() as u64) < total {
        while pushed < total && ring.sq_space() > 0 {
            // Coarse deadlines: many expire together, more than the CQ holds.
            ring.push(sleep_sqe(pushed, (next() % 5) * 1_000_000));
            pushed += 1;
        }
        let outstanding = (pushed - got.len() as u64) as u32;
        let r = w.enter(8, (1 + (next() % 8) as u32).min(outstanding), GETEVENTS, 0);
        assert!(r >= 0 || r == ERR(Errno::Busy), "{r}");
        // Reap slowly: a few at a time, so the overflow list is exercised.
        got.extend(ring.reap_at_most((next() % 4) as u32));
    }
    let mut ids: Vec<u64> = got.iter().map(|c| c.user_data).collect();
    ids.sort();
    assert_eq!(ids, (0..total).collect::<Vec<_>>());
    assert!(got.iter().all(|c| c.res == 0));
    assert!(
        ring.cq(ring_header::OVERFLOW) > 0,
        "the overflow list was used"
    );
    let stats = w.proc.ring().unwrap().stats();
    assert_eq!((stats.in_flight, stats.overflow_len), (0, 0));
}

#[test]
fn polled_mode_consumes_without_traps_and_sleeps_with_need_wakeup() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, RING_SETUP_POLLED, 100);
    ring.push(nop(1));
    w.settle();
    assert_eq!(ring.reap()[0].user_data, 1, "no RingEnter was needed");
    assert_ne!(
        ring.sq(ring_header::FLAGS) & SQ_NEED_WAKEUP,
        0,
        "idle: asleep"
    );
    // Asleep: a new entry waits for a wake-up.
    ring.push(nop(2));
    w.settle();
    assert!(ring.reap().is_empty());
    assert_eq!(w.enter(0, 0, RingEnterFlags::SQ_WAKEUP.bits(), 0), 0);
    w.settle();
    assert_eq!(ring.reap()[0].user_data, 2);
    // A RingEnter in polled mode submits nothing itself but can wait for completions.
    ring.push(sleep_sqe(3, 1_000_000));
    let flags = (RingEnterFlags::SQ_WAKEUP | RingEnterFlags::GETEVENTS).bits();
    assert_eq!(w.enter(1, 1, flags, 0), 0);
    assert_eq!(ring.reap()[0].user_data, 3);
}

#[test]
fn polled_mode_rechecks_the_tail_after_setting_need_wakeup() {
    // The user publishes an entry after the poller's last empty scan but before it sleeps:
    // the re-check after setting SQ_NEED_WAKEUP must see it. Emulated by publishing while
    // the flag is set but the poller has not yet been polled again.
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, RING_SETUP_POLLED, 10);
    w.settle();
    assert_ne!(ring.sq(ring_header::FLAGS) & SQ_NEED_WAKEUP, 0);
    ring.push(nop(1));
    // User side of the protocol: flag set -> wake.
    assert_ne!(ring.sq(ring_header::FLAGS) & SQ_NEED_WAKEUP, 0);
    w.enter(0, 0, RingEnterFlags::SQ_WAKEUP.bits(), 0);
    w.settle();
    assert_eq!(ring.reap().len(), 1);
}

#[test]
fn exit_with_1000_ops_in_flight_waits_for_every_completion() {
    let mut w = World::new();
    let ring = w.setup_ring(1024, 1024, 0, 0);
    for i in 0..1000 {
        ring.push(sleep_sqe(i, 1_000_000_000 + i));
    }
    // A chain held behind a drain is cancelled too.
    ring.push(flagged(nop(5000), SqeFlags::DRAIN));
    assert_eq!(w.enter(1001, 0, 0, 0), 1001);
    let r = w.proc.ring().unwrap();
    assert_eq!((r.stats().in_flight, r.stats().deferred), (1000, 1));
    let proc = w.proc.clone();
    w.block_on(async move { proc.teardown().await });
    assert_eq!((r.stats().in_flight, r.stats().deferred), (0, 0));
    let c = ring.reap();
    assert_eq!(c.len(), 1001);
    assert!(c.iter().all(|c| c.res == e(Errno::Canceled)));
    assert!(w.now() < 1_000_000_000, "nothing slept to its deadline");
    w.settle();
    assert_eq!(w.task_count(), 0);
}

#[test]
fn exit_with_a_full_cq_still_accounts_for_everything() {
    let mut w = World::new();
    let ring = w.setup_ring(64, 64, 0, 0);
    let mut pushed = 0;
    for _ in 0..4 {
        for _ in 0..64 {
            ring.push(sleep_sqe(pushed, 1_000_000_000));
            pushed += 1;
        }
        assert_eq!(w.enter(64, 0, 0, 0), 64);
    }
    let r = w.proc.ring().unwrap();
    assert_eq!(r.stats().in_flight, 256);
    let proc = w.proc.clone();
    w.block_on(async move { proc.teardown().await });
    assert_eq!(r.stats().in_flight, 0);
    assert_eq!(
        r.stats().overflow_len,
        256 - 64,
        "the rest wait in the overflow list"
    );
    let mut n = ring.reap().len();
    r.flush();
    n += ring.reap().len();
    r.flush();
    n += ring.reap().len();
    r.flush();
    n += ring.reap().len();
    assert_eq!(n, 256);
}

#[test]
fn a_scribbled_sq_tail_marks_the_ring_corrupt_without_looping() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.set_sq(ring_header::TAIL, 1_000_000);
    assert_eq!(w.enter(8, 0, 0, 0), ERR(Errno::Inval));
    assert_ne!(ring.sq(ring_header::FLAGS) & SQ_CORRUPT, 0);
    assert!(w.proc.ring().unwrap().stats().corrupt);
    // Putting it back does not revive it; GETEVENTS does not hang.
    ring.set_sq(ring_header::TAIL, 0);
    assert_eq!(w.enter(1, 0, 0, 0), ERR(Errno::Inval));
    // Scribbled geometry is never read back.
    ring.set_sq(ring_header::MASK, u32::MAX);
    ring.set_sq(ring_header::ENTRIES, 0);
    assert_eq!(w.enter(0, 1, GETEVENTS, 1_000), ERR(Errno::Time));
}

#[test]
fn a_scribbled_cq_head_neither_panics_nor_hangs() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 8, 0, 0);
    ring.set_cq(ring_header::HEAD, 0x8000_0000);
    for i in 0..8 {
        ring.push(nop(i));
    }
    assert_eq!(
        w.enter(8, 100, GETEVENTS, 0),
        8,
        "an impossible head does not make GETEVENTS wait"
    );
    assert_eq!(
        w.proc.ring().unwrap().stats().overflow_len,
        8,
        "treated as full: nothing overwritten"
    );
    ring.set_cq(ring_header::HEAD, 0);
    assert_eq!(w.enter(0, 8, GETEVENTS, 0), 0);
    assert_eq!(ring.reap().len(), 8);
}

#[test]
fn ring_enter_times_out() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(sleep_sqe(1, 50_000_000));
    assert_eq!(
        w.enter(1, 1, GETEVENTS, 1_000_000),
        1,
        "submitted, then timed out waiting"
    );
    assert_eq!(w.now(), 1_000_000);
    assert!(ring.reap().is_empty());
    assert_eq!(w.enter(0, 1, GETEVENTS, 1_000_000), ERR(Errno::Time));
    assert_eq!(w.enter(0, 1, GETEVENTS, 0), 0);
    assert_eq!(ring.reap()[0].user_data, 1);
}

#[test]
fn inline_entries_keep_submission_order_around_async_ones() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(nop(1));
    ring.push(sleep_sqe(2, 5_000_000)); // the general path, pending
    ring.push(nop(3));
    ring.push(sqe(Opcode::Getpid, 4));
    ring.push(bad_read(5)); // the general path, completes when first polled
    ring.push(nop(6));
    assert_eq!(w.enter(6, 0, 0, 0), 6);
    let ids: Vec<u64> = ring.reap().iter().map(|c| c.user_data).collect();
    assert_eq!(
        ids,
        vec![1, 3, 4, 5, 6],
        "inline completions in submission order"
    );
    assert_eq!(w.enter(0, 1, GETEVENTS, 0), 0);
    assert_eq!(ring.reap()[0].user_data, 2);
}

#[test]
fn a_cancel_on_the_inline_path_finds_an_op_started_earlier_in_the_batch() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(sleep_sqe(1, 1_000_000_000));
    let mut cancel = sqe(Opcode::Cancel, 2);
    cancel.addr = 1;
    ring.push(cancel);
    assert_eq!(w.enter(2, 2, GETEVENTS, 0), 2);
    let c = by_user_data(&ring.reap());
    assert_eq!(c[&2], 0);
    assert_eq!(c[&1], e(Errno::Canceled));
    assert_eq!(w.now(), 0, "cancelled, not slept");
}

#[test]
fn a_trap_ring_enter_finishes_without_a_future_only_when_nothing_needs_waiting() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    let mut enter = abi::Sqe::new(Opcode::RingEnter);
    enter.op_flags = GETEVENTS;
    enter.len = 1;
    enter.off = 1;
    ring.push(nop(1));
    match w.proc.start(&enter) {
        syscalls_async::Trap::Done(n) => assert_eq!(n, 1),
        syscalls_async::Trap::Wait(_) => panic!("a nop leaves nothing to wait for"),
    }
    assert_eq!(ring.reap()[0].user_data, 1);
    ring.push(sleep_sqe(2, 1_000_000));
    let wait = match w.proc.start(&enter) {
        syscalls_async::Trap::Done(n) => panic!("the sleep is not done, yet got {n}"),
        syscalls_async::Trap::Wait(wait) => wait,
    };
    assert_eq!(ring.sq(ring_header::HEAD), 2, "submitted before waiting");
    let proc = w.proc.clone();
    assert_eq!(w.block_on(async move { proc.finish(wait).await }), 1);
    assert_eq!(w.now(), 1_000_000);
    let ids: Vec<u64> = ring.reap().iter().map(|c| c.user_data).collect();
    assert_eq!(ids, vec![2]);
}
