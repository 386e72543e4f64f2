//! Boot-time frame source used while the kernel page tables are built,
//! before the bitmap allocator exists (its bitmap lives in memory that is
//! only reachable through the direct map those tables create).
//!
//! Hands out frames from the normalised usable ranges in order; afterwards
//! [`EarlyFrames::consumed`] names what it used so the bitmap allocator can
//! reserve it.

use crate::boot::memmap::Range;

const PAGE: u64 = 4096;

pub struct EarlyFrames<'a> {
    ranges: &'a [Range],
    index: usize,
    next: u64,
}

impl<'a> EarlyFrames<'a> {
    pub fn new(ranges: &'a [Range]) -> Self {
        let next = ranges.first().map_or(0, |r| r.start);
        Self {
            ranges,
            index: 0,
            next,
        }
    }

    /// `n` contiguous frames from the current range onward; skipped tails are
    /// simply not used (they are not reported as consumed, so they stay free).
    pub fn alloc(&mut self, n: u64) -> Option<u64> {
        while let Some(range) = self.ranges.get(self.index) {
            let start = self.next.max(range.start);
            if start + n * PAGE <= range.end {
                self.next = start + n * PAGE;
                return Some(start);
            }
            self.index += 1;
            self.next = self.ranges.get(self.index).map_or(0, |r| r.start);
        }
        None
    }

    /// The frames handed out so far, as ranges (at most one per input range;
    /// skipped tails are included, which only wastes them, never double-uses).
    pub fn consumed(&self) -> impl Iterator<Item = Range> + '_ {
        let upto = self.index.min(self.ranges.len());
        let full = self.ranges[..upto].iter().copied();
        let partial = self
            .ranges
            .get(self.index)
            .map(|r| Range::new(r.start, self.next.max(r.start)));
        full.chain(partial).filter(|r| !r.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_in_order_and_consumed_covers_them() {
        let ranges = [Range::new(0x1000, 0x3000), Range::new(0x10000, 0x20000)];
        let mut e = EarlyFrames::new(&ranges);
        assert_eq!(e.alloc(1), Some(0x1000));
        assert_eq!(
            e.alloc(2),
            Some(0x10000),
            "does not fit the rest of range 0"
        );
        assert_eq!(e.alloc(1), Some(0x12000));
        let used: Vec<_> = e.consumed().collect();
        assert_eq!(
            used,
            vec![Range::new(0x1000, 0x3000), Range::new(0x10000, 0x13000)]
        );
        assert_eq!(e.alloc(100), None);
    }
}
