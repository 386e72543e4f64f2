// SPDX-License-Identifier: MIT OR Apache-2.0
//! A filesystem as a port handler, and the VFS's handle on it (`FsPort`).
//!
//! A filesystem implements [`Filesystem::handle`]: given a message, either serve it now
//! (fill `result`, return `Handled::Done`) or keep it for later. tmpfs and devfs always
//! serve inline, which is DragonFly's synchronous `mp_putport` path: the caller's
//! `call(..).await` is `Ready` on its first poll and no task is scheduled.
//!
//! `FsPort` is the only way the VFS reaches a filesystem. Today it calls the handler
//! directly on the calling CPU; when `ports` lands, its inside becomes a `ports::Port`
//! whose inline handler is this same `handle`, and the `Deferred` case is what the port
//! queues for the filesystem's task. Callers do not change: they always `.await`.

use alloc::{boxed::Box, sync::Arc};
use core::{
    future::Future,
    pin::{Pin, pin},
    task::{Context, Poll, Waker},
};

use crate::proto::{Ino, VnodeMsg, VnodeOp, VnodeResult};

/// A future that completes a message a filesystem could not serve inline.
pub type DeferredReply = Pin<Box<dyn Future<Output = VnodeMsg> + Send>>;

/// What `Filesystem::handle` did with a message.
pub enum Handled {
    /// Served inline: the message (with `result` set) goes straight back.
    Done(VnodeMsg),
    /// Will be served later: the future yields the replied message.
    Deferred(DeferredReply),
}

/// A filesystem: the server side of the vnode protocol (`crate::proto`).
pub trait Filesystem: Send + Sync {
    /// A short type name for logs and `mount` listings ("tmpfs", "devfs").
    fn fs_type(&self) -> &'static str;

    /// The root directory's inode.
    fn root(&self) -> Ino;

    /// Serves one message, inline when it can.
    ///
    /// # Context
    /// Called on the caller's CPU, possibly on several CPUs at once: implementations do
    /// their own locking and must not block.
    fn handle(&self, msg: VnodeMsg) -> Handled;
}

/// The VFS's handle on a mounted filesystem's port.
#[derive(Clone)]
pub struct FsPort {
    fs: Arc<dyn Filesystem>,
}

impl FsPort {
    /// A port served by `fs`.
    pub fn new(fs: Arc<dyn Filesystem>) -> FsPort {
        FsPort { fs }
    }

    /// The filesystem behind this port.
    pub fn filesystem(&self) -> &Arc<dyn Filesystem> {
        &self.fs
    }

    /// Sends `msg` and waits for the reply. Ready on the first poll when the filesystem
    /// serves inline.
    ///
    /// # Cancel safety
    /// Dropping the future before completion drops the deferred reply; the filesystem
    /// still finishes (or drops) the operation on its side.
    pub async fn call(&self, msg: VnodeMsg) -> VnodeMsg {
        match self.fs.handle(msg) {
            Handled::Done(msg) => msg,
            Handled::Deferred(reply) => reply.await,
        }
    }

    /// `call` for an operation without a data buffer, returning just the result.
    pub async fn call_op(&self, op: VnodeOp) -> VnodeResult {
        self.call(VnodeMsg::new(op)).await.take_result()
    }

    /// Fire and forget: the reply is dropped. Used where nobody can wait (releasing an
    /// open file from `Drop`). A deferred reply is driven to completion only if the
    /// filesystem's task does so; inline filesystems are done before this returns.
    pub fn send(&self, op: VnodeOp) {
        match self.fs.handle(VnodeMsg::new(op)) {
            Handled::Done(_) => {}
            Handled::Deferred(_reply) => {
                // FIXME(issue 5): with `ports`, this becomes `Port::send` and the reply
                // lands on a reply port; until then a deferred release is dropped here.
            }
        }
    }
}

/// Polls `fut` once and returns its output if it completed inline (`None` if it would
/// have to wait).
///
/// For code that runs before any executor (unpacking the boot archive into tmpfs) and for
/// tests that assert the inline fast path: every VFS operation on tmpfs and devfs
/// completes here.
pub fn try_complete_inline<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    match fut.as_mut().poll(&mut cx) {
        Poll::Ready(out) => Some(out),
        Poll::Pending => None,
    }
}
