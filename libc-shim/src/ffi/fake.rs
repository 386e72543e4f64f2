// SPDX-License-Identifier: MIT OR Apache-2.0
//! An in-process fake kernel for host tests: the trap door lands here instead of in a
//! `syscall`. It implements just enough to test the shim: `Nop`, `Write` to a captured
//! console, `Getpid`, `ClockGettime`, `Timeout` (fires on the next `RingEnter`), `Cancel`,
//! and the ring (`RingSetup`, `RingEnter` with a CQ overflow list, polled mode with
//! `SQ_NEED_WAKEUP`). Anything else can be answered by a per-test hook.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU32, Ordering};
use std::vec::Vec;

use abi::ring::{CQ_OVERFLOW, RING_SETUP_POLLED, SQ_CQ_FULL, SQ_NEED_WAKEUP, ring_header};
use abi::{Cqe, Errno, Opcode, RingEnterFlags, RingLayout, RingParams, Sqe, Timespec};

/// A per-test answer for opcodes the fake does not know: `Some(result)` to answer.
pub type Hook = Box<dyn FnMut(&Sqe) -> Option<i64>>;

/// The fake kernel's state (one per test thread).
#[derive(Default)]
pub struct FakeKernel {
    /// Bytes written to fds 1 and 2.
    pub console: Vec<u8>,
    /// Every trap-door entry seen, in order.
    pub traps: Vec<Sqe>,
    /// Answers for other opcodes.
    pub hook: Option<Hook>,
    /// The ring region (owned here, leaked to keep addresses stable), and its layout.
    region: Option<(Box<[Page]>, RingLayout)>,
    polled: bool,
    /// Completions waiting for CQ space.
    pub overflow: VecDeque<Cqe>,
    /// In-flight `Timeout`s by `user_data`.
    timers: Vec<u64>,
    /// Number of ring entries consumed.
    pub consumed: u64,
    /// Number of `RingEnter` traps that carried `SQ_WAKEUP`.
    pub wakeups: u32,
}

#[repr(C, align(4096))]
#[derive(Clone, Copy)]
struct Page([u8; 4096]);

thread_local! {
    static KERNEL: RefCell<FakeKernel> = RefCell::new(FakeKernel::default());
}

/// Runs `f` on this thread's fake kernel.
pub fn with<R>(f: impl FnOnce(&mut FakeKernel) -> R) -> R {
    KERNEL.with(|k| f(&mut k.borrow_mut()))
}

/// Starts a test with a fresh fake kernel.
pub fn reset() {
    with(|k| *k = FakeKernel::default());
}

/// The trap door.
pub fn trap(sqe: &Sqe) -> i64 {
    with(|k| {
        k.traps.push(*sqe);
        k.trap(sqe)
    })
}

impl FakeKernel {
    fn base(&self) -> *mut u8 {
        self.region
            .as_ref()
            .map_or(core::ptr::null_mut(), |(pages, _)| {
                pages.as_ptr() as *mut u8
            })
    }

    fn header(&self, header: u32, field: u32) -> &AtomicU32 {
        // SAFETY: the region is live (owned by self), the header offsets come from
        // RingLayout and are 4-byte aligned within it.
        unsafe { &*(self.base().add((header + field) as usize) as *const AtomicU32) }
    }

    /// Sets or clears SQ header flag bits (tests simulate a sleeping poller with this).
    pub fn set_sq_flag(&self, bit: u32, on: bool) {
        let layout = self.region.as_ref().expect("ring set up").1;
        let f = self.header(layout.sq_header, ring_header::FLAGS);
        if on {
            f.fetch_or(bit, Ordering::SeqCst);
        } else {
            f.fetch_and(!bit, Ordering::SeqCst);
        }
    }

    fn trap(&mut self, sqe: &Sqe) -> i64 {
        let Some(op) = Opcode::from_u8(sqe.opcode) else {
            return Errno::Inval.to_syscall_result();
        };
        match op {
            Opcode::Nop => 0,
            Opcode::Getpid => 7,
            Opcode::Write if sqe.fd == 1 || sqe.fd == 2 => {
                let bytes =
                    // SAFETY: the shim passes a live buffer of `len` bytes (its contract).
                    unsafe { core::slice::from_raw_parts(sqe.addr as *const u8, sqe.len as usize) };
                self.console.extend_from_slice(bytes);
                sqe.len as i64
            }
            Opcode::ClockGettime => {
                // SAFETY: the shim passes a live `*mut Timespec`.
                unsafe {
                    *(sqe.addr as *mut Timespec) = Timespec {
                        tv_sec: 3,
                        tv_nsec: 5,
                    }
                };
                0
            }
            Opcode::RingSetup => self.ring_setup(sqe),
            Opcode::RingEnter => self.ring_enter(sqe),
            _ => match self.hook.as_mut().and_then(|h| h(sqe)) {
                Some(r) => r,
                None => Errno::NoSys.to_syscall_result(),
            },
        }
    }

    fn ring_setup(&mut self, sqe: &Sqe) -> i64 {
        if self.region.is_some() {
            return Errno::Busy.to_syscall_result();
        }
        // SAFETY: the shim passes a live `*mut RingParams`.
        let params = unsafe { &mut *(sqe.addr as *mut RingParams) };
        let layout = match RingLayout::new(params.sq_entries, params.cq_entries) {
            Ok(l) => l,
            Err(e) => return e.to_syscall_result(),
        };
        let pages = vec![Page([0; 4096]); layout.region_len as usize / 4096].into_boxed_slice();
        layout.write_params(params);
        params.region_addr = pages.as_ptr() as u64;
        self.polled = params.flags & RING_SETUP_POLLED != 0;
        self.region = Some((pages, layout));
        let mask = |entries: u32| entries - 1;
        self.header(layout.sq_header, ring_header::MASK)
            .store(mask(layout.sq_entries), Ordering::Relaxed);
        self.header(layout.sq_header, ring_header::ENTRIES)
            .store(layout.sq_entries, Ordering::Relaxed);
        self.header(layout.cq_header, ring_header::MASK)
            .store(mask(layout.cq_entries), Ordering::Relaxed);
        self.header(layout.cq_header, ring_header::ENTRIES)
            .store(layout.cq_entries, Ordering::Relaxed);
        0
    }

    /// Moves overflowed completions into the CQ while there is room; updates the flags.
    fn flush_overflow(&mut self) {
        let layout = self.region.as_ref().expect("ring").1;
        while let Some(cqe) = self.overflow.front().copied() {
            let head = self
                .header(layout.cq_header, ring_header::HEAD)
                .load(Ordering::Acquire);
            let tail = self
                .header(layout.cq_header, ring_header::TAIL)
                .load(Ordering::Relaxed);
            if tail.wrapping_sub(head) >= layout.cq_entries {
                break;
            }
            let off = layout.cqe_offset(tail) as usize;
            // SAFETY: inside the region, 16-byte aligned, a slot userland handed back.
            unsafe { core::ptr::write_volatile(self.base().add(off) as *mut Cqe, cqe) };
            self.header(layout.cq_header, ring_header::TAIL)
                .store(tail.wrapping_add(1), Ordering::Release);
            self.overflow.pop_front();
        }
        let full = !self.overflow.is_empty();
        let cq_flags = self.header(layout.cq_header, ring_header::FLAGS);
        let sq_flags = self.header(layout.sq_header, ring_header::FLAGS);
        if full {
            cq_flags.fetch_or(CQ_OVERFLOW, Ordering::SeqCst);
            sq_flags.fetch_or(SQ_CQ_FULL, Ordering::SeqCst);
        } else {
            cq_flags.fetch_and(!CQ_OVERFLOW, Ordering::SeqCst);
            sq_flags.fetch_and(!SQ_CQ_FULL, Ordering::SeqCst);
        }
    }

    fn post(&mut self, user_data: u64, res: i32) {
        self.overflow.push_back(Cqe {
            user_data,
            res,
            flags: 0,
        });
        self.flush_overflow();
    }

    fn ring_enter(&mut self, sqe: &Sqe) -> i64 {
        if self.region.is_none() {
            return Errno::BadFd.to_syscall_result();
        }
        let flags = RingEnterFlags::from_bits(sqe.op_flags).unwrap_or(RingEnterFlags::NONE);
        if flags.contains(RingEnterFlags::SQ_WAKEUP) {
            self.wakeups += 1;
            self.set_sq_flag(SQ_NEED_WAKEUP, false);
        }
        self.flush_overflow();
        // In polled mode the "poller" runs here, draining everything published.
        let budget = if self.polled { u32::MAX } else { sqe.len };
        let consumed = self.drain(budget);
        // Waiting: the fake cannot block, so waiting fires the timers.
        if flags.contains(RingEnterFlags::GETEVENTS) && sqe.off > 0 {
            for user_data in core::mem::take(&mut self.timers) {
                self.post(user_data, Errno::Time.to_syscall_result() as i32);
            }
        }
        consumed as i64
    }

    /// What the polling task does: consume up to `budget` published entries (stops while
    /// completions overflow). Returns how many were consumed.
    pub fn drain(&mut self, budget: u32) -> u32 {
        let layout = self.region.as_ref().expect("ring").1;
        self.flush_overflow();
        let mut consumed = 0u32;
        while consumed < budget && self.overflow.is_empty() {
            let head = self
                .header(layout.sq_header, ring_header::HEAD)
                .load(Ordering::Relaxed);
            let tail = self
                .header(layout.sq_header, ring_header::TAIL)
                .load(Ordering::Acquire);
            if head == tail {
                break;
            }
            let off = layout.sqe_offset(head) as usize;
            // SAFETY: inside the region, 64-byte aligned, published by userland.
            let entry = unsafe { core::ptr::read_volatile(self.base().add(off) as *const Sqe) };
            self.header(layout.sq_header, ring_header::HEAD)
                .store(head.wrapping_add(1), Ordering::Release);
            consumed += 1;
            self.consumed += 1;
            match Opcode::from_u8(entry.opcode) {
                Some(Opcode::Nop) => self.post(entry.user_data, 0),
                Some(Opcode::Timeout) => self.timers.push(entry.user_data),
                Some(Opcode::Cancel) => {
                    if let Some(i) = self.timers.iter().position(|&u| u == entry.addr) {
                        self.timers.remove(i);
                        self.post(entry.addr, Errno::Canceled.to_syscall_result() as i32);
                        self.post(entry.user_data, 0);
                    } else {
                        self.post(entry.user_data, Errno::NoEnt.to_syscall_result() as i32);
                    }
                }
                _ => self.post(entry.user_data, Errno::Inval.to_syscall_result() as i32),
            }
        }
        consumed
    }
}
