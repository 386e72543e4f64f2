//! 16550 UART on COM1 (I/O port 0x3f8), polled output: the kernel console
//! and `log` sink until the interrupt-driven driver takes over.

use core::sync::atomic::{AtomicU64, Ordering};

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

/// COM1's ISA IRQ.
pub const COM1_IRQ: u8 = 4;
/// The vector COM1's IRQ is routed to (`route_interrupt`).
pub const VECTOR_COM1: u8 = 0x24;
const IER_RX_DATA: u8 = 1 << 0;
const MCR_NORMAL: u8 = 0x0b; // DTR, RTS, OUT2
const MCR_LOOPBACK: u8 = 1 << 4;

static INTERRUPTS: AtomicU64 = AtomicU64::new(0);

/// COM1 interrupts taken since boot.
pub fn interrupts() -> u64 {
    INTERRUPTS.load(Ordering::Relaxed)
}

/// Acknowledges (reads the interrupt identification, which clears a
/// transmitter-empty cause) and counts; received data stays in the FIFO for
/// the reader. The interrupt-driven driver replaces this.
fn on_interrupt(_vector: u8) {
    // SAFETY: reading COM1's IIR only affects the UART.
    let _ = unsafe { Port::<u8>::new(COM1 + 2).read() };
    INTERRUPTS.fetch_add(1, Ordering::Relaxed);
    if let Some(hook) = HOOK.get() {
        hook();
    }
}

static HOOK: spin::Once<fn()> = spin::Once::new();

/// Sets what the interrupt handler calls after acknowledging (once): the
/// kernel posts its console wake-up there. It runs in interrupt context:
/// it may only do what an interrupt handler may (no locks, no allocation).
pub fn set_interrupt_hook(hook: fn()) {
    HOOK.call_once(|| hook);
}

/// Routes COM1's IRQ through the IOAPIC to [`VECTOR_COM1`] on the CPU with
/// APIC id `cpu_apic_id`, with the acknowledge-and-count handler. The UART
/// itself raises nothing until [`set_rx_interrupt`] enables it.
///
/// # Errors
/// When no IOAPIC serves the IRQ, or the vector already has a handler.
pub fn route_interrupt(cpu_apic_id: u32) -> Result<(), super::ioapic::IoApicError> {
    static HANDLER: spin::Once<()> = spin::Once::new();
    HANDLER.call_once(|| {
        let _ = super::trap::set_interrupt_handler(VECTOR_COM1, on_interrupt);
    });
    super::ioapic::route_isa_irq(COM1_IRQ, VECTOR_COM1, cpu_apic_id)
}

/// Turns the "received data available" interrupt on or off (the only UART
/// interrupt used; for the interrupt-driven driver and tests).
pub fn set_rx_interrupt(enabled: bool) {
    // SAFETY: COM1's interrupt-enable register; only affects the UART.
    unsafe { Port::<u8>::new(COM1 + 1).write(if enabled { IER_RX_DATA } else { 0 }) };
}

/// Loopback mode (MCR bit 4): what is written comes back as received data
/// and nothing leaves the port, log output included. For tests.
pub fn set_loopback(enabled: bool) {
    let mcr = if enabled {
        MCR_NORMAL | MCR_LOOPBACK
    } else {
        MCR_NORMAL
    };
    // SAFETY: COM1's modem control register; only affects the UART.
    unsafe { Port::<u8>::new(COM1 + 4).write(mcr) };
}

/// COM1's eight registers as a safe handle, for the interrupt-driven driver
/// (`uart16550`), which the kernel wires to `/dev/console`. Handed out once
/// ([`take_registers`]); the polled writers of this module (log sink, panic
/// path) keep writing THR alongside it, which the driver allows for.
pub struct Com1Registers(());

/// COM1's register handle; `None` after the first call.
pub fn take_registers() -> Option<Com1Registers> {
    static TAKEN: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
    (!TAKEN.swap(true, Ordering::AcqRel)).then_some(Com1Registers(()))
}

impl Com1Registers {
    /// Reads register `offset & 7`.
    pub fn read(&self, offset: u8) -> u8 {
        // SAFETY: one of COM1's eight registers (the offset is masked); reading one
        // only affects the UART.
        unsafe { Port::<u8>::new(COM1 + u16::from(offset & 7)).read() }
    }

    /// Writes register `offset & 7`.
    pub fn write(&self, offset: u8, value: u8) {
        // SAFETY: one of COM1's eight registers (the offset is masked); writing one
        // only affects the UART.
        unsafe { Port::<u8>::new(COM1 + u16::from(offset & 7)).write(value) }
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
