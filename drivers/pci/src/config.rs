// SPDX-License-Identifier: MIT OR Apache-2.0
//! Configuration space access: the one trait the kernel implements (twice).
//!
//! - ECAM (PCIe, from ACPI's MCFG): function `bdf`'s 4 KiB lives at
//!   `base + ecam_offset(bdf, 0)`, memory-mapped; use [`ecam_offset`].
//! - Legacy mechanism #1: write [`legacy_address`] to port `0xCF8`, then read or write
//!   the dword at port `0xCFC` (256 bytes per function only), with the two accesses
//!   under one lock.

use core::fmt;

/// Bus, device, function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device number (0..32).
    pub device: u8,
    /// Function number (0..8).
    pub function: u8,
}

impl Bdf {
    /// A new address.
    ///
    /// # Panics
    /// If `device >= 32` or `function >= 8`.
    pub const fn new(bus: u8, device: u8, function: u8) -> Bdf {
        assert!(
            device < 32 && function < 8,
            "pci: device < 32, function < 8"
        );
        Bdf {
            bus,
            device,
            function,
        }
    }
}

impl fmt::Display for Bdf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// Byte offset of register `offset` of function `bdf` inside an ECAM window.
pub const fn ecam_offset(bdf: Bdf, offset: u16) -> usize {
    ((bdf.bus as usize) << 20)
        | ((bdf.device as usize) << 15)
        | ((bdf.function as usize) << 12)
        | (offset as usize & 0xfff)
}

/// The value for port `0xCF8` (legacy mechanism #1) to reach dword `offset & 0xFC`.
pub const fn legacy_address(bdf: Bdf, offset: u16) -> u32 {
    0x8000_0000
        | ((bdf.bus as u32) << 16)
        | ((bdf.device as u32) << 11)
        | ((bdf.function as u32) << 8)
        | (offset as u32 & 0xfc)
}

/// Reads and writes configuration registers.
///
/// Only the two dword accessors are required; the narrower ones are built on them
/// (read-modify-write for writes, which is what the legacy mechanism does anyway).
///
/// # Context
/// Any CPU, never blocks for long (the legacy implementation holds a spin lock across
/// its two port accesses). A function that does not exist reads as all ones.
pub trait ConfigSpace {
    /// Reads the dword at `offset` (a multiple of 4, below 4096; below 256 for legacy).
    fn read_u32(&self, bdf: Bdf, offset: u16) -> u32;
    /// Writes the dword at `offset`.
    fn write_u32(&self, bdf: Bdf, offset: u16, value: u32);

    /// Reads a 16-bit register (`offset` even).
    fn read_u16(&self, bdf: Bdf, offset: u16) -> u16 {
        (self.read_u32(bdf, offset & !3) >> ((offset & 2) * 8)) as u16
    }
    /// Reads an 8-bit register.
    fn read_u8(&self, bdf: Bdf, offset: u16) -> u8 {
        (self.read_u32(bdf, offset & !3) >> ((offset & 3) * 8)) as u8
    }
    /// Writes a 16-bit register (`offset` even).
    fn write_u16(&self, bdf: Bdf, offset: u16, value: u16) {
        let shift = (offset & 2) * 8;
        let old = self.read_u32(bdf, offset & !3);
        let new = (old & !(0xffff << shift)) | ((value as u32) << shift);
        self.write_u32(bdf, offset & !3, new)
    }
    /// Writes an 8-bit register.
    fn write_u8(&self, bdf: Bdf, offset: u16, value: u8) {
        let shift = (offset & 3) * 8;
        let old = self.read_u32(bdf, offset & !3);
        let new = (old & !(0xff << shift)) | ((value as u32) << shift);
        self.write_u32(bdf, offset & !3, new)
    }
}

impl<T: ConfigSpace + ?Sized> ConfigSpace for &T {
    fn read_u32(&self, bdf: Bdf, offset: u16) -> u32 {
        (**self).read_u32(bdf, offset)
    }
    fn write_u32(&self, bdf: Bdf, offset: u16, value: u32) {
        (**self).write_u32(bdf, offset, value)
    }
}

/// Standard header register offsets.
pub mod reg {
    /// Vendor ID (u16).
    pub const VENDOR_ID: u16 = 0x00;
    /// Device ID (u16).
    pub const DEVICE_ID: u16 = 0x02;
    /// Command (u16).
    pub const COMMAND: u16 = 0x04;
    /// Status (u16).
    pub const STATUS: u16 = 0x06;
    /// Revision ID (u8).
    pub const REVISION: u16 = 0x08;
    /// Programming interface (u8).
    pub const PROG_IF: u16 = 0x09;
    /// Subclass (u8).
    pub const SUBCLASS: u16 = 0x0a;
    /// Class code (u8).
    pub const CLASS: u16 = 0x0b;
    /// Header type (u8; bit 7 = multi-function).
    pub const HEADER_TYPE: u16 = 0x0e;
    /// First BAR (u32).
    pub const BAR0: u16 = 0x10;
    /// Bridge: primary bus (u8).
    pub const PRIMARY_BUS: u16 = 0x18;
    /// Bridge: secondary bus (u8).
    pub const SECONDARY_BUS: u16 = 0x19;
    /// Bridge: subordinate bus (u8).
    pub const SUBORDINATE_BUS: u16 = 0x1a;
    /// Type 0: subsystem vendor ID (u16).
    pub const SUBSYSTEM_VENDOR_ID: u16 = 0x2c;
    /// Type 0: subsystem ID (u16).
    pub const SUBSYSTEM_ID: u16 = 0x2e;
    /// Capabilities pointer (u8).
    pub const CAPABILITIES: u16 = 0x34;
    /// Interrupt line (u8; what firmware routed INTx to, 0xff = none).
    pub const INTERRUPT_LINE: u16 = 0x3c;
    /// Interrupt pin (u8; 0 = none, 1..=4 = INTA#..INTD#).
    pub const INTERRUPT_PIN: u16 = 0x3d;

    /// Command: I/O space decoding.
    pub const COMMAND_IO: u16 = 1 << 0;
    /// Command: memory space decoding.
    pub const COMMAND_MEMORY: u16 = 1 << 1;
    /// Command: bus master (device may DMA).
    pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
    /// Command: INTx disable.
    pub const COMMAND_INTX_DISABLE: u16 = 1 << 10;
    /// Status: capability list present.
    pub const STATUS_CAPABILITIES: u16 = 1 << 4;
}
