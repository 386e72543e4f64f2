// SPDX-License-Identifier: MIT OR Apache-2.0
//! Host micro-benchmarks of the VFS over tmpfs, all through the port interface
//! (`Vfs` -> `FsPort` -> `ports::Port` -> tmpfs), each operation completing inline.
//!
//! `cargo bench -p fs` prints one line per figure; `cargo bench -p fs -- lookup stat` runs
//! only the sections named (lookup, create, open, stat, io). Plain harness (no criterion):
//! each figure is the best of ten timed rounds after a warm-up round, which is steady
//! enough on a shared machine and keeps the build small.

use std::{hint::black_box, sync::Arc, time::Instant};

use abi::{OpenFlags, Whence};
use fs::{Vfs, Vnode, platform::TickClock, service::try_complete_inline, tmpfs::Tmpfs};

const ROUNDS: usize = 11;

type Section = fn(&Vfs, &Vnode);

fn inline<F: std::future::Future>(fut: F) -> F::Output {
    try_complete_inline(fut).expect("tmpfs completes inline")
}

/// Runs `round` (which does `n` operations) `ROUNDS` times; the best ns per operation,
/// not counting the first (warm-up) round.
fn best_ns(n: usize, mut round: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for r in 0..ROUNDS {
        let start = Instant::now();
        round();
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        if r > 0 {
            best = best.min(ns);
        }
    }
    best
}

fn kops(ns: f64) -> f64 {
    1e6 / ns
}

fn lookup(vfs: &Vfs, root: &Vnode) {
    let n = 100_000;
    let ns = best_ns(n, || {
        for _ in 0..n {
            black_box(inline(vfs.lookup(root, black_box(b"/a/b/c/d/e"), true)).unwrap());
        }
    });
    println!("cached lookup, 5 components      {ns:>8.0} ns");
}

fn create(vfs: &Vfs, root: &Vnode) {
    let n = 10_000;
    let names: Vec<Vec<u8>> = (0..n).map(|i| format!("/a/f{i}").into_bytes()).collect();
    let flags = OpenFlags::CREATE | OpenFlags::EXCLUSIVE | OpenFlags::WRITE_ONLY;
    let (mut create_ns, mut unlink_ns) = (f64::MAX, f64::MAX);
    for r in 0..ROUNDS {
        let start = Instant::now();
        for name in &names {
            drop(inline(vfs.open(root, name, flags, 0o644)).unwrap());
        }
        let created = start.elapsed().as_nanos() as f64 / n as f64;
        let start = Instant::now();
        for name in &names {
            inline(vfs.unlink(root, name)).unwrap();
        }
        let unlinked = start.elapsed().as_nanos() as f64 / n as f64;
        if r > 0 {
            create_ns = create_ns.min(created);
            unlink_ns = unlink_ns.min(unlinked);
        }
    }
    let pair = best_ns(n, || {
        for name in &names {
            drop(inline(vfs.open(root, name, flags, 0o644)).unwrap());
            inline(vfs.unlink(root, name)).unwrap();
        }
    });
    println!(
        "create (O_CREAT|O_EXCL + close)  {:>8.0} k/s",
        kops(create_ns)
    );
    println!(
        "unlink                           {:>8.0} k/s",
        kops(unlink_ns)
    );
    println!("create+unlink pairs              {:>8.0} k/s", kops(pair));
}

fn open(vfs: &Vfs, root: &Vnode) {
    let n = 100_000;
    let ns = best_ns(n, || {
        for _ in 0..n {
            drop(black_box(
                inline(vfs.open(root, b"/a/b/c/d/e", OpenFlags::READ_ONLY, 0)).unwrap(),
            ));
        }
    });
    println!("open+close                       {:>8.0} k/s", kops(ns));
}

fn stat(vfs: &Vfs, root: &Vnode) {
    let n = 100_000;
    let ns = best_ns(n, || {
        for _ in 0..n {
            black_box(inline(vfs.stat(root, b"/a/b/c/d/e", true)).unwrap());
        }
    });
    println!("stat                             {:>8.0} k/s", kops(ns));
}

/// `stat` of a different file on each of two threads at once (the host's stand-in for
/// two CPUs): aggregate rate, to compare with the single-thread `stat` figure.
fn stat2(vfs: &Vfs, root: &Vnode) {
    let n = 100_000;
    for i in 0..2 {
        let path = format!("/a/s{i}");
        inline(vfs.open(
            root,
            path.as_bytes(),
            OpenFlags::CREATE | OpenFlags::WRITE_ONLY,
            0o644,
        ))
        .unwrap();
    }
    let ns = best_ns(2 * n, || {
        std::thread::scope(|scope| {
            for i in 0..2 {
                let path = format!("/a/s{i}");
                scope.spawn(move || {
                    for _ in 0..n {
                        black_box(inline(vfs.stat(root, path.as_bytes(), true)).unwrap());
                    }
                });
            }
        });
    });
    println!("stat, 2 threads (aggregate)      {:>8.0} k/s", kops(ns));
}

fn io(vfs: &Vfs, root: &Vnode) {
    const FILE: usize = 64 << 20;
    const CHUNK: usize = 4096;
    let f = inline(vfs.open(
        root,
        b"/big",
        OpenFlags::CREATE | OpenFlags::READ_WRITE,
        0o644,
    ))
    .unwrap();
    let mut buf = vec![0x5a; CHUNK];
    let write = best_ns(FILE / CHUNK, || {
        inline(vfs.ftruncate(&f, 0)).unwrap();
        inline(vfs.lseek(&f, 0, Whence::Set)).unwrap();
        for _ in 0..FILE / CHUNK {
            let (r, back) = inline(vfs.write(&f, std::mem::take(&mut buf)));
            assert_eq!(r, Ok(CHUNK));
            buf = back;
        }
    });
    let read = best_ns(FILE / CHUNK, || {
        inline(vfs.lseek(&f, 0, Whence::Set)).unwrap();
        for _ in 0..FILE / CHUNK {
            let (r, back) = inline(vfs.read(&f, std::mem::take(&mut buf), CHUNK));
            assert_eq!(r, Ok(CHUNK));
            buf = back;
        }
    });
    let mbs = |ns_per_chunk: f64| CHUNK as f64 / ns_per_chunk * 1e3;
    println!("4 KiB writes, 64 MiB file        {:>8.0} MB/s", mbs(write));
    println!("4 KiB reads, 64 MiB file         {:>8.0} MB/s", mbs(read));
}

fn main() {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let wants =
        |section: &str| filters.is_empty() || filters.iter().any(|f| section.contains(f.as_str()));

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

    println!(
        "fs host benchmarks (tmpfs through ports, inline completion, best of {})",
        ROUNDS - 1
    );
    let sections: [(&str, Section); 6] = [
        ("lookup", lookup),
        ("create", create),
        ("open", open),
        ("stat", stat),
        ("stat2", stat2),
        ("io", io),
    ];
    for (name, run) in sections {
        if wants(name) {
            run(&vfs, &root);
        }
    }
    let stats = vfs.namecache().stats();
    println!(
        "namecache: {} misses, {} fills dropped by races",
        stats.misses, stats.dropped_fills
    );
}
