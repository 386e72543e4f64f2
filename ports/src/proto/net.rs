// SPDX-License-Identifier: MIT OR Apache-2.0
//! The net vocabulary: Ethernet frames to and from a network device (minimal).
//!
//! | request | `buf` in | `buf` out | `Ok(..)` |
//! |---|---|---|---|
//! | `Transmit` | one whole frame (no FCS) | unchanged | `Sent` |
//! | `Receive` | empty, capacity >= MTU + 14 | one received frame | `Received(len)` |
//! | `Info` | unused | unchanged | `Info(NetInfo)` |
//!
//! A stack keeps several `Receive` messages posted so the driver always has a buffer to
//! fill; each completes with exactly one frame. The buffer comes back in every reply.
//!
//! # Cancel safety
//! Dropping a `Port::call` in flight orphans the message (`ports::Port::call`):
//! - `Transmit`: the frame may or may not go out (a network may drop it anyway).
//! - `Receive`: a frame delivered into a cancelled receive is lost (as if the wire had
//!   dropped it); a driver answers an aborted receive that has no frame yet with
//!   [`NetError::Aborted`] and loses nothing.
//! - `Info`: no effect.

use alloc::vec::Vec;
use core::fmt;

use crate::{PortError, Reply};

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetRequest {
    /// Send the frame in `buf`.
    Transmit,
    /// Wait for one frame and put it in `buf`.
    Receive,
    /// The link's address and MTU.
    Info,
}

/// The device's address and limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetInfo {
    /// MAC address.
    pub mac: [u8; 6],
    /// Largest payload (without the 14-byte Ethernet header).
    pub mtu: u16,
    /// Link is up.
    pub is_link_up: bool,
}

/// A successful result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetDone {
    /// The frame was handed to the device.
    Sent,
    /// A frame of this many bytes is in `buf`.
    Received(usize),
    /// The answer to `Info`.
    Info(NetInfo),
}

/// Why a net request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NetError {
    /// The device reported an error or answered with garbage.
    #[doc(alias = "EIO")]
    Io,
    /// The frame is larger than MTU + header, or a receive buffer is too small.
    #[doc(alias = "EMSGSIZE")]
    TooBig,
    /// The request was aborted before anything moved.
    #[doc(alias = "EINTR")]
    Aborted,
    /// No driver behind the port.
    #[doc(alias = "ENODEV")]
    NoDevice,
    /// The link is down.
    #[doc(alias = "ENETDOWN")]
    LinkDown,
}

impl NetError {
    /// The Linux errno number.
    pub const fn errno(self) -> i32 {
        match self {
            NetError::Io => 5,
            NetError::TooBig => 90,
            NetError::Aborted => 4,
            NetError::NoDevice => 19,
            NetError::LinkDown => 100,
        }
    }
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NetError::Io => "device I/O error",
            NetError::TooBig => "frame too big",
            NetError::Aborted => "request aborted",
            NetError::NoDevice => "no driver serves the port",
            NetError::LinkDown => "link is down",
        })
    }
}

impl core::error::Error for NetError {}

impl From<PortError> for NetError {
    fn from(_: PortError) -> Self {
        NetError::NoDevice
    }
}

/// One net request and, once replied, its result.
#[derive(Debug)]
pub struct NetMsg {
    /// Correlation id for log lines.
    pub op_id: u64,
    /// What to do.
    pub request: NetRequest,
    /// The frame buffer. Always handed back.
    pub buf: Vec<u8>,
    /// `None` until served.
    pub result: Option<Result<NetDone, NetError>>,
}

impl NetMsg {
    fn new(request: NetRequest, buf: Vec<u8>) -> NetMsg {
        NetMsg {
            op_id: 0,
            request,
            buf,
            result: None,
        }
    }

    /// Send `frame`.
    pub fn transmit(frame: Vec<u8>) -> NetMsg {
        NetMsg::new(NetRequest::Transmit, frame)
    }

    /// Receive one frame into `buf` (cleared; its capacity is the limit).
    pub fn receive(mut buf: Vec<u8>) -> NetMsg {
        buf.clear();
        NetMsg::new(NetRequest::Receive, buf)
    }

    /// Ask for the address and MTU.
    pub fn info() -> NetMsg {
        NetMsg::new(NetRequest::Info, Vec::new())
    }

    /// Completes the message (driver side).
    pub fn complete(&mut self, result: Result<NetDone, NetError>) {
        self.result = Some(result);
    }

    /// Folds a port reply into the message; the buffer is never lost.
    pub fn from_reply(reply: Reply<NetMsg>) -> NetMsg {
        match reply {
            Ok(mut msg) => {
                if msg.result.is_none() {
                    msg.result = Some(Err(NetError::NoDevice));
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
    pub fn into_parts(self) -> (Result<NetDone, NetError>, Vec<u8>) {
        (self.result.unwrap_or(Err(NetError::NoDevice)), self.buf)
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec;

    use super::*;

    #[test]
    fn loopback_function_port_echoes_frames() {
        let port = crate::Port::function(|mut msg: NetMsg| {
            let n = msg.buf.len();
            msg.complete(match msg.request {
                NetRequest::Transmit if n > 1514 => Err(NetError::TooBig),
                NetRequest::Transmit => Ok(NetDone::Sent),
                NetRequest::Receive => Ok(NetDone::Received(0)),
                NetRequest::Info => Ok(NetDone::Info(NetInfo {
                    mac: [2, 0, 0, 0, 0, 1],
                    mtu: 1500,
                    is_link_up: true,
                })),
            });
            msg
        });
        let call = |m| NetMsg::from_reply(executor::hosted::block_on_thread(port.call(m)));
        assert_eq!(
            call(NetMsg::transmit(vec![0; 60])).into_parts().0,
            Ok(NetDone::Sent)
        );
        let (r, buf) = call(NetMsg::transmit(vec![0; 2000])).into_parts();
        assert_eq!((r, buf.len()), (Err(NetError::TooBig), 2000));
        assert!(matches!(
            call(NetMsg::info()).result,
            Some(Ok(NetDone::Info(_)))
        ));
    }

    #[test]
    fn port_errors_hand_the_frame_back() {
        let back = NetMsg::from_reply(Err((PortError::Closed, NetMsg::transmit(vec![5; 10]))));
        assert_eq!(back.into_parts(), (Err(NetError::NoDevice), vec![5; 10]));
        assert!(NetMsg::receive(vec![1; 4]).buf.is_empty());
    }
}
