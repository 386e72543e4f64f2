//! Memory tests: boot information, frames, heap, page mapping.

use alloc::boxed::Box;
use alloc::vec::Vec;

use hal::mm::{self, Prot};

/// A tiny deterministic generator (xorshift64*), so runs are repeatable.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn boot_info_is_sane() {
    let info = hal::boot::info().expect("boot info is set after hal init");
    let usable = info.usable();
    assert!(!usable.is_empty(), "no usable memory");
    for pair in usable.windows(2) {
        assert!(
            pair[0].end < pair[1].start,
            "usable ranges overlap or touch: {pair:?}"
        );
    }
    for r in usable {
        assert!(
            r.start % 4096 == 0 && r.end % 4096 == 0,
            "unaligned usable range {r:?}"
        );
        assert!(
            r.end <= info.kernel.start || r.start >= info.kernel.end,
            "kernel image is usable: {r:?}"
        );
        assert!(r.start >= 0x10_0000, "low memory is usable: {r:?}");
        if let Some(initrd) = info.initrd {
            assert!(
                r.end <= initrd.start || r.start >= initrd.end,
                "initrd is usable: {r:?}"
            );
        }
    }
    assert!(info.rsdp.is_some(), "the loader gives an RSDP under QEMU");
    assert!(mm::frame_stats().free > 1000, "fewer than 1000 free frames");
}

pub fn kernel_stacks_have_unmapped_guard_pages() {
    let guard = hal::arch::boot_stack_guard_page();
    let (bottom, _) = hal::arch::boot_stack();
    assert_eq!(
        mm::translate(guard),
        None,
        "boot stack guard page is mapped"
    );
    assert!(mm::translate(bottom).is_some(), "boot stack is not mapped");
    let stack = mm::alloc_stack(2).expect("a stack");
    assert_eq!(
        mm::translate(stack.bottom - 4096),
        None,
        "stack guard page is mapped"
    );
    assert!(mm::translate(stack.bottom).is_some() && mm::translate(stack.top - 8).is_some());
}

pub fn frames_alloc_and_free_restore_counters() {
    // The list is allocated first: a heap that grows a slab for it would take frames
    // between the two counter reads.
    let mut frames: Vec<u64> = Vec::with_capacity(512);
    let before = mm::frame_stats();
    frames.extend((0..512).map(|_| mm::alloc_frame().expect("a free frame")));
    assert_eq!(mm::frame_stats().free, before.free - 512);
    let mut sorted = frames.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 512, "a frame was handed out twice");
    for f in &frames {
        mm::free_frame(*f).expect("freeing an allocated frame");
    }
    assert_eq!(
        mm::free_frame(frames[0]),
        Err(mm::frame::FrameError::DoubleFree(frames[0]))
    );
    assert_eq!(mm::frame_stats(), before);
}

pub fn heap_stress_many_sizes_random_free() {
    let used_before = mm::heap_stats().used;
    let mut rng = Rng::new(0x5eed);
    let mut blocks: Vec<(Box<[u8]>, u8)> = Vec::new();
    for round in 0..4 {
        for _ in 0..1500 {
            let size = match rng.below(10) {
                0 => 1 + rng.below(64 * 1024),
                1..=3 => 1 + rng.below(4096),
                _ => 1 + rng.below(128),
            } as usize;
            let tag = rng.next() as u8;
            blocks.push((alloc::vec![tag; size].into_boxed_slice(), tag));
        }
        // Free about half, in random order.
        for _ in 0..blocks.len() / 2 {
            let i = rng.below(blocks.len() as u64) as usize;
            let (block, tag) = blocks.swap_remove(i);
            assert!(
                block.iter().all(|b| *b == tag),
                "heap block corrupted in round {round}"
            );
        }
    }
    while let Some((block, tag)) = blocks.pop() {
        assert!(block.iter().all(|b| *b == tag), "heap block corrupted");
    }
    drop(blocks);
    assert_eq!(
        mm::heap_stats().used,
        used_before,
        "heap use grew after freeing everything"
    );
}

pub fn heap_grows_for_a_large_allocation() {
    let before = mm::heap_stats();
    // More than the heap has free right now, so it must map new pages.
    let words = (before.size - before.used + (1 << 20)) / 8;
    let big: Vec<u64> = (0..words as u64).collect();
    let after = mm::heap_stats();
    assert!(
        after.size >= before.size + words * 8 - (before.size - before.used),
        "heap did not grow: {before:?} -> {after:?}"
    );
    assert_eq!(big.iter().sum::<u64>(), (0..words as u64).sum());
    drop(big);
    assert_eq!(mm::heap_stats().used, before.used);
}

pub fn out_of_memory_names_the_size() {
    let v: Vec<u8> = Vec::with_capacity(1 << 40);
    core::hint::black_box(&v);
}

pub fn paging_map_write_unmap() {
    let frames_before = mm::frame_stats().free;
    let frame = mm::alloc_frame().expect("a free frame");
    let va = mm::alloc_virt(1).expect("vmap space");
    crate::fault::map_owned(va, frame, Prot::ReadWrite);
    assert_eq!(mm::translate(va), Some(frame));
    crate::fault::write_u64(va + 8, 0xdead_beef_cafe_f00d);
    assert_eq!(
        crate::fault::read_u64(mm::phys_to_virt(frame) + 8),
        0xdead_beef_cafe_f00d,
        "direct map alias"
    );
    crate::fault::unmap_owned(va);
    assert_eq!(mm::translate(va), None);
    mm::free_frame(frame).expect("frame comes back");
    assert!(
        mm::frame_stats().free >= frames_before - 3,
        "page-table frames aside, nothing leaked"
    );
}

pub fn acpi_lists_the_boot_cpu_and_an_ioapic() {
    let acpi = hal::boot::acpi().expect("QEMU provides ACPI tables");
    let bsp_apic_id = core::arch::x86_64::__cpuid(1).ebx >> 24;
    assert!(
        acpi.cpus.iter().any(|c| c.apic_id == bsp_apic_id),
        "boot CPU (APIC id {bsp_apic_id}) missing from {:?}",
        acpi.cpus
    );
    assert!(!acpi.ioapics.is_empty(), "no IOAPIC");
    assert!(acpi.local_apic_address != 0, "no local APIC address");
}

/// The kernel's `memcpy` (hal's unrolled copy): every length to 300 bytes and
/// a few long ones, at every pair of source and destination offsets within 8,
/// copies exactly the bytes asked and touches nothing around them.
pub fn memcpy_copies_exactly_the_bytes_asked() {
    const GUARD: u8 = 0xee;
    let src: alloc::vec::Vec<u8> = (0..5000u32).map(|i| (i * 7 + 1) as u8).collect();
    let mut dst = alloc::vec![GUARD; 5000];
    let lengths = (0..=300usize).chain([511, 512, 513, 4095, 4096, 4097, 4096 + 13]);
    for len in lengths {
        for s in 0..8 {
            for d in 0..8 {
                // A length the compiler cannot see, so the copy is a call to memcpy.
                let n = core::hint::black_box(len);
                dst[d..d + n].copy_from_slice(&src[s..s + n]);
                assert!(
                    dst[..d].iter().all(|&b| b == GUARD),
                    "memcpy of {len} bytes wrote before its destination (offsets {s}, {d})"
                );
                assert!(
                    dst[d..d + len] == src[s..s + len],
                    "memcpy of {len} bytes copied wrong bytes (offsets {s}, {d})"
                );
                assert!(
                    dst[d + len..d + len + 16].iter().all(|&b| b == GUARD),
                    "memcpy of {len} bytes wrote past its destination (offsets {s}, {d})"
                );
                dst[d..d + len].fill(GUARD);
            }
        }
    }
}

/// `memcmp` and `bcmp` (hal's own, 8 bytes per compare) against a byte-by-byte
/// reference: every length to 80 at every offset pair in 0..8, with the first difference
/// at every position (both directions, including bytes above 0x7f), and equal ranges.
pub fn memcmp_orders_like_a_byte_compare() {
    fn reference(a: &[u8], b: &[u8]) -> i32 {
        for (x, y) in a.iter().zip(b) {
            if x != y {
                return i32::from(*x) - i32::from(*y);
            }
        }
        0
    }
    let base: alloc::vec::Vec<u8> = (0..200u32).map(|i| (i * 37 + 11) as u8).collect();
    let mut other = base.clone();
    let mut checked = 0;
    for len in 0..=80usize {
        for s in 0..8 {
            for d in 0..8 {
                other[d..d + len].copy_from_slice(&base[s..s + len]);
                let a = &base[s..s + len];
                // Equal.
                assert_eq!(
                    core::hint::black_box(a).cmp(&other[d..d + len]),
                    core::cmp::Ordering::Equal
                );
                assert!(a == &other[d..d + len]);
                for at in 0..len {
                    for delta in [1u8, 0x80, 0xff] {
                        let keep = other[d + at];
                        other[d + at] = keep.wrapping_add(delta);
                        let b = &other[d..d + len];
                        let want = reference(a, b).signum();
                        let got = core::hint::black_box(a).cmp(b) as i32;
                        assert_eq!(
                            got, want,
                            "len {len}, offsets {s}/{d}, differs at {at} by {delta:#x}"
                        );
                        assert!(a != b, "bcmp: len {len}, differs at {at}");
                        other[d + at] = keep;
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 100_000, "only {checked} cases");
}
