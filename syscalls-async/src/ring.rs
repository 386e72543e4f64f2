// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ring engine: fetch a bounded batch of `Sqe`s from the shared submission queue,
//! decode them, group them into chains, run each chain (inline first, then on the ring
//! task), and post `Cqe`s without ever losing one.
//!
//! # Shared memory discipline
//!
//! The region is only touched through atomics ([`SharedRegion`]). The kernel keeps its own
//! copies of the indices it owns (SQ head, CQ tail) and of the geometry (mask, entries)
//! and never reads those back; from userland it reads only the SQ tail and the CQ head.
//! Each `Sqe` is read exactly once (eight 64-bit loads into a local, or sixteen 32-bit ones
//! where the region offers no 64-bit view) and decoded from that copy. A tail that claims
//! more than `entries` new entries marks the ring corrupt ([`SQ_CORRUPT`]) and nothing
//! more is consumed. A CQ head that claims an impossible fill level makes the CQ look full
//! (completions wait in the overflow list).
//!
//! # Chains
//!
//! ```text
//!  Sqe(LINK) ─► Sqe(HARDLINK) ─► Sqe(LINK) ─► LinkTimeout ─► Sqe       one chain
//!      │ fails: the rest of the chain completes with -ECANCELED
//!                 │ fails: the chain goes on
//!                                  │ guarded by the timeout (op -ECANCELED, timeout -ETIME)
//! ```
//!
//! A chain ends at an entry without `LINK`/`HARDLINK` or at the end of the batch. A chain
//! is one future that runs its entries in order. Chains are started in submission order,
//! subject to `DRAIN`: a chain with a `DRAIN` entry waits until everything started before
//! it has completed, and nothing after it starts until it has completed (the `deferred`
//! queue holds the waiting chains).
//!
//! # An operation's life
//!
//! 1. `submit` fetches and decodes; `start` polls the chain's future once, inline.
//! 2. `Ready`: its `Cqe`s are already posted (before `RingEnter` returns).
//! 3. `Pending`: the future moves to the in-flight set, driven by [`Ring::run`] (the ring
//!    task); it posts its `Cqe`s when done.
//! 4. Cancellation (`Cancel`, a link timeout, [`Ring::cancel_all`]) sets the entry's
//!    token; the wrapper drops the operation at its next poll and completes with
//!    `-ECANCELED`. Dropping is the cancellation: no user memory is touched afterwards.
//!
//! # Back-pressure
//!
//! `post` writes into the CQ only when no older completion is waiting and the CQ has
//! room; otherwise the completion goes to the overflow list, and [`CQ_OVERFLOW`] and
//! [`SQ_CQ_FULL`] are set. While the list is not empty nothing is fetched (`RingEnter`
//! returns `-EBUSY` when asked to submit), so the list never holds more than the number of
//! operations in flight. The list is flushed into the CQ whenever the kernel looks
//! (`RingEnter`, every post, the ring task, the polling task).

use alloc::{
    boxed::Box,
    collections::VecDeque,
    sync::{Arc, Weak},
    task::Wake,
    vec::Vec,
};
use core::{
    future::{Future, poll_fn},
    pin::pin,
    sync::atomic::{AtomicU32, Ordering, fence},
    task::{Context, Poll, Waker},
};

use abi::{
    Cqe, Errno, RingEnterFlags, RingLayout, Sqe, SqeFlags,
    ring::{CQ_OVERFLOW, SQ_CORRUPT, SQ_CQ_FULL, SQ_NEED_WAKEUP, ring_header},
};
use futures_util::{StreamExt, stream::FuturesUnordered, task::AtomicWaker};
use slab::Slab;
use smallvec::SmallVec;

use crate::{
    decode::{Deadline, Request, decode},
    kernel::{BoxFuture, ClockId, Kernel, RegionView as View, SharedRegion},
    ops,
    ops::deadline_ns,
    process::Process,
    sync::{CancelToken, Either, Notify, race},
};

/// Default polled-mode idle time before the polling task sleeps.
pub const DEFAULT_SQ_IDLE_NS: u64 = 1_000_000;

struct LinkTimer {
    user_data: u64,
    flags: SqeFlags,
    deadline: Deadline,
    token: Arc<CancelToken>,
    /// Where `token` is registered in `State::tokens` (set at registration).
    slot: usize,
}

struct Entry {
    user_data: u64,
    flags: SqeFlags,
    request: Result<Request, Errno>,
    token: Arc<CancelToken>,
    /// Where `token` is registered in `State::tokens` (set at registration).
    slot: usize,
    link_timeout: Option<LinkTimer>,
    /// A failure of this entry does not break the chain (`HARDLINK`).
    hard: bool,
}

/// A chain's entries: most chains are one entry, kept inline (no allocation).
type Entries = SmallVec<[Entry; 1]>;

struct Chain {
    entries: Entries,
    drain: bool,
    force_async: bool,
}

struct State {
    /// Kernel-owned SQ consumer index.
    sq_head: u32,
    /// Kernel-owned CQ producer index.
    cq_tail: u32,
    sq_flags: u32,
    cq_flags: u32,
    overflow: VecDeque<Cqe>,
    overflow_total: u32,
    /// Chains started and not yet finished.
    in_flight: usize,
    deferred: VecDeque<Chain>,
    draining: bool,
    closed: bool,
    corrupt: bool,
    /// Cancel tokens of every entry not yet completed, with its `user_data`. Each entry
    /// keeps its slot, so registering and unregistering take constant time and allocate
    /// nothing once the slab has grown; a cancel by `user_data` looks at every slot
    /// (cancels are rare, completions are not).
    tokens: Slab<(u64, Arc<CancelToken>)>,
}

/// What [`Ring::enter_start`] did: the entries it consumed and the absolute deadline of
/// the wait that may follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EnterStarted {
    /// Entries consumed from the SQ.
    pub submitted: u32,
    /// Completions the CQ held right after this call posted its inline ones (0 if it
    /// posted none): when that is already enough, [`Ring::enter_ready`] needs no look.
    pub cq_seen: u32,
    /// When the wait gives up (monotonic ns), if the caller gave a timeout.
    pub deadline: Option<u64>,
}

/// Counters for tests and `ps`-like tools.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RingStats {
    /// Chains started and not yet finished.
    pub in_flight: usize,
    /// Chains waiting behind a `DRAIN`.
    pub deferred: usize,
    /// Completions waiting in the overflow list now.
    pub overflow_len: usize,
    /// Completions that ever went through the overflow list.
    pub overflow_total: u32,
    /// The ring was found corrupt and is stopped.
    pub corrupt: bool,
}

/// One process's submission/completion ring.
pub struct Ring {
    region: Arc<dyn SharedRegion>,
    layout: RingLayout,
    user_addr: u64,
    polled: bool,
    idle_ns: u64,
    max_in_flight: usize,
    process: Weak<Process>,
    kernel: Arc<dyn Kernel>,
    state: spin::Mutex<State>,
    /// Where `submit` copies a batch of `Sqe`s and gathers the inline completions
    /// (reused, so a submission allocates nothing once they have grown).
    scratch: spin::Mutex<(Vec<Sqe>, Vec<Cqe>)>,
    incoming: spin::Mutex<Vec<BoxFuture<()>>>,
    in_flight_set: spin::Mutex<FuturesUnordered<BoxFuture<()>>>,
    task_waker: Arc<AtomicWaker>,
    /// Wakes the ring task: the waker of chains polled inline by `launch` (made once).
    inline_waker: Waker,
    cq_posted: Notify,
    chain_finished: Notify,
    sq_consumed: Notify,
    wakeup: Notify,
}

struct WakeRingTask(Arc<AtomicWaker>);

impl Wake for WakeRingTask {
    fn wake(self: Arc<Self>) {
        self.0.wake();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.wake();
    }
}

fn links(flags: SqeFlags) -> bool {
    flags.contains(SqeFlags::LINK) || flags.contains(SqeFlags::HARDLINK)
}

fn clamp_res(res: i64) -> i32 {
    res.clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

const CANCELED: i64 = -(Errno::Canceled as i64);

impl Ring {
    /// A ring over `region` (already mapped at `user_addr` in the process), with its
    /// headers initialised. `idle_ns` is the polled-mode idle time (0: the default).
    ///
    /// # Errors
    /// `Inval` if the region (either view of it) is smaller than `layout.region_len`.
    pub fn new(
        process: &Arc<Process>,
        layout: RingLayout,
        user_addr: u64,
        region: Arc<dyn SharedRegion>,
        polled: bool,
        idle_ns: u64,
    ) -> Result<Arc<Ring>, Errno> {
        let len = layout.region_len as usize;
        if region.words().len() * 4 < len || region.words64().is_some_and(|w| w.len() * 8 < len) {
            return Err(Errno::Inval);
        }
        let task_waker = Arc::new(AtomicWaker::new());
        let ring = Ring {
            region,
            layout,
            user_addr,
            polled,
            idle_ns: if idle_ns == 0 {
                DEFAULT_SQ_IDLE_NS
            } else {
                idle_ns
            },
            max_in_flight: 4 * layout.cq_entries as usize,
            process: Arc::downgrade(process),
            kernel: process.kernel.clone(),
            state: spin::Mutex::new(State {
                sq_head: 0,
                cq_tail: 0,
                sq_flags: 0,
                cq_flags: 0,
                overflow: VecDeque::new(),
                overflow_total: 0,
                in_flight: 0,
                deferred: VecDeque::new(),
                draining: false,
                closed: false,
                corrupt: false,
                tokens: Slab::new(),
            }),
            scratch: spin::Mutex::new((Vec::new(), Vec::new())),
            incoming: spin::Mutex::new(Vec::new()),
            in_flight_set: spin::Mutex::new(FuturesUnordered::new()),
            task_waker: task_waker.clone(),
            inline_waker: Waker::from(Arc::new(WakeRingTask(task_waker))),
            cq_posted: Notify::new(),
            chain_finished: Notify::new(),
            sq_consumed: Notify::new(),
            wakeup: Notify::new(),
        };
        let words = ring.region.words();
        for (header, entries) in [
            (layout.sq_header, layout.sq_entries),
            (layout.cq_header, layout.cq_entries),
        ] {
            for field in [
                ring_header::HEAD,
                ring_header::TAIL,
                ring_header::FLAGS,
                ring_header::DROPPED,
                ring_header::OVERFLOW,
            ] {
                Ring::store(words, header + field, 0);
            }
            Ring::store(words, header + ring_header::MASK, entries - 1);
            Ring::store(words, header + ring_header::ENTRIES, entries);
        }
        Ok(Arc::new(ring))
    }

    /// The layout (entry counts and offsets).
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// Where the region is mapped in the process.
    pub fn user_addr(&self) -> u64 {
        self.user_addr
    }

    /// True for a polled-mode ring.
    pub fn is_polled(&self) -> bool {
        self.polled
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> RingStats {
        let st = self.state.lock();
        RingStats {
            in_flight: st.in_flight,
            deferred: st.deferred.len(),
            overflow_len: st.overflow.len(),
            overflow_total: st.overflow_total,
            corrupt: st.corrupt,
        }
    }

    // ------------------------------------------------------------------ shared words

    // `region` is `self.region.words()`, looked up once by the caller: the lookup is a
    // dynamic call, and a batch makes several of these accesses.

    fn word(region: &[AtomicU32], byte_offset: u32) -> Option<&AtomicU32> {
        region.get(byte_offset as usize / 4)
    }

    fn load(region: &[AtomicU32], byte_offset: u32, order: Ordering) -> u32 {
        Self::word(region, byte_offset).map_or(0, |w| w.load(order))
    }

    fn store(region: &[AtomicU32], byte_offset: u32, value: u32) {
        if let Some(w) = Self::word(region, byte_offset) {
            w.store(value, Ordering::Release);
        }
    }

    /// Userland's SQ tail: how far it has published entries.
    fn sq_tail(&self, region: &[AtomicU32], order: Ordering) -> u32 {
        Self::load(region, self.layout.sq_header + ring_header::TAIL, order)
    }

    /// Userland's CQ head: how far it has reaped completions.
    fn cq_head(&self, region: &[AtomicU32]) -> u32 {
        Self::load(
            region,
            self.layout.cq_header + ring_header::HEAD,
            Ordering::Acquire,
        )
    }

    /// Copies the entry at byte `offset` out of the SQ (`view`, looked up once per batch by
    /// the caller): eight relaxed 64-bit loads, or sixteen 32-bit ones without the 64-bit
    /// view (one copy; userland may be rewriting it, the decoder validates what was read).
    #[inline]
    fn read_sqe(view: View<'_>, offset: u32) -> Sqe {
        let offset = offset as usize;
        let mut words = [0u64; 8];
        if let Some(region64) = view.words64 {
            if let Some(src) = region64.get(offset / 8..offset / 8 + 8) {
                for (w, src) in words.iter_mut().zip(src) {
                    *w = src.load(Ordering::Relaxed);
                }
            }
        } else if let Some(src) = view.words.get(offset / 4..offset / 4 + 16) {
            for (w, pair) in words.iter_mut().zip(src.chunks_exact(2)) {
                let lo = pair[0].load(Ordering::Relaxed) as u64;
                let hi = pair[1].load(Ordering::Relaxed) as u64;
                *w = lo | hi << 32;
            }
        }
        Sqe::from_words(words)
    }

    /// Writes `cqe` into the CQ slot at byte `offset` (`view`, looked up once per batch).
    #[inline]
    fn write_cqe(view: View<'_>, offset: u32, cqe: &Cqe) {
        let offset = offset as usize;
        let words = cqe.to_words();
        if let Some(region64) = view.words64 {
            if let Some(dst) = region64.get(offset / 8..offset / 8 + 2) {
                dst[0].store(words[0], Ordering::Relaxed);
                dst[1].store(words[1], Ordering::Relaxed);
            }
        } else if let Some(dst) = view.words.get(offset / 4..offset / 4 + 4) {
            for (w, pair) in words.iter().zip(dst.chunks_exact(2)) {
                pair[0].store(*w as u32, Ordering::Relaxed);
                pair[1].store((*w >> 32) as u32, Ordering::Relaxed);
            }
        }
    }

    /// Both views of the shared region (one dynamic call: made once per batch, not per
    /// word; both long enough, checked in `new`).
    fn view(&self) -> View<'_> {
        self.region.view()
    }

    fn set_sq_flag(&self, st: &mut State, bit: u32, on: bool) {
        if on {
            st.sq_flags |= bit;
        } else {
            st.sq_flags &= !bit;
        }
        let flags = self.layout.sq_header + ring_header::FLAGS;
        if let Some(w) = Self::word(self.region.words(), flags) {
            w.store(st.sq_flags, Ordering::SeqCst);
        }
    }

    fn set_cq_flag(&self, st: &mut State, bit: u32, on: bool) {
        if on {
            st.cq_flags |= bit;
        } else {
            st.cq_flags &= !bit;
        }
        Self::store(
            self.region.words(),
            self.layout.cq_header + ring_header::FLAGS,
            st.cq_flags,
        );
    }

    // ------------------------------------------------------------------ completion side

    /// Free CQ slots as the kernel sees them (0 if userland's head is impossible).
    fn cq_space(&self, region: &[AtomicU32], st: &State) -> u32 {
        let used = st.cq_tail.wrapping_sub(self.cq_head(region));
        self.layout.cq_entries.saturating_sub(used)
    }

    /// Moves overflowed completions into the CQ while there is room, publishing the CQ
    /// tail once. Returns true if any moved.
    #[inline]
    fn flush_locked(&self, st: &mut State) -> bool {
        !st.overflow.is_empty() && self.flush_overflow(st)
    }

    /// [`Ring::flush_locked`] with completions in the overflow list (a rare case, kept
    /// out of line so that the usual check stays a load and a branch).
    #[inline(never)]
    fn flush_overflow(&self, st: &mut State) -> bool {
        let view = self.view();
        let region = view.words;
        let mut space = self.cq_space(region, st);
        let tail_before = st.cq_tail;
        while space > 0 {
            let Some(cqe) = st.overflow.pop_front() else {
                break;
            };
            Self::write_cqe(view, self.layout.cqe_offset(st.cq_tail), &cqe);
            st.cq_tail = st.cq_tail.wrapping_add(1);
            space -= 1;
        }
        let moved = st.cq_tail != tail_before;
        if moved {
            Self::store(
                region,
                self.layout.cq_header + ring_header::TAIL,
                st.cq_tail,
            );
        }
        if st.overflow.is_empty() {
            self.set_cq_flag(st, CQ_OVERFLOW, false);
            self.set_sq_flag(st, SQ_CQ_FULL, false);
        }
        moved
    }

    /// Flushes the overflow list as far as the CQ allows.
    pub fn flush(&self) {
        let moved = self.flush_locked(&mut self.state.lock());
        if moved {
            self.cq_posted.notify();
        }
    }

    /// Posts `cqes` ([`Ring::post_all`], `view` looked up by the caller) and empties the
    /// buffer for reuse.
    fn post_taken(&self, view: View<'_>, cqes: &mut Vec<Cqe>) -> u32 {
        let seen = self.post_all(view, cqes);
        cqes.clear();
        seen
    }

    fn post(&self, cqe: Cqe) {
        self.post_all(self.view(), &[cqe]);
    }

    /// Posts `cqes` in order under one lock, publishing the CQ tail once; what does not fit
    /// goes to the overflow list (behind anything already there). `view` is
    /// [`Ring::view`], looked up by the caller.
    ///
    /// Returns how many completions the CQ held once these were in (0 when `cqes` is
    /// empty; the CQ's size when some overflowed).
    fn post_all(&self, view: View<'_>, cqes: &[Cqe]) -> u32 {
        if cqes.is_empty() {
            return 0;
        }
        let mut st = self.state.lock();
        self.flush_locked(&mut st);
        let region = view.words;
        let layout = self.layout;
        let mut space = if st.overflow.is_empty() {
            self.cq_space(region, &st)
        } else {
            0
        };
        let mut overflowed = false;
        let tail_before = st.cq_tail;
        let mut tail = tail_before;
        for cqe in cqes {
            if space > 0 {
                Self::write_cqe(view, layout.cqe_offset(tail), cqe);
                tail = tail.wrapping_add(1);
                space -= 1;
            } else {
                st.overflow.push_back(*cqe);
                st.overflow_total = st.overflow_total.wrapping_add(1);
                overflowed = true;
            }
        }
        st.cq_tail = tail;
        if tail != tail_before {
            Self::store(
                region,
                self.layout.cq_header + ring_header::TAIL,
                st.cq_tail,
            );
        }
        if overflowed {
            Self::store(
                region,
                self.layout.cq_header + ring_header::OVERFLOW,
                st.overflow_total,
            );
            self.set_cq_flag(&mut st, CQ_OVERFLOW, true);
            self.set_sq_flag(&mut st, SQ_CQ_FULL, true);
        }
        drop(st);
        self.cq_posted.notify();
        // The slots still free are all that userland has not left unreaped.
        self.layout.cq_entries - space
    }

    fn complete(&self, user_data: u64, flags: SqeFlags, res: i64, slot: usize) {
        self.unregister(slot);
        if flags.contains(SqeFlags::SKIP_SUCCESS) && res >= 0 {
            return;
        }
        log::debug!(target: "syscall", "op={user_data} res={res}");
        self.post(Cqe {
            user_data,
            res: clamp_res(res),
            flags: 0,
        });
    }

    // ------------------------------------------------------------------ cancellation

    fn register(st: &mut State, user_data: u64, token: &Arc<CancelToken>) -> usize {
        st.tokens.insert((user_data, token.clone()))
    }

    fn unregister(&self, slot: usize) {
        let mut st = self.state.lock();
        debug_assert!(
            st.tokens.contains(slot),
            "ring: completing an unregistered entry"
        );
        st.tokens.try_remove(slot);
    }

    /// Asks every not-yet-completed entry with `user_data` (other than `except`, the
    /// `Cancel` itself) to stop.
    ///
    /// # Errors
    /// `NoEnt` if none is in flight; `Already` if all were already asked.
    pub(crate) fn cancel_matching(
        &self,
        user_data: u64,
        except: Option<&Arc<CancelToken>>,
    ) -> Result<(), Errno> {
        let targets: Vec<Arc<CancelToken>> = {
            let st = self.state.lock();
            st.tokens
                .iter()
                .filter(|(_, (ud, t))| {
                    *ud == user_data && except.is_none_or(|e| !Arc::ptr_eq(t, e))
                })
                .map(|(_, (_, t))| t.clone())
                .collect()
        };
        if targets.is_empty() {
            return Err(Errno::NoEnt);
        }
        let mut fresh = 0;
        for t in &targets {
            if !t.is_cancelled() {
                fresh += 1;
                t.cancel();
            }
        }
        if fresh == 0 {
            Err(Errno::Already)
        } else {
            Ok(())
        }
    }

    // ------------------------------------------------------------------ submission side

    /// Copies up to `max` new entries out of the SQ and advances the kernel's head.
    fn fetch_locked(
        &self,
        view: View<'_>,
        st: &mut State,
        max: u32,
        out: &mut Vec<Sqe>,
    ) -> Result<(), Errno> {
        if st.corrupt {
            return Err(Errno::Inval);
        }
        let region = view.words;
        let tail = self.sq_tail(region, Ordering::Acquire);
        let avail = tail.wrapping_sub(st.sq_head);
        if avail > self.layout.sq_entries {
            log::warn!(target: "syscall", "ring: corrupt SQ tail {tail} (head {})", st.sq_head);
            st.corrupt = true;
            self.set_sq_flag(st, SQ_CORRUPT, true);
            return Err(Errno::Inval);
        }
        let room = self
            .max_in_flight
            .saturating_sub(st.in_flight + st.deferred.len()) as u32;
        let n = avail.min(max).min(room);
        Self::copy_sqes(view, self.layout, st.sq_head, n, out);
        st.sq_head = st.sq_head.wrapping_add(n);
        Self::store(
            region,
            self.layout.sq_header + ring_header::HEAD,
            st.sq_head,
        );
        Ok(())
    }

    /// Appends copies of the `n` entries from SQ index `head` on to `out`. Out of line: in
    /// `submit`'s frame the copy ran short of registers and went through the stack.
    #[inline(never)]
    fn copy_sqes(view: View<'_>, layout: RingLayout, head: u32, n: u32, out: &mut Vec<Sqe>) {
        // A `Range` map has an exact length: `extend` reserves once and writes each entry
        // in place (no capacity check per entry, as `push` made).
        out.extend((0..n).map(|i| Self::read_sqe(view, layout.sqe_offset(head.wrapping_add(i)))));
    }

    /// Splits `sqes` into chains (decoding each entry) and hands each to `each`, in order.
    fn build_chains(sqes: &[Sqe], mut each: impl FnMut(Chain)) {
        let mut cur = Chain {
            entries: Entries::new(),
            drain: false,
            force_async: false,
        };
        let count = sqes.len();
        for (i, sqe) in sqes.iter().enumerate() {
            let flags = Self::sqe_flags(sqe);
            let request = decode(sqe).and_then(|r| match r {
                Request::RingSetup { .. } | Request::RingEnter { .. } | Request::Exit { .. } => {
                    Err(Errno::Inval)
                }
                r => Ok(r),
            });
            let token = Arc::new(CancelToken::default());
            let continues = links(flags) && i + 1 < count;
            match request {
                Ok(Request::LinkTimeout { deadline })
                    if cur.entries.last().is_some_and(|e| e.link_timeout.is_none()) =>
                {
                    let prev = cur.entries.last_mut().expect("checked just above");
                    prev.link_timeout = Some(LinkTimer {
                        user_data: sqe.user_data,
                        flags,
                        deadline,
                        token,
                        slot: usize::MAX,
                    });
                }
                request => {
                    let request = match request {
                        Ok(Request::LinkTimeout { .. }) => Err(Errno::Inval),
                        r => r,
                    };
                    cur.entries.push(Entry {
                        user_data: sqe.user_data,
                        flags,
                        request,
                        token,
                        slot: usize::MAX,
                        link_timeout: None,
                        hard: flags.contains(SqeFlags::HARDLINK),
                    });
                }
            }
            cur.drain |= flags.contains(SqeFlags::DRAIN);
            cur.force_async |= flags.contains(SqeFlags::FORCE_ASYNC);
            if !continues {
                each(core::mem::replace(
                    &mut cur,
                    Chain {
                        entries: Entries::new(),
                        drain: false,
                        force_async: false,
                    },
                ));
            }
        }
        if !cur.entries.is_empty() {
            each(cur);
        }
    }

    /// Pops the first deferred chain if it may start now, counting it in flight.
    fn take_startable(st: &mut State) -> Option<Chain> {
        if !Self::may_start(st, st.deferred.front()?) {
            return None;
        }
        let c = st.deferred.pop_front()?;
        Self::mark_started(st, &c);
        Some(c)
    }

    /// True when `chain`, first in line, may start now.
    fn may_start(st: &State, chain: &Chain) -> bool {
        !st.draining && (!chain.drain || st.in_flight == 0)
    }

    /// Counts `chain` as started.
    fn mark_started(st: &mut State, chain: &Chain) {
        st.in_flight += 1;
        if chain.drain {
            st.draining = true;
        }
    }

    /// Launches the deferred chains that may start now, in order (each taken under the
    /// lock, launched outside it). Returns whether nothing waits behind a `DRAIN` then.
    fn launch_startable(self: &Arc<Self>, mut first: Option<Chain>, inline: bool) -> bool {
        loop {
            if let Some(c) = first.take() {
                self.launch(c, inline);
            }
            let mut st = self.state.lock();
            match Self::take_startable(&mut st) {
                Some(c) => first = Some(c),
                None => return Self::nothing_waits(&st),
            }
        }
    }

    fn launch(self: &Arc<Self>, chain: Chain, inline: bool) {
        let inline = inline && !chain.force_async;
        let mut fut: BoxFuture<()> =
            Box::pin(run_chain(self.clone(), self.process.upgrade(), chain));
        if inline {
            let mut cx = Context::from_waker(&self.inline_waker);
            if fut.as_mut().poll(&mut cx).is_ready() {
                return;
            }
        }
        self.incoming.lock().push(fut);
        self.task_waker.wake();
    }

    fn chain_done(self: &Arc<Self>) {
        let first = {
            let mut st = self.state.lock();
            st.in_flight -= 1;
            if st.in_flight == 0 {
                st.draining = false;
            }
            Self::take_startable(&mut st)
        };
        if first.is_some() {
            self.launch_startable(first, false);
        }
        self.chain_finished.notify();
    }

    /// Consumes up to `to_submit` entries from the SQ and starts them; entries that
    /// complete inline have their `Cqe`s posted before this returns. Returns how many
    /// entries were consumed.
    ///
    /// # Errors
    /// `Busy` while completions wait in the overflow list (reap, then retry); `Inval` once
    /// the ring is corrupt; `Srch` once the ring is closed.
    ///
    /// `proc` is the ring's process when the caller holds it (a `RingEnter`); `None` (the
    /// polling task) looks it up. Without a live process nothing runs inline.
    ///
    /// # Context
    /// The process's trap task (`RingEnter`) or the polling task. Never suspends.
    pub fn submit(
        self: &Arc<Self>,
        proc: Option<&Arc<Process>>,
        to_submit: u32,
    ) -> Result<u32, Errno> {
        self.submit_batch(proc, to_submit).map(|(n, _)| n)
    }

    /// [`Ring::submit`], also returning how many completions the CQ held after the last
    /// inline ones were posted (0 if the call posted none at the end).
    fn submit_batch(
        self: &Arc<Self>,
        proc: Option<&Arc<Process>>,
        to_submit: u32,
    ) -> Result<(u32, u32), Errno> {
        let upgraded;
        let proc = match proc {
            Some(p) => Some(p),
            None => {
                upgraded = self.process.upgrade();
                upgraded.as_ref()
            }
        };
        // One look-up of the shared region for the whole call (a dynamic call).
        let view = self.view();
        // The copies go into a buffer kept between calls (no allocation per batch once it
        // has grown to the batch size).
        let (mut sqes, cqes) = core::mem::take(&mut *self.scratch.lock());
        sqes.clear();
        let mut inline_ok = {
            let mut st = self.state.lock();
            if st.closed {
                return Err(Errno::Srch);
            }
            self.flush_locked(&mut st);
            if !st.overflow.is_empty() {
                return Err(Errno::Busy);
            }
            self.fetch_locked(view, &mut st, to_submit, &mut sqes)?;
            Self::nothing_waits(&st)
        };
        let n = sqes.len() as u32;
        // Only `SQ_WAIT` waits for this, and only in polled mode.
        if n > 0 && self.polled {
            self.sq_consumed.notify();
        }
        // Completions of inline entries, posted together (one lock, one CQ tail store, one
        // wake-up per run of inline entries rather than per entry) from a buffer kept in
        // the ring: it allocates nothing once grown, and is not zeroed per call as an array
        // on the stack was (a 512-byte `memset` per submission).
        let mut done = cqes;
        // Entries from here on go the general way (chains), until the next inline one.
        let mut general_from: Option<usize> = None;
        let count = sqes.len();
        // Whether the entry before this one links to it (this one is inside a chain).
        let mut linked = false;
        for (i, sqe) in sqes.iter().enumerate() {
            let flags = Self::sqe_flags(sqe);
            let starts_chain = !linked;
            linked = links(flags);
            if starts_chain
                && !flags.contains(SqeFlags::DRAIN)
                && !flags.contains(SqeFlags::FORCE_ASYNC)
                && (!linked || i + 1 == count)
                && let Some(proc) = proc
            {
                if let Some(from) = general_from.take() {
                    // Keep submission order: what came before starts first.
                    self.post_taken(view, &mut done);
                    inline_ok = self.start_chains(&sqes[from..i]);
                }
                if inline_ok
                    && !ops::always_waits(sqe.opcode)
                    && let Some(res) = Self::run_inline(proc, sqe)
                {
                    if !(flags.contains(SqeFlags::SKIP_SUCCESS) && res >= 0) {
                        log::debug!(target: "syscall", "op={} res={res} inline", sqe.user_data);
                        done.push(Cqe {
                            user_data: sqe.user_data,
                            res: clamp_res(res),
                            flags: 0,
                        });
                    }
                    continue;
                }
            }
            general_from.get_or_insert(i);
        }
        let cq_seen = self.post_taken(view, &mut done);
        if let Some(from) = general_from {
            self.start_chains(&sqes[from..]);
        }
        sqes.clear();
        *self.scratch.lock() = (sqes, done);
        Ok((n, cq_seen))
    }

    /// True when a chain may start now without waiting behind a `DRAIN`.
    fn nothing_waits(st: &State) -> bool {
        st.deferred.is_empty() && !st.draining
    }

    fn sqe_flags(sqe: &Sqe) -> SqeFlags {
        SqeFlags::from_bits(sqe.flags).unwrap_or(SqeFlags::NONE)
    }

    /// The inline fast path of one unlinked entry: its result if it is an operation that
    /// never waits (or fails to decode), with no future, token or allocation; `None` if it
    /// needs the general path.
    fn run_inline(proc: &Arc<Process>, sqe: &Sqe) -> Option<i64> {
        // Matched by reference: moving the request out of the `Result` copied it.
        let result = match &decode(sqe) {
            Ok(Request::RingSetup { .. } | Request::RingEnter { .. } | Request::Exit { .. }) => {
                return Some(Errno::Inval.to_syscall_result());
            }
            Ok(r) => ops::run_sync(proc, r)?,
            Err(e) => return Some(e.to_syscall_result()),
        };
        Some(result.unwrap_or_else(|e| e.to_syscall_result()))
    }

    /// The general path: builds the chains of `sqes` (whole chains), registers their
    /// cancel tokens and starts those that may start. Returns whether the next chain may
    /// start at once (nothing waits behind a `DRAIN`).
    fn start_chains(self: &Arc<Self>, sqes: &[Sqe]) -> bool {
        let mut inline_ok = true;
        Self::build_chains(sqes, |mut chain| {
            let first = {
                let mut st = self.state.lock();
                for e in &mut chain.entries {
                    e.slot = Self::register(&mut st, e.user_data, &e.token);
                    if let Some(lt) = &mut e.link_timeout {
                        lt.slot = Self::register(&mut st, lt.user_data, &lt.token);
                    }
                }
                if st.deferred.is_empty() && Self::may_start(&st, &chain) {
                    // What pushing it and taking it back would do, without moving the
                    // chain in and out of the queue.
                    Self::mark_started(&mut st, &chain);
                    Some(chain)
                } else {
                    st.deferred.push_back(chain);
                    Self::take_startable(&mut st)
                }
            };
            inline_ok = self.launch_startable(first, true);
        });
        inline_ok
    }

    /// `RingEnter`: wakes the polling task (`SQ_WAKEUP`), submits (not in polled mode),
    /// waits for SQ room (`SQ_WAIT`, polled mode) and for `min_complete` completions
    /// (`GETEVENTS`), each wait bounded by `timeout_ns`. Returns the entries consumed.
    ///
    /// # Errors
    /// As `submit`; `Time` if the timeout expired with nothing submitted.
    ///
    /// # Context
    /// The process's trap task; may suspend.
    pub async fn enter(
        self: &Arc<Self>,
        to_submit: u32,
        min_complete: u32,
        flags: RingEnterFlags,
        timeout_ns: Option<u64>,
    ) -> Result<u32, Errno> {
        let started = self.enter_start(None, to_submit, flags, timeout_ns)?;
        if self.enter_ready(&started, min_complete, flags) {
            return Ok(started.submitted);
        }
        self.enter_wait(started, min_complete, flags).await
    }

    /// The half of [`Ring::enter`] that never waits: the wake-up and the submission. Then
    /// [`Ring::enter_ready`] says whether the call is complete, else [`Ring::enter_wait`]
    /// finishes it (the trap door returns at once when nothing needs waiting for).
    ///
    /// # Errors
    /// As [`Ring::submit`].
    #[inline(always)]
    pub fn enter_start(
        self: &Arc<Self>,
        proc: Option<&Arc<Process>>,
        to_submit: u32,
        flags: RingEnterFlags,
        timeout_ns: Option<u64>,
    ) -> Result<EnterStarted, Errno> {
        if flags.contains(RingEnterFlags::SQ_WAKEUP) {
            self.wakeup.notify();
        }
        let (submitted, cq_seen) = if to_submit > 0 && !self.polled {
            self.submit_batch(proc, to_submit)?
        } else {
            (0, 0)
        };
        let deadline = timeout_ns.map(|t| self.kernel.now_ns(ClockId::Monotonic).saturating_add(t));
        Ok(EnterStarted {
            submitted,
            cq_seen,
            deadline,
        })
    }

    /// True when a `RingEnter` with `min_complete` and `flags`, started as `started` says,
    /// has nothing to wait for. When the completions the call itself saw in the CQ are
    /// enough, that is the answer without another look (userland reaping meanwhile on
    /// another thread would not change it: the condition held during the call).
    #[inline(always)]
    pub fn enter_ready(
        &self,
        started: &EnterStarted,
        min_complete: u32,
        flags: RingEnterFlags,
    ) -> bool {
        (!(self.polled && flags.contains(RingEnterFlags::SQ_WAIT)) || self.sq_has_room())
            && (!flags.contains(RingEnterFlags::GETEVENTS)
                || started.cq_seen >= min_complete.min(self.layout.cq_entries)
                || self.cq_has(min_complete))
    }

    fn sq_has_room(&self) -> bool {
        let st = self.state.lock();
        let tail = self.sq_tail(self.region.words(), Ordering::Acquire);
        st.closed || st.corrupt || tail.wrapping_sub(st.sq_head) < self.layout.sq_entries
    }

    /// True when at least `min_complete` completions (at most a full CQ) are ready to reap,
    /// or the ring is closed. An impossible CQ head counts as ready, so that no waiter
    /// waits on a corrupt ring.
    fn cq_has(&self, min_complete: u32) -> bool {
        let mut st = self.state.lock();
        self.flush_locked(&mut st);
        let used = st.cq_tail.wrapping_sub(self.cq_head(self.region.words()));
        let entries = self.layout.cq_entries;
        used > entries || used >= min_complete.min(entries) || st.closed
    }

    /// The waiting half of [`Ring::enter`]: for SQ room (`SQ_WAIT`, polled mode) and for
    /// `min_complete` completions (`GETEVENTS`), until the deadline. Returns the entries
    /// consumed by [`Ring::enter_start`].
    ///
    /// # Errors
    /// `Time` if the deadline passed and nothing had been submitted.
    ///
    /// # Context
    /// The process's trap task; may suspend.
    pub async fn enter_wait(
        self: &Arc<Self>,
        started: EnterStarted,
        min_complete: u32,
        flags: RingEnterFlags,
    ) -> Result<u32, Errno> {
        let waits = async {
            if self.polled && flags.contains(RingEnterFlags::SQ_WAIT) {
                self.sq_consumed
                    .wait_until(|| self.sq_has_room().then_some(()))
                    .await;
            }
            if flags.contains(RingEnterFlags::GETEVENTS) {
                self.cq_posted
                    .wait_until(|| self.cq_has(min_complete).then_some(()))
                    .await;
            }
        };
        match started.deadline {
            None => waits.await,
            Some(d) => {
                if let Either::Right(()) = race(waits, self.kernel.sleep_until(d)).await
                    && started.submitted == 0
                {
                    return Err(Errno::Time);
                }
            }
        }
        Ok(started.submitted)
    }

    // ------------------------------------------------------------------ tasks

    /// The ring task: drives every in-flight chain to completion. The crate spawns it
    /// (through [`Kernel::spawn_task`]) at `RingSetup`; it returns after
    /// [`Ring::cancel_all`] once nothing is in flight.
    pub fn run(self: Arc<Self>) -> impl Future<Output = ()> + Send + 'static {
        // Swapped with `incoming`, so both lists keep their room (no allocation per
        // launched chain once they have grown).
        let mut batch: Vec<BoxFuture<()>> = Vec::new();
        poll_fn(move |cx| {
            self.task_waker.register(cx.waker());
            loop {
                core::mem::swap(&mut batch, &mut *self.incoming.lock());
                let mut set = self.in_flight_set.lock();
                for f in batch.drain(..) {
                    set.push(f);
                }
                while let Poll::Ready(Some(())) = set.poll_next_unpin(cx) {}
                drop(set);
                if self.incoming.lock().is_empty() {
                    break;
                }
            }
            self.flush();
            // Lock order: `in_flight_set` before `state` (chains lock `state` while the set
            // is being polled), so look at the set first.
            let set_empty = self.in_flight_set.lock().is_empty();
            let st = self.state.lock();
            if st.closed && st.in_flight == 0 && set_empty {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// The polled-mode task: consumes the SQ without traps. After `idle_ns` with nothing
    /// to do it sets [`SQ_NEED_WAKEUP`], re-checks the tail (so an entry published just
    /// before the flag was visible is not missed), and sleeps until a `RingEnter` with
    /// `SQ_WAKEUP`. Returns once the ring is closed.
    pub async fn poll_loop(self: Arc<Self>) {
        {
            let mut idle_since = self.kernel.now_ns(ClockId::Monotonic);
            loop {
                if self.state.lock().closed {
                    return;
                }
                let n = self.submit(None, self.layout.sq_entries).unwrap_or(0);
                let now = self.kernel.now_ns(ClockId::Monotonic);
                if n > 0 {
                    idle_since = now;
                    self.kernel.yield_now().await;
                    continue;
                }
                if now.saturating_sub(idle_since) < self.idle_ns {
                    self.kernel.yield_now().await;
                    continue;
                }
                let generation = self.wakeup.generation();
                self.set_sq_flag(&mut self.state.lock(), SQ_NEED_WAKEUP, true);
                fence(Ordering::SeqCst);
                let has_work = {
                    let st = self.state.lock();
                    let tail = self.sq_tail(self.region.words(), Ordering::SeqCst);
                    tail != st.sq_head && !st.corrupt
                };
                if !has_work {
                    self.wakeup
                        .wait_until(|| {
                            (self.wakeup.generation() != generation || self.state.lock().closed)
                                .then_some(())
                        })
                        .await;
                }
                self.set_sq_flag(&mut self.state.lock(), SQ_NEED_WAKEUP, false);
                idle_since = self.kernel.now_ns(ClockId::Monotonic);
            }
        }
    }

    /// Closes the ring for process exit: nothing more is consumed, every operation in
    /// flight (and every chain waiting behind a `DRAIN`) is cancelled, and this returns only
    /// when all of their completions have been posted (to the CQ or the overflow list), so
    /// no operation touches the process's memory afterwards.
    ///
    /// # Context
    /// Needs the ring task ([`Ring::run`]) to keep running; may suspend.
    pub async fn cancel_all(self: &Arc<Self>) {
        let (tokens, deferred) = {
            let mut st = self.state.lock();
            st.closed = true;
            st.draining = false;
            let tokens: Vec<Arc<CancelToken>> =
                st.tokens.iter().map(|(_, (_, t))| t.clone()).collect();
            let deferred: Vec<Chain> = st.deferred.drain(..).collect();
            st.in_flight += deferred.len();
            (tokens, deferred)
        };
        for t in tokens {
            t.cancel();
        }
        for c in deferred {
            self.launch(c, false);
        }
        self.task_waker.wake();
        self.wakeup.notify();
        self.cq_posted.notify();
        self.chain_finished
            .wait_until(|| (self.state.lock().in_flight == 0).then_some(()))
            .await;
        self.task_waker.wake();
    }
}

/// Runs one chain: each entry in order, posting its completion (and its link timeout's).
async fn run_chain(ring: Arc<Ring>, proc: Option<Arc<Process>>, chain: Chain) {
    let mut broken = false;
    for e in chain.entries {
        let (res, lt_res) = match (&proc, e.request) {
            _ if broken || e.token.is_cancelled() => (CANCELED, CANCELED),
            (None, _) => (CANCELED, CANCELED),
            (Some(_), Err(err)) => (err.to_syscall_result(), CANCELED),
            (Some(_), Ok(Request::Cancel { user_data })) => {
                let r = ring.cancel_matching(user_data, Some(&e.token));
                (r.map_or_else(|e| e.to_syscall_result(), |()| 0), CANCELED)
            }
            (Some(p), Ok(req)) => run_entry(&ring, p, req, &e.token, e.link_timeout.as_ref()).await,
        };
        ring.complete(e.user_data, e.flags, res, e.slot);
        if let Some(lt) = &e.link_timeout {
            ring.complete(lt.user_data, lt.flags, lt_res, lt.slot);
        }
        if res < 0 && !e.hard {
            broken = true;
        }
    }
    ring.chain_done();
}

/// Runs one operation under its cancel token and optional link timeout. Returns the
/// operation's result and the link timeout's.
async fn run_entry(
    ring: &Ring,
    proc: &Arc<Process>,
    request: Request,
    token: &CancelToken,
    link_timeout: Option<&LinkTimer>,
) -> (i64, i64) {
    let mut op = pin!(ops::run(proc, request));
    let mut cancelled = pin!(token.cancelled());
    let mut timer = link_timeout.map(|lt| {
        let at = deadline_ns(&*ring.kernel, lt.deadline);
        (ring.kernel.sleep_until(at), Box::pin(lt.token.cancelled()))
    });
    let mut lt_res = CANCELED;
    let res = poll_fn(|cx| {
        if let Poll::Ready(r) = op.as_mut().poll(cx) {
            return Poll::Ready(r.unwrap_or_else(|e| e.to_syscall_result()));
        }
        if cancelled.as_mut().poll(cx).is_ready() {
            return Poll::Ready(CANCELED);
        }
        if let Some((sleep, timer_cancelled)) = &mut timer {
            if sleep.as_mut().poll(cx).is_ready() {
                lt_res = -(Errno::Time as i64);
                return Poll::Ready(CANCELED);
            }
            if timer_cancelled.as_mut().poll(cx).is_ready() {
                timer = None;
            }
        }
        Poll::Pending
    })
    .await;
    (res, lt_res)
}
