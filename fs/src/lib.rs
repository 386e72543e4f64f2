// SPDX-License-Identifier: MIT OR Apache-2.0
//! fs: Damselfly's VFS as messages (namecache, mount table, vnode ports, tmpfs, devfs, cpio).
#![doc = include_str!("../README.md")]
//!
//! # Example: the boot path
//!
//! What the kernel does at boot, before any executor runs (every step completes inline):
//!
//! ```
//! use std::sync::Arc;
//!
//! use abi::OpenFlags;
//! use fs::{
//!     boot::{mount_root, BootServices},
//!     platform::{EntropySource, NullConsole, TickClock},
//!     service::try_complete_inline,
//! };
//!
//! struct Zeros;
//! impl EntropySource for Zeros {
//!     fn fill(&self, buf: &mut [u8]) {
//!         buf.fill(0)
//!     }
//! }
//!
//! // A boot archive holding one file, as `find . | cpio -o -H newc` writes it.
//! fn entry(archive: &mut Vec<u8>, name: &str, mode: u32, data: &[u8]) {
//!     archive.extend_from_slice(b"070701");
//!     let namesize = name.len() as u32 + 1;
//!     for field in [1, mode, 0, 0, 1, 0, data.len() as u32, 0, 0, 0, 0, namesize, 0] {
//!         archive.extend_from_slice(format!("{field:08x}").as_bytes());
//!     }
//!     archive.extend_from_slice(name.as_bytes());
//!     archive.push(0);
//!     archive.resize(archive.len().next_multiple_of(4), 0);
//!     archive.extend_from_slice(data);
//!     archive.resize(archive.len().next_multiple_of(4), 0);
//! }
//! let mut initrd = Vec::new();
//! entry(&mut initrd, "etc", 0o040755, b"");
//! entry(&mut initrd, "etc/motd", 0o100644, b"hello\n");
//! entry(&mut initrd, "TRAILER!!!", 0, b"");
//!
//! let services = BootServices {
//!     clock: Arc::new(TickClock::new(0)),
//!     entropy: Arc::new(Zeros),
//!     console: Arc::new(NullConsole),
//! };
//! let (vfs, stats) = try_complete_inline(mount_root(&services, &initrd))
//!     .expect("tmpfs and devfs complete inline")
//!     .expect("a valid archive");
//! assert_eq!((stats.directories, stats.files), (1, 1));
//!
//! // The syscall layer then resolves paths relative to a process's root or cwd.
//! let root = vfs.root();
//! let motd = try_complete_inline(vfs.open(&root, b"/etc/motd", OpenFlags::READ_ONLY, 0))
//!     .unwrap()
//!     .unwrap();
//! let (n, text) = try_complete_inline(vfs.read(&motd, Vec::new(), 100)).unwrap();
//! assert_eq!((n, text.as_slice()), (Ok(6), &b"hello\n"[..]));
//! assert!(try_complete_inline(vfs.stat(&root, b"/dev/null", true)).unwrap().is_ok());
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

pub mod bcache;
pub mod blockdev;
pub mod boot;
pub mod cpio;
pub mod devfs;
pub mod file;
pub mod namecache;
pub mod path;
pub mod platform;
pub mod proto;
pub mod service;
mod sync;
pub mod tmpfs;
pub mod vfs;

#[cfg(test)]
extern crate std;

pub use abi::Errno;
pub use file::{Fd, FdTable, OpenFile};
pub use proto::{Attr, DirEntry, Ino, VnodeDone, VnodeMsg, VnodeOp};
pub use service::{Filesystem, FsPort};
pub use vfs::{Vfs, Vnode};
