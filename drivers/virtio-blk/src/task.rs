// SPDX-License-Identifier: MIT OR Apache-2.0
//! The driver task: serves the block vocabulary port with many requests in flight.
//!
//! ```text
//!                 (1) recv                 (2) start: map buf,            (3) device
//!  caller --call--> Server --Request--> [backlog] --add chain, publish--> completes,
//!                                          |       notify if asked          interrupt
//!                                          |                                   |
//!  caller <--reply(buf, result)-- (5) finish: unmap, status <-- (4) reap: pop_used
//! ```
//!
//! One request = one chain: header slot (16 bytes, device-readable), the data buffer's
//! segments, the status byte (device-writable). A request whose chain does not fit the
//! free descriptors waits in a FIFO backlog until completions free some.
//!
//! The data is either the message's `buf`, lent to the device through the `DmaMapper`,
//! or the message's `external` memory (pinned user pages: zero-copy `O_DIRECT`), whose
//! physical segments become descriptors as they are (`DmaMapper::external_addr`), with
//! no copy. A request with more than `MAX_DATA_SEGMENTS` data segments (or more than
//! the queue holds) is refused with `Invalid`; callers split large requests
//! (`fs::blockdev::MAX_DEVICE_REQUEST`). The driver holds the `ExternalBuf` (so its
//! owner, the pin) exactly as long as it would hold a mapped buffer.
//!
//! # Cancel safety
//! A caller dropping its `call` orphans the message (`ports::Port::call`): the task keeps
//! the `Request` and the mapped buffer until the device completes the chain; then the
//! chain's descriptors are reclaimed, the buffer is unmapped and the reply (dropped by
//! ports) frees it (external memory: drops the last hold on the pin). So a cancelled
//! request never leaves the device writing freed memory and never leaks descriptors. A request still in the backlog when its caller aborts is
//! answered with `Aborted` without reaching the device.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::Poll;

use ports::proto::block::{BlockDone, BlockError, BlockInfo, BlockMsg, BlockRequest, ExternalBuf};
use ports::{Request, Server};
use virtio::queue::{DeviceError, Segment};
use virtio::transport::Notifier;
use virtio::{ChainId, DmaDirection, DmaMapper, DmaRegion, DmaSegment, Registers, SplitQueue};

use crate::irq::{BlkInterrupt, Signal};
use crate::request::{
    HEADER_SLOT_BYTES, RequestHeader, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, read_status,
};

/// Most data segments one request may use (one chain = 2 + segments descriptors).
const MAX_DATA_SEGMENTS: usize = 128;

/// A request's data memory while the device may use it.
enum Lent<P> {
    /// The message's `buf`, mapped by the `DmaMapper`.
    Mapped(P),
    /// The message's `external` memory, held so its owner outlives the DMA.
    External(ExternalBuf),
}

struct InFlight<P> {
    request: Request<BlockMsg>,
    mapped: Option<Lent<P>>,
    slot: u16,
    /// Bytes the device must report for success (data written by it + status byte).
    expect_len: u32,
}

/// A virtio-blk device, ready to serve: queue 0 set up and DRIVER_OK given.
///
/// `D`: DMA memory (the queue and the header slots); `N`: the notify window; `M`: the
/// buffer mapper.
pub struct VirtioBlk<D: DmaRegion, N: Registers, M: DmaMapper> {
    queue: SplitQueue<D>,
    headers: D,
    notifier: Notifier<N>,
    mapper: M,
    info: BlockInfo,
    signal: Arc<Signal>,
    in_flight: Vec<Option<InFlight<M::Mapped>>>,
    free_slots: Vec<u16>,
    backlog: VecDeque<Request<BlockMsg>>,
    /// The device broke the used ring; every new request fails with `Io`.
    is_broken: bool,
    /// Buffers (and external memory, with its pin) of requests failed when the ring
    /// broke: the device may still write them, so they are never freed or unpinned (a
    /// deliberate leak; see `fail_in_flight`).
    quarantine: Vec<Lent<M::Mapped>>,
}

impl<D: DmaRegion, N: Registers, M: DmaMapper> VirtioBlk<D, N, M> {
    /// A driver over an initialized queue 0. `headers` needs
    /// `queue.size() * HEADER_SLOT_BYTES` bytes of DMA memory. Returns the driver and the
    /// interrupt handle for the kernel's interrupt vector (with the ISR window `isr`).
    ///
    /// # Panics
    /// If `headers` is too small (a wiring bug).
    pub fn new<I: Registers>(
        queue: SplitQueue<D>,
        headers: D,
        notifier: Notifier<N>,
        mapper: M,
        info: BlockInfo,
        isr: I,
    ) -> (Self, BlkInterrupt<I>) {
        let size = queue.size();
        assert!(
            headers.len() >= size as usize * HEADER_SLOT_BYTES,
            "virtio-blk: header region too small"
        );
        let signal = Arc::new(Signal::default());
        let driver = VirtioBlk {
            queue,
            headers,
            notifier,
            mapper,
            info,
            signal: signal.clone(),
            in_flight: (0..size).map(|_| None).collect(),
            free_slots: (0..size).rev().collect(),
            backlog: VecDeque::new(),
            is_broken: false,
            quarantine: Vec::new(),
        };
        (driver, BlkInterrupt::new(isr, signal))
    }

    /// The geometry served for `Info`.
    pub fn info(&self) -> BlockInfo {
        self.info
    }

    /// Requests handed to the device and not completed yet.
    pub fn in_flight(&self) -> usize {
        self.queue.in_flight()
    }

    /// The driver task: serves `server` forever.
    ///
    /// # Cancel safety
    /// Meant to run until the device is removed. Dropping it drops the in-flight
    /// requests (their callers get `PortError::Unreplied`) and their mapped buffers while
    /// the device may still write them: reset the device (status 0) first.
    ///
    /// # Context
    /// One task on the CPU that owns the port; suspends while there is nothing to do.
    pub async fn run(mut self, mut server: Server<BlockMsg>) {
        loop {
            self.reap();
            self.start_backlog();
            // A broken ring may always look busy: do not spin on it.
            if self.queue.arm_interrupt() && !self.is_broken {
                continue;
            }
            let room = !self.free_slots.is_empty() && self.backlog.is_empty();
            let event = poll_fn(|cx| {
                if self.signal.poll_take(cx).is_ready() {
                    return Poll::Ready(None);
                }
                if room && let Poll::Ready(request) = server.poll_recv(cx) {
                    return Poll::Ready(Some(request));
                }
                Poll::Pending
            })
            .await;
            if let Some(request) = event {
                self.backlog.push_back(request);
                // Take what else is queued without waiting, so one notify covers a batch.
                while self.backlog.len() < self.free_slots.len() {
                    match server.try_recv() {
                        Some(request) => self.backlog.push_back(request),
                        None => break,
                    }
                }
            }
        }
    }

    /// Starts backlog requests in order while they fit; one notify for the batch.
    fn start_backlog(&mut self) {
        let mut added = false;
        while let Some(request) = self.backlog.pop_front() {
            match self.start(request) {
                Ok(true) => added = true,
                Ok(false) => {}
                Err(request) => {
                    self.backlog.push_front(request);
                    break;
                }
            }
        }
        if added && self.queue.publish() {
            self.notifier.notify();
        }
    }

    /// Starts one request: `Ok(true)` added to the queue, `Ok(false)` answered at once,
    /// `Err(request)` does not fit now.
    fn start(&mut self, mut request: Request<BlockMsg>) -> Result<bool, Request<BlockMsg>> {
        if request.is_abort_requested() {
            return Ok(answer(request, Err(BlockError::Aborted)));
        }
        if self.is_broken {
            return Ok(answer(request, Err(BlockError::Io)));
        }
        let msg = request.msg_mut();
        let (kind, sector, direction) = match msg.request {
            BlockRequest::Info => return Ok(answer(request, Ok(BlockDone::Info(self.info)))),
            BlockRequest::Flush if !self.info.has_flush => {
                // No write cache: completed writes are already durable.
                return Ok(answer(request, Ok(BlockDone::Done)));
            }
            BlockRequest::Flush => (VIRTIO_BLK_T_FLUSH, 0, None),
            BlockRequest::Write { .. } if self.info.read_only => {
                return Ok(answer(request, Err(BlockError::ReadOnly)));
            }
            BlockRequest::Read { lba } => (VIRTIO_BLK_T_IN, lba, Some(DmaDirection::FromDevice)),
            BlockRequest::Write { lba } => (VIRTIO_BLK_T_OUT, lba, Some(DmaDirection::ToDevice)),
        };
        if direction.is_some() {
            // External memory replaces `buf`; both at once is a caller bug.
            let both = msg.external.is_some() && !msg.buf.is_empty();
            if let Err(error) = self.info.check_range(sector, msg.data_len()) {
                return Ok(answer(request, Err(error)));
            }
            if both {
                return Ok(answer(request, Err(BlockError::Invalid)));
            }
        }
        let Some(&slot) = self.free_slots.last() else {
            return Err(request);
        };
        let data_len = msg.data_len() as u32;
        let mapped = match direction {
            None => None,
            Some(_) if msg.external.is_some() => msg.external.take().map(Lent::External),
            Some(direction) => match self.mapper.map(core::mem::take(&mut msg.buf), direction) {
                Ok(mapped) => Some(Lent::Mapped(mapped)),
                Err(buf) => {
                    msg.buf = buf;
                    log::error!(target: "virtio-blk", "op={} cannot map {} bytes", msg.op_id, data_len);
                    return Ok(answer(request, Err(BlockError::Io)));
                }
            },
        };
        let mut external = [DmaSegment { addr: 0, len: 0 }; MAX_DATA_SEGMENTS];
        let data = match (&mapped, direction) {
            (Some(Lent::Mapped(m)), _) => Ok(self.mapper.segments(m)),
            (Some(Lent::External(buf)), Some(direction)) => {
                self.external_segments(buf, direction, &mut external)
            }
            _ => Ok(&[][..]),
        };
        let data = match data {
            Ok(data) if data.len() + 2 <= self.queue.size() as usize => data,
            refused => {
                let error = refused.err().unwrap_or(BlockError::Invalid);
                log::error!(target: "virtio-blk", "op={} cannot give {} bytes to the device: {error}", request.msg().op_id, data_len);
                if let Some(lent) = mapped {
                    self.give_back(request.msg_mut(), lent);
                }
                return Ok(answer(request, Err(error)));
            }
        };
        let mut chain = [Segment {
            addr: 0,
            len: 0,
            device_writable: false,
        }; MAX_DATA_SEGMENTS + 2];
        chain[0] = Segment {
            addr: self.headers.device_addr() + (slot as usize * HEADER_SLOT_BYTES) as u64,
            len: 16,
            device_writable: false,
        };
        let is_read = direction == Some(DmaDirection::FromDevice);
        for (i, segment) in data.iter().enumerate() {
            chain[1 + i] = Segment {
                addr: segment.addr,
                len: segment.len,
                device_writable: is_read,
            };
        }
        chain[1 + data.len()] = Segment {
            addr: chain[0].addr + 16,
            len: 1,
            device_writable: true,
        };
        let chain = &chain[..data.len() + 2];
        RequestHeader { kind, sector }.write_to(&self.headers, slot as usize);
        let head = match self.queue.add(chain) {
            Ok(head) => head,
            Err(_) => {
                // Full: give the buffer back to the message and wait for completions.
                if let Some(lent) = mapped {
                    self.give_back(request.msg_mut(), lent);
                }
                return Err(request);
            }
        };
        self.free_slots.pop();
        log::debug!(target: "virtio-blk", "op={} start {:?} chain={}", request.msg().op_id, request.msg().request, head.0);
        self.in_flight[head.index()] = Some(InFlight {
            request,
            mapped,
            slot,
            expect_len: if is_read { data_len + 1 } else { 1 },
        });
        Ok(true)
    }

    /// The device addresses of external memory, into `out`.
    ///
    /// # Errors
    /// `Invalid` for more than `MAX_DATA_SEGMENTS` segments, `Io` for memory the device
    /// cannot reach.
    fn external_segments<'a>(
        &self,
        buf: &ExternalBuf,
        direction: DmaDirection,
        out: &'a mut [DmaSegment; MAX_DATA_SEGMENTS],
    ) -> Result<&'a [DmaSegment], BlockError> {
        let segments = buf.segments();
        if segments.len() > MAX_DATA_SEGMENTS {
            return Err(BlockError::Invalid);
        }
        for (slot, segment) in out.iter_mut().zip(segments) {
            let addr = self
                .mapper
                .external_addr(segment.addr, segment.len, direction)
                .ok_or(BlockError::Io)?;
            *slot = DmaSegment {
                addr,
                len: segment.len,
            };
        }
        Ok(&out[..segments.len()])
    }

    /// Hands a request's data memory back to its message (the device is done with it,
    /// or never got it).
    fn give_back(&self, msg: &mut BlockMsg, lent: Lent<M::Mapped>) {
        match lent {
            Lent::Mapped(m) => msg.buf = self.mapper.unmap(m),
            Lent::External(buf) => msg.external = Some(buf),
        }
    }

    /// Pops every used chain and answers its request.
    fn reap(&mut self) {
        loop {
            match self.queue.pop_used() {
                Ok(None) => return,
                Ok(Some(used)) => self.finish(used.chain, Some(used.len)),
                Err(DeviceError::UsedLenTooBig { chain, len, max }) => {
                    log::warn!(target: "virtio-blk", "chain {} used len {len} > {max}", chain.0);
                    self.finish(chain, None);
                }
                Err(error @ DeviceError::UsedIndexJump { .. }) => {
                    log::error!(target: "virtio-blk", "device broke the used ring: {error}; failing every request");
                    self.is_broken = true;
                    self.fail_in_flight();
                    return;
                }
                Err(error) => {
                    log::warn!(target: "virtio-blk", "garbage used element: {error}");
                }
            }
        }
    }

    /// The ring is broken: answers every in-flight request with `Io` so no caller waits
    /// forever. Their buffers stay with the device (kept in `quarantine`, never freed and
    /// not handed back: the one exception to "the buffer comes back", because the device
    /// may still write them); the message comes back with an empty `buf` and no
    /// `external` (whose pin, quarantined, then never ends: those user pages stay pinned
    /// and their address space is kept, for as long as the machine runs).
    fn fail_in_flight(&mut self) {
        for entry in self.in_flight.iter_mut() {
            if let Some(InFlight {
                request, mapped, ..
            }) = entry.take()
            {
                self.quarantine.extend(mapped);
                answer(request, Err(BlockError::Io));
            }
        }
        self.backlog.drain(..).for_each(|r| {
            answer(r, Err(BlockError::Io));
        });
    }

    /// Answers the request of a completed chain (`len`: `None` for a garbage length).
    fn finish(&mut self, chain: ChainId, len: Option<u32>) {
        let Some(entry) = self.in_flight.get_mut(chain.index()).and_then(Option::take) else {
            log::warn!(target: "virtio-blk", "completion for idle chain {}", chain.0);
            return;
        };
        let InFlight {
            mut request,
            mapped,
            slot,
            expect_len,
        } = entry;
        self.free_slots.push(slot);
        let status = read_status(&self.headers, slot as usize);
        if let Some(lent) = mapped {
            self.give_back(request.msg_mut(), lent);
        }
        let result = match (len, status) {
            (None, _) => Err(BlockError::Io),
            (Some(len), VIRTIO_BLK_S_OK) if len >= expect_len => Ok(BlockDone::Done),
            (Some(len), VIRTIO_BLK_S_OK) => {
                log::warn!(target: "virtio-blk", "op={} short completion {len} < {expect_len}", request.msg().op_id);
                Err(BlockError::Io)
            }
            (_, VIRTIO_BLK_S_IOERR) => Err(BlockError::Io),
            (_, VIRTIO_BLK_S_UNSUPP) => Err(BlockError::Unsupported),
            (_, status) => {
                log::warn!(target: "virtio-blk", "op={} garbage status {status:#x}", request.msg().op_id);
                Err(BlockError::Io)
            }
        };
        if let Err(error) = result {
            log::error!(target: "virtio-blk", "op={} {:?} failed: {error}", request.msg().op_id, request.msg().request);
        }
        answer(request, result);
    }
}

/// Completes and replies; returns `false` (the request did not go to the device).
fn answer(mut request: Request<BlockMsg>, result: Result<BlockDone, BlockError>) -> bool {
    request.msg_mut().complete(result);
    request.reply();
    false
}
