// SPDX-License-Identifier: MIT OR Apache-2.0
//! Shared test fixtures: the hosted machine, a test message, servers, a yield helper.
//!
//! Every wrapper around the executor lives here, so the test files read as port
//! behaviour only.
#![allow(dead_code)] // Each test binary uses a different subset.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

pub use executor::CpuId;
use executor::hosted::Machine;
use ports::{AlwaysQueue, Handled, Port, Server};

pub const CPU0: CpuId = CpuId(0);
pub const CPU1: CpuId = CpuId(1);

/// A two-CPU hosted machine (two std threads).
pub fn machine() -> Machine {
    Machine::start(2)
}

/// Runs `fut` as a task on `cpu` and waits for its output.
pub fn run<F>(machine: &Machine, cpu: CpuId, fut: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    machine.block_on(cpu, fut)
}

/// Spawns `fut` on `cpu` from inside a task.
pub fn spawn_on<F>(cpu: CpuId, fut: F) -> executor::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    executor::spawn_on(cpu, fut).expect("test CPUs exist")
}

/// Awaits a spawned task's output.
pub async fn join<T>(handle: executor::JoinHandle<T>) -> T {
    handle.await.expect("test tasks are not cancelled")
}

pub fn here() -> CpuId {
    executor::current_cpu()
}

/// Counts drops, to prove a message is freed exactly once and not early.
#[derive(Debug, Clone, Default)]
pub struct Drops(Arc<AtomicUsize>);

impl Drops {
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// The test message: the target adds `add` to `value` and records where it ran.
#[derive(Debug)]
pub struct Msg {
    pub id: u64,
    pub value: u64,
    pub served_on: Option<CpuId>,
    pub drops: Option<Drops>,
}

impl Msg {
    pub fn new(id: u64) -> Self {
        Self {
            id,
            value: id,
            served_on: None,
            drops: None,
        }
    }

    pub fn counted(id: u64, drops: &Drops) -> Self {
        Self {
            drops: Some(drops.clone()),
            ..Self::new(id)
        }
    }

    /// What every test handler does to a message.
    pub fn serve(&mut self) {
        self.value += 1000;
        self.served_on = Some(here());
    }
}

impl Drop for Msg {
    fn drop(&mut self) {
        if let Some(drops) = &self.drops {
            drops.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The three paths every behaviour is tested on (STYLE.md C.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Handler completes inline on the caller's CPU.
    Inline,
    /// Queued for a server task on the caller's CPU.
    QueuedLocal,
    /// Queued for a server task on the other CPU (through the IPI queue).
    QueuedRemote,
}

pub const PATHS: [Path; 3] = [Path::Inline, Path::QueuedLocal, Path::QueuedRemote];

impl Path {
    /// Where the port lives when the caller is on `CPU0`.
    pub fn port_cpu(self) -> CpuId {
        match self {
            Path::Inline | Path::QueuedLocal => CPU0,
            Path::QueuedRemote => CPU1,
        }
    }
}

/// Creates the port for `path`: an inline-serving handler, or `AlwaysQueue`.
pub fn port_for(path: Path) -> (Port<Msg>, Server<Msg>) {
    match path {
        Path::Inline => Port::executor(path.port_cpu(), |mut m: Msg| {
            m.serve();
            Handled::Done(m)
        }),
        Path::QueuedLocal | Path::QueuedRemote => Port::executor(path.port_cpu(), AlwaysQueue),
    }
}

/// Serves exactly `n` requests (serve + reply), then hands the server back.
pub async fn serve_n(mut server: Server<Msg>, n: usize) -> Server<Msg> {
    for _ in 0..n {
        let mut req = server.recv().await;
        req.msg_mut().serve();
        req.reply();
    }
    server
}

/// Spawns a server task for `path` serving `n` requests (none for the inline path).
pub fn start_server(
    path: Path,
    server: Server<Msg>,
    n: usize,
) -> executor::JoinHandle<Server<Msg>> {
    let n = if path == Path::Inline { 0 } else { n };
    spawn_on(path.port_cpu(), serve_n(server, n))
}

/// Polls `fut` exactly once.
pub async fn poll_once<F: Future + Unpin>(fut: &mut F) -> Poll<F::Output> {
    std::future::poll_fn(|cx: &mut Context<'_>| Poll::Ready(Pin::new(&mut *fut).poll(cx))).await
}

/// Yields to the executor once.
#[allow(unused_imports)] // Not every test binary yields.
pub use executor::yield_now;
