//! Power-off and reset through ACPI fixed hardware.
//!
//! Power-off enters S5: the sleep type comes from the DSDT's `\_S5_`
//! package, found by a byte search of the AML instead of an interpreter (the
//! well-known shortcut; only this one package is read). Then either the
//! hardware-reduced sleep control register (microvm's generic event device)
//! gets `SLP_TYP << 2 | SLP_EN`, or PM1a/PM1b control get
//! `SLP_TYP << 10 | SLP_EN`, after switching to ACPI mode through the SMI
//! command port when the firmware left it off.
//!
//! Reset: the FADT reset register, else the keyboard controller's pulse
//! (0xfe to port 0x64), else a triple fault.

/// SLP_TYPa and SLP_TYPb of S5 from a DSDT's AML bytes: the `\_S5_` name
/// declaration followed by a package whose first two elements are integer
/// constants (ZeroOp, OneOp, ByteConst or WordConst).
pub fn parse_s5(aml: &[u8]) -> Option<(u8, u8)> {
    const NAME_OP: u8 = 0x08;
    const PACKAGE_OP: u8 = 0x12;
    let mut from = 0;
    while let Some(i) = aml
        .get(from..)?
        .windows(4)
        .position(|w| w == b"_S5_")
        .map(|i| i + from)
    {
        from = i + 4;
        // NameOp directly before, or NameOp then the root prefix '\'.
        let is_name = (i >= 1 && aml[i - 1] == NAME_OP)
            || (i >= 2 && aml[i - 1] == b'\\' && aml[i - 2] == NAME_OP);
        if !is_name || aml.get(i + 4) != Some(&PACKAGE_OP) {
            continue;
        }
        // PkgLength: bits 7-6 of the lead byte count the bytes that follow.
        let lead = *aml.get(i + 5)?;
        let mut at = i + 6 + usize::from(lead >> 6);
        let _num_elements = *aml.get(at)?;
        at += 1;
        let mut values = [0u8; 2];
        for v in &mut values {
            let (value, len) = match *aml.get(at)? {
                0x00 => (0, 1),
                0x01 => (1, 1),
                0x0a => (*aml.get(at + 1)?, 2),
                0x0b => (*aml.get(at + 1)?, 3), // WordConst: SLP_TYP is 3 bits
                _ => return None,
            };
            *v = value;
            at += len;
        }
        return Some((values[0], values[1]));
    }
    None
}

#[cfg(target_os = "none")]
pub use hw::{reboot, shutdown};

#[cfg(target_os = "none")]
mod hw {
    use x86_64::instructions::port::Port;

    use crate::acpi::{AcpiRegister, PowerInfo};

    const SLP_EN_PM1: u16 = 1 << 13;
    const SLP_TYP_PM1_SHIFT: u16 = 10;
    const SCI_EN: u16 = 1;
    const SLP_EN_HW_REDUCED: u8 = 1 << 5;
    /// QEMU's S5 sleep types, used only when the DSDT cannot be read: the
    /// generic event device of microvm wants 5, PIIX4 and ICH9 want 0.
    const QEMU_S5_HW_REDUCED: u8 = 5;
    const QEMU_S5_PM1: u8 = 0;

    fn read16(reg: AcpiRegister) -> u16 {
        match reg {
            // SAFETY: an ACPI fixed-hardware port named by the FADT; reading
            // it has no memory effects.
            AcpiRegister::Io(port) => unsafe { Port::<u16>::new(port).read() },
            AcpiRegister::Memory(phys) => match map(phys) {
                // SAFETY: `va` maps the register (`map`), uncached.
                Some(va) => unsafe { core::ptr::read_volatile(va as *const u16) },
                None => 0,
            },
        }
    }

    fn write16(reg: AcpiRegister, value: u16) {
        match reg {
            // SAFETY: as in `read16`; the write only affects the chipset.
            AcpiRegister::Io(port) => unsafe { Port::<u16>::new(port).write(value) },
            AcpiRegister::Memory(phys) => {
                if let Some(va) = map(phys) {
                    // SAFETY: as in `read16`.
                    unsafe { core::ptr::write_volatile(va as *mut u16, value) }
                }
            }
        }
    }

    fn write8(reg: AcpiRegister, value: u8) {
        match reg {
            // SAFETY: as in `read16`.
            AcpiRegister::Io(port) => unsafe { Port::<u8>::new(port).write(value) },
            AcpiRegister::Memory(phys) => {
                if let Some(va) = map(phys) {
                    // SAFETY: as in `read16`.
                    unsafe { core::ptr::write_volatile(va as *mut u8, value) }
                }
            }
        }
    }

    /// Maps a memory-space ACPI register (once per call: these paths run at
    /// most once per boot).
    fn map(phys: u64) -> Option<u64> {
        // SAFETY: a fixed-hardware register block named by the FADT, device
        // memory that no RAM mapping uses; only this module touches it.
        unsafe { crate::mm::map_mmio(phys, 2) }.ok()
    }

    fn power_info() -> PowerInfo {
        crate::boot::acpi().map(|a| a.power).unwrap_or_default()
    }

    /// Waits about `ms` milliseconds by the TSC (or a bounded spin before
    /// calibration), interrupts off: the machine is going away.
    fn settle(ms: u64) {
        let start = crate::arch::time::now_ns();
        let mut spins = 0u64;
        while crate::arch::time::now_ns() - start < ms * 1_000_000 && spins < 1_000_000_000 {
            spins += 1;
            core::hint::spin_loop();
        }
    }

    /// Powers the machine off (ACPI S5). Logs which registers and sleep
    /// types it used; if the machine is still running afterwards, logs an
    /// error and halts this CPU for good.
    pub fn shutdown() -> ! {
        x86_64::instructions::interrupts::disable();
        let p = power_info();
        let hw_reduced = p.pm1a_control.is_none() && p.sleep_control.is_some();
        let (typ_a, typ_b) = match p.s5 {
            Some(s5) => s5,
            None => {
                let qemu = if hw_reduced {
                    QEMU_S5_HW_REDUCED
                } else {
                    QEMU_S5_PM1
                };
                log::warn!(target: "power", "no \\_S5_ package found in the DSDT {:#x?}; using QEMU's S5 sleep type {qemu}", p.dsdt);
                (qemu, qemu)
            }
        };
        if let (true, Some(reg)) = (hw_reduced, p.sleep_control) {
            log::info!(target: "power", "ACPI power-off: S5, SLP_TYP {typ_a} to the sleep control register {reg:x?}");
            write8(reg, ((typ_a & 7) << 2) | SLP_EN_HW_REDUCED);
        } else if let Some(pm1a) = p.pm1a_control {
            if read16(pm1a) & SCI_EN == 0 && p.smi_command != 0 && p.acpi_enable != 0 {
                // SAFETY: the SMI command port named by the FADT; writing
                // ACPI_ENABLE asks the firmware to switch to ACPI mode.
                unsafe { Port::<u8>::new(p.smi_command).write(p.acpi_enable) };
                let mut spins = 0;
                while read16(pm1a) & SCI_EN == 0 && spins < 10_000_000 {
                    spins += 1;
                    core::hint::spin_loop();
                }
            }
            log::info!(target: "power", "ACPI power-off: S5, SLP_TYPa {typ_a} SLP_TYPb {typ_b} to PM1a {pm1a:x?} PM1b {:x?}", p.pm1b_control);
            let value = |typ: u8, old: u16| {
                (old & !(7 << SLP_TYP_PM1_SHIFT))
                    | (u16::from(typ & 7) << SLP_TYP_PM1_SHIFT)
                    | SLP_EN_PM1
            };
            if let Some(pm1b) = p.pm1b_control {
                write16(pm1b, value(typ_b, read16(pm1b)));
            }
            write16(pm1a, value(typ_a, read16(pm1a)));
        } else {
            log::error!(target: "power", "no ACPI sleep register (no FADT PM1a control or sleep control)");
        }
        settle(500);
        log::error!(target: "power", "the machine did not power off; halting");
        crate::arch::cpu::halt_forever()
    }

    /// Resets the machine: the FADT reset register, else the keyboard
    /// controller, else a triple fault.
    pub fn reboot() -> ! {
        x86_64::instructions::interrupts::disable();
        if let Some((reg, value)) = power_info().reset {
            log::info!(target: "power", "reset through the ACPI reset register {reg:x?} (value {value:#x})");
            write8(reg, value);
            settle(100);
        }
        log::info!(target: "power", "reset through the keyboard controller");
        // SAFETY: the i8042 command port; 0xfe pulses the CPU reset line. On a
        // machine without one the write goes nowhere.
        unsafe {
            let mut status = Port::<u8>::new(0x64);
            let mut spins = 0;
            while status.read() & 2 != 0 && spins < 100_000 {
                spins += 1;
            }
            status.write(0xfe);
        }
        settle(100);
        log::info!(target: "power", "reset by triple fault");
        crate::arch::cpu::triple_fault()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_s5;

    #[test]
    fn finds_byte_constants_after_root_prefix() {
        // Name (\_S5_, Package (0x04) { 0x05, 0x05, Zero, Zero })
        let aml = [
            0x10, 0x08, 0x08, b'\\', b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a,
            0x05, 0x00, 0x00,
        ];
        assert_eq!(parse_s5(&aml), Some((5, 5)));
    }

    #[test]
    fn finds_zero_and_one_ops_without_prefix() {
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x06, 0x04, 0x00, 0x01, 0x00, 0x00,
        ];
        assert_eq!(parse_s5(&aml), Some((0, 1)));
    }

    #[test]
    fn skips_a_reference_that_is_not_a_name_declaration() {
        let aml = [
            0x70, b'_', b'S', b'5', b'_', 0x60, 0x08, b'_', b'S', b'5', b'_', 0x12, 0x0a, 0x02,
            0x0a, 0x07, 0x0a, 0x03,
        ];
        assert_eq!(parse_s5(&aml), Some((7, 3)));
    }

    #[test]
    fn multi_byte_package_length_and_missing_package() {
        let aml = [
            0x08, b'_', b'S', b'5', b'_', 0x12, 0x40, 0x00, 0x02, 0x0a, 0x02, 0x01,
        ];
        assert_eq!(parse_s5(&aml), Some((2, 1)));
        assert_eq!(parse_s5(b"\x08_S5_\x0a\x05"), None);
        assert_eq!(parse_s5(b""), None);
    }
}
