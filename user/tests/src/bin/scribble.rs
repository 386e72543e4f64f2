// SPDX-License-Identifier: MIT OR Apache-2.0
//! Ring scribbling: a child writes garbage over its whole ring region (headers, indices,
//! slots) and enters the kernel; whatever the kernel answers, only the child may suffer.
//! The parent checks the child ended (any status) and that it can still use a ring.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use common::{Outcome, ctx, report, without_leaks};
use libc_shim::abi::ring::RingParams;
use libc_shim::abi::{Opcode, Sqe};
use libc_shim::sys;
use libc_shim::{Ring, RingOptions};

libc_shim::entry!(main);

fn child(seed: u64) -> i32 {
    let mut params = RingParams {
        sq_entries: 64,
        ..RingParams::default()
    };
    let mut s = Sqe::new(Opcode::RingSetup);
    s.addr = &mut params as *mut RingParams as u64;
    s.len = size_of::<RingParams>() as u32;
    // SAFETY: `params` is live and writable for the call.
    if sys::check(unsafe { sys::trap(&s) }).is_err() {
        return 3;
    }
    let mut x = seed | 1;
    for round in 0..200 {
        for off in (0..params.region_len as usize).step_by(4) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // SAFETY: inside the region the kernel just mapped for us; scribbling on it is
            // the test. Nothing of ours lives there.
            unsafe {
                core::ptr::write_volatile((params.region_addr as usize + off) as *mut u32, x as u32)
            };
        }
        let mut e = Sqe::new(Opcode::RingEnter);
        e.len = (x % 300) as u32;
        e.off = if round % 3 == 0 { 1 } else { 0 };
        e.op_flags = 1; // GETEVENTS
        e.addr = 1_000_000; // 1 ms timeout so a bogus wait ends
        // SAFETY: RingEnter names no memory.
        let _ = unsafe { sys::trap(&e) };
    }
    0
}

fn children() -> Outcome {
    for seed in 1..=4u64 {
        let s = alloc::format!("{seed}");
        let pid = ctx(
            "spawn",
            sys::spawn("/bin/tests/scribble", &["scribble", &s], &[], &[]),
        )?;
        ctx("wait", sys::waitpid(pid))?;
    }
    Ok(())
}

fn run() -> Outcome {
    // The children scribble (with the same seeds each time) and nothing may leak.
    without_leaks(children)?;
    let mut ring = ctx("setup", Ring::setup(RingOptions::new(8)))?;
    ring.try_push_scalar(&Sqe::new(Opcode::Nop))
        .map_err(|e| alloc::format!("{e:?}"))?;
    ctx("enter", ring.submit_and_wait(1))?;
    if ring.try_reap().is_none_or(|(c, _)| c.res != 0) {
        return Err("nop on a fresh ring failed".into());
    }
    Ok(())
}

fn main(args: libc_shim::Args) -> i32 {
    if let Some(seed) = args.get(1).and_then(|s| s.parse().ok()) {
        return child(seed);
    }
    report("scribble", run())
}
