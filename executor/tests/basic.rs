//! Basic spawn / join / remote spawn behaviour on the hosted machine.
// Hosted tests use real threads and atomics; under `--cfg loom` only the loom models run.
#![cfg(not(loom))]

use executor::hosted::Machine;
use executor::{CpuId, SpawnError};

#[test]
fn block_on_returns_the_output() {
    let m = Machine::start(1);
    assert_eq!(m.block_on(CpuId(0), async { 40 + 2 }), 42);
}

#[test]
fn spawn_and_join_on_the_same_cpu() {
    let m = Machine::start(1);
    let out = m.block_on(CpuId(0), async {
        let a = executor::spawn(async { 1 });
        let b = executor::spawn(async { 2 });
        a.await.unwrap() + b.await.unwrap()
    });
    assert_eq!(out, 3);
}

#[test]
fn spawn_on_another_cpu_runs_there() {
    let m = Machine::start(2);
    let cpu = m.block_on(CpuId(0), async {
        executor::spawn_on(CpuId(1), async { executor::current_cpu() })
            .unwrap()
            .await
            .unwrap()
    });
    assert_eq!(cpu, CpuId(1));
}

#[test]
fn spawn_on_a_missing_cpu_is_an_error() {
    let m = Machine::start(2);
    let err = m.block_on(CpuId(0), async {
        executor::spawn_on(CpuId(7), async {}).map(|_| ())
    });
    assert_eq!(err, Err(SpawnError::NoSuchCpu));
    assert_eq!(
        m.spawn_on(CpuId(2), async {}).map(|_| ()),
        Err(SpawnError::NoSuchCpu)
    );
}

#[test]
fn blocking_a_cpu_thread_is_refused_with_a_clear_message() {
    let m = Machine::start(1);
    let h = m
        .spawn_on(CpuId(0), async {
            let inner = executor::spawn(async { 1 });
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                executor::hosted::block_on_thread(inner)
            }))
            .map_err(|e| {
                e.downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            })
        })
        .unwrap();
    let r = executor::hosted::block_on_thread(h).unwrap();
    assert!(r.unwrap_err().contains("would deadlock"));
}
