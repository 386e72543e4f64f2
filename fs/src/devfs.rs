// SPDX-License-Identifier: MIT OR Apache-2.0
//! devfs: the device directory, served inline.
//!
//! | name | device (major:minor) | read | write |
//! |---|---|---|---|
//! | `null` | 1:3 | end of file | accepts everything |
//! | `zero` | 1:5 | zeros | accepts everything |
//! | `random`, `urandom` | 1:8, 1:9 | the kernel's entropy source | accepts (discarded) |
//! | `console` | 5:1 | the kernel console (`Again` when no input) | the kernel console |
//! | `vda`, ... ([`Devfs::add_block`]) | 254:16n | the disk, through the block cache | the disk (write-through) |
//!
//! The character devices are fixed at creation; block devices are added at run time by
//! the kernel ([`Devfs::add_block`]), get the next inode numbers (never reused) and are
//! listed after the character devices. Names cannot be created or removed through the VFS
//! (`Perm`). Modes and times can be changed with `SetAttr`. What a block device does with
//! reads, writes, `O_DIRECT` and fsync is in `crate::blockdev`; the cache is
//! `crate::bcache`, one per devfs, shared by its block devices.
//!
//! Two ways to serve it:
//! - inline (`Arc<Devfs>` as a [`Filesystem`], a function port): every operation
//!   completes at once, and a console read with no input waiting answers `Again`
//!   (non-blocking semantics; what the boot path uses before any executor runs);
//!   Block devices need the task: inline, a read the cache cannot answer, a write and an
//!   fsync answer `Again`.
//! - by a task ([`Devfs::serve_on`], an executor port): every operation still completes
//!   inline except a console read with no input waiting, and a block device operation
//!   that needs the device (a cache miss, `O_DIRECT`, a write, an fsync). Those are
//!   queued for the devfs task, which serves them all at once: console reads in order,
//!   each answered when input arrives (or with `Intr` when the caller gives up), and
//!   block requests concurrently, each as its own future, so none waits behind another
//!   or behind the console. A cached block read completes in the port's handler with no
//!   task switch.

use alloc::{collections::VecDeque, sync::Arc, vec::Vec};
use core::{
    future::{Future, poll_fn},
    pin::pin,
    task::{Context, Poll},
};

use abi::{Errno, FileType, Timespec};
use futures_util::{
    StreamExt,
    future::{Either, select},
    stream::FuturesUnordered,
};
use spin::{Mutex, RwLock};

use ports::{
    CpuId, Handled, Port, Request, Server,
    proto::block::{BlockInfo, BlockMsg},
};

use crate::{
    bcache::{BlockCache, CACHE_BLOCK_SIZE, DEFAULT_CAPACITY_BYTES},
    blockdev::{BlockDevice, DeviceRef},
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

/// The inode of the first block device added; the n-th one gets `FIRST_BLOCK_INO + n`.
pub const FIRST_BLOCK_INO: Ino = 2 + NODES.len() as Ino;

/// The major number of block devices (Linux's virtblk takes 254 or 253); the n-th
/// device is minor `16 * n`, leaving room for 15 partitions as Linux does.
pub const BLOCK_MAJOR: u32 = 254;

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

/// What an inode is.
enum Node {
    Root,
    Char(&'static DevNode),
    /// The block device and its index (its order of addition).
    Block(Arc<BlockDevice>, usize),
}

/// A devfs instance.
pub struct Devfs {
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn EntropySource>,
    console: Arc<dyn ConsoleDevice>,
    /// Index 0 is the root, then `NODES` in order, then the block devices (inode =
    /// index + 1). Only grows; an entry is pushed before its block device is visible.
    meta: Mutex<Vec<Meta>>,
    /// Block devices in order of addition (inode `FIRST_BLOCK_INO + index`). Only grows.
    blocks: RwLock<Vec<Arc<BlockDevice>>>,
    cache: Arc<BlockCache>,
}

impl Devfs {
    /// A devfs over the kernel's clock, entropy source and console.
    pub fn new(
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn EntropySource>,
        console: Arc<dyn ConsoleDevice>,
    ) -> Devfs {
        let now = clock.now();
        let mut meta = alloc::vec![
            Meta {
                perm: 0o666,
                atime: now,
                mtime: now,
                ctime: now,
            };
            NODES.len() + 1
        ];
        meta[0].perm = 0o755;
        meta[5].perm = 0o600; // console
        Devfs {
            clock,
            entropy,
            console,
            meta: Mutex::new(meta),
            blocks: RwLock::new(Vec::new()),
            cache: Arc::new(BlockCache::new(DEFAULT_CAPACITY_BYTES)),
        }
    }

    /// Uses `cache` for the block devices added from now on (the default is a
    /// [`DEFAULT_CAPACITY_BYTES`] cache of this devfs's own). Call it before `add_block`.
    pub fn with_block_cache(mut self, cache: Arc<BlockCache>) -> Devfs {
        self.cache = cache;
        self
    }

    /// The block cache (for its statistics).
    pub fn block_cache(&self) -> &Arc<BlockCache> {
        &self.cache
    }

    /// Adds block device `/dev/<name>` served by a driver's `port`, with the geometry
    /// `info` (the driver's answer to `Info`). It gets the next inode number and the
    /// device number `254:16n` for the n-th device added (from 0).
    ///
    /// If the VFS may have looked `name` up before (a negative namecache entry), tell it
    /// with `Vfs::invalidate_name` afterwards.
    ///
    /// # Errors
    /// `Inval` for a bad name or a sector size that is not a power of two from 512 to
    /// 4096; `Exist` if the name is taken.
    ///
    /// # Context
    /// Any CPU; never waits (short spin locks). Queued requests need the devfs task
    /// ([`Devfs::serve_on`]).
    pub fn add_block(
        &self,
        name: &str,
        port: Port<BlockMsg>,
        info: BlockInfo,
    ) -> Result<(), Errno> {
        let name = name.as_bytes();
        check_name(name).map_err(|_| Errno::Inval)?;
        if name == b".." {
            return Err(Errno::Inval);
        }
        let mut blocks = self.blocks.write();
        if NODES.iter().any(|n| n.name == name) || blocks.iter().any(|b| &*b.name == name) {
            return Err(Errno::Exist);
        }
        let index = blocks.len();
        let device = BlockDevice::new(name.into(), index as u32, port, info, self.cache.clone())?;
        let now = self.clock.now();
        // The meta entry first: a visible block device always has one.
        self.meta.lock().push(Meta {
            perm: 0o660,
            atime: now,
            mtime: now,
            ctime: now,
        });
        blocks.push(Arc::new(device));
        log::info!(
            target: "vfs",
            "/dev/{}: {} sectors of {} bytes ({} MiB){}",
            core::str::from_utf8(name).unwrap_or("?"),
            info.sectors,
            info.sector_size,
            info.len_bytes() >> 20,
            if info.read_only { ", read-only" } else { "" }
        );
        Ok(())
    }

    fn node(&self, ino: Ino) -> Result<Node, Errno> {
        match ino {
            ROOT_INO => Ok(Node::Root),
            i if (2..FIRST_BLOCK_INO).contains(&i) => Ok(Node::Char(&NODES[(i - 2) as usize])),
            i if i >= FIRST_BLOCK_INO => {
                let index = usize::try_from(i - FIRST_BLOCK_INO).map_err(|_| Errno::NoEnt)?;
                let blocks = self.blocks.read();
                let device = blocks.get(index).ok_or(Errno::NoEnt)?;
                Ok(Node::Block(device.clone(), index))
            }
            _ => Err(Errno::NoEnt),
        }
    }

    fn attr(&self, ino: Ino) -> Result<Attr, Errno> {
        let node = self.node(ino)?;
        let (kind, nlink, rdev, size) = match node {
            Node::Root => (
                FileType::Directory,
                2,
                0,
                (NODES.len() + self.blocks.read().len()) as u64,
            ),
            Node::Char(n) => (FileType::CharDevice, 1, n.rdev, 0),
            Node::Block(device, index) => (
                FileType::BlockDevice,
                1,
                makedev(BLOCK_MAJOR, 16 * index as u32),
                device.info().len_bytes(),
            ),
        };
        let m = self.meta.lock()[(ino - 1) as usize];
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
            // Linux reports the page size for devices; for a block device it is also the
            // cache's block size, the unit that avoids read-modify-write.
            blksize: CACHE_BLOCK_SIZE as u32,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
        })
    }

    fn device(&self, ino: Ino) -> Result<Device, Errno> {
        match self.node(ino)? {
            Node::Char(n) => Ok(n.device),
            Node::Root => Err(Errno::IsDir),
            // Callers route block device operations before asking (`block_device_of`).
            Node::Block(..) => Err(Errno::Inval),
        }
    }

    /// The block device an operation is a data operation on (read, write, fsync), if any.
    fn block_device_of(&self, op: &VnodeOp) -> Option<Arc<BlockDevice>> {
        let ino = match *op {
            VnodeOp::Read { ino, .. } | VnodeOp::Write { ino, .. } | VnodeOp::Fsync { ino } => ino,
            _ => return None,
        };
        if ino < FIRST_BLOCK_INO {
            return None;
        }
        match self.node(ino) {
            Ok(Node::Block(device, _)) => Some(device),
            _ => None,
        }
    }

    /// The inline half of a block device operation: sets `msg.result` and returns `true`
    /// if it completed now (a cache hit, end of file, an error found without I/O), else
    /// returns `false` with the message untouched but for `buf` (cleared for reads).
    fn block_inline(device: &BlockDevice, msg: &mut VnodeMsg) -> bool {
        let result = match msg.op {
            VnodeOp::Read {
                offset,
                len,
                direct: false,
                ..
            } if msg.external.is_none() => {
                match device.try_read_inline(offset, len, &mut msg.buf) {
                    Some(result) => result.map(VnodeDone::Count),
                    None => return false,
                }
            }
            VnodeOp::Write { offset, direct, .. } => {
                match device.check_write(offset, msg.data_len(), direct || msg.external.is_some()) {
                    Ok(0) => Ok(VnodeDone::Written {
                        count: 0,
                        end: offset,
                    }),
                    Ok(_) => return false,
                    Err(e) => Err(e),
                }
            }
            _ => return false,
        };
        msg.result = Some(result);
        true
    }

    /// Serves one operation synchronously.
    pub fn serve_op(&self, op: &VnodeOp, buf: &mut Vec<u8>) -> VnodeResult {
        match *op {
            VnodeOp::Lookup { dir, ref name } => {
                if dir != ROOT_INO {
                    self.node(dir)?;
                    return Err(Errno::NotDir);
                }
                if name.as_ref() == b".." || name.as_ref() == b"." {
                    return self.attr(ROOT_INO).map(VnodeDone::Node);
                }
                check_name(name)?;
                let ino = match NODES.iter().position(|n| n.name == name.as_ref()) {
                    Some(i) => i as u64 + 2,
                    None => {
                        let blocks = self.blocks.read();
                        let i = blocks
                            .iter()
                            .position(|b| *b.name == **name)
                            .ok_or(Errno::NoEnt)?;
                        FIRST_BLOCK_INO + i as u64
                    }
                };
                self.attr(ino).map(VnodeDone::Node)
            }
            VnodeOp::Create { .. }
            | VnodeOp::Mkdir { .. }
            | VnodeOp::Symlink { .. }
            | VnodeOp::Link { .. }
            | VnodeOp::Unlink { .. }
            | VnodeOp::Rmdir { .. }
            | VnodeOp::Rename { .. } => Err(Errno::Perm),
            VnodeOp::Open { ino } => {
                let attr = self.attr(ino)?;
                Ok(match self.node(ino) {
                    Ok(Node::Block(device, _)) => VnodeDone::OpenedDevice(attr, DeviceRef(device)),
                    _ => VnodeDone::Node(attr),
                })
            }
            VnodeOp::GetAttr { ino } => self.attr(ino).map(VnodeDone::Node),
            VnodeOp::Close { ino } | VnodeOp::Fsync { ino } if ino < FIRST_BLOCK_INO => {
                self.node(ino).map(|_| VnodeDone::Unit)
            }
            VnodeOp::Read { ino, .. } | VnodeOp::Write { ino, .. } | VnodeOp::Fsync { ino }
                if ino >= FIRST_BLOCK_INO =>
            {
                self.serve_block_inline(op, buf)
            }
            VnodeOp::Close { ino } | VnodeOp::Fsync { ino } => {
                self.node(ino).map(|_| VnodeDone::Unit)
            }
            VnodeOp::Read { ino, len, .. } => {
                let len = len.min(MAX_IO_LEN);
                buf.clear();
                let n = match self.device(ino)? {
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
                let count = match self.device(ino)? {
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
            VnodeOp::SetAttr { ino, ref set } => self.set_attr(ino, **set),
            VnodeOp::ReadDir { dir, cookie, max } => self.read_dir(dir, cookie, max),
            VnodeOp::ReadLink { ino } => self.node(ino).and(Err(Errno::Inval)),
        }
    }

    /// A block device data operation served inline (no task): `Again` when it needs the
    /// device.
    fn serve_block_inline(&self, op: &VnodeOp, buf: &mut Vec<u8>) -> VnodeResult {
        let Some(device) = self.block_device_of(op) else {
            return Err(Errno::NoEnt);
        };
        let mut msg = VnodeMsg::with_buf(op.clone(), core::mem::take(buf));
        let done = Devfs::block_inline(&device, &mut msg);
        *buf = msg.buf;
        match msg.result {
            Some(result) if done => result,
            _ => Err(Errno::Again),
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
        let (port, server) = self.clone().member_port(cpu);
        (
            FsPort::from_port(port, "devfs", ROOT_INO),
            self.serve_queued(server, None),
        )
    }

    /// Serves this devfs on every one of `cpus` CPUs: one executor port and one devfs
    /// task per CPU, joined in a per-CPU port (`Port::per_cpu`), so an operation is
    /// served on the CPU that asks: a block device read or write, cached or not, never
    /// crosses CPUs (and reaches the driver's queue of that CPU when the driver's port
    /// is per CPU too). Console reads that must wait are forwarded to CPU 0's task, so
    /// they still queue in one place in arrival order. Returns the port to mount and,
    /// per CPU in order, the task to spawn there.
    ///
    /// # Context
    /// Any CPU; allocates the ports. The tasks run forever (until the machine stops).
    pub fn serve_per_cpu(
        self: Arc<Self>,
        cpus: usize,
    ) -> (
        FsPort,
        Vec<impl Future<Output = ()> + Send + 'static + use<>>,
    ) {
        let cpus = cpus.max(1);
        let (members, servers): (Vec<_>, Vec<_>) = (0..cpus)
            .map(|cpu| self.clone().member_port(CpuId(cpu as u32)))
            .unzip();
        let home = members[0].clone();
        let tasks = servers
            .into_iter()
            .enumerate()
            .map(|(cpu, server)| {
                let home = (cpu != 0).then(|| home.clone());
                self.clone().serve_queued(server, home)
            })
            .collect();
        let port = Port::per_cpu(members).expect("at least one CPU");
        (FsPort::from_port(port, "devfs", ROOT_INO), tasks)
    }

    /// One executor port on `cpu` with devfs's inline handler, and its server.
    fn member_port(self: Arc<Self>, cpu: CpuId) -> (Port<VnodeMsg>, Server<VnodeMsg>) {
        let inline = self;
        let (port, server) = Port::executor(cpu, move |mut msg: VnodeMsg| {
            if let Some(device) = inline.block_device_of(&msg.op) {
                return if Devfs::block_inline(&device, &mut msg) {
                    Handled::Done(msg)
                } else {
                    Handled::Queue(msg)
                };
            }
            let result = inline.serve_op(&msg.op, &mut msg.buf);
            let must_wait = matches!(
                msg.op,
                VnodeOp::Read { ino, non_blocking: false, .. } if inline.device(ino) == Ok(Device::Console)
            );
            if must_wait && result == Err(Errno::Again) {
                return Handled::Queue(msg);
            }
            msg.result = Some(result);
            Handled::Done(msg)
        });
        (port, server)
    }

    /// The devfs task: serves what the handler queued. Console reads wait in arrival
    /// order for input (or go to `console_home`, CPU 0's port, when this task is
    /// another CPU's); each block request runs as its own future, all at once.
    async fn serve_queued(
        self: Arc<Self>,
        mut server: Server<VnodeMsg>,
        console_home: Option<Port<VnodeMsg>>,
    ) {
        let mut block_requests = FuturesUnordered::new();
        let mut console_reads: VecDeque<Request<VnodeMsg>> = VecDeque::new();
        poll_fn(|cx| {
            loop {
                let mut progress = false;
                while let Poll::Ready(request) = server.poll_recv(cx) {
                    progress = true;
                    match (self.block_device_of(&request.msg().op), &console_home) {
                        (Some(device), _) => block_requests.push(serve_block(device, request)),
                        (None, Some(home)) => request.forward(home),
                        (None, None) => console_reads.push_back(request),
                    }
                }
                while let Some(request) = console_reads.front_mut() {
                    let Poll::Ready(result) = self.poll_console_read(request, cx) else {
                        break;
                    };
                    let mut request = console_reads.pop_front().expect("front exists");
                    request.msg_mut().result = Some(result);
                    request.reply();
                    progress = true;
                }
                while let Poll::Ready(Some(())) = block_requests.poll_next_unpin(cx) {
                    progress = true;
                }
                if !progress {
                    return Poll::<()>::Pending;
                }
            }
        })
        .await
    }

    /// One queued console read: input, or `Intr` once the caller gave up.
    fn poll_console_read(
        &self,
        request: &mut Request<VnodeMsg>,
        cx: &mut Context<'_>,
    ) -> Poll<VnodeResult> {
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
    }

    fn set_attr(&self, ino: Ino, set: SetAttr) -> VnodeResult {
        self.node(ino)?;
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
            self.node(dir)?;
            return Err(Errno::NotDir);
        }
        let mut entries = Vec::new();
        let mut next_cookie = cookie;
        // Cookie c names inode c (and 0, 1 are `.` and `..`): stable, as devices are
        // only ever added at the end.
        let blocks = self.blocks.read();
        let total = FIRST_BLOCK_INO + blocks.len() as u64;
        while next_cookie < total && entries.len() < max {
            let (ino, kind, name): (Ino, FileType, &[u8]) = match next_cookie {
                0 => (ROOT_INO, FileType::Directory, b"."),
                1 => (ROOT_INO, FileType::Directory, b".."),
                c if c < FIRST_BLOCK_INO => (c, FileType::CharDevice, NODES[(c - 2) as usize].name),
                c => (
                    c,
                    FileType::BlockDevice,
                    &blocks[(c - FIRST_BLOCK_INO) as usize].name,
                ),
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
        if msg.external.is_some() {
            // Caller memory: only a block device's task can use it (`serve_block`).
            let done = self
                .block_device_of(&msg.op)
                .is_some_and(|device| Devfs::block_inline(&device, msg));
            if !done {
                msg.result = Some(Err(if self.block_device_of(&msg.op).is_some() {
                    Errno::Again
                } else {
                    Errno::Inval
                }));
            }
            return;
        }
        msg.result = Some(self.serve_op(&msg.op, &mut msg.buf));
    }
}

/// One queued block device request, served to the end: a read gives up (`Intr`) when its
/// caller aborts; a write and an fsync always finish (what reached the device must be
/// reflected in the cache before anything else is answered about those blocks).
async fn serve_block(device: Arc<BlockDevice>, mut request: Request<VnodeMsg>) {
    let op = request.msg().op.clone();
    let buf = core::mem::take(&mut request.msg_mut().buf);
    if let Some(external) = request.msg_mut().external.take() {
        // Zero-copy O_DIRECT on caller memory (the caller's pages stay pinned until the
        // device is done: the pieces in flight hold `external`'s owner).
        let result =
            match op {
                VnodeOp::Read { offset, .. } => {
                    let read = pin!(device.read_external(offset, *external));
                    let aborted = pin!(request.aborted());
                    match select(read, aborted).await {
                        Either::Left((result, _)) => result.map(VnodeDone::Count),
                        // As below: the device reads are orphaned with their memory.
                        Either::Right(((), _)) => Err(Errno::Intr),
                    }
                }
                VnodeOp::Write { offset, .. } => device
                    .write_external(offset, *external)
                    .await
                    .map(|count| VnodeDone::Written {
                        count,
                        end: offset + count as u64,
                    }),
                _ => Err(Errno::Inval),
            };
        request.msg_mut().result = Some(result);
        request.reply();
        return;
    }
    let (result, buf) = match op {
        VnodeOp::Read {
            offset,
            len,
            direct,
            ..
        } => {
            let read = pin!(device.read(offset, len, direct, buf));
            let aborted = pin!(request.aborted());
            match select(read, aborted).await {
                Either::Left(((result, buf), _)) => (result.map(VnodeDone::Count), buf),
                // The read's future is dropped here: its fills end, its device reads are
                // orphaned (the driver keeps their buffers until the device is done).
                Either::Right(((), _)) => (Err(Errno::Intr), Vec::new()),
            }
        }
        VnodeOp::Write { offset, direct, .. } => {
            let (result, buf) = device.write(offset, buf, direct).await;
            let result = result.map(|count| VnodeDone::Written {
                count,
                end: offset + count as u64,
            });
            (result, buf)
        }
        VnodeOp::Fsync { .. } => (device.fsync().await.map(|()| VnodeDone::Unit), buf),
        _ => (Err(Errno::Inval), buf),
    };
    let msg = request.msg_mut();
    msg.buf = buf;
    msg.result = Some(result);
    request.reply();
}
