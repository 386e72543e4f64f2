// SPDX-License-Identifier: MIT OR Apache-2.0
//! `oncpu CPU PROGRAM [ARG...]`: runs PROGRAM on CPU (as Linux's `taskset -c CPU`),
//! waits for it and exits with its status (128 + signal if it was killed). PROGRAM
//! without a `/` is looked up in `/bin`, as the shell does; it gets this program's
//! environment and descriptors 0, 1 and 2, and stays in the console's foreground if
//! this program is in it (^C ends both).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

use libc_shim::abi::ring::spawn_on_cpu;
use libc_shim::{eprintln, sys};

libc_shim::entry!(main);

const USAGE: &str = "usage: oncpu CPU PROGRAM [ARG...]";

fn main(args: libc_shim::Args) -> i32 {
    let (Some(cpu), Some(name)) = (args.get(1), args.get(2)) else {
        eprintln!("{USAGE}");
        return 2;
    };
    let Ok(cpu) = cpu.parse::<u16>() else {
        eprintln!("oncpu: not a CPU number: {cpu}\n{USAGE}");
        return 2;
    };
    let path = sys::command_path(name);
    let argv: Vec<&str> = args.iter().skip(2).collect();
    let envp: Vec<&str> = args
        .env()
        .filter_map(|entry| core::str::from_utf8(entry).ok())
        .collect();
    let pid = match sys::spawn_with_flags(&path, &argv, &envp, &[], spawn_on_cpu(cpu)) {
        Ok(pid) => pid,
        Err(e) => {
            eprintln!("oncpu: {path} on CPU {cpu}: {e}");
            return 127;
        }
    };
    match sys::waitpid(pid) {
        Ok((_, status)) => status.code(),
        Err(e) => {
            eprintln!("oncpu: wait {pid}: {e}");
            1
        }
    }
}
