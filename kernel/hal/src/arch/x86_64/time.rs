//! Time: a monotonic clock from the TSC, calibrated at boot against the
//! best reference the machine has (the HPET when ACPI lists one, else the
//! ACPI PM timer, else the PIT), and the local APIC timer's rate (measured
//! over the same window) so deadlines in nanoseconds can be turned into
//! one-shot timer ticks. When the CPU has TSC-deadline mode (CPUID 1
//! ECX.24), the APIC timer is armed with an absolute TSC value instead.
//!
//! The PIT is read by latching channel 0 while it counts down in mode 2, so
//! neither its interrupt nor the speaker gate (port 0x61, absent on
//! microvm) is needed. 1.193182 MHz. The PM timer counts up at
//! 3.579545 MHz (24 or 32 bits); the HPET's main counter at the period its
//! capabilities register gives. 5 ms of the reference is measured.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

use super::{apic, cpu};

const PIT_HZ: u64 = 1_193_182;
/// 5 ms: boot stays lean; PIT quantisation is still ~0.02%.
const CALIBRATION_PIT_TICKS: u64 = 5_966;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
/// Nanoseconds per TSC tick in 32.32 fixed point (`now_ns` multiplies and shifts
/// instead of dividing: it is called on every pass of the executor loop).
static TSC_NS_MULT: AtomicU64 = AtomicU64::new(0);
static TSC_ZERO: AtomicU64 = AtomicU64::new(0);
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);
/// 1 when the APIC timer is used in TSC-deadline mode.
static TSC_DEADLINE: AtomicU64 = AtomicU64::new(0);

const PM_TIMER_HZ: u64 = 3_579_545;
const CALIBRATION_NS: u64 = 5_000_000;
const IA32_TSC_DEADLINE: u32 = 0x6e0;

/// What the TSC was calibrated against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockSource {
    Hpet,
    PmTimer,
    Pit,
}

/// The outcome of [`calibrate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Calibration {
    pub source: ClockSource,
    /// Frequency of the reference in Hz.
    pub reference_hz: u64,
    pub tsc_hz: u64,
    pub apic_timer_hz: u64,
    /// The APIC timer runs in TSC-deadline mode.
    pub tsc_deadline: bool,
}

fn pit_read() -> u16 {
    // SAFETY: PIT channel 0 and its command port belong to this module; a
    // latch command and two data reads have no memory effects.
    unsafe {
        Port::<u8>::new(0x43).write(0x00); // latch channel 0
        let low = Port::<u8>::new(0x40).read();
        let high = Port::<u8>::new(0x40).read();
        u16::from_le_bytes([low, high])
    }
}

fn pit_start() {
    // SAFETY: as above; mode 2 (rate generator), full 16-bit reload.
    unsafe {
        Port::<u8>::new(0x43).write(0x34);
        Port::<u8>::new(0x40).write(0xff);
        Port::<u8>::new(0x40).write(0xff);
    }
}

/// Why calibration failed.
#[derive(Clone, Copy, Debug)]
pub enum CalibrationError {
    /// The PIT counter never moved (no PIT on this machine).
    NoPit,
}

/// A free-running reference counter: reads, rate, wrap mask.
struct Reference {
    read: fn(u64) -> u64,
    arg: u64,
    hz: u64,
    mask: u64,
}

fn pm_timer_read(port: u64) -> u64 {
    // SAFETY: the ACPI PM timer port named by the FADT; reading it has no
    // side effects.
    u64::from(unsafe { Port::<u32>::new(port as u16).read() })
}

fn hpet_read(base: u64) -> u64 {
    // SAFETY: `base` maps the HPET's registers (`hpet_reference`); the main
    // counter is at 0xf0.
    unsafe { core::ptr::read_volatile((base + 0xf0) as *const u64) }
}

fn hpet_reference(phys: u64) -> Option<Reference> {
    // SAFETY: the HPET register block named by ACPI, device memory; only
    // this module maps it.
    let base = unsafe { crate::mm::map_mmio(phys, 0x400) }.ok()?;
    // SAFETY: `base` maps the HPET: capabilities at 0, configuration at 0x10.
    let (caps, config) = unsafe {
        (
            core::ptr::read_volatile(base as *const u64),
            core::ptr::read_volatile((base + 0x10) as *const u64),
        )
    };
    let period_fs = caps >> 32;
    if period_fs == 0 || period_fs > 100_000_000 {
        return None;
    }
    // SAFETY: as above; setting ENABLE_CNF starts the main counter.
    unsafe { core::ptr::write_volatile((base + 0x10) as *mut u64, config | 1) };
    let wide = caps & (1 << 13) != 0;
    Some(Reference {
        read: hpet_read,
        arg: base,
        hz: 1_000_000_000_000_000 / period_fs,
        mask: if wide { u64::MAX } else { u64::from(u32::MAX) },
    })
}

/// Measures the TSC and APIC timer against a counting-up `reference`.
fn measure(reference: &Reference) -> Option<(u64, u64)> {
    let ticks_needed = reference.hz * CALIBRATION_NS / 1_000_000_000;
    let read = || (reference.read)(reference.arg) & reference.mask;
    let first = read();
    let mut spins = 0u64;
    // Wait for a tick edge (bounded: a dead counter is no reference).
    let mut start = read();
    while start == first {
        spins += 1;
        if spins > 10_000_000 {
            return None;
        }
        start = read();
    }
    apic::timer_count_masked(u32::MAX);
    let apic_start = apic::timer_current();
    let tsc_start = cpu::rdtsc();
    let mut elapsed;
    loop {
        elapsed = read().wrapping_sub(start) & reference.mask;
        if elapsed >= ticks_needed {
            break;
        }
    }
    let tsc_end = cpu::rdtsc();
    let apic_end = apic::timer_current();
    apic::timer_count_masked(0);
    let tsc_hz =
        (u128::from(tsc_end - tsc_start) * u128::from(reference.hz) / u128::from(elapsed)) as u64;
    let apic_hz =
        (u128::from(apic_start - apic_end) * u128::from(reference.hz) / u128::from(elapsed)) as u64;
    TSC_ZERO.store(tsc_start, Ordering::SeqCst);
    Some((tsc_hz, apic_hz))
}

fn measure_pit() -> Result<(u64, u64), CalibrationError> {
    pit_start();
    let mut last = pit_read();
    // Wait for the counter to move at all (bounded).
    let mut spins = 0;
    while pit_read() == last {
        spins += 1;
        if spins > 10_000_000 {
            return Err(CalibrationError::NoPit);
        }
    }
    last = pit_read();
    apic::timer_count_masked(u32::MAX);
    let apic_start = apic::timer_current();
    let tsc_start = cpu::rdtsc();
    let mut elapsed = 0u64;
    while elapsed < CALIBRATION_PIT_TICKS {
        let now = pit_read();
        // Counting down, wrapping at 0xffff.
        elapsed += u64::from(last.wrapping_sub(now));
        last = now;
    }
    let tsc_end = cpu::rdtsc();
    let apic_end = apic::timer_current();
    apic::timer_count_masked(0);
    TSC_ZERO.store(tsc_start, Ordering::SeqCst);
    Ok((
        (tsc_end - tsc_start) * PIT_HZ / elapsed,
        u64::from(apic_start - apic_end) * PIT_HZ / elapsed,
    ))
}

/// Whether the CPU offers the APIC timer's TSC-deadline mode.
pub fn has_tsc_deadline() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 24) != 0
}

/// Calibrates the TSC and the local APIC timer (boot CPU, interrupts off,
/// APIC initialised) against the HPET named by ACPI, else the ACPI PM
/// timer, else the PIT; chooses TSC-deadline mode when the CPU has it.
///
/// # Errors
/// [`CalibrationError::NoPit`] when no reference works.
pub fn calibrate(acpi: Option<&crate::acpi::AcpiInfo>) -> Result<Calibration, CalibrationError> {
    let hpet = acpi
        .and_then(|a| a.hpet_address)
        .and_then(hpet_reference)
        .and_then(|r| Some((ClockSource::Hpet, r.hz, measure(&r)?)));
    let pm = || {
        let a = acpi?;
        let r = Reference {
            read: pm_timer_read,
            arg: u64::from(a.pm_timer_port?),
            hz: PM_TIMER_HZ,
            mask: if a.pm_timer_32bit {
                u64::from(u32::MAX)
            } else {
                0xff_ffff
            },
        };
        Some((ClockSource::PmTimer, r.hz, measure(&r)?))
    };
    let (source, reference_hz, (tsc_hz, apic_hz)) = match hpet.or_else(pm) {
        Some(found) => found,
        None => (ClockSource::Pit, PIT_HZ, measure_pit()?),
    };
    TSC_HZ.store(tsc_hz, Ordering::SeqCst);
    TSC_NS_MULT.store(ns_mult(tsc_hz), Ordering::SeqCst);
    APIC_TIMER_HZ.store(apic_hz, Ordering::SeqCst);
    let tsc_deadline = has_tsc_deadline();
    TSC_DEADLINE.store(u64::from(tsc_deadline), Ordering::SeqCst);
    Ok(Calibration {
        source,
        reference_hz,
        tsc_hz,
        apic_timer_hz: apic_hz,
        tsc_deadline,
    })
}

/// Whether `arm_oneshot_ns` uses TSC-deadline mode.
pub fn uses_tsc_deadline() -> bool {
    TSC_DEADLINE.load(Ordering::Relaxed) != 0
}

/// Whether the TSC is invariant (CPUID 8000_0007h EDX.8).
pub fn tsc_is_invariant() -> bool {
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    max_ext >= 0x8000_0007 && core::arch::x86_64::__cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// Nanoseconds since calibration (0 before it).
pub fn now_ns() -> u64 {
    tsc_ticks_to_ns(cpu::rdtsc().saturating_sub(TSC_ZERO.load(Ordering::Relaxed)))
}

/// The TSC clock's parameters, `(tsc_zero, ns_mult)`: [`now_ns`] is
/// `((rdtsc - tsc_zero) * ns_mult) >> 32` (saturating), which a user-mode reader
/// can repeat (the clock page). `ns_mult` is 0 before calibration.
pub fn tsc_clock() -> (u64, u64) {
    (
        TSC_ZERO.load(Ordering::Relaxed),
        TSC_NS_MULT.load(Ordering::Relaxed),
    )
}

/// A TSC interval in nanoseconds (0 before calibration).
pub fn tsc_ticks_to_ns(ticks: u64) -> u64 {
    ticks_to_ns(ticks, TSC_NS_MULT.load(Ordering::Relaxed))
}

/// The 32.32 fixed-point nanoseconds per tick of a `hz` clock (0 for 0). Rounded to
/// nearest: the relative error is below 2^-32 / (10^9 / hz), under 0.1 us per hour
/// for a TSC of a few GHz.
fn ns_mult(hz: u64) -> u64 {
    if hz == 0 {
        return 0;
    }
    ((1_000_000_000u128 << 32).saturating_add(u128::from(hz) / 2) / u128::from(hz)) as u64
}

/// `ticks` of a clock with `mult` (see [`ns_mult`]) in nanoseconds: one widening
/// multiply and a shift (monotonic in `ticks`).
fn ticks_to_ns(ticks: u64, mult: u64) -> u64 {
    ((u128::from(ticks) * u128::from(mult)) >> 32).min(u128::from(u64::MAX)) as u64
}

/// TSC frequency found by calibration (0 before it).
pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

/// Local APIC timer ticks (divide-by-16) per second (0 before calibration).
pub fn apic_timer_hz() -> u64 {
    APIC_TIMER_HZ.load(Ordering::Relaxed)
}

/// Arms this CPU's APIC timer to raise `vector` once, `delay_ns` from now
/// (at least one tick; saturates at the counter's range in one-shot mode).
/// In TSC-deadline mode the deadline is the TSC value `delay_ns` ahead.
pub fn arm_oneshot_ns(vector: u8, delay_ns: u64) {
    if uses_tsc_deadline() {
        let hz = tsc_hz().max(1);
        let ticks = (u128::from(delay_ns) * u128::from(hz))
            .div_ceil(1_000_000_000)
            .max(1);
        let deadline = u128::from(cpu::rdtsc()) + ticks;
        apic::timer_tsc_deadline_mode(vector);
        // SAFETY: CPUID said the MSR exists; writing a deadline only arms
        // this CPU's APIC timer.
        unsafe {
            x86_64::registers::model_specific::Msr::new(IA32_TSC_DEADLINE)
                .write(deadline.min(u128::from(u64::MAX)) as u64)
        };
        return;
    }
    let hz = apic_timer_hz().max(1);
    let ticks = (u128::from(delay_ns) * u128::from(hz)).div_ceil(1_000_000_000);
    apic::timer_oneshot(vector, ticks.clamp(1, u128::from(u32::MAX)) as u32);
}

/// The vector `halt_for_ns` arms the APIC timer with (acknowledge only).
pub const VECTOR_HALT_TIMER: u8 = 0xf9;

fn halt_timer(_vector: u8) {}

/// Halts this CPU for about `ns` (until the APIC timer or any other
/// interrupt), instead of spinning: for code that waits outside an executor,
/// such as the boot CPU running the test runner.
pub fn halt_for_ns(ns: u64) {
    static HANDLER: spin::Once<()> = spin::Once::new();
    HANDLER.call_once(|| {
        let _ = super::trap::set_interrupt_handler(VECTOR_HALT_TIMER, halt_timer);
    });
    x86_64::instructions::interrupts::disable();
    arm_oneshot_ns(VECTOR_HALT_TIMER, ns);
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
}
