// SPDX-License-Identifier: MIT OR Apache-2.0
//! Ring nops as peer-linux's b_uring: fill `batch` entries, one submit-and-wait for all,
//! reap them. `uring_nop_plain_b{1,8,32,128}` and, in polled mode,
//! `uring_nop_sqpoll_b{...}`. One process has one ring, so each mode runs in a child.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use libc_shim::abi::{Opcode, Sqe};
use libc_shim::{Ring, RingOptions, sys};

libc_shim::entry!(main);

fn mode(s: &common::Settings, polled: bool) {
    let tag = if polled { "sqpoll" } else { "plain" };
    let ring = Ring::setup(RingOptions {
        sq_entries: 256,
        cq_entries: 0,
        polled,
        sq_idle_us: 2_000_000,
    });
    let mut ring = match ring {
        Ok(r) => r,
        Err(e) => {
            for b in [1, 8, 32, 128] {
                common::fail(&alloc::format!("uring_nop_{tag}_b{b}"), &e);
            }
            return;
        }
    };
    for batch in [1u32, 8, 32, 128] {
        let name = alloc::format!("uring_nop_{tag}_b{batch}");
        let mut error = None;
        common::run(&name, s, batch as u64, |iters| {
            let t0 = sys::now_ns();
            for _ in 0..iters {
                for _ in 0..batch {
                    if ring.try_push_scalar(&Sqe::new(Opcode::Nop)).is_err() {
                        error = Some("SQ full");
                    }
                }
                if ring.submit_and_wait(batch).is_err() {
                    error = Some("ring_enter failed");
                }
                let mut seen = 0;
                while seen < batch {
                    match ring.try_reap() {
                        Some(_) => seen += 1,
                        None => {
                            let _ = ring.submit_and_wait(batch - seen);
                        }
                    }
                }
            }
            sys::now_ns() - t0
        });
        if let Some(e) = error {
            libc_shim::println!("NOTE {name} saw error {e}");
        }
    }
}

fn main(args: libc_shim::Args) -> i32 {
    let s = common::Settings::from_env(&args);
    match args.get(1) {
        Some("plain") => mode(&s, false),
        Some("sqpoll") => mode(&s, true),
        _ => {
            let env: alloc::vec::Vec<&str> = args
                .env()
                .filter_map(|e| core::str::from_utf8(e).ok())
                .collect();
            for m in ["plain", "sqpoll"] {
                match sys::spawn("/bin/bench/bench_ring", &["bench_ring", m], &env, &[]) {
                    Ok(pid) => {
                        let _ = sys::waitpid(pid);
                    }
                    Err(e) => common::fail(&alloc::format!("uring_nop_{m}"), &e),
                }
            }
        }
    }
    0
}
