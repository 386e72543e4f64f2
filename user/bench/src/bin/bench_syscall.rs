// SPDX-License-Identifier: MIT OR Apache-2.0
//! Trap-door costs: `syscall_nop` (one Nop, register form), `syscall_nop_memory` (the same
//! through the memory form), `syscall_getpid` (as peer-linux's),
//! `clock_gettime_vdso` (libc-shim's `clock_gettime`: the clock page, no trap) and
//! `clock_gettime_syscall` (the `ClockGettime` operation by trap).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use libc_shim::sys;

libc_shim::entry!(main);

fn main(args: libc_shim::Args) -> i32 {
    // `bench_syscall nop|getpid|clock N`: exactly N register-form Nops (getpids, trapped
    // clock_gettimes) and nothing else (for bench/tcg-profile's per-operation counts).
    if let (Some(op @ ("nop" | "getpid" | "clock")), Some(n)) =
        (args.get(1), args.get(2).and_then(|n| n.parse().ok()))
    {
        for _ in 0..n {
            match op {
                "nop" => {
                    let _ = sys::nop();
                }
                "getpid" => {
                    core::hint::black_box(sys::getpid());
                }
                _ => {
                    let _ = core::hint::black_box(sys::clock_gettime_trap(sys::CLOCK_MONOTONIC));
                }
            }
        }
        return 0;
    }
    let s = common::Settings::from_env(&args);
    common::run("syscall_nop", &s, 1, |iters| {
        let t0 = sys::now_ns();
        for _ in 0..iters {
            let _ = sys::nop();
        }
        sys::now_ns() - t0
    });
    // The same Nop through the trap door's memory form (the kernel copies the entry).
    let nop = libc_shim::abi::Sqe::ZERO;
    common::run("syscall_nop_memory", &s, 1, |iters| {
        let t0 = sys::now_ns();
        for _ in 0..iters {
            // SAFETY: a Nop names no memory; the entry is a readable local.
            let _ = core::hint::black_box(unsafe { sys::trap_in_memory(&nop) });
        }
        sys::now_ns() - t0
    });
    common::run("syscall_getpid", &s, 1, |iters| {
        let t0 = sys::now_ns();
        for _ in 0..iters {
            core::hint::black_box(sys::getpid());
        }
        sys::now_ns() - t0
    });
    // The peer's names: its `clock_gettime_vdso` is libc's call (the vDSO); ours is
    // libc-shim's, which reads the clock page.
    common::run("clock_gettime_vdso", &s, 1, |iters| {
        let t0 = sys::now_ns();
        for _ in 0..iters {
            let _ = core::hint::black_box(sys::clock_gettime(sys::CLOCK_MONOTONIC));
        }
        sys::now_ns() - t0
    });
    common::run("clock_gettime_syscall", &s, 1, |iters| {
        let t0 = sys::now_ns();
        for _ in 0..iters {
            let _ = core::hint::black_box(sys::clock_gettime_trap(sys::CLOCK_MONOTONIC));
        }
        sys::now_ns() - t0
    });
    0
}
