//! 16550 UART on COM1 (I/O port 0x3f8), polled output: the kernel console
//! and `log` sink until the interrupt-driven driver takes over.

use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;
const LSR_THR_EMPTY: u8 = 1 << 5;
const LSR_DATA_READY: u8 = 1 << 0;

/// Programs COM1 for 115200 8N1 with FIFOs on.
pub fn init() {
    let regs: [(u16, u8); 7] = [
        (1, 0x00), // no interrupts
        (3, 0x80), // DLAB on
        (0, 0x01), // divisor 1 = 115200 baud
        (1, 0x00),
        (3, 0x03), // 8N1, DLAB off
        (2, 0xc7), // FIFO on, cleared, 14-byte threshold
        (4, 0x0b), // DTR, RTS, OUT2
    ];
    for (offset, value) in regs {
        // SAFETY: COM1's registers are owned by this module; programming them
        // has no memory effects.
        unsafe { Port::new(COM1 + offset).write(value) };
    }
}

/// Writes one byte, waiting for room in the transmitter.
pub fn write_byte(byte: u8) {
    // SAFETY: reading the line status and writing the data register of
    // COM1 only affects the UART.
    unsafe {
        let mut lsr = Port::<u8>::new(COM1 + 5);
        let mut spins = 0u32;
        // Bounded: a missing UART must not hang the kernel.
        while lsr.read() & LSR_THR_EMPTY == 0 && spins < 100_000 {
            spins += 1;
            core::hint::spin_loop();
        }
        Port::new(COM1).write(byte);
    }
}

/// Writes `s`, turning `\n` into `\r\n`.
pub fn write_str(s: &str) {
    for b in s.bytes() {
        if b == b'\n' {
            write_byte(b'\r');
        }
        write_byte(b);
    }
}

/// A byte from the receiver, if one is waiting.
pub fn try_read_byte() -> Option<u8> {
    // SAFETY: reading COM1's status and data registers only affects the UART.
    unsafe {
        if Port::<u8>::new(COM1 + 5).read() & LSR_DATA_READY != 0 {
            Some(Port::<u8>::new(COM1).read())
        } else {
            None
        }
    }
}

/// A `core::fmt::Write` over the raw port, usable without locks (panic path).
pub struct RawWriter;

impl core::fmt::Write for RawWriter {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        write_str(s);
        Ok(())
    }
}
