//! The `log` sink: every `log` macro in the kernel ends up on COM1.
//!
//! Lines look like `[ INFO hal] message`. A spin lock keeps lines whole;
//! the panic path bypasses it (`serial::RawWriter`).

use core::fmt::Write;

use log::{LevelFilter, Log, Metadata, Record};

use crate::arch::serial;
use crate::boot::cmdline::LogLevel;

struct SerialLog {
    lock: spin::Mutex<()>,
}

static LOGGER: SerialLog = SerialLog {
    lock: spin::Mutex::new(()),
};

impl Log for SerialLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        // An interrupt handler that logs must not deadlock on a line the
        // interrupted code was printing: after a bounded wait it prints
        // anyway (at worst two lines interleave).
        let mut _guard = None;
        for _ in 0..100_000 {
            if let Some(g) = self.lock.try_lock() {
                _guard = Some(g);
                break;
            }
            core::hint::spin_loop();
        }
        let _ = writeln!(
            serial::RawWriter,
            "[{:>5} {}] {}",
            record.level(),
            record.target(),
            record.args()
        );
    }

    fn flush(&self) {}
}

/// Installs the sink with `level`.
pub fn init(level: LogLevel) {
    let filter = match level {
        LogLevel::Error => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Info => LevelFilter::Info,
        LogLevel::Debug => LevelFilter::Debug,
        LogLevel::Trace => LevelFilter::Trace,
    };
    // A second call (never made) would keep the first logger.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(filter);
}
