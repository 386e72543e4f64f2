//! Physical frame allocator: one bit per 4 KiB frame.
//!
//! A bitmap over `[base, base + nr_frames * 4 KiB)`; a set bit means free.
//! Everything starts allocated, and boot frees exactly the normalised usable
//! ranges, so firmware areas, the kernel image and the initrd can never be
//! handed out. A free of a frame that is not allocated is an error, not
//! silent corruption. The allocator is pure logic over a borrowed bitmap, so
//! it is tested on the host with synthetic maps.

use crate::boot::memmap::Range;

pub const FRAME_SIZE: u64 = 4096;

/// Errors from [`FrameAllocator::free`] and friends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameError {
    /// The address is outside the managed range or not frame-aligned.
    NotManaged(u64),
    /// The frame is already free.
    DoubleFree(u64),
}

/// A bitmap allocator over borrowed storage.
pub struct FrameAllocator<'a> {
    bits: &'a mut [u64],
    base: u64,
    nr_frames: usize,
    free: usize,
    total_usable: usize,
    /// Word index where the next search starts (all lower words were full).
    hint: usize,
}

impl<'a> FrameAllocator<'a> {
    /// Bitmap words needed to cover `nr_frames`.
    pub const fn words_for(nr_frames: usize) -> usize {
        nr_frames.div_ceil(64)
    }

    /// An allocator covering `[base, base + nr_frames * 4 KiB)`, all allocated.
    ///
    /// # Panics
    /// If `bits` is too small for `nr_frames` or `base` is not aligned (init
    /// code computes both).
    pub fn new(bits: &'a mut [u64], base: u64, nr_frames: usize) -> Self {
        assert!(
            bits.len() >= Self::words_for(nr_frames),
            "frame bitmap too small"
        );
        assert!(base.is_multiple_of(FRAME_SIZE), "frame base not aligned");
        bits.fill(0);
        Self {
            bits,
            base,
            nr_frames,
            free: 0,
            total_usable: 0,
            hint: 0,
        }
    }

    /// Marks the frames fully inside `range` free (boot only).
    pub fn add_usable(&mut self, range: Range) {
        let start = range.start.max(self.base).next_multiple_of(FRAME_SIZE);
        let end = range.end.min(self.end());
        let mut addr = start;
        while addr + FRAME_SIZE <= end {
            let i = self.index(addr);
            if !self.is_free_index(i) {
                self.set(i, true);
                self.free += 1;
                self.total_usable += 1;
            }
            addr += FRAME_SIZE;
        }
        self.hint = 0;
    }

    /// Marks every free frame inside `range` allocated, for good (boot only).
    pub fn reserve(&mut self, range: Range) {
        let mut addr = range.start.max(self.base) & !(FRAME_SIZE - 1);
        while addr < range.end.min(self.end()) {
            let i = self.index(addr);
            if self.is_free_index(i) {
                self.set(i, false);
                self.free -= 1;
                self.total_usable -= 1;
            }
            addr += FRAME_SIZE;
        }
    }

    /// One free frame, lowest address first.
    pub fn alloc(&mut self) -> Option<u64> {
        for w in self.hint..self.bits.len() {
            let word = self.bits[w];
            if word != 0 {
                let i = w * 64 + word.trailing_zeros() as usize;
                if i >= self.nr_frames {
                    return None;
                }
                self.set(i, false);
                self.free -= 1;
                self.hint = w;
                return Some(self.base + i as u64 * FRAME_SIZE);
            }
        }
        None
    }

    /// `n` physically contiguous free frames, aligned to `align_frames`: the
    /// lowest such run.
    ///
    /// The search starts at the hint (every lower word is full) and goes a
    /// word at a time: a full word is passed over in one step, and a
    /// candidate run is checked with one masked test per word it covers. (It
    /// went frame by frame from frame 0: some 100k instructions per call once
    /// the kernel's image and heap filled the low frames.)
    pub fn alloc_contiguous(&mut self, n: usize, align_frames: usize) -> Option<u64> {
        if n == 0 {
            return None;
        }
        let align = align_frames.max(1);
        let mut i = (self.hint * 64).next_multiple_of(align);
        while i.checked_add(n)? <= self.nr_frames {
            // The first free frame at or after `i` (`i` itself, or the next
            // candidate to align).
            let free_here = self.bits[i / 64] >> (i % 64);
            i = if free_here == 0 {
                (i / 64 + 1) * 64
            } else if free_here & 1 == 0 {
                i + free_here.trailing_zeros() as usize
            } else {
                match self.first_busy(i, i + n) {
                    Some(busy) => busy + 1,
                    None => {
                        for j in i..i + n {
                            self.set(j, false);
                        }
                        self.free -= n;
                        return Some(self.base + i as u64 * FRAME_SIZE);
                    }
                }
            }
            .next_multiple_of(align);
        }
        None
    }

    /// The lowest allocated frame in `[from, to)`, if any (`to <= nr_frames`).
    fn first_busy(&self, from: usize, to: usize) -> Option<usize> {
        let mut w = from / 64;
        while w * 64 < to {
            let lo = (w * 64).max(from) - w * 64;
            let hi = (to - w * 64).min(64);
            // Bits lo..hi of this word.
            let mask = (u64::MAX >> (64 - (hi - lo))) << lo;
            let busy = !self.bits[w] & mask;
            if busy != 0 {
                return Some(w * 64 + busy.trailing_zeros() as usize);
            }
            w += 1;
        }
        None
    }

    /// Returns a frame.
    ///
    /// # Errors
    /// [`FrameError::NotManaged`] for a foreign or unaligned address,
    /// [`FrameError::DoubleFree`] if the frame is already free.
    pub fn free(&mut self, addr: u64) -> Result<(), FrameError> {
        if addr < self.base || addr >= self.end() || !addr.is_multiple_of(FRAME_SIZE) {
            return Err(FrameError::NotManaged(addr));
        }
        let i = self.index(addr);
        if self.is_free_index(i) {
            return Err(FrameError::DoubleFree(addr));
        }
        self.set(i, true);
        self.free += 1;
        self.hint = self.hint.min(i / 64);
        Ok(())
    }

    /// Frames free now.
    pub fn free_frames(&self) -> usize {
        self.free
    }

    /// Frames that were usable at boot (free plus allocated since).
    pub fn usable_frames(&self) -> usize {
        self.total_usable
    }

    fn end(&self) -> u64 {
        self.base + self.nr_frames as u64 * FRAME_SIZE
    }
    fn index(&self, addr: u64) -> usize {
        ((addr - self.base) / FRAME_SIZE) as usize
    }
    fn is_free_index(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize, free: bool) {
        if free {
            self.bits[i / 64] |= 1 << (i % 64);
        } else {
            self.bits[i / 64] &= !(1 << (i % 64));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn only_usable_frames_are_handed_out_lowest_first() {
        let mut bits = vec![0u64; FrameAllocator::words_for(1024)];
        let mut fa = FrameAllocator::new(&mut bits, 0, 1024);
        fa.add_usable(Range::new(MIB, MIB + 3 * FRAME_SIZE));
        assert_eq!(fa.free_frames(), 3);
        assert_eq!(fa.alloc(), Some(MIB));
        assert_eq!(fa.alloc(), Some(MIB + FRAME_SIZE));
        assert_eq!(fa.alloc(), Some(MIB + 2 * FRAME_SIZE));
        assert_eq!(fa.alloc(), None, "exhaustion is None, not a hang");
    }

    #[test]
    fn free_returns_frames_and_detects_double_and_foreign_frees() {
        let mut bits = vec![0u64; 4];
        let mut fa = FrameAllocator::new(&mut bits, MIB, 200);
        fa.add_usable(Range::new(MIB, MIB + 200 * FRAME_SIZE));
        let a = fa.alloc().unwrap();
        let before = fa.free_frames();
        assert_eq!(fa.free(a), Ok(()));
        assert_eq!(fa.free_frames(), before + 1);
        assert_eq!(fa.free(a), Err(FrameError::DoubleFree(a)));
        assert_eq!(fa.free(0x1000), Err(FrameError::NotManaged(0x1000)));
        assert_eq!(fa.free(a + 1), Err(FrameError::NotManaged(a + 1)));
        assert_eq!(fa.alloc(), Some(a), "a freed low frame is reused first");
    }

    #[test]
    fn reserve_removes_frames_from_the_pool() {
        let mut bits = vec![0u64; 2];
        let mut fa = FrameAllocator::new(&mut bits, 0, 128);
        fa.add_usable(Range::new(0, 128 * FRAME_SIZE));
        fa.reserve(Range::new(0, 10 * FRAME_SIZE + 1)); // partial frame counts
        assert_eq!(fa.free_frames(), 128 - 11);
        assert_eq!(fa.usable_frames(), 128 - 11);
        assert_eq!(fa.alloc(), Some(11 * FRAME_SIZE));
    }

    #[test]
    fn contiguous_allocation_respects_holes_and_alignment() {
        let mut bits = vec![0u64; 2];
        let mut fa = FrameAllocator::new(&mut bits, 0, 128);
        fa.add_usable(Range::new(0, 128 * FRAME_SIZE));
        fa.reserve(Range::new(2 * FRAME_SIZE, 3 * FRAME_SIZE));
        assert_eq!(fa.alloc_contiguous(4, 1), Some(3 * FRAME_SIZE));
        assert_eq!(fa.alloc_contiguous(8, 8), Some(8 * FRAME_SIZE));
        assert_eq!(fa.alloc_contiguous(200, 1), None);
        assert_eq!(fa.free_frames(), 128 - 1 - 4 - 8);
    }

    /// The search as it was, frame by frame from frame 0: the oracle for the
    /// word-wise one.
    fn lowest_run(fa: &FrameAllocator<'_>, n: usize, align: usize) -> Option<usize> {
        let mut i = 0;
        while i + n <= fa.nr_frames {
            match (i..i + n).find(|&j| !fa.is_free_index(j)) {
                Some(busy) => i = (busy + 1).next_multiple_of(align),
                None => return Some(i),
            }
        }
        None
    }

    #[test]
    fn contiguous_allocation_finds_the_lowest_run_as_a_frame_by_frame_search_does() {
        // A fragmented map (random frees and allocations of runs of every
        // size, alignments 1 to 16, runs across word boundaries), checked
        // against the old search after every step.
        let frames = 64 * 40 + 17;
        let mut bits = vec![0u64; FrameAllocator::words_for(frames)];
        let mut fa = FrameAllocator::new(&mut bits, 0, frames);
        fa.add_usable(Range::new(0, frames as u64 * FRAME_SIZE));
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |m: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % m as u64) as usize
        };
        let mut held: Vec<(u64, usize)> = Vec::new();
        let (mut found, mut missed) = (0, 0);
        for _ in 0..4000 {
            if next(3) == 0 && !held.is_empty() {
                let (addr, n) = held.swap_remove(next(held.len()));
                for k in 0..n as u64 {
                    fa.free(addr + k * FRAME_SIZE).unwrap();
                }
                continue;
            }
            let range = if next(4) == 0 { 200 } else { 12 };
            let n = 1 + next(range);
            let align = 1 << next(5);
            let expect = lowest_run(&fa, n, align);
            let before = fa.free_frames();
            let got = fa.alloc_contiguous(n, align);
            assert_eq!(
                got,
                expect.map(|i| i as u64 * FRAME_SIZE),
                "n {n} align {align}"
            );
            match got {
                Some(addr) => {
                    assert_eq!(addr % (align as u64 * FRAME_SIZE), 0);
                    assert_eq!(fa.free_frames(), before - n);
                    held.push((addr, n));
                    found += 1;
                }
                None => {
                    assert_eq!(fa.free_frames(), before);
                    missed += 1;
                }
            }
        }
        // Both outcomes were exercised.
        assert!(found > 500 && missed > 10, "found {found}, missed {missed}");
    }

    #[test]
    fn contiguous_allocation_starts_at_the_hint_and_stops_at_the_end() {
        let mut bits = vec![0u64; 3];
        let mut fa = FrameAllocator::new(&mut bits, 0, 150);
        fa.add_usable(Range::new(0, 150 * FRAME_SIZE));
        for _ in 0..130 {
            fa.alloc().unwrap();
        }
        // Words 0 and 1 are full, so the search starts in word 2.
        assert_eq!(fa.alloc_contiguous(20, 1), Some(130 * FRAME_SIZE));
        assert_eq!(fa.alloc_contiguous(1, 1), None, "150 frames, all taken");
        fa.free(3 * FRAME_SIZE).unwrap();
        assert_eq!(
            fa.alloc_contiguous(1, 1),
            Some(3 * FRAME_SIZE),
            "a free lowers the hint"
        );
        assert_eq!(fa.alloc_contiguous(usize::MAX, 1), None, "no overflow");
    }

    #[test]
    fn frames_past_the_managed_range_are_ignored() {
        let mut bits = vec![0u64; 1];
        let mut fa = FrameAllocator::new(&mut bits, 0, 10);
        fa.add_usable(Range::new(0, 1 << 30));
        assert_eq!(fa.free_frames(), 10);
        for _ in 0..10 {
            assert!(fa.alloc().is_some());
        }
        assert_eq!(fa.alloc(), None);
    }
}
