// SPDX-License-Identifier: MIT OR Apache-2.0
//! The boot archive: a reader for cpio "newc" archives (what `cpio -H newc` and the Linux
//! initramfs use), and `unpack` into a directory of the VFS.
//!
//! Format (all numbers 8 ASCII hex digits):
//!
//! ```text
//! "070701" (or "070702": same, plus a checksum of the data)
//! ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
//! name (namesize bytes, NUL included), zero padding so header + name is a multiple of 4
//! data (filesize bytes), zero padding to a multiple of 4
//! ... and last an entry named "TRAILER!!!"
//! ```
//!
//! Hard links share `ino`; the data is stored with one of them (the last, with GNU cpio)
//! and the others have size 0. Every malformation is an [`ArchiveError`] naming the entry
//! (its index, byte offset and, when readable, its name); nothing here panics on input.

use alloc::{string::String, vec::Vec};
use core::fmt;

use abi::{Errno, FileType, OpenFlags};
use hashbrown::HashMap;

use crate::{
    path::{NAME_MAX, PATH_MAX},
    proto::{SetAttr, TimeChange},
    vfs::{Vfs, Vnode},
};

const MAGIC: &[u8; 6] = b"070701";
const MAGIC_CRC: &[u8; 6] = b"070702";
const HEADER_LEN: usize = 110;
const TRAILER: &[u8] = b"TRAILER!!!";

/// What is wrong with an archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArchiveErrorKind {
    /// Fewer bytes left than a header needs.
    TruncatedHeader,
    /// The header does not start with `070701` or `070702`.
    BadMagic,
    /// A header field is not 8 hex digits; the field's name.
    BadField(&'static str),
    /// The name runs past the end of the archive.
    TruncatedName,
    /// The name is empty, or has no terminating NUL where `namesize` says.
    BadName,
    /// The data runs past the end of the archive.
    TruncatedData,
    /// `070702` checksum mismatch.
    BadChecksum,
    /// The archive ends without a `TRAILER!!!` entry.
    MissingTrailer,
    /// The path is absolute after cleaning, climbs out with `..`, or is too long.
    BadPath,
    /// The file type cannot be unpacked (devices, FIFOs, sockets) or is unknown.
    UnsupportedType(u32),
    /// A symlink's target is empty, too long or contains NUL.
    BadSymlink,
    /// The VFS refused the entry.
    Fs(Errno),
}

/// A malformed or unpackable archive, naming the entry at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveError {
    /// Index of the entry (0 = first).
    pub index: usize,
    /// Byte offset of the entry's header.
    pub offset: usize,
    /// The entry's name, if it could be read.
    pub name: Option<String>,
    /// What is wrong.
    pub kind: ArchiveErrorKind,
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cpio entry #{} at byte {}", self.index, self.offset)?;
        if let Some(name) = &self.name {
            write!(f, " ({name:?})")?;
        }
        f.write_str(": ")?;
        match &self.kind {
            ArchiveErrorKind::TruncatedHeader => f.write_str("header truncated"),
            ArchiveErrorKind::BadMagic => f.write_str("bad magic (not a newc archive)"),
            ArchiveErrorKind::BadField(field) => write!(f, "field {field} is not 8 hex digits"),
            ArchiveErrorKind::TruncatedName => f.write_str("name truncated"),
            ArchiveErrorKind::BadName => f.write_str("name is empty or not NUL-terminated"),
            ArchiveErrorKind::TruncatedData => f.write_str("data truncated"),
            ArchiveErrorKind::BadChecksum => f.write_str("checksum mismatch"),
            ArchiveErrorKind::MissingTrailer => f.write_str("archive ends without TRAILER!!!"),
            ArchiveErrorKind::BadPath => f.write_str("path escapes the root or is too long"),
            ArchiveErrorKind::UnsupportedType(mode) => {
                write!(f, "unsupported file type (mode {mode:o})")
            }
            ArchiveErrorKind::BadSymlink => {
                f.write_str("symlink target is empty, too long or has NUL")
            }
            ArchiveErrorKind::Fs(e) => write!(f, "{e}"),
        }
    }
}

impl core::error::Error for ArchiveError {}

/// One archive entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Index in the archive.
    pub index: usize,
    /// Byte offset of the header.
    pub offset: usize,
    /// The name as stored (without the NUL).
    pub name: &'a [u8],
    /// Inode number (links share it).
    pub ino: u32,
    /// Type and permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Link count.
    pub nlink: u32,
    /// Modification time, seconds since the epoch.
    pub mtime: u32,
    /// Device of the file (major, minor).
    pub dev: (u32, u32),
    /// Device number for device special files (major, minor).
    pub rdev: (u32, u32),
    /// The data: file contents or symlink target.
    pub data: &'a [u8],
}

/// Iterates the entries of an archive, stopping after `TRAILER!!!`.
pub struct Reader<'a> {
    archive: &'a [u8],
    pos: usize,
    index: usize,
    done: bool,
}

impl<'a> Reader<'a> {
    /// A reader over `archive`.
    pub fn new(archive: &'a [u8]) -> Reader<'a> {
        Reader {
            archive,
            pos: 0,
            index: 0,
            done: false,
        }
    }

    fn error(&self, name: Option<&[u8]>, kind: ArchiveErrorKind) -> ArchiveError {
        ArchiveError {
            index: self.index,
            offset: self.pos,
            name: name.map(|n| String::from_utf8_lossy(n).into_owned()),
            kind,
        }
    }

    fn parse(&self) -> Result<(Entry<'a>, usize), ArchiveError> {
        const FIELDS: [&str; 13] = [
            "c_ino",
            "c_mode",
            "c_uid",
            "c_gid",
            "c_nlink",
            "c_mtime",
            "c_filesize",
            "c_devmajor",
            "c_devminor",
            "c_rdevmajor",
            "c_rdevminor",
            "c_namesize",
            "c_check",
        ];
        let rest = &self.archive[self.pos..];
        if rest.len() < HEADER_LEN {
            return Err(self.error(None, ArchiveErrorKind::TruncatedHeader));
        }
        let with_crc = match &rest[..6] {
            m if m == MAGIC => false,
            m if m == MAGIC_CRC => true,
            _ => return Err(self.error(None, ArchiveErrorKind::BadMagic)),
        };
        let mut f = [0u32; 13];
        for (i, field) in f.iter_mut().enumerate() {
            let digits = &rest[6 + 8 * i..14 + 8 * i];
            *field = parse_hex(digits)
                .ok_or_else(|| self.error(None, ArchiveErrorKind::BadField(FIELDS[i])))?;
        }
        let [
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            filesize,
            devmajor,
            devminor,
            rdevmajor,
            rdevminor,
            namesize,
            check,
        ] = f;
        let namesize = namesize as usize;
        if namesize <= 1 {
            return Err(self.error(None, ArchiveErrorKind::BadName));
        }
        let name_end = HEADER_LEN
            .checked_add(namesize)
            .filter(|&e| e <= rest.len());
        let name_end = name_end.ok_or_else(|| self.error(None, ArchiveErrorKind::TruncatedName))?;
        let raw_name = &rest[HEADER_LEN..name_end];
        let name = &raw_name[..namesize - 1];
        if raw_name[namesize - 1] != 0 || name.contains(&0) {
            return Err(self.error(Some(name), ArchiveErrorKind::BadName));
        }
        // Padding after the name only matters when data follows: an archive may end right
        // after the trailer's name.
        let data_start = if filesize == 0 {
            name_end
        } else {
            name_end.next_multiple_of(4)
        };
        let data_end = data_start
            .checked_add(filesize as usize)
            .filter(|&e| e <= rest.len());
        let data_end =
            data_end.ok_or_else(|| self.error(Some(name), ArchiveErrorKind::TruncatedData))?;
        let data = &rest[data_start..data_end];
        if with_crc {
            let sum = data.iter().fold(0u32, |s, &b| s.wrapping_add(b as u32));
            if sum != check {
                return Err(self.error(Some(name), ArchiveErrorKind::BadChecksum));
            }
        }
        // The final padding may be missing at the very end of the archive.
        let next = data_end.next_multiple_of(4).min(rest.len());
        let entry = Entry {
            index: self.index,
            offset: self.pos,
            name,
            ino,
            mode,
            uid,
            gid,
            nlink,
            mtime,
            dev: (devmajor, devminor),
            rdev: (rdevmajor, rdevminor),
            data,
        };
        Ok((entry, next))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Result<Entry<'a>, ArchiveError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.pos >= self.archive.len() {
            self.done = true;
            return Some(Err(self.error(None, ArchiveErrorKind::MissingTrailer)));
        }
        match self.parse() {
            Ok((entry, next)) => {
                self.pos += next;
                self.index += 1;
                if entry.name == TRAILER {
                    self.done = true;
                    return None;
                }
                Some(Ok(entry))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn parse_hex(digits: &[u8]) -> Option<u32> {
    digits
        .iter()
        .try_fold(0u32, |acc, &d| Some(acc << 4 | (d as char).to_digit(16)?))
}

/// Cleans an entry name into a relative path: strips leading `/` and `./`, drops `.`
/// components; `None` if a `..` component or the length makes it unsafe. An empty result
/// means the root itself.
fn clean_path(name: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(name.len());
    for comp in name.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => return None,
            c if c.len() > NAME_MAX => return None,
            c => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    if out.len() >= PATH_MAX {
        None
    } else {
        Some(out)
    }
}

/// Writes newc archives (what xtask needs to build the boot archive from `user/` programs
/// and a root tree, with no external `cpio` tool).
///
/// Entries get inode numbers 1, 2, ... in order; `hard_link` reuses the target's number,
/// and, as GNU cpio does, a linked file's data is stored with its last name only.
#[derive(Debug, Default)]
pub struct ArchiveBuilder {
    entries: Vec<PendingEntry>,
}

#[derive(Debug)]
struct PendingEntry {
    name: Vec<u8>,
    ino: u32,
    mode: u32,
    mtime: u32,
    data: Vec<u8>,
}

impl ArchiveBuilder {
    /// An empty archive.
    pub fn new() -> ArchiveBuilder {
        ArchiveBuilder::default()
    }

    fn push(&mut self, path: &str, mode: u32, mtime: u32, data: &[u8]) -> u32 {
        let ino = self.entries.len() as u32 + 1;
        self.entries.push(PendingEntry {
            name: path.as_bytes().into(),
            ino,
            mode,
            mtime,
            data: data.into(),
        });
        ino
    }

    /// Adds a directory (`perm`: permission bits); returns its inode number.
    pub fn dir(&mut self, path: &str, perm: u32, mtime: u32) -> u32 {
        self.push(path, abi::stat::S_IFDIR | (perm & 0o7777), mtime, b"")
    }

    /// Adds a regular file; returns its inode number (for `hard_link`).
    ///
    /// # Panics
    /// If `data` is 4 GiB or more (the format's limit).
    pub fn file(&mut self, path: &str, perm: u32, mtime: u32, data: &[u8]) -> u32 {
        assert!(
            u32::try_from(data.len()).is_ok(),
            "cpio newc files are limited to 4 GiB"
        );
        self.push(path, abi::stat::S_IFREG | (perm & 0o7777), mtime, data)
    }

    /// Adds a symbolic link to `target`; returns its inode number.
    pub fn symlink(&mut self, path: &str, target: &str, mtime: u32) -> u32 {
        self.push(path, abi::stat::S_IFLNK | 0o777, mtime, target.as_bytes())
    }

    /// Adds another name for the regular file `ino` (as returned by `file`).
    ///
    /// # Panics
    /// If `ino` is not a regular file of this builder.
    pub fn hard_link(&mut self, path: &str, ino: u32) {
        let first = self
            .entries
            .iter()
            .find(|e| e.ino == ino && FileType::from_mode(e.mode) == Some(FileType::Regular))
            .expect("hard_link: not a regular file of this archive");
        let (mode, mtime) = (first.mode, first.mtime);
        self.entries.push(PendingEntry {
            name: path.as_bytes().into(),
            ino,
            mode,
            mtime,
            data: Vec::new(),
        });
    }

    /// The archive, with its trailer.
    pub fn finish(self) -> Vec<u8> {
        // Per inode: number of names, index of its last name, index of the entry with data.
        let mut inodes: HashMap<u32, (u32, usize, usize)> = HashMap::new();
        for (i, entry) in self.entries.iter().enumerate() {
            let slot = inodes.entry(entry.ino).or_insert((0, i, i));
            slot.0 += 1;
            slot.1 = i;
        }
        let mut out = Vec::new();
        for (i, entry) in self.entries.iter().enumerate() {
            let (names, last, with_data) = inodes[&entry.ino];
            let data: &[u8] = if i == last {
                &self.entries[with_data].data
            } else {
                &[]
            };
            let is_dir = FileType::from_mode(entry.mode) == Some(FileType::Directory);
            let nlink = if is_dir { 2 } else { names };
            write_entry(
                &mut out,
                &entry.name,
                entry.ino,
                entry.mode,
                nlink,
                entry.mtime,
                data,
            );
        }
        write_entry(&mut out, TRAILER, 0, 0, 1, 0, b"");
        out
    }
}

fn write_entry(
    out: &mut Vec<u8>,
    name: &[u8],
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    data: &[u8],
) {
    out.extend_from_slice(MAGIC);
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        mtime,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    for field in fields {
        for shift in (0..8).rev() {
            out.push(b"0123456789abcdef"[((field >> (shift * 4)) & 0xf) as usize]);
        }
    }
    out.extend_from_slice(name);
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// What `unpack` created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Directories created (existing ones are reused).
    pub directories: usize,
    /// Regular files created.
    pub files: usize,
    /// Symbolic links created.
    pub symlinks: usize,
    /// Hard links created.
    pub hard_links: usize,
    /// File data bytes written.
    pub bytes: u64,
}

/// Unpacks `archive` below directory `at`: directories, regular files (with hard links),
/// symlinks; modes and modification times are applied. Entries are created in archive
/// order, so parents must come first (as `find | cpio` produces them).
///
/// The whole archive is checked before anything is created, so a malformed archive
/// changes nothing; a VFS error while unpacking stops at that entry.
///
/// # Errors
/// The first malformed entry, or the entry the VFS refused.
pub async fn unpack(vfs: &Vfs, at: &Vnode, archive: &[u8]) -> Result<UnpackStats, ArchiveError> {
    let mut entries = Vec::new();
    for entry in Reader::new(archive) {
        let entry = entry?;
        let bad = |kind| ArchiveError {
            index: entry.index,
            offset: entry.offset,
            name: Some(String::from_utf8_lossy(entry.name).into_owned()),
            kind,
        };
        let path = clean_path(entry.name).ok_or_else(|| bad(ArchiveErrorKind::BadPath))?;
        match FileType::from_mode(entry.mode) {
            Some(FileType::Directory | FileType::Regular) => {}
            Some(FileType::Symlink) => {
                if entry.data.is_empty() || entry.data.len() >= PATH_MAX || entry.data.contains(&0)
                {
                    return Err(bad(ArchiveErrorKind::BadSymlink));
                }
            }
            _ => return Err(bad(ArchiveErrorKind::UnsupportedType(entry.mode))),
        }
        entries.push((entry, path));
    }

    let mut stats = UnpackStats::default();
    // Directory times are set last: creating entries inside a directory changes its mtime.
    let mut directory_times = Vec::new();
    let mut first_name: HashMap<(u32, u32, u32), Vec<u8>> = HashMap::new();
    for (entry, path) in entries {
        let fail = |e: Errno| ArchiveError {
            index: entry.index,
            offset: entry.offset,
            name: Some(String::from_utf8_lossy(entry.name).into_owned()),
            kind: ArchiveErrorKind::Fs(e),
        };
        if path.is_empty() {
            continue; // "." : the root itself
        }
        let perm = entry.mode & abi::stat::PERMISSION_MASK;
        match FileType::from_mode(entry.mode) {
            Some(FileType::Directory) => match vfs.mkdir(at, &path, perm).await {
                Ok(()) => stats.directories += 1,
                Err(Errno::Exist) => {}
                Err(e) => return Err(fail(e)),
            },
            Some(FileType::Symlink) => {
                vfs.symlink(entry.data, at, &path).await.map_err(fail)?;
                stats.symlinks += 1;
                continue; // symlink times are not set (no lutimes yet)
            }
            _ => {
                let key = (entry.ino, entry.dev.0, entry.dev.1);
                let linked_to = if entry.nlink > 1 {
                    first_name.get(&key).cloned()
                } else {
                    None
                };
                let file = match linked_to {
                    Some(first) => {
                        vfs.link(at, &first, at, &path, false).await.map_err(fail)?;
                        stats.hard_links += 1;
                        let flags = OpenFlags::WRITE_ONLY;
                        vfs.open(at, &path, flags, 0).await.map_err(fail)?
                    }
                    None => {
                        let flags =
                            OpenFlags::WRITE_ONLY | OpenFlags::CREATE | OpenFlags::EXCLUSIVE;
                        let file = vfs.open(at, &path, flags, perm).await.map_err(fail)?;
                        stats.files += 1;
                        if entry.nlink > 1 {
                            first_name.insert(key, path.clone());
                        }
                        file
                    }
                };
                if !entry.data.is_empty() {
                    let (written, _) = vfs.pwrite(&file, entry.data.into(), 0).await;
                    let written = written.map_err(fail)?;
                    if written != entry.data.len() {
                        return Err(fail(Errno::Io));
                    }
                    stats.bytes += written as u64;
                }
            }
        }
        let target = vfs.lookup(at, &path, false).await.map_err(fail)?;
        let mtime = TimeChange::At(abi::Timespec {
            tv_sec: entry.mtime as i64,
            tv_nsec: 0,
        });
        let times = if target.kind() == FileType::Directory {
            directory_times.push((target.clone(), mtime));
            None
        } else {
            Some(mtime)
        };
        let set = SetAttr {
            perm: Some(perm),
            uid: Some(entry.uid),
            gid: Some(entry.gid),
            atime: times,
            mtime: times,
        };
        vfs.setattr(&target, set).await.map_err(fail)?;
    }
    for (dir, mtime) in directory_times.into_iter().rev() {
        let set = SetAttr {
            atime: Some(mtime),
            mtime: Some(mtime),
            ..SetAttr::default()
        };
        // The entry was checked and created above; a failure here is not the archive's.
        let _ = vfs.setattr(&dir, set).await;
    }
    Ok(stats)
}
