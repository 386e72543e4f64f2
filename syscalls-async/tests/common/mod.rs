// SPDX-License-Identifier: MIT OR Apache-2.0
//! Host fakes for the kernel side: user memory with holes, a kernel with a virtual clock,
//! a deterministic single-threaded executor, and the user half of a ring.
#![allow(dead_code, clippy::type_complexity)]

use std::{
    future::Future,
    pin::{Pin, pin},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, Ordering},
    },
    task::{Context, Poll, Wake, Waker},
};

use abi::{
    Cqe, Errno, RingLayout, Sqe,
    ring::{ProcInfo, RingParams, ring_header},
};
use fs::{
    Vfs,
    platform::TickClock,
    proto::{ExternalBuf, PhysSegment},
    tmpfs::Tmpfs,
};
use syscalls_async::{
    BoxFuture, CallerMemory, ClockId, Kernel, Pid, Process, ProcessInit, SharedRegion,
    SpawnRequest, Trap, UserMemory,
};

// ------------------------------------------------------------------ user memory

/// Base of the fake user memory.
pub const BASE: u64 = 0x10_0000;
/// Its size.
pub const SIZE: usize = 4 << 20;

/// A `Vec` at `BASE`, with holes that fault.
pub struct FakeMemory {
    bytes: Mutex<Vec<u8>>,
    holes: Mutex<Vec<(u64, u64)>>,
    /// Pins alive now.
    pub pins: Arc<AtomicU32>,
}

impl FakeMemory {
    pub fn new() -> Arc<FakeMemory> {
        Arc::new(FakeMemory {
            bytes: Mutex::new(vec![0; SIZE]),
            holes: Mutex::new(Vec::new()),
            pins: Arc::new(AtomicU32::new(0)),
        })
    }

    fn range(&self, addr: u64, len: usize) -> Result<usize, Errno> {
        let end = addr.checked_add(len as u64).ok_or(Errno::Fault)?;
        if addr < BASE || end > BASE + SIZE as u64 {
            return Err(Errno::Fault);
        }
        if self
            .holes
            .lock()
            .unwrap()
            .iter()
            .any(|&(s, e)| addr < e && end > s)
        {
            return Err(Errno::Fault);
        }
        Ok((addr - BASE) as usize)
    }

    pub fn add_hole(&self, start: u64, len: u64) {
        self.holes.lock().unwrap().push((start, start + len));
    }

    pub fn write(&self, addr: u64, data: &[u8]) {
        let at = self
            .range(addr, data.len())
            .expect("test writes inside memory");
        self.bytes.lock().unwrap()[at..at + data.len()].copy_from_slice(data);
    }

    pub fn read(&self, addr: u64, len: usize) -> Vec<u8> {
        let at = self.range(addr, len).expect("test reads inside memory");
        self.bytes.lock().unwrap()[at..at + len].to_vec()
    }

    pub fn read_u64(&self, addr: u64) -> u64 {
        u64::from_le_bytes(self.read(addr, 8).try_into().unwrap())
    }

    pub fn read_i32(&self, addr: u64) -> i32 {
        i32::from_le_bytes(self.read(addr, 4).try_into().unwrap())
    }
}

impl CallerMemory for FakeMemory {
    fn copy_from_user(&self, dst: &mut [u8], src: u64) -> Result<(), Errno> {
        let at = self.range(src, dst.len())?;
        dst.copy_from_slice(&self.bytes.lock().unwrap()[at..at + dst.len()]);
        Ok(())
    }

    fn copy_to_user(&self, dst: u64, src: &[u8]) -> Result<(), Errno> {
        let at = self.range(dst, src.len())?;
        self.bytes.lock().unwrap()[at..at + src.len()].copy_from_slice(src);
        Ok(())
    }
}

impl UserMemory for FakeMemory {
    /// "Physical" addresses are user addresses here, one segment per 4 KiB page; the
    /// owner counts live pins in `pins`.
    fn pin(&self, addr: u64, len: usize, _device_writes: bool) -> Result<ExternalBuf, Errno> {
        self.range(addr, len)?;
        let mut segments = Vec::new();
        let (mut at, end) = (addr, addr + len as u64);
        while at < end {
            let next = ((at / 4096) + 1) * 4096;
            let next = next.min(end);
            segments.push(PhysSegment {
                addr: at,
                len: (next - at) as u32,
            });
            at = next;
        }
        Ok(ExternalBuf::new(
            segments,
            Arc::new(PinCount::new(&self.pins)),
        ))
    }
}

/// One live pin of [`FakeMemory`].
struct PinCount(Arc<AtomicU32>);

impl PinCount {
    fn new(count: &Arc<AtomicU32>) -> PinCount {
        count.fetch_add(1, Ordering::SeqCst);
        PinCount(count.clone())
    }
}

impl Drop for PinCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

// ------------------------------------------------------------------ clock and timers

#[derive(Default)]
pub struct Clock {
    now: AtomicU64,
    timers: Mutex<Vec<(u64, Waker)>>,
}

impl Clock {
    pub fn now(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }

    /// Sets the time and wakes the expired timers.
    pub fn advance_to(&self, t: u64) {
        self.now.fetch_max(t, Ordering::SeqCst);
        let now = self.now();
        let expired: Vec<Waker> = {
            let mut timers = self.timers.lock().unwrap();
            let (due, keep) = timers.drain(..).partition(|(d, _)| *d <= now);
            *timers = keep;
            due.into_iter().map(|(_, w)| w).collect::<Vec<_>>()
        };
        for w in expired {
            w.wake();
        }
    }

    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.lock().unwrap().iter().map(|(d, _)| *d).min()
    }

    pub fn pending_timers(&self) -> usize {
        self.timers.lock().unwrap().len()
    }
}

struct SleepUntil {
    clock: Arc<Clock>,
    deadline: u64,
}

impl Future for SleepUntil {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.clock.now() >= self.deadline {
            return Poll::Ready(());
        }
        self.clock
            .timers
            .lock()
            .unwrap()
            .push((self.deadline, cx.waker().clone()));
        Poll::Pending
    }
}

// ------------------------------------------------------------------ kernel

pub struct Child {
    pub pid: Pid,
    pub parent: Pid,
    pub status: Option<i32>,
    pub path: Vec<u8>,
    pub argv: Vec<Vec<u8>>,
    pub envp: Vec<Vec<u8>>,
    pub fds: usize,
    pub flags: u64,
}

#[derive(Default)]
pub struct FakeKernel {
    pub clock: Arc<Clock>,
    pub spawned: Mutex<Vec<BoxFuture<()>>>,
    pub rings: Mutex<Vec<(Pid, u64, Arc<Vec<AtomicU32>>)>>,
    pub children: Arc<Mutex<Vec<Child>>>,
    pub child_wakers: Arc<Mutex<Vec<Waker>>>,
    pub next_pid: AtomicI32,
    pub exits: Mutex<Vec<(Pid, i32)>>,
    pub kills: Mutex<Vec<(Pid, Pid, u32)>>,
    pub maps: Mutex<Vec<(u64, u64, u32)>>,
    pub next_map: AtomicU64,
    /// When set, `spawn_task` hands tasks to this (a real executor) instead of `spawned`.
    pub spawner: Mutex<Option<Box<dyn Fn(BoxFuture<()>) + Send + Sync>>>,
}

impl FakeKernel {
    pub fn new() -> Arc<FakeKernel> {
        let k = FakeKernel::default();
        k.next_pid.store(100, Ordering::SeqCst);
        k.next_map.store(0x1_0000_0000, Ordering::SeqCst);
        Arc::new(k)
    }

    pub fn ring_words(&self, pid: Pid) -> Arc<Vec<AtomicU32>> {
        self.rings
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.0 == pid)
            .expect("ring set up")
            .2
            .clone()
    }

    /// Makes a still-running child exit.
    pub fn finish_child(&self, pid: Pid, code: i32) {
        for c in self.children.lock().unwrap().iter_mut() {
            if c.pid == pid {
                c.status = Some((code & 0xff) << 8);
            }
        }
        for w in self.child_wakers.lock().unwrap().drain(..) {
            w.wake();
        }
    }
}

impl Kernel for FakeKernel {
    fn now_ns(&self, clock: ClockId) -> u64 {
        match clock {
            ClockId::Monotonic => self.clock.now(),
            ClockId::Realtime => 1_700_000_000_000_000_000 + self.clock.now(),
        }
    }

    fn sleep_until(&self, deadline_ns: u64) -> BoxFuture<()> {
        Box::pin(SleepUntil {
            clock: self.clock.clone(),
            deadline: deadline_ns,
        })
    }

    fn yield_now(&self) -> BoxFuture<()> {
        // A yield costs one virtual microsecond, so polled mode reaches its idle time.
        let clock = self.clock.clone();
        let mut yielded = false;
        Box::pin(std::future::poll_fn(move |cx| {
            if yielded {
                return Poll::Ready(());
            }
            yielded = true;
            clock.advance_to(clock.now() + 1000);
            cx.waker().wake_by_ref();
            Poll::Pending
        }))
    }

    fn spawn_task(&self, task: BoxFuture<()>) {
        if let Some(spawn) = &*self.spawner.lock().unwrap() {
            return spawn(task);
        }
        self.spawned.lock().unwrap().push(task);
    }

    fn spawn(&self, parent: Pid, request: SpawnRequest) -> BoxFuture<Result<Pid, Errno>> {
        // The fake has one CPU, number 0.
        if request.cpu.is_some_and(|cpu| cpu != 0) {
            return Box::pin(async { Err(Errno::Inval) });
        }
        let pid = self.next_pid.fetch_add(1, Ordering::SeqCst);
        // "/bin/true" exits at once with argc - 1; anything else runs until `finish_child`.
        let status = (request.path.ends_with(b"true"))
            .then(|| ((request.argv.len() as i32 - 1) & 0xff) << 8);
        self.children.lock().unwrap().push(Child {
            pid,
            parent,
            status,
            path: request.path,
            argv: request.argv,
            envp: request.envp,
            fds: request.init.files.len(),
            flags: request.flags,
        });
        Box::pin(async move { Ok(pid) })
    }

    fn wait(
        &self,
        parent: Pid,
        target: Option<Pid>,
        no_hang: bool,
    ) -> BoxFuture<Result<Option<(Pid, i32)>, Errno>> {
        let (children, wakers) = (self.children.clone(), self.child_wakers.clone());
        Box::pin(std::future::poll_fn(move |cx| {
            let mut children = children.lock().unwrap();
            let matching: Vec<usize> = (0..children.len())
                .filter(|&i| {
                    children[i].parent == parent && target.is_none_or(|t| t == children[i].pid)
                })
                .collect();
            if matching.is_empty() {
                return Poll::Ready(Err(Errno::Child));
            }
            if let Some(&i) = matching.iter().find(|&&i| children[i].status.is_some()) {
                let c = children.remove(i);
                return Poll::Ready(Ok(Some((c.pid, c.status.unwrap()))));
            }
            if no_hang {
                return Poll::Ready(Ok(None));
            }
            wakers.lock().unwrap().push(cx.waker().clone());
            Poll::Pending
        }))
    }

    fn exit(&self, pid: Pid, status: i32) {
        self.exits.lock().unwrap().push((pid, status));
    }

    fn kill(&self, sender: Pid, target: Pid, signal: u32) -> Result<(), Errno> {
        if !self
            .children
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.pid == target)
        {
            return Err(Errno::Srch);
        }
        self.kills.lock().unwrap().push((sender, target, signal));
        Ok(())
    }

    fn mmap(&self, _pid: Pid, hint: u64, len: u64, prot: u32, flags: u32) -> Result<u64, Errno> {
        let addr = if flags & abi::ring::MAP_FIXED != 0 {
            hint
        } else {
            self.next_map.fetch_add(len, Ordering::SeqCst)
        };
        self.maps.lock().unwrap().push((addr, len, prot));
        Ok(addr)
    }

    fn munmap(&self, _pid: Pid, addr: u64, _len: u64) -> Result<(), Errno> {
        self.maps.lock().unwrap().retain(|m| m.0 != addr);
        Ok(())
    }

    fn mprotect(&self, _pid: Pid, addr: u64, _len: u64, prot: u32) -> Result<(), Errno> {
        let mut maps = self.maps.lock().unwrap();
        let m = maps.iter_mut().find(|m| m.0 == addr).ok_or(Errno::NoMem)?;
        m.2 = prot;
        Ok(())
    }

    fn proc_list(&self, max: usize) -> Vec<ProcInfo> {
        let mut list = Vec::new();
        for (pid, name) in [(1, &b"init"[..]), (2, b"sh"), (3, b"ps")] {
            let mut p = ProcInfo {
                pid,
                ppid: pid - 1,
                state: 0,
                cpu: 0,
                name: [0; 32],
            };
            p.set_name(name);
            list.push(p);
        }
        list.truncate(max);
        list
    }

    fn sys_info(&self) -> abi::ring::SysInfo {
        abi::ring::SysInfo {
            frames_usable: 1000,
            frames_free: 900,
            frames_other: 60,
            heap_pages: 40,
            heap_objects: 12,
            heap_bytes: 768,
            processes: 3,
            cpus: 1,
            uptime_ns: self.now_ns(ClockId::Monotonic),
        }
    }

    fn map_ring(&self, pid: Pid, len: usize) -> Result<(u64, Arc<dyn SharedRegion>), Errno> {
        let words: Arc<Vec<AtomicU32>> =
            Arc::new((0..len / 4).map(|_| AtomicU32::new(0)).collect());
        let mut rings = self.rings.lock().unwrap();
        let addr = 0x7000_0000_0000 + rings.len() as u64 * 0x10_0000;
        rings.push((pid, addr, words.clone()));
        Ok((addr, Arc::new(SharedWords(words))))
    }
}

struct SharedWords(Arc<Vec<AtomicU32>>);

impl SharedRegion for SharedWords {
    fn words(&self) -> &[AtomicU32] {
        &self.0
    }
}

// ------------------------------------------------------------------ executor

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

struct Task {
    fut: BoxFuture<()>,
    flag: Arc<Flag>,
}

/// The test world: a kernel, user memory, a tmpfs VFS, one process and the background
/// tasks the crate spawned, run by a deterministic executor on a virtual clock.
pub struct World {
    pub kernel: Arc<FakeKernel>,
    pub memory: Arc<FakeMemory>,
    pub vfs: Arc<Vfs>,
    pub proc: Arc<Process>,
    tasks: Vec<Task>,
}

impl World {
    pub fn new() -> World {
        let kernel = FakeKernel::new();
        let memory = FakeMemory::new();
        let vfs = Arc::new(Vfs::new(Arc::new(Tmpfs::new(Arc::new(TickClock::new(0))))));
        let proc = Process::new(
            1,
            0,
            vfs.clone(),
            kernel.clone(),
            memory.clone(),
            ProcessInit::new(&vfs),
        );
        World {
            kernel,
            memory,
            vfs,
            proc,
            tasks: Vec::new(),
        }
    }

    pub fn now(&self) -> u64 {
        self.kernel.clock.now()
    }

    /// Polls background tasks that are woken (and picks up new ones). Returns true if
    /// anything was polled.
    pub fn run_tasks(&mut self) -> bool {
        let new: Vec<BoxFuture<()>> = self.kernel.spawned.lock().unwrap().drain(..).collect();
        for fut in new {
            self.tasks.push(Task {
                fut,
                flag: Arc::new(Flag(AtomicBool::new(true))),
            });
        }
        let mut polled = false;
        self.tasks.retain_mut(|t| {
            if !t.flag.0.swap(false, Ordering::SeqCst) {
                return true;
            }
            polled = true;
            let waker = Waker::from(t.flag.clone());
            t.fut
                .as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        });
        polled
    }

    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// Runs `fut` to completion with the background tasks, advancing virtual time to the
    /// next timer whenever nothing is runnable. Panics on deadlock or livelock.
    pub fn block_on<T>(&mut self, fut: impl Future<Output = T>) -> T {
        let mut fut = pin!(fut);
        let flag = Arc::new(Flag(AtomicBool::new(true)));
        let waker = Waker::from(flag.clone());
        for _ in 0..5_000_000 {
            let mut progressed = false;
            if flag.0.swap(false, Ordering::SeqCst) {
                progressed = true;
                if let Poll::Ready(v) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                    return v;
                }
            }
            progressed |= self.run_tasks();
            if !progressed && self.kernel.spawned.lock().unwrap().is_empty() {
                match self.kernel.clock.next_deadline() {
                    Some(d) => self.kernel.clock.advance_to(d),
                    None => {
                        panic!("deadlock: the future is pending, nothing is runnable, no timer")
                    }
                }
            }
        }
        panic!("livelock: the future never completed");
    }

    /// Runs background tasks until nothing is runnable (without advancing time).
    pub fn settle(&mut self) {
        for _ in 0..1_000_000 {
            if !self.run_tasks() && self.kernel.spawned.lock().unwrap().is_empty() {
                return;
            }
        }
        panic!("settle: tasks never went quiet");
    }

    /// Performs one Sqe through the trap door.
    pub fn trap(&mut self, sqe: Sqe) -> i64 {
        let proc = self.proc.clone();
        self.block_on(async move { proc.perform(&sqe).await })
    }

    /// Performs one Sqe through the trap door as Damselfly's kernel does: offered to
    /// `Process::try_inline` on the trap first (its wait, if any, finished by
    /// `Process::finish`), to the task (`perform`) if that declines. Returns the result
    /// and whether it completed on the trap.
    pub fn trap_inline(&mut self, sqe: Sqe) -> (i64, bool) {
        let proc = self.proc.clone();
        match proc.try_inline(&sqe) {
            Some(Trap::Done(result)) => (result, true),
            Some(Trap::Wait(wait)) => {
                (self.block_on(async move { proc.finish(wait).await }), false)
            }
            None => (self.trap(sqe), false),
        }
    }

    /// Writes `data` at a fresh address in user memory and returns it (a bump allocator).
    pub fn put(&self, data: &[u8]) -> u64 {
        let addr = self.alloc(data.len().max(1));
        self.memory.write(addr, data);
        addr
    }

    /// Reserves `len` zeroed bytes of user memory.
    pub fn alloc(&self, len: usize) -> u64 {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let off = NEXT.fetch_add((len as u64).next_multiple_of(64), Ordering::SeqCst)
            % (SIZE as u64 - 65536 * 2);
        let addr = BASE + 65536 + off;
        self.memory.write(addr, &vec![0; len]);
        addr
    }

    /// Sets up a ring through the trap door; returns the user half.
    pub fn setup_ring(&mut self, sq: u32, cq: u32, flags: u32, idle_us: u32) -> UserRing {
        let mut params = RingParams {
            sq_entries: sq,
            cq_entries: cq,
            flags,
            sq_idle_us: idle_us,
            ..Default::default()
        };
        let p = self.alloc(64);
        self.memory.write(p, &params_bytes(&params));
        let mut s = Sqe::new(abi::Opcode::RingSetup);
        s.addr = p;
        s.len = 64;
        assert_eq!(self.trap(s), 0);
        let out = self.memory.read(p, 64);
        let u32_at = |i: usize| u32::from_le_bytes(out[i..i + 4].try_into().unwrap());
        params.sq_entries = u32_at(0);
        params.cq_entries = u32_at(4);
        params.region_addr = u64::from_le_bytes(out[16..24].try_into().unwrap());
        let layout = RingLayout::new(params.sq_entries, params.cq_entries).unwrap();
        assert_eq!(u32_at(40), layout.sqes);
        assert_eq!(u32_at(44), layout.cqes);
        let words = self.kernel.ring_words(self.proc.pid());
        UserRing {
            words,
            layout,
            params,
        }
    }

    /// `RingEnter` through the trap door.
    pub fn enter(&mut self, to_submit: u32, min_complete: u32, flags: u32, timeout_ns: u64) -> i64 {
        let mut s = Sqe::new(abi::Opcode::RingEnter);
        s.len = to_submit;
        s.off = min_complete as u64;
        s.op_flags = flags;
        s.addr = timeout_ns;
        self.trap(s)
    }
}

pub fn params_bytes(p: &RingParams) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0..4].copy_from_slice(&p.sq_entries.to_le_bytes());
    b[4..8].copy_from_slice(&p.cq_entries.to_le_bytes());
    b[8..12].copy_from_slice(&p.flags.to_le_bytes());
    b[12..16].copy_from_slice(&p.sq_idle_us.to_le_bytes());
    b
}

// ------------------------------------------------------------------ user half of a ring

/// What a user program does with the shared region.
pub struct UserRing {
    pub words: Arc<Vec<AtomicU32>>,
    pub layout: RingLayout,
    pub params: RingParams,
}

impl UserRing {
    pub fn word(&self, byte: u32) -> &AtomicU32 {
        &self.words[byte as usize / 4]
    }

    pub fn sq(&self, field: u32) -> u32 {
        self.word(self.layout.sq_header + field)
            .load(Ordering::Acquire)
    }

    pub fn cq(&self, field: u32) -> u32 {
        self.word(self.layout.cq_header + field)
            .load(Ordering::Acquire)
    }

    pub fn set_sq(&self, field: u32, v: u32) {
        self.word(self.layout.sq_header + field)
            .store(v, Ordering::Release)
    }

    pub fn set_cq(&self, field: u32, v: u32) {
        self.word(self.layout.cq_header + field)
            .store(v, Ordering::Release)
    }

    /// Free SQ slots.
    pub fn sq_space(&self) -> u32 {
        self.layout.sq_entries.saturating_sub(
            self.sq(ring_header::TAIL)
                .wrapping_sub(self.sq(ring_header::HEAD)),
        )
    }

    /// Publishes one entry; panics if the SQ is full.
    pub fn push(&self, sqe: Sqe) {
        assert!(self.sq_space() > 0, "SQ full");
        let tail = self.sq(ring_header::TAIL);
        let base = self.layout.sqe_offset(tail);
        for (i, w) in sqe.to_words().iter().enumerate() {
            self.word(base + 8 * i as u32)
                .store(*w as u32, Ordering::Relaxed);
            self.word(base + 8 * i as u32 + 4)
                .store((*w >> 32) as u32, Ordering::Relaxed);
        }
        self.set_sq(ring_header::TAIL, tail.wrapping_add(1));
        std::sync::atomic::fence(Ordering::SeqCst);
    }

    /// Reaps every available completion.
    pub fn reap(&self) -> Vec<Cqe> {
        self.reap_at_most(u32::MAX)
    }

    pub fn reap_at_most(&self, max: u32) -> Vec<Cqe> {
        let mut head = self.cq(ring_header::HEAD);
        let tail = self.cq(ring_header::TAIL);
        let mut out = Vec::new();
        while head != tail && (out.len() as u32) < max {
            let base = self.layout.cqe_offset(head);
            let w = |i: u32| self.word(base + 4 * i).load(Ordering::Relaxed) as u64;
            out.push(Cqe::from_words([w(0) | w(1) << 32, w(2) | w(3) << 32]));
            head = head.wrapping_add(1);
        }
        self.set_cq(ring_header::HEAD, head);
        out
    }
}

/// `Sqe` builders.
pub fn sqe(op: abi::Opcode, user_data: u64) -> Sqe {
    let mut s = Sqe::new(op);
    s.user_data = user_data;
    s
}

pub fn nop(user_data: u64) -> Sqe {
    sqe(abi::Opcode::Nop, user_data)
}

pub fn sleep_sqe(user_data: u64, ns: u64) -> Sqe {
    let mut s = sqe(abi::Opcode::Sleep, user_data);
    s.addr = ns;
    s
}
