//! Starting the application processors: INIT-SIPI-SIPI and a real-mode
//! trampoline.
//!
//! The trampoline is assembled into the kernel image and copied to physical
//! 0x8000 (low memory is never handed out by the frame allocator). It goes
//! from real mode through 32-bit protected mode to long mode, using the
//! kernel's own page tables (the PML4 sits below 4 GiB), so the page is
//! identity-mapped for the duration of the bring-up. APs start one at a
//! time: the trampoline's variables (CR3, stack, entry, argument) are shared.
//! An AP that does not check in within its time is reported, and boot goes
//! on with the CPUs it has.

use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{apic, gdt, trap};
use crate::mm::{self, Prot};

const TRAMPOLINE: u64 = 0x8000;
const AP_STACK_PAGES: u64 = 16;
const AP_IST_PAGES: u64 = 4;

global_asm!(
    r#"
    .section .rodata.ap_trampoline, "a"
    .code16
    .global ap_trampoline_start
    ap_trampoline_start:
    cli
    cld
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl ap_gdtr - ap_trampoline_start + 0x8000
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $(ap_pm32 - ap_trampoline_start + 0x8000)

    .code32
    ap_pm32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax                                  /* PAE */
    movl %eax, %cr4
    movl ap_cr3 - ap_trampoline_start + 0x8000, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl ap_efer - ap_trampoline_start + 0x8000, %eax /* LME, and NXE when used */
    wrmsr
    movl %cr0, %eax
    orl $0x80010000, %eax                            /* PG | WP */
    movl %eax, %cr0
    ljmpl $0x18, $(ap_lm64 - ap_trampoline_start + 0x8000)

    .code64
    ap_lm64:
    xorl %eax, %eax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movq ap_stack - ap_trampoline_start + 0x8000, %rsp
    movq ap_arg - ap_trampoline_start + 0x8000, %rdi
    xorl %ebp, %ebp
    movq ap_entry - ap_trampoline_start + 0x8000, %rax
    call *%rax
    1:
    hlt
    jmp 1b

    .balign 8
    ap_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff     /* 0x08: 32-bit code */
    .quad 0x00cf92000000ffff     /* 0x10: data */
    .quad 0x00af9a000000ffff     /* 0x18: 64-bit code */
    ap_gdtr:
    .word ap_gdtr - ap_gdt - 1
    .long ap_gdt - ap_trampoline_start + 0x8000
    .balign 8
    .global ap_cr3, ap_efer, ap_stack, ap_entry, ap_arg
    ap_cr3:   .quad 0
    ap_efer:  .quad 0
    ap_stack: .quad 0
    ap_entry: .quad 0
    ap_arg:   .quad 0
    .global ap_trampoline_end
    ap_trampoline_end:
    "#,
    options(att_syntax)
);

unsafe extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static ap_cr3: u8;
    static ap_efer: u8;
    static ap_stack: u8;
    static ap_entry: u8;
    static ap_arg: u8;
}

/// CPUs running (the boot CPU counts).
static ONLINE: AtomicUsize = AtomicUsize::new(1);
static AP_MAIN: spin::Once<fn(usize) -> !> = spin::Once::new();

/// APIC id of each started CPU, by dense index (the boot CPU is 0).
static APIC_IDS: [core::sync::atomic::AtomicU32; crate::percpu::MAX_CPUS] =
    [const { core::sync::atomic::AtomicU32::new(u32::MAX) }; crate::percpu::MAX_CPUS];

/// The APIC id of the CPU with dense index `index`, if it is running.
pub fn apic_id_of(index: usize) -> Option<u32> {
    let id = APIC_IDS.get(index)?.load(Ordering::SeqCst);
    (id != u32::MAX).then_some(id)
}

/// How many CPUs are running.
pub fn online_cpus() -> usize {
    ONLINE.load(Ordering::SeqCst)
}

fn offset(symbol: &u8) -> u64 {
    let start = core::ptr::addr_of!(ap_trampoline_start) as u64;
    core::ptr::from_ref(symbol) as u64 - start
}

fn set_var(symbol: &u8, value: u64) {
    let va = mm::phys_to_virt(TRAMPOLINE + offset(symbol));
    // SAFETY: the trampoline page (physical 0x8000, reserved low memory) is
    // owned by this module during bring-up and reached via the direct map;
    // the variables are 8-aligned inside it.
    unsafe { core::ptr::write_volatile(va as *mut u64, value) };
}

/// What happened to one AP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApStart {
    Started { index: usize, apic_id: u32 },
    NoMemory { apic_id: u32 },
    TimedOut { apic_id: u32 },
}

/// Starts every CPU in `apic_ids` except the caller's, one at a time; each
/// runs `ap_main(index)` once it is set up. Calls `report` for each.
///
/// # Context
/// Boot CPU, once, after the APIC and the heap are up.
pub fn start_aps(apic_ids: &[u32], ap_main: fn(usize) -> !, mut report: impl FnMut(ApStart)) {
    AP_MAIN.call_once(|| ap_main);
    let (start, end) = (
        core::ptr::addr_of!(ap_trampoline_start) as u64,
        core::ptr::addr_of!(ap_trampoline_end) as u64,
    );
    let len = (end - start) as usize;
    // SAFETY: copies the trampoline (in the kernel's rodata) to physical
    // 0x8000, reserved low memory that nothing else uses, via the direct map.
    unsafe {
        core::ptr::copy_nonoverlapping(
            start as *const u8,
            mm::phys_to_virt(TRAMPOLINE) as *mut u8,
            len,
        )
    };
    // The AP runs the trampoline at its physical address with paging on.
    // SAFETY: the lower half is unused by the kernel; the page is owned here.
    if unsafe { mm::map_page(TRAMPOLINE, TRAMPOLINE, Prot::ReadExecute) }.is_err() {
        log::error!(target: "smp", "cannot map the AP trampoline; staying on one CPU");
        return;
    }
    let cr3 = x86_64::registers::control::Cr3::read()
        .0
        .start_address()
        .as_u64();
    let nx = if super::cpu::has_nx() { 0x900 } else { 0x100 };
    // SAFETY: only the addresses of the trampoline variables are taken.
    let vars = unsafe { (&ap_cr3, &ap_efer, &ap_stack, &ap_entry, &ap_arg) };
    set_var(vars.0, cr3);
    set_var(vars.1, nx);
    set_var(vars.3, ap_rust_entry as *const () as u64);

    let me = apic::id();
    APIC_IDS[0].store(me, Ordering::SeqCst);
    for &apic_id in apic_ids.iter().filter(|&&id| id != me) {
        let index = online_cpus();
        if index >= crate::percpu::MAX_CPUS {
            log::warn!(target: "smp", "more than {} CPUs: APIC id {apic_id} left offline", crate::percpu::MAX_CPUS);
            break;
        }
        let Ok(stack) = mm::alloc_stack(AP_STACK_PAGES) else {
            report(ApStart::NoMemory { apic_id });
            continue;
        };
        set_var(vars.2, stack.top);
        set_var(vars.4, index as u64);
        apic::send_init(apic_id);
        spin(100_000);
        apic::send_startup(apic_id, (TRAMPOLINE >> 12) as u8);
        spin(10_000);
        if online_cpus() == index {
            apic::send_startup(apic_id, (TRAMPOLINE >> 12) as u8);
        }
        // Bounded wait (no calibrated clock yet: a generous spin count).
        let mut waited = 0u64;
        while online_cpus() == index && waited < 200_000_000 {
            waited += 1;
            core::hint::spin_loop();
        }
        report(if online_cpus() > index {
            ApStart::Started { index, apic_id }
        } else {
            ApStart::TimedOut { apic_id }
        });
    }
    // SAFETY: every AP that started has left the trampoline (it checked in
    // from Rust code in the higher half); a timed-out one is abandoned.
    let _ = unsafe { mm::unmap_page(TRAMPOLINE) };
}

fn spin(n: u64) {
    for _ in 0..n {
        core::hint::spin_loop();
    }
}

/// First Rust code on an AP, on its own stack, with the kernel's page tables.
extern "C" fn ap_rust_entry(index: u64) -> ! {
    // First: the global allocator finds this CPU's slab cache through GS.
    crate::percpu::init_this_cpu(index as u32);
    trap::load();
    let ist = [(); 3].map(|()| mm::alloc_stack(AP_IST_PAGES).map(|s| s.top));
    let [Ok(a), Ok(b), Ok(c)] = ist else {
        log::error!(target: "smp", "CPU {index}: no memory for IST stacks; parking");
        super::cpu::halt_forever()
    };
    gdt::init([a, b, c]);
    apic::init_this_cpu();
    APIC_IDS[index as usize].store(apic::id(), Ordering::SeqCst);
    ONLINE.fetch_add(1, Ordering::SeqCst);
    match AP_MAIN.get() {
        Some(main) => main(index as usize),
        None => super::cpu::halt_forever(),
    }
}
