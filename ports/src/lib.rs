// SPDX-License-Identifier: MIT OR Apache-2.0
//! ports: DragonFly's LWKT message ports on Rust futures.
#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod call;
mod envelope;
mod error;
mod list;
mod platform;
mod port;
pub mod proto;
mod remote;
mod reply_port;
mod server;
mod sync;

pub use call::Call;
pub use error::{PortError, Reply};
pub use platform::CpuId;
pub use port::{AlwaysQueue, Handled, Handler, Port};
pub use reply_port::ReplyPort;
pub use server::{Request, Server};

#[cfg(all(test, loom))]
mod loom_tests;
