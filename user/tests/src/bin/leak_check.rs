// SPDX-License-Identifier: MIT OR Apache-2.0
//! The leak check of the reliability tests (`common::without_leaks`) can fail: a body that
//! keeps a descriptor open each run (one kernel `OpenFile` more each time) and a body that
//! leaves a child unreaped (one process more) are both reported as leaks, and a body that
//! cleans up after itself is not.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use alloc::vec::Vec;

use common::{Outcome, ctx, report, without_leaks};
use libc_shim::abi::OpenFlags;
use libc_shim::sys;

libc_shim::entry!(main);

fn run() -> Outcome {
    let mut fds: Vec<i32> = Vec::with_capacity(8);
    let kept = without_leaks(|| {
        fds.push(ctx(
            "open",
            sys::open("/etc/motd", OpenFlags::READ_ONLY, 0),
        )?);
        Ok(())
    });
    for fd in fds.drain(..) {
        ctx("close", sys::close(fd))?;
    }
    match kept {
        Err(reason) if reason.starts_with("leak") => {}
        other => {
            return Err(alloc::format!(
                "a kept descriptor was not a leak: {other:?}"
            ));
        }
    }

    let mut children: Vec<i32> = Vec::with_capacity(8);
    let unreaped = without_leaks(|| {
        children.push(ctx("spawn", sys::spawn("/bin/true", &["true"], &[], &[]))?);
        Ok(())
    });
    for pid in children.drain(..) {
        ctx("wait", sys::waitpid(pid))?;
    }
    match unreaped {
        Err(reason) if reason.starts_with("leak") => {}
        other => {
            return Err(alloc::format!(
                "an unreaped child was not a leak: {other:?}"
            ));
        }
    }

    without_leaks(|| {
        let fd = ctx("open", sys::open("/etc/motd", OpenFlags::READ_ONLY, 0))?;
        ctx("close", sys::close(fd))?;
        let pid = ctx("spawn", sys::spawn("/bin/true", &["true"], &[], &[]))?;
        ctx("wait", sys::waitpid(pid))?;
        Ok(())
    })
    .map_err(|e| alloc::format!("a clean body: {e}"))
}

fn main(_args: libc_shim::Args) -> i32 {
    report("leak_check", run())
}
