// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reply ports: where the replies of `send` land, awaited by one task as a stream.
//!
//! DragonFly's `lwkt_sendmsg` always replies through the message's reply port, also
//! when the target finished inline; `Port::send` does the same. A reply port is not
//! bound to a CPU: a reply is linked onto its queue from whichever CPU replies, and the
//! waiting task is woken through its waker (the executor carries a wake to another CPU
//! through its IPI queue). Replies come out in the order they were linked.

use core::future::poll_fn;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use crate::envelope::Envelope;
use crate::error::Reply;
use crate::list::List;
use crate::sync::{Arc, Mutex, register_waker};

struct Inner<M> {
    replies: List<M>,
    waker: Option<Waker>,
}

/// The shared half of a reply port: envelopes hold an `Arc` to it while in flight.
pub(crate) struct ReplyQueue<M> {
    inner: Mutex<Inner<M>>,
}

impl<M> ReplyQueue<M> {
    /// Links a replied envelope and wakes the reply port's task. Allocation-free.
    pub(crate) fn push(&self, env: Arc<Envelope<M>>) {
        let mut inner = self.inner.lock();
        inner.replies.push_back(env);
        let waker = inner.waker.take();
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn pop(&self) -> Option<Reply<M>> {
        let env = self.inner.lock().replies.pop_front()?;
        Some(
            env.take_reply()
                .expect("ports: only replied envelopes are linked onto a reply port"),
        )
    }
}

/// A reply port: receives the replies of messages sent with [`Port::send`].
///
/// Owned by one task (receiving takes `&mut self`); any number of messages may be in
/// flight towards it. Implements [`futures_core::Stream`]; the stream never ends, since
/// new messages can be sent at any time.
///
/// Dropping a reply port drops the replies already queued on it; replies that arrive
/// later are kept by the port's shared queue until the last message in flight has been
/// replied, and are then dropped with it (nothing leaks, nothing is freed early).
///
/// [`Port::send`]: crate::Port::send
pub struct ReplyPort<M> {
    queue: Arc<ReplyQueue<M>>,
}

impl<M> Default for ReplyPort<M> {
    fn default() -> Self {
        Self::new()
    }
}

impl<M> core::fmt::Debug for ReplyPort<M> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ReplyPort")
            .field("queued", &self.len())
            .finish()
    }
}

impl<M> ReplyPort<M> {
    /// Creates an empty reply port.
    ///
    /// # Cancel safety
    /// Not a future; the new reply port holds no reply.
    ///
    /// # Context
    /// Any CPU, any context that may allocate (one small allocation).
    pub fn new() -> Self {
        Self {
            queue: Arc::new(ReplyQueue {
                inner: Mutex::new(Inner {
                    replies: List::new(),
                    waker: None,
                }),
            }),
        }
    }

    pub(crate) fn queue(&self) -> &Arc<ReplyQueue<M>> {
        &self.queue
    }

    /// Number of replies waiting to be received.
    ///
    /// # Cancel safety
    /// Not a future; moves no message.
    ///
    /// # Context
    /// Any CPU; takes the reply port's spin lock briefly.
    pub fn len(&self) -> usize {
        self.queue.inner.lock().replies.len()
    }

    /// `true` when no reply is waiting.
    ///
    /// # Cancel safety
    /// Not a future; moves no message.
    ///
    /// # Context
    /// As [`ReplyPort::len`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the oldest reply if there is one.
    ///
    /// # Cancel safety
    /// Not a future: a reply leaves the port only when it is returned.
    ///
    /// # Context
    /// Any CPU; never waits (takes the reply port's spin lock briefly).
    pub fn try_recv(&mut self) -> Option<Reply<M>> {
        self.queue.pop()
    }

    /// Takes the oldest reply, or registers `cx`'s waker to be woken by the next one.
    ///
    /// # Cancel safety
    /// A reply leaves the port only in a `Ready` result; `Pending` takes nothing.
    ///
    /// # Context
    /// The task that owns this reply port; never blocks.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Reply<M>> {
        let mut inner = self.queue.inner.lock();
        match inner.replies.pop_front() {
            Some(env) => {
                drop(inner);
                Poll::Ready(
                    env.take_reply()
                        .expect("ports: only replied envelopes are linked onto a reply port"),
                )
            }
            None => {
                let replaced = register_waker(&mut inner.waker, cx);
                drop(inner);
                drop(replaced);
                Poll::Pending
            }
        }
    }

    /// Waits for the next reply.
    ///
    /// # Cancel safety
    /// Cancel-safe: a reply is only taken out of the port when this future returns it,
    /// so dropping the future loses nothing.
    ///
    /// # Context
    /// The task that owns this reply port; may suspend.
    pub async fn recv(&mut self) -> Reply<M> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
}

impl<M> futures_core::Stream for ReplyPort<M> {
    type Item = Reply<M>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Reply<M>>> {
        self.get_mut().poll_recv(cx).map(Some)
    }
}
