// SPDX-License-Identifier: MIT OR Apache-2.0
//! What fs needs from the platform, as small traits the kernel implements (STYLE.md C.1).
//!
//! fs never reads a clock, an entropy source or a device by itself: the kernel hands
//! implementations over at wiring time, and host tests hand over deterministic ones.

use core::{
    sync::atomic::{AtomicU64, Ordering},
    task::{Context, Poll},
};

use abi::{Errno, Timespec};

/// Wall-clock time for timestamps.
pub trait Clock: Send + Sync {
    /// The current time (seconds since the Unix epoch).
    fn now(&self) -> Timespec;
}

/// The kernel's entropy source, behind `/dev/random` and `/dev/urandom`.
pub trait EntropySource: Send + Sync {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// The kernel console behind `/dev/console`.
///
/// Until the console is a port of its own (`ports::proto::console`), devfs calls it
/// directly. None of the methods may block.
pub trait ConsoleDevice: Send + Sync {
    /// Writes `data`; returns how many bytes were accepted.
    fn write(&self, data: &[u8]) -> usize;
    /// Reads what input is available into `buf` (`Ok(0)`: end of input).
    ///
    /// # Errors
    /// `Again` when no input is available right now.
    fn try_read(&self, buf: &mut [u8]) -> Result<usize, Errno>;
    /// Like `try_read`, but when no input is available, registers `cx`'s waker to be
    /// woken when some arrives and returns `Pending` (the receive interrupt wakes it).
    /// Used when devfs is served by a task ([`crate::devfs::Devfs::serve_on`]).
    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Errno>>;
}

/// A clock that advances by one microsecond every time it is read: deterministic, and
/// every operation sees a distinct, increasing time. For tests and early boot.
#[derive(Debug, Default)]
pub struct TickClock {
    ticks: AtomicU64,
}

impl TickClock {
    /// A clock starting at `start_ns` nanoseconds since the epoch.
    pub const fn new(start_ns: u64) -> TickClock {
        TickClock {
            ticks: AtomicU64::new(start_ns / 1000),
        }
    }
}

impl Clock for TickClock {
    fn now(&self) -> Timespec {
        let us = self.ticks.fetch_add(1, Ordering::Relaxed) + 1;
        Timespec::from_nanos(us.saturating_mul(1000))
    }
}

/// A console that discards output and whose input is always at its end.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullConsole;

impl ConsoleDevice for NullConsole {
    fn write(&self, data: &[u8]) -> usize {
        data.len()
    }

    fn try_read(&self, _buf: &mut [u8]) -> Result<usize, Errno> {
        Ok(0)
    }

    fn poll_read(&self, _cx: &mut Context<'_>, _buf: &mut [u8]) -> Poll<Result<usize, Errno>> {
        Poll::Ready(Ok(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_clock_is_strictly_increasing() {
        let c = TickClock::new(1_000_000_000);
        let a = c.now();
        let b = c.now();
        assert!(b > a);
        assert_eq!(a.tv_sec, 1);
    }
}
