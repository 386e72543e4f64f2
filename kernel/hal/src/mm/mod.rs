//! Memory: physical frames, the kernel page tables, kernel stacks and heap.
//!
//! Kernel virtual layout (all in the upper half, shared by every address
//! space later):
//!
//! ```text
//! 0xffff_8000_0000_0000  direct map of all physical RAM (2 MiB pages, RW, NX)
//! 0xffff_c000_0000_0000  early (boot) heap, grown on demand (4 KiB pages, RW, NX)
//! 0xffff_c008_0000_0000  slab page source: runs with no contiguous frames
//! 0xffff_c800_0000_0000  kernel stacks, each under an unmapped guard page
//! 0xffff_d000_0000_0000  vmap area: single pages mapped on request
//! 0xffff_ffff_8000_0000  kernel image (text RX, rodata R, data+bss RW NX)
//! ```

pub mod early;
pub mod frame;
pub mod slab;

#[cfg(target_os = "none")]
pub(crate) mod heap;
#[cfg(target_os = "none")]
pub mod locked_heap;
#[cfg(target_os = "none")]
mod pages;
#[cfg(target_os = "none")]
pub mod paging;
#[cfg(target_os = "none")]
pub mod space;
#[cfg(target_os = "none")]
mod stack;

#[cfg(target_os = "none")]
pub use heap::{
    HeapStats, drain_remote_frees, heap_stats, slab_cpu_stats, slab_stats, trim_this_cpu,
};
#[cfg(target_os = "none")]
pub use paging::{Prot, is_stack_address, map_mmio, map_page, protect_page, translate, unmap_page};
#[cfg(target_os = "none")]
pub use stack::{KernelStack, alloc_stack};

pub const DIRECT_MAP_BASE: u64 = 0xffff_8000_0000_0000;
pub const HEAP_BASE: u64 = 0xffff_c000_0000_0000;
/// The heap may grow to this size.
pub const HEAP_MAX_BYTES: u64 = 64 << 30;
pub const STACK_BASE: u64 = 0xffff_c800_0000_0000;
pub const STACK_AREA_BYTES: u64 = 1 << 40;
pub const VMAP_BASE: u64 = 0xffff_d000_0000_0000;
pub const VMAP_AREA_BYTES: u64 = 1 << 40;
pub const KERNEL_VMA: u64 = 0xffff_ffff_8000_0000;
pub const PAGE_SIZE: u64 = 4096;

/// Errors of the memory services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemError {
    /// No free physical frame (or heap/stack address space) is left.
    NoMemory,
    /// The address is not mapped (unmap/protect) or already mapped (map).
    BadAddress(u64),
    /// The page is pinned for a device's DMA (`space::UserPin`): it cannot be unmapped or
    /// have its permissions changed until the device is done.
    Busy(u64),
    /// The page is shared read-only with other processes (a program's text, the clock
    /// page): it cannot be made writable.
    ReadOnly(u64),
}

#[cfg(target_os = "none")]
pub use frames::{FrameStats, alloc_frame, frame_stats, free_frame};
#[cfg(target_os = "none")]
pub(crate) use frames::{alloc_frames_contiguous, free_frames_contiguous};

#[cfg(target_os = "none")]
mod frames {
    use super::frame::{FrameAllocator, FrameError};

    /// The global frame allocator; `None` until [`super::paging::init`].
    pub(crate) static FRAMES: spin::Mutex<Option<FrameAllocator<'static>>> = spin::Mutex::new(None);

    /// Frame counters.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FrameStats {
        pub free: usize,
        pub usable: usize,
    }

    /// One free 4 KiB frame (contents undefined).
    pub fn alloc_frame() -> Option<u64> {
        FRAMES.lock().as_mut()?.alloc()
    }

    /// Returns a frame.
    ///
    /// # Errors
    /// A foreign address or a double free ([`FrameError`]).
    pub fn free_frame(phys: u64) -> Result<(), FrameError> {
        match FRAMES.lock().as_mut() {
            Some(f) => f.free(phys),
            None => Err(FrameError::NotManaged(phys)),
        }
    }

    /// `n` physically contiguous free frames aligned to `align_frames`.
    pub(crate) fn alloc_frames_contiguous(n: usize, align_frames: usize) -> Option<u64> {
        FRAMES.lock().as_mut()?.alloc_contiguous(n, align_frames)
    }

    /// Returns `n` frames starting at `phys` (errors, which would be bugs
    /// in the caller, are ignored as in a single `free_frame`).
    pub(crate) fn free_frames_contiguous(phys: u64, n: usize) {
        if let Some(f) = FRAMES.lock().as_mut() {
            for i in 0..n as u64 {
                let _ = f.free(phys + i * super::PAGE_SIZE);
            }
        }
    }

    pub fn frame_stats() -> FrameStats {
        FRAMES
            .lock()
            .as_ref()
            .map_or(FrameStats { free: 0, usable: 0 }, |f| FrameStats {
                free: f.free_frames(),
                usable: f.usable_frames(),
            })
    }
}

/// Reserves `pages` of address space in the vmap area (nothing mapped).
///
/// # Errors
/// [`MemError::NoMemory`] when the area is used up.
#[cfg(target_os = "none")]
pub fn alloc_virt(pages: u64) -> Result<u64, MemError> {
    use core::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(VMAP_BASE);
    let va = NEXT.fetch_add(pages * PAGE_SIZE, Ordering::Relaxed);
    if va + pages * PAGE_SIZE > VMAP_BASE + VMAP_AREA_BYTES {
        return Err(MemError::NoMemory);
    }
    Ok(va)
}

/// Physical to virtual through the direct map.
pub const fn phys_to_virt(phys: u64) -> u64 {
    DIRECT_MAP_BASE + phys
}
