// SPDX-License-Identifier: MIT OR Apache-2.0
//! Legacy INTx routing: which global system interrupt (GSI) a function's interrupt pin
//! reaches, the last resort when a function has neither MSI-X nor MSI.
//!
//! A pin behind PCI-to-PCI bridges is first "swizzled" up to bus 0 (PCI-to-PCI Bridge
//! Architecture 1.2, 9.1: at each bridge, pin' = (pin + device) mod 4). On bus 0 the
//! chipset wires each (slot, pin) to a PIRQ line and each PIRQ line to an IOAPIC input.
//! Firmware describes that in ACPI's `_PRT` (AML), which the kernel does not interpret;
//! instead this module knows the chipsets Damselfly runs on:
//!
//! - **Intel ICH9** (QEMU's q35; LPC bridge 8086:2918 at 00:1f.0). In APIC mode PIRQ
//!   A-H are IOAPIC inputs 16-23. Slots 25-31 use their `D<slot>IR` registers, whose
//!   reset value wires INTA-INTD to PIRQ A-D; every other slot is wired INTA -> PIRQ
//!   E + (slot mod 4), rotating with the pin (QEMU's `ich9_lpc` defaults, and the `_PRT`
//!   QEMU's ACPI tables describe). The lines are level-triggered and, as QEMU's tables
//!   declare them, active high.
//!
//! Other chipsets get [`IntxError::UnknownChipset`]: better a clear probe error than an
//! interrupt that never arrives.

use core::fmt;

use crate::device::PciDevice;

/// Where a pin's interrupt arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntxRoute {
    /// The IOAPIC input.
    pub gsi: u32,
    /// Level-triggered.
    pub is_level: bool,
    /// Asserted low.
    pub is_active_low: bool,
}

/// Why a pin cannot be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntxError {
    /// The function has no interrupt pin.
    NoPin,
    /// A bus on the way up has no bridge in the table.
    NoBridge(u8),
    /// The chipset's wiring is not known here.
    UnknownChipset,
}

impl fmt::Display for IntxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntxError::NoPin => f.write_str("the function has no interrupt pin"),
            IntxError::NoBridge(bus) => write!(f, "no bridge leads to bus {bus:02x}"),
            IntxError::UnknownChipset => {
                f.write_str("INTx wiring of this chipset is unknown (only ICH9/q35 is)")
            }
        }
    }
}

/// The ICH9 LPC bridge, whose presence at 00:1f.0 identifies the chipset.
const ICH9_LPC: (u16, u16) = (0x8086, 0x2918);

/// The pin (1 = INTA .. 4 = INTD) and slot on bus 0 that `device`'s pin arrives at,
/// swizzled through the bridges of `table`.
///
/// # Errors
/// [`IntxError::NoPin`], [`IntxError::NoBridge`].
pub fn pin_on_bus0(table: &[PciDevice], device: &PciDevice) -> Result<(u8, u8), IntxError> {
    let mut pin = device.header.interrupt_pin;
    if !(1..=4).contains(&pin) {
        return Err(IntxError::NoPin);
    }
    let mut at = device.bdf;
    // A bus tree has at most 256 levels: the bound stops a looping table.
    for _ in 0..256 {
        if at.bus == 0 {
            return Ok((pin, at.device));
        }
        pin = (pin - 1 + at.device) % 4 + 1;
        let bridge = table
            .iter()
            .find(|d| d.header.secondary_bus == Some(at.bus))
            .ok_or(IntxError::NoBridge(at.bus))?;
        at = bridge.bdf;
    }
    Err(IntxError::NoBridge(at.bus))
}

/// ICH9's GSI for `pin` (1..=4) of bus-0 `slot`.
pub fn ich9_gsi(slot: u8, pin: u8) -> u32 {
    let index = u32::from(pin - 1);
    let pirq = if slot >= 25 {
        index // D25IR..D31IR at reset: INTA..INTD -> PIRQ A..D
    } else {
        4 + (u32::from(slot) + index) % 4 // PIRQ E..H
    };
    16 + pirq
}

/// Where `device`'s INTx pin arrives, on the chipset `table` shows.
///
/// # Errors
/// [`IntxError`].
pub fn route(table: &[PciDevice], device: &PciDevice) -> Result<IntxRoute, IntxError> {
    let (pin, slot) = pin_on_bus0(table, device)?;
    let is_ich9 = table.iter().any(|d| {
        d.bdf.bus == 0
            && d.bdf.device == 0x1f
            && d.bdf.function == 0
            && (d.header.vendor_id, d.header.device_id) == ICH9_LPC
    });
    if !is_ich9 {
        return Err(IntxError::UnknownChipset);
    }
    Ok(IntxRoute {
        gsi: ich9_gsi(slot, pin),
        is_level: true,
        is_active_low: false,
    })
}
