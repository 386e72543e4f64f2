// SPDX-License-Identifier: MIT OR Apache-2.0
//! A child exits with 1000 operations in flight (long timeouts and nops it never reaps);
//! the parent sees a clean exit status, the system keeps working, and nothing leaked
//! (`common::without_leaks`).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use common::{Outcome, ctx, expect_eq, report, without_leaks};
use libc_shim::abi::{Opcode, Sqe};
use libc_shim::sys::{self, ExitStatus};
use libc_shim::{Ring, RingOptions};

libc_shim::entry!(main);

fn child() -> i32 {
    let Ok(mut ring) = Ring::setup(RingOptions::new(1024)) else {
        return 3;
    };
    for i in 0..1000u64 {
        let mut s = Sqe::new(if i % 2 == 0 {
            Opcode::Timeout
        } else {
            Opcode::Nop
        });
        s.addr = if i % 2 == 0 { 60_000_000_000 } else { 0 };
        s.user_data = i;
        if ring.try_push_scalar(&s).is_err() {
            return 4;
        }
    }
    let _ = ring.submit();
    7
}

fn run() -> Outcome {
    for _ in 0..3 {
        let pid = ctx(
            "spawn",
            sys::spawn(
                "/bin/tests/exit_inflight",
                &["exit_inflight", "child"],
                &[],
                &[],
            ),
        )?;
        expect_eq(
            "child status",
            ctx("wait", sys::waitpid(pid))?,
            (pid, ExitStatus::Exited(7)),
        )?;
    }
    ctx("nop", sys::nop())?;
    Ok(())
}

fn main(args: libc_shim::Args) -> i32 {
    if args.get(1) == Some("child") {
        return child();
    }
    report("exit_inflight", without_leaks(run))
}
