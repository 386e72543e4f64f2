// SPDX-License-Identifier: MIT OR Apache-2.0
//! What ports needs from the executor: CPU ids and the IPI queue.
//!
//! TEMPORARY stand-in until `executor` lands: a single CPU whose IPIs run inline.
//! Replaced by `pub(crate) use executor::{...}` on integration.

/// A CPU number (stand-in for `executor::CpuId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuId(pub u32);

impl CpuId {
    /// The CPU number as an index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

pub(crate) struct IpiMsg {
    pub(crate) func: fn(usize, usize),
    pub(crate) arg1: usize,
    pub(crate) arg2: usize,
}

pub(crate) fn current_cpu() -> CpuId {
    CpuId(0)
}

pub(crate) fn cpu_count() -> usize {
    1
}

pub(crate) fn ipi_send(_target: CpuId, msg: IpiMsg) {
    (msg.func)(msg.arg1, msg.arg2)
}
