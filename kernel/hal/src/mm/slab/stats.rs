//! Per-CPU, per-class counters and their snapshots.
//!
//! Each counter is written only by the CPU whose row it is (the remote-free
//! count of an owner is bumped when the owner drains its list), so updates
//! are a relaxed load and store, no read-modify-write; other CPUs may read a
//! row at any time and see a slightly stale but never torn value.

use core::sync::atomic::{AtomicU64, Ordering};

use super::class::{NR_CLASSES, PAGE_SIZE, SLAB_PAGES, class_size};

/// One CPU-local counter.
pub(super) struct Counter(AtomicU64);

impl Counter {
    const fn new() -> Self {
        Self(AtomicU64::new(0))
    }

    /// Adds `n`; only the row's own CPU calls this.
    #[inline]
    pub(super) fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// Subtracts `n`; only the row's own CPU calls this.
    #[inline]
    pub(super) fn sub(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_sub(n),
            Ordering::Relaxed,
        );
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Live counters of one class on one CPU.
pub(super) struct ClassCounters {
    pub(super) allocs: Counter,
    pub(super) frees: Counter,
    pub(super) remote_frees: Counter,
    pub(super) remote_frees_sent: Counter,
    pub(super) slabs: Counter,
}

impl ClassCounters {
    const fn new() -> Self {
        Self {
            allocs: Counter::new(),
            frees: Counter::new(),
            remote_frees: Counter::new(),
            remote_frees_sent: Counter::new(),
            slabs: Counter::new(),
        }
    }
}

/// Live counters of one CPU.
pub(super) struct CpuCounters {
    pub(super) classes: [ClassCounters; NR_CLASSES],
    pub(super) large_allocs: Counter,
    pub(super) large_frees: Counter,
    pub(super) large_pages_allocated: Counter,
    pub(super) large_pages_freed: Counter,
    pub(super) out_of_memory: Counter,
}

impl CpuCounters {
    pub(super) const fn new() -> Self {
        Self {
            classes: [const { ClassCounters::new() }; NR_CLASSES],
            large_allocs: Counter::new(),
            large_frees: Counter::new(),
            large_pages_allocated: Counter::new(),
            large_pages_freed: Counter::new(),
            out_of_memory: Counter::new(),
        }
    }

    pub(super) fn snapshot(&self) -> Stats {
        let mut stats = Stats::default();
        for (class, (out, c)) in stats.classes.iter_mut().zip(&self.classes).enumerate() {
            *out = ClassStats {
                object_size: class_size(class),
                allocs: c.allocs.get(),
                frees: c.frees.get(),
                remote_frees: c.remote_frees.get(),
                remote_frees_sent: c.remote_frees_sent.get(),
                slabs: c.slabs.get(),
            };
        }
        stats.large = LargeStats {
            allocs: self.large_allocs.get(),
            frees: self.large_frees.get(),
            pages_allocated: self.large_pages_allocated.get(),
            pages_freed: self.large_pages_freed.get(),
        };
        stats.out_of_memory = self.out_of_memory.get();
        stats
    }
}

/// Counters of one size class (of one CPU, or summed over all CPUs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Object size of the class in bytes.
    pub object_size: usize,
    /// Objects handed out by this CPU.
    pub allocs: u64,
    /// Objects this CPU freed into its own slabs.
    pub frees: u64,
    /// Objects of this CPU's slabs that other CPUs freed, counted when this
    /// CPU drained them from its remote-free list.
    pub remote_frees: u64,
    /// Objects of other CPUs' slabs that this CPU freed (pushed onto the
    /// owner's remote-free list).
    pub remote_frees_sent: u64,
    /// Slabs this CPU holds now.
    pub slabs: u64,
}

impl ClassStats {
    /// Objects handed out and not yet returned to their owner; objects still
    /// waiting on a remote-free list count as in use.
    pub fn in_use(&self) -> u64 {
        self.allocs
            .wrapping_sub(self.frees)
            .wrapping_sub(self.remote_frees)
    }

    /// [`Self::in_use`] in bytes of whole objects.
    pub fn bytes_in_use(&self) -> u64 {
        self.in_use().wrapping_mul(self.object_size as u64)
    }

    fn accumulate(&mut self, other: &ClassStats) {
        self.object_size = other.object_size;
        self.allocs = self.allocs.wrapping_add(other.allocs);
        self.frees = self.frees.wrapping_add(other.frees);
        self.remote_frees = self.remote_frees.wrapping_add(other.remote_frees);
        self.remote_frees_sent = self.remote_frees_sent.wrapping_add(other.remote_frees_sent);
        self.slabs = self.slabs.wrapping_add(other.slabs);
    }
}

/// Counters of large allocations (straight from the page source). A large
/// free is counted on the CPU that frees, whichever CPU allocated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LargeStats {
    pub allocs: u64,
    pub frees: u64,
    pub pages_allocated: u64,
    pub pages_freed: u64,
}

impl LargeStats {
    /// Large allocations outstanding (meaningful summed over all CPUs).
    pub fn in_use(&self) -> u64 {
        self.allocs.wrapping_sub(self.frees)
    }

    /// Pages held by large allocations (meaningful summed over all CPUs).
    pub fn pages_in_use(&self) -> u64 {
        self.pages_allocated.wrapping_sub(self.pages_freed)
    }
}

/// A snapshot of one CPU's counters, or of the whole allocator (the sum over
/// CPUs, from [`super::SlabAllocator::stats`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Indexed by class; see [`super::class_size`].
    pub classes: [ClassStats; NR_CLASSES],
    pub large: LargeStats,
    /// Allocations that failed because the page source ran dry.
    pub out_of_memory: u64,
}

impl Default for Stats {
    fn default() -> Self {
        let mut classes = [ClassStats::default(); NR_CLASSES];
        for (class, c) in classes.iter_mut().enumerate() {
            c.object_size = class_size(class);
        }
        Self {
            classes,
            large: LargeStats::default(),
            out_of_memory: 0,
        }
    }
}

impl Stats {
    /// Slab objects in use, over all classes.
    pub fn objects_in_use(&self) -> u64 {
        self.classes
            .iter()
            .map(ClassStats::in_use)
            .fold(0, u64::wrapping_add)
    }

    /// Bytes in use: whole slab objects plus whole pages of large allocations.
    pub fn bytes_in_use(&self) -> u64 {
        let slab = self
            .classes
            .iter()
            .map(ClassStats::bytes_in_use)
            .fold(0, u64::wrapping_add);
        slab.wrapping_add(self.large.pages_in_use().wrapping_mul(PAGE_SIZE as u64))
    }

    /// Slabs held, over all classes.
    pub fn slabs(&self) -> u64 {
        self.classes
            .iter()
            .map(|c| c.slabs)
            .fold(0, u64::wrapping_add)
    }

    /// Pages taken from the page source and not yet given back.
    pub fn pages_held(&self) -> u64 {
        self.slabs()
            .wrapping_mul(SLAB_PAGES as u64)
            .wrapping_add(self.large.pages_in_use())
    }

    /// Remote frees pushed but not yet drained by their owners (meaningful
    /// summed over all CPUs).
    pub fn pending_remote_frees(&self) -> u64 {
        let sent = self
            .classes
            .iter()
            .map(|c| c.remote_frees_sent)
            .fold(0, u64::wrapping_add);
        let done = self
            .classes
            .iter()
            .map(|c| c.remote_frees)
            .fold(0, u64::wrapping_add);
        sent.wrapping_sub(done)
    }

    pub(super) fn accumulate(&mut self, other: &Stats) {
        for (a, b) in self.classes.iter_mut().zip(&other.classes) {
            a.accumulate(b);
        }
        self.large.allocs = self.large.allocs.wrapping_add(other.large.allocs);
        self.large.frees = self.large.frees.wrapping_add(other.large.frees);
        self.large.pages_allocated = self
            .large
            .pages_allocated
            .wrapping_add(other.large.pages_allocated);
        self.large.pages_freed = self.large.pages_freed.wrapping_add(other.large.pages_freed);
        self.out_of_memory = self.out_of_memory.wrapping_add(other.out_of_memory);
    }
}
