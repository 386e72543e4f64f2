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

/// The address of an access of `size` bytes at `offset` of a `len`-byte
/// region at `base` (`what` names the region in the panic).
///
/// # Panics
/// If the access is out of bounds or misaligned (a driver bug).
fn checked_address(base: u64, len: usize, offset: usize, size: usize, what: &str) -> u64 {
    assert!(
        offset.checked_add(size).is_some_and(|end| end <= len) && offset % size == 0,
        "{what} access of {size} bytes at {offset:#x} outside a {len:#x}-byte region (or misaligned)",
    );
    base + offset as u64
}

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
