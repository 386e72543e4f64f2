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

    /// # Panics
    /// If the access is out of bounds or misaligned (a driver bug).
    fn at(&self, offset: usize, size: usize) -> u64 {
        assert!(
            offset.checked_add(size).is_some_and(|end| end <= self.len) && offset % size == 0,
            "DMA access of {size} bytes at {offset:#x} outside a {:#x}-byte region (or misaligned)",
            self.len
        );
        phys_to_virt(self.phys) + offset as u64
    }

    /// Reads the 16-bit value at `offset`.
    pub fn read_u16(&self, offset: usize) -> u16 {
        let p = self.at(offset, 2) as *const u16;
        // SAFETY: inside frames this handle owns, aligned (`at`; the
        // invariants on `DmaMemory`).
        unsafe { p.read_volatile() }
    }

    /// Reads the 32-bit value at `offset`.
    pub fn read_u32(&self, offset: usize) -> u32 {
        let p = self.at(offset, 4) as *const u32;
        // SAFETY: as in `read_u16`.
        unsafe { p.read_volatile() }
    }

    /// Reads the byte at `offset`.
    pub fn read_u8(&self, offset: usize) -> u8 {
        let p = self.at(offset, 1) as *const u8;
        // SAFETY: as in `read_u16`.
        unsafe { p.read_volatile() }
    }

    /// Writes the byte at `offset`.
    pub fn write_u8(&self, offset: usize, value: u8) {
        let p = self.at(offset, 1) as *mut u8;
        // SAFETY: as in `read_u16`.
        unsafe { p.write_volatile(value) }
    }

    /// Writes the 16-bit value at `offset`.
    pub fn write_u16(&self, offset: usize, value: u16) {
        let p = self.at(offset, 2) as *mut u16;
        // SAFETY: as in `read_u16`.
        unsafe { p.write_volatile(value) }
    }

    /// Writes the 32-bit value at `offset`.
    pub fn write_u32(&self, offset: usize, value: u32) {
        let p = self.at(offset, 4) as *mut u32;
        // SAFETY: as in `read_u16`.
        unsafe { p.write_volatile(value) }
    }

    /// Writes the 64-bit value at `offset`.
    pub fn write_u64(&self, offset: usize, value: u64) {
        let p = self.at(offset, 8) as *mut u64;
        // SAFETY: as in `read_u16`.
        unsafe { p.write_volatile(value) }
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
