// SPDX-License-Identifier: MIT OR Apache-2.0
//! `env`: the environment, one `NAME=value` per line. With the shell's assignments
//! (`NAME=value env`) it shows what a program started that way receives.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

libc_shim::entry!(main);

fn main(args: libc_shim::Args) -> i32 {
    let mut out = Vec::new();
    for entry in args.env() {
        out.extend_from_slice(entry);
        out.push(b'\n');
    }
    match libc_shim::sys::write_all(1, &out) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
