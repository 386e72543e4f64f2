// SPDX-License-Identifier: MIT OR Apache-2.0
//! Round trips between two processes: `pipe_rtt_samecpu` (1 byte each way over two
//! pipes; the kernel places both processes, so "samecpu" is the name peer-linux uses for
//! the comparable case) and `port_rtt` (user-port call/reply).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

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

fn main(args: libc_shim::Args) -> i32 {
    match args.get(1) {
        Some("echo-pipe") => return echo_pipe(),
        Some("echo-port") => return echo_port(),
        _ => {}
    }
    let s = common::Settings::from_env(&args);
    // Pipes.
    match (sys::pipe(), sys::pipe()) {
        (Ok((a_r, a_w)), Ok((b_r, b_w))) => {
            match sys::spawn(
                "/bin/bench/bench_ipc",
                &["bench_ipc", "echo-pipe"],
                &[],
                &[(0, a_r), (1, b_w), (2, 2)],
            ) {
                Ok(pid) => {
                    let _ = sys::close(a_r);
                    let _ = sys::close(b_w);
                    common::run("pipe_rtt_samecpu", &s, 1, |iters| {
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
                Err(e) => common::fail("pipe_rtt_samecpu", &e),
            }
        }
        (Err(e), _) | (_, Err(e)) => common::fail("pipe_rtt_samecpu", &e),
    }
    // User port.
    match sys::port_create() {
        Ok(port) => match sys::spawn(
            "/bin/bench/bench_ipc",
            &["bench_ipc", "echo-port"],
            &[],
            &[(0, 0), (1, 1), (2, 2), (3, port)],
        ) {
            Ok(pid) => {
                common::run("port_rtt", &s, 1, |iters| {
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
            Err(e) => common::fail("port_rtt", &e),
        },
        Err(e) => common::fail("port_rtt", &e),
    }
    0
}
