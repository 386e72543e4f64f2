//! PCI configuration space access: ECAM (memory-mapped, from the ACPI MCFG
//! table) when the firmware describes it, else the legacy 0xcf8/0xcfc
//! ports (the first 256 bytes of each function only).
//!
//! Writing configuration registers can reprogram a device (BARs, bus
//! mastering); that is dangerous but not memory-unsafe for the kernel, whose
//! RAM a device can only reach through DMA the kernel sets up, so the
//! accessors are safe functions for the kernel's PCI code.

use spin::Mutex;
use x86_64::instructions::port::Port;

use crate::device::Mmio;

const CONFIG_ADDRESS: u16 = 0xcf8;
const CONFIG_DATA: u16 = 0xcfc;

/// How configuration space is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mechanism {
    /// Memory-mapped (PCIe ECAM): 4 KiB per function.
    Ecam {
        base: u64,
        bus_start: u8,
        bus_end: u8,
    },
    /// I/O ports 0xcf8/0xcfc: 256 bytes per function.
    Legacy,
}

/// Configuration space of segment 0.
pub struct ConfigAccess {
    mechanism: Mechanism,
    /// ECAM windows, one per bus, mapped on first use (1 MiB each).
    buses: Mutex<[Option<&'static Mmio>; 256]>,
    /// Serialises the two-step legacy access.
    legacy: Mutex<()>,
}

impl ConfigAccess {
    /// Access through ECAM when ACPI's MCFG lists segment 0, else the legacy
    /// ports.
    pub fn new() -> ConfigAccess {
        let ecam = crate::boot::sequence::acpi()
            .and_then(|a| a.pci_ecam.iter().find(|e| e.segment == 0).copied());
        let mechanism = match ecam {
            Some(e) => Mechanism::Ecam {
                base: e.base,
                bus_start: e.bus_start,
                bus_end: e.bus_end,
            },
            None => Mechanism::Legacy,
        };
        ConfigAccess {
            mechanism,
            buses: Mutex::new([None; 256]),
            legacy: Mutex::new(()),
        }
    }

    /// The mechanism in use.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// The ECAM window of `bus`, mapped on first use; `None` for a bus the
    /// MCFG entry does not cover or when mapping fails.
    fn bus_window(&self, bus: u8) -> Option<&'static Mmio> {
        let Mechanism::Ecam {
            base,
            bus_start,
            bus_end,
        } = self.mechanism
        else {
            return None;
        };
        if !(bus_start..=bus_end).contains(&bus) {
            return None;
        }
        let mut buses = self.buses.lock();
        if let Some(w) = buses[usize::from(bus)] {
            return Some(w);
        }
        let phys = base + (u64::from(bus - bus_start) << 20);
        match Mmio::map(phys, 1 << 20) {
            Ok(w) => {
                let w: &'static Mmio = alloc::boxed::Box::leak(alloc::boxed::Box::new(w));
                buses[usize::from(bus)] = Some(w);
                Some(w)
            }
            Err(e) => {
                log::warn!(target: "pci", "ECAM window of bus {bus}: {e}");
                None
            }
        }
    }

    /// Reads the dword at `offset` (multiple of 4) of bus/device/function.
    /// Absent functions and out-of-range offsets read as all ones, as on
    /// hardware.
    pub fn read_u32(&self, bus: u8, device: u8, function: u8, offset: u16) -> u32 {
        let offset = offset & !3;
        if device >= 32 || function >= 8 {
            return u32::MAX;
        }
        match self.mechanism {
            Mechanism::Ecam { .. } => match (self.bus_window(bus), offset < 4096) {
                (Some(w), true) => w.read_u32(function_offset(device, function) + offset as usize),
                _ => u32::MAX,
            },
            Mechanism::Legacy if offset < 256 => {
                let _guard = self.legacy.lock();
                // SAFETY: the PCI configuration ports; the lock keeps the
                // address/data pair together.
                unsafe {
                    Port::<u32>::new(CONFIG_ADDRESS)
                        .write(legacy_address(bus, device, function, offset));
                    Port::<u32>::new(CONFIG_DATA).read()
                }
            }
            Mechanism::Legacy => u32::MAX,
        }
    }

    /// Writes the dword at `offset` (multiple of 4). Writes to absent
    /// functions or out-of-range offsets are dropped.
    pub fn write_u32(&self, bus: u8, device: u8, function: u8, offset: u16, value: u32) {
        let offset = offset & !3;
        if device >= 32 || function >= 8 {
            return;
        }
        match self.mechanism {
            Mechanism::Ecam { .. } => {
                if let (Some(w), true) = (self.bus_window(bus), offset < 4096) {
                    w.write_u32(function_offset(device, function) + offset as usize, value);
                }
            }
            Mechanism::Legacy if offset < 256 => {
                let _guard = self.legacy.lock();
                // SAFETY: as in `read_u32`.
                unsafe {
                    Port::<u32>::new(CONFIG_ADDRESS)
                        .write(legacy_address(bus, device, function, offset));
                    Port::<u32>::new(CONFIG_DATA).write(value);
                }
            }
            Mechanism::Legacy => {}
        }
    }
}

impl Default for ConfigAccess {
    fn default() -> Self {
        ConfigAccess::new()
    }
}

fn function_offset(device: u8, function: u8) -> usize {
    (usize::from(device) << 15) | (usize::from(function) << 12)
}

fn legacy_address(bus: u8, device: u8, function: u8, offset: u16) -> u32 {
    (1 << 31)
        | (u32::from(bus) << 16)
        | (u32::from(device) << 11)
        | (u32::from(function) << 8)
        | u32::from(offset & 0xfc)
}
