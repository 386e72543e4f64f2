// SPDX-License-Identifier: MIT OR Apache-2.0
//! The split virtqueue, driver side (virtio 1.x, section 2.7).
//!
//! Read first:
//! - Layout in one [`DmaRegion`] (see [`QueueLayout`]): the descriptor table (16 bytes per
//!   descriptor, aligned 16), the driver ("available") ring (`flags, idx, ring[size],
//!   used_event`, aligned 2) and the device ("used") ring (`flags, idx, ring[size] of
//!   {id: u32, len: u32}, avail_event`, aligned 4).
//! - The driver never trusts what the device wrote: the free list and the shape of every
//!   chain live in driver memory (`next`, `chains`), not in the shared table; a used
//!   element with an id that is not an in-flight chain head, a length larger than the
//!   chain's device-writable bytes, or a used index that moved by more than the ring
//!   size is reported as a [`DeviceError`], never a panic.
//! - Indices are free-running `u16`s that wrap; a ring slot is `idx % size`
//!   (`size` is a power of two, so 65536 is a multiple of it).
//! - Event index (`VIRTIO_F_EVENT_IDX`): the driver asks to be interrupted when the used
//!   index passes `used_event`, and notifies only when its new available index passes the
//!   device's `avail_event` ([`vring_need_event`]).
//!
//! ```text
//!  descriptor:  free --(1) add--> in flight --(2) device writes used elem--> used
//!               ^                                                           |
//!               +-------------------(3) pop_used reclaims the chain---------+
//! ```

use alloc::vec::Vec;
use core::fmt;

use crate::dma::DmaRegion;

/// Descriptor flag: the chain continues in `next`.
pub const VIRTQ_DESC_F_NEXT: u16 = 1;
/// Descriptor flag: the device writes this buffer (otherwise it reads it).
pub const VIRTQ_DESC_F_WRITE: u16 = 2;
/// Driver ring flag (without event index): do not interrupt me.
pub const VIRTQ_AVAIL_F_NO_INTERRUPT: u16 = 1;
/// Device ring flag (without event index): do not notify me.
pub const VIRTQ_USED_F_NO_NOTIFY: u16 = 1;

/// Largest split queue size (section 2.7: at most 32768).
pub const MAX_QUEUE_SIZE: u16 = 32768;

/// `true` if moving an index from `old_idx` to `new_idx` passed `event_idx`, i.e. if
/// `event_idx` is one of `old_idx, old_idx + 1, .., new_idx - 1` modulo 2^16 (the
/// spec's `vring_need_event`). Used both ways: should the driver notify (with the
/// device's `avail_event`), should the device interrupt (with the driver's `used_event`).
pub const fn vring_need_event(event_idx: u16, new_idx: u16, old_idx: u16) -> bool {
    new_idx.wrapping_sub(event_idx).wrapping_sub(1) < new_idx.wrapping_sub(old_idx)
}

/// Where the three parts of a split queue of `size` entries sit in its region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueLayout {
    /// Number of descriptors (a power of two, 1 to 32768).
    pub size: u16,
    /// Offset of the descriptor table (always 0).
    pub descriptors: usize,
    /// Offset of the driver (available) ring.
    pub driver_ring: usize,
    /// Offset of the device (used) ring.
    pub device_ring: usize,
    /// Bytes the region needs.
    pub len_bytes: usize,
}

impl QueueLayout {
    /// The layout for `size` entries.
    ///
    /// # Errors
    /// [`QueueError::BadSize`] unless `size` is a power of two no larger than 32768.
    pub const fn try_new(size: u16) -> Result<QueueLayout, QueueError> {
        if size == 0 || !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
            return Err(QueueError::BadSize(size));
        }
        let n = size as usize;
        let driver_ring = 16 * n;
        let device_ring = (driver_ring + 6 + 2 * n + 3) & !3;
        Ok(QueueLayout {
            size,
            descriptors: 0,
            driver_ring,
            device_ring,
            len_bytes: device_ring + 6 + 8 * n,
        })
    }

    /// Offset of `used_event` (driver ring, after the entries).
    pub const fn used_event(&self) -> usize {
        self.driver_ring + 4 + 2 * self.size as usize
    }

    /// Offset of `avail_event` (device ring, after the entries).
    pub const fn avail_event(&self) -> usize {
        self.device_ring + 4 + 8 * self.size as usize
    }

    /// Offset of descriptor `i`.
    pub const fn descriptor(&self, i: u16) -> usize {
        self.descriptors + 16 * i as usize
    }

    /// Offset of driver ring slot for index `idx`.
    pub const fn driver_slot(&self, idx: u16) -> usize {
        self.driver_ring + 4 + 2 * (idx % self.size) as usize
    }

    /// Offset of device ring slot for index `idx`.
    pub const fn device_slot(&self, idx: u16) -> usize {
        self.device_ring + 4 + 8 * (idx % self.size) as usize
    }
}

/// One buffer of a descriptor chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Device-visible address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
    /// The device writes it (otherwise reads it).
    pub device_writable: bool,
}

/// Identifies an in-flight chain: the index of its head descriptor. Returned by
/// [`SplitQueue::add`] and found again in [`Used::chain`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainId(pub u16);

impl ChainId {
    /// As an index (`0..size`), for a per-chain table in the driver.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A chain the device has finished with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Used {
    /// Which chain.
    pub chain: ChainId,
    /// Bytes the device wrote into the chain's device-writable buffers.
    pub len: u32,
}

/// A request the queue refuses (the driver's mistake or a full queue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueError {
    /// The size is not a power of two in `1..=32768`.
    BadSize(u16),
    /// The region is smaller than the layout needs.
    RegionTooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// A chain needs at least one segment.
    EmptyChain,
    /// Not enough free descriptors (try again after `pop_used`).
    Full {
        /// Descriptors needed.
        needed: usize,
        /// Descriptors free.
        free: usize,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueueError::BadSize(size) => {
                write!(f, "queue size {size} is not a power of two <= 32768")
            }
            QueueError::RegionTooSmall { need, have } => {
                write!(f, "queue region has {have} bytes, needs {need}")
            }
            QueueError::EmptyChain => f.write_str("empty descriptor chain"),
            QueueError::Full { needed, free } => {
                write!(
                    f,
                    "queue full: chain needs {needed} descriptors, {free} free"
                )
            }
        }
    }
}

/// The device wrote something impossible into the used ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceError {
    /// A used element names a descriptor beyond the table (the element was skipped).
    UsedIdOutOfRange {
        /// The id the device wrote.
        id: u32,
    },
    /// A used element names a descriptor that is not the head of an in-flight chain
    /// (completed twice, or never submitted; the element was skipped).
    UsedIdNotInFlight {
        /// The id the device wrote.
        id: u32,
    },
    /// The device claims to have written more than the chain's writable bytes. The chain
    /// was reclaimed: fail its request.
    UsedLenTooBig {
        /// The chain.
        chain: ChainId,
        /// What the device wrote in `len`.
        len: u32,
        /// The chain's writable bytes.
        max: u64,
    },
    /// The used index moved by more than the ring size. Nothing was consumed; the queue
    /// cannot be trusted any more (reset the device).
    UsedIndexJump {
        /// The device's used index.
        used_idx: u16,
        /// The driver's last seen used index.
        last_used: u16,
        /// Chains in flight.
        in_flight: u16,
    },
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::UsedIdOutOfRange { id } => write!(f, "used id {id} out of range"),
            DeviceError::UsedIdNotInFlight { id } => write!(f, "used id {id} not in flight"),
            DeviceError::UsedLenTooBig { chain, len, max } => {
                write!(f, "chain {} used len {len} > writable {max}", chain.0)
            }
            DeviceError::UsedIndexJump {
                used_idx,
                last_used,
                in_flight,
            } => write!(
                f,
                "used idx jumped to {used_idx} from {last_used} with {in_flight} in flight"
            ),
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Chain {
    count: u16,
    writable_len: u64,
}

/// A split virtqueue, driver side, over region `R`.
///
/// Invariants (all in driver memory, none read back from the device):
/// - the free list is `free_head` followed by `next[..]` links, `num_free` long;
/// - `chains[h]` is `Some` exactly for heads of chains in flight, and its `count`
///   descriptors are `h`, `next[h]`, ... ;
/// - `num_free + sum(count)` = `size`.
pub struct SplitQueue<R: DmaRegion> {
    region: R,
    layout: QueueLayout,
    event_idx: bool,
    free_head: u16,
    num_free: u16,
    next: Vec<u16>,
    chains: Vec<Option<Chain>>,
    in_flight: u16,
    /// Next driver ring index to fill.
    avail_idx: u16,
    /// The driver ring index the device was last shown.
    published_idx: u16,
    /// Next device ring index to read.
    last_used: u16,
}

impl<R: DmaRegion> fmt::Debug for SplitQueue<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SplitQueue")
            .field("size", &self.layout.size)
            .field("in_flight", &self.in_flight)
            .field("num_free", &self.num_free)
            .field("avail_idx", &self.avail_idx)
            .field("last_used", &self.last_used)
            .finish()
    }
}

impl<R: DmaRegion> SplitQueue<R> {
    /// A queue of `size` entries in `region`, which is zeroed here. `event_idx` says
    /// whether `VIRTIO_F_EVENT_IDX` was negotiated.
    ///
    /// # Errors
    /// [`QueueError::BadSize`], [`QueueError::RegionTooSmall`].
    pub fn try_new(region: R, size: u16, event_idx: bool) -> Result<Self, QueueError> {
        let layout = QueueLayout::try_new(size)?;
        if region.len() < layout.len_bytes {
            return Err(QueueError::RegionTooSmall {
                need: layout.len_bytes,
                have: region.len(),
            });
        }
        for offset in (0..layout.len_bytes).step_by(2) {
            region.write_u16(offset, 0);
        }
        let next = (1..=size).map(|i| i % size).collect();
        Ok(SplitQueue {
            region,
            layout,
            event_idx,
            free_head: 0,
            num_free: size,
            next,
            chains: alloc::vec![None; size as usize],
            in_flight: 0,
            avail_idx: 0,
            published_idx: 0,
            last_used: 0,
        })
    }

    /// The layout (its three offsets plus the region's address are what the transport
    /// tells the device).
    pub fn layout(&self) -> QueueLayout {
        self.layout
    }

    /// Device address of the descriptor table.
    pub fn descriptor_addr(&self) -> u64 {
        self.region.device_addr() + self.layout.descriptors as u64
    }

    /// Device address of the driver (available) ring.
    pub fn driver_addr(&self) -> u64 {
        self.region.device_addr() + self.layout.driver_ring as u64
    }

    /// Device address of the device (used) ring.
    pub fn device_addr(&self) -> u64 {
        self.region.device_addr() + self.layout.device_ring as u64
    }

    /// The region (for a fake device in tests).
    pub fn region(&self) -> &R {
        &self.region
    }

    /// Number of entries.
    pub fn size(&self) -> u16 {
        self.layout.size
    }

    /// Free descriptors.
    pub fn num_free(&self) -> usize {
        self.num_free as usize
    }

    /// Chains added and not yet returned by `pop_used`.
    pub fn in_flight(&self) -> usize {
        self.in_flight as usize
    }

    /// Whether the event index feature is in use.
    pub fn has_event_idx(&self) -> bool {
        self.event_idx
    }

    /// Writes a chain of `segments` into free descriptors and puts its head into the
    /// driver ring. The device sees it only after [`SplitQueue::publish`].
    ///
    /// # Errors
    /// [`QueueError::EmptyChain`]; [`QueueError::Full`] when fewer than
    /// `segments.len()` descriptors are free (nothing was changed).
    ///
    /// # Context
    /// The driver task; never blocks, never allocates.
    pub fn add(&mut self, segments: &[Segment]) -> Result<ChainId, QueueError> {
        if segments.is_empty() {
            return Err(QueueError::EmptyChain);
        }
        if segments.len() > self.num_free as usize {
            return Err(QueueError::Full {
                needed: segments.len(),
                free: self.num_free as usize,
            });
        }
        let head = self.free_head;
        let mut index = head;
        let mut writable_len = 0u64;
        for (i, segment) in segments.iter().enumerate() {
            let is_last = i + 1 == segments.len();
            let mut flags = 0;
            if segment.device_writable {
                flags |= VIRTQ_DESC_F_WRITE;
                writable_len += segment.len as u64;
            }
            let next = self.next[index as usize];
            if !is_last {
                flags |= VIRTQ_DESC_F_NEXT;
            }
            // `len` (u32), `flags` and `next` (u16 each) in one little-endian store.
            let offset = self.layout.descriptor(index);
            let next_field = if is_last { 0 } else { next };
            self.region.write_u64(offset, segment.addr);
            self.region.write_u64(
                offset + 8,
                u64::from(segment.len) | u64::from(flags) << 32 | u64::from(next_field) << 48,
            );
            if is_last {
                self.free_head = next;
            } else {
                index = next;
            }
        }
        self.num_free -= segments.len() as u16;
        self.chains[head as usize] = Some(Chain {
            count: segments.len() as u16,
            writable_len,
        });
        self.in_flight += 1;
        self.region
            .write_u16(self.layout.driver_slot(self.avail_idx), head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
        Ok(ChainId(head))
    }

    /// Makes every chain added since the last call visible to the device, and says
    /// whether the device wants a notification (then the caller writes the transport's
    /// notify register).
    ///
    /// # Context
    /// The driver task; never blocks.
    pub fn publish(&mut self) -> bool {
        let old = self.published_idx;
        let new = self.avail_idx;
        if old == new {
            return false;
        }
        // Descriptors and ring entries before the index that publishes them.
        self.region.barrier();
        self.region.write_u16(self.layout.driver_ring + 2, new);
        self.published_idx = new;
        // The index before reading what the device asked for (else a lost notify).
        self.region.barrier();
        if self.event_idx {
            let event = self.region.read_u16(self.layout.avail_event());
            vring_need_event(event, new, old)
        } else {
            self.region.read_u16(self.layout.device_ring) & VIRTQ_USED_F_NO_NOTIFY == 0
        }
    }

    /// `true` if the device has completed chains not yet popped.
    pub fn has_used(&self) -> bool {
        self.region.read_u16(self.layout.device_ring + 2) != self.last_used
    }

    /// Takes the next used element, reclaims its chain's descriptors, and returns it.
    ///
    /// # Errors
    /// A [`DeviceError`] when the device wrote garbage: the element is consumed (except
    /// for `UsedIndexJump`) and the queue stays consistent, so the caller logs, fails
    /// the affected request if it knows it (`UsedLenTooBig`), and goes on.
    ///
    /// # Context
    /// The driver task (not `on_interrupt`); never blocks, never allocates.
    pub fn pop_used(&mut self) -> Result<Option<Used>, DeviceError> {
        let used_idx = self.region.read_u16(self.layout.device_ring + 2);
        if used_idx == self.last_used {
            return Ok(None);
        }
        // More entries than the ring holds is impossible; fewer but more than in flight
        // is caught element by element (ids that are not in flight).
        if used_idx.wrapping_sub(self.last_used) > self.layout.size {
            return Err(DeviceError::UsedIndexJump {
                used_idx,
                last_used: self.last_used,
                in_flight: self.in_flight,
            });
        }
        // The index before the element it covers.
        self.region.barrier();
        let slot = self.layout.device_slot(self.last_used);
        let id = self.region.read_u32(slot);
        let len = self.region.read_u32(slot + 4);
        self.last_used = self.last_used.wrapping_add(1);
        if self.event_idx {
            self.region
                .write_u16(self.layout.used_event(), self.last_used);
        }
        if id >= self.layout.size as u32 {
            return Err(DeviceError::UsedIdOutOfRange { id });
        }
        let Some(chain) = self.chains[id as usize].take() else {
            return Err(DeviceError::UsedIdNotInFlight { id });
        };
        self.reclaim(id as u16, chain.count);
        let chain_id = ChainId(id as u16);
        if len as u64 > chain.writable_len {
            return Err(DeviceError::UsedLenTooBig {
                chain: chain_id,
                len,
                max: chain.writable_len,
            });
        }
        Ok(Some(Used {
            chain: chain_id,
            len,
        }))
    }

    /// Puts a chain's `count` descriptors back on the free list (driver memory only).
    fn reclaim(&mut self, head: u16, count: u16) {
        let mut last = head;
        for _ in 1..count {
            last = self.next[last as usize];
        }
        self.next[last as usize] = self.free_head;
        self.free_head = head;
        self.num_free += count;
        self.in_flight -= 1;
    }

    /// Asks the device for an interrupt at the next completion, then says whether
    /// completions are already waiting (then pop them instead of sleeping: the interrupt
    /// for them may already have fired).
    ///
    /// # Context
    /// The driver task, before it waits for the interrupt.
    pub fn arm_interrupt(&mut self) -> bool {
        if self.event_idx {
            self.region
                .write_u16(self.layout.used_event(), self.last_used);
        } else {
            self.region.write_u16(self.layout.driver_ring, 0);
        }
        self.region.barrier();
        self.has_used()
    }

    /// Asks the device not to interrupt (advisory; without event index it sets
    /// `VIRTQ_AVAIL_F_NO_INTERRUPT`, with it moves `used_event` half the ring away).
    pub fn suppress_interrupt(&mut self) {
        if self.event_idx {
            let far = self.last_used.wrapping_add(0x8000);
            self.region.write_u16(self.layout.used_event(), far);
        } else {
            self.region
                .write_u16(self.layout.driver_ring, VIRTQ_AVAIL_F_NO_INTERRUPT);
        }
    }
}

#[cfg(test)]
mod tests;
