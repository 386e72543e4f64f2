// SPDX-License-Identifier: MIT OR Apache-2.0
//! virtio: the split virtqueue and the modern PCI transport, host-testable.
#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod dma;
pub mod fake;
pub mod queue;

pub use dma::{DmaDirection, DmaMapper, DmaRegion, DmaSegment, Registers, VecRegion};
pub use queue::{
    ChainId, DeviceError, QueueError, QueueLayout, Segment, SplitQueue, Used, vring_need_event,
};
pub mod transport;

pub use transport::{
    CommonCfg, IsrStatus, Notifier, TransportError, VirtioPciCaps, find_caps, read_isr,
};
