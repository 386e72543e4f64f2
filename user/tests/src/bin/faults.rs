// SPDX-License-Identifier: MIT OR Apache-2.0
//! Faulting children die alone: null dereference, ud2, divide by zero, a jump into the
//! kernel half, a write to read-only text, and a write to the clock page (shared by every
//! process). The parent checks each was killed by a signal (not exited) and that it itself
//! still runs, and that the kernel's memory and process counters come back to where they
//! were (`common::without_leaks`).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use common::{Outcome, ctx, report, without_leaks};
use libc_shim::sys::{self, ExitStatus};

libc_shim::entry!(main);

const KINDS: [&str; 6] = [
    "null",
    "ud2",
    "div0",
    "kernel-jump",
    "write-text",
    "write-clock",
];

fn fault(kind: &str) -> i32 {
    match kind {
        // SAFETY (all arms): deliberately faulting is this child's whole purpose; the
        // kernel must kill it.
        "null" => unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) as i32 },
        // SAFETY: an invalid opcode on purpose; the kernel must kill this child.
        "ud2" => unsafe {
            core::arch::asm!("ud2");
            0
        },
        // SAFETY: a divide by zero on purpose; the kernel must kill this child.
        "div0" => unsafe {
            let zero: u64;
            core::arch::asm!("xor {0:e}, {0:e}", out(reg) zero);
            let r: u64;
            core::arch::asm!("div {d}", d = in(reg) zero, inout("rax") 1u64 => r, inout("rdx") 0u64 => _);
            r as i32
        },
        // SAFETY: a jump into the kernel half on purpose; the kernel must kill this child.
        "kernel-jump" => unsafe {
            core::arch::asm!("jmp {a}", a = in(reg) 0xffff_ffff_8000_0000u64, options(noreturn))
        },
        // SAFETY: a write to read-only text on purpose; the kernel must kill this child.
        "write-text" => unsafe {
            core::ptr::write_volatile(fault as *const () as *mut u8, 0xcc);
            0
        },
        "write-clock" => match libc_shim::ffi::clock::page_addr() {
            // SAFETY: a write to the read-only clock page (shared by every process) on
            // purpose; the kernel must kill this child and the page must stay intact.
            Some(page) => unsafe {
                core::ptr::write_volatile((page + 8) as *mut u64, 1);
                0
            },
            None => 201,
        },
        _ => 200,
    }
}

fn run() -> Outcome {
    for kind in KINDS {
        let pid = ctx(
            "spawn",
            sys::spawn("/bin/tests/faults", &["faults", kind], &[], &[]),
        )?;
        match ctx("wait", sys::waitpid(pid))? {
            (p, ExitStatus::Signaled(_)) if p == pid => {}
            other => {
                return Err(alloc::format!(
                    "{kind}: child ended as {other:?}, want a signal"
                ));
            }
        }
    }
    Ok(())
}

fn main(args: libc_shim::Args) -> i32 {
    if let Some(kind) = args.get(1) {
        return fault(kind);
    }
    report("faults", without_leaks(run))
}
