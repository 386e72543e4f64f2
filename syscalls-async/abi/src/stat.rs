// SPDX-License-Identifier: MIT OR Apache-2.0
//! File type and permission bits, `Timespec` and `Stat` (Linux x86_64 `struct stat`).
//!
//! `Stat` has the exact layout of the x86_64 `struct stat` (144 bytes) so that C code can
//! read it directly; the layout tests below pin every field offset.

/// Mask of the file type bits in a mode.
pub const S_IFMT: u32 = 0o170000;
/// Socket.
pub const S_IFSOCK: u32 = 0o140000;
/// Symbolic link.
pub const S_IFLNK: u32 = 0o120000;
/// Regular file.
pub const S_IFREG: u32 = 0o100000;
/// Block device.
pub const S_IFBLK: u32 = 0o060000;
/// Directory.
pub const S_IFDIR: u32 = 0o040000;
/// Character device.
pub const S_IFCHR: u32 = 0o020000;
/// FIFO.
pub const S_IFIFO: u32 = 0o010000;
/// Set-user-ID on execution.
pub const S_ISUID: u32 = 0o4000;
/// Set-group-ID on execution.
pub const S_ISGID: u32 = 0o2000;
/// Sticky bit.
pub const S_ISVTX: u32 = 0o1000;
/// Every permission bit, including set-id and sticky (`07777`).
pub const PERMISSION_MASK: u32 = 0o7777;

/// The type part of a file mode.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileType {
    /// FIFO (named pipe).
    Fifo = S_IFIFO,
    /// Character device.
    CharDevice = S_IFCHR,
    /// Directory.
    Directory = S_IFDIR,
    /// Block device.
    BlockDevice = S_IFBLK,
    /// Regular file.
    Regular = S_IFREG,
    /// Symbolic link.
    Symlink = S_IFLNK,
    /// Socket.
    Socket = S_IFSOCK,
}

impl FileType {
    /// The type encoded in a full mode, or `None` if the type bits are not a known type.
    pub const fn from_mode(mode: u32) -> Option<FileType> {
        match mode & S_IFMT {
            S_IFIFO => Some(FileType::Fifo),
            S_IFCHR => Some(FileType::CharDevice),
            S_IFDIR => Some(FileType::Directory),
            S_IFBLK => Some(FileType::BlockDevice),
            S_IFREG => Some(FileType::Regular),
            S_IFLNK => Some(FileType::Symlink),
            S_IFSOCK => Some(FileType::Socket),
            _ => None,
        }
    }

    /// The type bits (`S_IF*`).
    pub const fn mode_bits(self) -> u32 {
        self as u32
    }
}

/// A point in time or a duration: seconds and nanoseconds (`struct timespec`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timespec {
    /// Whole seconds.
    pub tv_sec: i64,
    /// Nanoseconds, `0..1_000_000_000`.
    pub tv_nsec: i64,
}

impl Timespec {
    /// The epoch.
    pub const ZERO: Timespec = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };

    /// A timespec from nanoseconds since the epoch.
    pub const fn from_nanos(ns: u64) -> Timespec {
        Timespec {
            tv_sec: (ns / 1_000_000_000) as i64,
            tv_nsec: (ns % 1_000_000_000) as i64,
        }
    }

    /// True if `tv_nsec` is within `0..1_000_000_000`.
    pub const fn is_normalized(&self) -> bool {
        self.tv_nsec >= 0 && self.tv_nsec < 1_000_000_000
    }
}

/// File status, laid out exactly as Linux x86_64's `struct stat`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Stat {
    /// Device (filesystem instance) id.
    pub st_dev: u64,
    /// Inode number, unique within `st_dev`.
    pub st_ino: u64,
    /// Number of hard links.
    pub st_nlink: u64,
    /// File type and permission bits.
    pub st_mode: u32,
    /// Owner user id.
    pub st_uid: u32,
    /// Owner group id.
    pub st_gid: u32,
    /// Padding (always zero).
    pub pad0: u32,
    /// Device number, for device special files.
    pub st_rdev: u64,
    /// Size in bytes.
    pub st_size: i64,
    /// Preferred I/O block size.
    pub st_blksize: i64,
    /// Allocated storage, in 512-byte units.
    pub st_blocks: i64,
    /// Last access time.
    pub st_atime: Timespec,
    /// Last modification time.
    pub st_mtime: Timespec,
    /// Last status change time.
    pub st_ctime: Timespec,
    /// Reserved (always zero).
    pub reserved: [i64; 3],
}

#[cfg(test)]
mod tests {
    use core::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn stat_layout_matches_linux_x86_64() {
        assert_eq!(size_of::<Stat>(), 144);
        assert_eq!(offset_of!(Stat, st_dev), 0);
        assert_eq!(offset_of!(Stat, st_ino), 8);
        assert_eq!(offset_of!(Stat, st_nlink), 16);
        assert_eq!(offset_of!(Stat, st_mode), 24);
        assert_eq!(offset_of!(Stat, st_uid), 28);
        assert_eq!(offset_of!(Stat, st_gid), 32);
        assert_eq!(offset_of!(Stat, st_rdev), 40);
        assert_eq!(offset_of!(Stat, st_size), 48);
        assert_eq!(offset_of!(Stat, st_blksize), 56);
        assert_eq!(offset_of!(Stat, st_blocks), 64);
        assert_eq!(offset_of!(Stat, st_atime), 72);
        assert_eq!(offset_of!(Stat, st_mtime), 88);
        assert_eq!(offset_of!(Stat, st_ctime), 104);
        assert_eq!(size_of::<Timespec>(), 16);
    }

    #[test]
    fn file_type_round_trips() {
        for t in [
            FileType::Fifo,
            FileType::CharDevice,
            FileType::Directory,
            FileType::BlockDevice,
            FileType::Regular,
            FileType::Symlink,
            FileType::Socket,
        ] {
            assert_eq!(FileType::from_mode(t.mode_bits() | 0o644), Some(t));
        }
        assert_eq!(FileType::from_mode(0o644), None);
        assert_eq!(FileType::from_mode(0o170000), None);
    }

    #[test]
    fn timespec_from_nanos() {
        let t = Timespec::from_nanos(3_000_000_007);
        assert_eq!(
            t,
            Timespec {
                tv_sec: 3,
                tv_nsec: 7
            }
        );
        assert!(t.is_normalized());
        assert!(
            !Timespec {
                tv_sec: 0,
                tv_nsec: -1
            }
            .is_normalized()
        );
    }
}
