//! User address spaces: one PML4 per process whose upper half is the
//! kernel's (shared by reference: `paging::init` gave every upper-half slot
//! its table, so these 256 entries never change), and whose lower half
//! holds the process's own mappings.
//!
//! The kernel never dereferences a user address. [`AddressSpace::copy_from_user`]
//! and [`AddressSpace::copy_to_user`] walk the process's tables in software
//! and copy through the direct map, checking the user and write bits of
//! every page on the way; a hole or a missing permission is
//! [`UserFault`], which the syscall layer reports as `EFAULT`. So SMAP can
//! stay on, a copy never faults, and it works whichever address space the
//! CPU has loaded (a system call may finish on behalf of a process while
//! another one runs).
//!
//! Ownership of frames: a page mapped with [`AddressSpace::map_zeroed`] (or
//! [`AddressSpace::map_copy`]) belongs to the space and is freed with it or
//! on unmap; a page mapped with [`AddressSpace::map_shared`] (the syscall
//! rings) is borrowed, marked with a software bit, and never freed here.
//!
//! Pinning for DMA: [`AddressSpace::pin`] takes the physical segments of a
//! user range for a device (`O_DIRECT`: the disk reads or writes the
//! process's own pages) and records the range in the space's pin list until
//! the returned [`UserPin`] is dropped. While a page is pinned, `unmap`,
//! `unmap_range`, `protect` and `protect_range` refuse it with
//! [`MemError::Busy`] (`EBUSY`), and the pin holds an `Arc` of the space, so
//! process exit cannot free the frames either: they go when the last pin
//! (and the process's own reference) is dropped. Refusing was chosen over
//! deferring the frame free because it needs no per-frame state (the frame
//! allocator has no reference counts) and the window is one device request;
//! exit, the case that cannot be refused, is covered by the space outliving
//! the process.
//!
//! Zero-fill on demand: [`AddressSpace::reserve_zeroed`] records a range
//! (the stack, anonymous `mmap`) without mapping anything. A page of it gets
//! its zeroed frame the first time it is touched: by the process (a
//! not-present page fault, which the kernel hands to
//! [`AddressSpace::fault_in`] before it would kill the thread), by a copy
//! routine or a pin (they map it as they walk), or by `protect`. `unmap` and
//! `unmap_range` take the range out of the reservation as well, so an
//! unmapped page stays unmapped. A process pays only for the pages it uses:
//! a program that uses 8 KiB of its 256 KiB stack no longer has 64 pages
//! zeroed and freed for it.
//!
//! TLB: a process and its tasks live on one CPU, so a change is flushed on
//! this CPU only (and only if the space is loaded); [`AddressSpace::activate`]
//! reloads CR3 when it switches spaces.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicUsize, Ordering};

use x86_64::registers::control::{Cr3, Cr3Flags};
use x86_64::structures::paging::{PageTable, PageTableFlags as F, PhysFrame};
use x86_64::{PhysAddr, VirtAddr};

use super::{MemError, PAGE_SIZE, phys_to_virt};
use crate::arch::user::USER_TOP;
use crate::percpu::CpuLocal;

/// Software bit (available to the OS) marking a borrowed frame.
const BORROWED: F = F::BIT_9;

/// Parent tables of user mappings: the leaf decides the permissions.
const USER_TABLE: F = F::PRESENT.union(F::WRITABLE).union(F::USER_ACCESSIBLE);

/// Permissions of a user page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserProt {
    pub read: bool,
    pub write: bool,
    pub execute: bool,
}

impl UserProt {
    pub const NONE: UserProt = UserProt {
        read: false,
        write: false,
        execute: false,
    };
    pub const READ: UserProt = UserProt {
        read: true,
        write: false,
        execute: false,
    };
    pub const READ_WRITE: UserProt = UserProt {
        read: true,
        write: true,
        execute: false,
    };
    pub const READ_EXECUTE: UserProt = UserProt {
        read: true,
        write: false,
        execute: true,
    };

    fn flags(self) -> F {
        let nx = if crate::arch::cpu::has_nx() && !self.execute {
            F::NO_EXECUTE
        } else {
            F::empty()
        };
        // PROT_NONE: not present, but the frame stays recorded (USER set,
        // PRESENT clear) so it is still owned and can be made visible again.
        let present = if self.read || self.write || self.execute {
            F::PRESENT
        } else {
            F::empty()
        };
        let write = if self.write { F::WRITABLE } else { F::empty() };
        present | F::USER_ACCESSIBLE | write | nx
    }
}

const READABLE: F = F::PRESENT.union(F::USER_ACCESSIBLE);
const WRITABLE: F = READABLE.union(F::WRITABLE);

/// Zeroed, physically contiguous pages shared between the kernel (through
/// the direct map, as atomics) and a process (mapped with
/// [`AddressSpace::map_shared`]): the syscall rings. Freed on drop, so the
/// owner must keep it alive as long as any space maps it.
pub struct SharedPages {
    phys: u64,
    pages: usize,
}

impl SharedPages {
    /// `pages` fresh zeroed pages.
    ///
    /// # Errors
    /// `NoMemory` if no such run of frames is free.
    pub fn new(pages: usize) -> Result<SharedPages, MemError> {
        let phys = super::alloc_frames_contiguous(pages, 1).ok_or(MemError::NoMemory)?;
        // SAFETY: the frames were just allocated (ours alone) and are covered
        // by the direct map.
        unsafe {
            core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, pages * PAGE_SIZE as usize)
        };
        Ok(SharedPages { phys, pages })
    }

    /// `pages` fresh pages holding `bytes` from byte `offset` on, zero
    /// elsewhere: a program's read-only segment, shared by every process that
    /// loads it (mapped with [`AddressSpace::map_shared`]). Written only here,
    /// before anyone can map it.
    ///
    /// # Errors
    /// `NoMemory` if no such run of frames is free.
    ///
    /// # Panics
    /// If `bytes` does not fit the pages from `offset`.
    pub fn with_bytes(pages: usize, offset: usize, bytes: &[u8]) -> Result<SharedPages, MemError> {
        assert!(
            offset + bytes.len() <= pages * PAGE_SIZE as usize,
            "SharedPages::with_bytes: data beyond the pages"
        );
        let shared = SharedPages::new(pages)?;
        // SAFETY: the frames are ours alone (just allocated, not yet mapped
        // anywhere), covered by the direct map and contiguous, and the range
        // lies inside them (asserted above).
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (phys_to_virt(shared.phys) as *mut u8).add(offset),
                bytes.len(),
            )
        };
        Ok(shared)
    }

    /// Physical address of page `i`.
    pub fn page_phys(&self, i: usize) -> u64 {
        assert!(i < self.pages, "page {i} of {}", self.pages);
        self.phys + i as u64 * PAGE_SIZE
    }

    /// Number of pages.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The pages as 32-bit atomics (the process may write them any time).
    pub fn words(&self) -> &[core::sync::atomic::AtomicU32] {
        // SAFETY: the frames are ours until drop, mapped by the direct map,
        // 4-aligned; AtomicU32 is valid for any bit pattern and concurrent
        // writes by the process are atomic accesses of the same width or
        // plain user stores the kernel only observes through atomics.
        unsafe {
            core::slice::from_raw_parts(
                phys_to_virt(self.phys) as *const core::sync::atomic::AtomicU32,
                self.pages * PAGE_SIZE as usize / 4,
            )
        }
    }

    /// The pages as 64-bit atomics: the same memory as [`SharedPages::words`],
    /// for readers that copy whole 64-bit fields (a ring entry in eight loads
    /// rather than sixteen).
    pub fn words64(&self) -> &[core::sync::atomic::AtomicU64] {
        // SAFETY: as for `words`; the frames are page-aligned, so 8-aligned,
        // and AtomicU64 is valid for any bit pattern.
        unsafe {
            core::slice::from_raw_parts(
                phys_to_virt(self.phys) as *const core::sync::atomic::AtomicU64,
                self.pages * PAGE_SIZE as usize / 8,
            )
        }
    }
}

impl Drop for SharedPages {
    fn drop(&mut self) {
        super::free_frames_contiguous(self.phys, self.pages);
    }
}

/// A user address that is unmapped or lacks the permission asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserFault {
    pub addr: u64,
}

/// How many address spaces exist (a leak check for the tests).
static LIVE_SPACES: AtomicUsize = AtomicUsize::new(0);

/// Address spaces alive now.
pub fn live_spaces() -> usize {
    LIVE_SPACES.load(Ordering::Relaxed)
}

/// Page-aligned user ranges `[start, end)` pinned for DMA, one entry per
/// live [`UserPin`] (ranges may repeat and overlap).
type Pins = alloc::vec::Vec<(u64, u64)>;

/// Ranges `[start, end)` (page-aligned) whose pages are mapped, zeroed, with
/// their protection, when first touched.
type Reserved = alloc::vec::Vec<(u64, u64, UserProt)>;

fn pinned(pins: &Pins, start: u64, end: u64) -> Option<u64> {
    pins.iter()
        .find(|&&(s, e)| s < end && start < e)
        .map(|&(s, _)| s.max(start))
}

/// A process's page tables.
pub struct AddressSpace {
    pml4: u64,
    /// Serialises table changes and walks (a process's tasks share it), and
    /// holds the pinned ranges, so a pin and an unmap cannot interleave.
    lock: spin::Mutex<Pins>,
    /// Zero-fill-on-demand ranges. Read and changed only with `lock` held
    /// (taken after it), so a page is filled once.
    reserved: spin::Mutex<Reserved>,
    /// Shared pages mapped here (kept alive until the space is gone).
    shared: spin::Mutex<alloc::vec::Vec<Arc<SharedPages>>>,
}

impl core::fmt::Debug for AddressSpace {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "AddressSpace({:#x})", self.pml4)
    }
}

fn table(phys: u64) -> *mut PageTable {
    phys_to_virt(phys) as *mut PageTable
}

fn alloc_zeroed_frame() -> Result<u64, MemError> {
    let phys = super::alloc_frame().ok_or(MemError::NoMemory)?;
    // SAFETY: a frame just handed out by the frame allocator is ours alone,
    // and the direct map covers it.
    unsafe { core::ptr::write_bytes(phys_to_virt(phys) as *mut u8, 0, PAGE_SIZE as usize) };
    Ok(phys)
}

fn check_user_page(va: u64) -> Result<(), MemError> {
    if !va.is_multiple_of(PAGE_SIZE) || va == 0 || va >= USER_TOP {
        return Err(MemError::BadAddress(va));
    }
    Ok(())
}

impl AddressSpace {
    /// An empty lower half and the kernel's upper half.
    ///
    /// # Errors
    /// [`MemError::NoMemory`] if no frame is left for the PML4.
    pub fn new() -> Result<AddressSpace, MemError> {
        let pml4 = alloc_zeroed_frame()?;
        let kernel = super::paging::KERNEL_PML4.load(Ordering::Relaxed);
        // SAFETY: both tables are page-table frames reached through the
        // direct map; the new one is ours alone, the kernel's upper-half
        // entries are never changed after boot (see `paging::init`).
        unsafe {
            let (new, kernel) = (&mut *table(pml4), &*table(kernel));
            for slot in 256..512 {
                new[slot] = kernel[slot].clone();
            }
        }
        LIVE_SPACES.fetch_add(1, Ordering::Relaxed);
        Ok(AddressSpace {
            pml4,
            lock: spin::Mutex::new(Pins::new()),
            reserved: spin::Mutex::new(Reserved::new()),
            shared: spin::Mutex::new(alloc::vec::Vec::new()),
        })
    }

    /// The leaf entry for `va`, creating missing tables when `create`.
    ///
    /// # Safety
    /// The caller holds `self.lock`, and `va` is a user address.
    unsafe fn leaf(
        &self,
        va: u64,
        create: bool,
    ) -> Result<Option<*mut x86_64::structures::paging::page_table::PageTableEntry>, MemError> {
        let va = VirtAddr::new(va);
        let indexes = [va.p4_index(), va.p3_index(), va.p2_index()];
        let mut current = self.pml4;
        for index in indexes {
            // SAFETY: `current` is a page-table frame of this space (the
            // PML4 or one created below), reached through the direct map,
            // and the lock serialises every change to these tables.
            let entry = unsafe { &mut (&mut *table(current))[index] };
            if entry.is_unused() {
                if !create {
                    return Ok(None);
                }
                let next = alloc_zeroed_frame()?;
                entry.set_addr(PhysAddr::new(next), USER_TABLE);
            } else if entry.flags().contains(F::HUGE_PAGE) {
                return Err(MemError::BadAddress(va.as_u64()));
            }
            current = entry.addr().as_u64();
        }
        // SAFETY: as above, for the last level.
        Ok(Some(unsafe {
            &mut (&mut *table(current))[va.p1_index()] as *mut _
        }))
    }

    /// The leaf entry of `page` if it maps something (any protection),
    /// filling it first if it is unmapped and reserved
    /// ([`reserve_zeroed`](Self::reserve_zeroed)). `None` for a hole, or if no
    /// frame is left to fill it with.
    ///
    /// # Safety
    /// The caller holds `self.lock`, and `page` is a page-aligned user address.
    #[inline]
    unsafe fn present_leaf(
        &self,
        page: u64,
    ) -> Option<*mut x86_64::structures::paging::page_table::PageTableEntry> {
        // SAFETY: the caller's promise.
        match unsafe { self.leaf(page, false) } {
            // SAFETY: an entry of this space's tables, under the lock.
            Ok(Some(entry)) if unsafe { !(*entry).is_unused() } => Some(entry),
            Err(_) => None,
            // SAFETY: the caller's promise.
            Ok(_) => unsafe { self.fill_reserved(page) },
        }
    }

    /// [`present_leaf`](Self::present_leaf) for an unmapped page (out of
    /// line: the copy routines' usual case is a mapped page).
    ///
    /// # Safety
    /// As for `present_leaf`.
    #[inline(never)]
    unsafe fn fill_reserved(
        &self,
        page: u64,
    ) -> Option<*mut x86_64::structures::paging::page_table::PageTableEntry> {
        let prot = self
            .reserved
            .lock()
            .iter()
            .find(|&&(start, end, _)| (start..end).contains(&page))?
            .2;
        let phys = alloc_zeroed_frame().ok()?;
        // SAFETY: the caller's promise.
        match unsafe { self.leaf(page, true) } {
            Ok(Some(entry)) => {
                // SAFETY: an entry of this space's tables, under the lock
                // (unused: checked above, and the lock is still held).
                unsafe { (*entry).set_addr(PhysAddr::new(phys), prot.flags()) };
                Some(entry)
            }
            _ => {
                let _ = super::free_frame(phys);
                None
            }
        }
    }

    /// Reserves `[addr, addr + len)` (page-aligned) for zeroed pages with
    /// `prot`, mapped one by one when first touched (see the module doc).
    /// Pages already mapped there stay as they are.
    ///
    /// # Errors
    /// `BadAddress` for a range that is not page-aligned user memory.
    pub fn reserve_zeroed(&self, addr: u64, len: u64, prot: UserProt) -> Result<(), MemError> {
        let end = user_range_end(addr, len)?;
        if addr == 0 || len == 0 {
            return Err(MemError::BadAddress(addr));
        }
        let _guard = self.lock.lock();
        let mut reserved = self.reserved.lock();
        release(&mut reserved, addr, end);
        reserved.push((addr, end, prot));
        Ok(())
    }

    /// A user page fault on a page that was not present at `va`: maps the
    /// page if it is reserved and unmapped (or another thread has just done
    /// so). Returns whether the access may be retried, i.e. the page is now
    /// mapped with what the access needs (`write`, or reading).
    pub fn fault_in(&self, va: u64, write: bool) -> bool {
        if !(PAGE_SIZE..USER_TOP).contains(&va) {
            return false;
        }
        let _guard = self.lock.lock();
        // SAFETY: the lock is held and the page is a user address.
        let Some(entry) = (unsafe { self.present_leaf(va & !(PAGE_SIZE - 1)) }) else {
            return false;
        };
        // SAFETY: an entry of this space's tables, under the lock.
        let flags = unsafe { (*entry).flags() };
        flags.contains(if write { WRITABLE } else { READABLE })
    }

    fn flush(&self, va: u64) {
        if Cr3::read().0.start_address().as_u64() == self.pml4 {
            x86_64::instructions::tlb::flush(VirtAddr::new(va));
        }
    }

    fn map_frame(&self, va: u64, phys: u64, flags: F) -> Result<(), MemError> {
        check_user_page(va)?;
        let _guard = self.lock.lock();
        // SAFETY: the lock is held and `va` is a user address (checked).
        let entry = unsafe { self.leaf(va, true)? }.ok_or(MemError::BadAddress(va))?;
        // SAFETY: the entry lives in this space's tables, under the lock.
        let entry = unsafe { &mut *entry };
        if !entry.is_unused() {
            return Err(MemError::BadAddress(va));
        }
        entry.set_addr(PhysAddr::new(phys), flags);
        Ok(())
    }

    /// Maps a fresh zeroed page at `va` (owned by the space).
    ///
    /// # Errors
    /// `BadAddress` if `va` is not a page-aligned user address or is mapped
    /// already; `NoMemory` if frames ran out.
    pub fn map_zeroed(&self, va: u64, prot: UserProt) -> Result<(), MemError> {
        let phys = alloc_zeroed_frame()?;
        self.map_frame(va, phys, prot.flags()).inspect_err(|_| {
            let _ = super::free_frame(phys);
        })
    }

    /// Maps a fresh page at `va` holding `bytes` (at most a page) at
    /// `offset` within it, zero elsewhere (loading program segments).
    ///
    /// # Errors
    /// As [`map_zeroed`](Self::map_zeroed).
    pub fn map_copy(
        &self,
        va: u64,
        prot: UserProt,
        offset: usize,
        bytes: &[u8],
    ) -> Result<(), MemError> {
        assert!(
            offset + bytes.len() <= PAGE_SIZE as usize,
            "map_copy: data beyond the page"
        );
        let phys = alloc_zeroed_frame()?;
        // SAFETY: the frame was just allocated (ours alone) and the range
        // lies inside it (asserted above).
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                (phys_to_virt(phys) as *mut u8).add(offset),
                bytes.len(),
            )
        };
        self.map_frame(va, phys, prot.flags()).inspect_err(|_| {
            let _ = super::free_frame(phys);
        })
    }

    /// Maps page `index` of `pages` (shared with the kernel: the syscall
    /// rings). The space keeps a reference, so the frames stay allocated as
    /// long as it can map them; it never frees them itself.
    ///
    /// # Errors
    /// As [`map_zeroed`](Self::map_zeroed).
    pub fn map_shared(
        &self,
        va: u64,
        pages: &Arc<SharedPages>,
        index: usize,
        prot: UserProt,
    ) -> Result<(), MemError> {
        self.map_frame(va, pages.page_phys(index), prot.flags() | BORROWED)?;
        let mut shared = self.shared.lock();
        if !shared.iter().any(|p| Arc::ptr_eq(p, pages)) {
            shared.push(pages.clone());
        }
        Ok(())
    }

    /// Unmaps the page at `va`, freeing it if the space owns it.
    ///
    /// # Errors
    /// `BadAddress` if nothing is mapped there; `Busy` if it is pinned.
    pub fn unmap(&self, va: u64) -> Result<(), MemError> {
        check_user_page(va)?;
        let pins = self.lock.lock();
        if let Some(at) = pinned(&pins, va, va + PAGE_SIZE) {
            return Err(MemError::Busy(at));
        }
        release(&mut self.reserved.lock(), va, va + PAGE_SIZE);
        self.unmap_locked(va)
    }

    /// Unmaps every page of `[addr, addr + len)` (page-aligned; holes are
    /// fine), all or nothing with respect to pins.
    ///
    /// # Errors
    /// `BadAddress` for a range that is not page-aligned user memory; `Busy`
    /// (and nothing unmapped) if any page of it is pinned.
    pub fn unmap_range(&self, addr: u64, len: u64) -> Result<(), MemError> {
        let end = user_range_end(addr, len)?;
        let pins = self.lock.lock();
        if let Some(at) = pinned(&pins, addr, end) {
            return Err(MemError::Busy(at));
        }
        release(&mut self.reserved.lock(), addr, end);
        for va in (addr..end).step_by(PAGE_SIZE as usize) {
            match self.unmap_locked(va) {
                Ok(()) | Err(MemError::BadAddress(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// [`unmap`](Self::unmap) with the lock held and the pins checked.
    fn unmap_locked(&self, va: u64) -> Result<(), MemError> {
        check_user_page(va)?;
        // SAFETY: the caller holds the lock and `va` is a user address.
        let Some(entry) = (unsafe { self.leaf(va, false)? }) else {
            return Err(MemError::BadAddress(va));
        };
        // SAFETY: an entry of this space's tables, under the lock.
        let entry = unsafe { &mut *entry };
        if entry.is_unused() {
            return Err(MemError::BadAddress(va));
        }
        let (phys, flags) = (entry.addr().as_u64(), entry.flags());
        entry.set_unused();
        self.flush(va);
        if !flags.contains(BORROWED) {
            let _ = super::free_frame(phys);
        }
        Ok(())
    }

    /// Changes the permissions of the page at `va`.
    ///
    /// # Errors
    /// `BadAddress` if nothing is mapped there; `Busy` if it is pinned.
    pub fn protect(&self, va: u64, prot: UserProt) -> Result<(), MemError> {
        check_user_page(va)?;
        let pins = self.lock.lock();
        if let Some(at) = pinned(&pins, va, va + PAGE_SIZE) {
            return Err(MemError::Busy(at));
        }
        self.protect_locked(va, prot)
    }

    /// Changes the permissions of every page of `[addr, addr + len)`
    /// (page-aligned), all or nothing.
    ///
    /// # Errors
    /// `BadAddress` if the range is not page-aligned user memory or a page of
    /// it is not mapped; `Busy` if a page of it is pinned; `ReadOnly` for
    /// write permission on a page shared read-only. Nothing changes then.
    pub fn protect_range(&self, addr: u64, len: u64, prot: UserProt) -> Result<(), MemError> {
        let end = user_range_end(addr, len)?;
        let pins = self.lock.lock();
        if let Some(at) = pinned(&pins, addr, end) {
            return Err(MemError::Busy(at));
        }
        for va in (addr..end).step_by(PAGE_SIZE as usize) {
            // A reserved page is filled here, so that it keeps the new
            // protection (a range that then fails keeps those pages: they
            // read as zero, as before).
            // SAFETY: the lock is held and `va` is a user page (checked).
            unsafe { self.protectable(va, prot) }?;
        }
        for va in (addr..end).step_by(PAGE_SIZE as usize) {
            self.protect_locked(va, prot)?;
        }
        Ok(())
    }

    /// [`protect`](Self::protect) with the lock held and the pins checked.
    fn protect_locked(&self, va: u64, prot: UserProt) -> Result<(), MemError> {
        check_user_page(va)?;
        // SAFETY: the caller holds the lock and `va` is a user page (checked).
        let entry = unsafe { self.protectable(va, prot) }?;
        // SAFETY: an entry of this space's tables, under the lock.
        let entry = unsafe { &mut *entry };
        let borrowed = entry.flags() & BORROWED;
        entry.set_flags(prot.flags() | borrowed);
        self.flush(va);
        Ok(())
    }

    /// The leaf entry of the page at `va` if it may take `prot`: mapped (or
    /// reserved, and then filled), and not a page shared read-only when
    /// `prot` writes.
    ///
    /// # Errors
    /// `BadAddress` for a hole; `ReadOnly` for write on a shared read-only page.
    ///
    /// # Safety
    /// As for [`present_leaf`](Self::present_leaf).
    unsafe fn protectable(
        &self,
        va: u64,
        prot: UserProt,
    ) -> Result<*mut x86_64::structures::paging::page_table::PageTableEntry, MemError> {
        // SAFETY: the caller's promise.
        let entry = unsafe { self.present_leaf(va) }.ok_or(MemError::BadAddress(va))?;
        // SAFETY: an entry of this space's tables, under the lock.
        if prot.write && borrowed_read_only(unsafe { (*entry).flags() }) {
            return Err(MemError::ReadOnly(va));
        }
        Ok(entry)
    }

    /// Whether `va` has a page (of any permission).
    pub fn is_mapped(&self, va: u64) -> bool {
        if va >= USER_TOP {
            return false;
        }
        let _guard = self.lock.lock();
        // SAFETY: the lock is held and `va` is a user address.
        match unsafe { self.leaf(va & !(PAGE_SIZE - 1), false) } {
            // SAFETY: an entry of this space's tables, under the lock.
            Ok(Some(entry)) => unsafe { !(*entry).is_unused() },
            _ => false,
        }
    }

    /// Walks `[addr, addr + len)` page by page, calling `f` with the direct
    /// map address and length of each piece. Needs the user bit on every
    /// page, and the write bit when `write`.
    fn for_each_piece(
        &self,
        addr: u64,
        len: usize,
        needed: F,
        mut f: impl FnMut(*mut u8, usize, usize),
    ) -> Result<(), UserFault> {
        let end = addr
            .checked_add(len as u64)
            .filter(|end| *end <= USER_TOP)
            .ok_or(UserFault { addr })?;
        let _guard = self.lock.lock();
        let mut va = addr;
        let mut done = 0;
        while va < end {
            let page = va & !(PAGE_SIZE - 1);
            // SAFETY: the lock is held and `page` is a user address (below
            // `end`, checked); a reserved page is filled on the way.
            let Some(entry) = (unsafe { self.present_leaf(page) }) else {
                return Err(UserFault { addr: va });
            };
            // SAFETY: an entry of this space's tables, under the lock.
            let flags = unsafe { (*entry).flags() };
            if !flags.contains(needed) {
                return Err(UserFault { addr: va });
            }
            // SAFETY: as above.
            let phys = unsafe { (*entry).addr().as_u64() } + (va - page);
            let piece = ((page + PAGE_SIZE).min(end) - va) as usize;
            f(phys_to_virt(phys) as *mut u8, done, piece);
            done += piece;
            va += piece as u64;
        }
        Ok(())
    }

    /// Pins `[addr, addr + len)` for a device and returns its physical
    /// segments (contiguous pages merged). Every page must be present user
    /// memory, and writable when `device_writes` (the device stores into it:
    /// a read from disk). Until the [`UserPin`] is dropped the pages cannot be
    /// unmapped or reprotected (`Busy`) and the space (so every frame) stays
    /// alive even if the process exits.
    ///
    /// # Errors
    /// [`UserFault`] at the first byte that is not such memory; nothing is
    /// pinned then.
    pub fn pin(
        self: &Arc<AddressSpace>,
        addr: u64,
        len: usize,
        device_writes: bool,
    ) -> Result<UserPin, UserFault> {
        let needed = if device_writes { WRITABLE } else { READABLE };
        let mut segments = PinSegments::new();
        let end = addr
            .checked_add(len as u64)
            .filter(|end| *end <= USER_TOP)
            .ok_or(UserFault { addr })?;
        let mut pins = self.lock.lock();
        let mut va = addr;
        while va < end {
            let page = va & !(PAGE_SIZE - 1);
            // SAFETY: the lock is held and `page` is a user address (below
            // `end`, checked); a reserved page is filled on the way.
            let Some(entry) = (unsafe { self.present_leaf(page) }) else {
                return Err(UserFault { addr: va });
            };
            // SAFETY: an entry of this space's tables, under the lock.
            let (flags, frame) = unsafe { ((*entry).flags(), (*entry).addr().as_u64()) };
            if !flags.contains(needed) {
                return Err(UserFault { addr: va });
            }
            let phys = frame + (va - page);
            let piece = ((page + PAGE_SIZE).min(end) - va) as u32;
            match segments.last_mut() {
                Some(last) if last.0 + last.1 as u64 == phys && last.1 < (1 << 30) => {
                    last.1 += piece
                }
                _ => segments.push((phys, piece)),
            }
            va += piece as u64;
        }
        let range = (addr & !(PAGE_SIZE - 1), end.next_multiple_of(PAGE_SIZE));
        pins.push(range);
        Ok(UserPin {
            space: self.clone(),
            range,
            segments,
        })
    }

    /// Copies `dst.len()` bytes from user address `src`.
    ///
    /// # Errors
    /// [`UserFault`] at the first byte that is not readable user memory
    /// (`dst` may then hold part of the data).
    pub fn copy_from_user(&self, dst: &mut [u8], src: u64) -> Result<(), UserFault> {
        let out = dst.as_mut_ptr();
        self.for_each_piece(src, dst.len(), READABLE, |from, done, n| {
            // SAFETY: `from..from+n` is a mapped user page's frame through
            // the direct map (checked by the walk); `out+done..+n` lies in
            // `dst`. The process may write the frame concurrently: the bytes
            // are then whatever they were, which the caller validates.
            unsafe { core::ptr::copy_nonoverlapping(from, out.add(done), n) }
        })
    }

    /// Copies `src` to user address `dst`.
    ///
    /// # Errors
    /// [`UserFault`] at the first byte that is not writable user memory
    /// (earlier pages may have been written).
    pub fn copy_to_user(&self, dst: u64, src: &[u8]) -> Result<(), UserFault> {
        let input = src.as_ptr();
        self.for_each_piece(dst, src.len(), WRITABLE, |to, done, n| {
            // SAFETY: `to..to+n` is a writable user page's frame through the
            // direct map (checked); `input+done..+n` lies in `src`.
            unsafe { core::ptr::copy_nonoverlapping(input.add(done), to, n) }
        })
    }

    /// Writes `src` at user address `dst` whatever the pages' write
    /// permission (loading a program: read-only segments, the initial stack).
    ///
    /// # Errors
    /// [`UserFault`] at the first byte without a page.
    pub fn write_initial(&self, dst: u64, src: &[u8]) -> Result<(), UserFault> {
        let input = src.as_ptr();
        self.for_each_piece(dst, src.len(), READABLE, |to, done, n| {
            // SAFETY: `to..to+n` is a mapped user page's frame through the
            // direct map (checked); `input+done..+n` lies in `src`.
            unsafe { core::ptr::copy_nonoverlapping(input.add(done), to, n) }
        })
    }

    /// Loads this space on this CPU (if it is not loaded already) and keeps
    /// a reference for as long as it stays loaded, so its tables cannot be
    /// freed under the CPU.
    pub fn activate(self: &Arc<AddressSpace>) {
        with_loaded(|loaded| {
            if loaded.as_ref().is_some_and(|l| Arc::ptr_eq(l, self)) {
                return;
            }
            // SAFETY: the PML4 maps the kernel half exactly as the kernel's
            // own table does, so the running code and its data stay mapped.
            unsafe {
                Cr3::write(
                    PhysFrame::containing_address(PhysAddr::new(self.pml4)),
                    Cr3Flags::empty(),
                )
            };
            *loaded = Some(self.clone());
        });
    }
}

/// A pin's physical segments: inline up to two (a page-sized buffer that is
/// not page-aligned has two), so pinning one request's buffer allocates no list.
type PinSegments = smallvec::SmallVec<[(u64, u32); 2]>;

/// A user range pinned for a device ([`AddressSpace::pin`]): its frames stay
/// mapped where they are, and allocated, until this is dropped.
///
/// Invariant: `range` is one entry of `space`'s pin list, removed by `drop`
/// and nowhere else; `segments` are the frames the range mapped when pinned,
/// which the entry keeps from being unmapped (so freed) in the meantime.
pub struct UserPin {
    space: Arc<AddressSpace>,
    range: (u64, u64),
    segments: PinSegments,
}

impl UserPin {
    /// The physical segments `(address, length)`, in user-address order.
    pub fn segments(&self) -> &[(u64, u32)] {
        &self.segments
    }
}

impl core::fmt::Debug for UserPin {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "UserPin({:#x}..{:#x})", self.range.0, self.range.1)
    }
}

impl Drop for UserPin {
    fn drop(&mut self) {
        let mut pins = self.space.lock.lock();
        if let Some(i) = pins.iter().position(|&r| r == self.range) {
            pins.swap_remove(i);
        }
    }
}

/// A borrowed page mapped without write permission (a program's shared
/// text, the clock page): other processes see the same frame, so it never
/// becomes writable here.
fn borrowed_read_only(flags: F) -> bool {
    flags.contains(BORROWED) && !flags.contains(F::WRITABLE)
}

/// Takes `[start, end)` out of the reserved ranges (splitting one that
/// covers it on both sides).
fn release(reserved: &mut Reserved, start: u64, end: u64) {
    if !reserved.iter().any(|&(s, e, _)| s < end && start < e) {
        return;
    }
    let mut kept = Reserved::new();
    for &(s, e, prot) in reserved.iter() {
        if e <= start || end <= s {
            kept.push((s, e, prot));
            continue;
        }
        if s < start {
            kept.push((s, start, prot));
        }
        if end < e {
            kept.push((end, e, prot));
        }
    }
    *reserved = kept;
}

/// The end of the page-aligned user range `[addr, addr + len)`.
fn user_range_end(addr: u64, len: u64) -> Result<u64, MemError> {
    let end = addr
        .checked_add(len)
        .filter(|&end| end <= USER_TOP && addr.is_multiple_of(PAGE_SIZE))
        .ok_or(MemError::BadAddress(addr))?;
    if !end.is_multiple_of(PAGE_SIZE) {
        return Err(MemError::BadAddress(end));
    }
    Ok(end)
}

/// Loads the kernel's own table on this CPU and drops the reference to the
/// space that was loaded (after a process exits on this CPU).
pub fn deactivate() {
    with_loaded(|loaded| {
        if loaded.take().is_some() {
            let kernel = super::paging::KERNEL_PML4.load(Ordering::Relaxed);
            // SAFETY: the kernel's PML4 maps the kernel half, as every space does.
            unsafe {
                Cr3::write(
                    PhysFrame::containing_address(PhysAddr::new(kernel)),
                    Cr3Flags::empty(),
                )
            };
        }
    });
}

/// Flushes this CPU's whole TLB (global entries too), keeping the loaded
/// table: the next accesses walk the page tables again.
///
/// Nothing needs this for correctness; the scheduler calls it now and then
/// so that a software TLB (QEMU's TCG) resizes itself, see
/// `kernel/src/sched.rs`.
pub fn flush_local_tlb() {
    x86_64::instructions::tlb::flush_all();
}

/// The space each CPU has loaded (None: the kernel's table).
static LOADED: CpuLocal<core::cell::RefCell<Option<Arc<AddressSpace>>>> = CpuLocal::new();

fn with_loaded<R>(f: impl FnOnce(&mut Option<Arc<AddressSpace>>) -> R) -> R {
    LOADED.with_or_init(
        || core::cell::RefCell::new(None),
        |cell| f(&mut cell.borrow_mut()),
    )
}

impl Drop for AddressSpace {
    fn drop(&mut self) {
        // No CPU has this space loaded: `LOADED` holds a reference while one does.
        free_level(self.pml4, 4, 0..256);
        let _ = super::free_frame(self.pml4);
        LIVE_SPACES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Frees the tables below `phys` (a table of `level`) in `slots`, and the
/// owned frames they map.
fn free_level(phys: u64, level: u8, slots: core::ops::Range<usize>) {
    // SAFETY: `phys` is a page table of a space being dropped (no CPU uses
    // it) reached through the direct map; its 512 entries are plain u64s.
    let raw = unsafe { &*(table(phys) as *const [u64; 512]) };
    let mut slot = slots.start;
    while slot < slots.end {
        // User tables are sparse: eight empty entries are passed over in one
        // test (entry by entry, a process's teardown scanned some 5000 of them
        // at about seven instructions each).
        if slot.is_multiple_of(8)
            && slot + 8 <= slots.end
            && raw[slot..slot + 8].iter().fold(0, |acc, e| acc | e) == 0
        {
            slot += 8;
            continue;
        }
        // SAFETY: as above.
        let entry = unsafe { &(&*table(phys))[slot] };
        slot += 1;
        if entry.is_unused() {
            continue;
        }
        let child = entry.addr().as_u64();
        if level == 1 {
            if !entry.flags().contains(BORROWED) {
                let _ = super::free_frame(child);
            }
        } else {
            free_level(child, level - 1, 0..512);
            let _ = super::free_frame(child);
        }
    }
}
