// SPDX-License-Identifier: MIT OR Apache-2.0
//! Sparse file contents: a map from page index to 4 KiB page.
//!
//! A page that was never written is a hole and reads as zeros. Invariant: no page lies
//! wholly at or beyond `size`, and the bytes of the last page past `size` are zero (so
//! growing a file with `truncate` exposes zeros, as POSIX requires).

use alloc::vec::Vec;
use alloc::{boxed::Box, collections::BTreeMap};

use super::PAGE_SIZE;

type Page = Box<[u8; PAGE_SIZE]>;

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
        let present = self.pages.range(first..=last).count() as u64;
        (last - first + 1) - present
    }

    /// Copies up to `out.len()` bytes from `offset` (already clipped to `size` by the caller).
    #[cfg(test)]
    pub(super) fn read(&self, offset: u64, out: &mut [u8]) {
        let mut v = Vec::new();
        self.read_append(offset, out.len(), &mut v);
        out.copy_from_slice(&v);
    }

    /// Appends `len` bytes from `offset` (already clipped to `size` by the caller) to
    /// `out`: each byte is written once (no zero-fill first, except for holes).
    pub(super) fn read_append(&self, offset: u64, len: usize, out: &mut Vec<u8>) {
        out.reserve(len);
        let mut done = 0usize;
        while done < len {
            let pos = offset + done as u64;
            let index = pos / PAGE_SIZE as u64;
            let in_page = (pos % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - in_page).min(len - done);
            match self.pages.get(&index) {
                Some(page) => out.extend_from_slice(&page[in_page..in_page + n]),
                None => out.resize(out.len() + n, 0),
            }
            done += n;
        }
    }

    /// Writes `data` at `offset`, growing the file if needed. The caller has checked the
    /// size limit and the space for `pages_needed`.
    pub(super) fn write(&mut self, offset: u64, data: &[u8]) {
        let mut done = 0usize;
        while done < data.len() {
            let pos = offset + done as u64;
            let index = pos / PAGE_SIZE as u64;
            let in_page = (pos % PAGE_SIZE as u64) as usize;
            let n = (PAGE_SIZE - in_page).min(data.len() - done);
            let page = self
                .pages
                .entry(index)
                .or_insert_with(|| Box::new([0u8; PAGE_SIZE]));
            page[in_page..in_page + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
        self.size = self.size.max(offset + data.len() as u64);
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
