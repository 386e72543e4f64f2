// SPDX-License-Identifier: MIT OR Apache-2.0
//! Malformed messages at the port boundary: random vnode operations with random inode
//! numbers, names (empty, `.`, `..`, slashes, NULs, over `NAME_MAX`), offsets, lengths,
//! times and caller memory (reads into it and writes from it, faulting at random
//! places), sent straight to tmpfs and devfs. A filesystem served over a port (later by a
//! user process) must answer each with a result or an errno, never panic, never allocate
//! without bound, and keep its invariants.

mod common;

use std::sync::{Arc, Mutex};

use abi::{Errno, Timespec};
use common::{clock, devfs};
use fs::{
    Filesystem, VnodeDone, VnodeMsg, VnodeOp,
    proto::{CallerBuf, CallerMemory, MAX_IO_LEN, SetAttr, TimeChange},
    tmpfs::Tmpfs,
};
use proptest::prelude::*;

/// Caller memory: 8 KiB at `MEMORY_BASE`; every byte outside is a fault. As the
/// kernel's copy routines do, a copy that runs off the end copies the bytes before the
/// fault first.
struct FakeCaller(Mutex<Vec<u8>>);

const MEMORY_BASE: u64 = 0x1000;

impl FakeCaller {
    /// The bytes of `addr..addr + len` that exist (as offsets into the memory), and
    /// whether that is all of them.
    fn range(&self, addr: u64, len: usize) -> (std::ops::Range<usize>, bool) {
        let size = self.0.lock().unwrap().len() as u64;
        if addr < MEMORY_BASE || addr >= MEMORY_BASE + size {
            return (0..0, len == 0);
        }
        let start = addr - MEMORY_BASE;
        let end = (start + len as u64).min(size);
        (start as usize..end as usize, end - start == len as u64)
    }
}

impl CallerMemory for FakeCaller {
    fn copy_from_user(&self, dst: &mut [u8], src: u64) -> Result<(), Errno> {
        let (r, whole) = self.range(src, dst.len());
        dst[..r.len()].copy_from_slice(&self.0.lock().unwrap()[r]);
        if whole { Ok(()) } else { Err(Errno::Fault) }
    }

    fn copy_to_user(&self, dst: u64, src: &[u8]) -> Result<(), Errno> {
        let (r, whole) = self.range(dst, src.len());
        let n = r.len();
        self.0.lock().unwrap()[r].copy_from_slice(&src[..n]);
        if whole { Ok(()) } else { Err(Errno::Fault) }
    }
}

/// No caller memory (the bytes travel in `buf`), or a range of a fresh [`FakeCaller`]
/// that may run off its end or start before it.
fn caller() -> impl Strategy<Value = Option<CallerBuf>> {
    prop_oneof![
        2 => Just(None),
        1 => (0..0x4000u64, 0..10_000usize, any::<u8>()).prop_map(|(addr, len, fill)| {
            let memory = Arc::new(FakeCaller(Mutex::new(vec![fill; 8192])));
            Some(CallerBuf::new(memory, addr, len))
        }),
    ]
}

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
                any::<bool>(),
                caller()
            )
                .prop_map(|(ino, offset, len, non_blocking, direct, into)| {
                    VnodeOp::Read {
                        ino,
                        offset,
                        len: into.as_ref().map_or(len, |to| len.min(to.len())),
                        non_blocking,
                        direct,
                        into,
                    }
                }),
            (ino(), offset(), any::<bool>(), any::<bool>(), caller()).prop_map(
                |(ino, offset, append, direct, from)| VnodeOp::Write {
                    ino,
                    offset,
                    append,
                    direct,
                    from
                }
            ),
            (ino(), offset()).prop_map(|(ino, size)| VnodeOp::Truncate { ino, size }),
            ino().prop_map(|ino| VnodeOp::GetAttr { ino }),
            (ino(), prop::option::of(any::<u32>()), time(), time()).prop_map(
                |(ino, perm, atime, mtime)| VnodeOp::SetAttr {
                    ino,
                    set: Box::new(SetAttr {
                        perm,
                        uid: None,
                        gid: None,
                        atime,
                        mtime
                    })
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

/// `takes_caller_memory`: the filesystem's own answer (one that does not ignores `into`
/// and `from`, which the VFS never gives it).
fn check_reply(msg: &VnodeMsg, takes_caller_memory: bool) {
    match msg.result.as_ref().expect("every message gets a result") {
        Ok(VnodeDone::Count(n)) => {
            assert!(*n <= MAX_IO_LEN);
            match &msg.op {
                // Delivered to caller memory: `buf` stays empty.
                VnodeOp::Read { into: Some(to), .. } if takes_caller_memory => {
                    assert!(*n <= to.len());
                    assert!(msg.buf.is_empty());
                }
                _ => assert_eq!(*n, msg.buf.len()),
            }
        }
        Ok(VnodeDone::Written { count, .. }) => {
            if let VnodeOp::Write {
                from: Some(from), ..
            } = &msg.op
                && takes_caller_memory
            {
                assert!(*count <= from.len());
            }
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
            check_reply(&msg, fs.takes_caller_memory());
            fs.debug_check();
        }
    }

    #[test]
    fn devfs_answers_junk_with_errors(ops in prop::collection::vec(op(), 1..40)) {
        let fs = devfs();
        for (op, buf) in ops {
            let mut msg = VnodeMsg::with_buf(op, buf);
            fs.serve(&mut msg);
            check_reply(&msg, fs.takes_caller_memory());
        }
    }
}
