// SPDX-License-Identifier: MIT OR Apache-2.0
//! Garbage in, no panic out: random `Sqe`s through both doors and random scribbles on
//! the ring header (seeded xorshift, so failures reproduce).

#![allow(clippy::manual_is_multiple_of)] // `x % n == 0` reads better for random draws.

mod common;

use std::{
    future::Future,
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
};

use abi::{Errno, Opcode, RingEnterFlags, Sqe, ring::ring_header};
use common::*;
use syscalls_async::decode;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value biased towards the interesting: zero, small, an address inside the fake
    /// memory, an edge, or anything.
    fn field(&mut self) -> u64 {
        match self.next() % 8 {
            0..=2 => 0,
            3 => self.next() % 8,
            4 => BASE + self.next() % (SIZE as u64),
            5 => [
                u64::MAX,
                1 << 47,
                (1 << 47) - 1,
                i64::MAX as u64,
                4095,
                4096,
            ][self.next() as usize % 6],
            _ => self.next(),
        }
    }

    fn sqe(&mut self) -> Sqe {
        let mut s = Sqe::ZERO;
        // Mostly valid opcodes, sometimes anything.
        s.opcode = if self.next() % 16 == 0 {
            self.next() as u8
        } else {
            (self.next() % Opcode::ALL.len() as u64) as u8
        };
        s.flags = if self.next() % 4 == 0 {
            self.next() as u8
        } else {
            (self.next() % 32) as u8
        };
        s.fd = match self.next() % 4 {
            0 => -100,
            1 => (self.next() % 8) as i32,
            _ => self.field() as i32,
        };
        s.off = self.field();
        s.addr = self.field();
        s.len = match self.next() % 3 {
            0 => (self.next() % 256) as u32,
            _ => self.field() as u32,
        };
        s.op_flags = if self.next() % 2 == 0 {
            0
        } else {
            self.field() as u32
        };
        s.user_data = self.next();
        s.addr2 = self.field();
        if self.next() % 8 == 0 {
            s.addr3 = self.field();
            s.ioprio = self.field() as u16;
            s.reserved = self.field() as u32;
        }
        s.aux = if self.next() % 2 == 0 {
            0
        } else {
            self.field() as u32
        };
        // Keep the trap door from exiting the process or blocking forever most of the time.
        s
    }
}

#[test]
fn decode_never_panics_on_200k_random_entries() {
    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let mut ok = 0;
    for _ in 0..200_000 {
        let s = rng.sqe();
        if decode(&s).is_ok() {
            ok += 1;
        }
        // Fully random bits too.
        let w: [u64; 8] = std::array::from_fn(|_| rng.next());
        let _ = decode(&Sqe::from_words(w));
    }
    assert!(ok > 1000, "the generator reaches valid requests too ({ok})");
}

/// Polls `fut` once; drops it if it is not ready (the kernel would leave it waiting).
fn poll_once<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Some(v),
        Poll::Pending => None,
    }
}

#[test]
fn the_trap_door_survives_100k_random_entries() {
    let mut w = World::new();
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut results = std::collections::BTreeMap::<i64, usize>::new();
    for i in 0..100_000 {
        let mut s = rng.sqe();
        if s.opcode == Opcode::Exit as u8 && i % 1000 != 0 {
            s.opcode = Opcode::Nop as u8;
        }
        let proc = w.proc.clone();
        if let Some(r) = poll_once(async move { proc.perform(&s).await }) {
            *results.entry(r.clamp(-200, 1)).or_default() += 1;
        }
        w.kernel.clock.advance_to(w.now() + 1000);
        if i % 64 == 0 {
            w.settle();
        }
    }
    assert!(results.get(&ERR_INVAL).copied().unwrap_or(0) > 0);
    assert!(results.get(&ERR_FAULT).copied().unwrap_or(0) > 0);
    assert!(
        results.keys().any(|&k| k >= 0),
        "some succeeded: {results:?}"
    );
}

const ERR_INVAL: i64 = -(Errno::Inval as i64);
const ERR_FAULT: i64 = -(Errno::Fault as i64);

#[test]
fn the_ring_survives_100k_random_entries_and_exits_cleanly() {
    let mut w = World::new();
    let ring = w.setup_ring(64, 128, 0, 0);
    let mut rng = Rng(0xfeed_face_dead_beef);
    let mut reaped = 0usize;
    let mut submitted = 0usize;
    let mut recent = std::collections::VecDeque::new();
    for round in 0..100_000 {
        if submitted >= 100_000 {
            break;
        }
        let n = 1 + rng.next() % 64;
        for _ in 0..n {
            if ring.sq_space() == 0 {
                break;
            }
            let mut s = rng.sqe();
            if [
                Opcode::Sleep as u8,
                Opcode::Timeout as u8,
                Opcode::LinkTimeout as u8,
            ]
            .contains(&s.opcode)
            {
                s.addr %= 5_000_000;
            }
            recent.push_back(s.user_data);
            ring.push(s);
        }
        // Some random entries wait forever (a pipe read, a port receive): cancel the
        // oldest ones now and then, through the trap door, as a program would.
        if round % 16 == 0 {
            for _ in 0..recent.len().saturating_sub(256) {
                let mut c = Sqe::new(Opcode::Cancel);
                c.addr = recent.pop_front().unwrap();
                let r = w.trap(c);
                assert!(
                    r == 0 || r == -(Errno::NoEnt as i64) || r == -(Errno::Already as i64),
                    "{r}"
                );
            }
        }
        let flags = (rng.next() % 2) as u32 * RingEnterFlags::GETEVENTS.bits();
        let r = w.enter(
            64,
            (rng.next() % 4) as u32,
            flags,
            1 + rng.next() % 10_000_000,
        );
        assert!(
            r >= 0 || r == -(Errno::Busy as i64) || r == -(Errno::Time as i64),
            "{r}"
        );
        if r > 0 {
            submitted += r as usize;
        }
        w.kernel.clock.advance_to(w.now() + rng.next() % 2_000_000);
        w.settle();
        reaped += ring.reap_at_most((rng.next() % 200) as u32).len();
    }
    assert!(submitted >= 100_000, "only {submitted} consumed");
    let r = w.proc.ring().unwrap();
    let proc = w.proc.clone();
    w.block_on(async move { proc.teardown().await });
    assert_eq!(r.stats().in_flight, 0);
    loop {
        let got = ring.reap().len();
        reaped += got;
        r.flush();
        if got == 0 && r.stats().overflow_len == 0 {
            break;
        }
    }
    assert!(reaped > 10_000, "{reaped}");
    w.settle();
    assert_eq!(w.task_count(), 0, "the ring task ended");
}

#[test]
fn random_header_scribbles_never_panic_or_hang() {
    let mut rng = Rng(0x5151_5151_5151_5151);
    for round in 0..300 {
        let mut w = World::new();
        let ring = w.setup_ring(16, 32, 0, 0);
        for step in 0..20 {
            for _ in 0..rng.next() % 8 {
                if ring.sq_space() > 0 && ring.sq_space() <= 16 {
                    ring.push(if rng.next() % 2 == 0 {
                        nop(step)
                    } else {
                        sleep_sqe(step, rng.next() % 1_000_000)
                    });
                }
            }
            // Scribble one header word with garbage.
            let fields = [
                ring_header::HEAD,
                ring_header::TAIL,
                ring_header::MASK,
                ring_header::ENTRIES,
                ring_header::FLAGS,
                ring_header::DROPPED,
                ring_header::OVERFLOW,
            ];
            let f = fields[(rng.next() % 7) as usize];
            let v = rng.next() as u32;
            if rng.next() % 2 == 0 {
                ring.set_sq(f, v);
            } else {
                ring.set_cq(f, v);
            }
            let _ = w.enter(
                (rng.next() % 40) as u32,
                (rng.next() % 40) as u32,
                RingEnterFlags::GETEVENTS.bits(),
                5_000_000,
            );
            w.settle();
        }
        let proc = w.proc.clone();
        w.block_on(async move { proc.teardown().await });
        assert_eq!(
            w.proc.ring().map(|r| r.stats().in_flight),
            None,
            "round {round}"
        );
        let _ = Arc::strong_count(&w.proc);
    }
}
