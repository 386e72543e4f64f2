// SPDX-License-Identifier: MIT OR Apache-2.0
//! `init`: the first process. fds 0, 1, 2 are the console (the kernel opens /dev/console).
//!
//! 1. If `/etc/rc` exists, runs it with `/bin/sh /etc/rc` and waits for it.
//! 2. Starts `/bin/sh` on the console and starts a new one whenever it exits.
//! 3. Reaps every other child (orphans are re-parented to init) with `wait(any)`.
#![no_std]
#![no_main]

use libc_shim::abi::Errno;
use libc_shim::{Args, eprintln, sys};

libc_shim::entry!(main);

const ENV: &[&str] = &["PATH=/bin", "HOME=/"];

fn start(argv: &[&str]) -> Option<i32> {
    match sys::spawn(argv[0], argv, ENV, &[]) {
        Ok(pid) => Some(pid),
        Err(e) => {
            eprintln!("init: cannot start {}: {e}", argv[0]);
            None
        }
    }
}

fn main(_args: Args) -> i32 {
    if sys::stat("/etc/rc").is_ok()
        && let Some(rc) = start(&["/bin/sh", "/etc/rc"])
    {
        loop {
            match sys::wait() {
                Ok((pid, _)) if pid == rc => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    let mut shell = start(&["/bin/sh"]);
    loop {
        match sys::wait() {
            Ok((pid, _)) if Some(pid) == shell => {
                shell = start(&["/bin/sh"]);
            }
            Ok(_) => {} // an orphan
            Err(Errno::Child) => {
                // No children at all: the shell could not be started. Retry slowly.
                let _ = sys::sleep_ms(1000);
                shell = start(&["/bin/sh"]);
            }
            Err(Errno::Intr) => {}
            Err(e) => {
                eprintln!("init: wait: {e}");
                let _ = sys::sleep_ms(1000);
            }
        }
    }
}
