// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cat [files...]`: copies each file (or fd 0 without arguments) to fd 1.
#![no_std]
#![no_main]

use libc_shim::abi::{Errno, OpenFlags};
use libc_shim::{eprintln, sys};

libc_shim::entry!(main);

fn copy(fd: i32) -> Result<(), Errno> {
    let mut buf = [0u8; 4096];
    loop {
        match sys::read(fd, &mut buf)? {
            0 => return Ok(()),
            n => sys::write_all(1, &buf[..n])?,
        }
    }
}

fn main(args: libc_shim::Args) -> i32 {
    if args.len() < 2 {
        return match copy(0) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("cat: {e}");
                1
            }
        };
    }
    let mut status = 0;
    for path in args.iter().skip(1) {
        let result = sys::open(path, OpenFlags::READ_ONLY, 0).and_then(|fd| {
            let r = copy(fd);
            let _ = sys::close(fd);
            r
        });
        if let Err(e) = result {
            eprintln!("cat: {path}: {e}");
            status = 1;
        }
    }
    status
}
