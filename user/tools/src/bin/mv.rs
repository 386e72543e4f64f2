// SPDX-License-Identifier: MIT OR Apache-2.0
//! `mv old new`: renames.
#![no_std]
#![no_main]

use libc_shim::{eprintln, sys};

libc_shim::entry!(main);

fn main(args: libc_shim::Args) -> i32 {
    let (Some(old), Some(new), 3) = (args.get(1), args.get(2), args.len()) else {
        eprintln!("usage: mv OLD NEW");
        return 2;
    };
    match sys::rename(old, new) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mv: {old} -> {new}: {e}");
            1
        }
    }
}
