// SPDX-License-Identifier: MIT OR Apache-2.0
//! `false`: exit status 1.
#![no_std]
#![no_main]

libc_shim::entry!(main);

fn main(_args: libc_shim::Args) -> i32 {
    1
}
