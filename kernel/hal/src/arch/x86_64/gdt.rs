//! GDT and TSS, with separate interrupt stacks (IST) for double fault, NMI
//! and machine check, so a kernel stack overflow still produces a report.

use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

use super::trap;

/// IST slots (1-based, as the IDT encodes them).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

/// Selectors of the loaded GDT.
#[derive(Clone, Copy, Debug)]
pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub tss: SegmentSelector,
}

/// Builds and loads this CPU's GDT and TSS; `ist_tops` are the stack tops
/// for double fault, NMI and machine check (each stack has a guard page).
/// Every CPU gets its own pair (leaked: CPUs are never removed); the
/// selectors are the same on every CPU.
pub fn init(ist_tops: [u64; 3]) -> Selectors {
    let mut tss = TaskStateSegment::new();
    for (slot, top) in [IST_DOUBLE_FAULT, IST_NMI, IST_MACHINE_CHECK]
        .into_iter()
        .zip(ist_tops)
    {
        tss.interrupt_stack_table[usize::from(slot - 1)] = VirtAddr::new(top);
    }
    let tss: &'static TaskStateSegment = alloc::boxed::Box::leak(alloc::boxed::Box::new(tss));
    let gdt: &'static mut GlobalDescriptorTable =
        alloc::boxed::Box::leak(alloc::boxed::Box::new(GlobalDescriptorTable::new()));
    let kernel_code = gdt.append(Descriptor::kernel_code_segment());
    let kernel_data = gdt.append(Descriptor::kernel_data_segment());
    let tss_selector = gdt.append(Descriptor::tss_segment(tss));
    let selectors = Selectors {
        kernel_code,
        kernel_data,
        tss: tss_selector,
    };
    let gdt: &'static GlobalDescriptorTable = gdt;
    gdt.load();
    // SAFETY: the selectors come from the GDT just loaded, which is never
    // freed; the TSS descriptor points at this CPU's leaked TSS.
    unsafe {
        CS::set_reg(selectors.kernel_code);
        DS::set_reg(selectors.kernel_data);
        ES::set_reg(selectors.kernel_data);
        SS::set_reg(selectors.kernel_data);
        load_tss(selectors.tss);
    }
    selectors
}

/// Points the shared IDT's gates at the final code selector and gives the
/// critical exceptions their IST stacks (boot CPU, once).
pub fn configure_idt(selectors: Selectors) {
    let cs = selectors.kernel_code.0;
    trap::set_code_selector(cs);
    trap::set_ist(trap::vector::DOUBLE_FAULT, IST_DOUBLE_FAULT, cs);
    trap::set_ist(2, IST_NMI, cs);
    trap::set_ist(18, IST_MACHINE_CHECK, cs);
}
