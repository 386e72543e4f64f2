// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ring producer: this process's submission and completion queues in shared pages.
//!
//! Protocol (`abi::ring`, "The ring door"): we write `sqes[tail & mask]` and publish with a
//! release store of the SQ `tail`; the kernel moves the SQ `head`. The kernel writes
//! `cqes[tail & mask]` and publishes the CQ `tail`; we copy the entry out and hand the slot
//! back with a release store of the CQ `head`. Indices are free-running `u32`s.
//!
//! Invariants the unsafe code relies on:
//! 1. `base` is the start of the region `RingSetup` mapped, `len` bytes long, never
//!    unmapped while this process lives (there is no teardown opcode), page-aligned.
//! 2. The header and array offsets come from the kernel's `RingParams` and were checked in
//!    [`Ring::from_params`] to lie inside the region, with 4-byte aligned headers, 64-byte
//!    aligned `Sqe` slots and 16-byte aligned `Cqe` slots.
//! 3. The kernel writes memory of the region concurrently, so every header field is
//!    accessed through an `AtomicU32`, and slots are copied with volatile accesses
//!    ordered by the acquire/release operations on the indices.
//! 4. Only this `Ring` writes the SQ tail, the SQ slots and the CQ head (it is not `Clone`
//!    and `setup` refuses a second ring for the same region through the kernel's `EBUSY`).

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::any::Any;
use core::sync::atomic::{AtomicU32, Ordering, fence};

use abi::ring::{
    CQ_OVERFLOW, RING_SETUP_POLLED, RingEnterFlags, SQ_CQ_FULL, SQ_NEED_WAKEUP, ring_header,
};
use abi::{Cqe, Errno, Opcode, RingParams, Sqe};

use crate::ffi::sys::{check, trap};

/// The SQ has no free slot: submit (or wait for the polling task) and try again. The
/// entry was not queued; nothing was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueFull;

/// Why [`Ring::try_push_scalar`] did not queue an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushError {
    /// No free SQ slot (see [`QueueFull`]).
    Full,
    /// The entry names user memory; use [`Ring::try_push`].
    NamesMemory,
}

/// Options for [`Ring::setup`].
#[derive(Clone, Copy, Debug)]
pub struct RingOptions {
    /// SQ slots (power of two).
    pub sq_entries: u32,
    /// CQ slots (power of two >= `sq_entries`), 0 for twice the SQ.
    pub cq_entries: u32,
    /// A kernel task polls the SQ: no trap needed to submit.
    pub polled: bool,
    /// Polled mode: idle microseconds before the poller sleeps (0 = kernel default).
    pub sq_idle_us: u32,
}

impl RingOptions {
    /// A plain (not polled) ring with `sq_entries` SQ slots.
    pub fn new(sq_entries: u32) -> RingOptions {
        RingOptions {
            sq_entries,
            cq_entries: 0,
            polled: false,
            sq_idle_us: 0,
        }
    }
}

/// Memory an entry names, owned by the ring until the entry's completion is reaped.
pub type Keep = Box<dyn Any>;

/// An entry together with the buffer it names. Only the constructors here set an
/// address, and each takes the buffer by value, so pushing one is safe: the ring keeps the
/// buffer until the completion comes back ([`Ring::try_reap`] returns it).
pub struct OwnedSqe {
    sqe: Sqe,
    keep: Option<Keep>,
}

impl OwnedSqe {
    /// An entry that names no memory (see [`Ring::try_push_scalar`] for the rule).
    ///
    /// # Errors
    /// [`PushError::NamesMemory`] if it does.
    pub fn scalar(sqe: Sqe) -> Result<OwnedSqe, PushError> {
        if names_memory(&sqe) {
            return Err(PushError::NamesMemory);
        }
        Ok(OwnedSqe { sqe, keep: None })
    }

    /// `Read` (`offset: None`) or `Pread` into `buf` (its whole length).
    pub fn read(fd: i32, mut buf: Vec<u8>, offset: Option<u64>, user_data: u64) -> OwnedSqe {
        let mut sqe = Sqe::new(if offset.is_some() {
            Opcode::Pread
        } else {
            Opcode::Read
        });
        sqe.fd = fd;
        sqe.addr = buf.as_mut_ptr() as u64;
        sqe.len = buf.len().min(u32::MAX as usize) as u32;
        sqe.off = offset.unwrap_or(0);
        sqe.user_data = user_data;
        OwnedSqe {
            sqe,
            keep: Some(Box::new(buf)),
        }
    }

    /// `Write` (`offset: None`) or `Pwrite` of all of `buf`.
    pub fn write(fd: i32, buf: Vec<u8>, offset: Option<u64>, user_data: u64) -> OwnedSqe {
        let mut sqe = Sqe::new(if offset.is_some() {
            Opcode::Pwrite
        } else {
            Opcode::Write
        });
        sqe.fd = fd;
        sqe.addr = buf.as_ptr() as u64;
        sqe.len = buf.len().min(u32::MAX as usize) as u32;
        sqe.off = offset.unwrap_or(0);
        sqe.user_data = user_data;
        OwnedSqe {
            sqe,
            keep: Some(Box::new(buf)),
        }
    }

    /// Sets the `SqeFlags` bits (e.g. `LINK`).
    pub fn set_flags(&mut self, flags: u8) {
        self.sqe.flags = flags;
    }

    /// Sets the `user_data`.
    pub fn set_user_data(&mut self, user_data: u64) {
        self.sqe.user_data = user_data;
    }

    /// The `user_data`.
    pub fn user_data(&self) -> u64 {
        self.sqe.user_data
    }

    /// The entry as it will be submitted.
    pub fn sqe(&self) -> &Sqe {
        &self.sqe
    }
}

/// Whether the kernel would use `addr`, `addr2` or `addr3` of `sqe` as user addresses.
#[inline]
fn names_memory(sqe: &Sqe) -> bool {
    let scalar_addr = matches!(
        Opcode::from_u8(sqe.opcode),
        Some(
            Opcode::Nop
                | Opcode::Timeout
                | Opcode::LinkTimeout
                | Opcode::Sleep
                | Opcode::Cancel
                | Opcode::Munmap
                | Opcode::Close
        )
    );
    (!scalar_addr && sqe.addr != 0) || sqe.addr2 != 0 || sqe.addr3 != 0
}

/// This process's ring.
pub struct Ring {
    /// Buffers of in-flight owned entries, by `user_data`.
    kept: BTreeMap<u64, Keep>,
    base: *mut u8,
    len: usize,
    sq_header: usize,
    cq_header: usize,
    sqes: usize,
    cqes: usize,
    sq_entries: u32,
    cq_entries: u32,
    polled: bool,
    /// Our copy of the SQ tail (we are its only writer).
    sq_tail: u32,
    /// Our copy of the CQ head (we are its only writer).
    cq_head: u32,
}

impl Ring {
    /// Creates and maps the ring (`RingSetup` through the trap door).
    ///
    /// # Errors
    /// What the kernel answers (`EINVAL` for bad sizes, `EBUSY` if the process already has
    /// a ring, `ENOMEM`), or `EIO` if the kernel's answer does not describe a usable region.
    pub fn setup(options: RingOptions) -> Result<Ring, Errno> {
        let mut params = RingParams {
            sq_entries: options.sq_entries,
            cq_entries: options.cq_entries,
            flags: if options.polled { RING_SETUP_POLLED } else { 0 },
            sq_idle_us: options.sq_idle_us,
            ..RingParams::default()
        };
        let mut s = Sqe::new(Opcode::RingSetup);
        s.addr = &mut params as *mut RingParams as u64;
        s.len = size_of::<RingParams>() as u32;
        // SAFETY: `params` is a live, writable RingParams of the stated size.
        check(unsafe { trap(&s) })?;
        Ring::from_params(&params, options.polled)
    }

    /// Checks the kernel's description of the region (invariant 2) and wraps it.
    fn from_params(p: &RingParams, polled: bool) -> Result<Ring, Errno> {
        let len = usize::try_from(p.region_len).map_err(|_| Errno::Io)?;
        let fits = |off: u32, size: usize, align: usize| {
            let off = off as usize;
            off.is_multiple_of(align) && off.checked_add(size).is_some_and(|end| end <= len)
        };
        let ok = p.region_addr != 0
            && p.region_addr.is_multiple_of(4096)
            && p.sq_entries.is_power_of_two()
            && p.cq_entries.is_power_of_two()
            && fits(p.sq_header, ring_header::SIZE as usize, 4)
            && fits(p.cq_header, ring_header::SIZE as usize, 4)
            && fits(p.sqes, p.sq_entries as usize * size_of::<Sqe>(), 64)
            && fits(p.cqes, p.cq_entries as usize * size_of::<Cqe>(), 16);
        if !ok {
            return Err(Errno::Io);
        }
        let mut ring = Ring {
            kept: BTreeMap::new(),
            base: p.region_addr as usize as *mut u8,
            len,
            sq_header: p.sq_header as usize,
            cq_header: p.cq_header as usize,
            sqes: p.sqes as usize,
            cqes: p.cqes as usize,
            sq_entries: p.sq_entries,
            cq_entries: p.cq_entries,
            polled,
            sq_tail: 0,
            cq_head: 0,
        };
        ring.sq_tail = ring.sq_field(ring_header::TAIL).load(Ordering::Relaxed);
        ring.cq_head = ring.cq_field(ring_header::HEAD).load(Ordering::Relaxed);
        Ok(ring)
    }

    #[inline]
    fn field(&self, header: usize, offset: u32) -> &AtomicU32 {
        debug_assert!(header + offset as usize + 4 <= self.len);
        // SAFETY: invariants 1 and 2: the header lies inside the live region and is
        // 4-byte aligned, so this is a valid, aligned u32 for the lifetime of `self`;
        // invariant 3: the kernel accesses it atomically too.
        unsafe { &*(self.base.add(header + offset as usize) as *const AtomicU32) }
    }

    #[inline]
    fn sq_field(&self, offset: u32) -> &AtomicU32 {
        self.field(self.sq_header, offset)
    }

    #[inline]
    fn cq_field(&self, offset: u32) -> &AtomicU32 {
        self.field(self.cq_header, offset)
    }

    /// SQ slots.
    pub fn sq_entries(&self) -> u32 {
        self.sq_entries
    }

    /// CQ slots.
    pub fn cq_entries(&self) -> u32 {
        self.cq_entries
    }

    /// Whether a kernel task polls the SQ.
    pub fn is_polled(&self) -> bool {
        self.polled
    }

    /// The SQ header flags (`SQ_NEED_WAKEUP`, `SQ_CQ_FULL`, `SQ_CORRUPT`).
    #[inline]
    pub fn sq_flags(&self) -> u32 {
        self.sq_field(ring_header::FLAGS).load(Ordering::Acquire)
    }

    /// Whether completions wait in the kernel's overflow list (reap to let them in).
    pub fn is_cq_overflowing(&self) -> bool {
        self.cq_field(ring_header::FLAGS).load(Ordering::Acquire) & CQ_OVERFLOW != 0
            || self.sq_flags() & SQ_CQ_FULL != 0
    }

    /// Entries published but not yet consumed by the kernel.
    #[inline]
    pub fn sq_pending(&self) -> u32 {
        let head = self.sq_field(ring_header::HEAD).load(Ordering::Acquire);
        self.sq_tail.wrapping_sub(head)
    }

    /// Free SQ slots.
    #[inline]
    pub fn sq_space(&self) -> u32 {
        self.sq_entries.saturating_sub(self.sq_pending())
    }

    /// Queues one entry and publishes it.
    ///
    /// # Errors
    /// [`QueueFull`] when the SQ has no free slot; `sqe` was not queued.
    ///
    /// The kernel will act on the addresses in `sqe` at some later time, so buffers it
    /// names must stay valid until its completion is reaped. That is why this is `unsafe`
    /// to call with addresses: use [`Ring::try_push_scalar`] for entries without any,
    /// or the async runtime, which keeps buffers alive.
    ///
    /// # Safety
    /// Every address in `sqe` stays valid for what the opcode does with it until the
    /// entry's completion has been reaped (or, for entries the kernel rejects, until then).
    #[inline]
    pub unsafe fn try_push(&mut self, sqe: &Sqe) -> Result<(), QueueFull> {
        if self.sq_space() == 0 {
            return Err(QueueFull);
        }
        let slot = self.sqes + (self.sq_tail & (self.sq_entries - 1)) as usize * size_of::<Sqe>();
        // SAFETY: invariant 2: the slot lies inside the region.
        let dst = unsafe { self.base.add(slot) } as *mut u64;
        // Written as the eight words of `Sqe::to_words`, as the kernel reads it: a constant
        // entry becomes eight immediate stores (a volatile write of the struct went field
        // by field through the stack).
        for (i, w) in sqe.to_words().into_iter().enumerate() {
            // SAFETY: invariant 2: word `i` (< 8) of the slot is inside the region and
            // 8-byte aligned (slots are 64-byte aligned); the kernel is done with the slot
            // because `head` has moved past it (space > 0, acquire load in `sq_pending`).
            // Volatile because the kernel reads it concurrently (invariant 3); the release
            // store below publishes it.
            unsafe { core::ptr::write_volatile(dst.add(i), w) };
        }
        self.sq_tail = self.sq_tail.wrapping_add(1);
        self.sq_field(ring_header::TAIL)
            .store(self.sq_tail, Ordering::Release);
        Ok(())
    }

    /// Queues an entry that carries no user address for the kernel to use (e.g. `Nop`,
    /// `Timeout`, `Cancel`, `Close`).
    ///
    /// # Errors
    /// [`PushError::Full`] as for `try_push`; [`PushError::NamesMemory`], without
    /// queueing, if `addr` (for an opcode where it is an address), `addr2` or `addr3` is
    /// not 0.
    #[inline]
    pub fn try_push_scalar(&mut self, sqe: &Sqe) -> Result<(), PushError> {
        if names_memory(sqe) {
            return Err(PushError::NamesMemory);
        }
        // SAFETY: the entry names no memory (checked just above: `addr` is a scalar for
        // these opcodes, the others are zero).
        unsafe { self.try_push(sqe) }.map_err(|QueueFull| PushError::Full)
    }

    /// Queues an entry with the buffer it names; the ring keeps the buffer until the
    /// completion with this `user_data` is reaped.
    ///
    /// # Errors
    /// `(PushError::Full, entry)` when the SQ is full (nothing lost: the entry comes back);
    /// `(PushError::NamesMemory, entry)` when another in-flight owned entry already uses
    /// this `user_data` (its completion could not be told apart).
    pub fn try_push_owned(&mut self, entry: OwnedSqe) -> Result<(), (PushError, OwnedSqe)> {
        let user_data = entry.sqe.user_data;
        if entry.keep.is_some() && self.kept.contains_key(&user_data) {
            return Err((PushError::NamesMemory, entry));
        }
        // SAFETY: the addresses in an OwnedSqe point into `entry.keep` (by construction),
        // which we store below and only release when the completion for this user_data
        // is reaped, so they stay valid for as long as the kernel may use them.
        match unsafe { self.try_push(&entry.sqe) } {
            Ok(()) => {
                if let Some(keep) = entry.keep {
                    self.kept.insert(user_data, keep);
                }
                Ok(())
            }
            Err(QueueFull) => Err((PushError::Full, entry)),
        }
    }

    /// Number of owned entries whose buffers the ring still holds.
    pub fn kept_len(&self) -> usize {
        self.kept.len()
    }

    /// `RingEnter`: submits up to `to_submit` published entries and, with `min_complete >
    /// 0`, waits until that many completions are in the CQ or `timeout_ns` passes (0 = no
    /// timeout). Returns the number of entries the kernel consumed.
    ///
    /// # Errors
    /// `ETIME` on timeout, `EINTR`, or an error about the ring itself.
    #[inline]
    pub fn enter(
        &mut self,
        to_submit: u32,
        min_complete: u32,
        flags: RingEnterFlags,
        timeout_ns: u64,
    ) -> Result<u32, Errno> {
        let mut s = Sqe::new(Opcode::RingEnter);
        s.len = to_submit;
        s.off = min_complete as u64;
        s.op_flags = flags.bits();
        s.addr = timeout_ns;
        // SAFETY: RingEnter names no user memory (`addr` is a timeout).
        check(unsafe { trap(&s) }).map(|n| n as u32)
    }

    /// Makes the kernel see what was pushed: in plain mode a `RingEnter` for the pending
    /// entries; in polled mode only a wake-up if the poller sleeps (no trap otherwise).
    /// Returns the number of entries consumed by this call (0 in polled mode).
    ///
    /// # Errors
    /// As [`Ring::enter`].
    pub fn submit(&mut self) -> Result<u32, Errno> {
        self.submit_and_wait(0)
    }

    /// As [`Ring::submit`], then waits until at least `min_complete` completions are
    /// ready (a single trap for both).
    ///
    /// # Errors
    /// As [`Ring::enter`].
    #[inline]
    pub fn submit_and_wait(&mut self, min_complete: u32) -> Result<u32, Errno> {
        if self.polled {
            // The tail store in `try_push` must be visible before we read the flag, or we
            // could miss a poller that went to sleep in between (abi: polled mode).
            fence(Ordering::SeqCst);
            let need_wakeup = self.sq_flags() & SQ_NEED_WAKEUP != 0;
            let need_wait = min_complete > 0 && self.cq_ready() < min_complete;
            if !need_wakeup && !need_wait {
                return Ok(0);
            }
            let mut flags = RingEnterFlags::NONE;
            if need_wakeup {
                flags = flags | RingEnterFlags::SQ_WAKEUP;
            }
            if need_wait {
                flags = flags | RingEnterFlags::GETEVENTS;
            }
            return self.enter(0, if need_wait { min_complete } else { 0 }, flags, 0);
        }
        let pending = self.sq_pending();
        if pending == 0 && (min_complete == 0 || self.cq_ready() >= min_complete) {
            return Ok(0);
        }
        let flags = if min_complete > 0 {
            RingEnterFlags::GETEVENTS
        } else {
            RingEnterFlags::NONE
        };
        self.enter(pending, min_complete, flags, 0)
    }

    /// Completions ready to reap.
    #[inline]
    pub fn cq_ready(&self) -> u32 {
        let tail = self.cq_field(ring_header::TAIL).load(Ordering::Acquire);
        tail.wrapping_sub(self.cq_head).min(self.cq_entries)
    }

    /// Takes the oldest completion, with the buffer of its owned entry if it had one.
    pub fn try_reap(&mut self) -> Option<(Cqe, Option<Keep>)> {
        let cqe = self.try_reap_raw()?;
        Some((cqe, self.take_keep(cqe.user_data)))
    }

    /// Takes every completion in the CQ now, oldest first, handing each to `f` with the
    /// buffer of its owned entry if it had one; returns how many. The CQ head moves once,
    /// after the last (liburing's `io_uring_for_each_cqe` and `io_uring_cq_advance`), so a
    /// batch costs one acquire load and one release store, not one of each per entry.
    #[inline]
    pub fn reap_all(&mut self, mut f: impl FnMut(Cqe, Option<Keep>)) -> u32 {
        let ready = self.cq_ready();
        for i in 0..ready {
            let cqe = self.cqe_at(self.cq_head.wrapping_add(i));
            let keep = self.take_keep(cqe.user_data);
            f(cqe, keep);
        }
        self.advance_cq(ready);
        ready
    }

    /// Takes the oldest completion, if any (owned buffers are not looked up).
    fn try_reap_raw(&mut self) -> Option<Cqe> {
        if self.cq_ready() == 0 {
            return None;
        }
        let cqe = self.cqe_at(self.cq_head);
        self.advance_cq(1);
        Some(cqe)
    }

    /// CQ slot `index` (taken modulo the CQ size). Callers read only slots below the tail
    /// `cq_ready` loaded (acquire), which the kernel has published and does not reuse
    /// until [`Ring::advance_cq`] moves the head past them.
    #[inline]
    fn cqe_at(&self, index: u32) -> Cqe {
        let slot = self.cqes + (index & (self.cq_entries - 1)) as usize * size_of::<Cqe>();
        // SAFETY: invariant 2: the slot is inside the region and 16-byte aligned.
        // Volatile because the kernel writes the CQ concurrently (invariant 3).
        unsafe { core::ptr::read_volatile(self.base.add(slot) as *const Cqe) }
    }

    /// Gives `n` read CQ slots back to the kernel (one release store of the head).
    #[inline]
    fn advance_cq(&mut self, n: u32) {
        if n > 0 {
            self.cq_head = self.cq_head.wrapping_add(n);
            self.cq_field(ring_header::HEAD)
                .store(self.cq_head, Ordering::Release);
        }
    }

    /// The buffer the ring kept for the owned entry with `user_data`, if any.
    #[inline]
    fn take_keep(&mut self, user_data: u64) -> Option<Keep> {
        if self.kept.is_empty() {
            None
        } else {
            self.kept.remove(&user_data)
        }
    }
}

#[cfg(test)]
mod tests;
