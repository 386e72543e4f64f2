//! Per-CPU slab allocator, DragonFly's `kern_slaballoc.c` idea on Rust types.
//!
//! Small requests (up to 16 KiB, alignment up to 4 KiB) are served from
//! 64 KiB slabs owned by one CPU and cut into objects of one of 36 size
//! classes ([`class_size`]); larger ones go straight to the [`PageSource`].
//! Each CPU has, per class, a list of its slabs with free objects. The
//! owner's path takes no lock and does no atomic read-modify-write: the
//! caller promises to be the only user of its CPU index (the CPU contract
//! below), which is DragonFly's "no locking, only a critical section".
//!
//! ```text
//!  alloc(cpu, layout)                          free(cpu, ptr, layout)
//!    |                                           |
//!    | large? -> PageSource::alloc_pages          | large? -> PageSource::free_pages
//!    | (1) pop from first partial slab            | header = ptr & !(64 KiB - 1)
//!    |   none? -> (3) drain remote[class], pop    | owner == cpu? -> (1) push on slab's free list
//!    |   none? -> new slab from PageSource        | else (2) push on owner's remote[class] (CAS)
//!
//!  (1) owner CPU, plain loads and stores      (2) any CPU, lock-free LIFO push
//!  (3) owner CPU, one swap takes the whole remote list, then (1) per object
//! ```
//!
//! The owner looks at its remote-free list only when it has no free object
//! left in the class, before it asks the page source for a new slab, so the
//! local path never touches a cache line that other CPUs write; a CPU never
//! grows a class while objects of that class wait on its list. The kernel
//! may also call [`SlabAllocator::drain_remote`] (from the idle loop, say)
//! to give back slabs that remote frees emptied. A slab that becomes entirely
//! free is given back to the page source, except that each CPU keeps up to
//! [`MAX_EMPTY_SLABS`] empty slabs to avoid thrashing;
//! [`SlabAllocator::trim`] gives those back too.
//!
//! # The CPU contract
//!
//! [`SlabAllocator::alloc`], [`free`](SlabAllocator::free),
//! [`drain_remote`](SlabAllocator::drain_remote) and
//! [`trim`](SlabAllocator::trim) take the *caller's* CPU index. For each
//! index, calls with it must never overlap: not from two threads, and not by
//! reentry, such as an interrupt handler allocating while the interrupted
//! code is inside the allocator on that CPU. In the kernel this means: call
//! with the index of the CPU you are running on, with preemption off and
//! either interrupts disabled or interrupt handlers that never allocate (as
//! house style already requires of `on_interrupt`). Any index below
//! `MAX_CPUS` may be used, so host tests play CPUs with threads.
//!
//! Counters are per CPU and class ([`Stats`]); each is written only by its own
//! CPU and may be read from anywhere ([`SlabAllocator::cpu_stats`],
//! [`SlabAllocator::stats`]).

mod class;
mod remote;
#[expect(
    clippy::module_inception,
    reason = "the slab proper inside the slab allocator"
)]
mod slab;
mod stats;
#[cfg(test)]
mod tests;

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::fmt;
use core::ptr::NonNull;

pub use class::{
    MAX_CLASS_ALIGN, MAX_CLASS_SIZE, NR_CLASSES, PAGE_SIZE, SLAB_PAGES, SLAB_SIZE, class_of,
    class_size,
};
pub use slab::MAX_EMPTY_SLABS;
pub use stats::{ClassStats, LargeStats, Stats};

use class::{class_align, is_large, large_pages};
use remote::RemoteList;
use slab::ClassCache;
use stats::CpuCounters;

/// The page source ran dry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfPages;

/// Where slabs and large allocations come from: runs of 4 KiB pages at
/// virtual addresses. The kernel backs it with the frame allocator and the
/// direct map (or the vmap area); host tests with std's allocator.
///
/// # Safety
/// Implementations must guarantee:
/// 1. An `Ok` from `alloc_pages(nr_pages, align_bytes)` is the start of
///    `nr_pages * 4096` bytes, aligned to `align_bytes` (a power of two, at
///    least 4096; slabs ask for 64 KiB), valid for reads and writes, and used
///    by nothing else until it is passed to `free_pages`. The pages need not
///    be physically contiguous.
/// 2. Both methods may be called from any CPU at the same time, and never
///    call back into the [`SlabAllocator`] they serve.
pub unsafe trait PageSource {
    /// A run of `nr_pages` pages aligned to `align_bytes`.
    ///
    /// # Errors
    /// [`OutOfPages`] when memory (or address space) is used up.
    fn alloc_pages(&self, nr_pages: usize, align_bytes: usize) -> Result<NonNull<u8>, OutOfPages>;

    /// Gives back a run.
    ///
    /// # Safety
    /// `addr` was returned by `alloc_pages(nr_pages, _)` of this source and
    /// not freed since, and nothing uses the memory any more.
    unsafe fn free_pages(&self, addr: NonNull<u8>, nr_pages: usize);
}

/// An allocation failed because the page source ran dry; names the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError {
    /// Bytes asked for.
    pub size: usize,
    /// Alignment asked for.
    pub align: usize,
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "out of memory: the page source cannot supply {} bytes (align {})",
            self.size, self.align
        )
    }
}

impl From<AllocError> for super::MemError {
    fn from(_: AllocError) -> Self {
        super::MemError::NoMemory
    }
}

/// Remote-free lists of one CPU, on their own cache lines: other CPUs write
/// them, the owner's local state should not share their lines.
#[repr(align(64))]
struct RemoteLists([RemoteList; NR_CLASSES]);

/// The owner-only part of a CPU's share.
struct LocalState {
    classes: [ClassCache; NR_CLASSES],
    /// Entirely free slabs over all of `classes`.
    nr_empty: u32,
}

/// One CPU's share of the allocator.
#[repr(align(64))]
struct PerCpu {
    /// Owner CPU only (the CPU contract).
    local: UnsafeCell<LocalState>,
    /// Written by the owner only, read by anyone.
    counters: CpuCounters,
    /// Pushed by any CPU, emptied by the owner only.
    remote: RemoteLists,
}

impl PerCpu {
    const fn new() -> Self {
        Self {
            local: UnsafeCell::new(LocalState {
                classes: [const { ClassCache::new() }; NR_CLASSES],
                nr_empty: 0,
            }),
            counters: CpuCounters::new(),
            remote: RemoteLists([const { RemoteList::new() }; NR_CLASSES]),
        }
    }
}

/// The per-CPU slab allocator over a page source `P`, for up to `MAX_CPUS`
/// CPUs (indices `0..MAX_CPUS`).
///
/// Invariants its unsafe code relies on: `cpus[c].local` is only reached by
/// calls made under the CPU contract for index `c`; every slab in those
/// caches came from `source` as [`SLAB_PAGES`] pages aligned to
/// [`SLAB_SIZE`]; the owner and class in a slab header match the cache that
/// holds it.
pub struct SlabAllocator<P, const MAX_CPUS: usize = 64> {
    source: P,
    cpus: [PerCpu; MAX_CPUS],
}

// SAFETY:
// 1. The per-CPU caches (`UnsafeCell`, raw slab pointers) are only reached
//    through the unsafe entry points, whose CPU contract makes each CPU's
//    cache single-threaded; everything else shared is atomic.
// 2. `P: Sync` because the page source is called from every CPU.
unsafe impl<P: PageSource + Sync, const MAX_CPUS: usize> Sync for SlabAllocator<P, MAX_CPUS> {}

// SAFETY: the raw pointers in the caches point into slabs that this
// allocator owns, not into memory tied to a thread, so moving the whole
// allocator is fine as long as the page source may move.
unsafe impl<P: PageSource + Send, const MAX_CPUS: usize> Send for SlabAllocator<P, MAX_CPUS> {}

impl<P: PageSource, const MAX_CPUS: usize> SlabAllocator<P, MAX_CPUS> {
    const CPU_INDEX_FITS: () = assert!(MAX_CPUS <= u32::MAX as usize);

    /// An allocator holding no memory yet; usable in a `static`.
    pub const fn new(source: P) -> Self {
        let () = Self::CPU_INDEX_FITS;
        Self {
            source,
            cpus: [const { PerCpu::new() }; MAX_CPUS],
        }
    }

    /// The page source.
    pub fn source(&self) -> &P {
        &self.source
    }

    /// Allocates memory for `layout` on CPU `cpu`.
    ///
    /// # Errors
    /// [`AllocError`] naming the request when the page source runs dry, even
    /// after this CPU gave back its empty slabs.
    ///
    /// # Panics
    /// If `cpu >= MAX_CPUS`.
    ///
    /// # Safety
    /// 1. The CPU contract (module docs) holds for `cpu`.
    ///
    /// # Context
    /// Any CPU, as that CPU; never blocks; takes no lock unless the page
    /// source does (only when a slab or large allocation is needed).
    #[inline]
    pub unsafe fn alloc(&self, cpu: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let Some(class) = class_of(layout) else {
            // SAFETY: caller condition 1.
            return unsafe { self.alloc_large(cpu, layout) };
        };
        let pcpu = &self.cpus[cpu];
        // SAFETY: the CPU contract (caller condition 1) makes this the only
        // reference to `cpu`'s caches while the call runs.
        let local = unsafe { &mut *pcpu.local.get() };
        let obj = match local.classes[class].pop(&mut local.nr_empty) {
            Some(obj) => obj,
            None => self.refill(cpu, pcpu, local, class, layout)?,
        };
        pcpu.counters.classes[class].allocs.add(1);
        Ok(obj)
    }

    /// Frees `ptr` on CPU `cpu`. If another CPU owns its slab, the object
    /// goes onto that CPU's remote-free list, taken back when the owner runs
    /// out of free objects in that class (or at its
    /// [`drain_remote`](Self::drain_remote)).
    ///
    /// # Panics
    /// If `cpu >= MAX_CPUS`.
    ///
    /// # Safety
    /// 1. The CPU contract (module docs) holds for `cpu`.
    /// 2. `ptr` was returned by [`alloc`](Self::alloc) of this allocator (on
    ///    any CPU) with this same `layout`, is not freed since, and is not
    ///    used after this call.
    ///
    /// # Context
    /// Any CPU, as that CPU; never blocks; a remote free is one
    /// compare-and-swap loop on the owner's list.
    #[inline]
    pub unsafe fn free(&self, cpu: usize, ptr: NonNull<u8>, layout: Layout) {
        if is_large(layout) {
            // SAFETY: caller conditions 1 and 2; a layout without a class was
            // served by `alloc_large` with the same page count and alignment.
            return unsafe { self.free_large(cpu, ptr, layout) };
        }
        let hdr = slab::header_of(ptr);
        // SAFETY: `ptr` is an allocated slab object held by the caller
        // (caller condition 2; its layout has a class, so it came from a
        // slab), which keeps its slab alive.
        let (owner, class) = unsafe { slab::owner_and_class(hdr) };
        // The class comes from the header; the layout's is only checked.
        debug_assert_eq!(
            Some(class),
            class_of(layout),
            "freed with the layout of another class"
        );
        let pcpu = &self.cpus[cpu];
        if owner == cpu {
            // SAFETY:
            // 1. The CPU contract (caller condition 1) makes this the only
            //    reference to `cpu`'s caches.
            // 2. The header says the slab is `cpu`'s, of `class`, so `ptr`
            //    was handed out by this very cache, and the caller gives it
            //    up (condition 2).
            let freed = unsafe {
                let local = &mut *pcpu.local.get();
                local.classes[class].free(ptr, &mut local.nr_empty)
            };
            if let Some(base) = freed {
                self.release_slab(pcpu, class, base);
            }
            pcpu.counters.classes[class].frees.add(1);
        } else {
            pcpu.counters.classes[class].remote_frees_sent.add(1);
            // SAFETY: `ptr` is an object of at least 16 B, 16-aligned, that
            // the caller gives up (condition 2); from here on only `owner`'s
            // drain touches it.
            unsafe { self.cpus[owner].remote.0[class].push(ptr) };
        }
    }

    /// Takes back every object other CPUs freed into `cpu`'s slabs.
    ///
    /// # Panics
    /// If `cpu >= MAX_CPUS`.
    ///
    /// # Safety
    /// 1. The CPU contract (module docs) holds for `cpu`.
    pub unsafe fn drain_remote(&self, cpu: usize) {
        let pcpu = &self.cpus[cpu];
        for class in 0..NR_CLASSES {
            if !pcpu.remote.0[class].is_empty() {
                // SAFETY: the CPU contract (caller condition 1) makes this the
                // only reference to `cpu`'s caches.
                let local = unsafe { &mut *pcpu.local.get() };
                self.drain_class(pcpu, local, class);
            }
        }
    }

    /// Drains `cpu`'s remote frees, then gives every entirely free slab of
    /// `cpu` back to the page source. Returns the pages given back.
    ///
    /// # Panics
    /// If `cpu >= MAX_CPUS`.
    ///
    /// # Safety
    /// 1. The CPU contract (module docs) holds for `cpu`.
    pub unsafe fn trim(&self, cpu: usize) -> usize {
        let pcpu = &self.cpus[cpu];
        // SAFETY: the CPU contract (caller condition 1) makes this the only
        // reference to `cpu`'s caches.
        let local = unsafe { &mut *pcpu.local.get() };
        self.reclaim(pcpu, local)
    }

    /// Counters of CPU `cpu`.
    ///
    /// # Panics
    /// If `cpu >= MAX_CPUS`.
    pub fn cpu_stats(&self, cpu: usize) -> Stats {
        self.cpus[cpu].counters.snapshot()
    }

    /// Counters summed over all CPUs.
    pub fn stats(&self) -> Stats {
        let mut total = Stats::default();
        for pcpu in &self.cpus {
            total.accumulate(&pcpu.counters.snapshot());
        }
        total
    }

    /// Puts every object on `pcpu`'s remote list of `class` back into its
    /// cache; `local` is `pcpu`'s local state (the caller holds it under the
    /// CPU contract).
    #[cold]
    fn drain_class(&self, pcpu: &PerCpu, local: &mut LocalState, class: usize) {
        let mut node = pcpu.remote.0[class].take_all();
        let mut drained = 0;
        while let Some(obj) = NonNull::new(node) {
            // SAFETY: `obj` is a node of the list we just took and not yet
            // reused.
            node = unsafe { remote::next_of(obj.as_ptr()) };
            // SAFETY: a remote `free` pushed `obj` here after reading from its
            // slab header that the slab is this CPU's and of `class`, so this
            // cache handed it out; the freeing CPU gave it up.
            if let Some(base) = unsafe { local.classes[class].free(obj, &mut local.nr_empty) } {
                self.release_slab(pcpu, class, base);
            }
            drained += 1;
        }
        pcpu.counters.classes[class].remote_frees.add(drained);
    }

    /// An object of `class`, of which `local` (`pcpu`'s) has none free:
    /// first from the objects other CPUs freed, else from a new slab.
    #[cold]
    fn refill(
        &self,
        cpu: usize,
        pcpu: &PerCpu,
        local: &mut LocalState,
        class: usize,
        layout: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        if !pcpu.remote.0[class].is_empty() {
            self.drain_class(pcpu, local, class);
            if let Some(obj) = local.classes[class].pop(&mut local.nr_empty) {
                return Ok(obj);
            }
        }
        let base = self.pages_from_source(pcpu, local, SLAB_PAGES, SLAB_SIZE, layout)?;
        // SAFETY: the page source contract (condition 1) gives us SLAB_SIZE
        // bytes aligned to SLAB_SIZE that nothing else uses; the cache is
        // `cpu`'s cache of `class`.
        unsafe { local.classes[class].add_slab(base, cpu, class, &mut local.nr_empty) };
        pcpu.counters.classes[class].slabs.add(1);
        Ok(local.classes[class]
            .pop(&mut local.nr_empty)
            .expect("a fresh slab has free objects"))
    }

    fn release_slab(&self, pcpu: &PerCpu, class: usize, base: NonNull<u8>) {
        // SAFETY: `base` came from `alloc_pages(SLAB_PAGES, _)` in `grow`,
        // and the cache has just given it up with every object free.
        unsafe { self.source.free_pages(base, SLAB_PAGES) };
        pcpu.counters.classes[class].slabs.sub(1);
    }

    /// Takes back `pcpu`'s remote frees, then gives all its entirely free
    /// slabs back to the page source; `local` is `pcpu`'s local state (the
    /// caller holds it under the CPU contract). Returns the pages given back.
    fn reclaim(&self, pcpu: &PerCpu, local: &mut LocalState) -> usize {
        for class in 0..NR_CLASSES {
            if !pcpu.remote.0[class].is_empty() {
                self.drain_class(pcpu, local, class);
            }
        }
        let mut pages = 0;
        for class in 0..NR_CLASSES {
            while let Some(base) = local.classes[class].take_empty(&mut local.nr_empty) {
                self.release_slab(pcpu, class, base);
                pages += SLAB_PAGES;
            }
        }
        pages
    }

    /// A run from the page source. If the source is dry, this CPU gives back
    /// its empty slabs and asks once more before failing with an error that
    /// names `layout`.
    fn pages_from_source(
        &self,
        pcpu: &PerCpu,
        local: &mut LocalState,
        nr_pages: usize,
        align_bytes: usize,
        layout: Layout,
    ) -> Result<NonNull<u8>, AllocError> {
        if let Ok(base) = self.source.alloc_pages(nr_pages, align_bytes) {
            return Ok(base);
        }
        if self.reclaim(pcpu, local) > 0
            && let Ok(base) = self.source.alloc_pages(nr_pages, align_bytes)
        {
            return Ok(base);
        }
        pcpu.counters.out_of_memory.add(1);
        Err(AllocError {
            size: layout.size(),
            align: layout.align(),
        })
    }

    /// # Safety
    /// 1. The CPU contract (module docs) holds for `cpu`.
    #[cold]
    unsafe fn alloc_large(&self, cpu: usize, layout: Layout) -> Result<NonNull<u8>, AllocError> {
        let pcpu = &self.cpus[cpu];
        // SAFETY: the CPU contract (caller condition 1) makes this the only
        // reference to `cpu`'s caches.
        let local = unsafe { &mut *pcpu.local.get() };
        let pages = large_pages(layout.size());
        let align_bytes = layout.align().max(PAGE_SIZE);
        let ptr = self.pages_from_source(pcpu, local, pages, align_bytes, layout)?;
        pcpu.counters.large_allocs.add(1);
        pcpu.counters.large_pages_allocated.add(pages as u64);
        Ok(ptr)
    }

    /// # Safety
    /// `ptr` came from `alloc_large(_, layout)` and is given up.
    #[cold]
    unsafe fn free_large(&self, cpu: usize, ptr: NonNull<u8>, layout: Layout) {
        let counters = &self.cpus[cpu].counters;
        let pages = large_pages(layout.size());
        // SAFETY: `alloc_large` got `ptr` from `alloc_pages(pages, _)` with the
        // same page count (same layout), and the caller gives it up.
        unsafe { self.source.free_pages(ptr, pages) };
        counters.large_frees.add(1);
        counters.large_pages_freed.add(pages as u64);
    }
}

const _: () = assert!(class_align(0) == 16);
