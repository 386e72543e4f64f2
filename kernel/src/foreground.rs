// SPDX-License-Identifier: MIT OR Apache-2.0
//! The console's foreground: the processes a ^C typed on the console terminates.
//!
//! A process joins when it is spawned with `abi::ring::SPAWN_FOREGROUND` (an
//! interactive shell sets it for the commands it runs) or by a parent that is in the
//! foreground (so `sh -c` and pipelines started by a foreground program go too), and
//! leaves when it exits. ^C (the console driver task, `rootfs`) takes the whole set and
//! kills each member with SIGINT: its wait status is 2 (killed by signal 2), which a
//! shell reports as `$?` 130. The shell itself is never in the set, so it survives.
//! This stands in for POSIX process groups and a controlling terminal until those exist.

use alloc::collections::BTreeSet;

use syscalls_async::{Kernel, Pid};

/// Linux's SIGINT.
const SIGINT: u32 = 2;

static FOREGROUND: spin::Mutex<BTreeSet<Pid>> = spin::Mutex::new(BTreeSet::new());

/// A process was created (`process`): records it if it belongs to the foreground.
pub fn on_spawn(parent: Pid, pid: Pid, foreground_flag: bool) {
    let mut set = FOREGROUND.lock();
    if foreground_flag || set.contains(&parent) {
        set.insert(pid);
    }
}

/// A process exited (`process`).
pub fn on_exit(pid: Pid) {
    FOREGROUND.lock().remove(&pid);
}

/// ^C: terminates every foreground process as SIGINT would. Returns how many.
///
/// # Context
/// Task context (the console driver task on CPU 0); kills through the process
/// services, which kick a process running in user mode on another CPU.
pub fn interrupt() -> usize {
    let pids = core::mem::take(&mut *FOREGROUND.lock());
    let Some(services) = crate::process::services() else {
        return 0;
    };
    let mut killed = 0;
    for pid in pids {
        // Sender 0 is the kernel; a process that is already gone is not an error here.
        if services.kill(0, pid, SIGINT).is_ok() {
            killed += 1;
        }
    }
    log::debug!(target: "console", "^C: interrupted {killed} foreground processes");
    killed
}
