// SPDX-License-Identifier: MIT OR Apache-2.0
//! uart16550: the interrupt-driven 16550 UART driver and the console line discipline.
#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod console;
pub mod discipline;
pub mod regs;
mod uart;

pub use console::{Console, Input, ReadError};
pub use discipline::{Event, LineDiscipline, MAX_LINE, MAX_READY, onlcr};
pub use regs::Registers;
pub use uart::{
    Config, InitError, LineError, RX_RING_BYTES, Transmitter, Uart, UartInterrupt, UartStats,
};

#[cfg(test)]
mod tests;
