// SPDX-License-Identifier: MIT OR Apache-2.0
//! The target side of an executor port: `Server` receives, `Request` replies or forwards.
//!
//! A `Request` owns the message while the target works on it, and consuming it is the
//! only way to reply or forward, so replying twice or forwarding a message you do not
//! own does not compile. Dropping a `Request` without replying is not a leak either: the
//! message goes back to its originator with `PortError::Unreplied`.

use alloc::sync::Arc;
use core::future::poll_fn;
use core::pin::Pin;
use core::sync::atomic::Ordering;
use core::task::{Context, Poll};

use crate::envelope::Envelope;
use crate::error::PortError;
use crate::list::List;
use crate::platform::current_cpu_checked;
use crate::port::{Attempt, ExecPort, Port, bounce};
use crate::sync::{self, register_waker};

/// The receiving end of an executor port: owned by the one task that serves it, on the
/// port's CPU (DragonFly: the thread that owns a thread port).
///
/// Dropping the server closes the port: queued messages and later puts that the handler
/// does not complete inline bounce back with [`PortError::Closed`]. The reverse does not
/// hold: a server whose `Port` handles are all gone keeps waiting until its task ends or
/// is cancelled (DragonFly's ports are not reference counted either; a protocol that
/// wants an end says so with a message).
pub struct Server<M: Send + 'static> {
    port: Arc<ExecPort<M>>,
    /// A handle on the same port, for `Server::port`.
    handle: Port<M>,
}

impl<M: Send + 'static> core::fmt::Debug for Server<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Server")
            .field("cpu", &self.port.cpu)
            .finish()
    }
}

impl<M: Send + 'static> Server<M> {
    pub(crate) fn new(port: Arc<ExecPort<M>>, handle: Port<M>) -> Self {
        Self { port, handle }
    }

    /// Takes the oldest queued message, if any.
    ///
    /// # Cancel safety
    /// Not a future: a message leaves the queue only when it is returned.
    ///
    /// # Context
    /// The serving task, on the port's CPU (debug-asserted); never waits.
    pub fn try_recv(&mut self) -> Option<Request<M>> {
        debug_assert_eq!(
            current_cpu_checked(),
            Some(self.port.cpu),
            "ports: a port is served on its own CPU"
        );
        let env = self.port.local.lock().queue.pop_front()?;
        Some(Request::new(env))
    }

    /// Takes the oldest queued message, or registers `cx`'s waker for the next one.
    ///
    /// # Cancel safety
    /// A message leaves the queue only in a `Ready` result; `Pending` takes nothing.
    ///
    /// # Context
    /// The serving task, on the port's CPU (debug-asserted); never blocks.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Request<M>> {
        debug_assert_eq!(
            current_cpu_checked(),
            Some(self.port.cpu),
            "ports: a port is served on its own CPU"
        );
        let mut local = self.port.local.lock();
        match local.queue.pop_front() {
            Some(env) => {
                drop(local);
                Poll::Ready(Request::new(env))
            }
            None => {
                let replaced = register_waker(&mut local.server, cx);
                drop(local);
                drop(replaced);
                Poll::Pending
            }
        }
    }

    /// Waits for the next queued message (DragonFly's `lwkt_waitport`).
    ///
    /// # Cancel safety
    /// Cancel-safe: a message leaves the queue only when this future returns it.
    ///
    /// # Context
    /// The serving task, on the port's CPU; may suspend.
    pub async fn recv(&mut self) -> Request<M> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// A new handle to the port this server serves.
    ///
    /// # Cancel safety
    /// Not a future; moves no message.
    ///
    /// # Context
    /// Any CPU; never suspends.
    pub fn port(&self) -> Port<M> {
        self.handle.clone()
    }
}

impl<M: Send + 'static> futures_core::Stream for Server<M> {
    type Item = Request<M>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Request<M>>> {
        self.get_mut().poll_recv(cx).map(Some)
    }
}

impl<M: Send + 'static> Drop for Server<M> {
    fn drop(&mut self) {
        let mut local = self.port.local.lock();
        self.port.closed.store(true, Ordering::Relaxed);
        let mut queued: List<M> = local.queue.take_all();
        let waker = local.server.take();
        drop(local);
        drop(waker);
        while let Some(env) = queued.pop_front() {
            bounce(env, PortError::Closed);
        }
    }
}

/// A message being served: the target owns it until it replies or forwards.
///
/// Dropping a request without replying hands the message back to its originator with
/// [`PortError::Unreplied`].
pub struct Request<M> {
    /// `None` only after `reply`/`forward` consumed it (so `Drop` knows not to bounce).
    inner: Option<(M, sync::Arc<Envelope<M>>)>,
}

impl<M> core::fmt::Debug for Request<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Request").finish_non_exhaustive()
    }
}

impl<M> Request<M> {
    fn new(env: sync::Arc<Envelope<M>>) -> Self {
        let msg = env
            .take_msg()
            .expect("ports: only queued envelopes are on a port queue");
        Self {
            inner: Some((msg, env)),
        }
    }

    fn parts(&self) -> &(M, sync::Arc<Envelope<M>>) {
        self.inner
            .as_ref()
            .expect("ports: a request is live until consumed")
    }

    /// The message.
    ///
    /// # Cancel safety
    /// Not a future; moves no message.
    ///
    /// # Context
    /// The task holding the request; never suspends.
    pub fn msg(&self) -> &M {
        &self.parts().0
    }

    /// The message, to fill in results before replying.
    ///
    /// # Cancel safety
    /// Not a future; the message stays in the request.
    ///
    /// # Context
    /// The task holding the request; never suspends.
    pub fn msg_mut(&mut self) -> &mut M {
        &mut self
            .inner
            .as_mut()
            .expect("ports: a request is live until consumed")
            .0
    }

    /// Replies (DragonFly's `lwkt_replymsg`): hands the message back to its originator.
    ///
    /// # Cancel safety
    /// Not a future. If the originator dropped its `Call`, the message is dropped here.
    ///
    /// # Context
    /// Any CPU, any task; never suspends. Wakes the originator (through the executor's
    /// IPI queue if it lives on another CPU).
    pub fn reply(mut self) {
        let (msg, env) = self
            .inner
            .take()
            .expect("ports: a request is live until consumed");
        Envelope::complete(env, Ok(msg));
    }

    /// Replies with `msg` in place of the original message, which is dropped.
    ///
    /// # Cancel safety
    /// As [`Request::reply`].
    ///
    /// # Context
    /// As [`Request::reply`].
    pub fn reply_with(mut self, msg: M) {
        let (old, env) = self
            .inner
            .take()
            .expect("ports: a request is live until consumed");
        drop(old);
        Envelope::complete(env, Ok(msg));
    }

    /// `true` once the originator asked to abort (or dropped its `Call`). Advisory: the
    /// target must still reply.
    ///
    /// # Cancel safety
    /// Not a future; moves no message.
    ///
    /// # Context
    /// Any CPU; never suspends (takes the envelope's spin lock briefly).
    pub fn is_abort_requested(&self) -> bool {
        self.parts().1.is_abort_requested()
    }

    /// `Ready` once an abort is requested; otherwise registers `cx`'s waker.
    ///
    /// # Cancel safety
    /// Only observes a flag; `Pending` leaves a waker that the next abort request wakes.
    ///
    /// # Context
    /// The serving task; never blocks.
    pub fn poll_aborted(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.parts().1.poll_abort(cx)
    }

    /// Waits until the originator asks to abort (to race against the real work).
    ///
    /// # Cancel safety
    /// Cancel-safe: it only observes a flag.
    ///
    /// # Context
    /// The serving task; may suspend.
    pub async fn aborted(&self) {
        poll_fn(|cx| self.poll_aborted(cx)).await
    }
}

impl<M: Send + 'static> Request<M> {
    /// Forwards the message to `port` (DragonFly's `lwkt_forwardmsg`): `port` becomes the
    /// target, and its reply goes to the original originator. No new allocation: the
    /// message keeps its envelope. If `port` completes it inline it is replied right away.
    ///
    /// # Cancel safety
    /// Not a future: from the call on, `port` owns the message.
    ///
    /// # Context
    /// Any CPU; never suspends (see [`Port::put`]).
    pub fn forward(mut self, port: &Port<M>) {
        let (msg, env) = self
            .inner
            .take()
            .expect("ports: a request is live until consumed");
        match port.attempt(msg) {
            Attempt::Done(reply) => Envelope::complete(env, reply),
            Attempt::Local(msg) => {
                env.put_back(msg);
                port.enqueue(env, false);
            }
            Attempt::Remote(msg) => {
                env.put_back(msg);
                port.enqueue(env, true);
            }
        }
    }
}

impl<M> Drop for Request<M> {
    fn drop(&mut self) {
        if let Some((msg, env)) = self.inner.take() {
            Envelope::complete(env, Err((PortError::Unreplied, msg)));
        }
    }
}
