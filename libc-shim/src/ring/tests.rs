// SPDX-License-Identifier: MIT OR Apache-2.0
//! Ring producer against the fake kernel (`ffi::fake`).

use abi::ring::{SQ_NEED_WAKEUP, SqeFlags};
use abi::{Errno, Opcode, Sqe};

use super::*;
use crate::ffi::fake;

fn nop(user_data: u64) -> Sqe {
    let mut s = Sqe::new(Opcode::Nop);
    s.user_data = user_data;
    s
}

#[test]
fn setup_reports_the_kernels_sizes() {
    fake::reset();
    let ring = Ring::setup(RingOptions::new(8)).unwrap();
    assert_eq!(ring.sq_entries(), 8);
    assert_eq!(ring.cq_entries(), 16);
    assert_eq!(ring.sq_space(), 8);
    assert_eq!(Ring::setup(RingOptions::new(8)).err(), Some(Errno::Busy));
}

#[test]
fn bad_sizes_are_the_kernels_einval() {
    fake::reset();
    assert_eq!(Ring::setup(RingOptions::new(3)).err(), Some(Errno::Inval));
}

#[test]
fn batches_submit_in_one_enter_and_complete_in_order() {
    for batch in [1u64, 8, 32, 128] {
        fake::reset();
        let mut ring = Ring::setup(RingOptions::new(128)).unwrap();
        for i in 0..batch {
            ring.try_push_scalar(&nop(i)).unwrap();
        }
        let traps_before = fake::with(|k| k.traps.len());
        assert_eq!(ring.submit_and_wait(batch as u32).unwrap(), batch as u32);
        assert_eq!(
            fake::with(|k| k.traps.len()),
            traps_before + 1,
            "one trap per batch"
        );
        for i in 0..batch {
            let (cqe, keep) = ring.try_reap().unwrap();
            assert_eq!((cqe.user_data, cqe.res), (i, 0));
            assert!(keep.is_none());
        }
        assert!(ring.try_reap().is_none());
    }
}

#[test]
fn reap_all_takes_every_ready_completion_in_order_and_frees_the_slots_once() {
    fake::reset();
    let mut ring = Ring::setup(RingOptions::new(8)).unwrap();
    assert_eq!(ring.reap_all(|_, _| panic!("nothing to reap")), 0);
    for round in 0..3u64 {
        for i in 0..8 {
            ring.try_push_scalar(&nop(round * 100 + i)).unwrap();
        }
        assert_eq!(ring.submit_and_wait(8).unwrap(), 8);
        let mut seen = Vec::new();
        let n = ring.reap_all(|cqe, keep| {
            assert!(keep.is_none());
            seen.push((cqe.user_data, cqe.res));
        });
        assert_eq!(n, 8);
        let want: Vec<(u64, i32)> = (0..8).map(|i| (round * 100 + i, 0)).collect();
        assert_eq!(seen, want);
        assert_eq!(ring.cq_ready(), 0);
        assert!(ring.try_reap().is_none());
    }
}

#[test]
fn a_full_sq_is_back_pressure_not_loss() {
    fake::reset();
    let mut ring = Ring::setup(RingOptions::new(4)).unwrap();
    for i in 0..4 {
        ring.try_push_scalar(&nop(i)).unwrap();
    }
    assert_eq!(ring.try_push_scalar(&nop(99)), Err(PushError::Full));
    ring.submit().unwrap();
    ring.try_push_scalar(&nop(4)).unwrap();
}

#[test]
fn a_full_cq_overflows_in_the_kernel_and_nothing_is_lost() {
    fake::reset();
    let mut ring = Ring::setup(RingOptions {
        sq_entries: 8,
        cq_entries: 8,
        polled: false,
        sq_idle_us: 0,
    })
    .unwrap();
    let mut next = 0u64;
    let mut seen = Vec::new();
    // Push 3 rounds of 8 without reaping: the CQ (8) fills, the kernel holds the rest.
    for _ in 0..3 {
        while ring.sq_space() > 0 {
            ring.try_push_scalar(&nop(next)).unwrap();
            next += 1;
        }
        ring.submit().unwrap();
    }
    assert!(ring.is_cq_overflowing());
    // Reap everything, entering again to let the overflow list drain.
    while seen.len() < next as usize {
        match ring.try_reap() {
            Some((cqe, _)) => seen.push(cqe.user_data),
            None => {
                ring.enter(0, 0, RingEnterFlags::NONE, 0).unwrap();
            }
        }
        // Keep feeding what is still in the SQ.
        if ring.sq_pending() > 0 {
            ring.submit().unwrap();
        }
    }
    assert_eq!(seen, (0..next).collect::<Vec<_>>());
    assert!(!ring.is_cq_overflowing());
}

#[test]
fn owned_buffers_are_kept_until_their_completion() {
    fake::reset();
    let mut ring = Ring::setup(RingOptions::new(4)).unwrap();
    let entry = OwnedSqe::write(9, b"abc".to_vec(), None, 5);
    ring.try_push_owned(entry).map_err(|e| e.0).unwrap();
    assert_eq!(ring.kept_len(), 1);
    let dup = OwnedSqe::write(9, b"x".to_vec(), None, 5);
    assert_eq!(
        ring.try_push_owned(dup).err().map(|e| e.0),
        Some(PushError::NamesMemory)
    );
    ring.submit_and_wait(1).unwrap();
    let (cqe, keep) = ring.try_reap().unwrap();
    assert_eq!(cqe.user_data, 5);
    assert_eq!(*keep.unwrap().downcast::<Vec<u8>>().unwrap(), b"abc");
    assert_eq!(ring.kept_len(), 0);
}

#[test]
fn scalar_push_refuses_entries_that_name_memory() {
    fake::reset();
    let mut ring = Ring::setup(RingOptions::new(4)).unwrap();
    let mut s = Sqe::new(Opcode::Read);
    s.addr = 0x1000;
    assert_eq!(ring.try_push_scalar(&s), Err(PushError::NamesMemory));
    let mut t = Sqe::new(Opcode::Timeout);
    t.addr = 1_000_000;
    assert_eq!(ring.try_push_scalar(&t), Ok(()));
}

#[test]
fn linked_flags_are_passed_through() {
    fake::reset();
    let mut ring = Ring::setup(RingOptions::new(4)).unwrap();
    let mut a = nop(1);
    a.flags = SqeFlags::LINK.bits();
    ring.try_push_scalar(&a).unwrap();
    ring.try_push_scalar(&nop(2)).unwrap();
    ring.submit_and_wait(2).unwrap();
    assert_eq!(ring.try_reap().unwrap().0.user_data, 1);
    assert_eq!(ring.try_reap().unwrap().0.user_data, 2);
}

#[test]
fn polled_mode_traps_only_to_wake_a_sleeping_poller() {
    fake::reset();
    let mut ring = Ring::setup(RingOptions {
        polled: true,
        ..RingOptions::new(8)
    })
    .unwrap();
    let traps = || fake::with(|k| k.traps.len());
    let t0 = traps();
    ring.try_push_scalar(&nop(1)).unwrap();
    assert_eq!(ring.submit().unwrap(), 0);
    assert_eq!(traps(), t0, "poller awake: no trap");
    fake::with(|k| k.drain(u32::MAX));
    assert_eq!(ring.try_reap().unwrap().0.user_data, 1);

    fake::with(|k| k.set_sq_flag(SQ_NEED_WAKEUP, true));
    ring.try_push_scalar(&nop(2)).unwrap();
    ring.submit().unwrap();
    assert_eq!(traps(), t0 + 1);
    assert_eq!(fake::with(|k| k.wakeups), 1);
    let last = fake::with(|k| *k.traps.last().unwrap());
    assert_eq!(
        last.op_flags & RingEnterFlags::SQ_WAKEUP.bits(),
        RingEnterFlags::SQ_WAKEUP.bits()
    );
    assert_eq!(ring.try_reap().unwrap().0.user_data, 2);
}

#[test]
fn timeouts_and_cancel() {
    fake::reset();
    let mut ring = Ring::setup(RingOptions::new(8)).unwrap();
    let mut t = Sqe::new(Opcode::Timeout);
    t.addr = 1_000;
    t.user_data = 10;
    ring.try_push_scalar(&t).unwrap();
    let mut c = Sqe::new(Opcode::Cancel);
    c.addr = 10;
    c.user_data = 11;
    ring.try_push_scalar(&c).unwrap();
    ring.submit_and_wait(2).unwrap();
    let a = ring.try_reap().unwrap().0;
    let b = ring.try_reap().unwrap().0;
    assert_eq!((a.user_data, a.res), (10, -(Errno::Canceled as i32)));
    assert_eq!((b.user_data, b.res), (11, 0));
}
