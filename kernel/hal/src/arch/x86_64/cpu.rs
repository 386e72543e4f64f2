//! Small CPU operations: halting, leaving QEMU, control registers, stacks.

use core::arch::asm;

use x86_64::instructions::port::Port;

/// isa-debug-exit (QEMU `-device isa-debug-exit,iobase=0xf4`): QEMU exits
/// with status `(code << 1) | 1`. Status 0 cannot be produced this way, and
/// a triple fault with `-no-reboot` exits 0, so only [`ExitCode::Success`]'s
/// status 33 means success (shared/reference/boot.md, section 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// QEMU status 33.
    Success = 0x10,
    /// QEMU status 35.
    Failure = 0x11,
}

/// Leaves QEMU through isa-debug-exit; halts forever if the device is absent.
pub fn exit_qemu(code: ExitCode) -> ! {
    // SAFETY: port 0xf4 is the exit device when present and unused otherwise;
    // the write has no memory effects.
    unsafe { Port::<u32>::new(0xf4).write(code as u32) };
    halt_forever()
}

/// Stops this CPU for good (interrupts off).
pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}

/// The page-fault linear address.
/// Resets the CPU the hard way: loads an empty IDT and raises an exception,
/// which can be delivered nowhere (a triple fault; QEMU with `-no-reboot`
/// then exits with status 0).
pub fn triple_fault() -> ! {
    let empty = x86_64::structures::DescriptorTablePointer {
        limit: 0,
        base: x86_64::VirtAddr::zero(),
    };
    // SAFETY: deliberately makes every interrupt undeliverable, then traps:
    // the machine resets; nothing runs afterwards.
    unsafe {
        x86_64::instructions::tables::lidt(&empty);
        core::arch::asm!("int3", options(nomem, nostack));
    }
    halt_forever()
}

pub fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// Time-stamp counter.
pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc only reads a counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// The current frame pointer, for backtraces.
#[inline(always)]
pub fn frame_pointer() -> u64 {
    let rbp: u64;
    // SAFETY: reads a register; no memory or flags touched.
    unsafe { asm!("mov {}, rbp", out(reg) rbp, options(nomem, nostack, preserves_flags)) };
    rbp
}

/// Whether the CPU supports the no-execute page bit (CPUID 8000_0001h EDX.20).
pub fn has_nx() -> bool {
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    max_ext >= 0x8000_0001 && core::arch::x86_64::__cpuid(0x8000_0001).edx & (1 << 20) != 0
}

/// Abandons the current stack: continues in `entry` on the stack ending at
/// `top`, with an empty frame-pointer chain.
///
/// # Safety
/// `top` must be the 16-byte aligned end of a mapped, writable stack that
/// nothing else uses, and nothing may refer to data on the current stack
/// afterwards.
pub unsafe fn switch_stack(top: u64, entry: fn() -> !) -> ! {
    debug_assert!(top.is_multiple_of(16), "stack top must be 16-byte aligned");
    // SAFETY: the caller guarantees the new stack; `entry` never returns, so
    // the abandoned stack is never popped into.
    unsafe {
        asm!(
            "mov rsp, {top}",
            "xor ebp, ebp",
            "call {entry}",
            "ud2",
            top = in(reg) top,
            entry = in(reg) entry,
            options(noreturn)
        )
    }
}
