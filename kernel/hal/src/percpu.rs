//! Per-CPU data, reached through the GS base: each CPU's GS base points at
//! its own [`PerCpu`], whose first word points at itself.

use alloc::boxed::Box;
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

/// This CPU's own data. Invariant: created once per CPU, never freed, and
/// only its CPU stores its address in GS.
#[repr(C)]
pub struct PerCpu {
    self_ptr: *const PerCpu,
    /// Dense CPU number: 0 for the boot CPU, then in start order.
    pub index: u32,
    pub apic_id: u32,
}

/// Set once the boot CPU's GS base is valid; before that `cpu_index()` is 0.
/// The boot CPU sets its GS base before any other CPU starts, and every AP
/// sets its own before it runs anything that asks, so once this is true
/// every running CPU has a valid GS base.
static READY: AtomicBool = AtomicBool::new(false);

/// Installs this CPU's per-CPU block (once per CPU, at bring-up).
pub fn init_this_cpu(index: u32, apic_id: u32) {
    let block = Box::leak(Box::new(PerCpu {
        self_ptr: core::ptr::null(),
        index,
        apic_id,
    }));
    block.self_ptr = block;
    GsBase::write(VirtAddr::from_ptr(block as *const PerCpu));
    READY.store(true, Ordering::SeqCst);
}

/// This CPU's dense index (0 on the boot CPU, also before per-CPU init).
pub fn cpu_index() -> usize {
    if !READY.load(Ordering::Relaxed) {
        return 0;
    }
    let index: u32;
    // SAFETY: READY means this CPU's GS base points at its PerCpu block
    // (APs install theirs before running any code that asks), and `index`
    // is at offset 8 of that repr(C) struct.
    unsafe {
        core::arch::asm!("mov {0:e}, gs:[8]", out(reg) index, options(nostack, readonly, preserves_flags))
    };
    index as usize
}
