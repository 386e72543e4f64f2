//! PVH entry: the 32-bit stub QEMU's `-kernel` jumps to, and the switch to
//! 64-bit mode in the higher half.
//!
//! QEMU enters `pvh_start` in 32-bit protected mode, paging off, with `ebx`
//! holding the physical address of `hvm_start_info`. The stub builds
//! throw-away page tables (identity map of 0..4 GiB plus the kernel window at
//! -2 GiB, all 2 MiB pages: the default CPU model has no 1 GiB pages), turns
//! on long mode and calls [`super::super::super::boot::entry`] on the boot
//! stack. `hal::mm` replaces these tables with the real ones (W^X, direct
//! map) before anything else runs.
//!
//! Traps, all verified here (shared/reference/boot.md): the note descriptor
//! must be 4-aligned, a missing note is a load error, and the image must be
//! linked with static relocations.

use core::arch::global_asm;

/// Size of the stack the stub hands to Rust; only early boot runs on it.
pub const BOOT_STACK_BYTES: usize = 64 * 1024;

global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .balign 4
    .long 4                 /* namesz */
    .long 4                 /* descsz */
    .long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long pvh_start
    .balign 4

    .section .boot.bss, "aw", @nobits
    .balign 4096
    boot_pml4:    .skip 4096
    boot_pdpt_lo: .skip 4096
    boot_pdpt_hi: .skip 4096
    boot_pd:      .skip 4 * 4096

    .section .boot.data, "a"
    .balign 8
    boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
    boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .long boot_gdt

    .section .boot.text, "ax"
    .code32
    .global pvh_start
    pvh_start:
    cli
    cld
    mov %ebx, %ebp              /* start_info, kept across the stub */

    mov $boot_pml4, %edi        /* the tables live in NOLOAD memory: zero them */
    xor %eax, %eax
    mov $(7 * 1024), %ecx
    rep stosl

    mov $boot_pdpt_lo, %eax
    or $3, %eax
    mov %eax, boot_pml4
    mov $boot_pdpt_hi, %eax
    or $3, %eax
    mov %eax, boot_pml4 + 511 * 8

    mov $boot_pd, %eax
    or $3, %eax
    mov %eax, boot_pdpt_lo
    mov %eax, boot_pdpt_hi + 510 * 8    /* -2 GiB -> physical 0 */
    add $4096, %eax
    mov %eax, boot_pdpt_lo + 8
    add $4096, %eax
    mov %eax, boot_pdpt_lo + 16
    add $4096, %eax
    mov %eax, boot_pdpt_lo + 24

    mov $boot_pd, %edi          /* 2048 x 2 MiB pages: 0..4 GiB */
    mov $0x83, %eax             /* present | writable | huge */
    mov $2048, %ecx
1:
    mov %eax, (%edi)
    add $0x200000, %eax
    add $8, %edi
    loop 1b

    mov %cr4, %eax
    or $0x20, %eax              /* PAE */
    mov %eax, %cr4
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov $0xC0000080, %ecx       /* EFER.LME */
    rdmsr
    or $0x100, %eax
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax        /* PG | WP | PE */
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $0x08, $2f

    .code64
2:
    xor %eax, %eax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov %ebp, %edi              /* zero-extends: first argument */
    xor %ebp, %ebp              /* ends the frame-pointer chain */
    movabs $boot_stack_top, %rsp
    movabs ${entry}, %rax
    call *%rax
3:
    cli
    hlt
    jmp 3b
    "#,
    entry = sym crate::boot::entry,
    options(att_syntax)
);

global_asm!(
    r#"
    .section .bss.boot_stack, "aw", @nobits
    .balign 4096
    .global boot_stack_guard
    boot_stack_guard:           /* left unmapped by the kernel page tables */
    .skip 4096
    .global boot_stack_bottom
    boot_stack_bottom:
    .skip {size}
    .global boot_stack_top
    boot_stack_top:
    "#,
    size = const BOOT_STACK_BYTES,
    options(att_syntax)
);

unsafe extern "C" {
    static boot_stack_guard: u8;
    static boot_stack_bottom: u8;
    static boot_stack_top: u8;
}

/// The boot stack's guard page (not mapped once the kernel tables are live).
pub fn boot_stack_guard_page() -> u64 {
    core::ptr::addr_of!(boot_stack_guard) as u64
}

/// The boot stack's bounds `(bottom, top)`, for the backtrace walker.
pub fn boot_stack() -> (u64, u64) {
    (
        core::ptr::addr_of!(boot_stack_bottom) as u64,
        core::ptr::addr_of!(boot_stack_top) as u64,
    )
}
