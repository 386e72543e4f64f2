//! The IPI queues: one lock-free SPSC ring per ordered CPU pair (DragonFly `lwkt_ipiq`).
//!
//! Ring `(from, to)` has `IPIQ_CAPACITY` slots. `windex` is written only by CPU `from`,
//! `rindex` only by CPU `to` (DragonFly's `ip_windex` / `ip_rindex`). A slot is written
//! before the Release store of `windex` that publishes it and read before the Release store
//! of `rindex` that frees it (DragonFly's `cpu_sfence` / `cpu_lfence`).
//!
//! Single producer and single consumer are enforced, not assumed: `RingMatrix::claim(cpu)`
//! hands out the producer side of every `(cpu, *)` ring and the consumer side of every
//! `(*, cpu)` ring as one `!Sync` `Endpoints` value, at most once per CPU at a time.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::marker::PhantomData;
use core::mem::MaybeUninit;

use crossbeam_utils::CachePadded;

use crate::IpiMsg;
use crate::sync::{Arc, AtomicBool, AtomicU32, Ordering, UnsafeCell};

/// Slots per ring (DragonFly's `MAXCPUFIFO`).
pub const IPIQ_CAPACITY: usize = 32;

struct Ring {
    windex: CachePadded<AtomicU32>,
    rindex: CachePadded<AtomicU32>,
    slots: Box<[UnsafeCell<MaybeUninit<IpiMsg>>]>,
}

impl Ring {
    fn new() -> Self {
        Self {
            windex: CachePadded::new(AtomicU32::new(0)),
            rindex: CachePadded::new(AtomicU32::new(0)),
            slots: (0..IPIQ_CAPACITY)
                .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
                .collect(),
        }
    }
}

/// All `n * n` rings of a machine plus the per-CPU claim flags.
///
/// Invariants: slot `i` of a ring holds an initialised message exactly when
/// `rindex <= i < windex` (mod 2^32, distance at most `IPIQ_CAPACITY`); only the holder of
/// `Endpoints` for `from` advances `windex` of rings `(from, *)`, and only the holder for `to`
/// advances `rindex` of rings `(*, to)`.
pub(crate) struct RingMatrix {
    n: usize,
    rings: Box<[Ring]>,
    claimed: Box<[AtomicBool]>,
}

// SAFETY: slot access is serialised by the SPSC protocol above (one producer, one consumer,
// publication through Release/Acquire on the indices); the messages are Send.
unsafe impl Sync for RingMatrix {}
// SAFETY: as above; the matrix owns plain data and atomics.
unsafe impl Send for RingMatrix {}

impl RingMatrix {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            n,
            rings: (0..n * n)
                .map(|_| Ring::new())
                .collect::<Vec<_>>()
                .into_boxed_slice(),
            claimed: (0..n)
                .map(|_| AtomicBool::new(false))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        }
    }

    fn ring(&self, from: usize, to: usize) -> &Ring {
        &self.rings[from * self.n + to]
    }

    /// Number of messages waiting in ring `(from, to)`, as seen from any CPU.
    pub(crate) fn pending(&self, from: usize, to: usize) -> usize {
        let ring = self.ring(from, to);
        let w = ring.windex.load(Ordering::Acquire);
        let r = ring.rindex.load(Ordering::Acquire);
        w.wrapping_sub(r) as usize
    }

    /// Takes the ring ends of `cpu`. `None` if another holder has them.
    pub(crate) fn claim(matrix: &Arc<Self>, cpu: usize) -> Option<Endpoints> {
        assert!(
            cpu < matrix.n,
            "executor: claim of CPU {cpu} on a {}-CPU machine",
            matrix.n
        );
        matrix.claimed[cpu]
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .ok()
            .map(|_| Endpoints {
                matrix: matrix.clone(),
                cpu,
                _not_sync: PhantomData,
            })
    }
}

/// The producer ends of rings `(cpu, *)` and consumer ends of rings `(*, cpu)`.
pub(crate) struct Endpoints {
    matrix: Arc<RingMatrix>,
    cpu: usize,
    _not_sync: PhantomData<core::cell::Cell<()>>,
}

impl Endpoints {
    /// Appends `msg` to ring `(self.cpu, to)`; gives it back when the ring is full.
    pub(crate) fn push(&self, to: usize, msg: IpiMsg) -> Result<(), IpiMsg> {
        let ring = self.matrix.ring(self.cpu, to);
        let w = ring.windex.load(Ordering::Relaxed);
        let r = ring.rindex.load(Ordering::Acquire);
        if w.wrapping_sub(r) as usize >= IPIQ_CAPACITY {
            return Err(msg);
        }
        ring.slots[w as usize % IPIQ_CAPACITY].with_mut(|slot| {
            // SAFETY:
            // 1. We hold the producer end of this ring (Endpoints is unique per CPU, !Sync).
            // 2. `w - r < capacity`, so slot `w` is outside `rindex..windex`: the consumer
            //    finished reading it (its Release store of rindex, Acquired above) and
            //    will not read it until we publish `w + 1`.
            unsafe { (*slot).write(msg) };
        });
        ring.windex.store(w.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Takes the oldest message of ring `(from, self.cpu)`.
    pub(crate) fn pop(&self, from: usize) -> Option<IpiMsg> {
        let ring = self.matrix.ring(from, self.cpu);
        let r = ring.rindex.load(Ordering::Relaxed);
        let w = ring.windex.load(Ordering::Acquire);
        if r == w {
            return None;
        }
        let msg = ring.slots[r as usize % IPIQ_CAPACITY].with(|slot| {
            // SAFETY:
            // 1. We hold the consumer end of this ring (Endpoints is unique per CPU, !Sync).
            // 2. `r != w`: slot `r` was initialised before the producer's Release store of
            //    `windex` (Acquired above) and is read exactly once, here, before we
            //    advance `rindex` past it.
            unsafe { (*slot).assume_init_read() }
        });
        ring.rindex.store(r.wrapping_add(1), Ordering::Release);
        Some(msg)
    }

    /// Messages waiting in our outgoing ring to `to`.
    pub(crate) fn outgoing(&self, to: usize) -> usize {
        self.matrix.pending(self.cpu, to)
    }

    /// True if any incoming ring holds a message.
    pub(crate) fn has_incoming(&self) -> bool {
        (0..self.matrix.n).any(|from| from != self.cpu && self.matrix.pending(from, self.cpu) != 0)
    }
}

impl Drop for Endpoints {
    fn drop(&mut self) {
        self.matrix.claimed[self.cpu].store(false, Ordering::Release);
    }
}
