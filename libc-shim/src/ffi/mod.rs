// SPDX-License-Identifier: MIT OR Apache-2.0
//! The unsafe edge of the shim: the trap door, process start, the clock page, the heap, the sync
//! wrappers (which hand raw addresses to the kernel) and, with feature `capi`, the C ABI.
//! Every `unsafe` block here has a `// SAFETY:` comment.

pub mod alloc;
#[cfg(feature = "capi")]
pub mod capi;
pub mod clock;
#[cfg(test)]
pub mod fake;
pub mod start;
pub mod sys;
pub mod trap;
