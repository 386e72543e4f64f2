//! Time: a monotonic clock from the TSC, calibrated against the PIT at boot,
//! and the local APIC timer's rate (measured over the same window) so
//! deadlines in nanoseconds can be turned into one-shot timer ticks.
//!
//! The PIT is read by latching channel 0 while it counts down in mode 2, so
//! neither its interrupt nor the speaker gate (port 0x61, absent on
//! microvm) is needed. 1.193182 MHz; 5 ms of it is measured.

use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::instructions::port::Port;

use super::{apic, cpu};

const PIT_HZ: u64 = 1_193_182;
/// 5 ms: boot stays lean; PIT quantisation is still ~0.02%.
const CALIBRATION_PIT_TICKS: u64 = 5_966;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TSC_ZERO: AtomicU64 = AtomicU64::new(0);
static APIC_TIMER_HZ: AtomicU64 = AtomicU64::new(0);

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

/// Calibrates the TSC and the local APIC timer against the PIT (boot CPU,
/// interrupts off, APIC initialised). Returns (TSC Hz, APIC timer Hz).
///
/// # Errors
/// [`CalibrationError::NoPit`] when the PIT does not count.
pub fn calibrate() -> Result<(u64, u64), CalibrationError> {
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
    let tsc_hz = (tsc_end - tsc_start) * PIT_HZ / elapsed;
    let apic_hz = u64::from(apic_start - apic_end) * PIT_HZ / elapsed;
    TSC_HZ.store(tsc_hz, Ordering::SeqCst);
    APIC_TIMER_HZ.store(apic_hz, Ordering::SeqCst);
    TSC_ZERO.store(tsc_start, Ordering::SeqCst);
    Ok((tsc_hz, apic_hz))
}

/// Whether the TSC is invariant (CPUID 8000_0007h EDX.8).
pub fn tsc_is_invariant() -> bool {
    let max_ext = core::arch::x86_64::__cpuid(0x8000_0000).eax;
    max_ext >= 0x8000_0007 && core::arch::x86_64::__cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// Nanoseconds since calibration (0 before it).
pub fn now_ns() -> u64 {
    let hz = TSC_HZ.load(Ordering::Relaxed);
    if hz == 0 {
        return 0;
    }
    let ticks = cpu::rdtsc().saturating_sub(TSC_ZERO.load(Ordering::Relaxed));
    (u128::from(ticks) * 1_000_000_000 / u128::from(hz)) as u64
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
/// (at least one tick; saturates at the counter's range).
pub fn arm_oneshot_ns(vector: u8, delay_ns: u64) {
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
