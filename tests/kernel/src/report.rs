//! Reporting: panics, symbols and backtraces, and the runner's self-tests.

pub fn expected_panic_is_caught() {
    panic!("this panic is expected by the test");
}

pub fn symbols_resolve_kernel_functions() {
    let table = hal::backtrace::symbols().expect("xtask embeds the symbol table");
    assert!(table.len() > 100, "only {} symbols", table.len());
    let here = symbols_resolve_kernel_functions as fn() as usize as u64;
    let (name, offset) = table.lookup(here + 1).expect("this function has a symbol");
    assert!(
        name.ends_with("report::symbols_resolve_kernel_functions"),
        "resolved to {name}"
    );
    assert_eq!(offset, 1);
}

#[inline(never)]
fn nested_level_2(out: &mut [u64]) -> usize {
    let n = hal::backtrace::walk(hal::arch::cpu::frame_pointer(), out);
    core::hint::black_box(n)
}

#[inline(never)]
fn nested_level_1(out: &mut [u64]) -> usize {
    core::hint::black_box(nested_level_2(out))
}

pub fn backtrace_walks_nested_frames() {
    let mut frames = [0u64; 16];
    let n = nested_level_1(&mut frames);
    let table = hal::backtrace::symbols().expect("xtask embeds the symbol table");
    let names: alloc::vec::Vec<&str> = frames[..n]
        .iter()
        .filter_map(|&ret| table.lookup(ret - 1).map(|(name, _)| name))
        .collect();
    let position = |needle: &str| names.iter().position(|n| n.ends_with(needle));
    let l1 = position("report::nested_level_1")
        .unwrap_or_else(|| panic!("nested_level_1 not in {names:?}"));
    let top = position("report::backtrace_walks_nested_frames")
        .unwrap_or_else(|| panic!("the test function not in {names:?}"));
    assert!(l1 < top, "frames out of order: {names:?}");
}

pub fn selftest_unexpected_panic() {
    panic!("selftest: a panic no test expects");
}

pub fn selftest_hang() {
    loop {
        core::hint::spin_loop();
    }
}

static IPI_SEEN: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

fn count_ipi(_vector: u8) {
    IPI_SEEN.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
}

/// Waits (bounded) with interrupts on until `done()` holds.
fn wait_with_interrupts(done: impl Fn() -> bool) -> bool {
    x86_64::instructions::interrupts::enable();
    let mut spins = 0u64;
    while !done() && spins < 100_000_000 {
        spins += 1;
        core::hint::spin_loop();
    }
    x86_64::instructions::interrupts::disable();
    done()
}

pub fn self_ipi_reaches_its_handler() {
    use hal::arch::apic;
    hal::arch::trap::set_interrupt_handler(0xf1, count_ipi).expect("vector 0xf1 is free");
    apic::send_ipi(apic::id(), 0xf1);
    assert!(
        wait_with_interrupts(|| IPI_SEEN.load(core::sync::atomic::Ordering::SeqCst) == 1),
        "IPI never arrived"
    );
    apic::send_ipi(apic::id(), 0xf1);
    assert!(
        wait_with_interrupts(|| IPI_SEEN.load(core::sync::atomic::Ordering::SeqCst) == 2),
        "second IPI lost"
    );
}

pub fn unexpected_vector_is_logged_and_survived() {
    use hal::arch::{apic, trap};
    let before = trap::unexpected_interrupts();
    apic::send_ipi(apic::id(), 0xf2); // nobody handles 0xf2
    assert!(
        wait_with_interrupts(|| trap::unexpected_interrupts() == before + 1),
        "not counted"
    );
}

pub fn every_listed_cpu_comes_online() {
    let acpi = hal::boot::acpi().expect("ACPI tables");
    assert_eq!(
        hal::arch::smp::online_cpus(),
        acpi.cpus.len(),
        "not every enabled CPU started"
    );
}

static REMOTE_SEEN: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);
static REMOTE_CPU: core::sync::atomic::AtomicUsize =
    core::sync::atomic::AtomicUsize::new(usize::MAX);

fn note_remote(_vector: u8) {
    REMOTE_CPU.store(hal::cpu_index(), core::sync::atomic::Ordering::SeqCst);
    REMOTE_SEEN.fetch_add(1, core::sync::atomic::Ordering::SeqCst);
}

pub fn remote_ipi_wakes_a_halted_cpu() {
    use core::sync::atomic::Ordering::SeqCst;
    let acpi = hal::boot::acpi().expect("ACPI tables");
    let me = hal::arch::apic::id();
    let Some(target) = acpi.cpus.iter().find(|c| c.apic_id != me) else {
        // One CPU: nothing remote to wake; the single-CPU path is covered
        // by self_ipi_reaches_its_handler.
        assert_eq!(acpi.cpus.len(), 1);
        return;
    };
    hal::arch::trap::set_interrupt_handler(0xf3, note_remote).expect("vector 0xf3 is free");
    for round in 1..=100 {
        hal::arch::apic::send_ipi(target.apic_id, 0xf3);
        let mut spins = 0u64;
        while REMOTE_SEEN.load(SeqCst) < round && spins < 100_000_000 {
            spins += 1;
            core::hint::spin_loop();
        }
        assert_eq!(
            REMOTE_SEEN.load(SeqCst),
            round,
            "IPI {round} to APIC id {} lost",
            target.apic_id
        );
    }
    assert_ne!(
        REMOTE_CPU.load(SeqCst),
        0,
        "the handler ran on the boot CPU, not the target"
    );
}

pub fn monotonic_clock_never_goes_back() {
    use hal::arch::time;
    assert!(time::tsc_hz() > 0, "the clock was not calibrated");
    let mut last = time::now_ns();
    for _ in 0..10_000 {
        let now = time::now_ns();
        assert!(now >= last, "clock went back: {last} -> {now}");
        last = now;
    }
    // The fixed-point conversion agrees with exact division: within 1 ns plus a
    // part in 10^9 (0.1 ms after a day), from a tick to a year of ticks.
    let hz = u128::from(time::tsc_hz());
    for seconds in [0u128, 1, 60, 3_600, 86_400, 365 * 86_400] {
        for extra in [0u128, 1, 999, 123_456_789] {
            let ticks = seconds * hz + extra;
            let exact = ticks * 1_000_000_000 / hz;
            let got = u128::from(time::tsc_ticks_to_ns(ticks as u64));
            let tolerance = 1 + exact / 1_000_000_000;
            assert!(
                got.abs_diff(exact) <= tolerance,
                "{ticks} ticks at {hz} Hz: {got} ns, exactly {exact} ns"
            );
        }
    }
}

static TIMER_FIRED_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

fn timer_fired(_vector: u8) {
    TIMER_FIRED_NS.store(
        hal::arch::time::now_ns(),
        core::sync::atomic::Ordering::SeqCst,
    );
}

pub fn apic_timer_fires_no_earlier_than_its_deadline() {
    use core::sync::atomic::Ordering::SeqCst;
    use hal::arch::time;
    hal::arch::trap::set_interrupt_handler(0xf4, timer_fired).expect("vector 0xf4 is free");
    for delay_ns in [200_000u64, 2_000_000, 5_000_000] {
        TIMER_FIRED_NS.store(0, SeqCst);
        let start = time::now_ns();
        time::arm_oneshot_ns(0xf4, delay_ns);
        assert!(
            wait_with_interrupts(|| TIMER_FIRED_NS.load(SeqCst) != 0),
            "timer for {delay_ns} ns never fired"
        );
        let waited = TIMER_FIRED_NS.load(SeqCst) - start;
        assert!(
            waited >= delay_ns,
            "fired after {waited} ns, before its {delay_ns} ns deadline"
        );
    }
}
