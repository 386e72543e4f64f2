// SPDX-License-Identifier: MIT OR Apache-2.0
//! Submits >= 1,000,000 random Sqes through the ring (in a child, which may be killed by a
//! random operation such as Exit or a fault; the parent re-spawns it until the total is
//! reached) and checks the kernel survives: after fuzzing, a plain trap-door nop works.
//! Random entries never name this process's own memory in a way that matters: addresses
//! are random 64-bit values, which are almost never mapped; the child's state is
//! disposable anyway. Opcodes that would take a long time (Sleep, Wait, Spawn, Port*)
//! are replaced by Nop so the run ends.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use common::{Outcome, ctx, report};
use libc_shim::abi::{Opcode, Sqe};
use libc_shim::sys::{self, ExitStatus};
use libc_shim::{Ring, RingOptions};

libc_shim::entry!(main);

const TOTAL: u64 = 1_000_000;
const PER_CHILD: u64 = 100_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn random_sqe(rng: &mut Rng) -> Sqe {
    let w: [u64; 8] = core::array::from_fn(|_| rng.next());
    let mut s = Sqe::from_words(w);
    s.opcode %= 48; // mostly valid opcodes, some not
    // Skip operations that block for long or would spawn/kill/exit (the child must
    // finish its quota) or change memory the child runs on.
    match Opcode::from_u8(s.opcode) {
        Some(
            Opcode::Sleep
            | Opcode::Wait
            | Opcode::Spawn
            | Opcode::Kill
            | Opcode::Exit
            | Opcode::PortReceive
            | Opcode::PortCall
            | Opcode::Read
            | Opcode::Pread
            | Opcode::Munmap
            | Opcode::Mprotect
            | Opcode::Mmap
            | Opcode::RingSetup
            | Opcode::RingEnter
            | Opcode::Close
            | Opcode::Dup,
        ) => s.opcode = Opcode::Nop as u8,
        Some(Opcode::Timeout | Opcode::LinkTimeout) => s.addr %= 1_000_000,
        _ => {}
    }
    s.fd = (s.fd as u32 % 8) as i32 - 2;
    s
}

fn child(seed: u64) -> i32 {
    let Ok(mut ring) = Ring::setup(RingOptions::new(256)) else {
        return 3;
    };
    let mut rng = Rng(seed | 1);
    let mut sent = 0u64;
    while sent < PER_CHILD {
        while sent < PER_CHILD {
            let s = random_sqe(&mut rng);
            // SAFETY: random addresses; the child's memory may be scribbled by the kernel
            // on its behalf only where the address happens to be mapped, which for random
            // 64-bit values is practically never, and the child is disposable.
            if unsafe { ring.try_push(&s) }.is_err() {
                break;
            }
            sent += 1;
        }
        let _ = ring.submit();
        while ring.try_reap().is_some() {}
        if ring.sq_space() == 0 {
            let _ = ring.submit_and_wait(1);
            while ring.try_reap().is_some() {}
        }
    }
    0
}

fn run() -> Outcome {
    let mut done = 0u64;
    let mut seed = sys::now_ns();
    while done < TOTAL {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let s = alloc::format!("{seed}");
        let pid = ctx(
            "spawn",
            sys::spawn("/bin/tests/fuzz", &["fuzz", &s], &[], &[]),
        )?;
        let (_, st) = ctx("wait", sys::waitpid(pid))?;
        if let ExitStatus::Exited(3) = st {
            return Err("child could not set up a ring".into());
        }
        done += PER_CHILD;
    }
    ctx("nop after fuzzing", sys::nop())?;
    Ok(())
}

fn main(args: libc_shim::Args) -> i32 {
    if let Some(seed) = args.get(1).and_then(|s| s.parse().ok()) {
        return child(seed);
    }
    report("fuzz", run())
}
