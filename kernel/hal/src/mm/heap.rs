//! The kernel heap: `#[global_allocator]`, a first-fit list allocator
//! (`linked_list_allocator`) over pages mapped on demand at `HEAP_BASE`.
//!
//! When a request does not fit, the heap grows by mapping fresh frames at
//! its top. When no frame is left the allocation returns null, and Rust's
//! allocation-error path panics with "memory allocation of N bytes failed":
//! out of memory is a report naming the size, never a hang. (The per-CPU
//! slab allocator replaces this in a later issue.)

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};

use linked_list_allocator::Heap;

use super::paging::{Prot, map_page};
use super::{HEAP_BASE, HEAP_MAX_BYTES, PAGE_SIZE, alloc_frame};

/// Smallest growth step.
const GROW_BYTES: u64 = 256 * 1024;
/// Mapped at init.
const INITIAL_BYTES: u64 = 1024 * 1024;

struct KernelHeap {
    heap: spin::Mutex<Heap>,
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    heap: spin::Mutex::new(Heap::empty()),
};

/// Heap counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes mapped for the heap.
    pub size: usize,
    /// Bytes handed out and not freed.
    pub used: usize,
}

pub fn heap_stats() -> HeapStats {
    let heap = HEAP.heap.lock();
    HeapStats {
        size: heap.size(),
        used: heap.used(),
    }
}

/// Maps `bytes` (page multiple) at `top`; returns how many were mapped.
fn map_more(top: u64, bytes: u64) -> u64 {
    let mut mapped = 0;
    while mapped < bytes && top + mapped + PAGE_SIZE <= HEAP_BASE + HEAP_MAX_BYTES {
        let Some(frame) = alloc_frame() else { break };
        // SAFETY: the heap area above the current top is owned by the heap
        // and unmapped; `frame` was just allocated.
        if unsafe { map_page(top + mapped, frame, Prot::ReadWrite) }.is_err() {
            let _ = super::free_frame(frame);
            break;
        }
        mapped += PAGE_SIZE;
    }
    mapped
}

/// Maps the first megabyte of heap. Called once, after paging init.
pub(crate) fn init() {
    let mut heap = HEAP.heap.lock();
    let mapped = map_more(HEAP_BASE, INITIAL_BYTES);
    assert!(mapped > 0, "no memory for the kernel heap");
    // SAFETY: [HEAP_BASE, HEAP_BASE + mapped) was just mapped RW, is used by
    // nothing else, and the heap was empty.
    unsafe { heap.init(HEAP_BASE as *mut u8, mapped as usize) };
}

// SAFETY: allocation and deallocation go through the locked list allocator,
// which returns disjoint blocks of the requested layout; growth only maps
// new pages above the heap's top before extending it.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.heap.lock();
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

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(p) = NonNull::new(ptr) {
            // SAFETY: the caller passes a block this allocator returned with
            // this layout (GlobalAlloc's contract).
            unsafe { self.heap.lock().deallocate(p, layout) };
        }
    }
}
