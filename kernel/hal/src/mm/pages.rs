//! Where the kernel's slab allocator gets its pages ([`KernelPages`]).
//!
//! A run is physically contiguous frames seen through the direct map when
//! the frame allocator has such a run (always for slabs in practice: 16
//! frames aligned to 16); otherwise fresh frames mapped one by one into the
//! large-allocation area of the heap region, whose address space is handed
//! out by a bump pointer and not reused (32 GiB of it; the frames are
//! reused). A run is given back the same way it came, told apart by its
//! address.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};

use super::paging::{Prot, map_page, unmap_page};
use super::slab::{OutOfPages, PageSource};
use super::{DIRECT_MAP_BASE, HEAP_BASE, HEAP_MAX_BYTES, PAGE_SIZE, phys_to_virt};

/// The early (boot) heap owns `[HEAP_BASE, LARGE_AREA_BASE)`.
pub(crate) const LARGE_AREA_BASE: u64 = HEAP_BASE + HEAP_MAX_BYTES / 2;
const LARGE_AREA_END: u64 = HEAP_BASE + HEAP_MAX_BYTES;

static LARGE_AREA_NEXT: AtomicU64 = AtomicU64::new(LARGE_AREA_BASE);

/// Pages for the kernel's [`super::slab::SlabAllocator`]: the frame
/// allocator through the direct map, else mapped in the heap region.
pub(crate) struct KernelPages;

impl KernelPages {
    fn alloc_mapped(nr_pages: usize, align_bytes: usize) -> Result<NonNull<u8>, OutOfPages> {
        let bytes = nr_pages as u64 * PAGE_SIZE;
        if nr_pages > super::frame_stats().free {
            return Err(OutOfPages);
        }
        let align = align_bytes as u64;
        let mut va = 0;
        LARGE_AREA_NEXT
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |next| {
                va = next.next_multiple_of(align);
                let end = va.checked_add(bytes)?;
                (end <= LARGE_AREA_END).then_some(end)
            })
            .map_err(|_| OutOfPages)?;
        for i in 0..nr_pages as u64 {
            let mapped = super::alloc_frame().and_then(|frame| {
                // SAFETY: `va..va + bytes` was just reserved from the bump
                // pointer for this run alone and is unmapped; `frame` was
                // just allocated.
                match unsafe { map_page(va + i * PAGE_SIZE, frame, Prot::ReadWrite) } {
                    Ok(()) => Some(()),
                    Err(_) => {
                        let _ = super::free_frame(frame);
                        None
                    }
                }
            });
            if mapped.is_none() {
                // SAFETY: the first `i` pages were mapped just above and
                // nothing has seen them yet.
                unsafe { Self::free_mapped(va, i) };
                return Err(OutOfPages);
            }
        }
        // SAFETY (for new_unchecked): `va` is in the heap region, not 0.
        Ok(unsafe { NonNull::new_unchecked(va as *mut u8) })
    }

    /// # Safety
    /// `va..va + nr_pages` pages were mapped by `alloc_mapped` and are unused.
    unsafe fn free_mapped(va: u64, nr_pages: u64) {
        for i in 0..nr_pages {
            // SAFETY: the caller gives the pages up.
            if let Ok(frame) = unsafe { unmap_page(va + i * PAGE_SIZE) } {
                let _ = super::free_frame(frame);
            }
        }
    }
}

// SAFETY:
// 1. A direct-map run is `nr_pages` frames that the frame allocator just
//    handed out, aligned as asked (physical alignment is virtual alignment in
//    the direct map, whose base is 1 GiB-aligned); a mapped run is fresh
//    frames at address space reserved for it alone, aligned by the bump.
//    Either way nothing else uses it until `free_pages`.
// 2. The frame allocator and the page tables take their own locks; neither
//    calls back into the slab allocator (page-table frames come from the
//    frame allocator, not the heap).
unsafe impl PageSource for KernelPages {
    fn alloc_pages(&self, nr_pages: usize, align_bytes: usize) -> Result<NonNull<u8>, OutOfPages> {
        let align_frames = (align_bytes as u64 / PAGE_SIZE).max(1) as usize;
        if let Some(phys) = super::alloc_frames_contiguous(nr_pages, align_frames) {
            // SAFETY (for new_unchecked): direct-map addresses are not 0.
            return Ok(unsafe { NonNull::new_unchecked(phys_to_virt(phys) as *mut u8) });
        }
        Self::alloc_mapped(nr_pages, align_bytes)
    }

    unsafe fn free_pages(&self, addr: NonNull<u8>, nr_pages: usize) {
        let va = addr.as_ptr() as u64;
        if (DIRECT_MAP_BASE..HEAP_BASE).contains(&va) {
            super::free_frames_contiguous(va - DIRECT_MAP_BASE, nr_pages);
        } else {
            // SAFETY: not a direct-map run, so `alloc_mapped` made it; the
            // caller gives it up (PageSource::free_pages contract).
            unsafe { Self::free_mapped(va, nr_pages as u64) };
        }
    }
}
