// SPDX-License-Identifier: MIT OR Apache-2.0
//! The block vocabulary: what a filesystem or block cache asks a disk driver.
//!
//! | request | `buf` in | `buf` out | `Ok(..)` |
//! |---|---|---|---|
//! | `Read { lba }` | `len` = bytes to read (a multiple of the sector size) | the data | `Done` |
//! | `Write { lba }` | the data (a multiple of the sector size) | unchanged | `Done` |
//! | `Flush` | unused | unchanged | `Done` |
//! | `Info` | unused | unchanged | `Info(BlockInfo)` |
//!
//! Instead of `buf`, a `Read` or `Write` may carry an [`ExternalBuf`] in `external`:
//! memory the caller already holds by its physical segments (pinned user pages for
//! `O_DIRECT`), which the driver hands to the device as they are, with no copy. `buf` is
//! then empty; the data length is [`ExternalBuf::len`]. The `ExternalBuf` owns a guard
//! (the pin) and comes back in the reply like `buf`; the driver keeps it for as long as
//! the device may touch the memory (also on abort and when the device breaks), so the
//! guard is never dropped while a DMA into the segments can still happen.
//!
//! `lba` counts sectors of [`BlockInfo::sector_size`] bytes. The buffer comes back in
//! every reply, also on error and also when the port itself failed
//! ([`BlockMsg::from_reply`]). A driver may serve many messages at once and complete them
//! in any order; a caller that needs ordering waits for the earlier reply (or issues a
//! `Flush`, which completes only after every write completed before it was sent).
//!
//! # Cancel safety
//! Dropping a `Port::call` in flight orphans the message (see `ports::Port::call`): the
//! driver keeps the buffer until the device is done with it, then the reply is dropped.
//! So memory is never freed under a device's DMA. What that means per request:
//! - `Read`: the data is lost; the disk is unchanged. Safe to retry.
//! - `Write`: the write may or may not reach the disk (a request the device has started
//!   cannot be taken back). Re-issue it, or read the sectors back, before relying on them.
//! - `Flush`: may or may not have happened; issue another.
//! - `Info`: no effect.
//!
//! A driver may use `Request::is_abort_requested` to drop a request it has not given to
//! the device yet, answering [`BlockError::Aborted`].

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::any::Any;
use core::fmt;

use smallvec::SmallVec;

use crate::{PortError, Reply};

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockRequest {
    /// Read `buf.len()` bytes starting at sector `lba`.
    Read {
        /// First sector.
        lba: u64,
    },
    /// Write `buf` starting at sector `lba`.
    Write {
        /// First sector.
        lba: u64,
    },
    /// Make every write that completed before this request was sent durable.
    Flush,
    /// The device's geometry.
    Info,
}

/// A device's geometry and write policy (the answer to `Info`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Capacity in sectors.
    pub sectors: u64,
    /// Bytes per sector (`lba` unit; 512 for virtio-blk).
    pub sector_size: u32,
    /// Writes are refused with [`BlockError::ReadOnly`].
    pub read_only: bool,
    /// `Flush` does something (the device has a volatile write cache). When `false`,
    /// `Flush` still succeeds: every completed write is already durable.
    pub has_flush: bool,
}

impl BlockInfo {
    /// Capacity in bytes.
    pub fn len_bytes(&self) -> u64 {
        self.sectors.saturating_mul(self.sector_size as u64)
    }

    /// Checks a read or write of `len_bytes` at `lba` against this geometry.
    ///
    /// # Errors
    /// [`BlockError::Invalid`] if `len_bytes` is zero or not a multiple of the sector size,
    /// [`BlockError::OutOfRange`] if the range ends past the last sector.
    pub fn check_range(&self, lba: u64, len_bytes: usize) -> Result<(), BlockError> {
        let size = self.sector_size as usize;
        if len_bytes == 0 || size == 0 || !len_bytes.is_multiple_of(size) {
            return Err(BlockError::Invalid);
        }
        let count = (len_bytes / size) as u64;
        match lba.checked_add(count) {
            Some(end) if end <= self.sectors => Ok(()),
            _ => Err(BlockError::OutOfRange),
        }
    }
}

/// A successful result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockDone {
    /// `Read`, `Write` or `Flush` completed (a read's data is in `buf`).
    Done,
    /// The answer to `Info`.
    Info(BlockInfo),
}

/// Why a block request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockError {
    /// The device reported an error, or answered with garbage.
    #[doc(alias = "EIO")]
    Io,
    /// A write to a read-only device.
    #[doc(alias = "EROFS")]
    ReadOnly,
    /// The device does not support this request.
    #[doc(alias = "EOPNOTSUPP")]
    Unsupported,
    /// The buffer is empty or not a multiple of the sector size.
    #[doc(alias = "EINVAL")]
    Invalid,
    /// The range ends past the last sector.
    #[doc(alias = "ENXIO")]
    OutOfRange,
    /// No driver behind the port (it is gone, or the message came back unserved).
    #[doc(alias = "ENODEV")]
    NoDevice,
    /// The caller aborted the request before the device started it.
    #[doc(alias = "EINTR")]
    Aborted,
    /// The device did not answer in time.
    #[doc(alias = "ETIMEDOUT")]
    TimedOut,
}

impl BlockError {
    /// The Linux errno number (`abi::Errno::from_i32` turns it into an `Errno`).
    pub const fn errno(self) -> i32 {
        match self {
            BlockError::Io => 5,
            BlockError::ReadOnly => 30,
            BlockError::Unsupported => 95,
            BlockError::Invalid => 22,
            BlockError::OutOfRange => 6,
            BlockError::NoDevice => 19,
            BlockError::Aborted => 4,
            BlockError::TimedOut => 110,
        }
    }
}

impl fmt::Display for BlockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BlockError::Io => "device I/O error",
            BlockError::ReadOnly => "device is read-only",
            BlockError::Unsupported => "request not supported by the device",
            BlockError::Invalid => "buffer is not a whole number of sectors",
            BlockError::OutOfRange => "range ends past the last sector",
            BlockError::NoDevice => "no driver serves the port",
            BlockError::Aborted => "request aborted",
            BlockError::TimedOut => "device timed out",
        })
    }
}

impl core::error::Error for BlockError {}

impl From<PortError> for BlockError {
    fn from(_: PortError) -> Self {
        BlockError::NoDevice
    }
}

/// One physically contiguous piece of caller memory (a physical address; the driver's DMA
/// mapper turns it into a device address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysSegment {
    /// Physical address of the first byte.
    pub addr: u64,
    /// Length in bytes (not zero).
    pub len: u32,
}

/// Memory outside the message that a device reads or writes directly: its physical
/// segments in order, and the owner that keeps them valid (for user pages, the pin).
///
/// The owner is shared by every piece cut from one buffer ([`ExternalBuf::slice`]), so
/// the memory is released (unpinned) when the last piece is dropped. Whoever holds a
/// piece while a device may access its segments must not drop it before the device is
/// done: that is the driver's whole duty here.
#[derive(Clone)]
pub struct ExternalBuf {
    /// Inline up to two (a page-sized buffer not aligned to a page has two), so the
    /// common request allocates nothing for its segment list.
    segments: SmallVec<[PhysSegment; 2]>,
    len: usize,
    owner: Arc<dyn Any + Send + Sync>,
}

impl ExternalBuf {
    /// A buffer over `segments` kept valid by `owner` (dropped with the last piece).
    /// Empty segments are dropped.
    pub fn new(
        segments: impl IntoIterator<Item = PhysSegment>,
        owner: Arc<dyn Any + Send + Sync>,
    ) -> ExternalBuf {
        let segments: SmallVec<[PhysSegment; 2]> =
            segments.into_iter().filter(|s| s.len > 0).collect();
        let len = segments.iter().map(|s| s.len as usize).sum();
        ExternalBuf {
            segments,
            len,
            owner,
        }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// `true` if there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The segments, in buffer order.
    pub fn segments(&self) -> &[PhysSegment] {
        &self.segments
    }

    /// The owner (to look at it in tests, or to tell two buffers apart).
    pub fn owner(&self) -> &Arc<dyn Any + Send + Sync> {
        &self.owner
    }

    /// The first `len` bytes of this buffer (all of it if `len` is larger), in place:
    /// no new segment list, unlike [`ExternalBuf::slice`].
    pub fn truncate(mut self, len: usize) -> ExternalBuf {
        if len >= self.len {
            return self;
        }
        let mut left = len;
        let mut keep = 0;
        for s in &mut self.segments {
            if left == 0 {
                break;
            }
            let take = (s.len as usize).min(left);
            s.len = take as u32;
            left -= take;
            keep += 1;
        }
        self.segments.truncate(keep);
        self.len = len;
        self
    }

    /// The piece `[offset, offset + len)` of this buffer, sharing its owner.
    ///
    /// # Panics
    /// If the range is not inside the buffer (a caller bug).
    pub fn slice(&self, offset: usize, len: usize) -> ExternalBuf {
        assert!(
            offset.checked_add(len).is_some_and(|end| end <= self.len),
            "ExternalBuf::slice {offset}+{len} of {}",
            self.len
        );
        let (mut skip, mut left) = (offset, len);
        let mut segments = SmallVec::new();
        for s in &self.segments {
            let s_len = s.len as usize;
            if skip >= s_len {
                skip -= s_len;
                continue;
            }
            if left == 0 {
                break;
            }
            let take = (s_len - skip).min(left);
            segments.push(PhysSegment {
                addr: s.addr + skip as u64,
                len: take as u32,
            });
            skip = 0;
            left -= take;
        }
        ExternalBuf {
            segments,
            len,
            owner: self.owner.clone(),
        }
    }
}

impl fmt::Debug for ExternalBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalBuf")
            .field("len", &self.len)
            .field("segments", &self.segments.len())
            .finish()
    }
}

/// Two buffers are equal when they name the same memory.
impl PartialEq for ExternalBuf {
    fn eq(&self, other: &Self) -> bool {
        self.segments == other.segments
    }
}

impl Eq for ExternalBuf {}

/// One block request and, once replied, its result: a [`BlockFields`] in its own
/// allocation, reached through `Deref` (`msg.buf`, `msg.result`, ...).
///
/// DragonFly passes messages by reference, and so does this: a block message travels
/// from the caller through the port queue, the driver's backlog and in-flight table and
/// back as one pointer, so each hand-over copies 8 bytes, not the fields (some 140
/// bytes, about a dozen hand-overs per request). Boxing costs one allocation per
/// message; the copies it removes cost more.
#[derive(Debug)]
pub struct BlockMsg(Box<BlockFields>);

impl core::ops::Deref for BlockMsg {
    type Target = BlockFields;

    fn deref(&self) -> &BlockFields {
        &self.0
    }
}

impl core::ops::DerefMut for BlockMsg {
    fn deref_mut(&mut self) -> &mut BlockFields {
        &mut self.0
    }
}

/// The fields of a [`BlockMsg`].
#[derive(Debug)]
pub struct BlockFields {
    /// Correlation id for log lines (the Sqe's `user_data` where there is one).
    pub op_id: u64,
    /// What to do.
    pub request: BlockRequest,
    /// The data buffer (see the table in the module docs). Always handed back.
    pub buf: Vec<u8>,
    /// External memory to read into or write from instead of `buf` (then empty). Always
    /// handed back, except when the device broke with it in flight (the driver then keeps
    /// it, and so the memory, forever).
    pub external: Option<ExternalBuf>,
    /// `None` until served.
    pub result: Option<Result<BlockDone, BlockError>>,
}

impl BlockMsg {
    fn new(request: BlockRequest, buf: Vec<u8>, external: Option<ExternalBuf>) -> BlockMsg {
        BlockMsg(Box::new(BlockFields {
            op_id: 0,
            request,
            buf,
            external,
            result: None,
        }))
    }

    /// Read `buf.len()` bytes at `lba` straight into external memory.
    pub fn read_external(lba: u64, buf: ExternalBuf) -> BlockMsg {
        BlockMsg::new(BlockRequest::Read { lba }, Vec::new(), Some(buf))
    }

    /// Write external memory at `lba`.
    pub fn write_external(lba: u64, buf: ExternalBuf) -> BlockMsg {
        BlockMsg::new(BlockRequest::Write { lba }, Vec::new(), Some(buf))
    }

    /// The bytes a `Read` or `Write` moves: the external buffer's length, else `buf`'s.
    pub fn data_len(&self) -> usize {
        self.external
            .as_ref()
            .map_or(self.buf.len(), ExternalBuf::len)
    }

    /// Read `buf.len()` bytes at `lba`.
    pub fn read(lba: u64, buf: Vec<u8>) -> BlockMsg {
        BlockMsg::new(BlockRequest::Read { lba }, buf, None)
    }

    /// Write `buf` at `lba`.
    pub fn write(lba: u64, buf: Vec<u8>) -> BlockMsg {
        BlockMsg::new(BlockRequest::Write { lba }, buf, None)
    }

    /// Flush the device's write cache.
    pub fn flush() -> BlockMsg {
        BlockMsg::new(BlockRequest::Flush, Vec::new(), None)
    }

    /// Ask for the geometry.
    pub fn info() -> BlockMsg {
        BlockMsg::new(BlockRequest::Info, Vec::new(), None)
    }

    /// Sets the correlation id.
    pub fn with_op_id(mut self, op_id: u64) -> BlockMsg {
        self.op_id = op_id;
        self
    }

    /// Completes the message (driver side).
    pub fn complete(&mut self, result: Result<BlockDone, BlockError>) {
        self.result = Some(result);
    }

    /// Folds a port reply into the message: a port error becomes
    /// [`BlockError::NoDevice`], an unserved message too. The buffer is never lost.
    pub fn from_reply(reply: Reply<BlockMsg>) -> BlockMsg {
        match reply {
            Ok(mut msg) => {
                if msg.result.is_none() {
                    msg.result = Some(Err(BlockError::NoDevice));
                }
                msg
            }
            Err((error, mut msg)) => {
                msg.result = Some(Err(error.into()));
                msg
            }
        }
    }

    /// The result and the buffer (`None` result reads as `NoDevice`).
    pub fn into_parts(self) -> (Result<BlockDone, BlockError>, Vec<u8>) {
        let fields = *self.0;
        (
            fields.result.unwrap_or(Err(BlockError::NoDevice)),
            fields.buf,
        )
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    fn geometry() -> BlockInfo {
        BlockInfo {
            sectors: 100,
            sector_size: 512,
            read_only: false,
            has_flush: true,
        }
    }

    #[test]
    fn check_range_accepts_whole_sectors_inside_the_device() {
        let info = geometry();
        assert_eq!(info.check_range(0, 512), Ok(()));
        assert_eq!(info.check_range(99, 512), Ok(()));
        assert_eq!(info.check_range(0, 100 * 512), Ok(()));
        assert_eq!(info.len_bytes(), 51200);
    }

    #[test]
    fn check_range_rejects_partial_sectors_and_overruns() {
        let info = geometry();
        assert_eq!(info.check_range(0, 0), Err(BlockError::Invalid));
        assert_eq!(info.check_range(0, 513), Err(BlockError::Invalid));
        assert_eq!(info.check_range(100, 512), Err(BlockError::OutOfRange));
        assert_eq!(info.check_range(99, 1024), Err(BlockError::OutOfRange));
        assert_eq!(info.check_range(u64::MAX, 512), Err(BlockError::OutOfRange));
    }

    #[test]
    fn external_truncate_keeps_a_prefix_in_place() {
        let owner: Arc<()> = Arc::new(());
        let segments = vec![
            PhysSegment {
                addr: 0x1000,
                len: 100,
            },
            PhysSegment {
                addr: 0x9000,
                len: 4096,
            },
        ];
        let buf = ExternalBuf::new(segments.clone(), owner.clone());
        let whole = buf.clone().truncate(5000);
        assert_eq!((whole.len(), whole.segments()), (4196, &segments[..]));
        let cut = buf.clone().truncate(150);
        assert_eq!(cut.len(), 150);
        assert_eq!(
            cut.segments(),
            &[
                segments[0],
                PhysSegment {
                    addr: 0x9000,
                    len: 50
                }
            ]
        );
        let first = buf.clone().truncate(100);
        assert_eq!((first.len(), first.segments()), (100, &segments[..1]));
        let none = buf.truncate(0);
        assert!(none.is_empty() && none.segments().is_empty());
        drop((whole, cut, first));
        assert_eq!(
            Arc::strong_count(&owner),
            2,
            "only `none` and `owner` are left"
        );
    }

    #[test]
    fn external_slices_cut_segments_and_share_the_owner() {
        let owner: Arc<()> = Arc::new(());
        let buf = ExternalBuf::new(
            vec![
                PhysSegment {
                    addr: 0x1000,
                    len: 100,
                },
                PhysSegment {
                    addr: 0x5000,
                    len: 0,
                },
                PhysSegment {
                    addr: 0x9000,
                    len: 4096,
                },
            ],
            owner.clone(),
        );
        assert_eq!((buf.len(), buf.segments().len()), (4196, 2));
        let piece = buf.slice(50, 1000);
        assert_eq!(
            piece.segments(),
            &[
                PhysSegment {
                    addr: 0x1000 + 50,
                    len: 50
                },
                PhysSegment {
                    addr: 0x9000,
                    len: 950
                },
            ]
        );
        assert_eq!(
            buf.slice(100, 4096).segments(),
            &[PhysSegment {
                addr: 0x9000,
                len: 4096
            }]
        );
        assert!(buf.slice(4196, 0).is_empty());
        assert_eq!(Arc::strong_count(&owner), 3);
        let msg = BlockMsg::read_external(7, piece);
        assert_eq!((msg.data_len(), msg.buf.len()), (1000, 0));
        drop((buf, msg));
        assert_eq!(
            Arc::strong_count(&owner),
            1,
            "the last piece releases the owner"
        );
    }

    #[test]
    fn errno_values_are_linux_numbers() {
        assert_eq!(BlockError::Io.errno(), 5);
        assert_eq!(BlockError::ReadOnly.errno(), 30);
        assert_eq!(BlockError::Unsupported.errno(), 95);
    }

    #[test]
    fn port_errors_hand_the_buffer_back_as_no_device() {
        let msg = BlockMsg::read(3, vec![7; 512]).with_op_id(42);
        let back = BlockMsg::from_reply(Err((PortError::Closed, msg)));
        assert_eq!(back.op_id, 42);
        let (result, buf) = back.into_parts();
        assert_eq!(result, Err(BlockError::NoDevice));
        assert_eq!(buf, vec![7; 512]);
    }

    #[test]
    fn an_unserved_reply_reads_as_no_device() {
        let back = BlockMsg::from_reply(Ok(BlockMsg::flush()));
        assert_eq!(back.result, Some(Err(BlockError::NoDevice)));
        let mut done = BlockMsg::write(1, vec![0; 512]);
        done.complete(Ok(BlockDone::Done));
        assert_eq!(
            BlockMsg::from_reply(Ok(done)).into_parts().0,
            Ok(BlockDone::Done)
        );
    }

    #[test]
    fn function_port_serves_the_vocabulary_inline() {
        let port = crate::Port::function(|mut msg: BlockMsg| {
            let result = match msg.request {
                BlockRequest::Info => Ok(BlockDone::Info(geometry())),
                BlockRequest::Read { .. } => {
                    msg.buf.fill(0xab);
                    Ok(BlockDone::Done)
                }
                _ => Err(BlockError::ReadOnly),
            };
            msg.complete(result);
            msg
        });
        let msg = BlockMsg::from_reply(executor::hosted::block_on_thread(
            port.call(BlockMsg::read(0, vec![0; 512])),
        ));
        assert_eq!(msg.buf, vec![0xab; 512]);
        let msg = BlockMsg::from_reply(executor::hosted::block_on_thread(
            port.call(BlockMsg::write(0, vec![1; 512])),
        ));
        assert_eq!(msg.into_parts(), (Err(BlockError::ReadOnly), vec![1; 512]));
    }
}
