// SPDX-License-Identifier: MIT OR Apache-2.0
//! The VFS message vocabulary: what the VFS asks a filesystem's port, and what comes back.
//!
//! One message type, `VnodeMsg`, travels both ways (DragonFly's `vop_*` message is also
//! replied in place): the VFS fills `op` and, for data operations, `buf`; the filesystem
//! fills `result` and hands `buf` back, on success and on error alike (STYLE.md C.2:
//! ownership travels with the message). Nothing here refers to paths: a filesystem sees
//! only inode numbers and single names. Paths, `.`/`..` across mounts, symlink following and
//! the namecache are the VFS's business (`crate::vfs`).
//!
//! | op | `buf` in | `buf` out | `VnodeDone` |
//! |---|---|---|---|
//! | `Lookup`, `Create`, `Mkdir`, `Link`, `Open`, `GetAttr`, `SetAttr` | unused | unchanged | `Node(Attr)` |
//! | `Symlink` | link target | unchanged | `Node(Attr)` |
//! | `Read` | any capacity | the bytes read (none with `into`) | `Count(n)` |
//! | `ReadLink` | any capacity | the target | `Count(n)` |
//! | `Write` | the data | unchanged | `Written { count, end }` |
//! | `ReadDir` | unused | unchanged | `Entries { .. }` |
//! | `Rename` | unused | unchanged | `Renamed { .. }` |
//! | others | unused | unchanged | `Unit` |
//!
//! Direct I/O on caller memory: a `Read` or `Write` with `direct` set may carry an
//! [`ExternalBuf`] in `external` instead of `buf` (pinned user pages, by their physical
//! segments): a block device then reads into or writes from that memory with no copy
//! (`crate::blockdev`). The message hands `external` back like `buf`. Only block devices
//! take it; any other node answers `Inval`.
//!
//! One copy on cached filesystems: a filesystem whose data is in memory (tmpfs) says so
//! with [`Filesystem::takes_caller_memory`](crate::service::Filesystem::takes_caller_memory);
//! the VFS then gives its `Read` a [`CallerBuf`] in `into` and its `Write` one in `from`
//! (a process's memory, by user address) and `buf` stays empty: the bytes go between the
//! file's pages and the caller's memory in one copy, through the kernel's checked copy
//! routines, with no kernel buffer in between (as Linux's `copy_page_to_iter`). Every other
//! filesystem gets `buf`, and the VFS does the copy.

use alloc::{boxed::Box, sync::Arc, vec::Vec};

use abi::{Errno, FileType, Timespec};
pub use ports::proto::block::{ExternalBuf, PhysSegment};

/// Most bytes one `Read` message returns: a larger request gets a short read (as Linux
/// caps one read at `MAX_RW_COUNT`), so no request makes a filesystem allocate without
/// bound.
pub const MAX_IO_LEN: usize = 64 << 20;

/// An inode number, unique within one filesystem instance and never reused by tmpfs and
/// devfs (the namecache relies on that: see `crate::namecache`).
pub type Ino = u64;

/// One path component as a filesystem sees it: not empty, no `/`, no NUL, at most
/// [`crate::path::NAME_MAX`] bytes, and never `.` (`..` only in `Lookup`).
pub type Name = Box<[u8]>;

/// The attributes of a node (`getattr`'s answer), without the device id, which the VFS adds
/// from the mount.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: Ino,
    /// File type.
    pub kind: FileType,
    /// Permission bits (`07777`).
    pub perm: u32,
    /// Hard link count.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (directories: number of entries; symlinks: target length).
    pub size: u64,
    /// Storage actually allocated, in 512-byte units (sparse files use less than `size`).
    pub blocks: u64,
    /// Device number of a device special file, else 0.
    pub rdev: u64,
    /// Preferred I/O size in bytes (`st_blksize`): the page size for tmpfs files, the
    /// block cache's block size for block devices.
    pub blksize: u32,
    /// Last access.
    pub atime: Timespec,
    /// Last data modification.
    pub mtime: Timespec,
    /// Last status change.
    pub ctime: Timespec,
}

impl Attr {
    /// The full mode: type bits and permission bits.
    pub fn mode(&self) -> u32 {
        self.kind.mode_bits() | self.perm
    }

    /// The `Stat` record for this node on device `dev`.
    pub fn to_stat(&self, dev: u64) -> abi::Stat {
        abi::Stat {
            st_dev: dev,
            st_ino: self.ino,
            st_nlink: self.nlink,
            st_mode: self.mode(),
            st_uid: self.uid,
            st_gid: self.gid,
            pad0: 0,
            st_rdev: self.rdev,
            st_size: self.size as i64,
            st_blksize: self.blksize as i64,
            st_blocks: self.blocks as i64,
            st_atime: self.atime,
            st_mtime: self.mtime,
            st_ctime: self.ctime,
            reserved: [0; 3],
        }
    }
}

/// Caller memory a filesystem reads into or writes from directly (see the module docs):
/// the kernel's checked copy routines for one process, so a bad address is an error
/// (`Fault`), never a crash. Implemented by the kernel's process memory; tests implement
/// it over a plain buffer.
pub trait CallerMemory: Send + Sync {
    /// Copies `dst.len()` bytes from caller address `src`.
    ///
    /// # Errors
    /// `Fault` if any byte of `src..src + dst.len()` is not readable caller memory
    /// (`dst` may be partly written then).
    fn copy_from_user(&self, dst: &mut [u8], src: u64) -> Result<(), Errno>;

    /// Copies `src` to caller address `dst`.
    ///
    /// # Errors
    /// `Fault` if any byte of `dst..dst + src.len()` is not writable caller memory
    /// (earlier bytes may have been written).
    fn copy_to_user(&self, dst: u64, src: &[u8]) -> Result<(), Errno>;
}

/// Copies `len` bytes of caller memory at `addr` into a new `Vec`.
///
/// # Errors
/// `NoMem` if the allocation fails; `Fault` from the copy.
pub fn copy_in(memory: &dyn CallerMemory, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| Errno::NoMem)?;
    v.resize(len, 0);
    if len > 0 {
        memory.copy_from_user(&mut v, addr)?;
    }
    Ok(v)
}

/// `len` bytes of caller memory at `addr`: where a `Read` puts its bytes (`into`) or where
/// a `Write` takes them (`from`). Cheap to clone (the memory is shared).
#[derive(Clone)]
pub struct CallerBuf {
    memory: Arc<dyn CallerMemory>,
    addr: u64,
    len: usize,
}

impl CallerBuf {
    /// `len` bytes at caller address `addr` of `memory`. Nothing is checked here: every
    /// copy checks the bytes it touches.
    pub fn new(memory: Arc<dyn CallerMemory>, addr: u64, len: usize) -> CallerBuf {
        CallerBuf { memory, addr, len }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `src` to byte `at` of this buffer.
    ///
    /// # Errors
    /// `Fault` if that range runs past the buffer or is not writable caller memory.
    pub fn write_at(&self, at: usize, src: &[u8]) -> Result<(), Errno> {
        self.memory.copy_to_user(self.addr_of(at, src.len())?, src)
    }

    /// All of this buffer, copied into a new `Vec`.
    ///
    /// # Errors
    /// `NoMem` if the allocation fails; `Fault` from the copy.
    pub fn to_vec(&self) -> Result<Vec<u8>, Errno> {
        copy_in(&*self.memory, self.addr, self.len)
    }

    /// Fills `dst` from byte `at` of this buffer.
    ///
    /// # Errors
    /// `Fault` if that range runs past the buffer or is not readable caller memory.
    pub fn read_at(&self, at: usize, dst: &mut [u8]) -> Result<(), Errno> {
        self.memory
            .copy_from_user(dst, self.addr_of(at, dst.len())?)
    }

    /// The caller address of byte `at`, if `len` bytes from there lie inside the buffer.
    fn addr_of(&self, at: usize, len: usize) -> Result<u64, Errno> {
        if at.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(Errno::Fault);
        }
        Ok(self.addr + at as u64)
    }
}

impl core::fmt::Debug for CallerBuf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "CallerBuf({:#x}, {})", self.addr, self.len)
    }
}

/// The same memory (one `CallerMemory` object) and range.
impl PartialEq for CallerBuf {
    fn eq(&self, other: &CallerBuf) -> bool {
        Arc::ptr_eq(&self.memory, &other.memory) && (self.addr, self.len) == (other.addr, other.len)
    }
}

impl Eq for CallerBuf {}

/// How to change one timestamp in `SetAttr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeChange {
    /// Set to the filesystem's current time (`UTIME_NOW`).
    Now,
    /// Set to this time.
    At(Timespec),
}

/// Which attributes `SetAttr` changes; `None` leaves one as it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SetAttr {
    /// New permission bits (`07777`; type bits are ignored).
    pub perm: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New access time.
    pub atime: Option<TimeChange>,
    /// New modification time.
    pub mtime: Option<TimeChange>,
}

/// One directory entry as `ReadDir` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number of the entry.
    pub ino: Ino,
    /// Type of the entry.
    pub kind: FileType,
    /// The name.
    pub name: Name,
    /// The cookie that resumes reading *after* this entry.
    pub next_cookie: u64,
}

/// A vnode operation: the request half of a [`VnodeMsg`].
///
/// Callers (the VFS) guarantee that names obey the rules of [`Name`]; filesystems still
/// check what they rely on and answer `Inval` rather than panic.
// Variant fields are described in each variant's doc line.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VnodeOp {
    /// Find `name` in directory `dir` (`..` allowed: the parent, or `dir` itself at the root).
    Lookup { dir: Ino, name: Name },
    /// Create a regular file; `Exist` if the name is taken (creation is always exclusive:
    /// the VFS implements `O_CREAT` without `O_EXCL` on top).
    Create { dir: Ino, name: Name, perm: u32 },
    /// Create a directory.
    Mkdir { dir: Ino, name: Name, perm: u32 },
    /// Create a symbolic link whose target is `buf`.
    Symlink { dir: Ino, name: Name },
    /// Add a hard link `name` in `dir` to the non-directory `target`.
    Link { dir: Ino, name: Name, target: Ino },
    /// Remove a non-directory entry.
    Unlink { dir: Ino, name: Name },
    /// Remove an empty directory entry.
    Rmdir { dir: Ino, name: Name },
    /// Rename with POSIX `rename(2)` rules; `no_replace` is `RENAME_NOREPLACE`.
    Rename {
        from_dir: Ino,
        from_name: Name,
        to_dir: Ino,
        to_name: Name,
        no_replace: bool,
    },
    /// An open file now refers to `ino`: its storage stays alive until the matching
    /// `Close`, even when its last link goes away.
    Open { ino: Ino },
    /// The matching release of an `Open`.
    Close { ino: Ino },
    /// Read up to `len` (at most [`MAX_IO_LEN`]) bytes at `offset` into `buf` (which is
    /// cleared first), or straight into `into` (only for a filesystem that
    /// [takes caller memory](crate::service::Filesystem::takes_caller_memory); `len` is
    /// then at most `into`'s length, and `buf` stays empty). `non_blocking`
    /// (`O_NONBLOCK`): answer `Again` rather than wait for data that is not there yet
    /// (devices only; files never wait). `direct` (`O_DIRECT`): bypass caches; a block
    /// device then wants offset and length in whole sectors (`Inval` otherwise).
    /// Filesystems without a cache ignore it.
    Read {
        ino: Ino,
        offset: u64,
        len: usize,
        non_blocking: bool,
        direct: bool,
        into: Option<CallerBuf>,
    },
    /// Write `buf`, or all of `from` (as `into` for `Read`), at `offset`, or at the end of
    /// the file if `append` (atomically). `direct` as for `Read`. A fault in `from` part
    /// way is a short write (`Written` with the bytes before it), or `Fault` if there are
    /// none.
    Write {
        ino: Ino,
        offset: u64,
        append: bool,
        direct: bool,
        from: Option<CallerBuf>,
    },
    /// Set the size of a regular file.
    Truncate { ino: Ino, size: u64 },
    /// Attributes.
    GetAttr { ino: Ino },
    /// Change attributes (mode, owner, times); the reply has the new attributes.
    /// (Boxed: it is rare and the largest request, and every message carries the size of
    /// the largest.)
    SetAttr { ino: Ino, set: Box<SetAttr> },
    /// Up to `max` entries starting at `cookie` (0 = the beginning, which yields `.` first).
    ReadDir { dir: Ino, cookie: u64, max: usize },
    /// The target of a symbolic link, into `buf`.
    ReadLink { ino: Ino },
    /// Make `ino`'s data durable.
    Fsync { ino: Ino },
}

impl VnodeOp {
    /// A short name for logs and traces.
    pub fn name(&self) -> &'static str {
        match self {
            VnodeOp::Lookup { .. } => "lookup",
            VnodeOp::Create { .. } => "create",
            VnodeOp::Mkdir { .. } => "mkdir",
            VnodeOp::Symlink { .. } => "symlink",
            VnodeOp::Link { .. } => "link",
            VnodeOp::Unlink { .. } => "unlink",
            VnodeOp::Rmdir { .. } => "rmdir",
            VnodeOp::Rename { .. } => "rename",
            VnodeOp::Open { .. } => "open",
            VnodeOp::Close { .. } => "close",
            VnodeOp::Read { .. } => "read",
            VnodeOp::Write { .. } => "write",
            VnodeOp::Truncate { .. } => "truncate",
            VnodeOp::GetAttr { .. } => "getattr",
            VnodeOp::SetAttr { .. } => "setattr",
            VnodeOp::ReadDir { .. } => "readdir",
            VnodeOp::ReadLink { .. } => "readlink",
            VnodeOp::Fsync { .. } => "fsync",
        }
    }
}

/// The success half of a reply.
// Variant fields are described in each variant's doc line.
#[allow(missing_docs)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VnodeDone {
    /// Nothing to report.
    Unit,
    /// The node concerned (looked up, created, opened, or its new attributes).
    Node(Attr),
    /// A block device node opened: its attributes and the device, so that direct
    /// (`O_DIRECT`) I/O on the open file goes straight to the device's driver without
    /// a stop at the filesystem's task (DragonFly's `v_rdev`). Only `Open` answers this.
    OpenedDevice(Attr, crate::blockdev::DeviceRef),
    /// Bytes placed in `buf`.
    Count(usize),
    /// Bytes written, and the file offset just past them (differs from the request's
    /// offset for appends).
    Written { count: usize, end: u64 },
    /// Directory entries; `next_cookie` resumes, `at_end` says nothing follows.
    Entries {
        entries: Vec<DirEntry>,
        next_cookie: u64,
        at_end: bool,
    },
    /// The node that moved, and the node that the rename replaced (if any).
    Renamed { moved: Attr, replaced: Option<Ino> },
}

/// The result a filesystem puts into a message.
pub type VnodeResult = Result<VnodeDone, Errno>;

/// A vnode message: request, data buffer, and (once served) the result.
#[derive(Debug, PartialEq, Eq)]
pub struct VnodeMsg {
    /// What to do.
    pub op: VnodeOp,
    /// The data buffer (see the module table); always handed back.
    pub buf: Vec<u8>,
    /// Caller memory for a direct `Read`/`Write` instead of `buf` (see the module docs;
    /// boxed: only the rare `O_DIRECT` message to a device without a driver handle takes
    /// it, and every message carries its size).
    pub external: Option<Box<ExternalBuf>>,
    /// `None` until served.
    pub result: Option<VnodeResult>,
}

impl VnodeMsg {
    /// A message with an empty buffer.
    pub fn new(op: VnodeOp) -> VnodeMsg {
        VnodeMsg {
            op,
            buf: Vec::new(),
            external: None,
            result: None,
        }
    }

    /// A direct `Read`/`Write` message on caller memory.
    pub fn with_external(op: VnodeOp, external: ExternalBuf) -> VnodeMsg {
        VnodeMsg {
            external: Some(Box::new(external)),
            ..VnodeMsg::new(op)
        }
    }

    /// The bytes a `Write` carries: `from`'s or the external buffer's length, else `buf`'s.
    pub fn data_len(&self) -> usize {
        match (&self.op, &self.external) {
            (
                VnodeOp::Write {
                    from: Some(from), ..
                },
                _,
            ) => from.len(),
            (_, Some(external)) => external.len(),
            _ => self.buf.len(),
        }
    }

    /// A message carrying `buf`.
    pub fn with_buf(op: VnodeOp, buf: Vec<u8>) -> VnodeMsg {
        VnodeMsg {
            op,
            buf,
            external: None,
            result: None,
        }
    }

    /// The result, treating an unserved message as an I/O error (a filesystem that forgot to
    /// answer is a bug, but never a panic on the request path).
    pub fn take_result(&mut self) -> VnodeResult {
        debug_assert!(
            self.result.is_some(),
            "vnode message {} was not served",
            self.op.name()
        );
        self.result.take().unwrap_or(Err(Errno::Io))
    }
}
