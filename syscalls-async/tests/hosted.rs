// SPDX-License-Identifier: MIT OR Apache-2.0
//! The engine on the real executor (hosted platform: std threads as CPUs): the ring task
//! is spawned with `executor::spawn`, and an operation pending on CPU 0 is completed by a
//! trap-door write performed on CPU 1.

mod common;

use std::sync::Arc;

use abi::{Opcode, RingEnterFlags, RingLayout, Sqe, SqeFlags, ring::RingParams};
use common::*;
use executor::{CpuId, hosted::Machine};
use fs::{Vfs, platform::TickClock, tmpfs::Tmpfs};
use syscalls_async::{Process, ProcessInit};

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[test]
fn futures_the_kernel_spawns_are_send() {
    let kernel = FakeKernel::new();
    let vfs = Arc::new(Vfs::new(Arc::new(Tmpfs::new(Arc::new(TickClock::new(0))))));
    let proc = Process::new(
        1,
        0,
        vfs.clone(),
        kernel,
        FakeMemory::new(),
        ProcessInit::new(&vfs),
    );
    let sqe = Sqe::new(Opcode::Nop);
    let p = proc.clone();
    drop(assert_send(async move { p.perform(&sqe).await }));
    drop(assert_send(async move { proc.teardown().await }));
}

#[test]
fn the_ring_runs_on_the_hosted_executor_across_cpus() {
    let machine = Machine::start(2);
    let kernel = FakeKernel::new();
    *kernel.spawner.lock().unwrap() = Some(Box::new(|task| drop(executor::spawn(task))));
    let memory = FakeMemory::new();
    let vfs = Arc::new(Vfs::new(Arc::new(Tmpfs::new(Arc::new(TickClock::new(0))))));
    let proc = Process::new(
        1,
        0,
        vfs.clone(),
        kernel.clone(),
        memory.clone(),
        ProcessInit::new(&vfs),
    );

    // Ring setup and a pipe, through the trap door on CPU 0.
    let params = BASE + 0x1000;
    memory.write(
        params,
        &params_bytes(&RingParams {
            sq_entries: 8,
            ..Default::default()
        }),
    );
    let pipe_out = BASE + 0x2000;
    let p = proc.clone();
    machine.block_on(CpuId(0), async move {
        let mut s = Sqe::new(Opcode::RingSetup);
        s.addr = params;
        s.len = 64;
        assert_eq!(p.perform(&s).await, 0);
        let mut s = Sqe::new(Opcode::Pipe);
        s.addr = pipe_out;
        assert_eq!(p.perform(&s).await, 0);
    });
    let (rfd, wfd) = (memory.read_i32(pipe_out), memory.read_i32(pipe_out + 4));
    let ring = UserRing {
        words: kernel.ring_words(1),
        layout: RingLayout::new(8, 16).unwrap(),
        params: RingParams::default(),
    };

    // A pending pipe read plus async nops, submitted on CPU 0.
    let buf = BASE + 0x3000;
    let mut read = sqe(Opcode::Read, 1);
    read.fd = rfd;
    read.addr = buf;
    read.len = 5;
    ring.push(read);
    for i in 2..6 {
        ring.push({
            let mut s = nop(i);
            s.flags = SqeFlags::FORCE_ASYNC.bits();
            s
        });
    }
    let p = proc.clone();
    let submitted = machine.block_on(CpuId(0), async move {
        let mut s = Sqe::new(Opcode::RingEnter);
        s.len = 5;
        s.off = 4;
        s.op_flags = RingEnterFlags::GETEVENTS.bits();
        p.perform(&s).await
    });
    assert_eq!(submitted, 5);
    let mut got = ring.reap();
    assert_eq!(got.len(), 4, "the nops, not the read");

    // The write happens on CPU 1; the read completes on CPU 0's ring task.
    let data = BASE + 0x4000;
    memory.write(data, b"hello");
    let p = proc.clone();
    machine.block_on(CpuId(1), async move {
        let mut s = Sqe::new(Opcode::Write);
        s.fd = wfd;
        s.addr = data;
        s.len = 5;
        assert_eq!(p.perform(&s).await, 5);
    });
    let p = proc.clone();
    machine.block_on(CpuId(0), async move {
        let mut s = Sqe::new(Opcode::RingEnter);
        s.off = 1;
        s.op_flags = RingEnterFlags::GETEVENTS.bits();
        assert_eq!(p.perform(&s).await, 0);
    });
    got.extend(ring.reap());
    assert_eq!(got.len(), 5);
    assert!(got.iter().any(|c| c.user_data == 1 && c.res == 5));
    assert_eq!(memory.read(buf, 5), b"hello");

    let p = proc.clone();
    machine.block_on(CpuId(0), async move { p.teardown().await });
    machine.shutdown();
}
