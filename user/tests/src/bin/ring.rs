// SPDX-License-Identifier: MIT OR Apache-2.0
//! The ring: batches of 1, 8, 32, 128 nops; a linked chain; a timeout firing; a cancel;
//! a full completion ring (back-pressure, nothing lost); polled mode. Each case is a
//! fresh process (`ring CASE`) because a process has one ring; without an argument the
//! program runs every case as a child and reports once.
#![no_std]
#![no_main]

extern crate alloc;

#[path = "../common.rs"]
mod common;

use alloc::format;
use alloc::vec::Vec;

use common::{Outcome, ctx, expect_eq, report, without_leaks};
use libc_shim::abi::ring::SqeFlags;
use libc_shim::abi::{Cqe, Errno, Opcode, Sqe};
use libc_shim::sys::{self, ExitStatus};
use libc_shim::{Ring, RingOptions, Runtime};

libc_shim::entry!(main);

const CASES: [&str; 6] = [
    "batches", "linked", "timeout", "cancel", "cq_full", "polled",
];

fn nop(user_data: u64) -> Sqe {
    let mut s = Sqe::new(Opcode::Nop);
    s.user_data = user_data;
    s
}

fn reap_n(ring: &mut Ring, n: usize) -> Result<Vec<Cqe>, alloc::string::String> {
    let mut out = Vec::new();
    while out.len() < n {
        match ring.try_reap() {
            Some((cqe, _)) => out.push(cqe),
            None => {
                ctx("enter", ring.submit_and_wait(1))?;
            }
        }
    }
    Ok(out)
}

fn batches() -> Outcome {
    let mut ring = ctx("setup", Ring::setup(RingOptions::new(128)))?;
    for batch in [1u64, 8, 32, 128] {
        for i in 0..batch {
            ring.try_push_scalar(&nop(i))
                .map_err(|e| format!("push: {e:?}"))?;
        }
        expect_eq(
            "consumed",
            ctx("enter", ring.submit_and_wait(batch as u32))?,
            batch as u32,
        )?;
        let cqes = reap_n(&mut ring, batch as usize)?;
        let mut ids: Vec<u64> = cqes.iter().map(|c| c.user_data).collect();
        ids.sort();
        expect_eq("ids", ids, (0..batch).collect::<Vec<_>>())?;
        if cqes.iter().any(|c| c.res != 0) {
            return Err("a nop failed".into());
        }
    }
    Ok(())
}

fn linked() -> Outcome {
    let mut ring = ctx("setup", Ring::setup(RingOptions::new(8)))?;
    // nop -> (bad opcode) -> nop: the last must be cancelled because its link failed.
    let mut a = nop(1);
    a.flags = SqeFlags::LINK.bits();
    let mut b = Sqe::new(Opcode::Nop);
    b.opcode = 250;
    b.user_data = 2;
    b.flags = SqeFlags::LINK.bits();
    let c = nop(3);
    for s in [a, b, c] {
        ring.try_push_scalar(&s)
            .map_err(|e| format!("push: {e:?}"))?;
    }
    ring.submit().map_err(|e| format!("submit: {e}"))?;
    let mut cqes = reap_n(&mut ring, 3)?;
    cqes.sort_by_key(|c| c.user_data);
    expect_eq("first", cqes[0].res, 0)?;
    expect_eq("bad", cqes[1].res, -(Errno::Inval as i32))?;
    expect_eq("after bad", cqes[2].res, -(Errno::Canceled as i32))?;
    Ok(())
}

fn timeout() -> Outcome {
    let rt = ctx("runtime", Runtime::new(RingOptions::new(8)))?;
    let t0 = sys::now_ns();
    rt.block_on(rt.sleep(20_000_000))
        .map_err(|e| format!("sleep: {e}"))?;
    let waited = sys::now_ns() - t0;
    if waited < 20_000_000 {
        return Err(format!("timeout fired after {waited} ns, want >= 20 ms"));
    }
    Ok(())
}

fn cancel() -> Outcome {
    let mut ring = ctx("setup", Ring::setup(RingOptions::new(8)))?;
    let mut t = Sqe::new(Opcode::Timeout);
    t.addr = 60_000_000_000; // a minute: must be cancelled, not fired
    t.user_data = 10;
    let mut c = Sqe::new(Opcode::Cancel);
    c.addr = 10;
    c.user_data = 11;
    ring.try_push_scalar(&t)
        .map_err(|e| format!("push: {e:?}"))?;
    ring.submit().map_err(|e| format!("submit: {e}"))?;
    ring.try_push_scalar(&c)
        .map_err(|e| format!("push: {e:?}"))?;
    let mut cqes = reap_n(&mut ring, 2)?;
    cqes.sort_by_key(|c| c.user_data);
    expect_eq("timeout", cqes[0].res, -(Errno::Canceled as i32))?;
    expect_eq("cancel", cqes[1].res, 0)?;
    let mut c2 = Sqe::new(Opcode::Cancel);
    c2.addr = 12345;
    c2.user_data = 12;
    ring.try_push_scalar(&c2)
        .map_err(|e| format!("push: {e:?}"))?;
    expect_eq(
        "cancel nothing",
        reap_n(&mut ring, 1)?[0].res,
        -(Errno::NoEnt as i32),
    )?;
    Ok(())
}

fn cq_full() -> Outcome {
    let mut ring = ctx(
        "setup",
        Ring::setup(RingOptions {
            sq_entries: 16,
            cq_entries: 16,
            polled: false,
            sq_idle_us: 0,
        }),
    )?;
    const TOTAL: u64 = 1000;
    let mut next = 0u64;
    let mut seen = alloc::vec![false; TOTAL as usize];
    let mut reaped = 0u64;
    let mut overflowed = false;
    while reaped < TOTAL {
        while next < TOTAL && ring.try_push_scalar(&nop(next)).is_ok() {
            next += 1;
        }
        // While completions wait in the kernel's overflow list the kernel
        // takes no submissions (EBUSY, abi::ring "Back-pressure"): reap first.
        let busy = match ring.submit() {
            Ok(_) => false,
            Err(Errno::Busy) => true,
            Err(e) => return Err(format!("submit: {e}")),
        };
        overflowed |= busy || ring.is_cq_overflowing();
        // Reap only every other round, so the CQ really fills.
        if busy || next % 32 == 0 || next == TOTAL {
            while let Some((cqe, _)) = ring.try_reap() {
                let i = cqe.user_data as usize;
                if i >= seen.len() || seen[i] {
                    return Err(format!("bad or duplicate completion {i}"));
                }
                seen[i] = true;
                reaped += 1;
            }
            if next == TOTAL && reaped < TOTAL {
                match ring.submit_and_wait(1) {
                    Ok(_) | Err(Errno::Busy) => {}
                    Err(e) => return Err(format!("wait: {e}")),
                }
            }
        }
    }
    if !overflowed {
        return Err("the CQ never filled; the test did not test back-pressure".into());
    }
    Ok(())
}

fn polled() -> Outcome {
    let mut ring = ctx(
        "setup",
        Ring::setup(RingOptions {
            sq_entries: 32,
            cq_entries: 0,
            polled: true,
            sq_idle_us: 1000,
        }),
    )?;
    for round in 0..50u64 {
        for i in 0..8 {
            ring.try_push_scalar(&nop(round * 8 + i))
                .map_err(|e| format!("push: {e:?}"))?;
        }
        ctx("submit", ring.submit())?;
        reap_n(&mut ring, 8)?;
        if round == 25 {
            // Let the poller go idle, so the next submit must wake it.
            ctx("sleep", sys::sleep_ms(5))?;
        }
    }
    Ok(())
}

fn run_case(case: &str) -> Outcome {
    match case {
        "batches" => batches(),
        "linked" => linked(),
        "timeout" => timeout(),
        "cancel" => cancel(),
        "cq_full" => cq_full(),
        "polled" => polled(),
        _ => Err(format!("unknown case {case}")),
    }
}

fn main(args: libc_shim::Args) -> i32 {
    if let Some(case) = args.get(1) {
        return match run_case(case) {
            Ok(()) => 0,
            Err(reason) => {
                libc_shim::eprintln!("ring {case}: {reason}");
                1
            }
        };
    }
    // Every case (the CQ-full flood among them) in a child, with a leak check around all.
    let outcome = without_leaks(|| {
        CASES.iter().try_for_each(|case| {
            let pid = ctx(
                "spawn",
                sys::spawn("/bin/tests/ring", &["ring", case], &[], &[]),
            )?;
            match ctx("wait", sys::waitpid(pid))? {
                (_, ExitStatus::Exited(0)) => Ok(()),
                (_, st) => Err(format!("case {case} ended {st:?}")),
            }
        })
    });
    report("ring", outcome)
}
