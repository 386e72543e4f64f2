// SPDX-License-Identifier: MIT OR Apache-2.0
//! The clock page: what a process needs to read the clocks without a trap (Damselfly's
//! counterpart of Linux's vDSO data page).
//!
//! The kernel maps one page, read-only, into every process and passes its address in
//! the auxiliary vector under [`AT_CLOCK_PAGE`]. The page starts with a [`ClockPage`].
//! A reader takes [`ClockPage::seq`] (it must be even), the other fields, the TSC (`rdtsc`)
//! and `seq` again; if the two `seq` values differ, the kernel was rewriting the page and
//! the reader starts over. With the fields, [`monotonic_ns`] turns the TSC into
//! `CLOCK_MONOTONIC` nanoseconds with exactly the arithmetic the kernel uses for its own
//! clock, so a program that mixes the page and the `ClockGettime` operation never sees
//! time go backwards.
//!
//! The page is only published when the TSC is a usable clock for user mode (calibrated,
//! and the same on every CPU); otherwise the auxiliary vector has no [`AT_CLOCK_PAGE`]
//! entry and programs use the `ClockGettime` operation.

/// Auxiliary-vector key whose value is the clock page's address (a Damselfly number,
/// outside the range Linux uses).
pub const AT_CLOCK_PAGE: u64 = 0x4446_0001;

/// [`ClockPage::magic`]: `"DFCK"` little-endian.
pub const CLOCK_PAGE_MAGIC: u32 = u32::from_le_bytes(*b"DFCK");

/// The layout version this crate describes ([`ClockPage::version`]).
pub const CLOCK_PAGE_VERSION: u32 = 1;

/// The start of the clock page. All fields are little-endian and naturally aligned; read
/// them with volatile loads (the kernel may rewrite the page, see the module doc).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClockPage {
    /// [`CLOCK_PAGE_MAGIC`].
    pub magic: u32,
    /// [`CLOCK_PAGE_VERSION`].
    pub version: u32,
    /// Even while the fields are stable; odd while the kernel rewrites them.
    pub seq: u64,
    /// The TSC reading at monotonic time 0.
    pub tsc_zero: u64,
    /// Nanoseconds per TSC tick, 32.32 fixed point.
    pub ns_mult: u64,
    /// `CLOCK_REALTIME` minus `CLOCK_MONOTONIC`, in nanoseconds (the wall-clock time of
    /// monotonic 0, from the RTC at boot).
    pub realtime_base_ns: u64,
}

/// `CLOCK_MONOTONIC` in nanoseconds at TSC reading `tsc`: the ticks since `tsc_zero`
/// (none before it) times `ns_mult`, shifted down 32 bits. One widening multiply; monotonic
/// in `tsc`. The kernel's own clock (`hal`'s `now_ns`, which cannot depend on this crate)
/// does the same arithmetic; the `clock` user test checks the two agree.
pub const fn monotonic_ns(tsc: u64, tsc_zero: u64, ns_mult: u64) -> u64 {
    let ticks = tsc.saturating_sub(tsc_zero) as u128;
    let ns = (ticks * ns_mult as u128) >> 32;
    if ns > u64::MAX as u128 {
        u64::MAX
    } else {
        ns as u64
    }
}

impl ClockPage {
    /// The fields as five little-endian 64-bit words in memory order (word `i` covers
    /// bytes `8*i..8*i+8`; word 0 is `magic | version << 32`).
    pub const fn to_words(&self) -> [u64; 5] {
        [
            self.magic as u64 | (self.version as u64) << 32,
            self.seq,
            self.tsc_zero,
            self.ns_mult,
            self.realtime_base_ns,
        ]
    }

    /// Whether the page is one this crate can read (magic and version).
    pub const fn is_valid(&self) -> bool {
        self.magic == CLOCK_PAGE_MAGIC && self.version == CLOCK_PAGE_VERSION
    }

    /// `CLOCK_MONOTONIC` at TSC reading `tsc`.
    pub const fn monotonic_ns(&self, tsc: u64) -> u64 {
        monotonic_ns(tsc, self.tsc_zero, self.ns_mult)
    }

    /// `CLOCK_REALTIME` at TSC reading `tsc`.
    pub const fn realtime_ns(&self, tsc: u64) -> u64 {
        self.monotonic_ns(tsc).saturating_add(self.realtime_base_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layout() {
        assert_eq!(size_of::<ClockPage>(), 40);
        assert_eq!(offset_of!(ClockPage, magic), 0);
        assert_eq!(offset_of!(ClockPage, version), 4);
        assert_eq!(offset_of!(ClockPage, seq), 8);
        assert_eq!(offset_of!(ClockPage, tsc_zero), 16);
        assert_eq!(offset_of!(ClockPage, ns_mult), 24);
        assert_eq!(offset_of!(ClockPage, realtime_base_ns), 32);
        assert_eq!(&CLOCK_PAGE_MAGIC.to_le_bytes(), b"DFCK");
        let page = ClockPage {
            magic: CLOCK_PAGE_MAGIC,
            version: CLOCK_PAGE_VERSION,
            seq: 2,
            tsc_zero: 3,
            ns_mult: 4,
            realtime_base_ns: 5,
        };
        let w = page.to_words();
        assert_eq!(w[0] as u32, CLOCK_PAGE_MAGIC);
        assert_eq!((w[0] >> 32) as u32, CLOCK_PAGE_VERSION);
        assert_eq!(&w[1..], &[2, 3, 4, 5]);
    }

    #[test]
    fn conversion() {
        // A 2.5 GHz TSC: 0.4 ns per tick.
        let mult = ((1_000_000_000u128 << 32) / 2_500_000_000) as u64;
        let page = ClockPage {
            magic: CLOCK_PAGE_MAGIC,
            version: CLOCK_PAGE_VERSION,
            seq: 2,
            tsc_zero: 1000,
            ns_mult: mult,
            realtime_base_ns: 1_700_000_000_000_000_000,
        };
        assert!(page.is_valid());
        assert_eq!(
            page.monotonic_ns(500),
            0,
            "before tsc_zero is 0, not a wrap"
        );
        assert_eq!(page.monotonic_ns(1000), 0);
        // One second of ticks is a second, to within the fixed point's rounding.
        let second = page.monotonic_ns(1000 + 2_500_000_000);
        assert!((999_999_999..=1_000_000_000).contains(&second), "{second}");
        assert_eq!(page.realtime_ns(1000), 1_700_000_000_000_000_000);
        // Monotonic in the TSC, and saturating at the top.
        let mut last = 0;
        for tsc in (0..10_000u64).map(|i| i * 997) {
            let ns = page.monotonic_ns(tsc);
            assert!(ns >= last);
            last = ns;
        }
        assert_eq!(monotonic_ns(u64::MAX, 0, u64::MAX), u64::MAX);
        assert!(!ClockPage::default().is_valid());
    }
}
