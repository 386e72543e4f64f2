// SPDX-License-Identifier: MIT OR Apache-2.0
//! fs
#![no_std]
