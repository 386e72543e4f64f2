// SPDX-License-Identifier: MIT OR Apache-2.0
//! The driver task: serves the block vocabulary port with many requests in flight.
//!
//! ```text
//!               (1) run: recv,           (2) start: map buf,         (3) device completes,
//!                   stamp arrival            add chain, deadline,        interrupt
//!  caller --call--> Server --Request--> [backlog] --publish, notify-->       |
//!     ^                                     |                               v
//!     +--reply(buf, result)-- (5) finish: unmap, status <-- (4) reap: pop_used
//!     |                                     |
//!     +--reply(TimedOut)----- (6) expire: the timer fired; a request past its deadline
//!                                 is answered now: from the backlog with its own buf,
//!                                 from the device with a zeroed buf while the chain
//!                                 stays in the table, abandoned, until (4)-(5) reclaim
//!                                 it without a reply
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
//! # Timeouts
//! A request handed to the device gets a deadline: the platform clock at (2) plus the
//! request timeout (`VirtioBlk::with_request_timeout`, default 30 s like Linux's block
//! layer). A request waiting in the backlog (the device holds every header slot or too
//! many descriptors) times out the same way, counted from its arrival at (1). The task
//! receives every queued message into the backlog as soon as it arrives, so each one is
//! stamped: every caller gets an answer within about two timeouts (one in the backlog,
//! one on the device) even if the device never completes anything again.
//!
//! The hot path reads the clock once per batch received and once per batch started, and
//! registers no timer per request: one `executor::Sleep` is armed only when none is and
//! something is waiting, at that thing's deadline (each wakeup of the task polls it: one
//! more clock read and a look-up of its wheel entry). Deadlines only grow (the timeout is
//! constant), so the armed one is never later than any pending deadline. When it fires,
//! (6) `expire` walks the in-flight table (at most queue-size entries) and the backlog
//! front, answers what is overdue, and re-arms for the earliest deadline left (or
//! disarms). Under steady load the timer so fires about once per timeout period.
//!
//! A timed-out request the device already owns cannot be taken back: the device may
//! still read or write its memory. So the driver keeps the lent memory (the mapped
//! buffer, or the `ExternalBuf` and with it the pin on the user pages), the header slot
//! and the descriptors, and answers the caller `TimedOut` with a fresh zeroed `buf` of
//! the withheld buffer's length (`external` requests: `buf` stays empty and `external`
//! comes back `None`). When the device completes the chain after all, `finish` reclaims
//! the slot and the descriptors, unmaps and frees the buffer (or drops the pin), logs a
//! warning and replies nothing. A device that never completes it keeps that memory, as
//! a broken ring does.
//!
//! # Cancel safety
//! A caller dropping its `call` orphans the message (`ports::Port::call`): the task keeps
//! the `Request` and the mapped buffer until the device completes the chain (or its
//! deadline passes: then as above); then the chain's descriptors are reclaimed, the
//! buffer is unmapped and the reply (dropped by ports) frees it (external memory: drops
//! the last hold on the pin). So a cancelled request never leaves the device writing
//! freed memory and never leaks descriptors. A request still in the backlog when its
//! caller aborts is answered with `Aborted` without reaching the device.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::{Future, poll_fn};
use core::pin::Pin;
use core::task::Poll;
use core::time::Duration;

use executor::Sleep;

use ports::proto::block::{BlockDone, BlockError, BlockInfo, BlockMsg, BlockRequest, ExternalBuf};
use ports::{Request, Server};
use virtio::queue::{DeviceError, Segment};
use virtio::transport::Notifier;
use virtio::{ChainId, DmaDirection, DmaMapper, DmaRegion, Registers, SplitQueue};

use crate::irq::{BlkInterrupt, Signal};
use crate::request::{
    HEADER_SLOT_BYTES, RequestHeader, VIRTIO_BLK_S_IOERR, VIRTIO_BLK_S_OK, VIRTIO_BLK_S_UNSUPP,
    VIRTIO_BLK_T_FLUSH, VIRTIO_BLK_T_IN, VIRTIO_BLK_T_OUT, read_status,
};

/// Most data segments one request may use (one chain = 2 + segments descriptors).
const MAX_DATA_SEGMENTS: usize = 128;

/// The request timeout unless `VirtioBlk::with_request_timeout` says otherwise: 30 s, the
/// default of Linux's block layer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A request's data memory while the device may use it.
enum Lent<P> {
    /// The message's `buf`, mapped by the `DmaMapper`.
    Mapped(P),
    /// The message's `external` memory, held so its owner outlives the DMA.
    External(ExternalBuf),
}

/// A chain the device owns.
struct InFlight<P> {
    /// `None` once the request timed out (abandoned): its caller has the answer, and the
    /// entry only keeps `mapped`, `slot` and the descriptors until the device is done.
    request: Option<Request<BlockMsg>>,
    mapped: Option<Lent<P>>,
    slot: u16,
    /// Bytes the device must report for success (data written by it + status byte).
    expect_len: u32,
    /// Bytes of data lent (the zeroed stand-in buffer of a timed-out request).
    data_len: u32,
    /// Platform clock (ns) from which the request is answered `TimedOut`.
    deadline_ns: u64,
    /// The request's `op_id`, for log lines once `request` is gone.
    op_id: u64,
}

/// A request in the backlog.
struct Waiting {
    request: Request<BlockMsg>,
    /// Platform clock (ns) when `run` received it; it times out a request timeout later.
    arrived_ns: u64,
}

/// What woke the driver task.
enum Event {
    /// The interrupt half raised the signal.
    Interrupt,
    /// The timeout timer fired.
    Timer,
    /// A new request.
    Request(Request<BlockMsg>),
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
    /// In arrival order, so `arrived_ns` never decreases front to back.
    backlog: VecDeque<Waiting>,
    /// The backlog front did not fit; retry only after a completion or an expiry changed
    /// something (new arrivals alone cannot make it fit).
    is_backlog_blocked: bool,
    /// See `with_request_timeout`.
    timeout_ns: u64,
    /// Armed at or before the earliest deadline while anything is in flight or waiting
    /// (module docs, "Timeouts"); `None` when nothing is.
    timer: Option<Sleep>,
    /// The device broke the used ring; every new request fails with `Io`.
    is_broken: bool,
    /// Buffers (and external memory, with its pin) of requests failed when the ring
    /// broke: the device may still write them, so they are never freed or unpinned (a
    /// deliberate leak; see `fail_in_flight`).
    quarantine: Vec<Lent<M::Mapped>>,
    /// Scratch for building a descriptor chain (kept, so its capacity is reused).
    chain: Vec<Segment>,
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
            is_backlog_blocked: false,
            timeout_ns: duration_ns(DEFAULT_REQUEST_TIMEOUT),
            timer: None,
            is_broken: false,
            quarantine: Vec::new(),
            chain: Vec::with_capacity(MAX_DATA_SEGMENTS + 2),
        };
        (driver, BlkInterrupt::new(isr, signal))
    }

    /// The geometry served for `Info`.
    pub fn info(&self) -> BlockInfo {
        self.info
    }

    /// Sets the request timeout (default [`DEFAULT_REQUEST_TIMEOUT`]): a request the
    /// device has not completed that long after it was handed over, or that waited that
    /// long in the backlog, is answered `BlockError::TimedOut` (module docs, "Timeouts").
    /// So every caller is answered within about twice this, whatever the device does.
    ///
    /// # Panics
    /// If `timeout` is zero (every request would time out).
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        assert!(!timeout.is_zero(), "virtio-blk: zero request timeout");
        self.timeout_ns = duration_ns(timeout);
        self
    }

    /// Chains handed to the device and not completed yet, timed-out (abandoned) ones
    /// included: the device still owns them.
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
    /// Reads that CPU's clock (`executor::now_ns`) and arms an `executor::Sleep` there.
    pub async fn run(mut self, mut server: Server<BlockMsg>) {
        loop {
            self.reap();
            self.start_backlog();
            // A broken ring may always look busy: do not spin on it.
            if self.queue.arm_interrupt() && !self.is_broken {
                continue;
            }
            let event = poll_fn(|cx| {
                // The timer first: a steady stream of interrupts must not starve it (a
                // hung chain among busy ones). It fires about once per timeout.
                if let Some(timer) = self.timer.as_mut()
                    && Pin::new(timer).poll(cx).is_ready()
                {
                    return Poll::Ready(Event::Timer);
                }
                if self.signal.poll_take(cx).is_ready() {
                    return Poll::Ready(Event::Interrupt);
                }
                // Always receive, also when nothing fits: a request waits in the backlog,
                // stamped, so its timeout runs (module docs, "Timeouts").
                if let Poll::Ready(request) = server.poll_recv(cx) {
                    return Poll::Ready(Event::Request(request));
                }
                Poll::Pending
            })
            .await;
            match event {
                Event::Interrupt => {}
                Event::Timer => {
                    self.timer = None;
                    self.expire(executor::now_ns());
                }
                Event::Request(request) => {
                    let now_ns = executor::now_ns();
                    self.enqueue(request, now_ns);
                    // Take what else is queued without waiting, so one notify covers a batch.
                    while self.backlog.len() < self.free_slots.len() {
                        match server.try_recv() {
                            Some(request) => self.enqueue(request, now_ns),
                            None => break,
                        }
                    }
                }
            }
        }
    }

    /// Appends a request received at `now_ns` to the backlog.
    fn enqueue(&mut self, request: Request<BlockMsg>, now_ns: u64) {
        self.arm_timer(now_ns.saturating_add(self.timeout_ns));
        self.backlog.push_back(Waiting {
            request,
            arrived_ns: now_ns,
        });
    }

    /// Arms the timer for `deadline_ns` unless it is armed: then it is armed for an
    /// earlier (or equal) deadline already, since deadlines only grow.
    fn arm_timer(&mut self, deadline_ns: u64) {
        if self.timer.is_none() {
            self.timer = Some(executor::sleep_until(deadline_ns));
        }
    }

    /// Starts backlog requests in order while they fit; one notify for the batch.
    fn start_backlog(&mut self) {
        if self.backlog.is_empty() || self.is_backlog_blocked {
            return;
        }
        let now_ns = executor::now_ns();
        let mut added = false;
        while let Some(Waiting {
            request,
            arrived_ns,
        }) = self.backlog.pop_front()
        {
            match self.start(request, now_ns) {
                Ok(true) => added = true,
                Ok(false) => {}
                Err(request) => {
                    self.backlog.push_front(Waiting {
                        request,
                        arrived_ns,
                    });
                    self.is_backlog_blocked = true;
                    break;
                }
            }
        }
        if added && self.queue.publish() {
            self.notifier.notify();
        }
    }

    /// Starts one request at `now_ns`: `Ok(true)` added to the queue, `Ok(false)`
    /// answered at once, `Err(request)` does not fit now.
    fn start(
        &mut self,
        mut request: Request<BlockMsg>,
        now_ns: u64,
    ) -> Result<bool, Request<BlockMsg>> {
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
        // The chain is built in a buffer kept between requests: no allocation and no
        // clearing of a worst-case array per request.
        let is_read = direction == Some(DmaDirection::FromDevice);
        let mut chain = core::mem::take(&mut self.chain);
        chain.clear();
        let header_addr = self.headers.device_addr() + (slot as usize * HEADER_SLOT_BYTES) as u64;
        chain.push(Segment {
            addr: header_addr,
            len: 16,
            device_writable: false,
        });
        let data = match (&mapped, direction) {
            (Some(Lent::Mapped(m)), _) => {
                chain.extend(self.mapper.segments(m).iter().map(|s| Segment {
                    addr: s.addr,
                    len: s.len,
                    device_writable: is_read,
                }));
                Ok(())
            }
            (Some(Lent::External(buf)), Some(direction)) => {
                self.push_external(buf, direction, &mut chain)
            }
            _ => Ok(()),
        };
        let data = data.and_then(|()| {
            // Room for the status segment too.
            if chain.len() < self.queue.size() as usize {
                Ok(())
            } else {
                Err(BlockError::Invalid)
            }
        });
        if let Err(error) = data {
            self.chain = chain;
            log::error!(target: "virtio-blk", "op={} cannot give {} bytes to the device: {error}", request.msg().op_id, data_len);
            if let Some(lent) = mapped {
                self.give_back(request.msg_mut(), lent);
            }
            return Ok(answer(request, Err(error)));
        }
        chain.push(Segment {
            addr: header_addr + 16,
            len: 1,
            device_writable: true,
        });
        RequestHeader { kind, sector }.write_to(&self.headers, slot as usize);
        let added = self.queue.add(&chain);
        self.chain = chain;
        let head = match added {
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
        let op_id = request.msg().op_id;
        log::debug!(target: "virtio-blk", "op={op_id} start {:?} chain={}", request.msg().request, head.0);
        let deadline_ns = now_ns.saturating_add(self.timeout_ns);
        self.arm_timer(deadline_ns);
        self.in_flight[head.index()] = Some(InFlight {
            request: Some(request),
            mapped,
            slot,
            expect_len: if is_read { data_len + 1 } else { 1 },
            data_len,
            deadline_ns,
            op_id,
        });
        Ok(true)
    }

    /// Appends the device addresses of external memory to `chain`, as device-writable
    /// segments when the device writes them (`FromDevice`).
    ///
    /// # Errors
    /// `Invalid` for more than `MAX_DATA_SEGMENTS` segments, `Io` for memory the device
    /// cannot reach.
    fn push_external(
        &self,
        buf: &ExternalBuf,
        direction: DmaDirection,
        chain: &mut Vec<Segment>,
    ) -> Result<(), BlockError> {
        let segments = buf.segments();
        if segments.len() > MAX_DATA_SEGMENTS {
            return Err(BlockError::Invalid);
        }
        for segment in segments {
            let addr = self
                .mapper
                .external_addr(segment.addr, segment.len, direction)
                .ok_or(BlockError::Io)?;
            chain.push(Segment {
                addr,
                len: segment.len,
                device_writable: direction == DmaDirection::FromDevice,
            });
        }
        Ok(())
    }

    /// Hands a request's data memory back to its message (the device is done with it,
    /// or never got it).
    fn give_back(&self, msg: &mut BlockMsg, lent: Lent<M::Mapped>) {
        match lent {
            Lent::Mapped(m) => msg.buf = self.mapper.unmap(m),
            Lent::External(buf) => msg.external = Some(buf),
        }
    }

    /// Answers every request whose deadline is at or before `now_ns` with `TimedOut`,
    /// then re-arms the timer for the earliest deadline left (module docs, "Timeouts").
    /// A timed-out chain stays in the table, abandoned, until the device completes it.
    fn expire(&mut self, now_ns: u64) {
        let timeout_ms = self.timeout_ns / 1_000_000;
        let mut next_ns: Option<u64> = None;
        for (chain, entry) in self.in_flight.iter_mut().enumerate() {
            let Some(entry) = entry else { continue };
            if entry.deadline_ns > now_ns {
                if entry.request.is_some() {
                    next_ns = Some(next_ns.map_or(entry.deadline_ns, |n| n.min(entry.deadline_ns)));
                }
                continue;
            }
            // `None`: abandoned already, waiting for the device.
            let Some(mut request) = entry.request.take() else {
                continue;
            };
            log::error!(target: "virtio-blk", "op={} {:?} timed out after {timeout_ms} ms on the device; chain {chain} and its memory stay with the device until it completes", entry.op_id, request.msg().request);
            // The lent buffer stays with the device: the reply carries a zeroed one of
            // the same length (external memory: nothing, `external` stays `None`). A
            // cancelled caller gets no reply to read, so spare the allocation.
            if matches!(entry.mapped, Some(Lent::Mapped(_))) && !request.is_abort_requested() {
                request.msg_mut().buf = vec![0; entry.data_len as usize];
            }
            answer(request, Err(BlockError::TimedOut));
        }
        // Arrival times only grow front to back: the overdue ones are a prefix.
        while let Some(front) = self.backlog.front() {
            let deadline_ns = front.arrived_ns.saturating_add(self.timeout_ns);
            if deadline_ns > now_ns {
                next_ns = Some(next_ns.map_or(deadline_ns, |n| n.min(deadline_ns)));
                break;
            }
            if let Some(Waiting { request, .. }) = self.backlog.pop_front() {
                log::error!(target: "virtio-blk", "op={} {:?} timed out after {timeout_ms} ms waiting for room in the queue", request.msg().op_id, request.msg().request);
                answer(request, Err(BlockError::TimedOut));
            }
            // The front changed: the new one may fit.
            self.is_backlog_blocked = false;
        }
        self.timer = next_ns.map(executor::sleep_until);
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
                // An abandoned (timed-out) chain's caller has its answer already.
                if let Some(request) = request {
                    answer(request, Err(BlockError::Io));
                }
            }
        }
        self.backlog.drain(..).for_each(|waiting| {
            answer(waiting.request, Err(BlockError::Io));
        });
        self.is_backlog_blocked = false;
    }

    /// Answers the request of a completed chain (`len`: `None` for a garbage length).
    fn finish(&mut self, chain: ChainId, len: Option<u32>) {
        let Some(entry) = self.in_flight.get_mut(chain.index()).and_then(Option::take) else {
            log::warn!(target: "virtio-blk", "completion for idle chain {}", chain.0);
            return;
        };
        let InFlight {
            request,
            mapped,
            slot,
            expect_len,
            op_id,
            ..
        } = entry;
        self.free_slots.push(slot);
        // Descriptors and a slot came free: the backlog front may fit now.
        self.is_backlog_blocked = false;
        let status = read_status(&self.headers, slot as usize);
        let Some(mut request) = request else {
            // Timed out earlier: the caller has its answer; release what the device held.
            match mapped {
                Some(Lent::Mapped(m)) => drop(self.mapper.unmap(m)),
                Some(Lent::External(buf)) => drop(buf),
                None => {}
            }
            log::warn!(target: "virtio-blk", "late completion for timed-out op={op_id} chain={} status={status:#x}; its memory is released", chain.0);
            return;
        };
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

/// `duration` in nanoseconds, saturating (some 584 years: never).
fn duration_ns(duration: Duration) -> u64 {
    duration.as_nanos().min(u64::MAX as u128) as u64
}

/// Completes and replies; returns `false` (the request did not go to the device).
fn answer(mut request: Request<BlockMsg>, result: Result<BlockDone, BlockError>) -> bool {
    request.msg_mut().complete(result);
    request.reply();
    false
}
