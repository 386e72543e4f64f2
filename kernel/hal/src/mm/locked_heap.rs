//! A single global-lock heap: the baseline the per-CPU slab allocator is
//! measured against (`cargo xtask bench`).
//!
//! `linked_list_allocator` (the early heap's allocator) behind one
//! `spin::Mutex`, over a private region taken once from the kernel heap.
//! Each call runs with interrupts off, as the global allocator's do, so the
//! two paths differ only in the allocator. Blocks are owned handles
//! ([`LockedBlock`]) that go back to their heap when dropped, from any CPU,
//! so the benchmarks need no unsafe code.

use alloc::boxed::Box;
use core::alloc::Layout;
use core::mem::MaybeUninit;
use core::ptr::NonNull;

use linked_list_allocator::Heap;
use x86_64::instructions::interrupts::without_interrupts;

/// One lock, one first-fit heap, shared by every CPU.
pub struct GlobalLockHeap {
    heap: spin::Mutex<Heap>,
}

impl GlobalLockHeap {
    /// A heap over `bytes` taken (for good) from the kernel heap; `None`
    /// when the kernel heap cannot spare them.
    pub fn leak_new(bytes: usize) -> Option<&'static Self> {
        let mut region = alloc::vec::Vec::new();
        region.try_reserve_exact(bytes).ok()?;
        region.resize(bytes, MaybeUninit::uninit());
        let region: &'static mut [MaybeUninit<u8>] = Box::leak(region.into_boxed_slice());
        Some(Box::leak(Box::new(Self {
            heap: spin::Mutex::new(Heap::from_slice(region)),
        })))
    }

    /// A block for `layout`; `None` when the heap is full.
    pub fn alloc(&'static self, layout: Layout) -> Option<LockedBlock> {
        let ptr = without_interrupts(|| self.heap.lock().allocate_first_fit(layout)).ok()?;
        Some(LockedBlock {
            heap: self,
            ptr,
            layout,
        })
    }

    /// Bytes handed out and not yet freed.
    pub fn used(&self) -> usize {
        without_interrupts(|| self.heap.lock().used())
    }
}

/// A block of a [`GlobalLockHeap`]; dropping it frees it (on any CPU).
pub struct LockedBlock {
    heap: &'static GlobalLockHeap,
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the block is plain memory owned by this handle alone; freeing it
// takes the heap's lock, so any CPU may drop it.
unsafe impl Send for LockedBlock {}

impl LockedBlock {
    /// The block's address (for `black_box`, or to tell blocks apart).
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr().addr()
    }
}

impl Drop for LockedBlock {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from this heap's `allocate_first_fit(layout)`,
        // and the handle is dropped once, so the block is freed once.
        without_interrupts(|| unsafe { self.heap.heap.lock().deallocate(self.ptr, self.layout) });
    }
}
