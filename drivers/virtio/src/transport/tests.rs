// SPDX-License-Identifier: MIT OR Apache-2.0
//! Transport tests: capability parsing on the fake q35, the handshake against a fake
//! device, and devices that refuse or misbehave.

use alloc::sync::Arc;

use pci::Bdf;
use pci::capability::CAP_VENDOR;
use pci::fake::{FakeConfigSpace, FakeFunction, q35, virtio_cap_body};

use super::*;
use crate::dma::VecRegion;
use crate::fake::{FakeCommonCfg, FakeWindow};
use crate::queue::QueueLayout;

#[test]
fn capabilities_of_a_q35_virtio_blk_are_found() {
    let caps = find_caps(&q35(), Bdf::new(0, 2, 0)).unwrap();
    assert_eq!(
        caps.common,
        CapRegion {
            bar: 4,
            offset: 0,
            length: 0x1000
        }
    );
    assert_eq!(
        caps.isr,
        CapRegion {
            bar: 4,
            offset: 0x1000,
            length: 0x1000
        }
    );
    assert_eq!(
        caps.device,
        Some(CapRegion {
            bar: 4,
            offset: 0x2000,
            length: 0x1000
        })
    );
    assert_eq!(
        caps.notify,
        CapRegion {
            bar: 4,
            offset: 0x3000,
            length: 0x1000
        }
    );
    assert_eq!(caps.notify_off_multiplier, 4);
}

#[test]
fn missing_or_bogus_capabilities_are_errors() {
    let bdf = Bdf::new(0, 0, 0);
    // No notify capability; a common cfg in BAR 7 is skipped, the second one is used.
    let f = FakeFunction::new(0x1af4, 0x1042, 1, 0, 0)
        .capability(CAP_VENDOR, &virtio_cap_body(1, 7, 0x100, 0x38, None))
        .capability(CAP_VENDOR, &virtio_cap_body(1, 2, 0x200, 0x38, None))
        .capability(CAP_VENDOR, &virtio_cap_body(3, 2, 0x0, 1, None));
    let cfg = FakeConfigSpace::new().with(bdf, f);
    assert_eq!(
        find_caps(&cfg, bdf),
        Err(TransportError::MissingCapability(2))
    );
    // A notify capability too short to hold the multiplier is skipped.
    let f = FakeFunction::new(0x1af4, 0x1042, 1, 0, 0)
        .capability(CAP_VENDOR, &virtio_cap_body(1, 2, 0x200, 0x38, None))
        .capability(CAP_VENDOR, &virtio_cap_body(2, 2, 0x0, 1, None))
        .capability(CAP_VENDOR, &virtio_cap_body(3, 2, 0x0, 1, None));
    let cfg = FakeConfigSpace::new().with(bdf, f);
    assert_eq!(
        find_caps(&cfg, bdf),
        Err(TransportError::MissingCapability(2))
    );
    assert_eq!(
        find_caps(&q35(), Bdf::new(0, 1, 0)),
        Err(TransportError::MissingCapability(1))
    );
}

#[test]
fn handshake_negotiates_version_1_and_event_idx() {
    let dev = FakeCommonCfg::new(
        VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | (1 << 9) | (1 << 5),
        &[128],
    );
    let common = CommonCfg::new(&dev);
    let features = common
        .negotiate(VIRTIO_F_EVENT_IDX | (1 << 9) | (1 << 6))
        .unwrap();
    assert_eq!(features, VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | (1 << 9));
    {
        let s = dev.state.lock();
        assert_eq!(s.driver_features, features);
        assert_eq!(
            s.status_writes,
            [
                0,
                status::ACKNOWLEDGE,
                status::ACKNOWLEDGE | status::DRIVER,
                1 | 2 | status::FEATURES_OK
            ]
        );
    }
    assert_eq!(common.num_queues(), 1);
    assert_eq!(common.queue_max_size(0), 128);
    let layout = QueueLayout::try_new(64).unwrap();
    let queue = SplitQueue::try_new(
        Arc::new(VecRegion::new(0x7000_0000, layout.len_bytes)),
        64,
        true,
    )
    .unwrap();
    assert_eq!(common.setup_queue(0, &queue, 1), Ok(0));
    {
        let s = dev.state.lock();
        let q = s.queues[0];
        assert_eq!((q.size, q.enable, q.msix_vector), (64, 1, 1));
        assert_eq!(
            (q.desc, q.driver, q.device),
            (
                0x7000_0000,
                0x7000_0000 + 1024,
                0x7000_0000 + layout.device_ring as u64
            )
        );
    }
    assert_eq!(
        common.setup_queue(0, &queue, 1),
        Err(TransportError::QueueUnavailable(0)),
        "already enabled"
    );
    assert_eq!(
        common.setup_queue(1, &queue, 1),
        Err(TransportError::QueueUnavailable(1))
    );
    common.driver_ok().unwrap();
    assert_eq!(common.status(), 1 | 2 | 4 | 8);
}

#[test]
fn a_legacy_only_device_is_refused_and_marked_failed() {
    let dev = FakeCommonCfg::new(1 << 9, &[128]);
    let common = CommonCfg::new(&dev);
    assert_eq!(common.negotiate(0), Err(TransportError::NoVersion1));
    assert_ne!(common.status() & status::FAILED, 0);
}

#[test]
fn rejected_features_are_an_error() {
    let dev = FakeCommonCfg::new(VIRTIO_F_VERSION_1, &[128]);
    dev.state.lock().reject_features = true;
    let common = CommonCfg::new(&dev);
    assert_eq!(common.negotiate(0), Err(TransportError::FeaturesRejected));
    assert_ne!(common.status() & status::FAILED, 0);
}

#[test]
fn a_device_stuck_in_reset_times_out() {
    let dev = FakeCommonCfg::new(VIRTIO_F_VERSION_1, &[128]);
    {
        let mut s = dev.state.lock();
        s.status = status::DRIVER_OK;
        s.stuck_in_reset = true;
    }
    assert_eq!(
        CommonCfg::new(&dev).negotiate(0),
        Err(TransportError::ResetTimeout)
    );
}

#[test]
fn a_queue_larger_than_the_device_allows_is_refused() {
    let dev = FakeCommonCfg::new(VIRTIO_F_VERSION_1, &[16]);
    let common = CommonCfg::new(&dev);
    common.negotiate(0).unwrap();
    let queue = SplitQueue::try_new(
        VecRegion::new(0, QueueLayout::try_new(32).unwrap().len_bytes),
        32,
        false,
    )
    .unwrap();
    assert_eq!(
        common.setup_queue(0, &queue, NO_VECTOR),
        Err(TransportError::QueueTooBig { index: 0, max: 16 })
    );
}

#[test]
fn needs_reset_at_driver_ok_is_reported() {
    let dev = FakeCommonCfg::new(VIRTIO_F_VERSION_1, &[16]);
    dev.state.lock().needs_reset = true;
    let common = CommonCfg::new(&dev);
    common.negotiate(0).unwrap();
    assert_eq!(common.driver_ok(), Err(TransportError::NeedsReset));
}

#[test]
fn notify_writes_the_queue_index_at_its_offset_and_isr_clears_on_read() {
    let window = FakeWindow::new(64, false);
    let n = Notifier::new(&window, 3, 4, 7);
    assert_eq!(n.offset(), 12);
    n.notify();
    assert_eq!(window.take_writes(), [(12, 7)]);
    let isr = FakeWindow::new(4, true);
    isr.set(0, &[3]);
    assert_eq!(
        read_isr(&isr),
        IsrStatus {
            is_queue: true,
            is_config: true
        }
    );
    assert_eq!(read_isr(&isr), IsrStatus::default());
}
