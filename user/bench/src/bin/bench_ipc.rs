// SPDX-License-Identifier: MIT OR Apache-2.0
//! Round trips between two processes, both pinned with `SPAWN_CPU`: `pipe_rtt_samecpu` and
//! `pipe_rtt_crosscpu` (1 byte each way over two pipes, as peer-linux's b_ipc), and
//! `port_rtt_samecpu` and `port_rtt_crosscpu` (user-port call/reply).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use libc_shim::abi::ring::spawn_on_cpu;
use libc_shim::sys;

libc_shim::entry!(main);

fn echo_pipe() -> i32 {
    let mut b = [0u8; 1];
    while let Ok(1) = sys::read(0, &mut b) {
        if sys::write(1, &b) != Ok(1) {
            break;
        }
    }
    0
}

fn echo_port() -> i32 {
    let mut buf = [0u8; 64];
    loop {
        match sys::port_receive(3, &mut buf) {
            Ok((n, token)) if token != 0 => {
                if sys::port_reply(3, token, &buf[..n]).is_err() {
                    return 1;
                }
            }
            Ok(_) => return 0, // a send without reply: stop
            Err(_) => return 1,
        }
    }
}

/// Pipe round trips with the echo child on CPU `echo_cpu` (this process was placed by
/// its parent).
fn pipe_bench(name: &str, s: &common::Settings, echo_cpu: u16) {
    let (a_r, a_w, b_r, b_w) = match (sys::pipe(), sys::pipe()) {
        (Ok((a_r, a_w)), Ok((b_r, b_w))) => (a_r, a_w, b_r, b_w),
        (Err(e), _) | (_, Err(e)) => return common::fail(name, &e),
    };
    let pid = match sys::spawn_with_flags(
        "/bin/bench/bench_ipc",
        &["bench_ipc", "echo-pipe"],
        &[],
        &[(0, a_r), (1, b_w), (2, 2)],
        spawn_on_cpu(echo_cpu),
    ) {
        Ok(pid) => pid,
        Err(e) => return common::fail(name, &e),
    };
    let _ = sys::close(a_r);
    let _ = sys::close(b_w);
    common::run(name, s, 1, |iters| {
        let mut b = [b'x'];
        let t0 = sys::now_ns();
        for _ in 0..iters {
            if sys::write(a_w, &b) != Ok(1) || sys::read(b_r, &mut b) != Ok(1) {
                break;
            }
        }
        sys::now_ns() - t0
    });
    let _ = sys::close(a_w);
    let _ = sys::close(b_r);
    let _ = sys::waitpid(pid);
}

/// User-port call/reply round trips with the server child on CPU `echo_cpu`.
fn port_bench(name: &str, s: &common::Settings, echo_cpu: u16) {
    let port = match sys::port_create() {
        Ok(port) => port,
        Err(e) => return common::fail(name, &e),
    };
    let pid = match sys::spawn_with_flags(
        "/bin/bench/bench_ipc",
        &["bench_ipc", "echo-port"],
        &[],
        &[(0, 0), (1, 1), (2, 2), (3, port)],
        spawn_on_cpu(echo_cpu),
    ) {
        Ok(pid) => pid,
        Err(e) => return common::fail(name, &e),
    };
    common::run(name, s, 1, |iters| {
        let mut reply = [0u8; 8];
        let t0 = sys::now_ns();
        for _ in 0..iters {
            if sys::port_call(port, b"ping", &mut reply).is_err() {
                break;
            }
        }
        sys::now_ns() - t0
    });
    let _ = sys::port_send(port, b"stop");
    let _ = sys::waitpid(pid);
}

fn main(args: libc_shim::Args) -> i32 {
    let s = common::Settings::from_env(&args);
    let echo_cpu = || args.get(2).and_then(|c| c.parse().ok()).unwrap_or(0u16);
    match args.get(1) {
        Some("echo-pipe") => return echo_pipe(),
        Some("echo-port") => return echo_port(),
        Some(name) if name.starts_with("pipe_") => {
            pipe_bench(name, &s, echo_cpu());
            return 0;
        }
        Some(name) if name.starts_with("port_") => {
            port_bench(name, &s, echo_cpu());
            return 0;
        }
        _ => {}
    }
    // Each measurement runs in a child pinned to CPU 0, its echo pinned to CPU 0 (same
    // CPU) or CPU 1 (across CPUs), as peer-linux pins with sched_setaffinity.
    let cpus = sys::sys_info().map_or(1, |i| i.cpus);
    let env: alloc::vec::Vec<&str> = args
        .env()
        .filter_map(|e| core::str::from_utf8(e).ok())
        .collect();
    for (name, echo) in [
        ("pipe_rtt_samecpu", 0u16),
        ("pipe_rtt_crosscpu", 1),
        ("port_rtt_samecpu", 0),
        ("port_rtt_crosscpu", 1),
    ] {
        if u32::from(echo) >= cpus {
            common::fail(name, &"only one CPU");
            continue;
        }
        let echo_arg = alloc::format!("{echo}");
        match sys::spawn_with_flags(
            "/bin/bench/bench_ipc",
            &["bench_ipc", name, &echo_arg],
            &env,
            &[],
            spawn_on_cpu(0),
        ) {
            Ok(pid) => {
                let _ = sys::waitpid(pid);
            }
            Err(e) => common::fail(name, &e),
        }
    }
    0
}
