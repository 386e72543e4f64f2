// SPDX-License-Identifier: MIT OR Apache-2.0
//! tmpfs figures as peer-linux's b_file: `file_write_64M_4k`, `file_read_64M_4k`,
//! `smallfile_create`, `smallfile_unlink`, `smallfile_open_close`, `smallfile_stat`.
//! Usage: bench_file [DIR] (default /tmp, created if missing). The big file is 64 MiB
//! by default; BENCH_FILE_MB changes it (the RESULT name keeps peer-linux's).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use alloc::format;
use alloc::string::String;

use libc_shim::abi::OpenFlags;
use libc_shim::sys;

libc_shim::entry!(main);

const CHUNK: usize = 4096;
const NSMALL: u64 = 1000;

fn create_flags() -> OpenFlags {
    OpenFlags::WRITE_ONLY
        .union(OpenFlags::CREATE)
        .union(OpenFlags::TRUNCATE)
}

fn make_file(path: &str, buf: &[u8]) -> bool {
    match sys::open(path, create_flags(), 0o644) {
        Ok(fd) => {
            let ok = sys::write(fd, &buf[..100]) == Ok(100);
            let _ = sys::close(fd);
            ok
        }
        Err(_) => false,
    }
}

fn main(args: libc_shim::Args) -> i32 {
    let s = common::Settings::from_env(&args);
    let dir = String::from(args.get(1).unwrap_or("/tmp"));
    let _ = sys::mkdir(&dir, 0o755);
    let mb: usize = args
        .var("BENCH_FILE_MB")
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let big_len = mb << 20;
    let big = format!("{dir}/big");
    let buf = alloc::vec![0x5au8; CHUNK];
    let mut rbuf = alloc::vec![0u8; CHUNK];
    // `bench_file DIR MODE N`: N operations of one kind and nothing else worth counting
    // (for bench/tcg-profile's per-operation counts). MODE: `pread` (4 KiB over a 64 KiB
    // file), `pwrite` (the same, writing), `stat`, `open` (open+close).
    if let (Some(mode @ ("pread" | "pwrite" | "stat" | "open")), Some(n)) =
        (args.get(2), args.get(3).and_then(|n| n.parse().ok()))
    {
        let path = format!("{dir}/pread");
        let Ok(fd) = sys::open(
            &path,
            OpenFlags::READ_WRITE
                .union(OpenFlags::CREATE)
                .union(OpenFlags::TRUNCATE),
            0o644,
        ) else {
            return 1;
        };
        for _ in 0..16 {
            let _ = sys::write(fd, &buf);
        }
        for i in 0..n {
            let at = (i % 16) * CHUNK as u64;
            let _ = match mode {
                "pread" => sys::pread(fd, &mut rbuf, at),
                "pwrite" => sys::pwrite(fd, &buf, at),
                "stat" => sys::stat(&path).map(|_| 0),
                _ => sys::open(&path, OpenFlags::READ_ONLY, 0)
                    .and_then(sys::close)
                    .map(|_| 0),
            };
        }
        let _ = sys::close(fd);
        let _ = sys::unlink(&path);
        return 0;
    }
    let bytes = CHUNK as f64;
    let _ = bytes;
    // Each op is one 4 KiB write (read); iterations are whole files as in peer-linux.
    common::run("file_write_64M_4k", &s, (big_len / CHUNK) as u64, |iters| {
        let mut total = 0;
        for _ in 0..iters {
            let _ = sys::unlink(&big);
            let t0 = sys::now_ns();
            if let Ok(fd) = sys::open(&big, create_flags(), 0o644) {
                for _ in 0..big_len / CHUNK {
                    let _ = sys::write(fd, &buf);
                }
                let _ = sys::close(fd);
            }
            total += sys::now_ns() - t0;
        }
        total
    });
    common::run("file_read_64M_4k", &s, (big_len / CHUNK) as u64, |iters| {
        let t0 = sys::now_ns();
        for _ in 0..iters {
            if let Ok(fd) = sys::open(&big, OpenFlags::READ_ONLY, 0) {
                for _ in 0..big_len / CHUNK {
                    let _ = sys::read(fd, &mut rbuf);
                }
                let _ = sys::close(fd);
            }
        }
        sys::now_ns() - t0
    });
    let _ = sys::unlink(&big);
    common::run("smallfile_create", &s, 1, |iters| {
        let t0 = sys::now_ns();
        for i in 0..iters {
            make_file(&format!("{dir}/c{i:07}"), &buf);
        }
        let t = sys::now_ns() - t0;
        for i in 0..iters {
            let _ = sys::unlink(&format!("{dir}/c{i:07}"));
        }
        t
    });
    common::run("smallfile_unlink", &s, 1, |iters| {
        for i in 0..iters {
            make_file(&format!("{dir}/u{i:07}"), &buf);
        }
        let t0 = sys::now_ns();
        for i in 0..iters {
            let _ = sys::unlink(&format!("{dir}/u{i:07}"));
        }
        sys::now_ns() - t0
    });
    let small: alloc::vec::Vec<String> = (0..NSMALL).map(|i| format!("{dir}/s{i:07}")).collect();
    for p in &small {
        make_file(p, &buf);
    }
    common::run("smallfile_open_close", &s, 1, |iters| {
        let t0 = sys::now_ns();
        for i in 0..iters {
            if let Ok(fd) = sys::open(&small[(i % NSMALL) as usize], OpenFlags::READ_ONLY, 0) {
                let _ = sys::close(fd);
            }
        }
        sys::now_ns() - t0
    });
    common::run("smallfile_stat", &s, 1, |iters| {
        let t0 = sys::now_ns();
        for i in 0..iters {
            let _ = core::hint::black_box(sys::stat(&small[(i % NSMALL) as usize]));
        }
        sys::now_ns() - t0
    });
    for p in &small {
        let _ = sys::unlink(p);
    }
    0
}
