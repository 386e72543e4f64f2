// SPDX-License-Identifier: MIT OR Apache-2.0
//! Descriptors as `embedded-io` objects: [`Fd`] (sync, one trap per call) and, in
//! [`crate::rt`], `AsyncFd` (through the ring).

use abi::{Errno, OpenFlags, Stat, Whence};

use crate::sys;

/// An `Errno` as an `embedded_io::Error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoError(pub Errno);

impl From<Errno> for IoError {
    fn from(e: Errno) -> IoError {
        IoError(e)
    }
}

impl core::fmt::Display for IoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.fmt(f)
    }
}

impl embedded_io::Error for IoError {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind as K;
        match self.0 {
            Errno::NoEnt => K::NotFound,
            Errno::Perm | Errno::Acces => K::PermissionDenied,
            Errno::ConnRefused => K::ConnectionRefused,
            Errno::ConnReset => K::ConnectionReset,
            Errno::ConnAborted => K::ConnectionAborted,
            Errno::NotConn => K::NotConnected,
            Errno::AddrInUse => K::AddrInUse,
            Errno::AddrNotAvail => K::AddrNotAvailable,
            Errno::Pipe => K::BrokenPipe,
            Errno::Exist => K::AlreadyExists,
            Errno::Inval => K::InvalidInput,
            Errno::TimedOut | Errno::Time => K::TimedOut,
            Errno::Intr => K::Interrupted,
            Errno::OpNotSupp | Errno::NoSys => K::Unsupported,
            Errno::NoMem => K::OutOfMemory,
            _ => K::Other,
        }
    }
}

/// An owned descriptor; closed on drop. `Fd::borrowed` wraps one it must not close.
#[derive(Debug)]
pub struct Fd {
    fd: i32,
    owned: bool,
}

impl Fd {
    /// Opens `path`.
    ///
    /// # Errors
    /// The kernel's answer.
    pub fn open(path: &str, flags: OpenFlags, mode: u32) -> Result<Fd, Errno> {
        sys::open(path, flags, mode).map(Fd::from_raw)
    }

    /// Takes ownership of a raw descriptor.
    pub fn from_raw(fd: i32) -> Fd {
        Fd { fd, owned: true }
    }

    /// Uses a descriptor without owning it (not closed on drop), e.g. 0, 1, 2.
    pub fn borrowed(fd: i32) -> Fd {
        Fd { fd, owned: false }
    }

    /// The raw number.
    pub fn raw(&self) -> i32 {
        self.fd
    }

    /// Gives up ownership and returns the number.
    pub fn into_raw(mut self) -> i32 {
        self.owned = false;
        self.fd
    }

    /// `fstat`.
    ///
    /// # Errors
    /// The kernel's answer.
    pub fn stat(&self) -> Result<Stat, Errno> {
        sys::fstat(self.fd)
    }

    /// Reads until end of file.
    ///
    /// # Errors
    /// The first failing read.
    pub fn read_to_end(&mut self, out: &mut alloc::vec::Vec<u8>) -> Result<usize, Errno> {
        let mut buf = [0u8; 4096];
        let start = out.len();
        loop {
            match sys::read(self.fd, &mut buf)? {
                0 => return Ok(out.len() - start),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }
}

impl Drop for Fd {
    fn drop(&mut self) {
        if self.owned {
            let _ = sys::close(self.fd);
        }
    }
}

impl embedded_io::ErrorType for Fd {
    type Error = IoError;
}

impl embedded_io::Read for Fd {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        Ok(sys::read(self.fd, buf)?)
    }
}

impl embedded_io::Write for Fd {
    fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        Ok(sys::write(self.fd, buf)?)
    }
    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

impl embedded_io::Seek for Fd {
    fn seek(&mut self, pos: embedded_io::SeekFrom) -> Result<u64, IoError> {
        let (off, whence) = match pos {
            embedded_io::SeekFrom::Start(o) => (o as i64, Whence::Set),
            embedded_io::SeekFrom::End(o) => (o, Whence::End),
            embedded_io::SeekFrom::Current(o) => (o, Whence::Current),
        };
        Ok(sys::lseek(self.fd, off, whence)?)
    }
}

/// fd 1 as a `core::fmt::Write` (used by `print!`).
pub struct Stdout;

/// fd 2 as a `core::fmt::Write` (used by `eprint!` and the panic handler).
pub struct Stderr;

impl core::fmt::Write for Stdout {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sys::write_all(1, s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

impl core::fmt::Write for Stderr {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        sys::write_all(2, s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}
