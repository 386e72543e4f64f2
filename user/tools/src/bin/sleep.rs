// SPDX-License-Identifier: MIT OR Apache-2.0
//! `sleep SECONDS`: waits; SECONDS may have a fraction (`0.25`).
#![no_std]
#![no_main]

use libc_shim::{eprintln, sys};

libc_shim::entry!(main);

/// Seconds with an optional fraction, in nanoseconds.
fn parse_ns(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let mut ns = whole.parse::<u64>().ok()?.checked_mul(1_000_000_000)?;
    let mut scale = 100_000_000;
    for c in frac.chars() {
        ns += c.to_digit(10)? as u64 * scale;
        scale /= 10;
    }
    Some(ns)
}

fn main(args: libc_shim::Args) -> i32 {
    let Some(ns) = args.get(1).and_then(parse_ns) else {
        eprintln!("usage: sleep SECONDS");
        return 2;
    };
    match sys::nanosleep(ns) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("sleep: {e}");
            1
        }
    }
}
