//! Exceptions: the IDT, naked entry stubs that save a full trap frame, and
//! the report printed when the kernel faults.
//!
//! All 32 exception vectors get a stub. A stub pushes a zero error code when
//! the CPU does not push one, then the vector number, and jumps to
//! `trap_common`, which saves every general-purpose register, calls
//! [`dispatch`] with a pointer to the [`TrapFrame`] and restores it. Stack
//! alignment: the CPU aligns `rsp` to 16 before pushing its 5-word frame;
//! error code, vector and 15 registers make 22 words in all, so `rsp` is
//! 16-aligned at the call.
//!
//! No nightly `x86-interrupt` ABI is needed: the stubs are stable
//! `#[unsafe(naked)]` functions.

use core::arch::naked_asm;
use core::cell::UnsafeCell;
use core::fmt::Write;

use super::serial::RawWriter;

/// Registers saved on exception entry, lowest address first.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Exception vector numbers the rest of the kernel names.
pub mod vector {
    pub const DIVIDE_ERROR: u8 = 0;
    pub const BREAKPOINT: u8 = 3;
    pub const INVALID_OPCODE: u8 = 6;
    pub const DOUBLE_FAULT: u8 = 8;
    pub const GENERAL_PROTECTION: u8 = 13;
    pub const PAGE_FAULT: u8 = 14;
}

/// The architectural name of exception `vector`.
pub fn exception_name(vector: u64) -> &'static str {
    const NAMES: [&str; 32] = [
        "divide error",
        "debug",
        "non-maskable interrupt",
        "breakpoint",
        "overflow",
        "bound range exceeded",
        "invalid opcode",
        "device not available",
        "double fault",
        "coprocessor segment overrun",
        "invalid TSS",
        "segment not present",
        "stack-segment fault",
        "general protection fault",
        "page fault",
        "reserved (15)",
        "x87 floating-point error",
        "alignment check",
        "machine check",
        "SIMD floating-point error",
        "virtualization exception",
        "control protection",
        "reserved (22)",
        "reserved (23)",
        "reserved (24)",
        "reserved (25)",
        "reserved (26)",
        "reserved (27)",
        "hypervisor injection",
        "VMM communication",
        "security exception",
        "reserved (31)",
    ];
    NAMES.get(vector as usize).copied().unwrap_or("interrupt")
}

// ---------------------------------------------------------------------------
// Entry stubs
// ---------------------------------------------------------------------------

#[unsafe(naked)]
unsafe extern "C" fn trap_common() {
    naked_asm!(
        // From ring 3 (the saved CS has RPL 3): take the kernel's GS base.
        // Such traps never come back here (see `user::exit_from_trap`).
        "test qword ptr [rsp + 24], 3",
        "jz 2f",
        "swapgs",
        "2:",
        "push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
        "push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14",
        "push r15",
        "mov rdi, rsp",
        "cld",
        "call {dispatch}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
        "add rsp, 16",
        "iretq",
        dispatch = sym dispatch,
    )
}

macro_rules! stub {
    ($name:ident, $vector:literal, no_error_code) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            naked_asm!("push 0", "push {v}", "jmp {common}", v = const $vector, common = sym trap_common)
        }
    };
    ($name:ident, $vector:literal, error_code) => {
        #[unsafe(naked)]
        unsafe extern "C" fn $name() {
            naked_asm!("push {v}", "jmp {common}", v = const $vector, common = sym trap_common)
        }
    };
}

stub!(stub0, 0, no_error_code);
stub!(stub1, 1, no_error_code);
stub!(stub2, 2, no_error_code);
stub!(stub3, 3, no_error_code);
stub!(stub4, 4, no_error_code);
stub!(stub5, 5, no_error_code);
stub!(stub6, 6, no_error_code);
stub!(stub7, 7, no_error_code);
stub!(stub8, 8, error_code);
stub!(stub9, 9, no_error_code);
stub!(stub10, 10, error_code);
stub!(stub11, 11, error_code);
stub!(stub12, 12, error_code);
stub!(stub13, 13, error_code);
stub!(stub14, 14, error_code);
stub!(stub15, 15, no_error_code);
stub!(stub16, 16, no_error_code);
stub!(stub17, 17, error_code);
stub!(stub18, 18, no_error_code);
stub!(stub19, 19, no_error_code);
stub!(stub20, 20, no_error_code);
stub!(stub21, 21, error_code);
stub!(stub22, 22, no_error_code);
stub!(stub23, 23, no_error_code);
stub!(stub24, 24, no_error_code);
stub!(stub25, 25, no_error_code);
stub!(stub26, 26, no_error_code);
stub!(stub27, 27, no_error_code);
stub!(stub28, 28, no_error_code);
stub!(stub29, 29, error_code);
stub!(stub30, 30, error_code);
stub!(stub31, 31, no_error_code);

// Interrupt vectors: legacy IRQs through the IOAPIC (0x20..=0x2f), message
// signalled interrupts of PCI devices (0x30..=0x3f, `MSI_VECTORS`) and the
// system vectors (0xf0..=0xff: IPIs, timer, APIC error, spurious).
stub!(irq20, 0x20, no_error_code);
stub!(irq21, 0x21, no_error_code);
stub!(irq22, 0x22, no_error_code);
stub!(irq23, 0x23, no_error_code);
stub!(irq24, 0x24, no_error_code);
stub!(irq25, 0x25, no_error_code);
stub!(irq26, 0x26, no_error_code);
stub!(irq27, 0x27, no_error_code);
stub!(irq28, 0x28, no_error_code);
stub!(irq29, 0x29, no_error_code);
stub!(irq2a, 0x2a, no_error_code);
stub!(irq2b, 0x2b, no_error_code);
stub!(irq2c, 0x2c, no_error_code);
stub!(irq2d, 0x2d, no_error_code);
stub!(irq2e, 0x2e, no_error_code);
stub!(irq2f, 0x2f, no_error_code);
stub!(msi30, 0x30, no_error_code);
stub!(msi31, 0x31, no_error_code);
stub!(msi32, 0x32, no_error_code);
stub!(msi33, 0x33, no_error_code);
stub!(msi34, 0x34, no_error_code);
stub!(msi35, 0x35, no_error_code);
stub!(msi36, 0x36, no_error_code);
stub!(msi37, 0x37, no_error_code);
stub!(msi38, 0x38, no_error_code);
stub!(msi39, 0x39, no_error_code);
stub!(msi3a, 0x3a, no_error_code);
stub!(msi3b, 0x3b, no_error_code);
stub!(msi3c, 0x3c, no_error_code);
stub!(msi3d, 0x3d, no_error_code);
stub!(msi3e, 0x3e, no_error_code);
stub!(msi3f, 0x3f, no_error_code);
stub!(sysf0, 0xf0, no_error_code);
stub!(sysf1, 0xf1, no_error_code);
stub!(sysf2, 0xf2, no_error_code);
stub!(sysf3, 0xf3, no_error_code);
stub!(sysf4, 0xf4, no_error_code);
stub!(sysf5, 0xf5, no_error_code);
stub!(sysf6, 0xf6, no_error_code);
stub!(sysf7, 0xf7, no_error_code);
stub!(sysf8, 0xf8, no_error_code);
stub!(sysf9, 0xf9, no_error_code);
stub!(sysfa, 0xfa, no_error_code);
stub!(sysfb, 0xfb, no_error_code);
stub!(sysfc, 0xfc, no_error_code);
stub!(sysfd, 0xfd, no_error_code);
stub!(sysfe, 0xfe, no_error_code);
stub!(sysff, 0xff, no_error_code);

const INTERRUPT_STUBS: [(u8, unsafe extern "C" fn()); 48] = [
    (0x20, irq20),
    (0x21, irq21),
    (0x22, irq22),
    (0x23, irq23),
    (0x24, irq24),
    (0x25, irq25),
    (0x26, irq26),
    (0x27, irq27),
    (0x28, irq28),
    (0x29, irq29),
    (0x2a, irq2a),
    (0x2b, irq2b),
    (0x2c, irq2c),
    (0x2d, irq2d),
    (0x2e, irq2e),
    (0x2f, irq2f),
    (0x30, msi30),
    (0x31, msi31),
    (0x32, msi32),
    (0x33, msi33),
    (0x34, msi34),
    (0x35, msi35),
    (0x36, msi36),
    (0x37, msi37),
    (0x38, msi38),
    (0x39, msi39),
    (0x3a, msi3a),
    (0x3b, msi3b),
    (0x3c, msi3c),
    (0x3d, msi3d),
    (0x3e, msi3e),
    (0x3f, msi3f),
    (0xf0, sysf0),
    (0xf1, sysf1),
    (0xf2, sysf2),
    (0xf3, sysf3),
    (0xf4, sysf4),
    (0xf5, sysf5),
    (0xf6, sysf6),
    (0xf7, sysf7),
    (0xf8, sysf8),
    (0xf9, sysf9),
    (0xfa, sysfa),
    (0xfb, sysfb),
    (0xfc, sysfc),
    (0xfd, sysfd),
    (0xfe, sysfe),
    (0xff, sysff),
];

const STUBS: [unsafe extern "C" fn(); 32] = [
    stub0, stub1, stub2, stub3, stub4, stub5, stub6, stub7, stub8, stub9, stub10, stub11, stub12,
    stub13, stub14, stub15, stub16, stub17, stub18, stub19, stub20, stub21, stub22, stub23, stub24,
    stub25, stub26, stub27, stub28, stub29, stub30, stub31,
];

// ---------------------------------------------------------------------------
// IDT
// ---------------------------------------------------------------------------

/// One 16-byte interrupt-gate descriptor.
#[derive(Clone, Copy)]
#[repr(C)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate = Gate {
        offset_low: 0,
        selector: 0,
        ist: 0,
        type_attr: 0,
        offset_mid: 0,
        offset_high: 0,
        reserved: 0,
    };

    fn interrupt(handler: u64, selector: u16, ist: u8) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector,
            ist,
            type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

/// The IDT. Invariant: only written during single-threaded boot
/// ([`init`], [`set_ist`]) while no exception handler reads the entry
/// being written.
#[repr(C, align(16))]
struct Idt(UnsafeCell<[Gate; 256]>);

// SAFETY: see the invariant on `Idt`: writes happen only during
// single-threaded boot; afterwards the table is only read (by the CPU).
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([Gate::MISSING; 256]));

/// Loads an IDT whose 32 exception vectors point at the stubs.
pub fn init() {
    let cs = {
        use x86_64::instructions::segmentation::{CS, Segment};
        CS::get_reg().0
    };
    // SAFETY: single-threaded boot, no exception handler is running (the
    // invariant on `Idt`).
    let table = unsafe { &mut *IDT.0.get() };
    for (gate, stub) in table.iter_mut().zip(STUBS) {
        *gate = Gate::interrupt(stub as usize as u64, cs, 0);
    }
    for (vector, stub) in INTERRUPT_STUBS {
        table[usize::from(vector)] = Gate::interrupt(stub as usize as u64, cs, 0);
    }
    load();
}

/// Loads the shared IDT on this CPU (application processors at bring-up).
pub fn load() {
    let pointer = x86_64::structures::DescriptorTablePointer {
        limit: (size_of::<[Gate; 256]>() - 1) as u16,
        base: x86_64::VirtAddr::from_ptr(IDT.0.get()),
    };
    // SAFETY: the pointer describes the static IDT, which lives forever and
    // whose gates all point at valid handlers or are not present.
    unsafe { x86_64::instructions::tables::lidt(&pointer) };
}

/// Gives exception `vector` its own interrupt stack (IST slot 1..=7), and
/// rewrites the code selector (after the final GDT is loaded).
pub fn set_ist(vector: u8, ist: u8, cs: u16) {
    assert!((1..=7).contains(&ist), "IST index out of range");
    // SAFETY: single-threaded boot (the invariant on `Idt`); the gate is
    // rewritten whole, with the same handler.
    let table = unsafe { &mut *IDT.0.get() };
    let stub = STUBS[vector as usize] as usize as u64;
    table[vector as usize] = Gate::interrupt(stub, cs, ist);
}

/// Re-points every exception gate at code selector `cs` (after a new GDT).
pub fn set_code_selector(cs: u16) {
    // SAFETY: single-threaded boot (the invariant on `Idt`).
    let table = unsafe { &mut *IDT.0.get() };
    for gate in table.iter_mut().filter(|g| g.type_attr != 0) {
        gate.selector = cs;
    }
}

// ---------------------------------------------------------------------------
// Dispatch and report
// ---------------------------------------------------------------------------

/// Called with the report already printed. May divert the kernel (the
/// in-kernel test runner resumes with the next test); if it returns, the
/// kernel exits with a failure status.
pub type FaultHook = fn(&TrapFrame);

static FAULT_HOOK: spin::Once<FaultHook> = spin::Once::new();

/// Installs the fault hook (once; later calls are ignored).
pub fn set_fault_hook(hook: FaultHook) {
    FAULT_HOOK.call_once(|| hook);
}

/// An interrupt handler: acknowledge the device and wake whoever waits;
/// nothing more (no logging above trace, no allocation: the kernel heap
/// runs with interrupts enabled and panics if a handler calls it).
pub type InterruptHandler = fn(vector: u8);

static UNEXPECTED: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// How many interrupts arrived on a vector nobody handles (each was logged).
pub fn unexpected_interrupts() -> u64 {
    UNEXPECTED.load(core::sync::atomic::Ordering::Relaxed)
}

/// Per-CPU interrupt bookkeeping, written only by its own CPU.
struct IrqCount {
    /// Interrupts taken (every vector, spurious included).
    taken: core::sync::atomic::AtomicU64,
    /// Handlers running (nesting depth).
    depth: core::sync::atomic::AtomicU32,
}

static IRQ: [IrqCount; crate::percpu::MAX_CPUS] = [const {
    IrqCount {
        taken: core::sync::atomic::AtomicU64::new(0),
        depth: core::sync::atomic::AtomicU32::new(0),
    }
}; crate::percpu::MAX_CPUS];

/// How many interrupts this CPU has taken since boot. An idle CPU that
/// polls instead of halting watches it: any change means a handler ran and
/// may have given the executor work.
pub fn interrupts_taken() -> u64 {
    IRQ.get(crate::cpu_index())
        .map_or(0, |c| c.taken.load(core::sync::atomic::Ordering::Relaxed))
}

/// Whether CPU `cpu` (the caller's own) is inside an interrupt handler. The
/// kernel heap checks it: handlers may not allocate (see [`InterruptHandler`]),
/// which is what lets the heap run with interrupts enabled.
#[inline]
pub fn in_interrupt_on(cpu: usize) -> bool {
    IRQ.get(cpu)
        .is_some_and(|c| c.depth.load(core::sync::atomic::Ordering::Relaxed) != 0)
}

static HANDLERS: [spin::Once<InterruptHandler>; 256] = [const { spin::Once::new() }; 256];

/// Routes interrupt `vector` (0x20..=0x2f or 0xf0..=0xfd) to `handler`.
///
/// # Errors
/// `Err(vector)` if the vector has no entry stub or already has a handler.
pub fn set_interrupt_handler(vector: u8, handler: InterruptHandler) -> Result<(), u8> {
    let has_stub = INTERRUPT_STUBS.iter().any(|(v, _)| *v == vector);
    let slot = &HANDLERS[usize::from(vector)];
    if !has_stub || vector >= super::apic::VECTOR_ERROR || slot.is_completed() {
        return Err(vector);
    }
    slot.call_once(|| handler);
    Ok(())
}

fn interrupt(vector: u8) {
    use core::sync::atomic::Ordering::Relaxed;
    let count = IRQ.get(crate::cpu_index());
    if let Some(c) = count {
        c.taken.fetch_add(1, Relaxed);
    }
    if vector == super::apic::VECTOR_SPURIOUS {
        return super::apic::on_spurious(); // no EOI for spurious interrupts
    }
    if let Some(c) = count {
        c.depth.fetch_add(1, Relaxed);
    }
    handle(vector);
    if let Some(c) = count {
        c.depth.fetch_sub(1, Relaxed);
    }
    super::apic::eoi();
}

fn handle(vector: u8) {
    match vector {
        super::apic::VECTOR_ERROR => {
            let status = super::apic::take_error_status();
            log::warn!(target: "apic", "APIC error on CPU {}: status {status:#x}", crate::cpu_index());
        }
        _ => match HANDLERS[usize::from(vector)].get() {
            Some(handler) => handler(vector),
            None => {
                UNEXPECTED.fetch_add(1, core::sync::atomic::Ordering::Relaxed);
                log::warn!(target: "trap", "unexpected interrupt vector {vector:#x} on CPU {}", crate::cpu_index());
            }
        },
    }
}

extern "C" fn dispatch(frame: &mut TrapFrame) {
    if super::user::from_user(frame) {
        // A user thread trapped: the kernel resumes where it entered it.
        super::user::exit_from_trap(frame, interrupt);
    }
    if frame.vector >= 32 {
        interrupt(frame.vector as u8);
        return;
    }
    report(frame);
    if let Some(hook) = FAULT_HOOK.get() {
        hook(frame);
    }
    super::cpu::exit_qemu(super::cpu::ExitCode::Failure);
}

/// Prints the exception report: vector and name, error code, RIP with its
/// symbol, RSP, CR2, every register and a backtrace.
pub fn report(frame: &TrapFrame) {
    let mut w = RawWriter;
    let _ = writeln!(
        w,
        "\n!!! EXCEPTION {} ({}) error_code={:#x}",
        frame.vector,
        exception_name(frame.vector),
        frame.error_code
    );
    let _ = write!(w, "    rip={:#018x} ", frame.rip);
    crate::backtrace::write_symbol(&mut w, frame.rip);
    let _ = writeln!(w);
    let cr2 = super::cpu::cr2();
    let _ = writeln!(
        w,
        "    rsp={:#018x} cr2={:#018x} rflags={:#x} cs={:#x} ss={:#x}",
        frame.rsp, cr2, frame.rflags, frame.cs, frame.ss
    );
    if frame.vector == u64::from(vector::PAGE_FAULT) {
        let e = frame.error_code;
        let _ = writeln!(
            w,
            "    page fault: {} {} in {} mode{}",
            if e & 1 != 0 {
                "protection violation on"
            } else {
                "not-present page on"
            },
            if e & 16 != 0 {
                "instruction fetch"
            } else if e & 2 != 0 {
                "write"
            } else {
                "read"
            },
            if e & 4 != 0 { "user" } else { "kernel" },
            if e & 8 != 0 {
                " (reserved bit set)"
            } else {
                ""
            },
        );
    }
    let regs = [
        ("rax", frame.rax),
        ("rbx", frame.rbx),
        ("rcx", frame.rcx),
        ("rdx", frame.rdx),
        ("rsi", frame.rsi),
        ("rdi", frame.rdi),
        ("rbp", frame.rbp),
        ("r8 ", frame.r8),
        ("r9 ", frame.r9),
        ("r10", frame.r10),
        ("r11", frame.r11),
        ("r12", frame.r12),
        ("r13", frame.r13),
        ("r14", frame.r14),
        ("r15", frame.r15),
    ];
    for row in regs.chunks(4) {
        let _ = write!(w, "   ");
        for (name, value) in row {
            let _ = write!(w, " {name}={value:#018x}");
        }
        let _ = writeln!(w);
    }
    crate::backtrace::write_backtrace(&mut w, frame.rbp);
}
