// SPDX-License-Identifier: MIT OR Apache-2.0
//! Validate and decode one `Sqe` into a typed [`Request`]: the ONLY place raw user input
//! is checked (STYLE.md C.5). Everything after this works with types that cannot be
//! invalid: [`Fd`], [`DirFd`], [`UserBuf`], [`Deadline`], `OpenFlags`, `Whence`.
//!
//! Rules, in the order they are applied:
//!
//! 1. Unknown opcode: `EINVAL` (not `ENOSYS`: the opcode byte is an argument like any
//!    other; `ENOSYS` is kept for a known opcode the kernel was built without).
//! 2. Unknown `flags` bits, nonzero `ioprio`, `addr3` or `reserved`, or any field the
//!    opcode does not use (see the table in `abi::ring`) that is not zero: `EINVAL`.
//! 3. A negative descriptor: `EBADF` (`AT_FDCWD` is allowed where a dirfd is).
//! 4. User buffers: `addr + len` must not overflow and must end at or below
//!    `USER_ADDRESS_END`, and a non-empty buffer must not start in the zero page:
//!    else `EFAULT`. A zero-length buffer is never dereferenced, so its address is not
//!    checked. No alignment is ever required: every user access is a byte copy.
//! 5. Lengths: `Read`/`Write`/`Pread`/`Pwrite` are clamped to [`MAX_IO`] (POSIX allows
//!    short transfers; Linux clamps too), `Getdents` to [`MAX_GETDENTS`]; a path longer than
//!    `PATH_MAX` is `ENAMETOOLONG`; a port message above `PORT_MESSAGE_MAX` is `EMSGSIZE`.
//!
//! Path *contents* (a NUL inside) are checked by [`check_path`] right after the bytes are
//! copied in, since they are not in the `Sqe`.

use abi::{
    Errno, OpenFlags, Sqe, SqeFlags, Whence,
    fcntl::{AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, RENAME_NOREPLACE},
    ring::{
        CLOCK_MONOTONIC, CLOCK_REALTIME, DUP_CLOEXEC, DUP_TO, GETPID_PARENT, MAP_ANONYMOUS,
        MAP_FIXED, MAP_PRIVATE, MAP_SHARED, Opcode, PATH_MAX, PORT_MESSAGE_MAX, PROT_EXEC,
        PROT_READ, PROT_WRITE, ProcInfo, RingEnterFlags, RingParams, SpawnArgs, SysInfo,
        TIMEOUT_ABS, USER_ADDRESS_END, WAIT_NOHANG,
    },
    stat::{Stat, Timespec},
};

use crate::{files::MAX_FDS, kernel::ClockId};

/// Largest transfer of one `Read`/`Write`/`Pread`/`Pwrite` (longer requests are short).
pub const MAX_IO: u32 = 1 << 20;
/// Largest `Getdents` buffer used (longer buffers are used up to this size).
pub const MAX_GETDENTS: u32 = 64 * 1024;
/// Largest `ProcList` capacity honoured.
pub const MAX_PROC_LIST: u32 = 4096;
/// First address a non-empty user buffer may use (the zero page is never mapped).
pub const USER_ADDRESS_START: u64 = 4096;
const PAGE: u64 = 4096;

/// A descriptor number, known to be non-negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fd(pub i32);

/// The directory a relative path starts from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirFd {
    /// The process's current directory (`AT_FDCWD`).
    Cwd,
    /// An open directory descriptor.
    Fd(Fd),
}

/// A user buffer whose range lies in the user half (it may still be unmapped: the copy
/// reports `EFAULT` then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserBuf {
    /// Start address.
    pub addr: u64,
    /// Length in bytes.
    pub len: usize,
}

/// When a timer fires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deadline {
    /// This many ns after the operation starts.
    After(u64),
    /// At this `CLOCK_MONOTONIC` time.
    At(u64),
}

/// A decoded, validated operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // Field meanings are the table in `abi::ring`.
pub enum Request {
    Nop,
    Read {
        fd: Fd,
        buf: UserBuf,
    },
    Write {
        fd: Fd,
        buf: UserBuf,
    },
    Pread {
        fd: Fd,
        buf: UserBuf,
        offset: u64,
    },
    Pwrite {
        fd: Fd,
        buf: UserBuf,
        offset: u64,
    },
    Openat {
        dir: DirFd,
        path: UserBuf,
        flags: OpenFlags,
        mode: u32,
    },
    Close {
        fd: Fd,
    },
    Fstat {
        fd: Fd,
        out: UserBuf,
    },
    Statat {
        dir: DirFd,
        path: UserBuf,
        follow: bool,
        empty_path: bool,
        out: UserBuf,
    },
    Getdents {
        fd: Fd,
        buf: UserBuf,
    },
    Mkdirat {
        dir: DirFd,
        path: UserBuf,
        mode: u32,
    },
    Unlinkat {
        dir: DirFd,
        path: UserBuf,
        remove_dir: bool,
    },
    Renameat {
        old_dir: DirFd,
        old: UserBuf,
        new_dir: DirFd,
        new: UserBuf,
        no_replace: bool,
    },
    Lseek {
        fd: Fd,
        offset: i64,
        whence: Whence,
        out: Option<UserBuf>,
    },
    Dup {
        fd: Fd,
        to: Option<Fd>,
        close_on_exec: bool,
    },
    Pipe {
        out: UserBuf,
        close_on_exec: bool,
        non_blocking: bool,
    },
    Spawn {
        args: UserBuf,
    },
    Wait {
        pid: Option<i32>,
        status: Option<UserBuf>,
        no_hang: bool,
    },
    Exit {
        status: i32,
    },
    Kill {
        pid: i32,
        signal: u32,
    },
    Getpid {
        parent: bool,
    },
    ClockGettime {
        clock: ClockId,
        out: UserBuf,
    },
    Sleep {
        deadline: Deadline,
    },
    Timeout {
        deadline: Deadline,
    },
    LinkTimeout {
        deadline: Deadline,
    },
    Cancel {
        user_data: u64,
    },
    Mmap {
        hint: u64,
        len: u64,
        prot: u32,
        flags: u32,
        out: Option<UserBuf>,
    },
    Munmap {
        addr: u64,
        len: u64,
    },
    Mprotect {
        addr: u64,
        len: u64,
        prot: u32,
    },
    PortCreate,
    PortSend {
        fd: Fd,
        msg: UserBuf,
    },
    PortCall {
        fd: Fd,
        msg: UserBuf,
        reply: UserBuf,
    },
    PortReceive {
        fd: Fd,
        buf: UserBuf,
        token_out: UserBuf,
    },
    PortReply {
        fd: Fd,
        token: u64,
        msg: UserBuf,
    },
    RingSetup {
        params: UserBuf,
    },
    RingEnter {
        to_submit: u32,
        min_complete: u32,
        flags: RingEnterFlags,
        timeout_ns: Option<u64>,
    },
    ProcList {
        out: UserBuf,
        capacity: usize,
    },
    Chdir {
        path: UserBuf,
    },
    Getcwd {
        buf: UserBuf,
    },
    SysInfo {
        out: UserBuf,
    },
}

// Which optional fields an opcode uses; every other one must be zero.
const FD: u8 = 1 << 0;
const OFF: u8 = 1 << 1;
const ADDR: u8 = 1 << 2;
const LEN: u8 = 1 << 3;
const OPF: u8 = 1 << 4;
const ADDR2: u8 = 1 << 5;
const AUX: u8 = 1 << 6;

/// The SQE fields `op` reads (`FD | ADDR | ...`); every other field must be zero. Every
/// arm is a constant, so this compiles to one table load.
const fn used_fields(op: Opcode) -> u8 {
    match op {
        Opcode::Nop | Opcode::PortCreate => 0,
        Opcode::Read | Opcode::Write | Opcode::Getdents | Opcode::PortSend => FD | ADDR | LEN,
        Opcode::Pread | Opcode::Pwrite => FD | ADDR | LEN | OFF,
        Opcode::Openat => FD | ADDR | LEN | OFF | OPF,
        Opcode::Close => FD,
        Opcode::Fstat => FD | ADDR,
        Opcode::Statat => FD | ADDR | LEN | OPF | ADDR2,
        Opcode::Mkdirat => FD | ADDR | LEN | OFF,
        Opcode::Unlinkat => FD | ADDR | LEN | OPF,
        Opcode::Renameat => FD | ADDR | LEN | OFF | OPF | ADDR2 | AUX,
        Opcode::Lseek => FD | OFF | OPF | ADDR2,
        Opcode::Dup => FD | OFF | OPF,
        Opcode::Pipe => ADDR | OPF,
        Opcode::Spawn | Opcode::RingSetup | Opcode::ProcList => ADDR | LEN,
        Opcode::Wait => FD | ADDR | OPF,
        Opcode::Exit => OFF,
        Opcode::Kill => FD | OPF,
        Opcode::Getpid => OPF,
        Opcode::ClockGettime => FD | ADDR,
        Opcode::Sleep | Opcode::Timeout | Opcode::LinkTimeout => ADDR | OPF,
        Opcode::Cancel => ADDR,
        Opcode::Mmap => ADDR | OFF | OPF | ADDR2 | AUX,
        Opcode::Munmap => ADDR | OFF,
        Opcode::Mprotect => ADDR | OFF | OPF,
        Opcode::PortCall => FD | ADDR | LEN | ADDR2 | AUX,
        Opcode::PortReceive => FD | ADDR | LEN | ADDR2,
        Opcode::PortReply => FD | ADDR | LEN | OFF,
        Opcode::RingEnter => ADDR | LEN | OFF | OPF,
        Opcode::Chdir | Opcode::Getcwd | Opcode::SysInfo => ADDR | LEN,
    }
}

/// The bits of an entry's eight words ([`Sqe::to_words`]) that must be zero for an
/// operation that reads the fields `used`: the fields it does not read and the reserved
/// ones (`ioprio`, `addr3`, `reserved`).
const fn zero_bits(used: u8) -> [u64; 8] {
    const LOW: u64 = 0xffff_ffff;
    const HIGH: u64 = LOW << 32;
    const IOPRIO: u64 = 0xffff << 16;
    const fn unless(used: u8, field: u8, bits: u64) -> u64 {
        if used & field != 0 { 0 } else { bits }
    }
    [
        // opcode, flags (checked on their own), ioprio, fd
        IOPRIO | unless(used, FD, HIGH),
        unless(used, OFF, u64::MAX),
        unless(used, ADDR, u64::MAX),
        unless(used, LEN, LOW) | unless(used, OPF, HIGH),
        0, // user_data: anything
        unless(used, ADDR2, u64::MAX),
        u64::MAX, // addr3
        unless(used, AUX, LOW) | HIGH,
    ]
}

/// [`zero_bits`] of every opcode, indexed by its value (the opcodes are numbered from 0
/// without gaps; a gap would fail to compile here).
const ZERO_BITS: [[u64; 8]; Opcode::ALL.len()] = {
    let mut table = [[0; 8]; Opcode::ALL.len()];
    let mut i = 0;
    while i < Opcode::ALL.len() {
        let op = Opcode::ALL[i];
        table[op as usize] = zero_bits(used_fields(op));
        i += 1;
    }
    table
};

/// `Inval` if a field `op` does not read, or a reserved one, is not zero: the entry's
/// words ANDed with [`ZERO_BITS`], with no branch per field (under TCG each branch ends a
/// translation block, and this runs for every entry).
fn check_unused(sqe: &Sqe, op: Opcode) -> Result<(), Errno> {
    let stray = sqe
        .to_words()
        .iter()
        .zip(&ZERO_BITS[op as usize])
        .fold(0, |acc, (word, zero)| acc | (word & zero));
    if stray != 0 {
        Err(Errno::Inval)
    } else {
        Ok(())
    }
}

/// Checks a user range.
///
/// # Errors
/// `Fault` if it wraps, ends above the user half, or starts in the zero page.
pub fn user_buf(addr: u64, len: u64) -> Result<UserBuf, Errno> {
    if len == 0 {
        return Ok(UserBuf { addr, len: 0 });
    }
    let end = addr.checked_add(len).ok_or(Errno::Fault)?;
    if addr < USER_ADDRESS_START || end > USER_ADDRESS_END {
        return Err(Errno::Fault);
    }
    let len = usize::try_from(len).map_err(|_| Errno::Fault)?;
    Ok(UserBuf { addr, len })
}

/// A buffer that must hold exactly `size` bytes (an output struct).
fn user_struct(addr: u64, size: usize) -> Result<UserBuf, Errno> {
    if addr == 0 {
        return Err(Errno::Fault);
    }
    user_buf(addr, size as u64)
}

fn optional_out(addr: u64, size: usize) -> Result<Option<UserBuf>, Errno> {
    if addr == 0 {
        Ok(None)
    } else {
        user_struct(addr, size).map(Some)
    }
}

fn fd(raw: i32) -> Result<Fd, Errno> {
    if raw < 0 || raw as usize >= MAX_FDS {
        Err(Errno::BadF)
    } else {
        Ok(Fd(raw))
    }
}

fn dir_fd(raw: i32) -> Result<DirFd, Errno> {
    if raw == AT_FDCWD {
        Ok(DirFd::Cwd)
    } else {
        fd(raw).map(DirFd::Fd)
    }
}

fn path(addr: u64, len: u32) -> Result<UserBuf, Errno> {
    if len as usize >= PATH_MAX {
        return Err(Errno::NameTooLong);
    }
    user_buf(addr, len as u64)
}

/// Checks copied-in path bytes.
///
/// # Errors
/// `Inval` if they contain a NUL.
pub fn check_path(bytes: &[u8]) -> Result<(), Errno> {
    if bytes.contains(&0) {
        Err(Errno::Inval)
    } else {
        Ok(())
    }
}

fn deadline(ns: u64, op_flags: u32) -> Result<Deadline, Errno> {
    match op_flags {
        0 => Ok(Deadline::After(ns)),
        TIMEOUT_ABS => Ok(Deadline::At(ns)),
        _ => Err(Errno::Inval),
    }
}

fn io_buf(sqe: &Sqe, max: u32) -> Result<UserBuf, Errno> {
    user_buf(sqe.addr, sqe.len.min(max) as u64)
}

fn page_range(addr: u64, len: u64) -> Result<(u64, u64), Errno> {
    if len == 0 || !addr.is_multiple_of(PAGE) {
        return Err(Errno::Inval);
    }
    let len = len.checked_next_multiple_of(PAGE).ok_or(Errno::NoMem)?;
    let end = addr.checked_add(len).ok_or(Errno::NoMem)?;
    if end > USER_ADDRESS_END {
        return Err(Errno::NoMem);
    }
    Ok((addr, len))
}

fn prot(bits: u32) -> Result<u32, Errno> {
    if bits & !(PROT_READ | PROT_WRITE | PROT_EXEC) != 0 {
        Err(Errno::Inval)
    } else {
        Ok(bits)
    }
}

/// Validates and decodes `sqe`.
///
/// # Errors
/// See the module doc; the error is the operation's result (`-errno`).
#[inline(always)]
pub fn decode(sqe: &Sqe) -> Result<Request, Errno> {
    let op = Opcode::from_u8(sqe.opcode).ok_or(Errno::Inval)?;
    SqeFlags::from_bits(sqe.flags)?;
    check_unused(sqe, op)?;
    // An operation without arguments, or with only a flag, has nothing more to check:
    // answered here, without the call into `decode_args` (whose arms share one epilogue
    // that writes every field of a `Request`, some fifty instructions these do not need).
    match op {
        Opcode::Nop => Ok(Request::Nop),
        Opcode::PortCreate => Ok(Request::PortCreate),
        Opcode::Getpid => getpid_args(sqe),
        _ => decode_args(sqe, op),
    }
}

/// [`decode`] for an entry whose opcode byte is `op`: the same checks and the same result,
/// without the dispatch over every opcode (and the epilogue shared by its arms). For the
/// trap door's hottest calls, below; `args` reads the operation's arguments.
#[inline(always)]
fn decode_as(
    sqe: &Sqe,
    op: Opcode,
    args: fn(&Sqe) -> Result<Request, Errno>,
) -> Result<Request, Errno> {
    debug_assert_eq!(sqe.opcode, op as u8);
    SqeFlags::from_bits(sqe.flags)?;
    check_unused(sqe, op)?;
    args(sqe)
}

/// [`decode`] for an entry whose opcode byte is `Getpid`.
#[inline]
pub fn decode_getpid(sqe: &Sqe) -> Result<Request, Errno> {
    decode_as(sqe, Opcode::Getpid, getpid_args)
}

/// `Getpid`'s one argument: which pid (`GETPID_PARENT` for the parent's).
#[inline]
fn getpid_args(s: &Sqe) -> Result<Request, Errno> {
    match s.op_flags {
        0 => Ok(Request::Getpid { parent: false }),
        GETPID_PARENT => Ok(Request::Getpid { parent: true }),
        _ => Err(Errno::Inval),
    }
}

/// [`decode`] for an entry whose opcode byte is `RingEnter` (every plain-mode ring call).
#[inline]
pub fn decode_ring_enter(sqe: &Sqe) -> Result<Request, Errno> {
    decode_as(sqe, Opcode::RingEnter, ring_enter_args)
}

/// [`decode`] for an entry whose opcode byte is `ClockGettime`.
#[inline]
pub fn decode_clock_gettime(sqe: &Sqe) -> Result<Request, Errno> {
    decode_as(sqe, Opcode::ClockGettime, clock_gettime_args)
}

/// `ClockGettime`'s arguments (the clock, where its `Timespec` goes), from an entry whose
/// opcode, flags and unused fields have been checked.
#[inline]
fn clock_gettime_args(s: &Sqe) -> Result<Request, Errno> {
    Ok(Request::ClockGettime {
        clock: match s.fd {
            CLOCK_REALTIME => ClockId::Realtime,
            CLOCK_MONOTONIC => ClockId::Monotonic,
            _ => return Err(Errno::Inval),
        },
        out: user_struct(s.addr, size_of::<Timespec>())?,
    })
}

/// `RingEnter`'s arguments, from an entry whose opcode, flags and unused fields have been
/// checked.
#[inline]
fn ring_enter_args(s: &Sqe) -> Result<Request, Errno> {
    Ok(Request::RingEnter {
        to_submit: s.len,
        min_complete: u32::try_from(s.off).map_err(|_| Errno::Inval)?,
        flags: RingEnterFlags::from_bits(s.op_flags)?,
        timeout_ns: (s.addr != 0).then_some(s.addr),
    })
}

/// [`decode`] for an entry whose opcode, flags and unused fields have been checked.
#[inline(never)]
fn decode_args(s: &Sqe, op: Opcode) -> Result<Request, Errno> {
    Ok(match op {
        Opcode::Nop => Request::Nop,
        Opcode::Read => Request::Read {
            fd: fd(s.fd)?,
            buf: io_buf(s, MAX_IO)?,
        },
        Opcode::Write => Request::Write {
            fd: fd(s.fd)?,
            buf: io_buf(s, MAX_IO)?,
        },
        Opcode::Pread => Request::Pread {
            fd: fd(s.fd)?,
            buf: io_buf(s, MAX_IO)?,
            offset: offset(s.off)?,
        },
        Opcode::Pwrite => Request::Pwrite {
            fd: fd(s.fd)?,
            buf: io_buf(s, MAX_IO)?,
            offset: offset(s.off)?,
        },
        Opcode::Openat => Request::Openat {
            dir: dir_fd(s.fd)?,
            path: path(s.addr, s.len)?,
            flags: OpenFlags::from_bits(s.op_flags)?,
            mode: mode(s.off)?,
        },
        Opcode::Close => Request::Close { fd: fd(s.fd)? },
        Opcode::Fstat => Request::Fstat {
            fd: fd(s.fd)?,
            out: user_struct(s.addr, size_of::<Stat>())?,
        },
        Opcode::Statat => {
            if s.op_flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
                return Err(Errno::Inval);
            }
            Request::Statat {
                dir: dir_fd(s.fd)?,
                path: path(s.addr, s.len)?,
                follow: s.op_flags & AT_SYMLINK_NOFOLLOW == 0,
                empty_path: s.op_flags & AT_EMPTY_PATH != 0,
                out: user_struct(s.addr2, size_of::<Stat>())?,
            }
        }
        Opcode::Getdents => Request::Getdents {
            fd: fd(s.fd)?,
            buf: io_buf(s, MAX_GETDENTS)?,
        },
        Opcode::Mkdirat => Request::Mkdirat {
            dir: dir_fd(s.fd)?,
            path: path(s.addr, s.len)?,
            mode: mode(s.off)?,
        },
        Opcode::Unlinkat => {
            if s.op_flags & !AT_REMOVEDIR != 0 {
                return Err(Errno::Inval);
            }
            Request::Unlinkat {
                dir: dir_fd(s.fd)?,
                path: path(s.addr, s.len)?,
                remove_dir: s.op_flags & AT_REMOVEDIR != 0,
            }
        }
        Opcode::Renameat => {
            // RENAME_EXCHANGE and RENAME_WHITEOUT are not supported.
            if s.op_flags & !RENAME_NOREPLACE != 0 {
                return Err(Errno::Inval);
            }
            let new_dir = i32::try_from(s.off as i64).map_err(|_| Errno::BadF)?;
            Request::Renameat {
                old_dir: dir_fd(s.fd)?,
                old: path(s.addr, s.len)?,
                new_dir: dir_fd(new_dir)?,
                new: path(s.addr2, s.aux)?,
                no_replace: s.op_flags & RENAME_NOREPLACE != 0,
            }
        }
        Opcode::Lseek => Request::Lseek {
            fd: fd(s.fd)?,
            offset: s.off as i64,
            whence: Whence::from_u32(s.op_flags)?,
            out: optional_out(s.addr2, 8)?,
        },
        Opcode::Dup => {
            if s.op_flags & !(DUP_TO | DUP_CLOEXEC) != 0 {
                return Err(Errno::Inval);
            }
            let to = if s.op_flags & DUP_TO != 0 {
                Some(fd(i32::try_from(s.off).map_err(|_| Errno::BadF)?)?)
            } else if s.off != 0 {
                return Err(Errno::Inval);
            } else {
                None
            };
            Request::Dup {
                fd: fd(s.fd)?,
                to,
                close_on_exec: s.op_flags & DUP_CLOEXEC != 0,
            }
        }
        Opcode::Pipe => {
            let allowed = OpenFlags::CLOSE_ON_EXEC.bits() | OpenFlags::NON_BLOCK.bits();
            if s.op_flags & !allowed != 0 {
                return Err(Errno::Inval);
            }
            Request::Pipe {
                out: user_struct(s.addr, 8)?,
                close_on_exec: s.op_flags & OpenFlags::CLOSE_ON_EXEC.bits() != 0,
                non_blocking: s.op_flags & OpenFlags::NON_BLOCK.bits() != 0,
            }
        }
        Opcode::Spawn => {
            if s.len as usize != size_of::<SpawnArgs>() {
                return Err(Errno::Inval);
            }
            Request::Spawn {
                args: user_struct(s.addr, size_of::<SpawnArgs>())?,
            }
        }
        Opcode::Wait => {
            if s.op_flags & !WAIT_NOHANG != 0 || (s.fd < -1) || s.fd == 0 {
                return Err(Errno::Inval);
            }
            Request::Wait {
                pid: (s.fd > 0).then_some(s.fd),
                status: optional_out(s.addr, 4)?,
                no_hang: s.op_flags & WAIT_NOHANG != 0,
            }
        }
        Opcode::Exit => Request::Exit {
            status: (s.off & 0xff) as i32,
        },
        Opcode::Kill => {
            if s.fd <= 0 || s.op_flags == 0 || s.op_flags > 64 {
                return Err(if s.fd <= 0 { Errno::Srch } else { Errno::Inval });
            }
            Request::Kill {
                pid: s.fd,
                signal: s.op_flags,
            }
        }
        Opcode::Getpid => getpid_args(s)?,
        Opcode::ClockGettime => clock_gettime_args(s)?,
        Opcode::Sleep => Request::Sleep {
            deadline: deadline(s.addr, s.op_flags)?,
        },
        Opcode::Timeout => Request::Timeout {
            deadline: deadline(s.addr, s.op_flags)?,
        },
        Opcode::LinkTimeout => Request::LinkTimeout {
            deadline: deadline(s.addr, s.op_flags)?,
        },
        Opcode::Cancel => Request::Cancel { user_data: s.addr },
        Opcode::Mmap => {
            let flags = s.aux;
            let kind = flags & (MAP_SHARED | MAP_PRIVATE);
            if flags & !(MAP_SHARED | MAP_PRIVATE | MAP_FIXED | MAP_ANONYMOUS) != 0
                || flags & MAP_ANONYMOUS == 0
                || (kind != MAP_SHARED && kind != MAP_PRIVATE)
                || s.off == 0
            {
                return Err(Errno::Inval);
            }
            let hint = if flags & MAP_FIXED != 0 {
                page_range(s.addr, s.off)?.0
            } else {
                s.addr & !(PAGE - 1)
            };
            let len = s.off.checked_next_multiple_of(PAGE).ok_or(Errno::NoMem)?;
            if len >= USER_ADDRESS_END {
                return Err(Errno::NoMem);
            }
            Request::Mmap {
                hint,
                len,
                prot: prot(s.op_flags)?,
                flags,
                out: optional_out(s.addr2, 8)?,
            }
        }
        Opcode::Munmap => {
            let (addr, len) = page_range(s.addr, s.off).map_err(|_| Errno::Inval)?;
            Request::Munmap { addr, len }
        }
        Opcode::Mprotect => {
            let (addr, len) = page_range(s.addr, s.off)?;
            Request::Mprotect {
                addr,
                len,
                prot: prot(s.op_flags)?,
            }
        }
        Opcode::PortCreate => Request::PortCreate,
        Opcode::PortSend => Request::PortSend {
            fd: fd(s.fd)?,
            msg: port_msg(s.addr, s.len)?,
        },
        Opcode::PortCall => Request::PortCall {
            fd: fd(s.fd)?,
            msg: port_msg(s.addr, s.len)?,
            reply: user_buf(s.addr2, s.aux.min(PORT_MESSAGE_MAX as u32) as u64)?,
        },
        Opcode::PortReceive => Request::PortReceive {
            fd: fd(s.fd)?,
            buf: user_buf(s.addr, s.len.min(PORT_MESSAGE_MAX as u32) as u64)?,
            token_out: user_struct(s.addr2, 8)?,
        },
        Opcode::PortReply => Request::PortReply {
            fd: fd(s.fd)?,
            token: s.off,
            msg: port_msg(s.addr, s.len)?,
        },
        Opcode::RingSetup => {
            if s.len as usize != size_of::<RingParams>() {
                return Err(Errno::Inval);
            }
            Request::RingSetup {
                params: user_struct(s.addr, size_of::<RingParams>())?,
            }
        }
        Opcode::RingEnter => ring_enter_args(s)?,
        Opcode::ProcList => {
            let capacity = s.len.min(MAX_PROC_LIST);
            Request::ProcList {
                out: user_buf(s.addr, capacity as u64 * size_of::<ProcInfo>() as u64)?,
                capacity: capacity as usize,
            }
        }
        Opcode::Chdir => Request::Chdir {
            path: path(s.addr, s.len)?,
        },
        Opcode::Getcwd => Request::Getcwd {
            buf: user_buf(s.addr, s.len.min(PATH_MAX as u32) as u64)?,
        },
        Opcode::SysInfo => {
            if s.len as usize != size_of::<SysInfo>() {
                return Err(Errno::Inval);
            }
            Request::SysInfo {
                out: user_struct(s.addr, size_of::<SysInfo>())?,
            }
        }
    })
}

fn offset(off: u64) -> Result<u64, Errno> {
    if off > i64::MAX as u64 {
        Err(Errno::Inval)
    } else {
        Ok(off)
    }
}

fn mode(off: u64) -> Result<u32, Errno> {
    u32::try_from(off)
        .ok()
        .filter(|m| m & !0o7777 == 0)
        .ok_or(Errno::Inval)
}

fn port_msg(addr: u64, len: u32) -> Result<UserBuf, Errno> {
    if len as usize > PORT_MESSAGE_MAX {
        return Err(Errno::MsgSize);
    }
    user_buf(addr, len as u64)
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    fn sqe(op: Opcode) -> Sqe {
        Sqe::new(op)
    }

    #[test]
    fn unknown_opcode_is_inval() {
        let mut s = Sqe::ZERO;
        s.opcode = 200;
        assert_eq!(decode(&s), Err(Errno::Inval));
    }

    #[test]
    fn unused_fields_must_be_zero() {
        let mut s = sqe(Opcode::Nop);
        assert_eq!(decode(&s), Ok(Request::Nop));
        s.addr3 = 1;
        assert_eq!(decode(&s), Err(Errno::Inval));
        let mut s = sqe(Opcode::Close);
        s.fd = 3;
        s.len = 1;
        assert_eq!(decode(&s), Err(Errno::Inval));
    }

    #[test]
    fn every_field_an_operation_does_not_read_must_be_zero() {
        // (the field's bit in `used_fields`, 0xff for a reserved field; sets it non-zero)
        type Setter = (u8, fn(&mut Sqe));
        let setters: [Setter; 10] = [
            (FD, |s| s.fd = 1),
            (OFF, |s| s.off = 1 << 40),
            (ADDR, |s| s.addr = 1 << 33),
            (LEN, |s| s.len = 1 << 31),
            (OPF, |s| s.op_flags = 1 << 30),
            (ADDR2, |s| s.addr2 = 1 << 63),
            (AUX, |s| s.aux = 1),
            // Reserved in every operation.
            (0xff, |s| s.ioprio = 1 << 15),
            (0xff, |s| s.addr3 = 1),
            (0xff, |s| s.reserved = 1 << 31),
        ];
        let mut checked = 0;
        for op in (0..=u8::MAX).filter_map(Opcode::from_u8) {
            for (bit, set) in setters {
                if used_fields(op) & bit == bit && bit != 0xff {
                    continue;
                }
                let mut s = sqe(op);
                set(&mut s);
                assert_eq!(decode(&s), Err(Errno::Inval), "{op:?}, field bit {bit:#x}");
                checked += 1;
            }
        }
        // 40 opcodes, each with at least the three reserved fields.
        assert!(checked > 3 * 40, "only {checked} cases");
    }

    #[test]
    fn every_bit_of_a_field_an_operation_does_not_read_must_be_zero() {
        // Each bit of the entry on its own, for every opcode, placed by the layout in
        // `abi::ring` (opcode, flags and user_data are not checked here).
        let field_of = |bit: usize| match bit {
            16..32 | 384..448 | 480..512 => None, // ioprio, addr3, reserved
            32..64 => Some(FD),
            64..128 => Some(OFF),
            128..192 => Some(ADDR),
            192..224 => Some(LEN),
            224..256 => Some(OPF),
            320..384 => Some(ADDR2),
            448..480 => Some(AUX),
            _ => unreachable!("bit {bit}"),
        };
        let mut checked = 0;
        for &op in Opcode::ALL {
            for bit in (16..512).filter(|b| !(256..320).contains(b)) {
                if field_of(bit).is_some_and(|f| used_fields(op) & f != 0) {
                    continue;
                }
                let mut words = sqe(op).to_words();
                words[bit / 64] |= 1 << (bit % 64);
                let s = Sqe::from_words(words);
                assert_eq!(decode(&s), Err(Errno::Inval), "{op:?}, bit {bit}");
                checked += 1;
            }
        }
        // At least the 176 reserved bits of each of the 40 opcodes.
        assert!(checked >= 176 * 40, "only {checked} cases");
    }

    #[test]
    fn decode_ring_enter_agrees_with_decode() {
        // Every single set bit outside the opcode byte, plus some whole-field values.
        let mut cases = Vec::new();
        for bit in 8..512 {
            let mut words = sqe(Opcode::RingEnter).to_words();
            words[bit / 64] |= 1 << (bit % 64);
            cases.push(Sqe::from_words(words));
        }
        for (len, off, op_flags, addr) in [
            (0, 0, 0, 0),
            (32, 32, 1, 0),
            (1, 1, RingEnterFlags::GETEVENTS.bits(), 5_000),
            (u32::MAX, u64::from(u32::MAX), 0, u64::MAX),
            (1, 1 << 32, 0, 0),
            (1, 0, u32::MAX, 0),
        ] {
            let mut s = sqe(Opcode::RingEnter);
            (s.len, s.off, s.op_flags, s.addr) = (len, off, op_flags, addr);
            cases.push(s);
        }
        let mut accepted = 0;
        for s in &cases {
            assert_eq!(decode_ring_enter(s), decode(s), "{s:?}");
            accepted += usize::from(decode(s).is_ok());
        }
        // Both answers occur: the comparison is not between two errors only.
        assert!(
            accepted > 10 && accepted < cases.len() - 100,
            "{accepted} accepted"
        );
    }

    /// Checks that `decoder` answers as `decode` for each of `bases` and for every single
    /// bit of each changed outside the opcode byte; returns how many `decode` accepted.
    fn agrees_on_every_bit(
        decoder: fn(&Sqe) -> Result<Request, Errno>,
        bases: impl IntoIterator<Item = Sqe>,
    ) -> (usize, usize) {
        let (mut accepted, mut cases) = (0, 0);
        for base in bases {
            // The base itself, then each bit outside the opcode byte flipped.
            for bit in core::iter::once(None).chain((8..512).map(Some)) {
                let mut words = base.to_words();
                if let Some(bit) = bit {
                    words[bit / 64] ^= 1 << (bit % 64);
                }
                let s = Sqe::from_words(words);
                assert_eq!(decoder(&s), decode(&s), "{s:?}");
                accepted += usize::from(decode(&s).is_ok());
                cases += 1;
            }
        }
        (accepted, cases)
    }

    #[test]
    fn decode_getpid_agrees_with_decode() {
        let bases = [0, GETPID_PARENT, 2, u32::MAX].map(|op_flags| {
            let mut s = sqe(Opcode::Getpid);
            s.op_flags = op_flags;
            s
        });
        let (accepted, cases) = agrees_on_every_bit(decode_getpid, bases);
        // Both answers occur: the comparison is not between two errors only.
        assert!(
            accepted > 20 && accepted < cases - 500,
            "{accepted} accepted"
        );
    }

    #[test]
    fn decode_clock_gettime_agrees_with_decode() {
        // Both clocks and an unknown one; a good buffer, one at the user half's end, none.
        let bases = [
            (CLOCK_MONOTONIC, 0x1_0000),
            (CLOCK_REALTIME, 0x1_0000),
            (7, 0x1_0000),
            (CLOCK_MONOTONIC, USER_ADDRESS_END - 8),
            (CLOCK_MONOTONIC, 0),
        ]
        .map(|(fd, addr)| {
            let mut s = sqe(Opcode::ClockGettime);
            (s.fd, s.addr) = (fd, addr);
            s
        });
        let (accepted, cases) = agrees_on_every_bit(decode_clock_gettime, bases);
        assert!(
            accepted > 50 && accepted < cases - 500,
            "{accepted} accepted"
        );
    }

    #[test]
    fn buffers_outside_the_user_half_fault() {
        let mut s = sqe(Opcode::Read);
        s.fd = 0;
        s.addr = USER_ADDRESS_END - 4;
        s.len = 8;
        assert_eq!(decode(&s), Err(Errno::Fault));
        s.addr = u64::MAX - 2;
        assert_eq!(decode(&s), Err(Errno::Fault));
        s.addr = 0;
        assert_eq!(decode(&s), Err(Errno::Fault));
        s.len = 0;
        assert!(decode(&s).is_ok(), "a zero-length buffer is never touched");
    }

    #[test]
    fn huge_reads_are_clamped() {
        let mut s = sqe(Opcode::Read);
        s.addr = 0x10000;
        s.len = u32::MAX;
        let Ok(Request::Read { buf, .. }) = decode(&s) else {
            panic!()
        };
        assert_eq!(buf.len, MAX_IO as usize);
    }

    #[test]
    fn negative_fds_are_badf_and_at_fdcwd_is_a_dirfd() {
        let mut s = sqe(Opcode::Close);
        s.fd = -1;
        assert_eq!(decode(&s), Err(Errno::BadF));
        let mut s = sqe(Opcode::Openat);
        s.fd = AT_FDCWD;
        s.addr = 0x1000;
        s.len = 1;
        assert!(matches!(
            decode(&s),
            Ok(Request::Openat {
                dir: DirFd::Cwd,
                ..
            })
        ));
        s.len = PATH_MAX as u32;
        assert_eq!(decode(&s), Err(Errno::NameTooLong));
    }

    #[test]
    fn mmap_checks_flags_and_alignment() {
        let mut s = sqe(Opcode::Mmap);
        s.off = 5000;
        s.op_flags = PROT_READ | PROT_WRITE;
        s.aux = MAP_PRIVATE | MAP_ANONYMOUS;
        let Ok(Request::Mmap { len, .. }) = decode(&s) else {
            panic!()
        };
        assert_eq!(len, 8192);
        s.aux = MAP_PRIVATE;
        assert_eq!(decode(&s), Err(Errno::Inval));
        s.aux = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED;
        s.addr = 0x1001;
        assert_eq!(decode(&s), Err(Errno::Inval));
    }
}
