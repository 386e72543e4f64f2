//! Memory-map normalisation: firmware maps in, sorted disjoint usable ranges out.
//!
//! The PVH memory map is not to be trusted as-is (shared/reference/boot.md,
//! section 2): qboot hands it over unsorted and terminated by an all-zero
//! entry, and entries may overlap. [`normalize`] sorts, drops empty entries,
//! lets every non-usable range win over usable ones, subtracts the caller's
//! reserved ranges (kernel image, initrd, firmware area) and shrinks what is
//! left inward to whole pages.

/// Firmware memory type 1 (E820 "RAM").
pub const TYPE_USABLE: u32 = 1;

/// One raw firmware entry, as read from the boot protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawRegion {
    pub addr: u64,
    pub size: u64,
    pub kind: u32,
}

/// A half-open physical range `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Range {
    pub start: u64,
    pub end: u64,
}

impl Range {
    pub const fn new(start: u64, end: u64) -> Self {
        Self { start, end }
    }
    pub const fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }
    pub const fn is_empty(&self) -> bool {
        self.end <= self.start
    }
}

const PAGE: u64 = 4096;

/// Why [`normalize`] could not finish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemMapError {
    /// More disjoint ranges than the output buffer holds.
    TooManyRanges,
}

/// Writes the usable, page-aligned, sorted, disjoint ranges of `raw` minus
/// `reserved` into `out` and returns how many there are.
///
/// # Errors
/// [`MemMapError::TooManyRanges`] if `out` is too small.
pub fn normalize(
    raw: &[RawRegion],
    reserved: &[Range],
    out: &mut [Range],
) -> Result<usize, MemMapError> {
    let mut n = 0;
    for region in raw.iter().filter(|r| r.kind == TYPE_USABLE && r.size != 0) {
        let whole = Range::new(region.addr, region.addr.saturating_add(region.size));
        // Cut away every non-usable firmware range and every reserved range.
        let holes = raw
            .iter()
            .filter(|r| r.kind != TYPE_USABLE && r.size != 0)
            .map(|r| Range::new(r.addr, r.addr.saturating_add(r.size)))
            .chain(reserved.iter().copied());
        n = subtract_into(whole, holes, out, n)?;
    }
    let used = &mut out[..n];
    used.sort_unstable_by_key(|r| r.start);
    // Merge touching or overlapping pieces (overlapping usable entries).
    let mut merged = 0;
    for i in 0..n {
        let r = out[i];
        if merged > 0 && r.start <= out[merged - 1].end {
            out[merged - 1].end = out[merged - 1].end.max(r.end);
        } else {
            out[merged] = r;
            merged += 1;
        }
    }
    // Page-align inward and drop what vanishes.
    let mut kept = 0;
    for i in 0..merged {
        let start = out[i].start.next_multiple_of(PAGE);
        let end = out[i].end & !(PAGE - 1);
        if end > start {
            out[kept] = Range::new(start, end);
            kept += 1;
        }
    }
    Ok(kept)
}

/// Appends `whole` minus all `holes` to `out[n..]`; returns the new length.
fn subtract_into(
    whole: Range,
    holes: impl Iterator<Item = Range> + Clone,
    out: &mut [Range],
    mut n: usize,
) -> Result<usize, MemMapError> {
    // Walk left to right: repeatedly find the lowest hole that intersects
    // what is left of `whole`.
    let mut cursor = whole.start;
    while cursor < whole.end {
        let next_hole = holes
            .clone()
            .filter(|h| !h.is_empty() && h.end > cursor && h.start < whole.end)
            .min_by_key(|h| h.start);
        match next_hole {
            Some(h) if h.start <= cursor => cursor = h.end,
            Some(h) => {
                n = push(out, n, Range::new(cursor, h.start))?;
                cursor = h.end;
            }
            None => {
                n = push(out, n, Range::new(cursor, whole.end))?;
                cursor = whole.end;
            }
        }
    }
    Ok(n)
}

fn push(out: &mut [Range], n: usize, r: Range) -> Result<usize, MemMapError> {
    let slot = out.get_mut(n).ok_or(MemMapError::TooManyRanges)?;
    *slot = r;
    Ok(n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(addr: u64, size: u64, kind: u32) -> RawRegion {
        RawRegion { addr, size, kind }
    }

    fn run(rawmap: &[RawRegion], reserved: &[Range]) -> Vec<Range> {
        let mut out = [Range::default(); 32];
        let n = normalize(rawmap, reserved, &mut out).unwrap();
        out[..n].to_vec()
    }

    #[test]
    fn unsorted_map_with_zero_terminator_comes_out_sorted() {
        // qboot's shape: RAM above 1 MiB last, a trailing all-zero entry.
        let map = [
            raw(0, 0x9fc00, 1),
            raw(0xd0000, 0x20000, 4),
            raw(0x100000, 0xff00000, 1),
            raw(0, 0, 0),
        ];
        assert_eq!(
            run(&map, &[]),
            vec![Range::new(0, 0x9f000), Range::new(0x100000, 0x10000000)]
        );
    }

    #[test]
    fn reserved_ranges_are_cut_out_and_edges_page_aligned() {
        let map = [raw(0x100000, 0x1000000, 1)];
        let reserved = [
            Range::new(0x100000, 0x180123),
            Range::new(0x800800, 0x900000),
        ];
        assert_eq!(
            run(&map, &reserved),
            vec![
                Range::new(0x181000, 0x800000),
                Range::new(0x900000, 0x1100000)
            ]
        );
    }

    #[test]
    fn non_usable_firmware_entries_win_over_overlapping_ram() {
        let map = [raw(0, 0x200000, 1), raw(0x100000, 0x1000, 2)];
        assert_eq!(
            run(&map, &[]),
            vec![Range::new(0, 0x100000), Range::new(0x101000, 0x200000)]
        );
    }

    #[test]
    fn overlapping_usable_entries_are_merged() {
        let map = [raw(0x1000, 0x3000, 1), raw(0x2000, 0x4000, 1)];
        assert_eq!(run(&map, &[]), vec![Range::new(0x1000, 0x6000)]);
    }

    #[test]
    fn a_region_smaller_than_a_page_vanishes() {
        let map = [raw(0x1800, 0x1000, 1)];
        assert_eq!(run(&map, &[]), vec![]);
    }

    #[test]
    fn entries_at_the_top_of_the_address_space_do_not_overflow() {
        let map = [raw(u64::MAX - 0x1fff, 0x3000, 1)];
        let got = run(&map, &[]);
        assert_eq!(got, vec![Range::new(u64::MAX - 0x1fff, u64::MAX & !0xfff)]);
    }

    #[test]
    fn too_small_output_is_an_error() {
        let map = [raw(0, 0x10000, 1)];
        let reserved = [Range::new(0x1000, 0x2000), Range::new(0x3000, 0x4000)];
        let mut out = [Range::default(); 2];
        assert_eq!(
            normalize(&map, &reserved, &mut out),
            Err(MemMapError::TooManyRanges)
        );
    }
}
