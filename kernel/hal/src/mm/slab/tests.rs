//! Host tests of the slab allocator: size classes, one-CPU paths, large
//! allocations, out of memory, cross-CPU frees, statistics, and a
//! multi-thread stress test with objects freed on other threads.

use std::alloc::{self as std_alloc, Layout};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::sync::mpsc;
use std::sync::{Barrier, Mutex};

use super::class::{first_offset, objects_per_slab};
use super::slab::HEADER_BYTES;
use super::*;

/// A page source over std's allocator, with a page limit, that checks every
/// free against what it handed out and frees leftovers on drop.
struct TestPages {
    limit_pages: usize,
    state: Mutex<TestPagesState>,
}

#[derive(Default)]
struct TestPagesState {
    live: HashMap<usize, Layout>,
    pages: usize,
}

impl TestPages {
    fn new(limit_pages: usize) -> Self {
        Self {
            limit_pages,
            state: Mutex::default(),
        }
    }

    fn pages_out(&self) -> usize {
        self.state.lock().unwrap().pages
    }
}

// SAFETY:
// 1. Runs come from `std::alloc::alloc` with the requested size and
//    alignment, and are tracked until freed.
// 2. A mutex guards the bookkeeping; std's allocator is thread-safe and is
//    not the slab allocator under test.
unsafe impl PageSource for TestPages {
    fn alloc_pages(&self, nr_pages: usize, align_bytes: usize) -> Result<NonNull<u8>, OutOfPages> {
        assert!(align_bytes.is_power_of_two() && align_bytes >= PAGE_SIZE);
        let mut state = self.state.lock().unwrap();
        if state.pages + nr_pages > self.limit_pages {
            return Err(OutOfPages);
        }
        let layout = Layout::from_size_align(nr_pages * PAGE_SIZE, align_bytes).unwrap();
        // SAFETY: `layout` has a non-zero size.
        let ptr = NonNull::new(unsafe { std_alloc::alloc(layout) }).ok_or(OutOfPages)?;
        state.live.insert(ptr.as_ptr().addr(), layout);
        state.pages += nr_pages;
        Ok(ptr)
    }

    unsafe fn free_pages(&self, addr: NonNull<u8>, nr_pages: usize) {
        let mut state = self.state.lock().unwrap();
        let layout = state
            .live
            .remove(&addr.as_ptr().addr())
            .expect("free of a run never handed out");
        assert_eq!(
            layout.size(),
            nr_pages * PAGE_SIZE,
            "free with another page count"
        );
        state.pages -= nr_pages;
        // SAFETY: `addr` came from `std_alloc::alloc(layout)` (looked up above).
        unsafe { std_alloc::dealloc(addr.as_ptr(), layout) };
    }
}

impl Drop for TestPages {
    fn drop(&mut self) {
        for (addr, layout) in self.state.get_mut().unwrap().live.drain() {
            // SAFETY: every live run came from `std_alloc::alloc(layout)`; the
            // allocator using them is gone (it is dropped before its source).
            unsafe { std_alloc::dealloc(std::ptr::without_provenance_mut::<u8>(addr), layout) };
        }
    }
}

type TestAllocator = SlabAllocator<TestPages, 4>;

fn allocator(limit_pages: usize) -> Box<TestAllocator> {
    Box::new(SlabAllocator::new(TestPages::new(limit_pages)))
}

fn layout(size: usize, align: usize) -> Layout {
    Layout::from_size_align(size, align).unwrap()
}

// The tests below call the allocator from one thread per CPU index (or one
// thread for all), so the CPU contract holds for every call; each SAFETY
// comment names the pointer conditions only.

fn alloc(a: &TestAllocator, cpu: usize, l: Layout) -> Result<NonNull<u8>, AllocError> {
    // SAFETY: one thread per CPU index in every test (see above).
    unsafe { a.alloc(cpu, l) }
}

fn free(a: &TestAllocator, cpu: usize, ptr: NonNull<u8>, l: Layout) {
    // SAFETY: one thread per CPU index; callers pass a live pointer from
    // `alloc` with its layout and drop it afterwards.
    unsafe { a.free(cpu, ptr, l) }
}

fn fill(ptr: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: callers pass a live allocation of at least `len` bytes.
    unsafe { ptr.as_ptr().write_bytes(byte, len) };
}

fn check(ptr: NonNull<u8>, len: usize, byte: u8) {
    // SAFETY: callers pass a live allocation of at least `len` bytes, filled.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) };
    assert!(bytes.iter().all(|&b| b == byte), "object contents changed");
}

#[test]
fn size_classes_are_increasing_and_tight() {
    let mut prev = 0;
    for class in 0..NR_CLASSES {
        let size = class_size(class);
        assert!(size > prev);
        assert_eq!(size % 16, 0);
        // Rounding a request of prev + 1 bytes up wastes under 16 B up to
        // 128 B, and under 20 % of the object above.
        let waste = size - (prev + 1);
        assert!(
            waste < 16 || (size > 128 && waste * 5 < size),
            "class {class} ({size} B) too coarse"
        );
        prev = size;
    }
    assert_eq!(class_size(NR_CLASSES - 1), MAX_CLASS_SIZE);
}

#[test]
fn every_size_maps_to_the_smallest_fitting_class() {
    for size in 1..=MAX_CLASS_SIZE {
        let class = class::class_of_size(size).unwrap();
        assert!(class_size(class) >= size, "size {size}");
        assert!(
            class == 0 || class_size(class - 1) < size,
            "size {size} not the smallest"
        );
        assert_eq!(class_of(layout(size, 8)), Some(class));
    }
    assert_eq!(class_of(layout(0, 1)), Some(0));
    assert_eq!(class_of(layout(MAX_CLASS_SIZE + 1, 8)), None);
}

#[test]
fn is_large_is_exactly_the_layouts_without_a_class() {
    for align in [1, 8, 16, 32, 64, 4096, 8192, 1 << 16] {
        for size in (0..=MAX_CLASS_SIZE + 64)
            .step_by(16)
            .chain([MAX_CLASS_SIZE + 1])
        {
            let l = layout(size, align);
            assert_eq!(class::is_large(l), class_of(l).is_none(), "{l:?}");
        }
    }
}

#[test]
fn aligned_layouts_get_a_class_with_that_alignment() {
    assert_eq!(class_size(class_of(layout(48, 16)).unwrap()), 48);
    assert_eq!(class_size(class_of(layout(48, 32)).unwrap()), 64);
    assert_eq!(class_size(class_of(layout(8, 64)).unwrap()), 64);
    assert_eq!(class_size(class_of(layout(100, 4096)).unwrap()), 4096);
    assert_eq!(class_size(class_of(layout(5000, 4096)).unwrap()), 8192);
    assert_eq!(class_of(layout(8, 8192)), None);
    for align in [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096] {
        for size in (0..=MAX_CLASS_SIZE).step_by(37) {
            if let Some(class) = class_of(layout(size, align)) {
                assert!(class_size(class) >= size);
                assert!(class::class_align(class) >= align);
            }
        }
    }
}

#[test]
fn slab_geometry_fits_and_uses_most_of_the_slab() {
    for class in 0..NR_CLASSES {
        let size = class_size(class);
        let first = first_offset(class, HEADER_BYTES);
        let n = objects_per_slab(class, HEADER_BYTES);
        assert!(first >= HEADER_BYTES);
        assert_eq!(first % class::class_align(class), 0);
        assert!(first + n * size <= SLAB_SIZE);
        assert!(n >= 3);
        let used = n * size * 100 / SLAB_SIZE;
        assert!(
            used >= 87 || size == MAX_CLASS_SIZE,
            "class {size}: {used} %"
        );
    }
}

#[test]
fn objects_are_aligned_distinct_and_keep_their_contents() {
    let a = allocator(1 << 20);
    let mut live = Vec::new();
    for (i, size) in (1..=MAX_CLASS_SIZE).step_by(97).enumerate() {
        for align in [1, 8, 64, 4096] {
            let l = layout(size, align);
            let ptr = alloc(&a, 0, l).unwrap();
            assert_eq!(ptr.as_ptr().addr() % align, 0);
            let byte = (i * 4 + align.trailing_zeros() as usize) as u8;
            fill(ptr, size, byte);
            live.push((ptr, l, byte));
        }
    }
    for &(ptr, l, byte) in &live {
        check(ptr, l.size(), byte);
    }
    let before_free = a.cpu_stats(0);
    assert_eq!(before_free.objects_in_use(), live.len() as u64);
    for (ptr, l, _) in live {
        free(&a, 0, ptr, l);
    }
    let stats = a.cpu_stats(0);
    assert_eq!(stats.objects_in_use(), 0);
    assert_eq!(stats.bytes_in_use(), 0);
}

#[test]
fn a_freed_object_is_reused_first() {
    let a = allocator(1 << 10);
    let l = layout(64, 8);
    let first = alloc(&a, 0, l).unwrap();
    let second = alloc(&a, 0, l).unwrap();
    assert_ne!(first, second);
    free(&a, 0, first, l);
    assert_eq!(alloc(&a, 0, l).unwrap(), first);
    free(&a, 0, first, l);
    free(&a, 0, second, l);
}

#[test]
fn full_slabs_add_a_slab_and_empty_ones_go_back_beyond_the_budget() {
    let a = allocator(1 << 10);
    let l = layout(1024, 8);
    let class = class_of(l).unwrap();
    let per_slab = objects_per_slab(class, HEADER_BYTES);
    let kept = MAX_EMPTY_SLABS as usize;
    let n = (kept + 2) * per_slab + 1;
    let objects: Vec<_> = (0..n).map(|_| alloc(&a, 0, l).unwrap()).collect();
    assert_eq!(a.cpu_stats(0).classes[class].slabs as usize, kept + 3);
    assert_eq!(a.source().pages_out(), (kept + 3) * SLAB_PAGES);
    for ptr in objects {
        free(&a, 0, ptr, l);
    }
    // The CPU keeps MAX_EMPTY_SLABS empty slabs; the other three went back.
    assert_eq!(a.cpu_stats(0).classes[class].slabs as usize, kept);
    assert_eq!(a.source().pages_out(), kept * SLAB_PAGES);
    // Kept slabs are reused before the page source is asked again.
    let again: Vec<_> = (0..kept * per_slab)
        .map(|_| alloc(&a, 0, l).unwrap())
        .collect();
    assert_eq!(a.source().pages_out(), kept * SLAB_PAGES);
    for ptr in again {
        free(&a, 0, ptr, l);
    }
    // SAFETY: one thread, so the CPU contract holds.
    assert_eq!(unsafe { a.trim(0) }, kept * SLAB_PAGES);
    assert_eq!(a.cpu_stats(0).classes[class].slabs, 0);
    assert_eq!(a.source().pages_out(), 0);
}

#[test]
fn large_allocations_come_from_the_page_source_and_go_back() {
    let a = allocator(1 << 10);
    let l = layout(100 * 1024 + 1, 8192);
    let ptr = alloc(&a, 1, l).unwrap();
    assert_eq!(ptr.as_ptr().addr() % 8192, 0);
    fill(ptr, l.size(), 0xa5);
    check(ptr, l.size(), 0xa5);
    let pages = (100 * 1024 + 1usize).div_ceil(PAGE_SIZE) as u64;
    assert_eq!(a.source().pages_out() as u64, pages);
    let stats = a.stats();
    assert_eq!((stats.large.allocs, stats.large.pages_in_use()), (1, pages));
    assert_eq!(stats.pages_held(), pages);
    // Freed by another CPU: large allocations have no owner.
    free(&a, 2, ptr, l);
    let stats = a.stats();
    assert_eq!((stats.large.in_use(), stats.large.pages_in_use()), (0, 0));
    assert_eq!(a.source().pages_out(), 0);
}

#[test]
fn a_dry_page_source_gives_an_error_naming_the_request() {
    let a = allocator(SLAB_PAGES + 2);
    let l = layout(4096, 4096);
    let class = class_of(l).unwrap();
    let per_slab = objects_per_slab(class, HEADER_BYTES);
    let objects: Vec<_> = (0..per_slab).map(|_| alloc(&a, 0, l).unwrap()).collect();
    let err = alloc(&a, 0, l).unwrap_err();
    assert_eq!(
        err,
        AllocError {
            size: 4096,
            align: 4096
        }
    );
    assert!(format!("{err}").contains("4096 bytes"));
    // A large request beyond the two pages left fails the same way.
    let big = layout(3 * PAGE_SIZE, 8192);
    assert_eq!(class_of(big), None);
    assert_eq!(
        alloc(&a, 0, big),
        Err(AllocError {
            size: 3 * PAGE_SIZE,
            align: 8192
        })
    );
    // Another class needs a slab too, and there is none.
    assert_eq!(
        alloc(&a, 1, layout(16, 8)),
        Err(AllocError { size: 16, align: 8 })
    );
    assert_eq!(a.stats().out_of_memory, 3);
    // After a free the class works again, and the pages left still serve a
    // large request.
    free(&a, 0, objects[0], l);
    let again = alloc(&a, 0, l).unwrap();
    let two_pages = layout(2 * PAGE_SIZE, 8192);
    let two = alloc(&a, 0, two_pages).unwrap();
    free(&a, 0, two, two_pages);
    free(&a, 0, again, l);
    for ptr in &objects[1..] {
        free(&a, 0, *ptr, l);
    }
    assert_eq!(a.stats().objects_in_use(), 0);
}

#[test]
fn a_dry_page_source_first_takes_back_this_cpus_empty_slabs() {
    let a = allocator(2 * SLAB_PAGES);
    let (la, lb, lc) = (layout(16, 8), layout(512, 8), layout(4000, 8));
    let x = alloc(&a, 0, la).unwrap();
    free(&a, 0, x, la);
    let y = alloc(&a, 0, lb).unwrap();
    assert_eq!(a.source().pages_out(), 2 * SLAB_PAGES);
    assert_eq!(a.stats().slabs(), 2);
    // Class C needs a slab and the source is dry: CPU 0 gives back the empty
    // slab of class A and asks again.
    let z = alloc(&a, 0, lc).unwrap();
    let s = a.cpu_stats(0);
    assert_eq!(s.classes[class_of(la).unwrap()].slabs, 0);
    assert_eq!(s.out_of_memory, 0);
    // Nothing is left to give back, so the next new slab fails.
    assert_eq!(alloc(&a, 0, la), Err(AllocError { size: 16, align: 8 }));
    // Another CPU's empty slab is not this CPU's to give back.
    free(&a, 0, y, lb);
    assert_eq!(alloc(&a, 1, la), Err(AllocError { size: 16, align: 8 }));
    // CPU 0 gives it back for a large allocation, though.
    let big_layout = layout(SLAB_SIZE, 8192);
    let big = alloc(&a, 0, big_layout).unwrap();
    assert_eq!(a.stats().out_of_memory, 2);
    free(&a, 1, big, big_layout);
    free(&a, 1, z, lc);
    // SAFETY: one thread, so the CPU contract holds.
    unsafe { a.trim(0) };
    assert_eq!(a.source().pages_out(), 0);
}

#[test]
fn a_remote_free_lands_on_the_owner_list_and_is_reused_by_the_owner() {
    let a = allocator(1 << 10);
    let l = layout(200, 8);
    let class = class_of(l).unwrap();
    let ptr = alloc(&a, 0, l).unwrap();
    let keep = alloc(&a, 0, l).unwrap();
    free(&a, 1, ptr, l);
    let (s0, s1) = (a.cpu_stats(0), a.cpu_stats(1));
    assert_eq!(s1.classes[class].remote_frees_sent, 1);
    assert_eq!(s1.classes[class].allocs, 0);
    assert_eq!(s0.classes[class].remote_frees, 0, "not drained yet");
    assert_eq!(s0.classes[class].in_use(), 2);
    assert_eq!(a.stats().pending_remote_frees(), 1);
    // The owner uses up the free objects of its slab; the allocation after
    // that takes the object back from the list instead of growing.
    let per_slab = objects_per_slab(class, HEADER_BYTES);
    let rest: Vec<_> = (0..per_slab - 2)
        .map(|_| alloc(&a, 0, l).unwrap())
        .collect();
    assert_eq!(a.cpu_stats(0).classes[class].remote_frees, 0);
    assert_eq!(alloc(&a, 0, l).unwrap(), ptr);
    let s0 = a.cpu_stats(0);
    assert_eq!(s0.classes[class].slabs, 1, "reused instead of growing");
    assert_eq!(s0.classes[class].remote_frees, 1);
    assert_eq!(s0.classes[class].in_use(), per_slab as u64);
    assert_eq!(a.stats().pending_remote_frees(), 0);
    for p in rest {
        free(&a, 0, p, l);
    }
    // CPU 1's own allocation of that class uses a slab of its own.
    let other = alloc(&a, 1, l).unwrap();
    assert_ne!(slab::header_of(other), slab::header_of(ptr));
    free(&a, 1, other, l);
    free(&a, 0, ptr, l);
    free(&a, 0, keep, l);
}

#[test]
fn drain_remote_takes_back_every_class_and_frees_empty_slabs() {
    let a = allocator(1 << 12);
    let small = layout(24, 8);
    let big = layout(9000, 8);
    let per_slab = objects_per_slab(class_of(small).unwrap(), HEADER_BYTES);
    let smalls: Vec<_> = (0..2 * per_slab)
        .map(|_| alloc(&a, 2, small).unwrap())
        .collect();
    let bigs: Vec<_> = (0..5).map(|_| alloc(&a, 2, big).unwrap()).collect();
    let held = a.source().pages_out();
    for ptr in smalls {
        free(&a, 3, ptr, small);
    }
    for ptr in bigs {
        free(&a, 1, ptr, big);
    }
    // Nothing is given back until the owner drains.
    assert_eq!(a.source().pages_out(), held);
    assert_eq!(a.stats().pending_remote_frees(), 2 * per_slab as u64 + 5);
    // SAFETY: one thread, so the CPU contract holds.
    unsafe { a.drain_remote(2) };
    let stats = a.stats();
    assert_eq!(stats.pending_remote_frees(), 0);
    assert_eq!(stats.objects_in_use(), 0);
    // Two small slabs and one big one, now empty and kept (within budget).
    assert_eq!(stats.slabs(), 3);
    assert_eq!(a.source().pages_out(), 3 * SLAB_PAGES);
    // SAFETY: one thread, so the CPU contract holds.
    assert_eq!(unsafe { a.trim(2) }, 3 * SLAB_PAGES);
    assert_eq!(a.source().pages_out(), 0);
}

#[test]
fn statistics_count_per_cpu_and_class_and_sum() {
    let a = allocator(1 << 12);
    let l16 = layout(16, 8);
    let l4k = layout(4000, 8);
    let (c16, c4k) = (class_of(l16).unwrap(), class_of(l4k).unwrap());
    let x: Vec<_> = (0..10).map(|_| alloc(&a, 0, l16).unwrap()).collect();
    let y: Vec<_> = (0..3).map(|_| alloc(&a, 1, l4k).unwrap()).collect();
    for &p in &x[..4] {
        free(&a, 0, p, l16);
    }
    for &p in &x[4..6] {
        free(&a, 1, p, l16);
    }
    let s0 = a.cpu_stats(0);
    assert_eq!(s0.classes[c16].allocs, 10);
    assert_eq!(s0.classes[c16].frees, 4);
    assert_eq!(s0.classes[c16].slabs, 1);
    assert_eq!(s0.classes[c4k].allocs, 0);
    let s1 = a.cpu_stats(1);
    assert_eq!(s1.classes[c16].remote_frees_sent, 2);
    assert_eq!(s1.classes[c4k].allocs, 3);
    assert_eq!(s1.classes[c4k].bytes_in_use(), 3 * 4096);
    // SAFETY: one thread, so the CPU contract holds.
    unsafe { a.drain_remote(0) };
    let total = a.stats();
    assert_eq!(total.classes[c16].remote_frees, 2);
    assert_eq!(total.classes[c16].in_use(), 4);
    assert_eq!(total.objects_in_use(), 7);
    assert_eq!(total.bytes_in_use(), 4 * 16 + 3 * 4096);
    assert_eq!(total.pages_held(), 2 * SLAB_PAGES as u64);
    assert_eq!(total.pages_held() as usize, a.source().pages_out());
    for &p in &x[6..] {
        free(&a, 0, p, l16);
    }
    for &p in &y {
        free(&a, 1, p, l4k);
    }
    assert_eq!(a.stats().bytes_in_use(), 0);
}

/// xorshift64*: deterministic test randomness without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// An object in flight between stress threads.
struct Sent {
    addr: usize,
    layout: Layout,
    byte: u8,
}

impl Sent {
    fn ptr(&self) -> NonNull<u8> {
        // Tests run on the host, where exposed-provenance round trips through
        // the channel are fine; std has no way to send a pointer otherwise.
        NonNull::new(std::ptr::with_exposed_provenance_mut(self.addr)).unwrap()
    }
}

fn random_layout(rng: &mut Rng) -> Layout {
    let size = match rng.below(100) {
        0..70 => 1 + rng.below(256),
        70..97 => 257 + rng.below(MAX_CLASS_SIZE as u64 - 256),
        _ => MAX_CLASS_SIZE as u64 + 1 + rng.below(48 * 1024),
    } as usize;
    let align = if rng.below(8) == 0 {
        1 << rng.below(13)
    } else {
        8
    };
    layout(size, align)
}

#[test]
fn stress_from_all_cpus_with_cross_cpu_frees_leaks_nothing() {
    const CPUS: usize = 4;
    const OPS: usize = 200_000;
    let a = allocator(1 << 20);

    // Warm up so `before` is a state with memory held, not just zeros.
    let warm: Vec<_> = (0..CPUS)
        .map(|cpu| (cpu, alloc(&a, cpu, layout(100, 8)).unwrap()))
        .collect();
    let before = a.stats();

    let (senders, receivers): (Vec<_>, Vec<_>) = (0..CPUS).map(|_| mpsc::channel::<Sent>()).unzip();
    let barrier = Barrier::new(CPUS);
    std::thread::scope(|s| {
        for (cpu, inbox) in receivers.into_iter().enumerate() {
            let (a, senders, barrier) = (&*a, senders.clone(), &barrier);
            s.spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((cpu as u64 + 1) * 0x1234_5678));
                let mut live: Vec<Sent> = Vec::new();
                let release = |sent: Sent| {
                    check(sent.ptr(), sent.layout.size(), sent.byte);
                    free(a, cpu, sent.ptr(), sent.layout);
                };
                for op in 0..OPS {
                    match rng.below(10) {
                        0..5 => {
                            let l = random_layout(&mut rng);
                            let ptr = alloc(a, cpu, l).unwrap();
                            assert_eq!(ptr.as_ptr().addr() % l.align(), 0);
                            let byte = (op as u8) ^ (cpu as u8 * 64);
                            fill(ptr, l.size(), byte);
                            live.push(Sent {
                                addr: ptr.as_ptr().expose_provenance(),
                                layout: l,
                                byte,
                            });
                        }
                        5..7 if !live.is_empty() => {
                            let i = rng.below(live.len() as u64) as usize;
                            release(live.swap_remove(i));
                        }
                        7..9 if !live.is_empty() => {
                            let i = rng.below(live.len() as u64) as usize;
                            let to = (cpu + 1 + rng.below(CPUS as u64 - 1) as usize) % CPUS;
                            senders[to].send(live.swap_remove(i)).unwrap();
                        }
                        _ => {
                            while let Ok(sent) = inbox.try_recv() {
                                release(sent);
                            }
                        }
                    }
                }
                for sent in live.drain(..) {
                    release(sent);
                }
                // Every send happened before this; then empty the inbox.
                barrier.wait();
                while let Ok(sent) = inbox.try_recv() {
                    release(sent);
                }
            });
        }
    });

    let mid = a.stats();
    assert!(mid.pending_remote_frees() > 0 || mid.classes.iter().any(|c| c.remote_frees > 0));
    for cpu in 0..CPUS {
        // SAFETY: the stress threads are joined; this thread is the only user
        // of every CPU index now.
        unsafe { a.drain_remote(cpu) };
    }
    let after = a.stats();
    assert!(after.classes.iter().map(|c| c.allocs).sum::<u64>() > (CPUS * OPS / 4) as u64);
    assert!(after.classes.iter().map(|c| c.remote_frees).sum::<u64>() > 0);
    assert!(after.large.allocs > 0);
    assert_eq!(after.pending_remote_frees(), 0);
    // Counters equal before and after: nothing leaked.
    assert_eq!(after.objects_in_use(), before.objects_in_use());
    assert_eq!(after.bytes_in_use(), before.bytes_in_use());
    assert_eq!(after.large.pages_in_use(), before.large.pages_in_use());
    for (b, c) in before.classes.iter().zip(&after.classes) {
        assert_eq!(b.in_use(), c.in_use(), "class {}", c.object_size);
    }
    // The allocator's view of held pages matches the source's, and each CPU
    // holds at most MAX_EMPTY_SLABS empty slabs besides slabs with live
    // objects (the warm-up objects).
    assert_eq!(after.pages_held() as usize, a.source().pages_out());
    for cpu in 0..CPUS {
        let s = a.cpu_stats(cpu);
        let bound = u64::from(MAX_EMPTY_SLABS) + s.objects_in_use();
        assert!(s.slabs() <= bound, "cpu {cpu} keeps {} slabs", s.slabs());
    }
    for (cpu, ptr) in warm {
        free(&a, cpu, ptr, layout(100, 8));
    }
    for cpu in 0..CPUS {
        // SAFETY: as above, this thread alone uses every CPU index.
        unsafe { a.trim(cpu) };
    }
    assert_eq!(a.stats().pages_held(), 0);
    assert_eq!(a.source().pages_out(), 0);
}
