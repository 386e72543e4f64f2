// SPDX-License-Identifier: MIT OR Apache-2.0
//! User message ports: an in-crate async mailbox behind a descriptor.
//!
//! Chosen over `ports::Port` because a user port carries opaque byte messages between
//! processes and its receivers are user programs (which receive with an `Sqe`, not with a
//! handler closure); the kernel-internal `ports` machinery stays for kernel servers.
//!
//! ```text
//! PortSend(msg)  ──► queue ──► PortReceive: token 0 (no reply wanted)
//! PortCall(msg)  ──► queue ──► PortReceive: token t ──► PortReply(t, reply)
//!      ▲                                                     │
//!      └──────────────── reply bytes (or an error) ◄─────────┘
//! ```
//!
//! Every descriptor (and `Spawn` fd map entry) holds an `Arc` of the port's one
//! `PortHandle`; when the last goes, queued callers and callers whose message was received but not yet replied
//! to fail with `ENOTCONN`.

use alloc::{
    collections::{BTreeMap, VecDeque},
    sync::Arc,
    vec::Vec,
};

use abi::{Errno, ring::PORT_MESSAGE_MAX};

use crate::sync::Notify;

/// Messages a port queues before `PortSend`/`PortCall` fail with `EAGAIN`.
pub const PORT_QUEUE_MAX: usize = 256;

type ReplyResult = Result<Vec<u8>, Errno>;

#[derive(Default)]
struct ReplySlot {
    value: spin::Mutex<Option<ReplyResult>>,
    done: Notify,
}

impl ReplySlot {
    fn complete(&self, r: ReplyResult) {
        let mut v = self.value.lock();
        if v.is_none() {
            *v = Some(r);
        }
        drop(v);
        self.done.notify();
    }
}

struct Message {
    data: Vec<u8>,
    reply: Option<Arc<ReplySlot>>,
}

struct PortState {
    queue: VecDeque<Message>,
    awaiting_reply: BTreeMap<u64, Arc<ReplySlot>>,
    next_token: u64,
    closed: bool,
}

struct UserPort {
    state: spin::Mutex<PortState>,
    arrived: Notify,
}

/// One reference to a user port (what a port descriptor holds).
pub struct PortHandle {
    port: Arc<UserPort>,
}

/// Creates a port; the handle is its first reference.
pub fn port_create() -> Arc<PortHandle> {
    Arc::new(PortHandle {
        port: Arc::new(UserPort {
            state: spin::Mutex::new(PortState {
                queue: VecDeque::new(),
                awaiting_reply: BTreeMap::new(),
                next_token: 1,
                closed: false,
            }),
            arrived: Notify::new(),
        }),
    })
}

/// A received message and its reply token (0: none expected).
pub struct Received {
    /// The message bytes.
    pub data: Vec<u8>,
    /// Pass to `reply`; 0 for a `send`.
    pub token: u64,
}

impl PortHandle {
    fn enqueue(&self, data: Vec<u8>, reply: Option<Arc<ReplySlot>>) -> Result<(), Errno> {
        if data.len() > PORT_MESSAGE_MAX {
            return Err(Errno::MsgSize);
        }
        let mut st = self.port.state.lock();
        if st.closed {
            return Err(Errno::NotConn);
        }
        if st.queue.len() >= PORT_QUEUE_MAX {
            return Err(Errno::Again);
        }
        st.queue.push_back(Message { data, reply });
        drop(st);
        self.port.arrived.notify();
        Ok(())
    }

    /// Queues `data`; no reply.
    ///
    /// # Errors
    /// `MsgSize` above `PORT_MESSAGE_MAX`; `Again` when the queue is full.
    pub fn send(&self, data: Vec<u8>) -> Result<(), Errno> {
        self.enqueue(data, None)
    }

    /// Queues `data` and waits for the reply.
    ///
    /// # Errors
    /// As `send`, plus `NotConn` if the port goes away before replying.
    ///
    /// # Cancel safety
    /// Dropping abandons the reply (the message may still be received).
    pub async fn call(&self, data: Vec<u8>) -> Result<Vec<u8>, Errno> {
        let slot = Arc::new(ReplySlot::default());
        self.enqueue(data, Some(slot.clone()))?;
        slot.done.wait_until(|| slot.value.lock().take()).await
    }

    /// Waits for the next message that fits in `max` bytes.
    ///
    /// # Errors
    /// `MsgSize` if the next message is longer than `max` (it stays queued).
    pub async fn receive(&self, max: usize) -> Result<Received, Errno> {
        self.port
            .arrived
            .wait_until(|| {
                let mut st = self.port.state.lock();
                let len = st.queue.front()?.data.len();
                if len > max {
                    return Some(Err(Errno::MsgSize));
                }
                let m = st.queue.pop_front()?;
                let token = match m.reply {
                    Some(slot) => {
                        let t = st.next_token;
                        st.next_token += 1;
                        st.awaiting_reply.insert(t, slot);
                        t
                    }
                    None => 0,
                };
                Some(Ok(Received {
                    data: m.data,
                    token,
                }))
            })
            .await
    }

    /// Replies to the message received with `token`.
    ///
    /// # Errors
    /// `NoEnt` for an unknown (or already used) token; `MsgSize` above
    /// `PORT_MESSAGE_MAX`.
    pub fn reply(&self, token: u64, data: Vec<u8>) -> Result<(), Errno> {
        if data.len() > PORT_MESSAGE_MAX {
            return Err(Errno::MsgSize);
        }
        let slot = self
            .port
            .state
            .lock()
            .awaiting_reply
            .remove(&token)
            .ok_or(Errno::NoEnt)?;
        slot.complete(Ok(data));
        Ok(())
    }
}

impl Drop for PortHandle {
    fn drop(&mut self) {
        // There is one `PortHandle` per port (descriptors share it through an `Arc`), so
        // this is the last reference going away.
        {
            let mut st = self.port.state.lock();
            st.closed = true;
            let queued: Vec<Message> = st.queue.drain(..).collect();
            let waiting: Vec<Arc<ReplySlot>> = core::mem::take(&mut st.awaiting_reply)
                .into_values()
                .collect();
            drop(st);
            for m in queued {
                if let Some(slot) = m.reply {
                    slot.complete(Err(Errno::NotConn));
                }
            }
            for slot in waiting {
                slot.complete(Err(Errno::NotConn));
            }
        }
    }
}
