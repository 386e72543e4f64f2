// SPDX-License-Identifier: MIT OR Apache-2.0
//! Descriptor and process operations: `Close`, `Dup`, `Pipe`, `Spawn`, `Wait`, `Exit`,
//! `ProcList`, `SysInfo`, `Chdir`, `Getcwd`.

use alloc::{sync::Arc, vec::Vec};

use abi::{
    Errno, FileType, OpenFlags,
    ring::{
        SPAWN_CPU, SPAWN_CPU_FIELD, SPAWN_CPU_SHIFT, SPAWN_MAX_ARGS, SPAWN_MAX_FDS,
        SPAWN_MAX_STRING_BYTES,
    },
};

use super::{copy_in, copy_out};
use crate::{
    decode::{Fd, UserBuf, check_path, user_buf},
    files::{Descriptor, Files, MAX_FDS},
    kernel::SpawnRequest,
    pipe,
    process::{Cwd, Process, ProcessInit, join_path},
};

pub(crate) fn close(proc: &Process, fd: Fd) -> Result<i64, Errno> {
    let d = proc.files.lock().remove(fd.0)?;
    drop(d); // outside the lock: may send the filesystem a Close
    Ok(0)
}

pub(crate) fn dup(
    proc: &Process,
    fd: Fd,
    to: Option<Fd>,
    close_on_exec: bool,
) -> Result<i64, Errno> {
    let mut files = proc.files.lock();
    let d = files.get(fd.0)?;
    match to {
        None => files.insert(d, close_on_exec).map(|n| n as i64),
        Some(new) if new == fd => Ok(new.0 as i64),
        Some(new) => {
            let old = files.insert_at(new.0, d, close_on_exec)?;
            drop(files);
            drop(old);
            Ok(new.0 as i64)
        }
    }
}

pub(crate) fn pipe(
    proc: &Process,
    out: UserBuf,
    close_on_exec: bool,
    non_blocking: bool,
) -> Result<i64, Errno> {
    let (r, w) = pipe::pipe(non_blocking);
    let (rfd, wfd) = {
        let mut files = proc.files.lock();
        let rfd = files.insert(Descriptor::PipeRead(Arc::new(r)), close_on_exec)?;
        match files.insert(Descriptor::PipeWrite(Arc::new(w)), close_on_exec) {
            Ok(wfd) => (rfd, wfd),
            Err(e) => {
                let _ = files.remove(rfd);
                return Err(e);
            }
        }
    };
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&rfd.to_le_bytes());
    b[4..].copy_from_slice(&wfd.to_le_bytes());
    if let Err(e) = copy_out(&*proc.memory, out, &b) {
        let mut files = proc.files.lock();
        let a = files.remove(rfd);
        let b = files.remove(wfd);
        drop(files);
        drop((a, b));
        return Err(e);
    }
    Ok(0)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Copies an array of `UserSlice`s and then each string; `budget` is the bytes left.
fn strings(
    proc: &Process,
    array: u64,
    count: u64,
    budget: &mut usize,
) -> Result<Vec<Vec<u8>>, Errno> {
    if count > SPAWN_MAX_ARGS as u64 {
        return Err(Errno::TooBig);
    }
    let table = copy_in(&*proc.memory, user_buf(array, count * 16)?)?;
    let mut out = Vec::new();
    for i in 0..count as usize {
        let (ptr, len) = (le_u64(&table, 16 * i), le_u64(&table, 16 * i + 8));
        if len > *budget as u64 {
            return Err(Errno::TooBig);
        }
        *budget -= len as usize;
        let s = copy_in(&*proc.memory, user_buf(ptr, len)?)?;
        if s.contains(&0) {
            return Err(Errno::Inval);
        }
        out.push(s);
    }
    Ok(out)
}

pub(crate) async fn spawn(proc: &Arc<Process>, args: UserBuf) -> Result<i64, Errno> {
    let a = copy_in(&*proc.memory, args)?;
    let (path_ptr, path_len) = (le_u64(&a, 0), le_u64(&a, 8));
    let (argv, argc, envp, envc) = (
        le_u64(&a, 16),
        le_u64(&a, 24),
        le_u64(&a, 32),
        le_u64(&a, 40),
    );
    let (fd_map, fd_map_len, flags) = (le_u64(&a, 48), le_u64(&a, 56), le_u64(&a, 64));
    if flags & !(abi::ring::SPAWN_FOREGROUND | SPAWN_CPU | SPAWN_CPU_FIELD) != 0
        || (flags & SPAWN_CPU == 0 && flags & SPAWN_CPU_FIELD != 0)
    {
        return Err(Errno::Inval);
    }
    let cpu = (flags & SPAWN_CPU != 0).then_some((flags >> SPAWN_CPU_SHIFT) as u16);
    if path_len >= abi::ring::PATH_MAX as u64 {
        return Err(Errno::NameTooLong);
    }
    let path = copy_in(&*proc.memory, user_buf(path_ptr, path_len)?)?;
    check_path(&path)?;
    let mut budget = SPAWN_MAX_STRING_BYTES;
    let argv = strings(proc, argv, argc, &mut budget)?;
    let envp = strings(proc, envp, envc, &mut budget)?;
    if fd_map_len > SPAWN_MAX_FDS as u64 {
        return Err(Errno::Inval);
    }
    let map = copy_in(&*proc.memory, user_buf(fd_map, fd_map_len * 8)?)?;
    let mut files = Files::new();
    {
        let parent = proc.files.lock();
        if fd_map_len == 0 {
            for fd in 0..3 {
                if let Ok(d) = parent.get(fd) {
                    files.insert_at(fd, d, false)?;
                }
            }
        }
        for pair in map.chunks_exact(8) {
            let child = i32::from_le_bytes([pair[0], pair[1], pair[2], pair[3]]);
            let from = i32::from_le_bytes([pair[4], pair[5], pair[6], pair[7]]);
            if child < 0 || child as usize >= MAX_FDS {
                return Err(Errno::BadF);
            }
            if files.get(child).is_ok() {
                return Err(Errno::Inval);
            }
            files.insert_at(child, parent.get(from)?, false)?;
        }
    }
    let cwd: Cwd = proc.cwd.lock().clone();
    let executable = proc
        .vfs
        .open(&cwd.vnode, &path, OpenFlags::READ_ONLY, 0)
        .await?;
    if executable.kind() != FileType::Regular {
        return Err(Errno::Acces);
    }
    let request = SpawnRequest {
        path,
        executable,
        argv,
        envp,
        init: ProcessInit { files, cwd },
        flags: flags & abi::ring::SPAWN_FOREGROUND,
        cpu,
    };
    proc.kernel
        .spawn(proc.pid(), request)
        .await
        .map(|pid| pid as i64)
}

pub(crate) async fn wait(
    proc: &Process,
    pid: Option<i32>,
    status: Option<UserBuf>,
    no_hang: bool,
) -> Result<i64, Errno> {
    match proc.kernel.wait(proc.pid(), pid, no_hang).await? {
        None => Ok(0),
        Some((child, st)) => {
            if let Some(out) = status {
                copy_out(&*proc.memory, out, &st.to_le_bytes())?;
            }
            Ok(child as i64)
        }
    }
}

pub(crate) async fn exit(proc: &Process, status: i32) -> Result<i64, Errno> {
    proc.teardown().await;
    proc.kernel.exit(proc.pid(), status);
    Ok(0)
}

pub(crate) fn proc_list(proc: &Process, out: UserBuf, capacity: usize) -> Result<i64, Errno> {
    let list = proc.kernel.proc_list(capacity);
    let n = list.len().min(capacity);
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(n * 48).map_err(|_| Errno::NoMem)?;
    for p in &list[..n] {
        bytes.extend_from_slice(&p.to_bytes());
    }
    copy_out(&*proc.memory, out, &bytes)?;
    Ok(n as i64)
}

pub(crate) fn sys_info(proc: &Process, out: UserBuf) -> Result<i64, Errno> {
    copy_out(&*proc.memory, out, &proc.kernel.sys_info().to_bytes())?;
    Ok(0)
}

pub(crate) async fn chdir(proc: &Process, path: UserBuf) -> Result<i64, Errno> {
    let path = copy_in(&*proc.memory, path)?;
    check_path(&path)?;
    let cwd = proc.cwd.lock().clone();
    let vnode = proc.vfs.directory(&cwd.vnode, &path).await?;
    let new_path = join_path(&cwd.path, &path);
    *proc.cwd.lock() = Cwd {
        vnode,
        path: new_path,
    };
    Ok(0)
}

pub(crate) fn getcwd(proc: &Process, buf: UserBuf) -> Result<i64, Errno> {
    let mut path = proc.cwd.lock().path.clone();
    path.push(0);
    if path.len() > buf.len {
        return Err(Errno::Range);
    }
    copy_out(&*proc.memory, buf, &path)?;
    Ok(path.len() as i64)
}
