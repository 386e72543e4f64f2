// SPDX-License-Identifier: MIT OR Apache-2.0
//! A filesystem served by a task behind an executor port (the way a disk filesystem or a
//! userland filesystem is served): the VFS code is the same, the calls suspend and are
//! answered by the server task, also across CPUs.

mod common;

use std::{
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::Duration,
};

use abi::{Errno, OpenFlags};
use common::{TestEntropy, clock, inline, join, run_on, serial, tmpfs_vfs};
use executor::{CpuId, hosted::Machine};
use fs::{
    Filesystem, FsPort, VnodeMsg, devfs::Devfs, platform::ConsoleDevice,
    service::try_complete_inline, tmpfs::Tmpfs,
};
use ports::{Handled, Port};

#[test]
fn vfs_over_a_queued_port_served_by_a_task_on_another_cpu() {
    let _serial = serial();
    let machine = Machine::start(2);
    let backing = Arc::new(Tmpfs::new(clock()));
    // Every message is queued for the server task on CPU 0 (no inline completion).
    let (port, mut server) = Port::executor(CpuId(0), |msg: VnodeMsg| Handled::Queue(msg));
    let fs = backing.clone();
    let server_task = machine
        .spawn_on(CpuId(0), async move {
            let mut served = 0usize;
            loop {
                let mut request = server.recv().await;
                if matches!(request.msg().op, fs::VnodeOp::Fsync { ino: 0 }) {
                    request.msg_mut().result = Some(Ok(fs::VnodeDone::Unit));
                    request.reply();
                    return served;
                }
                fs.serve(request.msg_mut());
                served += 1;
                request.reply();
            }
        })
        .unwrap();

    let (vfs, _) = tmpfs_vfs();
    let root = vfs.root();
    inline(vfs.mkdir(&root, b"/slow", 0o755)).unwrap();
    let fs_port = FsPort::from_port(port.clone(), "queued-tmpfs", backing.root());
    inline(vfs.mount(&root, b"/slow", fs_port.clone())).unwrap_or_else(|_| unreachable!());

    let v = vfs.clone();
    let client = machine
        .spawn_on(CpuId(1), async move {
            let root = v.root();
            // Off the executor port's CPU, the first poll cannot complete.
            assert!(try_complete_inline(v.stat(&root, b"/slow/x", true)).is_none());
            v.mkdir(&root, b"/slow/dir", 0o755).await.unwrap();
            let f = v
                .open(
                    &root,
                    b"/slow/dir/file",
                    OpenFlags::READ_WRITE | OpenFlags::CREATE,
                    0o644,
                )
                .await
                .unwrap();
            assert_eq!(v.write(&f, b"through a task".to_vec()).await.0, Ok(14));
            let (r, data) = v.pread(&f, Vec::new(), 100, 0).await;
            assert_eq!((r, data.as_slice()), (Ok(14), &b"through a task"[..]));
            assert_eq!(
                v.stat(&root, b"/slow/dir/../dir/file", true)
                    .await
                    .unwrap()
                    .st_size,
                14
            );
            assert_eq!(
                v.rename(&root, b"/slow/dir/file", &root, b"/elsewhere", false)
                    .await,
                Err(Errno::XDev)
            );
            assert_eq!(
                v.stat(&root, b"/slow/..", true).await.unwrap().st_ino,
                v.stat(&root, b"/", true).await.unwrap().st_ino
            );
            drop(f);
            v.unlink(&root, b"/slow/dir/file").await.unwrap();
            // The inline root filesystem still completes on the first poll on this CPU.
            assert!(try_complete_inline(v.stat(&root, b"/", false)).is_some());
        })
        .unwrap();
    join(client);
    // Stop the server (a private message) and count what it served.
    let stop = machine
        .spawn_on(CpuId(1), async move {
            fs_port.call_op(fs::VnodeOp::Fsync { ino: 0 }).await
        })
        .unwrap();
    join(stop).unwrap();
    let served = join(server_task);
    assert!(
        served >= 8,
        "the server task served the operations ({served})"
    );
    backing.debug_check();
    machine.shutdown();
}

#[test]
fn a_dead_filesystem_server_gives_enotconn() {
    let _serial = serial();
    let machine = Machine::start(1);
    let (port, server) = Port::executor(CpuId(0), |msg: VnodeMsg| Handled::Queue(msg));
    drop(server);
    let (vfs, _) = tmpfs_vfs();
    let root = vfs.root();
    inline(vfs.mkdir(&root, b"/gone", 0o755)).unwrap();
    inline(vfs.mount(&root, b"/gone", FsPort::from_port(port, "dead", 1))).unwrap();
    let v = vfs.clone();
    let r = run_on(&machine, 0, async move {
        v.stat(&v.root(), b"/gone/x", true).await.err()
    });
    assert_eq!(r, Some(Errno::NotConn));
    machine.shutdown();
}

/// A console whose input arrives when the test types it, waking the devfs task.
#[derive(Default)]
struct WaitingConsole {
    input: Mutex<Vec<u8>>,
    waker: Mutex<Option<Waker>>,
}

impl WaitingConsole {
    fn type_in(&self, data: &[u8]) {
        self.input.lock().unwrap().extend_from_slice(data);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }
}

impl ConsoleDevice for WaitingConsole {
    fn write(&self, data: &[u8]) -> usize {
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

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Errno>> {
        let input = self.input.lock().unwrap();
        if input.is_empty() {
            // Registered while holding `input`: `type_in` cannot slip in between.
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            return Poll::Pending;
        }
        drop(input);
        Poll::Ready(self.try_read(buf))
    }
}

/// A devfs whose console is a `WaitingConsole` (returned too, to type into).
fn devfs_with_waiting_console() -> (Arc<WaitingConsole>, Arc<Devfs>) {
    let console = Arc::new(WaitingConsole::default());
    let devfs = Arc::new(Devfs::new(
        clock(),
        Arc::new(TestEntropy::new(1)),
        console.clone(),
    ));
    (console, devfs)
}

#[test]
fn console_read_through_the_devfs_task_waits_for_input() {
    let _serial = serial();
    let machine = Machine::start(2);
    let (console, devfs) = devfs_with_waiting_console();
    let (port, task) = devfs.serve_on(CpuId(0));
    drop(machine.spawn_on(CpuId(0), task).unwrap()); // detached: serves until shutdown
    let (vfs, _) = tmpfs_vfs();
    let root = vfs.root();
    inline(vfs.mkdir(&root, b"/dev", 0o755)).unwrap();
    inline(vfs.mount(&root, b"/dev", port)).unwrap();

    // Devices other than a waiting console still complete inline on the port's CPU.
    let v = vfs.clone();
    let on_cpu0 = run_on(&machine, 0, async move {
        let null = v
            .open(&v.root(), b"/dev/null", OpenFlags::READ_WRITE, 0)
            .await
            .unwrap();
        try_complete_inline(v.write(&null, b"x".to_vec())).map(|(r, _)| r)
    });
    assert_eq!(on_cpu0, Some(Ok(1)));

    let v = vfs.clone();
    let reader = machine
        .spawn_on(CpuId(1), async move {
            let tty = v
                .open(&v.root(), b"/dev/console", OpenFlags::READ_ONLY, 0)
                .await
                .unwrap();
            let (r, line) = v.read(&tty, Vec::new(), 64).await;
            (r, line)
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(!reader.is_finished(), "the read waits for input");
    console.type_in(b"echo hi\n");
    let (r, line) = join(reader);
    assert_eq!((r, line.as_slice()), (Ok(8), &b"echo hi\n"[..]));

    // O_NONBLOCK: no waiting, EAGAIN.
    let v = vfs.clone();
    let non_blocking = run_on(&machine, 1, async move {
        let flags = OpenFlags::READ_ONLY | OpenFlags::NON_BLOCK;
        let tty = v.open(&v.root(), b"/dev/console", flags, 0).await.unwrap();
        v.read(&tty, Vec::new(), 8).await.0
    });
    assert_eq!(non_blocking, Err(Errno::Again));

    // A caller that gives up is answered with EINTR, and the next read still works.
    let v = vfs.clone();
    let timed_out = machine
        .spawn_on(CpuId(1), async move {
            let tty = v
                .open(&v.root(), b"/dev/console", OpenFlags::READ_ONLY, 0)
                .await
                .unwrap();
            let first = executor::timeout(Duration::from_millis(20), v.read(&tty, Vec::new(), 8))
                .await
                .is_err();
            (first, tty)
        })
        .unwrap();
    let (gave_up, tty) = join(timed_out);
    assert!(gave_up, "no input: the read timed out");
    console.type_in(b"ls\n");
    let v = vfs.clone();
    let again = machine
        .spawn_on(CpuId(1), async move { v.read(&tty, Vec::new(), 8).await })
        .unwrap();
    let (r, data) = join(again);
    assert_eq!((r, data.as_slice()), (Ok(3), &b"ls\n"[..]));
    machine.shutdown();
}

#[test]
fn devfs_served_per_cpu_answers_inline_on_every_cpu_and_console_reads_wait_on_cpu_0() {
    let _serial = serial();
    let machine = Machine::start(2);
    let (console, devfs) = devfs_with_waiting_console();
    let (port, tasks) = devfs.serve_per_cpu(2);
    assert_eq!(tasks.len(), 2, "one devfs task per CPU");
    for (cpu, task) in tasks.into_iter().enumerate() {
        drop(machine.spawn_on(CpuId(cpu as u32), task).unwrap()); // detached
    }
    let (vfs, _) = tmpfs_vfs();
    let root = vfs.root();
    inline(vfs.mkdir(&root, b"/dev", 0o755)).unwrap();
    inline(vfs.mount(&root, b"/dev", port)).unwrap();

    // Served on the CPU that asks: inline on either CPU (a port on one CPU would
    // make the other CPU's call cross, and so not complete inline).
    for cpu in [0, 1] {
        let v = vfs.clone();
        let inline_write = run_on(&machine, cpu, async move {
            let null = v
                .open(&v.root(), b"/dev/null", OpenFlags::READ_WRITE, 0)
                .await
                .unwrap();
            try_complete_inline(v.write(&null, b"x".to_vec())).map(|(r, _)| r)
        });
        assert_eq!(inline_write, Some(Ok(1)), "CPU {cpu}");
    }

    // Console reads from both CPUs wait (CPU 1's is forwarded to CPU 0's task) and are
    // answered in arrival order, one line each.
    let mut readers = Vec::new();
    for cpu in [1u32, 0] {
        let v = vfs.clone();
        readers.push(
            machine
                .spawn_on(CpuId(cpu), async move {
                    let tty = v
                        .open(&v.root(), b"/dev/console", OpenFlags::READ_ONLY, 0)
                        .await
                        .unwrap();
                    v.read(&tty, Vec::new(), 64).await
                })
                .unwrap(),
        );
        std::thread::sleep(Duration::from_millis(30));
    }
    assert!(
        readers.iter().all(|r| !r.is_finished()),
        "both reads wait for input"
    );
    console.type_in(b"first\n");
    std::thread::sleep(Duration::from_millis(30));
    console.type_in(b"second\n");
    let got: Vec<_> = readers.into_iter().map(join).collect();
    assert_eq!(
        got,
        vec![(Ok(6), b"first\n".to_vec()), (Ok(7), b"second\n".to_vec())],
        "CPU 1's read (first to ask) gets the first line"
    );
    machine.shutdown();
}
