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

/// The kernel counters a leak would move (`SysInfo` without the caches: free frames and
/// heap pages change when a slab cache grows or shrinks, and uptime always does).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    pub frames_other: u64,
    pub heap_objects: u64,
    pub heap_bytes: u64,
    pub processes: u32,
}

/// The current [`Footprint`].
pub fn footprint() -> Result<Footprint, String> {
    let i = ctx("sys_info", libc_shim::sys::sys_info())?;
    Ok(Footprint {
        frames_other: i.frames_other,
        heap_objects: i.heap_objects,
        heap_bytes: i.heap_bytes,
        processes: i.processes,
    })
}

/// The footprint once two reads 5 ms apart agree: tasks woken by the last exit (the
/// shell waiting for this program re-registers its waker, which allocates the waiter
/// list again) have run.
fn settled_footprint() -> Result<Footprint, String> {
    let mut last = footprint()?;
    for _ in 0..200 {
        ctx("sleep", libc_shim::sys::sleep_ms(5))?;
        let now = footprint()?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    Err(format!("the kernel's counters never settled: {last:?}"))
}

/// Runs `body` twice to warm the kernel's caches (slab classes and run queues on every
/// CPU, the namecache, page tables of this process's heap), takes a [`Footprint`], runs
/// `body` twice more, and requires the footprint to come back to exactly the same values:
/// nothing leaked and every process was reaped. Two runs, not one, between the snapshots:
/// children are placed round-robin, so a body that spawns an odd number of them starts
/// every other run on the other CPU, and per-CPU state that remembers the last process
/// there (one 64-byte object was seen to follow that parity) must be compared in the same
/// phase. Children that have been waited for may still be unwinding on their CPU
/// (dropping their task and address space), so the comparison is retried for up to 2 s;
/// a leak never comes back, so the check still fails on one (and reports the difference).
pub fn without_leaks(mut body: impl FnMut() -> Outcome) -> Outcome {
    body()?;
    body()?;
    let before = settled_footprint()?;
    body()?;
    body()?;
    let mut after = footprint()?;
    for _ in 0..2000 {
        if after == before {
            return Ok(());
        }
        ctx("sleep", libc_shim::sys::sleep_ms(1))?;
        after = footprint()?;
    }
    Err(format!("leak: before {before:?}, after {after:?}"))
}
