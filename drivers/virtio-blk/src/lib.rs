// SPDX-License-Identifier: MIT OR Apache-2.0
//! virtio-blk: the block driver task over a split virtqueue (virtio 1.x, section 5.2).
#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod irq;
mod request;
mod task;

pub use irq::BlkInterrupt;
pub use request::{
    HEADER_SLOT_BYTES, RequestHeader, VIRTIO_BLK_F_BLK_SIZE, VIRTIO_BLK_F_FLUSH, VIRTIO_BLK_F_MQ,
    VIRTIO_BLK_F_RO, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP, VIRTIO_BLK_T_FLUSH,
    VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, negotiate, num_queues, wanted_features,
};
pub use task::{DEFAULT_REQUEST_TIMEOUT, VirtioBlk};

#[cfg(test)]
mod tests;
