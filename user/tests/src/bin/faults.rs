// SPDX-License-Identifier: MIT OR Apache-2.0
//! Faulting children die alone: null dereference, ud2, divide by zero, a jump into the
//! kernel half, a write to read-only text (shared with this parent, which must keep
//! running it), a write to the clock page (shared by every process), and a stack that
//! runs past its 256 KiB into the guard page. The parent checks each was killed by a
//! signal (not exited) and that it itself still runs, and that the kernel's memory and
//! process counters come back to where they were (`common::without_leaks`). Stacks and
//! anonymous mappings are filled on first touch: a child that uses 200 KiB of its stack
//! and touches a 16 MiB mapping here and there exits normally.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use common::{Outcome, ctx, report, without_leaks};
use libc_shim::sys::{self, ExitStatus};

libc_shim::entry!(main);

const KINDS: [&str; 7] = [
    "null",
    "ud2",
    "div0",
    "kernel-jump",
    "write-text",
    "write-clock",
    "stack-overflow",
];

/// Recurses `depth` times with a 4 KiB frame each; returns a sum so nothing is elided.
#[inline(never)]
fn deep(depth: u32) -> u64 {
    let mut frame = [0u8; 4096];
    frame[depth as usize % 4096] = depth as u8;
    core::hint::black_box(&mut frame);
    if depth == 0 {
        return frame[0] as u64;
    }
    frame[depth as usize % 4096] as u64 + deep(depth - 1)
}

/// Children that must exit with 0: memory that is filled on first touch works.
fn lazy_memory(kind: &str) -> i32 {
    match kind {
        // 50 frames of 4 KiB: about 200 KiB of the 256 KiB stack, page by page.
        "deep-stack" => (deep(50) == (0..=50u64).map(|d| d % 256).sum::<u64>()) as i32 - 1,
        "sparse-mmap" => {
            const LEN: usize = 16 << 20;
            let Ok(base) = sys::mmap_anonymous(LEN) else {
                return 3;
            };
            for off in (0..LEN).step_by(1 << 20) {
                let p = (base + off + 123) as *mut u8;
                // SAFETY: inside the mapping just made (read+write).
                unsafe {
                    if core::ptr::read_volatile(p) != 0 {
                        return 4;
                    }
                    core::ptr::write_volatile(p, 7);
                    if core::ptr::read_volatile(p) != 7 {
                        return 5;
                    }
                }
            }
            // A read into an untouched page of it, by the kernel, fills it too.
            let Ok((r, w)) = sys::pipe() else {
                return 6;
            };
            let msg = b"filled by a read";
            let at = base + (5 << 20) + 8192;
            // SAFETY: 16 bytes inside the mapping, a page nothing has touched yet.
            let into = unsafe { core::slice::from_raw_parts_mut(at as *mut u8, msg.len()) };
            if sys::write_all(w, msg).is_err() || sys::read(r, into) != Ok(msg.len()) {
                return 7;
            }
            if into != msg {
                return 8;
            }
            let _ = (sys::close(r), sys::close(w));
            match sys::munmap(base, LEN) {
                Ok(()) => 0,
                Err(_) => 9,
            }
        }
        _ => 200,
    }
}

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
        "stack-overflow" => deep(1000) as i32,
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
    for kind in ["deep-stack", "sparse-mmap"] {
        let pid = ctx(
            "spawn",
            sys::spawn("/bin/tests/faults", &["faults", kind], &[], &[]),
        )?;
        match ctx("wait", sys::waitpid(pid))? {
            (p, ExitStatus::Exited(0)) if p == pid => {}
            other => {
                return Err(alloc::format!(
                    "{kind}: child ended as {other:?}, want exit 0"
                ));
            }
        }
    }
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
        return match kind {
            "deep-stack" | "sparse-mmap" => lazy_memory(kind),
            _ => fault(kind),
        };
    }
    report("faults", without_leaks(run))
}
