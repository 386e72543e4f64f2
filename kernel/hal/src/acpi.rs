//! ACPI tables through the `acpi` crate (5.2, no allocator features, which
//! is what builds on stable; shared/reference/boot.md section 3): the MADT
//! (enabled CPUs, IOAPICs, interrupt source overrides), the HPET, the MCFG
//! (PCI ECAM regions, kept for the PCI work) and the FADT (PM timer, reset
//! register).
//!
//! Tables are read through the direct map, which covers every memory-map
//! entry (ACPI tables live in reserved or ACPI-typed ranges).

use alloc::vec::Vec;
use core::ptr::NonNull;

use acpi::address::AddressSpace;
use acpi::fadt::Fadt;
use acpi::hpet::HpetTable;
use acpi::madt::{Madt, MadtEntry};
use acpi::mcfg::Mcfg;
use acpi::{AcpiHandler, AcpiTables, HpetInfo, PhysicalMapping};

use crate::mm::phys_to_virt;

/// One CPU the firmware lists as enabled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuEntry {
    pub apic_id: u32,
    pub processor_uid: u32,
}

/// One IOAPIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicEntry {
    pub id: u8,
    pub address: u64,
    pub gsi_base: u32,
}

/// An ISA IRQ routed to another global system interrupt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IrqOverride {
    pub isa_irq: u8,
    pub gsi: u32,
    /// MPS INTI flags: polarity bits 0-1, trigger mode bits 2-3.
    pub flags: u16,
}

/// A fixed-hardware register from the FADT: I/O port or memory address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AcpiRegister {
    Io(u16),
    Memory(u64),
}

impl AcpiRegister {
    fn from_generic(g: &acpi::address::GenericAddress) -> Option<Self> {
        match g.address_space {
            _ if g.address == 0 => None,
            AddressSpace::SystemIo => u16::try_from(g.address).ok().map(Self::Io),
            AddressSpace::SystemMemory => Some(Self::Memory(g.address)),
            _ => None,
        }
    }
}

/// What power-off and reset need from the FADT and the DSDT.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PowerInfo {
    pub pm1a_control: Option<AcpiRegister>,
    pub pm1b_control: Option<AcpiRegister>,
    /// Hardware-reduced ACPI (microvm): the sleep control register.
    pub sleep_control: Option<AcpiRegister>,
    /// SLP_TYPa and SLP_TYPb of S5 from the DSDT's `\_S5_` package.
    pub s5: Option<(u8, u8)>,
    /// The reset register and the value to write.
    pub reset: Option<(AcpiRegister, u8)>,
    /// SMI command port and the value that switches to ACPI mode (0: none).
    pub smi_command: u16,
    pub acpi_enable: u8,
    /// Physical address and length of the DSDT's AML, for diagnostics.
    pub dsdt: Option<(u64, u32)>,
}

/// One PCI ECAM region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PciEcam {
    pub base: u64,
    pub segment: u16,
    pub bus_start: u8,
    pub bus_end: u8,
}

/// What the kernel uses from ACPI.
#[derive(Clone, Debug, Default)]
pub struct AcpiInfo {
    /// Enabled CPUs, in MADT order (the boot CPU is usually first).
    pub cpus: Vec<CpuEntry>,
    /// Entries with the enabled flag clear (hot-pluggable, not started).
    pub disabled_cpus: usize,
    pub ioapics: Vec<IoApicEntry>,
    pub overrides: Vec<IrqOverride>,
    pub local_apic_address: u64,
    pub hpet_address: Option<u64>,
    pub pci_ecam: Vec<PciEcam>,
    /// ACPI PM timer: I/O port, if the FADT has one.
    pub pm_timer_port: Option<u16>,
    /// FADT reset register (I/O port, value), if usable.
    pub reset: Option<(u16, u8)>,
    /// ACPI PM timer is 32 bits wide (else 24).
    pub pm_timer_32bit: bool,
    /// Power-off and reset registers.
    pub power: PowerInfo,
    /// The CMOS register holding the century (FADT `CENTURY`; 0: none).
    pub rtc_century_register: u8,
}

/// Errors reading the tables.
#[derive(Debug)]
pub enum AcpiError {
    /// The loader gave no RSDP.
    NoRsdp,
    /// The `acpi` crate rejected the tables.
    Tables(acpi::AcpiError),
}

#[derive(Clone, Copy, Debug)]
struct DirectMap;

impl AcpiHandler for DirectMap {
    unsafe fn map_physical_region<T>(
        &self,
        physical_address: usize,
        size: usize,
    ) -> PhysicalMapping<Self, T> {
        let virt = phys_to_virt(physical_address as u64) as *mut T;
        // The direct map covers every memory-map entry, which is where
        // firmware puts ACPI tables, for as long as the kernel runs.
        // SAFETY: mapped (above), read-only in use; NonNull: DIRECT_MAP_BASE is not 0.
        unsafe {
            PhysicalMapping::new(
                physical_address,
                NonNull::new_unchecked(virt),
                size,
                size,
                *self,
            )
        }
    }

    fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
}

/// Reads the tables from the RSDP at `rsdp` (physical).
///
/// # Errors
/// [`AcpiError`] when there are no tables or they do not validate.
pub fn read(rsdp: Option<u64>) -> Result<AcpiInfo, AcpiError> {
    let rsdp = rsdp.ok_or(AcpiError::NoRsdp)?;
    // The RSDP address comes from the PVH loader and lies in the direct map.
    // SAFETY: mapped (above); `from_rsdp` validates its checksum and signature.
    let tables = unsafe { AcpiTables::from_rsdp(DirectMap, rsdp as usize) };
    let tables = tables.map_err(AcpiError::Tables)?;
    let mut info = AcpiInfo::default();

    let madt = tables.find_table::<Madt>().map_err(AcpiError::Tables)?;
    info.local_apic_address = u64::from(madt.get().local_apic_address);
    for entry in madt.get().entries() {
        match entry {
            MadtEntry::LocalApic(e) => {
                let flags = e.flags;
                // Bit 0: enabled; bit 1: online-capable (may be started later).
                if flags & 1 != 0 {
                    info.cpus.push(CpuEntry {
                        apic_id: u32::from(e.apic_id),
                        processor_uid: u32::from(e.processor_id),
                    });
                } else {
                    info.disabled_cpus += 1;
                }
            }
            MadtEntry::LocalX2Apic(e) => {
                let (flags, id, uid) = (e.flags, e.x2apic_id, e.processor_uid);
                if flags & 1 != 0 {
                    info.cpus.push(CpuEntry {
                        apic_id: id,
                        processor_uid: uid,
                    });
                } else {
                    info.disabled_cpus += 1;
                }
            }
            MadtEntry::IoApic(e) => info.ioapics.push(IoApicEntry {
                id: e.io_apic_id,
                address: u64::from(e.io_apic_address),
                gsi_base: e.global_system_interrupt_base,
            }),
            MadtEntry::InterruptSourceOverride(e) => info.overrides.push(IrqOverride {
                isa_irq: e.irq,
                gsi: e.global_system_interrupt,
                flags: e.flags,
            }),
            MadtEntry::LocalApicAddressOverride(e) => {
                info.local_apic_address = e.local_apic_address
            }
            _ => {}
        }
    }

    // HpetInfo::new asserts the HPET is in system memory; check that first
    // (byte 40 of the table: the address-space id of its base address) so
    // odd firmware is skipped instead of panicking.
    if let Ok(hpet) = tables.find_table::<HpetTable>() {
        let table = hpet.virtual_start().as_ptr() as *const u8;
        // SAFETY: the mapping covers the whole table (at least 56 bytes,
        // checked by the crate's length validation), so byte 40 is inside it.
        let space = unsafe { table.add(40).read() };
        if space == 0 {
            info.hpet_address = HpetInfo::new(&tables).ok().map(|h| h.base_address as u64);
        }
    }

    if let Ok(mcfg) = tables.find_table::<Mcfg>() {
        for e in mcfg.get().entries() {
            info.pci_ecam.push(PciEcam {
                base: e.base_address,
                segment: e.pci_segment_group,
                bus_start: e.bus_number_start,
                bus_end: e.bus_number_end,
            });
        }
    }

    if let Ok(fadt) = tables.find_table::<Fadt>() {
        if let Ok(Some(pm)) = fadt.pm_timer_block() {
            if matches!(pm.address_space, AddressSpace::SystemIo) {
                info.pm_timer_port = u16::try_from(pm.address).ok();
            }
        }
        info.pm_timer_32bit = { fadt.flags }.pm_timer_is_32_bit();
        info.rtc_century_register = fadt.century;
        let power = &mut info.power;
        power.pm1a_control = fadt
            .pm1a_control_block()
            .ok()
            .and_then(|g| AcpiRegister::from_generic(&g));
        power.pm1b_control = fadt
            .pm1b_control_block()
            .ok()
            .flatten()
            .and_then(|g| AcpiRegister::from_generic(&g));
        power.sleep_control = fadt
            .sleep_control_register()
            .ok()
            .flatten()
            .and_then(|g| AcpiRegister::from_generic(&g));
        if { fadt.flags }.supports_system_reset_via_fadt() || { fadt.flags }
            .system_is_hw_reduced_acpi()
        {
            power.reset = fadt
                .reset_register()
                .ok()
                .and_then(|g| AcpiRegister::from_generic(&g))
                .map(|r| (r, fadt.reset_value));
        }
        power.smi_command = u16::try_from(fadt.smi_cmd_port).unwrap_or(0);
        power.acpi_enable = fadt.acpi_enable;
        if let Ok(dsdt) = tables.dsdt() {
            power.dsdt = Some((dsdt.address as u64, dsdt.length));
            // SAFETY: the DSDT lies in firmware memory covered by the direct
            // map (see the module docs) and is only read.
            let aml = unsafe {
                core::slice::from_raw_parts(
                    phys_to_virt(dsdt.address as u64) as *const u8,
                    dsdt.length as usize,
                )
            };
            power.s5 = crate::power::parse_s5(aml);
        }
        if let Ok(reset) = fadt.reset_register() {
            let value = fadt.reset_value;
            if matches!(reset.address_space, AddressSpace::SystemIo) && reset.address != 0 {
                info.reset = u16::try_from(reset.address).ok().map(|port| (port, value));
            }
        }
    }
    Ok(info)
}
