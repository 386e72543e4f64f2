//! User mode as a function call (`hal::arch::user::enter_user`) and user
//! address spaces (`hal::mm::space`), with hand-assembled ring 3 code.

use alloc::sync::Arc;

use hal::arch::user::{UserContext, UserExit, enter_user};
use hal::mm::space::{AddressSpace, UserProt, live_spaces};

const CODE: u64 = 0x40_0000;
const STACK_TOP: u64 = 0x7fff_0000;

/// A space with `code` at CODE (read+execute) and one stack page below STACK_TOP.
fn space_with(code: &[u8]) -> Arc<AddressSpace> {
    let space = AddressSpace::new().expect("a new address space");
    space
        .map_copy(CODE, UserProt::READ_EXECUTE, 0, code)
        .expect("map code");
    space
        .map_zeroed(STACK_TOP - 4096, UserProt::READ_WRITE)
        .expect("map stack");
    Arc::new(space)
}

fn run(space: &Arc<AddressSpace>, context: &mut UserContext) -> UserExit {
    space.activate();
    enter_user(context)
}

pub fn syscall_and_invalid_opcode_come_back_from_ring_3() {
    let frames = hal::mm::frame_stats().free;
    let spaces = live_spaces();
    {
        #[rustfmt::skip]
        let code = [
            0x48, 0xc7, 0xc0, 0x34, 0x12, 0x00, 0x00, // mov rax, 0x1234
            0x48, 0xc7, 0xc7, 0x78, 0x56, 0x00, 0x00, // mov rdi, 0x5678
            0x49, 0x89, 0xe4,                         // mov r12, rsp
            0x0f, 0x05,                               // syscall
            0x48, 0x89, 0xc3,                         // mov rbx, rax
            0x0f, 0x0b,                               // ud2
        ];
        let space = space_with(&code);
        let mut context = UserContext::new(CODE, STACK_TOP);
        context.r15 = 0xdead_beef; // callee-visible registers survive the trip
        assert_eq!(run(&space, &mut context), UserExit::Syscall);
        assert_eq!((context.rax, context.rdi), (0x1234, 0x5678));
        assert_eq!(context.rip, CODE + 19, "rip is after the syscall");
        assert_eq!(context.r12, STACK_TOP, "user rsp as the thread saw it");
        assert_eq!(context.r15, 0xdead_beef);
        context.rax = 77; // the system call's result
        match run(&space, &mut context) {
            UserExit::Exception { vector: 6, .. } => {}
            other => panic!("expected #UD, got {other:?}"),
        }
        assert_eq!(context.rbx, 77, "the result reached the thread");
        assert_eq!(context.rip, CODE + 22, "rip of the ud2");
        hal::mm::space::deactivate();
    }
    assert_eq!(live_spaces(), spaces, "the space was freed");
    assert_eq!(hal::mm::frame_stats().free, frames, "no frame leaked");
}

pub fn user_access_to_kernel_memory_is_a_user_page_fault() {
    #[rustfmt::skip]
    let code = [
        0x48, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0xff, 0xff, // mov rax, 0xffff800000000000
        0x48, 0x8b, 0x00,                                           // mov rax, [rax]
    ];
    let space = space_with(&code);
    let mut context = UserContext::new(CODE, STACK_TOP);
    match run(&space, &mut context) {
        UserExit::Exception {
            vector: 14,
            error_code,
            cr2,
        } => {
            assert_eq!(cr2, 0xffff_8000_0000_0000);
            assert!(error_code & 4 != 0, "the fault is marked as from user mode");
        }
        other => panic!("expected a page fault, got {other:?}"),
    }
    // A jump into kernel text faults too (user bit clear).
    let mut context = UserContext::new(CODE, STACK_TOP);
    context.rip = 0x30_0000; // unmapped user address
    match run(&space, &mut context) {
        UserExit::Exception {
            vector: 14,
            cr2: 0x30_0000,
            ..
        } => {}
        other => panic!("expected an instruction-fetch fault, got {other:?}"),
    }
    let mut context = UserContext::new(0xffff_ffff_8000_0000, STACK_TOP);
    assert_eq!(run(&space, &mut context), UserExit::BadContext);
    hal::mm::space::deactivate();
}

pub fn a_spinning_user_thread_is_preempted_by_the_timer() {
    let code = [0xeb, 0xfe]; // jmp $
    let space = space_with(&code);
    let mut context = UserContext::new(CODE, STACK_TOP);
    // Interrupts off from arming to ring 3 (`enter_user` turns them on): on
    // a loaded host the 2 ms can pass before the thread starts, and the
    // timer must then interrupt the thread, not fire in the kernel.
    x86_64::instructions::interrupts::disable();
    hal::arch::time::arm_oneshot_ns(0xf8, 2_000_000);
    match run(&space, &mut context) {
        UserExit::Interrupt(0xf8) => {}
        other => panic!("expected the timer interrupt, got {other:?}"),
    }
    assert_eq!(context.rip, CODE, "interrupted at the loop");
    hal::mm::space::deactivate();
}

pub fn sse_state_belongs_to_the_user_context() {
    #[rustfmt::skip]
    let code = [
        0x66, 0x48, 0x0f, 0x6e, 0xc7, // movq xmm0, rdi
        0x0f, 0x05,                   // syscall
        0x66, 0x48, 0x0f, 0x7e, 0xc0, // movq rax, xmm0
        0x0f, 0x05,                   // syscall
    ];
    let space = space_with(&code);
    let mut a = UserContext::new(CODE, STACK_TOP);
    let mut b = UserContext::new(CODE, STACK_TOP);
    a.rdi = 0x1111;
    b.rdi = 0x2222;
    assert_eq!(run(&space, &mut a), UserExit::Syscall);
    assert_eq!(run(&space, &mut b), UserExit::Syscall);
    assert_eq!(run(&space, &mut a), UserExit::Syscall);
    assert_eq!(run(&space, &mut b), UserExit::Syscall);
    assert_eq!(
        (a.rax, b.rax),
        (0x1111, 0x2222),
        "each context kept its xmm0"
    );
    log::info!(
        target: "ktest",
        "FPU state saved with {}; SMEP, SMAP on: {:?}",
        if hal::arch::user::uses_xsave() { "xsave" } else { "fxsave" },
        hal::arch::user::protections()
    );
    hal::mm::space::deactivate();
}

pub fn copies_check_every_page_of_user_memory() {
    let space = AddressSpace::new().expect("space");
    let base = 0x1000_0000;
    space.map_zeroed(base, UserProt::READ_WRITE).unwrap();
    space.map_zeroed(base + 4096, UserProt::READ).unwrap();
    // Across the page boundary into a read-only page: the write fails there.
    let data = [7u8; 100];
    assert!(space.copy_to_user(base + 4000, &data[..96]).is_ok());
    let fault = space.copy_to_user(base + 4050, &data).unwrap_err();
    assert_eq!(fault.addr, base + 4096);
    let mut back = [0u8; 96];
    space.copy_from_user(&mut back, base + 4000).unwrap();
    assert_eq!(back, [7u8; 96]);
    // Reads cross into the read-only page fine, not into the hole after it.
    assert!(space.copy_from_user(&mut [0u8; 200], base + 4000).is_ok());
    assert!(space.copy_from_user(&mut [0u8; 8], base + 8190).is_err());
    // Kernel addresses, overflow and null are faults.
    assert!(
        space
            .copy_from_user(&mut [0u8; 8], 0xffff_8000_0000_0000)
            .is_err()
    );
    assert!(space.copy_from_user(&mut [0u8; 8], u64::MAX - 3).is_err());
    assert!(space.copy_to_user(0, &[1]).is_err());
    // PROT_NONE hides the page, unmap removes it.
    space.protect(base, UserProt::NONE).unwrap();
    assert!(space.copy_from_user(&mut [0u8; 1], base).is_err());
    space.protect(base, UserProt::READ).unwrap();
    assert!(space.copy_from_user(&mut [0u8; 1], base).is_ok());
    space.unmap(base).unwrap();
    assert!(space.unmap(base).is_err(), "double unmap is an error");
    assert!(space.copy_from_user(&mut [0u8; 1], base).is_err());
}

/// Zero-fill on demand (`reserve_zeroed`): nothing is mapped until a page is
/// touched, by a copy routine, a pin, `protect` or the process itself (a
/// not-present fault that `fault_in` answers); unmapped parts stay unmapped;
/// every frame comes back with the space.
pub fn reserved_pages_are_filled_on_first_touch() {
    let frames = hal::mm::frame_stats().free;
    let base = 0x1000_0000;
    let page = 4096;
    {
        let space = space_with(&[
            0x48, 0xc7, 0x04, 0x25, 0x08, 0x20, 0x00, 0x10, 0x2a, 0x00, 0x00,
            0x00, // mov qword [0x1000_2008], 42
            0x0f, 0x05, // syscall
        ]);
        let after_setup = hal::mm::frame_stats().free;
        space
            .reserve_zeroed(base, 5 * page, UserProt::READ_WRITE)
            .unwrap();
        assert!((0..5).all(|i| !space.is_mapped(base + i * page)));
        assert_eq!(
            hal::mm::frame_stats().free,
            after_setup,
            "nothing taken yet"
        );
        // A copy fills the pages it crosses, and only those.
        space.copy_to_user(base + page + 10, &[7u8; 20]).unwrap();
        assert!(space.is_mapped(base + page) && !space.is_mapped(base));
        let mut back = [1u8; 40];
        space.copy_from_user(&mut back, base + page).unwrap();
        assert_eq!(&back[..10], &[0; 10], "a filled page is zeroed");
        assert_eq!(&back[10..30], &[7; 20]);
        // The process touches page 2: a not-present fault, answered by fault_in.
        let mut context = UserContext::new(CODE, STACK_TOP);
        let UserExit::Exception {
            vector: 14,
            error_code,
            cr2,
        } = run(&space, &mut context)
        else {
            panic!("expected a page fault");
        };
        assert_eq!(cr2, base + 2 * page + 8);
        assert_eq!(error_code & 1, 0, "not present");
        assert!(space.fault_in(cr2, error_code & 2 != 0));
        assert_eq!(
            run(&space, &mut context),
            UserExit::Syscall,
            "the store retried"
        );
        let mut word = [0u8; 8];
        space
            .copy_from_user(&mut word, base + 2 * page + 8)
            .unwrap();
        assert_eq!(u64::from_le_bytes(word), 42);
        hal::mm::space::deactivate();
        // Outside the range, and outside user memory: nothing.
        assert!(!space.fault_in(base + 5 * page, false));
        assert!(!space.fault_in(0xffff_8000_0000_0000, false));
        assert!(!space.fault_in(0, true));
        // Unmapped parts stay unmapped, filled or not; the rest stays reserved.
        space.unmap_range(base, 2 * page).unwrap();
        assert!(!space.fault_in(base, true) && !space.fault_in(base + page, false));
        assert!(space.copy_from_user(&mut [0u8; 1], base + page).is_err());
        // protect fills a reserved page and keeps the new protection.
        space
            .protect_range(base + 3 * page, page, UserProt::READ)
            .unwrap();
        assert!(space.copy_to_user(base + 3 * page, &[1]).is_err());
        assert!(!space.fault_in(base + 3 * page, true), "read-only now");
        assert!(space.fault_in(base + 3 * page, false));
        // A pin fills too (page 4, untouched so far).
        let pin = space.pin(base + 4 * page, 16, true).unwrap();
        assert_eq!(pin.segments().len(), 1);
        drop(pin);
        // A reservation over mapped pages leaves them as they are.
        space
            .reserve_zeroed(base + 2 * page, 3 * page, UserProt::READ_WRITE)
            .unwrap();
        space
            .copy_from_user(&mut word, base + 2 * page + 8)
            .unwrap();
        assert_eq!(u64::from_le_bytes(word), 42);
        assert!(
            space
                .reserve_zeroed(base + 1, page, UserProt::READ)
                .is_err()
        );
    }
    assert_eq!(hal::mm::frame_stats().free, frames, "no frame leaked");
}

/// Pinning for zero-copy O_DIRECT: a pin returns the frames' physical
/// segments, checks every page (present, user, writable when the device
/// writes), and while it lives the pages cannot be unmapped or reprotected
/// (`Busy`, nothing changed) and the space outlives its last other owner.
pub fn pinned_user_pages_cannot_be_unmapped_or_freed() {
    use hal::mm::MemError;
    let base = 0x1000_0000;
    let live = live_spaces();
    let space = Arc::new(AddressSpace::new().expect("space"));
    for i in 0..3 {
        space
            .map_zeroed(base + i * 4096, UserProt::READ_WRITE)
            .unwrap();
    }
    space.map_zeroed(base + 3 * 4096, UserProt::READ).unwrap();
    // Bad ranges pin nothing.
    assert!(
        space.pin(base + 4000, 12288 + 200, true).is_err(),
        "read-only page"
    );
    assert!(
        space.pin(base + 4 * 4096 - 8, 16, false).is_err(),
        "runs into a hole"
    );
    assert!(space.pin(0xffff_8000_0000_0000, 8, false).is_err());
    space.unmap(base + 2 * 4096).unwrap();
    space
        .map_zeroed(base + 2 * 4096, UserProt::READ_WRITE)
        .unwrap();
    // A good one: the segments cover the range.
    let pin = space.pin(base + 100, 8192, true).unwrap();
    let total: u64 = pin.segments().iter().map(|&(_, len)| len as u64).sum();
    assert_eq!(total, 8192);
    let (phys, _) = pin.segments()[0];
    assert_eq!(
        phys % 4096,
        100,
        "the first segment starts where the range does"
    );
    assert!(pin.segments().len() <= 3);
    // Pinned: no unmap, no reprotect, not even as part of a larger range.
    assert_eq!(space.unmap(base + 4096), Err(MemError::Busy(base + 4096)));
    assert!(matches!(
        space.unmap_range(base, 4 * 4096),
        Err(MemError::Busy(_))
    ));
    assert!(matches!(
        space.protect(base, UserProt::READ),
        Err(MemError::Busy(_))
    ));
    assert!(matches!(
        space.protect_range(base, 4 * 4096, UserProt::NONE),
        Err(MemError::Busy(_))
    ));
    assert!(space.is_mapped(base) && space.is_mapped(base + 4096));
    // Pages outside the pin are free to go.
    space.unmap(base + 3 * 4096).unwrap();
    // The pin keeps the space alive after its owner let go (process exit).
    let weak = Arc::downgrade(&space);
    drop(space);
    assert_eq!(live_spaces(), live + 1, "the pinned space is still alive");
    let space = weak.upgrade().expect("alive");
    drop(pin);
    space.unmap_range(base, 4 * 4096).unwrap();
    assert!(!space.is_mapped(base + 4096));
    drop(space);
    assert_eq!(live_spaces(), live);
}

/// `RESULT` line: a bare ring 3 -> ring 0 -> ring 3 round trip (`syscall`,
/// then `enter_user` again), the floor under every trap-door system call.
pub fn bench_user_trap_round_trip() {
    let code = [0x0f, 0x05, 0xeb, 0xfc]; // syscall; jmp back to it
    let space = space_with(&code);
    let mut context = UserContext::new(CODE, STACK_TOP);
    const SAMPLES: usize = 7;
    const ROUNDS: u64 = 20_000;
    let mut ns = [0u64; SAMPLES];
    let mut cycles = [0u64; SAMPLES];
    for sample in 0..SAMPLES {
        let (t0, c0) = (hal::arch::time::now_ns(), hal::arch::cpu::rdtsc());
        for _ in 0..ROUNDS {
            let exit = run(&space, &mut context);
            debug_assert_eq!(exit, UserExit::Syscall);
        }
        let (t1, c1) = (hal::arch::time::now_ns(), hal::arch::cpu::rdtsc());
        ns[sample] = (t1 - t0) / ROUNDS;
        cycles[sample] = (c1 - c0) / ROUNDS;
    }
    hal::mm::space::deactivate();
    ns.sort_unstable();
    cycles.sort_unstable();
    log::info!(
        target: "bench",
        "RESULT user_trap_round_trip ns_per_op={} min={} max={} samples={SAMPLES} iters={ROUNDS} cycles_per_op={}",
        ns[SAMPLES / 2],
        ns[0],
        ns[SAMPLES - 1],
        cycles[SAMPLES / 2]
    );
}
