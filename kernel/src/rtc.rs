//! Wall-clock time: the CMOS RTC read once at boot, then kept by the TSC.
//!
//! `realtime = realtime_base_ns() + time since boot` (CLOCK_REALTIME). The
//! RTC is read as UTC (QEMU's default `-rtc base=utc`).

use core::sync::atomic::{AtomicU64, Ordering};

/// The CMOS registers through hal's ports.
struct Cmos;

impl rtc::CmosPort for Cmos {
    fn read(&self, register: u8) -> u8 {
        hal::arch::cmos::read(register)
    }
}

/// Wall-clock time at boot, ns since the Unix epoch (0 until [`init`]).
static REALTIME_BASE_NS: AtomicU64 = AtomicU64::new(0);

/// What to add to time since boot for wall-clock time.
pub fn realtime_base_ns() -> u64 {
    REALTIME_BASE_NS.load(Ordering::Relaxed)
}

/// Reads the RTC and sets the wall clock; a failure is logged and leaves
/// the clock at the epoch.
pub fn init() {
    let century = hal::boot::acpi().map_or(0, |a| a.rtc_century_register);
    match rtc::read_unix_time(&Cmos, century) {
        Ok(secs) if secs >= 0 => {
            let now = hal::arch::time::now_ns();
            let base = (secs as u64)
                .saturating_mul(1_000_000_000)
                .saturating_sub(now);
            REALTIME_BASE_NS.store(base, Ordering::Relaxed);
            log::info!(target: "rtc", "wall clock from the CMOS RTC: {secs} s since the epoch");
        }
        Ok(secs) => log::warn!(target: "rtc", "RTC says {secs} s, before 1970; wall clock not set"),
        Err(e) => log::warn!(target: "rtc", "cannot read the RTC: {e:?}; wall clock not set"),
    }
}
