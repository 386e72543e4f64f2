// SPDX-License-Identifier: MIT OR Apache-2.0
//! File operations: the VFS behind `Read`/`Write`/`Pread`/`Pwrite`, `Openat`, `Fstat`,
//! `Statat`, `Getdents`, `Mkdirat`, `Unlinkat`, `Renameat`, `Lseek`; pipes for `Read` and
//! `Write`.

use alloc::{sync::Arc, vec::Vec};

use abi::{
    Errno, OpenFlags, Stat, Whence,
    stat::{S_IFIFO, S_IFSOCK},
};
use fs::{Vnode, proto::CallerBuf};

use super::{copy_in, copy_out};
use crate::{
    decode::{DirFd, Fd, UserBuf, check_path},
    files::Descriptor,
    process::Process,
};

/// The start directory for a path, and the path bytes (copied in once, checked).
fn start_dir(proc: &Process, dir: DirFd, path: &[u8]) -> Result<Vnode, Errno> {
    if path.first() == Some(&b'/') {
        return Ok(proc.vfs.root());
    }
    match dir {
        DirFd::Cwd => Ok(proc.cwd.lock().vnode.clone()),
        DirFd::Fd(fd) => {
            let d = proc.descriptor(fd.0)?;
            let v = d.file(Errno::NotDir)?.vnode().clone();
            if v.kind() != abi::FileType::Directory {
                return Err(Errno::NotDir);
            }
            Ok(v)
        }
    }
}

fn path_in(proc: &Process, path: UserBuf) -> Result<Vec<u8>, Errno> {
    let bytes = copy_in(&*proc.memory, path)?;
    check_path(&bytes)?;
    Ok(bytes)
}

/// Whether a read or write on `f` goes zero-copy: `O_DIRECT` on a block device. The
/// device then works on the user's pages, pinned for the duration (`UserMemory::pin`);
/// everything else is copied through a kernel buffer.
fn is_zero_copy(f: &fs::OpenFile) -> bool {
    f.flags().contains(OpenFlags::DIRECT) && f.kind() == abi::FileType::BlockDevice
}

pub(crate) async fn read(
    proc: &Process,
    fd: Fd,
    buf: UserBuf,
    at: Option<u64>,
) -> Result<i64, Errno> {
    let data = match proc.descriptor(fd.0)? {
        Descriptor::File(f) if is_zero_copy(&f) => {
            // A bad buffer is `Fault` before anything reaches the device.
            let pinned = proc.memory.pin(buf.addr, buf.len, true)?;
            return proc
                .vfs
                .read_external(&f, pinned, at)
                .await
                .map(|n| n as i64);
        }
        Descriptor::File(f) => {
            // The filesystem copies straight to the user's memory where it can (tmpfs).
            let to = CallerBuf::new(proc.memory.clone(), buf.addr, buf.len);
            return proc.vfs.read_to(&f, to, at).await.map(|n| n as i64);
        }
        Descriptor::PipeRead(p) if at.is_none() => p.read(buf.len).await?,
        Descriptor::PipeRead(_) => return Err(Errno::SPipe),
        Descriptor::PipeWrite(_) | Descriptor::Port(_) => return Err(Errno::BadF),
    };
    copy_out(&*proc.memory, buf, &data)?;
    Ok(data.len() as i64)
}

pub(crate) async fn write(
    proc: &Process,
    fd: Fd,
    buf: UserBuf,
    at: Option<u64>,
) -> Result<i64, Errno> {
    let d = proc.descriptor(fd.0)?;
    match (d, at) {
        (Descriptor::File(f), at) if is_zero_copy(&f) => {
            // A bad buffer is `Fault` and nothing is written.
            let pinned = proc.memory.pin(buf.addr, buf.len, false)?;
            proc.vfs
                .write_external(&f, pinned, at)
                .await
                .map(|n| n as i64)
        }
        (Descriptor::File(f), at) => {
            // The filesystem copies straight from the user's memory where it can (tmpfs).
            let from = CallerBuf::new(proc.memory.clone(), buf.addr, buf.len);
            proc.vfs.write_from(&f, from, at).await.map(|n| n as i64)
        }
        (Descriptor::PipeWrite(p), None) => {
            let data = copy_in(&*proc.memory, buf)?;
            p.write(&data).await.map(|n| n as i64)
        }
        (Descriptor::PipeWrite(_), Some(_)) => Err(Errno::SPipe),
        _ => Err(Errno::BadF),
    }
}

pub(crate) async fn openat(
    proc: &Process,
    dir: DirFd,
    path: UserBuf,
    flags: OpenFlags,
    mode: u32,
) -> Result<i64, Errno> {
    let path = path_in(proc, path)?;
    let at = start_dir(proc, dir, &path)?;
    let file = proc.vfs.open(&at, &path, flags, mode).await?;
    let cloexec = flags.contains(OpenFlags::CLOSE_ON_EXEC);
    let fd = proc.files.lock().insert(Descriptor::File(file), cloexec)?;
    Ok(fd as i64)
}

/// `struct stat` as x86_64 Linux lays it out (see `abi::stat`).
pub(crate) fn stat_bytes(s: &Stat) -> [u8; 144] {
    let mut b = [0u8; 144];
    let mut put = |at: usize, v: &[u8]| b[at..at + v.len()].copy_from_slice(v);
    put(0, &s.st_dev.to_le_bytes());
    put(8, &s.st_ino.to_le_bytes());
    put(16, &s.st_nlink.to_le_bytes());
    put(24, &s.st_mode.to_le_bytes());
    put(28, &s.st_uid.to_le_bytes());
    put(32, &s.st_gid.to_le_bytes());
    put(40, &s.st_rdev.to_le_bytes());
    put(48, &s.st_size.to_le_bytes());
    put(56, &s.st_blksize.to_le_bytes());
    put(64, &s.st_blocks.to_le_bytes());
    for (i, t) in [s.st_atime, s.st_mtime, s.st_ctime].iter().enumerate() {
        put(72 + 16 * i, &t.tv_sec.to_le_bytes());
        put(80 + 16 * i, &t.tv_nsec.to_le_bytes());
    }
    b
}

fn special_stat(mode: u32) -> Stat {
    Stat {
        st_mode: mode | 0o600,
        st_nlink: 1,
        st_blksize: 4096,
        ..Stat::default()
    }
}

async fn fstat_descriptor(proc: &Process, d: Descriptor) -> Result<Stat, Errno> {
    match d {
        Descriptor::File(f) => proc.vfs.fstat(&f).await,
        Descriptor::PipeRead(_) | Descriptor::PipeWrite(_) => Ok(special_stat(S_IFIFO)),
        Descriptor::Port(_) => Ok(special_stat(S_IFSOCK)),
    }
}

pub(crate) async fn fstat(proc: &Process, fd: Fd, out: UserBuf) -> Result<i64, Errno> {
    let st = fstat_descriptor(proc, proc.descriptor(fd.0)?).await?;
    copy_out(&*proc.memory, out, &stat_bytes(&st))?;
    Ok(0)
}

pub(crate) async fn statat(
    proc: &Process,
    dir: DirFd,
    path: UserBuf,
    follow: bool,
    empty_path: bool,
    out: UserBuf,
) -> Result<i64, Errno> {
    let path = path_in(proc, path)?;
    let st = if path.is_empty() && empty_path {
        match dir {
            DirFd::Fd(fd) => fstat_descriptor(proc, proc.descriptor(fd.0)?).await?,
            DirFd::Cwd => {
                let v = proc.cwd.lock().vnode.clone();
                proc.vfs.getattr(&v).await?.to_stat(v.dev())
            }
        }
    } else {
        let at = start_dir(proc, dir, &path)?;
        proc.vfs.stat(&at, &path, follow).await?
    };
    copy_out(&*proc.memory, out, &stat_bytes(&st))?;
    Ok(0)
}

pub(crate) async fn getdents(proc: &Process, fd: Fd, buf: UserBuf) -> Result<i64, Errno> {
    let d = proc.descriptor(fd.0)?;
    let f = d.file(Errno::NotDir)?;
    let mut out = Vec::new();
    out.try_reserve_exact(buf.len).map_err(|_| Errno::NoMem)?;
    out.resize(buf.len, 0);
    let n = proc.vfs.getdents(f, &mut out).await?;
    copy_out(&*proc.memory, buf, &out[..n])?;
    Ok(n as i64)
}

pub(crate) async fn mkdirat(
    proc: &Process,
    dir: DirFd,
    path: UserBuf,
    mode: u32,
) -> Result<i64, Errno> {
    let path = path_in(proc, path)?;
    let at = start_dir(proc, dir, &path)?;
    proc.vfs.mkdir(&at, &path, mode).await?;
    Ok(0)
}

pub(crate) async fn unlinkat(
    proc: &Process,
    dir: DirFd,
    path: UserBuf,
    remove_dir: bool,
) -> Result<i64, Errno> {
    let path = path_in(proc, path)?;
    let at = start_dir(proc, dir, &path)?;
    if remove_dir {
        proc.vfs.rmdir(&at, &path).await?;
    } else {
        proc.vfs.unlink(&at, &path).await?;
    }
    Ok(0)
}

pub(crate) async fn renameat(
    proc: &Process,
    old_dir: DirFd,
    old: UserBuf,
    new_dir: DirFd,
    new: UserBuf,
    no_replace: bool,
) -> Result<i64, Errno> {
    let old = path_in(proc, old)?;
    let new = path_in(proc, new)?;
    let old_at = start_dir(proc, old_dir, &old)?;
    let new_at = start_dir(proc, new_dir, &new)?;
    proc.vfs
        .rename(&old_at, &old, &new_at, &new, no_replace)
        .await?;
    Ok(0)
}

pub(crate) async fn lseek(
    proc: &Process,
    fd: Fd,
    offset: i64,
    whence: Whence,
    out: Option<UserBuf>,
) -> Result<i64, Errno> {
    let d = proc.descriptor(fd.0)?;
    let f: Arc<fs::OpenFile> = d.file(Errno::SPipe)?.clone();
    let pos = proc.vfs.lseek(&f, offset, whence).await?;
    if let Some(out) = out {
        copy_out(&*proc.memory, out, &pos.to_le_bytes())?;
    }
    Ok(pos as i64)
}
