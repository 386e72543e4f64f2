// SPDX-License-Identifier: MIT OR Apache-2.0
//! The clock page: `clock_gettime` without a trap. The page is there; page and trap
//! readings interleaved never go backwards; both clocks agree with the trap's; a sleep
//! shows on the page's clock; other clock ids still get the trap's answer; `munmap` and
//! `mprotect` refuse the page (writing it kills the writer: `faults`' `write-clock`).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use common::{Outcome, ctx, expect_eq, report};
use libc_shim::abi::Errno;
use libc_shim::abi::ring::{CLOCK_MONOTONIC, CLOCK_REALTIME, PROT_READ, PROT_WRITE};
use libc_shim::ffi::clock;
use libc_shim::sys;

libc_shim::entry!(main);

fn ns(t: libc_shim::abi::Timespec) -> u64 {
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn run() -> Outcome {
    let Some(page) = clock::page_addr() else {
        return Err("no clock page in the auxiliary vector".into());
    };
    // Interleaved: the page and the trap read one clock.
    let mut last = 0u64;
    for i in 0..2000 {
        let (how, now) = if i % 2 == 0 {
            (
                "page",
                clock::read_ns(CLOCK_MONOTONIC).ok_or("page read failed")?,
            )
        } else {
            (
                "trap",
                ns(ctx("trap", sys::clock_gettime_trap(CLOCK_MONOTONIC))?),
            )
        };
        if now < last {
            return Err(alloc::format!(
                "monotonic went back at reading {i} ({how}): {now} < {last}"
            ));
        }
        last = now;
    }
    // Wall-clock time: the page's agrees with the trap's (to 50 ms) and is past 2020.
    let before = ns(ctx(
        "trap realtime",
        sys::clock_gettime_trap(CLOCK_REALTIME),
    )?);
    let page_rt = ns(ctx("realtime", sys::clock_gettime(CLOCK_REALTIME))?);
    let after = ns(ctx(
        "trap realtime",
        sys::clock_gettime_trap(CLOCK_REALTIME),
    )?);
    if page_rt < before || page_rt > after.saturating_add(50_000_000) {
        return Err(alloc::format!(
            "realtime from the page {page_rt} outside the trap's [{before}, {after}]"
        ));
    }
    if page_rt < 1_577_836_800_000_000_000 {
        return Err(alloc::format!("realtime {page_rt} is before 2020"));
    }
    // A 20 ms sleep shows as at least 20 ms (and not as minutes).
    let t0 = sys::now_ns();
    ctx("sleep", sys::nanosleep(20_000_000))?;
    let slept = sys::now_ns() - t0;
    if !(20_000_000..5_000_000_000).contains(&slept) {
        return Err(alloc::format!("a 20 ms sleep took {slept} ns by the page"));
    }
    // Clocks the page does not cover go to the kernel, which refuses unknown ones.
    expect_eq("clock 7", sys::clock_gettime(7).err(), Some(Errno::Inval))?;
    // The page is the kernel's: not to be unmapped or made writable.
    expect_eq("munmap", sys::munmap(page, 4096), Err(Errno::Inval))?;
    expect_eq(
        "mprotect",
        sys::mprotect(page, 4096, PROT_READ | PROT_WRITE),
        Err(Errno::Inval),
    )?;
    // And still readable afterwards.
    clock::read_ns(CLOCK_MONOTONIC).ok_or("page unreadable after the refusals")?;
    Ok(())
}

fn main(_args: libc_shim::Args) -> i32 {
    report("clock", run())
}
