// SPDX-License-Identifier: MIT OR Apache-2.0
//! `ClockGettime`, `Sleep`, `Timeout` (and the timer half of `LinkTimeout`).

use abi::{Errno, Timespec};

use super::copy_out;
use crate::{
    decode::{Deadline, UserBuf},
    kernel::{ClockId, Kernel},
    process::Process,
};

pub(crate) fn clock_gettime(proc: &Process, clock: ClockId, out: UserBuf) -> Result<i64, Errno> {
    let ts = Timespec::from_nanos(proc.kernel.now_ns(clock));
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&ts.tv_sec.to_le_bytes());
    b[8..].copy_from_slice(&ts.tv_nsec.to_le_bytes());
    copy_out(&*proc.memory, out, &b)?;
    Ok(0)
}

/// The absolute monotonic time of `deadline`, measured from now.
pub(crate) fn deadline_ns(kernel: &dyn Kernel, deadline: Deadline) -> u64 {
    match deadline {
        Deadline::At(t) => t,
        Deadline::After(d) => kernel.now_ns(ClockId::Monotonic).saturating_add(d),
    }
}

pub(crate) async fn sleep(proc: &Process, deadline: Deadline) -> Result<(), Errno> {
    let at = deadline_ns(&*proc.kernel, deadline);
    proc.kernel.sleep_until(at).await;
    Ok(())
}
