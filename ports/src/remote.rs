// SPDX-License-Identifier: MIT OR Apache-2.0
//! The cross-CPU half of a put: a registry of executor ports and the IPI function.
//!
//! An IPI carries `fn(usize, usize)` and two words, nothing typed. To reach a port
//! without `unsafe` (no pointer round trip through a `usize`), every executor port
//! registers a `Weak` handle here and the IPI carries its key: `(index, generation)`.
//! A stale IPI (the port was dropped and its slot reused) fails the generation check
//! and does nothing; the dropped port bounced its queued messages when it died.
//!
//! The registry is touched at port creation and drop (write lock, may allocate) and
//! once per IPI (read lock, no allocation). One IPI drains a whole batch, and a sender
//! only sends one when the port's inbox goes from empty to non-empty.

use alloc::sync::Weak;
use alloc::vec::Vec;

use crate::platform::{CpuId, IpiMsg, ipi_send};

/// A port whose inbox of messages from other CPUs can be drained on its own CPU.
pub(crate) trait RemoteDrain: Send + Sync {
    /// Serves every message in the inbox. Runs on the port's CPU (from the IPI).
    fn drain_remote(&self);
}

/// Identifies a registered port across CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    index: u32,
    generation: u32,
}

struct Entry {
    generation: u32,
    port: Option<Weak<dyn RemoteDrain>>,
}

struct Registry {
    entries: Vec<Entry>,
    free: Vec<u32>,
}

static REGISTRY: spin::RwLock<Registry> = spin::RwLock::new(Registry {
    entries: Vec::new(),
    free: Vec::new(),
});

/// Registers `port`, returning the key its IPIs carry.
pub(crate) fn register(port: Weak<dyn RemoteDrain>) -> Key {
    let mut registry = REGISTRY.write();
    match registry.free.pop() {
        Some(index) => {
            let entry = &mut registry.entries[index as usize];
            entry.generation = entry.generation.wrapping_add(1);
            entry.port = Some(port);
            Key {
                index,
                generation: entry.generation,
            }
        }
        None => {
            let index = u32::try_from(registry.entries.len())
                .expect("ports: more than 2^32 executor ports");
            registry.entries.push(Entry {
                generation: 0,
                port: Some(port),
            });
            Key {
                index,
                generation: 0,
            }
        }
    }
}

/// Forgets the port behind `key` (called from the port's `Drop`).
pub(crate) fn unregister(key: Key) {
    let mut registry = REGISTRY.write();
    let entry = &mut registry.entries[key.index as usize];
    debug_assert_eq!(
        entry.generation, key.generation,
        "ports: unregistering a stale key"
    );
    entry.port = None;
    registry.free.push(key.index);
}

/// Asks `cpu` to drain the inbox of the port behind `key`.
pub(crate) fn kick(cpu: CpuId, key: Key) {
    ipi_send(
        cpu,
        IpiMsg {
            func: put_remote,
            arg1: key.index as usize,
            arg2: key.generation as usize,
        },
    );
}

/// The IPI half of a cross-CPU put: runs on the port's CPU.
fn put_remote(index: usize, generation: usize) {
    let port = {
        let registry = REGISTRY.read();
        registry
            .entries
            .get(index)
            .filter(|entry| entry.generation as usize == generation)
            .and_then(|entry| entry.port.as_ref())
            .and_then(Weak::upgrade)
    };
    if let Some(port) = port {
        port.drain_remote();
    }
}
