// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Call`: the future of `Port::call` (DragonFly's `lwkt_domsg`).
//!
//! States: `Start(M)` until the first poll; then either the put completed inline and the
//! first poll returns `Ready`, or the message moved into an envelope and the future is
//! `Waiting` for its reply; `Done` after `Ready`.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::envelope::Envelope;
use crate::error::Reply;
use crate::port::{Attempt, Port};
use crate::sync::Arc;

enum State<M> {
    Start(M),
    Waiting(Arc<Envelope<M>>),
    Done,
}

/// The future returned by [`Port::call`]. Output: the replied message, or the message
/// with a [`PortError`](crate::PortError).
///
/// See [`Port::call`] for the cancel-safety contract.
#[must_use = "a call does nothing until it is awaited"]
pub struct Call<'a, M> {
    port: &'a Port<M>,
    state: State<M>,
}

// `Call` never pins the message or anything else it holds (no `Pin<&mut M>` is ever
// made), so it is `Unpin` whatever `M` is.
impl<M> Unpin for Call<'_, M> {}

impl<'a, M: Send + 'static> Call<'a, M> {
    pub(crate) fn new(port: &'a Port<M>, msg: M) -> Self {
        Self {
            port,
            state: State::Start(msg),
        }
    }

    /// Asks the target to abort the message (DragonFly's `lwkt_abortmsg`).
    ///
    /// Abort is advisory: the target sees it through [`Request::is_abort_requested`] /
    /// [`Request::aborted`] and still replies, maybe sooner, maybe with a protocol-level
    /// "aborted" result in the message. Keep awaiting this future for the reply.
    /// Returns `false`, and does nothing, if the message is not in flight (not polled yet,
    /// completed inline, or already replied).
    ///
    /// # Cancel safety
    /// Not a future. Whatever the answer, the call stays the message's way back: keep awaiting
    /// it (or drop it, see [`Port::call`]).
    ///
    /// # Context
    /// Any CPU; never suspends.
    ///
    /// [`Request::is_abort_requested`]: crate::Request::is_abort_requested
    /// [`Request::aborted`]: crate::Request::aborted
    pub fn abort(&self) -> bool {
        match &self.state {
            State::Waiting(env) => env.request_abort(),
            State::Start(_) | State::Done => false,
        }
    }

    /// `true` once the message was queued (the call did not complete inline).
    ///
    /// # Cancel safety
    /// Not a future; moves no message.
    ///
    /// # Context
    /// Any CPU; never suspends.
    pub fn is_queued(&self) -> bool {
        matches!(self.state, State::Waiting(_))
    }
}

impl<M: Send + 'static> Call<'_, M> {
    /// The slow half of the first poll: the target queued the message.
    #[inline(never)]
    fn queue(&mut self, msg: M, remote: bool, cx: &mut Context<'_>) -> Poll<Reply<M>> {
        let env = Envelope::new_call(msg, cx.waker().clone());
        self.state = State::Waiting(env.clone());
        self.port.enqueue(env, remote);
        Poll::Pending
    }

    /// Every poll after a first one that returned `Pending`.
    #[inline(never)]
    fn poll_waiting(&mut self, cx: &mut Context<'_>) -> Poll<Reply<M>> {
        let State::Waiting(env) = &self.state else {
            panic!("ports: `Call` polled after it returned Ready");
        };
        let reply = core::task::ready!(env.poll_reply(cx));
        self.state = State::Done;
        Poll::Ready(reply)
    }
}

impl<M: Send + 'static> Future for Call<'_, M> {
    type Output = Reply<M>;

    // The inline path (first poll, target completes) is small and inlined into the
    // caller (`always`: measured, plain `#[inline]` was not taken); queueing and waiting
    // are out of line.
    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Reply<M>> {
        let this = self.get_mut();
        if !matches!(this.state, State::Start(_)) {
            return this.poll_waiting(cx);
        }
        let State::Start(msg) = core::mem::replace(&mut this.state, State::Done) else {
            unreachable!()
        };
        match this.port.attempt(msg) {
            Attempt::Done(reply) => Poll::Ready(reply),
            Attempt::Local(msg) => this.queue(msg, false, cx),
            Attempt::Remote(msg) => this.queue(msg, true, cx),
        }
    }
}

impl<M> Drop for Call<'_, M> {
    fn drop(&mut self) {
        if let State::Waiting(env) = &self.state {
            env.orphan();
        }
    }
}
