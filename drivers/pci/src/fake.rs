// SPDX-License-Identifier: MIT OR Apache-2.0
//! A fake configuration space for host tests, with BARs that size like real ones and a
//! model of QEMU's q35 machine ([`q35`]). Never used by the kernel.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use spin::Mutex;

use crate::config::{Bdf, ConfigSpace, reg};

/// One fake function: 4 KiB of registers plus BAR size masks.
#[derive(Clone, Debug)]
pub struct FakeFunction {
    bytes: Vec<u8>,
    /// Per BAR dword: bits the device lets software write (0: read-only / unimplemented).
    bar_masks: [u32; 6],
    next_cap: u16,
    last_cap: Option<u16>,
}

impl FakeFunction {
    /// A type-0 function.
    pub fn new(vendor: u16, device: u16, class: u8, subclass: u8, prog_if: u8) -> FakeFunction {
        let mut f = FakeFunction {
            bytes: alloc::vec![0; 4096],
            bar_masks: [0; 6],
            next_cap: 0x40,
            last_cap: None,
        };
        f.put16(reg::VENDOR_ID, vendor);
        f.put16(reg::DEVICE_ID, device);
        f.bytes[reg::CLASS as usize] = class;
        f.bytes[reg::SUBCLASS as usize] = subclass;
        f.bytes[reg::PROG_IF as usize] = prog_if;
        f.bytes[reg::REVISION as usize] = 1;
        f.bytes[reg::INTERRUPT_LINE as usize] = 0xff;
        f
    }

    fn put16(&mut self, offset: u16, value: u16) {
        self.bytes[offset as usize..offset as usize + 2].copy_from_slice(&value.to_le_bytes());
    }

    fn put32(&mut self, offset: u16, value: u32) {
        self.bytes[offset as usize..offset as usize + 4].copy_from_slice(&value.to_le_bytes());
    }

    /// Sets header type bit 7 (function 0 of a multi-function device).
    pub fn multifunction(mut self) -> Self {
        self.bytes[reg::HEADER_TYPE as usize] |= 0x80;
        self
    }

    /// Makes it a PCI-to-PCI bridge to `secondary`.
    pub fn bridge(mut self, primary: u8, secondary: u8, subordinate: u8) -> Self {
        self.bytes[reg::HEADER_TYPE as usize] = (self.bytes[reg::HEADER_TYPE as usize] & 0x80) | 1;
        self.bytes[reg::PRIMARY_BUS as usize] = primary;
        self.bytes[reg::SECONDARY_BUS as usize] = secondary;
        self.bytes[reg::SUBORDINATE_BUS as usize] = subordinate;
        self
    }

    /// Subsystem vendor and ID.
    pub fn subsystem(mut self, vendor: u16, id: u16) -> Self {
        self.put16(reg::SUBSYSTEM_VENDOR_ID, vendor);
        self.put16(reg::SUBSYSTEM_ID, id);
        self
    }

    /// INTx pin and line.
    pub fn interrupt(mut self, pin: u8, line: u8) -> Self {
        self.bytes[reg::INTERRUPT_PIN as usize] = pin;
        self.bytes[reg::INTERRUPT_LINE as usize] = line;
        self
    }

    /// A 32-bit memory BAR.
    pub fn bar_mem32(mut self, index: usize, addr: u32, size: u32, prefetchable: bool) -> Self {
        let flags = if prefetchable { 0x8 } else { 0 };
        self.bar_masks[index] = !(size - 1);
        self.put32(reg::BAR0 + 4 * index as u16, addr | flags);
        self
    }

    /// A 64-bit memory BAR (uses `index` and `index + 1`).
    pub fn bar_mem64(mut self, index: usize, addr: u64, size: u64, prefetchable: bool) -> Self {
        let flags = 0x4 | if prefetchable { 0x8 } else { 0 };
        let mask = !(size - 1);
        self.bar_masks[index] = mask as u32 & !0xf;
        self.bar_masks[index + 1] = (mask >> 32) as u32;
        self.put32(reg::BAR0 + 4 * index as u16, addr as u32 | flags);
        self.put32(reg::BAR0 + 4 * (index as u16 + 1), (addr >> 32) as u32);
        self
    }

    /// An I/O BAR (upper 16 bits read as zero, as on QEMU).
    pub fn bar_io(mut self, index: usize, port: u16, size: u16) -> Self {
        self.bar_masks[index] = !(size as u32 - 1) & 0xffff;
        self.put32(reg::BAR0 + 4 * index as u16, port as u32 | 1);
        self
    }

    /// Appends a capability with `id` and `body` (the bytes after ID and next pointer).
    pub fn capability(mut self, id: u8, body: &[u8]) -> Self {
        let at = self.next_cap;
        self.bytes[at as usize] = id;
        self.bytes[at as usize + 1] = 0;
        self.bytes[at as usize + 2..at as usize + 2 + body.len()].copy_from_slice(body);
        match self.last_cap {
            None => self.bytes[reg::CAPABILITIES as usize] = at as u8,
            Some(last) => self.bytes[last as usize + 1] = at as u8,
        }
        self.last_cap = Some(at);
        self.next_cap = (at + 2 + body.len() as u16 + 3) & !3;
        let status = u16::from_le_bytes([self.bytes[6], self.bytes[7]]) | reg::STATUS_CAPABILITIES;
        self.put16(reg::STATUS, status);
        self
    }

    /// Raw byte poke (garbage injection).
    pub fn poke(mut self, offset: u16, value: u8) -> Self {
        self.bytes[offset as usize] = value;
        self
    }

    fn read32(&self, offset: u16) -> u32 {
        let o = offset as usize & 0xffc;
        u32::from_le_bytes([
            self.bytes[o],
            self.bytes[o + 1],
            self.bytes[o + 2],
            self.bytes[o + 3],
        ])
    }

    fn write32(&mut self, offset: u16, value: u32) {
        let o = offset & 0xffc;
        match o {
            0x00 | 0x08 => {} // IDs and class are read-only
            0x10..=0x27 if self.bytes[reg::HEADER_TYPE as usize] & 0x7f == 0 || o < 0x18 => {
                let index = ((o - 0x10) / 4) as usize;
                let mask = self.bar_masks[index];
                let old = self.read32(o);
                let flag_bits = if index > 0 && self.is_upper_half(index) {
                    0
                } else if old & 1 == 1 {
                    old & 0x3
                } else {
                    old & 0xf
                };
                let new = if mask == 0 {
                    0
                } else {
                    (value & mask) | flag_bits
                };
                self.put32(o, new);
            }
            _ => self.put32(o, value),
        }
    }

    fn is_upper_half(&self, index: usize) -> bool {
        let lower = self.read32(reg::BAR0 + 4 * (index as u16 - 1));
        lower & 1 == 0 && (lower >> 1) & 3 == 2
    }
}

/// A fake configuration space: functions by address; absent ones read as all ones.
#[derive(Debug, Default)]
pub struct FakeConfigSpace {
    functions: Mutex<BTreeMap<Bdf, FakeFunction>>,
    writes: Mutex<usize>,
}

impl FakeConfigSpace {
    /// An empty space.
    pub fn new() -> FakeConfigSpace {
        FakeConfigSpace::default()
    }

    /// Adds a function.
    pub fn insert(&self, bdf: Bdf, function: FakeFunction) {
        self.functions.lock().insert(bdf, function);
    }

    /// Builder form of `insert`.
    pub fn with(self, bdf: Bdf, function: FakeFunction) -> Self {
        self.insert(bdf, function);
        self
    }

    /// Number of dword writes so far.
    pub fn write_count(&self) -> usize {
        *self.writes.lock()
    }
}

impl ConfigSpace for FakeConfigSpace {
    fn read_u32(&self, bdf: Bdf, offset: u16) -> u32 {
        self.functions
            .lock()
            .get(&bdf)
            .map_or(0xffff_ffff, |f| f.read32(offset))
    }

    fn write_u32(&self, bdf: Bdf, offset: u16, value: u32) {
        *self.writes.lock() += 1;
        if let Some(f) = self.functions.lock().get_mut(&bdf) {
            f.write32(offset, value);
        }
    }
}

/// The body of a virtio PCI capability (after ID and next): `cap_len, cfg_type, bar,
/// id, pad, pad, offset, length` (+ `notify_off_multiplier` for the notify type).
pub fn virtio_cap_body(
    cfg_type: u8,
    bar: u8,
    offset: u32,
    length: u32,
    multiplier: Option<u32>,
) -> Vec<u8> {
    let cap_len = if multiplier.is_some() { 20 } else { 16 };
    let mut body = alloc::vec![cap_len, cfg_type, bar, 0, 0, 0];
    body.extend_from_slice(&offset.to_le_bytes());
    body.extend_from_slice(&length.to_le_bytes());
    if let Some(m) = multiplier {
        body.extend_from_slice(&m.to_le_bytes());
    }
    body
}

/// A virtio modern function (QEMU's layout): MSI-X table in BAR 1, the four virtio
/// structures in the 64-bit BAR 4 (common 0x0, ISR 0x1000, device 0x2000, notify 0x3000
/// with multiplier 4).
pub fn virtio_function(device_id: u16, class: u8, subclass: u8, subsystem_id: u16) -> FakeFunction {
    FakeFunction::new(0x1af4, device_id, class, subclass, 0)
        .subsystem(0x1af4, subsystem_id)
        .interrupt(1, 10)
        .bar_mem32(1, 0xfebd_1000, 0x1000, false)
        .bar_mem64(4, 0xfe00_0000, 0x4000, true)
        .capability(
            crate::capability::CAP_MSIX,
            &[1, 0, 0x01, 0, 0, 0, 0x01, 0x08, 0, 0],
        )
        .capability(
            crate::capability::CAP_VENDOR,
            &virtio_cap_body(1, 4, 0x0000, 0x1000, None),
        )
        .capability(
            crate::capability::CAP_VENDOR,
            &virtio_cap_body(3, 4, 0x1000, 0x1000, None),
        )
        .capability(
            crate::capability::CAP_VENDOR,
            &virtio_cap_body(4, 4, 0x2000, 0x1000, None),
        )
        .capability(
            crate::capability::CAP_VENDOR,
            &virtio_cap_body(2, 4, 0x3000, 0x1000, Some(4)),
        )
}

/// QEMU's q35 machine with `-device virtio-blk-pci` on the root bus and a virtio-net
/// behind a PCIe root port:
///
/// ```text
/// 00:00.0 Host bridge [0600] 8086:29c0
/// 00:01.0 VGA compatible controller [0300] 1234:1111
/// 00:02.0 SCSI storage controller [0100] 1af4:1042 (virtio-blk, modern)
/// 00:03.0 PCI bridge [0604] 1b36:000c (root port, secondary bus 1)
/// 00:1f.0 ISA bridge [0601] 8086:2918 (multi-function)
/// 00:1f.2 SATA controller [0106] 8086:2922 (AHCI, MSI)
/// 00:1f.3 SMBus [0c05] 8086:2930
/// 01:00.0 Ethernet controller [0200] 1af4:1041 (virtio-net, modern)
/// ```
pub fn q35() -> FakeConfigSpace {
    FakeConfigSpace::new()
        .with(
            Bdf::new(0, 0, 0),
            FakeFunction::new(0x8086, 0x29c0, 0x06, 0x00, 0),
        )
        .with(
            Bdf::new(0, 1, 0),
            FakeFunction::new(0x1234, 0x1111, 0x03, 0x00, 0)
                .bar_mem32(0, 0xfd00_0000, 0x100_0000, true)
                .bar_mem32(2, 0xfebd_0000, 0x1000, false),
        )
        .with(Bdf::new(0, 2, 0), virtio_function(0x1042, 0x01, 0x00, 2))
        .with(
            Bdf::new(0, 3, 0),
            FakeFunction::new(0x1b36, 0x000c, 0x06, 0x04, 0)
                .bridge(0, 1, 1)
                .bar_mem32(0, 0xfebd_3000, 0x1000, false)
                .capability(crate::capability::CAP_PCIE, &[0x42, 0, 0, 0, 0, 0]),
        )
        .with(
            Bdf::new(0, 0x1f, 0),
            FakeFunction::new(0x8086, 0x2918, 0x06, 0x01, 0).multifunction(),
        )
        .with(
            Bdf::new(0, 0x1f, 2),
            FakeFunction::new(0x8086, 0x2922, 0x01, 0x06, 0x01)
                .interrupt(1, 10)
                .bar_io(4, 0xc040, 32)
                .bar_mem32(5, 0xfebd_2000, 0x1000, false)
                .capability(
                    crate::capability::CAP_MSI,
                    &[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                ),
        )
        .with(
            Bdf::new(0, 0x1f, 3),
            FakeFunction::new(0x8086, 0x2930, 0x0c, 0x05, 0)
                .interrupt(1, 10)
                .bar_io(4, 0x0700, 64),
        )
        .with(Bdf::new(1, 0, 0), virtio_function(0x1041, 0x02, 0x00, 1))
}
