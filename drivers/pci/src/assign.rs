// SPDX-License-Identifier: MIT OR Apache-2.0
//! Assigning addresses to BARs the firmware left unprogrammed.
//!
//! Minimal firmware (qboot on QEMU's q35) boots the kernel without touching PCI, so every
//! BAR reads 0. The kernel then places them itself, as Linux does for unassigned
//! resources: each memory BAR at the next address of the memory window aligned to its
//! size (BAR sizes are powers of two), each I/O BAR likewise in the I/O window, largest
//! first so alignment wastes little. BARs the firmware did program are left alone.

use alloc::vec::Vec;
use core::ops::Range;

use crate::bar::{Bar, read_bars};
use crate::config::{Bdf, ConfigSpace, reg};
use crate::device::DeviceTable;

/// One BAR placed (or not) by [`assign_unassigned`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// The function.
    pub bdf: Bdf,
    /// BAR index.
    pub index: usize,
    /// The address given, or `None` when the window was too small.
    pub addr: Option<u64>,
}

/// Next free address in a window.
struct Cursor {
    next: u64,
    end: u64,
}

impl Cursor {
    fn take(&mut self, size: u64) -> Option<u64> {
        let size = size.max(1);
        let at = self.next.checked_next_multiple_of(size)?;
        let end = at.checked_add(size)?;
        (end <= self.end).then(|| {
            self.next = end;
            at
        })
    }
}

/// Programs every BAR of `table` whose address is 0: memory BARs in `memory` (32-bit
/// addresses only; a 64-bit BAR gets its high half cleared), I/O BARs in `io`. Updates
/// `table` from the device (the BARs are read back). Returns what was done, BAR by BAR.
///
/// # Context
/// Boot, before drivers run and with decoding of the functions off or unused (BARs
/// move).
pub fn assign_unassigned(
    cfg: &impl ConfigSpace,
    table: &mut DeviceTable,
    memory: Range<u64>,
    io: Range<u32>,
) -> Vec<Assignment> {
    let mut wanted: Vec<(Bdf, usize, Bar)> = Vec::new();
    let mut mem = Cursor {
        next: memory.start,
        end: memory.end.min(1 << 32),
    };
    let mut ports = Cursor {
        next: io.start as u64,
        end: io.end as u64,
    };
    // Start above what firmware already placed in the windows.
    for device in table.devices() {
        for bar in device.bars.iter().flatten() {
            let (cursor, window) = match bar {
                Bar::Memory { .. } => (&mut mem, &memory),
                Bar::Io { .. } => (&mut ports, &(io.start as u64..io.end as u64)),
            };
            let (addr, size) = (bar.addr(), bar.size());
            if addr != 0 && window.contains(&addr) {
                cursor.next = cursor.next.max(addr + size);
            }
        }
    }
    for device in table.devices() {
        // Bridges forward windows we do not program: leave them to firmware.
        if device.header.header_type != 0 {
            continue;
        }
        for (index, bar) in device.bars.iter().enumerate() {
            if let Some(bar) = bar
                && bar.addr() == 0
            {
                wanted.push((device.bdf, index, *bar));
            }
        }
    }
    wanted.sort_by_key(|(_, _, bar)| core::cmp::Reverse(bar.size()));
    let mut done = Vec::new();
    for (bdf, index, bar) in wanted {
        let offset = reg::BAR0 + 4 * index as u16;
        let addr = match bar {
            Bar::Memory { is_64bit, .. } => mem.take(bar.size()).inspect(|&a| {
                let flags = cfg.read_u32(bdf, offset) & 0xf;
                cfg.write_u32(bdf, offset, a as u32 | flags);
                if is_64bit {
                    cfg.write_u32(bdf, offset + 4, 0);
                }
            }),
            Bar::Io { .. } => ports.take(bar.size()).inspect(|&a| {
                let flags = cfg.read_u32(bdf, offset) & 0x3;
                cfg.write_u32(bdf, offset, a as u32 | flags);
            }),
        };
        done.push(Assignment { bdf, index, addr });
    }
    table.refresh_bars(|bdf, header| read_bars(cfg, bdf, header));
    done
}
