// SPDX-License-Identifier: MIT OR Apache-2.0
//! Message vocabularies: the API boundary where drivers meet fs and net (STYLE.md C.1).
//!
//! Each vocabulary is one message type that travels both ways, as `fs::proto::VnodeMsg`
//! does: the caller fills the request and the buffer, the driver fills `result` and hands
//! the buffer back, on success and on error alike (STYLE.md C.2, Tock TRD3). A `result`
//! of `None` means "not served yet"; a driver always sets it before replying.
//!
//! Errors are small per-vocabulary enums below the POSIX line (STYLE.md C.5: ports does
//! not depend on `abi`); each variant names its C errno as a doc alias and `errno()`
//! gives the Linux number, so fs/net convert with `Errno::from_i32(e.errno())`.
//!
//! - [`block`]: sector reads and writes, flush, geometry (`virtio-blk`, RAM disks).
//! - [`char`]: byte streams (the 16550 UART, consoles).
//! - [`net`]: Ethernet frames in and out (`virtio-net`, loopback).

pub mod block;
pub mod char;
pub mod net;
