// SPDX-License-Identifier: MIT OR Apache-2.0
//! Header parsing and bus enumeration (PCI Local Bus 3.0, section 6.1; bridges: PCI-to-PCI
//! Bridge 1.2, section 3.2).
//!
//! Enumeration is depth-first from bus 0: every device, function 0 first and the other
//! seven only when function 0 says multi-function; every PCI-to-PCI bridge (header
//! type 1) is followed to its secondary bus. A bus is walked at most once, so a bridge
//! whose secondary bus points back (garbage) cannot loop.

use alloc::vec::Vec;
use core::fmt;

use crate::bar::{Bar, read_bars};
use crate::config::{Bdf, ConfigSpace, reg};
use crate::names::class_name;

/// The decoded standard header of one function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Vendor ID.
    pub vendor_id: u16,
    /// Device ID.
    pub device_id: u16,
    /// Class code.
    pub class: u8,
    /// Subclass.
    pub subclass: u8,
    /// Programming interface.
    pub prog_if: u8,
    /// Revision.
    pub revision: u8,
    /// Header layout: 0 device, 1 PCI-to-PCI bridge, 2 CardBus bridge.
    pub header_type: u8,
    /// Function 0 of a multi-function device.
    pub is_multifunction: bool,
    /// INTx pin: 0 none, 1..=4 INTA#..INTD#.
    pub interrupt_pin: u8,
    /// INTx line as routed by firmware (0xff: none).
    pub interrupt_line: u8,
    /// Type 0 only: subsystem vendor and ID (virtio uses the subsystem ID).
    pub subsystem: (u16, u16),
    /// Type 1 only: the secondary bus.
    pub secondary_bus: Option<u8>,
}

impl Header {
    /// Reads the header of `bdf`; `None` if no function answers (vendor `0xffff`).
    pub fn read(cfg: &impl ConfigSpace, bdf: Bdf) -> Option<Header> {
        let id = cfg.read_u32(bdf, reg::VENDOR_ID);
        let vendor_id = id as u16;
        if vendor_id == 0xffff || vendor_id == 0 {
            return None;
        }
        let class_reg = cfg.read_u32(bdf, reg::REVISION);
        let raw_type = cfg.read_u8(bdf, reg::HEADER_TYPE);
        let header_type = raw_type & 0x7f;
        Some(Header {
            vendor_id,
            device_id: (id >> 16) as u16,
            class: (class_reg >> 24) as u8,
            subclass: (class_reg >> 16) as u8,
            prog_if: (class_reg >> 8) as u8,
            revision: class_reg as u8,
            header_type,
            is_multifunction: raw_type & 0x80 != 0,
            interrupt_pin: cfg.read_u8(bdf, reg::INTERRUPT_PIN),
            interrupt_line: cfg.read_u8(bdf, reg::INTERRUPT_LINE),
            subsystem: if header_type == 0 {
                (
                    cfg.read_u16(bdf, reg::SUBSYSTEM_VENDOR_ID),
                    cfg.read_u16(bdf, reg::SUBSYSTEM_ID),
                )
            } else {
                (0, 0)
            },
            secondary_bus: (header_type == 1).then(|| cfg.read_u8(bdf, reg::SECONDARY_BUS)),
        })
    }

    /// Number of BARs this header type has (6, 2 for a bridge, 0 otherwise).
    pub fn bar_count(&self) -> usize {
        match self.header_type {
            0 => 6,
            1 => 2,
            _ => 0,
        }
    }
}

/// One function found by enumeration, with its decoded BARs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PciDevice {
    /// Where it is.
    pub bdf: Bdf,
    /// Its header.
    pub header: Header,
    /// Its BARs, by index (`None`: unimplemented, or the upper half of a 64-bit BAR).
    pub bars: [Option<Bar>; 6],
}

impl PciDevice {
    /// The INTx pin as a letter (`'A'..='D'`), if it uses one.
    pub fn interrupt_pin_name(&self) -> Option<char> {
        match self.header.interrupt_pin {
            pin @ 1..=4 => Some((b'A' + pin - 1) as char),
            _ => None,
        }
    }
}

impl fmt::Display for PciDevice {
    /// One `lspci -nn`-like line: `00:02.0 Mass storage controller [0100]: [1af4:1042]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.header;
        write!(
            f,
            "{} {} [{:02x}{:02x}]: [{:04x}:{:04x}] (rev {:02x})",
            self.bdf,
            class_name(h.class, h.subclass),
            h.class,
            h.subclass,
            h.vendor_id,
            h.device_id,
            h.revision
        )
    }
}

/// Every function on every bus reachable from bus 0, in (bus walk, device, function)
/// order. Sizes the BARs of each function (see [`read_bars`]: decoding is briefly off).
///
/// # Context
/// Boot, before drivers run (BAR sizing must not race a driver using the device).
pub fn enumerate(cfg: &impl ConfigSpace) -> DeviceTable {
    let mut devices = Vec::new();
    let mut visited = [false; 256];
    let mut pending: Vec<u8> = alloc::vec![0];
    while let Some(bus) = pending.pop() {
        if core::mem::replace(&mut visited[bus as usize], true) {
            log::warn!(target: "pci", "bus {bus:02x} reached twice; bridge loop ignored");
            continue;
        }
        for device in 0..32 {
            let Some(header0) = Header::read(cfg, Bdf::new(bus, device, 0)) else {
                continue;
            };
            let functions = if header0.is_multifunction { 8 } else { 1 };
            for function in 0..functions {
                let bdf = Bdf::new(bus, device, function);
                let Some(header) = (if function == 0 {
                    Some(header0)
                } else {
                    Header::read(cfg, bdf)
                }) else {
                    continue;
                };
                if let Some(secondary) = header.secondary_bus
                    && secondary != 0
                {
                    pending.push(secondary);
                }
                let bars = read_bars(cfg, bdf, &header);
                devices.push(PciDevice { bdf, header, bars });
            }
        }
    }
    devices.sort_by_key(|d| d.bdf);
    DeviceTable { devices }
}

/// The functions found at boot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceTable {
    devices: Vec<PciDevice>,
}

impl DeviceTable {
    /// Re-reads every function's BARs (after they were programmed).
    pub(crate) fn refresh_bars(&mut self, mut read: impl FnMut(Bdf, &Header) -> [Option<Bar>; 6]) {
        for d in &mut self.devices {
            d.bars = read(d.bdf, &d.header);
        }
    }

    /// All functions, sorted by address.
    pub fn devices(&self) -> &[PciDevice] {
        &self.devices
    }

    /// Functions with this vendor and device ID.
    pub fn by_id(&self, vendor_id: u16, device_id: u16) -> impl Iterator<Item = &PciDevice> {
        self.devices
            .iter()
            .filter(move |d| d.header.vendor_id == vendor_id && d.header.device_id == device_id)
    }

    /// Functions of this class and subclass.
    pub fn by_class(&self, class: u8, subclass: u8) -> impl Iterator<Item = &PciDevice> {
        self.devices
            .iter()
            .filter(move |d| d.header.class == class && d.header.subclass == subclass)
    }

    /// The function at `bdf`.
    pub fn get(&self, bdf: Bdf) -> Option<&PciDevice> {
        self.devices.iter().find(|d| d.bdf == bdf)
    }
}
