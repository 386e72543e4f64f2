// SPDX-License-Identifier: MIT OR Apache-2.0
//! The heap: power-of-two size classes carved from mmapped chunks, large blocks straight
//! from mmap.
//!
//! Invariants the unsafe code relies on:
//! 1. A user process has one thread (Damselfly has no user threads yet), so the allocator
//!    state is only ever touched by one caller at a time. [`Heap`] is still generic over
//!    its page source so the host tests can drive it.
//! 2. A free block of class `c` lies inside a chunk obtained from `Pages::map`, is
//!    `1 << c` bytes long and aligned to `min(1 << c, CHUNK_BYTES)`; its first word holds
//!    the next free block of the same class (or 0).
//! 3. Chunks are never returned: small blocks are recycled through the free lists.

use core::alloc::Layout;
use core::ptr;

/// Smallest block: 16 bytes (holds the free-list link and meets `max_align_t`).
const MIN_CLASS: u32 = 4;
/// Largest size-class block: 4 KiB. Bigger requests are mapped on their own.
const MAX_CLASS: u32 = 12;
/// Small blocks are carved from chunks of this many bytes.
const CHUNK_BYTES: usize = 64 * 1024;
/// Page size for large allocations.
pub const PAGE: usize = 4096;

/// Where memory comes from: anonymous mmap on Damselfly, the host allocator in tests.
pub trait Pages {
    /// Maps `len` bytes (a multiple of [`PAGE`]), page aligned and zeroed; null on failure.
    fn map(&mut self, len: usize) -> *mut u8;
    /// Unmaps what `map` returned.
    fn unmap(&mut self, addr: *mut u8, len: usize);
}

/// The allocator state.
pub struct Heap<P: Pages> {
    pages: P,
    free: [usize; (MAX_CLASS + 1) as usize],
    /// Unused tail of the current chunk: [bump, end).
    bump: usize,
    end: usize,
}

fn class_of(layout: Layout) -> Option<u32> {
    let need = layout.size().max(layout.align()).max(1 << MIN_CLASS);
    let class = usize::BITS - (need - 1).leading_zeros();
    (class <= MAX_CLASS).then_some(class)
}

fn large_len(layout: Layout) -> usize {
    layout.size().div_ceil(PAGE).max(1) * PAGE
}

impl<P: Pages> Heap<P> {
    /// An empty heap over `pages`.
    pub const fn new(pages: P) -> Heap<P> {
        Heap {
            pages,
            free: [0; (MAX_CLASS + 1) as usize],
            bump: 0,
            end: 0,
        }
    }

    /// Allocates a block for `layout`; null when out of memory or the alignment is above
    /// a page.
    pub fn alloc(&mut self, layout: Layout) -> *mut u8 {
        if layout.align() > PAGE {
            return ptr::null_mut();
        }
        let Some(class) = class_of(layout) else {
            return self.pages.map(large_len(layout));
        };
        let head = self.free[class as usize];
        if head != 0 {
            // SAFETY: `head` is a free block of this class (invariant 2), so its first word
            // is the link, written by `dealloc` and aligned to at least 16 bytes.
            self.free[class as usize] = unsafe { ptr::read(head as *const usize) };
            return head as *mut u8;
        }
        let size = 1usize << class;
        let mut start = self.bump.next_multiple_of(size);
        if start + size > self.end || self.end == 0 {
            let chunk = self.pages.map(CHUNK_BYTES);
            if chunk.is_null() {
                return ptr::null_mut();
            }
            self.bump = chunk as usize;
            self.end = chunk as usize + CHUNK_BYTES;
            start = self.bump;
        }
        self.bump = start + size;
        start as *mut u8
    }

    /// Frees a block `alloc` returned for `layout`.
    ///
    /// # Safety
    /// `block` came from `self.alloc(layout)` with this same `layout` and was not freed.
    pub unsafe fn dealloc(&mut self, block: *mut u8, layout: Layout) {
        match class_of(layout) {
            None => self.pages.unmap(block, large_len(layout)),
            Some(class) => {
                // SAFETY: by the caller's promise `block` is a live block of `1 << class`
                // >= 16 bytes, aligned to at least 16, which we now own again.
                unsafe { ptr::write(block as *mut usize, self.free[class as usize]) };
                self.free[class as usize] = block as usize;
            }
        }
    }

    /// The usable size of a block allocated for `layout` (for `realloc`).
    pub fn usable_size(layout: Layout) -> usize {
        match class_of(layout) {
            Some(class) => 1 << class,
            None => large_len(layout),
        }
    }
}

// ---------------------------------------------------------------------------
// The process's global allocator (Damselfly only)
// ---------------------------------------------------------------------------

#[cfg(target_os = "none")]
mod global {
    use core::alloc::{GlobalAlloc, Layout};
    use core::cell::UnsafeCell;

    use super::{Heap, Pages};

    /// Anonymous private mmap through the trap door.
    pub struct MmapPages;

    impl Pages for MmapPages {
        fn map(&mut self, len: usize) -> *mut u8 {
            match crate::sys::mmap_anonymous(len) {
                Ok(addr) => addr as *mut u8,
                Err(_) => core::ptr::null_mut(),
            }
        }
        fn unmap(&mut self, addr: *mut u8, len: usize) {
            let _ = crate::sys::munmap(addr as usize, len);
        }
    }

    pub struct Global(UnsafeCell<Heap<MmapPages>>);

    // SAFETY: invariant 1 of this module: user processes are single-threaded, so the
    // `UnsafeCell` is never accessed from two threads.
    unsafe impl Sync for Global {}

    // SAFETY: `Heap` hands out disjoint blocks of at least `layout.size()` bytes with the
    // requested alignment (up to a page; larger alignments get null, which is allowed).
    // The `&mut` taken from the cell is unique because calls never nest (single thread,
    // and `Heap` calls no allocator function itself).
    unsafe impl GlobalAlloc for Global {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            // SAFETY: see the impl comment: no other reference to the heap exists now.
            unsafe { (*self.0.get()).alloc(layout) }
        }
        unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
            // SAFETY: GlobalAlloc's contract gives us `Heap::dealloc`'s; unique as above.
            unsafe { (*self.0.get()).dealloc(block, layout) }
        }
    }

    #[global_allocator]
    static GLOBAL: Global = Global(UnsafeCell::new(Heap::new(MmapPages)));
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;
    use std::collections::HashSet;

    use super::*;

    #[derive(Default)]
    struct HostPages {
        live: Vec<(usize, usize)>,
        maps: usize,
    }

    impl Pages for HostPages {
        fn map(&mut self, len: usize) -> *mut u8 {
            let layout = Layout::from_size_align(len, PAGE).unwrap();
            // SAFETY: non-zero size.
            let p = unsafe { std::alloc::alloc_zeroed(layout) };
            self.live.push((p as usize, len));
            self.maps += 1;
            p
        }
        fn unmap(&mut self, addr: *mut u8, len: usize) {
            let i = self
                .live
                .iter()
                .position(|&(a, _)| a == addr as usize)
                .expect("mapped");
            assert_eq!(self.live[i].1, len);
            self.live.remove(i);
            // SAFETY: allocated by `map` with this layout.
            unsafe { std::alloc::dealloc(addr, Layout::from_size_align(len, PAGE).unwrap()) };
        }
    }

    #[test]
    fn blocks_are_aligned_disjoint_and_recycled() {
        let mut heap = Heap::new(HostPages::default());
        let mut seen = HashSet::new();
        let mut blocks = Vec::new();
        for size in [1usize, 8, 16, 17, 100, 512, 4096] {
            for _ in 0..50 {
                let layout = Layout::from_size_align(size, 8).unwrap();
                let p = heap.alloc(layout) as usize;
                assert_ne!(p, 0);
                assert_eq!(p % 16, 0);
                // SAFETY: p is a fresh block of at least `size` bytes.
                unsafe { core::ptr::write_bytes(p as *mut u8, 0xab, size) };
                for b in (p..p + size).step_by(16) {
                    assert!(seen.insert(b), "overlap at {b:#x}");
                }
                blocks.push((p, layout));
            }
        }
        let (p, layout) = blocks[3];
        // SAFETY: allocated above with this layout, freed once.
        unsafe { heap.dealloc(p as *mut u8, layout) };
        assert_eq!(
            heap.alloc(layout) as usize,
            p,
            "freed block comes back first"
        );
    }

    #[test]
    fn large_blocks_are_mapped_and_unmapped() {
        let mut heap = Heap::new(HostPages::default());
        let layout = Layout::from_size_align(10_000, 8).unwrap();
        let p = heap.alloc(layout);
        assert_eq!(heap.pages.live.len(), 1);
        assert_eq!(heap.pages.live[0].1, 3 * PAGE);
        // SAFETY: allocated above.
        unsafe { heap.dealloc(p, layout) };
        assert!(heap.pages.live.is_empty());
    }

    #[test]
    fn alignment_is_honoured_up_to_a_page() {
        let mut heap = Heap::new(HostPages::default());
        for align in [16usize, 64, 256, 4096] {
            let p = heap.alloc(Layout::from_size_align(8, align).unwrap()) as usize;
            assert_eq!(p % align, 0);
        }
        assert!(
            heap.alloc(Layout::from_size_align(8, 8192).unwrap())
                .is_null()
        );
    }

    #[test]
    fn chunks_are_refilled_when_exhausted() {
        let mut heap = Heap::new(HostPages::default());
        let layout = Layout::from_size_align(4096, 8).unwrap();
        for _ in 0..(CHUNK_BYTES / 4096) * 3 {
            assert!(!heap.alloc(layout).is_null());
        }
        assert_eq!(heap.pages.maps, 3);
    }
}
