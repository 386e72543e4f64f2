//! The kernel heap, `#[global_allocator]`: DragonFly's kmalloc shape.
//!
//! Two allocators behind one front:
//!
//! - **the per-CPU slab allocator** ([`super::slab::SlabAllocator`] over
//!   [`super::pages::KernelPages`]), used on every CPU once per-CPU data is
//!   set up ([`crate::percpu::is_ready`]); the CPU comes from
//!   [`crate::percpu::cpu_index`] (GS), so each CPU allocates from its own
//!   slabs without a lock and frees of another CPU's objects go back to
//!   their owner;
//! - **the early heap**: a first-fit list allocator (`linked_list_allocator`)
//!   over pages mapped on demand at `HEAP_BASE`, for the allocations boot
//!   makes before per-CPU data exists. It also takes back those blocks when
//!   they are freed later: a free is routed by address.
//!
//! The slab allocator's CPU contract (one caller per CPU index at a time)
//! holds without turning interrupts off: kernel code is not preempted, and
//! interrupt handlers never allocate or free (their contract,
//! [`crate::arch::trap::InterruptHandler`]). The heap checks that on every
//! call (one per-CPU load) and panics instead of reentering a CPU's cache.
//! Not toggling interrupts matters under virtualisation: each `sti` ends a
//! translated block under TCG, and a read from disk made 22 heap calls.
//!
//! Out of memory is a null return, and Rust's allocation-error path panics
//! with "memory allocation of N bytes failed": a report naming the size,
//! never a hang.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use linked_list_allocator::Heap;
use x86_64::instructions::interrupts::without_interrupts;

use super::pages::{KernelPages, LARGE_AREA_BASE};
use super::paging::{Prot, map_page};
use super::slab::{SlabAllocator, Stats};
use super::{HEAP_BASE, PAGE_SIZE, alloc_frame};
use crate::percpu::{MAX_CPUS, cpu_index, is_ready};

/// Smallest growth step of the early heap.
const GROW_BYTES: u64 = 256 * 1024;
/// Mapped at init.
const INITIAL_BYTES: u64 = 1024 * 1024;

struct KernelHeap;

#[global_allocator]
static HEAP: KernelHeap = KernelHeap;

static EARLY: spin::Mutex<Heap> = spin::Mutex::new(Heap::empty());

static SLAB: SlabAllocator<KernelPages, MAX_CPUS> = SlabAllocator::new(KernelPages);

/// Heap counters: the early heap plus the slab allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes of memory the heap holds: mapped for the early heap, plus pages
    /// the slab allocator holds (slabs and large allocations).
    pub size: usize,
    /// Bytes handed out and not freed (slab objects count whole; objects
    /// waiting on a remote-free list count as used).
    pub used: usize,
}

pub fn heap_stats() -> HeapStats {
    let (early_size, early_used) = without_interrupts(|| {
        let heap = EARLY.lock();
        (heap.size(), heap.used())
    });
    let slab = SLAB.stats();
    HeapStats {
        size: early_size + (slab.pages_held() * PAGE_SIZE) as usize,
        used: early_used + slab.bytes_in_use() as usize,
    }
}

/// The slab allocator's counters summed over all CPUs.
pub fn slab_stats() -> Stats {
    SLAB.stats()
}

/// The slab allocator's counters of CPU `cpu` (`None` past `MAX_CPUS`).
pub fn slab_cpu_stats(cpu: usize) -> Option<Stats> {
    (cpu < MAX_CPUS).then(|| SLAB.cpu_stats(cpu))
}

/// Takes back every object other CPUs freed into this CPU's slabs (for the
/// idle loop, or a test that wants exact counters).
pub fn drain_remote_frees() {
    if is_ready() {
        // SAFETY: this CPU's index, interrupts off: the CPU contract.
        without_interrupts(|| unsafe { SLAB.drain_remote(cpu_index()) });
    }
}

/// Drains this CPU's remote frees and gives its entirely free slabs back to
/// the frame allocator. Returns the pages given back.
pub fn trim_this_cpu() -> usize {
    if !is_ready() {
        return 0;
    }
    // SAFETY: this CPU's index, interrupts off: the CPU contract.
    without_interrupts(|| unsafe { SLAB.trim(cpu_index()) })
}

/// Maps `bytes` (page multiple) at `top`; returns how many were mapped.
fn map_more(top: u64, bytes: u64) -> u64 {
    let mut mapped = 0;
    while mapped < bytes && top + mapped + PAGE_SIZE <= LARGE_AREA_BASE {
        let Some(frame) = alloc_frame() else { break };
        // SAFETY: the early-heap area above the current top is owned by the
        // heap and unmapped; `frame` was just allocated.
        if unsafe { map_page(top + mapped, frame, Prot::ReadWrite) }.is_err() {
            let _ = super::free_frame(frame);
            break;
        }
        mapped += PAGE_SIZE;
    }
    mapped
}

/// Maps the first megabyte of the early heap. Called once, after paging init.
pub(crate) fn init() {
    let mut heap = EARLY.lock();
    let mapped = map_more(HEAP_BASE, INITIAL_BYTES);
    assert!(mapped > 0, "no memory for the kernel heap");
    // SAFETY: [HEAP_BASE, HEAP_BASE + mapped) was just mapped RW, is used by
    // nothing else, and the heap was empty.
    unsafe { heap.init(HEAP_BASE as *mut u8, mapped as usize) };
}

fn early_alloc(layout: Layout) -> *mut u8 {
    let mut heap = EARLY.lock();
    loop {
        if let Ok(p) = heap.allocate_first_fit(layout) {
            return p.as_ptr();
        }
        let want = (layout.size() as u64 + layout.align() as u64).next_multiple_of(GROW_BYTES);
        if want / PAGE_SIZE > super::frame_stats().free as u64 {
            // Cannot succeed: fail now instead of mapping every free frame first.
            return ptr::null_mut();
        }
        let top = heap.top() as u64;
        let mapped = map_more(top, want);
        if mapped == 0 {
            return ptr::null_mut();
        }
        // SAFETY: `mapped` bytes right above the old top are now mapped
        // RW and owned by the heap.
        unsafe { heap.extend(mapped as usize) };
        if mapped < want {
            // Out of frames part way: one last try with what we got.
            return heap
                .allocate_first_fit(layout)
                .map_or(ptr::null_mut(), |p| p.as_ptr());
        }
    }
}

fn is_early(ptr: *mut u8) -> bool {
    (HEAP_BASE..LARGE_AREA_BASE).contains(&(ptr as u64))
}

/// The heap is never entered from an interrupt handler (which could
/// interrupt this CPU in the middle of a slab call): a handler that tries
/// is a kernel bug, reported here before it can corrupt the cache.
#[inline]
fn not_in_interrupt(cpu: usize) {
    if crate::arch::trap::in_interrupt_on(cpu) {
        heap_in_interrupt(cpu);
    }
}

#[cold]
#[inline(never)]
fn heap_in_interrupt(cpu: usize) -> ! {
    panic!(
        "CPU {cpu}: an interrupt handler used the kernel heap (handlers may not allocate or free)"
    );
}

// SAFETY:
// 1. Before per-CPU data exists, everything comes from the locked early
//    heap; afterwards from the slab allocator, whose CPU contract holds: the
//    index is the running CPU's own (GS), kernel code is not preempted, and
//    interrupt handlers never enter the heap (checked by `not_in_interrupt`
//    before every slab call), so nothing reenters a CPU's cache.
// 2. A free goes back to the allocator that made the block, told apart by
//    address: the early heap owns `[HEAP_BASE, LARGE_AREA_BASE)`, and the
//    slab allocator's pages are never there (direct map or the large area).
unsafe impl GlobalAlloc for KernelHeap {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !is_ready() {
            return without_interrupts(|| early_alloc(layout));
        }
        let cpu = cpu_index();
        not_in_interrupt(cpu);
        // SAFETY: condition 1 above.
        unsafe { SLAB.alloc(cpu, layout) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some(p) = NonNull::new(ptr) else { return };
        if is_early(ptr) {
            // The caller passes a block this allocator returned with this
            // layout (GlobalAlloc's contract).
            // SAFETY: blocks at these addresses come from the early heap (condition 2).
            without_interrupts(|| unsafe { EARLY.lock().deallocate(p, layout) });
        } else {
            let cpu = cpu_index();
            not_in_interrupt(cpu);
            // SAFETY: a slab block (condition 2); CPU contract as in `alloc`.
            unsafe { SLAB.free(cpu, p, layout) };
        }
    }
}
