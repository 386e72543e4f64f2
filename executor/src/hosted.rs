//! The hosted platform: std threads play CPUs (feature `hosted`; tests and benchmarks).
//!
//! `Machine::start(n)` starts `n` CPU threads, each running one executor. An IPI is an
//! `unpark`; sleeping is `park_timeout`, whose token makes "IPI before sleep" wake the
//! sleep at once (the race-free protocol of `Platform`). Interrupts are simulated with
//! `Machine::raise_interrupt`, delivered at the CPU's next interrupt point. The current
//! CPU is a thread-local, so several machines can run in one process.

use std::boxed::Box;
use std::cell::OnceCell;
use std::future::Future;
use std::sync::OnceLock;
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::sync::StdArc;
use crate::{CpuId, CpuStats, IpiMsg, JoinHandle, LocalCpu, Platform, Runtime, SpawnError};

std::thread_local! {
    static CURRENT: OnceCell<LocalCpu> = const { OnceCell::new() };
}

/// The hosted context hook: the calling thread's `LocalCpu`, if it is a CPU thread.
fn with_current(f: &mut dyn FnMut(Option<&LocalCpu>)) {
    let mut f = Some(f);
    let _ = CURRENT.try_with(|cell| {
        if let Some(f) = f.take() {
            f(cell.get());
        }
    });
    // During thread-local destruction we are no longer a CPU.
    if let Some(f) = f {
        f(None);
    }
}

struct HostedPlatform {
    n: usize,
    threads: StdArc<OnceLock<Vec<Thread>>>,
    epoch: Instant,
}

impl HostedPlatform {
    fn thread(&self, cpu: CpuId) -> Option<&Thread> {
        self.threads.get().and_then(|t| t.get(cpu.index()))
    }
}

impl Platform for HostedPlatform {
    fn cpu_count(&self) -> usize {
        self.n
    }

    fn current_cpu(&self) -> Option<CpuId> {
        CURRENT
            .try_with(|c| c.get().map(LocalCpu::cpu))
            .ok()
            .flatten()
    }

    fn send_ipi(&self, target: CpuId) {
        if let Some(t) = self.thread(target) {
            t.unpark();
        }
    }

    fn prepare_to_sleep(&self, _cpu: CpuId) {
        // Nothing: an `unpark` between here and `park` leaves a token that makes `park`
        // return at once.
    }

    fn abort_sleep(&self, _cpu: CpuId) {}

    fn sleep(&self, _cpu: CpuId, deadline_ns: Option<u64>) {
        match deadline_ns {
            None => thread::park(),
            Some(deadline) => {
                let now = self.now_ns();
                if deadline > now {
                    thread::park_timeout(Duration::from_nanos(deadline - now));
                }
            }
        }
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn relax(&self) {
        thread::yield_now();
    }
}

/// A hosted machine: `n` CPU threads, each driving its executor until `shutdown`.
#[derive(Debug)]
pub struct Machine {
    rt: Runtime,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Machine {
    /// Starts `n_cpus` CPU threads.
    ///
    /// # Panics
    /// If `n_cpus` is 0 or above `MAX_CPUS`, or a thread cannot be spawned.
    pub fn start(n_cpus: usize) -> Machine {
        crate::set_context_hook(with_current);
        let table = StdArc::new(OnceLock::new());
        let platform = HostedPlatform {
            n: n_cpus,
            threads: table.clone(),
            epoch: Instant::now(),
        };
        let rt = Runtime::new(Box::new(platform));
        let threads: Vec<_> = (0..n_cpus)
            .map(|cpu| {
                let rt = rt.clone();
                let table = table.clone();
                thread::Builder::new()
                    .name(std::format!("cpu{cpu}"))
                    .spawn(move || cpu_main(rt, CpuId(cpu as u32), table))
                    .expect("spawn CPU thread")
            })
            .collect();
        table
            .set(threads.iter().map(|t| t.thread().clone()).collect())
            .expect("thread table set once");
        for t in &threads {
            t.thread().unpark();
        }
        Machine { rt, threads }
    }

    /// Number of CPUs.
    pub fn cpu_count(&self) -> usize {
        self.rt.cpu_count()
    }

    /// The runtime shared by the CPUs.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }

    /// Spawns `future` on `cpu` from this (non-CPU) thread.
    ///
    /// # Errors
    /// `NoSuchCpu` if the machine has no such CPU; `ShuttingDown`.
    pub fn spawn_on<F>(&self, cpu: CpuId, future: F) -> Result<JoinHandle<F::Output>, SpawnError>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.rt.spawn_on(cpu, future)
    }

    /// Runs `future` as a task on `cpu` and blocks the calling thread until it finishes.
    ///
    /// # Panics
    /// If `cpu` does not exist, the task is cancelled before finishing, or the caller is a
    /// CPU thread (blocking a CPU on its own work would deadlock; `.await` instead).
    pub fn block_on<F>(&self, cpu: CpuId, future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let handle = self
            .spawn_on(cpu, future)
            .unwrap_or_else(|e| panic!("Machine::block_on on {cpu}: {e}"));
        block_on_thread(handle)
            .unwrap_or_else(|_| panic!("Machine::block_on: task on {cpu} was cancelled"))
    }

    /// Sends an IPI message to `cpu` from this (non-CPU) thread (through its inbox).
    ///
    /// # Errors
    /// `NoSuchCpu`.
    pub fn ipi_send(&self, cpu: CpuId, msg: IpiMsg) -> Result<(), SpawnError> {
        self.rt.ipi_send(cpu, msg)
    }

    /// Simulates a device interrupt on `cpu`: `handler(arg)` runs there at its next
    /// interrupt point outside a critical section.
    ///
    /// # Errors
    /// `NoSuchCpu`.
    pub fn raise_interrupt(
        &self,
        cpu: CpuId,
        handler: fn(usize),
        arg: usize,
    ) -> Result<(), SpawnError> {
        self.rt.raise_interrupt(cpu, handler, arg)
    }

    /// Counters of `cpu`.
    ///
    /// # Panics
    /// If `cpu` does not exist.
    pub fn stats(&self, cpu: CpuId) -> CpuStats {
        self.rt.stats(cpu)
    }

    /// Stops every CPU (queued tasks are cancelled) and joins the threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.rt.shutdown();
        if thread::panicking() {
            // A failing test must report, not hang on a CPU thread that is stuck.
            self.threads.clear();
            return;
        }
        for t in self.threads.drain(..) {
            if let Err(panic) = t.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.stop();
    }
}

fn cpu_main(rt: Runtime, cpu: CpuId, table: StdArc<OnceLock<Vec<Thread>>>) {
    while table.get().is_none() {
        thread::park();
    }
    let local = rt.bind(cpu).expect("a fresh machine binds each CPU once");
    CURRENT.with(|cell| {
        if cell.set(local).is_err() {
            panic!("executor: thread bound to two CPUs");
        }
        if let Some(local) = cell.get() {
            local.run();
        }
    });
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: StdArc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        self.0.unpark();
    }
}

/// Blocks the calling (non-CPU) thread on `future`, parking between polls.
///
/// # Panics
/// On a CPU thread: parking a CPU while its own tasks must run would deadlock.
pub fn block_on_thread<F: Future>(future: F) -> F::Output {
    assert!(
        crate::current_cpu_checked().is_none(),
        "executor::hosted: blocking on a CPU thread would deadlock it; use .await"
    );
    let waker = Waker::from(StdArc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

#[cfg(test)]
mod tests {
    use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// A one-CPU runtime whose CPU is the calling thread (as the boot CPU is in the
    /// kernel), driven with `run_until` while a task elsewhere sets the stop flag.
    #[test]
    fn run_until_runs_local_tasks_and_returns_when_stopped() {
        crate::set_context_hook(with_current);
        let table = StdArc::new(OnceLock::new());
        table.set(std::vec![thread::current()]).unwrap();
        let rt = Runtime::new(Box::new(HostedPlatform {
            n: 1,
            threads: table,
            epoch: Instant::now(),
        }));
        let local = rt.bind(CpuId(0)).unwrap();
        CURRENT.with(|cell| assert!(cell.set(local).is_ok()));
        static RAN: AtomicUsize = AtomicUsize::new(0);
        static STOP: AtomicBool = AtomicBool::new(false);
        for _ in 0..3 {
            rt.spawn_on(CpuId(0), async {
                RAN.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        }
        // Set from another thread without waking this CPU: only the poll bound helps.
        let setter = thread::spawn(|| {
            thread::sleep(Duration::from_millis(20));
            STOP.store(true, Ordering::SeqCst);
        });
        let started = Instant::now();
        CURRENT.with(|cell| {
            let local = cell.get().unwrap();
            local.run_until(&mut || STOP.load(Ordering::SeqCst), 1_000_000);
        });
        setter.join().unwrap();
        assert_eq!(
            RAN.load(Ordering::SeqCst),
            3,
            "queued tasks ran before the stop"
        );
        assert!(STOP.load(Ordering::SeqCst));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "run_until noticed the stop flag late"
        );
    }
}
