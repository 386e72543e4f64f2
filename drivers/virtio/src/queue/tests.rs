// SPDX-License-Identifier: MIT OR Apache-2.0
//! Split queue tests: index arithmetic, chains, full queue, out-of-order completion,
//! u16 wrap, and a device that writes garbage.

use alloc::sync::Arc;
use alloc::vec::Vec;

use super::*;
use crate::dma::VecRegion;
use crate::fake::DeviceQueue;

fn queue(size: u16, event_idx: bool) -> (SplitQueue<Arc<VecRegion>>, DeviceQueue) {
    let layout = QueueLayout::try_new(size).unwrap();
    let region = Arc::new(VecRegion::new(0x4000, layout.len_bytes));
    let driver = SplitQueue::try_new(region.clone(), size, event_idx).unwrap();
    (driver, DeviceQueue::new(region, size, event_idx))
}

fn seg(addr: u64, len: u32, device_writable: bool) -> Segment {
    Segment {
        addr,
        len,
        device_writable,
    }
}

/// The definition: `event` is one of `old, .., new - 1` (mod 2^16).
fn passed(event: u16, new: u16, old: u16) -> bool {
    event.wrapping_sub(old) < new.wrapping_sub(old)
}

#[test]
fn need_event_matches_the_definition_for_every_old_index() {
    for old in 0..=u16::MAX {
        for delta in 0..=4u16 {
            let new = old.wrapping_add(delta);
            for k in 0..(delta + 5) {
                let event = old.wrapping_sub(2).wrapping_add(k);
                assert_eq!(
                    vring_need_event(event, new, old),
                    passed(event, new, old),
                    "event={event} new={new} old={old}"
                );
            }
        }
    }
}

#[test]
fn need_event_matches_the_definition_for_every_event_around_the_wrap() {
    for old in [0xfffeu16, 0xffff, 0, 1, 0x7fff, 0x8000] {
        for delta in [0u16, 1, 2, 3, 255, 256, 0x7fff, 0x8000, 0xffff] {
            let new = old.wrapping_add(delta);
            for event in 0..=u16::MAX {
                assert_eq!(vring_need_event(event, new, old), passed(event, new, old));
            }
        }
    }
}

#[test]
fn need_event_spec_examples() {
    // Nothing published: never notify.
    assert!(!vring_need_event(5, 5, 5));
    // Published exactly the entry the device waits for.
    assert!(vring_need_event(5, 6, 5));
    // Device waits further ahead.
    assert!(!vring_need_event(7, 6, 5));
    // Across the wrap: old 0xffff, new 1, event 0.
    assert!(vring_need_event(0, 1, 0xffff));
    assert!(!vring_need_event(1, 1, 0xffff));
}

#[test]
fn layout_follows_the_spec_alignment() {
    let l = QueueLayout::try_new(256).unwrap();
    assert_eq!(l.descriptors, 0);
    assert_eq!(l.driver_ring, 4096);
    assert_eq!(l.device_ring, (4096 + 6 + 512 + 3) & !3);
    assert_eq!(l.len_bytes, l.device_ring + 6 + 8 * 256);
    assert_eq!(l.used_event(), 4096 + 4 + 512);
    assert_eq!(l.avail_event(), l.device_ring + 4 + 2048);
    let one = QueueLayout::try_new(1).unwrap();
    assert_eq!(
        (one.driver_ring, one.device_ring, one.len_bytes),
        (16, 24, 38)
    );
    for bad in [0u16, 3, 6, 100, 0xffff, 0x8001] {
        assert_eq!(QueueLayout::try_new(bad), Err(QueueError::BadSize(bad)));
    }
    assert!(QueueLayout::try_new(32768).is_ok());
}

#[test]
fn region_too_small_is_an_error() {
    let region = VecRegion::new(0, 100);
    assert_eq!(
        SplitQueue::try_new(region, 16, false).unwrap_err(),
        QueueError::RegionTooSmall {
            need: QueueLayout::try_new(16).unwrap().len_bytes,
            have: 100
        }
    );
}

#[test]
fn a_chain_round_trips_through_the_device() {
    let (mut q, mut dev) = queue(8, false);
    assert_eq!(q.descriptor_addr(), 0x4000);
    assert_eq!(q.driver_addr(), 0x4000 + 128);
    let chain = q
        .add(&[
            seg(0x1000, 16, false),
            seg(0x2000, 512, true),
            seg(0x3000, 1, true),
        ])
        .unwrap();
    assert_eq!(q.num_free(), 5);
    assert_eq!(dev.pop_avail(), None, "not visible before publish");
    assert!(q.publish(), "no NO_NOTIFY flag: notify");
    let (head, descriptors) = dev.pop_avail().unwrap();
    assert_eq!(head, chain.0);
    assert_eq!(
        descriptors,
        [(0x1000, 16, false), (0x2000, 512, true), (0x3000, 1, true)].map(
            |(addr, len, device_writable)| crate::fake::Descriptor {
                addr,
                len,
                device_writable
            }
        )
    );
    assert_eq!(q.pop_used(), Ok(None));
    assert!(dev.push_used(head as u32, 513));
    assert!(q.has_used());
    assert_eq!(q.pop_used(), Ok(Some(Used { chain, len: 513 })));
    assert_eq!((q.num_free(), q.in_flight()), (8, 0));
    assert!(!q.publish(), "nothing new: no notify");
}

#[test]
fn full_queue_refuses_without_changing_anything() {
    let (mut q, mut dev) = queue(4, false);
    assert_eq!(q.add(&[]), Err(QueueError::EmptyChain));
    let a = q
        .add(&[seg(1, 1, false), seg(2, 1, true), seg(3, 1, true)])
        .unwrap();
    assert_eq!(
        q.add(&[seg(4, 1, false), seg(5, 1, true)]),
        Err(QueueError::Full { needed: 2, free: 1 })
    );
    let b = q.add(&[seg(6, 1, true)]).unwrap();
    assert_eq!(
        q.add(&[seg(7, 1, true)]),
        Err(QueueError::Full { needed: 1, free: 0 })
    );
    q.publish();
    let (ha, _) = dev.pop_avail().unwrap();
    let (hb, da) = dev.pop_avail().unwrap();
    assert_eq!((ha, hb, da.len()), (a.0, b.0, 1));
    dev.push_used(hb as u32, 1);
    assert_eq!(q.pop_used().unwrap().unwrap().chain, b);
    // One descriptor free again.
    assert!(q.add(&[seg(8, 1, true)]).is_ok());
}

#[test]
fn out_of_order_completion_reclaims_every_chain() {
    let (mut q, mut dev) = queue(16, true);
    let mut expected = Vec::new();
    for i in 0..5u64 {
        let n = 1 + (i as usize % 3);
        let segments: Vec<_> = (0..n).map(|k| seg(i * 100 + k as u64, 8, true)).collect();
        expected.push((q.add(&segments).unwrap(), n));
    }
    q.publish();
    let mut heads = Vec::new();
    while let Some((head, chain)) = dev.pop_avail() {
        heads.push((head, chain.len()));
    }
    assert_eq!(heads.len(), 5);
    for order in [3usize, 0, 4, 1, 2] {
        let (head, len) = heads[order];
        dev.push_used(head as u32, 8 * len as u32);
        let used = q.pop_used().unwrap().unwrap();
        assert_eq!(used.chain, expected[order].0);
        assert_eq!(used.len as usize, 8 * expected[order].1);
    }
    assert_eq!((q.num_free(), q.in_flight()), (16, 0));
    // The free list is intact: the whole ring can be used in one go.
    let all: Vec<_> = (0..16).map(|k| seg(k, 1, false)).collect();
    assert!(q.add(&all).is_ok());
}

#[test]
fn indices_wrap_around_u16_with_many_requests() {
    for event_idx in [false, true] {
        let (mut q, mut dev) = queue(4, event_idx);
        let mut pending: Vec<(u16, usize)> = Vec::new();
        let mut completed = 0u32;
        for round in 0..70_000u32 {
            while q.num_free() >= 2 {
                let n = 1 + (round as usize + pending.len()) % 2;
                let segments: Vec<_> = (0..n).map(|k| seg(k as u64, 4, true)).collect();
                q.add(&segments).unwrap();
            }
            q.publish();
            while let Some((head, chain)) = dev.pop_avail() {
                pending.push((head, chain.len()));
            }
            // Complete the newest first (out of order).
            let (head, n) = pending.pop().unwrap();
            dev.push_used(head as u32, 4 * n as u32);
            let used = q.pop_used().unwrap().unwrap();
            assert_eq!((used.chain.0, used.len), (head, 4 * n as u32));
            completed += 1;
        }
        assert_eq!(completed, 70_000);
        assert_eq!(q.num_free() + pending.iter().map(|p| p.1).sum::<usize>(), 4);
    }
}

#[test]
fn event_index_notifies_only_when_the_device_asked() {
    let (mut q, mut dev) = queue(8, true);
    dev.set_avail_event(2); // notify me when entry 2 is published
    q.add(&[seg(0, 1, true)]).unwrap();
    assert!(!q.publish(), "entry 0 published, device waits for 2");
    q.add(&[seg(0, 1, true)]).unwrap();
    q.add(&[seg(0, 1, true)]).unwrap();
    assert!(q.publish(), "entries 1 and 2 published: passed 2");
    q.add(&[seg(0, 1, true)]).unwrap();
    assert!(
        !q.publish(),
        "entry 3: device still waits for 2 (already passed)"
    );
    // Driver asks for an interrupt at the next completion.
    while dev.pop_avail().is_some() {}
    assert!(!q.arm_interrupt());
    assert_eq!(dev.used_event(), 0);
    assert!(dev.push_used(0, 1), "used index passed used_event 0");
    q.suppress_interrupt();
    assert!(!dev.push_used(1, 1), "suppressed");
}

#[test]
fn no_notify_and_no_interrupt_flags_without_event_index() {
    let (mut q, mut dev) = queue(8, false);
    q.add(&[seg(0, 1, true)]).unwrap();
    dev_set_no_notify(&q);
    assert!(!q.publish());
    q.suppress_interrupt();
    let (head, _) = dev.pop_avail().unwrap();
    assert!(!dev.push_used(head as u32, 0));
    assert!(q.arm_interrupt(), "a completion is already waiting");
    q.pop_used().unwrap().unwrap();
    assert!(!q.arm_interrupt());
}

fn dev_set_no_notify(q: &SplitQueue<Arc<VecRegion>>) {
    q.region()
        .write_u16(q.layout().device_ring, VIRTQ_USED_F_NO_NOTIFY);
}

#[test]
fn garbage_used_id_out_of_range_is_an_error_and_the_queue_survives() {
    let (mut q, mut dev) = queue(8, false);
    let a = q.add(&[seg(0, 8, true)]).unwrap();
    q.publish();
    dev.pop_avail().unwrap();
    dev.push_used(99, 0);
    assert_eq!(q.pop_used(), Err(DeviceError::UsedIdOutOfRange { id: 99 }));
    dev.push_used(a.0 as u32, 8);
    assert_eq!(q.pop_used(), Ok(Some(Used { chain: a, len: 8 })));
    assert_eq!(q.num_free(), 8);
}

#[test]
fn garbage_double_completion_is_an_error() {
    let (mut q, mut dev) = queue(8, false);
    let a = q.add(&[seg(0, 8, true), seg(8, 8, true)]).unwrap();
    let b = q.add(&[seg(0, 8, true)]).unwrap();
    q.publish();
    dev.push_used(a.0 as u32, 16);
    dev.push_used(a.0 as u32, 16);
    assert_eq!(q.pop_used(), Ok(Some(Used { chain: a, len: 16 })));
    assert_eq!(
        q.pop_used(),
        Err(DeviceError::UsedIdNotInFlight { id: a.0 as u32 })
    );
    // A descriptor in the middle of a chain is not a head either.
    let c = q.add(&[seg(0, 8, true), seg(8, 8, true)]).unwrap();
    q.publish();
    dev.push_used(b.0 as u32, 0);
    assert_eq!(q.pop_used().unwrap().unwrap().chain, b);
    let mid = (0..8u32)
        .find(|&i| {
            i != c.0 as u32 && q.chains[i as usize].is_none() && q.next[c.0 as usize] as u32 == i
        })
        .unwrap();
    dev.push_used(mid, 0);
    assert_eq!(
        q.pop_used(),
        Err(DeviceError::UsedIdNotInFlight { id: mid })
    );
    assert_eq!(q.in_flight(), 1);
}

#[test]
fn garbage_length_too_big_reclaims_the_chain_and_reports_it() {
    let (mut q, mut dev) = queue(8, false);
    let a = q
        .add(&[seg(0, 16, false), seg(16, 512, true), seg(600, 1, true)])
        .unwrap();
    q.publish();
    dev.push_used(a.0 as u32, 514);
    assert_eq!(
        q.pop_used(),
        Err(DeviceError::UsedLenTooBig {
            chain: a,
            len: 514,
            max: 513
        })
    );
    assert_eq!((q.num_free(), q.in_flight()), (8, 0));
}

#[test]
fn garbage_used_index_beyond_the_ring_consumes_nothing() {
    let (mut q, mut dev) = queue(8, false);
    let a = q.add(&[seg(0, 8, true)]).unwrap();
    q.publish();
    dev.set_used_idx_raw(5000);
    let err = q.pop_used().unwrap_err();
    assert_eq!(
        err,
        DeviceError::UsedIndexJump {
            used_idx: 5000,
            last_used: 0,
            in_flight: 1
        }
    );
    assert_eq!(q.in_flight(), 1);
    // With no chain in flight, an element the device invents is not in flight.
    let (mut q2, mut dev2) = queue(8, false);
    dev2.set_used_idx_raw(1);
    assert_eq!(q2.pop_used(), Err(DeviceError::UsedIdNotInFlight { id: 0 }));
    assert_eq!(q2.pop_used(), Ok(None));
    // One step beyond the ring size is a jump; exactly the ring size is not.
    let (mut q3, mut dev3) = queue(8, false);
    dev3.set_used_idx_raw(9);
    assert!(matches!(
        q3.pop_used(),
        Err(DeviceError::UsedIndexJump { .. })
    ));
    dev3.set_used_idx_raw(8);
    assert_eq!(q3.pop_used(), Err(DeviceError::UsedIdNotInFlight { id: 0 }));
    let _ = a;
}
