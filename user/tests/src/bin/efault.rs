// SPDX-License-Identifier: MIT OR Apache-2.0
//! Bad user pointers give EFAULT and nothing worse: NULL, unmapped, kernel-half and
//! wrapping addresses, for reads, writes, paths and out-parameters, and for the entry
//! itself in the trap door's memory form.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use common::{Outcome, expect_eq, report, without_leaks};
use libc_shim::abi::{Errno, Opcode, Sqe};
use libc_shim::sys;

libc_shim::entry!(main);

const BAD: [u64; 4] = [0, 0x10, 0xffff_8000_0000_0000, u64::MAX - 7];

fn run() -> Outcome {
    for addr in BAD {
        for op in [
            Opcode::Read,
            Opcode::Write,
            Opcode::Openat,
            Opcode::Fstat,
            Opcode::ClockGettime,
        ] {
            let mut s = Sqe::new(op);
            s.fd = if op == Opcode::Openat { -100 } else { 1 };
            if op == Opcode::ClockGettime {
                s.fd = 1;
            }
            s.addr = addr;
            // Only these name a length; for the others `len` must stay 0 (EINVAL otherwise).
            if matches!(op, Opcode::Read | Opcode::Write | Opcode::Openat) {
                s.len = 16;
            }
            // SAFETY: the addresses are deliberately invalid; none of them is memory this
            // process uses, so the kernel can only refuse them.
            let r = unsafe { sys::trap(&s) };
            expect_eq(
                &alloc::format!("{op:?} at {addr:#x}"),
                sys::check(r),
                Err(Errno::Fault),
            )?;
        }
        // The trap door's memory form with the entry itself at a bad address.
        // SAFETY: the kernel reads the entry through the bad address and must refuse it.
        let r = unsafe { sys::trap_in_memory(addr as *const Sqe) };
        expect_eq(
            &alloc::format!("an Sqe at {addr:#x}"),
            sys::check(r),
            Err(Errno::Fault),
        )?;
    }
    Ok(())
}

fn main(_args: libc_shim::Args) -> i32 {
    report("efault", without_leaks(run))
}
