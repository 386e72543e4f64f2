// SPDX-License-Identifier: MIT OR Apache-2.0
//! `/dev/vda` from a program: the host's pattern read back through the block cache and
//! with O_DIRECT, a pattern written at odd offsets and lengths (read-modify-write) that
//! xtask then checks in the image, and the error edges (misaligned O_DIRECT, past the end).
//!
//! Layout (shared with xtask/src/disk.rs): the host's pattern `H` is at 1 MiB (1 MiB
//! long); this program writes pattern `U` at 3 MiB (256 KiB).
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use common::{Outcome, ctx, expect_eq, report};
use libc_shim::abi::{Errno, OpenFlags};
use libc_shim::sys;

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
    ctx("close", sys::close(direct))?;
    Ok(())
}

fn main(_args: libc_shim::Args) -> i32 {
    report("blockdev", run())
}
