// SPDX-License-Identifier: MIT OR Apache-2.0
//! Open files (one per successful `open`) and the per-process descriptor table.
//!
//! An `OpenFile` is POSIX's "open file description": the vnode, the status flags and the
//! offset, shared by every descriptor `dup` made from it. The `FdTable` maps small
//! integers to open files and carries the per-descriptor close-on-exec flag.

use alloc::{sync::Arc, vec::Vec};
use core::{
    future::Future,
    pin::Pin,
    sync::atomic::AtomicU64,
    task::{Context, Poll, Waker},
};

use abi::{Errno, FileType, OpenFlags};

use crate::{
    blockdev::BlockDevice,
    proto::VnodeOp,
    sync::{AtomicBool, Mutex, Ordering},
    vfs::Vnode,
};

/// Most descriptors one table may hold (`RLIMIT_NOFILE`'s usual soft limit).
pub const MAX_FDS: usize = 1024;

/// An open file description.
pub struct OpenFile {
    vnode: Vnode,
    flags: OpenFlags,
    offset: AtomicU64,
    position: PositionLock,
    /// The device, for a block device node whose filesystem handed it over at open
    /// (`VnodeDone::OpenedDevice`): direct I/O goes straight to it.
    device: Option<Arc<BlockDevice>>,
}

impl OpenFile {
    /// Wraps a vnode the filesystem has already counted as open (`VnodeOp::Open`); the
    /// matching `Close` is sent when the last reference goes away.
    pub(crate) fn new(vnode: Vnode, flags: OpenFlags) -> OpenFile {
        OpenFile::with_device(vnode, flags, None)
    }

    /// As [`OpenFile::new`], for a block device the filesystem handed over at open.
    pub(crate) fn with_device(
        vnode: Vnode,
        flags: OpenFlags,
        device: Option<Arc<BlockDevice>>,
    ) -> OpenFile {
        OpenFile {
            vnode,
            flags,
            offset: AtomicU64::new(0),
            position: PositionLock::default(),
            device,
        }
    }

    /// The block device behind this file, if its filesystem handed it over at open.
    pub fn block_device(&self) -> Option<&Arc<BlockDevice>> {
        self.device.as_ref()
    }

    /// The file.
    pub fn vnode(&self) -> &Vnode {
        &self.vnode
    }

    /// The file's type.
    pub fn kind(&self) -> FileType {
        self.vnode.kind()
    }

    /// The flags it was opened with (creation flags removed).
    pub fn flags(&self) -> OpenFlags {
        self.flags
    }

    /// The current offset (for directories, the readdir cookie).
    pub fn offset(&self) -> u64 {
        self.offset.load(Ordering::Acquire)
    }

    pub(crate) fn set_offset(&self, offset: u64) {
        self.offset.store(offset, Ordering::Release);
    }

    /// Waits until no other operation uses this file's offset, and holds it until the
    /// guard is dropped (Linux's `f_pos_lock`): a `read`, `write`, `lseek` or `readdir`
    /// on a shared open file sees the offset the previous one left.
    ///
    /// # Cancel safety
    /// Dropping the future or the guard releases (or never takes) the lock.
    pub(crate) async fn lock_position(&self) -> PositionGuard<'_> {
        Acquire {
            lock: &self.position,
        }
        .await;
        PositionGuard {
            lock: &self.position,
        }
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        if !self.flags.contains(OpenFlags::PATH) {
            self.vnode.port().send(VnodeOp::Close {
                ino: self.vnode.ino(),
            });
        }
    }
}

impl core::fmt::Debug for OpenFile {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OpenFile")
            .field("vnode", &self.vnode)
            .field("flags", &self.flags)
            .field("offset", &self.offset())
            .finish()
    }
}

/// A small lock for a file's position; waiters are tasks, woken all at once on release.
#[derive(Default)]
struct PositionLock {
    locked: AtomicBool,
    waiters: Mutex<Vec<Waker>>,
}

impl PositionLock {
    fn try_lock(&self) -> bool {
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    fn unlock(&self) {
        self.locked.store(false, Ordering::Release);
        // Wake everyone: one wins, the others register again. Waking all (not one) means
        // a waiter that was woken and then cancelled cannot strand the rest.
        let waiters = core::mem::take(&mut *self.waiters.lock());
        for waker in waiters {
            waker.wake();
        }
    }
}

struct Acquire<'a> {
    lock: &'a PositionLock,
}

impl Future for Acquire<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.lock.try_lock() {
            return Poll::Ready(());
        }
        let mut waiters = self.lock.waiters.lock();
        // Again under the waiter lock: an unlock between the first try and here has to
        // take this lock to wake anyone, so it sees our waker or we see it unlocked.
        if self.lock.try_lock() {
            return Poll::Ready(());
        }
        if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
            waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

/// Holds an open file's position lock (see [`OpenFile::lock_position`]).
pub(crate) struct PositionGuard<'a> {
    lock: &'a PositionLock,
}

impl Drop for PositionGuard<'_> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

/// A descriptor number.
pub type Fd = i32;

#[derive(Clone)]
struct Slot {
    file: Arc<OpenFile>,
    close_on_exec: bool,
}

/// A process's descriptor table.
#[derive(Clone, Default)]
pub struct FdTable {
    slots: Vec<Option<Slot>>,
}

impl FdTable {
    /// An empty table.
    pub fn new() -> FdTable {
        FdTable::default()
    }

    fn lowest_free(&self, from: usize) -> Result<usize, Errno> {
        let fd = (from..self.slots.len())
            .find(|&i| self.slots[i].is_none())
            .unwrap_or(self.slots.len().max(from));
        if fd >= MAX_FDS {
            Err(Errno::MFile)
        } else {
            Ok(fd)
        }
    }

    fn put(&mut self, fd: usize, slot: Slot) -> Option<Arc<OpenFile>> {
        if fd >= self.slots.len() {
            self.slots.resize(fd + 1, None);
        }
        self.slots[fd].replace(slot).map(|s| s.file)
    }

    fn slot(&self, fd: Fd) -> Result<&Slot, Errno> {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.slots.get(i))
            .and_then(Option::as_ref)
            .ok_or(Errno::BadF)
    }

    /// Installs `file` at the lowest free descriptor.
    ///
    /// # Errors
    /// `MFile` when all [`MAX_FDS`] descriptors are in use.
    pub fn insert(&mut self, file: Arc<OpenFile>, close_on_exec: bool) -> Result<Fd, Errno> {
        let fd = self.lowest_free(0)?;
        self.put(
            fd,
            Slot {
                file,
                close_on_exec,
            },
        );
        Ok(fd as Fd)
    }

    /// The open file behind `fd`.
    ///
    /// # Errors
    /// `BadF` if `fd` is not open.
    pub fn get(&self, fd: Fd) -> Result<Arc<OpenFile>, Errno> {
        self.slot(fd).map(|s| s.file.clone())
    }

    /// Closes `fd`, returning its open file (the file is released when the last
    /// reference to it goes).
    ///
    /// # Errors
    /// `BadF` if `fd` is not open.
    pub fn close(&mut self, fd: Fd) -> Result<Arc<OpenFile>, Errno> {
        self.slot(fd)?;
        let slot = self.slots[fd as usize].take().ok_or(Errno::BadF)?;
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        Ok(slot.file)
    }

    /// `dup`: a new descriptor (lowest free) for the same open file, close-on-exec clear.
    ///
    /// # Errors
    /// `BadF` if `fd` is not open, `MFile` if the table is full.
    pub fn dup(&mut self, fd: Fd) -> Result<Fd, Errno> {
        self.dup_from(fd, 0, false)
    }

    /// `fcntl(F_DUPFD[_CLOEXEC])`: like `dup`, but the lowest free descriptor `>= min`.
    ///
    /// # Errors
    /// `BadF` if `fd` is not open, `Inval` if `min` is out of range, `MFile` if full.
    pub fn dup_from(&mut self, fd: Fd, min: Fd, close_on_exec: bool) -> Result<Fd, Errno> {
        let file = self.get(fd)?;
        let min = usize::try_from(min)
            .ok()
            .filter(|&m| m < MAX_FDS)
            .ok_or(Errno::Inval)?;
        let new = self.lowest_free(min)?;
        self.put(
            new,
            Slot {
                file,
                close_on_exec,
            },
        );
        Ok(new as Fd)
    }

    /// `dup2`: make `new` refer to `old`'s open file, closing what `new` had. `dup2(fd, fd)`
    /// returns `fd` if it is open. Close-on-exec on `new` is cleared.
    ///
    /// # Errors
    /// `BadF` if `old` is not open or `new` is out of range.
    pub fn dup2(&mut self, old: Fd, new: Fd) -> Result<Fd, Errno> {
        let file = self.get(old)?;
        let index = usize::try_from(new)
            .ok()
            .filter(|&n| n < MAX_FDS)
            .ok_or(Errno::BadF)?;
        if old == new {
            return Ok(new);
        }
        self.put(
            index,
            Slot {
                file,
                close_on_exec: false,
            },
        );
        Ok(new)
    }

    /// `dup3`: like `dup2` with an explicit close-on-exec flag.
    ///
    /// # Errors
    /// As `dup2`, plus `Inval` if `old == new`.
    pub fn dup3(&mut self, old: Fd, new: Fd, close_on_exec: bool) -> Result<Fd, Errno> {
        if old == new {
            return Err(Errno::Inval);
        }
        self.dup2(old, new)?;
        self.slots[new as usize]
            .as_mut()
            .ok_or(Errno::BadF)?
            .close_on_exec = close_on_exec;
        Ok(new)
    }

    /// `F_GETFD`'s close-on-exec bit.
    ///
    /// # Errors
    /// `BadF` if `fd` is not open.
    pub fn close_on_exec(&self, fd: Fd) -> Result<bool, Errno> {
        self.slot(fd).map(|s| s.close_on_exec)
    }

    /// `F_SETFD`'s close-on-exec bit.
    ///
    /// # Errors
    /// `BadF` if `fd` is not open.
    pub fn set_close_on_exec(&mut self, fd: Fd, on: bool) -> Result<(), Errno> {
        self.slot(fd)?;
        self.slots[fd as usize]
            .as_mut()
            .ok_or(Errno::BadF)?
            .close_on_exec = on;
        Ok(())
    }

    /// At `exec`: closes every close-on-exec descriptor; returns how many were closed.
    pub fn exec(&mut self) -> usize {
        let mut closed = 0;
        for slot in &mut self.slots {
            if slot.as_ref().is_some_and(|s| s.close_on_exec) {
                *slot = None;
                closed += 1;
            }
        }
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        closed
    }

    /// Number of open descriptors.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    /// True if no descriptor is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use alloc::{sync::Arc, task::Wake};
    use core::{
        pin::pin,
        sync::atomic::AtomicUsize,
        task::{Context, Poll, Waker},
    };

    use super::*;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn position_lock_waits_and_is_woken_on_release() {
        let lock = PositionLock::default();
        assert!(lock.try_lock());
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut second = pin!(Acquire { lock: &lock });
        assert_eq!(second.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(second.as_mut().poll(&mut cx), Poll::Pending);
        assert_eq!(
            lock.waiters.lock().len(),
            1,
            "one waker per task, not per poll"
        );
        lock.unlock();
        assert_eq!(counter.0.load(Ordering::Relaxed), 1);
        assert_eq!(second.as_mut().poll(&mut cx), Poll::Ready(()));
        assert!(!lock.try_lock(), "the second acquirer holds it now");
        drop(PositionGuard { lock: &lock });
        assert!(lock.try_lock());
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use loom::{future::block_on, sync::Arc, thread};

    use super::*;
    use crate::sync::AtomicBool;

    /// Two tasks take the position lock: never both inside, and the loser is always woken
    /// (a lost wakeup would leave its `block_on` waiting forever, which loom reports).
    #[test]
    fn loom_position_lock_excludes_and_never_loses_a_wakeup() {
        loom::model(|| {
            let lock = Arc::new(PositionLock::default());
            let inside = Arc::new(AtomicBool::new(false));
            let task = |lock: Arc<PositionLock>, inside: Arc<AtomicBool>| async move {
                Acquire { lock: &lock }.await;
                assert!(!inside.swap(true, Ordering::SeqCst), "two holders");
                inside.store(false, Ordering::SeqCst);
                lock.unlock();
            };
            let other = thread::spawn({
                let (lock, inside) = (lock.clone(), inside.clone());
                move || block_on(task(lock, inside))
            });
            block_on(task(lock.clone(), inside));
            other.join().unwrap();
            assert!(lock.try_lock(), "free at the end");
        });
    }
}
