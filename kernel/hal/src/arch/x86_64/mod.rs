//! x86_64: boot stub, CPU helpers, GDT/TSS, traps, serial port.

pub mod apic;
pub mod boot;
pub mod cmos;
pub mod cpu;
pub mod gdt;
pub mod ioapic;
pub mod mem;
pub mod msi;
pub mod pci;
pub mod serial;
pub mod smp;
pub mod time;
pub mod trap;
pub mod user;

use core::cell::UnsafeCell;

pub use boot::{boot_stack, boot_stack_guard_page};

/// Storage for the embedded symbol table, patched by xtask after linking.
/// Invariant: never written while the kernel runs (only xtask writes it,
/// in the image file), so shared references to it are sound.
#[repr(C, align(16))]
pub struct SymbolBlob(UnsafeCell<[u8; crate::symbols::CAPACITY]>);

// SAFETY: see the invariant on `SymbolBlob`: the kernel only reads it.
unsafe impl Sync for SymbolBlob {}

/// The UnsafeCell keeps the compiler from assuming the all-zero initial
/// value: the real contents are written into the image after linking.
#[unsafe(link_section = ".ksyms")]
#[used]
static KSYMS: SymbolBlob = SymbolBlob(UnsafeCell::new([0; crate::symbols::CAPACITY]));

/// The bytes of the embedded symbol table.
pub fn ksyms() -> &'static [u8] {
    // SAFETY: nothing writes KSYMS at run time (the invariant on SymbolBlob).
    unsafe { &*KSYMS.0.get() }
}
