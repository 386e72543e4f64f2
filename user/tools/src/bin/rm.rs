// SPDX-License-Identifier: MIT OR Apache-2.0
//! `rm [-d] paths...`: removes files (with -d, empty directories too).
#![no_std]
#![no_main]

use libc_shim::abi::Errno;
use libc_shim::{eprintln, sys};

libc_shim::entry!(main);

fn main(args: libc_shim::Args) -> i32 {
    let dirs = args.get(1) == Some("-d");
    let mut status = 0;
    for path in args.iter().skip(if dirs { 2 } else { 1 }) {
        let r = match sys::unlink(path) {
            Err(Errno::IsDir) if dirs => sys::rmdir(path),
            r => r,
        };
        if let Err(e) = r {
            eprintln!("rm: {path}: {e}");
            status = 1;
        }
    }
    status
}
