// SPDX-License-Identifier: MIT OR Apache-2.0
//! pci: configuration space, enumeration, BARs, capabilities, MSI/MSI-X; host-testable.
#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod assign;
pub mod bar;
pub mod capability;
pub mod config;
pub mod device;
pub mod fake;
pub mod intx;
pub mod names;

pub use assign::{Assignment, assign_unassigned};
pub use bar::{Bar, read_bars};
pub use capability::{Capability, Msi, Msix, capabilities, find_capability, msix_entry};
pub use config::{Bdf, ConfigSpace, ecam_offset, legacy_address, reg};
pub use device::{DeviceTable, Header, PciDevice, enumerate};
pub use names::class_name;

/// Turns on memory and/or I/O decoding and bus mastering for `bdf` (after its BARs are
/// mapped, before the driver starts).
pub fn enable(
    cfg: &(impl ConfigSpace + ?Sized),
    bdf: Bdf,
    memory: bool,
    io: bool,
    bus_master: bool,
) {
    let mut command = cfg.read_u16(bdf, reg::COMMAND);
    for (on, bit) in [
        (memory, reg::COMMAND_MEMORY),
        (io, reg::COMMAND_IO),
        (bus_master, reg::COMMAND_BUS_MASTER),
    ] {
        if on {
            command |= bit;
        }
    }
    cfg.write_u16(bdf, reg::COMMAND, command);
}

#[cfg(test)]
mod tests;
