// SPDX-License-Identifier: MIT OR Apache-2.0
//! The block cache: fixed-capacity 4 KiB blocks of block devices, keyed by (device, block
//! number), with CLOCK eviction.
//!
//! Read first: the cache only ever holds what the device holds. It is filled by reads
//! and patched by writes *after* the device acknowledged them (write-through), so there
//! is never dirty data to write back and an eviction is just forgetting.
//!
//! A key is in one of three states:
//!
//! ```text
//!              (1) begin_fill            (2) Fill::complete, not stale
//!   absent ───────────────────► loading ─────────────────────────────► valid
//!     ▲                            │                                    │
//!     │  (3) Fill dropped, or      │                                    │
//!     │      complete while stale  │     (4) evict (CLOCK), or          │
//!     └────────────────────────────┘         write_done with an error   │
//!     └─────────────────────────────────────────────────────────────────┘
//!   (5) write_done on loading: mark the fill stale (its data may predate the write)
//!   (6) write_done on valid, success: patch the bytes in place
//! ```
//!
//! Why (5) is enough for coherence: a fill whose device read could have been ordered
//! before a write is still `loading` when that write completes (else it finished first,
//! and (6) patches it), so it gets marked stale and its data is handed to its reader but
//! never cached. A fill that begins after the write completed reads the new data.
//!
//! Waiting readers (a second miss on a block being loaded) register a waker on the fill
//! and look again when it ends (coalescing). A fill whose owner is cancelled is dropped,
//! which removes the `loading` state and wakes the waiters, so an abort never leaves a
//! key stuck.
//!
//! All state is behind one spin lock, held for a lookup or a copy of at most one request's
//! blocks; it never waits for I/O.

use alloc::{sync::Arc, vec::Vec};
use core::{
    fmt,
    task::{Context, Poll, Waker},
};

use hashbrown::HashMap;

use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

/// Bytes per cache block.
pub const CACHE_BLOCK_SIZE: usize = 4096;

/// Default capacity in bytes (4 MiB: 1024 blocks).
pub const DEFAULT_CAPACITY_BYTES: usize = 4 << 20;

/// Which device a block belongs to (assigned by the cache's user: devfs numbers its
/// block devices).
pub type DeviceId = u32;

type Key = (DeviceId, u64);

/// Counters, all in blocks (a request that touches three blocks counts three).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Blocks served from the cache.
    pub hits: u64,
    /// Blocks that had to be read from the device.
    pub misses: u64,
    /// Misses that waited for another request's read of the same block instead of
    /// reading it again.
    pub coalesced: u64,
    /// Blocks dropped to make room.
    pub evictions: u64,
    /// Device reads whose data was not cached because a write raced with them.
    pub stale_fills: u64,
    /// Blocks held now.
    pub resident: u64,
    /// Most blocks the cache holds.
    pub capacity: u64,
}

/// One cache block's storage.
struct Slot {
    key: Option<Key>,
    /// CLOCK's reference bit: set on every hit, cleared as the hand passes.
    referenced: bool,
    /// The block's bytes: `CACHE_BLOCK_SIZE`, or fewer for the last block of a device
    /// whose size is not a multiple of it.
    data: Vec<u8>,
}

struct Loading {
    id: u64,
    stale: bool,
    waiters: Vec<Waker>,
}

enum Entry {
    Valid(usize),
    Loading(Loading),
}

struct Inner {
    map: HashMap<Key, Entry>,
    slots: Vec<Slot>,
    /// Slots never used yet (they are allocated on first use, so an idle cache costs
    /// little memory).
    unused: usize,
    hand: usize,
    next_fill: u64,
}

/// The result of looking up one block for a read.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The bytes were copied.
    Hit,
    /// Another request is reading the block: wait with [`BlockCache::poll_fill_done`].
    Loading(FillId),
    /// Not cached: this caller now owns the fill and must read the block.
    Miss(Fill),
}

/// Identifies one fill, for waiting on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FillId {
    device: DeviceId,
    block: u64,
    id: u64,
}

/// The right (and duty) to read one block from the device and cache it. Dropping it
/// without [`Fill::complete`] (a device error, a cancelled request) forgets the fill and
/// wakes its waiters.
pub struct Fill {
    cache: Arc<BlockCache>,
    key: Key,
    id: u64,
    done: bool,
}

impl fmt::Debug for Fill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fill")
            .field("key", &self.key)
            .field("id", &self.id)
            .finish()
    }
}

impl PartialEq for Fill {
    fn eq(&self, other: &Fill) -> bool {
        self.key == other.key && self.id == other.id
    }
}

impl Eq for Fill {}

impl Fill {
    /// The block this fill is for.
    pub fn block(&self) -> u64 {
        self.key.1
    }

    /// Caches `data` (the block as the device returned it) unless a write made it stale,
    /// and wakes the waiters.
    pub fn complete(mut self, data: &[u8]) {
        self.done = true;
        self.cache.end_fill(self.key, self.id, Some(data));
    }
}

impl Drop for Fill {
    fn drop(&mut self) {
        if !self.done {
            self.cache.end_fill(self.key, self.id, None);
        }
    }
}

/// The block cache, shared by every block device of a devfs.
pub struct BlockCache {
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
    evictions: AtomicU64,
    stale_fills: AtomicU64,
}

impl fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlockCache")
            .field("stats", &self.stats())
            .finish()
    }
}

impl BlockCache {
    /// A cache of `capacity_bytes` (rounded down to whole blocks, at least one block).
    pub fn new(capacity_bytes: usize) -> BlockCache {
        let nr_slots = (capacity_bytes / CACHE_BLOCK_SIZE).max(1);
        let slots = (0..nr_slots)
            .map(|_| Slot {
                key: None,
                referenced: false,
                data: Vec::new(),
            })
            .collect();
        BlockCache {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                slots,
                unused: nr_slots,
                hand: 0,
                next_fill: 1,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            stale_fills: AtomicU64::new(0),
        }
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        let (resident, capacity) = {
            let inner = self.inner.lock();
            let resident = inner.slots.iter().filter(|s| s.key.is_some()).count();
            (resident as u64, inner.slots.len() as u64)
        };
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
            evictions: self.evictions.load(Ordering::Relaxed),
            stale_fills: self.stale_fills.load(Ordering::Relaxed),
            resident,
            capacity,
        }
    }

    /// Copies bytes `[offset, offset + out.len())` of the device, if every block they
    /// touch is cached; returns whether it did (all or nothing, nothing counted on
    /// failure). `offset + out.len()` must not pass the end of the device.
    ///
    /// # Context
    /// Any CPU; never waits (the inline path of a block device read).
    pub fn try_read(&self, device: DeviceId, offset: u64, out: &mut [u8]) -> bool {
        if out.is_empty() {
            return true;
        }
        let mut inner = self.inner.lock();
        let (first, last) = block_span(offset, out.len());
        let all_cached =
            (first..=last).all(|b| matches!(inner.map.get(&(device, b)), Some(Entry::Valid(_))));
        if !all_cached {
            return false;
        }
        for block in first..=last {
            let Some(&Entry::Valid(slot)) = inner.map.get(&(device, block)) else {
                unreachable!("checked above, under the same lock");
            };
            let slot = &mut inner.slots[slot];
            slot.referenced = true;
            if !copy_out(block, &slot.data, offset, out) {
                return false;
            }
        }
        self.hits.fetch_add(last - first + 1, Ordering::Relaxed);
        true
    }

    /// Looks one block up for a read of `[offset, offset + out.len())`: copies its part on
    /// a hit, or says who reads it. Counts a hit or a miss.
    ///
    /// # Context
    /// Any CPU; never waits.
    pub fn lookup(
        self: &Arc<Self>,
        device: DeviceId,
        block: u64,
        offset: u64,
        out: &mut [u8],
    ) -> Lookup {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let key = (device, block);
        match inner.map.get(&key) {
            Some(&Entry::Valid(slot)) => {
                let slot = &mut inner.slots[slot];
                slot.referenced = true;
                if copy_out(block, &slot.data, offset, out) {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Lookup::Hit;
                }
                // A cached block shorter than the read wants (never expected: reads are
                // clamped to the device's size): forget it and read it again.
                debug_assert!(false, "bcache: cached block {block} is too short");
                Self::forget(inner, key);
            }
            Some(Entry::Loading(fill)) => {
                self.coalesced.fetch_add(1, Ordering::Relaxed);
                return Lookup::Loading(FillId {
                    device,
                    block,
                    id: fill.id,
                });
            }
            None => {}
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let id = inner.next_fill;
        inner.next_fill += 1;
        inner.map.insert(
            (device, block),
            Entry::Loading(Loading {
                id,
                stale: false,
                waiters: Vec::new(),
            }),
        );
        Lookup::Miss(Fill {
            cache: self.clone(),
            key: (device, block),
            id,
            done: false,
        })
    }

    /// `Ready` once the fill `id` has ended (cached, failed or cancelled); otherwise
    /// registers `cx`'s waker with it.
    pub fn poll_fill_done(&self, id: FillId, cx: &mut Context<'_>) -> Poll<()> {
        let mut inner = self.inner.lock();
        match inner.map.get_mut(&(id.device, id.block)) {
            Some(Entry::Loading(fill)) if fill.id == id.id => {
                if !fill.waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    fill.waiters.push(cx.waker().clone());
                }
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    }

    /// Copies the sector-aligned bytes `[offset, offset + out.len())` from the cache if
    /// the one block holding them is cached (used for read-modify-write). Not counted.
    pub fn peek(&self, device: DeviceId, offset: u64, out: &mut [u8]) -> bool {
        let inner = self.inner.lock();
        let (first, last) = block_span(offset, out.len());
        if first != last {
            return false;
        }
        match inner.map.get(&(device, first)) {
            Some(&Entry::Valid(slot)) => copy_out(first, &inner.slots[slot].data, offset, out),
            _ => false,
        }
    }

    /// A write of `data` at byte `offset` of `device` completed on the device: patches
    /// every cached block it touches, and marks fills in progress for those blocks stale.
    ///
    /// # Context
    /// Any CPU; never waits. Call it after the device answered and before replying to the
    /// writer, so a read that starts after the write returned sees the new data.
    pub fn write_done(&self, device: DeviceId, offset: u64, data: &[u8]) {
        self.update_range(device, offset, data.len(), Some(data));
    }

    /// The bytes `[offset, offset + len)` of `device` are unknown now (a write failed, or
    /// was abandoned after it reached the device): forgets the cached blocks they touch
    /// and marks fills in progress for those blocks stale.
    pub fn invalidate_range(&self, device: DeviceId, offset: u64, len: usize) {
        self.update_range(device, offset, len, None);
    }

    fn update_range(&self, device: DeviceId, offset: u64, len: usize, data: Option<&[u8]>) {
        if len == 0 {
            return;
        }
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let (first, last) = block_span(offset, len);
        for block in first..=last {
            let key = (device, block);
            match inner.map.get_mut(&key) {
                Some(Entry::Loading(fill)) => fill.stale = true,
                Some(&mut Entry::Valid(slot)) => {
                    let patched = data
                        .is_some_and(|d| copy_in(block, &mut inner.slots[slot].data, offset, d));
                    if !patched {
                        Self::forget(inner, key);
                    }
                }
                None => {}
            }
        }
    }

    /// Forgets every cached block of `device` (and marks its fills stale).
    pub fn invalidate_device(&self, device: DeviceId) {
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let keys: Vec<Key> = inner
            .map
            .keys()
            .filter(|k| k.0 == device)
            .copied()
            .collect();
        for key in keys {
            match inner.map.get_mut(&key) {
                Some(Entry::Loading(fill)) => fill.stale = true,
                Some(Entry::Valid(_)) => Self::forget(inner, key),
                None => {}
            }
        }
    }

    fn forget(inner: &mut Inner, key: Key) {
        if let Some(Entry::Valid(slot)) = inner.map.remove(&key) {
            let slot = &mut inner.slots[slot];
            slot.key = None;
            slot.referenced = false;
        }
    }

    fn end_fill(&self, key: Key, id: u64, data: Option<&[u8]>) {
        let mut inner = self.inner.lock();
        let waiters = match inner.map.get(&key) {
            Some(Entry::Loading(fill)) if fill.id == id => match inner.map.remove(&key) {
                Some(Entry::Loading(fill)) => Some(fill),
                _ => unreachable!("matched above, under the same lock"),
            },
            // Not ours any more (cannot happen: only the fill ends its loading state).
            _ => None,
        };
        let Some(fill) = waiters else {
            debug_assert!(false, "bcache: fill {id} of {key:?} ended twice");
            return;
        };
        match data {
            Some(_) if fill.stale => {
                self.stale_fills.fetch_add(1, Ordering::Relaxed);
            }
            Some(data) => {
                let slot = self.take_slot(&mut inner);
                let s = &mut inner.slots[slot];
                s.data.clear();
                s.data
                    .extend_from_slice(&data[..data.len().min(CACHE_BLOCK_SIZE)]);
                s.key = Some(key);
                s.referenced = false;
                inner.map.insert(key, Entry::Valid(slot));
            }
            None => {}
        }
        drop(inner);
        for waker in fill.waiters {
            waker.wake();
        }
    }

    /// A free slot: never used, freed by `forget`, or evicted by the CLOCK hand.
    fn take_slot(&self, inner: &mut Inner) -> usize {
        let n = inner.slots.len();
        if inner.unused > 0 {
            inner.unused -= 1;
            let slot = n - 1 - inner.unused;
            inner.slots[slot].data.reserve_exact(CACHE_BLOCK_SIZE);
            return slot;
        }
        // Two sweeps at most: the first clears every reference bit it passes.
        for _ in 0..2 * n + 1 {
            let slot = inner.hand;
            inner.hand = (inner.hand + 1) % n;
            let s = &mut inner.slots[slot];
            match s.key {
                None => return slot,
                Some(_) if s.referenced => s.referenced = false,
                Some(key) => {
                    s.key = None;
                    inner.map.remove(&key);
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                    return slot;
                }
            }
        }
        unreachable!("bcache: a full sweep clears every reference bit")
    }
}

/// First and last block touched by `len` (> 0) bytes at `offset`.
fn block_span(offset: u64, len: usize) -> (u64, u64) {
    let bs = CACHE_BLOCK_SIZE as u64;
    (offset / bs, (offset + len.max(1) as u64 - 1) / bs)
}

/// Copies the part of `block` (whose bytes are `data`) that overlaps the request
/// `[offset, offset + out.len())` into `out`. `false` if `data` is too short.
fn copy_out(block: u64, data: &[u8], offset: u64, out: &mut [u8]) -> bool {
    let (start, from, len) = overlap(block, offset, out.len());
    match data.get(from..from + len) {
        Some(src) => {
            out[start..start + len].copy_from_slice(src);
            true
        }
        None => false,
    }
}

/// Copies the part of `data` (bytes at `offset`) that lands in `block` into the block.
fn copy_in(block: u64, cached: &mut [u8], offset: u64, data: &[u8]) -> bool {
    let (start, to, len) = overlap(block, offset, data.len());
    match cached.get_mut(to..to + len) {
        Some(dst) => {
            dst.copy_from_slice(&data[start..start + len]);
            true
        }
        None => false,
    }
}

/// For a request of `len` bytes at `offset` and one block it touches: the index into
/// the request, the index into the block, and the overlap's length.
fn overlap(block: u64, offset: u64, len: usize) -> (usize, usize, usize) {
    let bs = CACHE_BLOCK_SIZE as u64;
    let block_start = block * bs;
    let start = offset.max(block_start);
    let end = (offset + len as u64).min(block_start + bs);
    (
        (start - offset) as usize,
        (start - block_start) as usize,
        end.saturating_sub(start) as usize,
    )
}

#[cfg(all(test, not(loom)))]
mod tests {
    use alloc::vec;

    use super::*;

    fn block(fill: u8) -> Vec<u8> {
        vec![fill; CACHE_BLOCK_SIZE]
    }

    fn fill(cache: &Arc<BlockCache>, device: DeviceId, b: u64, byte: u8) {
        let mut out = [0u8; 1];
        match cache.lookup(device, b, b * CACHE_BLOCK_SIZE as u64, &mut out) {
            Lookup::Miss(fill) => fill.complete(&block(byte)),
            other => panic!("expected a miss, got {other:?}"),
        }
    }

    #[test]
    fn a_filled_block_is_a_hit_across_a_block_boundary_only_when_both_are_cached() {
        let cache = Arc::new(BlockCache::new(4 * CACHE_BLOCK_SIZE));
        fill(&cache, 0, 0, 1);
        let mut out = vec![0u8; 200];
        assert!(!cache.try_read(0, 4000, &mut out), "block 1 is missing");
        fill(&cache, 0, 1, 2);
        assert!(cache.try_read(0, 4000, &mut out));
        assert_eq!(&out[..96], &[1; 96][..]);
        assert_eq!(&out[96..], &[2; 104][..]);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.resident), (2, 2, 2));
    }

    #[test]
    fn clock_evicts_unreferenced_blocks_first() {
        let cache = Arc::new(BlockCache::new(2 * CACHE_BLOCK_SIZE));
        fill(&cache, 0, 0, 0);
        fill(&cache, 0, 1, 1);
        // Touch block 0: the hand passes over it once.
        assert!(cache.try_read(0, 0, &mut [0u8; 4]));
        fill(&cache, 0, 2, 2);
        assert!(
            cache.try_read(0, 0, &mut [0u8; 4]),
            "referenced block 0 stayed"
        );
        assert!(
            !cache.try_read(0, 4096, &mut [0u8; 4]),
            "block 1 was evicted"
        );
        assert_eq!(cache.stats().evictions, 1);
        assert_eq!(cache.stats().resident, 2);
    }

    #[test]
    fn a_write_during_a_fill_makes_it_stale_and_it_is_not_cached() {
        let cache = Arc::new(BlockCache::new(4 * CACHE_BLOCK_SIZE));
        let Lookup::Miss(f) = cache.lookup(3, 7, 7 * 4096, &mut [0u8; 8]) else {
            panic!("miss expected")
        };
        cache.write_done(3, 7 * 4096 + 10, &[9; 10]);
        f.complete(&block(0));
        assert!(!cache.try_read(3, 7 * 4096, &mut [0u8; 8]));
        assert_eq!(cache.stats().stale_fills, 1);
    }

    #[test]
    fn a_write_patches_a_cached_block_and_a_failed_write_forgets_it() {
        let cache = Arc::new(BlockCache::new(4 * CACHE_BLOCK_SIZE));
        fill(&cache, 0, 0, 0);
        cache.write_done(0, 4090, &[7; 12]); // spans blocks 0 and 1 (1 not cached)
        let mut tail = [0u8; 6];
        assert!(cache.try_read(0, 4090, &mut tail));
        assert_eq!(tail, [7; 6]);
        let mut head = [9u8; 4];
        assert!(cache.try_read(0, 4086, &mut head));
        assert_eq!(head, [0; 4], "bytes before the write unchanged");
        assert!(
            !cache.try_read(0, 4090, &mut [0u8; 12]),
            "block 1 is not cached"
        );
        cache.invalidate_range(0, 0, 512);
        assert!(
            !cache.try_read(0, 0, &mut [0u8; 1]),
            "failed write forgot the block"
        );
    }

    #[test]
    fn a_dropped_fill_wakes_waiters_and_leaves_the_block_absent() {
        let cache = Arc::new(BlockCache::new(4 * CACHE_BLOCK_SIZE));
        let Lookup::Miss(f) = cache.lookup(0, 5, 5 * 4096, &mut [0u8; 8]) else {
            panic!("miss expected")
        };
        let Lookup::Loading(id) = cache.lookup(0, 5, 5 * 4096, &mut [0u8; 8]) else {
            panic!("loading expected")
        };
        let flag = Arc::new(WakeFlag::default());
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(cache.poll_fill_done(id, &mut cx).is_pending());
        drop(f);
        assert!(flag.0.load(Ordering::Relaxed) == 1, "waiter woken");
        assert!(cache.poll_fill_done(id, &mut cx).is_ready());
        assert!(matches!(
            cache.lookup(0, 5, 5 * 4096, &mut [0u8; 8]),
            Lookup::Miss(_)
        ));
        assert_eq!(cache.stats().coalesced, 1);
    }

    #[derive(Default)]
    struct WakeFlag(AtomicU64);

    impl alloc::task::Wake for WakeFlag {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
}
