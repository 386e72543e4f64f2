// SPDX-License-Identifier: MIT OR Apache-2.0
//! The VFS: mount table, path walking over the namecache, and the POSIX operations.
//!
//! Everything a filesystem does is a message to its port (`FsPort::call`); everything
//! about paths is done here: components, `.` and `..` (also across mount points), symlink
//! following with [`SYMLOOP_MAX`](crate::path::SYMLOOP_MAX), trailing slashes, the length
//! limits, and the namecache (rules in `crate::namecache`).
//!
//! Layout: this file has the types and the mount table; `walk.rs` resolves paths;
//! `ops.rs` has one `async fn` per POSIX operation.
//!
//! # Context (every public method)
//! Any task on any CPU, or any thread for inline filesystems (`try_complete_inline`).
//! A method suspends only when a filesystem queues a message. No spin lock is held across
//! an `.await`; the one thing held across one is an open file's position lock (`read`,
//! `write`, `lseek`, `readdir`, `getdents` on the same open file run one at a time).
//! Dropping a future mid-way is safe: the message in flight is orphaned (`ports`), and
//! the namecache is only filled by answers that are still current.

mod ops;
mod walk;

use alloc::{collections::BTreeMap, sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use abi::{Errno, FileType};
use hashbrown::HashMap;
use spin::RwLock;

pub use self::ops::{DEFAULT_READDIR_BATCH, Utimes};
use crate::{
    namecache::{CachedName, DEFAULT_CAPACITY, NameCache},
    proto::{Ino, VnodeDone, VnodeOp},
    service::FsPort,
};

/// A mounted filesystem.
pub struct Mount {
    id: u64,
    port: FsPort,
    root: Ino,
    /// The directory this mount covers (`None` for the root mount).
    covered: Option<Vnode>,
}

impl Mount {
    /// The mount id, also the `st_dev` of its files.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The filesystem's port.
    pub fn port(&self) -> &FsPort {
        &self.port
    }

    /// The filesystem's type name.
    pub fn fs_type(&self) -> &'static str {
        self.port.fs_type()
    }
}

/// A reference to one file: which mount, which inode, and its type (which never changes).
///
/// Holding a `Vnode` keeps its mount busy (unmount answers `Busy`). It does not keep the
/// file alive: that is what an [`OpenFile`](crate::file::OpenFile) does.
#[derive(Clone)]
pub struct Vnode {
    mount: Arc<Mount>,
    ino: Ino,
    kind: FileType,
}

impl Vnode {
    /// The inode number.
    pub fn ino(&self) -> Ino {
        self.ino
    }

    /// The file type.
    pub fn kind(&self) -> FileType {
        self.kind
    }

    /// The mount the file is on.
    pub fn mount(&self) -> &Arc<Mount> {
        &self.mount
    }

    /// The port of the file's filesystem.
    pub fn port(&self) -> &FsPort {
        &self.mount.port
    }

    /// The device id (`st_dev`).
    pub fn dev(&self) -> u64 {
        self.mount.id
    }

    /// True if both name the same file.
    pub fn same_file(&self, other: &Vnode) -> bool {
        self.mount.id == other.mount.id && self.ino == other.ino
    }

    fn is_mount_root(&self) -> bool {
        self.ino == self.mount.root
    }
}

impl core::fmt::Debug for Vnode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Vnode({}:{} {:?})", self.mount.id, self.ino, self.kind)
    }
}

#[derive(Default)]
struct MountTable {
    /// (mount id, covered inode) to the mount on top of it.
    covered: HashMap<(u64, Ino), Arc<Mount>>,
    by_id: BTreeMap<u64, Arc<Mount>>,
}

/// One entry of [`Vfs::mounts`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount id (`st_dev`).
    pub id: u64,
    /// Filesystem type.
    pub fs_type: &'static str,
    /// The mount id and inode it covers (`None` for the root).
    pub covers: Option<(u64, Ino)>,
}

/// The virtual filesystem switch.
pub struct Vfs {
    root: Vnode,
    mounts: RwLock<MountTable>,
    /// Number of entries in `mounts.covered`: lets a walk skip the table when 0.
    nr_covered: AtomicUsize,
    next_mount_id: AtomicU64,
    cache: NameCache,
}

impl Vfs {
    /// A VFS whose root is the root of the filesystem behind `root_fs` (mount id 1).
    /// An `Arc` of a [`Filesystem`](crate::Filesystem) converts into an inline port.
    pub fn new(root_fs: impl Into<FsPort>) -> Vfs {
        Vfs::with_cache_capacity(root_fs, DEFAULT_CAPACITY)
    }

    /// As `new`, with a namecache of `capacity` entries.
    pub fn with_cache_capacity(root_fs: impl Into<FsPort>, capacity: usize) -> Vfs {
        let port = root_fs.into();
        let root_ino = port.root();
        let mount = Arc::new(Mount {
            id: 1,
            port,
            root: root_ino,
            covered: None,
        });
        let mut table = MountTable::default();
        table.by_id.insert(1, mount.clone());
        Vfs {
            root: Vnode {
                mount,
                ino: root_ino,
                kind: FileType::Directory,
            },
            mounts: RwLock::new(table),
            nr_covered: AtomicUsize::new(0),
            next_mount_id: AtomicU64::new(2),
            cache: NameCache::new(capacity),
        }
    }

    /// The root directory.
    pub fn root(&self) -> Vnode {
        self.root.clone()
    }

    /// The namecache (for statistics and tests).
    pub fn namecache(&self) -> &NameCache {
        &self.cache
    }

    /// The mounted filesystems, root first.
    pub fn mounts(&self) -> Vec<MountInfo> {
        self.mounts
            .read()
            .by_id
            .values()
            .map(|m| MountInfo {
                id: m.id,
                fs_type: m.fs_type(),
                covers: m.covered.as_ref().map(|c| (c.mount.id, c.ino)),
            })
            .collect()
    }

    /// Mounts `fs` on the directory `path` (relative to `at`); returns the mount id.
    ///
    /// # Errors
    /// Walk errors; `NotDir` if `path` is not a directory; `Busy` if something is already
    /// mounted there.
    pub async fn mount(
        &self,
        at: &Vnode,
        path: &[u8],
        fs: impl Into<FsPort>,
    ) -> Result<u64, Errno> {
        let target = self.lookup(at, path, true).await?;
        if target.kind != FileType::Directory {
            return Err(Errno::NotDir);
        }
        let key = (target.mount.id, target.ino);
        let mut table = self.mounts.write();
        if table.covered.contains_key(&key) {
            return Err(Errno::Busy);
        }
        let id = self.next_mount_id.fetch_add(1, Ordering::Relaxed);
        let port = fs.into();
        let root = port.root();
        let mount = Arc::new(Mount {
            id,
            port,
            root,
            covered: Some(target),
        });
        table.covered.insert(key, mount.clone());
        table.by_id.insert(id, mount);
        self.nr_covered.fetch_add(1, Ordering::Release);
        Ok(id)
    }

    /// Unmounts the filesystem whose root is `path`.
    ///
    /// # Errors
    /// `Inval` if `path` is not the root of a mount (or is the VFS root); `Busy` if
    /// something is mounted below it or anything (open file, working directory) still
    /// refers to one of its files.
    pub async fn unmount(&self, at: &Vnode, path: &[u8]) -> Result<(), Errno> {
        let target = self.lookup(at, path, true).await?;
        if !target.is_mount_root() || target.mount.covered.is_none() {
            return Err(Errno::Inval);
        }
        let id = target.mount.id;
        drop(target);
        let mut table = self.mounts.write();
        let mount = table.by_id.get(&id).cloned().ok_or(Errno::Inval)?;
        if table.covered.keys().any(|&(on, _)| on == id) {
            return Err(Errno::Busy);
        }
        // References: by_id, covered, and our `mount`.
        if Arc::strong_count(&mount) > 3 {
            return Err(Errno::Busy);
        }
        let covered = mount
            .covered
            .as_ref()
            .map(|c| (c.mount.id, c.ino))
            .ok_or(Errno::Inval)?;
        table.covered.remove(&covered);
        table.by_id.remove(&id);
        self.nr_covered.fetch_sub(1, Ordering::Release);
        drop(table);
        self.cache.purge_mount(id);
        Ok(())
    }

    /// The mount covering `v`, if `v` is a mount point.
    fn mounted_on(&self, v: &Vnode) -> Option<Arc<Mount>> {
        if self.nr_covered.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.mounts
            .read()
            .covered
            .get(&(v.mount.id, v.ino))
            .cloned()
    }

    /// Goes down through mounts stacked on `v`.
    fn cross_mounts(&self, mut v: Vnode) -> Vnode {
        while let Some(m) = self.mounted_on(&v) {
            v = Vnode {
                ino: m.root,
                mount: m,
                kind: FileType::Directory,
            };
        }
        v
    }

    /// Looks `name` up in directory `dir` through the namecache, without crossing mounts.
    async fn lookup_raw(&self, dir: &Vnode, name: &[u8]) -> Result<Vnode, Errno> {
        match self.lookup_cached(dir, name) {
            Some(answer) => answer,
            None => self.lookup_uncached(dir, name).await,
        }
    }

    /// Asks the filesystem (after a namecache miss) and fills the cache (rule 4).
    async fn lookup_uncached(&self, dir: &Vnode, name: &[u8]) -> Result<Vnode, Errno> {
        let mount_id = dir.mount.id;
        let generation = self.cache.generation();
        let reply = dir
            .port()
            .call_op(VnodeOp::Lookup {
                dir: dir.ino,
                name: name.into(),
            })
            .await;
        match reply {
            Ok(VnodeDone::Node(attr)) => {
                let entry = CachedName::Positive {
                    ino: attr.ino,
                    kind: attr.kind,
                };
                self.cache
                    .insert(generation, mount_id, dir.ino, name, entry);
                Ok(Vnode {
                    mount: dir.mount.clone(),
                    ino: attr.ino,
                    kind: attr.kind,
                })
            }
            Ok(_) => Err(Errno::Io),
            Err(Errno::NoEnt) => {
                self.cache
                    .insert(generation, mount_id, dir.ino, name, CachedName::Negative);
                Err(Errno::NoEnt)
            }
            Err(e) => Err(e),
        }
    }

    /// The namecache's answer for `name` in `dir`, if it has one (no mount crossing).
    /// Synchronous, so a walk that hits builds no message and no nested future.
    fn lookup_cached(&self, dir: &Vnode, name: &[u8]) -> Option<Result<Vnode, Errno>> {
        match self.cache.get(dir.mount.id, dir.ino, name)? {
            CachedName::Positive { ino, kind } => Some(Ok(Vnode {
                mount: dir.mount.clone(),
                ino,
                kind,
            })),
            CachedName::Negative => Some(Err(Errno::NoEnt)),
        }
    }

    /// Looks `name` up in `dir` and crosses any mount on the result.
    async fn lookup_in(&self, dir: &Vnode, name: &[u8]) -> Result<Vnode, Errno> {
        let v = self.lookup_raw(dir, name).await?;
        Ok(self.cross_mounts(v))
    }

    /// The parent of directory `dir`: stays at the VFS root, and climbs out of a mounted
    /// filesystem's root to the parent of the directory it covers.
    async fn dotdot(&self, dir: &Vnode) -> Result<Vnode, Errno> {
        let mut v = dir.clone();
        loop {
            if v.same_file(&self.root) {
                return Ok(v);
            }
            if !v.is_mount_root() {
                break;
            }
            match &v.mount.covered {
                Some(c) => v = c.clone(),
                None => return Ok(v),
            }
        }
        self.lookup_in(&v, b"..").await
    }

    /// Tells the namecache that `name` in `dir` changed behind the VFS's back (a device
    /// node added to devfs by the kernel after the name may have been looked up).
    pub fn invalidate_name(&self, dir: &Vnode, name: &[u8]) {
        self.invalidate(dir, name);
    }

    /// Tells the namecache that `name` in `dir` changed.
    fn invalidate(&self, dir: &Vnode, name: &[u8]) {
        self.cache.invalidate(dir.mount.id, dir.ino, name);
    }
}
