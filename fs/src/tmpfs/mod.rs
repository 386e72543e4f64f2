// SPDX-License-Identifier: MIT OR Apache-2.0
//! tmpfs: a read-write filesystem in memory, served inline.
//!
//! Every operation takes the one state lock, does its work and replies: nothing ever
//! waits, so every `FsPort::call` to a tmpfs is `Ready` on its first poll.
//!
//! Invariants (checked by `debug_check` in tests):
//! - inode numbers are handed out once and never reused;
//! - a directory's `nlink` is 2 plus its number of subdirectories (1 less once removed:
//!   0); a file's `nlink` is its number of names;
//! - a node is freed when it has no name and no open file (`Open`/`Close` count);
//! - `bytes_used` is the number of allocated data pages times `PAGE_SIZE`.
//!
//! Every operation checks all its preconditions before changing anything, so a failed
//! operation leaves the filesystem exactly as it was.

mod dir;
mod file;

use alloc::{boxed::Box, sync::Arc, vec::Vec};

use abi::{Errno, FileType, Timespec};
use hashbrown::HashMap;
use spin::Mutex;

use self::{dir::DirData, file::FileData};
use crate::{
    path::check_name,
    platform::Clock,
    proto::{
        Attr, CallerBuf, DirEntry, Ino, MAX_IO_LEN, SetAttr, TimeChange, VnodeDone, VnodeMsg,
        VnodeOp, VnodeResult,
    },
    service::Filesystem,
};

/// Size of a data page and the preferred I/O size.
pub const PAGE_SIZE: usize = 4096;
/// Largest file size (`i64::MAX`, as `off_t` allows).
pub const MAX_FILE_SIZE: u64 = i64::MAX as u64;
/// Largest hard link count of a file (`EMLINK` past it).
pub const MAX_LINKS: u64 = 65_000;
/// The root directory's inode number.
pub const ROOT_INO: Ino = 1;

#[derive(Debug)]
enum Data {
    File(FileData),
    Dir(DirData),
    Symlink(Box<[u8]>),
}

#[derive(Debug)]
struct Node {
    perm: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    open_count: u64,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
    data: Data,
}

impl Node {
    fn new(perm: u32, now: Timespec, data: Data) -> Node {
        let nlink = if matches!(data, Data::Dir(_)) { 2 } else { 1 };
        Node {
            perm: perm & abi::stat::PERMISSION_MASK,
            uid: 0,
            gid: 0,
            nlink,
            open_count: 0,
            atime: now,
            mtime: now,
            ctime: now,
            data,
        }
    }

    fn kind(&self) -> FileType {
        match self.data {
            Data::File(_) => FileType::Regular,
            Data::Dir(_) => FileType::Directory,
            Data::Symlink(_) => FileType::Symlink,
        }
    }

    fn attr(&self, ino: Ino) -> Attr {
        let (size, pages) = match &self.data {
            Data::File(f) => (f.size(), f.nr_pages()),
            Data::Dir(d) => (d.len() as u64, 0),
            Data::Symlink(t) => (t.len() as u64, 0),
        };
        Attr {
            ino,
            kind: self.kind(),
            perm: self.perm,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            size,
            blocks: pages * (PAGE_SIZE as u64 / 512),
            rdev: 0,
            blksize: PAGE_SIZE as u32,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }
}

struct State {
    nodes: HashMap<Ino, Node>,
    next_ino: Ino,
    bytes_used: u64,
    limit_bytes: u64,
}

/// A tmpfs instance.
pub struct Tmpfs {
    state: Mutex<State>,
    clock: Arc<dyn Clock>,
}

impl Tmpfs {
    /// An empty tmpfs (root directory mode `0755`) without a size limit.
    pub fn new(clock: Arc<dyn Clock>) -> Tmpfs {
        Tmpfs::with_limit(clock, u64::MAX)
    }

    /// An empty tmpfs whose file data may use at most `limit_bytes` (`NoSpc` past it).
    pub fn with_limit(clock: Arc<dyn Clock>, limit_bytes: u64) -> Tmpfs {
        let now = clock.now();
        let mut nodes = HashMap::new();
        nodes.insert(
            ROOT_INO,
            Node::new(0o755, now, Data::Dir(DirData::new(ROOT_INO))),
        );
        Tmpfs {
            state: Mutex::new(State {
                nodes,
                next_ino: ROOT_INO + 1,
                bytes_used: 0,
                limit_bytes,
            }),
            clock,
        }
    }

    /// Bytes of file data allocated.
    pub fn bytes_used(&self) -> u64 {
        self.state.lock().bytes_used
    }

    /// Number of live nodes (including the root).
    pub fn node_count(&self) -> usize {
        self.state.lock().nodes.len()
    }

    /// Serves one operation synchronously (what `Filesystem::serve` does).
    pub fn serve_op(&self, op: &VnodeOp, buf: &mut Vec<u8>) -> VnodeResult {
        let mut st = self.state.lock();
        let now = self.clock.now();
        match *op {
            VnodeOp::Lookup { dir, ref name } => st.lookup(dir, name),
            VnodeOp::Create {
                dir,
                ref name,
                perm,
            } => st.create(
                dir,
                name,
                now,
                Node::new(perm, now, Data::File(FileData::default())),
            ),
            VnodeOp::Mkdir {
                dir,
                ref name,
                perm,
            } => st.create(
                dir,
                name,
                now,
                Node::new(perm, now, Data::Dir(DirData::new(dir))),
            ),
            VnodeOp::Symlink { dir, ref name } => {
                if buf.is_empty() {
                    return Err(Errno::NoEnt);
                }
                if buf.len() >= crate::path::PATH_MAX {
                    return Err(Errno::NameTooLong);
                }
                if buf.contains(&0) {
                    return Err(Errno::Inval);
                }
                let target = buf.clone().into_boxed_slice();
                st.create(dir, name, now, Node::new(0o777, now, Data::Symlink(target)))
            }
            VnodeOp::Link {
                dir,
                ref name,
                target,
            } => st.link(dir, name, target, now),
            VnodeOp::Unlink { dir, ref name } => st.remove(dir, name, false, now),
            VnodeOp::Rmdir { dir, ref name } => st.remove(dir, name, true, now),
            VnodeOp::Rename {
                from_dir,
                ref from_name,
                to_dir,
                ref to_name,
                no_replace,
            } => st.rename(from_dir, from_name, to_dir, to_name, no_replace, now),
            VnodeOp::Open { ino } => {
                let node = st.node_mut(ino)?;
                node.open_count += 1;
                Ok(VnodeDone::Node(node.attr(ino)))
            }
            VnodeOp::Close { ino } => {
                let node = st.node_mut(ino)?;
                node.open_count = node.open_count.saturating_sub(1);
                st.maybe_free(ino);
                Ok(VnodeDone::Unit)
            }
            VnodeOp::Read {
                ino,
                offset,
                len,
                ref into,
                ..
            } => st.read(ino, offset, len.min(MAX_IO_LEN), into.as_ref(), buf, now),
            VnodeOp::Write {
                ino,
                offset,
                append,
                ref from,
                ..
            } => {
                let data = match from {
                    Some(from) => Source::Caller(from),
                    None => Source::Bytes(buf),
                };
                st.write(ino, offset, append, data, now)
            }
            VnodeOp::Truncate { ino, size } => st.truncate(ino, size, now),
            VnodeOp::GetAttr { ino } => Ok(VnodeDone::Node(st.node(ino)?.attr(ino))),
            VnodeOp::SetAttr { ino, ref set } => st.set_attr(ino, **set, now),
            VnodeOp::ReadDir { dir, cookie, max } => st.read_dir(dir, cookie, max, now),
            VnodeOp::ReadLink { ino } => match &st.node(ino)?.data {
                Data::Symlink(target) => {
                    buf.clear();
                    buf.extend_from_slice(target);
                    Ok(VnodeDone::Count(target.len()))
                }
                _ => Err(Errno::Inval),
            },
            VnodeOp::Fsync { ino } => st.node(ino).map(|_| VnodeDone::Unit),
        }
    }

    /// Checks the invariants listed in the module docs; for tests.
    ///
    /// # Panics
    /// If an invariant does not hold.
    pub fn debug_check(&self) {
        let st = self.state.lock();
        let mut names: HashMap<Ino, u64> = HashMap::new();
        let mut subdirs: HashMap<Ino, u64> = HashMap::new();
        let mut pages = 0;
        for (&ino, node) in &st.nodes {
            match &node.data {
                Data::Dir(d) => {
                    for (_, _, child) in d.entries_from(0) {
                        *names.entry(child).or_default() += 1;
                        if matches!(st.nodes[&child].data, Data::Dir(_)) {
                            *subdirs.entry(ino).or_default() += 1;
                            assert_eq!(
                                match &st.nodes[&child].data {
                                    Data::Dir(c) => c.parent,
                                    _ => unreachable!(),
                                },
                                ino,
                                "parent pointer of {child}"
                            );
                        }
                    }
                }
                Data::File(f) => {
                    f.debug_check();
                    pages += f.nr_pages();
                }
                Data::Symlink(_) => {}
            }
        }
        for (&ino, node) in &st.nodes {
            let n = names.get(&ino).copied().unwrap_or(0);
            match &node.data {
                Data::Dir(_) if ino == ROOT_INO => {
                    assert_eq!(node.nlink, 2 + subdirs.get(&ino).copied().unwrap_or(0))
                }
                Data::Dir(_) if node.nlink == 0 => assert_eq!(n, 0),
                Data::Dir(_) => {
                    assert_eq!(n, 1, "directory {ino} has {n} names");
                    assert_eq!(node.nlink, 2 + subdirs.get(&ino).copied().unwrap_or(0))
                }
                _ => assert_eq!(node.nlink, n, "link count of {ino}"),
            }
            assert!(
                node.nlink > 0 || node.open_count > 0,
                "node {ino} should be freed"
            );
        }
        assert_eq!(st.bytes_used, pages * PAGE_SIZE as u64);
    }
}

impl Filesystem for Tmpfs {
    fn fs_type(&self) -> &'static str {
        "tmpfs"
    }

    fn root(&self) -> Ino {
        ROOT_INO
    }

    fn serve(&self, msg: &mut VnodeMsg) {
        msg.result = Some(self.serve_op(&msg.op, &mut msg.buf));
    }

    fn takes_caller_memory(&self) -> bool {
        true
    }
}

/// Where a `Write`'s bytes come from.
enum Source<'a> {
    Bytes(&'a [u8]),
    Caller(&'a CallerBuf),
}

impl Source<'_> {
    fn len(&self) -> usize {
        match self {
            Source::Bytes(b) => b.len(),
            Source::Caller(c) => c.len(),
        }
    }
}

fn resolve_time(change: TimeChange, now: Timespec) -> Result<Timespec, Errno> {
    match change {
        TimeChange::Now => Ok(now),
        TimeChange::At(t) if t.is_normalized() => Ok(t),
        TimeChange::At(_) => Err(Errno::Inval),
    }
}

impl State {
    fn node(&self, ino: Ino) -> Result<&Node, Errno> {
        self.nodes.get(&ino).ok_or(Errno::NoEnt)
    }

    fn node_mut(&mut self, ino: Ino) -> Result<&mut Node, Errno> {
        self.nodes.get_mut(&ino).ok_or(Errno::NoEnt)
    }

    /// The directory `dir`, which must be a live directory.
    fn dir(&self, dir: Ino) -> Result<&DirData, Errno> {
        let node = self.node(dir)?;
        match &node.data {
            Data::Dir(_) if node.nlink == 0 => Err(Errno::NoEnt),
            Data::Dir(d) => Ok(d),
            _ => Err(Errno::NotDir),
        }
    }

    fn dir_mut(&mut self, dir: Ino) -> &mut DirData {
        match &mut self
            .nodes
            .get_mut(&dir)
            .expect("directory checked by the caller")
            .data
        {
            Data::Dir(d) => d,
            _ => unreachable!("directory checked by the caller"),
        }
    }

    fn touch_dir(&mut self, dir: Ino, now: Timespec) {
        if let Some(node) = self.nodes.get_mut(&dir) {
            node.mtime = now;
            node.ctime = now;
        }
    }

    fn lookup(&self, dir: Ino, name: &[u8]) -> VnodeResult {
        let d = self.dir(dir)?;
        let ino = if name == b".." {
            d.parent
        } else if name == b"." {
            dir
        } else {
            check_name(name)?;
            d.get(name).ok_or(Errno::NoEnt)?
        };
        Ok(VnodeDone::Node(self.node(ino)?.attr(ino)))
    }

    fn create(&mut self, dir: Ino, name: &[u8], now: Timespec, node: Node) -> VnodeResult {
        check_name(name)?;
        let d = self.dir(dir)?;
        if d.get(name).is_some() {
            return Err(Errno::Exist);
        }
        let is_dir = matches!(node.data, Data::Dir(_));
        if is_dir && self.node(dir)?.nlink >= MAX_LINKS {
            return Err(Errno::MLink);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let attr = node.attr(ino);
        self.nodes.insert(ino, node);
        self.dir_mut(dir).insert(name.into(), ino);
        self.touch_dir(dir, now);
        if is_dir {
            self.node_mut(dir)?.nlink += 1;
        }
        Ok(VnodeDone::Node(attr))
    }

    fn link(&mut self, dir: Ino, name: &[u8], target: Ino, now: Timespec) -> VnodeResult {
        check_name(name)?;
        let node = self.node(target)?;
        if matches!(node.data, Data::Dir(_)) {
            return Err(Errno::Perm);
        }
        if node.nlink == 0 {
            // An open but unlinked file cannot get a name back (Linux: ENOENT).
            return Err(Errno::NoEnt);
        }
        if node.nlink >= MAX_LINKS {
            return Err(Errno::MLink);
        }
        let d = self.dir(dir)?;
        if d.get(name).is_some() {
            return Err(Errno::Exist);
        }
        self.dir_mut(dir).insert(name.into(), target);
        self.touch_dir(dir, now);
        let node = self.node_mut(target)?;
        node.nlink += 1;
        node.ctime = now;
        Ok(VnodeDone::Node(node.attr(target)))
    }

    fn remove(&mut self, dir: Ino, name: &[u8], want_dir: bool, now: Timespec) -> VnodeResult {
        check_name(name)?;
        let ino = self.dir(dir)?.get(name).ok_or(Errno::NoEnt)?;
        let node = self.node(ino)?;
        match (&node.data, want_dir) {
            (Data::Dir(d), true) if !d.is_empty() => return Err(Errno::NotEmpty),
            (Data::Dir(_), true) => {}
            (Data::Dir(_), false) => return Err(Errno::IsDir),
            (_, true) => return Err(Errno::NotDir),
            (_, false) => {}
        }
        self.dir_mut(dir).remove(name);
        self.touch_dir(dir, now);
        let node = self.node_mut(ino)?;
        node.ctime = now;
        if want_dir {
            node.nlink = 0;
            self.node_mut(dir)?.nlink -= 1;
        } else {
            node.nlink -= 1;
        }
        self.maybe_free(ino);
        Ok(VnodeDone::Unit)
    }

    /// True if `ino` is `ancestor` or lies below it.
    fn is_within(&self, mut ino: Ino, ancestor: Ino) -> bool {
        loop {
            if ino == ancestor {
                return true;
            }
            match self.nodes.get(&ino).map(|n| &n.data) {
                Some(Data::Dir(d)) if d.parent != ino => ino = d.parent,
                _ => return false,
            }
        }
    }

    fn rename(
        &mut self,
        from_dir: Ino,
        from_name: &[u8],
        to_dir: Ino,
        to_name: &[u8],
        no_replace: bool,
        now: Timespec,
    ) -> VnodeResult {
        check_name(from_name)?;
        check_name(to_name)?;
        let moved = self.dir(from_dir)?.get(from_name).ok_or(Errno::NoEnt)?;
        let existing = self.dir(to_dir)?.get(to_name);
        let moved_is_dir = matches!(self.node(moved)?.data, Data::Dir(_));
        if moved_is_dir && self.is_within(to_dir, moved) {
            return Err(Errno::Inval);
        }
        if existing == Some(moved) {
            // Two names of one file, or a rename onto itself: POSIX says do nothing.
            return Ok(VnodeDone::Renamed {
                moved: self.node(moved)?.attr(moved),
                replaced: None,
            });
        }
        if let Some(victim) = existing {
            if no_replace {
                return Err(Errno::Exist);
            }
            match (&self.node(victim)?.data, moved_is_dir) {
                (Data::Dir(d), true) if !d.is_empty() => return Err(Errno::NotEmpty),
                (Data::Dir(_), true) => {}
                (Data::Dir(_), false) => return Err(Errno::IsDir),
                (_, true) => return Err(Errno::NotDir),
                (_, false) => {}
            }
        } else if moved_is_dir && from_dir != to_dir && self.node(to_dir)?.nlink >= MAX_LINKS {
            return Err(Errno::MLink);
        }
        // Every check passed: from here on nothing fails.
        if let Some(victim) = existing {
            self.dir_mut(to_dir).remove(to_name);
            let node = self.node_mut(victim)?;
            node.ctime = now;
            if moved_is_dir {
                node.nlink = 0;
                self.node_mut(to_dir)?.nlink -= 1;
            } else {
                node.nlink -= 1;
            }
            self.maybe_free(victim);
        }
        self.dir_mut(from_dir).remove(from_name);
        self.dir_mut(to_dir).insert(to_name.into(), moved);
        if moved_is_dir && from_dir != to_dir {
            self.node_mut(from_dir)?.nlink -= 1;
            self.node_mut(to_dir)?.nlink += 1;
            if let Data::Dir(d) = &mut self.node_mut(moved)?.data {
                d.parent = to_dir;
            }
        }
        self.touch_dir(from_dir, now);
        self.touch_dir(to_dir, now);
        let node = self.node_mut(moved)?;
        node.ctime = now;
        Ok(VnodeDone::Renamed {
            moved: node.attr(moved),
            replaced: existing,
        })
    }

    fn maybe_free(&mut self, ino: Ino) {
        let Some(node) = self.nodes.get(&ino) else {
            return;
        };
        if node.nlink == 0
            && node.open_count == 0
            && ino != ROOT_INO
            && let Some(Node {
                data: Data::File(f),
                ..
            }) = self.nodes.remove(&ino)
        {
            self.bytes_used -= f.nr_pages() * PAGE_SIZE as u64;
        }
    }

    fn read(
        &mut self,
        ino: Ino,
        offset: u64,
        len: usize,
        into: Option<&CallerBuf>,
        buf: &mut Vec<u8>,
        now: Timespec,
    ) -> VnodeResult {
        let node = self.node_mut(ino)?;
        let Data::File(f) = &node.data else {
            return Err(if node.kind() == FileType::Directory {
                Errno::IsDir
            } else {
                Errno::Inval
            });
        };
        buf.clear();
        if offset > MAX_FILE_SIZE {
            return Err(Errno::Inval);
        }
        let n = f.size().saturating_sub(offset).min(len as u64) as usize;
        let n = match into {
            // Straight from the pages to the caller: one copy.
            Some(to) => {
                let n = n.min(to.len());
                f.read_with(offset, n, |done, bytes| to.write_at(done, bytes))?;
                n
            }
            None => {
                f.read_append(offset, n, buf);
                n
            }
        };
        node.atime = now;
        Ok(VnodeDone::Count(n))
    }

    fn write(
        &mut self,
        ino: Ino,
        offset: u64,
        append: bool,
        data: Source<'_>,
        now: Timespec,
    ) -> VnodeResult {
        let (used, limit) = (self.bytes_used, self.limit_bytes);
        let node = self.node_mut(ino)?;
        let Data::File(f) = &mut node.data else {
            return Err(if node.kind() == FileType::Directory {
                Errno::IsDir
            } else {
                Errno::Inval
            });
        };
        let offset = if append { f.size() } else { offset };
        if offset > MAX_FILE_SIZE || data.len() as u64 > MAX_FILE_SIZE - offset {
            return Err(Errno::FBig);
        }
        let len = data.len();
        if len == 0 {
            return Ok(VnodeDone::Written {
                count: 0,
                end: offset,
            });
        }
        let new_bytes = f.pages_needed(offset, len) * PAGE_SIZE as u64;
        if new_bytes > limit.saturating_sub(used) {
            return Err(Errno::NoSpc);
        }
        let pages = f.nr_pages();
        let (count, result) = match data {
            Source::Bytes(data) => {
                f.write(offset, data);
                (len, Ok(()))
            }
            // Straight from the caller to the pages: one copy. A fault part way is a
            // short write.
            Source::Caller(from) => f.write_with(offset, len, |done, to| from.read_at(done, to)),
        };
        let added = (f.nr_pages() - pages) * PAGE_SIZE as u64;
        if count == 0 {
            // Nothing written (a fault at once): no page was kept either.
            return result.map(|()| VnodeDone::Written {
                count: 0,
                end: offset,
            });
        }
        node.mtime = now;
        node.ctime = now;
        self.bytes_used += added;
        Ok(VnodeDone::Written {
            count,
            end: offset + count as u64,
        })
    }

    fn truncate(&mut self, ino: Ino, size: u64, now: Timespec) -> VnodeResult {
        let node = self.node_mut(ino)?;
        let Data::File(f) = &mut node.data else {
            return Err(if node.kind() == FileType::Directory {
                Errno::IsDir
            } else {
                Errno::Inval
            });
        };
        if size > MAX_FILE_SIZE {
            return Err(Errno::FBig);
        }
        let freed = f.truncate(size);
        node.mtime = now;
        node.ctime = now;
        let attr = node.attr(ino);
        self.bytes_used -= freed * PAGE_SIZE as u64;
        Ok(VnodeDone::Node(attr))
    }

    fn set_attr(&mut self, ino: Ino, set: SetAttr, now: Timespec) -> VnodeResult {
        let atime = set.atime.map(|t| resolve_time(t, now)).transpose()?;
        let mtime = set.mtime.map(|t| resolve_time(t, now)).transpose()?;
        let node = self.node_mut(ino)?;
        if let Some(perm) = set.perm {
            node.perm = perm & abi::stat::PERMISSION_MASK;
        }
        if let Some(uid) = set.uid {
            node.uid = uid;
        }
        if let Some(gid) = set.gid {
            node.gid = gid;
        }
        if let Some(t) = atime {
            node.atime = t;
        }
        if let Some(t) = mtime {
            node.mtime = t;
        }
        node.ctime = now;
        Ok(VnodeDone::Node(node.attr(ino)))
    }

    fn read_dir(&mut self, dir: Ino, cookie: u64, max: usize, now: Timespec) -> VnodeResult {
        let node = self.node(dir)?;
        let Data::Dir(d) = &node.data else {
            return Err(Errno::NotDir);
        };
        let mut entries = Vec::new();
        let mut next_cookie = cookie;
        let live = node.nlink > 0;
        if cookie == 0 && entries.len() < max {
            entries.push(DirEntry {
                ino: dir,
                kind: FileType::Directory,
                name: (*b".").into(),
                next_cookie: 1,
            });
            next_cookie = 1;
        }
        if next_cookie == 1 && entries.len() < max {
            entries.push(DirEntry {
                ino: d.parent,
                kind: FileType::Directory,
                name: (*b"..").into(),
                next_cookie: 2,
            });
            next_cookie = 2;
        }
        let mut at_end = true;
        if live {
            for (next, name, ino) in d.entries_from(next_cookie) {
                if entries.len() >= max {
                    at_end = false;
                    break;
                }
                let kind = self.nodes.get(&ino).map_or(FileType::Regular, Node::kind);
                entries.push(DirEntry {
                    ino,
                    kind,
                    name: name.clone(),
                    next_cookie: next,
                });
                next_cookie = next;
            }
        }
        if next_cookie < 2 {
            at_end = false;
        }
        if let Some(node) = self.nodes.get_mut(&dir) {
            node.atime = now;
        }
        Ok(VnodeDone::Entries {
            entries,
            next_cookie,
            at_end,
        })
    }
}
