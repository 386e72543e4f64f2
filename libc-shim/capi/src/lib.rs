// SPDX-License-Identifier: MIT OR Apache-2.0
//! `libdamselfly_c.a`: libc-shim with its C ABI (feature `capi`) as a static library.
//! Everything lives in `libc_shim::ffi::capi`; this crate only links it in.
#![no_std]
#![forbid(unsafe_code)]

pub use libc_shim;
