// SPDX-License-Identifier: MIT OR Apache-2.0
//! What only the kernel can do, as small traits `kernel/` implements with `hal`.
//!
//! This crate never touches hardware or page tables (STYLE.md C.1): user memory, the
//! shared ring pages, time, tasks and processes come in through [`UserMemory`],
//! [`SharedRegion`] and [`Kernel`]. Host tests implement them with plain `Vec`s and a
//! virtual clock. Every method here is object-safe; the async ones return a [`BoxFuture`].

use alloc::{boxed::Box, sync::Arc, vec::Vec};
use core::{
    future::Future,
    pin::Pin,
    sync::atomic::{AtomicU32, AtomicU64},
};

use abi::{
    Errno,
    ring::{ProcInfo, SysInfo},
};

pub use fs::proto::CallerMemory;
use fs::proto::ExternalBuf;

use crate::process::ProcessInit;

/// A boxed, sendable, `'static` future: what the async trait methods return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A process id.
pub type Pid = i32;

/// One process's user address space, seen from the kernel.
///
/// The two copy routines come from [`CallerMemory`] (so that a filesystem can copy
/// between its pages and a process's memory directly: `fs::proto`). Both are
/// all-or-nothing from the caller's point of view: on `Err`, the bytes already copied
/// (if any) are unspecified. They never block on anything but a page fault the kernel
/// resolves itself.
pub trait UserMemory: CallerMemory {
    /// Pins `addr..addr + len` for a device (zero-copy `O_DIRECT`) and returns it by its
    /// physical segments; `device_writes` when the device stores into it (a read from
    /// disk), which needs every page writable. The returned buffer's owner keeps the
    /// pages where they are until it is dropped: meanwhile the kernel refuses to unmap or
    /// reprotect them (`Busy`), and process exit does not free them.
    ///
    /// # Errors
    /// `Fault` if any byte is not mapped (writable when `device_writes`) in user mode;
    /// nothing is pinned then.
    fn pin(&self, addr: u64, len: usize, device_writes: bool) -> Result<ExternalBuf, Errno>;
}

/// The kernel's alias of a ring region that is also mapped into a process.
///
/// The region is read and written only through these atomics, so it does not matter that
/// userland scribbles on it concurrently: the worst it can do is confuse its own ring. The
/// kernel must keep the frames (and so this alias) alive as long as the value lives.
pub trait SharedRegion: Send + Sync {
    /// The region as 32-bit words (`region_len / 4` of them).
    fn words(&self) -> &[AtomicU32];

    /// The same memory as 64-bit words, where the implementation can offer that view
    /// (the region is 8-aligned): the ring then copies an `Sqe` in eight loads and
    /// writes a `Cqe` in two stores. `None` (the default): 32-bit words only.
    fn words64(&self) -> Option<&[AtomicU64]> {
        None
    }

    /// Both views at once: what the ring asks for, once per batch (one dynamic call
    /// instead of two). The default answers from `words` and `words64`.
    fn view(&self) -> RegionView<'_> {
        RegionView {
            words: self.words(),
            words64: self.words64(),
        }
    }
}

/// A [`SharedRegion`] as 32-bit words and, where offered, as 64-bit words (the same memory).
#[derive(Clone, Copy)]
pub struct RegionView<'a> {
    /// [`SharedRegion::words`].
    pub words: &'a [AtomicU32],
    /// [`SharedRegion::words64`].
    pub words64: Option<&'a [AtomicU64]>,
}

impl SharedRegion for &'static [AtomicU32] {
    fn words(&self) -> &[AtomicU32] {
        self
    }
}

impl SharedRegion for Vec<AtomicU32> {
    fn words(&self) -> &[AtomicU32] {
        self
    }
}

impl SharedRegion for Box<[AtomicU32]> {
    fn words(&self) -> &[AtomicU32] {
        self
    }
}

/// A clock `ClockGettime` can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClockId {
    /// Wall-clock time, ns since the Unix epoch.
    Realtime,
    /// Time since boot, ns; never goes backwards. All deadlines use this clock.
    Monotonic,
}

/// What `Spawn` hands to the kernel once every argument has been copied and checked.
pub struct SpawnRequest {
    /// The path as the user gave it (for the process name).
    pub path: Vec<u8>,
    /// The executable, already opened for reading relative to the parent's cwd (a
    /// regular file).
    pub executable: Arc<fs::OpenFile>,
    /// The arguments, `argv[0]` included.
    pub argv: Vec<Vec<u8>>,
    /// The environment strings.
    pub envp: Vec<Vec<u8>>,
    /// The child's descriptor table and cwd: pass it to [`crate::Process::new`].
    pub init: ProcessInit,
    /// `SpawnArgs::flags` other than the CPU choice (`abi::ring::SPAWN_FOREGROUND`).
    pub flags: u64,
    /// The CPU the child must run on (`SPAWN_CPU`); `None`: the kernel chooses.
    pub cpu: Option<u16>,
}

/// Everything else only the kernel can do. One instance, shared by every process.
///
/// Methods taking a `pid` act for (or on) that process; the kernel knows which address
/// space and which process record that is.
pub trait Kernel: Send + Sync + 'static {
    /// Reads a clock, in ns.
    fn now_ns(&self, clock: ClockId) -> u64;

    /// A future that completes once `CLOCK_MONOTONIC` has reached `deadline_ns`.
    ///
    /// # Cancel safety
    /// Dropping it must cancel the timer.
    fn sleep_until(&self, deadline_ns: u64) -> BoxFuture<()>;

    /// A future that returns `Pending` once (after waking itself), so other tasks run. The
    /// polled-mode ring task yields with it between scans of the submission queue.
    fn yield_now(&self) -> BoxFuture<()>;

    /// Runs `task` on this CPU's executor until it completes. Used for the ring task
    /// ([`crate::Ring::run`]) and the polled-mode task ([`crate::Ring::poll_loop`]).
    fn spawn_task(&self, task: BoxFuture<()>);

    /// Creates a child of `parent`: a fresh address space with `request.executable` loaded,
    /// `argv`/`envp` on its stack, and a [`crate::Process`] made from `request.init`.
    /// Returns the child's pid.
    ///
    /// # Errors
    /// `NoExec` (not a valid executable), `NoMem`, `Again` (no pid), `Inval` (`request.cpu`
    /// is not an online CPU), or any error reading the file.
    fn spawn(&self, parent: Pid, request: SpawnRequest) -> BoxFuture<Result<Pid, Errno>>;

    /// Waits for a child of `parent` to exit (`target` `None` = any child) and reaps it.
    /// Returns `Some((pid, status))` (Linux status encoding), or `None` if `no_hang` and no
    /// child has exited yet.
    ///
    /// # Errors
    /// `Child` if `parent` has no such child.
    fn wait(
        &self,
        parent: Pid,
        target: Option<Pid>,
        no_hang: bool,
    ) -> BoxFuture<Result<Option<(Pid, i32)>, Errno>>;

    /// Marks `pid` exited with `status` (0..=255) after [`crate::Process::teardown`] has
    /// finished. The trap handler that performed the `Exit` must not return to user mode.
    fn exit(&self, pid: Pid, status: i32);

    /// Sends `signal` to `target` on behalf of `sender` (today every signal terminates;
    /// the kernel runs the target's [`crate::Process::teardown`]).
    ///
    /// # Errors
    /// `Srch` for no such process; `Inval` for an unknown signal; `Perm`.
    fn kill(&self, sender: Pid, target: Pid, signal: u32) -> Result<(), Errno>;

    /// Maps `len` bytes of zeroed anonymous memory into `pid` with `PROT_*` bits `prot`,
    /// at `hint` if `MAP_FIXED` is in `flags` (else anywhere, `hint` advisory). `hint` and
    /// `len` are page-aligned and nonzero; `flags` holds `MAP_ANONYMOUS` and exactly one of
    /// `MAP_PRIVATE`/`MAP_SHARED` (checked by the decoder). Returns the address.
    ///
    /// # Errors
    /// `NoMem`; `Inval` for a `MAP_FIXED` range that is not allowed.
    fn mmap(&self, pid: Pid, hint: u64, len: u64, prot: u32, flags: u32) -> Result<u64, Errno>;

    /// Unmaps `addr..addr + len` (page-aligned) in `pid`; unmapped holes are fine.
    ///
    /// # Errors
    /// `Inval` if the range touches memory the process may not unmap (its ring region).
    fn munmap(&self, pid: Pid, addr: u64, len: u64) -> Result<(), Errno>;

    /// Changes the protection of `addr..addr + len` (page-aligned) in `pid`.
    ///
    /// # Errors
    /// `NoMem` if part of the range is not mapped.
    fn mprotect(&self, pid: Pid, addr: u64, len: u64, prot: u32) -> Result<(), Errno>;

    /// Every process, for `ps` (at most `max` of them).
    fn proc_list(&self, max: usize) -> Vec<ProcInfo>;

    /// The kernel's memory and process counters (`SysInfo`), for leak checks.
    fn sys_info(&self) -> SysInfo;

    /// Allocates `len` bytes (a multiple of 4096) of zeroed pages, maps them read-write
    /// into `pid`, and returns the user address and the kernel's alias of the same frames.
    ///
    /// # Errors
    /// `NoMem`.
    fn map_ring(&self, pid: Pid, len: usize) -> Result<(u64, Arc<dyn SharedRegion>), Errno>;
}
