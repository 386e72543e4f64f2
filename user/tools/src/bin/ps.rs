// SPDX-License-Identifier: MIT OR Apache-2.0
//! `ps`: lists processes.
#![no_std]
#![no_main]

extern crate alloc;

use libc_shim::abi::ring::{ProcInfo, proc_state};
use libc_shim::{eprintln, println, sys};

libc_shim::entry!(main);

fn main(_args: libc_shim::Args) -> i32 {
    let mut procs = alloc::vec![ProcInfo::default(); 256];
    let n = match sys::proc_list(&mut procs) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("ps: {e}");
            return 1;
        }
    };
    println!("  PID  PPID CPU STATE    NAME");
    for p in &procs[..n.min(procs.len())] {
        let state = match p.state {
            proc_state::RUNNING => "running",
            proc_state::RUNNABLE => "runnable",
            proc_state::SLEEPING => "sleeping",
            proc_state::ZOMBIE => "zombie",
            _ => "?",
        };
        let len = p.name.iter().position(|&b| b == 0).unwrap_or(p.name.len());
        let name = core::str::from_utf8(&p.name[..len]).unwrap_or("?");
        println!("{:5} {:5} {:3} {:8} {}", p.pid, p.ppid, p.cpu, state, name);
    }
    0
}
