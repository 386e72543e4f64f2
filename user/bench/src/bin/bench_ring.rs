// SPDX-License-Identifier: MIT OR Apache-2.0
//! Ring nops as peer-linux's b_uring: fill `batch` entries, one submit-and-wait for all,
//! reap them. `uring_nop_plain_b{1,8,32,128}` and, in polled mode,
//! `uring_nop_sqpoll_b{...}`. One process has one ring, so each mode runs in a child.
//! `bench_ring count BATCH OPS` runs a fixed number of nops, untimed, for profiles.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use libc_shim::abi::{Opcode, Sqe};
use libc_shim::{Ring, RingOptions, sys};

libc_shim::entry!(main);

/// A ring for the benchmark, polled or not.
fn setup(polled: bool) -> Result<Ring, libc_shim::abi::Errno> {
    Ring::setup(RingOptions {
        sq_entries: 256,
        cq_entries: 0,
        polled,
        sq_idle_us: 2_000_000,
    })
}

/// `iters` turns of: fill `batch` nops, one submit-and-wait for all, reap them. Notes the
/// first error in `error`.
fn batches(ring: &mut Ring, batch: u32, iters: u64, error: &mut Option<&'static str>) {
    for _ in 0..iters {
        for _ in 0..batch {
            if ring.try_push_scalar(&Sqe::new(Opcode::Nop)).is_err() {
                *error = Some("SQ full");
            }
        }
        if ring.submit_and_wait(batch).is_err() {
            *error = Some("ring_enter failed");
        }
        // As the peer's: every ready completion, then one head update.
        let mut seen = 0;
        while seen < batch {
            seen += ring.reap_all(|cqe, _| {
                if cqe.res < 0 {
                    *error = Some("a Nop failed");
                }
            });
            if seen < batch {
                let _ = ring.submit_and_wait(batch - seen);
            }
        }
    }
}

fn mode(s: &common::Settings, polled: bool) {
    let tag = if polled { "sqpoll" } else { "plain" };
    let mut ring = match setup(polled) {
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
            batches(&mut ring, batch, iters, &mut error);
            sys::now_ns() - t0
        });
        if let Some(e) = error {
            libc_shim::println!("NOTE {name} saw error {e}");
        }
    }
}

/// `bench_ring count BATCH OPS`: exactly OPS nops (rounded down to whole batches) in
/// batches of BATCH, untimed, for exact per-operation profiles (`bench/tcg-profile`).
fn count(batch: Option<&str>, ops: Option<&str>) -> i32 {
    let (Some(Ok(batch)), Some(Ok(ops))) =
        (batch.map(str::parse::<u32>), ops.map(str::parse::<u64>))
    else {
        libc_shim::eprintln!("usage: bench_ring count BATCH OPS");
        return 2;
    };
    if batch == 0 || batch > 256 {
        libc_shim::eprintln!("bench_ring: BATCH must be 1..=256");
        return 2;
    }
    let mut ring = match setup(false) {
        Ok(r) => r,
        Err(e) => {
            libc_shim::eprintln!("bench_ring: ring setup: {e}");
            return 1;
        }
    };
    let mut error = None;
    batches(&mut ring, batch, ops / batch as u64, &mut error);
    match error {
        Some(e) => {
            libc_shim::eprintln!("bench_ring: {e}");
            1
        }
        None => 0,
    }
}

fn main(args: libc_shim::Args) -> i32 {
    let s = common::Settings::from_env(&args);
    match args.get(1) {
        Some("plain") => mode(&s, false),
        Some("sqpoll") => mode(&s, true),
        Some("count") => return count(args.get(2), args.get(3)),
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
