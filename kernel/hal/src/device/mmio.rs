//! Device register windows.

use super::DeviceError;

/// A window of device registers mapped uncached: `len` bytes starting at
/// physical `phys`, accessed with volatile loads and stores.
///
/// Invariants the unsafe code relies on: `va..va+len` is an uncached
/// mapping of `phys..phys+len` made by [`Mmio::map`], which checked that
/// the range is not RAM the kernel manages; the mapping is never removed
/// (device windows live as long as the kernel), and every access is bounds
/// checked against `len` and naturally aligned.
#[derive(Debug)]
pub struct Mmio {
    phys: u64,
    va: u64,
    len: usize,
}

impl Mmio {
    /// Maps `len` bytes of device memory at `phys`.
    ///
    /// # Errors
    /// [`DeviceError::OverlapsRam`] when the range touches usable RAM from
    /// the boot memory map; [`DeviceError::BadRange`] for an empty or
    /// wrapping range; [`DeviceError::NoMemory`].
    pub fn map(phys: u64, len: u64) -> Result<Mmio, DeviceError> {
        let end = phys.checked_add(len).filter(|_| len > 0);
        let Some(end) = end else {
            return Err(DeviceError::BadRange { phys, len });
        };
        if let Some(info) = crate::boot::info() {
            let overlaps = info.usable().iter().any(|r| r.start < end && phys < r.end);
            if overlaps {
                return Err(DeviceError::OverlapsRam { phys, len });
            }
        }
        // SAFETY: the range is not RAM the kernel manages (checked above
        // against the boot memory map), so the uncached mapping aliases no
        // ordinary memory; the caller owns the device.
        let va = unsafe { crate::mm::map_mmio(phys, len) }.map_err(|_| DeviceError::NoMemory)?;
        Ok(Mmio {
            phys,
            va,
            len: len as usize,
        })
    }

    /// Physical address of byte 0.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for an empty window (never: `map` refuses those).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A sub-window's address check: the virtual address of `offset` for an
    /// access of `size` bytes.
    ///
    /// # Panics
    /// If the access is out of bounds or misaligned (a driver bug).
    fn at(&self, offset: usize, size: usize) -> u64 {
        assert!(
            offset.checked_add(size).is_some_and(|end| end <= self.len) && offset % size == 0,
            "MMIO access of {size} bytes at {offset:#x} outside a {:#x}-byte window (or misaligned)",
            self.len
        );
        self.va + offset as u64
    }

    /// Reads the byte at `offset`.
    pub fn read_u8(&self, offset: usize) -> u8 {
        let p = self.at(offset, 1) as *const u8;
        // SAFETY: `p` is inside the mapped window and aligned (`at`; the
        // invariants on `Mmio`).
        unsafe { p.read_volatile() }
    }

    /// Reads the 16-bit register at `offset`.
    pub fn read_u16(&self, offset: usize) -> u16 {
        let p = self.at(offset, 2) as *const u16;
        // SAFETY: as in `read_u8`.
        unsafe { p.read_volatile() }
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read_u32(&self, offset: usize) -> u32 {
        let p = self.at(offset, 4) as *const u32;
        // SAFETY: as in `read_u8`.
        unsafe { p.read_volatile() }
    }

    /// Writes the byte at `offset`.
    pub fn write_u8(&self, offset: usize, value: u8) {
        let p = self.at(offset, 1) as *mut u8;
        // SAFETY: as in `read_u8`; device registers, not Rust memory.
        unsafe { p.write_volatile(value) }
    }

    /// Writes the 16-bit register at `offset`.
    pub fn write_u16(&self, offset: usize, value: u16) {
        let p = self.at(offset, 2) as *mut u16;
        // SAFETY: as in `write_u8`.
        unsafe { p.write_volatile(value) }
    }

    /// Writes the 32-bit register at `offset`.
    pub fn write_u32(&self, offset: usize, value: u32) {
        let p = self.at(offset, 4) as *mut u32;
        // SAFETY: as in `write_u8`.
        unsafe { p.write_volatile(value) }
    }
}
