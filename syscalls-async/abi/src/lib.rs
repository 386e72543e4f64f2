// SPDX-License-Identifier: MIT OR Apache-2.0
//! abi: the user/kernel ABI of Damselfly, defined once.
#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod clock;
pub mod dirent;
pub mod errno;
pub mod fcntl;
pub mod ring;
pub mod stat;

pub use dirent::DirentType;
pub use errno::Errno;
pub use fcntl::{OpenFlags, Whence};
pub use ring::{Cqe, Opcode, RingEnterFlags, RingLayout, RingParams, Sqe, SqeFlags};
pub use stat::{FileType, Stat, Timespec};
