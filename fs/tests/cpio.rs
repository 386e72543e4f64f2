// SPDX-License-Identifier: MIT OR Apache-2.0
//! The boot archive: cpio newc parsing and unpacking, including truncated, corrupt and
//! random archives (which must give an error naming the entry, never a panic, and must
//! leave the filesystem untouched).

mod common;

use std::sync::Arc;

use abi::{Errno, FileType, OpenFlags};
use common::{TestEntropy, clock, inline, tmpfs_vfs};
use fs::{
    Vfs,
    boot::{BootServices, mount_root},
    cpio::{ArchiveErrorKind, Reader, unpack},
    platform::NullConsole,
};
use proptest::prelude::*;

/// A newc archive writer for the tests.
#[derive(Default)]
struct Archive {
    bytes: Vec<u8>,
    crc: bool,
}

impl Archive {
    fn crc() -> Archive {
        Archive {
            bytes: Vec::new(),
            crc: true,
        }
    }

    #[allow(clippy::too_many_arguments)] // one argument per header field the tests vary
    fn entry_raw(
        &mut self,
        name: &[u8],
        ino: u32,
        mode: u32,
        nlink: u32,
        mtime: u32,
        data: &[u8],
        check: Option<u32>,
    ) -> &mut Self {
        let sum = check.unwrap_or_else(|| {
            if self.crc {
                data.iter().map(|&b| b as u32).sum()
            } else {
                0
            }
        });
        let magic = if self.crc { "070702" } else { "070701" };
        let fields = [
            ino,
            mode,
            0,
            0,
            nlink,
            mtime,
            data.len() as u32,
            0,
            1,
            0,
            0,
            name.len() as u32 + 1,
            sum,
        ];
        self.bytes.extend_from_slice(magic.as_bytes());
        for f in fields {
            self.bytes.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.bytes.extend_from_slice(name);
        self.bytes.push(0);
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
        self.bytes.extend_from_slice(data);
        while !self.bytes.len().is_multiple_of(4) {
            self.bytes.push(0);
        }
        self
    }

    fn dir(&mut self, name: &str, ino: u32) -> &mut Self {
        self.entry_raw(name.as_bytes(), ino, 0o040755, 2, 1000, b"", None)
    }

    fn file(&mut self, name: &str, ino: u32, data: &[u8]) -> &mut Self {
        self.entry_raw(name.as_bytes(), ino, 0o100640, 1, 2000, data, None)
    }

    fn symlink(&mut self, name: &str, ino: u32, target: &str) -> &mut Self {
        self.entry_raw(
            name.as_bytes(),
            ino,
            0o120777,
            1,
            3000,
            target.as_bytes(),
            None,
        )
    }

    fn trailer(&mut self) -> Vec<u8> {
        self.entry_raw(b"TRAILER!!!", 0, 0, 1, 0, b"", None);
        self.bytes.clone()
    }
}

fn sample() -> Vec<u8> {
    let mut a = Archive::default();
    a.dir(".", 1)
        .dir("bin", 2)
        .file("./bin/init", 3, b"\x7fELF init program")
        .dir("etc", 4)
        .file("etc/motd", 5, b"welcome to damselfly\n")
        .symlink("bin/sh", 6, "init")
        .entry_raw(b"etc/hosts", 7, 0o100644, 2, 2000, b"", None)
        .entry_raw(
            b"etc/hosts.bak",
            7,
            0o100644,
            2,
            2000,
            b"127.0.0.1 localhost\n",
            None,
        )
        .file("empty", 8, b"");
    a.trailer()
}

fn read_all(vfs: &Vfs, path: &str) -> Vec<u8> {
    let f = inline(vfs.open(&vfs.root(), path.as_bytes(), OpenFlags::READ_ONLY, 0)).unwrap();
    inline(vfs.read(&f, Vec::new(), 1 << 20)).1
}

fn tree_size(vfs: &Vfs) -> usize {
    let f = inline(vfs.open(&vfs.root(), b"/", OpenFlags::DIRECTORY, 0)).unwrap();
    inline(vfs.readdir(&f, 1000)).unwrap().len()
}

#[test]
fn reader_lists_entries_and_stops_at_the_trailer() {
    let archive = sample();
    let entries: Vec<_> = Reader::new(&archive).collect::<Result<_, _>>().unwrap();
    let names: Vec<&[u8]> = entries.iter().map(|e| e.name).collect();
    assert_eq!(
        names,
        [
            &b"."[..],
            b"bin",
            b"./bin/init",
            b"etc",
            b"etc/motd",
            b"bin/sh",
            b"etc/hosts",
            b"etc/hosts.bak",
            b"empty"
        ]
    );
    assert_eq!(entries[2].data, b"\x7fELF init program");
    assert_eq!(entries[5].mode, 0o120777);
    assert_eq!(entries[6].nlink, 2);
}

#[test]
fn unpack_creates_files_dirs_symlinks_and_hard_links_with_modes_and_times() {
    let (vfs, tmpfs) = tmpfs_vfs();
    let root = vfs.root();
    let stats = inline(unpack(&vfs, &root, &sample())).unwrap();
    assert_eq!(
        (
            stats.directories,
            stats.files,
            stats.symlinks,
            stats.hard_links
        ),
        (2, 4, 1, 1)
    );
    assert_eq!(read_all(&vfs, "/bin/init"), b"\x7fELF init program");
    assert_eq!(read_all(&vfs, "/bin/sh"), b"\x7fELF init program");
    assert_eq!(read_all(&vfs, "/etc/motd"), b"welcome to damselfly\n");
    assert_eq!(read_all(&vfs, "/etc/hosts"), b"127.0.0.1 localhost\n");
    let hosts = inline(vfs.stat(&root, b"/etc/hosts", true)).unwrap();
    let bak = inline(vfs.stat(&root, b"/etc/hosts.bak", true)).unwrap();
    assert_eq!((hosts.st_ino, hosts.st_nlink), (bak.st_ino, 2));
    let init = inline(vfs.stat(&root, b"/bin/init", true)).unwrap();
    assert_eq!(init.st_mode, 0o100640);
    assert_eq!(init.st_mtime.tv_sec, 2000);
    let bin = inline(vfs.stat(&root, b"/bin", true)).unwrap();
    assert_eq!((bin.st_mode, bin.st_mtime.tv_sec), (0o040755, 1000));
    assert_eq!(inline(vfs.readlink(&root, b"/bin/sh")).unwrap(), b"init");
    assert_eq!(
        FileType::from_mode(inline(vfs.stat(&root, b"/empty", true)).unwrap().st_mode),
        Some(FileType::Regular)
    );
    tmpfs.debug_check();
}

#[test]
fn archive_may_end_right_after_the_trailer_name() {
    let mut archive = Archive::default().file("f", 1, b"abc").trailer();
    while archive.last() == Some(&0) && !archive.ends_with(b"!!!\0") {
        archive.pop();
    }
    assert!(
        archive.ends_with(b"TRAILER!!!\0"),
        "no padding after the trailer"
    );
    let (vfs, _) = tmpfs_vfs();
    inline(unpack(&vfs, &vfs.root(), &archive)).unwrap();
    assert_eq!(read_all(&vfs, "/f"), b"abc");
    // One byte less and the trailer's name is cut: that is an error.
    archive.pop();
    let (vfs, _) = tmpfs_vfs();
    let err = inline(unpack(&vfs, &vfs.root(), &archive)).unwrap_err();
    assert_eq!(err.kind, ArchiveErrorKind::TruncatedName);
}

#[test]
fn crc_archives_are_checked() {
    let mut a = Archive::crc();
    a.file("ok", 1, b"data");
    let good = a.trailer();
    let (vfs, _) = tmpfs_vfs();
    inline(unpack(&vfs, &vfs.root(), &good)).unwrap();
    assert_eq!(read_all(&vfs, "/ok"), b"data");

    let mut a = Archive::crc();
    a.file("ok", 1, b"data")
        .entry_raw(b"bad", 2, 0o100644, 1, 0, b"data", Some(7));
    let err = inline(unpack(&vfs, &vfs.root(), &a.trailer())).unwrap_err();
    assert_eq!(
        (err.index, err.name.as_deref(), &err.kind),
        (1, Some("bad"), &ArchiveErrorKind::BadChecksum)
    );
}

#[test]
fn every_truncation_is_rejected_and_changes_nothing() {
    let archive = sample();
    // Only the zero padding after the trailer's name may be cut.
    let trailer = archive
        .windows(11)
        .position(|w| w == b"TRAILER!!!\0")
        .unwrap();
    let shortest_valid = trailer + 11;
    assert!(shortest_valid < archive.len());
    for len in shortest_valid..=archive.len() {
        let (vfs, _) = tmpfs_vfs();
        assert!(
            inline(unpack(&vfs, &vfs.root(), &archive[..len])).is_ok(),
            "length {len}"
        );
    }
    for len in 0..shortest_valid {
        let (vfs, _) = tmpfs_vfs();
        let err = inline(unpack(&vfs, &vfs.root(), &archive[..len])).unwrap_err();
        assert!(
            matches!(
                err.kind,
                ArchiveErrorKind::TruncatedHeader
                    | ArchiveErrorKind::TruncatedName
                    | ArchiveErrorKind::TruncatedData
                    | ArchiveErrorKind::MissingTrailer
                    | ArchiveErrorKind::BadName
            ),
            "length {len}: {err}"
        );
        assert_eq!(
            tree_size(&vfs),
            2,
            "length {len}: a rejected archive created something"
        );
    }
}

#[test]
fn corrupt_archives_name_the_entry() {
    let base = || {
        let mut a = Archive::default();
        a.dir("bin", 1).file("bin/init", 2, b"x");
        a
    };
    let long = "n".repeat(300);
    let cases: Vec<(Vec<u8>, usize, Option<&str>, ArchiveErrorKind)> = vec![
        (
            {
                let mut v = base().trailer();
                v[0] = b'1';
                v
            },
            0,
            None,
            ArchiveErrorKind::BadMagic,
        ),
        (
            {
                let mut v = base().trailer();
                let second = 112 + 4;
                v[second + 14] = b'G';
                v
            },
            1,
            None,
            ArchiveErrorKind::BadField("c_mode"),
        ),
        (
            {
                let mut a = base();
                a.entry_raw(b"", 3, 0o100644, 1, 0, b"", None);
                a.trailer()
            },
            2,
            None,
            ArchiveErrorKind::BadName,
        ),
        (
            {
                let mut a = base();
                a.file("../escape", 3, b"x");
                a.trailer()
            },
            2,
            Some("../escape"),
            ArchiveErrorKind::BadPath,
        ),
        (
            {
                let mut a = base();
                a.file("bin/../../x", 3, b"x");
                a.trailer()
            },
            2,
            Some("bin/../../x"),
            ArchiveErrorKind::BadPath,
        ),
        (
            {
                let mut a = base();
                a.entry_raw(b"dev/tty", 3, 0o020620, 1, 0, b"", None);
                a.trailer()
            },
            2,
            Some("dev/tty"),
            ArchiveErrorKind::UnsupportedType(0o020620),
        ),
        (
            {
                let mut a = base();
                a.symlink("bin/sh", 3, "");
                a.trailer()
            },
            2,
            Some("bin/sh"),
            ArchiveErrorKind::BadSymlink,
        ),
        (
            {
                let mut a = base();
                a.entry_raw(&[b'n'; 300], 3, 0o100644, 1, 0, b"", None);
                a.trailer()
            },
            2,
            Some(&*long),
            ArchiveErrorKind::BadPath,
        ),
        (
            base().bytes.clone(),
            2,
            None,
            ArchiveErrorKind::MissingTrailer,
        ),
        (
            {
                let mut a = base();
                a.file("bin/init", 3, b"dup");
                a.trailer()
            },
            2,
            Some("bin/init"),
            ArchiveErrorKind::Fs(Errno::Exist),
        ),
        (
            {
                let mut a = base();
                a.file("nodir/x", 3, b"x");
                a.trailer()
            },
            2,
            Some("nodir/x"),
            ArchiveErrorKind::Fs(Errno::NoEnt),
        ),
    ];
    for (i, (archive, index, name, kind)) in cases.into_iter().enumerate() {
        let (vfs, _) = tmpfs_vfs();
        let err = inline(unpack(&vfs, &vfs.root(), &archive)).unwrap_err();
        assert_eq!(
            (err.index, err.name.as_deref(), &err.kind),
            (index, name, &kind),
            "case {i}: {err}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&format!("entry #{index}")),
            "case {i}: {text}"
        );
        if let Some(name) = name.filter(|n| !n.is_empty() && n.len() < 100) {
            assert!(
                text.contains(name),
                "case {i}: message {text:?} does not name the entry"
            );
        }
    }
}

#[test]
fn name_without_nul_and_oversized_fields_are_errors() {
    let mut v = Archive::default().file("abc", 1, b"").trailer();
    v[110 + 3] = b'x'; // overwrite the NUL of "abc"
    let err = Reader::new(&v).next().unwrap().unwrap_err();
    assert_eq!(err.kind, ArchiveErrorKind::BadName);
    assert_eq!(err.name.as_deref(), Some("abc"));

    let mut v = Archive::default().file("abc", 1, b"").trailer();
    v[6 + 8 * 6..6 + 8 * 7].copy_from_slice(b"FFFFFFFF"); // filesize 4 GiB
    let err = Reader::new(&v).next().unwrap().unwrap_err();
    assert_eq!(err.kind, ArchiveErrorKind::TruncatedData);
    assert!(err.to_string().contains("\"abc\""));

    let mut v = Archive::default().file("abc", 1, b"").trailer();
    v[6 + 8 * 11..6 + 8 * 12].copy_from_slice(b"00000000"); // namesize 0
    assert_eq!(
        Reader::new(&v).next().unwrap().unwrap_err().kind,
        ArchiveErrorKind::BadName
    );
}

#[test]
fn boot_builds_root_with_dev() {
    let services = BootServices {
        clock: clock(),
        entropy: Arc::new(TestEntropy::new(7)),
        console: Arc::new(NullConsole),
    };
    let (vfs, stats) = inline(mount_root(&services, &sample())).unwrap();
    assert_eq!(stats.files, 4);
    assert_eq!(read_all(&vfs, "/etc/motd"), b"welcome to damselfly\n");
    let st = inline(vfs.stat(&vfs.root(), b"/dev/null", true)).unwrap();
    assert_eq!(FileType::from_mode(st.st_mode), Some(FileType::CharDevice));
    assert_ne!(
        st.st_dev,
        inline(vfs.stat(&vfs.root(), b"/etc", true)).unwrap().st_dev
    );

    let mut bad = sample();
    bad.truncate(bad.len() - 20);
    let err = inline(mount_root(&services, &bad)).err().unwrap();
    assert!(
        err.to_string().starts_with("boot archive: cpio entry #9"),
        "{err}"
    );
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let (vfs, _) = tmpfs_vfs();
        let _ = inline(unpack(&vfs, &vfs.root(), &bytes));
        for entry in Reader::new(&bytes) {
            let _ = entry;
        }
    }

    #[test]
    fn mutated_archives_never_panic_and_fail_cleanly(edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
        let mut archive = sample();
        for (at, byte) in edits {
            let i = at.index(archive.len());
            archive[i] = byte;
        }
        let (vfs, tmpfs) = tmpfs_vfs();
        match inline(unpack(&vfs, &vfs.root(), &archive)) {
            Ok(_) => {}
            Err(e) if !matches!(e.kind, ArchiveErrorKind::Fs(_)) => prop_assert_eq!(tree_size(&vfs), 2, "{}", e),
            Err(_) => {}
        }
        tmpfs.debug_check();
    }
}

#[test]
fn builder_round_trips_through_reader_and_unpack() {
    let mut b = fs::cpio::ArchiveBuilder::new();
    b.dir("bin", 0o755, 10);
    let init = b.file("bin/init", 0o755, 20, b"\x7fELF...");
    b.symlink("bin/sh", "init", 30);
    b.hard_link("bin/init2", init);
    b.dir("etc", 0o700, 40);
    b.file("etc/empty", 0o600, 50, b"");
    let archive = b.finish();

    let entries: Vec<_> = Reader::new(&archive).collect::<Result<_, _>>().unwrap();
    let summary: Vec<(&[u8], u32, u32, usize)> = entries
        .iter()
        .map(|e| (e.name, e.mode, e.nlink, e.data.len()))
        .collect();
    assert_eq!(
        summary,
        [
            (&b"bin"[..], 0o040755, 2, 0),
            (b"bin/init", 0o100755, 2, 0),
            (b"bin/sh", 0o120777, 1, 4),
            (b"bin/init2", 0o100755, 2, 7),
            (b"etc", 0o040700, 2, 0),
            (b"etc/empty", 0o100600, 1, 0),
        ]
    );
    assert_eq!(entries[1].ino, entries[3].ino);

    let (vfs, tmpfs) = tmpfs_vfs();
    let root = vfs.root();
    inline(unpack(&vfs, &root, &archive)).unwrap();
    assert_eq!(read_all(&vfs, "/bin/sh"), b"\x7fELF...");
    let a = inline(vfs.stat(&root, b"/bin/init", true)).unwrap();
    let b = inline(vfs.stat(&root, b"/bin/init2", true)).unwrap();
    assert_eq!((a.st_ino, a.st_nlink, a.st_size), (b.st_ino, 2, 7));
    assert_eq!(
        inline(vfs.stat(&root, b"/etc", true))
            .unwrap()
            .st_mtime
            .tv_sec,
        40
    );
    tmpfs.debug_check();
}

proptest! {
    #[test]
    fn built_archives_unpack_to_the_same_files(files in prop::collection::btree_map("[a-z]{1,8}", prop::collection::vec(any::<u8>(), 0..300), 0..20)) {
        let mut b = fs::cpio::ArchiveBuilder::new();
        b.dir("d", 0o755, 1);
        for (name, data) in &files {
            b.file(&format!("d/{name}"), 0o644, 2, data);
        }
        let archive = b.finish();
        let (vfs, _) = tmpfs_vfs();
        inline(unpack(&vfs, &vfs.root(), &archive)).unwrap();
        for (name, data) in &files {
            prop_assert_eq!(&read_all(&vfs, &format!("/d/{name}")), data);
        }
    }
}
