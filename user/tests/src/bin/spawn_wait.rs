// SPDX-License-Identifier: MIT OR Apache-2.0
//! spawn + wait: exit statuses of true, false and of this program re-run with a code;
//! a pipe between two processes (cat copies what we write); this program's shared text
//! refuses write permission.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use common::{Outcome, ctx, expect_eq, report};
use libc_shim::abi::ring::{PROT_EXEC, PROT_READ, PROT_WRITE};
use libc_shim::sys::{self, ExitStatus};

libc_shim::entry!(main);

/// Spawns `path` with `argv`, waits for it and expects it to exit with `code`.
fn exits_with(what: &str, path: &str, argv: &[&str], code: u8) -> Outcome {
    let pid = ctx(what, sys::spawn(path, argv, &[], &[]))?;
    expect_eq(
        what,
        ctx("wait", sys::waitpid(pid))?,
        (pid, ExitStatus::Exited(code)),
    )
}

fn run() -> Outcome {
    exits_with("true", "/bin/true", &["true"], 0)?;
    exits_with("false", "/bin/false", &["false"], 1)?;
    let me = "/bin/tests/spawn_wait";
    exits_with("exit 42", me, &["spawn_wait", "exit", "42"], 42)?;
    // This program's code is shared with the child just run (one copy of the text for
    // every process that loads it): it cannot be made writable, only read and run.
    let code_page = (run as *const () as usize) & !4095;
    expect_eq(
        "mprotect text writable",
        sys::mprotect(code_page, 4096, PROT_READ | PROT_WRITE | PROT_EXEC),
        Err(libc_shim::abi::Errno::Acces),
    )?;
    ctx(
        "mprotect text read+exec",
        sys::mprotect(code_page, 4096, PROT_READ | PROT_EXEC),
    )?;
    exits_with(
        "exit 7, shared text intact",
        me,
        &["spawn_wait", "exit", "7"],
        7,
    )?;
    expect_eq(
        "missing",
        sys::spawn("/bin/does-not-exist", &["x"], &[], &[]).err(),
        Some(libc_shim::abi::Errno::NoEnt),
    )?;
    // Pipes between processes: we write to cat's stdin, read its stdout.
    let (in_r, in_w) = ctx("pipe", sys::pipe())?;
    let (out_r, out_w) = ctx("pipe", sys::pipe())?;
    let cat = ctx(
        "spawn cat",
        sys::spawn("/bin/cat", &["cat"], &[], &[(0, in_r), (1, out_w), (2, 2)]),
    )?;
    ctx("close", sys::close(in_r))?;
    ctx("close", sys::close(out_w))?;
    let msg = b"through two pipes and a process\n";
    ctx("write", sys::write_all(in_w, msg))?;
    ctx("close", sys::close(in_w))?;
    let mut got = alloc::vec::Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match ctx("read", sys::read(out_r, &mut buf))? {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    expect_eq("pipe data", got.as_slice(), msg.as_slice())?;
    expect_eq(
        "cat",
        ctx("wait", sys::waitpid(cat))?,
        (cat, ExitStatus::Exited(0)),
    )?;
    Ok(())
}

fn main(args: libc_shim::Args) -> i32 {
    if args.get(1) == Some("exit") {
        return args.get(2).and_then(|c| c.parse().ok()).unwrap_or(99);
    }
    report("spawn_wait", run())
}
