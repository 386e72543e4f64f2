//! Tests that make the CPU refuse something, and the raw accesses they need.
//!
//! This module is the test suite's only `unsafe`: each access below is
//! deliberately one the MMU or CPU must refuse, or one on a page this test
//! mapped for itself. If a protection were broken, the write would land;
//! the test would then fail ("returned, expected exception").
#![allow(unsafe_code)]

use hal::mm::{self, Prot};

/// Maps `phys` at `va`; both were allocated by the calling test.
pub(crate) fn map_owned(va: u64, phys: u64, prot: Prot) {
    // SAFETY: `va` comes from `alloc_virt` and `phys` from `alloc_frame`,
    // both owned by the calling test alone.
    unsafe { mm::map_page(va, phys, prot) }.expect("mapping a test page");
}

/// Unmaps a page mapped with [`map_owned`].
pub(crate) fn unmap_owned(va: u64) {
    // SAFETY: the calling test owns `va` and stops using it here.
    unsafe { mm::unmap_page(va) }.expect("unmapping a test page");
}

pub(crate) fn write_u64(addr: u64, value: u64) {
    // SAFETY: not guaranteed: callers pass their own mapped pages, or an
    // address the MMU must refuse (the point of the test).
    unsafe { core::ptr::write_volatile(addr as *mut u64, value) }
}

pub(crate) fn read_u64(addr: u64) -> u64 {
    // SAFETY: as for `write_u64`.
    unsafe { core::ptr::read_volatile(addr as *const u64) }
}

pub fn paging_protect_read_only_then_write_faults() {
    let frame = mm::alloc_frame().expect("a free frame");
    let va = mm::alloc_virt(1).expect("vmap space");
    map_owned(va, frame, Prot::ReadWrite);
    write_u64(va, 1);
    // SAFETY: the test owns the page and only reads it after this.
    unsafe { mm::protect_page(va, Prot::ReadOnly) }.expect("protect");
    assert_eq!(read_u64(va), 1, "still readable");
    write_u64(va, 2); // must fault
}

static RODATA_WORD: u64 = 0x1234;

pub fn write_to_kernel_rodata_faults() {
    write_u64(core::ptr::addr_of!(RODATA_WORD) as u64, 0); // must fault
}

pub fn write_to_kernel_text_faults() {
    let text = write_to_kernel_text_faults as fn() as usize as u64;
    write_u64(text & !7, 0); // must fault
}

pub fn execute_from_data_page_faults() {
    let frame = mm::alloc_frame().expect("a free frame");
    let va = mm::alloc_virt(1).expect("vmap space");
    map_owned(va, frame, Prot::ReadWrite);
    write_u64(va, 0xc3); // `ret`
    // SAFETY: not safe on purpose: the page is mapped no-execute, so the
    // fetch must fault before the `ret` could run.
    let f: extern "C" fn() = unsafe { core::mem::transmute(va as usize) };
    f(); // must fault
}

pub fn unmapped_page_read_faults() {
    let va = mm::alloc_virt(1).expect("vmap space");
    core::hint::black_box(read_u64(va)); // never mapped: must fault
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let pad = core::hint::black_box([depth; 64]);
    if depth == u64::MAX {
        0
    } else {
        recurse(depth + 1) + pad[0]
    }
}

pub fn stack_overflow_hits_the_guard_page() {
    core::hint::black_box(recurse(0)); // runs into the guard page
}

pub fn invalid_opcode_is_reported() {
    // SAFETY: ud2 only raises #UD.
    unsafe { core::arch::asm!("ud2") }
}

pub fn divide_error_is_reported() {
    // SAFETY: a division by zero in registers only raises #DE.
    unsafe {
        core::arch::asm!("xor edx, edx", "xor ecx, ecx", "mov eax, 1", "div ecx", out("eax") _, out("ecx") _, out("edx") _)
    }
}

pub fn breakpoint_is_reported() {
    // SAFETY: int3 only raises #BP.
    unsafe { core::arch::asm!("int3") }
}
