// SPDX-License-Identifier: MIT OR Apache-2.0
//! Block devices as files: byte-addressed reads and writes over a driver's sector port,
//! through the block cache or (`O_DIRECT`) straight to the device.
//!
//! Read first:
//! - **Reads** that the cache holds entirely are answered inline by devfs's port handler
//!   ([`BlockDevice::try_read_inline`]); the rest run in the devfs task
//!   ([`BlockDevice::read`]), which reads every missing run of blocks from the device at
//!   once (many requests in flight) and caches them.
//! - **Writes are write-through**: the reply comes after the device acknowledged, and the
//!   cache is patched then (`BlockCache::write_done`). A write that does not cover whole
//!   sectors reads the sectors it partly covers first (from the cache when it has them)
//!   and writes whole sectors (read-modify-write).
//! - **Overlapping writes are serialized** by a sector-range lock, so two partial writes
//!   to one sector cannot lose each other's bytes; writes to different sectors proceed in
//!   parallel. Reads take no lock: a read racing a write sees old or new sectors.
//! - **Fsync** waits for every write that arrived before it, then sends the device a
//!   `Flush` (which covers the writes that completed before it was sent).
//! - **`O_DIRECT`** skips the cache for data (offset and length must be whole sectors,
//!   else `Inval`); direct writes from a kernel buffer still patch cached blocks so the
//!   cache stays true.
//! - **Zero-copy `O_DIRECT`** ([`BlockDevice::read_external`],
//!   [`BlockDevice::write_external`]): the data is the caller's memory, an
//!   [`ExternalBuf`] (pinned user pages), handed to the driver as it is: no kernel buffer,
//!   no zeroing, no copy. The same alignment rules (the memory's own address may be
//!   anything: the device takes byte-granular segments). A direct write from caller
//!   memory cannot patch the cache without copying the data, so it forgets (invalidates)
//!   the cached blocks it overlaps, and marks fills in progress for them stale, once the
//!   device answered.
//! - Requests larger than [`MAX_DEVICE_REQUEST`] are split into that many bytes per device
//!   request, all sent at once.
//!
//! Errors: a device error is `Io` (logged); a read past the end is end of file (0 bytes)
//! and a read across it is short; a write at or past the end is `NoSpc` and one across it
//! is short; a write to a read-only device is `RoFs`.

use alloc::{boxed::Box, collections::BTreeSet, sync::Arc, vec, vec::Vec};
use core::{future::poll_fn, task::Poll, task::Waker};

use abi::Errno;
use futures_util::future::join_all;
use ports::{
    Port,
    proto::block::{BlockDone, BlockError, BlockInfo, BlockMsg},
};

use crate::{
    bcache::{BlockCache, CACHE_BLOCK_SIZE, DeviceId, Fill, Lookup},
    proto::{ExternalBuf, MAX_IO_LEN},
};
use spin::Mutex;

/// Most bytes in one request to the driver. virtio-blk takes at most 128 data segments
/// per request; 256 KiB of heap (or of pinned user pages, at any address) is at most 65
/// pages, so it always fits.
pub const MAX_DEVICE_REQUEST: usize = 256 << 10;

/// Writes in progress, for the range lock and for fsync.
#[derive(Default)]
struct Writes {
    next_seq: u64,
    /// Writes that arrived and have not finished (fsync waits for the older ones).
    pending: BTreeSet<u64>,
    /// Sector ranges `[start, end)` being written now.
    locked: Vec<(u64, u64)>,
    waiters: Vec<Waker>,
}

/// One block device behind devfs.
pub struct BlockDevice {
    pub(crate) name: Box<[u8]>,
    id: DeviceId,
    port: Port<BlockMsg>,
    info: BlockInfo,
    cache: Arc<BlockCache>,
    writes: Mutex<Writes>,
}

impl core::fmt::Debug for BlockDevice {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlockDevice")
            .field("name", &core::str::from_utf8(&self.name))
            .field("info", &self.info)
            .finish()
    }
}

/// A block device as an open file holds it (from the `OpenedDevice` reply to `Open`):
/// equal when it is the same device.
#[derive(Clone, Debug)]
pub struct DeviceRef(pub Arc<BlockDevice>);

impl PartialEq for DeviceRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for DeviceRef {}

/// Removes a write from `Writes::pending` (and its range from `locked`) however the
/// write ends, waking whoever waits for either.
/// A ticket whose write may have reached the device but did not finish (its future was
/// dropped) forgets the cached blocks of its bytes, whose contents are unknown.
struct WriteTicket<'a> {
    device: &'a BlockDevice,
    seq: u64,
    range: Option<(u64, u64)>,
    /// The bytes being written, until the write finished and patched the cache.
    unfinished: Option<(u64, usize)>,
}

impl Drop for WriteTicket<'_> {
    fn drop(&mut self) {
        if let Some((offset, len)) = self.unfinished {
            let device = self.device;
            device.cache.invalidate_range(device.id, offset, len);
        }
        let waiters = {
            let mut w = self.device.writes.lock();
            w.pending.remove(&self.seq);
            if let Some(range) = self.range
                && let Some(i) = w.locked.iter().position(|&r| r == range)
            {
                w.locked.swap_remove(i);
            }
            core::mem::take(&mut w.waiters)
        };
        for waker in waiters {
            waker.wake();
        }
    }
}

fn device_errno(name: &[u8], what: &str, lba: u64, error: BlockError) -> Errno {
    let name = core::str::from_utf8(name).unwrap_or("?");
    match error {
        BlockError::ReadOnly => Errno::RoFs,
        BlockError::Aborted => Errno::Intr,
        error => {
            log::error!(target: "vfs", "{name}: {what} at sector {lba}: {error}");
            Errno::Io
        }
    }
}

impl BlockDevice {
    /// # Errors
    /// `Inval` unless the sector size is a power of two from 512 to the cache block size.
    pub(crate) fn new(
        name: Box<[u8]>,
        id: DeviceId,
        port: Port<BlockMsg>,
        info: BlockInfo,
        cache: Arc<BlockCache>,
    ) -> Result<BlockDevice, Errno> {
        let ss = info.sector_size as usize;
        if !ss.is_power_of_two() || !(512..=CACHE_BLOCK_SIZE).contains(&ss) {
            return Err(Errno::Inval);
        }
        Ok(BlockDevice {
            name,
            id,
            port,
            info,
            cache,
            writes: Mutex::new(Writes::default()),
        })
    }

    /// The device's geometry.
    pub fn info(&self) -> BlockInfo {
        self.info
    }

    fn len_bytes(&self) -> u64 {
        self.info.len_bytes()
    }

    fn sector_size(&self) -> u64 {
        self.info.sector_size as u64
    }

    /// The bytes a read of `len` at `offset` gets: `None` at or past the end (end of
    /// file), else the length cut at the end of the device and at [`MAX_IO_LEN`].
    fn read_len(&self, offset: u64, len: usize) -> Option<usize> {
        let left = self.len_bytes().checked_sub(offset).filter(|&l| l > 0)?;
        Some(
            len.min(MAX_IO_LEN)
                .min(left.min(usize::MAX as u64) as usize),
        )
    }

    fn check_direct(&self, offset: u64, len: usize) -> Result<(), Errno> {
        let ss = self.sector_size();
        if !offset.is_multiple_of(ss) || !(len as u64).is_multiple_of(ss) {
            return Err(Errno::Inval);
        }
        Ok(())
    }

    /// The checks of a write of `len` bytes at `offset` that need no I/O: the bytes it
    /// will write (short across the end).
    ///
    /// # Errors
    /// `RoFs` on a read-only device, `Inval` for a misaligned direct write, `NoSpc` at
    /// or past the end.
    pub(crate) fn check_write(
        &self,
        offset: u64,
        len: usize,
        direct: bool,
    ) -> Result<usize, Errno> {
        if self.info.read_only {
            return Err(Errno::RoFs);
        }
        if direct {
            self.check_direct(offset, len)?;
        }
        if len == 0 {
            return Ok(0);
        }
        let left = self.len_bytes().saturating_sub(offset);
        if left == 0 {
            return Err(Errno::NoSpc);
        }
        Ok(len.min(left.min(usize::MAX as u64) as usize))
    }

    // ---------------------------------------------------------------- reads

    /// The inline half of a cached read: `Some(result)` when it is answered now (end of
    /// file, or every block cached: `buf` holds the bytes), `None` when the read must go
    /// to the devfs task.
    ///
    /// # Context
    /// The devfs port's handler; never waits.
    pub(crate) fn try_read_inline(
        &self,
        offset: u64,
        len: usize,
        buf: &mut Vec<u8>,
    ) -> Option<Result<usize, Errno>> {
        buf.clear();
        let Some(len) = self.read_len(offset, len) else {
            return Some(Ok(0));
        };
        buf.resize(len, 0);
        if self.cache.try_read(self.id, offset, buf) {
            Some(Ok(len))
        } else {
            buf.clear();
            None
        }
    }

    /// Reads up to `len` bytes at `offset` into `buf` (cleared first): through the cache,
    /// or straight from the device if `direct`.
    ///
    /// # Errors
    /// `Io` on a device error, `Inval` for a misaligned direct read.
    ///
    /// # Cancel safety
    /// Dropping the future drops the device reads in flight (their data is lost, the
    /// disk unchanged) and ends this read's cache fills, so the blocks are simply not
    /// cached and other readers waiting for them read them themselves.
    ///
    /// # Context
    /// A task (the devfs task); suspends on device I/O.
    pub async fn read(
        self: Arc<Self>,
        offset: u64,
        len: usize,
        direct: bool,
        mut buf: Vec<u8>,
    ) -> (Result<usize, Errno>, Vec<u8>) {
        buf.clear();
        if direct && let Err(e) = self.check_direct(offset, len) {
            return (Err(e), buf);
        }
        let len = match self.read_len(offset, len) {
            None | Some(0) => return (Ok(0), buf),
            Some(len) => len,
        };
        buf.resize(len, 0);
        let result = if direct {
            let lba = offset / self.sector_size();
            let (result, back) = self.device_io(false, lba, buf).await;
            buf = back;
            result
        } else {
            self.read_cached(offset, &mut buf).await
        };
        if result.is_err() {
            buf.clear();
        }
        (result.map(|()| len), buf)
    }

    /// Fills `out` with the bytes at `offset` through the cache.
    async fn read_cached(&self, offset: u64, out: &mut [u8]) -> Result<(), Errno> {
        let bs = CACHE_BLOCK_SIZE as u64;
        let first = offset / bs;
        let last = (offset + out.len() as u64 - 1) / bs;
        let mut waits = Vec::new();
        // Runs of consecutive missing blocks, each at most one device request.
        let mut runs: Vec<Vec<Fill>> = Vec::new();
        for block in first..=last {
            match self.cache.lookup(self.id, block, offset, out) {
                Lookup::Hit => {}
                Lookup::Loading(id) => waits.push((block, id)),
                Lookup::Miss(fill) => match runs.last_mut() {
                    Some(run)
                        if run.last().is_some_and(|f| f.block() + 1 == block)
                            && (run.len() + 1) * CACHE_BLOCK_SIZE <= MAX_DEVICE_REQUEST =>
                    {
                        run.push(fill)
                    }
                    _ => runs.push(vec![fill]),
                },
            }
        }
        let reads = runs.iter().map(|run| {
            let first = run[0].block();
            self.read_blocks(first, run.len() as u64)
        });
        let results = join_all(reads).await;
        let mut outcome = Ok(());
        for (run, result) in runs.into_iter().zip(results) {
            match result {
                Ok(data) => {
                    for (i, fill) in run.into_iter().enumerate() {
                        let start = i * CACHE_BLOCK_SIZE;
                        let end = (start + CACHE_BLOCK_SIZE).min(data.len());
                        let block = &data[start..end];
                        copy_block(fill.block(), block, offset, out);
                        fill.complete(block);
                    }
                }
                // Dropping the run's fills forgets them.
                Err(e) => outcome = Err(e),
            }
        }
        outcome?;
        // Blocks another request was reading: wait for it, then take them from the
        // cache, or read them here if they are gone again (evicted, or the fill failed).
        for (block, id) in waits {
            poll_fn(|cx| self.cache.poll_fill_done(id, cx)).await;
            match self.cache.lookup(self.id, block, offset, out) {
                Lookup::Hit => {}
                Lookup::Miss(fill) => {
                    let data = self.read_blocks(block, 1).await?;
                    copy_block(block, &data, offset, out);
                    fill.complete(&data);
                }
                // Someone started yet another fill: do not wait twice, read uncached.
                Lookup::Loading(_) => {
                    let data = self.read_blocks(block, 1).await?;
                    copy_block(block, &data, offset, out);
                }
            }
        }
        Ok(())
    }

    /// Reads `count` cache blocks from `first` (the last block of the device may be
    /// short).
    async fn read_blocks(&self, first: u64, count: u64) -> Result<Vec<u8>, Errno> {
        let bs = CACHE_BLOCK_SIZE as u64;
        let start = first * bs;
        let end = ((first + count) * bs).min(self.len_bytes());
        let buf = vec![0; (end - start) as usize];
        let (result, buf) = self.device_io(false, start / self.sector_size(), buf).await;
        result.map(|()| buf)
    }

    // ---------------------------------------------------------------- writes

    /// Writes `data` at `offset` (write-through; `direct` skips nothing but the cache's
    /// part in read-modify-write, and wants whole sectors). Returns the bytes written and
    /// `data`.
    ///
    /// # Errors
    /// As [`BlockDevice::check_write`], plus `Io` on a device error (the cache then
    /// forgets the blocks the write touched: their contents are unknown).
    ///
    /// # Cancel safety
    /// Dropping the future after the write went to the device leaves it to the device
    /// (it may or may not happen: `ports::proto::block`) and makes the cache forget the
    /// blocks it touched, so no stale copy survives. (The devfs task never does this: it
    /// finishes every write it started, also when the caller gave up.)
    ///
    /// # Context
    /// A task (the devfs task); suspends on device I/O and on overlapping writes.
    pub async fn write(
        self: Arc<Self>,
        offset: u64,
        data: Vec<u8>,
        direct: bool,
    ) -> (Result<usize, Errno>, Vec<u8>) {
        let n = match self.check_write(offset, data.len(), direct) {
            Ok(0) => return (Ok(0), data),
            Ok(n) => n,
            Err(e) => return (Err(e), data),
        };
        let ss = self.sector_size();
        let (s0, s1) = (offset / ss, (offset + n as u64).div_ceil(ss));
        let mut ticket = self.begin_write();
        self.lock_range(&mut ticket, (s0, s1)).await;
        ticket.unfinished = Some((offset, n));
        let aligned = offset.is_multiple_of(ss) && (n as u64).is_multiple_of(ss);
        let (result, data) = if aligned && n == data.len() {
            self.device_io(true, s0, data).await
        } else {
            match self.sectors_for(offset, &data[..n], s0, s1).await {
                Ok(sectors) => {
                    let (result, _) = self.device_io(true, s0, sectors).await;
                    (result, data)
                }
                Err(e) => {
                    ticket.unfinished = None; // nothing was written
                    return (Err(e), data);
                }
            }
        };
        // Before the reply (and before a later write to these sectors may start).
        match result {
            Ok(()) => self.cache.write_done(self.id, offset, &data[..n]),
            Err(_) => self.cache.invalidate_range(self.id, offset, n),
        }
        ticket.unfinished = None;
        drop(ticket);
        (result.map(|()| n), data)
    }

    /// The whole sectors `[s0, s1)` with `data` (at byte `offset`) laid over their
    /// current contents.
    async fn sectors_for(
        &self,
        offset: u64,
        data: &[u8],
        s0: u64,
        s1: u64,
    ) -> Result<Vec<u8>, Errno> {
        let ss = self.sector_size();
        let mut sectors = vec![0u8; ((s1 - s0) * ss) as usize];
        let end = offset + data.len() as u64;
        let head_partial = !offset.is_multiple_of(ss) || end < (s0 + 1) * ss;
        let tail_partial = !end.is_multiple_of(ss) && s1 - 1 != s0;
        if head_partial {
            self.old_sector(s0, &mut sectors[..ss as usize]).await?;
        }
        if tail_partial {
            let at = ((s1 - 1 - s0) * ss) as usize;
            self.old_sector(s1 - 1, &mut sectors[at..]).await?;
        }
        let at = (offset - s0 * ss) as usize;
        sectors[at..at + data.len()].copy_from_slice(data);
        Ok(sectors)
    }

    /// The current contents of one sector: from the cache, else from the device.
    async fn old_sector(&self, sector: u64, out: &mut [u8]) -> Result<(), Errno> {
        if self.cache.peek(self.id, sector * self.sector_size(), out) {
            return Ok(());
        }
        let (result, buf) = self.device_io(false, sector, vec![0; out.len()]).await;
        result?;
        out.copy_from_slice(&buf);
        Ok(())
    }

    fn begin_write(&self) -> WriteTicket<'_> {
        let mut w = self.writes.lock();
        let seq = w.next_seq;
        w.next_seq += 1;
        w.pending.insert(seq);
        WriteTicket {
            device: self,
            seq,
            range: None,
            unfinished: None,
        }
    }

    /// Waits until no other write holds a sector of `range`, then holds it.
    async fn lock_range(&self, ticket: &mut WriteTicket<'_>, range: (u64, u64)) {
        poll_fn(|cx| {
            let mut w = self.writes.lock();
            if w.locked.iter().any(|&(a, b)| a < range.1 && range.0 < b) {
                w.waiters.push(cx.waker().clone());
                return Poll::Pending;
            }
            w.locked.push(range);
            ticket.range = Some(range);
            Poll::Ready(())
        })
        .await
    }

    /// Waits for every write that arrived before this call, then flushes the device.
    ///
    /// # Errors
    /// `Io` if the device failed the flush.
    ///
    /// # Context
    /// A task (the devfs task); suspends.
    pub async fn fsync(self: Arc<Self>) -> Result<(), Errno> {
        let before = self.writes.lock().next_seq;
        poll_fn(|cx| {
            let mut w = self.writes.lock();
            if w.pending.first().is_some_and(|&seq| seq < before) {
                w.waiters.push(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(())
        })
        .await;
        let msg = BlockMsg::from_reply(self.port.call(BlockMsg::flush()).await);
        match msg.into_parts().0 {
            Ok(_) => Ok(()),
            Err(e) => Err(device_errno(&self.name, "flush", 0, e)),
        }
    }

    // ---------------------------------------------------------------- zero-copy direct I/O

    /// `O_DIRECT` read into caller memory: up to `buf.len()` bytes at `offset`, DMA'd by
    /// the device straight into `buf`'s segments. Returns the bytes read (short across
    /// the end of the device, 0 at or past it).
    ///
    /// # Errors
    /// `Inval` unless `offset` and `buf.len()` are whole sectors; `Io` on a device error.
    ///
    /// # Cancel safety
    /// Dropping the future orphans the device reads in flight: the driver keeps their
    /// pieces of `buf`, and so the memory's owner (the pin), until the device is done.
    ///
    /// # Context
    /// A task (the caller's, through an open file's device); suspends on device I/O.
    pub async fn read_external(&self, offset: u64, buf: ExternalBuf) -> Result<usize, Errno> {
        self.check_direct(offset, buf.len())?;
        let len = match self.read_len(offset, buf.len()) {
            None | Some(0) => return Ok(0),
            Some(len) => len,
        };
        let lba = offset / self.sector_size();
        self.device_io_external(false, lba, buf.truncate(len))
            .await
            .map(|()| len)
    }

    /// `O_DIRECT` write from caller memory: `buf` at `offset` (short across the end).
    /// Returns the bytes written. Overlapping writes are serialized as for
    /// [`BlockDevice::write`]; the cached blocks it overlaps are forgotten.
    ///
    /// # Errors
    /// As [`BlockDevice::check_write`] (with `direct`), plus `Io` on a device error.
    ///
    /// # Cancel safety
    /// As [`BlockDevice::write`]; the device keeps `buf`'s pieces until it is done.
    ///
    /// # Context
    /// A task (the caller's, through an open file's device); suspends on device I/O and
    /// on overlapping writes.
    pub async fn write_external(&self, offset: u64, buf: ExternalBuf) -> Result<usize, Errno> {
        let n = match self.check_write(offset, buf.len(), true)? {
            0 => return Ok(0),
            n => n,
        };
        let ss = self.sector_size();
        let (s0, s1) = (offset / ss, (offset + n as u64).div_ceil(ss));
        let mut ticket = self.begin_write();
        self.lock_range(&mut ticket, (s0, s1)).await;
        ticket.unfinished = Some((offset, n));
        let result = self.device_io_external(true, s0, buf.truncate(n)).await;
        // Before the reply (and before a later write to these sectors may start). The
        // data is only in the caller's memory, so the cache forgets rather than patches.
        self.cache.invalidate_range(self.id, offset, n);
        ticket.unfinished = None;
        drop(ticket);
        result.map(|()| n)
    }

    /// One read or write of whole sectors from `lba` on caller memory, split into
    /// requests of at most [`MAX_DEVICE_REQUEST`] bytes, all sent at once.
    async fn device_io_external(
        &self,
        write: bool,
        lba: u64,
        buf: ExternalBuf,
    ) -> Result<(), Errno> {
        let external_msg = |lba, piece| {
            if write {
                BlockMsg::write_external(lba, piece)
            } else {
                BlockMsg::read_external(lba, piece)
            }
        };
        if buf.len() <= MAX_DEVICE_REQUEST {
            // One request: the buffer goes as it is (no pieces, no join), and the call is
            // awaited right here (each async layer in between would hold its own copy
            // of the message in this future, which the ring allocates per request).
            let reply = self.port.call(external_msg(lba, buf)).await;
            return self.outcome(write, lba, reply).0;
        }
        let chunk_sectors = (MAX_DEVICE_REQUEST as u64) / self.sector_size();
        let calls = (0..buf.len())
            .step_by(MAX_DEVICE_REQUEST)
            .enumerate()
            .map(|(i, at)| {
                let piece = buf.slice(at, MAX_DEVICE_REQUEST.min(buf.len() - at));
                let lba = lba + i as u64 * chunk_sectors;
                self.device_result(write, lba, external_msg(lba, piece))
            })
            .collect::<Vec<_>>();
        // Our own reference goes now; the pieces in flight hold the memory.
        drop(buf);
        join_all(calls).await.into_iter().collect()
    }

    // ---------------------------------------------------------------- the device

    /// One read or write of whole sectors from `lba`, split into requests of at most
    /// [`MAX_DEVICE_REQUEST`] bytes, all sent at once. Hands `buf` back (for a read, with
    /// the data).
    async fn device_io(
        &self,
        write: bool,
        lba: u64,
        mut buf: Vec<u8>,
    ) -> (Result<(), Errno>, Vec<u8>) {
        let ss = self.sector_size() as usize;
        if buf.len() <= MAX_DEVICE_REQUEST {
            return self.device_call(write, lba, buf).await;
        }
        let chunk_sectors = (MAX_DEVICE_REQUEST / ss) as u64;
        let calls = buf
            .chunks(MAX_DEVICE_REQUEST)
            .enumerate()
            .map(|(i, chunk)| {
                let chunk = if write {
                    chunk.to_vec()
                } else {
                    vec![0; chunk.len()]
                };
                self.device_call(write, lba + i as u64 * chunk_sectors, chunk)
            });
        let results = join_all(calls).await;
        let mut outcome = Ok(());
        for (i, (result, chunk)) in results.into_iter().enumerate() {
            if let Err(e) = result {
                outcome = Err(e);
            } else if !write {
                let at = i * MAX_DEVICE_REQUEST;
                buf[at..at + chunk.len()].copy_from_slice(&chunk);
            }
        }
        (outcome, buf)
    }

    async fn device_call(
        &self,
        write: bool,
        lba: u64,
        buf: Vec<u8>,
    ) -> (Result<(), Errno>, Vec<u8>) {
        let msg = if write {
            BlockMsg::write(lba, buf)
        } else {
            BlockMsg::read(lba, buf)
        };
        let (result, buf) = self.device_result_parts(write, lba, msg).await;
        (result, buf)
    }

    /// Sends `msg` (the reply, with its external memory, is dropped here: the device is
    /// done with it).
    async fn device_result(&self, write: bool, lba: u64, msg: BlockMsg) -> Result<(), Errno> {
        self.device_result_parts(write, lba, msg).await.0
    }

    async fn device_result_parts(
        &self,
        write: bool,
        lba: u64,
        msg: BlockMsg,
    ) -> (Result<(), Errno>, Vec<u8>) {
        self.outcome(write, lba, self.port.call(msg).await)
    }

    /// A device reply as this layer's result (a device error logged and mapped to its
    /// errno), and the message's buffer.
    fn outcome(
        &self,
        write: bool,
        lba: u64,
        reply: ports::Reply<BlockMsg>,
    ) -> (Result<(), Errno>, Vec<u8>) {
        let (result, buf) = BlockMsg::from_reply(reply).into_parts();
        let result = match result {
            Ok(BlockDone::Done) => Ok(()),
            Ok(BlockDone::Info(_)) => Err(device_errno(&self.name, "answer", lba, BlockError::Io)),
            Err(e) => Err(device_errno(
                &self.name,
                if write { "write" } else { "read" },
                lba,
                e,
            )),
        };
        (result, buf)
    }
}

/// Copies the part of cache block `block` (its bytes: `data`) that a read of `out.len()`
/// bytes at `offset` wants.
fn copy_block(block: u64, data: &[u8], offset: u64, out: &mut [u8]) {
    let bs = CACHE_BLOCK_SIZE as u64;
    let block_start = block * bs;
    let start = offset.max(block_start);
    let end = (offset + out.len() as u64).min(block_start + data.len() as u64);
    if end > start {
        let (from, to) = ((start - block_start) as usize, (start - offset) as usize);
        let len = (end - start) as usize;
        out[to..to + len].copy_from_slice(&data[from..from + len]);
    }
}
