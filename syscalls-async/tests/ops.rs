// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every opcode, through both doors: the trap door (`Process::perform`) and the ring
//! (`RingEnter` with one entry, waiting for its completion).

mod common;

use abi::{
    Errno, Opcode, OpenFlags, RingEnterFlags, Sqe,
    fcntl::{AT_FDCWD, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW},
    ring::{
        CLOCK_MONOTONIC, CLOCK_REALTIME, DUP_TO, FdMapEntry, GETPID_PARENT, MAP_ANONYMOUS,
        MAP_PRIVATE, PROT_READ, PROT_WRITE, SPAWN_FOREGROUND, TIMEOUT_ABS, WAIT_NOHANG,
    },
    stat::{S_IFDIR, S_IFIFO, S_IFMT, S_IFREG},
};
use common::*;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Door {
    Trap,
    /// The trap door with `Process::try_inline` first, as the kernel runs it.
    TrapInline,
    Ring,
}

struct T {
    w: World,
    door: Door,
    ring: Option<UserRing>,
    next_ud: u64,
}

const ERR: fn(Errno) -> i64 = Errno::to_syscall_result;

impl T {
    fn new(door: Door) -> T {
        let mut w = World::new();
        let ring = (door == Door::Ring).then(|| w.setup_ring(16, 0, 0, 0));
        T {
            w,
            door,
            ring,
            next_ud: 1000,
        }
    }

    /// Runs one Sqe through this test's door; returns the result.
    fn run(&mut self, mut s: Sqe) -> i64 {
        match self.door {
            Door::Trap => self.w.trap(s),
            Door::TrapInline => self.w.trap_inline(s).0,
            Door::Ring => {
                self.next_ud += 1;
                s.user_data = self.next_ud;
                let ring = self.ring.as_ref().unwrap();
                ring.push(s);
                let n = self.w.enter(1, 1, RingEnterFlags::GETEVENTS.bits(), 0);
                assert_eq!(n, 1, "one entry consumed");
                let c = self.ring.as_ref().unwrap().reap();
                assert_eq!(c.len(), 1, "one completion");
                assert_eq!(c[0].user_data, self.next_ud);
                c[0].res as i64
            }
        }
    }

    fn path_sqe(&self, op: Opcode, dirfd: i32, path: &[u8]) -> Sqe {
        let mut s = Sqe::new(op);
        s.fd = dirfd;
        s.addr = self.w.put(path);
        s.len = path.len() as u32;
        s
    }

    fn open(&mut self, path: &[u8], flags: OpenFlags, mode: u64) -> i64 {
        let mut s = self.path_sqe(Opcode::Openat, AT_FDCWD, path);
        s.op_flags = flags.bits();
        s.off = mode;
        self.run(s)
    }

    fn io(&mut self, op: Opcode, fd: i32, addr: u64, len: u32, off: u64) -> i64 {
        let mut s = Sqe::new(op);
        s.fd = fd;
        s.addr = addr;
        s.len = len;
        s.off = off;
        self.run(s)
    }

    fn write_str(&mut self, fd: i32, data: &[u8]) -> i64 {
        let a = self.w.put(data);
        self.io(Opcode::Write, fd, a, data.len() as u32, 0)
    }

    fn read_vec(&mut self, fd: i32, len: u32) -> Result<Vec<u8>, i64> {
        let a = self.w.alloc(len as usize);
        let n = self.io(Opcode::Read, fd, a, len, 0);
        if n < 0 {
            Err(n)
        } else {
            Ok(self.w.memory.read(a, n as usize))
        }
    }

    fn close(&mut self, fd: i32) -> i64 {
        let mut s = Sqe::new(Opcode::Close);
        s.fd = fd;
        self.run(s)
    }

    fn stat_mode(&mut self, path: &[u8], flags: u32) -> Result<(u32, i64), i64> {
        let out = self.w.alloc(144);
        let mut s = self.path_sqe(Opcode::Statat, AT_FDCWD, path);
        s.addr2 = out;
        s.op_flags = flags;
        let r = self.run(s);
        if r < 0 {
            return Err(r);
        }
        let b = self.w.memory.read(out, 144);
        let mode = u32::from_le_bytes(b[24..28].try_into().unwrap());
        let size = i64::from_le_bytes(b[48..56].try_into().unwrap());
        Ok((mode, size))
    }

    fn pipe(&mut self) -> (i32, i32) {
        let out = self.w.alloc(8);
        let mut s = Sqe::new(Opcode::Pipe);
        s.addr = out;
        assert_eq!(self.run(s), 0);
        (self.w.memory.read_i32(out), self.w.memory.read_i32(out + 4))
    }
}

fn both(f: impl Fn(&mut T)) {
    for door in [Door::Trap, Door::TrapInline, Door::Ring] {
        let mut t = T::new(door);
        f(&mut t);
    }
}

#[test]
fn files_open_write_read_seek_stat_close() {
    both(|t| {
        let rw = OpenFlags::READ_WRITE | OpenFlags::CREATE;
        let fd = t.open(b"/hello.txt", rw, 0o644);
        assert!(fd >= 0, "{:?}: {fd}", t.door);
        let fd = fd as i32;
        assert_eq!(t.write_str(fd, b"hello, world"), 12);
        // Lseek: back to 0, full value also written to addr2.
        let out = t.w.alloc(8);
        let mut s = Sqe::new(Opcode::Lseek);
        s.fd = fd;
        s.off = 7;
        s.addr2 = out;
        assert_eq!(t.run(s), 7);
        assert_eq!(t.w.memory.read_u64(out), 7);
        assert_eq!(t.read_vec(fd, 100).unwrap(), b"world");
        // Pread / Pwrite leave the offset alone.
        let a = t.w.alloc(5);
        assert_eq!(t.io(Opcode::Pread, fd, a, 5, 0), 5);
        assert_eq!(t.w.memory.read(a, 5), b"hello");
        let b = t.w.put(b"HELLO");
        assert_eq!(t.io(Opcode::Pwrite, fd, b, 5, 0), 5);
        assert_eq!(t.read_vec(fd, 100).unwrap(), b"", "offset still at the end");
        assert_eq!(t.io(Opcode::Pread, fd, a, 5, 0), 5);
        assert_eq!(t.w.memory.read(a, 5), b"HELLO");
        // Fstat and Statat.
        let st = t.w.alloc(144);
        let mut s = Sqe::new(Opcode::Fstat);
        s.fd = fd;
        s.addr = st;
        assert_eq!(t.run(s), 0);
        let b = t.w.memory.read(st, 144);
        assert_eq!(
            u32::from_le_bytes(b[24..28].try_into().unwrap()) & S_IFMT,
            S_IFREG
        );
        assert_eq!(i64::from_le_bytes(b[48..56].try_into().unwrap()), 12);
        let (mode, size) = t.stat_mode(b"/hello.txt", 0).unwrap();
        assert_eq!((mode & S_IFMT, mode & 0o777, size), (S_IFREG, 0o644, 12));
        assert_eq!(t.stat_mode(b"/nope", 0), Err(ERR(Errno::NoEnt)));
        assert_eq!(
            t.stat_mode(b"/hello.txt", AT_SYMLINK_NOFOLLOW).unwrap().0 & S_IFMT,
            S_IFREG
        );
        assert_eq!(t.close(fd), 0);
        assert_eq!(t.close(fd), ERR(Errno::BadF));
        // A read-only open cannot write.
        let ro = t.open(b"/hello.txt", OpenFlags::READ_ONLY, 0) as i32;
        assert_eq!(t.write_str(ro, b"x"), ERR(Errno::BadF));
        // An exclusive create of an existing name fails.
        assert_eq!(
            t.open(
                b"/hello.txt",
                OpenFlags::CREATE | OpenFlags::EXCLUSIVE | OpenFlags::WRITE_ONLY,
                0o600
            ),
            ERR(Errno::Exist)
        );
    });
}

#[test]
fn directories_mkdir_getdents_rename_unlink() {
    both(|t| {
        let mut s = t.path_sqe(Opcode::Mkdirat, AT_FDCWD, b"/d");
        s.off = 0o755;
        assert_eq!(t.run(s), 0);
        assert_eq!(t.run(s), ERR(Errno::Exist));
        for name in [&b"/d/a"[..], b"/d/b"] {
            let fd = t.open(name, OpenFlags::CREATE | OpenFlags::WRITE_ONLY, 0o600) as i32;
            assert_eq!(t.close(fd), 0);
        }
        assert_eq!(t.stat_mode(b"/d", 0).unwrap().0 & S_IFMT, S_IFDIR);
        // Getdents lists ., .., a, b.
        let dfd = t.open(b"/d", OpenFlags::DIRECTORY, 0) as i32;
        let buf = t.w.alloc(4096);
        let n = t.io(Opcode::Getdents, dfd, buf, 4096, 0);
        assert!(n > 0);
        let bytes = t.w.memory.read(buf, n as usize);
        let mut names = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let reclen = u16::from_le_bytes([bytes[at + 16], bytes[at + 17]]) as usize;
            let name: Vec<u8> = bytes[at + 19..at + reclen]
                .iter()
                .take_while(|&&b| b != 0)
                .copied()
                .collect();
            names.push(name);
            at += reclen;
        }
        names.sort();
        assert_eq!(
            names,
            vec![b".".to_vec(), b"..".to_vec(), b"a".to_vec(), b"b".to_vec()]
        );
        assert_eq!(
            t.io(Opcode::Getdents, dfd, buf, 4096, 0),
            0,
            "end of directory"
        );
        // Openat relative to a directory descriptor.
        let mut s = t.path_sqe(Opcode::Openat, dfd, b"a");
        s.op_flags = OpenFlags::READ_ONLY.bits();
        let fa = t.run(s);
        assert!(fa >= 0);
        t.close(fa as i32);
        // Renameat, including relative to a dirfd for the new name.
        let mut s = t.path_sqe(Opcode::Renameat, AT_FDCWD, b"/d/a");
        let new = t.w.put(b"c");
        s.off = dfd as i64 as u64;
        s.addr2 = new;
        s.aux = 1;
        assert_eq!(t.run(s), 0);
        assert!(t.stat_mode(b"/d/c", 0).is_ok());
        assert_eq!(t.stat_mode(b"/d/a", 0), Err(ERR(Errno::NoEnt)));
        // Unlinkat, then rmdir (AT_REMOVEDIR).
        let mut s = t.path_sqe(Opcode::Unlinkat, AT_FDCWD, b"/d");
        s.op_flags = AT_REMOVEDIR;
        assert_eq!(t.run(s), ERR(Errno::NotEmpty));
        for name in [&b"/d/b"[..], b"/d/c"] {
            let s = t.path_sqe(Opcode::Unlinkat, AT_FDCWD, name);
            assert_eq!(t.run(s), 0);
        }
        assert_eq!(t.close(dfd), 0);
        let mut s = t.path_sqe(Opcode::Unlinkat, AT_FDCWD, b"/d");
        s.op_flags = AT_REMOVEDIR;
        assert_eq!(t.run(s), 0);
    });
}

#[test]
fn pipes_dup_eof_and_epipe() {
    both(|t| {
        let (r, wfd) = t.pipe();
        assert_eq!(t.write_str(wfd, b"abc"), 3);
        // Dup the read end; read through the copy.
        let mut s = Sqe::new(Opcode::Dup);
        s.fd = r;
        let r2 = t.run(s) as i32;
        assert!(r2 > wfd);
        assert_eq!(t.read_vec(r2, 10).unwrap(), b"abc");
        // Dup with DUP_TO onto a chosen number.
        let mut s = Sqe::new(Opcode::Dup);
        s.fd = wfd;
        s.op_flags = DUP_TO;
        s.off = 20;
        assert_eq!(t.run(s), 20);
        assert_eq!(t.write_str(20, b"z"), 1);
        assert_eq!(t.read_vec(r, 10).unwrap(), b"z");
        // Fstat on a pipe says FIFO.
        let st = t.w.alloc(144);
        let mut s = Sqe::new(Opcode::Fstat);
        s.fd = r;
        s.addr = st;
        assert_eq!(t.run(s), 0);
        assert_eq!(
            u32::from_le_bytes(t.w.memory.read(st + 24, 4).try_into().unwrap()) & S_IFMT,
            S_IFIFO
        );
        // Lseek on a pipe: ESPIPE; reading a write end: EBADF.
        let mut s = Sqe::new(Opcode::Lseek);
        s.fd = r;
        assert_eq!(t.run(s), ERR(Errno::SPipe));
        assert_eq!(t.read_vec(wfd, 1), Err(ERR(Errno::BadF)));
        // All write ends closed: EOF.
        assert_eq!(t.close(wfd), 0);
        assert_eq!(t.close(20), 0);
        assert_eq!(t.read_vec(r, 10).unwrap(), b"");
        // All read ends closed: EPIPE.
        let (r, wfd) = t.pipe();
        assert_eq!(t.close(r), 0);
        assert_eq!(t.write_str(wfd, b"x"), ERR(Errno::Pipe));
    });
}

#[test]
fn a_pipe_read_waits_for_a_writer_on_the_ring() {
    let mut t = T::new(Door::Ring);
    let (r, wfd) = t.pipe();
    let ring = t.ring.take().unwrap();
    let buf = t.w.alloc(16);
    let mut s = sqe(Opcode::Read, 1);
    s.fd = r;
    s.addr = buf;
    s.len = 16;
    ring.push(s);
    assert_eq!(t.w.enter(1, 0, 0, 0), 1);
    assert!(ring.reap().is_empty(), "the read is pending");
    assert_eq!(t.w.proc.ring().unwrap().stats().in_flight, 1);
    // A trap-door write wakes it.
    let data = t.w.put(b"ping");
    let mut s = Sqe::new(Opcode::Write);
    s.fd = wfd;
    s.addr = data;
    s.len = 4;
    assert_eq!(t.w.trap(s), 4);
    t.w.settle();
    let c = ring.reap();
    assert_eq!((c.len(), c[0].user_data, c[0].res), (1, 1, 4));
    assert_eq!(t.w.memory.read(buf, 4), b"ping");
}

fn user_slices(w: &World, strings: &[&[u8]]) -> u64 {
    let mut table = Vec::new();
    for s in strings {
        let p = w.put(s);
        table.extend_from_slice(&p.to_le_bytes());
        table.extend_from_slice(&(s.len() as u64).to_le_bytes());
    }
    w.put(&table)
}

fn spawn_args(
    w: &World,
    path: &[u8],
    argv: &[&[u8]],
    envp: &[&[u8]],
    fd_map: &[FdMapEntry],
) -> u64 {
    spawn_args_with_flags(w, path, argv, envp, fd_map, 0)
}

fn spawn_args_with_flags(
    w: &World,
    path: &[u8],
    argv: &[&[u8]],
    envp: &[&[u8]],
    fd_map: &[FdMapEntry],
    flags: u64,
) -> u64 {
    let mut b = Vec::new();
    b.extend_from_slice(&w.put(path).to_le_bytes());
    b.extend_from_slice(&(path.len() as u64).to_le_bytes());
    b.extend_from_slice(&user_slices(w, argv).to_le_bytes());
    b.extend_from_slice(&(argv.len() as u64).to_le_bytes());
    b.extend_from_slice(&user_slices(w, envp).to_le_bytes());
    b.extend_from_slice(&(envp.len() as u64).to_le_bytes());
    let mut map = Vec::new();
    for e in fd_map {
        map.extend_from_slice(&e.child_fd.to_le_bytes());
        map.extend_from_slice(&e.parent_fd.to_le_bytes());
    }
    b.extend_from_slice(&w.put(&map).to_le_bytes());
    b.extend_from_slice(&(fd_map.len() as u64).to_le_bytes());
    b.extend_from_slice(&flags.to_le_bytes());
    w.put(&b)
}

#[test]
fn spawn_passes_the_foreground_flag_and_refuses_unknown_flags() {
    both(|t| {
        let fd = t.open(b"/server", OpenFlags::CREATE | OpenFlags::WRITE_ONLY, 0o755) as i32;
        t.close(fd);
        let mut sp = Sqe::new(Opcode::Spawn);
        sp.len = 72;
        sp.addr = spawn_args_with_flags(&t.w, b"/server", &[b"s"], &[], &[], SPAWN_FOREGROUND);
        let fg = t.run(sp);
        assert!(fg > 0, "{fg}");
        sp.addr = spawn_args(&t.w, b"/server", &[b"s"], &[], &[]);
        let bg = t.run(sp);
        sp.addr = spawn_args_with_flags(&t.w, b"/server", &[b"s"], &[], &[], 1 << 40);
        assert_eq!(t.run(sp), ERR(Errno::Inval));
        let children = t.w.kernel.children.lock().unwrap();
        let flags = |pid: i64| children.iter().find(|c| c.pid as i64 == pid).unwrap().flags;
        assert_eq!((flags(fg), flags(bg)), (SPAWN_FOREGROUND, 0));
        assert_eq!(children.len(), 2, "the refused spawn made no child");
    });
}

#[test]
fn spawn_on_a_cpu_is_checked_and_passed_to_the_kernel() {
    use abi::ring::{SPAWN_CPU_SHIFT, spawn_on_cpu};
    both(|t| {
        let fd = t.open(b"/true", OpenFlags::CREATE | OpenFlags::WRITE_ONLY, 0o755) as i32;
        t.close(fd);
        let mut spawn = |flags: u64| {
            let mut s = Sqe::new(Opcode::Spawn);
            s.addr = spawn_args_with_flags(&t.w, b"/true", &[b"true"], &[], &[], flags);
            s.len = 72;
            t.run(s)
        };
        assert!(spawn(spawn_on_cpu(0)) >= 100, "CPU 0 exists");
        // The fake kernel has one CPU: it sees the number and refuses CPU 3.
        assert_eq!(spawn(spawn_on_cpu(3)), ERR(Errno::Inval));
        assert_eq!(
            spawn(3 << SPAWN_CPU_SHIFT),
            ERR(Errno::Inval),
            "a CPU without SPAWN_CPU"
        );
        assert_eq!(spawn(1 << 2), ERR(Errno::Inval), "an unknown flag");
    });
}

#[test]
fn spawn_wait_kill_getpid() {
    both(|t| {
        let fd = t.open(b"/true", OpenFlags::CREATE | OpenFlags::WRITE_ONLY, 0o755) as i32;
        t.close(fd);
        let fd = t.open(b"/server", OpenFlags::CREATE | OpenFlags::WRITE_ONLY, 0o755) as i32;
        t.close(fd);
        let (r, wfd) = t.pipe();
        let mut s = Sqe::new(Opcode::Spawn);
        s.addr = spawn_args(
            &t.w,
            b"/true",
            &[b"true", b"a", b"b"],
            &[b"HOME=/"],
            &[
                FdMapEntry {
                    child_fd: 0,
                    parent_fd: r,
                },
                FdMapEntry {
                    child_fd: 1,
                    parent_fd: wfd,
                },
            ],
        );
        s.len = 72;
        let pid = t.run(s);
        assert!(pid >= 100, "{pid}");
        {
            let children = t.w.kernel.children.lock().unwrap();
            let c = children.iter().find(|c| c.pid as i64 == pid).unwrap();
            assert_eq!(c.argv, vec![b"true".to_vec(), b"a".to_vec(), b"b".to_vec()]);
            assert_eq!(c.envp, vec![b"HOME=/".to_vec()]);
            assert_eq!(c.fds, 2);
        }
        // Wait reaps it with its status (argc - 1 = 2).
        let st = t.w.alloc(4);
        let mut s = Sqe::new(Opcode::Wait);
        s.fd = -1;
        s.addr = st;
        assert_eq!(t.run(s), pid);
        assert_eq!(t.w.memory.read_i32(st), 2 << 8);
        assert_eq!(t.run(s), ERR(Errno::Child));
        // A running child: WAIT_NOHANG returns 0; kill; wait after it finishes.
        let mut sp = Sqe::new(Opcode::Spawn);
        sp.addr = spawn_args(&t.w, b"/server", &[b"server"], &[], &[]);
        sp.len = 72;
        let server = t.run(sp);
        let mut s = Sqe::new(Opcode::Wait);
        s.fd = server as i32;
        s.op_flags = WAIT_NOHANG;
        assert_eq!(t.run(s), 0);
        let mut k = Sqe::new(Opcode::Kill);
        k.fd = server as i32;
        k.op_flags = 15;
        assert_eq!(t.run(k), 0);
        assert_eq!(
            t.w.kernel.kills.lock().unwrap().last(),
            Some(&(1, server as i32, 15))
        );
        k.fd = 9999;
        assert_eq!(t.run(k), ERR(Errno::Srch));
        t.w.kernel.finish_child(server as i32, 0);
        s.op_flags = 0;
        assert_eq!(t.run(s), server);
        // Spawn errors.
        sp.addr = spawn_args(&t.w, b"/missing", &[b"x"], &[], &[]);
        assert_eq!(t.run(sp), ERR(Errno::NoEnt));
        sp.addr = spawn_args(&t.w, b"/", &[b"x"], &[], &[]);
        assert_eq!(t.run(sp), ERR(Errno::Acces));
        sp.addr = spawn_args(
            &t.w,
            b"/true",
            &[b"x"],
            &[],
            &[FdMapEntry {
                child_fd: 0,
                parent_fd: 55,
            }],
        );
        assert_eq!(t.run(sp), ERR(Errno::BadF));
        // Getpid / parent.
        assert_eq!(t.run(Sqe::new(Opcode::Getpid)), 1);
        let mut g = Sqe::new(Opcode::Getpid);
        g.op_flags = GETPID_PARENT;
        assert_eq!(t.run(g), 0);
    });
}

#[test]
fn a_wait_on_the_ring_completes_when_the_child_exits() {
    let mut t = T::new(Door::Ring);
    let fd = t.open(b"/server", OpenFlags::CREATE | OpenFlags::WRITE_ONLY, 0o755) as i32;
    t.close(fd);
    let mut sp = Sqe::new(Opcode::Spawn);
    sp.addr = spawn_args(&t.w, b"/server", &[b"server"], &[], &[]);
    sp.len = 72;
    let pid = t.run(sp);
    let ring = t.ring.take().unwrap();
    let mut s = sqe(Opcode::Wait, 5);
    s.fd = -1;
    ring.push(s);
    assert_eq!(t.w.enter(1, 0, 0, 0), 1);
    assert!(ring.reap().is_empty());
    t.w.kernel.finish_child(pid as i32, 3);
    t.w.settle();
    let c = ring.reap();
    assert_eq!((c[0].user_data, c[0].res as i64), (5, pid));
}

#[test]
fn clocks_sleep_timeout() {
    both(|t| {
        let ts = t.w.alloc(16);
        let mut s = Sqe::new(Opcode::ClockGettime);
        s.fd = CLOCK_MONOTONIC;
        s.addr = ts;
        t.w.kernel.clock.advance_to(t.w.now() + 3_500_000_000);
        assert_eq!(t.run(s), 0);
        let now = t.w.now();
        assert_eq!(t.w.memory.read_u64(ts), now / 1_000_000_000);
        assert_eq!(t.w.memory.read_u64(ts + 8), now % 1_000_000_000);
        s.fd = CLOCK_REALTIME;
        assert_eq!(t.run(s), 0);
        assert!(t.w.memory.read_u64(ts) > 1_700_000_000);
        s.fd = 7;
        assert_eq!(t.run(s), ERR(Errno::Inval));
        // Sleep for 5 ms of virtual time.
        let before = t.w.now();
        assert_eq!(t.run(sleep_sqe(0, 5_000_000)), 0);
        assert_eq!(t.w.now(), before + 5_000_000);
        // Absolute sleep in the past completes at once.
        let mut abs = sleep_sqe(0, 1);
        abs.op_flags = TIMEOUT_ABS;
        assert_eq!(t.run(abs), 0);
        // Timeout fires with -ETIME.
        let mut to = Sqe::new(Opcode::Timeout);
        to.addr = 1_000;
        assert_eq!(t.run(to), ERR(Errno::Time));
    });
}

#[test]
fn memory_mmap_munmap_mprotect() {
    both(|t| {
        let out = t.w.alloc(8);
        let mut s = Sqe::new(Opcode::Mmap);
        s.off = 10_000;
        s.op_flags = PROT_READ | PROT_WRITE;
        s.aux = MAP_PRIVATE | MAP_ANONYMOUS;
        s.addr2 = out;
        let r = t.run(s);
        let addr = t.w.memory.read_u64(out);
        assert!(addr >= 0x1_0000_0000);
        match t.door {
            Door::Trap | Door::TrapInline => assert_eq!(r, addr as i64),
            Door::Ring => assert_eq!(
                r,
                i32::MAX as i64,
                "clamped in the Cqe; full value at addr2"
            ),
        }
        assert!(
            t.w.kernel
                .maps
                .lock()
                .unwrap()
                .iter()
                .any(|m| m.0 == addr && m.1 == 12288)
        );
        let mut p = Sqe::new(Opcode::Mprotect);
        p.addr = addr;
        p.off = 4096;
        p.op_flags = PROT_READ;
        assert_eq!(t.run(p), 0);
        p.addr = addr + 1;
        assert_eq!(t.run(p), ERR(Errno::Inval));
        let mut u = Sqe::new(Opcode::Munmap);
        u.addr = addr;
        u.off = 12288;
        assert_eq!(t.run(u), 0);
        assert!(t.w.kernel.maps.lock().unwrap().is_empty());
    });
}

#[test]
fn ports_send_receive_call_reply() {
    both(|t| {
        let port = t.run(Sqe::new(Opcode::PortCreate)) as i32;
        assert!(port >= 0);
        let msg = t.w.put(b"hello");
        let mut s = Sqe::new(Opcode::PortSend);
        s.fd = port;
        s.addr = msg;
        s.len = 5;
        assert_eq!(t.run(s), 0);
        let buf = t.w.alloc(64);
        let tok = t.w.alloc(8);
        let mut r = Sqe::new(Opcode::PortReceive);
        r.fd = port;
        r.addr = buf;
        r.len = 64;
        r.addr2 = tok;
        assert_eq!(t.run(r), 5);
        assert_eq!(t.w.memory.read(buf, 5), b"hello");
        assert_eq!(t.w.memory.read_u64(tok), 0, "a send wants no reply");
        // A too-small receive buffer: EMSGSIZE, message kept.
        assert_eq!(t.run(s), 0);
        r.len = 2;
        assert_eq!(t.run(r), ERR(Errno::MsgSize));
        r.len = 64;
        assert_eq!(t.run(r), 5);
        // Reply to an unknown token.
        let mut rep = Sqe::new(Opcode::PortReply);
        rep.fd = port;
        rep.off = 77;
        assert_eq!(t.run(rep), ERR(Errno::NoEnt));
        // Port ops on a non-port: EBADF.
        s.fd = 0;
        let (pr, _pw) = t.pipe();
        s.fd = pr;
        assert_eq!(t.run(s), ERR(Errno::BadF));
    });
}

#[test]
fn a_port_call_on_the_ring_is_answered_through_the_trap_door() {
    let mut t = T::new(Door::Ring);
    let port = t.run(Sqe::new(Opcode::PortCreate)) as i32;
    let ring = t.ring.take().unwrap();
    let req = t.w.put(b"question");
    let answer = t.w.alloc(64);
    let mut c = sqe(Opcode::PortCall, 9);
    c.fd = port;
    c.addr = req;
    c.len = 8;
    c.addr2 = answer;
    c.aux = 64;
    ring.push(c);
    assert_eq!(t.w.enter(1, 0, 0, 0), 1);
    assert!(ring.reap().is_empty(), "the call waits for a reply");
    let buf = t.w.alloc(64);
    let tok = t.w.alloc(8);
    let mut r = Sqe::new(Opcode::PortReceive);
    r.fd = port;
    r.addr = buf;
    r.len = 64;
    r.addr2 = tok;
    assert_eq!(t.w.trap(r), 8);
    let token = t.w.memory.read_u64(tok);
    assert_ne!(token, 0);
    let reply = t.w.put(b"answer!");
    let mut rep = Sqe::new(Opcode::PortReply);
    rep.fd = port;
    rep.off = token;
    rep.addr = reply;
    rep.len = 7;
    assert_eq!(t.w.trap(rep), 0);
    t.w.settle();
    let cq = ring.reap();
    assert_eq!((cq[0].user_data, cq[0].res), (9, 7));
    assert_eq!(t.w.memory.read(answer, 7), b"answer!");
}

#[test]
fn proc_list_chdir_getcwd() {
    both(|t| {
        let out = t.w.alloc(48 * 8);
        let mut s = Sqe::new(Opcode::ProcList);
        s.addr = out;
        s.len = 8;
        assert_eq!(t.run(s), 3);
        assert_eq!(&t.w.memory.read(out + 48 + 16, 2), b"sh");
        s.len = 1;
        assert_eq!(t.run(s), 1);
        let mut m = t.path_sqe(Opcode::Mkdirat, AT_FDCWD, b"/home");
        m.off = 0o755;
        assert_eq!(t.run(m), 0);
        let c = t.path_sqe(Opcode::Chdir, 0, b"home/../home/./");
        assert_eq!(t.run(c), 0);
        let buf = t.w.alloc(64);
        let mut g = Sqe::new(Opcode::Getcwd);
        g.addr = buf;
        g.len = 64;
        assert_eq!(t.run(g), 6);
        assert_eq!(t.w.memory.read(buf, 6), b"/home\0");
        g.len = 3;
        assert_eq!(t.run(g), ERR(Errno::Range));
        // Relative paths now start in /home.
        let fd = t.open(b"f", OpenFlags::CREATE | OpenFlags::WRITE_ONLY, 0o600);
        assert!(fd >= 0);
        assert!(t.stat_mode(b"/home/f", 0).is_ok());
        let c = t.path_sqe(Opcode::Chdir, 0, b"/home/f");
        assert_eq!(t.run(c), ERR(Errno::NotDir));
        let c = t.path_sqe(Opcode::Chdir, 0, b"/");
        assert_eq!(t.run(c), 0);
        g.len = 1;
        assert_eq!(t.run(g), ERR(Errno::Range));
        g.len = 2;
        assert_eq!(t.run(g), 2);
    });
}

#[test]
fn bad_pointers_fault_bad_fds_badf_unknown_opcodes_inval() {
    both(|t| {
        let hole = BASE + 0x20_0000;
        t.w.memory.add_hole(hole, 4096);
        let fd = t.open(b"/f", OpenFlags::CREATE | OpenFlags::READ_WRITE, 0o600) as i32;
        assert_eq!(t.write_str(fd, b"data"), 4);
        assert_eq!(t.io(Opcode::Pread, fd, hole, 4, 0), ERR(Errno::Fault));
        assert_eq!(t.io(Opcode::Write, fd, hole, 4, 0), ERR(Errno::Fault));
        assert_eq!(
            t.io(Opcode::Read, fd, 0x7fff_ffff_f000, 0x2000, 0),
            ERR(Errno::Fault)
        );
        assert_eq!(
            t.io(Opcode::Read, fd, u64::MAX - 1, 16, 0),
            ERR(Errno::Fault)
        );
        let mut s = Sqe::new(Opcode::Openat);
        s.fd = AT_FDCWD;
        s.addr = hole;
        s.len = 3;
        assert_eq!(t.run(s), ERR(Errno::Fault));
        let mut s = Sqe::new(Opcode::Fstat);
        s.fd = fd;
        s.addr = hole;
        assert_eq!(t.run(s), ERR(Errno::Fault));
        let mut s = Sqe::new(Opcode::ClockGettime);
        s.addr = 0;
        assert_eq!(t.run(s), ERR(Errno::Fault));
        // Bad descriptors.
        assert_eq!(t.io(Opcode::Read, 77, BASE, 1, 0), ERR(Errno::BadF));
        assert_eq!(t.io(Opcode::Read, -5, BASE, 1, 0), ERR(Errno::BadF));
        assert_eq!(t.close(1000), ERR(Errno::BadF));
        // Unknown opcode, unknown flags, nonzero reserved fields.
        let mut s = Sqe::ZERO;
        s.opcode = 250;
        assert_eq!(t.run(s), ERR(Errno::Inval));
        let mut s = Sqe::new(Opcode::Nop);
        s.reserved = 1;
        assert_eq!(t.run(s), ERR(Errno::Inval));
        // A NUL inside a path.
        let s = t.path_sqe(Opcode::Openat, AT_FDCWD, b"/f\0x");
        assert_eq!(t.run(s), ERR(Errno::Inval));
    });
}

#[test]
fn trap_only_and_ring_only_opcodes() {
    let mut t = T::new(Door::Ring);
    // Exit / RingSetup / RingEnter on the ring: EINVAL.
    assert_eq!(t.run(Sqe::new(Opcode::Exit)), ERR(Errno::Inval));
    assert_eq!(t.run(Sqe::new(Opcode::RingEnter)), ERR(Errno::Inval));
    // LinkTimeout on the trap door: EINVAL; a second RingSetup: EBUSY.
    assert_eq!(t.w.trap(Sqe::new(Opcode::LinkTimeout)), ERR(Errno::Inval));
    let p = t.w.alloc(64);
    t.w.memory.write(
        p,
        &params_bytes(&abi::RingParams {
            sq_entries: 4,
            ..Default::default()
        }),
    );
    let mut s = Sqe::new(Opcode::RingSetup);
    s.addr = p;
    s.len = 64;
    assert_eq!(t.w.trap(s), ERR(Errno::Busy));
    // RingEnter without a ring: EINVAL.
    let mut w = World::new();
    assert_eq!(w.enter(1, 0, 0, 0), ERR(Errno::Inval));
    // Bad ring sizes.
    w.memory.write(
        p,
        &params_bytes(&abi::RingParams {
            sq_entries: 3,
            ..Default::default()
        }),
    );
    assert_eq!(w.trap(s), ERR(Errno::Inval));
}

#[test]
fn exit_tears_down_and_tells_the_kernel() {
    let mut w = World::new();
    let ring = w.setup_ring(8, 0, 0, 0);
    ring.push(sleep_sqe(1, 1_000_000_000));
    assert_eq!(w.enter(1, 0, 0, 0), 1);
    let (_r, _w) = {
        let out = w.alloc(8);
        let mut s = Sqe::new(Opcode::Pipe);
        s.addr = out;
        assert_eq!(w.trap(s), 0);
        (w.memory.read_i32(out), w.memory.read_i32(out + 4))
    };
    let mut e = Sqe::new(Opcode::Exit);
    e.off = 0x1_2a;
    assert_eq!(w.trap(e), 0);
    assert_eq!(w.kernel.exits.lock().unwrap().as_slice(), &[(1, 0x2a)]);
    assert!(w.proc.is_exiting());
    assert!(w.proc.ring().is_none());
    assert_eq!(w.proc.with_files(|f| f.len()), 0);
    let c = ring.reap();
    assert_eq!((c.len(), c[0].res), (1, ERR(Errno::Canceled) as i32));
    assert!(w.now() < 1_000_000_000, "cancelled, not slept");
    w.settle();
    assert_eq!(w.task_count(), 0, "the ring task finished");
}

#[test]
fn the_cheap_operations_complete_on_the_trap_and_the_others_are_left_to_the_task() {
    let mut w = World::new();
    let out = w.alloc(16);
    let inline = |w: &mut World, s: Sqe| w.trap_inline(s);
    assert_eq!(inline(&mut w, Sqe::new(Opcode::Nop)), (0, true));
    let (pid, at_once) = inline(&mut w, Sqe::new(Opcode::Getpid));
    assert!(pid > 0 && at_once, "getpid {pid} inline {at_once}");
    let mut clock = Sqe::new(Opcode::ClockGettime);
    clock.fd = CLOCK_MONOTONIC;
    clock.addr = out;
    assert_eq!(inline(&mut w, clock), (0, true));
    // A bad argument is answered on the trap too, with the same error.
    clock.addr = 8;
    assert_eq!(inline(&mut w, clock), (ERR(Errno::Fault), true));
    let mut pipe = Sqe::new(Opcode::Pipe);
    pipe.addr = out;
    assert_eq!(inline(&mut w, pipe), (0, true));
    let (r, wr) = (w.memory.read_i32(out), w.memory.read_i32(out + 4));
    let mut dup = Sqe::new(Opcode::Dup);
    dup.fd = wr;
    let (copy, at_once) = inline(&mut w, dup);
    assert!(
        copy > i64::from(wr) && at_once,
        "dup {copy} inline {at_once}"
    );
    let copy = copy as i32;
    // Operations that may wait, and those whose cost grows with their arguments, are
    // the task's; they still complete (through `perform`) with the right result.
    let data = w.put(b"hi");
    let mut write = Sqe::new(Opcode::Write);
    write.fd = copy;
    write.addr = data;
    write.len = 2;
    assert_eq!(inline(&mut w, write), (2, false));
    let buf = w.alloc(2);
    let mut read = Sqe::new(Opcode::Read);
    read.fd = r;
    read.addr = buf;
    read.len = 2;
    assert_eq!(inline(&mut w, read), (2, false));
    assert_eq!(w.memory.read(buf, 2), b"hi");
    let mut mmap = Sqe::new(Opcode::Mmap);
    mmap.off = 4096;
    mmap.op_flags = PROT_READ | PROT_WRITE;
    mmap.aux = MAP_PRIVATE | MAP_ANONYMOUS;
    mmap.addr2 = out;
    let (addr, at_once) = inline(&mut w, mmap);
    assert!(addr > 0 && !at_once, "mmap {addr} inline {at_once}");
    let mut kill = Sqe::new(Opcode::Kill);
    kill.fd = pid as i32;
    kill.op_flags = 0;
    assert!(!inline(&mut w, kill).1, "kill is the task's");
    for fd in [r, wr, copy] {
        let mut close = Sqe::new(Opcode::Close);
        close.fd = fd;
        assert_eq!(inline(&mut w, close), (0, true));
    }
}

#[test]
fn a_ring_enter_is_started_on_the_trap_and_a_wait_is_left_to_the_task() {
    let mut w = World::new();
    let ring = w.setup_ring(64, 0, 0, 0);
    let enter = |to_submit: u32, min_complete: u32| {
        let mut s = Sqe::new(Opcode::RingEnter);
        s.len = to_submit;
        s.off = u64::from(min_complete);
        s.op_flags = RingEnterFlags::GETEVENTS.bits();
        s
    };
    // Two Nops complete while the trap submits them: the whole call is done on the trap.
    for ud in [1, 2] {
        let mut s = Sqe::new(Opcode::Nop);
        s.user_data = ud;
        ring.push(s);
    }
    assert_eq!(w.trap_inline(enter(2, 2)), (2, true));
    let uds: Vec<u64> = ring.reap().iter().map(|c| c.user_data).collect();
    assert_eq!(uds, [1, 2]);
    // A timeout submitted on the trap: its completion is waited for by the task.
    ring.push(Sqe {
        addr: 1_000_000,
        user_data: 3,
        ..Sqe::new(Opcode::Timeout)
    });
    assert_eq!(w.trap_inline(enter(1, 1)), (1, false));
    let c = ring.reap();
    assert_eq!(
        (c.len(), c[0].user_data, c[0].res),
        (1, 3, -(Errno::Time as i32))
    );
    // A batch bigger than the trap's bound is submitted by the task, with the same result.
    for ud in 10..10 + 40 {
        let mut s = Sqe::new(Opcode::Nop);
        s.user_data = ud;
        ring.push(s);
    }
    assert_eq!(w.trap_inline(enter(40, 40)), (40, false));
    assert_eq!(ring.reap().len(), 40);
}
