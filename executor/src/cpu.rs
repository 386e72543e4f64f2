//! CPU identity, priority levels and per-CPU statistics.

use crate::sync::{AtomicU64, Ordering};

/// A CPU of the machine the executor runs on (`0..cpu_count()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CpuId(pub u32);

impl CpuId {
    /// The CPU number as an index.
    pub const fn index(self) -> usize {
        self.0 as usize
    }
}

impl core::fmt::Display for CpuId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cpu{}", self.0)
    }
}

/// Fixed scheduling priority of a task; higher levels always run first, tasks of one level
/// round-robin (a task that is woken again goes to the tail of its level).
///
/// The four levels map DragonFly's ranges: `Idle` 0-1, `User` 2-8, `Kernel` 9-20
/// (LPSCHED..INT_SUPPORT), `Interrupt` 27-31 (INT..MAX).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[repr(u8)]
pub enum Priority {
    /// Runs only when nothing else is runnable.
    Idle = 0,
    /// User-mode work.
    User = 1,
    /// Kernel daemons, ports, filesystems: the default.
    #[default]
    Kernel = 2,
    /// Interrupt-class tasks (driver bottom halves).
    Interrupt = 3,
}

impl Priority {
    /// Number of levels (run queues per CPU).
    pub const LEVELS: usize = 4;

    pub(crate) fn level(self) -> usize {
        self as usize
    }
}

/// A snapshot of one CPU's counters. See `Runtime::stats` / `hosted::Machine::stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuStats {
    /// Futures polled on this CPU.
    pub polls: u64,
    /// Wakes of this CPU's tasks handled without a message: by this CPU itself, or landing
    /// while the task was running (no lock, no allocation either way).
    pub local_wakes: u64,
    /// Wakes this CPU sent to another CPU's task (as an IPI message).
    pub remote_wakes: u64,
    /// Hardware IPIs this CPU sent (`Platform::send_ipi`).
    pub ipis_sent: u64,
    /// IPI messages this CPU queued without an IPI because the target was already draining.
    pub ipis_avoided: u64,
    /// IPI messages this CPU received and ran.
    pub ipis_received: u64,
    /// Times a send found its queue half full and drained its own incoming queues.
    pub ipiq_full: u64,
    /// Tasks created for this CPU.
    pub tasks_spawned: u64,
    /// Tasks of this CPU that finished or were cancelled.
    pub tasks_completed: u64,
    /// Tasks of this CPU alive (spawned minus completed).
    pub tasks_live: u64,
    /// Times a runnable task was passed over because its tokens were busy.
    pub token_misses: u64,
    /// Timers that fired on this CPU.
    pub timers_fired: u64,
}

/// The live counters. Most are written only by the owning CPU (load + store, no locked
/// instruction); `tasks_spawned` is written by whichever CPU spawns.
#[derive(Debug, Default)]
pub(crate) struct StatCounters {
    pub polls: AtomicU64,
    pub local_wakes: AtomicU64,
    pub remote_wakes: AtomicU64,
    pub ipis_sent: AtomicU64,
    pub ipis_avoided: AtomicU64,
    pub ipis_received: AtomicU64,
    pub ipiq_full: AtomicU64,
    pub tasks_spawned: AtomicU64,
    pub tasks_completed: AtomicU64,
    pub token_misses: AtomicU64,
    pub timers_fired: AtomicU64,
}

/// Adds one to an owner-written counter.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
}

impl StatCounters {
    pub(crate) fn snapshot(&self) -> CpuStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let spawned = get(&self.tasks_spawned);
        let completed = get(&self.tasks_completed);
        CpuStats {
            polls: get(&self.polls),
            local_wakes: get(&self.local_wakes),
            remote_wakes: get(&self.remote_wakes),
            ipis_sent: get(&self.ipis_sent),
            ipis_avoided: get(&self.ipis_avoided),
            ipis_received: get(&self.ipis_received),
            ipiq_full: get(&self.ipiq_full),
            tasks_spawned: spawned,
            tasks_completed: completed,
            tasks_live: spawned.saturating_sub(completed),
            token_misses: get(&self.token_misses),
            timers_fired: get(&self.timers_fired),
        }
    }
}
