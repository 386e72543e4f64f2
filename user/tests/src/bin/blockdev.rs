// SPDX-License-Identifier: MIT OR Apache-2.0
//! `/dev/vda` from a program: the host's pattern read back through the block cache and
//! with O_DIRECT, a pattern written at odd offsets and lengths (read-modify-write) that
//! xtask then checks in the image, and the error edges (misaligned O_DIRECT, past the end).
//! Then zero-copy O_DIRECT (the device works on this program's pinned pages): 1 MiB
//! written and read back, buffers at odd addresses (allowed: only offset and length must
//! be whole sectors), a buffer running into an unmapped page (EFAULT, nothing written),
//! a read into read-only memory (EFAULT), munmap of a buffer a direct read is filling
//! (EBUSY until the read completed), and a child that exits with direct reads in flight.
//!
//! Layout (shared with xtask/src/disk.rs): the host's pattern `H` is at 1 MiB (1 MiB
//! long); this program writes pattern `U` at 3 MiB (256 KiB) and scratch data from 8 MiB
//! on (which xtask does not check).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use common::{Outcome, ctx, expect_eq, report};
use libc_shim::abi::{Errno, Opcode, OpenFlags, Sqe};
use libc_shim::sys::{self, ExitStatus};
use libc_shim::{Ring, RingOptions};

libc_shim::entry!(main);

const HOST_OFFSET: u64 = 1 << 20;
const USER_OFFSET: u64 = 3 << 20;
const USER_LEN: usize = 256 << 10;

/// As in tests/kernel/src/disk.rs and xtask/src/disk.rs.
fn pattern_byte(tag: u8, sector: u64, i: usize) -> u8 {
    let x = sector
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(i as u64 * 0x85eb)
        .wrapping_add(u64::from(tag) * 0xc2b2_ae35);
    (x ^ (x >> 13) ^ (x >> 29)) as u8
}

/// `len` bytes of pattern `tag` starting at byte `offset` of the disk.
fn pattern(tag: u8, offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|k| {
            let at = offset + k;
            pattern_byte(tag, at / 512, (at % 512) as usize)
        })
        .collect()
}

fn first_difference(got: &[u8], want: &[u8]) -> Option<usize> {
    got.iter().zip(want).position(|(a, b)| a != b)
}

fn run() -> Outcome {
    let fd = ctx(
        "open /dev/vda",
        sys::open("/dev/vda", OpenFlags::READ_WRITE, 0),
    )?;
    let st = ctx("fstat", sys::fstat(fd))?;
    expect_eq("file type", st.st_mode & 0o170000, 0o060000)?;
    expect_eq("size", st.st_size, 64 << 20)?;

    // The host's pattern, in reads of odd sizes at odd offsets (through the cache).
    let mut at = HOST_OFFSET + 3;
    for len in [1usize, 511, 4096, 5000, 65536, 100] {
        let mut buf = vec![0u8; len];
        let n = ctx("pread", sys::pread(fd, &mut buf, at))?;
        expect_eq("pread count", n, len)?;
        if let Some(i) = first_difference(&buf, &pattern(b'H', at, len)) {
            return Err(format!("host pattern wrong at byte {}", at + i as u64));
        }
        at += len as u64 + 7;
    }

    // Our pattern, written in pieces that straddle sectors and cache blocks.
    let data = pattern(b'U', USER_OFFSET, USER_LEN);
    let mut written = 0;
    for piece in [1usize, 700, 4095, 4097, 30_000].iter().cycle() {
        if written == USER_LEN {
            break;
        }
        let n = (*piece).min(USER_LEN - written);
        let got = ctx(
            "pwrite",
            sys::pwrite(
                fd,
                &data[written..written + n],
                USER_OFFSET + written as u64,
            ),
        )?;
        expect_eq("pwrite count", got, n)?;
        written += n;
    }
    let mut back = vec![0u8; USER_LEN];
    expect_eq(
        "read back",
        ctx("pread", sys::pread(fd, &mut back, USER_OFFSET))?,
        USER_LEN,
    )?;
    if let Some(i) = first_difference(&back, &data) {
        return Err(format!("written pattern reads back wrong at byte {i}"));
    }

    // The end of the device: a read there is end of file, a write there has no space.
    let end = 64u64 << 20;
    expect_eq(
        "read at the end",
        sys::pread(fd, &mut [0u8; 512], end),
        Ok(0),
    )?;
    expect_eq(
        "short read across the end",
        sys::pread(fd, &mut [0u8; 1024], end - 512),
        Ok(512),
    )?;
    expect_eq(
        "write at the end",
        sys::pwrite(fd, &[0u8; 512], end),
        Err(Errno::NoSpc),
    )?;
    ctx("close", sys::close(fd))?;

    // O_DIRECT: straight to the device, whole sectors only.
    let direct = ctx(
        "open O_DIRECT",
        sys::open("/dev/vda", OpenFlags::READ_WRITE | OpenFlags::DIRECT, 0),
    )?;
    let mut sector = vec![0u8; 4096];
    expect_eq(
        "direct read",
        sys::pread(direct, &mut sector, USER_OFFSET),
        Ok(4096),
    )?;
    if first_difference(&sector, &data[..4096]).is_some() {
        return Err("O_DIRECT read does not see the written data".into());
    }
    expect_eq(
        "misaligned direct read",
        sys::pread(direct, &mut sector[..100], USER_OFFSET),
        Err(Errno::Inval),
    )?;
    expect_eq(
        "direct read at an odd offset",
        sys::pread(direct, &mut sector, USER_OFFSET + 1),
        Err(Errno::Inval),
    )?;
    direct_zero_copy(direct)?;
    ctx("close", sys::close(direct))?;
    Ok(())
}

const MIB: usize = 1 << 20;
const SCRATCH: u64 = 8 << 20;

/// One trap-door `Pread`/`Pwrite` on raw user addresses.
fn raw_io(op: Opcode, fd: i32, addr: usize, len: usize, off: u64) -> Result<u64, Errno> {
    let mut s = Sqe::new(op);
    s.fd = fd;
    s.addr = addr as u64;
    s.len = len as u32;
    s.off = off;
    // SAFETY: every caller passes memory this program mapped and owns (or, on purpose,
    // an unmapped or read-only range the kernel must refuse); nothing else uses it.
    sys::check(unsafe { sys::trap(&s) })
}

fn direct_zero_copy(fd: i32) -> Outcome {
    // 1 MiB out and back in, at different odd (unaligned) user addresses.
    let data = pattern(b'Z', SCRATCH, MIB + 1);
    expect_eq(
        "1 MiB direct write from an odd address",
        sys::pwrite(fd, &data[1..], SCRATCH),
        Ok(MIB),
    )?;
    let mut back = vec![0u8; MIB + 3];
    expect_eq(
        "1 MiB direct read to an odd address",
        sys::pread(fd, &mut back[3..], SCRATCH),
        Ok(MIB),
    )?;
    if let Some(i) = first_difference(&back[3..], &data[1..]) {
        return Err(format!("direct 1 MiB reads back wrong at byte {i}"));
    }
    let mut cached = vec![0u8; 4096];
    let plain = ctx("open", sys::open("/dev/vda", OpenFlags::READ_WRITE, 0))?;
    expect_eq(
        "cached read",
        sys::pread(plain, &mut cached, SCRATCH),
        Ok(4096),
    )?;
    ctx("close", sys::close(plain))?;
    if first_difference(&cached, &data[1..4097]).is_some() {
        return Err("the cache does not see the direct write".into());
    }
    expect_eq(
        "direct read of a partial sector",
        sys::pread(fd, &mut back[..700], SCRATCH),
        Err(Errno::Inval),
    )?;

    // A buffer running into an unmapped page: EFAULT, and nothing reaches the disk.
    let two = ctx("mmap", sys::mmap_anonymous(8192))?;
    ctx("munmap", sys::munmap(two + 4096, 4096))?;
    expect_eq(
        "direct write over a hole",
        raw_io(Opcode::Pwrite, fd, two, 8192, SCRATCH),
        Err(Errno::Fault),
    )?;
    expect_eq(
        "direct read over a hole",
        raw_io(Opcode::Pread, fd, two, 8192, SCRATCH),
        Err(Errno::Fault),
    )?;
    expect_eq(
        "direct read back",
        sys::pread(fd, &mut back[..8192], SCRATCH),
        Ok(8192),
    )?;
    if first_difference(&back[..8192], &data[1..8193]).is_some() {
        return Err("a faulting direct write changed the disk".into());
    }
    // The device would store into read-only memory: EFAULT.
    ctx(
        "mprotect",
        sys::mprotect(two, 4096, libc_shim::abi::ring::PROT_READ),
    )?;
    expect_eq(
        "direct read into read-only memory",
        raw_io(Opcode::Pread, fd, two, 4096, SCRATCH),
        Err(Errno::Fault),
    )?;
    ctx("munmap", sys::munmap(two, 4096))?;

    // munmap of a buffer a direct read is filling: EBUSY while it is in flight, then fine.
    let mut ring = ctx("ring", Ring::setup(RingOptions::new(8)))?;
    let mut busy = 0;
    for round in 0..4u64 {
        let buf = ctx("mmap", sys::mmap_anonymous(MIB))?;
        let mut s = Sqe::new(Opcode::Pread);
        s.fd = fd;
        s.addr = buf as u64;
        s.len = MIB as u32;
        s.off = SCRATCH;
        s.user_data = round;
        // SAFETY: `buf` is this program's own mapping, unmapped only after the read was
        // reaped (the kernel refuses an earlier munmap: that is what is tested).
        if unsafe { ring.try_push(&s) }.is_err() {
            return Err("SQ full".into());
        }
        ctx("submit", ring.submit())?;
        match sys::munmap(buf, MIB) {
            Err(Errno::Busy) => busy += 1,
            Ok(()) => return Err("munmap freed a buffer with a direct read in flight".into()),
            Err(e) => return Err(format!("munmap in flight: {e}")),
        }
        let cqe = loop {
            if let Some((cqe, _)) = ring.try_reap() {
                break cqe;
            }
            ctx("wait", ring.submit_and_wait(1))?;
        };
        expect_eq("in-flight read", cqe.result(), Ok(MIB as u32))?;
        ctx("munmap after the read", sys::munmap(buf, MIB))?;
    }
    expect_eq("munmap refused while in flight", busy, 4)?;

    // A child exits with direct reads in flight; the kernel stays healthy.
    for _ in 0..2 {
        let pid = ctx(
            "spawn",
            sys::spawn(
                "/bin/tests/blockdev",
                &["blockdev", "exit-inflight"],
                &[],
                &[],
            ),
        )?;
        expect_eq(
            "child status",
            ctx("wait", sys::waitpid(pid))?,
            (pid, ExitStatus::Exited(7)),
        )?;
    }
    expect_eq(
        "direct read after",
        sys::pread(fd, &mut back[..MIB], SCRATCH),
        Ok(MIB),
    )?;
    if first_difference(&back[..MIB], &data[1..]).is_some() {
        return Err("direct read after the exits reads back wrong".into());
    }
    Ok(())
}

/// The child: eight 1 MiB direct reads submitted, then exit without reaping them.
fn exit_inflight() -> i32 {
    let Ok(fd) = sys::open("/dev/vda", OpenFlags::READ_WRITE | OpenFlags::DIRECT, 0) else {
        return 3;
    };
    let Ok(buf) = sys::mmap_anonymous(8 * MIB) else {
        return 4;
    };
    let Ok(mut ring) = Ring::setup(RingOptions::new(8)) else {
        return 5;
    };
    for i in 0..8 {
        let mut s = Sqe::new(Opcode::Pread);
        s.fd = fd;
        s.addr = (buf + i * MIB) as u64;
        s.len = MIB as u32;
        s.off = SCRATCH;
        // SAFETY: the process's own mapping, never unmapped; the process exits with the
        // reads in flight on purpose.
        if unsafe { ring.try_push(&s) }.is_err() {
            return 6;
        }
    }
    let _ = ring.submit();
    7
}

fn main(args: libc_shim::Args) -> i32 {
    if args.get(1) == Some("exit-inflight") {
        return exit_inflight();
    }
    report("blockdev", run())
}
