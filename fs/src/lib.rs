// SPDX-License-Identifier: MIT OR Apache-2.0
//! fs: Damselfly's VFS as messages (namecache, mount table, vnode ports, tmpfs, devfs, cpio).
#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod boot;
pub mod cpio;
pub mod devfs;
pub mod file;
pub mod namecache;
pub mod path;
pub mod platform;
pub mod proto;
pub mod service;
pub mod tmpfs;
pub mod vfs;

#[cfg(test)]
extern crate std;

pub use abi::Errno;
pub use file::{Fd, FdTable, OpenFile};
pub use proto::{Attr, DirEntry, Ino, VnodeDone, VnodeMsg, VnodeOp};
pub use service::{Filesystem, FsPort};
pub use vfs::{Vfs, Vnode};
