// SPDX-License-Identifier: MIT OR Apache-2.0
//! The char vocabulary: byte streams (serial ports, consoles, terminals).
//!
//! | request | `buf` in | `buf` out | `Ok(n)` |
//! |---|---|---|---|
//! | `Read` | empty, with capacity = most bytes wanted (at least 1) | the `n` bytes read | `n` (0: end of file) |
//! | `Write` | the data | unchanged | `n` bytes accepted (at least 1 unless `buf` was empty) |
//!
//! A read completes as soon as at least one byte is available (or at end of file); it
//! never waits to fill the buffer. A write may accept a prefix; the caller sends the rest.
//! The buffer comes back in every reply, also on error ([`CharMsg::from_reply`]).
//!
//! # Cancel safety
//! Dropping a `Port::call` in flight orphans the message (`ports::Port::call`); the driver
//! sees the abort request and must answer soon:
//! - `Read`: a driver moves bytes into a message only at the moment it replies, and
//!   answers an aborted read that got nothing with [`CharError::Interrupted`]; so a read
//!   cancelled while waiting loses no input. A read cancelled after its reply was sent
//!   (the reply is then dropped) loses the bytes in it.
//! - `Write`: a prefix of the data may have been sent; the caller cannot know how much.

use alloc::vec::Vec;
use core::fmt;

use crate::{PortError, Reply};

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CharRequest {
    /// Read up to `buf.capacity()` bytes.
    Read,
    /// Write `buf`.
    Write,
}

/// Why a char request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CharError {
    /// The device reported an error (framing, overrun with data loss, ...).
    #[doc(alias = "EIO")]
    Io,
    /// The request was aborted before any byte moved (or `^C` on a console).
    #[doc(alias = "EINTR")]
    Interrupted,
    /// Nothing available right now (non-blocking servers only).
    #[doc(alias = "EAGAIN")]
    WouldBlock,
    /// No driver behind the port.
    #[doc(alias = "ENODEV")]
    NoDevice,
    /// The request is malformed (a read with zero capacity).
    #[doc(alias = "EINVAL")]
    Invalid,
}

impl CharError {
    /// The Linux errno number.
    pub const fn errno(self) -> i32 {
        match self {
            CharError::Io => 5,
            CharError::Interrupted => 4,
            CharError::WouldBlock => 11,
            CharError::NoDevice => 19,
            CharError::Invalid => 22,
        }
    }
}

impl fmt::Display for CharError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CharError::Io => "device I/O error",
            CharError::Interrupted => "interrupted",
            CharError::WouldBlock => "no data available right now",
            CharError::NoDevice => "no driver serves the port",
            CharError::Invalid => "invalid request",
        })
    }
}

impl core::error::Error for CharError {}

impl From<PortError> for CharError {
    fn from(_: PortError) -> Self {
        CharError::NoDevice
    }
}

/// One char request and, once replied, its result.
#[derive(Debug)]
pub struct CharMsg {
    /// Correlation id for log lines.
    pub op_id: u64,
    /// What to do.
    pub request: CharRequest,
    /// The data buffer (see the module docs). Always handed back.
    pub buf: Vec<u8>,
    /// `None` until served; `Ok(n)` is a byte count.
    pub result: Option<Result<usize, CharError>>,
}

impl CharMsg {
    /// Read up to `max` bytes (allocates the buffer).
    pub fn read(max: usize) -> CharMsg {
        CharMsg::read_into(Vec::with_capacity(max))
    }

    /// Read into `buf`'s spare capacity (`buf` is cleared first).
    pub fn read_into(mut buf: Vec<u8>) -> CharMsg {
        buf.clear();
        CharMsg {
            op_id: 0,
            request: CharRequest::Read,
            buf,
            result: None,
        }
    }

    /// Write `buf`.
    pub fn write(buf: Vec<u8>) -> CharMsg {
        CharMsg {
            op_id: 0,
            request: CharRequest::Write,
            buf,
            result: None,
        }
    }

    /// Sets the correlation id.
    pub fn with_op_id(mut self, op_id: u64) -> CharMsg {
        self.op_id = op_id;
        self
    }

    /// Completes the message (driver side).
    pub fn complete(&mut self, result: Result<usize, CharError>) {
        self.result = Some(result);
    }

    /// Driver side: answers a read with `data` (at most the buffer's capacity is taken;
    /// returns how many bytes were taken).
    pub fn complete_read(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.buf.capacity().max(1));
        self.buf.clear();
        self.buf.extend_from_slice(&data[..n]);
        self.result = Some(Ok(n));
        n
    }

    /// Folds a port reply into the message (a port error or an unserved message becomes
    /// [`CharError::NoDevice`]); the buffer is never lost.
    pub fn from_reply(reply: Reply<CharMsg>) -> CharMsg {
        match reply {
            Ok(mut msg) => {
                if msg.result.is_none() {
                    msg.result = Some(Err(CharError::NoDevice));
                }
                msg
            }
            Err((error, mut msg)) => {
                msg.result = Some(Err(error.into()));
                msg
            }
        }
    }

    /// The result and the buffer.
    pub fn into_parts(self) -> (Result<usize, CharError>, Vec<u8>) {
        (self.result.unwrap_or(Err(CharError::NoDevice)), self.buf)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    #[test]
    fn read_buffer_is_empty_with_the_requested_capacity() {
        let msg = CharMsg::read(16);
        assert!(msg.buf.is_empty());
        assert!(msg.buf.capacity() >= 16);
        let msg = CharMsg::read_into(vec![1, 2, 3]);
        assert!(msg.buf.is_empty() && msg.buf.capacity() >= 3);
    }

    #[test]
    fn complete_read_takes_at_most_the_capacity() {
        let mut msg = CharMsg::read_into(Vec::with_capacity(4));
        let cap = msg.buf.capacity();
        let data = [9u8; 64];
        assert_eq!(msg.complete_read(&data), cap);
        assert_eq!(msg.into_parts(), (Ok(cap), vec![9; cap]));
    }

    #[test]
    fn port_errors_hand_the_buffer_back() {
        let msg = CharMsg::write(b"hi".to_vec());
        let back = CharMsg::from_reply(Err((PortError::Unreplied, msg)));
        assert_eq!(
            back.into_parts(),
            (Err(CharError::NoDevice), b"hi".to_vec())
        );
        assert_eq!(CharError::Interrupted.errno(), 4);
    }
}
