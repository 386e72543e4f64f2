// SPDX-License-Identifier: MIT OR Apache-2.0
//! Namecache coherence: a stale entry must never be returned after a rename, unlink,
//! rmdir or mount change; and cached walks really send no messages.
//!
//! `Probe` wraps tmpfs as a filesystem that counts the messages it gets and can run a
//! hook right after it answers a lookup, before the VFS caches the answer: the hook
//! makes a racing change deterministic instead of hoping for a thread interleaving.

mod common;

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use abi::{Errno, OpenFlags};
use common::{clock, inline};
use fs::{Filesystem, Ino, Vfs, VnodeMsg, proto::VnodeOp, tmpfs::Tmpfs};

type Hook = Box<dyn Fn() + Send>;

struct Probe {
    inner: Tmpfs,
    lookups: AtomicUsize,
    messages: AtomicUsize,
    /// Runs once, after the next lookup of this name has been answered.
    after_lookup: Mutex<Option<(Vec<u8>, Hook)>>,
}

impl Probe {
    fn new() -> Arc<Probe> {
        Arc::new(Probe {
            inner: Tmpfs::new(clock()),
            lookups: AtomicUsize::new(0),
            messages: AtomicUsize::new(0),
            after_lookup: Mutex::new(None),
        })
    }

    fn arm(&self, name: &[u8], hook: impl Fn() + Send + 'static) {
        *self.after_lookup.lock().unwrap() = Some((name.to_vec(), Box::new(hook)));
    }
}

impl Filesystem for Probe {
    fn fs_type(&self) -> &'static str {
        "probe"
    }

    fn root(&self) -> Ino {
        self.inner.root()
    }

    fn serve(&self, msg: &mut VnodeMsg) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        self.inner.serve(msg);
        if let VnodeOp::Lookup { name, .. } = &msg.op {
            self.lookups.fetch_add(1, Ordering::Relaxed);
            let hook = {
                let mut armed = self.after_lookup.lock().unwrap();
                match armed.as_ref() {
                    Some((n, _)) if n.as_slice() == name.as_ref() => armed.take(),
                    _ => None,
                }
            };
            if let Some((_, hook)) = hook {
                hook();
            }
        }
    }
}

fn setup() -> (Arc<Vfs>, Arc<Probe>) {
    let probe = Probe::new();
    let vfs = Arc::new(Vfs::new(probe.clone()));
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
    (vfs, probe)
}

fn ino(vfs: &Vfs, path: &str) -> Result<u64, Errno> {
    inline(vfs.stat(&vfs.root(), path.as_bytes(), false)).map(|s| s.st_ino)
}

#[test]
fn cached_walk_sends_no_lookup_messages() {
    let (vfs, probe) = setup();
    ino(&vfs, "/a/b/c/d/e").unwrap();
    ino(&vfs, "/a/b/../b/c/./d/e").unwrap(); // warms `..` of /a/b too
    let before = probe.lookups.load(Ordering::Relaxed);
    for _ in 0..100 {
        ino(&vfs, "/a/b/c/d/e").unwrap();
        ino(&vfs, "/a/b/../b/c/./d/e").unwrap();
    }
    assert_eq!(
        probe.lookups.load(Ordering::Relaxed) - before,
        0,
        "every component came from the namecache"
    );
    let misses = vfs.namecache().stats().misses;
    assert_eq!(ino(&vfs, "/a/nope"), Err(Errno::NoEnt));
    assert_eq!(ino(&vfs, "/a/nope"), Err(Errno::NoEnt));
    assert_eq!(
        probe.lookups.load(Ordering::Relaxed) - before,
        1,
        "the second miss hits a negative entry"
    );
    assert_eq!(vfs.namecache().stats().misses, misses + 1);
}

#[test]
fn negative_entry_is_dropped_by_create_link_symlink_mkdir_and_rename() {
    let (vfs, _) = setup();
    let root = vfs.root();
    for name in ["/f", "/l", "/s", "/dir", "/r"] {
        assert_eq!(ino(&vfs, name), Err(Errno::NoEnt));
    }
    inline(vfs.open(
        &root,
        b"/f",
        OpenFlags::CREATE | OpenFlags::WRITE_ONLY,
        0o644,
    ))
    .unwrap();
    inline(vfs.link(&root, b"/f", &root, b"/l", false)).unwrap();
    inline(vfs.symlink(b"f", &root, b"/s")).unwrap();
    inline(vfs.mkdir(&root, b"/dir", 0o755)).unwrap();
    inline(vfs.rename(&root, b"/a/b/c/d/e", &root, b"/r", false)).unwrap();
    for name in ["/f", "/l", "/s", "/dir", "/r"] {
        assert!(ino(&vfs, name).is_ok(), "{name} still negative");
    }
    assert_eq!(ino(&vfs, "/a/b/c/d/e"), Err(Errno::NoEnt));
}

#[test]
fn positive_entry_is_dropped_by_unlink_rmdir_and_rename() {
    let (vfs, _) = setup();
    let root = vfs.root();
    let e = ino(&vfs, "/a/b/c/d/e").unwrap();
    inline(vfs.unlink(&root, b"/a/b/c/d/e")).unwrap();
    assert_eq!(ino(&vfs, "/a/b/c/d/e"), Err(Errno::NoEnt));
    let d = ino(&vfs, "/a/b/c/d").unwrap();
    inline(vfs.rmdir(&root, b"/a/b/c/d")).unwrap();
    assert_eq!(ino(&vfs, "/a/b/c/d"), Err(Errno::NoEnt));
    inline(vfs.mkdir(&root, b"/a/b/c/d", 0o755)).unwrap();
    assert_ne!(
        ino(&vfs, "/a/b/c/d").unwrap(),
        d,
        "a re-created directory is a new node"
    );
    inline(vfs.open(
        &root,
        b"/a/b/c/d/e",
        OpenFlags::CREATE | OpenFlags::WRITE_ONLY,
        0o644,
    ))
    .unwrap();
    assert_ne!(ino(&vfs, "/a/b/c/d/e").unwrap(), e);
}

#[test]
fn rename_over_a_cached_target_resolves_to_the_moved_file() {
    let (vfs, _) = setup();
    let root = vfs.root();
    inline(vfs.open(
        &root,
        b"/t",
        OpenFlags::CREATE | OpenFlags::WRITE_ONLY,
        0o644,
    ))
    .unwrap();
    let victim = ino(&vfs, "/t").unwrap();
    let moved = ino(&vfs, "/a/b/c/d/e").unwrap();
    inline(vfs.rename(&root, b"/a/b/c/d/e", &root, b"/t", false)).unwrap();
    assert_eq!(ino(&vfs, "/t"), Ok(moved));
    assert_ne!(moved, victim);
}

#[test]
fn dotdot_follows_a_directory_that_moved() {
    let (vfs, _) = setup();
    let root = vfs.root();
    inline(vfs.mkdir(&root, b"/z", 0o755)).unwrap();
    assert_eq!(ino(&vfs, "/a/b/c/.."), ino(&vfs, "/a/b"));
    inline(vfs.rename(&root, b"/a/b/c", &root, b"/z/c", false)).unwrap();
    assert_eq!(
        ino(&vfs, "/z/c/.."),
        ino(&vfs, "/z"),
        "cached `..` of the moved directory was dropped"
    );
    assert_eq!(ino(&vfs, "/z/c/d/../../c/d/e"), ino(&vfs, "/z/c/d/e"));
}

#[test]
fn mount_hides_and_unmount_reveals_cached_names() {
    let (vfs, _) = setup();
    let root = vfs.root();
    let e = ino(&vfs, "/a/b/c/d/e").unwrap();
    inline(vfs.mount(&root, b"/a/b", Arc::new(Tmpfs::new(clock())))).unwrap();
    assert_eq!(
        ino(&vfs, "/a/b/c/d/e"),
        Err(Errno::NoEnt),
        "cached names below a mount point are not used"
    );
    assert_eq!(ino(&vfs, "/a/b/.."), ino(&vfs, "/a"));
    inline(vfs.unmount(&root, b"/a/b")).unwrap();
    assert_eq!(ino(&vfs, "/a/b/c/d/e"), Ok(e));
}

#[test]
fn lookup_answer_that_raced_with_a_rename_is_not_cached() {
    let (vfs, probe) = setup();
    let root = vfs.root();
    inline(vfs.open(
        &root,
        b"/x",
        OpenFlags::CREATE | OpenFlags::WRITE_ONLY,
        0o644,
    ))
    .unwrap();
    inline(vfs.rename(&root, b"/x", &root, b"/x2", false)).unwrap(); // drops any entry for /x
    inline(vfs.rename(&root, b"/x2", &root, b"/x", false)).unwrap();
    // The lookup of "x" is answered (x exists); then, before the VFS caches that answer,
    // another CPU renames x away.
    let v = vfs.clone();
    probe.arm(b"x", move || {
        let root = v.root();
        inline(v.rename(&root, b"/x", &root, b"/y", false)).unwrap();
    });
    assert!(
        ino(&vfs, "/x").is_ok(),
        "the lookup itself saw the old state"
    );
    assert_eq!(
        ino(&vfs, "/x"),
        Err(Errno::NoEnt),
        "the racing answer was not cached"
    );
    assert!(vfs.namecache().stats().dropped_fills >= 1);
}

#[test]
fn negative_answer_that_raced_with_a_create_is_not_cached() {
    let (vfs, probe) = setup();
    let v = vfs.clone();
    probe.arm(b"late", move || {
        let root = v.root();
        inline(v.open(
            &root,
            b"/late",
            OpenFlags::CREATE | OpenFlags::WRITE_ONLY,
            0o644,
        ))
        .unwrap();
    });
    assert_eq!(ino(&vfs, "/late"), Err(Errno::NoEnt));
    assert!(ino(&vfs, "/late").is_ok(), "no stale negative entry");
}

#[test]
fn small_cache_stays_correct_when_it_overflows() {
    let probe = Probe::new();
    let vfs = Vfs::with_cache_capacity(probe.clone(), 8);
    let root = vfs.root();
    for i in 0..100 {
        inline(vfs.mkdir(&root, format!("/d{i}").as_bytes(), 0o755)).unwrap();
    }
    for round in 0..3 {
        for i in 0..100 {
            assert!(
                inline(vfs.stat(&root, format!("/d{i}/.").as_bytes(), true)).is_ok(),
                "round {round} d{i}"
            );
        }
    }
    assert!(vfs.namecache().len() <= 8);
    assert!(probe.messages.load(Ordering::Relaxed) > 300);
}
