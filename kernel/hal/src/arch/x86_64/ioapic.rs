//! I/O APICs: legacy ISA IRQs and PCI INTx lines routed to a vector on one
//! CPU.
//!
//! Each IOAPIC (from the MADT) serves the global system interrupts (GSIs)
//! `gsi_base..gsi_base + entries`. An ISA IRQ is GSI = IRQ, active high,
//! edge-triggered, unless the MADT has an interrupt source override for it,
//! whose flags (MPS INTI: polarity bits 0-1, trigger bits 2-3; 0 means "the
//! bus default") say otherwise. Every entry starts masked; `route_isa_irq`
//! programs one (fixed delivery, physical destination) and unmasks it.
//!
//! Registers: an index register at +0x00 and a data window at +0x10;
//! redirection entry `n` is the 64-bit pair at indices `0x10 + 2n`.

use core::sync::atomic::{AtomicU64, Ordering};

use crate::acpi::{AcpiInfo, IrqOverride};

const REG_VERSION: u32 = 0x01;
const REG_REDIRECTION: u32 = 0x10;
const ENTRY_MASKED: u32 = 1 << 16;
const ENTRY_LEVEL: u32 = 1 << 15;
const ENTRY_ACTIVE_LOW: u32 = 1 << 13;
const MAX_IOAPICS: usize = 8;

/// One IOAPIC: register window (virtual), first GSI, entry count. Packed
/// into atomics so the table is a plain static (set once at init).
struct Slot {
    base: AtomicU64,
    gsi_range: AtomicU64,
}

static IOAPICS: [Slot; MAX_IOAPICS] = [const {
    Slot {
        base: AtomicU64::new(0),
        gsi_range: AtomicU64::new(0),
    }
}; MAX_IOAPICS];

/// The register-select index is shared by every CPU: one access at a time.
static LOCK: spin::Mutex<()> = spin::Mutex::new(());

/// Interrupt source overrides, copied at init.
static OVERRIDES: spin::Once<alloc::vec::Vec<IrqOverride>> = spin::Once::new();

/// Why routing failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoApicError {
    /// No IOAPIC serves this GSI (or `init` found none).
    NoSuchGsi(u32),
    /// The destination APIC id does not fit the 8-bit destination field.
    DestinationTooLarge(u32),
}

fn read(base: u64, reg: u32) -> u32 {
    // SAFETY: `base` is the uncached mapping of an IOAPIC's registers made
    // by `init`; index then data is the documented access, done under LOCK.
    unsafe {
        core::ptr::write_volatile(base as *mut u32, reg);
        core::ptr::read_volatile((base + 0x10) as *const u32)
    }
}

fn write(base: u64, reg: u32, value: u32) {
    // SAFETY: as in `read`.
    unsafe {
        core::ptr::write_volatile(base as *mut u32, reg);
        core::ptr::write_volatile((base + 0x10) as *mut u32, value);
    }
}

/// Maps every IOAPIC the MADT lists and masks all their entries. Returns
/// how many IOAPICs are in use. Call once, on the boot CPU.
pub fn init(acpi: &AcpiInfo) -> usize {
    OVERRIDES.call_once(|| acpi.overrides.clone());
    locked(|| init_locked(acpi))
}

fn init_locked(acpi: &AcpiInfo) -> usize {
    let mut used = 0;
    for entry in acpi.ioapics.iter().take(MAX_IOAPICS) {
        // SAFETY: the IOAPIC register page is device memory named by the
        // MADT; this is its only mapping.
        let Ok(base) = (unsafe { crate::mm::map_mmio(entry.address, 0x20) }) else {
            log::error!(target: "ioapic", "cannot map the IOAPIC at {:#x}", entry.address);
            continue;
        };
        let entries = ((read(base, REG_VERSION) >> 16) & 0xff) + 1;
        for n in 0..entries {
            write(base, REG_REDIRECTION + 2 * n, ENTRY_MASKED);
            write(base, REG_REDIRECTION + 2 * n + 1, 0);
        }
        IOAPICS[used].base.store(base, Ordering::SeqCst);
        IOAPICS[used].gsi_range.store(
            u64::from(entry.gsi_base) << 32 | u64::from(entries),
            Ordering::SeqCst,
        );
        log::info!(target: "ioapic", "IOAPIC id {} at {:#x}: GSIs {}..{}", entry.id, entry.address, entry.gsi_base, entry.gsi_base + entries);
        used += 1;
    }
    used
}

/// The register window and entry index serving `gsi`.
fn locate(gsi: u32) -> Result<(u64, u32), IoApicError> {
    IOAPICS
        .iter()
        .find_map(|slot| {
            let base = slot.base.load(Ordering::Relaxed);
            let range = slot.gsi_range.load(Ordering::Relaxed);
            let (first, count) = ((range >> 32) as u32, range as u32);
            (base != 0 && gsi >= first && gsi - first < count).then_some((base, gsi - first))
        })
        .ok_or(IoApicError::NoSuchGsi(gsi))
}

/// The GSI and redirection flags (polarity, trigger) of ISA IRQ `irq`,
/// honouring the MADT's overrides.
pub fn isa_irq_routing(irq: u8) -> (u32, u32) {
    let ovr = OVERRIDES
        .get()
        .and_then(|o| o.iter().find(|o| o.isa_irq == irq));
    let Some(ovr) = ovr else {
        return (u32::from(irq), 0); // ISA: active high, edge
    };
    let mode = LineMode {
        is_level: (ovr.flags >> 2) & 0b11 == 0b11,
        is_active_low: ovr.flags & 0b11 == 0b11,
    };
    (ovr.gsi, mode.entry_flags())
}

/// Runs `f` holding [`LOCK`] with interrupts off: interrupt handlers mask
/// lines too (a level-triggered PCI line is masked until its driver has
/// acknowledged the device), so the lock must never be held interruptibly.
fn locked<T>(f: impl FnOnce() -> T) -> T {
    x86_64::instructions::interrupts::without_interrupts(|| {
        let _guard = LOCK.lock();
        f()
    })
}

/// Routes ISA IRQ `irq` to `vector` on the CPU with local APIC id
/// `cpu_apic_id` (fixed delivery, physical destination) and unmasks it.
///
/// # Errors
/// [`IoApicError`] when no IOAPIC serves the IRQ's GSI or the APIC id does
/// not fit the IOAPIC's 8-bit destination.
pub fn route_isa_irq(irq: u8, vector: u8, cpu_apic_id: u32) -> Result<(), IoApicError> {
    let (gsi, flags) = isa_irq_routing(irq);
    program(gsi, vector, cpu_apic_id, flags)
}

/// How a PCI interrupt line is signalled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineMode {
    /// Level-triggered (PCI INTx is; ISA IRQs are edge).
    pub is_level: bool,
    /// Asserted low.
    pub is_active_low: bool,
}

impl LineMode {
    /// The trigger and polarity bits of a redirection entry.
    fn entry_flags(self) -> u32 {
        let level = if self.is_level { ENTRY_LEVEL } else { 0 };
        let low = if self.is_active_low {
            ENTRY_ACTIVE_LOW
        } else {
            0
        };
        level | low
    }
}

/// Routes `gsi` to `vector` on the CPU with local APIC id `cpu_apic_id`
/// with the given trigger mode and polarity (a PCI INTx line: the chipset's
/// PIRQ wiring names the GSI) and unmasks it.
///
/// # Errors
/// As [`route_isa_irq`].
pub fn route_gsi(
    gsi: u32,
    vector: u8,
    cpu_apic_id: u32,
    mode: LineMode,
) -> Result<(), IoApicError> {
    program(gsi, vector, cpu_apic_id, mode.entry_flags())
}

fn program(gsi: u32, vector: u8, cpu_apic_id: u32, flags: u32) -> Result<(), IoApicError> {
    let dest =
        u8::try_from(cpu_apic_id).map_err(|_| IoApicError::DestinationTooLarge(cpu_apic_id))?;
    let (base, n) = locate(gsi)?;
    locked(|| {
        write(base, REG_REDIRECTION + 2 * n, ENTRY_MASKED);
        write(base, REG_REDIRECTION + 2 * n + 1, u32::from(dest) << 24);
        write(base, REG_REDIRECTION + 2 * n, u32::from(vector) | flags);
    });
    Ok(())
}

/// Masks or unmasks `gsi`.
///
/// # Errors
/// [`IoApicError::NoSuchGsi`] when no IOAPIC serves it.
///
/// # Context
/// Any, interrupt handlers included (two register accesses with interrupts off).
pub fn set_gsi_masked(gsi: u32, masked: bool) -> Result<(), IoApicError> {
    let (base, n) = locate(gsi)?;
    locked(|| {
        let low = read(base, REG_REDIRECTION + 2 * n);
        let low = if masked {
            low | ENTRY_MASKED
        } else {
            low & !ENTRY_MASKED
        };
        write(base, REG_REDIRECTION + 2 * n, low);
    });
    Ok(())
}

/// Masks ISA IRQ `irq`.
///
/// # Errors
/// [`IoApicError::NoSuchGsi`] when no IOAPIC serves it.
pub fn mask(irq: u8) -> Result<(), IoApicError> {
    set_gsi_masked(isa_irq_routing(irq).0, true)
}

/// Unmasks ISA IRQ `irq` (after `route_isa_irq` set its vector).
///
/// # Errors
/// [`IoApicError::NoSuchGsi`] when no IOAPIC serves it.
pub fn unmask(irq: u8) -> Result<(), IoApicError> {
    set_gsi_masked(isa_irq_routing(irq).0, false)
}

/// The raw redirection entry of ISA IRQ `irq` (for tests and diagnostics).
pub fn entry(irq: u8) -> Option<u64> {
    gsi_entry(isa_irq_routing(irq).0)
}

/// The raw redirection entry of `gsi` (for tests and diagnostics).
pub fn gsi_entry(gsi: u32) -> Option<u64> {
    let (base, n) = locate(gsi).ok()?;
    let (low, high) = locked(|| {
        (
            read(base, REG_REDIRECTION + 2 * n),
            read(base, REG_REDIRECTION + 2 * n + 1),
        )
    });
    Some(u64::from(high) << 32 | u64::from(low))
}
