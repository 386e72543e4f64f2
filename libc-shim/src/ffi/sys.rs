// SPDX-License-Identifier: MIT OR Apache-2.0
//! Synchronous system calls: one trap each, `Result<_, Errno>`.
//!
//! Each wrapper fills one `Sqe` as the table in `abi::ring` says and sends it through the
//! trap door. The only unsafe here is the trap itself; each call's SAFETY note says why the
//! addresses it passes are valid (they come from Rust references that live across the
//! call).

use abi::ring::{
    self, DUP_TO, FdMapEntry, MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE, ProcInfo,
    SpawnArgs, SysInfo, UserSlice, WAIT_NOHANG,
};
use abi::{Errno, Opcode, OpenFlags, Sqe, Stat, Timespec, Whence};
use alloc::vec::Vec;

pub use super::trap::{trap, trap_in_memory};
pub use abi::fcntl::AT_FDCWD;
pub use abi::ring::{CLOCK_MONOTONIC, CLOCK_REALTIME};

/// A raw trap result as `Result`. Unknown negative numbers become `EIO`.
#[inline]
pub fn check(ret: i64) -> Result<u64, Errno> {
    if ret >= 0 {
        Ok(ret as u64)
    } else {
        Err(i32::try_from(-ret)
            .ok()
            .and_then(Errno::from_i32)
            .unwrap_or(Errno::Io))
    }
}

/// Sends an entry whose addresses are all either zero or valid for the call.
#[inline]
fn call(sqe: &Sqe) -> Result<u64, Errno> {
    // SAFETY: every caller in this module builds `sqe` from references (slices, `&mut`
    // out-parameters) that outlive this synchronous call, with lengths taken from those
    // same references, or from plain scalars.
    check(unsafe { trap(sqe) })
}

fn path_sqe(op: Opcode, dirfd: i32, path: &[u8]) -> Sqe {
    let mut s = Sqe::new(op);
    s.fd = dirfd;
    s.addr = path.as_ptr() as u64;
    s.len = path.len() as u32;
    s
}

/// Submits a `Nop` (the cheapest round trip through the trap door).
#[inline]
pub fn nop() -> Result<(), Errno> {
    call(&Sqe::new(Opcode::Nop)).map(drop)
}

/// `read(fd, buf)`: bytes read, 0 at end of file.
pub fn read(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut s = Sqe::new(Opcode::Read);
    s.fd = fd;
    s.addr = buf.as_mut_ptr() as u64;
    s.len = buf.len().min(u32::MAX as usize) as u32;
    call(&s).map(|n| n as usize)
}

/// `write(fd, buf)`: bytes written.
pub fn write(fd: i32, buf: &[u8]) -> Result<usize, Errno> {
    let mut s = Sqe::new(Opcode::Write);
    s.fd = fd;
    s.addr = buf.as_ptr() as u64;
    s.len = buf.len().min(u32::MAX as usize) as u32;
    call(&s).map(|n| n as usize)
}

/// Writes all of `buf`, retrying short writes.
pub fn write_all(fd: i32, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match write(fd, buf)? {
            0 => return Err(Errno::Io),
            n => buf = &buf[n..],
        }
    }
    Ok(())
}

/// `pread(fd, buf, offset)`.
pub fn pread(fd: i32, buf: &mut [u8], offset: u64) -> Result<usize, Errno> {
    let mut s = Sqe::new(Opcode::Pread);
    s.fd = fd;
    s.addr = buf.as_mut_ptr() as u64;
    s.len = buf.len().min(u32::MAX as usize) as u32;
    s.off = offset;
    call(&s).map(|n| n as usize)
}

/// `pwrite(fd, buf, offset)`.
pub fn pwrite(fd: i32, buf: &[u8], offset: u64) -> Result<usize, Errno> {
    let mut s = Sqe::new(Opcode::Pwrite);
    s.fd = fd;
    s.addr = buf.as_ptr() as u64;
    s.len = buf.len().min(u32::MAX as usize) as u32;
    s.off = offset;
    call(&s).map(|n| n as usize)
}

/// `openat(dirfd, path, flags, mode)`: the new descriptor.
pub fn openat(dirfd: i32, path: &str, flags: OpenFlags, mode: u32) -> Result<i32, Errno> {
    let mut s = path_sqe(Opcode::Openat, dirfd, path.as_bytes());
    s.off = mode as u64;
    s.op_flags = flags.bits();
    call(&s).map(|fd| fd as i32)
}

/// `open(path, flags, mode)` relative to the working directory.
pub fn open(path: &str, flags: OpenFlags, mode: u32) -> Result<i32, Errno> {
    openat(AT_FDCWD, path, flags, mode)
}

/// `close(fd)`.
pub fn close(fd: i32) -> Result<(), Errno> {
    let mut s = Sqe::new(Opcode::Close);
    s.fd = fd;
    call(&s).map(drop)
}

/// `fstat(fd)`.
pub fn fstat(fd: i32) -> Result<Stat, Errno> {
    let mut st = Stat::default();
    let mut s = Sqe::new(Opcode::Fstat);
    s.fd = fd;
    s.addr = &mut st as *mut Stat as u64;
    call(&s)?;
    Ok(st)
}

/// `fstatat(dirfd, path, flags)`.
pub fn statat(dirfd: i32, path: &str, at_flags: u32) -> Result<Stat, Errno> {
    let mut st = Stat::default();
    let mut s = path_sqe(Opcode::Statat, dirfd, path.as_bytes());
    s.op_flags = at_flags;
    s.addr2 = &mut st as *mut Stat as u64;
    call(&s)?;
    Ok(st)
}

/// `stat(path)` (follows symlinks).
pub fn stat(path: &str) -> Result<Stat, Errno> {
    statat(AT_FDCWD, path, 0)
}

/// `getdents64(fd, buf)`: bytes of `linux_dirent64` records, 0 at the end.
pub fn getdents(fd: i32, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut s = Sqe::new(Opcode::Getdents);
    s.fd = fd;
    s.addr = buf.as_mut_ptr() as u64;
    s.len = buf.len().min(u32::MAX as usize) as u32;
    call(&s).map(|n| n as usize)
}

/// `mkdir(path, mode)`.
pub fn mkdir(path: &str, mode: u32) -> Result<(), Errno> {
    let mut s = path_sqe(Opcode::Mkdirat, AT_FDCWD, path.as_bytes());
    s.off = mode as u64;
    call(&s).map(drop)
}

/// `unlink(path)`.
pub fn unlink(path: &str) -> Result<(), Errno> {
    call(&path_sqe(Opcode::Unlinkat, AT_FDCWD, path.as_bytes())).map(drop)
}

/// `rmdir(path)`.
pub fn rmdir(path: &str) -> Result<(), Errno> {
    let mut s = path_sqe(Opcode::Unlinkat, AT_FDCWD, path.as_bytes());
    s.op_flags = abi::fcntl::AT_REMOVEDIR;
    call(&s).map(drop)
}

/// `rename(old, new)`.
pub fn rename(old: &str, new: &str) -> Result<(), Errno> {
    let mut s = path_sqe(Opcode::Renameat, AT_FDCWD, old.as_bytes());
    s.off = AT_FDCWD as i64 as u64;
    s.addr2 = new.as_ptr() as u64;
    s.aux = new.len() as u32;
    call(&s).map(drop)
}

/// `lseek(fd, offset, whence)`: the new offset.
pub fn lseek(fd: i32, offset: i64, whence: Whence) -> Result<u64, Errno> {
    let mut s = Sqe::new(Opcode::Lseek);
    s.fd = fd;
    s.off = offset as u64;
    s.op_flags = whence as u32;
    call(&s)
}

/// `dup(fd)`: the lowest free descriptor.
pub fn dup(fd: i32) -> Result<i32, Errno> {
    let mut s = Sqe::new(Opcode::Dup);
    s.fd = fd;
    call(&s).map(|fd| fd as i32)
}

/// `dup2(fd, to)`.
pub fn dup2(fd: i32, to: i32) -> Result<i32, Errno> {
    let mut s = Sqe::new(Opcode::Dup);
    s.fd = fd;
    s.off = to as i64 as u64;
    s.op_flags = DUP_TO;
    call(&s).map(|fd| fd as i32)
}

/// `pipe()`: `(read end, write end)`.
pub fn pipe() -> Result<(i32, i32), Errno> {
    let mut fds = [-1i32; 2];
    let mut s = Sqe::new(Opcode::Pipe);
    s.addr = fds.as_mut_ptr() as u64;
    call(&s)?;
    Ok((fds[0], fds[1]))
}

/// The executable a command name names: `name` itself if it has a `/`, else `/bin/name`
/// (the only directory searched; there is no `PATH` yet). The shell and `oncpu` resolve
/// commands with it.
pub fn command_path(name: &str) -> alloc::string::String {
    if name.contains('/') {
        alloc::string::String::from(name)
    } else {
        alloc::format!("/bin/{name}")
    }
}

/// Starts `path` in a new process with `argv` and `envp`. `fd_map` lists
/// `(child_fd, parent_fd)` pairs; empty means the child gets our 0, 1 and 2.
/// Returns the child's pid.
pub fn spawn(
    path: &str,
    argv: &[&str],
    envp: &[&str],
    fd_map: &[(i32, i32)],
) -> Result<i32, Errno> {
    spawn_with_flags(path, argv, envp, fd_map, 0)
}

/// [`spawn`] with `SpawnArgs::flags` (`abi::ring::SPAWN_*`): `SPAWN_FOREGROUND` (^C on the
/// console terminates the child), `abi::ring::spawn_on_cpu(1)` to run the child on CPU 1
/// (`EINVAL` if that CPU is not online); or both.
pub fn spawn_with_flags(
    path: &str,
    argv: &[&str],
    envp: &[&str],
    fd_map: &[(i32, i32)],
    flags: u64,
) -> Result<i32, Errno> {
    let slice = |s: &str| UserSlice {
        ptr: s.as_ptr() as u64,
        len: s.len() as u64,
    };
    let argv: Vec<UserSlice> = argv.iter().map(|s| slice(s)).collect();
    let envp: Vec<UserSlice> = envp.iter().map(|s| slice(s)).collect();
    let map: Vec<FdMapEntry> = fd_map
        .iter()
        .map(|&(child_fd, parent_fd)| FdMapEntry {
            child_fd,
            parent_fd,
        })
        .collect();
    let args = SpawnArgs {
        path: slice(path),
        argv: argv.as_ptr() as u64,
        argc: argv.len() as u64,
        envp: envp.as_ptr() as u64,
        envc: envp.len() as u64,
        fd_map: map.as_ptr() as u64,
        fd_map_len: map.len() as u64,
        flags,
    };
    let mut s = Sqe::new(Opcode::Spawn);
    s.addr = &args as *const SpawnArgs as u64;
    s.len = size_of::<SpawnArgs>() as u32;
    call(&s).map(|pid| pid as i32)
}

/// How a child ended, decoded from the Linux-style status word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)` (low 8 bits).
    Exited(u8),
    /// Killed by a signal (a fault kills with `SIGSEGV`, `SIGILL`, `SIGFPE`, ...).
    Signaled(u32),
}

impl ExitStatus {
    /// Decodes a status word: exited is `code << 8`, killed is the signal number.
    pub fn from_raw(raw: i32) -> ExitStatus {
        if raw & 0x7f == 0 {
            ExitStatus::Exited(((raw >> 8) & 0xff) as u8)
        } else {
            ExitStatus::Signaled((raw & 0x7f) as u32)
        }
    }

    /// The shell's `$?`: the exit code, or 128 + signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c as i32,
            ExitStatus::Signaled(s) => 128 + s as i32,
        }
    }
}

/// `waitpid(pid, 0)`; `pid == -1` waits for any child. Returns `(pid, status)`.
pub fn waitpid(pid: i32) -> Result<(i32, ExitStatus), Errno> {
    let mut status = 0i32;
    let mut s = Sqe::new(Opcode::Wait);
    s.fd = pid;
    s.addr = &mut status as *mut i32 as u64;
    let pid = call(&s)? as i32;
    Ok((pid, ExitStatus::from_raw(status)))
}

/// `waitpid(pid, WNOHANG)`: `None` when no child has exited yet.
pub fn try_waitpid(pid: i32) -> Result<Option<(i32, ExitStatus)>, Errno> {
    let mut status = 0i32;
    let mut s = Sqe::new(Opcode::Wait);
    s.fd = pid;
    s.addr = &mut status as *mut i32 as u64;
    s.op_flags = WAIT_NOHANG;
    match call(&s)? as i32 {
        0 => Ok(None),
        pid => Ok(Some((pid, ExitStatus::from_raw(status)))),
    }
}

/// `wait()`: any child.
pub fn wait() -> Result<(i32, ExitStatus), Errno> {
    waitpid(-1)
}

/// `exit(status)`: ends the process.
pub fn exit(status: i32) -> ! {
    let mut s = Sqe::new(Opcode::Exit);
    s.off = status as u32 as u64;
    let _ = call(&s);
    // Exit never returns; if a broken kernel returns anyway, do not run on.
    loop {
        core::hint::spin_loop();
    }
}

/// `kill(pid, signal)`.
pub fn kill(pid: i32, signal: u32) -> Result<(), Errno> {
    let mut s = Sqe::new(Opcode::Kill);
    s.fd = pid;
    s.op_flags = signal;
    call(&s).map(drop)
}

/// `getpid()`.
#[inline]
pub fn getpid() -> i32 {
    call(&Sqe::new(Opcode::Getpid)).map_or(-1, |p| p as i32)
}

/// `getppid()`.
pub fn getppid() -> i32 {
    let mut s = Sqe::new(Opcode::Getpid);
    s.op_flags = ring::GETPID_PARENT;
    call(&s).map_or(-1, |p| p as i32)
}

/// `clock_gettime(clock)`: from the clock page without a trap when the process has one
/// (`CLOCK_MONOTONIC`, `CLOCK_REALTIME`), else [`clock_gettime_trap`].
pub fn clock_gettime(clock: i32) -> Result<Timespec, Errno> {
    match super::clock::read_ns(clock) {
        Some(ns) => Ok(Timespec::from_nanos(ns)),
        None => clock_gettime_trap(clock),
    }
}

/// `clock_gettime(clock)` by the `ClockGettime` operation (one trap).
#[inline]
pub fn clock_gettime_trap(clock: i32) -> Result<Timespec, Errno> {
    let mut ts = Timespec::default();
    let mut s = Sqe::new(Opcode::ClockGettime);
    s.fd = clock;
    s.addr = &mut ts as *mut Timespec as u64;
    call(&s)?;
    Ok(ts)
}

/// Monotonic time in ns (0 if the clock cannot be read).
pub fn now_ns() -> u64 {
    clock_gettime(CLOCK_MONOTONIC).map_or(0, |t| t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64)
}

/// Sleeps `ns` nanoseconds.
pub fn nanosleep(ns: u64) -> Result<(), Errno> {
    let mut s = Sqe::new(Opcode::Sleep);
    s.addr = ns;
    call(&s).map(drop)
}

/// Sleeps `ms` milliseconds.
pub fn sleep_ms(ms: u64) -> Result<(), Errno> {
    nanosleep(ms.saturating_mul(1_000_000))
}

/// Maps `len` bytes of anonymous private memory with `prot` (`PROT_*`): the address.
pub fn mmap(hint: usize, len: usize, prot: u32, map_flags: u32) -> Result<usize, Errno> {
    let mut s = Sqe::new(Opcode::Mmap);
    s.addr = hint as u64;
    s.off = len as u64;
    s.op_flags = prot;
    s.aux = map_flags;
    call(&s).map(|a| a as usize)
}

/// Read-write anonymous private memory (what the allocator uses).
pub fn mmap_anonymous(len: usize) -> Result<usize, Errno> {
    mmap(0, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
}

/// `munmap(addr, len)`. Unmapping memory that Rust still references is not undefined
/// behaviour by itself here, but the next access faults; owners of mappings call this.
pub fn munmap(addr: usize, len: usize) -> Result<(), Errno> {
    let mut s = Sqe::new(Opcode::Munmap);
    s.addr = addr as u64;
    s.off = len as u64;
    call(&s).map(drop)
}

/// `mprotect(addr, len, prot)`.
pub fn mprotect(addr: usize, len: usize, prot: u32) -> Result<(), Errno> {
    let mut s = Sqe::new(Opcode::Mprotect);
    s.addr = addr as u64;
    s.off = len as u64;
    s.op_flags = prot;
    call(&s).map(drop)
}

/// `chdir(path)`.
pub fn chdir(path: &str) -> Result<(), Errno> {
    call(&path_sqe(Opcode::Chdir, 0, path.as_bytes())).map(drop)
}

/// `getcwd()` into `buf`: the path (without the NUL).
pub fn getcwd(buf: &mut [u8]) -> Result<&str, Errno> {
    let mut s = Sqe::new(Opcode::Getcwd);
    s.addr = buf.as_mut_ptr() as u64;
    s.len = buf.len().min(u32::MAX as usize) as u32;
    let n = call(&s)? as usize;
    let path = buf.get(..n.saturating_sub(1)).ok_or(Errno::Range)?;
    core::str::from_utf8(path).map_err(|_| Errno::IlSeq)
}

/// Lists processes into `out`: the number written.
pub fn proc_list(out: &mut [ProcInfo]) -> Result<usize, Errno> {
    let mut s = Sqe::new(Opcode::ProcList);
    s.addr = out.as_mut_ptr() as u64;
    s.len = out.len().min(u32::MAX as usize) as u32;
    call(&s).map(|n| n as usize)
}

/// The kernel's memory and process counters (`SysInfo`), for leak checks.
pub fn sys_info() -> Result<SysInfo, Errno> {
    let mut info = SysInfo::default();
    let mut s = Sqe::new(Opcode::SysInfo);
    s.addr = &mut info as *mut SysInfo as u64;
    s.len = size_of::<SysInfo>() as u32;
    call(&s)?;
    Ok(info)
}

/// Creates a user message port: its descriptor.
pub fn port_create() -> Result<i32, Errno> {
    call(&Sqe::new(Opcode::PortCreate)).map(|fd| fd as i32)
}

/// Sends `msg` to the port; no reply.
pub fn port_send(port: i32, msg: &[u8]) -> Result<(), Errno> {
    let mut s = Sqe::new(Opcode::PortSend);
    s.fd = port;
    s.addr = msg.as_ptr() as u64;
    s.len = msg.len().min(u32::MAX as usize) as u32;
    call(&s).map(drop)
}

/// Sends `request` and waits for the reply in `reply`: the reply's length.
pub fn port_call(port: i32, request: &[u8], reply: &mut [u8]) -> Result<usize, Errno> {
    let mut s = Sqe::new(Opcode::PortCall);
    s.fd = port;
    s.addr = request.as_ptr() as u64;
    s.len = request.len().min(u32::MAX as usize) as u32;
    s.addr2 = reply.as_mut_ptr() as u64;
    s.aux = reply.len().min(u32::MAX as usize) as u32;
    call(&s).map(|n| n as usize)
}

/// Receives the next message into `buf`: `(length, reply token)`; token 0 means the
/// sender expects no reply.
pub fn port_receive(port: i32, buf: &mut [u8]) -> Result<(usize, u64), Errno> {
    let mut token = 0u64;
    let mut s = Sqe::new(Opcode::PortReceive);
    s.fd = port;
    s.addr = buf.as_mut_ptr() as u64;
    s.len = buf.len().min(u32::MAX as usize) as u32;
    s.addr2 = &mut token as *mut u64 as u64;
    let n = call(&s)? as usize;
    Ok((n, token))
}

/// Replies to the message with `token`.
pub fn port_reply(port: i32, token: u64, reply: &[u8]) -> Result<(), Errno> {
    let mut s = Sqe::new(Opcode::PortReply);
    s.fd = port;
    s.addr = reply.as_ptr() as u64;
    s.len = reply.len().min(u32::MAX as usize) as u32;
    s.off = token;
    call(&s).map(drop)
}
