// SPDX-License-Identifier: MIT OR Apache-2.0
//! The 16550's register window: eight byte registers at consecutive offsets (port I/O
//! on a PC: COM1 at 0x3f8), some of which mean two things depending on the direction
//! or on LCR's divisor-latch bit (DLAB).

/// Byte access to the UART's eight registers. The kernel implements it over `hal`'s
/// COM1 port handle; tests implement it with a fake device.
///
/// # Context
/// `read` and `write` are called from the interrupt half (`UartInterrupt::on_interrupt`)
/// as well as from tasks, so an implementation must be interrupt-safe: a plain port
/// access, no locks, no allocation.
pub trait Registers: Send + Sync {
    /// Reads the register at `offset` (0..=7). Reading RBR or LSR has side effects on
    /// the device (pops a byte; clears the error bits).
    fn read(&self, offset: u8) -> u8;
    /// Writes `value` to the register at `offset` (0..=7).
    fn write(&self, offset: u8, value: u8);
}

/// Receive buffer (read, DLAB 0).
pub const RBR: u8 = 0;
/// Transmit holding register (write, DLAB 0).
pub const THR: u8 = 0;
/// Divisor latch, low byte (DLAB 1).
pub const DLL: u8 = 0;
/// Interrupt enable (DLAB 0).
pub const IER: u8 = 1;
/// Divisor latch, high byte (DLAB 1).
pub const DLM: u8 = 1;
/// Interrupt identification (read).
pub const IIR: u8 = 2;
/// FIFO control (write).
pub const FCR: u8 = 2;
/// Line control.
pub const LCR: u8 = 3;
/// Modem control.
pub const MCR: u8 = 4;
/// Line status.
pub const LSR: u8 = 5;
/// Scratch register: no effect on the device; used to detect that a UART is there.
pub const SCR: u8 = 7;

/// IER: received data available (and the FIFO's character timeout).
pub const IER_RX_DATA: u8 = 1 << 0;
/// IER: transmitter holding register empty (not used: TX polls LSR).
pub const IER_THR_EMPTY: u8 = 1 << 1;
/// IER: receiver line status (overrun, parity, framing, break).
pub const IER_LINE_STATUS: u8 = 1 << 2;

/// IIR bit 0: set when no interrupt is pending.
pub const IIR_NONE_PENDING: u8 = 1 << 0;

/// FCR: FIFOs on, receive trigger at 14 bytes; the FIFOs are not cleared, so input
/// that arrived before the driver started is kept.
pub const FCR_ENABLE_TRIGGER_14: u8 = 0xc1;
/// LCR: divisor-latch access.
pub const LCR_DLAB: u8 = 0x80;
/// LCR: 8 data bits, no parity, 1 stop bit.
pub const LCR_8N1: u8 = 0x03;
/// MCR: DTR, RTS, and OUT2 (which gates the IRQ line on a PC).
pub const MCR_DTR_RTS_OUT2: u8 = 0x0b;

/// LSR: a received byte is waiting in RBR.
pub const LSR_DATA_READY: u8 = 1 << 0;
/// LSR: a byte was lost because the receive FIFO was full.
pub const LSR_OVERRUN: u8 = 1 << 1;
/// LSR: the byte at the head of the FIFO has a parity error.
pub const LSR_PARITY: u8 = 1 << 2;
/// LSR: the byte at the head of the FIFO has no valid stop bit.
pub const LSR_FRAMING: u8 = 1 << 3;
/// LSR: a break condition (the byte at the head is a 0 standing for it).
pub const LSR_BREAK: u8 = 1 << 4;
/// LSR: the transmit holding register (in FIFO mode: the whole transmit FIFO) is empty.
pub const LSR_THR_EMPTY: u8 = 1 << 5;

/// Bytes the transmit FIFO takes once LSR says it is empty.
pub const TX_FIFO_BYTES: usize = 16;
/// The 16550's base clock divided by 16: the baud rate of divisor 1.
pub const BASE_BAUD: u32 = 115_200;
