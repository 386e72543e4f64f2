// SPDX-License-Identifier: MIT OR Apache-2.0
//! `echo [-n] args...`: the arguments separated by spaces, then a newline (not with -n).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;

libc_shim::entry!(main);

fn main(args: libc_shim::Args) -> i32 {
    let mut words: Vec<&str> = args.iter().skip(1).collect();
    let newline = words.first() != Some(&"-n");
    if !newline {
        words.remove(0);
    }
    let mut line = words.join(" ");
    if newline {
        line.push('\n');
    }
    match libc_shim::sys::write_all(1, line.as_bytes()) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}
