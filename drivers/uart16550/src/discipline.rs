// SPDX-License-Identifier: MIT OR Apache-2.0
//! The console line discipline: cooked input as a pure state machine (no device, no
//! time), fed one received byte at a time, producing echo bytes and delivering whole
//! lines to readers. The shape is POSIX canonical mode with `ICRNL`, `ECHO`, `ECHOE`,
//! `ECHOK`, `ISIG` and `ONLCR` on.
//!
//! ```text
//!  byte ──> input() ──┬─ printable / tab ── append to the line, echo it
//!                     ├─ BS, DEL ────────── erase one character (UTF-8 aware), echo "\b \b"
//!                     ├─ ^U ─────────────── erase the line, "\b \b" per character
//!                     ├─ CR, LF ─────────── line + "\n" -> ready, echo "\r\n"     (1)
//!                     ├─ ^D ─────────────── line (no "\n") -> ready; empty: EOF   (2)
//!                     ├─ ^C ─────────────── drop the line, echo "^C\r\n",
//!                     │                     returns Event::Interrupt             (3)
//!                     └─ ESC [ ... final ── swallowed (arrow keys), others ignored
//!  read(buf) <── ready: one record per call (a line, a partial line, or EOF = 0)
//! ```
//!
//! Bounds: a line holds at most [`MAX_LINE`] bytes (more are refused with a bell), and
//! the driver stops feeding input while [`LineDiscipline::has_room`] is false, so ready
//! input never grows past [`MAX_READY`].

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// Most bytes in one line, its newline excluded (Linux's `N_TTY_BUF_SIZE - 1`).
pub const MAX_LINE: usize = 4095;
/// Most bytes of delivered input not yet read.
pub const MAX_READY: usize = 16 * 1024;

const CTRL_C: u8 = 0x03;
const CTRL_D: u8 = 0x04;
const BACKSPACE: u8 = 0x08;
const CTRL_U: u8 = 0x15;
const ESC: u8 = 0x1b;
const DEL: u8 = 0x7f;
const BELL: u8 = 0x07;
const ERASE: &[u8] = b"\x08 \x08";

/// What an input byte did, beyond echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// Nothing a reader or the kernel must act on.
    None,
    /// A line (or an end of file) became ready: wake the reader.
    Ready,
    /// ^C: the line was discarded; interrupt the foreground program.
    Interrupt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Start,
    /// Inside `ESC [`: parameter bytes until a final byte 0x40..=0x7e.
    Csi,
}

/// Cooked-mode input. See the module docs for the transitions.
#[derive(Debug, Default)]
pub struct LineDiscipline {
    /// The line being edited.
    line: Vec<u8>,
    /// Delivered input not yet read.
    ready: VecDeque<u8>,
    /// Length of each delivered record in `ready`, oldest first; 0 is an end of file.
    records: VecDeque<usize>,
    escape: Escape,
    /// The previous byte was CR: an LF right after it is the same line end (CRLF).
    after_cr: bool,
}

impl LineDiscipline {
    /// An empty discipline.
    pub fn new() -> LineDiscipline {
        LineDiscipline::default()
    }

    /// Whether the driver may feed more input: there is room for a whole line on top of
    /// what is ready. While false, input waits in the device (flow control).
    pub fn has_room(&self) -> bool {
        self.ready.len() + MAX_LINE < MAX_READY
    }

    /// Whether a record (line or end of file) is waiting for a reader.
    pub fn has_ready(&self) -> bool {
        !self.records.is_empty()
    }

    /// The line being edited (not yet delivered).
    pub fn pending_line(&self) -> &[u8] {
        &self.line
    }

    /// Takes one received byte; appends what to echo to `echo`.
    pub fn input(&mut self, byte: u8, echo: &mut Vec<u8>) -> Event {
        let after_cr = core::mem::take(&mut self.after_cr);
        match self.escape {
            Escape::Start => {
                self.escape = if byte == b'[' {
                    Escape::Csi
                } else {
                    Escape::None
                };
                return Event::None;
            }
            Escape::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                return Event::None;
            }
            Escape::None => {}
        }
        match byte {
            b'\n' if after_cr => Event::None,
            b'\r' | b'\n' => {
                self.after_cr = byte == b'\r';
                self.line.push(b'\n');
                self.deliver();
                echo.extend_from_slice(b"\r\n");
                Event::Ready
            }
            CTRL_D => {
                // Empty line: a record of length 0, which a read returns as end of file.
                self.deliver();
                Event::Ready
            }
            CTRL_C => {
                self.line.clear();
                echo.extend_from_slice(b"^C\r\n");
                Event::Interrupt
            }
            BACKSPACE | DEL => {
                if self.erase_char() {
                    echo.extend_from_slice(ERASE);
                }
                Event::None
            }
            CTRL_U => {
                while self.erase_char() {
                    echo.extend_from_slice(ERASE);
                }
                Event::None
            }
            ESC => {
                self.escape = Escape::Start;
                Event::None
            }
            b'\t' | 0x20.. => {
                if self.line.len() >= MAX_LINE {
                    echo.push(BELL);
                } else {
                    self.line.push(byte);
                    echo.push(byte);
                }
                Event::None
            }
            // Other control characters have no meaning here and are dropped.
            _ => Event::None,
        }
    }

    /// Moves the line into `ready` as one record.
    fn deliver(&mut self) {
        self.records.push_back(self.line.len());
        self.ready.extend(self.line.drain(..));
    }

    /// Erases the last character of the line (all bytes of a UTF-8 sequence).
    fn erase_char(&mut self) -> bool {
        let Some(mut last) = self.line.pop() else {
            return false;
        };
        // Continuation bytes (10xxxxxx) belong to the lead byte before them.
        while last & 0xc0 == 0x80 {
            match self.line.pop() {
                Some(b) => last = b,
                None => break,
            }
        }
        true
    }

    /// Reads from the oldest record: at most one line per call. `Some(0)` is end of
    /// file (^D on an empty line); `None` means nothing is ready. A record longer than
    /// `buf` is returned over several calls.
    pub fn read(&mut self, buf: &mut [u8]) -> Option<usize> {
        let record = self.records.front_mut()?;
        if *record == 0 {
            self.records.pop_front();
            return Some(0);
        }
        let n = (*record).min(buf.len());
        for (slot, byte) in buf.iter_mut().zip(self.ready.drain(..n)) {
            *slot = byte;
        }
        *record -= n;
        if *record == 0 {
            self.records.pop_front();
        }
        Some(n)
    }
}

/// Output processing (`ONLCR`): `data` with each `\n` turned into `\r\n`, in chunks
/// handed to `write`.
pub fn onlcr(data: &[u8], mut write: impl FnMut(&[u8])) {
    let mut rest = data;
    while let Some(at) = rest.iter().position(|&b| b == b'\n') {
        write(&rest[..at]);
        write(b"\r\n");
        rest = &rest[at + 1..];
    }
    if !rest.is_empty() {
        write(rest);
    }
}
