// SPDX-License-Identifier: MIT OR Apache-2.0
//! Concurrency: VFS operations on tmpfs from several CPUs of the hosted platform
//! (`executor::hosted::Machine`, std threads as CPUs), racing creates, renames, unlinks,
//! lookups and readdir. Every operation completes inline on the CPU that issued it.
//!
//! Namecache coherence under races: after an operation returns on a CPU, that CPU must
//! never see the old name through a stale cache entry, however other CPUs interleave
//! their lookups (rule 4 in `fs::namecache`).

mod common;

use std::{
    collections::HashSet,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use abi::{Errno, OpenFlags};
use common::{inline, join, serial, tmpfs_vfs};
use executor::{CpuId, hosted::Machine};
use fs::Vfs;

const CREATE: OpenFlags = OpenFlags::WRITE_ONLY
    .union(OpenFlags::CREATE)
    .union(OpenFlags::EXCLUSIVE);

fn names(vfs: &Vfs, path: &[u8]) -> Vec<String> {
    let root = vfs.root();
    let dir = inline(vfs.open(&root, path, OpenFlags::DIRECTORY, 0)).unwrap();
    let mut out = Vec::new();
    loop {
        let batch = inline(vfs.readdir(&dir, 7)).unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(
            batch
                .into_iter()
                .map(|e| String::from_utf8(e.name.into()).unwrap()),
        );
    }
}

#[test]
fn creates_renames_and_readdir_race_across_cpus() {
    let _serial = serial();
    const N: usize = 400;
    let (vfs, tmpfs) = tmpfs_vfs();
    let root = vfs.root();
    inline(vfs.mkdir(&root, b"/d", 0o755)).unwrap();
    inline(vfs.mkdir(&root, b"/e", 0o755)).unwrap();
    for i in 0..50 {
        inline(vfs.open(&root, format!("/d/stable{i}").as_bytes(), CREATE, 0o644)).unwrap();
    }
    let machine = Machine::start(3);
    let done = Arc::new(AtomicBool::new(false));

    // CPU 0: create c{i} in /d, and move every odd one to /e.
    let v = vfs.clone();
    let creator = machine
        .spawn_on(CpuId(0), async move {
            let root = v.root();
            for i in 0..N {
                v.open(&root, format!("/d/c{i}").as_bytes(), CREATE, 0o644)
                    .await
                    .unwrap();
                if i % 2 == 1 {
                    let (from, to) = (format!("/d/c{i}"), format!("/e/r{i}"));
                    v.rename(&root, from.as_bytes(), &root, to.as_bytes(), false)
                        .await
                        .unwrap();
                }
            }
        })
        .unwrap();
    // CPU 1: create and unlink k{i}, and rename within /d.
    let v = vfs.clone();
    let churner = machine
        .spawn_on(CpuId(1), async move {
            let root = v.root();
            for i in 0..N {
                let k = format!("/d/k{i}");
                v.open(&root, k.as_bytes(), CREATE, 0o644).await.unwrap();
                if i % 3 == 0 {
                    v.unlink(&root, k.as_bytes()).await.unwrap();
                } else {
                    v.rename(
                        &root,
                        k.as_bytes(),
                        &root,
                        format!("/d/m{i}").as_bytes(),
                        false,
                    )
                    .await
                    .unwrap();
                }
            }
        })
        .unwrap();
    // CPU 2: list /d over and over; every listing has no duplicates and all stable names.
    let v = vfs.clone();
    let stop = done.clone();
    let lister = machine
        .spawn_on(CpuId(2), async move {
            let root = v.root();
            let mut listings = 0;
            while !stop.load(Ordering::Acquire) || listings < 3 {
                let dir = v.open(&root, b"/d", OpenFlags::DIRECTORY, 0).await.unwrap();
                let mut seen = HashSet::new();
                loop {
                    let batch = v.readdir(&dir, 5).await.unwrap();
                    if batch.is_empty() {
                        break;
                    }
                    for e in batch {
                        let name = String::from_utf8(e.name.into()).unwrap();
                        assert!(
                            seen.insert(name.clone()),
                            "listing {listings} returned {name} twice"
                        );
                    }
                }
                for i in 0..50 {
                    assert!(
                        seen.contains(&format!("stable{i}")),
                        "listing {listings} skipped stable{i}"
                    );
                }
                listings += 1;
            }
            listings
        })
        .unwrap();
    join(creator);
    join(churner);
    done.store(true, Ordering::Release);
    let listings = join(lister);
    assert!(listings >= 3);

    let mut d: Vec<String> = names(&vfs, b"/d");
    d.sort();
    let mut want: Vec<String> = [".", ".."].iter().map(|s| s.to_string()).collect();
    want.extend((0..50).map(|i| format!("stable{i}")));
    want.extend((0..N).filter(|i| i % 2 == 0).map(|i| format!("c{i}")));
    want.extend((0..N).filter(|i| i % 3 != 0).map(|i| format!("m{i}")));
    want.sort();
    assert_eq!(d, want);
    assert_eq!(names(&vfs, b"/e").len(), 2 + N / 2);
    tmpfs.debug_check();
    machine.shutdown();
}

#[test]
fn no_stale_name_after_rename_or_unlink_while_other_cpus_look_up() {
    let _serial = serial();
    const ROUNDS: usize = 3000;
    let (vfs, _tmpfs) = tmpfs_vfs();
    let root = vfs.root();
    inline(vfs.mkdir(&root, b"/x", 0o755)).unwrap();
    inline(vfs.open(&root, b"/x/a", CREATE, 0o644)).unwrap();
    let machine = Machine::start(3);
    let stop = Arc::new(AtomicBool::new(false));

    // CPUs 1 and 2 hammer lookups of every name involved, filling the namecache.
    let mut hammers = Vec::new();
    for cpu in [1, 2] {
        let (v, stop) = (vfs.clone(), stop.clone());
        hammers.push(
            machine
                .spawn_on(CpuId(cpu), async move {
                    let root = v.root();
                    let mut n = 0u64;
                    while !stop.load(Ordering::Acquire) {
                        for p in [&b"/x/a"[..], b"/x/b", b"/x/t", b"/x/sub/.."] {
                            let _ = v.stat(&root, p, true).await;
                            n += 1;
                        }
                    }
                    n
                })
                .unwrap(),
        );
    }
    // CPU 0 changes names and checks its own view right after each change.
    let v = vfs.clone();
    let checker = machine
        .spawn_on(CpuId(0), async move {
            let root = v.root();
            for round in 0..ROUNDS {
                v.rename(&root, b"/x/a", &root, b"/x/b", false)
                    .await
                    .unwrap();
                assert_eq!(
                    v.stat(&root, b"/x/a", true).await.err(),
                    Some(Errno::NoEnt),
                    "round {round}: stale /x/a after rename"
                );
                let moved = v.stat(&root, b"/x/b", true).await.unwrap();
                v.rename(&root, b"/x/b", &root, b"/x/a", false)
                    .await
                    .unwrap();
                assert_eq!(
                    v.stat(&root, b"/x/b", true).await.err(),
                    Some(Errno::NoEnt),
                    "round {round}: stale /x/b after rename"
                );
                assert_eq!(
                    v.stat(&root, b"/x/a", true).await.unwrap().st_ino,
                    moved.st_ino
                );

                v.open(&root, b"/x/t", CREATE, 0o644).await.unwrap();
                let t = v.stat(&root, b"/x/t", true).await.unwrap();
                v.unlink(&root, b"/x/t").await.unwrap();
                assert_eq!(
                    v.stat(&root, b"/x/t", true).await.err(),
                    Some(Errno::NoEnt),
                    "round {round}: stale /x/t after unlink"
                );
                v.open(&root, b"/x/t", CREATE, 0o644).await.unwrap();
                assert_ne!(
                    v.stat(&root, b"/x/t", true).await.unwrap().st_ino,
                    t.st_ino,
                    "round {round}: old /x/t after re-create"
                );
                v.unlink(&root, b"/x/t").await.unwrap();

                if round % 10 == 0 {
                    v.mkdir(&root, b"/x/sub", 0o755).await.unwrap();
                    v.rmdir(&root, b"/x/sub").await.unwrap();
                    assert_eq!(
                        v.stat(&root, b"/x/sub/..", true).await.err(),
                        Some(Errno::NoEnt)
                    );
                }
            }
        })
        .unwrap();
    join(checker);
    stop.store(true, Ordering::Release);
    let lookups: u64 = hammers.into_iter().map(join).sum();
    assert!(lookups > 0);
    let stats = vfs.namecache().stats();
    assert!(stats.misses > 0 && !vfs.namecache().is_empty(), "{stats:?}");
    machine.shutdown();
}

#[test]
fn concurrent_writers_to_distinct_files_and_one_append_file() {
    let _serial = serial();
    let (vfs, tmpfs) = tmpfs_vfs();
    let root = vfs.root();
    inline(vfs.open(&root, b"/log", CREATE, 0o644)).unwrap();
    let machine = Machine::start(2);
    let handles: Vec<_> = (0..2u8)
        .map(|cpu| {
            let v = vfs.clone();
            machine
                .spawn_on(CpuId(cpu as u32), async move {
                    let root = v.root();
                    let own = format!("/own{cpu}");
                    let f = v
                        .open(
                            &root,
                            own.as_bytes(),
                            OpenFlags::READ_WRITE | OpenFlags::CREATE,
                            0o644,
                        )
                        .await
                        .unwrap();
                    let log = v
                        .open(&root, b"/log", OpenFlags::WRITE_ONLY | OpenFlags::APPEND, 0)
                        .await
                        .unwrap();
                    for i in 0..500u32 {
                        v.write(&f, vec![cpu; 100]).await.0.unwrap();
                        v.write(&log, format!("{cpu}:{i:04}\n").into_bytes())
                            .await
                            .0
                            .unwrap();
                    }
                })
                .unwrap()
        })
        .collect();
    for h in handles {
        join(h);
    }
    for cpu in 0..2u8 {
        assert_eq!(
            inline(vfs.stat(&root, format!("/own{cpu}").as_bytes(), true))
                .unwrap()
                .st_size,
            50_000
        );
    }
    let log = inline(vfs.open(&root, b"/log", OpenFlags::READ_ONLY, 0)).unwrap();
    let (r, data) = inline(vfs.read(&log, Vec::new(), 1 << 20));
    assert_eq!(
        r.unwrap(),
        1000 * 7,
        "appends from two CPUs never overwrite each other"
    );
    let text = String::from_utf8(data).unwrap();
    for cpu in 0..2 {
        let mine: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{cpu}:")))
            .collect();
        assert_eq!(mine.len(), 500);
        assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "each CPU's appends stay in order"
        );
    }
    tmpfs.debug_check();
    machine.shutdown();
}

#[test]
fn a_shared_open_file_hands_each_byte_to_exactly_one_reader() {
    let _serial = serial();
    const N: usize = 20_000;
    let (vfs, _) = tmpfs_vfs();
    let root = vfs.root();
    let data: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
    let w = inline(vfs.open(
        &root,
        b"/shared",
        OpenFlags::READ_WRITE | OpenFlags::CREATE,
        0o644,
    ))
    .unwrap();
    inline(vfs.write(&w, data.clone())).0.unwrap();
    // One open file description, used from two CPUs (as after fork or dup).
    let shared = inline(vfs.open(&root, b"/shared", OpenFlags::READ_ONLY, 0)).unwrap();
    let machine = Machine::start(2);
    let readers: Vec<_> = (0..2)
        .map(|cpu| {
            let (v, f) = (vfs.clone(), shared.clone());
            machine
                .spawn_on(CpuId(cpu), async move {
                    let mut got = Vec::new();
                    loop {
                        let (r, byte) = v.read(&f, Vec::new(), 1).await;
                        if r.unwrap() == 0 {
                            return got;
                        }
                        got.push(byte[0]);
                    }
                })
                .unwrap()
        })
        .collect();
    let counts: Vec<Vec<u8>> = readers.into_iter().map(join).collect();
    assert_eq!(
        counts[0].len() + counts[1].len(),
        N,
        "every byte read exactly once"
    );
    assert_eq!(
        inline(vfs.lseek(&shared, 0, abi::Whence::Current)),
        Ok(N as u64)
    );

    // And writers through one shared description never overwrite each other.
    let out = inline(vfs.open(
        &root,
        b"/out",
        OpenFlags::WRITE_ONLY | OpenFlags::CREATE,
        0o644,
    ))
    .unwrap();
    let writers: Vec<_> = (0..2u8)
        .map(|cpu| {
            let (v, f) = (vfs.clone(), out.clone());
            machine
                .spawn_on(CpuId(cpu as u32), async move {
                    for _ in 0..2000 {
                        assert_eq!(v.write(&f, vec![b'a' + cpu; 3]).await.0, Ok(3));
                    }
                })
                .unwrap()
        })
        .collect();
    for h in writers {
        join(h);
    }
    let st = inline(vfs.fstat(&out)).unwrap();
    assert_eq!(st.st_size, 2 * 2000 * 3);
    let r = inline(vfs.open(&root, b"/out", OpenFlags::READ_ONLY, 0)).unwrap();
    let (_, all) = inline(vfs.read(&r, Vec::new(), 1 << 20));
    assert_eq!(all.iter().filter(|&&b| b == b'a').count(), 6000);
    assert_eq!(all.iter().filter(|&&b| b == b'b').count(), 6000);
    machine.shutdown();
}
