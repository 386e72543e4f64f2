//! GDT and TSS, with separate interrupt stacks (IST) for double fault, NMI
//! and machine check, so a kernel stack overflow still produces a report,
//! and a ring-0 stack (`rsp0`) on which traps from user mode arrive.
//!
//! Layout (fixed: `syscall`/`sysret` derive selectors from it, see
//! `user.rs`): 0x08 kernel code, 0x10 kernel data, 0x18 user data, 0x20 user
//! code, 0x28 TSS.

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
    pub user_code: SegmentSelector,
    pub user_data: SegmentSelector,
}

/// Pages of each CPU's ring-0 stack for traps from user mode (the handler
/// saves the frame into the user context and leaves it at once).
const RSP0_STACK_PAGES: u64 = 4;

/// Builds and loads this CPU's GDT and TSS; `ist_tops` are the stack tops
/// for double fault, NMI and machine check (each stack has a guard page).
/// Every CPU gets its own pair (leaked: CPUs are never removed); the
/// selectors are the same on every CPU. Also prepares this CPU for user
/// mode (`user::init_this_cpu`).
///
/// # Panics
/// If there is no memory for the ring-0 stack (bring-up cannot go on).
pub fn init(ist_tops: [u64; 3]) -> Selectors {
    let mut tss = TaskStateSegment::new();
    let rsp0 = crate::mm::alloc_stack(RSP0_STACK_PAGES).expect("no memory for the ring-0 stack");
    tss.privilege_stack_table[0] = VirtAddr::new(rsp0.top);
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
    let user_data = gdt.append(Descriptor::user_data_segment());
    let user_code = gdt.append(Descriptor::user_code_segment());
    let tss_selector = gdt.append(Descriptor::tss_segment(tss));
    let selectors = Selectors {
        kernel_code,
        kernel_data,
        tss: tss_selector,
        user_code,
        user_data,
    };
    assert_eq!(
        (kernel_code.0, kernel_data.0, user_data.0, user_code.0),
        (
            0x08,
            0x10,
            super::user::USER_DATA_SELECTOR,
            super::user::USER_CODE_SELECTOR
        ),
        "the GDT layout `syscall` relies on"
    );
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
    super::user::init_this_cpu();
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
