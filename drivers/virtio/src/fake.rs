// SPDX-License-Identifier: MIT OR Apache-2.0
//! Test doubles: memory a fake device reaches by address, and the device's half of a
//! split queue. Used by this crate's tests and by driver crates' tests (virtio-blk);
//! never by the kernel.

use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;

use spin::Mutex;

use crate::dma::{DmaDirection, DmaMapper, DmaRegion, DmaSegment, VecRegion};
use crate::queue::{
    QueueLayout, VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE,
    vring_need_event,
};

const PAGE: u64 = 4096;

struct Inner {
    regions: Vec<Arc<VecRegion>>,
    buffers: BTreeMap<u64, Vec<u8>>,
    next_addr: u64,
    refuse_maps: usize,
}

/// Memory as a fake device sees it: DMA regions and mapped buffers, by address.
///
/// Also the [`DmaMapper`] of tests: `map` parks the buffer here at a fresh address and
/// describes it in page-sized segments (so multi-segment chains get exercised).
pub struct FakeMemory {
    inner: Mutex<Inner>,
}

impl Default for FakeMemory {
    fn default() -> Self {
        FakeMemory::new()
    }
}

impl FakeMemory {
    /// Empty memory; addresses start at 1 MiB.
    pub fn new() -> FakeMemory {
        FakeMemory {
            inner: Mutex::new(Inner {
                regions: Vec::new(),
                buffers: BTreeMap::new(),
                next_addr: 0x10_0000,
                refuse_maps: 0,
            }),
        }
    }

    fn alloc_addr(inner: &mut Inner, len: usize) -> u64 {
        let addr = inner.next_addr;
        inner.next_addr += (len as u64).div_ceil(PAGE).max(1) * PAGE + PAGE;
        addr
    }

    /// A new zeroed DMA region of `len` bytes.
    pub fn region(&self, len: usize) -> Arc<VecRegion> {
        let mut inner = self.inner.lock();
        let addr = Self::alloc_addr(&mut inner, len);
        let region = Arc::new(VecRegion::new(addr, len));
        inner.regions.push(region.clone());
        region
    }

    /// The next `n` calls to `map` fail (to test the driver's error path).
    pub fn refuse_maps(&self, n: usize) {
        self.inner.lock().refuse_maps = n;
    }

    /// Buffers currently mapped.
    pub fn mapped_buffers(&self) -> usize {
        self.inner.lock().buffers.len()
    }

    /// Reads `len` bytes at `addr` (`None` if not inside one region or buffer).
    pub fn read(&self, addr: u64, len: usize) -> Option<Vec<u8>> {
        let inner = self.inner.lock();
        for region in &inner.regions {
            let base = region.device_addr();
            if addr >= base && addr + len as u64 <= base + region.len() as u64 {
                let off = (addr - base) as usize;
                return Some((off..off + len).map(|i| region.read_u8(i)).collect());
            }
        }
        let (&base, buf) = inner.buffers.range(..=addr).next_back()?;
        let off = (addr - base) as usize;
        buf.get(off..off.checked_add(len)?).map(<[u8]>::to_vec)
    }

    /// Writes `data` at `addr`; `false` if not inside one region or buffer.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        let mut inner = self.inner.lock();
        for region in &inner.regions {
            let base = region.device_addr();
            if addr >= base && addr + data.len() as u64 <= base + region.len() as u64 {
                let off = (addr - base) as usize;
                for (i, b) in data.iter().enumerate() {
                    region.write_u8(off + i, *b);
                }
                return true;
            }
        }
        let Some((&base, buf)) = inner.buffers.range_mut(..=addr).next_back() else {
            return false;
        };
        let off = (addr - base) as usize;
        match off
            .checked_add(data.len())
            .and_then(|end| buf.get_mut(off..end))
        {
            Some(dst) => {
                dst.copy_from_slice(data);
                true
            }
            None => false,
        }
    }
}

/// A buffer parked in [`FakeMemory`].
#[derive(Debug)]
pub struct FakeMapping {
    addr: u64,
    segments: Vec<DmaSegment>,
}

impl DmaMapper for FakeMemory {
    type Mapped = FakeMapping;

    fn map(&self, buf: Vec<u8>, _direction: DmaDirection) -> Result<FakeMapping, Vec<u8>> {
        let mut inner = self.inner.lock();
        if inner.refuse_maps > 0 || buf.is_empty() {
            inner.refuse_maps = inner.refuse_maps.saturating_sub(1);
            return Err(buf);
        }
        // Start mid-page so the first segment is short: chains of 2+ data segments.
        let addr = Self::alloc_addr(&mut inner, buf.len() + 2048) + 2048;
        let mut segments = Vec::new();
        let (mut at, end) = (addr, addr + buf.len() as u64);
        while at < end {
            let piece_end = ((at / PAGE) + 1) * PAGE;
            let piece_end = piece_end.min(end);
            segments.push(DmaSegment {
                addr: at,
                len: (piece_end - at) as u32,
            });
            at = piece_end;
        }
        inner.buffers.insert(addr, buf);
        Ok(FakeMapping { addr, segments })
    }

    fn segments<'a>(&self, mapped: &'a FakeMapping) -> &'a [DmaSegment] {
        &mapped.segments
    }

    fn unmap(&self, mapped: FakeMapping) -> Vec<u8> {
        self.inner
            .lock()
            .buffers
            .remove(&mapped.addr)
            .expect("fake: unmap of a mapping that exists")
    }
}

impl VecRegion {
    /// Reads one byte (fake devices).
    pub fn read_u8(&self, offset: usize) -> u8 {
        (self.read_u16(offset & !1) >> ((offset & 1) * 8)) as u8
    }

    /// Writes one byte (fake devices).
    pub fn write_u8(&self, offset: usize, value: u8) {
        let word = self.read_u16(offset & !1);
        let shift = (offset & 1) * 8;
        let word = (word & !(0xff << shift)) | ((value as u16) << shift);
        self.write_u16(offset & !1, word)
    }
}

/// One descriptor as the device reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptor {
    /// Buffer address.
    pub addr: u64,
    /// Buffer length.
    pub len: u32,
    /// The device may write it.
    pub device_writable: bool,
}

/// The device's half of a split queue (what QEMU does), over the same region.
pub struct DeviceQueue {
    region: Arc<VecRegion>,
    layout: QueueLayout,
    event_idx: bool,
    last_avail: u16,
    used_idx: u16,
    /// Used index at the last interrupt decision.
    signalled_used: u16,
}

impl DeviceQueue {
    /// The device side of the queue of `size` entries in `region`.
    ///
    /// # Panics
    /// If `size` is not a valid queue size.
    pub fn new(region: Arc<VecRegion>, size: u16, event_idx: bool) -> DeviceQueue {
        DeviceQueue {
            region,
            layout: QueueLayout::try_new(size).expect("fake: valid size"),
            event_idx,
            last_avail: 0,
            used_idx: 0,
            signalled_used: 0,
        }
    }

    /// The layout.
    pub fn layout(&self) -> QueueLayout {
        self.layout
    }

    /// The next available chain: its head and its descriptors (`None` if the driver
    /// published nothing new). Loops in the chain are cut at `size` descriptors.
    pub fn pop_avail(&mut self) -> Option<(u16, Vec<Descriptor>)> {
        let avail_idx = self.region.read_u16(self.layout.driver_ring + 2);
        if avail_idx == self.last_avail {
            return None;
        }
        let head = self
            .region
            .read_u16(self.layout.driver_slot(self.last_avail));
        self.last_avail = self.last_avail.wrapping_add(1);
        let mut chain = Vec::new();
        let mut index = head;
        for _ in 0..self.layout.size {
            let off = self.layout.descriptor(index);
            let flags = self.region.read_u16(off + 12);
            chain.push(Descriptor {
                addr: self.region.read_u64(off),
                len: self.region.read_u32(off + 8),
                device_writable: flags & VIRTQ_DESC_F_WRITE != 0,
            });
            if flags & VIRTQ_DESC_F_NEXT == 0 {
                break;
            }
            index = self.region.read_u16(off + 14);
        }
        Some((head, chain))
    }

    /// Writes a used element and advances the used index. Returns whether the driver
    /// asked for an interrupt (event index, or the no-interrupt flag).
    pub fn push_used(&mut self, id: u32, len: u32) -> bool {
        let slot = self.layout.device_slot(self.used_idx);
        self.region.write_u32(slot, id);
        self.region.write_u32(slot + 4, len);
        let old = self.signalled_used;
        self.used_idx = self.used_idx.wrapping_add(1);
        self.region
            .write_u16(self.layout.device_ring + 2, self.used_idx);
        self.signalled_used = self.used_idx;
        if self.event_idx {
            let event = self.region.read_u16(self.layout.used_event());
            vring_need_event(event, self.used_idx, old)
        } else {
            self.region.read_u16(self.layout.driver_ring) & VIRTQ_AVAIL_F_NO_INTERRUPT == 0
        }
    }

    /// Sets `avail_event` (notify me when the available index passes `idx`).
    pub fn set_avail_event(&self, idx: u16) {
        self.region.write_u16(self.layout.avail_event(), idx);
    }

    /// Writes a raw used index (garbage injection).
    pub fn set_used_idx_raw(&mut self, idx: u16) {
        self.used_idx = idx;
        self.region.write_u16(self.layout.device_ring + 2, idx);
    }

    /// The driver's `used_event`.
    pub fn used_event(&self) -> u16 {
        self.region.read_u16(self.layout.used_event())
    }
}
