// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the virtio core needs from the platform: memory shared with the device, and
//! register blocks. The kernel implements both with `hal` (a DMA allocation and volatile
//! accesses; MMIO handles), tests with plain memory ([`VecRegion`]).

use alloc::vec::Vec;

use spin::Mutex;

/// A physically contiguous region of memory that a device reads and writes by DMA.
///
/// All accesses are little-endian and must be volatile in the kernel's implementation
/// (the device changes the memory behind the compiler's back). `&self` everywhere: the
/// region is shared with the device, so it is interior-mutable by nature.
///
/// # Context
/// Any CPU; never blocks. Out-of-range offsets are a bug in the caller (the core checks
/// its layout once, in `SplitQueue::try_new`); an implementation may panic on them.
pub trait DmaRegion {
    /// The device-visible (bus) address of byte 0.
    fn device_addr(&self) -> u64;
    /// Size in bytes.
    fn len(&self) -> usize;
    /// `true` if the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads a little-endian `u16` at `offset`.
    fn read_u16(&self, offset: usize) -> u16;
    /// Reads a little-endian `u32` at `offset`.
    fn read_u32(&self, offset: usize) -> u32;
    /// Writes a little-endian `u16` at `offset`.
    fn write_u16(&self, offset: usize, value: u16);
    /// Writes a little-endian `u32` at `offset`.
    fn write_u32(&self, offset: usize, value: u32);
    /// Writes a little-endian `u64` at `offset`.
    fn write_u64(&self, offset: usize, value: u64);
    /// A full memory barrier between the accesses before and after it, as seen by the
    /// device (`fence(SeqCst)` on x86_64; no-op in tests).
    fn barrier(&self) {}
}

/// A [`DmaRegion`] in ordinary memory, for host tests and fake devices (share it with
/// the fake device through an `Arc`).
#[derive(Debug)]
pub struct VecRegion {
    addr: u64,
    bytes: Mutex<Vec<u8>>,
}

impl VecRegion {
    /// `len` zeroed bytes that pretend to live at device address `addr`.
    pub fn new(addr: u64, len: usize) -> VecRegion {
        VecRegion {
            addr,
            bytes: Mutex::new(alloc::vec![0; len]),
        }
    }

    fn read<const N: usize>(&self, offset: usize) -> [u8; N] {
        let bytes = self.bytes.lock();
        let mut out = [0; N];
        out.copy_from_slice(&bytes[offset..offset + N]);
        out
    }

    fn write(&self, offset: usize, data: &[u8]) {
        self.bytes.lock()[offset..offset + data.len()].copy_from_slice(data);
    }

    /// Reads a `u64` (devices read descriptor addresses).
    pub fn read_u64(&self, offset: usize) -> u64 {
        u64::from_le_bytes(self.read(offset))
    }
}

impl DmaRegion for VecRegion {
    fn device_addr(&self) -> u64 {
        self.addr
    }
    fn len(&self) -> usize {
        self.bytes.lock().len()
    }
    fn read_u16(&self, offset: usize) -> u16 {
        u16::from_le_bytes(self.read(offset))
    }
    fn read_u32(&self, offset: usize) -> u32 {
        u32::from_le_bytes(self.read(offset))
    }
    fn write_u16(&self, offset: usize, value: u16) {
        self.write(offset, &value.to_le_bytes())
    }
    fn write_u32(&self, offset: usize, value: u32) {
        self.write(offset, &value.to_le_bytes())
    }
    fn write_u64(&self, offset: usize, value: u64) {
        self.write(offset, &value.to_le_bytes())
    }
}

impl<T: DmaRegion + ?Sized> DmaRegion for alloc::sync::Arc<T> {
    fn device_addr(&self) -> u64 {
        (**self).device_addr()
    }
    fn len(&self) -> usize {
        (**self).len()
    }
    fn read_u16(&self, offset: usize) -> u16 {
        (**self).read_u16(offset)
    }
    fn read_u32(&self, offset: usize) -> u32 {
        (**self).read_u32(offset)
    }
    fn write_u16(&self, offset: usize, value: u16) {
        (**self).write_u16(offset, value)
    }
    fn write_u32(&self, offset: usize, value: u32) {
        (**self).write_u32(offset, value)
    }
    fn write_u64(&self, offset: usize, value: u64) {
        (**self).write_u64(offset, value)
    }
    fn barrier(&self) {
        (**self).barrier()
    }
}

/// A block of device registers addressed by byte offset (an MMIO window inside a BAR,
/// or I/O ports). The kernel implements it over `hal`'s safe MMIO handle.
///
/// # Context
/// Any CPU, also in interrupt context; never blocks; little-endian, volatile.
pub trait Registers {
    /// Reads an 8-bit register.
    fn read_u8(&self, offset: usize) -> u8;
    /// Reads a 16-bit register.
    fn read_u16(&self, offset: usize) -> u16;
    /// Reads a 32-bit register.
    fn read_u32(&self, offset: usize) -> u32;
    /// Writes an 8-bit register.
    fn write_u8(&self, offset: usize, value: u8);
    /// Writes a 16-bit register.
    fn write_u16(&self, offset: usize, value: u16);
    /// Writes a 32-bit register.
    fn write_u32(&self, offset: usize, value: u32);
}

impl<T: Registers + ?Sized> Registers for &T {
    fn read_u8(&self, offset: usize) -> u8 {
        (**self).read_u8(offset)
    }
    fn read_u16(&self, offset: usize) -> u16 {
        (**self).read_u16(offset)
    }
    fn read_u32(&self, offset: usize) -> u32 {
        (**self).read_u32(offset)
    }
    fn write_u8(&self, offset: usize, value: u8) {
        (**self).write_u8(offset, value)
    }
    fn write_u16(&self, offset: usize, value: u16) {
        (**self).write_u16(offset, value)
    }
    fn write_u32(&self, offset: usize, value: u32) {
        (**self).write_u32(offset, value)
    }
}

impl<T: Registers + ?Sized> Registers for alloc::sync::Arc<T> {
    fn read_u8(&self, offset: usize) -> u8 {
        (**self).read_u8(offset)
    }
    fn read_u16(&self, offset: usize) -> u16 {
        (**self).read_u16(offset)
    }
    fn read_u32(&self, offset: usize) -> u32 {
        (**self).read_u32(offset)
    }
    fn write_u8(&self, offset: usize, value: u8) {
        (**self).write_u8(offset, value)
    }
    fn write_u16(&self, offset: usize, value: u16) {
        (**self).write_u16(offset, value)
    }
    fn write_u32(&self, offset: usize, value: u32) {
        (**self).write_u32(offset, value)
    }
}

/// Which way a mapped buffer's data flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaDirection {
    /// The device reads the buffer (a write request's data).
    ToDevice,
    /// The device writes the buffer (a read request's data).
    FromDevice,
}

/// One physically contiguous piece of a mapped buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmaSegment {
    /// Device-visible address.
    pub addr: u64,
    /// Length in bytes (not zero).
    pub len: u32,
}

/// Lends an owned buffer to a device and takes it back (the Linux DMA API's map/unmap,
/// with ownership made explicit).
///
/// `map` takes the `Vec` by value: while it is mapped nobody on the CPU can touch it, so
/// the device may write it at any time. `unmap` gives it back, with the device's data in
/// it for [`DmaDirection::FromDevice`]. The kernel implements this by translating the
/// buffer's pages to physical segments (or bouncing through DMA memory when the buffer
/// is not DMA-able); tests use [`crate::fake::FakeMemory`].
///
/// # Context
/// Any CPU, never blocks; `map` may allocate. Not called from `on_interrupt`.
pub trait DmaMapper {
    /// A buffer while the device owns it.
    type Mapped: Send;
    /// Maps `buf` (which must not be empty) for the device.
    ///
    /// # Errors
    /// The buffer back when it cannot be mapped (no bounce memory, ...).
    fn map(&self, buf: Vec<u8>, direction: DmaDirection) -> Result<Self::Mapped, Vec<u8>>;
    /// The segments of a mapping, in buffer order.
    fn segments<'a>(&self, mapped: &'a Self::Mapped) -> &'a [DmaSegment];
    /// Ends the mapping and returns the buffer.
    fn unmap(&self, mapped: Self::Mapped) -> Vec<u8>;
    /// The device address of `len` bytes of caller memory at physical address `phys`
    /// that the caller already holds in place for the device (pinned user pages:
    /// zero-copy `O_DIRECT`); the caller keeps it valid until the device is done. `None`
    /// if the device cannot reach that memory (then the request fails, nothing is
    /// copied).
    fn external_addr(&self, phys: u64, len: u32, direction: DmaDirection) -> Option<u64>;
}

impl<T: DmaMapper + ?Sized> DmaMapper for alloc::sync::Arc<T> {
    type Mapped = T::Mapped;
    fn map(&self, buf: Vec<u8>, direction: DmaDirection) -> Result<Self::Mapped, Vec<u8>> {
        (**self).map(buf, direction)
    }
    fn segments<'a>(&self, mapped: &'a Self::Mapped) -> &'a [DmaSegment] {
        (**self).segments(mapped)
    }
    fn unmap(&self, mapped: Self::Mapped) -> Vec<u8> {
        (**self).unmap(mapped)
    }
    fn external_addr(&self, phys: u64, len: u32, direction: DmaDirection) -> Option<u64> {
        (**self).external_addr(phys, len, direction)
    }
}
