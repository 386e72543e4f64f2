// SPDX-License-Identifier: MIT OR Apache-2.0
//! The clocks without a trap: reads the kernel's clock page (`abi::clock`), whose address
//! the kernel put in the auxiliary vector (`AT_CLOCK_PAGE`), and the TSC.
//! [`read`] answers `None` when there is no page or the clock is not one it covers; the
//! caller then traps (`ClockGettime`), which gives the same time.

use core::mem::offset_of;
use core::sync::atomic::{AtomicUsize, Ordering, compiler_fence};

use abi::clock::{CLOCK_PAGE_MAGIC, CLOCK_PAGE_VERSION, ClockPage};
use abi::ring::{CLOCK_MONOTONIC, CLOCK_REALTIME};

/// The page's address (0: none). Set once at start, before `main`.
static PAGE: AtomicUsize = AtomicUsize::new(0);

/// Reads the `u64` at byte `offset` of the page at `page`.
///
/// # Safety
/// `page` is the address of the mapped clock page and `offset + 8 <= 4096`, 8-aligned.
unsafe fn field(page: usize, offset: usize) -> u64 {
    // SAFETY: the caller's promise: a mapped, readable, aligned word of the page. The
    // kernel may rewrite it at any time, so the read is volatile (never cached or torn
    // into smaller loads by the compiler).
    unsafe { core::ptr::read_volatile((page + offset) as *const u64) }
}

/// Adopts the page at `addr` (from `AT_CLOCK_PAGE`) if it carries the layout this
/// shim reads.
///
/// # Safety
/// `addr` is the value the kernel gave for `AT_CLOCK_PAGE`: a mapped, readable page.
pub unsafe fn set_page(addr: usize) {
    if addr == 0 || !addr.is_multiple_of(4096) {
        return;
    }
    let expected = ClockPage {
        magic: CLOCK_PAGE_MAGIC,
        version: CLOCK_PAGE_VERSION,
        ..ClockPage::default()
    };
    // SAFETY: the caller's promise; offset 0 (magic and version) is in the page, aligned.
    let head = unsafe { field(addr, 0) };
    if head == expected.to_words()[0] {
        PAGE.store(addr, Ordering::Relaxed);
    }
}

/// The clock page's address, if this process has one.
pub fn page_addr() -> Option<usize> {
    match PAGE.load(Ordering::Relaxed) {
        0 => None,
        addr => Some(addr),
    }
}

/// The TSC, after every earlier load (`lfence; rdtsc`, as Linux's vDSO reads it).
fn tsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: `lfence` and `rdtsc` only read the time-stamp counter; user mode may
        // (the kernel leaves CR4.TSD clear, which the clock page's existence implies).
        unsafe {
            core::arch::x86_64::_mm_lfence();
            core::arch::x86_64::_rdtsc()
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    0
}

/// `clock` in nanoseconds from the page, or `None` (no page, or a clock it does not
/// cover): then trap.
pub fn read_ns(clock: i32) -> Option<u64> {
    let page = page_addr()?;
    let realtime = match clock {
        CLOCK_MONOTONIC => false,
        CLOCK_REALTIME => true,
        _ => return None,
    };
    loop {
        // SAFETY: `page` was adopted by `set_page` (the kernel's mapped clock page) and
        // the offset is a `ClockPage` field's.
        let seq = unsafe { field(page, offset_of!(ClockPage, seq)) };
        if seq & 1 != 0 {
            core::hint::spin_loop();
            continue;
        }
        compiler_fence(Ordering::Acquire);
        // SAFETY: as above.
        let snapshot = unsafe {
            ClockPage {
                tsc_zero: field(page, offset_of!(ClockPage, tsc_zero)),
                ns_mult: field(page, offset_of!(ClockPage, ns_mult)),
                realtime_base_ns: field(page, offset_of!(ClockPage, realtime_base_ns)),
                ..ClockPage::default()
            }
        };
        let now = tsc();
        compiler_fence(Ordering::Acquire);
        // SAFETY: as above (`seq` again: unchanged means the fields were not rewritten).
        if unsafe { field(page, offset_of!(ClockPage, seq)) } != seq {
            continue;
        }
        return Some(if realtime {
            snapshot.realtime_ns(now)
        } else {
            snapshot.monotonic_ns(now)
        });
    }
}
