// SPDX-License-Identifier: MIT OR Apache-2.0
//! Block devices in devfs and the block cache, against a fake block driver: a task on the
//! hosted machine serving `ports::proto::block` from memory, which records every request,
//! can hold requests until the test releases them, inject device errors and be read-only.
//!
//! Layout of every test: devfs's port and task on CPU 0, the fake driver on CPU 1, callers
//! on CPU 0 (to see inline completion) or CPU 1.

mod common;

use std::{
    collections::VecDeque,
    future::poll_fn,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
    },
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use abi::{Errno, FileType, OpenFlags};
use common::{TestEntropy, clock, inline, join, run_on, serial, tmpfs_vfs};
use executor::{CpuId, hosted::Machine};
use fs::{
    OpenFile, Vfs, VnodeDone, VnodeMsg, VnodeOp,
    bcache::BlockCache,
    devfs::{Devfs, makedev},
    platform::ConsoleDevice,
    service::try_complete_inline,
};
use ports::{
    AlwaysQueue, Port, Request, Server,
    proto::block::{
        BlockDone, BlockError, BlockInfo, BlockMsg, BlockRequest, ExternalBuf, PhysSegment,
    },
};

// ===================================================================================
// The fake driver
// ===================================================================================

#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Read { lba: u64, len: usize },
    Write { lba: u64, len: usize },
    Flush,
    WriteReplied { lba: u64 },
}

/// Where the fake "physical memory" for zero-copy requests starts.
const PHYS_BASE: u64 = 0x4000_0000;

struct FakeDisk {
    info: BlockInfo,
    data: Mutex<Vec<u8>>,
    /// "Physical memory" at `PHYS_BASE` that external buffers point into (the device
    /// reads and writes it by segment address, as a DMA would).
    phys: Mutex<Vec<u8>>,
    events: Mutex<Vec<Event>>,
    held: AtomicBool,
    waker: Mutex<Option<Waker>>,
    outstanding: AtomicUsize,
    max_outstanding: AtomicUsize,
    fail_reads: AtomicU32,
    fail_writes: AtomicU32,
}

fn pattern(i: usize) -> u8 {
    (i.wrapping_mul(31) ^ (i >> 9)) as u8
}

impl FakeDisk {
    fn new(sectors: u64, read_only: bool) -> Arc<FakeDisk> {
        let len = sectors as usize * 512;
        Arc::new(FakeDisk {
            info: BlockInfo {
                sectors,
                sector_size: 512,
                read_only,
                has_flush: true,
            },
            data: Mutex::new((0..len).map(pattern).collect()),
            phys: Mutex::new(vec![0; 4 << 20]),
            events: Mutex::new(Vec::new()),
            held: AtomicBool::new(false),
            waker: Mutex::new(None),
            outstanding: AtomicUsize::new(0),
            max_outstanding: AtomicUsize::new(0),
            fail_reads: AtomicU32::new(0),
            fail_writes: AtomicU32::new(0),
        })
    }

    /// Requests received from now on wait until `release`.
    fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
        if let Some(waker) = self.waker.lock().unwrap().take() {
            waker.wake();
        }
    }

    fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    fn requests(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| !matches!(e, Event::WriteReplied { .. }))
            .count()
    }

    fn bytes(&self, start: usize, len: usize) -> Vec<u8> {
        self.data.lock().unwrap()[start..start + len].to_vec()
    }

    /// Waits (on the test thread) until `n` requests are held at the device.
    #[track_caller]
    fn wait_outstanding(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.outstanding.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "the device never saw {n} requests"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    async fn run(self: Arc<Self>, mut server: Server<BlockMsg>) {
        let mut parked: VecDeque<Request<BlockMsg>> = VecDeque::new();
        poll_fn(|cx: &mut Context<'_>| {
            // Registered before looking at `held`, so a `release` is never missed.
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            while let Poll::Ready(request) = server.poll_recv(cx) {
                let event = match request.msg().request {
                    BlockRequest::Read { lba } => Event::Read {
                        lba,
                        len: request.msg().data_len(),
                    },
                    BlockRequest::Write { lba } => Event::Write {
                        lba,
                        len: request.msg().data_len(),
                    },
                    BlockRequest::Flush => Event::Flush,
                    BlockRequest::Info => panic!("devfs does not ask for Info"),
                };
                self.events.lock().unwrap().push(event);
                let now = self.outstanding.fetch_add(1, Ordering::SeqCst) + 1;
                self.max_outstanding.fetch_max(now, Ordering::SeqCst);
                parked.push_back(request);
            }
            if !self.held.load(Ordering::SeqCst) {
                while let Some(request) = parked.pop_front() {
                    self.serve(request);
                }
            }
            Poll::<()>::Pending
        })
        .await
    }

    fn serve(&self, mut request: Request<BlockMsg>) {
        let msg = request.msg_mut();
        let take_failure = |counter: &AtomicU32| {
            counter
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        };
        let result = match msg.request {
            BlockRequest::Read { lba } if msg.external.is_some() => {
                let ext = msg.external.as_ref().unwrap();
                self.info.check_range(lba, ext.len()).map(|()| {
                    let start = lba as usize * 512;
                    let data = self.data.lock().unwrap()[start..start + ext.len()].to_vec();
                    self.dma(ext, |phys, at| {
                        phys.copy_from_slice(&data[at..at + phys.len()])
                    });
                    BlockDone::Done
                })
            }
            BlockRequest::Write { lba } if msg.external.is_some() => {
                let ext = msg.external.as_ref().unwrap();
                let result = self.info.check_range(lba, ext.len()).map(|()| {
                    let mut data = vec![0; ext.len()];
                    self.dma(ext, |phys, at| {
                        data[at..at + phys.len()].copy_from_slice(phys)
                    });
                    let start = lba as usize * 512;
                    self.data.lock().unwrap()[start..start + data.len()].copy_from_slice(&data);
                    BlockDone::Done
                });
                self.events
                    .lock()
                    .unwrap()
                    .push(Event::WriteReplied { lba });
                result
            }
            BlockRequest::Read { lba } => {
                self.info.check_range(lba, msg.buf.len()).and_then(|()| {
                    if take_failure(&self.fail_reads) {
                        return Err(BlockError::Io);
                    }
                    let start = lba as usize * 512;
                    let len = msg.buf.len();
                    msg.buf
                        .copy_from_slice(&self.data.lock().unwrap()[start..start + len]);
                    Ok(BlockDone::Done)
                })
            }
            BlockRequest::Write { lba } => {
                let result = if self.info.read_only {
                    Err(BlockError::ReadOnly)
                } else {
                    self.info.check_range(lba, msg.buf.len()).and_then(|()| {
                        if take_failure(&self.fail_writes) {
                            return Err(BlockError::Io);
                        }
                        let start = lba as usize * 512;
                        self.data.lock().unwrap()[start..start + msg.buf.len()]
                            .copy_from_slice(&msg.buf);
                        Ok(BlockDone::Done)
                    })
                };
                self.events
                    .lock()
                    .unwrap()
                    .push(Event::WriteReplied { lba });
                result
            }
            BlockRequest::Flush => Ok(BlockDone::Done),
            BlockRequest::Info => Ok(BlockDone::Info(self.info)),
        };
        msg.complete(result);
        self.outstanding.fetch_sub(1, Ordering::SeqCst);
        request.reply();
    }
}

impl FakeDisk {
    /// Calls `f` with each segment's "physical memory" and its offset in the buffer.
    fn dma(&self, ext: &ExternalBuf, mut f: impl FnMut(&mut [u8], usize)) {
        let mut phys = self.phys.lock().unwrap();
        let mut at = 0;
        for segment in ext.segments() {
            let start = (segment.addr - PHYS_BASE) as usize;
            f(&mut phys[start..start + segment.len as usize], at);
            at += segment.len as usize;
        }
    }

    /// `len` bytes of "physical memory" at `offset`, as pinned user pages would come
    /// (one segment per 4 KiB page), owned by `owner`.
    fn external(&self, offset: u64, len: usize, owner: &Arc<()>) -> ExternalBuf {
        let mut segments = Vec::new();
        let (mut at, end) = (PHYS_BASE + offset, PHYS_BASE + offset + len as u64);
        while at < end {
            let next = ((at / 4096 + 1) * 4096).min(end);
            segments.push(PhysSegment {
                addr: at,
                len: (next - at) as u32,
            });
            at = next;
        }
        ExternalBuf::new(segments, owner.clone())
    }

    fn phys_bytes(&self, offset: usize, len: usize) -> Vec<u8> {
        self.phys.lock().unwrap()[offset..offset + len].to_vec()
    }
}

/// A console with no input, ever: a blocking read of it waits in the devfs task.
struct SilentConsole;

impl ConsoleDevice for SilentConsole {
    fn write(&self, data: &[u8]) -> usize {
        data.len()
    }

    fn try_read(&self, _buf: &mut [u8]) -> Result<usize, Errno> {
        Err(Errno::Again)
    }

    fn poll_read(&self, _cx: &mut Context<'_>, _buf: &mut [u8]) -> Poll<Result<usize, Errno>> {
        Poll::Pending
    }
}

// ===================================================================================
// Setup and helpers
// ===================================================================================

struct Setup {
    machine: Machine,
    vfs: Arc<Vfs>,
    devfs: Arc<Devfs>,
    fake: Arc<FakeDisk>,
}

/// devfs served by its task on CPU 0 with `/dev/vda` on a fake disk of `sectors`, the
/// driver on CPU 1, a cache of `cache_bytes`.
fn setup(sectors: u64, read_only: bool, cache_bytes: usize) -> Setup {
    let machine = Machine::start(2);
    let fake = FakeDisk::new(sectors, read_only);
    let (port, server) = Port::executor(CpuId(1), AlwaysQueue);
    drop(
        machine
            .spawn_on(CpuId(1), fake.clone().run(server))
            .unwrap(),
    );
    let devfs = Arc::new(
        Devfs::new(
            clock(),
            Arc::new(TestEntropy::new(7)),
            Arc::new(SilentConsole),
        )
        .with_block_cache(Arc::new(BlockCache::new(cache_bytes))),
    );
    devfs.add_block("vda", port, fake.info).unwrap();
    let (fs_port, task) = devfs.clone().serve_on(CpuId(0));
    drop(machine.spawn_on(CpuId(0), task).unwrap());
    let (vfs, _) = tmpfs_vfs();
    let root = vfs.root();
    inline(vfs.mkdir(&root, b"/dev", 0o755)).unwrap();
    inline(vfs.mount(&root, b"/dev", fs_port)).unwrap();
    Setup {
        machine,
        vfs,
        devfs,
        fake,
    }
}

impl Setup {
    fn open(&self, flags: OpenFlags) -> Arc<OpenFile> {
        let vfs = self.vfs.clone();
        run_on(&self.machine, 1, async move {
            vfs.open(&vfs.root(), b"/dev/vda", flags, 0).await
        })
        .expect("open /dev/vda")
    }

    fn pread(
        &self,
        cpu: u32,
        file: &Arc<OpenFile>,
        offset: u64,
        len: usize,
    ) -> (Result<usize, Errno>, Vec<u8>) {
        let (vfs, file) = (self.vfs.clone(), file.clone());
        run_on(&self.machine, cpu, async move {
            vfs.pread(&file, Vec::new(), len, offset).await
        })
    }

    /// A pread on CPU 0 that must complete on its first poll (no task switch).
    fn pread_inline(&self, file: &Arc<OpenFile>, offset: u64, len: usize) -> Option<Vec<u8>> {
        let (vfs, file) = (self.vfs.clone(), file.clone());
        run_on(&self.machine, 0, async move {
            try_complete_inline(vfs.pread(&file, Vec::new(), len, offset)).map(|(r, data)| {
                assert_eq!(r, Ok(data.len()));
                data
            })
        })
    }

    fn pwrite(&self, file: &Arc<OpenFile>, offset: u64, data: Vec<u8>) -> Result<usize, Errno> {
        let (vfs, file) = (self.vfs.clone(), file.clone());
        run_on(&self.machine, 1, async move {
            vfs.pwrite(&file, data, offset).await.0
        })
    }

    /// Runs `f` in a task on CPU 0, the devfs port's CPU (where every devfs operation that
    /// needs no device completes inline).
    fn on_cpu0<T: Send + 'static>(&self, f: impl FnOnce(Arc<Vfs>) -> T + Send + 'static) -> T {
        let vfs = self.vfs.clone();
        run_on(&self.machine, 0, async move { f(vfs) })
    }

    fn expected(&self, offset: usize, len: usize) -> Vec<u8> {
        self.fake.bytes(offset, len)
    }
}

fn rw() -> OpenFlags {
    OpenFlags::READ_WRITE
}

fn direct() -> OpenFlags {
    OpenFlags::READ_WRITE | OpenFlags::DIRECT
}

const MIB: u64 = 1 << 20;

// ===================================================================================
// Tests
// ===================================================================================

#[test]
fn block_devices_have_attributes_stable_inodes_and_are_listed() {
    let _serial = serial();
    let s = setup(2048, false, 64 << 10);
    let (other, _server) = Port::executor(CpuId(1), AlwaysQueue);
    let info = BlockInfo {
        sectors: 100,
        sector_size: 512,
        read_only: true,
        has_flush: false,
    };
    s.devfs.add_block("vdb", other.clone(), info).unwrap();
    assert_eq!(
        s.devfs.add_block("vdb", other.clone(), info),
        Err(Errno::Exist)
    );
    assert_eq!(
        s.devfs.add_block("null", other.clone(), info),
        Err(Errno::Exist)
    );
    assert_eq!(
        s.devfs.add_block("a/b", other.clone(), info),
        Err(Errno::Inval)
    );
    let odd = BlockInfo {
        sector_size: 520,
        ..info
    };
    assert_eq!(s.devfs.add_block("vdc", other, odd), Err(Errno::Inval));

    let (vda, vdb, entries, unlink) = s.on_cpu0(|vfs| {
        let root = vfs.root();
        let vda = inline(vfs.stat(&root, b"/dev/vda", true)).unwrap();
        let vdb = inline(vfs.stat(&root, b"/dev/vdb", true)).unwrap();
        let flags = OpenFlags::READ_ONLY | OpenFlags::DIRECTORY;
        let dir = inline(vfs.open(&root, b"/dev", flags, 0)).unwrap();
        let entries = inline(vfs.readdir(&dir, 100)).unwrap();
        // Still nameable only by the kernel.
        let unlink = inline(vfs.unlink(&root, b"/dev/vda"));
        (vda, vdb, entries, unlink)
    });
    assert_eq!(vda.st_mode & abi::stat::S_IFMT, abi::stat::S_IFBLK);
    assert_eq!(vda.st_size, 2048 * 512);
    assert_eq!(vda.st_rdev, makedev(254, 0));
    assert_eq!(vda.st_blksize, 4096);
    assert_eq!(vdb.st_rdev, makedev(254, 16));
    assert_eq!(vdb.st_ino, vda.st_ino + 1);
    assert_eq!(vdb.st_size, 51200);
    let names: Vec<(&[u8], FileType)> = entries.iter().map(|e| (e.name.as_ref(), e.kind)).collect();
    assert_eq!(
        &names[names.len() - 2..],
        &[
            (&b"vda"[..], FileType::BlockDevice),
            (&b"vdb"[..], FileType::BlockDevice)
        ]
    );
    assert_eq!(names.len(), 2 + 5 + 2);
    assert_eq!(entries[names.len() - 2].ino, vda.st_ino);
    assert_eq!(unlink, Err(Errno::Perm));
    s.machine.shutdown();
}

#[test]
fn a_name_looked_up_before_add_block_appears_after_invalidate_name() {
    let _serial = serial();
    let s = setup(64, false, 64 << 10);
    let stat = |s: &Setup| s.on_cpu0(|vfs| inline(vfs.stat(&vfs.root(), b"/dev/vdz", true)).err());
    assert_eq!(stat(&s), Some(Errno::NoEnt));
    let (port, _server) = Port::executor(CpuId(1), AlwaysQueue);
    s.devfs.add_block("vdz", port, s.fake.info).unwrap();
    assert_eq!(
        stat(&s),
        Some(Errno::NoEnt),
        "the negative entry is still cached"
    );
    s.on_cpu0(|vfs| {
        let root = vfs.root();
        let dev = inline(vfs.lookup(&root, b"/dev", true)).unwrap();
        vfs.invalidate_name(&dev, b"vdz");
    });
    assert_eq!(stat(&s), None);
    s.machine.shutdown();
}

#[test]
fn a_cached_read_is_answered_inline_without_the_device() {
    let _serial = serial();
    let s = setup(2048, false, 64 << 10);
    let f = s.open(rw());
    let (r, data) = s.pread(1, &f, 8192, 4096);
    assert_eq!(r, Ok(4096));
    assert_eq!(data, s.expected(8192, 4096));
    assert_eq!(s.fake.events(), vec![Event::Read { lba: 16, len: 4096 }]);

    // Any byte range inside cached blocks: first poll, on the port's CPU, no request.
    assert_eq!(s.pread_inline(&f, 8192, 4096), Some(s.expected(8192, 4096)));
    assert_eq!(s.pread_inline(&f, 8200, 100), Some(s.expected(8200, 100)));
    // From the other CPU it crosses to CPU 0 and is answered in the handler there.
    let (r, data) = s.pread(1, &f, 9000, 3000);
    assert_eq!((r, data), (Ok(3000), s.expected(9000, 3000)));
    assert_eq!(s.fake.requests(), 1, "every hit was answered by the cache");
    let stats = s.devfs.block_cache().stats();
    assert_eq!((stats.hits, stats.misses), (3, 1));
    // A range reaching into an uncached block is not inline.
    assert_eq!(s.pread_inline(&f, 12000, 500), None);
    s.machine.shutdown();
}

#[test]
fn many_reads_are_in_flight_at_once_even_behind_a_waiting_console_read() {
    let _serial = serial();
    let s = setup(16384, false, 1 << 20);
    let f = s.open(rw());
    // A console read that will never get input, queued in the devfs task first.
    let vfs = s.vfs.clone();
    let console = s
        .machine
        .spawn_on(CpuId(1), async move {
            let tty = vfs
                .open(&vfs.root(), b"/dev/console", OpenFlags::READ_ONLY, 0)
                .await
                .unwrap();
            executor::timeout(Duration::from_secs(30), vfs.read(&tty, Vec::new(), 8))
                .await
                .is_err()
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(20));

    s.fake.hold();
    let readers: Vec<_> = (0..8u64)
        .map(|i| {
            let (vfs, f) = (s.vfs.clone(), f.clone());
            s.machine
                .spawn_on(CpuId(1), async move {
                    vfs.pread(&f, Vec::new(), 4096, i * 64 * 4096).await
                })
                .unwrap()
        })
        .collect();
    s.fake.wait_outstanding(8);
    assert_eq!(s.fake.max_outstanding.load(Ordering::SeqCst), 8);
    s.fake.release();
    for (i, reader) in readers.into_iter().enumerate() {
        let (r, data) = join(reader);
        assert_eq!(r, Ok(4096));
        assert_eq!(data, s.expected(i * 64 * 4096, 4096));
    }
    assert!(!console.is_finished(), "the console read is still waiting");
    s.machine.shutdown();
}

#[test]
fn a_big_read_sends_its_missing_runs_at_once_and_caches_them() {
    let _serial = serial();
    let s = setup(8192, false, 4 << 20);
    let f = s.open(rw());
    // Cache block 1 first: the 1 MiB read then has two runs of misses around it.
    assert_eq!(s.pread(1, &f, 4096, 10).0, Ok(10));
    s.fake.hold();
    let (vfs, f2) = (s.vfs.clone(), f.clone());
    let reader = s
        .machine
        .spawn_on(CpuId(1), async move {
            vfs.pread(&f2, Vec::new(), MIB as usize, 0).await
        })
        .unwrap();
    // Block 0, then blocks 2..256 in runs of at most 256 KiB (64 blocks): 1 + 4.
    s.fake.wait_outstanding(5);
    s.fake.release();
    let (r, data) = join(reader);
    assert_eq!(r, Ok(MIB as usize));
    assert_eq!(data, s.expected(0, MIB as usize));
    let reads: Vec<Event> = s.fake.events()[1..].to_vec();
    assert_eq!(reads[0], Event::Read { lba: 0, len: 4096 });
    assert_eq!(
        reads[1],
        Event::Read {
            lba: 16,
            len: 64 * 4096
        }
    );
    assert_eq!(reads.len(), 5);
    assert_eq!(
        s.pread_inline(&f, 500_000, 4096),
        Some(s.expected(500_000, 4096))
    );
    s.machine.shutdown();
}

#[test]
fn partial_writes_read_modify_write_whole_sectors() {
    let _serial = serial();
    let s = setup(2048, false, 64 << 10);
    let f = s.open(rw());
    let mut model = s.expected(0, 2048 * 512);

    // Inside one sector, nothing cached: read sector 1, write sector 1.
    assert_eq!(s.pwrite(&f, 1000, vec![0xaa; 10]), Ok(10));
    model[1000..1010].fill(0xaa);
    assert_eq!(
        s.fake.events(),
        vec![
            Event::Read { lba: 1, len: 512 },
            Event::Write { lba: 1, len: 512 },
            Event::WriteReplied { lba: 1 }
        ]
    );
    assert_eq!(s.fake.bytes(0, 2048 * 512), model);

    // Across sectors and a cache block boundary: head and tail sectors read, 11 written.
    let data: Vec<u8> = (0..5000).map(|i| (i % 251) as u8).collect();
    assert_eq!(s.pwrite(&f, 4000, data.clone()), Ok(5000));
    model[4000..9000].copy_from_slice(&data);
    assert_eq!(s.fake.bytes(0, 2048 * 512), model);
    let events = s.fake.events()[3..].to_vec();
    assert!(events.contains(&Event::Read { lba: 7, len: 512 }));
    assert!(events.contains(&Event::Read { lba: 17, len: 512 }));
    assert!(events.contains(&Event::Write {
        lba: 7,
        len: 11 * 512
    }));

    // With the block cached, the old sector comes from the cache: no device read.
    assert_eq!(s.pread(1, &f, 20480, 4096).0, Ok(4096));
    let before = s.fake.events().len();
    assert_eq!(s.pwrite(&f, 20485, vec![1, 2, 3]), Ok(3));
    model[20485..20488].copy_from_slice(&[1, 2, 3]);
    assert_eq!(
        s.fake.events()[before..],
        [
            Event::Write { lba: 40, len: 512 },
            Event::WriteReplied { lba: 40 }
        ]
    );
    // Write-through: the cached block has the new bytes, answered inline.
    assert_eq!(
        s.pread_inline(&f, 20480, 4096),
        Some(model[20480..24576].to_vec())
    );
    let (r, all) = s.pread(1, &f, 0, 2048 * 512);
    assert_eq!(r, Ok(2048 * 512));
    assert!(all == model, "the whole device reads back as the model");
    s.machine.shutdown();
}

#[test]
fn overlapping_partial_writes_do_not_lose_each_others_bytes() {
    let _serial = serial();
    let s = setup(64, false, 64 << 10);
    let f = s.open(rw());
    let mut model = s.expected(0, 64 * 512);
    s.fake.hold();
    // Sixteen writes of two bytes each into the same sector, all at once.
    let writers: Vec<_> = (0..16usize)
        .map(|i| {
            let (vfs, f) = (s.vfs.clone(), f.clone());
            s.machine
                .spawn_on(CpuId(1), async move {
                    vfs.pwrite(&f, vec![i as u8 + 1; 2], 100 + 2 * i as u64)
                        .await
                        .0
                })
                .unwrap()
        })
        .collect();
    s.fake.wait_outstanding(1);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        s.fake.outstanding.load(Ordering::SeqCst),
        1,
        "writes to one sector wait for each other"
    );
    s.fake.release();
    for (i, w) in writers.into_iter().enumerate() {
        assert_eq!(join(w), Ok(2));
        model[100 + 2 * i..102 + 2 * i].fill(i as u8 + 1);
    }
    assert_eq!(s.fake.bytes(0, 64 * 512), model);
    s.machine.shutdown();
}

#[test]
fn end_of_device_gives_eof_short_counts_and_enospc() {
    let _serial = serial();
    // 100 sectors = 51200 bytes: the last cache block is half a block.
    let s = setup(100, false, 64 << 10);
    let f = s.open(rw());
    assert_eq!(s.pread(1, &f, 51200, 100), (Ok(0), Vec::new()));
    assert_eq!(s.pread(1, &f, 1 << 40, 100), (Ok(0), Vec::new()));
    let (r, data) = s.pread(1, &f, 51000, 1000);
    assert_eq!((r, data), (Ok(200), s.expected(51000, 200)));
    assert_eq!(s.fake.events(), vec![Event::Read { lba: 96, len: 2048 }]);
    assert_eq!(
        s.pread_inline(&f, 49152, 4096),
        Some(s.expected(49152, 2048))
    );
    assert_eq!(s.pwrite(&f, 51200, vec![1; 10]), Err(Errno::NoSpc));
    assert_eq!(s.pwrite(&f, 60000, vec![1; 10]), Err(Errno::NoSpc));
    assert_eq!(s.pwrite(&f, 51000, vec![9; 1000]), Ok(200));
    assert_eq!(s.fake.bytes(51000, 200), vec![9; 200]);
    assert_eq!(s.pread_inline(&f, 51000, 300), Some(vec![9; 200]));
    assert_eq!(s.pwrite(&f, 60000, Vec::new()), Ok(0));
    s.machine.shutdown();
}

#[test]
fn fsync_flushes_only_after_earlier_writes_completed() {
    let _serial = serial();
    let s = setup(64, false, 64 << 10);
    let f = s.open(rw());
    s.fake.hold();
    let (vfs, f1) = (s.vfs.clone(), f.clone());
    let writer = s
        .machine
        .spawn_on(CpuId(1), async move {
            vfs.pwrite(&f1, vec![5; 512], 512).await.0
        })
        .unwrap();
    s.fake.wait_outstanding(1);
    let (vfs, f2) = (s.vfs.clone(), f.clone());
    let syncer = s
        .machine
        .spawn_on(CpuId(1), async move { vfs.fsync(&f2).await })
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !s.fake.events().contains(&Event::Flush),
        "no flush while the write is at the device"
    );
    s.fake.release();
    assert_eq!(join(writer), Ok(512));
    assert_eq!(join(syncer), Ok(()));
    let events = s.fake.events();
    let replied = events
        .iter()
        .position(|e| *e == Event::WriteReplied { lba: 1 })
        .unwrap();
    let flush = events.iter().position(|e| *e == Event::Flush).unwrap();
    assert!(replied < flush, "{events:?}");
    s.machine.shutdown();
}

#[test]
fn a_device_error_is_eio_and_does_not_poison_the_cache() {
    let _serial = serial();
    let s = setup(64, false, 64 << 10);
    let f = s.open(rw());
    s.fake.fail_reads.store(1, Ordering::SeqCst);
    assert_eq!(s.pread(1, &f, 4096, 100), (Err(Errno::Io), Vec::new()));
    // Nothing was cached by the failed read, and nothing is stuck loading.
    assert_eq!(s.pread_inline(&f, 4096, 100), None);
    assert_eq!(s.pread(1, &f, 4096, 100).1, s.expected(4096, 100));

    // A failed write leaves the device unchanged and the cache without the block.
    assert_eq!(s.pread_inline(&f, 4096, 100), Some(s.expected(4096, 100)));
    s.fake.fail_writes.store(1, Ordering::SeqCst);
    let before = s.expected(0, 64 * 512);
    assert_eq!(s.pwrite(&f, 4096, vec![7; 512]), Err(Errno::Io));
    assert_eq!(s.fake.bytes(0, 64 * 512), before);
    assert_eq!(s.pread_inline(&f, 4096, 100), None, "block forgotten");
    assert_eq!(s.pread(1, &f, 4096, 100).1, s.expected(4096, 100));
    s.machine.shutdown();
}

#[test]
fn a_read_only_device_refuses_writes_with_erofs() {
    let _serial = serial();
    let s = setup(64, true, 64 << 10);
    let f = s.open(rw());
    assert_eq!(s.pwrite(&f, 0, vec![1; 512]), Err(Errno::RoFs));
    let g = s.open(direct());
    assert_eq!(s.pwrite(&g, 0, vec![1; 512]), Err(Errno::RoFs));
    assert_eq!(s.fake.requests(), 0, "refused without asking the device");
    assert_eq!(s.pread(1, &f, 0, 512).1, s.expected(0, 512));
    s.machine.shutdown();
}

#[test]
fn an_aborted_queued_read_leaves_the_cache_consistent() {
    let _serial = serial();
    let s = setup(64, false, 64 << 10);
    let f = s.open(rw());
    s.fake.hold();
    let (vfs, f1) = (s.vfs.clone(), f.clone());
    let gave_up = run_on(&s.machine, 1, async move {
        executor::timeout(
            Duration::from_millis(30),
            vfs.pread(&f1, Vec::new(), 100, 5 * 4096),
        )
        .await
        .is_err()
    });
    assert!(gave_up);
    assert_eq!(s.fake.outstanding.load(Ordering::SeqCst), 1);
    // The abandoned fill is gone: a new read of the block reads it again (it does not
    // wait for a fill nobody will finish).
    let (vfs, f2) = (s.vfs.clone(), f.clone());
    let again = s
        .machine
        .spawn_on(CpuId(1), async move {
            vfs.pread(&f2, Vec::new(), 100, 5 * 4096).await
        })
        .unwrap();
    s.fake.wait_outstanding(2);
    s.fake.release();
    let (r, data) = join(again);
    assert_eq!((r, data), (Ok(100), s.expected(5 * 4096, 100)));
    assert_eq!(
        s.pread_inline(&f, 5 * 4096, 4096),
        Some(s.expected(5 * 4096, 4096))
    );
    let stats = s.devfs.block_cache().stats();
    assert_eq!((stats.misses, stats.coalesced), (2, 0));
    s.machine.shutdown();
}

#[test]
fn concurrent_misses_on_one_block_share_one_device_read() {
    let _serial = serial();
    let s = setup(64, false, 64 << 10);
    let f = s.open(rw());
    s.fake.hold();
    let spawn_read = |offset: u64| {
        let (vfs, f) = (s.vfs.clone(), f.clone());
        s.machine
            .spawn_on(CpuId(1), async move {
                vfs.pread(&f, Vec::new(), 50, offset).await
            })
            .unwrap()
    };
    let a = spawn_read(8192);
    s.fake.wait_outstanding(1);
    let b = spawn_read(8300);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(s.fake.outstanding.load(Ordering::SeqCst), 1);
    s.fake.release();
    assert_eq!(join(a), (Ok(50), s.expected(8192, 50)));
    assert_eq!(join(b), (Ok(50), s.expected(8300, 50)));
    assert_eq!(s.fake.requests(), 1);
    assert_eq!(s.devfs.block_cache().stats().coalesced, 1);
    s.machine.shutdown();
}

#[test]
fn o_direct_bypasses_the_cache_and_wants_whole_sectors() {
    let _serial = serial();
    let s = setup(8192, false, 4 << 20);
    let d = s.open(direct());
    let f = s.open(rw());
    assert_eq!(s.pread(1, &d, 100, 512).0, Err(Errno::Inval));
    assert_eq!(s.pread(1, &d, 512, 100).0, Err(Errno::Inval));
    assert_eq!(s.pwrite(&d, 512, vec![0; 100]), Err(Errno::Inval));
    assert_eq!(s.pwrite(&d, 100, vec![0; 512]), Err(Errno::Inval));
    assert_eq!(s.pread(1, &d, 512, 0), (Ok(0), Vec::new()));
    assert_eq!(s.pwrite(&d, 512, Vec::new()), Ok(0));
    assert_eq!(s.fake.requests(), 0);

    // Every direct read goes to the device; nothing is cached.
    for _ in 0..2 {
        assert_eq!(
            s.pread(0, &d, 4096, 4096),
            (Ok(4096), s.expected(4096, 4096))
        );
    }
    assert_eq!(s.fake.requests(), 2);
    assert_eq!(s.devfs.block_cache().stats().resident, 0);

    // 1 MiB each way, split into 256 KiB device requests sent together.
    s.fake.hold();
    let (vfs, d1) = (s.vfs.clone(), d.clone());
    let reader = s
        .machine
        .spawn_on(CpuId(1), async move {
            vfs.pread(&d1, Vec::new(), MIB as usize, MIB).await
        })
        .unwrap();
    s.fake.wait_outstanding(4);
    s.fake.release();
    assert_eq!(
        join(reader),
        (Ok(MIB as usize), s.expected(MIB as usize, MIB as usize))
    );

    // A direct write keeps cached copies true: cache block 0, overwrite it directly.
    assert_eq!(s.pread(1, &f, 0, 4096).0, Ok(4096));
    let data: Vec<u8> = (0..MIB as usize).map(|i| (i % 13) as u8).collect();
    assert_eq!(s.pwrite(&d, 0, data.clone()), Ok(MIB as usize));
    assert_eq!(s.fake.bytes(0, MIB as usize), data);
    let writes = s
        .fake
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Write { len, .. } if *len == 256 << 10))
        .count();
    assert_eq!(writes, 4);
    assert_eq!(s.pread_inline(&f, 0, 4096), Some(data[..4096].to_vec()));
    s.machine.shutdown();
}

#[test]
fn zero_copy_direct_io_moves_caller_memory_and_forgets_overlapped_cached_blocks() {
    let _serial = serial();
    let s = setup(8192, false, 4 << 20);
    let d = s.open(direct());
    let f = s.open(rw());
    let owner = Arc::new(());
    let read_ext = |file: &Arc<OpenFile>, buf: ExternalBuf, at: u64| {
        let (vfs, file) = (s.vfs.clone(), file.clone());
        s.machine
            .spawn_on(CpuId(1), async move {
                vfs.read_external(&file, buf, Some(at)).await
            })
            .unwrap()
    };
    let write_ext = |buf: ExternalBuf, at: u64| {
        let (vfs, file) = (s.vfs.clone(), d.clone());
        run_on(&s.machine, 1, async move {
            vfs.write_external(&file, buf, Some(at)).await
        })
    };

    // The alignment rules of O_DIRECT, checked before the device sees anything; only
    // O_DIRECT block-device files take caller memory.
    assert_eq!(
        join(read_ext(&d, s.fake.external(0, 100, &owner), 0)),
        Err(Errno::Inval)
    );
    assert_eq!(
        join(read_ext(&d, s.fake.external(0, 512, &owner), 7)),
        Err(Errno::Inval)
    );
    assert_eq!(
        write_ext(s.fake.external(0, 100, &owner), 0),
        Err(Errno::Inval)
    );
    assert_eq!(
        join(read_ext(&f, s.fake.external(0, 512, &owner), 0)),
        Err(Errno::BadF)
    );
    assert_eq!(s.fake.requests(), 0);

    // A cached block, then a direct 1 MiB write over it from caller memory (an odd
    // address: the memory's alignment is free): four 256 KiB requests, the disk holds
    // the data, and the cache forgot the block rather than keeping the old bytes.
    assert_eq!(s.pread(1, &f, 0, 4096).0, Ok(4096));
    let data: Vec<u8> = (0..MIB as usize).map(|i| (i % 251) as u8).collect();
    s.fake.phys.lock().unwrap()[3..3 + MIB as usize].copy_from_slice(&data);
    assert_eq!(
        write_ext(s.fake.external(3, MIB as usize, &owner), 0),
        Ok(MIB as usize)
    );
    assert_eq!(s.fake.bytes(0, MIB as usize), data);
    let writes = s
        .fake
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Write { len, .. } if *len == 256 << 10))
        .count();
    assert_eq!(writes, 4);
    assert_eq!(s.pread_inline(&f, 0, 4096), None, "the stale block is gone");
    assert_eq!(s.pread(1, &f, 0, 4096), (Ok(4096), data[..4096].to_vec()));
    assert_eq!(Arc::strong_count(&owner), 1, "no piece outlives the write");

    // A direct 1 MiB read into caller memory: all pieces in flight at once, and the
    // memory's owner is held until the device answered every one.
    s.fake.hold();
    let before = s.fake.requests();
    let reader = read_ext(
        &d,
        s.fake.external(2 * MIB + 512, MIB as usize, &owner),
        MIB,
    );
    s.fake.wait_outstanding(4);
    assert_eq!(s.fake.requests() - before, 4);
    assert!(
        Arc::strong_count(&owner) > 1,
        "the device's pieces hold the memory"
    );
    s.fake.release();
    assert_eq!(join(reader), Ok(MIB as usize));
    assert_eq!(
        s.fake.phys_bytes(2 * MIB as usize + 512, MIB as usize),
        s.expected(MIB as usize, MIB as usize)
    );
    assert_eq!(Arc::strong_count(&owner), 1);
    assert_eq!(
        s.devfs.block_cache().stats().resident,
        1,
        "direct reads cache nothing"
    );

    // Across the end: short; at the end: end of file.
    let end = 8192 * 512;
    assert_eq!(
        join(read_ext(&d, s.fake.external(0, 8192, &owner), end - 4096)),
        Ok(4096)
    );
    assert_eq!(
        join(read_ext(&d, s.fake.external(0, 512, &owner), end)),
        Ok(0)
    );

    // Devfs handed the device over at open, so the reads above went to it directly;
    // the message route (an external buffer sent to devfs's port) serves the same.
    assert!(d.block_device().is_some() && f.block_device().is_some());
    let before = s.fake.requests();
    let (ino, ext) = (d.vnode().ino(), s.fake.external(0, 4096, &owner));
    let port = d.vnode().port().clone();
    let reply = s
        .machine
        .spawn_on(CpuId(1), async move {
            let op = VnodeOp::Read {
                ino,
                offset: 8192,
                len: 4096,
                non_blocking: false,
                direct: true,
                into: None,
            };
            port.call(VnodeMsg::with_external(op, ext)).await
        })
        .unwrap();
    assert_eq!(join(reply).take_result(), Ok(VnodeDone::Count(4096)));
    assert_eq!(s.fake.requests() - before, 1);
    assert_eq!(s.fake.phys_bytes(0, 4096), s.expected(8192, 4096));
    s.machine.shutdown();
}

#[test]
fn eviction_under_capacity_pressure_is_counted() {
    let _serial = serial();
    // Four cache blocks.
    let s = setup(256, false, 4 * 4096);
    let f = s.open(rw());
    for block in 0..8u64 {
        let (r, data) = s.pread(1, &f, block * 4096, 4096);
        assert_eq!(
            (r, data),
            (Ok(4096), s.expected(block as usize * 4096, 4096))
        );
    }
    let stats = s.devfs.block_cache().stats();
    assert_eq!(
        (
            stats.misses,
            stats.evictions,
            stats.resident,
            stats.capacity
        ),
        (8, 4, 4, 4)
    );
    assert_eq!(
        s.pread_inline(&f, 7 * 4096, 4096),
        Some(s.expected(7 * 4096, 4096))
    );
    assert_eq!(s.pread_inline(&f, 0, 4096), None, "block 0 was evicted");
    // A read bigger than the whole cache still reads right.
    let (r, data) = s.pread(1, &f, 0, 64 * 1024);
    assert_eq!((r, data), (Ok(64 * 1024), s.expected(0, 64 * 1024)));
    assert_eq!(s.devfs.block_cache().stats().resident, 4);
    s.machine.shutdown();
}

#[test]
fn without_the_task_a_block_device_needing_the_device_answers_eagain() {
    let _serial = serial();
    let fake = FakeDisk::new(64, false);
    let (port, _server) = Port::executor(CpuId(0), AlwaysQueue);
    let devfs = common::devfs();
    devfs.add_block("vda", port, fake.info).unwrap();
    let (vfs, _) = tmpfs_vfs();
    let root = vfs.root();
    inline(vfs.mkdir(&root, b"/dev", 0o755)).unwrap();
    inline(vfs.mount(&root, b"/dev", devfs)).unwrap();
    let f = inline(vfs.open(&root, b"/dev/vda", OpenFlags::READ_WRITE, 0)).unwrap();
    assert_eq!(
        inline(vfs.pread(&f, Vec::new(), 10, 0)).0,
        Err(Errno::Again)
    );
    assert_eq!(inline(vfs.pread(&f, Vec::new(), 10, 64 * 512)).0, Ok(0));
    assert_eq!(
        inline(vfs.pwrite(&f, vec![1], 64 * 512)).0,
        Err(Errno::NoSpc)
    );
    assert_eq!(inline(vfs.pwrite(&f, vec![1], 0)).0, Err(Errno::Again));
}
