//! The kernel page tables: built once at boot (W^X image, direct map), then
//! changed page by page through [`map_page`], [`unmap_page`] and
//! [`protect_page`], each followed by the TLB invalidation it needs.

use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::{
    FrameAllocator as X86FrameAllocator, Mapper, OffsetPageTable, Page, PageTable,
    PageTableFlags as F, PhysFrame, Size2MiB, Size4KiB, Translate,
};
use x86_64::{PhysAddr, VirtAddr};

use super::early::EarlyFrames;
use super::frame::FrameAllocator;
use super::frames::FRAMES;
use super::{DIRECT_MAP_BASE, KERNEL_VMA, MemError, PAGE_SIZE};
use crate::boot::memmap::Range;

/// Page protections the kernel asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prot {
    ReadOnly,
    ReadWrite,
    ReadExecute,
    /// Device registers: read-write, uncached, no-execute.
    Mmio,
}

static NX: spin::Once<F> = spin::Once::new();

fn flags(prot: Prot) -> F {
    let nx = *NX.get().unwrap_or(&F::empty());
    match prot {
        Prot::ReadOnly => F::PRESENT | nx,
        Prot::ReadWrite => F::PRESENT | F::WRITABLE | nx,
        Prot::ReadExecute => F::PRESENT,
        Prot::Mmio => F::PRESENT | F::WRITABLE | F::NO_CACHE | F::WRITE_THROUGH | nx,
    }
}

/// Parent tables are permissive; the leaf entry decides.
const TABLE_FLAGS: F = F::PRESENT.union(F::WRITABLE);

/// The active kernel page table, reached through the direct map.
static KERNEL_PT: spin::Mutex<Option<OffsetPageTable<'static>>> = spin::Mutex::new(None);

struct Early<'a, 'b>(&'a mut EarlyFrames<'b>);

// SAFETY: every frame handed out comes from a usable RAM range and is
// handed out once (EarlyFrames never returns a frame twice).
unsafe impl X86FrameAllocator<Size4KiB> for Early<'_, '_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        self.0
            .alloc(1)
            .map(|a| PhysFrame::containing_address(PhysAddr::new(a)))
    }
}

struct Global;

// SAFETY: frames come from the global bitmap allocator, which hands each
// free frame out once.
unsafe impl X86FrameAllocator<Size4KiB> for Global {
    fn allocate_frame(&mut self) -> Option<PhysFrame<Size4KiB>> {
        FRAMES
            .lock()
            .as_mut()?
            .alloc()
            .map(|a| PhysFrame::containing_address(PhysAddr::new(a)))
    }
}

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __data_start: u8;
    static __kernel_end: u8;
    static __kernel_phys_start: u8;
}

fn sym(s: &u8) -> u64 {
    core::ptr::from_ref(s) as u64
}

/// The kernel image's sections: (first VA, end VA, protection).
fn image_sections() -> [(u64, u64, Prot); 3] {
    // SAFETY: only the addresses of the linker-script symbols are taken.
    unsafe {
        [
            (sym(&__text_start), sym(&__text_end), Prot::ReadExecute),
            (sym(&__rodata_start), sym(&__rodata_end), Prot::ReadOnly),
            (sym(&__data_start), sym(&__kernel_end), Prot::ReadWrite),
        ]
    }
}

/// Physical range of the whole image: the boot stub and its page tables at
/// 1 MiB through the end of the higher-half bss.
pub fn kernel_image_phys() -> Range {
    let s = image_sections();
    // SAFETY: only the address of the linker-script symbol is taken.
    let start = unsafe { sym(&__kernel_phys_start) };
    Range::new(start, s[2].1 - KERNEL_VMA)
}

/// Builds the kernel page tables, switches to them and starts the frame
/// allocator.
///
/// `usable` are the normalised usable ranges (kernel, initrd and low memory
/// already cut out); the direct map covers `[0, direct_map_top)` and at
/// least all usable RAM. Runs on the boot CPU, once, while the boot stub's
/// identity map is still active (page-table frames are reached at their
/// physical address until the switch).
///
/// # Panics
/// If memory runs out while building the tables (nothing could run then).
pub fn init(usable: &[Range], direct_map_top: u64) {
    let nx = crate::arch::cpu::has_nx();
    if nx {
        // SAFETY: NXE only makes the NX bit meaningful; no mapping uses it yet.
        unsafe { Efer::update(|f| f.insert(EferFlags::NO_EXECUTE_ENABLE)) };
    }
    NX.call_once(|| if nx { F::NO_EXECUTE } else { F::empty() });

    let mut early = EarlyFrames::new(usable);
    let pml4_phys = early
        .alloc(1)
        .expect("no memory for the kernel page tables");
    // SAFETY: the frame is usable RAM below 4 GiB, identity-mapped by the
    // boot stub, and nothing else refers to it.
    let pml4 = unsafe { &mut *(pml4_phys as *mut PageTable) };
    pml4.zero();
    // SAFETY: physical memory is identity-mapped (offset 0) for every frame
    // the early allocator hands out, and `pml4` is a valid, zeroed table.
    let mut pt = unsafe { OffsetPageTable::new(pml4, VirtAddr::new(0)) };

    // The image, section by section, with exact permissions; the page under
    // the boot stack stays unmapped as its guard.
    let guard = crate::arch::boot_stack_guard_page();
    for (start, end, prot) in image_sections() {
        let mut va = start;
        while va < end {
            if va == guard {
                va += PAGE_SIZE;
                continue;
            }
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
            let frame = PhysFrame::containing_address(PhysAddr::new(va - KERNEL_VMA));
            // SAFETY: maps the image onto its own physical pages in a table
            // that is not active yet.
            unsafe {
                pt.map_to_with_table_flags(
                    page,
                    frame,
                    flags(prot),
                    TABLE_FLAGS,
                    &mut Early(&mut early),
                )
            }
            .expect("mapping the kernel image")
            .ignore();
            va += PAGE_SIZE;
        }
    }

    // The direct map of all RAM, 2 MiB pages.
    let ram_top = usable
        .iter()
        .map(|r| r.end)
        .max()
        .unwrap_or(0)
        .max(super::frame::FRAME_SIZE);
    let top = ram_top.max(direct_map_top);
    let huge = 2 * 1024 * 1024;
    DIRECT_MAP_TOP.store(
        top.next_multiple_of(huge),
        core::sync::atomic::Ordering::Relaxed,
    );
    let mut phys = 0;
    while phys < top.next_multiple_of(huge) {
        let page = Page::<Size2MiB>::containing_address(VirtAddr::new(DIRECT_MAP_BASE + phys));
        let frame = PhysFrame::<Size2MiB>::containing_address(PhysAddr::new(phys));
        // SAFETY: as above; the direct map aliases RAM as data only (NX).
        unsafe {
            pt.map_to_with_table_flags(
                page,
                frame,
                flags(Prot::ReadWrite),
                TABLE_FLAGS,
                &mut Early(&mut early),
            )
        }
        .expect("building the direct map")
        .ignore();
        phys += huge;
    }

    // Every upper-half PML4 slot gets its table now, so the kernel half can
    // be shared by reference: user address spaces copy these 256 entries
    // once, and later kernel mappings land in tables they already share.
    for slot in 256..512 {
        if pml4_entry_unused(pml4_phys, slot) {
            let table = early
                .alloc(1)
                .expect("no memory for the kernel page tables");
            // SAFETY: a fresh early frame, identity-mapped at this point.
            unsafe { (*(table as *mut PageTable)).zero() };
            // SAFETY: as above; the PML4 is not active yet.
            let pml4 = unsafe { &mut *(pml4_phys as *mut PageTable) };
            pml4[slot].set_addr(PhysAddr::new(table), TABLE_FLAGS);
        }
    }
    KERNEL_PML4.store(pml4_phys, core::sync::atomic::Ordering::Relaxed);

    // Switch. From here on the identity map is gone: only the image (higher
    // half) and the direct map are reachable.
    // SAFETY: the new table maps the running code, its stack (bss) and all
    // data the kernel uses, with the same virtual addresses as before.
    unsafe {
        Cr3::write(
            PhysFrame::containing_address(PhysAddr::new(pml4_phys)),
            Cr3Flags::empty(),
        )
    };

    // The frame bitmap, in frames from the early allocator, via the direct map.
    let nr_frames = (ram_top / PAGE_SIZE) as usize;
    let words = FrameAllocator::words_for(nr_frames);
    let pages = (words as u64 * 8).div_ceil(PAGE_SIZE);
    let bitmap_phys = early.alloc(pages).expect("no memory for the frame bitmap");
    // SAFETY: `pages` frames starting at bitmap_phys are free RAM handed out
    // only here, mapped by the direct map; u64 alignment holds (page-aligned).
    let bits = unsafe {
        core::slice::from_raw_parts_mut((DIRECT_MAP_BASE + bitmap_phys) as *mut u64, words)
    };
    let mut frames = FrameAllocator::new(bits, 0, nr_frames);
    for r in usable {
        frames.add_usable(*r);
    }
    for used in early.consumed() {
        frames.reserve(used);
    }
    *FRAMES.lock() = Some(frames);

    // SAFETY: the PML4 is mapped through the direct map at this offset, and
    // from now on it is only touched through KERNEL_PT.
    let pml4 = unsafe { &mut *((DIRECT_MAP_BASE + pml4_phys) as *mut PageTable) };
    // SAFETY: all physical memory is mapped at DIRECT_MAP_BASE.
    *KERNEL_PT.lock() = Some(unsafe { OffsetPageTable::new(pml4, VirtAddr::new(DIRECT_MAP_BASE)) });
}

/// Physical address of the kernel's PML4 (set once by [`init`]).
pub(crate) static KERNEL_PML4: core::sync::atomic::AtomicU64 =
    core::sync::atomic::AtomicU64::new(0);

fn pml4_entry_unused(pml4_phys: u64, slot: usize) -> bool {
    // SAFETY: called by `init` while the table is identity-mapped.
    unsafe { (&*(pml4_phys as *const PageTable))[slot].is_unused() }
}

fn with_pt<R>(f: impl FnOnce(&mut OffsetPageTable<'static>) -> R) -> R {
    let mut guard = KERNEL_PT.lock();
    f(guard.as_mut().expect("kernel page tables not initialised"))
}

/// Maps the 4 KiB page at `va` to frame `phys` with `prot`.
///
/// # Errors
/// [`MemError::BadAddress`] if `va` is already mapped or not page-aligned,
/// [`MemError::NoMemory`] if a page-table frame cannot be allocated.
///
/// # Safety
/// `va` must be in a kernel area the caller owns (heap, stack, vmap) and
/// `phys` a frame the caller owns: mapping over live data or handing the
/// same frame to two owners breaks memory safety.
pub unsafe fn map_page(va: u64, phys: u64, prot: Prot) -> Result<(), MemError> {
    if !va.is_multiple_of(PAGE_SIZE) || !phys.is_multiple_of(PAGE_SIZE) {
        return Err(MemError::BadAddress(va));
    }
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
    let frame = PhysFrame::containing_address(PhysAddr::new(phys));
    with_pt(|pt| {
        // SAFETY: the caller owns `va` and `phys` (this function's contract).
        match unsafe {
            pt.map_to_with_table_flags(page, frame, flags(prot), TABLE_FLAGS, &mut Global)
        } {
            Ok(flush) => {
                flush.flush();
                Ok(())
            }
            Err(x86_64::structures::paging::mapper::MapToError::FrameAllocationFailed) => {
                Err(MemError::NoMemory)
            }
            Err(_) => Err(MemError::BadAddress(va)),
        }
    })
}

/// Unmaps the page at `va` and returns its frame (not freed).
///
/// # Errors
/// [`MemError::BadAddress`] if nothing is mapped there.
///
/// # Safety
/// Nothing may use the page afterwards (the caller owns `va`).
pub unsafe fn unmap_page(va: u64) -> Result<u64, MemError> {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
    with_pt(|pt| match pt.unmap(page) {
        Ok((frame, flush)) => {
            flush.flush();
            Ok(frame.start_address().as_u64())
        }
        Err(_) => Err(MemError::BadAddress(va)),
    })
}

/// Changes the protection of the page at `va`.
///
/// # Errors
/// [`MemError::BadAddress`] if nothing is mapped there.
///
/// # Safety
/// The caller owns `va`; making a page executable or read-only under code
/// that relies on the old protection is the caller's responsibility.
pub unsafe fn protect_page(va: u64, prot: Prot) -> Result<(), MemError> {
    let page = Page::<Size4KiB>::containing_address(VirtAddr::new(va));
    with_pt(|pt| {
        // SAFETY: the caller owns the page (this function's contract).
        match unsafe { pt.update_flags(page, flags(prot)) } {
            Ok(flush) => {
                flush.flush();
                Ok(())
            }
            Err(_) => Err(MemError::BadAddress(va)),
        }
    })
}

/// End of the physical range the direct map covers (set once by [`init`]).
static DIRECT_MAP_TOP: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The physical address `va` maps to, if any.
///
/// A direct-map address is translated by arithmetic (no lock: drivers lend
/// heap buffers to devices this way from every CPU at once); anything else
/// walks the kernel tables under their lock, waiting for it.
///
/// # Context
/// Any CPU, not an interrupt handler (it may wait for the page-table lock,
/// which the interrupted code could hold).
pub fn translate(va: u64) -> Option<u64> {
    let top = DIRECT_MAP_TOP.load(core::sync::atomic::Ordering::Relaxed);
    if let Some(phys) = va.checked_sub(DIRECT_MAP_BASE)
        && phys < top
    {
        return Some(phys);
    }
    walk(&*KERNEL_PT.lock(), va)
}

/// [`translate`] that never waits: `None` also when the page-table lock is
/// held (the panic path uses it).
fn try_translate(va: u64) -> Option<u64> {
    walk(&*KERNEL_PT.try_lock()?, va)
}

/// The kernel tables' translation of `va` (the caller holds their lock).
fn walk(tables: &Option<OffsetPageTable<'static>>, va: u64) -> Option<u64> {
    tables
        .as_ref()?
        .translate_addr(VirtAddr::try_new(va).ok()?)
        .map(|p| p.as_u64())
}

/// Whether `[addr, addr + len)` lies in a mapped kernel stack (the boot
/// stack or one from `alloc_stack`). Safe to call from the panic path: it
/// never waits for a lock.
pub fn is_stack_address(addr: u64, len: u64) -> bool {
    let Some(last) = addr.checked_add(len - 1) else {
        return false;
    };
    let (boot_bottom, boot_top) = crate::arch::boot_stack();
    if addr >= boot_bottom && last < boot_top {
        return true;
    }
    let in_area = addr >= super::STACK_BASE && last < super::STACK_BASE + super::STACK_AREA_BYTES;
    in_area && try_translate(addr).is_some() && try_translate(last).is_some()
}

/// Maps `len` bytes of device registers at physical `phys` (uncached) into
/// the vmap area and returns the virtual address of `phys`.
///
/// # Errors
/// [`MemError::NoMemory`] when address space or page-table frames run out.
///
/// # Safety
/// `phys..phys+len` must be device memory that no other mapping uses as
/// ordinary RAM; the caller becomes the owner of the registers.
pub unsafe fn map_mmio(phys: u64, len: u64) -> Result<u64, MemError> {
    let first = phys & !(PAGE_SIZE - 1);
    let pages = (phys + len - first).div_ceil(PAGE_SIZE);
    let va = super::alloc_virt(pages)?;
    for i in 0..pages {
        // SAFETY: the vmap range was just reserved for this mapping; the
        // caller owns the device pages (this function's contract).
        unsafe { map_page(va + i * PAGE_SIZE, first + i * PAGE_SIZE, Prot::Mmio)? };
    }
    Ok(va + (phys - first))
}
