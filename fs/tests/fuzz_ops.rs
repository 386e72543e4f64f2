// SPDX-License-Identifier: MIT OR Apache-2.0
//! Malformed messages at the port boundary: random vnode operations with random inode
//! numbers, names (empty, `.`, `..`, slashes, NULs, over `NAME_MAX`), offsets, lengths and
//! times, sent straight to tmpfs and devfs. A filesystem served over a port (later by a
//! user process) must answer each with a result or an errno, never panic, never allocate
//! without bound, and keep its invariants.

mod common;

use abi::{Errno, Timespec};
use common::{clock, devfs};
use fs::{
    Filesystem, VnodeDone, VnodeMsg, VnodeOp,
    proto::{MAX_IO_LEN, SetAttr, TimeChange},
    tmpfs::Tmpfs,
};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = Box<[u8]>> {
    prop_oneof![
        4 => prop::sample::select(vec!["a", "b", "c", "dir", "f"]).prop_map(|s| s.as_bytes().into()),
        1 => prop::sample::select(vec!["", ".", "..", "a/b", "/", "x\0y", "null", "zero", "console"]).prop_map(|s| s.as_bytes().into()),
        1 => (250..300usize).prop_map(|n| vec![b'n'; n].into_boxed_slice()),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(Vec::into_boxed_slice),
    ]
}

fn ino() -> impl Strategy<Value = u64> {
    prop_oneof![8 => 0..12u64, 1 => Just(u64::MAX), 1 => any::<u64>()]
}

fn offset() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0..10_000u64, 1 => Just(i64::MAX as u64), 1 => Just(u64::MAX), 1 => any::<u64>()]
}

fn time() -> impl Strategy<Value = Option<TimeChange>> {
    prop_oneof![
        Just(None),
        Just(Some(TimeChange::Now)),
        (any::<i64>(), any::<i64>())
            .prop_map(|(tv_sec, tv_nsec)| Some(TimeChange::At(Timespec { tv_sec, tv_nsec }))),
    ]
}

fn op() -> impl Strategy<Value = (VnodeOp, Vec<u8>)> {
    let buf = prop_oneof![
        Just(Vec::new()),
        prop::collection::vec(any::<u8>(), 0..64),
        Just(vec![b'x'; 5000])
    ];
    (
        prop_oneof![
            (ino(), name()).prop_map(|(dir, name)| VnodeOp::Lookup { dir, name }),
            (ino(), name(), any::<u32>()).prop_map(|(dir, name, perm)| VnodeOp::Create {
                dir,
                name,
                perm
            }),
            (ino(), name(), any::<u32>()).prop_map(|(dir, name, perm)| VnodeOp::Mkdir {
                dir,
                name,
                perm
            }),
            (ino(), name()).prop_map(|(dir, name)| VnodeOp::Symlink { dir, name }),
            (ino(), name(), ino()).prop_map(|(dir, name, target)| VnodeOp::Link {
                dir,
                name,
                target
            }),
            (ino(), name()).prop_map(|(dir, name)| VnodeOp::Unlink { dir, name }),
            (ino(), name()).prop_map(|(dir, name)| VnodeOp::Rmdir { dir, name }),
            (ino(), name(), ino(), name(), any::<bool>()).prop_map(
                |(from_dir, from_name, to_dir, to_name, no_replace)| VnodeOp::Rename {
                    from_dir,
                    from_name,
                    to_dir,
                    to_name,
                    no_replace
                }
            ),
            ino().prop_map(|ino| VnodeOp::Open { ino }),
            ino().prop_map(|ino| VnodeOp::Close { ino }),
            (
                ino(),
                offset(),
                prop_oneof![0..10_000usize, Just(usize::MAX)],
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(ino, offset, len, non_blocking, direct)| VnodeOp::Read {
                    ino,
                    offset,
                    len,
                    non_blocking,
                    direct
                }),
            (ino(), offset(), any::<bool>(), any::<bool>()).prop_map(
                |(ino, offset, append, direct)| VnodeOp::Write {
                    ino,
                    offset,
                    append,
                    direct
                }
            ),
            (ino(), offset()).prop_map(|(ino, size)| VnodeOp::Truncate { ino, size }),
            ino().prop_map(|ino| VnodeOp::GetAttr { ino }),
            (ino(), prop::option::of(any::<u32>()), time(), time()).prop_map(
                |(ino, perm, atime, mtime)| VnodeOp::SetAttr {
                    ino,
                    set: SetAttr {
                        perm,
                        uid: None,
                        gid: None,
                        atime,
                        mtime
                    }
                }
            ),
            (
                ino(),
                prop_oneof![0..20u64, Just(u64::MAX)],
                prop_oneof![0..5usize, Just(usize::MAX)]
            )
                .prop_map(|(dir, cookie, max)| VnodeOp::ReadDir { dir, cookie, max }),
            ino().prop_map(|ino| VnodeOp::ReadLink { ino }),
            ino().prop_map(|ino| VnodeOp::Fsync { ino }),
        ],
        buf,
    )
}

fn check_reply(msg: &VnodeMsg) {
    match msg.result.as_ref().expect("every message gets a result") {
        Ok(VnodeDone::Count(n)) => {
            assert!(*n <= MAX_IO_LEN);
            assert_eq!(*n, msg.buf.len());
        }
        Ok(VnodeDone::Entries { entries, .. }) => {
            assert!(entries.iter().all(|e| !e.name.is_empty()))
        }
        Ok(_) => {}
        Err(e) => assert!(Errno::from_i32(e.as_i32()).is_some()),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn tmpfs_answers_junk_with_errors_and_keeps_its_invariants(ops in prop::collection::vec(op(), 1..80)) {
        let fs = Tmpfs::new(clock());
        for (op, buf) in ops {
            let mut msg = VnodeMsg::with_buf(op, buf);
            fs.serve(&mut msg);
            check_reply(&msg);
            fs.debug_check();
        }
    }

    #[test]
    fn devfs_answers_junk_with_errors(ops in prop::collection::vec(op(), 1..40)) {
        let fs = devfs();
        for (op, buf) in ops {
            let mut msg = VnodeMsg::with_buf(op, buf);
            fs.serve(&mut msg);
            check_reply(&msg);
        }
    }
}
