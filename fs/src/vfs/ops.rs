// SPDX-License-Identifier: MIT OR Apache-2.0
//! The POSIX operations of the VFS, one `async fn` each.
//!
//! Each one validates what it was given, walks the path, sends one (rarely two) messages
//! to the filesystem's port and updates the namecache. All of them are `Ready` on their
//! first poll when every filesystem they touch serves inline (tmpfs, devfs).
//!
//! Permission checks are not done yet (every caller is root); they belong here when
//! processes get credentials.

use alloc::{boxed::Box, sync::Arc, vec::Vec};

use abi::{DirentType, Errno, FileType, OpenFlags, Stat, Whence, dirent::encode_dirent};

use super::{
    Vfs, Vnode,
    walk::{Last, ParentWalk},
};
use crate::{
    blockdev::DeviceRef,
    file::OpenFile,
    path::PATH_MAX,
    proto::{
        Attr, CallerBuf, DirEntry, ExternalBuf, SetAttr, TimeChange, VnodeDone, VnodeMsg, VnodeOp,
    },
    service::FsPort,
};

/// Entries asked for per `ReadDir` message by [`Vfs::getdents`].
pub const DEFAULT_READDIR_BATCH: usize = 64;

/// New access and modification times for [`Vfs::utimens`]; `None` leaves one unchanged
/// (`UTIME_OMIT`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utimes {
    /// Access time.
    pub atime: Option<TimeChange>,
    /// Modification time.
    pub mtime: Option<TimeChange>,
}

/// Flags `open` accepts and keeps on the open file.
const CREATION_FLAGS: OpenFlags = OpenFlags::CREATE
    .union(OpenFlags::EXCLUSIVE)
    .union(OpenFlags::TRUNCATE);

/// `BadF` unless `file` is open for writing (`write`) or reading, `IsDir` on a
/// directory.
fn check_open_for(file: &OpenFile, write: bool) -> Result<(), Errno> {
    let flags = file.flags();
    let allowed = if write {
        flags.is_writable()
    } else {
        flags.is_readable()
    };
    if !allowed || flags.contains(OpenFlags::PATH) {
        return Err(Errno::BadF);
    }
    if file.kind() == FileType::Directory {
        return Err(Errno::IsDir);
    }
    Ok(())
}

/// The file's position lock for a `read` or `write` at the file's offset (`at` is
/// `None`); none for a `pread` or `pwrite` at `at`.
async fn lock_position_unless_at(
    file: &OpenFile,
    at: Option<u64>,
) -> Option<crate::file::PositionGuard<'_>> {
    match at {
        None => Some(file.lock_position().await),
        Some(_) => None,
    }
}

/// Sends `op` with `buf` to `port` and takes the buffer back with the reply's value, as
/// `pick` finds it (a reply of another kind is `Io`).
async fn call_with_buf<T>(
    port: &FsPort,
    op: VnodeOp,
    buf: Vec<u8>,
    pick: impl FnOnce(VnodeDone) -> Option<T>,
) -> (Result<T, Errno>, Vec<u8>) {
    let mut msg = VnodeMsg::with_buf(op, buf);
    port.call_in_place(&mut msg).await;
    let result = msg
        .take_result()
        .and_then(|done| pick(done).ok_or(Errno::Io));
    (result, msg.buf)
}

fn expect_node(reply: Result<VnodeDone, Errno>) -> Result<Attr, Errno> {
    match reply? {
        VnodeDone::Node(attr) => Ok(attr),
        _ => Err(Errno::Io),
    }
}

impl Vfs {
    // ---------------------------------------------------------------- open and close

    /// `openat`: opens (and with `CREATE`, creates with permission bits `perm`) `path`.
    ///
    /// # Errors
    /// Walk errors, and: `Inval` for `CREATE|DIRECTORY`; `Exist` for `CREATE|EXCLUSIVE` on
    /// an existing name (symlinks included, not followed); `Loop` for `NO_FOLLOW` on a
    /// symlink; `NotDir` for `DIRECTORY` on a non-directory; `IsDir` when opening a
    /// directory for writing, truncating or creating.
    pub async fn open(
        &self,
        at: &Vnode,
        path: &[u8],
        flags: OpenFlags,
        perm: u32,
    ) -> Result<Arc<OpenFile>, Errno> {
        if flags.contains(OpenFlags::CREATE) && flags.contains(OpenFlags::DIRECTORY) {
            return Err(Errno::Inval);
        }
        let node = if flags.contains(OpenFlags::CREATE) {
            self.open_create(at, path, flags, perm).await?
        } else {
            let v = self
                .lookup(at, path, !flags.contains(OpenFlags::NO_FOLLOW))
                .await?;
            if v.kind() == FileType::Symlink && !flags.contains(OpenFlags::PATH) {
                return Err(Errno::Loop);
            }
            v
        };
        if flags.contains(OpenFlags::DIRECTORY) && node.kind() != FileType::Directory {
            return Err(Errno::NotDir);
        }
        if flags.contains(OpenFlags::PATH) {
            return Ok(Arc::new(OpenFile::new(
                node,
                flags.difference(CREATION_FLAGS),
            )));
        }
        // Linux truncates on `O_TRUNC` whatever the access mode (POSIX leaves `O_RDONLY`
        // unspecified); we do the same so C programs agree.
        let truncate = flags.contains(OpenFlags::TRUNCATE);
        if node.kind() == FileType::Directory
            && (flags.is_writable()
                || flags.contains(OpenFlags::TRUNCATE)
                || flags.contains(OpenFlags::CREATE))
        {
            return Err(Errno::IsDir);
        }
        let device = match node
            .port()
            .call_op(VnodeOp::Open { ino: node.ino() })
            .await?
        {
            VnodeDone::Node(_) => None,
            VnodeDone::OpenedDevice(_, DeviceRef(device)) => Some(device),
            _ => return Err(Errno::Io),
        };
        // From here the file counts as open: `OpenFile`'s drop sends the `Close`.
        let file = Arc::new(OpenFile::with_device(
            node,
            flags.difference(CREATION_FLAGS),
            device,
        ));
        if truncate && file.kind() == FileType::Regular {
            let v = file.vnode();
            expect_node(
                v.port()
                    .call_op(VnodeOp::Truncate {
                        ino: v.ino(),
                        size: 0,
                    })
                    .await,
            )?;
        }
        Ok(file)
    }

    async fn open_create(
        &self,
        at: &Vnode,
        path: &[u8],
        flags: OpenFlags,
        perm: u32,
    ) -> Result<Vnode, Errno> {
        let exclusive = flags.contains(OpenFlags::EXCLUSIVE);
        let mut links = 0;
        let mut start = at.clone();
        let mut path: Vec<u8> = path.into();
        loop {
            let ParentWalk {
                dir,
                last,
                trailing_slash,
            } = self.walk_parent(&start, &path, &mut links).await?;
            let name = match last {
                Last::Name(name) => name,
                _ => {
                    return Err(if exclusive {
                        Errno::Exist
                    } else {
                        Errno::IsDir
                    });
                }
            };
            match self.lookup_in(&dir, &name).await {
                Ok(v) if exclusive => {
                    drop(v);
                    return Err(Errno::Exist);
                }
                Ok(v) if v.kind() == FileType::Symlink => {
                    if flags.contains(OpenFlags::NO_FOLLOW) {
                        return Err(Errno::Loop);
                    }
                    // Linux creates the target of a dangling symlink: resolve it as a new path.
                    let mut target = self.follow_link(&v, &mut links).await?;
                    if trailing_slash {
                        target.push(b'/');
                    }
                    path = target;
                    start = dir;
                    continue;
                }
                Ok(v) => {
                    if trailing_slash && v.kind() != FileType::Directory {
                        return Err(Errno::NotDir);
                    }
                    return Ok(v);
                }
                Err(Errno::NoEnt) => {
                    if trailing_slash {
                        return Err(Errno::IsDir);
                    }
                    let op = VnodeOp::Create {
                        dir: dir.ino(),
                        name: name.clone(),
                        perm,
                    };
                    let reply = dir.port().call_op(op).await;
                    if reply.is_ok() {
                        self.invalidate(&dir, &name);
                    }
                    match reply {
                        Ok(VnodeDone::Node(attr)) => {
                            return Ok(Vnode {
                                mount: dir.mount().clone(),
                                ino: attr.ino,
                                kind: attr.kind,
                            });
                        }
                        Ok(_) => return Err(Errno::Io),
                        // Someone else created it since our lookup: open theirs.
                        Err(Errno::Exist) if !exclusive => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    // ---------------------------------------------------------------- data

    /// `read`: reads up to `len` bytes at the file's offset into `buf` (cleared first),
    /// advances the offset, and hands `buf` back in both cases.
    ///
    /// # Errors
    /// `BadF` if not open for reading; `IsDir` on a directory.
    pub async fn read(
        &self,
        file: &OpenFile,
        buf: Vec<u8>,
        len: usize,
    ) -> (Result<usize, Errno>, Vec<u8>) {
        let _position = file.lock_position().await;
        let offset = file.offset();
        let (result, buf) = self.pread(file, buf, len, offset).await;
        if let Ok(n) = result {
            file.set_offset(offset + n as u64);
        }
        (result, buf)
    }

    /// `pread`: like `read` at an explicit offset, leaving the file's offset alone.
    ///
    /// # Errors
    /// As `read`, plus `Inval` for an offset past `i64::MAX`.
    pub async fn pread(
        &self,
        file: &OpenFile,
        buf: Vec<u8>,
        len: usize,
        offset: u64,
    ) -> (Result<usize, Errno>, Vec<u8>) {
        if let Err(e) = check_open_for(file, false) {
            return (Err(e), buf);
        }
        if offset > i64::MAX as u64 {
            return (Err(Errno::Inval), buf);
        }
        self.read_msg(file, buf, len, offset, None).await
    }

    /// The `Read` message of `pread` and `read_to`, after their checks.
    async fn read_msg(
        &self,
        file: &OpenFile,
        buf: Vec<u8>,
        len: usize,
        offset: u64,
        into: Option<CallerBuf>,
    ) -> (Result<usize, Errno>, Vec<u8>) {
        let v = file.vnode();
        let op = VnodeOp::Read {
            ino: v.ino(),
            offset,
            len,
            non_blocking: file.flags().contains(OpenFlags::NON_BLOCK),
            direct: file.flags().contains(OpenFlags::DIRECT),
            into,
        };
        call_with_buf(v.port(), op, buf, |done| match done {
            VnodeDone::Count(n) => Some(n),
            _ => None,
        })
        .await
    }

    /// `read` (`at` is `None`: at the file's offset, which advances) or `pread` (at
    /// `at`) into caller memory `to`, for as many bytes as `to` has: what the read system
    /// call does. A filesystem that [takes caller memory] (tmpfs) copies from its pages
    /// straight to `to`; from any other, the bytes come back in a buffer and are copied
    /// to `to` here. Returns the bytes read.
    ///
    /// # Errors
    /// As `read` and `pread`, plus `Fault` if `to` is not writable (the offset does not
    /// move then).
    ///
    /// [takes caller memory]: crate::service::Filesystem::takes_caller_memory
    pub async fn read_to(
        &self,
        file: &OpenFile,
        to: CallerBuf,
        at: Option<u64>,
    ) -> Result<usize, Errno> {
        check_open_for(file, false)?;
        let _position = lock_position_unless_at(file, at).await;
        let offset = at.unwrap_or_else(|| file.offset());
        if offset > i64::MAX as u64 {
            return Err(Errno::Inval);
        }
        let len = to.len();
        let n = if file.vnode().port().takes_caller_memory() {
            self.read_msg(file, Vec::new(), len, offset, Some(to))
                .await
                .0?
        } else {
            let (n, buf) = self.read_msg(file, Vec::new(), len, offset, None).await;
            let n = n?.min(buf.len());
            to.write_at(0, &buf[..n])?;
            n
        };
        if at.is_none() {
            file.set_offset(offset + n as u64);
        }
        Ok(n)
    }

    /// `write` (`at` is `None`: at the file's offset, which advances) or `pwrite` (at
    /// `at`) of all of caller memory `from`: what the write system call does. A
    /// filesystem that [takes caller memory] (tmpfs) copies from `from` straight into
    /// its pages (a fault part way is a short write); for any other, `from` is copied
    /// into a buffer here first. Returns the bytes written.
    ///
    /// # Errors
    /// As `write` and `pwrite`, plus `Fault` if `from` is not readable and nothing was
    /// written; `NoMem` if the buffer for another filesystem cannot be had.
    ///
    /// [takes caller memory]: crate::service::Filesystem::takes_caller_memory
    pub async fn write_from(
        &self,
        file: &OpenFile,
        from: CallerBuf,
        at: Option<u64>,
    ) -> Result<usize, Errno> {
        check_open_for(file, true)?;
        let _position = lock_position_unless_at(file, at).await;
        let offset = match at {
            Some(offset) if offset > i64::MAX as u64 => return Err(Errno::Inval),
            Some(offset) => offset,
            None => file.offset(),
        };
        let (count, end) = if file.vnode().port().takes_caller_memory() {
            self.write_msg(file, Vec::new(), Some(from), offset)
                .await
                .0?
        } else {
            let data = from.to_vec()?;
            self.write_msg(file, data, None, offset).await.0?
        };
        if at.is_none() {
            file.set_offset(end);
        }
        Ok(count)
    }

    /// `write`: writes `data` at the file's offset (at the end with `APPEND`), advances the
    /// offset, and hands `data` back.
    ///
    /// # Errors
    /// `BadF` if not open for writing; `FBig` past the maximum file size; `NoSpc`.
    pub async fn write(&self, file: &OpenFile, data: Vec<u8>) -> (Result<usize, Errno>, Vec<u8>) {
        if let Err(e) = check_open_for(file, true) {
            return (Err(e), data);
        }
        let _position = file.lock_position().await;
        let (result, data) = self.write_msg(file, data, None, file.offset()).await;
        match result {
            Ok((n, end)) => {
                file.set_offset(end);
                (Ok(n), data)
            }
            Err(e) => (Err(e), data),
        }
    }

    /// `pwrite`: like `write` at an explicit offset, leaving the file's offset alone
    /// (Linux: with `APPEND`, the data still goes to the end).
    ///
    /// # Errors
    /// As `write`, plus `Inval` for an offset past `i64::MAX`.
    pub async fn pwrite(
        &self,
        file: &OpenFile,
        data: Vec<u8>,
        offset: u64,
    ) -> (Result<usize, Errno>, Vec<u8>) {
        if offset > i64::MAX as u64 {
            return (Err(Errno::Inval), data);
        }
        if let Err(e) = check_open_for(file, true) {
            return (Err(e), data);
        }
        let (result, data) = self.write_msg(file, data, None, offset).await;
        (result.map(|(n, _)| n), data)
    }

    /// The `Write` message of `write`, `pwrite` and `write_from`, after their checks:
    /// `data` or `from` at `offset`, or at the end with `APPEND` (for `pwrite` too, as on
    /// Linux).
    async fn write_msg(
        &self,
        file: &OpenFile,
        data: Vec<u8>,
        from: Option<CallerBuf>,
        offset: u64,
    ) -> (Result<(usize, u64), Errno>, Vec<u8>) {
        let v = file.vnode();
        let op = VnodeOp::Write {
            ino: v.ino(),
            offset,
            append: file.flags().contains(OpenFlags::APPEND),
            direct: file.flags().contains(OpenFlags::DIRECT),
            from,
        };
        call_with_buf(v.port(), op, data, |done| match done {
            VnodeDone::Written { count, end } => Some((count, end)),
            _ => None,
        })
        .await
    }

    /// Zero-copy `O_DIRECT` read on a block device: the device DMAs straight into `buf`
    /// (pinned caller memory) at `at`, or at the file offset (advanced) when `at` is
    /// `None`. Returns the bytes read. Offset and length must be whole sectors; the
    /// memory's address may be anything.
    ///
    /// # Errors
    /// `BadF` if not open for reading or without `O_DIRECT`; `Inval` for a file that is
    /// not a block device, a misaligned offset or length, or an offset past `i64::MAX`;
    /// `Io`.
    ///
    /// # Cancel safety
    /// Dropping the future leaves `buf`'s owner (the pin) with the device requests in
    /// flight until the device is done.
    pub fn read_external<'a>(
        &'a self,
        file: &'a OpenFile,
        buf: ExternalBuf,
        at: Option<u64>,
    ) -> impl Future<Output = Result<usize, Errno>> + Send + 'a {
        // The body's future itself, not one wrapping it (no second copy of the buffer).
        self.external_io(file, buf, at, false)
    }

    /// Zero-copy `O_DIRECT` write on a block device from `buf` (pinned caller memory), as
    /// [`Vfs::read_external`]. Returns the bytes written.
    ///
    /// # Errors
    /// `BadF` if not open for writing or without `O_DIRECT`; `Inval` as for
    /// `read_external`; `NoSpc`, `RoFs`, `Io`.
    ///
    /// # Cancel safety
    /// As [`Vfs::read_external`]; the write may or may not reach the device.
    pub fn write_external<'a>(
        &'a self,
        file: &'a OpenFile,
        buf: ExternalBuf,
        at: Option<u64>,
    ) -> impl Future<Output = Result<usize, Errno>> + Send + 'a {
        self.external_io(file, buf, at, true)
    }

    /// The body of [`Vfs::read_external`] and [`Vfs::write_external`].
    async fn external_io(
        &self,
        file: &OpenFile,
        buf: ExternalBuf,
        at: Option<u64>,
        write: bool,
    ) -> Result<usize, Errno> {
        let flags = file.flags();
        let allowed = if write {
            flags.is_writable()
        } else {
            flags.is_readable()
        };
        if !allowed || flags.contains(OpenFlags::PATH) || !flags.contains(OpenFlags::DIRECT) {
            return Err(Errno::BadF);
        }
        let _position = match at {
            None => Some(file.lock_position().await),
            Some(_) => None,
        };
        let offset = at.unwrap_or_else(|| file.offset());
        if file.kind() != FileType::BlockDevice || offset > i64::MAX as u64 {
            return Err(Errno::Inval);
        }
        if let Some(device) = file.block_device() {
            // The device's driver directly, in the caller's task (no stop at devfs).
            let n = if write {
                device.write_external(offset, buf).await?
            } else {
                device.read_external(offset, buf).await?
            };
            if at.is_none() {
                file.set_offset(offset + n as u64);
            }
            return Ok(n);
        }
        let ino = file.vnode().ino();
        let op = if write {
            VnodeOp::Write {
                ino,
                offset,
                append: false,
                direct: true,
                from: None,
            }
        } else {
            VnodeOp::Read {
                ino,
                offset,
                len: buf.len(),
                non_blocking: flags.contains(OpenFlags::NON_BLOCK),
                direct: true,
                into: None,
            }
        };
        let mut msg = file
            .vnode()
            .port()
            .call(VnodeMsg::with_external(op, buf))
            .await;
        let (n, end) = match (write, msg.take_result()?) {
            (false, VnodeDone::Count(n)) => (n, offset + n as u64),
            (true, VnodeDone::Written { count, end }) => (count, end),
            _ => return Err(Errno::Io),
        };
        if at.is_none() {
            file.set_offset(end);
        }
        Ok(n)
    }

    /// `lseek`: sets the file offset; returns the new offset.
    ///
    /// # Errors
    /// `Inval` if the result would be negative (or overflow); `NxIo` for `Data`/`Hole` at
    /// or past the end.
    pub async fn lseek(&self, file: &OpenFile, offset: i64, whence: Whence) -> Result<u64, Errno> {
        if file.flags().contains(OpenFlags::PATH) {
            return Err(Errno::BadF);
        }
        let _position = file.lock_position().await;
        let base: i64 = match whence {
            Whence::Set => 0,
            Whence::Current => file.offset() as i64,
            Whence::End | Whence::Data | Whence::Hole => {
                if file.kind() == FileType::Directory {
                    return Err(Errno::Inval);
                }
                let size = self.fstat_attr(file).await?.size as i64;
                match whence {
                    Whence::End => size,
                    // Without a hole map, all of the file is data and the end is the hole.
                    _ => {
                        if offset < 0 {
                            return Err(Errno::Inval);
                        }
                        if offset >= size {
                            return Err(Errno::NxIo);
                        }
                        let new = if whence == Whence::Data { offset } else { size } as u64;
                        file.set_offset(new);
                        return Ok(new);
                    }
                }
            }
        };
        let new = base
            .checked_add(offset)
            .filter(|&n| n >= 0)
            .ok_or(Errno::Inval)? as u64;
        file.set_offset(new);
        Ok(new)
    }

    /// `ftruncate`.
    ///
    /// # Errors
    /// `Inval` for a negative size, a file not open for writing, or a non-regular file;
    /// `FBig` past the maximum size.
    pub async fn ftruncate(&self, file: &OpenFile, size: i64) -> Result<(), Errno> {
        if size < 0 || !file.flags().is_writable() || file.flags().contains(OpenFlags::PATH) {
            return Err(Errno::Inval);
        }
        self.truncate_vnode(file.vnode(), size as u64).await
    }

    /// `truncate` by path (follows symlinks).
    ///
    /// # Errors
    /// Walk errors; `Inval` for a negative size or a non-regular file; `IsDir`.
    pub async fn truncate(&self, at: &Vnode, path: &[u8], size: i64) -> Result<(), Errno> {
        if size < 0 {
            return Err(Errno::Inval);
        }
        let v = self.lookup(at, path, true).await?;
        self.truncate_vnode(&v, size as u64).await
    }

    async fn truncate_vnode(&self, v: &Vnode, size: u64) -> Result<(), Errno> {
        match v.kind() {
            FileType::Regular => {}
            FileType::Directory => return Err(Errno::IsDir),
            _ => return Err(Errno::Inval),
        }
        expect_node(
            v.port()
                .call_op(VnodeOp::Truncate { ino: v.ino(), size })
                .await,
        )
        .map(|_| ())
    }

    /// `fsync`.
    ///
    /// # Errors
    /// `BadF` for an `O_PATH` file; the filesystem's I/O errors.
    pub async fn fsync(&self, file: &OpenFile) -> Result<(), Errno> {
        if file.flags().contains(OpenFlags::PATH) {
            return Err(Errno::BadF);
        }
        let v = file.vnode();
        v.port()
            .call_op(VnodeOp::Fsync { ino: v.ino() })
            .await
            .map(|_| ())
    }

    // ---------------------------------------------------------------- attributes

    /// Attributes of a vnode.
    ///
    /// # Errors
    /// The filesystem's (`NoEnt` once the file is gone).
    pub async fn getattr(&self, v: &Vnode) -> Result<Attr, Errno> {
        expect_node(v.port().call_op(VnodeOp::GetAttr { ino: v.ino() }).await)
    }

    async fn fstat_attr(&self, file: &OpenFile) -> Result<Attr, Errno> {
        self.getattr(file.vnode()).await
    }

    /// `fstat`.
    ///
    /// # Errors
    /// The filesystem's.
    pub async fn fstat(&self, file: &OpenFile) -> Result<Stat, Errno> {
        let v = file.vnode();
        Ok(self.getattr(v).await?.to_stat(v.dev()))
    }

    /// `stat` (`follow`) or `lstat`.
    ///
    /// # Errors
    /// Walk errors.
    pub async fn stat(&self, at: &Vnode, path: &[u8], follow: bool) -> Result<Stat, Errno> {
        let v = self.lookup(at, path, follow).await?;
        Ok(self.getattr(&v).await?.to_stat(v.dev()))
    }

    /// `fchmodat`: sets the permission bits (`07777`).
    ///
    /// # Errors
    /// Walk errors; `Inval` if `mode` has bits outside `07777`.
    pub async fn chmod(
        &self,
        at: &Vnode,
        path: &[u8],
        mode: u32,
        follow: bool,
    ) -> Result<(), Errno> {
        if mode & !abi::stat::PERMISSION_MASK != 0 {
            return Err(Errno::Inval);
        }
        let v = self.lookup(at, path, follow).await?;
        self.setattr(
            &v,
            SetAttr {
                perm: Some(mode),
                ..SetAttr::default()
            },
        )
        .await
        .map(|_| ())
    }

    /// `utimensat`.
    ///
    /// # Errors
    /// Walk errors; `Inval` for a time whose nanoseconds are out of range.
    pub async fn utimens(
        &self,
        at: &Vnode,
        path: &[u8],
        times: Utimes,
        follow: bool,
    ) -> Result<(), Errno> {
        let v = self.lookup(at, path, follow).await?;
        let set = SetAttr {
            atime: times.atime,
            mtime: times.mtime,
            ..SetAttr::default()
        };
        self.setattr(&v, set).await.map(|_| ())
    }

    /// Changes attributes of a vnode; returns the new ones.
    ///
    /// # Errors
    /// The filesystem's.
    pub async fn setattr(&self, v: &Vnode, set: SetAttr) -> Result<Attr, Errno> {
        expect_node(
            v.port()
                .call_op(VnodeOp::SetAttr {
                    ino: v.ino(),
                    set: Box::new(set),
                })
                .await,
        )
    }

    // ---------------------------------------------------------------- directories

    /// Reads up to `max` entries of an open directory from its offset (`.` and `..`
    /// included), advancing the offset.
    ///
    /// # Errors
    /// `NotDir` if the file is not a directory; `BadF` for `O_PATH`.
    pub async fn readdir(&self, file: &OpenFile, max: usize) -> Result<Vec<DirEntry>, Errno> {
        if file.flags().contains(OpenFlags::PATH) {
            return Err(Errno::BadF);
        }
        if file.kind() != FileType::Directory {
            return Err(Errno::NotDir);
        }
        let _position = file.lock_position().await;
        let v = file.vnode();
        let reply = v
            .port()
            .call_op(VnodeOp::ReadDir {
                dir: v.ino(),
                cookie: file.offset(),
                max,
            })
            .await?;
        match reply {
            VnodeDone::Entries {
                entries,
                next_cookie,
                ..
            } => {
                file.set_offset(next_cookie);
                Ok(entries)
            }
            _ => Err(Errno::Io),
        }
    }

    /// `getdents64`: fills `out` with `linux_dirent64` records; returns the bytes used
    /// (0 at the end of the directory).
    ///
    /// # Errors
    /// As `readdir`, plus `Inval` if `out` cannot hold the next record.
    pub async fn getdents(&self, file: &OpenFile, out: &mut [u8]) -> Result<usize, Errno> {
        if file.flags().contains(OpenFlags::PATH) {
            return Err(Errno::BadF);
        }
        if file.kind() != FileType::Directory {
            return Err(Errno::NotDir);
        }
        let _position = file.lock_position().await;
        let v = file.vnode();
        let mut used = 0;
        loop {
            let max = (out.len() - used) / abi::dirent::dirent_record_len(0) + 1;
            let op = VnodeOp::ReadDir {
                dir: v.ino(),
                cookie: file.offset(),
                max: max.min(DEFAULT_READDIR_BATCH),
            };
            let VnodeDone::Entries {
                entries, at_end, ..
            } = v.port().call_op(op).await?
            else {
                return Err(Errno::Io);
            };
            let got = entries.len();
            for entry in entries {
                let kind = DirentType::from(entry.kind);
                let cookie = entry.next_cookie as i64;
                match encode_dirent(&mut out[used..], entry.ino, cookie, kind, &entry.name) {
                    Some(n) => {
                        used += n;
                        file.set_offset(entry.next_cookie);
                    }
                    None if used == 0 => return Err(Errno::Inval),
                    None => return Ok(used),
                }
            }
            if at_end || got == 0 {
                return Ok(used);
            }
        }
    }

    /// `mkdirat`.
    ///
    /// # Errors
    /// Walk errors; `Exist` if the name exists (or is `/`, `.`, `..`).
    pub async fn mkdir(&self, at: &Vnode, path: &[u8], perm: u32) -> Result<(), Errno> {
        let ParentWalk { dir, last, .. } = self.walk_parent(at, path, &mut 0).await?;
        let Last::Name(name) = last else {
            return Err(Errno::Exist);
        };
        let reply = dir
            .port()
            .call_op(VnodeOp::Mkdir {
                dir: dir.ino(),
                name: name.clone(),
                perm,
            })
            .await;
        if reply.is_ok() {
            self.invalidate(&dir, &name);
        }
        expect_node(reply).map(|_| ())
    }

    /// `rmdir`.
    ///
    /// # Errors
    /// Walk errors; `Busy` for `/` or a mount point; `Inval` for `.`; `NotEmpty` for `..`
    /// or a non-empty directory; `NotDir`.
    pub async fn rmdir(&self, at: &Vnode, path: &[u8]) -> Result<(), Errno> {
        let ParentWalk { dir, last, .. } = self.walk_parent(at, path, &mut 0).await?;
        let name = match last {
            Last::Name(name) => name,
            Last::Root => return Err(Errno::Busy),
            Last::Dot => return Err(Errno::Inval),
            Last::DotDot => return Err(Errno::NotEmpty),
        };
        let victim = self.lookup_raw(&dir, &name).await?;
        if self.mounted_on(&victim).is_some() {
            return Err(Errno::Busy);
        }
        let reply = dir
            .port()
            .call_op(VnodeOp::Rmdir {
                dir: dir.ino(),
                name: name.clone(),
            })
            .await;
        if reply.is_ok() {
            self.invalidate(&dir, &name);
            self.cache.invalidate(victim.dev(), victim.ino(), b"..");
        }
        reply.map(|_| ())
    }

    /// `unlinkat` without `AT_REMOVEDIR`.
    ///
    /// # Errors
    /// Walk errors; `IsDir` for a directory (or `/`, `.`, `..`); `NotDir` for a
    /// non-directory named with a trailing slash.
    pub async fn unlink(&self, at: &Vnode, path: &[u8]) -> Result<(), Errno> {
        let ParentWalk {
            dir,
            last,
            trailing_slash,
        } = self.walk_parent(at, path, &mut 0).await?;
        let Last::Name(name) = last else {
            return Err(Errno::IsDir);
        };
        if trailing_slash {
            let v = self.lookup_raw(&dir, &name).await?;
            return Err(if v.kind() == FileType::Directory {
                Errno::IsDir
            } else {
                Errno::NotDir
            });
        }
        let reply = dir
            .port()
            .call_op(VnodeOp::Unlink {
                dir: dir.ino(),
                name: name.clone(),
            })
            .await;
        if reply.is_ok() {
            self.invalidate(&dir, &name);
        }
        reply.map(|_| ())
    }

    /// `renameat2` (`no_replace` is `RENAME_NOREPLACE`).
    ///
    /// # Errors
    /// Walk errors; `XDev` across mounts; `Busy` for `/`, `.`, `..` or a mount point;
    /// `Exist` with `no_replace`; `NotDir`, `IsDir`, `NotEmpty`, `Inval` (moving a
    /// directory below itself) per POSIX.
    pub async fn rename(
        &self,
        old_at: &Vnode,
        old: &[u8],
        new_at: &Vnode,
        new: &[u8],
        no_replace: bool,
    ) -> Result<(), Errno> {
        let from = self.walk_parent(old_at, old, &mut 0).await?;
        let to = self.walk_parent(new_at, new, &mut 0).await?;
        if from.dir.dev() != to.dir.dev() {
            return Err(Errno::XDev);
        }
        let Last::Name(from_name) = from.last else {
            return Err(Errno::Busy);
        };
        let Last::Name(to_name) = to.last else {
            return Err(if no_replace {
                Errno::Exist
            } else {
                Errno::Busy
            });
        };
        let moved = self.lookup_raw(&from.dir, &from_name).await?;
        if (from.trailing_slash || to.trailing_slash) && moved.kind() != FileType::Directory {
            return Err(Errno::NotDir);
        }
        if self.mounted_on(&moved).is_some() {
            return Err(Errno::Busy);
        }
        match self.lookup_raw(&to.dir, &to_name).await {
            Ok(target) if self.mounted_on(&target).is_some() => return Err(Errno::Busy),
            Ok(_) | Err(Errno::NoEnt) => {}
            Err(e) => return Err(e),
        }
        let op = VnodeOp::Rename {
            from_dir: from.dir.ino(),
            from_name: from_name.clone(),
            to_dir: to.dir.ino(),
            to_name: to_name.clone(),
            no_replace,
        };
        let reply = from.dir.port().call_op(op).await;
        match reply {
            Ok(VnodeDone::Renamed { moved, .. }) => {
                self.invalidate(&from.dir, &from_name);
                self.invalidate(&to.dir, &to_name);
                if moved.kind == FileType::Directory {
                    self.cache.invalidate(from.dir.dev(), moved.ino, b"..");
                }
                Ok(())
            }
            Ok(_) => Err(Errno::Io),
            Err(e) => Err(e),
        }
    }

    /// `linkat` (`follow` is `AT_SYMLINK_FOLLOW`).
    ///
    /// # Errors
    /// Walk errors; `XDev` across mounts; `Exist` if the new name exists (or is `/`,
    /// `.`, `..`); `Perm` for a directory; `MLink`.
    pub async fn link(
        &self,
        old_at: &Vnode,
        old: &[u8],
        new_at: &Vnode,
        new: &[u8],
        follow: bool,
    ) -> Result<(), Errno> {
        let target = self.lookup(old_at, old, follow).await?;
        let ParentWalk {
            dir,
            last,
            trailing_slash,
        } = self.walk_parent(new_at, new, &mut 0).await?;
        let Last::Name(name) = last else {
            return Err(Errno::Exist);
        };
        if target.dev() != dir.dev() {
            return Err(Errno::XDev);
        }
        if target.kind() == FileType::Directory {
            return Err(Errno::Perm);
        }
        if trailing_slash {
            return Err(match self.lookup_raw(&dir, &name).await {
                Ok(_) => Errno::Exist,
                Err(e) => e,
            });
        }
        let op = VnodeOp::Link {
            dir: dir.ino(),
            name: name.clone(),
            target: target.ino(),
        };
        let reply = dir.port().call_op(op).await;
        if reply.is_ok() {
            self.invalidate(&dir, &name);
        }
        expect_node(reply).map(|_| ())
    }

    /// `symlinkat`: creates `path` pointing at `target` (not resolved now).
    ///
    /// # Errors
    /// Walk errors; `NoEnt` for an empty target; `NameTooLong` for a target of `PATH_MAX`
    /// bytes or more; `Inval` for a target containing NUL; `Exist`.
    pub async fn symlink(&self, target: &[u8], at: &Vnode, path: &[u8]) -> Result<(), Errno> {
        if target.is_empty() {
            return Err(Errno::NoEnt);
        }
        if target.len() >= PATH_MAX {
            return Err(Errno::NameTooLong);
        }
        if target.contains(&0) {
            return Err(Errno::Inval);
        }
        let ParentWalk {
            dir,
            last,
            trailing_slash,
        } = self.walk_parent(at, path, &mut 0).await?;
        let Last::Name(name) = last else {
            return Err(Errno::Exist);
        };
        if trailing_slash {
            return Err(match self.lookup_raw(&dir, &name).await {
                Ok(_) => Errno::Exist,
                Err(e) => e,
            });
        }
        let msg = VnodeMsg::with_buf(
            VnodeOp::Symlink {
                dir: dir.ino(),
                name: name.clone(),
            },
            target.into(),
        );
        let reply = dir.port().call(msg).await.take_result();
        if reply.is_ok() {
            self.invalidate(&dir, &name);
        }
        expect_node(reply).map(|_| ())
    }

    /// `readlinkat`.
    ///
    /// # Errors
    /// Walk errors; `Inval` if `path` is not a symlink.
    pub async fn readlink(&self, at: &Vnode, path: &[u8]) -> Result<Vec<u8>, Errno> {
        let v = self.lookup(at, path, false).await?;
        if v.kind() != FileType::Symlink {
            return Err(Errno::Inval);
        }
        self.read_link_of(&v).await
    }

    /// Reads a whole regular file (for the kernel's program loader and for tests).
    ///
    /// # Errors
    /// Walk and `open` errors; `IsDir`; `FBig` past `limit` bytes.
    pub async fn read_to_end(
        &self,
        at: &Vnode,
        path: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, Errno> {
        let file = self.open(at, path, OpenFlags::READ_ONLY, 0).await?;
        let mut data = Vec::new();
        let mut chunk = Vec::new();
        loop {
            let want = (limit - data.len()).min(crate::proto::MAX_IO_LEN) + 1;
            let (n, back) = self.pread(&file, chunk, want, data.len() as u64).await;
            let n = n?;
            if n == 0 {
                return Ok(data);
            }
            if data.len() + n > limit {
                return Err(Errno::FBig);
            }
            data.extend_from_slice(&back[..n]);
            chunk = back;
        }
    }

    /// Resolves a directory for `chdir`/`chroot`.
    ///
    /// # Errors
    /// Walk errors; `NotDir`.
    pub async fn directory(&self, at: &Vnode, path: &[u8]) -> Result<Vnode, Errno> {
        let v = self.lookup(at, path, true).await?;
        if v.kind() != FileType::Directory {
            return Err(Errno::NotDir);
        }
        Ok(v)
    }
}
