// SPDX-License-Identifier: MIT OR Apache-2.0
//! Host micro-benchmarks of the VFS over tmpfs, all through the port interface
//! (`Vfs` -> `FsPort` -> `ports::Port` -> tmpfs), each operation completing inline.
//!
//! `cargo bench -p fs` prints one line per figure. Plain harness (no criterion): each
//! figure is the best of five timed rounds after a warm-up round, which is steady
//! enough on a shared machine and keeps the build small.

use std::{hint::black_box, sync::Arc, time::Instant};

use abi::OpenFlags;
use fs::{Vfs, platform::TickClock, service::try_complete_inline, tmpfs::Tmpfs};

fn inline<F: std::future::Future>(fut: F) -> F::Output {
    try_complete_inline(fut).expect("tmpfs completes inline")
}

/// Runs `round` (which does `n` operations) 6 times and returns the best ns per operation.
fn best_ns(n: usize, mut round: impl FnMut(usize)) -> f64 {
    let mut best = f64::MAX;
    for r in 0..6 {
        let start = Instant::now();
        round(r);
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        if r > 0 {
            best = best.min(ns);
        }
    }
    best
}

fn main() {
    let vfs = Vfs::new(Arc::new(Tmpfs::new(Arc::new(TickClock::new(0)))));
    let root = vfs.root();
    for d in ["/a", "/a/b", "/a/b/c", "/a/b/c/d"] {
        inline(vfs.mkdir(&root, d.as_bytes(), 0o755)).unwrap();
    }
    inline(vfs.open(
        &root,
        b"/a/b/c/d/e",
        OpenFlags::CREATE | OpenFlags::WRITE_ONLY,
        0o644,
    ))
    .unwrap();

    println!("fs host benchmarks (tmpfs through ports, inline completion)");
    let n = 200_000;
    let lookup = best_ns(n, |_| {
        for _ in 0..n {
            black_box(inline(vfs.lookup(&root, black_box(b"/a/b/c/d/e"), true)).unwrap());
        }
    });
    println!("cached lookup, 5 components   {lookup:>10.0} ns");

    let n = 20_000;
    let names: Vec<Vec<u8>> = (0..n).map(|i| format!("/a/f{i}").into_bytes()).collect();
    let create_flags = OpenFlags::CREATE | OpenFlags::EXCLUSIVE | OpenFlags::WRITE_ONLY;
    let mut create_ns = f64::MAX;
    let mut unlink_ns = f64::MAX;
    for r in 0..6 {
        let start = Instant::now();
        for name in &names {
            drop(inline(vfs.open(&root, name, create_flags, 0o644)).unwrap());
        }
        let created = start.elapsed().as_nanos() as f64 / n as f64;
        let start = Instant::now();
        for name in &names {
            inline(vfs.unlink(&root, name)).unwrap();
        }
        let unlinked = start.elapsed().as_nanos() as f64 / n as f64;
        if r > 0 {
            create_ns = create_ns.min(created);
            unlink_ns = unlink_ns.min(unlinked);
        }
    }
    let pair = best_ns(n, |_| {
        for name in &names {
            drop(inline(vfs.open(&root, name, create_flags, 0o644)).unwrap());
            inline(vfs.unlink(&root, name)).unwrap();
        }
    });
    let ops = |ns: f64| 1e9 / ns / 1000.0;
    println!(
        "create (open O_CREAT|O_EXCL + close) {:>7.0} k/s",
        ops(create_ns)
    );
    println!("unlink                        {:>10.0} k/s", ops(unlink_ns));
    println!("create+unlink pair            {:>10.0} k/s", ops(pair));

    let n = 100_000;
    let open_close = best_ns(n, |_| {
        for _ in 0..n {
            drop(black_box(
                inline(vfs.open(&root, b"/a/b/c/d/e", OpenFlags::READ_ONLY, 0)).unwrap(),
            ));
        }
    });
    println!(
        "open+close                    {:>10.0} k/s",
        ops(open_close)
    );
    let stat = best_ns(n, |_| {
        for _ in 0..n {
            black_box(inline(vfs.stat(&root, b"/a/b/c/d/e", true)).unwrap());
        }
    });
    println!("stat                          {:>10.0} k/s", ops(stat));

    const FILE: usize = 64 << 20;
    const CHUNK: usize = 4096;
    let f = inline(vfs.open(
        &root,
        b"/big",
        OpenFlags::CREATE | OpenFlags::READ_WRITE,
        0o644,
    ))
    .unwrap();
    let mut buf = vec![0x5a; CHUNK];
    let write = best_ns(FILE / CHUNK, |_| {
        inline(vfs.ftruncate(&f, 0)).unwrap();
        inline(vfs.lseek(&f, 0, abi::Whence::Set)).unwrap();
        for _ in 0..FILE / CHUNK {
            let (r, back) = inline(vfs.write(&f, std::mem::take(&mut buf)));
            assert_eq!(r, Ok(CHUNK));
            buf = back;
        }
    });
    let read = best_ns(FILE / CHUNK, |_| {
        inline(vfs.lseek(&f, 0, abi::Whence::Set)).unwrap();
        for _ in 0..FILE / CHUNK {
            let (r, back) = inline(vfs.read(&f, std::mem::take(&mut buf), CHUNK));
            assert_eq!(r, Ok(CHUNK));
            buf = back;
        }
    });
    let mbs = |ns_per_chunk: f64| CHUNK as f64 / ns_per_chunk * 1e9 / 1e6;
    println!("4 KiB writes, 64 MiB file     {:>10.0} MB/s", mbs(write));
    println!("4 KiB reads, 64 MiB file      {:>10.0} MB/s", mbs(read));
    let stats = vfs.namecache().stats();
    println!(
        "namecache: {} hits, {} negative hits, {} misses",
        stats.hits, stats.negative_hits, stats.misses
    );
}
