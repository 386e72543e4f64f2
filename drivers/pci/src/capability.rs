// SPDX-License-Identifier: MIT OR Apache-2.0
//! The capability list, MSI and MSI-X (PCI Local Bus 3.0, sections 6.7 and 6.8).
//!
//! The list is walked with loop protection: at most 48 entries (the most that fit in
//! the 192 bytes after the header), pointers below 0x40 end it, and the low two bits of
//! every pointer are ignored, as the spec says. A garbage list ends the walk, never the
//! kernel.

use crate::config::{Bdf, ConfigSpace, reg};

/// Capability ID: MSI.
pub const CAP_MSI: u8 = 0x05;
/// Capability ID: vendor-specific (virtio uses these).
pub const CAP_VENDOR: u8 = 0x09;
/// Capability ID: PCI Express.
pub const CAP_PCIE: u8 = 0x10;
/// Capability ID: MSI-X.
pub const CAP_MSIX: u8 = 0x11;

const MAX_CAPABILITIES: usize = 48;

/// One capability: its ID and where it starts in config space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capability {
    /// Capability ID.
    pub id: u8,
    /// Offset of its first byte (the ID).
    pub offset: u16,
}

/// Iterator over a function's capability list.
pub struct Capabilities<'a, C: ConfigSpace + ?Sized> {
    cfg: &'a C,
    bdf: Bdf,
    next: u8,
    remaining: usize,
}

/// The capabilities of `bdf` (empty if the status register says it has none).
pub fn capabilities<C: ConfigSpace + ?Sized>(cfg: &C, bdf: Bdf) -> Capabilities<'_, C> {
    let has_list = cfg.read_u16(bdf, reg::STATUS) & reg::STATUS_CAPABILITIES != 0;
    Capabilities {
        cfg,
        bdf,
        next: if has_list {
            cfg.read_u8(bdf, reg::CAPABILITIES)
        } else {
            0
        },
        remaining: MAX_CAPABILITIES,
    }
}

impl<C: ConfigSpace + ?Sized> Iterator for Capabilities<'_, C> {
    type Item = Capability;

    fn next(&mut self) -> Option<Capability> {
        let offset = self.next & 0xfc;
        if offset < 0x40 || self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let word = self.cfg.read_u16(self.bdf, offset as u16);
        self.next = (word >> 8) as u8;
        Some(Capability {
            id: word as u8,
            offset: offset as u16,
        })
    }
}

/// Finds the first capability with `id`.
pub fn find_capability(cfg: &(impl ConfigSpace + ?Sized), bdf: Bdf, id: u8) -> Option<Capability> {
    capabilities(cfg, bdf).find(|c| c.id == id)
}

/// The x86 MSI address for a fixed, physical-destination interrupt to `apic_id`.
pub const fn x86_msi_address(apic_id: u8) -> u64 {
    0xfee0_0000 | ((apic_id as u64) << 12)
}

/// The x86 MSI data for an edge-triggered, fixed delivery of `vector`.
pub const fn x86_msi_data(vector: u8) -> u32 {
    vector as u32
}

/// A function's MSI-X capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msix {
    /// Where the capability is.
    pub offset: u16,
    /// Number of table entries (vectors), 1..=2048.
    pub vector_count: u16,
    /// BAR holding the table.
    pub table_bar: u8,
    /// Offset of the table in that BAR.
    pub table_offset: u32,
    /// BAR holding the pending-bit array.
    pub pba_bar: u8,
    /// Offset of the pending-bit array in that BAR.
    pub pba_offset: u32,
}

const MSIX_ENABLE: u16 = 1 << 15;
const MSIX_FUNCTION_MASK: u16 = 1 << 14;

impl Msix {
    /// Reads the MSI-X capability of `bdf`, if it has one.
    pub fn read(cfg: &(impl ConfigSpace + ?Sized), bdf: Bdf) -> Option<Msix> {
        let cap = find_capability(cfg, bdf, CAP_MSIX)?;
        let control = cfg.read_u16(bdf, cap.offset + 2);
        let table = cfg.read_u32(bdf, cap.offset + 4);
        let pba = cfg.read_u32(bdf, cap.offset + 8);
        Some(Msix {
            offset: cap.offset,
            vector_count: (control & 0x7ff) + 1,
            table_bar: (table & 7) as u8,
            table_offset: table & !7,
            pba_bar: (pba & 7) as u8,
            pba_offset: pba & !7,
        })
    }

    /// Sets the enable and function-mask bits. Program the table entries (in BAR
    /// memory: [`Msix::entry_offset`], [`msix_entry`]) with the function masked, then
    /// enable and unmask.
    pub fn set_enabled(
        &self,
        cfg: &(impl ConfigSpace + ?Sized),
        bdf: Bdf,
        enabled: bool,
        masked: bool,
    ) {
        let mut control = cfg.read_u16(bdf, self.offset + 2);
        control &= !(MSIX_ENABLE | MSIX_FUNCTION_MASK);
        if enabled {
            control |= MSIX_ENABLE;
        }
        if masked {
            control |= MSIX_FUNCTION_MASK;
        }
        cfg.write_u16(bdf, self.offset + 2, control);
        if enabled {
            // MSI-X replaces INTx.
            let command = cfg.read_u16(bdf, reg::COMMAND);
            cfg.write_u16(bdf, reg::COMMAND, command | reg::COMMAND_INTX_DISABLE);
        }
    }

    /// `(enabled, function masked)` as the device reports them.
    pub fn state(&self, cfg: &(impl ConfigSpace + ?Sized), bdf: Bdf) -> (bool, bool) {
        let control = cfg.read_u16(bdf, self.offset + 2);
        (
            control & MSIX_ENABLE != 0,
            control & MSIX_FUNCTION_MASK != 0,
        )
    }

    /// Byte offset of table entry `vector` inside the table BAR (16 bytes per entry),
    /// or `None` if the function has no such vector.
    pub fn entry_offset(&self, vector: u16) -> Option<u64> {
        (vector < self.vector_count).then(|| self.table_offset as u64 + 16 * vector as u64)
    }
}

/// The four dwords of an MSI-X table entry: address low, address high, data, vector
/// control (bit 0 = masked). Write them at [`Msix::entry_offset`].
pub const fn msix_entry(address: u64, data: u32, masked: bool) -> [u32; 4] {
    [address as u32, (address >> 32) as u32, data, masked as u32]
}

/// A function's MSI capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Msi {
    /// Where the capability is.
    pub offset: u16,
    /// 64-bit address capable.
    pub is_64bit: bool,
    /// Per-vector masking capable.
    pub has_masking: bool,
    /// Vectors the function can request (1, 2, 4, .., 32).
    pub vectors_capable: u8,
}

impl Msi {
    /// Reads the MSI capability of `bdf`, if it has one.
    pub fn read(cfg: &(impl ConfigSpace + ?Sized), bdf: Bdf) -> Option<Msi> {
        let cap = find_capability(cfg, bdf, CAP_MSI)?;
        let control = cfg.read_u16(bdf, cap.offset + 2);
        Some(Msi {
            offset: cap.offset,
            is_64bit: control & (1 << 7) != 0,
            has_masking: control & (1 << 8) != 0,
            vectors_capable: 1 << ((control >> 1) & 7).min(5),
        })
    }

    /// Programs one vector (`address`, `data`) and enables MSI (multiple message enable
    /// = 1 vector; INTx disabled).
    ///
    /// # Errors
    /// `Err(())` if `address` does not fit a 32-bit-only capability.
    #[allow(clippy::result_unit_err)]
    pub fn program(
        &self,
        cfg: &(impl ConfigSpace + ?Sized),
        bdf: Bdf,
        address: u64,
        data: u16,
    ) -> Result<(), ()> {
        if !self.is_64bit && address >> 32 != 0 {
            return Err(());
        }
        let control_offset = self.offset + 2;
        let control = cfg.read_u16(bdf, control_offset);
        cfg.write_u16(bdf, control_offset, control & !1 & !(7 << 4));
        cfg.write_u32(bdf, self.offset + 4, address as u32);
        let data_offset = if self.is_64bit {
            cfg.write_u32(bdf, self.offset + 8, (address >> 32) as u32);
            self.offset + 12
        } else {
            self.offset + 8
        };
        cfg.write_u16(bdf, data_offset, data);
        let command = cfg.read_u16(bdf, reg::COMMAND);
        cfg.write_u16(bdf, reg::COMMAND, command | reg::COMMAND_INTX_DISABLE);
        cfg.write_u16(bdf, control_offset, (control & !(7 << 4)) | 1);
        Ok(())
    }

    /// Turns MSI off (the function signals on its INTx pin again once the command
    /// register's INTx-disable bit is cleared).
    pub fn disable(&self, cfg: &(impl ConfigSpace + ?Sized), bdf: Bdf) {
        let control = cfg.read_u16(bdf, self.offset + 2);
        cfg.write_u16(bdf, self.offset + 2, control & !1);
    }

    /// Whether MSI is on.
    pub fn is_enabled(&self, cfg: &(impl ConfigSpace + ?Sized), bdf: Bdf) -> bool {
        cfg.read_u16(bdf, self.offset + 2) & 1 != 0
    }
}
