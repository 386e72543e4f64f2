// SPDX-License-Identifier: MIT OR Apache-2.0
//! Intrusive FIFO of envelopes: the queue behind every port and reply port.
//!
//! The link lives inside the envelope (`Envelope::next`), so putting a message on a
//! queue allocates nothing: the envelope is the message's one allocation, and it moves
//! from the target port's queue to the reply port's queue by relinking. DragonFly's
//! `ms_node` plays the same role.
//!
//! Invariant: an envelope is on at most one `List` at a time, and its `next` link is
//! only touched while the list that holds it is locked by its owner (the `List` is
//! always inside some `Mutex`). The link's own `Mutex` is therefore never contended; it
//! exists because safe Rust needs some interior mutability to relink a shared node.

use crate::envelope::Envelope;
use crate::sync::Arc;

/// FIFO of envelopes linked through `Envelope::next`.
pub(crate) struct List<M> {
    head: Option<Arc<Envelope<M>>>,
    tail: Option<Arc<Envelope<M>>>,
    len: usize,
}

impl<M> List<M> {
    pub(crate) const fn new() -> Self {
        Self {
            head: None,
            tail: None,
            len: 0,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends `env` at the tail. Allocation-free.
    pub(crate) fn push_back(&mut self, env: Arc<Envelope<M>>) {
        debug_assert!(
            env.next.lock().is_none(),
            "ports: envelope is already on a queue"
        );
        match self.tail.replace(env.clone()) {
            Some(old_tail) => *old_tail.next.lock() = Some(env),
            None => self.head = Some(env),
        }
        self.len += 1;
    }

    /// Removes the head. Allocation-free.
    pub(crate) fn pop_front(&mut self) -> Option<Arc<Envelope<M>>> {
        let head = self.head.take()?;
        if self
            .tail
            .as_ref()
            .is_some_and(|tail| Arc::ptr_eq(tail, &head))
        {
            // The only element: its link is empty (a tail links to nothing), so skip the
            // link's lock. This is the common case of a port that keeps up.
            self.tail = None;
        } else {
            self.head = head.next.lock().take();
        }
        self.len -= 1;
        Some(head)
    }

    /// Takes the whole list, leaving this one empty (one lock hold for a batch).
    pub(crate) fn take_all(&mut self) -> List<M> {
        core::mem::replace(self, List::new())
    }
}

impl<M> Drop for List<M> {
    // Unlink one node at a time: dropping the head would otherwise drop the whole
    // chain recursively and overflow the stack on a long queue.
    fn drop(&mut self) {
        while self.pop_front().is_some() {}
    }
}
