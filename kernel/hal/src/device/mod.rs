//! Safe handles for device drivers: MMIO register windows ([`Mmio`]) and
//! physically contiguous DMA memory ([`DmaMemory`]).
//!
//! Drivers live outside `hal` and declare small traits for the hardware
//! they touch (`virtio::Registers`, `virtio::DmaRegion`, ...); the kernel
//! implements those traits over these handles, so the only `unsafe` of a
//! driver stack is in this module.

mod dma;
mod mmio;

pub use dma::DmaMemory;
pub use mmio::Mmio;

/// Why a device handle could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// The range overlaps RAM the kernel manages (never device memory).
    OverlapsRam { phys: u64, len: u64 },
    /// A zero-length or overflowing range.
    BadRange { phys: u64, len: u64 },
    /// No frames or address space left.
    NoMemory,
}

impl core::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            DeviceError::OverlapsRam { phys, len } => {
                write!(f, "{phys:#x}+{len:#x} overlaps RAM")
            }
            DeviceError::BadRange { phys, len } => write!(f, "bad range {phys:#x}+{len:#x}"),
            DeviceError::NoMemory => f.write_str("out of memory"),
        }
    }
}
