//! Size classes: 36 classes from 16 B to 16 KiB, and the geometry of a slab.
//!
//! Classes step by 16 B up to 128 B, then by a quarter of the power of two
//! below (160, 192, 224, 256, 320, ...), so rounding wastes under 16 B up to
//! 128 B and under 20 % of an object above. A class guarantees the alignment of its
//! lowest set bit, capped at 4 KiB: 48 B objects are 16-aligned, 4 KiB and
//! larger objects page-aligned. Requests above 16 KiB or aligned above 4 KiB
//! are "large" and go straight to the page source.
//!
//! Every slab is a [`SLAB_SIZE`] chunk aligned to its size; its header sits
//! at the start, and objects follow at the first offset aligned for the class.
//! The 16 KiB class therefore fits 3 objects per slab (75 % use); every other
//! class uses at least 87 % of its slab.

use core::alloc::Layout;

/// Number of size classes.
pub const NR_CLASSES: usize = 36;
/// The largest request served from a slab; larger ones are large allocations.
pub const MAX_CLASS_SIZE: usize = 16 * 1024;
/// The largest alignment a class guarantees.
pub const MAX_CLASS_ALIGN: usize = 4096;
/// Bytes per page of the page source.
pub const PAGE_SIZE: usize = 4096;
/// Bytes per slab; slabs are aligned to this, so an object's slab header is
/// found by masking its address.
pub const SLAB_SIZE: usize = 64 * 1024;
/// Pages per slab.
pub const SLAB_PAGES: usize = SLAB_SIZE / PAGE_SIZE;

/// Object size of `class`.
///
/// # Panics
/// If `class >= NR_CLASSES`.
#[inline]
pub const fn class_size(class: usize) -> usize {
    assert!(class < NR_CLASSES);
    if class < 8 {
        (class + 1) * 16
    } else {
        let base = 128 << ((class - 8) / 4);
        base + ((class - 8) % 4 + 1) * (base / 4)
    }
}

/// Alignment every object of `class` has: the lowest set bit of its size,
/// at most [`MAX_CLASS_ALIGN`].
#[inline]
pub const fn class_align(class: usize) -> usize {
    let size = class_size(class);
    let low = size & size.wrapping_neg();
    if low < MAX_CLASS_ALIGN {
        low
    } else {
        MAX_CLASS_ALIGN
    }
}

/// The smallest class whose objects hold `size` bytes (16-aligned), or
/// `None` above [`MAX_CLASS_SIZE`]. A zero size maps to the smallest class.
#[inline]
pub const fn class_of_size(size: usize) -> Option<usize> {
    if size <= 128 {
        return Some(if size == 0 { 0 } else { size.div_ceil(16) - 1 });
    }
    if size > MAX_CLASS_SIZE {
        return None;
    }
    // 2^k < size <= 2^(k+1), k >= 7; four classes per such interval.
    let k = (usize::BITS - 1 - (size - 1).leading_zeros()) as usize;
    let pow = 1 << k;
    Some(8 + (k - 7) * 4 + (size - pow).div_ceil(pow / 4) - 1)
}

/// [`class_of_size`] of every 16-byte granule: entry `g` is the class of a
/// request of `16 * g` bytes (so of any size in `16 * g - 15 ..= 16 * g`).
/// One load instead of the arithmetic on every heap call.
const CLASS_BY_GRANULE: [u8; MAX_CLASS_SIZE / 16 + 1] = {
    let mut table = [0; MAX_CLASS_SIZE / 16 + 1];
    let mut g = 0;
    while g < table.len() {
        let Some(class) = class_of_size(g * 16) else {
            panic!("every granule up to MAX_CLASS_SIZE has a class");
        };
        table[g] = class as u8;
        g += 1;
    }
    table
};

/// [`class_align`] of every class, for the same reason.
const CLASS_ALIGN: [u16; NR_CLASSES] = {
    let mut table = [0; NR_CLASSES];
    let mut class = 0;
    while class < NR_CLASSES {
        table[class] = class_align(class) as u16;
        class += 1;
    }
    table
};

/// The class serving `layout`, or `None` if it is a large allocation.
#[inline]
pub const fn class_of(layout: Layout) -> Option<usize> {
    let align = layout.align();
    let size = if align <= 16 || layout.size() > align {
        layout.size()
    } else {
        align
    };
    if size > MAX_CLASS_SIZE || align > MAX_CLASS_ALIGN {
        return None;
    }
    let mut class = CLASS_BY_GRANULE[size.div_ceil(16)] as usize;
    // Ends at the latest at the power-of-two class >= size, whose alignment
    // is min(that power, 4 KiB) >= align.
    while (CLASS_ALIGN[class] as usize) < align {
        class += 1;
    }
    Some(class)
}

/// `true` when `layout` has no class (`class_of` is `None`): the test a free
/// needs, without the class look-up (a slab object's class is in its header).
#[inline]
pub const fn is_large(layout: Layout) -> bool {
    layout.size() > MAX_CLASS_SIZE || layout.align() > MAX_CLASS_ALIGN
}

/// Offset of the first object of `class` in its slab: just past the header,
/// rounded up to the class alignment.
pub const fn first_offset(class: usize, header_bytes: usize) -> usize {
    header_bytes.next_multiple_of(class_align(class))
}

/// Objects of `class` per slab.
pub const fn objects_per_slab(class: usize, header_bytes: usize) -> usize {
    (SLAB_SIZE - first_offset(class, header_bytes)) / class_size(class)
}

/// Pages for a large allocation of `size` bytes.
#[inline]
pub const fn large_pages(size: usize) -> usize {
    if size == 0 {
        1
    } else {
        size.div_ceil(PAGE_SIZE)
    }
}

const _: () = assert!(class_size(NR_CLASSES - 1) == MAX_CLASS_SIZE);
