// SPDX-License-Identifier: MIT OR Apache-2.0
//! The console: a [`LineDiscipline`] shared between the driver task ([`Console::run`],
//! which owns the [`Uart`], feeds received bytes in and writes the echo) and readers
//! ([`Console::poll_read`], [`Console::try_read`]: devfs's `/dev/console`).
//!
//! The task always runs, whether or not anyone reads, so ^C is seen while the
//! foreground program computes or sleeps. Flow control: while the discipline has no
//! room (a reader is slow), the task stops taking bytes from the UART; they wait in the
//! receive ring, then in the device.
//!
//! ^C: the task calls the `on_interrupt_key` hook (the kernel interrupts the foreground
//! programs), and a read that was waiting at that moment returns
//! [`ReadError::Interrupted`] (EINTR), so a shell at its prompt can start a fresh one.

use alloc::vec::Vec;
use core::future::poll_fn;
use core::task::{Context, Poll, Waker};

use atomic_waker::AtomicWaker;
use embedded_io_async::{Read, Write};

use crate::discipline::{Event, LineDiscipline};
use crate::regs::Registers;
use crate::uart::Uart;

/// Why a console read returned no data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadError {
    /// No line is ready (only from [`Console::try_read`]).
    WouldBlock,
    /// ^C was typed while this read waited.
    Interrupted,
}

#[derive(Default)]
struct State {
    discipline: LineDiscipline,
    /// The read waiting for a line.
    reader: Option<Waker>,
    /// ^C arrived while `reader` waited: its read returns `Interrupted`.
    reader_interrupted: bool,
}

/// What [`Console::input`] did with a slice of received bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Input {
    /// Bytes taken (fewer than given when the discipline ran out of room).
    pub consumed: usize,
    /// ^C keys among them.
    pub interrupts: usize,
}

/// The cooked console. See the module docs.
#[derive(Default)]
pub struct Console {
    state: spin::Mutex<State>,
    /// The driver task, waiting for room.
    task: AtomicWaker,
}

impl Console {
    /// An empty console.
    pub fn new() -> Console {
        Console::default()
    }

    /// Reads one line (or part of one, if `buf` is shorter) if one is ready. `Ok(0)` is
    /// end of file (^D on an empty line).
    ///
    /// # Errors
    /// `WouldBlock` when no line is ready; `Interrupted` once after a ^C that arrived
    /// while a read waited.
    ///
    /// # Context
    /// Task context, any CPU; takes the console's spin lock (never held across a wake).
    pub fn try_read(&self, buf: &mut [u8]) -> Result<usize, ReadError> {
        let mut state = self.state.lock();
        if core::mem::take(&mut state.reader_interrupted) {
            return Err(ReadError::Interrupted);
        }
        let n = state.discipline.read(buf).ok_or(ReadError::WouldBlock)?;
        let room = state.discipline.has_room();
        drop(state);
        if room {
            self.task.wake();
        }
        Ok(n)
    }

    /// Like [`Console::try_read`], but waits: registers `cx` to be woken when a line is
    /// ready or ^C is typed.
    ///
    /// # Cancel safety
    /// A cancelled read took nothing; the line stays for the next one.
    pub fn poll_read(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, ReadError>> {
        match self.try_read(buf) {
            Err(ReadError::WouldBlock) => {}
            done => {
                self.state.lock().reader = None;
                return Poll::Ready(done);
            }
        }
        let mut state = self.state.lock();
        // Input may have arrived between the two locks: look again under this one.
        if state.discipline.has_ready() || state.reader_interrupted {
            drop(state);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        state.reader = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Feeds received bytes to the discipline while it has room; appends the echo.
    ///
    /// # Context
    /// The driver task (or a test): the only writer of input.
    pub fn input(&self, bytes: &[u8], echo: &mut Vec<u8>) -> Input {
        let mut done = Input::default();
        let mut wake = None;
        {
            let mut state = self.state.lock();
            for &byte in bytes {
                if !state.discipline.has_room() {
                    break;
                }
                done.consumed += 1;
                match state.discipline.input(byte, echo) {
                    Event::None => {}
                    Event::Ready => wake = state.reader.take().or(wake),
                    Event::Interrupt => {
                        done.interrupts += 1;
                        if let Some(reader) = state.reader.take() {
                            state.reader_interrupted = true;
                            wake = Some(reader);
                        }
                    }
                }
            }
        }
        if let Some(reader) = wake {
            reader.wake();
        }
        done
    }

    /// Ready when the discipline can take input.
    fn poll_room(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.state.lock().discipline.has_room() {
            return Poll::Ready(());
        }
        self.task.register(cx.waker());
        if self.state.lock().discipline.has_room() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// The driver task: owns `uart`, reads what arrives, runs it through the
    /// discipline, writes the echo, and calls `on_interrupt_key` for each ^C. A line
    /// error is logged and the task goes on.
    ///
    /// # Context
    /// Spawn it on the CPU that takes the UART's interrupt (its waker is woken there).
    /// It never returns.
    pub async fn run<R: Registers>(&self, mut uart: Uart<R>, mut on_interrupt_key: impl FnMut()) {
        let mut buf = [0u8; 64];
        let (mut start, mut end) = (0, 0);
        let mut echo = Vec::new();
        loop {
            if start == end {
                match uart.read(&mut buf).await {
                    Ok(n) => (start, end) = (0, n),
                    Err(e) => {
                        let s = uart.stats();
                        log::warn!(
                            target: "uart16550",
                            "receive: {e} (so far: {} overruns, {} parity, {} framing errors, {} breaks)",
                            s.overruns,
                            s.parity_errors,
                            s.framing_errors,
                            s.breaks
                        );
                        continue;
                    }
                }
            }
            poll_fn(|cx| self.poll_room(cx)).await;
            let input = self.input(&buf[start..end], &mut echo);
            start += input.consumed;
            for _ in 0..input.interrupts {
                on_interrupt_key();
            }
            if !echo.is_empty() {
                // The transmitter reports no errors (Write's error type is never made).
                let _ = uart.write_all(&echo).await;
                echo.clear();
            }
        }
    }
}
