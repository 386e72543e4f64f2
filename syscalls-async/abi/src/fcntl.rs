// SPDX-License-Identifier: MIT OR Apache-2.0
//! Open flags, `*at` flags, seek whence and descriptor flags (Linux x86_64 values).
//!
//! `OpenFlags::from_bits` is the boundary check: bits we do not know are an error, not
//! silently ignored, so a later meaning for them cannot change what old programs get.

use crate::errno::Errno;

/// The flags argument of `open`/`openat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct OpenFlags(u32);

impl OpenFlags {
    /// Open for reading only (access mode 0).
    #[doc(alias = "O_RDONLY")]
    pub const READ_ONLY: OpenFlags = OpenFlags(0);
    /// Open for writing only.
    #[doc(alias = "O_WRONLY")]
    pub const WRITE_ONLY: OpenFlags = OpenFlags(0o1);
    /// Open for reading and writing.
    #[doc(alias = "O_RDWR")]
    pub const READ_WRITE: OpenFlags = OpenFlags(0o2);
    /// Mask of the access mode bits.
    #[doc(alias = "O_ACCMODE")]
    pub const ACCESS_MODE: OpenFlags = OpenFlags(0o3);
    /// Create the file if it does not exist.
    #[doc(alias = "O_CREAT")]
    pub const CREATE: OpenFlags = OpenFlags(0o100);
    /// With `CREATE`: fail with `EEXIST` if the name exists (symlinks are not followed).
    #[doc(alias = "O_EXCL")]
    pub const EXCLUSIVE: OpenFlags = OpenFlags(0o200);
    /// Do not make a terminal the controlling terminal.
    #[doc(alias = "O_NOCTTY")]
    pub const NO_CTTY: OpenFlags = OpenFlags(0o400);
    /// Truncate a regular file to length 0.
    #[doc(alias = "O_TRUNC")]
    pub const TRUNCATE: OpenFlags = OpenFlags(0o1000);
    /// Every write goes to the end of the file.
    #[doc(alias = "O_APPEND")]
    pub const APPEND: OpenFlags = OpenFlags(0o2000);
    /// Non-blocking I/O.
    #[doc(alias = "O_NONBLOCK")]
    pub const NON_BLOCK: OpenFlags = OpenFlags(0o4000);
    /// Synchronised data writes.
    #[doc(alias = "O_DSYNC")]
    pub const DSYNC: OpenFlags = OpenFlags(0o10000);
    /// Bypass caches where possible.
    #[doc(alias = "O_DIRECT")]
    pub const DIRECT: OpenFlags = OpenFlags(0o40000);
    /// Accepted and ignored: offsets are always 64-bit.
    #[doc(alias = "O_LARGEFILE")]
    pub const LARGE_FILE: OpenFlags = OpenFlags(0o100000);
    /// Fail with `ENOTDIR` unless the path names a directory.
    #[doc(alias = "O_DIRECTORY")]
    pub const DIRECTORY: OpenFlags = OpenFlags(0o200000);
    /// Fail with `ELOOP` if the last component is a symbolic link.
    #[doc(alias = "O_NOFOLLOW")]
    pub const NO_FOLLOW: OpenFlags = OpenFlags(0o400000);
    /// Do not update the access time.
    #[doc(alias = "O_NOATIME")]
    pub const NO_ATIME: OpenFlags = OpenFlags(0o1000000);
    /// Set close-on-exec on the new descriptor.
    #[doc(alias = "O_CLOEXEC")]
    pub const CLOSE_ON_EXEC: OpenFlags = OpenFlags(0o2000000);
    /// Synchronised file writes (includes `DSYNC`).
    #[doc(alias = "O_SYNC")]
    pub const SYNC: OpenFlags = OpenFlags(0o4010000);
    /// A descriptor for the path only, no I/O.
    #[doc(alias = "O_PATH")]
    pub const PATH: OpenFlags = OpenFlags(0o10000000);

    /// Every bit we define.
    pub const ALL: OpenFlags = OpenFlags(
        0o3 | 0o100
            | 0o200
            | 0o400
            | 0o1000
            | 0o2000
            | 0o4000
            | 0o10000
            | 0o40000
            | 0o100000
            | 0o200000
            | 0o400000
            | 0o1000000
            | 0o2000000
            | 0o4010000
            | 0o10000000,
    );

    /// Validates raw flags from user space.
    ///
    /// # Errors
    /// `Inval` if an unknown bit is set or the access mode is 3 (neither read, write nor both).
    pub const fn from_bits(bits: u32) -> Result<OpenFlags, Errno> {
        if bits & !Self::ALL.0 != 0 || bits & 0o3 == 0o3 {
            return Err(Errno::Inval);
        }
        Ok(OpenFlags(bits))
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// True if every bit of `other` is set in `self` (`READ_ONLY`, being 0, is always
    /// contained: use [`OpenFlags::is_readable`] for access checks).
    pub const fn contains(self, other: OpenFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two flag sets.
    pub const fn union(self, other: OpenFlags) -> OpenFlags {
        OpenFlags(self.0 | other.0)
    }

    /// `self` without the bits of `other`.
    pub const fn difference(self, other: OpenFlags) -> OpenFlags {
        OpenFlags(self.0 & !other.0)
    }

    /// True if the access mode allows reading.
    pub const fn is_readable(self) -> bool {
        let mode = self.0 & 0o3;
        mode == 0 || mode == 0o2
    }

    /// True if the access mode allows writing.
    pub const fn is_writable(self) -> bool {
        let mode = self.0 & 0o3;
        mode == 0o1 || mode == 0o2
    }
}

impl core::ops::BitOr for OpenFlags {
    type Output = OpenFlags;
    fn bitor(self, rhs: OpenFlags) -> OpenFlags {
        self.union(rhs)
    }
}

/// `openat`'s directory argument meaning "the current working directory".
pub const AT_FDCWD: i32 = -100;
/// `*at` flag: do not follow a symbolic link in the last component.
pub const AT_SYMLINK_NOFOLLOW: u32 = 0x100;
/// `unlinkat` flag: remove a directory (like `rmdir`).
pub const AT_REMOVEDIR: u32 = 0x200;
/// `linkat` flag: follow a symbolic link in the last component of the source.
pub const AT_SYMLINK_FOLLOW: u32 = 0x400;
/// `*at` flag: an empty path means the directory descriptor itself.
pub const AT_EMPTY_PATH: u32 = 0x1000;

/// `renameat2` flag: fail with `EEXIST` instead of replacing the target.
pub const RENAME_NOREPLACE: u32 = 1;
/// `renameat2` flag: atomically swap the two names.
pub const RENAME_EXCHANGE: u32 = 2;

/// Descriptor flag (`F_GETFD`/`F_SETFD`): close the descriptor on `exec`.
pub const FD_CLOEXEC: u32 = 1;

/// `utimensat` nanosecond value meaning "set to the current time".
pub const UTIME_NOW: i64 = (1 << 30) - 1;
/// `utimensat` nanosecond value meaning "leave this time unchanged".
pub const UTIME_OMIT: i64 = (1 << 30) - 2;

/// The `whence` argument of `lseek`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Whence {
    /// The offset is absolute.
    #[doc(alias = "SEEK_SET")]
    Set = 0,
    /// The offset is relative to the current position.
    #[doc(alias = "SEEK_CUR")]
    Current = 1,
    /// The offset is relative to the end of the file.
    #[doc(alias = "SEEK_END")]
    End = 2,
    /// Seek to the next data at or after the offset.
    #[doc(alias = "SEEK_DATA")]
    Data = 3,
    /// Seek to the next hole at or after the offset.
    #[doc(alias = "SEEK_HOLE")]
    Hole = 4,
}

impl Whence {
    /// Validates a raw `whence`.
    ///
    /// # Errors
    /// `Inval` for any value other than 0 to 4.
    pub const fn from_u32(value: u32) -> Result<Whence, Errno> {
        match value {
            0 => Ok(Whence::Set),
            1 => Ok(Whence::Current),
            2 => Ok(Whence::End),
            3 => Ok(Whence::Data),
            4 => Ok(Whence::Hole),
            _ => Err(Errno::Inval),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_linux_x86_64() {
        assert_eq!(OpenFlags::CREATE.bits(), 0x40);
        assert_eq!(OpenFlags::EXCLUSIVE.bits(), 0x80);
        assert_eq!(OpenFlags::TRUNCATE.bits(), 0x200);
        assert_eq!(OpenFlags::APPEND.bits(), 0x400);
        assert_eq!(OpenFlags::DIRECTORY.bits(), 0x10000);
        assert_eq!(OpenFlags::NO_FOLLOW.bits(), 0x20000);
        assert_eq!(OpenFlags::CLOSE_ON_EXEC.bits(), 0x80000);
        assert_eq!(OpenFlags::PATH.bits(), 0x200000);
        assert_eq!(AT_FDCWD, -100);
    }

    #[test]
    fn from_bits_rejects_unknown_bits_and_access_mode_three() {
        assert_eq!(OpenFlags::from_bits(0x8000_0000), Err(Errno::Inval));
        assert_eq!(OpenFlags::from_bits(3), Err(Errno::Inval));
        assert_eq!(OpenFlags::from_bits(0o3 | 0o100), Err(Errno::Inval));
        let f = OpenFlags::from_bits(0o2 | 0o100 | 0o200).unwrap();
        assert!(f.contains(OpenFlags::CREATE | OpenFlags::EXCLUSIVE));
        assert!(f.is_readable() && f.is_writable());
    }

    #[test]
    fn access_mode_predicates() {
        assert!(OpenFlags::READ_ONLY.is_readable());
        assert!(!OpenFlags::READ_ONLY.is_writable());
        assert!(!OpenFlags::WRITE_ONLY.is_readable());
        assert!(OpenFlags::WRITE_ONLY.is_writable());
    }

    #[test]
    fn whence_validation() {
        assert_eq!(Whence::from_u32(2), Ok(Whence::End));
        assert_eq!(Whence::from_u32(5), Err(Errno::Inval));
    }
}
