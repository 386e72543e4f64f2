//! Processes: the kernel side of `syscalls-async`'s `Kernel` trait, and the
//! user thread as a task.
//!
//! A process is an address space (`hal::mm::space`), a syscall record
//! (`syscalls_async::Process`: descriptors, cwd, ring) and one user thread.
//! The thread is an ordinary task on one CPU's executor ([`run_thread`]):
//! it enters ring 3 with `hal::arch::user::enter_user`, and each return is
//! handled right there: a trap-door system call is `perform`ed (inline when
//! the target port completes at once, otherwise the task awaits and the CPU
//! runs other tasks), an interrupt yields the CPU (time slice), and an
//! exception ends the process alone with a signal status. A process and its
//! tasks (ring task, polled-mode task) stay on the CPU it was created on.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::task::{Context, Poll, Waker};

use abi::Errno;
use abi::ring::{Opcode, ProcInfo, Sqe, SysInfo};
use executor::CpuId;
use fs::Vfs;
use hal::arch::user::{InlineSyscall, UserContext, UserExit, enter_user};
use hal::mm::space::{AddressSpace, SharedPages, UserProt};
use ports::proto::block::{ExternalBuf, PhysSegment};
use syscalls_async::{
    BoxFuture, CallerMemory, ClockId, Kernel, Pid, SharedRegion, SpawnRequest, TrapWait, UserMemory,
};

/// The page-fault vector, and the bits of its error code read here.
const PAGE_FAULT: u8 = 14;
const PF_PRESENT: u64 = 1 << 0;
const PF_WRITE: u64 = 1 << 1;

/// Linux's signal numbers for how a process can die here.
const SIGILL: u32 = 4;
const SIGFPE: u32 = 8;
const SIGKILL: u32 = 9;
const SIGSEGV: u32 = 11;
const SIGTERM: u32 = 15;
const SIGINT: u32 = 2;

/// Where anonymous mappings start (well above any program, below the stack).
const MMAP_BASE: u64 = 0x0000_1000_0000_0000;
const MMAP_TOP: u64 = crate::exec::STACK_TOP - crate::exec::STACK_BYTES - 0x1000_0000;

/// A process's user memory, for `syscalls-async` (every bad address is `EFAULT`).
struct ProcMemory(Arc<AddressSpace>);

impl CallerMemory for ProcMemory {
    fn copy_from_user(&self, dst: &mut [u8], src: u64) -> Result<(), Errno> {
        self.0.copy_from_user(dst, src).map_err(|_| Errno::Fault)
    }

    fn copy_to_user(&self, dst: u64, src: &[u8]) -> Result<(), Errno> {
        self.0.copy_to_user(dst, src).map_err(|_| Errno::Fault)
    }
}

impl UserMemory for ProcMemory {
    fn pin(&self, addr: u64, len: usize, device_writes: bool) -> Result<ExternalBuf, Errno> {
        let pin = Arc::new(
            self.0
                .pin(addr, len, device_writes)
                .map_err(|_| Errno::Fault)?,
        );
        // The pin travels as the buffer's owner: the pages stay pinned until the last
        // piece of the buffer (and so the last device request on it) is dropped. The
        // segments go straight into the buffer's own (inline) list.
        let segments = pin
            .segments()
            .iter()
            .map(|&(addr, len)| PhysSegment { addr, len });
        Ok(ExternalBuf::new(segments, pin.clone()))
    }
}

/// Ring pages: shared with the process, seen by the kernel as atomics.
struct RingRegion(Arc<SharedPages>);

impl SharedRegion for RingRegion {
    fn words(&self) -> &[AtomicU32] {
        self.0.words()
    }

    fn words64(&self) -> Option<&[AtomicU64]> {
        Some(self.0.words64())
    }
}

/// A one-way "something changed" signal with any number of waiters.
#[derive(Default)]
struct Event {
    generation: AtomicU64,
    wakers: spin::Mutex<Vec<Waker>>,
}

impl Event {
    fn notify(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        for waker in core::mem::take(&mut *self.wakers.lock()) {
            waker.wake();
        }
    }

    /// Completes once `notify` runs after `seen` was read.
    fn changed_since(&self, seen: u64) -> impl Future<Output = ()> + '_ {
        core::future::poll_fn(move |cx| {
            if self.generation.load(Ordering::SeqCst) != seen {
                return Poll::Ready(());
            }
            self.wakers.lock().push(cx.waker().clone());
            if self.generation.load(Ordering::SeqCst) != seen {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum State {
    Running,
    /// Exited with this wait status (Linux encoding), not yet reaped.
    Zombie(i32),
}

/// One process, as the kernel knows it.
pub struct Proc {
    pid: Pid,
    ppid: AtomicI32,
    name: [u8; 32],
    cpu: usize,
    space: Arc<AddressSpace>,
    sys: spin::Once<Arc<syscalls_async::Process>>,
    state: spin::Mutex<State>,
    /// Signal asked for by `kill` (0: none).
    kill: AtomicU32,
    kill_waker: spin::Mutex<Option<Waker>>,
    mmap_next: AtomicU64,
    /// Ring pages mapped into the process; kept until the process is gone.
    rings: spin::Mutex<Vec<(u64, u64, Arc<RingRegion>)>>,
    /// A system call started on the trap ([`InlineSyscall`]) that its task must finish.
    trap_wait: spin::Mutex<Option<TrapWait>>,
}

impl Proc {
    fn sys(&self) -> &Arc<syscalls_async::Process> {
        self.sys.get().expect("set before the thread starts")
    }

    fn killed(&self) -> Option<u32> {
        match self.kill.load(Ordering::SeqCst) {
            0 => None,
            signal => Some(signal),
        }
    }

    /// Completes when a kill signal arrives.
    fn kill_signal(&self) -> impl Future<Output = u32> + '_ {
        core::future::poll_fn(move |cx| {
            if let Some(signal) = self.killed() {
                return Poll::Ready(signal);
            }
            *self.kill_waker.lock() = Some(cx.waker().clone());
            match self.killed() {
                Some(signal) => Poll::Ready(signal),
                None => Poll::Pending,
            }
        })
    }
}

/// The trap door's cheapest case: operations whose start is short are started on the
/// `syscall` trap itself (`syscalls_async::Process::try_inline` says which), and when
/// they complete there the thread returns to user mode without its task running. One
/// that must wait is left in `trap_wait` for the task. A killed process is left to its
/// task, which ends it.
impl InlineSyscall for Proc {
    fn try_complete(&self, number: u64, args: [u64; 6]) -> Option<u64> {
        if number != abi::ring::TRAP_REGISTERS || self.killed().is_some() {
            return None;
        }
        let sqe = Sqe::from_trap_registers(args);
        match self.sys.get()?.try_inline(&sqe)? {
            syscalls_async::Trap::Done(result) => Some(result as u64),
            syscalls_async::Trap::Wait(wait) => {
                *self.trap_wait.lock() = Some(wait);
                None
            }
        }
    }
}

/// The process table and the services `syscalls-async` calls.
pub struct Services {
    vfs: Arc<Vfs>,
    this: spin::Once<alloc::sync::Weak<Services>>,
    table: spin::Mutex<BTreeMap<Pid, Arc<Proc>>>,
    next_pid: AtomicI32,
    next_cpu: AtomicUsize,
    exited: Event,
}

static SERVICES: spin::Once<Arc<Services>> = spin::Once::new();

/// The process services, once [`init`] ran.
pub fn services() -> Option<&'static Arc<Services>> {
    SERVICES.get()
}

/// Creates the process services over the root filesystem.
pub fn init(vfs: Arc<Vfs>) -> &'static Arc<Services> {
    SERVICES.call_once(|| {
        let services = Arc::new(Services {
            vfs,
            this: spin::Once::new(),
            table: spin::Mutex::new(BTreeMap::new()),
            next_pid: AtomicI32::new(1),
            next_cpu: AtomicUsize::new(0),
            exited: Event::default(),
        });
        services.this.call_once(|| Arc::downgrade(&services));
        services
    })
}

/// Linux wait-status encodings.
fn exit_status(code: i32) -> i32 {
    (code & 0xff) << 8
}
fn signal_status(signal: u32) -> i32 {
    (signal & 0x7f) as i32
}

/// Why a user exception ends the process (the signal Linux would send).
fn signal_for(vector: u8) -> u32 {
    match vector {
        0 | 16 | 19 => SIGFPE,
        6 => SIGILL,
        _ => SIGSEGV,
    }
}

impl Services {
    fn arc(&self) -> Arc<Services> {
        self.this
            .get()
            .and_then(|w| w.upgrade())
            .expect("services live forever")
    }

    fn get(&self, pid: Pid) -> Result<Arc<Proc>, Errno> {
        self.table.lock().get(&pid).cloned().ok_or(Errno::Srch)
    }

    /// `cpu` if given (`Inval` unless it is online), else the next CPU round-robin.
    fn pick_cpu(&self, cpu: Option<u16>) -> Result<usize, Errno> {
        let cpus = hal::arch::smp::online_cpus().max(1);
        match cpu {
            Some(cpu) if usize::from(cpu) < cpus => Ok(usize::from(cpu)),
            Some(_) => Err(Errno::Inval),
            None => Ok(self.next_cpu.fetch_add(1, Ordering::Relaxed) % cpus),
        }
    }

    /// Creates a process from an executable image and starts its thread.
    /// `init` builds the syscall record (descriptors, cwd).
    fn create(
        &self,
        parent: Pid,
        path: &[u8],
        image: &[u8],
        argv: &[Vec<u8>],
        envp: &[Vec<u8>],
        init: syscalls_async::ProcessInit,
        cpu: Option<u16>,
    ) -> Result<Pid, Errno> {
        let cpu = self.pick_cpu(cpu)?;
        let space = Arc::new(AddressSpace::new().map_err(|_| Errno::NoMem)?);
        let mut random = [0u8; 16];
        for (i, chunk) in random.chunks_mut(8).enumerate() {
            let r = hal::arch::cpu::rdtsc().rotate_left(i as u32 * 17) ^ 0x9e37_79b9_7f4a_7c15;
            chunk.copy_from_slice(&r.to_le_bytes()[..chunk.len()]);
        }
        let loaded = crate::exec::load(&space, image, argv, envp, random)?;
        let pid = self.next_pid.fetch_add(1, Ordering::Relaxed);
        if pid <= 0 {
            return Err(Errno::Again);
        }
        let mut name = [0u8; 32];
        let base = path.rsplit(|&b| b == b'/').next().unwrap_or(path);
        let n = base.len().min(31);
        name[..n].copy_from_slice(&base[..n]);
        let proc = Arc::new(Proc {
            pid,
            ppid: AtomicI32::new(parent),
            name,
            cpu,
            space: space.clone(),
            sys: spin::Once::new(),
            state: spin::Mutex::new(State::Running),
            kill: AtomicU32::new(0),
            kill_waker: spin::Mutex::new(None),
            mmap_next: AtomicU64::new(MMAP_BASE.max(loaded.end)),
            rings: spin::Mutex::new(Vec::new()),
            trap_wait: spin::Mutex::new(None),
        });
        let kernel: Arc<dyn Kernel> = self.arc();
        proc.sys.call_once(|| {
            syscalls_async::Process::new(
                pid,
                parent,
                self.vfs.clone(),
                kernel,
                Arc::new(ProcMemory(space)),
                init,
            )
        });
        self.table.lock().insert(pid, proc.clone());
        let mut context = Box::new(UserContext::new(loaded.entry, loaded.stack_pointer));
        context.set_inline(proc.clone());
        let runtime = crate::sched::runtime().ok_or(Errno::NoSys)?;
        let services = self.arc();
        match runtime.spawn_on(
            CpuId(cpu as u32),
            run_thread(services, proc.clone(), context),
        ) {
            Ok(_detached) => {
                log::debug!(target: "proc", "pid {pid} ({}) started on CPU {cpu}", core::str::from_utf8(base).unwrap_or("?"));
                Ok(pid)
            }
            Err(e) => {
                log::error!(target: "proc", "cannot start pid {pid} on CPU {cpu}: {e:?}");
                self.table.lock().remove(&pid);
                Err(Errno::Again)
            }
        }
    }

    /// Marks `pid` exited, hands its children to init, wakes waiters.
    fn finish(&self, pid: Pid, status: i32) {
        let mut table = self.table.lock();
        if let Some(proc) = table.get(&pid) {
            let mut state = proc.state.lock();
            if *state != State::Running {
                return;
            }
            *state = State::Zombie(status);
            proc.rings.lock().clear();
        }
        for child in table.values() {
            if child.ppid.load(Ordering::Relaxed) == pid {
                child.ppid.store(1, Ordering::Relaxed);
            }
        }
        // A process whose parent is gone (or is the kernel) is reaped now.
        let parent = table.get(&pid).map(|p| p.ppid.load(Ordering::Relaxed));
        if matches!(parent, Some(0)) || parent.is_some_and(|pp| !table.contains_key(&pp)) {
            table.remove(&pid);
        }
        drop(table);
        crate::foreground::on_exit(pid);
        log::debug!(target: "proc", "pid {pid} exited with status {status:#x}");
        self.exited.notify();
    }

    /// Starts `/bin/init` (or `path`) with the console on fds 0, 1 and 2.
    ///
    /// # Errors
    /// When the program cannot be read or loaded.
    pub fn start_init(&self, path: &str) -> Result<Pid, Errno> {
        let root = self.vfs.root();
        let image = fs::service::try_complete_inline(self.vfs.read_to_end(
            &root,
            path.as_bytes(),
            64 << 20,
        ))
        .unwrap_or(Err(Errno::Again))?;
        let mut init = syscalls_async::ProcessInit::new(&self.vfs);
        let console = fs::service::try_complete_inline(self.vfs.open(
            &root,
            b"/dev/console",
            abi::OpenFlags::READ_WRITE,
            0,
        ))
        .unwrap_or(Err(Errno::Again))?;
        for fd in 0..3 {
            init.files
                .insert_at(fd, syscalls_async::Descriptor::File(console.clone()), false)?;
        }
        self.create(
            0,
            path.as_bytes(),
            &image,
            &[path.as_bytes().to_vec()],
            &[b"PATH=/bin".to_vec()],
            init,
            None,
        )
    }
}

/// Reads the whole of `file`.
async fn read_all(vfs: &Vfs, file: &fs::OpenFile) -> Result<Vec<u8>, Errno> {
    let mut image = Vec::new();
    let mut buf = Vec::new();
    loop {
        let (result, back) = vfs.pread(file, buf, 64 * 1024, image.len() as u64).await;
        buf = back;
        match result? {
            0 => return Ok(image),
            n => {
                image.extend_from_slice(&buf[..n]);
                if image.len() > 64 << 20 {
                    return Err(Errno::TooBig);
                }
            }
        }
    }
}

impl Kernel for Services {
    fn now_ns(&self, clock: ClockId) -> u64 {
        let now = hal::arch::time::now_ns();
        match clock {
            ClockId::Monotonic => now,
            ClockId::Realtime => now + crate::rootfs::realtime_base_ns(),
        }
    }

    fn sleep_until(&self, deadline_ns: u64) -> BoxFuture<()> {
        Box::pin(executor::sleep_until(deadline_ns))
    }

    fn yield_now(&self) -> BoxFuture<()> {
        Box::pin(executor::yield_now())
    }

    fn spawn_task(&self, task: BoxFuture<()>) {
        drop(executor::spawn(task)); // detached: it ends with its ring
    }

    fn spawn(&self, parent: Pid, request: SpawnRequest) -> BoxFuture<Result<Pid, Errno>> {
        let services = self.arc();
        Box::pin(async move {
            let image = read_all(&services.vfs, &request.executable).await?;
            let foreground = request.flags & abi::ring::SPAWN_FOREGROUND != 0;
            let pid = services.create(
                parent,
                &request.path,
                &image,
                &request.argv,
                &request.envp,
                request.init,
                request.cpu,
            )?;
            crate::foreground::on_spawn(parent, pid, foreground);
            Ok(pid)
        })
    }

    fn wait(
        &self,
        parent: Pid,
        target: Option<Pid>,
        no_hang: bool,
    ) -> BoxFuture<Result<Option<(Pid, i32)>, Errno>> {
        let services = self.arc();
        Box::pin(async move {
            loop {
                let seen = services.exited.generation.load(Ordering::SeqCst);
                {
                    let mut table = services.table.lock();
                    let mut any = false;
                    let mut found = None;
                    for (pid, proc) in table.iter() {
                        if proc.ppid.load(Ordering::Relaxed) != parent
                            || target.is_some_and(|t| t != *pid)
                        {
                            continue;
                        }
                        any = true;
                        if let State::Zombie(status) = *proc.state.lock() {
                            found = Some((*pid, status));
                            break;
                        }
                    }
                    if let Some((pid, status)) = found {
                        table.remove(&pid);
                        return Ok(Some((pid, status)));
                    }
                    if !any {
                        return Err(Errno::Child);
                    }
                }
                if no_hang {
                    return Ok(None);
                }
                services.exited.changed_since(seen).await;
            }
        })
    }

    fn exit(&self, pid: Pid, status: i32) {
        self.finish(pid, exit_status(status));
    }

    fn kill(&self, sender: Pid, target: Pid, signal: u32) -> Result<(), Errno> {
        if !matches!(signal, SIGKILL | SIGTERM | SIGINT) {
            return Err(Errno::Inval);
        }
        let proc = self.get(target)?;
        if target == 1 && sender != 0 {
            return Err(Errno::Perm);
        }
        if *proc.state.lock() != State::Running {
            return Ok(()); // already exiting; nothing to do
        }
        if proc
            .kill
            .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            if let Some(waker) = proc.kill_waker.lock().take() {
                waker.wake();
            }
            // If it is in user mode on its CPU, an IPI brings it back.
            crate::sched::kick(proc.cpu);
        }
        Ok(())
    }

    fn mmap(&self, pid: Pid, hint: u64, len: u64, prot: u32, flags: u32) -> Result<u64, Errno> {
        let proc = self.get(pid)?;
        let prot = user_prot(prot);
        let fixed = flags & abi::ring::MAP_FIXED != 0;
        let addr = if fixed {
            if hint < 0x1_0000 || hint.checked_add(len).is_none_or(|end| end > MMAP_TOP) {
                return Err(Errno::Inval);
            }
            if self.overlaps_shared(&proc, hint, len) {
                return Err(Errno::Inval);
            }
            // MAP_FIXED replaces what was there (not pages a device is using).
            proc.space.unmap_range(hint, len).map_err(|e| match e {
                hal::mm::MemError::Busy(_) => Errno::Busy,
                _ => Errno::Inval,
            })?;
            hint
        } else {
            let addr = proc.mmap_next.fetch_add(len + 4096, Ordering::Relaxed); // a guard gap
            if addr.checked_add(len).is_none_or(|end| end > MMAP_TOP) {
                return Err(Errno::NoMem);
            }
            addr
        };
        // Pages come when first touched (zero-fill on demand, as Linux's anonymous
        // mappings): a large mapping costs nothing until used. Running out of frames
        // then shows at the touch (EFAULT from a system call, or the fault ends the
        // process) rather than here.
        proc.space
            .reserve_zeroed(addr, len.next_multiple_of(4096), prot)
            .map_err(|_| Errno::Inval)?;
        Ok(addr)
    }

    fn munmap(&self, pid: Pid, addr: u64, len: u64) -> Result<(), Errno> {
        let proc = self.get(pid)?;
        if self.overlaps_shared(&proc, addr, len) {
            return Err(Errno::Inval);
        }
        let end = addr.checked_add(len).ok_or(Errno::Inval)?;
        if end > hal::arch::user::USER_TOP {
            return Err(Errno::Inval);
        }
        // Holes are fine; a range with a page pinned for a device (a direct read or
        // write in flight) is refused whole.
        proc.space.unmap_range(addr, len).map_err(|e| match e {
            hal::mm::MemError::Busy(_) => Errno::Busy,
            _ => Errno::Inval,
        })
    }

    fn mprotect(&self, pid: Pid, addr: u64, len: u64, prot: u32) -> Result<(), Errno> {
        let proc = self.get(pid)?;
        if self.overlaps_shared(&proc, addr, len) {
            return Err(Errno::Inval);
        }
        addr.checked_add(len).ok_or(Errno::NoMem)?;
        // All or nothing: a page not mapped is `NoMem`, one pinned for a device `Busy`,
        // write permission on shared text `Acces` (as Linux for a read-only file mapping).
        proc.space
            .protect_range(addr, len, user_prot(prot))
            .map_err(|e| match e {
                hal::mm::MemError::Busy(_) => Errno::Busy,
                hal::mm::MemError::ReadOnly(_) => Errno::Acces,
                _ => Errno::NoMem,
            })
    }

    fn proc_list(&self, max: usize) -> Vec<ProcInfo> {
        self.table
            .lock()
            .values()
            .take(max)
            .map(|p| {
                let state = match *p.state.lock() {
                    State::Running => abi::ring::proc_state::RUNNING,
                    State::Zombie(_) => abi::ring::proc_state::ZOMBIE,
                };
                ProcInfo {
                    pid: p.pid,
                    ppid: p.ppid.load(Ordering::Relaxed),
                    state,
                    cpu: p.cpu as u32,
                    name: p.name,
                }
            })
            .collect()
    }

    fn sys_info(&self) -> SysInfo {
        let frames = hal::mm::frame_stats();
        let heap = hal::mm::heap_stats();
        let slab = hal::mm::slab_stats();
        // Live objects whichever CPU freed them: a free on another CPU than the owner's
        // counts at once (`remote_frees_sent`), not when the owner drains its list.
        let (mut objects, mut bytes) = (slab.large.in_use(), 0u64);
        let mut slab_bytes_drained = 0u64;
        for class in &slab.classes {
            let live = class
                .allocs
                .wrapping_sub(class.frees)
                .wrapping_sub(class.remote_frees_sent);
            objects = objects.wrapping_add(live);
            bytes = bytes.wrapping_add(live.wrapping_mul(class.object_size as u64));
            slab_bytes_drained = slab_bytes_drained.wrapping_add(class.bytes_in_use());
        }
        let large_bytes = slab.large.pages_in_use() * 4096;
        // The early heap's share of `heap.used` (slab bytes there count remote frees late).
        let early_used = (heap.used as u64).saturating_sub(slab_bytes_drained + large_bytes);
        let heap_pages = heap.size as u64 / 4096;
        let in_use = (frames.usable - frames.free) as u64;
        SysInfo {
            frames_usable: frames.usable as u64,
            frames_free: frames.free as u64,
            frames_other: in_use
                .saturating_sub(heap_pages)
                .saturating_sub(crate::exec::TextCache::frames() as u64),
            heap_pages,
            heap_objects: objects,
            heap_bytes: bytes + large_bytes + early_used,
            processes: self.table.lock().len() as u32,
            cpus: hal::arch::smp::online_cpus() as u32,
            uptime_ns: hal::arch::time::now_ns(),
        }
    }

    fn map_ring(&self, pid: Pid, len: usize) -> Result<(u64, Arc<dyn SharedRegion>), Errno> {
        let proc = self.get(pid)?;
        let pages = len.div_ceil(4096);
        let shared = Arc::new(SharedPages::new(pages).map_err(|_| Errno::NoMem)?);
        let addr = proc
            .mmap_next
            .fetch_add(pages as u64 * 4096 + 4096, Ordering::Relaxed);
        for i in 0..pages {
            // The space keeps its own reference: the frames outlive the mapping.
            proc.space
                .map_shared(addr + i as u64 * 4096, &shared, i, UserProt::READ_WRITE)
                .map_err(|_| Errno::NoMem)?;
        }
        let region = Arc::new(RingRegion(shared));
        proc.rings
            .lock()
            .push((addr, pages as u64 * 4096, region.clone()));
        Ok((addr, region))
    }
}

impl Services {
    /// Whether `[addr, addr + len)` touches a ring or the clock page: memory the
    /// kernel shares, which `munmap` and `mprotect` leave alone.
    fn overlaps_shared(&self, proc: &Proc, addr: u64, len: u64) -> bool {
        if crate::clock_page::overlaps(addr, len) {
            return true;
        }
        let end = addr.saturating_add(len);
        proc.rings
            .lock()
            .iter()
            .any(|(start, size, _)| addr < start + size && *start < end)
    }
}

/// The page addresses of `[start, start + len)` (page-aligned `start`).
fn user_prot(prot: u32) -> UserProt {
    UserProt {
        read: prot & abi::ring::PROT_READ != 0,
        write: prot & abi::ring::PROT_WRITE != 0,
        execute: prot & abi::ring::PROT_EXEC != 0,
    }
}

/// Polls `work` and the kill signal together: `Err(signal)` if the process
/// was killed first (the caller then drops the work, which cancels it).
///
/// `work` comes pinned where the caller made it: an operation's future is
/// a kilobyte or two, and taking it by value would copy all of it on every
/// trap that waits.
async fn unless_killed<T>(
    proc: &Proc,
    mut work: Pin<&mut impl Future<Output = T>>,
) -> Result<T, u32> {
    let mut kill = core::pin::pin!(proc.kill_signal());
    core::future::poll_fn(move |cx: &mut Context<'_>| {
        if let Poll::Ready(v) = work.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut kill).poll(cx) {
            Poll::Ready(signal) => Poll::Ready(Err(signal)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The entry a `syscall` carries: in the registers (`rax` = `TRAP_REGISTERS`) or in
/// user memory at `rdi` (`TRAP_MEMORY`).
///
/// # Errors
/// `Fault` for an unreadable entry, `NoSys` for another `rax`.
fn trap_sqe(proc: &Proc, context: &UserContext) -> Result<Sqe, Errno> {
    match context.rax {
        abi::ring::TRAP_REGISTERS => Ok(Sqe::from_trap_registers(context.syscall_args())),
        abi::ring::TRAP_MEMORY => {
            let mut raw = [0u8; abi::ring::SQE_SIZE];
            proc.space
                .copy_from_user(&mut raw, context.rdi)
                .map_err(|_| Errno::Fault)?;
            Ok(Sqe::from_bytes(&raw))
        }
        _ => Err(Errno::NoSys),
    }
}

/// The user thread: runs the process until it exits, is killed or faults.
async fn run_thread(services: Arc<Services>, proc: Arc<Proc>, mut context: Box<UserContext>) {
    let status = loop {
        if let Some(signal) = proc.killed() {
            break signal_status(signal);
        }
        proc.space.activate();
        // Interrupts off from arming the slice until ring 3 (enter_user
        // turns them back on): a slice that expires on the way is taken in
        // user mode, never lost in the kernel.
        x86_64::instructions::interrupts::disable();
        crate::sched::arm_time_slice();
        match enter_user(&mut context) {
            UserExit::Syscall => {
                // Started on the trap and left to this task, or not seen yet.
                let started = proc.trap_wait.lock().take();
                let (wait, is_exit) = match started {
                    Some(wait) => (wait, false),
                    None => {
                        let sqe = match trap_sqe(&proc, &context) {
                            Ok(sqe) => sqe,
                            Err(e) => {
                                context.rax = e.to_syscall_result() as u64;
                                continue;
                            }
                        };
                        // Done at once: no future and no kill race (a kill is seen at the
                        // top of the loop, before user mode is entered again).
                        match proc.sys().start(&sqe) {
                            syscalls_async::Trap::Done(result) => {
                                context.rax = result as u64;
                                continue;
                            }
                            syscalls_async::Trap::Wait(wait) => {
                                (wait, sqe.opcode == Opcode::Exit as u8)
                            }
                        }
                    }
                };
                let work = core::pin::pin!(proc.sys().finish(wait));
                match unless_killed(&proc, work).await {
                    Ok(result) if is_exit && result >= 0 => {
                        // `perform` tore the process down and reported the exit.
                        hal::mm::space::deactivate();
                        return;
                    }
                    Ok(result) => context.rax = result as u64,
                    Err(signal) => break signal_status(signal),
                }
            }
            UserExit::Interrupt(_) => executor::yield_now().await,
            // A page not there yet (the stack's, an anonymous mapping's): filled,
            // and the access retried.
            UserExit::Exception {
                vector: PAGE_FAULT,
                error_code,
                cr2,
            } if error_code & PF_PRESENT == 0
                && proc.space.fault_in(cr2, error_code & PF_WRITE != 0) => {}
            UserExit::Exception {
                vector,
                error_code,
                cr2,
            } => {
                log::info!(
                    target: "proc",
                    "pid {} ({}) killed: {} at rip {:#x} (error {error_code:#x}, address {cr2:#x})",
                    proc.pid,
                    core::str::from_utf8(&proc.name).unwrap_or("?").trim_end_matches('\0'),
                    hal::arch::trap::exception_name(u64::from(vector)),
                    context.rip
                );
                break signal_status(signal_for(vector));
            }
            UserExit::BadContext => break signal_status(SIGSEGV),
        }
    };
    hal::mm::space::deactivate();
    proc.sys().teardown().await;
    services.finish(proc.pid, status);
}
