// SPDX-License-Identifier: MIT OR Apache-2.0
//! The benchmark method of shared/peer-linux/bench/common.h: calibrate an iteration count
//! so one sample lasts about 40 ms, warm up, take 7 samples, print
//! `RESULT <name> ns_per_op=<median> min=<min> max=<max> samples=<n> iters=<iters>`.
//! Environment: BENCH_SAMPLES (3..=101), BENCH_TARGET_MS.
#![allow(dead_code)]

use alloc::vec::Vec;

use libc_shim::Args;

/// Settings from the environment.
pub struct Settings {
    /// Samples per benchmark.
    pub samples: usize,
    /// Target duration of one sample, in ns.
    pub target_ns: u64,
}

impl Settings {
    /// Reads BENCH_SAMPLES and BENCH_TARGET_MS.
    pub fn from_env(args: &Args) -> Settings {
        let samples = args
            .var("BENCH_SAMPLES")
            .and_then(|s| s.parse().ok())
            .unwrap_or(7usize);
        let ms = args
            .var("BENCH_TARGET_MS")
            .and_then(|s| s.parse().ok())
            .unwrap_or(40u64);
        Settings {
            samples: samples.clamp(3, 101),
            target_ns: ms.max(1) * 1_000_000,
        }
    }
}

/// Runs `body(iters)` (which returns the ns it measured) as peer-linux does and prints
/// the RESULT line. `ops_per_iter` divides each sample (e.g. the ring batch).
pub fn run(name: &str, s: &Settings, ops_per_iter: u64, mut body: impl FnMut(u64) -> u64) {
    let mut iters = 1u64;
    loop {
        let t = body(iters);
        if t >= s.target_ns / 8 || iters >= 1 << 34 {
            break;
        }
        iters *= if t < s.target_ns / 1000 { 16 } else { 2 };
    }
    let t = body(iters).max(1); // warm-up at the final size
    iters = ((iters as u128 * s.target_ns as u128 / t as u128) as u64).max(1);
    let mut v: Vec<f64> = (0..s.samples)
        .map(|_| body(iters) as f64 / (iters as f64 * ops_per_iter as f64))
        .collect();
    report(name, &mut v, iters);
}

/// Prints a RESULT line for per-op values (sorts them).
pub fn report(name: &str, v: &mut [f64], iters: u64) {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(core::cmp::Ordering::Equal));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    };
    libc_shim::println!(
        "RESULT {name} ns_per_op={median:.3} min={:.3} max={:.3} samples={n} iters={iters}",
        v[0],
        v[n - 1]
    );
}

/// Prints `FAIL <name> <reason>`.
pub fn fail(name: &str, why: &dyn core::fmt::Display) {
    libc_shim::println!("FAIL {name} {why}");
}
