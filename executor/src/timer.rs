//! Per-CPU timers: a hashed timer wheel (DragonFly's callwheel) and `sleep` / `timeout`.
//!
//! `TimerWheel` is plain data: time is always an argument (`now_ns`), so its tests are
//! deterministic. Each CPU owns one wheel; a `Sleep` registers in the wheel of the CPU that
//! polls it, and its drop removes the entry there (through an IPI if it was dropped on
//! another CPU). Deadlines come from `Platform::now_ns`.

use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::runtime::{LocalCpu, with_local};
use crate::{CpuId, IpiMsg};

/// Slots of the wheel (a power of two).
pub const WHEEL_SLOTS: usize = 256;
/// Default tick: 1 ms.
pub const DEFAULT_TICK_NS: u64 = 1_000_000;

/// Names one timer in a wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerKey {
    id: u64,
    slot: u32,
}

#[derive(Debug)]
struct Entry<T> {
    deadline_ns: u64,
    id: u64,
    item: T,
}

/// A hashed timer wheel: `WHEEL_SLOTS` slots of `tick_ns` each; an entry lives in slot
/// `(deadline / tick) % WHEEL_SLOTS` and fires when `advance` passes its deadline (entries
/// further out than one revolution simply stay in their slot for more rounds).
#[derive(Debug)]
pub struct TimerWheel<T> {
    tick_ns: u64,
    slots: Vec<Vec<Entry<T>>>,
    /// Tick up to which `advance` has run (its slot is rescanned next time).
    current_tick: u64,
    next_id: u64,
    len: usize,
    /// Cached earliest deadline; `None` with `len > 0` means "recompute".
    earliest: Option<u64>,
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose clock starts at `now_ns`.
    ///
    /// # Panics
    /// If `tick_ns` is zero.
    pub fn new(tick_ns: u64, now_ns: u64) -> Self {
        assert!(tick_ns > 0, "timer wheel tick must be positive");
        Self {
            tick_ns,
            slots: (0..WHEEL_SLOTS).map(|_| Vec::new()).collect(),
            current_tick: now_ns / tick_ns,
            next_id: 0,
            len: 0,
            earliest: None,
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a timer. A deadline in the past fires at the next `advance`.
    pub fn insert(&mut self, deadline_ns: u64, item: T) -> TimerKey {
        let tick = (deadline_ns / self.tick_ns).max(self.current_tick);
        let slot = (tick % WHEEL_SLOTS as u64) as u32;
        let id = self.next_id;
        self.next_id += 1;
        self.slots[slot as usize].push(Entry {
            deadline_ns,
            id,
            item,
        });
        self.len += 1;
        if self.len == 1 {
            self.earliest = Some(deadline_ns);
        } else if let Some(e) = self.earliest {
            self.earliest = Some(e.min(deadline_ns));
        }
        TimerKey { id, slot }
    }

    /// Removes a pending timer; `None` if it already fired or was removed.
    pub fn remove(&mut self, key: TimerKey) -> Option<T> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        let pos = slot.iter().position(|e| e.id == key.id)?;
        let entry = slot.swap_remove(pos);
        release_if_empty(slot);
        self.len -= 1;
        if self.earliest == Some(entry.deadline_ns) {
            self.earliest = None;
        }
        Some(entry.item)
    }

    /// The item of a pending timer.
    pub fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        slot.iter_mut()
            .find(|e| e.id == key.id)
            .map(|e| &mut e.item)
    }

    /// The earliest pending deadline.
    pub fn next_deadline(&mut self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        if self.earliest.is_none() {
            self.earliest = self.slots.iter().flatten().map(|e| e.deadline_ns).min();
        }
        self.earliest
    }

    /// Fires every timer with `deadline <= now_ns`, in deadline order (ties: insertion
    /// order), appending their items to `expired`.
    pub fn advance(&mut self, now_ns: u64, expired: &mut Vec<T>) {
        let now_tick = now_ns / self.tick_ns;
        if now_tick < self.current_tick || self.len == 0 {
            self.current_tick = self.current_tick.max(now_tick);
            return;
        }
        let mut fired: Vec<Entry<T>> = Vec::new();
        let span = now_tick - self.current_tick;
        if span >= WHEEL_SLOTS as u64 {
            for slot in &mut self.slots {
                take_expired(slot, now_ns, &mut fired);
            }
        } else {
            for tick in self.current_tick..=now_tick {
                take_expired(
                    &mut self.slots[(tick % WHEEL_SLOTS as u64) as usize],
                    now_ns,
                    &mut fired,
                );
            }
        }
        self.current_tick = now_tick;
        if !fired.is_empty() {
            self.len -= fired.len();
            self.earliest = None;
            fired.sort_by_key(|e| (e.deadline_ns, e.id));
            expired.extend(fired.into_iter().map(|e| e.item));
        }
    }
}

/// Moves the entries of `slot` whose deadline has passed into `fired`.
fn take_expired<T>(slot: &mut Vec<Entry<T>>, now_ns: u64, fired: &mut Vec<Entry<T>>) {
    let mut i = 0;
    while i < slot.len() {
        if slot[i].deadline_ns <= now_ns {
            fired.push(slot.swap_remove(i));
        } else {
            i += 1;
        }
    }
    release_if_empty(slot);
}

/// Gives an emptied slot's storage back to the heap, so the wheel holds memory only for
/// pending timers (a burst of timers in one slot would otherwise keep its capacity for
/// ever, and the kernel's leak checks compare the heap before and after exactly).
fn release_if_empty<T>(slot: &mut Vec<Entry<T>>) {
    if slot.is_empty() && slot.capacity() > 0 {
        *slot = Vec::new();
    }
}

// ---------------------------------------------------------------------------------------
// Futures
// ---------------------------------------------------------------------------------------

/// The platform clock of the current CPU, in nanoseconds: the clock `sleep_until`
/// deadlines are measured against. Monotonic on one CPU (CPUs may differ slightly).
///
/// # Panics
/// Outside a CPU of a running machine (there is no platform to ask).
///
/// # Context
/// Any task or IPI function on a CPU; one clock read, never suspends.
pub fn now_ns() -> u64 {
    with_local(|l| l.map(LocalCpu::now_ns)).expect("executor::now_ns called outside a CPU")
}

/// Waits until `duration` has passed on the platform clock.
///
/// # Panics
/// Called outside a CPU of a running machine.
///
/// # Context
/// Must be called and polled on a CPU of a running machine.
pub fn sleep(duration: Duration) -> Sleep {
    let now =
        with_local(|l| l.map(LocalCpu::now_ns)).expect("executor::sleep called outside a CPU");
    sleep_until(now.saturating_add(duration.as_nanos().min(u64::MAX as u128) as u64))
}

/// Waits until the platform clock reads `deadline_ns`.
pub fn sleep_until(deadline_ns: u64) -> Sleep {
    Sleep {
        deadline_ns,
        registration: None,
    }
}

/// Future of `sleep`. Dropping it cancels the timer.
#[derive(Debug)]
pub struct Sleep {
    deadline_ns: u64,
    /// (runtime identity, CPU, key) of the wheel entry, if registered.
    registration: Option<(usize, CpuId, TimerKey)>,
}

impl Sleep {
    /// The deadline on the platform clock.
    pub fn deadline_ns(&self) -> u64 {
        self.deadline_ns
    }

    fn unregister(&mut self, local: Option<&LocalCpu>) {
        let Some((rt, cpu, key)) = self.registration.take() else {
            return;
        };
        let Some(local) = local else { return };
        if local.runtime_id() != rt {
            // Dropped on another machine's thread: the entry fires once and wakes nobody.
            return;
        }
        if local.cpu() == cpu {
            local.remove_timer(key);
        } else {
            local.send_ipi_msg(
                cpu.index(),
                IpiMsg {
                    func: remove_timer_ipi,
                    arg1: key.id as usize,
                    arg2: key.slot as usize,
                },
            );
        }
    }
}

fn remove_timer_ipi(id: usize, slot: usize) {
    with_local(|l| {
        if let Some(l) = l {
            l.remove_timer(TimerKey {
                id: id as u64,
                slot: slot as u32,
            });
        }
    });
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        with_local(|local| {
            let local = local.expect("executor::Sleep polled outside a CPU");
            if local.now_ns() >= this.deadline_ns {
                this.unregister(Some(local));
                return Poll::Ready(());
            }
            match this.registration {
                Some((rt, cpu, key)) if rt == local.runtime_id() && cpu == local.cpu() => {
                    if !local.update_timer(key, cx.waker()) {
                        // Fired early (clock skew between CPUs): register again.
                        let key = local.insert_timer(this.deadline_ns, cx.waker().clone());
                        this.registration = Some((rt, cpu, key));
                    }
                }
                _ => {
                    this.unregister(Some(local));
                    let key = local.insert_timer(this.deadline_ns, cx.waker().clone());
                    this.registration = Some((local.runtime_id(), local.cpu(), key));
                }
            }
            Poll::Pending
        })
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if self.registration.is_some() {
            with_local(|local| self.unregister(local));
        }
    }
}

/// The error of a `timeout` that expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl core::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("deadline elapsed")
    }
}

pin_project_lite::pin_project! {
    /// Future of `timeout`.
    #[derive(Debug)]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

/// Runs `future` for at most `duration`: `Err(Elapsed)` if the deadline passes first (the
/// inner future is then dropped with the `Timeout`).
///
/// # Cancel safety
/// Exactly that of `future`.
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.future.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn a_slot_holds_no_storage_once_its_timers_are_gone() {
        let mut w = TimerWheel::new(MS, 0);
        let keys: Vec<TimerKey> = (0..100).map(|i| w.insert(5 * MS, i)).collect();
        let slot = keys[0].slot as usize;
        assert!(w.slots[slot].capacity() >= 100);
        for k in keys {
            w.remove(k);
        }
        assert_eq!(w.slots[slot].capacity(), 0, "removed: storage released");
        for i in 0..10 {
            w.insert(7 * MS, i);
        }
        let mut out = Vec::new();
        w.advance(8 * MS, &mut out);
        assert_eq!(out.len(), 10);
        assert!(
            w.slots.iter().all(|s| s.capacity() == 0),
            "fired: storage released"
        );
    }

    #[test]
    fn fires_in_deadline_order_not_before() {
        let mut w = TimerWheel::new(MS, 0);
        w.insert(5 * MS, "c");
        w.insert(2 * MS, "a");
        w.insert(3 * MS + 1, "b");
        let mut out = vec![];
        w.advance(MS, &mut out);
        assert!(out.is_empty());
        w.advance(3 * MS, &mut out);
        assert_eq!(out, ["a"], "3ms+1 is still in the future at 3ms");
        w.advance(3 * MS + 1, &mut out);
        assert_eq!(out, ["a", "b"]);
        assert_eq!(w.next_deadline(), Some(5 * MS));
        w.advance(10 * MS, &mut out);
        assert_eq!(out, ["a", "b", "c"]);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn far_deadlines_survive_full_revolutions() {
        let mut w = TimerWheel::new(MS, 0);
        let far = (WHEEL_SLOTS as u64 * 3 + 7) * MS;
        w.insert(far, 1);
        w.insert(7 * MS, 2);
        let mut out = vec![];
        for t in 0..(WHEEL_SLOTS as u64 * 3) {
            w.advance(t * MS, &mut out);
        }
        assert_eq!(out, [2]);
        w.advance(far - 1, &mut out);
        assert_eq!(out, [2]);
        w.advance(far, &mut out);
        assert_eq!(out, [2, 1]);
    }

    #[test]
    fn a_big_jump_scans_every_slot_once() {
        let mut w = TimerWheel::new(MS, 0);
        for i in 0..10u64 {
            w.insert(i * 100 * MS, i);
        }
        let mut out = vec![];
        w.advance(100_000 * MS, &mut out);
        assert_eq!(out, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn remove_and_get_mut() {
        let mut w = TimerWheel::new(MS, 0);
        let a = w.insert(4 * MS, 'a');
        let b = w.insert(4 * MS, 'b');
        *w.get_mut(b).unwrap() = 'B';
        assert_eq!(w.remove(a), Some('a'));
        assert_eq!(w.remove(a), None, "removing twice is harmless");
        let mut out = vec![];
        w.advance(4 * MS, &mut out);
        assert_eq!(out, ['B']);
        assert_eq!(w.remove(b), None, "fired timers cannot be removed");
    }

    #[test]
    fn past_deadlines_fire_on_next_advance() {
        let mut w = TimerWheel::new(MS, 50 * MS);
        w.insert(MS, "late");
        assert_eq!(w.next_deadline(), Some(MS));
        let mut out = vec![];
        w.advance(50 * MS, &mut out);
        assert_eq!(out, ["late"]);
    }

    #[test]
    fn next_deadline_recomputes_after_removal() {
        let mut w = TimerWheel::new(MS, 0);
        let a = w.insert(2 * MS, ());
        w.insert(9 * MS, ());
        assert_eq!(w.next_deadline(), Some(2 * MS));
        w.remove(a);
        assert_eq!(w.next_deadline(), Some(9 * MS));
    }
}
