//! PCI at boot: configuration space over hal's ECAM/legacy access, the
//! device table, and the registry binding functions to drivers.

use alloc::string::String;
use core::fmt::Write;

use hal::arch::pci::{ConfigAccess, Mechanism};
use pci::{Bdf, ConfigSpace, DeviceTable, PciDevice};

/// Configuration space of segment 0 (the kernel's `pci::ConfigSpace`).
pub struct Config(ConfigAccess);

impl ConfigSpace for Config {
    fn read_u32(&self, bdf: Bdf, offset: u16) -> u32 {
        self.0.read_u32(bdf.bus, bdf.device, bdf.function, offset)
    }
    fn write_u32(&self, bdf: Bdf, offset: u16, value: u32) {
        self.0
            .write_u32(bdf.bus, bdf.device, bdf.function, offset, value)
    }
}

static CONFIG: spin::Once<Config> = spin::Once::new();
static TABLE: spin::Once<DeviceTable> = spin::Once::new();

/// The configuration space (made on first use).
pub fn config() -> &'static Config {
    CONFIG.call_once(|| Config(ConfigAccess::new()))
}

/// The device table (empty before [`init`]).
pub fn devices() -> &'static [PciDevice] {
    TABLE.get().map_or(&[], |t| t.devices())
}

/// Where BARs the firmware left at 0 are placed (qboot assigns none): the
/// 32-bit hole above q35's ECAM window, below the IOAPIC, and the upper
/// half of the I/O port space.
const MEMORY_WINDOW: core::ops::Range<u64> = 0xc000_0000..0xfec0_0000;
const IO_WINDOW: core::ops::Range<u32> = 0xc000..0x1_0000;

/// One driver family the kernel knows.
struct PciDriver {
    name: &'static str,
    matches: fn(&PciDevice) -> bool,
    probe: fn(&PciDevice) -> Result<(), String>,
}

static PCI_DRIVERS: &[PciDriver] = &[
    PciDriver {
        name: "virtio-blk",
        matches: crate::blk::matches,
        probe: crate::blk::probe,
    },
    PciDriver {
        name: "edu",
        matches: crate::edu::matches,
        probe: crate::edu::probe,
    },
];

/// Enumerates the buses, logs the table and probes the drivers. A probe
/// that fails is logged and its device left alone; boot goes on.
///
/// # Context
/// Boot CPU, once, after the executors started (drivers spawn tasks).
pub fn init() {
    let cfg = config();
    let mechanism = match cfg.0.mechanism() {
        Mechanism::Ecam { base, .. } => alloc::format!("ECAM at {base:#x}"),
        Mechanism::Legacy => "legacy ports".into(),
    };
    let table = TABLE.call_once(|| {
        let mut table = pci::enumerate(cfg);
        for a in pci::assign_unassigned(cfg, &mut table, MEMORY_WINDOW, IO_WINDOW) {
            match a.addr {
                Some(addr) => log::debug!(target: "pci", "{} BAR {} at {addr:#x}", a.bdf, a.index),
                None => {
                    log::warn!(target: "pci", "{} BAR {}: no room in the window", a.bdf, a.index)
                }
            }
        }
        table
    });
    log::info!(target: "pci", "{} functions ({mechanism})", table.devices().len());
    for device in table.devices() {
        log::info!(target: "pci", "{device}");
        if let Some(driver) = PCI_DRIVERS.iter().find(|d| (d.matches)(device))
            && let Err(e) = (driver.probe)(device)
        {
            log::error!(target: "pci", "{} {}: probe failed: {e}", device.bdf, driver.name);
        }
    }
}

/// The device table as text, one function per line:
/// `BB:DD.F VVVV:DDDD CC SS PI RR irq=<pin> <bars>` (hex), for `/sys/pci`
/// and the `lspci` tool.
pub fn table_text() -> String {
    let mut s = String::new();
    for d in devices() {
        let h = &d.header;
        let _ = write!(
            s,
            "{} {:04x}:{:04x} {:02x} {:02x} {:02x} {:02x} irq={}",
            d.bdf,
            h.vendor_id,
            h.device_id,
            h.class,
            h.subclass,
            h.prog_if,
            h.revision,
            d.interrupt_pin_name().unwrap_or('-'),
        );
        for (i, bar) in d.bars.iter().enumerate() {
            match bar {
                Some(pci::Bar::Memory { addr, size, .. }) => {
                    let _ = write!(s, " bar{i}=mem:{addr:#x}+{size:#x}");
                }
                Some(pci::Bar::Io { port, size }) => {
                    let _ = write!(s, " bar{i}=io:{port:#x}+{size:#x}");
                }
                None => {}
            }
        }
        s.push('\n');
    }
    s
}
