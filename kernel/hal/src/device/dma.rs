//! Physically contiguous memory shared with devices.

use core::sync::atomic::{Ordering, fence};

use super::DeviceError;
use crate::mm::{PAGE_SIZE, phys_to_virt};

/// Zeroed, physically contiguous frames for a device to read and write
/// (virtqueues, request headers), reached through the direct map.
///
/// Invariants the unsafe code relies on: `phys..phys+pages*4096` are frames
/// this handle allocated and owns until it is dropped; every access is
/// bounds checked and naturally aligned, and volatile (the device changes
/// the memory behind the compiler's back). Drop this only once the device
/// has stopped using the memory (reset it first).
#[derive(Debug)]
pub struct DmaMemory {
    phys: u64,
    pages: usize,
    len: usize,
}

impl DmaMemory {
    /// `len` bytes (rounded up to whole pages), zeroed, page aligned.
    ///
    /// # Errors
    /// [`DeviceError::NoMemory`], [`DeviceError::BadRange`] for 0 bytes.
    pub fn new(len: usize) -> Result<DmaMemory, DeviceError> {
        if len == 0 {
            return Err(DeviceError::BadRange { phys: 0, len: 0 });
        }
        let pages = len.div_ceil(PAGE_SIZE as usize);
        let phys = crate::mm::alloc_frames_contiguous(pages, 1).ok_or(DeviceError::NoMemory)?;
        let memory = DmaMemory { phys, pages, len };
        let base = phys_to_virt(phys) as *mut u8;
        // SAFETY: the frames were just allocated for this handle (nothing
        // else uses them) and the direct map covers all RAM.
        unsafe { core::ptr::write_bytes(base, 0, pages * PAGE_SIZE as usize) };
        Ok(memory)
    }

    /// Physical (and, without an IOMMU, device) address of byte 0.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Size in bytes as requested.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` for an empty region (never: `new` refuses those).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A volatile load of a `T` at `offset`.
    ///
    /// # Panics
    /// If the access is out of bounds or misaligned (a driver bug).
    fn read<T: Copy>(&self, offset: usize) -> T {
        let base = phys_to_virt(self.phys);
        let p = super::checked_address(base, self.len, offset, size_of::<T>(), "DMA");
        // SAFETY: inside frames this handle owns, aligned (`checked_address`;
        // the invariants on `DmaMemory`).
        unsafe { (p as *const T).read_volatile() }
    }

    /// A volatile store of a `T` at `offset`.
    ///
    /// # Panics
    /// As `read`.
    fn write<T: Copy>(&self, offset: usize, value: T) {
        let base = phys_to_virt(self.phys);
        let p = super::checked_address(base, self.len, offset, size_of::<T>(), "DMA");
        // SAFETY: as in `read`.
        unsafe { (p as *mut T).write_volatile(value) }
    }

    /// Reads the byte at `offset`.
    pub fn read_u8(&self, offset: usize) -> u8 {
        self.read(offset)
    }

    /// Reads the 16-bit value at `offset`.
    pub fn read_u16(&self, offset: usize) -> u16 {
        self.read(offset)
    }

    /// Reads the 32-bit value at `offset`.
    pub fn read_u32(&self, offset: usize) -> u32 {
        self.read(offset)
    }

    /// Writes the byte at `offset`.
    pub fn write_u8(&self, offset: usize, value: u8) {
        self.write(offset, value)
    }

    /// Writes the 16-bit value at `offset`.
    pub fn write_u16(&self, offset: usize, value: u16) {
        self.write(offset, value)
    }

    /// Writes the 32-bit value at `offset`.
    pub fn write_u32(&self, offset: usize, value: u32) {
        self.write(offset, value)
    }

    /// Writes the 64-bit value at `offset`.
    pub fn write_u64(&self, offset: usize, value: u64) {
        self.write(offset, value)
    }

    /// A full fence: accesses before it are visible to the device before
    /// those after it.
    pub fn barrier(&self) {
        fence(Ordering::SeqCst);
    }
}

impl Drop for DmaMemory {
    fn drop(&mut self) {
        crate::mm::free_frames_contiguous(self.phys, self.pages);
    }
}
