// SPDX-License-Identifier: MIT OR Apache-2.0
//! devfs: the device directory, served inline.
//!
//! | name | device (major:minor) | read | write |
//! |---|---|---|---|
//! | `null` | 1:3 | end of file | accepts everything |
//! | `zero` | 1:5 | zeros | accepts everything |
//! | `random`, `urandom` | 1:8, 1:9 | the kernel's entropy source | accepts (discarded) |
//! | `console` | 5:1 | the kernel console (`Again` when no input) | the kernel console |
//!
//! The set of nodes is fixed at creation; names cannot be created or removed (`Perm`).
//! Block devices will be added here when the block layer exists. Modes and times can be
//! changed with `SetAttr`.
//!
//! Two ways to serve it:
//! - inline (`Arc<Devfs>` as a [`Filesystem`], a function port): every operation
//!   completes at once, and a console read with no input waiting answers `Again`
//!   (non-blocking semantics; what the boot path uses before any executor runs);
//! - by a task ([`Devfs::serve_on`], an executor port): every operation still completes
//!   inline except a console read with no input waiting, which is queued for the devfs
//!   task and answered when input arrives (blocking semantics), or with `Intr` when the
//!   caller gives up (aborts).

use alloc::{sync::Arc, vec::Vec};
use core::{
    future::{Future, poll_fn},
    task::Poll,
};

use abi::{Errno, FileType, Timespec};
use spin::Mutex;

use ports::{CpuId, Handled, Port, Server};

use crate::{
    path::check_name,
    platform::{Clock, ConsoleDevice, EntropySource},
    proto::{
        Attr, DirEntry, Ino, MAX_IO_LEN, SetAttr, TimeChange, VnodeDone, VnodeMsg, VnodeOp,
        VnodeResult,
    },
    service::{Filesystem, FsPort},
};

/// The root directory's inode.
pub const ROOT_INO: Ino = 1;

/// Linux's `makedev`.
pub const fn makedev(major: u32, minor: u32) -> u64 {
    let (major, minor) = (major as u64, minor as u64);
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Device {
    Null,
    Zero,
    Random,
    Console,
}

struct DevNode {
    name: &'static [u8],
    device: Device,
    rdev: u64,
}

const NODES: [DevNode; 5] = [
    DevNode {
        name: b"null",
        device: Device::Null,
        rdev: makedev(1, 3),
    },
    DevNode {
        name: b"zero",
        device: Device::Zero,
        rdev: makedev(1, 5),
    },
    DevNode {
        name: b"random",
        device: Device::Random,
        rdev: makedev(1, 8),
    },
    DevNode {
        name: b"urandom",
        device: Device::Random,
        rdev: makedev(1, 9),
    },
    DevNode {
        name: b"console",
        device: Device::Console,
        rdev: makedev(5, 1),
    },
];

#[derive(Clone, Copy)]
struct Meta {
    perm: u32,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
}

/// A devfs instance.
pub struct Devfs {
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn EntropySource>,
    console: Arc<dyn ConsoleDevice>,
    /// Index 0 is the root, then `NODES` in order (inode = index + 1).
    meta: Mutex<[Meta; NODES.len() + 1]>,
}

impl Devfs {
    /// A devfs over the kernel's clock, entropy source and console.
    pub fn new(
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn EntropySource>,
        console: Arc<dyn ConsoleDevice>,
    ) -> Devfs {
        let now = clock.now();
        let mut meta = [Meta {
            perm: 0o666,
            atime: now,
            mtime: now,
            ctime: now,
        }; NODES.len() + 1];
        meta[0].perm = 0o755;
        meta[5].perm = 0o600; // console
        Devfs {
            clock,
            entropy,
            console,
            meta: Mutex::new(meta),
        }
    }

    fn node(ino: Ino) -> Result<Option<&'static DevNode>, Errno> {
        match ino {
            ROOT_INO => Ok(None),
            i if i >= 2 && i < 2 + NODES.len() as u64 => Ok(Some(&NODES[(i - 2) as usize])),
            _ => Err(Errno::NoEnt),
        }
    }

    fn attr(&self, ino: Ino) -> Result<Attr, Errno> {
        let node = Devfs::node(ino)?;
        let m = self.meta.lock()[(ino - 1) as usize];
        let (kind, nlink, rdev, size) = match node {
            None => (FileType::Directory, 2, 0, NODES.len() as u64),
            Some(n) => (FileType::CharDevice, 1, n.rdev, 0),
        };
        Ok(Attr {
            ino,
            kind,
            perm: m.perm,
            nlink,
            uid: 0,
            gid: 0,
            size,
            blocks: 0,
            rdev,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
        })
    }

    fn device(ino: Ino) -> Result<Device, Errno> {
        match Devfs::node(ino)? {
            Some(n) => Ok(n.device),
            None => Err(Errno::IsDir),
        }
    }

    /// Serves one operation synchronously.
    pub fn serve_op(&self, op: &VnodeOp, buf: &mut Vec<u8>) -> VnodeResult {
        match *op {
            VnodeOp::Lookup { dir, ref name } => {
                if dir != ROOT_INO {
                    Devfs::node(dir)?;
                    return Err(Errno::NotDir);
                }
                if name.as_ref() == b".." || name.as_ref() == b"." {
                    return self.attr(ROOT_INO).map(VnodeDone::Node);
                }
                check_name(name)?;
                let i = NODES
                    .iter()
                    .position(|n| n.name == name.as_ref())
                    .ok_or(Errno::NoEnt)?;
                self.attr(i as u64 + 2).map(VnodeDone::Node)
            }
            VnodeOp::Create { .. }
            | VnodeOp::Mkdir { .. }
            | VnodeOp::Symlink { .. }
            | VnodeOp::Link { .. }
            | VnodeOp::Unlink { .. }
            | VnodeOp::Rmdir { .. }
            | VnodeOp::Rename { .. } => Err(Errno::Perm),
            VnodeOp::Open { ino } | VnodeOp::GetAttr { ino } => self.attr(ino).map(VnodeDone::Node),
            VnodeOp::Close { ino } | VnodeOp::Fsync { ino } => {
                Devfs::node(ino).map(|_| VnodeDone::Unit)
            }
            VnodeOp::Read { ino, len, .. } => {
                let len = len.min(MAX_IO_LEN);
                buf.clear();
                let n = match Devfs::device(ino)? {
                    Device::Null => 0,
                    Device::Zero => {
                        buf.resize(len, 0);
                        len
                    }
                    Device::Random => {
                        buf.resize(len, 0);
                        self.entropy.fill(buf);
                        len
                    }
                    Device::Console => {
                        buf.resize(len, 0);
                        let n = self.console.try_read(buf).inspect_err(|_| buf.clear())?;
                        buf.truncate(n);
                        n
                    }
                };
                Ok(VnodeDone::Count(n))
            }
            VnodeOp::Write { ino, offset, .. } => {
                let count = match Devfs::device(ino)? {
                    Device::Console => self.console.write(buf),
                    Device::Null | Device::Zero | Device::Random => buf.len(),
                };
                Ok(VnodeDone::Written {
                    count,
                    end: offset.saturating_add(count as u64),
                })
            }
            // Truncating a device (`O_TRUNC` on /dev/null) does nothing, as on Linux.
            VnodeOp::Truncate { ino, .. } => self.attr(ino).map(VnodeDone::Node),
            VnodeOp::SetAttr { ino, set } => self.set_attr(ino, set),
            VnodeOp::ReadDir { dir, cookie, max } => self.read_dir(dir, cookie, max),
            VnodeOp::ReadLink { ino } => Devfs::node(ino).and(Err(Errno::Inval)),
        }
    }

    /// Serves this devfs through an executor port on `cpu`. Returns the port to mount and
    /// the devfs task, which must be spawned on `cpu`; it answers console reads that had
    /// to wait for input.
    ///
    /// # Context
    /// Any CPU; allocates the port. The task runs forever (until the machine stops).
    pub fn serve_on(
        self: Arc<Self>,
        cpu: CpuId,
    ) -> (FsPort, impl Future<Output = ()> + Send + 'static) {
        let inline = self.clone();
        let (port, server) = Port::executor(cpu, move |mut msg: VnodeMsg| {
            let result = inline.serve_op(&msg.op, &mut msg.buf);
            let must_wait = matches!(
                msg.op,
                VnodeOp::Read { ino, non_blocking: false, .. } if Devfs::device(ino) == Ok(Device::Console)
            );
            if must_wait && result == Err(Errno::Again) {
                return Handled::Queue(msg);
            }
            msg.result = Some(result);
            Handled::Done(msg)
        });
        (
            FsPort::from_port(port, "devfs", ROOT_INO),
            self.serve_waiting_reads(server),
        )
    }

    /// The devfs task: answers each queued console read when input arrives.
    async fn serve_waiting_reads(self: Arc<Self>, mut server: Server<VnodeMsg>) {
        loop {
            let mut request = server.recv().await;
            let result = poll_fn(|cx| {
                if request.poll_aborted(cx).is_ready() {
                    request.msg_mut().buf.clear();
                    return Poll::Ready(Err(Errno::Intr));
                }
                let msg = request.msg_mut();
                let VnodeOp::Read { len, .. } = msg.op else {
                    return Poll::Ready(Err(Errno::Inval));
                };
                msg.buf.resize(len.min(MAX_IO_LEN), 0);
                match self.console.poll_read(cx, &mut msg.buf) {
                    Poll::Ready(Ok(n)) => {
                        msg.buf.truncate(n);
                        Poll::Ready(Ok(VnodeDone::Count(n)))
                    }
                    Poll::Ready(Err(e)) => {
                        msg.buf.clear();
                        Poll::Ready(Err(e))
                    }
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            request.msg_mut().result = Some(result);
            request.reply();
        }
    }

    fn set_attr(&self, ino: Ino, set: SetAttr) -> VnodeResult {
        Devfs::node(ino)?;
        let now = self.clock.now();
        let resolve = |t: TimeChange| match t {
            TimeChange::Now => Ok(now),
            TimeChange::At(t) if t.is_normalized() => Ok(t),
            TimeChange::At(_) => Err(Errno::Inval),
        };
        let atime = set.atime.map(resolve).transpose()?;
        let mtime = set.mtime.map(resolve).transpose()?;
        if set.uid.is_some_and(|u| u != 0) || set.gid.is_some_and(|g| g != 0) {
            return Err(Errno::Perm);
        }
        {
            let mut meta = self.meta.lock();
            let m = &mut meta[(ino - 1) as usize];
            if let Some(perm) = set.perm {
                m.perm = perm & abi::stat::PERMISSION_MASK;
            }
            if let Some(t) = atime {
                m.atime = t;
            }
            if let Some(t) = mtime {
                m.mtime = t;
            }
            m.ctime = now;
        }
        self.attr(ino).map(VnodeDone::Node)
    }

    fn read_dir(&self, dir: Ino, cookie: u64, max: usize) -> VnodeResult {
        if dir != ROOT_INO {
            Devfs::node(dir)?;
            return Err(Errno::NotDir);
        }
        let mut entries = Vec::new();
        let mut next_cookie = cookie;
        let total = 2 + NODES.len() as u64;
        while next_cookie < total && entries.len() < max {
            let (ino, kind, name): (Ino, FileType, &[u8]) = match next_cookie {
                0 => (ROOT_INO, FileType::Directory, b"."),
                1 => (ROOT_INO, FileType::Directory, b".."),
                c => (c, FileType::CharDevice, NODES[(c - 2) as usize].name),
            };
            next_cookie += 1;
            entries.push(DirEntry {
                ino,
                kind,
                name: name.into(),
                next_cookie,
            });
        }
        Ok(VnodeDone::Entries {
            entries,
            next_cookie,
            at_end: next_cookie >= total,
        })
    }
}

impl Filesystem for Devfs {
    fn fs_type(&self) -> &'static str {
        "devfs"
    }

    fn root(&self) -> Ino {
        ROOT_INO
    }

    fn serve(&self, msg: &mut VnodeMsg) {
        msg.result = Some(self.serve_op(&msg.op, &mut msg.buf));
    }
}
