// SPDX-License-Identifier: MIT OR Apache-2.0
//! Per-process syscall state: descriptors, current directory, the ring, and the trap door
//! ([`Process::perform`]).

use alloc::{sync::Arc, vec::Vec};
use core::sync::atomic::{AtomicBool, Ordering};

use abi::{Errno, Opcode, RingEnterFlags, Sqe};
use fs::{Vfs, Vnode};

use crate::{
    decode::{Request, decode, decode_clock_gettime, decode_getpid, decode_ring_enter},
    files::{Descriptor, Files},
    kernel::{Kernel, Pid, UserMemory},
    ops,
    ring::{EnterStarted, Ring},
};

/// A current directory: the vnode, and the path it was reached by (what `Getcwd` returns).
///
/// The path is kept lexically (`.` and `..` resolved as names, not through symlinks), so
/// after `cd` through a symlink `Getcwd` shows the symlink's path, as a shell's `$PWD` does.
#[derive(Clone)]
pub struct Cwd {
    /// The directory.
    pub vnode: Vnode,
    /// Its absolute path, without a trailing `/` (except for `/` itself).
    pub path: Vec<u8>,
}

/// What a new process starts with: descriptors and a current directory.
pub struct ProcessInit {
    /// The descriptor table.
    pub files: Files,
    /// The current directory.
    pub cwd: Cwd,
}

impl ProcessInit {
    /// An empty descriptor table and `cwd` at `/` (the VFS root).
    pub fn new(vfs: &Vfs) -> ProcessInit {
        ProcessInit {
            files: Files::new(),
            cwd: Cwd {
                vnode: vfs.root(),
                path: b"/".to_vec(),
            },
        }
    }
}

/// What [`Process::start`] did with a trap-door `Sqe`.
pub enum Trap {
    /// Performed at once: the result for `rax`.
    Done(i64),
    /// Needs waiting: hand it to [`Process::finish`].
    Wait(TrapWait),
}

/// A trap-door operation [`Process::start`] could not finish without waiting.
pub struct TrapWait(Waiting);

enum Waiting {
    /// Not started yet.
    Op(Request),
    /// A `RingEnter` whose submission is done; its wait is not.
    Ring {
        ring: Arc<Ring>,
        started: EnterStarted,
        min_complete: u32,
        flags: RingEnterFlags,
    },
}

/// One process, as the syscall layer sees it.
pub struct Process {
    pid: Pid,
    ppid: Pid,
    pub(crate) vfs: Arc<Vfs>,
    pub(crate) kernel: Arc<dyn Kernel>,
    pub(crate) memory: Arc<dyn UserMemory>,
    pub(crate) files: spin::Mutex<Files>,
    pub(crate) cwd: spin::Mutex<Cwd>,
    pub(crate) ring: spin::Mutex<Option<Arc<Ring>>>,
    exiting: AtomicBool,
}

impl Process {
    /// A process record for `pid` (child of `ppid`, 0 for none).
    pub fn new(
        pid: Pid,
        ppid: Pid,
        vfs: Arc<Vfs>,
        kernel: Arc<dyn Kernel>,
        memory: Arc<dyn UserMemory>,
        init: ProcessInit,
    ) -> Arc<Process> {
        Arc::new(Process {
            pid,
            ppid,
            vfs,
            kernel,
            memory,
            files: spin::Mutex::new(init.files),
            cwd: spin::Mutex::new(init.cwd),
            ring: spin::Mutex::new(None),
            exiting: AtomicBool::new(false),
        })
    }

    /// This process's id.
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The parent's id.
    pub fn ppid(&self) -> Pid {
        self.ppid
    }

    /// `Getpid`'s answer: this process's pid, or its parent's.
    #[inline]
    pub(crate) fn pid_of(&self, parent: bool) -> Pid {
        if parent { self.ppid } else { self.pid }
    }

    /// The ring, once `RingSetup` has made one.
    pub fn ring(&self) -> Option<Arc<Ring>> {
        self.ring.lock().clone()
    }

    /// A clone of the current directory.
    pub fn cwd(&self) -> Cwd {
        self.cwd.lock().clone()
    }

    /// Runs `f` on the descriptor table (e.g. for the kernel to install stdio).
    pub fn with_files<R>(&self, f: impl FnOnce(&mut Files) -> R) -> R {
        f(&mut self.files.lock())
    }

    /// True once `teardown` has started.
    pub fn is_exiting(&self) -> bool {
        self.exiting.load(Ordering::Acquire)
    }

    pub(crate) fn descriptor(&self, fd: i32) -> Result<Descriptor, Errno> {
        self.files.lock().get(fd)
    }

    /// The trap door: decodes `sqe` (already copied out of user memory) and performs it.
    /// Returns the result for `rax`: `>= 0` success, `-errno` failure. Posts no `Cqe`.
    /// For `Exit`, returns 0 after [`Process::teardown`] and [`Kernel::exit`]: the caller
    /// must not return to user mode. The same as [`Process::start`] then, if it did not
    /// finish, [`Process::finish`].
    ///
    /// # Context
    /// Runs in the process's trap task; may suspend (a read that waits, a sleep, a
    /// `RingEnter` with `GETEVENTS`).
    ///
    /// # Cancel safety
    /// Dropping the future (the process is being killed) abandons the operation; user
    /// memory is not touched after that.
    pub async fn perform(self: &Arc<Self>, sqe: &Sqe) -> i64 {
        match self.start(sqe) {
            Trap::Done(result) => result,
            Trap::Wait(wait) => self.finish(wait).await,
        }
    }

    /// The trap door's part that never waits: decodes `sqe` and performs it at once when
    /// it can (a decode error; the operations that never wait: `Nop`, `Getpid`,
    /// `ClockGettime`, descriptor-table and memory-map changes, ...; a `RingEnter` whose
    /// submissions leave nothing to wait for), without building a future. Otherwise
    /// returns what [`Process::finish`] completes.
    ///
    /// # Context
    /// Runs in the process's trap task; never suspends.
    pub fn start(self: &Arc<Self>, sqe: &Sqe) -> Trap {
        let request = match decode(sqe) {
            Ok(Request::LinkTimeout { .. }) => return Trap::Done(Errno::Inval.to_syscall_result()),
            Ok(r) => r,
            Err(e) => return Trap::Done(e.to_syscall_result()),
        };
        log::debug!(target: "syscall", "pid={} op={:?} trap", self.pid, request);
        if let Request::RingEnter { .. } = request {
            return self.start_ring_enter(request);
        }
        // An operation that always waits (a read, a stat, ...) is not offered to
        // `run_sync`, whose out-of-line call would only answer `None`.
        if !ops::always_waits(sqe.opcode)
            && let Some(result) = ops::run_sync(self, &request)
        {
            return Trap::Done(result.unwrap_or_else(|e| e.to_syscall_result()));
        }
        Trap::Wait(TrapWait(Waiting::Op(request)))
    }

    /// [`Process::start`] for a decoded `RingEnter` (anything else is `Inval`): submits, and
    /// finishes at once unless completions must be waited for.
    #[inline(always)]
    fn start_ring_enter(self: &Arc<Self>, request: Request) -> Trap {
        let Request::RingEnter {
            to_submit,
            min_complete,
            flags,
            timeout_ns,
        } = request
        else {
            return Trap::Done(Errno::Inval.to_syscall_result());
        };
        let Some(ring) = self.ring() else {
            return Trap::Done(Errno::Inval.to_syscall_result());
        };
        match ring.enter_start(Some(self), to_submit, flags, timeout_ns) {
            Err(e) => Trap::Done(e.to_syscall_result()),
            Ok(started) if ring.enter_ready(&started, min_complete, flags) => {
                Trap::Done(started.submitted as i64)
            }
            Ok(started) => Trap::Wait(TrapWait(Waiting::Ring {
                ring,
                started,
                min_complete,
                flags,
            })),
        }
    }

    /// The trap door's cheapest case, for a kernel that offers system calls to the process
    /// on the trap itself, interrupts off, before the thread's task sees them: runs
    /// [`Process::start`] for `sqe` if that is short and bounded for its operation (`Nop`,
    /// `Getpid`, `ClockGettime`, descriptor-table changes, port sends and replies, a
    /// `RingEnter` of a small batch, ...). `None` for every other operation, untouched: the
    /// task then calls `start` itself. A [`Trap::Wait`] goes to the task, which finishes it
    /// ([`Process::finish`]).
    ///
    /// # Context
    /// Any context; never suspends, takes only leaf locks.
    pub fn try_inline(self: &Arc<Self>, sqe: &Sqe) -> Option<Trap> {
        if !ops::starts_on_trap(sqe) {
            return None;
        }
        // The hottest calls have decoders of their own (tested against the general one,
        // which dispatches over every opcode) and run here without `run_sync`'s dispatch:
        // under TCG each call and return saved is a fair part of a trap.
        if sqe.opcode == Opcode::RingEnter as u8 {
            return Some(match decode_ring_enter(sqe) {
                Ok(request) => self.start_ring_enter(request),
                Err(e) => Trap::Done(e.to_syscall_result()),
            });
        }
        if sqe.opcode == Opcode::Getpid as u8 {
            return Some(Trap::Done(match decode_getpid(sqe) {
                Ok(Request::Getpid { parent }) => i64::from(self.pid_of(parent)),
                Ok(_) => Errno::Inval.to_syscall_result(),
                Err(e) => e.to_syscall_result(),
            }));
        }
        if sqe.opcode == Opcode::ClockGettime as u8 {
            let result = match decode_clock_gettime(sqe) {
                Ok(Request::ClockGettime { clock, out }) => ops::clock_gettime(self, clock, out),
                Ok(_) => Err(Errno::Inval),
                Err(e) => Err(e),
            };
            return Some(Trap::Done(result.unwrap_or_else(|e| e.to_syscall_result())));
        }
        // The others go straight to `run_sync`, without `start`'s general dispatch (about
        // ninety guest instructions a call, a fifth of a trap).
        let request = match decode(sqe) {
            Ok(r) => r,
            Err(e) => return Some(Trap::Done(e.to_syscall_result())),
        };
        Some(match ops::run_sync(self, &request) {
            Some(result) => Trap::Done(result.unwrap_or_else(|e| e.to_syscall_result())),
            // Not an operation `run_sync` takes after all (listed wrongly): the general
            // path decodes it again and hands it to the task.
            None => self.start(sqe),
        })
    }

    /// Finishes what [`Process::start`] could not: returns the result for `rax`.
    ///
    /// # Context and cancel safety
    /// As [`Process::perform`].
    pub async fn finish(self: &Arc<Self>, wait: TrapWait) -> i64 {
        let result = match wait.0 {
            Waiting::Op(request) => ops::run(self, request).await,
            Waiting::Ring {
                ring,
                started,
                min_complete,
                flags,
            } => ring
                .enter_wait(started, min_complete, flags)
                .await
                .map(i64::from),
        };
        result.unwrap_or_else(|e| e.to_syscall_result())
    }

    /// Process exit (or kill): stops the ring (cancels every operation in flight and waits
    /// until each one's completion is accounted for, so the kernel may then free the
    /// memory they used) and closes every descriptor. Idempotent.
    ///
    /// # Context
    /// May suspend while cancelled operations unwind; needs the ring task running.
    pub async fn teardown(&self) {
        self.exiting.store(true, Ordering::Release);
        let ring = self.ring.lock().take();
        if let Some(ring) = ring {
            ring.cancel_all().await;
        }
        let files = self.files.lock().take_all();
        drop(files);
    }
}

/// The absolute, lexically normalised path of `path` taken from `cwd`.
pub(crate) fn join_path(cwd: &[u8], path: &[u8]) -> Vec<u8> {
    let mut parts: Vec<&[u8]> = Vec::new();
    let start: &[u8] = if path.first() == Some(&b'/') {
        b""
    } else {
        cwd
    };
    for part in start
        .split(|&b| b == b'/')
        .chain(path.split(|&b| b == b'/'))
    {
        match part {
            b"" | b"." => {}
            b".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    let mut out = Vec::new();
    for p in &parts {
        out.push(b'/');
        out.extend_from_slice(p);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::join_path;

    #[test]
    fn join_path_normalises() {
        assert_eq!(join_path(b"/", b"a/b"), b"/a/b");
        assert_eq!(join_path(b"/a/b", b".."), b"/a");
        assert_eq!(join_path(b"/a/b", b"/x/./y/"), b"/x/y");
        assert_eq!(join_path(b"/a", b"../../.."), b"/");
    }
}
