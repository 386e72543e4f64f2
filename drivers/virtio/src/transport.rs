// SPDX-License-Identifier: MIT OR Apache-2.0
//! The modern virtio PCI transport (virtio 1.x, section 4.1): finding the four
//! structures through vendor capabilities, the device status handshake, queue setup,
//! notification and the ISR.
//!
//! Handshake (section 3.1.1), each step a function here:
//!
//! ```text
//! (1) reset: status <- 0, wait until it reads 0          CommonCfg::reset
//! (2) status |= ACKNOWLEDGE; (3) status |= DRIVER        CommonCfg::negotiate
//! (4) read device features; refuse without VERSION_1;
//!     write features & wanted; (5) status |= FEATURES_OK;
//! (6) re-read status: FEATURES_OK must still be set
//! (7) per queue: select, size, addresses, vector, enable CommonCfg::setup_queue
//! (8) status |= DRIVER_OK                                 CommonCfg::driver_ok
//! any failure: status |= FAILED                           CommonCfg::fail
//! ```

use core::fmt;

use pci::{Bdf, ConfigSpace, capabilities, capability::CAP_VENDOR};

use crate::dma::{DmaRegion, Registers};
use crate::queue::SplitQueue;

/// Feature bit: the device conforms to virtio 1.x (required for the modern transport).
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Feature bit: `used_event` / `avail_event` (event index).
pub const VIRTIO_F_EVENT_IDX: u64 = 1 << 29;
/// Feature bit: indirect descriptors (not used by this core).
pub const VIRTIO_F_INDIRECT_DESC: u64 = 1 << 28;

/// Device status bits.
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest has a driver for it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error and needs a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 128;
}

/// Common configuration register offsets (section 4.1.4.3).
pub mod common {
    #![allow(missing_docs)]
    pub const DEVICE_FEATURE_SELECT: usize = 0;
    pub const DEVICE_FEATURE: usize = 4;
    pub const DRIVER_FEATURE_SELECT: usize = 8;
    pub const DRIVER_FEATURE: usize = 12;
    pub const CONFIG_MSIX_VECTOR: usize = 16;
    pub const NUM_QUEUES: usize = 18;
    pub const DEVICE_STATUS: usize = 20;
    pub const CONFIG_GENERATION: usize = 21;
    pub const QUEUE_SELECT: usize = 22;
    pub const QUEUE_SIZE: usize = 24;
    pub const QUEUE_MSIX_VECTOR: usize = 26;
    pub const QUEUE_ENABLE: usize = 28;
    pub const QUEUE_NOTIFY_OFF: usize = 30;
    pub const QUEUE_DESC: usize = 32;
    pub const QUEUE_DRIVER: usize = 40;
    pub const QUEUE_DEVICE: usize = 48;
}

/// MSI-X vector value meaning "no vector".
pub const NO_VECTOR: u16 = 0xffff;

/// Where one virtio structure lives: a BAR window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapRegion {
    /// BAR index (0..=5).
    pub bar: u8,
    /// Offset inside the BAR.
    pub offset: u32,
    /// Length in bytes.
    pub length: u32,
}

/// The four structures of a modern virtio PCI function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VirtioPciCaps {
    /// Common configuration.
    pub common: CapRegion,
    /// Notification area.
    pub notify: CapRegion,
    /// Bytes between the notify addresses of consecutive `queue_notify_off` values.
    pub notify_off_multiplier: u32,
    /// ISR status byte.
    pub isr: CapRegion,
    /// Device-specific configuration (absent for some device types).
    pub device: Option<CapRegion>,
}

/// A transport step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// A required capability (common, notify or ISR) is missing.
    MissingCapability(u8),
    /// The device does not offer `VIRTIO_F_VERSION_1` (a legacy-only device).
    NoVersion1,
    /// The device did not accept the features (FEATURES_OK cleared).
    FeaturesRejected,
    /// The device did not finish its reset in time.
    ResetTimeout,
    /// The queue does not exist (size 0) or is already enabled.
    QueueUnavailable(u16),
    /// The queue is larger than the device allows.
    QueueTooBig {
        /// Queue index.
        index: u16,
        /// Device maximum.
        max: u16,
    },
    /// The device set DEVICE_NEEDS_RESET.
    NeedsReset,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::MissingCapability(t) => write!(f, "virtio capability type {t} missing"),
            TransportError::NoVersion1 => f.write_str("device does not offer VERSION_1"),
            TransportError::FeaturesRejected => f.write_str("device rejected the features"),
            TransportError::ResetTimeout => f.write_str("device reset timed out"),
            TransportError::QueueUnavailable(q) => write!(f, "queue {q} unavailable"),
            TransportError::QueueTooBig { index, max } => {
                write!(f, "queue {index} larger than the device maximum {max}")
            }
            TransportError::NeedsReset => f.write_str("device needs reset"),
        }
    }
}

/// Finds the virtio structures in `bdf`'s capability list (the first of each type, as
/// section 4.1.4 recommends; capabilities naming a BAR above 5 are skipped).
///
/// # Errors
/// [`TransportError::MissingCapability`] when common (1), notify (2) or ISR (3) is
/// missing.
pub fn find_caps(
    cfg: &(impl ConfigSpace + ?Sized),
    bdf: Bdf,
) -> Result<VirtioPciCaps, TransportError> {
    let (mut common, mut notify, mut isr, mut device) = (None, None, None, None);
    let mut multiplier = 0;
    for cap in capabilities(cfg, bdf).filter(|c| c.id == CAP_VENDOR) {
        let cap_len = cfg.read_u8(bdf, cap.offset + 2);
        let cfg_type = cfg.read_u8(bdf, cap.offset + 3);
        let bar = cfg.read_u8(bdf, cap.offset + 4);
        if cap_len < 16 || bar > 5 {
            continue;
        }
        let region = CapRegion {
            bar,
            offset: cfg.read_u32(bdf, cap.offset + 8),
            length: cfg.read_u32(bdf, cap.offset + 12),
        };
        let slot = match cfg_type {
            1 => &mut common,
            2 if cap_len >= 20 => {
                if notify.is_none() {
                    multiplier = cfg.read_u32(bdf, cap.offset + 16);
                }
                &mut notify
            }
            3 => &mut isr,
            4 => &mut device,
            _ => continue,
        };
        if slot.is_none() {
            *slot = Some(region);
        }
    }
    Ok(VirtioPciCaps {
        common: common.ok_or(TransportError::MissingCapability(1))?,
        notify: notify.ok_or(TransportError::MissingCapability(2))?,
        notify_off_multiplier: multiplier,
        isr: isr.ok_or(TransportError::MissingCapability(3))?,
        device,
    })
}

/// Polls of `device_status` before a reset is declared timed out.
pub const RESET_POLLS: usize = 100_000;

/// The common configuration structure, over its register window.
#[derive(Debug)]
pub struct CommonCfg<R: Registers> {
    regs: R,
}

impl<R: Registers> CommonCfg<R> {
    /// Wraps the window described by [`VirtioPciCaps::common`].
    pub fn new(regs: R) -> Self {
        CommonCfg { regs }
    }

    /// The register window.
    pub fn registers(&self) -> &R {
        &self.regs
    }

    /// Current device status.
    pub fn status(&self) -> u8 {
        self.regs.read_u8(common::DEVICE_STATUS)
    }

    fn add_status(&self, bits: u8) {
        let s = self.status();
        self.regs.write_u8(common::DEVICE_STATUS, s | bits);
    }

    /// Step (1): resets the device and waits until it reads back 0.
    ///
    /// # Errors
    /// [`TransportError::ResetTimeout`] after [`RESET_POLLS`] reads.
    pub fn reset(&self) -> Result<(), TransportError> {
        self.regs.write_u8(common::DEVICE_STATUS, 0);
        for _ in 0..RESET_POLLS {
            if self.status() == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(TransportError::ResetTimeout)
    }

    /// The 64 feature bits the device offers.
    pub fn device_features(&self) -> u64 {
        self.regs.write_u32(common::DEVICE_FEATURE_SELECT, 0);
        let low = self.regs.read_u32(common::DEVICE_FEATURE);
        self.regs.write_u32(common::DEVICE_FEATURE_SELECT, 1);
        let high = self.regs.read_u32(common::DEVICE_FEATURE);
        ((high as u64) << 32) | low as u64
    }

    fn write_driver_features(&self, features: u64) {
        self.regs.write_u32(common::DRIVER_FEATURE_SELECT, 0);
        self.regs.write_u32(common::DRIVER_FEATURE, features as u32);
        self.regs.write_u32(common::DRIVER_FEATURE_SELECT, 1);
        self.regs
            .write_u32(common::DRIVER_FEATURE, (features >> 32) as u32);
    }

    /// Steps (1) to (6): reset, ACKNOWLEDGE, DRIVER, features (`wanted` plus
    /// `VERSION_1`, intersected with the device's), FEATURES_OK and its check. Returns the
    /// negotiated features. On error the device is marked FAILED.
    ///
    /// # Errors
    /// [`TransportError::ResetTimeout`], [`TransportError::NoVersion1`],
    /// [`TransportError::FeaturesRejected`].
    pub fn negotiate(&self, wanted: u64) -> Result<u64, TransportError> {
        self.reset()?;
        self.add_status(status::ACKNOWLEDGE);
        self.add_status(status::DRIVER);
        let offered = self.device_features();
        if offered & VIRTIO_F_VERSION_1 == 0 {
            self.fail();
            return Err(TransportError::NoVersion1);
        }
        let features = offered & (wanted | VIRTIO_F_VERSION_1);
        self.write_driver_features(features);
        self.add_status(status::FEATURES_OK);
        if self.status() & status::FEATURES_OK == 0 {
            self.fail();
            return Err(TransportError::FeaturesRejected);
        }
        Ok(features)
    }

    /// Number of queues the device has.
    pub fn num_queues(&self) -> u16 {
        self.regs.read_u16(common::NUM_QUEUES)
    }

    /// The device's maximum size for queue `index` (0: no such queue).
    pub fn queue_max_size(&self, index: u16) -> u16 {
        self.regs.write_u16(common::QUEUE_SELECT, index);
        self.regs.read_u16(common::QUEUE_SIZE)
    }

    /// Step (7) for one queue: size, the three ring addresses, the MSI-X vector
    /// ([`NO_VECTOR`] for none), enable. Returns the queue's `queue_notify_off`.
    ///
    /// # Errors
    /// [`TransportError::QueueUnavailable`], [`TransportError::QueueTooBig`].
    pub fn setup_queue<D: DmaRegion>(
        &self,
        index: u16,
        queue: &SplitQueue<D>,
        msix_vector: u16,
    ) -> Result<u16, TransportError> {
        let max = self.queue_max_size(index);
        if max == 0 || self.regs.read_u16(common::QUEUE_ENABLE) != 0 {
            return Err(TransportError::QueueUnavailable(index));
        }
        if queue.size() > max {
            return Err(TransportError::QueueTooBig { index, max });
        }
        self.regs.write_u16(common::QUEUE_SIZE, queue.size());
        let write64 = |offset: usize, value: u64| {
            self.regs.write_u32(offset, value as u32);
            self.regs.write_u32(offset + 4, (value >> 32) as u32);
        };
        write64(common::QUEUE_DESC, queue.descriptor_addr());
        write64(common::QUEUE_DRIVER, queue.driver_addr());
        write64(common::QUEUE_DEVICE, queue.device_addr());
        self.regs.write_u16(common::QUEUE_MSIX_VECTOR, msix_vector);
        let notify_off = self.regs.read_u16(common::QUEUE_NOTIFY_OFF);
        self.regs.write_u16(common::QUEUE_ENABLE, 1);
        Ok(notify_off)
    }

    /// Sets the configuration-change MSI-X vector.
    pub fn set_config_vector(&self, vector: u16) {
        self.regs.write_u16(common::CONFIG_MSIX_VECTOR, vector);
    }

    /// Step (8): the driver is ready; the device may start using the queues.
    ///
    /// # Errors
    /// [`TransportError::NeedsReset`] if the device already asks for a reset.
    pub fn driver_ok(&self) -> Result<(), TransportError> {
        self.add_status(status::DRIVER_OK);
        if self.status() & status::DEVICE_NEEDS_RESET != 0 {
            return Err(TransportError::NeedsReset);
        }
        Ok(())
    }

    /// Marks the device FAILED (the driver gave up).
    pub fn fail(&self) {
        self.add_status(status::FAILED);
    }

    /// Configuration generation (re-read device config until it is stable).
    pub fn config_generation(&self) -> u8 {
        self.regs.read_u8(common::CONFIG_GENERATION)
    }
}

/// Writes a queue's notification register.
#[derive(Debug)]
pub struct Notifier<R: Registers> {
    regs: R,
    offset: usize,
    queue: u16,
}

impl<R: Registers> Notifier<R> {
    /// The notifier of `queue`, whose `queue_notify_off` is `notify_off`, in the notify
    /// window `regs` (section 4.1.4.4: offset = notify_off * multiplier).
    pub fn new(regs: R, notify_off: u16, multiplier: u32, queue: u16) -> Self {
        Notifier {
            regs,
            offset: notify_off as usize * multiplier as usize,
            queue,
        }
    }

    /// Byte offset of the register in the notify window.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Tells the device the queue has new buffers.
    ///
    /// # Context
    /// Any CPU; one MMIO write.
    pub fn notify(&self) {
        self.regs.write_u16(self.offset, self.queue);
    }
}

/// What an ISR read said (reading it acknowledges the INTx interrupt).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct IsrStatus {
    /// A queue has used buffers.
    pub is_queue: bool,
    /// The device configuration changed.
    pub is_config: bool,
}

/// Reads (and so clears) the ISR status byte at offset 0 of its window.
///
/// # Context
/// Interrupt context; one MMIO read, no allocation, no logging.
pub fn read_isr(isr: &(impl Registers + ?Sized)) -> IsrStatus {
    let v = isr.read_u8(0);
    IsrStatus {
        is_queue: v & 1 != 0,
        is_config: v & 2 != 0,
    }
}

#[cfg(test)]
mod tests;
