// SPDX-License-Identifier: MIT OR Apache-2.0
//! Directory contents with readdir cookies that stay valid while entries come and go.
//!
//! Every insertion gets the next sequence number of its directory; the cookie of an entry
//! is its sequence number, and entries are listed in sequence order. So a listing that
//! runs while others create, rename and unlink returns every entry that existed for the
//! whole listing exactly once, never returns an entry twice, and never skips or repeats
//! because of a concurrent change. Cookies 0 and 1 are `.` and `..`.

use alloc::collections::BTreeMap;

use hashbrown::HashMap;

use crate::proto::{Ino, Name};

/// Cookie of the first real entry.
pub(super) const FIRST_ENTRY_COOKIE: u64 = 2;

#[derive(Debug)]
pub(super) struct DirData {
    /// The parent directory (the root is its own parent).
    pub(super) parent: Ino,
    names: HashMap<Name, (u64, Ino)>,
    order: BTreeMap<u64, Name>,
    next_seq: u64,
}

impl DirData {
    pub(super) fn new(parent: Ino) -> DirData {
        DirData {
            parent,
            names: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: FIRST_ENTRY_COOKIE,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.names.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub(super) fn get(&self, name: &[u8]) -> Option<Ino> {
        self.names.get(name).map(|&(_, ino)| ino)
    }

    /// Adds an entry; the caller has checked that `name` is free.
    pub(super) fn insert(&mut self, name: Name, ino: Ino) {
        let seq = self.next_seq;
        self.next_seq += 1;
        debug_assert!(!self.names.contains_key(&name));
        self.order.insert(seq, name.clone());
        self.names.insert(name, (seq, ino));
    }

    pub(super) fn remove(&mut self, name: &[u8]) -> Option<Ino> {
        let (seq, ino) = self.names.remove(name)?;
        self.order.remove(&seq);
        Some(ino)
    }

    /// Entries with cookie `>= cookie`, in order, as (next cookie, name, ino).
    pub(super) fn entries_from(&self, cookie: u64) -> impl Iterator<Item = (u64, &Name, Ino)> {
        self.order
            .range(cookie.max(FIRST_ENTRY_COOKIE)..)
            .map(move |(&seq, name)| {
                let ino = self.names.get(name).map_or(0, |&(_, ino)| ino);
                (seq + 1, name, ino)
            })
    }
}
