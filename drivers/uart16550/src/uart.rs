// SPDX-License-Identifier: MIT OR Apache-2.0
//! The 16550 driver: [`Uart`] (owned by the driver task: async reads and writes through
//! `embedded-io-async`), [`UartInterrupt`] (the interrupt half: acknowledge and drain the
//! receive FIFO into a lock-free ring) and [`Transmitter`] (synchronous output for
//! callers that cannot wait, such as a devfs write completed inline).
//!
//! Receive path: the UART raises its IRQ when the receive FIFO reaches its trigger level
//! or a character times out; `on_interrupt` reads LSR/RBR until the FIFO is empty (which
//! drops the IRQ line, so an edge-triggered IOAPIC sees the next one), puts the bytes in
//! [`RX_RING_BYTES`] of ring and notes line errors. The task pops the ring. When the ring
//! is full the rest stays in the device's FIFO (the task drains it as it reads): on real
//! hardware that ends in an overrun, which is counted and reported, never fatal.
//!
//! Transmit path: polled. LSR's "THR empty" means the 16-byte transmit FIFO is empty,
//! so up to 16 bytes go in per look; the async write yields to the executor (instead of
//! spinning) while the FIFO is busy. No THRE interrupt is used: the kernel's log sink
//! and panic path write to the same port by polling, and one polled writer is simpler
//! than a polled and an interrupt-driven one sharing the FIFO.

use alloc::boxed::Box;
use alloc::sync::Arc;
use core::fmt;
use core::future::poll_fn;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use core::task::{Context, Poll};

use atomic_waker::AtomicWaker;

use crate::regs::*;

/// Bytes of receive ring between the interrupt half and the task (a power of two).
pub const RX_RING_BYTES: usize = 4096;

/// How the UART is programmed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Line speed; must divide [`BASE_BAUD`] (115200, 57600, 38400, 19200, 9600, ...).
    pub baud: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config { baud: BASE_BAUD }
    }
}

/// Why [`Uart::try_new`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitError {
    /// The scratch register did not keep what was written: no UART at this address.
    NotPresent,
    /// The baud rate is zero or does not divide [`BASE_BAUD`].
    BadBaud(u32),
}

/// Receive-side line errors the device reported since the last read (STYLE.md C.5: a
/// typed error below the POSIX line). Not fatal: the bytes after it are read normally.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LineError {
    bits: u8,
}

impl LineError {
    /// A byte was lost because the receive FIFO was full.
    pub fn is_overrun(self) -> bool {
        self.bits & LSR_OVERRUN != 0
    }
    /// A byte with a parity error was dropped.
    pub fn is_parity(self) -> bool {
        self.bits & LSR_PARITY != 0
    }
    /// A byte with a framing error was dropped.
    pub fn is_framing(self) -> bool {
        self.bits & LSR_FRAMING != 0
    }
    /// A break condition was received (its 0 byte dropped).
    pub fn is_break(self) -> bool {
        self.bits & LSR_BREAK != 0
    }
}

impl fmt::Debug for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (self.is_overrun(), "receive overrun"),
            (self.is_parity(), "parity error"),
            (self.is_framing(), "framing error"),
            (self.is_break(), "break"),
        ];
        let mut first = true;
        for (_, name) in names.iter().filter(|(set, _)| *set) {
            if !first {
                f.write_str(", ")?;
            }
            f.write_str(name)?;
            first = false;
        }
        Ok(())
    }
}

impl embedded_io_async::Error for LineError {
    fn kind(&self) -> embedded_io_async::ErrorKind {
        if self.is_overrun() {
            embedded_io_async::ErrorKind::Other
        } else {
            embedded_io_async::ErrorKind::InvalidData
        }
    }
}

/// Counters since [`Uart::try_new`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UartStats {
    /// Calls of [`UartInterrupt::on_interrupt`].
    pub interrupts: u64,
    /// Bytes moved from the device into the receive ring.
    pub rx_bytes: u64,
    /// Overruns the device reported (each is at least one lost byte).
    pub overruns: u64,
    /// Bytes dropped for a parity error.
    pub parity_errors: u64,
    /// Bytes dropped for a framing error.
    pub framing_errors: u64,
    /// Break conditions received.
    pub breaks: u64,
    /// Times the receive ring was full and bytes were left in the device's FIFO.
    pub rx_stalls: u64,
    /// Bytes written to the transmitter.
    pub tx_bytes: u64,
}

/// Single-producer single-consumer byte ring. The producer side is only entered under
/// `Shared::draining`; the consumer side only through `&mut Uart`. A hand-written ring
/// because the producer is the interrupt half, which has only `&self` (heapless's
/// `spsc::Producer` wants `&mut`) and must not lock.
struct RxRing {
    slots: Box<[AtomicU8]>,
    /// Next slot to pop (written by the consumer only).
    head: AtomicUsize,
    /// Next slot to push (written by the producer only).
    tail: AtomicUsize,
}

impl RxRing {
    fn new() -> RxRing {
        RxRing {
            slots: (0..RX_RING_BYTES).map(|_| AtomicU8::new(0)).collect(),
            head: AtomicUsize::new(0),
            tail: AtomicUsize::new(0),
        }
    }

    fn is_full(&self) -> bool {
        let tail = self.tail.load(Ordering::Acquire);
        tail.wrapping_sub(self.head.load(Ordering::Acquire)) >= RX_RING_BYTES
    }

    /// Producer side only.
    fn push(&self, byte: u8) -> bool {
        let tail = self.tail.load(Ordering::Relaxed);
        if tail.wrapping_sub(self.head.load(Ordering::Acquire)) >= RX_RING_BYTES {
            return false;
        }
        self.slots[tail % RX_RING_BYTES].store(byte, Ordering::Relaxed);
        self.tail.store(tail.wrapping_add(1), Ordering::Release);
        true
    }

    /// Consumer side only.
    fn pop_into(&self, buf: &mut [u8]) -> usize {
        let head = self.head.load(Ordering::Relaxed);
        let available = self.tail.load(Ordering::Acquire).wrapping_sub(head);
        let n = available.min(buf.len());
        for (i, slot) in buf[..n].iter_mut().enumerate() {
            *slot = self.slots[head.wrapping_add(i) % RX_RING_BYTES].load(Ordering::Relaxed);
        }
        self.head.store(head.wrapping_add(n), Ordering::Release);
        n
    }
}

#[derive(Default)]
struct Counters {
    interrupts: AtomicU64,
    rx_bytes: AtomicU64,
    overruns: AtomicU64,
    parity_errors: AtomicU64,
    framing_errors: AtomicU64,
    breaks: AtomicU64,
    rx_stalls: AtomicU64,
    tx_bytes: AtomicU64,
}

/// What the task, the interrupt half and the transmitters share.
struct Shared<R> {
    regs: R,
    rx: RxRing,
    /// Held while someone moves bytes from the device into `rx` (the ring's producer).
    draining: AtomicBool,
    /// LSR error bits not yet reported to a reader.
    errors: AtomicU8,
    /// The task waiting in a read.
    waker: AtomicWaker,
    /// Serialises transmitters (task context only: never taken by the interrupt half).
    tx: spin::Mutex<()>,
    counters: Counters,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl<R: Registers> Shared<R> {
    /// Reads LSR and records an overrun (the bit clears on read, so every reader of LSR
    /// goes through here).
    fn line_status(&self) -> u8 {
        let lsr = self.regs.read(LSR);
        if lsr & LSR_OVERRUN != 0 {
            bump(&self.counters.overruns);
            self.errors.fetch_or(LSR_OVERRUN, Ordering::AcqRel);
        }
        lsr
    }

    /// Moves what the receive FIFO holds into the ring. Returns whether anything
    /// happened that a reader must see (bytes or errors).
    ///
    /// # Context
    /// Interrupt or task context, any CPU; lock-free. If another drainer is active
    /// (the task was interrupted while draining) this returns at once: the active one
    /// reads until LSR says the FIFO is empty, and re-checks after letting go.
    fn drain(&self) -> bool {
        let mut happened = false;
        let mut lsr = None;
        loop {
            if self.draining.swap(true, Ordering::Acquire) {
                return happened;
            }
            let first = lsr.unwrap_or_else(|| self.line_status());
            happened |= self.drain_locked(first);
            self.draining.store(false, Ordering::Release);
            // A byte that arrived after our last look, while an interrupt skipped
            // draining because we held the flag, would otherwise wait for the next IRQ
            // edge, which an IRQ line still high never makes.
            if self.rx.is_full() {
                return happened;
            }
            let again = self.line_status();
            if again & (LSR_DATA_READY | LSR_OVERRUN) == 0 {
                return happened;
            }
            happened |= again & LSR_OVERRUN != 0;
            lsr = Some(again);
        }
    }

    fn drain_locked(&self, mut lsr: u8) -> bool {
        let mut happened = lsr & LSR_OVERRUN != 0;
        loop {
            if lsr & LSR_DATA_READY == 0 {
                return happened;
            }
            if self.rx.is_full() {
                bump(&self.counters.rx_stalls);
                return happened;
            }
            let byte = self.regs.read(RBR);
            let bad = lsr & (LSR_PARITY | LSR_FRAMING | LSR_BREAK);
            if bad != 0 {
                // The byte is not what was sent (or stands for a break): drop it.
                if bad & LSR_BREAK != 0 {
                    bump(&self.counters.breaks);
                } else if bad & LSR_PARITY != 0 {
                    bump(&self.counters.parity_errors);
                } else {
                    bump(&self.counters.framing_errors);
                }
                self.errors.fetch_or(bad, Ordering::AcqRel);
            } else {
                let pushed = self.rx.push(byte);
                debug_assert!(pushed, "checked for room above; we are the only producer");
                bump(&self.counters.rx_bytes);
            }
            happened = true;
            lsr = self.line_status();
        }
    }

    /// Writes up to a FIFO's worth of `data` if the transmitter is empty.
    fn try_write(&self, data: &[u8]) -> Option<usize> {
        let _tx = self.tx.lock();
        if self.line_status() & LSR_THR_EMPTY == 0 {
            return None;
        }
        let n = data.len().min(TX_FIFO_BYTES);
        for &byte in &data[..n] {
            self.regs.write(THR, byte);
        }
        self.counters
            .tx_bytes
            .fetch_add(n as u64, Ordering::Relaxed);
        Some(n)
    }

    fn stats(&self) -> UartStats {
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        UartStats {
            interrupts: get(&c.interrupts),
            rx_bytes: get(&c.rx_bytes),
            overruns: get(&c.overruns),
            parity_errors: get(&c.parity_errors),
            framing_errors: get(&c.framing_errors),
            breaks: get(&c.breaks),
            rx_stalls: get(&c.rx_stalls),
            tx_bytes: get(&c.tx_bytes),
        }
    }
}

/// The driver's device handle, owned by the driver task (`&mut self` reads make it the
/// ring's only consumer).
pub struct Uart<R> {
    shared: Arc<Shared<R>>,
}

/// The interrupt half (STYLE.md C.3: `on_interrupt`).
pub struct UartInterrupt<R> {
    shared: Arc<Shared<R>>,
}

/// Synchronous output through the same transmitter, for callers that may not wait.
pub struct Transmitter<R> {
    shared: Arc<Shared<R>>,
}

impl<R> Clone for Transmitter<R> {
    fn clone(&self) -> Self {
        Transmitter {
            shared: self.shared.clone(),
        }
    }
}

impl<R: Registers> Uart<R> {
    /// Checks that a UART answers, programs it (divisor, 8N1, FIFOs with a 14-byte
    /// receive trigger, DTR/RTS/OUT2) with its interrupts off, and moves any input
    /// already waiting into the ring. The FIFOs are not cleared, so what was typed
    /// before the driver started is kept. Call [`Uart::enable_interrupts`] once the IRQ
    /// is routed to [`UartInterrupt::on_interrupt`].
    ///
    /// # Errors
    /// [`InitError::NotPresent`] when the scratch register does not hold a value (no
    /// device), [`InitError::BadBaud`] for a speed the divisor cannot make. The device is
    /// left untouched in both cases.
    pub fn try_new(regs: R, config: Config) -> Result<(Uart<R>, UartInterrupt<R>), InitError> {
        for probe in [0x5a, 0xa5] {
            regs.write(SCR, probe);
            if regs.read(SCR) != probe {
                return Err(InitError::NotPresent);
            }
        }
        if config.baud == 0 || !BASE_BAUD.is_multiple_of(config.baud) {
            return Err(InitError::BadBaud(config.baud));
        }
        let divisor = (BASE_BAUD / config.baud) as u16;
        regs.write(IER, 0);
        regs.write(LCR, LCR_DLAB);
        regs.write(DLL, divisor as u8);
        regs.write(DLM, (divisor >> 8) as u8);
        regs.write(LCR, LCR_8N1);
        regs.write(FCR, FCR_ENABLE_TRIGGER_14);
        regs.write(MCR, MCR_DTR_RTS_OUT2);
        let shared = Arc::new(Shared {
            regs,
            rx: RxRing::new(),
            draining: AtomicBool::new(false),
            errors: AtomicU8::new(0),
            waker: AtomicWaker::new(),
            tx: spin::Mutex::new(()),
            counters: Counters::default(),
        });
        shared.drain();
        Ok((
            Uart {
                shared: shared.clone(),
            },
            UartInterrupt { shared },
        ))
    }

    /// Turns on the receive-data and line-status interrupts (no transmit interrupt: TX
    /// polls). Without this the driver still works if something calls
    /// [`UartInterrupt::on_interrupt`] and [`UartInterrupt::wake`] periodically (the
    /// kernel's fallback when the IRQ cannot be routed).
    pub fn enable_interrupts(&self) {
        self.shared.regs.write(IER, IER_RX_DATA | IER_LINE_STATUS);
    }

    /// A handle for synchronous output.
    pub fn transmitter(&self) -> Transmitter<R> {
        Transmitter {
            shared: self.shared.clone(),
        }
    }

    /// Counters.
    pub fn stats(&self) -> UartStats {
        self.shared.stats()
    }

    /// Reads what has arrived into `buf`; when nothing has, registers `cx` to be woken
    /// by [`UartInterrupt::wake`].
    ///
    /// # Errors
    /// A [`LineError`] once after the device reported one; the input that follows is
    /// read by the next call.
    ///
    /// # Cancel safety
    /// Stateless: bytes stay in the ring until a read returns them.
    pub fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, LineError>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let shared = &*self.shared;
        for attempt in 0..2 {
            let errors = shared.errors.swap(0, Ordering::AcqRel);
            if errors != 0 {
                return Poll::Ready(Err(LineError { bits: errors }));
            }
            let n = shared.rx.pop_into(buf);
            // Input the interrupt left in the FIFO (ring full), or polled operation.
            shared.drain();
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            if attempt == 0 {
                shared.waker.register(cx.waker());
            }
        }
        match shared.rx.pop_into(buf) {
            0 => Poll::Pending,
            n => Poll::Ready(Ok(n)),
        }
    }

    /// Writes up to 16 bytes of `data` when the transmit FIFO is empty; otherwise asks
    /// to be polled again soon (there is no transmit interrupt) and returns `Pending`.
    ///
    /// # Cancel safety
    /// The returned count is exactly what went to the device.
    pub fn poll_write(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<usize> {
        if data.is_empty() {
            return Poll::Ready(0);
        }
        match self.shared.try_write(data) {
            Some(n) => Poll::Ready(n),
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}

impl<R: Registers> UartInterrupt<R> {
    /// The interrupt half: acknowledges (IIR, then LSR/RBR until the receive FIFO is
    /// empty, which is what clears a receive interrupt) and moves the bytes into the
    /// ring. Returns whether the task has something to see, in which case the caller
    /// arranges for [`UartInterrupt::wake`] to run.
    ///
    /// # Context
    /// Interrupt context: no allocation, no lock, no logging. Also safe to call from a
    /// task (polled operation) at the same time as an interrupt.
    pub fn on_interrupt(&self) -> bool {
        bump(&self.shared.counters.interrupts);
        // The identification itself is not needed (LSR says everything); reading it
        // acknowledges a transmitter-empty cause should one ever be enabled.
        let _ = self.shared.regs.read(IIR);
        self.shared.drain()
    }

    /// Wakes the task waiting in a read.
    ///
    /// # Context
    /// Task context. Kept apart from `on_interrupt` because waking a task of this CPU
    /// from interrupt context is not allowed in Damselfly's executor (the kernel posts
    /// an executor interrupt vector whose handler calls this); where wakers are
    /// interrupt-safe, call it right after `on_interrupt`.
    pub fn wake(&self) {
        self.shared.waker.wake();
    }
}

impl<R: Registers> Transmitter<R> {
    /// Writes all of `data`, waiting for the transmit FIFO by polling LSR. Each wait is
    /// bounded, so a missing or stuck UART costs time, not a hang (the byte is then
    /// written anyway, as the kernel's log sink does).
    ///
    /// # Context
    /// Task context (takes the transmit lock); spins, never suspends.
    pub fn blocking_write(&self, data: &[u8]) {
        let mut rest = data;
        while !rest.is_empty() {
            let mut spins = 0u32;
            let n = loop {
                match self.shared.try_write(rest) {
                    Some(n) => break n,
                    None if spins < 100_000 => {
                        spins += 1;
                        core::hint::spin_loop();
                    }
                    None => {
                        let _tx = self.shared.tx.lock();
                        self.shared.regs.write(THR, rest[0]);
                        break 1;
                    }
                }
            };
            rest = &rest[n..];
        }
    }
}

impl<R> embedded_io_async::ErrorType for Uart<R> {
    type Error = LineError;
}

impl<R: Registers> embedded_io_async::Read for Uart<R> {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, LineError> {
        poll_fn(|cx| self.poll_read(cx, buf)).await
    }
}

impl<R: Registers> embedded_io_async::Write for Uart<R> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, LineError> {
        Ok(poll_fn(|cx| self.poll_write(cx, buf)).await)
    }

    async fn flush(&mut self) -> Result<(), LineError> {
        poll_fn(|cx| {
            if self.shared.line_status() & LSR_THR_EMPTY != 0 {
                Poll::Ready(Ok(()))
            } else {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        })
        .await
    }
}
