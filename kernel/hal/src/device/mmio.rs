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

    /// A volatile load of a `T` at `offset`.
    ///
    /// # Panics
    /// If the access is out of bounds or misaligned (a driver bug).
    fn read<T: Copy>(&self, offset: usize) -> T {
        let p = super::checked_address(self.va, self.len, offset, size_of::<T>(), "MMIO");
        // SAFETY: `p` is inside the mapped window and aligned
        // (`checked_address`; the invariants on `Mmio`).
        unsafe { (p as *const T).read_volatile() }
    }

    /// A volatile store of a `T` at `offset`.
    ///
    /// # Panics
    /// As `read`.
    fn write<T: Copy>(&self, offset: usize, value: T) {
        let p = super::checked_address(self.va, self.len, offset, size_of::<T>(), "MMIO");
        // SAFETY: as in `read`; device registers, not Rust memory.
        unsafe { (p as *mut T).write_volatile(value) }
    }

    /// Reads the byte at `offset`.
    pub fn read_u8(&self, offset: usize) -> u8 {
        self.read(offset)
    }

    /// Reads the 16-bit register at `offset`.
    pub fn read_u16(&self, offset: usize) -> u16 {
        self.read(offset)
    }

    /// Reads the 32-bit register at `offset`.
    pub fn read_u32(&self, offset: usize) -> u32 {
        self.read(offset)
    }

    /// Writes the byte at `offset`.
    pub fn write_u8(&self, offset: usize, value: u8) {
        self.write(offset, value)
    }

    /// Writes the 16-bit register at `offset`.
    pub fn write_u16(&self, offset: usize, value: u16) {
        self.write(offset, value)
    }

    /// Writes the 32-bit register at `offset`.
    pub fn write_u32(&self, offset: usize, value: u32) {
        self.write(offset, value)
    }
}
