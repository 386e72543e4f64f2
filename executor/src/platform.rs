//! What the executor needs from the machine: CPU count, IPIs, sleeping, a clock.
//!
//! The kernel implements this with `hal` (LAPIC IPIs, `sti; hlt`, TSC); `hosted` implements
//! it with std threads. The executor itself never touches hardware.

use crate::CpuId;

/// Services of the machine under the executor.
///
/// # The sleep protocol
///
/// The idle loop of CPU `c` does:
/// 1. `prepare_to_sleep(c)`: from here on, a `send_ipi(c)` must make the coming `sleep`
///    return (kernel: `cli`; hosted: nothing, `unpark` before `park` already does this);
/// 2. the executor checks its queues; if work arrived it calls `abort_sleep(c)` instead;
/// 3. `sleep(c, deadline)`: wait for an IPI, an interrupt or the deadline (kernel:
///    `sti; hlt` with a timer armed). Spurious returns are allowed.
pub trait Platform: Send + Sync + 'static {
    /// Number of CPUs; CPU ids are `0..cpu_count()`.
    fn cpu_count(&self) -> usize;
    /// The CPU the caller runs on, if it is one of this machine's CPUs.
    fn current_cpu(&self) -> Option<CpuId>;
    /// Interrupts `target` so it drains its IPI queues (a hardware IPI in the kernel).
    fn send_ipi(&self, target: CpuId);
    /// Step 1 of the sleep protocol.
    fn prepare_to_sleep(&self, cpu: CpuId);
    /// Step 2, when work arrived between `prepare_to_sleep` and the check.
    fn abort_sleep(&self, cpu: CpuId);
    /// Step 3: wait until an IPI, an interrupt or `deadline_ns` (platform clock).
    fn sleep(&self, cpu: CpuId, deadline_ns: Option<u64>);
    /// Monotonic time in nanoseconds.
    fn now_ns(&self) -> u64;
    /// Called while spinning (all runnable tasks had busy tokens, a full IPI queue).
    fn relax(&self) {
        core::hint::spin_loop();
    }
}
