//! Kernel stacks, each with an unmapped guard page below it, so an overflow
//! faults (and lands on the double-fault IST stack) instead of corrupting
//! whatever lies below.

use core::sync::atomic::{AtomicU64, Ordering};

use super::paging::{Prot, map_page};
use super::{MemError, PAGE_SIZE, STACK_AREA_BYTES, STACK_BASE, alloc_frame};

/// A mapped stack `[bottom, top)`; the page below `bottom` is the guard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelStack {
    pub bottom: u64,
    pub top: u64,
}

static NEXT: AtomicU64 = AtomicU64::new(STACK_BASE);

/// Maps a stack of `pages` 4 KiB pages under a guard page.
///
/// # Errors
/// [`MemError::NoMemory`] when frames or stack address space run out (the
/// pages mapped so far stay mapped and unused: stacks are rare).
pub fn alloc_stack(pages: u64) -> Result<KernelStack, MemError> {
    let span = (pages + 1) * PAGE_SIZE;
    let guard = NEXT.fetch_add(span, Ordering::Relaxed);
    if guard + span > STACK_BASE + STACK_AREA_BYTES {
        return Err(MemError::NoMemory);
    }
    let bottom = guard + PAGE_SIZE;
    for i in 0..pages {
        let frame = alloc_frame().ok_or(MemError::NoMemory)?;
        // SAFETY: this slot of the stack area was reserved by the fetch_add
        // above for this stack alone; the frame was just allocated.
        unsafe { map_page(bottom + i * PAGE_SIZE, frame, Prot::ReadWrite)? };
    }
    Ok(KernelStack {
        bottom,
        top: bottom + pages * PAGE_SIZE,
    })
}
