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

    /// Fake "physical" addresses are device addresses; refused when no buffer parked
    /// with [`FakeMemory::park`] holds the range (as an IOMMU would).
    fn external_addr(&self, phys: u64, len: u32, _direction: DmaDirection) -> Option<u64> {
        self.read(phys, len as usize).map(|_| phys)
    }
}

impl FakeMemory {
    /// Parks `data` at a fresh address, mid-page, as caller memory a test hands to a
    /// driver by address (zero-copy requests); read it back with [`FakeMemory::read`],
    /// take it away with [`FakeMemory::unpark`].
    pub fn park(&self, data: Vec<u8>) -> u64 {
        let mut inner = self.inner.lock();
        let addr = Self::alloc_addr(&mut inner, data.len() + 512) + 512;
        inner.buffers.insert(addr, data);
        addr
    }

    /// Removes a parked buffer (the memory is gone: the device can no longer reach it).
    pub fn unpark(&self, addr: u64) -> Option<Vec<u8>> {
        self.inner.lock().buffers.remove(&addr)
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

/// One queue's registers in [`FakeCommonCfg`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FakeQueueRegs {
    /// Device maximum (0: no such queue).
    pub max_size: u16,
    /// Size the driver chose.
    pub size: u16,
    /// MSI-X vector.
    pub msix_vector: u16,
    /// Enabled.
    pub enable: u16,
    /// `queue_notify_off` the device reports.
    pub notify_off: u16,
    /// Descriptor table address.
    pub desc: u64,
    /// Driver ring address.
    pub driver: u64,
    /// Device ring address.
    pub device: u64,
}

/// The state behind [`FakeCommonCfg`], public so tests can inspect and rig it.
#[derive(Clone, Debug, Default)]
pub struct CommonState {
    /// Offered features.
    pub device_features: u64,
    /// Accepted by the driver.
    pub driver_features: u64,
    /// Device status.
    pub status: u8,
    /// Every value written to `device_status`, in order.
    pub status_writes: Vec<u8>,
    /// The device clears FEATURES_OK (rejects the features).
    pub reject_features: bool,
    /// The device never finishes a reset.
    pub stuck_in_reset: bool,
    /// The device raises DEVICE_NEEDS_RESET at DRIVER_OK.
    pub needs_reset: bool,
    /// Queues.
    pub queues: Vec<FakeQueueRegs>,
    /// Configuration-change vector.
    pub config_msix_vector: u16,
    device_feature_select: u32,
    driver_feature_select: u32,
    queue_select: u16,
}

/// A fake common configuration window that follows the handshake rules.
#[derive(Debug, Default)]
pub struct FakeCommonCfg {
    /// The device's state.
    pub state: Mutex<CommonState>,
}

impl FakeCommonCfg {
    /// A device offering `features` with queues of the given maximum sizes.
    pub fn new(features: u64, queue_max_sizes: &[u16]) -> FakeCommonCfg {
        let queues = queue_max_sizes
            .iter()
            .enumerate()
            .map(|(i, &max_size)| FakeQueueRegs {
                max_size,
                notify_off: i as u16,
                ..FakeQueueRegs::default()
            })
            .collect();
        FakeCommonCfg {
            state: Mutex::new(CommonState {
                device_features: features,
                queues,
                ..CommonState::default()
            }),
        }
    }

    fn read(&self, offset: usize) -> u64 {
        use crate::transport::common as c;
        let s = self.state.lock();
        let q = s
            .queues
            .get(s.queue_select as usize)
            .copied()
            .unwrap_or_default();
        match offset {
            c::DEVICE_FEATURE_SELECT => s.device_feature_select as u64,
            c::DEVICE_FEATURE => match s.device_feature_select {
                0 => s.device_features & 0xffff_ffff,
                1 => s.device_features >> 32,
                _ => 0,
            },
            c::DRIVER_FEATURE_SELECT => s.driver_feature_select as u64,
            c::NUM_QUEUES => s.queues.len() as u64,
            c::DEVICE_STATUS => s.status as u64,
            c::QUEUE_SELECT => s.queue_select as u64,
            c::QUEUE_SIZE => (if q.size != 0 { q.size } else { q.max_size }) as u64,
            c::QUEUE_MSIX_VECTOR => q.msix_vector as u64,
            c::QUEUE_ENABLE => q.enable as u64,
            c::QUEUE_NOTIFY_OFF => q.notify_off as u64,
            c::CONFIG_MSIX_VECTOR => s.config_msix_vector as u64,
            _ => 0,
        }
    }

    fn write(&self, offset: usize, value: u64) {
        use crate::transport::{common as c, status as st};
        let mut s = self.state.lock();
        let select = s.queue_select as usize;
        match offset {
            c::DEVICE_FEATURE_SELECT => s.device_feature_select = value as u32,
            c::DRIVER_FEATURE_SELECT => s.driver_feature_select = value as u32,
            c::DRIVER_FEATURE => match s.driver_feature_select {
                0 => s.driver_features = (s.driver_features & !0xffff_ffff) | value,
                1 => s.driver_features = (s.driver_features & 0xffff_ffff) | (value << 32),
                _ => {}
            },
            c::DEVICE_STATUS => {
                let mut v = value as u8;
                s.status_writes.push(v);
                if v == 0 {
                    if !s.stuck_in_reset {
                        s.status = 0;
                        s.driver_features = 0;
                        for q in &mut s.queues {
                            *q = FakeQueueRegs {
                                max_size: q.max_size,
                                notify_off: q.notify_off,
                                ..FakeQueueRegs::default()
                            };
                        }
                    }
                    return;
                }
                if v & st::FEATURES_OK != 0
                    && (s.reject_features || s.driver_features & !s.device_features != 0)
                {
                    v &= !st::FEATURES_OK;
                }
                if v & st::DRIVER_OK != 0 && s.needs_reset {
                    v |= st::DEVICE_NEEDS_RESET;
                }
                s.status = v;
            }
            c::QUEUE_SELECT => s.queue_select = value as u16,
            c::CONFIG_MSIX_VECTOR => s.config_msix_vector = value as u16,
            _ => {
                let Some(q) = s.queues.get_mut(select) else {
                    return;
                };
                match offset {
                    c::QUEUE_SIZE => q.size = value as u16,
                    c::QUEUE_MSIX_VECTOR => q.msix_vector = value as u16,
                    c::QUEUE_ENABLE => q.enable = value as u16,
                    o if (c::QUEUE_DESC..c::QUEUE_DEVICE + 8).contains(&o) => {
                        let field = match (o - c::QUEUE_DESC) / 8 {
                            0 => &mut q.desc,
                            1 => &mut q.driver,
                            _ => &mut q.device,
                        };
                        if o % 8 == 0 {
                            *field = (*field & !0xffff_ffff) | value;
                        } else {
                            *field = (*field & 0xffff_ffff) | (value << 32);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

impl crate::dma::Registers for FakeCommonCfg {
    fn read_u8(&self, offset: usize) -> u8 {
        self.read(offset) as u8
    }
    fn read_u16(&self, offset: usize) -> u16 {
        self.read(offset) as u16
    }
    fn read_u32(&self, offset: usize) -> u32 {
        self.read(offset) as u32
    }
    fn write_u8(&self, offset: usize, value: u8) {
        self.write(offset, value as u64)
    }
    fn write_u16(&self, offset: usize, value: u16) {
        self.write(offset, value as u64)
    }
    fn write_u32(&self, offset: usize, value: u32) {
        self.write(offset, value as u64)
    }
}

/// A plain register window (notify area, ISR, device config) that records writes and
/// serves reads from a byte array. Reading offset 0 of an `is_isr` window clears it.
#[derive(Debug)]
pub struct FakeWindow {
    bytes: Mutex<Vec<u8>>,
    writes: Mutex<Vec<(usize, u32)>>,
    is_isr: bool,
}

impl FakeWindow {
    /// A window of `len` zero bytes.
    pub fn new(len: usize, is_isr: bool) -> FakeWindow {
        FakeWindow {
            bytes: Mutex::new(alloc::vec![0; len]),
            writes: Mutex::new(Vec::new()),
            is_isr,
        }
    }

    /// Sets bytes (device side).
    pub fn set(&self, offset: usize, data: &[u8]) {
        self.bytes.lock()[offset..offset + data.len()].copy_from_slice(data);
    }

    /// Takes the recorded writes.
    pub fn take_writes(&self) -> Vec<(usize, u32)> {
        core::mem::take(&mut *self.writes.lock())
    }

    fn read(&self, offset: usize, width: usize) -> u32 {
        let mut bytes = self.bytes.lock();
        let mut v = 0u32;
        for i in 0..width {
            v |= (bytes[offset + i] as u32) << (8 * i);
        }
        if self.is_isr && offset == 0 {
            bytes[0] = 0;
        }
        v
    }
}

impl crate::dma::Registers for FakeWindow {
    fn read_u8(&self, offset: usize) -> u8 {
        self.read(offset, 1) as u8
    }
    fn read_u16(&self, offset: usize) -> u16 {
        self.read(offset, 2) as u16
    }
    fn read_u32(&self, offset: usize) -> u32 {
        self.read(offset, 4)
    }
    fn write_u8(&self, offset: usize, value: u8) {
        self.writes.lock().push((offset, value as u32));
    }
    fn write_u16(&self, offset: usize, value: u16) {
        self.writes.lock().push((offset, value as u32));
    }
    fn write_u32(&self, offset: usize, value: u32) {
        self.writes.lock().push((offset, value));
    }
}
