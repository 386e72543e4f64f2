// SPDX-License-Identifier: MIT OR Apache-2.0
//! A filesystem as a port handler, and the VFS's handle on its port (`FsPort`).
//!
//! Every vnode operation is a [`VnodeMsg`] put to a `ports::Port<VnodeMsg>`. Two ways to
//! serve one:
//!
//! - **Inline** ([`FsPort::inline`]): the filesystem implements [`Filesystem::serve`],
//!   and its port is a `ports` function port: a put is a direct call on the caller's CPU,
//!   from any CPU, and `call(..).await` is `Ready` on its first poll with no allocation
//!   and no task switch (DragonFly's synchronous `mp_putport` path). tmpfs and devfs are
//!   served this way.
//! - **By a task** ([`FsPort::from_port`]): any `Port<VnodeMsg>`, typically an executor
//!   port whose handler completes cached operations inline and queues the rest for a
//!   server task (a disk filesystem, or a filesystem in a user process). The VFS does not
//!   change: it always `.await`s.

use alloc::sync::Arc;
use core::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use abi::Errno;
use ports::{Port, PortError, ReplyPort};

use crate::proto::{Ino, VnodeMsg, VnodeOp, VnodeResult};

/// A filesystem that serves every message inline.
pub trait Filesystem: Send + Sync + 'static {
    /// A short type name for logs and mount listings ("tmpfs", "devfs").
    fn fs_type(&self) -> &'static str;

    /// The root directory's inode.
    fn root(&self) -> Ino;

    /// Serves one message now: sets `msg.result` (and fills `msg.buf` where the op says).
    ///
    /// # Context
    /// Called on the caller's CPU, possibly on several CPUs at once: implementations do
    /// their own (short, spin) locking and never wait.
    fn serve(&self, msg: &mut VnodeMsg);

    /// `true` if this filesystem's data is in memory and its `Read` and `Write` take
    /// caller memory (`into`, `from`: see `crate::proto`), so the VFS hands it the
    /// caller's memory instead of copying through `buf`. The default is `false`.
    fn takes_caller_memory(&self) -> bool {
        false
    }
}

/// The errno an operation gets when its message came back unserved.
///
/// `Closed` (the filesystem's server is gone) is `NotConn`, as FUSE reports a dead
/// userland filesystem; every other port failure is `Io`.
pub fn errno_from_port(error: PortError) -> Errno {
    match error {
        PortError::Closed => Errno::NotConn,
        _ => Errno::Io,
    }
}

/// The VFS's handle on a filesystem's port. Cheap to clone.
#[derive(Clone)]
pub struct FsPort {
    port: Port<VnodeMsg>,
    /// The filesystem itself when it serves inline: `call` then serves the message where
    /// it lies, as the function port would, without moving it through the port.
    inline: Option<Arc<dyn Filesystem>>,
    fs_type: &'static str,
    root: Ino,
}

impl FsPort {
    /// A function port that serves every message inline with `fs`.
    pub fn inline(fs: Arc<dyn Filesystem>) -> FsPort {
        let (fs_type, root) = (fs.fs_type(), fs.root());
        let served = fs.clone();
        let port = Port::function(move |mut msg: VnodeMsg| {
            served.serve(&mut msg);
            msg
        });
        FsPort {
            port,
            inline: Some(fs),
            fs_type,
            root,
        }
    }

    /// A filesystem served through any port (for example an executor port with a server
    /// task), whose root directory is `root`.
    pub fn from_port(port: Port<VnodeMsg>, fs_type: &'static str, root: Ino) -> FsPort {
        FsPort {
            port,
            inline: None,
            fs_type,
            root,
        }
    }

    /// The port itself.
    pub fn port(&self) -> &Port<VnodeMsg> {
        &self.port
    }

    /// The filesystem's type name.
    pub fn fs_type(&self) -> &'static str {
        self.fs_type
    }

    /// The filesystem's root directory.
    pub fn root(&self) -> Ino {
        self.root
    }

    /// `true` if the filesystem takes caller memory in `Read` and `Write`
    /// ([`Filesystem::takes_caller_memory`]; never for one served by a task).
    pub fn takes_caller_memory(&self) -> bool {
        self.inline
            .as_ref()
            .is_some_and(|fs| fs.takes_caller_memory())
    }

    /// Puts `msg` and waits for the reply; `Ready` on the first poll when the filesystem
    /// serves inline. A message the port hands back unserved comes back with the
    /// [`errno_from_port`] error as its result.
    ///
    /// # Cancel safety
    /// As `ports::Port::call`: dropping the future while the message is queued orphans it;
    /// the filesystem still finishes (or drops) the operation on its side.
    ///
    /// # Context
    /// A task on any CPU (or any thread, for inline ports); suspends only if the
    /// filesystem queued the message.
    pub async fn call(&self, mut msg: VnodeMsg) -> VnodeMsg {
        self.call_in_place(&mut msg).await;
        msg
    }

    /// `call` on a message that stays where it is: the reply replaces it. An inline
    /// filesystem serves it right there, as the function port would, but without moving
    /// it into the port and back (a message is a couple of hundred bytes, and each move
    /// is a copy); a port that queues it takes it and puts the reply back.
    ///
    /// # Cancel safety
    /// As [`FsPort::call`]; if the future is dropped while the message is queued, `msg`
    /// is left holding an unserved placeholder.
    ///
    /// # Context
    /// As [`FsPort::call`].
    pub async fn call_in_place(&self, msg: &mut VnodeMsg) {
        if let Some(fs) = &self.inline {
            fs.serve(msg);
            return;
        }
        let queued = core::mem::replace(msg, VnodeMsg::new(VnodeOp::Fsync { ino: 0 }));
        *msg = match self.port.call(queued).await {
            Ok(msg) => msg,
            Err((error, mut msg)) => {
                msg.result = Some(Err(errno_from_port(error)));
                msg
            }
        };
    }

    /// `call` for an operation without a data buffer, returning just the result.
    pub async fn call_op(&self, op: VnodeOp) -> VnodeResult {
        let mut msg = VnodeMsg::new(op);
        self.call_in_place(&mut msg).await;
        msg.take_result()
    }

    /// Fire and forget (used to release an open file from `Drop`, where nobody can wait):
    /// the message is put, and its reply, inline or later, is dropped.
    pub fn send(&self, op: VnodeOp) {
        let reply_port = ReplyPort::new();
        let _ = self.port.put(VnodeMsg::new(op), &reply_port);
    }
}

impl<T: Filesystem> From<Arc<T>> for FsPort {
    fn from(fs: Arc<T>) -> FsPort {
        FsPort::inline(fs)
    }
}

impl From<Arc<dyn Filesystem>> for FsPort {
    fn from(fs: Arc<dyn Filesystem>) -> FsPort {
        FsPort::inline(fs)
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
