// SPDX-License-Identifier: MIT OR Apache-2.0
//! Directory listing: `getdents64` records parsed into [`DirEntry`] values.

use alloc::string::String;
use alloc::vec::Vec;

use abi::dirent::{
    DIRENT_INO_OFFSET, DIRENT_NAME_OFFSET, DIRENT_RECLEN_OFFSET, DIRENT_TYPE_OFFSET,
};
use abi::{Errno, OpenFlags};

use crate::io::Fd;
use crate::sys;

/// One directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// `d_type` (`abi::DirentType` values).
    pub kind: u8,
    /// The name (lossy UTF-8).
    pub name: String,
}

/// Parses a buffer of `linux_dirent64` records; stops at the first malformed one.
pub fn parse(buf: &[u8], out: &mut Vec<DirEntry>) {
    let mut at = 0;
    while at + DIRENT_NAME_OFFSET <= buf.len() {
        let rec = &buf[at..];
        let reclen =
            u16::from_ne_bytes([rec[DIRENT_RECLEN_OFFSET], rec[DIRENT_RECLEN_OFFSET + 1]]) as usize;
        if reclen < DIRENT_NAME_OFFSET + 1 || reclen > rec.len() {
            return;
        }
        let mut ino = [0u8; 8];
        ino.copy_from_slice(&rec[DIRENT_INO_OFFSET..DIRENT_INO_OFFSET + 8]);
        let name_bytes = &rec[DIRENT_NAME_OFFSET..reclen];
        let name_len = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        out.push(DirEntry {
            ino: u64::from_ne_bytes(ino),
            kind: rec[DIRENT_TYPE_OFFSET],
            name: String::from_utf8_lossy(&name_bytes[..name_len]).into_owned(),
        });
        at += reclen;
    }
}

/// Every entry of the directory `path` (including `.` and `..` if the kernel lists them).
///
/// # Errors
/// From `open` or `getdents`.
pub fn read_dir(path: &str) -> Result<Vec<DirEntry>, Errno> {
    let dir = Fd::open(path, OpenFlags::DIRECTORY, 0)?;
    let mut buf = alloc::vec![0u8; 4096];
    let mut out = Vec::new();
    loop {
        let n = sys::getdents(dir.raw(), &mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        parse(&buf[..n], &mut out);
    }
}

/// The whole contents of the file at `path`.
///
/// # Errors
/// From `open` or `read`.
pub fn read_file(path: &str) -> Result<Vec<u8>, Errno> {
    let mut f = Fd::open(path, OpenFlags::READ_ONLY, 0)?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use abi::DirentType;
    use abi::dirent::encode_dirent;

    use super::*;

    #[test]
    fn parses_what_the_kernel_encodes() {
        let mut buf = [0u8; 128];
        let a = encode_dirent(&mut buf, 3, 1, DirentType::Directory, b".").unwrap();
        let b = encode_dirent(&mut buf[a..], 9, 2, DirentType::Regular, b"motd").unwrap();
        let mut out = Vec::new();
        parse(&buf[..a + b], &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].name, "motd");
        assert_eq!(out[1].ino, 9);
        assert_eq!(out[1].kind, DirentType::Regular as u8);
        assert_eq!(out[0].kind, DirentType::Directory as u8);
    }

    #[test]
    fn stops_at_a_truncated_record() {
        let mut buf = [0u8; 64];
        let a = encode_dirent(&mut buf, 3, 1, DirentType::Regular, b"abc").unwrap();
        let mut out = Vec::new();
        parse(&buf[..a - 1], &mut out);
        assert!(out.is_empty());
    }
}
