#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "hosted")]
extern crate std;

mod cpu;
mod platform;
mod raw;
mod runtime;
mod spawn;
mod sync;
mod task_local;
pub mod timer;
pub mod token;

#[cfg(feature = "hosted")]
pub mod hosted;

#[cfg(all(test, loom))]
mod loom_tests;

pub use cpu::{CpuId, CpuStats, Priority};
pub use platform::Platform;
pub use raw::ring::IPIQ_CAPACITY;
pub use raw::task::Cancelled;
pub use runtime::{
    BindError, ContextHook, INTERRUPT_VECTORS, InterruptError, LocalCpu, LocalGetter, MAX_CPUS,
    Runtime, set_context_hook, set_local_getter,
};
pub use spawn::{
    CritSection, IpiError, JoinHandle, SpawnError, TaskBuilder, YieldNow, cpu_count, crit_enter,
    crit_exit, crit_section, current_cpu, current_cpu_checked, in_critical_section,
    interrupt_point, ipi_send, set_task_tokens, spawn, spawn_on, spawn_with, spawn_with_tokens,
    try_ipi_send, yield_now,
};
pub use timer::{Elapsed, Sleep, Timeout, now_ns, sleep, sleep_until, timeout};
#[cfg(not(loom))]
pub use token::pool_token;
pub use token::{Token, TokenMode, TokenRef};

/// A function call to run on another CPU (DragonFly's `{func, arg1, arg2}` IPI entry).
///
/// `ipi_send` moves it through the (sender, target) SPSC ring with no allocation; the
/// target runs `func(arg1, arg2)` in its executor loop, inside a critical section, in FIFO
/// order per (sender, target) pair. Ports use it to hand a message pointer to a remote CPU.
#[derive(Debug)]
pub struct IpiMsg {
    /// Runs on the target CPU. Must not block; it may wake tasks, send IPIs, spawn.
    pub func: fn(usize, usize),
    /// First argument (typically a pointer-sized handle).
    pub arg1: usize,
    /// Second argument.
    pub arg2: usize,
}
