// SPDX-License-Identifier: MIT OR Apache-2.0
//! The envelope: one allocation that carries a queued message and its reply handoff.
//!
//! A message that completes inline never gets an envelope. A message that has to wait
//! (queued on its port, crossing CPUs, or sent with `send`) is moved into exactly one
//! `Arc<Envelope>`, which then travels: port queue -> target (`Request`) -> reply
//! (caller's slot, or the reply port's queue by relinking). The originator and the
//! current holder both keep an `Arc`, so whoever lets go first frees nothing the other
//! still uses; the `Slot` says which of them owns the message itself.
//!
//! Envelope slot states (the full message diagram is in
//! `docs/design/001-port-semantics.md`):
//!
//! ```text
//!   (1) new_call / new_send
//!   ─────────────────────────► Queued(M) ◄──────── (3) put_back ────────┐
//!                               │     │            Request::forward,     │
//!                               │     │            put_remote -> Queue   │
//!                               │     └── (2) take_msg ──► InService ────┘
//!                               │         Server::recv,        │
//!   (5) bounce: Server drop,    │         put_remote           │ (4) complete: Request::reply,
//!       port drop (Closed)      ▼                              │     Request drop (Unreplied),
//!   new_replied ──────────► Replied(R) ◄───────────────────────┘     put_remote -> Done
//!   (send, inline)              │
//!                               └── (6) poll_reply / take_reply, or complete of an
//!                                       orphaned call ──► Retired
//! ```
//!
//! Abort (`request_abort`) and orphaning (`orphan`, when a `Call` is dropped) only set
//! flags and never move the message: the target still replies, and an orphaned reply is
//! dropped right there by `complete`.

use core::task::{Context, Poll, Waker};

use crate::error::Reply;
use crate::reply_port::ReplyQueue;
use crate::sync::{Arc, Mutex, register_waker};

/// Who owns the message right now.
enum Slot<M> {
    /// On a port queue (or in an IPI's inbox): the port owns it.
    Queued(M),
    /// Taken by the target: a `Request` owns it.
    InService,
    /// Replied: waiting for the originator to pick it up.
    Replied(Reply<M>),
    /// The originator took the reply, or the reply was dropped (orphaned call).
    Retired,
}

/// Where the reply goes.
enum Origin<M> {
    /// A `Call` future awaits the reply; this is its task's waker.
    Caller(Option<Waker>),
    /// `send`: the reply is linked onto this reply port's queue.
    ReplyPort(Arc<ReplyQueue<M>>),
    /// The `Call` future was dropped: the reply is dropped when it arrives.
    Orphaned,
}

struct State<M> {
    slot: Slot<M>,
    origin: Origin<M>,
    abort_requested: bool,
    /// A target waiting in `Request::poll_abort`.
    abort_waker: Option<Waker>,
}

/// One queued message plus its reply handoff. See the module docs for the states.
pub(crate) struct Envelope<M> {
    state: Mutex<State<M>>,
    /// Intrusive queue link, owned by whichever `List` holds the envelope.
    pub(crate) next: Mutex<Option<Arc<Envelope<M>>>>,
}

impl<M> Envelope<M> {
    fn with(slot: Slot<M>, origin: Origin<M>) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                slot,
                origin,
                abort_requested: false,
                abort_waker: None,
            }),
            next: Mutex::new(None),
        })
    }

    /// (1) for `call`: a queued message whose reply wakes `waker`.
    pub(crate) fn new_call(msg: M, waker: Waker) -> Arc<Self> {
        Self::with(Slot::Queued(msg), Origin::Caller(Some(waker)))
    }

    /// (1) for `send`: a queued message whose reply is linked onto `queue`.
    pub(crate) fn new_send(msg: M, queue: Arc<ReplyQueue<M>>) -> Arc<Self> {
        Self::with(Slot::Queued(msg), Origin::ReplyPort(queue))
    }

    /// A message that `send` saw complete inline: born replied, on its way to `queue`.
    pub(crate) fn new_replied(reply: Reply<M>) -> Arc<Self> {
        Self::with(Slot::Replied(reply), Origin::Orphaned)
    }

    /// (2) The target takes the message out of the envelope.
    ///
    /// Returns `None` if the envelope is not `Queued`, which would be a queueing bug.
    pub(crate) fn take_msg(&self) -> Option<M> {
        let mut state = self.state.lock();
        match core::mem::replace(&mut state.slot, Slot::InService) {
            Slot::Queued(msg) => Some(msg),
            other => {
                state.slot = other;
                None
            }
        }
    }

    /// (3) The target hands the message back to be queued again (forward, or a remote
    /// put whose handler chose to queue).
    pub(crate) fn put_back(&self, msg: M) {
        let mut state = self.state.lock();
        debug_assert!(
            matches!(state.slot, Slot::InService),
            "ports: put_back of a message not in service"
        );
        state.slot = Slot::Queued(msg);
    }

    /// (4)/(5) Stores the reply and notifies the originator.
    ///
    /// Runs on whatever CPU replies; waking a task owned by another CPU is the
    /// executor's job (remote wake through its IPI queue).
    pub(crate) fn complete(this: Arc<Self>, reply: Reply<M>) {
        let mut state = this.state.lock();
        debug_assert!(
            matches!(state.slot, Slot::InService | Slot::Queued(_)),
            "ports: a message was replied twice"
        );
        // Wakers and the message are moved out and dropped or woken only after the
        // lock is released (see `sync::register_waker`).
        let abort_waker = state.abort_waker.take();
        match &mut state.origin {
            Origin::Caller(waker) => {
                let waker = waker.take();
                state.slot = Slot::Replied(reply);
                drop(state);
                drop(abort_waker);
                // Let go of the envelope before waking, so that the originator, once
                // woken, holds the last reference and frees it on its own CPU.
                drop(this);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            Origin::ReplyPort(_) => {
                let Origin::ReplyPort(queue) =
                    core::mem::replace(&mut state.origin, Origin::Orphaned)
                else {
                    unreachable!()
                };
                state.slot = Slot::Replied(reply);
                drop(state);
                drop(abort_waker);
                queue.push(this);
            }
            Origin::Orphaned => {
                state.slot = Slot::Retired;
                drop(state);
                drop(abort_waker);
                // The originator is gone: the message and its buffers end here, after
                // the target has let go of them.
                drop(reply);
            }
        }
    }

    /// (6) for `call`: takes the reply, or records `cx`'s waker.
    pub(crate) fn poll_reply(&self, cx: &mut Context<'_>) -> Poll<Reply<M>> {
        let mut state = self.state.lock();
        if let Slot::Replied(_) = state.slot {
            let Slot::Replied(reply) = core::mem::replace(&mut state.slot, Slot::Retired) else {
                unreachable!()
            };
            return Poll::Ready(reply);
        }
        debug_assert!(
            !matches!(state.slot, Slot::Retired),
            "ports: call polled after completion"
        );
        let replaced = match &mut state.origin {
            Origin::Caller(slot) => register_waker(slot, cx),
            Origin::ReplyPort(_) | Origin::Orphaned => None,
        };
        drop(state);
        drop(replaced);
        Poll::Pending
    }

    /// (6) for reply ports: takes the reply of an envelope popped from a reply queue.
    pub(crate) fn take_reply(&self) -> Option<Reply<M>> {
        let mut state = self.state.lock();
        match core::mem::replace(&mut state.slot, Slot::Retired) {
            Slot::Replied(reply) => Some(reply),
            other => {
                state.slot = other;
                None
            }
        }
    }

    /// The originator dropped its `Call`: asks the target to abort, and arranges for
    /// the reply to be dropped when it comes. Drops an already stored reply now.
    pub(crate) fn orphan(&self) {
        let mut state = self.state.lock();
        let origin = core::mem::replace(&mut state.origin, Origin::Orphaned);
        let reply = match core::mem::replace(&mut state.slot, Slot::Retired) {
            Slot::Replied(reply) => Some(reply),
            other => {
                state.slot = other;
                None
            }
        };
        let abort_waker = Self::mark_abort(&mut state);
        drop(state);
        drop(origin);
        drop(reply);
        if let Some(waker) = abort_waker {
            waker.wake();
        }
    }

    /// Asks the target to abort. Returns `false` if the message was already replied.
    pub(crate) fn request_abort(&self) -> bool {
        let mut state = self.state.lock();
        if matches!(state.slot, Slot::Replied(_) | Slot::Retired) {
            return false;
        }
        let abort_waker = Self::mark_abort(&mut state);
        drop(state);
        if let Some(waker) = abort_waker {
            waker.wake();
        }
        true
    }

    fn mark_abort(state: &mut State<M>) -> Option<Waker> {
        if matches!(state.slot, Slot::Queued(_) | Slot::InService) {
            state.abort_requested = true;
            state.abort_waker.take()
        } else {
            None
        }
    }

    pub(crate) fn is_abort_requested(&self) -> bool {
        self.state.lock().abort_requested
    }

    /// For the target: Ready once an abort was requested.
    pub(crate) fn poll_abort(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.lock();
        if state.abort_requested {
            return Poll::Ready(());
        }
        let replaced = register_waker(&mut state.abort_waker, cx);
        drop(state);
        drop(replaced);
        Poll::Pending
    }
}
