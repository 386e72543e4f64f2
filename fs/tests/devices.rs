// SPDX-License-Identifier: MIT OR Apache-2.0
//! devfs devices, and tmpfs at the edges: huge sparse files, the size limit, hard links
//! that outlive their first name.

mod common;

use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use abi::{Errno, FileType, OpenFlags};
use common::{TestEntropy, clock, inline};
use fs::{
    Vfs,
    devfs::{Devfs, makedev},
    platform::{ConsoleDevice, EntropySource},
    tmpfs::{PAGE_SIZE, Tmpfs},
};

#[derive(Default)]
struct RecordingConsole {
    out: Mutex<Vec<u8>>,
    input: Mutex<Vec<u8>>,
}

impl ConsoleDevice for RecordingConsole {
    fn write(&self, data: &[u8]) -> usize {
        self.out.lock().unwrap().extend_from_slice(data);
        data.len()
    }

    fn try_read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut input = self.input.lock().unwrap();
        if input.is_empty() {
            return Err(Errno::Again);
        }
        let n = buf.len().min(input.len());
        buf[..n].copy_from_slice(&input[..n]);
        input.drain(..n);
        Ok(n)
    }

    fn poll_read(&self, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Errno>> {
        // This console never wakes anyone: only used through the inline devfs.
        Poll::Ready(self.try_read(buf))
    }
}

fn dev_vfs(console: Arc<RecordingConsole>) -> Vfs {
    Vfs::new(Arc::new(Devfs::new(
        clock(),
        Arc::new(TestEntropy::new(99)),
        console,
    )))
}

#[test]
fn console_writes_reach_the_kernel_console_and_reads_take_its_input() {
    let console = Arc::new(RecordingConsole::default());
    let vfs = dev_vfs(console.clone());
    let root = vfs.root();
    let f = inline(vfs.open(&root, b"/console", OpenFlags::READ_WRITE, 0)).unwrap();
    assert_eq!(inline(vfs.write(&f, b"hello console\n".to_vec())).0, Ok(14));
    assert_eq!(&*console.out.lock().unwrap(), b"hello console\n");
    let (r, _) = inline(vfs.read(&f, Vec::new(), 10));
    assert_eq!(r, Err(Errno::Again), "no input yet");
    console.input.lock().unwrap().extend_from_slice(b"ls\n");
    let (r, buf) = inline(vfs.read(&f, Vec::new(), 10));
    assert_eq!((r, buf.as_slice()), (Ok(3), &b"ls\n"[..]));
    let st = inline(vfs.stat(&root, b"/console", true)).unwrap();
    assert_eq!((st.st_rdev, st.st_mode), (makedev(5, 1), 0o020600));
}

#[test]
fn random_comes_from_the_entropy_source() {
    let vfs = dev_vfs(Arc::default());
    let root = vfs.root();
    let f = inline(vfs.open(&root, b"/random", OpenFlags::READ_ONLY, 0)).unwrap();
    let (r, got) = inline(vfs.read(&f, Vec::new(), 64));
    assert_eq!(r, Ok(64));
    let mut want = [0u8; 64];
    TestEntropy::new(99).fill(&mut want);
    assert_eq!(got, want);
    let u = inline(vfs.open(&root, b"/urandom", OpenFlags::READ_ONLY, 0)).unwrap();
    let (_, more) = inline(vfs.read(&u, Vec::new(), 64));
    assert_ne!(more, got, "the stream goes on");
    assert_eq!(
        inline(vfs.stat(&root, b"/random", true)).unwrap().st_rdev,
        makedev(1, 8)
    );
}

#[test]
fn devfs_nodes_accept_chmod_and_refuse_names() {
    let vfs = dev_vfs(Arc::default());
    let root = vfs.root();
    inline(vfs.chmod(&root, b"/null", 0o600, true)).unwrap();
    assert_eq!(
        inline(vfs.stat(&root, b"/null", true)).unwrap().st_mode & 0o7777,
        0o600
    );
    assert_eq!(
        inline(vfs.rename(&root, b"/null", &root, b"/nil", false)),
        Err(Errno::Perm)
    );
    assert_eq!(inline(vfs.symlink(b"null", &root, b"/n")), Err(Errno::Perm));
    assert_eq!(
        inline(vfs.stat(&root, b"/null/x", true)),
        Err(Errno::NotDir)
    );
    assert_eq!(inline(vfs.readlink(&root, b"/null")), Err(Errno::Inval));
    let zero = inline(vfs.open(&root, b"/zero", OpenFlags::READ_WRITE, 0)).unwrap();
    assert_eq!(inline(vfs.write(&zero, vec![1; 10])).0, Ok(10));
    assert_eq!(inline(vfs.fsync(&zero)), Ok(()));
    assert_eq!(
        FileType::from_mode(inline(vfs.fstat(&zero)).unwrap().st_mode),
        Some(FileType::CharDevice)
    );
}

#[test]
fn huge_sparse_file_uses_only_written_pages() {
    let tmpfs = Arc::new(Tmpfs::new(clock()));
    let vfs = Vfs::new(tmpfs.clone());
    let root = vfs.root();
    let f = inline(vfs.open(
        &root,
        b"/big",
        OpenFlags::READ_WRITE | OpenFlags::CREATE,
        0o644,
    ))
    .unwrap();
    let far = 1u64 << 40; // 1 TiB
    assert_eq!(inline(vfs.pwrite(&f, b"end".to_vec(), far)).0, Ok(3));
    assert_eq!(inline(vfs.pwrite(&f, b"start".to_vec(), 0)).0, Ok(5));
    let st = inline(vfs.fstat(&f)).unwrap();
    assert_eq!(st.st_size as u64, far + 3);
    assert_eq!(
        st.st_blocks,
        2 * (PAGE_SIZE as i64 / 512),
        "two pages allocated"
    );
    assert_eq!(tmpfs.bytes_used(), 2 * PAGE_SIZE as u64);
    let (r, mid) = inline(vfs.pread(&f, Vec::new(), 8, far / 2));
    assert_eq!((r, mid), (Ok(8), vec![0; 8]));
    let (_, tail) = inline(vfs.pread(&f, Vec::new(), 10, far - 2));
    assert_eq!(tail, b"\0\0end");
    inline(vfs.ftruncate(&f, 4)).unwrap();
    assert_eq!(tmpfs.bytes_used(), PAGE_SIZE as u64);
    let (_, head) = inline(vfs.pread(&f, Vec::new(), 100, 0));
    assert_eq!(head, b"star");
    tmpfs.debug_check();
}

#[test]
fn size_limit_gives_enospc_and_a_failed_write_changes_nothing() {
    let tmpfs = Arc::new(Tmpfs::with_limit(clock(), 4 * PAGE_SIZE as u64));
    let vfs = Vfs::new(tmpfs.clone());
    let root = vfs.root();
    let f = inline(vfs.open(
        &root,
        b"/f",
        OpenFlags::READ_WRITE | OpenFlags::CREATE,
        0o644,
    ))
    .unwrap();
    assert_eq!(
        inline(vfs.write(&f, vec![1; 3 * PAGE_SIZE])).0,
        Ok(3 * PAGE_SIZE)
    );
    let before = inline(vfs.fstat(&f)).unwrap();
    assert_eq!(
        inline(vfs.write(&f, vec![2; 2 * PAGE_SIZE])).0,
        Err(Errno::NoSpc)
    );
    assert_eq!(inline(vfs.fstat(&f)).unwrap(), before);
    assert_eq!(
        inline(vfs.lseek(&f, 0, abi::Whence::Current)),
        Ok(3 * PAGE_SIZE as u64),
        "offset unchanged"
    );
    assert_eq!(inline(vfs.write(&f, vec![2; PAGE_SIZE])).0, Ok(PAGE_SIZE));
    inline(vfs.unlink(&root, b"/f")).unwrap();
    assert_eq!(tmpfs.bytes_used(), 4 * PAGE_SIZE as u64, "still open");
    drop(f);
    assert_eq!(tmpfs.bytes_used(), 0, "freed at the last close");
    tmpfs.debug_check();
}

#[test]
fn directory_with_many_entries() {
    let tmpfs = Arc::new(Tmpfs::new(clock()));
    let vfs = Vfs::new(tmpfs.clone());
    let root = vfs.root();
    const N: usize = 20_000;
    for i in 0..N {
        inline(vfs.open(
            &root,
            format!("/f{i}").as_bytes(),
            OpenFlags::CREATE | OpenFlags::WRITE_ONLY,
            0o644,
        ))
        .unwrap();
    }
    let dir = inline(vfs.open(&root, b"/", OpenFlags::DIRECTORY, 0)).unwrap();
    let mut buf = vec![0u8; 4096];
    let (mut records, mut calls) = (0, 0);
    loop {
        let n = inline(vfs.getdents(&dir, &mut buf)).unwrap();
        if n == 0 {
            break;
        }
        calls += 1;
        let mut at = 0;
        while at < n {
            let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            assert!(reclen >= 24 && reclen.is_multiple_of(8));
            at += reclen;
            records += 1;
        }
        assert_eq!(at, n);
    }
    assert_eq!(records, N + 2);
    assert!(calls > 1);
    assert_eq!(
        inline(vfs.stat(&root, b"/", true)).unwrap().st_size as usize,
        N
    );
    assert_eq!(
        inline(vfs.getdents(&dir, &mut [0u8; 10])),
        Ok(0),
        "at the end"
    );
    inline(vfs.lseek(&dir, 0, abi::Whence::Set)).unwrap();
    assert_eq!(
        inline(vfs.getdents(&dir, &mut [0u8; 10])),
        Err(Errno::Inval),
        "too small for one record"
    );
}
