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
///
/// `tail` is only set while the list holds two or more envelopes (with one, the head is
/// also the tail): the common case of a port that keeps up, one message queued at a
/// time, then costs no reference-count traffic and no link lock at all.
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
        match (&self.head, &self.tail) {
            (None, _) => self.head = Some(env),
            (Some(last), None) | (_, Some(last)) => {
                *last.next.lock() = Some(env.clone());
                self.tail = Some(env);
            }
        }
        self.len += 1;
    }

    /// Removes the head. Allocation-free.
    pub(crate) fn pop_front(&mut self) -> Option<Arc<Envelope<M>>> {
        let head = self.head.take()?;
        if self.tail.is_some() {
            let next = head.next.lock().take();
            if let (Some(next), Some(tail)) = (&next, &self.tail)
                && Arc::ptr_eq(next, tail)
            {
                self.tail = None; // one left: it is head and tail
            }
            self.head = next;
        }
        // else: the only element, whose link is empty (a last element links to nothing).
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn replied(n: u32) -> Arc<Envelope<u32>> {
        Envelope::new_replied(Ok(n))
    }

    fn value(env: Arc<Envelope<u32>>) -> u32 {
        env.take_reply().expect("replied").expect("ok")
    }

    #[test]
    fn list_is_fifo_and_relinks_nodes_popped_from_another_list() {
        let mut a = List::new();
        for n in 0..4 {
            a.push_back(replied(n));
        }
        assert_eq!(a.len(), 4);
        // Move two nodes to another list, as a reply moves an envelope to a reply port.
        let mut b = List::new();
        b.push_back(a.pop_front().unwrap());
        b.push_back(a.pop_front().unwrap());
        a.push_back(replied(4));
        let from_a: alloc::vec::Vec<u32> =
            core::iter::from_fn(|| a.pop_front()).map(value).collect();
        let from_b: alloc::vec::Vec<u32> =
            core::iter::from_fn(|| b.pop_front()).map(value).collect();
        assert_eq!(from_a, [2, 3, 4]);
        assert_eq!(from_b, [0, 1]);
        assert!(a.is_empty() && b.is_empty());
        assert_eq!((a.len(), b.len()), (0, 0));
    }

    #[test]
    fn take_all_leaves_an_empty_list_that_still_works() {
        let mut a = List::new();
        a.push_back(replied(1));
        a.push_back(replied(2));
        let mut batch = a.take_all();
        assert!(a.is_empty());
        a.push_back(replied(3));
        assert_eq!(value(batch.pop_front().unwrap()), 1);
        assert_eq!(value(batch.pop_front().unwrap()), 2);
        assert!(batch.pop_front().is_none());
        assert_eq!(value(a.pop_front().unwrap()), 3);
    }

    #[test]
    fn list_matches_a_vecdeque_under_mixed_pushes_and_pops() {
        let mut list = List::new();
        let mut model = alloc::collections::VecDeque::new();
        let mut seed = 0x2545_f491_4f6c_dd1d_u64; // xorshift: pops as often as pushes, so the
        // length keeps passing through 0, 1 and 2, where `tail` changes meaning
        for n in 0..20_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if seed.is_multiple_of(2) {
                assert_eq!(list.pop_front().map(value), model.pop_front());
            } else {
                list.push_back(replied(n));
                model.push_back(n);
            }
            assert_eq!(
                (list.len(), list.is_empty()),
                (model.len(), model.is_empty())
            );
        }
        while let Some(expected) = model.pop_front() {
            assert_eq!(list.pop_front().map(value), Some(expected));
        }
        assert!(list.pop_front().is_none());
    }

    #[test]
    fn dropping_a_long_list_does_not_recurse() {
        let mut a = List::new();
        for n in 0..200_000 {
            a.push_back(replied(n));
        }
        drop(a); // a recursive drop of 200,000 linked Arcs would overflow the test stack
    }
}
