// SPDX-License-Identifier: MIT OR Apache-2.0
//! Port errors: why a message came back without being served.
//!
//! Every error hands the message back (`(PortError, M)`), so its buffers return to the
//! originator exactly as a normal reply would [Tock TRD3]. Errors of the operation
//! itself (a failed read, ...) are the protocol's business and travel inside `M`.

use core::fmt;

/// Why a port gave a message back unserved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortError {
    /// The port is bound to a CPU that does not exist (`cpu.index() >= cpu_count()`).
    NoSuchCpu,
    /// An executor port was used from a thread that is not one of the executor's CPUs
    /// (early boot, a host test's main thread). Spin and function ports work anywhere.
    NotOnCpu,
    /// The port's server is gone: nobody will ever serve the message.
    Closed,
    /// The target dropped the message's `Request` without replying.
    Unreplied,
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortError::NoSuchCpu => "port is bound to a CPU that does not exist",
            PortError::NotOnCpu => "executor port used off-CPU",
            PortError::Closed => "port is closed (its server is gone)",
            PortError::Unreplied => "target dropped the request without replying",
        })
    }
}

impl core::error::Error for PortError {}

/// What the originator gets back: the replied message, or an error with the message.
pub type Reply<M> = Result<M, (PortError, M)>;
