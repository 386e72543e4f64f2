// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sparse file contents: a map from page index to 4 KiB page.
//!
//! A page that was never written is a hole and reads as zeros. Invariant: no page lies
//! wholly at or beyond `size`, and the bytes of the last page past `size` are zero (so
//! growing a file with `truncate` exposes zeros, as POSIX requires).

use alloc::vec::Vec;
use alloc::{
    boxed::Box,
    collections::{BTreeMap, btree_map::Entry},
};

use abi::Errno;

use super::PAGE_SIZE;

type Page = Box<[u8; PAGE_SIZE]>;

/// What a hole reads as.
static ZEROS: [u8; PAGE_SIZE] = [0; PAGE_SIZE];

/// The piece of a transfer of `len` bytes at `offset` that starts `done` bytes in: its
/// page index, its start within that page, and its length (to the page's end at most).
fn piece(offset: u64, done: usize, len: usize) -> (u64, usize, usize) {
    let pos = offset + done as u64;
    let in_page = (pos % PAGE_SIZE as u64) as usize;
    (
        pos / PAGE_SIZE as u64,
        in_page,
        (PAGE_SIZE - in_page).min(len - done),
    )
}

/// The contents of one regular file.
#[derive(Default, Debug)]
pub(super) struct FileData {
    size: u64,
    pages: BTreeMap<u64, Page>,
}

impl FileData {
    pub(super) fn size(&self) -> u64 {
        self.size
    }

    /// Pages actually allocated.
    pub(super) fn nr_pages(&self) -> u64 {
        self.pages.len() as u64
    }

    /// How many new pages a write of `len` bytes at `offset` would allocate.
    pub(super) fn pages_needed(&self, offset: u64, len: usize) -> u64 {
        if len == 0 {
            return 0;
        }
        let first = offset / PAGE_SIZE as u64;
        let last = (offset + len as u64 - 1) / PAGE_SIZE as u64;
        // One look-up per page: cheaper than a range walk for the usual write of a page
        // or two, and no worse for a long one (which then copies every page anyway).
        (first..=last)
            .filter(|index| !self.pages.contains_key(index))
            .count() as u64
    }

    /// Copies up to `out.len()` bytes from `offset` (already clipped to `size` by the caller).
    #[cfg(test)]
    pub(super) fn read(&self, offset: u64, out: &mut [u8]) {
        let mut v = Vec::new();
        self.read_append(offset, out.len(), &mut v);
        out.copy_from_slice(&v);
    }

    /// Appends `len` bytes from `offset` (already clipped to `size` by the caller) to
    /// `out`: each byte is written once (no zero-fill first).
    pub(super) fn read_append(&self, offset: u64, len: usize, out: &mut Vec<u8>) {
        out.reserve(len);
        let _ = self.read_with(offset, len, |_, bytes| {
            out.extend_from_slice(bytes);
            Ok(())
        });
    }

    /// Hands the `len` bytes from `offset` (already clipped to `size` by the caller) to
    /// `put(done, bytes)` a page's piece at a time, in order (`done`: the bytes handed
    /// before); stops at `put`'s first error and returns it.
    pub(super) fn read_with(
        &self,
        offset: u64,
        len: usize,
        mut put: impl FnMut(usize, &[u8]) -> Result<(), Errno>,
    ) -> Result<(), Errno> {
        let mut done = 0usize;
        while done < len {
            let (index, in_page, n) = piece(offset, done, len);
            match self.pages.get(&index) {
                Some(page) => put(done, &page[in_page..in_page + n])?,
                None => put(done, &ZEROS[..n])?,
            }
            done += n;
        }
        Ok(())
    }

    /// Writes `data` at `offset`, growing the file if needed. The caller has checked the
    /// size limit and the space for `pages_needed`.
    pub(super) fn write(&mut self, offset: u64, data: &[u8]) {
        let _ = self.write_with(offset, data.len(), |done, to| {
            to.copy_from_slice(&data[done..done + to.len()]);
            Ok(())
        });
    }

    /// Writes `len` bytes at `offset` that `fill(done, to)` supplies a page's piece at a
    /// time, in order, growing the file if needed; returns how many were written. The
    /// caller has checked the size limit and the space for `pages_needed`.
    ///
    /// If `fill` fails, the write stops before that piece: the bytes before it are
    /// written and the file covers them, a page made for the piece is dropped again, and
    /// whatever `fill` left past the file's (new) end is zeroed, so the module's
    /// invariants hold. The bytes `fill` left inside the file stay (a short write
    /// leaves its failed piece undefined, as on Linux).
    pub(super) fn write_with(
        &mut self,
        offset: u64,
        len: usize,
        mut fill: impl FnMut(usize, &mut [u8]) -> Result<(), Errno>,
    ) -> (usize, Result<(), Errno>) {
        let mut done = 0usize;
        let mut result = Ok(());
        while done < len {
            let (index, in_page, n) = piece(offset, done, len);
            let (page, made) = match self.pages.entry(index) {
                Entry::Occupied(page) => (page.into_mut(), false),
                Entry::Vacant(hole) => (hole.insert(Box::new([0u8; PAGE_SIZE])), true),
            };
            if let Err(e) = fill(done, &mut page[in_page..in_page + n]) {
                let end = self.size.max(offset + done as u64);
                let page_start = index * PAGE_SIZE as u64;
                let inside = end.saturating_sub(page_start).min(PAGE_SIZE as u64) as usize;
                if made {
                    self.pages.remove(&index);
                } else if inside < in_page + n {
                    page[inside.max(in_page)..in_page + n].fill(0);
                }
                result = Err(e);
                break;
            }
            done += n;
        }
        self.size = self.size.max(offset + done as u64);
        (done, result)
    }

    /// Checks the module's invariants; for tests.
    ///
    /// # Panics
    /// If no page may lie at or past `size`, or a byte of the last page past `size` is
    /// not zero.
    pub(super) fn debug_check(&self) {
        let covered = self.size.div_ceil(PAGE_SIZE as u64);
        if let Some((&last, page)) = self.pages.last_key_value() {
            assert!(last < covered, "a page wholly past the end");
            let tail = (self.size - last * PAGE_SIZE as u64).min(PAGE_SIZE as u64) as usize;
            assert!(
                page[tail..].iter().all(|&b| b == 0),
                "a non-zero byte past the end"
            );
        }
    }

    /// Sets the size; returns the number of pages freed.
    pub(super) fn truncate(&mut self, size: u64) -> u64 {
        let mut freed = 0;
        if size < self.size {
            let keep = size.div_ceil(PAGE_SIZE as u64);
            let dropped = self.pages.split_off(&keep);
            freed = dropped.len() as u64;
            let tail = (size % PAGE_SIZE as u64) as usize;
            if tail != 0
                && let Some(page) = self.pages.get_mut(&(size / PAGE_SIZE as u64))
            {
                page[tail..].fill(0);
            }
        }
        self.size = size;
        freed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holes_read_as_zeros_and_take_no_pages() {
        let mut f = FileData::default();
        f.write(10 * PAGE_SIZE as u64 + 5, b"abc");
        assert_eq!(f.size(), 10 * PAGE_SIZE as u64 + 8);
        assert_eq!(f.nr_pages(), 1);
        let mut out = [0xffu8; 8];
        f.read(10 * PAGE_SIZE as u64, &mut out);
        assert_eq!(&out, b"\0\0\0\0\0abc");
        let mut hole = [0xffu8; 16];
        f.read(3, &mut hole);
        assert!(hole.iter().all(|&b| b == 0));
    }

    #[test]
    fn a_fill_that_fails_stops_the_write_and_keeps_the_invariants() {
        // A fault on the second piece: the first piece is written and covered, the page
        // made for the second is dropped again.
        let mut f = FileData::default();
        f.write(0, &[7u8; 10]);
        let (n, r) = f.write_with(5, 2 * PAGE_SIZE + 10, |done, to| {
            if done > 0 {
                return Err(Errno::Fault);
            }
            to.fill(9);
            Ok(())
        });
        assert_eq!((n, r), (PAGE_SIZE - 5, Err(Errno::Fault)));
        assert_eq!(f.size(), PAGE_SIZE as u64);
        assert_eq!(f.nr_pages(), 1);
        let mut out = alloc::vec![0u8; PAGE_SIZE];
        f.read(0, &mut out);
        assert_eq!(&out[..5], &[7; 5]);
        assert!(out[5..].iter().all(|&b| b == 9));

        // A fault part way through a piece of an existing page: nothing is written,
        // the size stays, and what the fill left past the end is zero again.
        let mut f = FileData::default();
        f.write(0, &[7u8; 100]);
        let (n, r) = f.write_with(50, 200, |_, to| {
            to.fill(0xaa);
            Err(Errno::Fault)
        });
        assert_eq!((n, r), (0, Err(Errno::Fault)));
        assert_eq!(f.size(), 100);
        f.truncate(300);
        let mut out = [0xffu8; 300];
        f.read(0, &mut out);
        assert!(out[..50].iter().all(|&b| b == 7));
        assert!(
            out[100..].iter().all(|&b| b == 0),
            "bytes past the end stay zero"
        );
    }

    #[test]
    fn read_with_stops_at_the_first_error() {
        let mut f = FileData::default();
        f.write(0, &[1u8; PAGE_SIZE * 2]);
        let mut calls = 0;
        let r = f.read_with(0, PAGE_SIZE * 2, |done, bytes| {
            calls += 1;
            assert_eq!((done, bytes.len()), (0, PAGE_SIZE));
            Err(Errno::Fault)
        });
        assert_eq!((r, calls), (Err(Errno::Fault), 1));
    }

    #[test]
    fn truncate_then_grow_exposes_zeros() {
        let mut f = FileData::default();
        f.write(0, &[7u8; 100]);
        f.truncate(10);
        f.truncate(100);
        let mut out = [0xffu8; 100];
        f.read(0, &mut out);
        assert!(out[..10].iter().all(|&b| b == 7));
        assert!(out[10..].iter().all(|&b| b == 0));
    }

    #[test]
    fn write_across_page_boundary() {
        let mut f = FileData::default();
        let data: alloc::vec::Vec<u8> = (0..PAGE_SIZE * 2 + 10).map(|i| i as u8).collect();
        assert_eq!(f.pages_needed(PAGE_SIZE as u64 - 3, data.len()), 4);
        f.write(PAGE_SIZE as u64 - 3, &data);
        let mut out = alloc::vec![0u8; data.len()];
        f.read(PAGE_SIZE as u64 - 3, &mut out);
        assert_eq!(out, data);
        assert_eq!(f.truncate(0), 4);
        assert_eq!(f.nr_pages(), 0);
    }
}
