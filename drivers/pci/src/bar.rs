// SPDX-License-Identifier: MIT OR Apache-2.0
//! Base address registers: decoding and sizing (PCI Local Bus 3.0, section 6.2.5.1).
//!
//! Sizing: turn decoding off in the command register, write all ones to the BAR (both
//! halves of a 64-bit BAR), read back, restore the original value, restore the command
//! register. The size is the two's complement of the read-back value with the flag bits
//! masked off. A BAR that reads back 0 is not implemented.

use crate::config::{Bdf, ConfigSpace, reg};
use crate::device::Header;

/// A decoded BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bar {
    /// Memory space.
    Memory {
        /// Base address (as programmed by firmware).
        addr: u64,
        /// Size in bytes (a power of two).
        size: u64,
        /// 64-bit BAR (occupies this and the next index).
        is_64bit: bool,
        /// Prefetchable (no side effects on read).
        is_prefetchable: bool,
    },
    /// I/O space.
    Io {
        /// First port.
        port: u32,
        /// Number of ports.
        size: u32,
    },
}

impl Bar {
    /// The base address (memory address or first port).
    pub fn addr(&self) -> u64 {
        match *self {
            Bar::Memory { addr, .. } => addr,
            Bar::Io { port, .. } => port as u64,
        }
    }

    /// The size in bytes (or ports).
    pub fn size(&self) -> u64 {
        match *self {
            Bar::Memory { size, .. } => size,
            Bar::Io { size, .. } => size as u64,
        }
    }
}

/// Decodes and sizes every BAR of `bdf` (6 for type 0, 2 for a bridge).
///
/// # Context
/// Boot only: memory and I/O decoding of the function is off for a moment.
pub fn read_bars(cfg: &impl ConfigSpace, bdf: Bdf, header: &Header) -> [Option<Bar>; 6] {
    let mut bars = [None; 6];
    let count = header.bar_count();
    if count == 0 {
        return bars;
    }
    let command = cfg.read_u16(bdf, reg::COMMAND);
    cfg.write_u16(
        bdf,
        reg::COMMAND,
        command & !(reg::COMMAND_IO | reg::COMMAND_MEMORY),
    );
    let mut index = 0;
    while index < count {
        let (bar, used) = size_bar(cfg, bdf, index, count);
        bars[index] = bar;
        index += used;
    }
    cfg.write_u16(bdf, reg::COMMAND, command);
    bars
}

/// Sizes BAR `index`; returns it and how many slots it used (2 for 64-bit).
fn size_bar(cfg: &impl ConfigSpace, bdf: Bdf, index: usize, count: usize) -> (Option<Bar>, usize) {
    let offset = reg::BAR0 + 4 * index as u16;
    let original = cfg.read_u32(bdf, offset);
    cfg.write_u32(bdf, offset, 0xffff_ffff);
    let mask = cfg.read_u32(bdf, offset);
    cfg.write_u32(bdf, offset, original);
    if original & 1 == 1 {
        // I/O: bits 1:0 are flags; upper 16 bits may read as 0 on x86.
        let mask = mask & !3;
        if mask == 0 {
            return (None, 1);
        }
        let mask = if mask & 0xffff_0000 == 0 {
            mask | 0xffff_0000
        } else {
            mask
        };
        let size = (!mask).wrapping_add(1);
        return (
            Some(Bar::Io {
                port: original & !3,
                size,
            }),
            1,
        );
    }
    let is_prefetchable = original & 0x8 != 0;
    let is_64bit = (original >> 1) & 3 == 2;
    if is_64bit && index + 1 < count {
        let high_offset = offset + 4;
        let original_high = cfg.read_u32(bdf, high_offset);
        cfg.write_u32(bdf, high_offset, 0xffff_ffff);
        let mask_high = cfg.read_u32(bdf, high_offset);
        cfg.write_u32(bdf, high_offset, original_high);
        let mask64 = ((mask_high as u64) << 32) | (mask & !0xf) as u64;
        if mask64 == 0 {
            return (None, 2);
        }
        let size = (!mask64).wrapping_add(1);
        let addr = ((original_high as u64) << 32) | (original & !0xf) as u64;
        return (
            Some(Bar::Memory {
                addr,
                size,
                is_64bit: true,
                is_prefetchable,
            }),
            2,
        );
    }
    let mask = mask & !0xf;
    if mask == 0 {
        return (None, 1);
    }
    (
        Some(Bar::Memory {
            addr: (original & !0xf) as u64,
            size: (!mask).wrapping_add(1) as u64,
            is_64bit: false,
            is_prefetchable,
        }),
        1,
    )
}
