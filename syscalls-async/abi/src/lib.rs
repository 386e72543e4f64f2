// SPDX-License-Identifier: MIT OR Apache-2.0
//! abi: the user/kernel ABI of Damselfly, defined once.
#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod dirent;
pub mod errno;
pub mod fcntl;
pub mod stat;
// Reserved: `pub mod ring;` (64-byte Sqe, 16-byte Cqe, opcodes) arrives with the ring issue.

pub use dirent::DirentType;
pub use errno::Errno;
pub use fcntl::{OpenFlags, Whence};
pub use stat::{FileType, Stat, Timespec};
