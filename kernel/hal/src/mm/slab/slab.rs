//! Slab headers, and the owner CPU's per-class list of slabs with free objects.
//!
//! A slab is a [`SLAB_SIZE`] chunk from the page source, aligned to its size,
//! so `object & !(SLAB_SIZE - 1)` is its header. The header names the owner
//! CPU and the class; those fields never change while the slab lives, and any
//! CPU holding one of the slab's objects may read them. All other fields are
//! the owner's alone. Objects are handed out first from the slab's free list
//! (link in the object's first word), then by bumping an index into the
//! never-used tail, so a fresh slab is not written through.
//!
//! Headers are only ever accessed through raw-pointer field places, never a
//! `&`/`&mut SlabHeader`, because other CPUs read the immutable fields while
//! the owner writes the others.

use core::ptr::{self, NonNull};

use super::class::{SLAB_SIZE, class_size, first_offset, objects_per_slab};

const SLAB_MAGIC: u32 = 0x51ab_da5e;

#[repr(C)]
pub(super) struct SlabHeader {
    // Immutable while the slab lives; any CPU holding an object reads them.
    magic: u32,
    owner: u32,
    class: u32,
    nr_objects: u32,
    object_size: u32,
    first_offset: u32,
    // Owner CPU only.
    nr_free: u32,
    /// Objects `[bump, nr_objects)` have never been handed out.
    bump: u32,
    free_list: *mut u8,
    prev: *mut SlabHeader,
    next: *mut SlabHeader,
}

/// Bytes at the start of every slab taken by the header.
pub(super) const HEADER_BYTES: usize = size_of::<SlabHeader>();

/// The header of the slab that holds `obj` (not dereferenced here).
#[inline]
pub(super) fn header_of(obj: NonNull<u8>) -> *mut SlabHeader {
    obj.as_ptr().map_addr(|a| a & !(SLAB_SIZE - 1)).cast()
}

/// Owner CPU and class of the slab at `hdr`.
///
/// # Safety
/// `hdr` is [`header_of`] an object that is allocated and held by the caller
/// (so the slab is live and its header initialised).
#[inline]
pub(super) unsafe fn owner_and_class(hdr: *mut SlabHeader) -> (usize, usize) {
    // SAFETY: the slab is live while the caller holds one of its objects
    // (caller contract), and these fields were written before that object
    // was first handed out and are never written again while it lives.
    let (magic, owner, class) = unsafe { ((*hdr).magic, (*hdr).owner, (*hdr).class) };
    debug_assert_eq!(magic, SLAB_MAGIC, "freed pointer is not in a slab");
    (owner as usize, class as usize)
}

/// One CPU's slabs of one class that have at least one free object.
///
/// Invariants, relied on by every unsafe block below:
/// 1. Every slab on `partial` is a live slab from the page source, owned by
///    this cache (its header names this CPU and this class), with
///    `nr_free >= 1`, and every slab this cache owns with `nr_free >= 1` is
///    on the list; `prev`/`next` are consistent and `partial.prev` is null.
/// 2. Only this cache touches the owner-only header fields of its slabs; the
///    cache itself is reached only by its CPU (the allocator's CPU contract).
/// 3. `nr_empty` counts the slabs on `partial` whose objects are all free.
///
/// The `cpu_empty` argument of the methods is the CPU's count of entirely
/// free slabs over all its caches; it only steers when slabs are given back
/// (at most [`MAX_EMPTY_SLABS`] are kept) and no safety argument uses it.
pub(super) struct ClassCache {
    partial: *mut SlabHeader,
    nr_empty: u32,
}

/// Entirely free slabs one CPU keeps, over all classes, instead of giving
/// them back to the page source (1 MiB). Keeping some avoids a page-source
/// round trip each time a class crosses a slab boundary back and forth; they
/// are given back by `trim`, or when the page source runs dry.
pub const MAX_EMPTY_SLABS: u32 = 16;

impl ClassCache {
    pub(super) const fn new() -> Self {
        Self {
            partial: ptr::null_mut(),
            nr_empty: 0,
        }
    }

    /// One object from the first slab with free objects, or `None` if there
    /// is none.
    #[inline]
    pub(super) fn pop(&mut self, cpu_empty: &mut u32) -> Option<NonNull<u8>> {
        let hdr = self.partial;
        if hdr.is_null() {
            return None;
        }
        // SAFETY:
        // 1. `hdr` is on `partial`, so it is a live slab of this cache with
        //    `nr_free >= 1` (invariant 1), and we may write its owner-only
        //    fields (invariant 2, `&mut self`).
        // 2. A non-null `free_list` points at a free object of this slab whose
        //    first word holds the next link (written by `free`).
        // 3. Otherwise `nr_free >= 1` means `bump < nr_objects`, and object
        //    `bump` lies inside the slab: `first_offset + nr_objects * size`
        //    <= SLAB_SIZE by construction in `add_slab`.
        unsafe {
            if (*hdr).nr_free == (*hdr).nr_objects {
                self.nr_empty -= 1;
                *cpu_empty -= 1;
            }
            let obj = if !(*hdr).free_list.is_null() {
                let obj = (*hdr).free_list;
                (*hdr).free_list = obj.cast::<*mut u8>().read();
                obj
            } else {
                let index = (*hdr).bump as usize;
                debug_assert!(index < (*hdr).nr_objects as usize);
                (*hdr).bump += 1;
                let offset = (*hdr).first_offset as usize + index * (*hdr).object_size as usize;
                hdr.cast::<u8>().add(offset)
            };
            (*hdr).nr_free -= 1;
            if (*hdr).nr_free == 0 {
                self.unlink(hdr);
            }
            Some(NonNull::new_unchecked(obj))
        }
    }

    /// Makes the fresh slab at `base` one of this cache's, all objects free.
    ///
    /// # Safety
    /// `base` is aligned to [`SLAB_SIZE`], valid for reads and writes of
    /// `SLAB_SIZE` bytes, and nothing else uses that memory until this cache
    /// hands it back from [`Self::free`] or [`Self::take_empty`]. `owner` is
    /// this cache's CPU and `class` its class.
    pub(super) unsafe fn add_slab(
        &mut self,
        base: NonNull<u8>,
        owner: usize,
        class: usize,
        cpu_empty: &mut u32,
    ) {
        debug_assert_eq!(
            base.as_ptr().addr() % SLAB_SIZE,
            0,
            "page source broke alignment"
        );
        let hdr = base.as_ptr().cast::<SlabHeader>();
        let nr_objects = objects_per_slab(class, HEADER_BYTES);
        // SAFETY: `base` is valid, aligned (SLAB_SIZE >= align of the header)
        // and exclusively ours (caller contract).
        unsafe {
            hdr.write(SlabHeader {
                magic: SLAB_MAGIC,
                owner: owner as u32,
                class: class as u32,
                nr_objects: nr_objects as u32,
                object_size: class_size(class) as u32,
                first_offset: first_offset(class, HEADER_BYTES) as u32,
                nr_free: nr_objects as u32,
                bump: 0,
                free_list: ptr::null_mut(),
                prev: ptr::null_mut(),
                next: ptr::null_mut(),
            });
            self.link_front(hdr);
        }
        self.nr_empty += 1;
        *cpu_empty += 1;
    }

    /// Returns `obj` to its slab. If that leaves the slab entirely free and
    /// the CPU already keeps [`MAX_EMPTY_SLABS`] empty slabs, the slab leaves
    /// the cache and its base is returned for the caller to give back to the
    /// page source.
    ///
    /// # Safety
    /// `obj` was handed out by [`Self::pop`] of this cache, is not free, and
    /// the caller gives it up.
    #[inline]
    pub(super) unsafe fn free(
        &mut self,
        obj: NonNull<u8>,
        cpu_empty: &mut u32,
    ) -> Option<NonNull<u8>> {
        let hdr = header_of(obj);
        // SAFETY:
        // 1. `obj` came from `pop` of this cache and is still allocated, so
        //    its slab is live and owned by this cache (invariant 1 held when
        //    it was popped, and a slab with an allocated object is never
        //    handed back), and we may write the owner-only fields
        //    (invariant 2).
        // 2. `obj` is at least 16 B, 16-aligned and given up by the caller,
        //    so its first word may hold the free-list link.
        unsafe {
            obj.cast::<*mut u8>().write((*hdr).free_list);
            (*hdr).free_list = obj.as_ptr();
            (*hdr).nr_free += 1;
            if (*hdr).nr_free == 1 {
                self.link_front(hdr);
            }
            if (*hdr).nr_free == (*hdr).nr_objects {
                if *cpu_empty >= MAX_EMPTY_SLABS {
                    self.unlink(hdr);
                    (*hdr).magic = 0;
                    return Some(NonNull::new_unchecked(hdr.cast()));
                }
                self.nr_empty += 1;
                *cpu_empty += 1;
            }
        }
        None
    }

    /// Takes one entirely free slab out of the cache and returns its base,
    /// for the caller to give back to the page source.
    pub(super) fn take_empty(&mut self, cpu_empty: &mut u32) -> Option<NonNull<u8>> {
        if self.nr_empty == 0 {
            return None;
        }
        let mut hdr = self.partial;
        // SAFETY: every slab on `partial` is live and ours (invariants 1, 2);
        // `nr_empty > 0` means one of them is entirely free (invariant 3).
        unsafe {
            while !hdr.is_null() {
                if (*hdr).nr_free == (*hdr).nr_objects {
                    self.unlink(hdr);
                    self.nr_empty -= 1;
                    *cpu_empty -= 1;
                    (*hdr).magic = 0;
                    return NonNull::new(hdr.cast());
                }
                hdr = (*hdr).next;
            }
        }
        debug_assert!(false, "nr_empty > 0 but no empty slab on the list");
        None
    }

    /// # Safety
    /// `hdr` is a live slab of this cache, not on `partial`.
    #[inline]
    unsafe fn link_front(&mut self, hdr: *mut SlabHeader) {
        // SAFETY: `hdr` and the current head (invariant 1) are live slabs of
        // this cache, whose link fields only we touch (invariant 2).
        unsafe {
            (*hdr).prev = ptr::null_mut();
            (*hdr).next = self.partial;
            if !self.partial.is_null() {
                (*self.partial).prev = hdr;
            }
        }
        self.partial = hdr;
    }

    /// # Safety
    /// `hdr` is on `partial`.
    #[inline]
    unsafe fn unlink(&mut self, hdr: *mut SlabHeader) {
        // SAFETY: `hdr` and its neighbours are live slabs on `partial`
        // (caller contract, invariant 1), whose links only we touch.
        unsafe {
            let (prev, next) = ((*hdr).prev, (*hdr).next);
            if prev.is_null() {
                self.partial = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*hdr).prev = ptr::null_mut();
            (*hdr).next = ptr::null_mut();
        }
    }
}
