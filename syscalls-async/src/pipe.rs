// SPDX-License-Identifier: MIT OR Apache-2.0
//! In-kernel pipes: a bounded byte buffer with async read and write.
//!
//! POSIX semantics: a read returns what is there (at least one byte), waits while the
//! buffer is empty and a writer exists, and returns 0 (EOF) once every write end is gone.
//! A write of at most [`PIPE_BUF`] bytes is atomic; a longer one may interleave with other
//! writers. A write with no read end left fails with `EPIPE`. `O_NONBLOCK` ends return
//! `EAGAIN` instead of waiting. Ends count themselves: dropping the last `Arc` of a
//! [`PipeReader`] or [`PipeWriter`] is what closes that side.

use alloc::{collections::VecDeque, sync::Arc, vec::Vec};

use abi::Errno;

use crate::sync::Notify;

/// Bytes a pipe holds before writers wait.
pub const PIPE_CAPACITY: usize = 64 * 1024;
/// Writes up to this size are atomic.
pub const PIPE_BUF: usize = 4096;

struct PipeState {
    buf: VecDeque<u8>,
    readers: usize,
    writers: usize,
}

struct Pipe {
    state: spin::Mutex<PipeState>,
    readable: Notify,
    writable: Notify,
}

/// The read end.
pub struct PipeReader {
    pipe: Arc<Pipe>,
    non_blocking: bool,
}

/// The write end.
pub struct PipeWriter {
    pipe: Arc<Pipe>,
    non_blocking: bool,
}

/// A new pipe: (read end, write end).
pub fn pipe(non_blocking: bool) -> (PipeReader, PipeWriter) {
    let pipe = Arc::new(Pipe {
        state: spin::Mutex::new(PipeState {
            buf: VecDeque::new(),
            readers: 1,
            writers: 1,
        }),
        readable: Notify::new(),
        writable: Notify::new(),
    });
    (
        PipeReader {
            pipe: pipe.clone(),
            non_blocking,
        },
        PipeWriter { pipe, non_blocking },
    )
}

impl PipeReader {
    /// Reads up to `max` bytes (at least one unless EOF or `max == 0`).
    ///
    /// # Errors
    /// `Again` for a non-blocking end with nothing to read.
    ///
    /// # Cancel safety
    /// Bytes are taken only in the poll that returns them: dropping loses nothing.
    pub async fn read(&self, max: usize) -> Result<Vec<u8>, Errno> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .pipe
            .readable
            .wait_until(|| {
                let mut st = self.pipe.state.lock();
                if !st.buf.is_empty() {
                    let n = max.min(st.buf.len());
                    Some(Ok(st.buf.drain(..n).collect::<Vec<u8>>()))
                } else if st.writers == 0 {
                    Some(Ok(Vec::new()))
                } else if self.non_blocking {
                    Some(Err(Errno::Again))
                } else {
                    None
                }
            })
            .await;
        self.pipe.writable.notify();
        out
    }
}

impl Drop for PipeReader {
    fn drop(&mut self) {
        self.pipe.state.lock().readers -= 1;
        self.pipe.writable.notify();
    }
}

impl PipeWriter {
    /// Writes all of `data` (waiting for room), or fails.
    ///
    /// # Errors
    /// `Pipe` when no reader is left (after a partial write, the count written so far is
    /// returned instead); `Again` for a non-blocking end that could write nothing.
    ///
    /// # Cancel safety
    /// Dropping after a partial write loses the count, not the bytes already written.
    pub async fn write(&self, data: &[u8]) -> Result<usize, Errno> {
        let mut done = 0;
        while done < data.len() {
            let rest = &data[done..];
            let r = self
                .pipe
                .writable
                .wait_until(|| {
                    let mut st = self.pipe.state.lock();
                    if st.readers == 0 {
                        return Some(Err(Errno::Pipe));
                    }
                    let room = PIPE_CAPACITY - st.buf.len();
                    let need = if rest.len() <= PIPE_BUF {
                        rest.len()
                    } else {
                        1
                    };
                    if room >= need {
                        let n = room.min(rest.len());
                        st.buf.extend(&rest[..n]);
                        Some(Ok(n))
                    } else if self.non_blocking {
                        Some(Err(Errno::Again))
                    } else {
                        None
                    }
                })
                .await;
            match r {
                Ok(n) => {
                    done += n;
                    self.pipe.readable.notify();
                }
                Err(_) if done > 0 => return Ok(done),
                Err(e) => return Err(e),
            }
            if self.non_blocking {
                break;
            }
        }
        Ok(done)
    }
}

impl Drop for PipeWriter {
    fn drop(&mut self) {
        self.pipe.state.lock().writers -= 1;
        self.pipe.readable.notify();
    }
}
