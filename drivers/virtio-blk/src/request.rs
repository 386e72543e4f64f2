// SPDX-License-Identifier: MIT OR Apache-2.0
//! virtio-blk requests (section 5.2.6): a chain of header (device-readable, 16 bytes),
//! data (device-readable for writes, device-writable for reads, none for flush) and
//! status (device-writable, 1 byte). Feature negotiation and the device configuration.

use ports::proto::block::BlockInfo;
use virtio::transport::{CommonCfg, TransportError, VIRTIO_F_EVENT_IDX};
use virtio::{DmaRegion, Registers};

/// Feature: the device is read-only.
pub const VIRTIO_BLK_F_RO: u64 = 1 << 5;
/// Feature: `blk_size` is valid.
pub const VIRTIO_BLK_F_BLK_SIZE: u64 = 1 << 6;
/// Feature: the flush command exists (the device has a write cache).
pub const VIRTIO_BLK_F_FLUSH: u64 = 1 << 9;
/// Feature: more than one request queue (`num_queues` is valid).
pub const VIRTIO_BLK_F_MQ: u64 = 1 << 12;

/// Offset of `num_queues` (u16) in the device configuration.
const CONFIG_NUM_QUEUES: usize = 34;

/// Request type: read.
pub const VIRTIO_BLK_T_IN: u32 = 0;
/// Request type: write.
pub const VIRTIO_BLK_T_OUT: u32 = 1;
/// Request type: flush.
pub const VIRTIO_BLK_T_FLUSH: u32 = 4;

/// Status: success.
pub const VIRTIO_BLK_S_OK: u8 = 0;
/// Status: device or driver error.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// Status: unsupported request.
pub const VIRTIO_BLK_S_UNSUPP: u8 = 2;

/// virtio-blk sectors are always 512 bytes, whatever `blk_size` says (section 5.2.6).
pub const SECTOR_SIZE: u32 = 512;

/// Bytes of header memory per request slot: 16-byte header, status byte at 16, padding.
pub const HEADER_SLOT_BYTES: usize = 32;

/// The request header (`struct virtio_blk_req` up to the data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHeader {
    /// `VIRTIO_BLK_T_*`.
    pub kind: u32,
    /// First 512-byte sector (0 for flush).
    pub sector: u64,
}

impl RequestHeader {
    /// Writes the header into slot `slot` of `headers` and sets its status byte to
    /// 0xff (so a device that never writes it is caught).
    pub fn write_to(&self, headers: &impl DmaRegion, slot: usize) {
        let at = slot * HEADER_SLOT_BYTES;
        // `type` and the reserved word in one little-endian store.
        headers.write_u64(at, u64::from(self.kind));
        headers.write_u64(at + 8, self.sector);
        headers.write_u16(at + 16, 0x00ff);
    }

    /// Reads a header back (fake devices, tests).
    pub fn from_bytes(bytes: &[u8]) -> Option<RequestHeader> {
        let bytes: &[u8; 16] = bytes.get(..16)?.try_into().ok()?;
        Some(RequestHeader {
            kind: u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
            sector: u64::from_le_bytes([
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14],
                bytes[15],
            ]),
        })
    }
}

/// Reads the status byte of slot `slot`.
pub(crate) fn read_status(headers: &impl DmaRegion, slot: usize) -> u8 {
    headers.read_u16(slot * HEADER_SLOT_BYTES + 16) as u8
}

/// The features this driver asks for.
pub const fn wanted_features() -> u64 {
    VIRTIO_BLK_F_RO
        | VIRTIO_BLK_F_BLK_SIZE
        | VIRTIO_BLK_F_FLUSH
        | VIRTIO_BLK_F_MQ
        | VIRTIO_F_EVENT_IDX
}

/// The request queues the device offers: `num_queues` when `VIRTIO_BLK_F_MQ` was
/// negotiated (a device that says 0 gets 1), else 1. Queue `i` is virtqueue `i`.
pub fn num_queues<D: Registers>(features: u64, device_cfg: &D) -> u16 {
    if features & VIRTIO_BLK_F_MQ == 0 {
        return 1;
    }
    device_cfg.read_u16(CONFIG_NUM_QUEUES).max(1)
}

/// Handshake steps (1)-(6) for a block device, then reads its configuration (capacity
/// at offset 0, re-read until `config_generation` is stable). Returns the negotiated
/// features and the geometry. The caller then sets up queue 0 and calls `driver_ok`.
///
/// # Errors
/// Those of [`CommonCfg::negotiate`].
pub fn negotiate<C: Registers, D: Registers>(
    common: &CommonCfg<C>,
    device_cfg: &D,
) -> Result<(u64, BlockInfo), TransportError> {
    let features = common.negotiate(wanted_features())?;
    let sectors = loop {
        let before = common.config_generation();
        let low = device_cfg.read_u32(0) as u64;
        let high = device_cfg.read_u32(4) as u64;
        if common.config_generation() == before {
            break (high << 32) | low;
        }
    };
    Ok((
        features,
        BlockInfo {
            sectors,
            sector_size: SECTOR_SIZE,
            read_only: features & VIRTIO_BLK_F_RO != 0,
            has_flush: features & VIRTIO_BLK_F_FLUSH != 0,
        },
    ))
}
