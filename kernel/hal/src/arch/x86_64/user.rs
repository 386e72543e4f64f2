//! User mode as a function call: [`enter_user`] runs a user context until it
//! comes back to the kernel, and returns why ([`UserExit`]).
//!
//! This is how a user thread can be an ordinary task on a CPU's executor:
//! the task calls `enter_user`, the CPU runs ring 3 code, and the next
//! `syscall`, interrupt or exception returns from `enter_user` on the same
//! kernel stack, with the user registers saved in the [`UserContext`]. The
//! task then handles the exit (performs the system call, yields on a timer
//! interrupt, kills the process on a fault) and calls `enter_user` again.
//! There is no per-thread kernel stack and no context switch code: waiting
//! in a system call is an `.await` like any other.
//!
//! Mechanics, per CPU:
//! - `enter_user` pushes the callee-saved registers, records the kernel
//!   stack pointer and the context in the per-CPU block (`PerCpu::user_*`),
//!   loads the user registers and `iretq`s to ring 3 after `swapgs` (in user
//!   mode the GS base is the user's, the kernel's waits in `KERNEL_GS_BASE`).
//! - `syscall` lands in [`syscall_entry`]: `swapgs`, store the user
//!   registers into the context, switch back to the recorded kernel stack.
//!   There the context's [`InlineSyscall`] may complete the call at once
//!   (interrupts still off); the thread then goes straight back to ring 3.
//!   Otherwise pop the callee-saved registers and return
//!   [`UserExit::Syscall`].
//! - The way back to ring 3 is `sysretq` when the context's rcx and r11
//!   equal its rip and rflags (after any `syscall` they do), else `iretq`.
//! - An interrupt or exception in ring 3 arrives on the TSS `rsp0` stack;
//!   `trap_common` does `swapgs` when the interrupted code was in ring 3,
//!   and `dispatch` hands the frame to [`exit_from_trap`], which copies it
//!   into the context, runs the interrupt handler (acknowledge only) and
//!   resumes the kernel the same way.
//!
//! FPU/SSE/AVX state belongs to the context and is switched lazily: the
//! kernel itself is built without SSE, so a thread's registers stay in the
//! CPU after it exits, and they are saved (`xsave`, or `fxsave` without
//! XSAVE) only when another context enters on that CPU. Under TCG a save
//! plus a restore costs about four times a bare user round trip, and a
//! thread making system calls on its own CPU pays neither. Each CPU keeps a
//! reference to the area whose state it holds, so a save never writes freed
//! memory. Contexts stay on one CPU (the kernel never migrates a process);
//! entering one on another CPU loses its newest FPU state, nothing more.

use alloc::sync::Arc;
use core::arch::naked_asm;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;
use x86_64::registers::xcontrol::{XCr0, XCr0Flags};
use x86_64::structures::gdt::SegmentSelector;
use x86_64::{PrivilegeLevel, VirtAddr};

use super::trap::TrapFrame;

/// Selectors of the user segments, fixed by the GDT layout in `gdt.rs`
/// (and by what `sysret` would require of them).
pub const USER_DATA_SELECTOR: u16 = 0x18 | 3;
pub const USER_CODE_SELECTOR: u16 = 0x20 | 3;

/// First address above the user half: user pointers must be below it.
pub const USER_TOP: u64 = 0x0000_8000_0000_0000;

/// Size of the saved FPU/SSE/AVX area in every context (x87, SSE and AVX
/// state need 832 bytes; larger feature sets are not enabled).
const FPU_AREA_BYTES: usize = 1024;

/// Saved extended state, in the `xsave`/`fxsave` format.
#[derive(Clone)]
#[repr(C, align(64))]
pub struct FpuArea([u8; FPU_AREA_BYTES]);

impl FpuArea {
    /// The initial state: default control words, every register zero.
    fn new() -> FpuArea {
        let mut bytes = [0u8; FPU_AREA_BYTES];
        bytes[0..2].copy_from_slice(&0x037fu16.to_le_bytes()); // x87 control word
        bytes[24..28].copy_from_slice(&0x1f80u32.to_le_bytes()); // MXCSR: all masked
        FpuArea(bytes)
    }
}

/// A user thread's registers while the kernel runs. The layout is fixed:
/// the entry and exit assembly address fields by offset.
#[repr(C)]
pub struct UserContext {
    pub rax: u64,
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
    pub rip: u64,
    pub rsp: u64,
    pub rflags: u64,
    /// Vector, error code and CR2 of the last exit by interrupt or exception.
    pub exit_vector: u64,
    pub exit_error_code: u64,
    pub exit_cr2: u64,
    fpu: Arc<spin::Mutex<FpuArea>>,
    /// Who may complete a system call on the trap itself ([`InlineSyscall`]).
    inline: Option<Arc<dyn InlineSyscall>>,
}

/// A system call completed on the `syscall` trap itself, before
/// [`enter_user`] returns: the thread goes straight back to ring 3 (by
/// `sysretq`) and its task never sees the call. This is the trap door's
/// synchronous case at its cheapest (one trap, no return into the task).
///
/// [`try_complete`](InlineSyscall::try_complete) runs on the CPU's kernel
/// stack with interrupts disabled (an interrupt that arrives meanwhile is
/// taken as soon as the thread is back in ring 3), so it must be short and
/// must not wait. It returns `None` to leave the call to the task, which
/// then sees [`UserExit::Syscall`] with the registers untouched.
pub trait InlineSyscall: Send + Sync {
    /// `number` is `rax`, `args` are `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`;
    /// `Some(result)` is the value for `rax`.
    fn try_complete(&self, number: u64, args: [u64; 6]) -> Option<u64>;
}

impl Clone for UserContext {
    /// A copy with its own FPU area (the saved state as of the last switch).
    fn clone(&self) -> UserContext {
        UserContext {
            fpu: Arc::new(spin::Mutex::new(self.fpu.lock().clone())),
            inline: self.inline.clone(),
            ..*self
        }
    }
}

const OFF_RIP: usize = 15 * 8;
const OFF_RSP: usize = 16 * 8;
const OFF_RFLAGS: usize = 17 * 8;

impl UserContext {
    /// A context that starts at `rip` with stack pointer `rsp`, every other
    /// register zero, interrupts enabled.
    pub fn new(rip: u64, rsp: u64) -> UserContext {
        UserContext {
            rax: 0,
            rbx: 0,
            rcx: 0,
            rdx: 0,
            rsi: 0,
            rdi: 0,
            rbp: 0,
            r8: 0,
            r9: 0,
            r10: 0,
            r11: 0,
            r12: 0,
            r13: 0,
            r14: 0,
            r15: 0,
            rip,
            rsp,
            rflags: RFlags::INTERRUPT_FLAG.bits() | 0x2,
            exit_vector: 0,
            exit_error_code: 0,
            exit_cr2: 0,
            fpu: Arc::new(spin::Mutex::new(FpuArea::new())),
            inline: None,
        }
    }

    /// A system call's arguments as the `syscall` left them: `rdi`, `rsi`,
    /// `rdx`, `r10`, `r8`, `r9`.
    pub fn syscall_args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }

    /// Lets `handler` complete this thread's system calls on the trap
    /// ([`InlineSyscall`]).
    pub fn set_inline(&mut self, handler: Arc<dyn InlineSyscall>) {
        self.inline = Some(handler);
    }
}

/// Why [`enter_user`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UserExit {
    /// The `syscall` instruction: `rax`, `rdi`, ... hold its arguments and
    /// `rip` the next instruction.
    Syscall,
    /// An interrupt (already acknowledged and handled); the thread should
    /// let other tasks run before it continues.
    Interrupt(u8),
    /// An exception: the thread did something wrong. `error_code` and `cr2`
    /// are also in the context.
    Exception {
        vector: u8,
        error_code: u64,
        cr2: u64,
    },
    /// The context was refused before entry (a non-canonical or kernel
    /// `rip` or `rsp`): treat like a general protection fault.
    BadContext,
}

const EXIT_SYSCALL: u64 = 0;
const EXIT_TRAP: u64 = 1;

/// Which save/restore instructions this machine has.
static FPU_MODE: AtomicU8 = AtomicU8::new(FPU_NONE);
const FPU_NONE: u8 = 0;
const FPU_FXSAVE: u8 = 1;
const FPU_XSAVE: u8 = 2;
/// The XCR0 mask used with `xsave`/`xrstor`.
static XSAVE_MASK: AtomicU64 = AtomicU64::new(0);

/// Sets this CPU up for user mode (every CPU, after its GDT/TSS): the
/// `syscall` MSRs, SSE/AVX enabled for user code, and SMEP/SMAP when the
/// CPU has them (the kernel never touches user memory by its user address:
/// it goes through the direct map, see `mm::paging::AddressSpace`).
pub fn init_this_cpu() {
    let cpuid1 = core::arch::x86_64::__cpuid(1);
    let cpuid7 = core::arch::x86_64::__cpuid_count(7, 0);
    let has_xsave = cpuid1.ecx & (1 << 26) != 0;
    let has_avx = cpuid1.ecx & (1 << 28) != 0;
    let has_smep = cpuid7.ebx & (1 << 7) != 0;
    let has_smap = cpuid7.ebx & (1 << 20) != 0;

    // SAFETY: enabling SSE for user code: the kernel is built without SSE,
    // so no kernel code depends on the old settings.
    unsafe {
        Cr0::update(|f| {
            f.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
            f.insert(Cr0Flags::MONITOR_COPROCESSOR);
        });
        Cr4::update(|f| {
            f.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
            if has_xsave {
                f.insert(Cr4Flags::OSXSAVE);
            }
            if has_smep {
                f.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
            }
            if has_smap {
                f.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
            }
        });
    }
    if has_xsave {
        let mut mask = XCr0Flags::X87 | XCr0Flags::SSE;
        if has_avx {
            mask |= XCr0Flags::AVX;
        }
        // SAFETY: only features CPUID reports are enabled, with X87 set, as
        // XCR0 requires; OSXSAVE was set just above.
        unsafe { XCr0::write(mask) };
        let needed = core::arch::x86_64::__cpuid_count(0xd, 0).ebx as usize;
        if needed <= FPU_AREA_BYTES {
            XSAVE_MASK.store(mask.bits(), Ordering::Relaxed);
            FPU_MODE.store(FPU_XSAVE, Ordering::Relaxed);
        } else {
            FPU_MODE.store(FPU_FXSAVE, Ordering::Relaxed);
        }
    } else {
        FPU_MODE.store(FPU_FXSAVE, Ordering::Relaxed);
    }

    // syscall: kernel CS/SS from STAR[47:32]; sysret would take user SS/CS
    // from STAR[63:48] (+8, +16), which the GDT layout matches.
    let kernel_cs = SegmentSelector(0x08);
    let kernel_ss = SegmentSelector(0x10);
    let user_cs = SegmentSelector(USER_CODE_SELECTOR);
    let user_ss = SegmentSelector(USER_DATA_SELECTOR);
    if let Err(e) = Star::write(user_cs, user_ss, kernel_cs, kernel_ss) {
        log::error!(target: "user", "CPU {}: STAR rejected the GDT layout: {e}", crate::cpu_index());
    }
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    // Interrupts off, direction forward, no single-step, no AC on entry.
    SFMask::write(
        RFlags::INTERRUPT_FLAG
            | RFlags::DIRECTION_FLAG
            | RFlags::TRAP_FLAG
            | RFlags::ALIGNMENT_CHECK
            | RFlags::NESTED_TASK
            | RFlags::IOPL_HIGH
            | RFlags::IOPL_LOW,
    );
    // SAFETY: SCE only enables the `syscall` instruction, whose entry point
    // was just installed.
    unsafe { Efer::update(|f| f.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}

/// Whether the FPU state is saved with `xsave` (else `fxsave`).
pub fn uses_xsave() -> bool {
    FPU_MODE.load(Ordering::Relaxed) == FPU_XSAVE
}

/// Whether SMEP and SMAP are on (for the boot log and the tests).
pub fn protections() -> (bool, bool) {
    let cr4 = Cr4::read();
    (
        cr4.contains(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION),
        cr4.contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION),
    )
}

/// Flags user code may set; the rest are forced (IF on, IOPL 0, ...).
const USER_RFLAGS: u64 = 0x0cd5; // CF PF AF ZF SF DF OF

/// Runs `context` in ring 3 until it makes a system call or is interrupted
/// or faults; returns why, with the registers saved in `context`.
///
/// The caller must have loaded the address space the context belongs to
/// (`AddressSpace::activate`). The thread runs with interrupts enabled;
/// a timer interrupt is how the kernel takes the CPU back (time slice).
///
/// Returns with interrupts enabled, whatever they were at the call. So a
/// caller arms the time slice with interrupts disabled and calls this: a
/// timer that expires before ring 3 is reached then stays pending and
/// interrupts the thread at once, instead of firing in the kernel and
/// leaving the thread to run with no timer.
pub fn enter_user(context: &mut UserContext) -> UserExit {
    if context.rip >= USER_TOP || context.rsp >= USER_TOP {
        // iretq to a non-canonical address would fault in ring 0 with the
        // user's GS: refuse before entering.
        x86_64::instructions::interrupts::enable();
        return UserExit::BadContext;
    }
    context.rflags = (context.rflags & USER_RFLAGS) | RFlags::INTERRUPT_FLAG.bits() | 0x2;
    switch_fpu_to(&context.fpu);
    // SAFETY: the context is a valid user context (rip/rsp checked above,
    // rflags sanitised, selectors fixed), the per-CPU block is installed,
    // and `user_entry` returns here on this stack with every callee-saved
    // register restored.
    let kind = unsafe { user_entry(context) };
    match kind {
        EXIT_SYSCALL => UserExit::Syscall,
        _ => {
            let vector = context.exit_vector as u8;
            if vector >= 32 {
                UserExit::Interrupt(vector)
            } else {
                UserExit::Exception {
                    vector,
                    error_code: context.exit_error_code,
                    cr2: context.exit_cr2,
                }
            }
        }
    }
}

/// The FPU area whose state each CPU's registers hold.
static FPU_LIVE: crate::percpu::CpuLocal<core::cell::RefCell<Option<Arc<spin::Mutex<FpuArea>>>>> =
    crate::percpu::CpuLocal::new();

/// Makes `area`'s state the one in this CPU's registers, saving the state
/// of the context that had them.
fn switch_fpu_to(area: &Arc<spin::Mutex<FpuArea>>) {
    FPU_LIVE.with_or_init(
        || core::cell::RefCell::new(None),
        |slot| {
            let mut live = slot.borrow_mut();
            if live.as_ref().is_some_and(|l| Arc::ptr_eq(l, area)) {
                return; // still in the registers
            }
            let mode = FPU_MODE.load(Ordering::Relaxed);
            let mask = XSAVE_MASK.load(Ordering::Relaxed);
            if let Some(previous) = live.take() {
                save_fpu(&mut previous.lock(), mode, mask);
            }
            restore_fpu(&area.lock(), mode, mask);
            *live = Some(area.clone());
        },
    );
}

fn restore_fpu(area: &FpuArea, mode: u8, mask: u64) {
    let ptr = area.0.as_ptr();
    match mode {
        // SAFETY: the area is 64-byte aligned, FPU_AREA_BYTES long (enough
        // for the enabled features, checked in init), and holds either the
        // initial image or what `save_fpu` stored.
        FPU_XSAVE => unsafe {
            core::arch::asm!("xrstor64 [{}]", in(reg) ptr, in("eax") mask as u32, in("edx") (mask >> 32) as u32, options(nostack, readonly))
        },
        // SAFETY: as above, in the fxsave format (512 bytes, 16-aligned).
        FPU_FXSAVE => unsafe {
            core::arch::asm!("fxrstor64 [{}]", in(reg) ptr, options(nostack, readonly))
        },
        _ => {}
    }
}

fn save_fpu(area: &mut FpuArea, mode: u8, mask: u64) {
    let ptr = area.0.as_mut_ptr();
    match mode {
        // SAFETY: as in `restore_fpu`; the area is exclusively borrowed.
        FPU_XSAVE => unsafe {
            core::arch::asm!("xsave64 [{}]", in(reg) ptr, in("eax") mask as u32, in("edx") (mask >> 32) as u32, options(nostack))
        },
        // SAFETY: as above.
        FPU_FXSAVE => unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) ptr, options(nostack)) },
        _ => {}
    }
}

/// Enters ring 3 with the registers of the context in `rdi`; "returns"
/// EXIT_SYSCALL or EXIT_TRAP when the thread comes back (see module doc).
///
/// # Safety
/// `rdi` must point at a valid `UserContext` with a canonical user `rip`
/// and `rsp`, and this CPU's GS base must be its per-CPU block.
#[unsafe(naked)]
unsafe extern "C" fn user_entry(context: *mut UserContext) -> u64 {
    naked_asm!(
        "push rbx", "push rbp", "push r12", "push r13", "push r14", "push r15",
        "cli",
        "mov gs:[16], rsp",
        "mov gs:[24], rdi",
        "jmp {user_return}",
        user_return = sym user_return,
    )
}

/// Loads the user registers from the context in `rdi` and returns to ring
/// 3; jumped to (never called) with interrupts off and the kernel's GS, by
/// `user_entry` and by `syscall_entry` after an inline completion.
///
/// `sysretq` when it restores exactly what `iretq` would: it takes rip from
/// rcx and rflags from r11, so it may be used when the context holds the
/// same values there (as a return from `syscall` does, the instruction
/// having put them there). rip is canonical (checked by `enter_user` and
/// `syscall_inline`), and between loading the user rsp and `sysretq`
/// interrupts are off and NMI and machine checks have their own stacks
/// (IST).
#[unsafe(naked)]
unsafe extern "C" fn user_return(context: *mut UserContext) -> ! {
    naked_asm!(
        // The registers both ways load alike.
        "mov rbx, [rdi + 8]",
        "mov rdx, [rdi + 24]",
        "mov rsi, [rdi + 32]",
        "mov rbp, [rdi + 48]",
        "mov r8, [rdi + 56]",
        "mov r9, [rdi + 64]",
        "mov r10, [rdi + 72]",
        "mov r12, [rdi + 88]",
        "mov r13, [rdi + 96]",
        "mov r14, [rdi + 104]",
        "mov r15, [rdi + 112]",
        "mov rax, [rdi + 16]",
        "cmp rax, [rdi + {rip}]",
        "jne 2f",
        "mov rax, [rdi + 80]",
        "cmp rax, [rdi + {rflags}]",
        "jne 2f",
        "mov rax, [rdi + 0]",
        "mov rcx, [rdi + 16]",
        "mov r11, [rdi + 80]",
        "mov rsp, [rdi + {rsp}]",
        "mov rdi, [rdi + 40]",
        "swapgs",
        "sysretq",
        "2:",
        // The iretq frame: ss, rsp, rflags, cs, rip.
        "push {user_ss}",
        "push qword ptr [rdi + {rsp}]",
        "push qword ptr [rdi + {rflags}]",
        "push {user_cs}",
        "push qword ptr [rdi + {rip}]",
        "mov rax, [rdi + 0]",
        "mov rcx, [rdi + 16]",
        "mov r11, [rdi + 80]",
        "mov rdi, [rdi + 40]",
        "swapgs",
        "iretq",
        user_ss = const USER_DATA_SELECTOR,
        user_cs = const USER_CODE_SELECTOR,
        rsp = const OFF_RSP,
        rflags = const OFF_RFLAGS,
        rip = const OFF_RIP,
    )
}

/// The `syscall` instruction's target (LSTAR). Interrupts are off (SFMASK).
///
/// Saves the user registers into the context, then offers the call to the
/// context's [`InlineSyscall`] on the kernel stack; if it completes the
/// call the thread returns to ring 3 at once, otherwise `enter_user`
/// returns [`UserExit::Syscall`].
#[unsafe(naked)]
unsafe extern "C" fn syscall_entry() {
    naked_asm!(
        "swapgs",
        "mov gs:[32], rsp",
        "mov rsp, gs:[24]",
        "mov [rsp + 0], rax",
        "mov [rsp + 8], rbx",
        "mov [rsp + 16], rcx",
        "mov [rsp + 24], rdx",
        "mov [rsp + 32], rsi",
        "mov [rsp + 40], rdi",
        "mov [rsp + 48], rbp",
        "mov [rsp + 56], r8",
        "mov [rsp + 64], r9",
        "mov [rsp + 72], r10",
        "mov [rsp + 80], r11",
        "mov [rsp + 88], r12",
        "mov [rsp + 96], r13",
        "mov [rsp + 104], r14",
        "mov [rsp + 112], r15",
        "mov [rsp + {rip}], rcx",
        "mov [rsp + {rflags}], r11",
        "mov rax, gs:[32]",
        "mov [rsp + {rsp_off}], rax",
        "mov rsp, gs:[16]",
        // The kernel stack below user_entry's frame; 16-byte aligned for the call.
        "sub rsp, 8",
        "mov rdi, gs:[24]",
        "call {inline}",
        "add rsp, 8",
        "test eax, eax",
        "jz 2f",
        "mov rdi, gs:[24]",
        "jmp {user_return}",
        "2:",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop rbp", "pop rbx",
        "mov eax, {kind}",
        "sti",
        "ret",
        rip = const OFF_RIP,
        rflags = const OFF_RFLAGS,
        rsp_off = const OFF_RSP,
        kind = const EXIT_SYSCALL,
        inline = sym syscall_inline,
        user_return = sym user_return,
    )
}

/// Offers the system call just saved in `context` to its [`InlineSyscall`]:
/// 1 if it completed (result in `rax`), 0 to hand it to the task.
///
/// # Safety
/// `context` is the context `user_entry` entered on this CPU (the per-CPU
/// block's), which `enter_user`'s caller borrows mutably until the thread
/// comes back; nothing else touches it meanwhile.
unsafe extern "C" fn syscall_inline(context: *mut UserContext) -> u64 {
    // SAFETY: see the function's contract.
    let c = unsafe { &mut *context };
    // A `syscall` at the very top of the user half leaves a non-canonical
    // rip, which `sysretq` would fault on in ring 0: the task's path refuses
    // it (BadContext).
    if c.rip >= USER_TOP {
        return 0;
    }
    let Some(handler) = c.inline.as_deref() else {
        return 0;
    };
    match handler.try_complete(c.rax, c.syscall_args()) {
        Some(result) => {
            c.rax = result;
            1
        }
        None => 0,
    }
}

/// Abandons the trap stack and returns from `user_entry` with `kind`.
#[unsafe(naked)]
unsafe extern "C" fn resume_kernel(kind: u64) -> ! {
    naked_asm!(
        "mov rsp, gs:[16]",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "mov rax, rdi",
        "sti",
        "ret",
    )
}

/// Whether a trap frame was taken in ring 3.
pub fn from_user(frame: &TrapFrame) -> bool {
    frame.cs & 3 == u64::from(PrivilegeLevel::Ring3 as u8)
}

/// Called by trap dispatch for a trap taken in ring 3 (after `swapgs`):
/// saves the user state into the running context and returns from
/// `enter_user`. `handle_interrupt` runs first for interrupt vectors.
pub(super) fn exit_from_trap(frame: &TrapFrame, handle_interrupt: fn(u8)) -> ! {
    let context = current_context();
    // SAFETY: `user_context` was set by `user_entry` on this CPU to the
    // context it entered, which its caller (`enter_user`) borrows mutably
    // for the whole time the thread runs; no one else touches it meanwhile.
    let c = unsafe { &mut *context };
    c.rax = frame.rax;
    c.rbx = frame.rbx;
    c.rcx = frame.rcx;
    c.rdx = frame.rdx;
    c.rsi = frame.rsi;
    c.rdi = frame.rdi;
    c.rbp = frame.rbp;
    c.r8 = frame.r8;
    c.r9 = frame.r9;
    c.r10 = frame.r10;
    c.r11 = frame.r11;
    c.r12 = frame.r12;
    c.r13 = frame.r13;
    c.r14 = frame.r14;
    c.r15 = frame.r15;
    c.rip = frame.rip;
    c.rsp = frame.rsp;
    c.rflags = frame.rflags;
    c.exit_vector = frame.vector;
    c.exit_error_code = frame.error_code;
    c.exit_cr2 = if frame.vector == 14 {
        super::cpu::cr2()
    } else {
        0
    };
    if frame.vector >= 32 {
        handle_interrupt(frame.vector as u8);
    }
    // SAFETY: `user_entry` recorded this CPU's kernel stack pointer, under
    // which its callee-saved registers and return address still lie; the
    // trap stack we are on is abandoned (it is reset on the next entry).
    unsafe { resume_kernel(EXIT_TRAP) }
}

fn current_context() -> *mut UserContext {
    let context: u64;
    // SAFETY: reads this CPU's per-CPU block (GS is the kernel's here).
    unsafe {
        core::arch::asm!("mov {}, gs:[24]", out(reg) context, options(nostack, readonly, preserves_flags))
    };
    context as *mut UserContext
}
