// SPDX-License-Identifier: MIT OR Apache-2.0
//! `mkdir [-p] dirs...`: creates directories (with -p, missing parents too, and an
//! existing directory is not an error).
#![no_std]
#![no_main]

use libc_shim::abi::Errno;
use libc_shim::{eprintln, sys};

libc_shim::entry!(main);

fn mkdir_parents(path: &str) -> Result<(), Errno> {
    for (i, c) in path.char_indices().skip(1) {
        if c == '/' {
            match sys::mkdir(&path[..i], 0o755) {
                Ok(()) | Err(Errno::Exist) => {}
                Err(e) => return Err(e),
            }
        }
    }
    match sys::mkdir(path, 0o755) {
        Ok(()) | Err(Errno::Exist) => Ok(()),
        Err(e) => Err(e),
    }
}

fn main(args: libc_shim::Args) -> i32 {
    let parents = args.get(1) == Some("-p");
    let mut status = 0;
    for path in args.iter().skip(if parents { 2 } else { 1 }) {
        let r = if parents {
            mkdir_parents(path.trim_end_matches('/'))
        } else {
            sys::mkdir(path, 0o755)
        };
        if let Err(e) = r {
            eprintln!("mkdir: {path}: {e}");
            status = 1;
        }
    }
    status
}
