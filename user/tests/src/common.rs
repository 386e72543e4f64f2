// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared by the test programs: the one-line PASS/FAIL report and small checks.
#![allow(dead_code)]

use alloc::format;
use alloc::string::String;

use libc_shim::abi::Errno;

/// A test's outcome: `Err(reason)` fails it.
pub type Outcome = Result<(), String>;

/// Prints `PASS name` or `FAIL name: reason` and returns the exit status (0 on pass).
pub fn report(name: &str, outcome: Outcome) -> i32 {
    match outcome {
        Ok(()) => {
            libc_shim::println!("PASS {name}");
            0
        }
        Err(reason) => {
            libc_shim::println!("FAIL {name}: {reason}");
            1
        }
    }
}

/// `Err` unless `got == want`.
pub fn expect_eq<T: PartialEq + core::fmt::Debug>(what: &str, got: T, want: T) -> Outcome {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

/// Turns an errno into a reason.
pub fn ctx<T>(what: &str, r: Result<T, Errno>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}
