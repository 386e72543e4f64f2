// SPDX-License-Identifier: MIT OR Apache-2.0
//! syscalls-async: the kernel side of Damselfly's syscalls (decode, run, complete; the rings).
#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod decode;
pub mod files;
pub mod kernel;
mod ops;
pub mod pipe;
pub mod port;
pub mod process;
pub mod ring;
mod sync;

pub use decode::{Request, decode};
pub use files::{Descriptor, Files};
pub use kernel::{
    BoxFuture, CallerMemory, ClockId, Kernel, Pid, RegionView, SharedRegion, SpawnRequest,
    UserMemory,
};
pub use process::{Cwd, Process, ProcessInit, Trap, TrapWait};
pub use ring::{EnterStarted, Ring, RingStats};
