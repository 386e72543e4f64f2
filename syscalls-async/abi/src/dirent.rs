// SPDX-License-Identifier: MIT OR Apache-2.0
//! Directory entry records as `getdents64` returns them (`struct linux_dirent64`).
//!
//! A record is a 19-byte header (`d_ino: u64`, `d_off: i64`, `d_reclen: u16`,
//! `d_type: u8`), the name, a NUL, and zero padding up to a multiple of 8 bytes.
//! `d_off` is the opaque cookie to resume reading after this entry.

use crate::stat::FileType;

/// Offset of `d_ino` in a record.
pub const DIRENT_INO_OFFSET: usize = 0;
/// Offset of `d_off` in a record.
pub const DIRENT_OFF_OFFSET: usize = 8;
/// Offset of `d_reclen` in a record.
pub const DIRENT_RECLEN_OFFSET: usize = 16;
/// Offset of `d_type` in a record.
pub const DIRENT_TYPE_OFFSET: usize = 18;
/// Offset of `d_name` in a record (the header size).
pub const DIRENT_NAME_OFFSET: usize = 19;
/// Records are padded to this alignment.
pub const DIRENT_ALIGN: usize = 8;

/// The `d_type` of a directory entry.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DirentType {
    /// Type not known.
    #[doc(alias = "DT_UNKNOWN")]
    Unknown = 0,
    /// FIFO.
    #[doc(alias = "DT_FIFO")]
    Fifo = 1,
    /// Character device.
    #[doc(alias = "DT_CHR")]
    CharDevice = 2,
    /// Directory.
    #[doc(alias = "DT_DIR")]
    Directory = 4,
    /// Block device.
    #[doc(alias = "DT_BLK")]
    BlockDevice = 6,
    /// Regular file.
    #[doc(alias = "DT_REG")]
    Regular = 8,
    /// Symbolic link.
    #[doc(alias = "DT_LNK")]
    Symlink = 10,
    /// Socket.
    #[doc(alias = "DT_SOCK")]
    Socket = 12,
}

impl From<FileType> for DirentType {
    fn from(t: FileType) -> DirentType {
        match t {
            FileType::Fifo => DirentType::Fifo,
            FileType::CharDevice => DirentType::CharDevice,
            FileType::Directory => DirentType::Directory,
            FileType::BlockDevice => DirentType::BlockDevice,
            FileType::Regular => DirentType::Regular,
            FileType::Symlink => DirentType::Symlink,
            FileType::Socket => DirentType::Socket,
        }
    }
}

/// The length of the record for a name of `name_len` bytes (header, name, NUL, padding).
pub const fn dirent_record_len(name_len: usize) -> usize {
    (DIRENT_NAME_OFFSET + name_len + 1).div_ceil(DIRENT_ALIGN) * DIRENT_ALIGN
}

/// Writes one record at the start of `out` and returns its length, or `None` if `out` is
/// too short (nothing is written then) or the record would not fit `d_reclen`.
pub fn encode_dirent(
    out: &mut [u8],
    ino: u64,
    next_cookie: i64,
    kind: DirentType,
    name: &[u8],
) -> Option<usize> {
    let len = dirent_record_len(name.len());
    if len > out.len() || len > u16::MAX as usize {
        return None;
    }
    let rec = &mut out[..len];
    rec[DIRENT_INO_OFFSET..DIRENT_INO_OFFSET + 8].copy_from_slice(&ino.to_ne_bytes());
    rec[DIRENT_OFF_OFFSET..DIRENT_OFF_OFFSET + 8].copy_from_slice(&next_cookie.to_ne_bytes());
    rec[DIRENT_RECLEN_OFFSET..DIRENT_RECLEN_OFFSET + 2]
        .copy_from_slice(&(len as u16).to_ne_bytes());
    rec[DIRENT_TYPE_OFFSET] = kind as u8;
    rec[DIRENT_NAME_OFFSET..DIRENT_NAME_OFFSET + name.len()].copy_from_slice(name);
    rec[DIRENT_NAME_OFFSET + name.len()..].fill(0);
    Some(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lengths_are_aligned() {
        assert_eq!(dirent_record_len(0), 24);
        assert_eq!(dirent_record_len(1), 24);
        assert_eq!(dirent_record_len(4), 24);
        assert_eq!(dirent_record_len(5), 32);
        assert_eq!(dirent_record_len(255), 280);
    }

    #[test]
    fn encode_writes_linux_dirent64() {
        let mut buf = [0xffu8; 32];
        let n = encode_dirent(&mut buf, 7, 42, DirentType::Regular, b"hello").unwrap();
        assert_eq!(n, 32);
        assert_eq!(u64::from_ne_bytes(buf[0..8].try_into().unwrap()), 7);
        assert_eq!(i64::from_ne_bytes(buf[8..16].try_into().unwrap()), 42);
        assert_eq!(u16::from_ne_bytes(buf[16..18].try_into().unwrap()), 32);
        assert_eq!(buf[18], 8);
        assert_eq!(&buf[19..24], b"hello");
        assert!(buf[24..32].iter().all(|&b| b == 0));
    }

    #[test]
    fn encode_refuses_short_buffers_without_writing() {
        let mut buf = [0xaau8; 23];
        assert_eq!(
            encode_dirent(&mut buf, 1, 1, DirentType::Directory, b"x"),
            None
        );
        assert!(buf.iter().all(|&b| b == 0xaa));
    }

    #[test]
    fn dirent_type_values_match_linux() {
        assert_eq!(DirentType::from(FileType::Directory) as u8, 4);
        assert_eq!(DirentType::from(FileType::Symlink) as u8, 10);
        assert_eq!(DirentType::from(FileType::Regular) as u8, 8);
    }
}
