// SPDX-License-Identifier: MIT OR Apache-2.0
//! What ports needs from the executor: CPU ids and the IPI queue, in one place.

pub use executor::CpuId;
pub(crate) use executor::{IpiMsg, cpu_count, current_cpu_checked, ipi_send};
