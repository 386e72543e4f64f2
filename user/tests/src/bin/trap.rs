// SPDX-License-Identifier: MIT OR Apache-2.0
//! Trap-door operations: both forms of the door (registers and memory; another form is
//! ENOSYS), nop, getpid, clock, file create/write/read/stat/unlink, dup, lseek,
//! mkdir/rename, bad fd (EBADF), unknown opcode (EINVAL).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use common::{Outcome, ctx, expect_eq, report};
use libc_shim::abi::{self as abi, Errno, OpenFlags, Sqe, Whence};
use libc_shim::sys;

libc_shim::entry!(main);

/// A `syscall` with `rax = form` and nothing else set: the raw result.
fn raw_trap(form: u64) -> i64 {
    let ret: i64;
    // SAFETY: the registers carry an all-zero entry (a `Nop`) or an unknown form; the
    // kernel reads no memory for either and clobbers only rax, rcx and r11.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") form => ret,
            in("rdi") 0u64,
            in("rsi") 0u64,
            in("rdx") 0u64,
            in("r10") 0u64,
            in("r8") 0u64,
            in("r9") 0u64,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

fn run() -> Outcome {
    ctx("nop", sys::nop())?;
    // Both forms of the trap door; any other form is ENOSYS.
    expect_eq("register-form nop", raw_trap(abi::ring::TRAP_REGISTERS), 0)?;
    let nop = Sqe::ZERO;
    // SAFETY: a Nop names no memory; the entry itself is a readable local.
    expect_eq("memory-form nop", unsafe { sys::trap_in_memory(&nop) }, 0)?;
    expect_eq("unknown form", sys::check(raw_trap(7)), Err(Errno::NoSys))?;
    let getpid = Sqe::new(abi::Opcode::Getpid);
    // SAFETY: Getpid names no memory; the entry itself is a readable local.
    let pid = unsafe { sys::trap_in_memory(&getpid) };
    expect_eq("getpid, memory form", pid, i64::from(sys::getpid()))?;
    if sys::getpid() <= 0 {
        return Err("getpid <= 0".into());
    }
    let t0 = sys::now_ns();
    let t1 = sys::now_ns();
    if t1 < t0 {
        return Err("monotonic clock went back".into());
    }
    let path = "/tmp-trap-test";
    let flags = OpenFlags::READ_WRITE
        .union(OpenFlags::CREATE)
        .union(OpenFlags::TRUNCATE);
    let fd = ctx("open", sys::open(path, flags, 0o644))?;
    expect_eq(
        "write",
        ctx("write", sys::write(fd, b"hello damselfly"))?,
        15,
    )?;
    expect_eq("lseek", ctx("lseek", sys::lseek(fd, 6, Whence::Set))?, 6)?;
    let mut buf = [0u8; 32];
    let n = ctx("read", sys::read(fd, &mut buf))?;
    expect_eq("read back", &buf[..n], b"damselfly".as_slice())?;
    let n = ctx("pread", sys::pread(fd, &mut buf, 0))?;
    expect_eq("pread", &buf[..5], b"hello".as_slice())?;
    let _ = n;
    let st = ctx("fstat", sys::fstat(fd))?;
    expect_eq("size", st.st_size, 15)?;
    let fd2 = ctx("dup", sys::dup(fd))?;
    ctx("close dup", sys::close(fd2))?;
    ctx("close", sys::close(fd))?;
    expect_eq("close twice", sys::close(fd), Err(Errno::BadF))?;
    expect_eq("read bad fd", sys::read(9999, &mut buf), Err(Errno::BadF))?;
    ctx("mkdir", sys::mkdir("/trap-dir", 0o755))?;
    ctx("rename", sys::rename(path, "/trap-dir/f"))?;
    expect_eq("stat old name", sys::stat(path).err(), Some(Errno::NoEnt))?;
    ctx("unlink", sys::unlink("/trap-dir/f"))?;
    ctx("rmdir", sys::rmdir("/trap-dir"))?;
    let mut bad = Sqe::ZERO;
    bad.opcode = 250;
    // SAFETY: the entry names no memory.
    let r = unsafe { sys::trap(&bad) };
    expect_eq("unknown opcode", sys::check(r), Err(Errno::Inval))?;
    Ok(())
}

fn main(_args: libc_shim::Args) -> i32 {
    report("trap", run())
}
