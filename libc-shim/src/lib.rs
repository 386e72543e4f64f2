// SPDX-License-Identifier: MIT OR Apache-2.0
//! libc-shim: the user side of Damselfly's syscalls.
#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code)]

extern crate alloc;

pub mod args;
pub mod dir;
#[allow(unsafe_code)] // The unsafe edge; see its module doc.
pub mod ffi;
pub mod io;
pub mod printf;
#[allow(unsafe_code)] // Shared-memory ring; invariants in its module doc.
pub mod ring;
pub mod rt;

pub use abi;
pub use args::Args;
pub use ffi::sys;
pub use io::{Fd, IoError, Stderr, Stdout};
pub use ring::{PushError, QueueFull, Ring, RingOptions};
pub use rt::Runtime;

#[doc(hidden)]
pub mod __private {
    pub use alloc::format;
}

/// Declares the program's main: `libc_shim::entry!(main);` with `fn main(args: Args) -> i32`.
/// The process exits with main's return value.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        // The symbol the shim's `_start` calls (libc-shim/src/ffi/start.rs).
        #[unsafe(no_mangle)]
        fn __damselfly_main(args: $crate::Args) -> i32 {
            let main: fn($crate::Args) -> i32 = $main;
            main(args)
        }
    };
}

/// `print!` to fd 1 (errors are ignored, as C's printf).
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::Stdout, format_args!($($arg)*));
    }};
}

/// `println!` to fd 1.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        // One write per line, so lines from several processes do not interleave mid-line.
        let line = $crate::__private::format!("{}\n", format_args!($($arg)*));
        let _ = $crate::sys::write_all(1, line.as_bytes());
    }};
}

/// `eprintln!` to fd 2.
#[macro_export]
macro_rules! eprintln {
    ($($arg:tt)*) => {{
        let line = $crate::__private::format!("{}\n", format_args!($($arg)*));
        let _ = $crate::sys::write_all(2, line.as_bytes());
    }};
}

/// `eprint!` to fd 2.
#[macro_export]
macro_rules! eprint {
    ($($arg:tt)*) => {{
        let _ = core::fmt::Write::write_fmt(&mut $crate::Stderr, format_args!($($arg)*));
    }};
}

/// Prints the panic message to fd 2 and exits with status 101.
#[cfg(all(target_os = "none", not(test)))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write;
    let _ = writeln!(Stderr, "panic: {info}");
    sys::exit(101)
}
