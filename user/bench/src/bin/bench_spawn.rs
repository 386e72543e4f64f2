// SPDX-License-Identifier: MIT OR Apache-2.0
//! `posix_spawn_wait`: spawn `/bin/true` and wait for it (peer-linux's name for the same).
//! `bench_spawn count N` does N of them, untimed, for profiles.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use libc_shim::sys;

libc_shim::entry!(main);

fn main(args: libc_shim::Args) -> i32 {
    // `bench_spawn count N`: exactly N spawn+wait pairs, untimed (for bench/tcg-profile's
    // per-operation counts).
    if let (Some("count"), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse().ok())) {
        for _ in 0..n {
            if sys::spawn("/bin/true", &["true"], &[], &[])
                .and_then(sys::waitpid)
                .is_err()
            {
                return 1;
            }
        }
        return 0;
    }
    let s = common::Settings::from_env(&args);
    if let Err(e) = sys::spawn("/bin/true", &["true"], &[], &[]).and_then(sys::waitpid) {
        common::fail("posix_spawn_wait", &e);
        return 0;
    }
    common::run("posix_spawn_wait", &s, 1, |iters| {
        let t0 = sys::now_ns();
        for _ in 0..iters {
            if let Ok(pid) = sys::spawn("/bin/true", &["true"], &[], &[]) {
                let _ = sys::waitpid(pid);
            }
        }
        sys::now_ns() - t0
    });
    0
}
