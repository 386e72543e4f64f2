//! Spawn-and-complete benchmark: one CPU spawns a batch of trivial tasks and awaits them
//! all, repeatedly. Ours vs tokio current-thread vs async-executor (smol) vs
//! embassy-executor's std platform, side by side in one run.
//!
//! Run: `cargo bench -p executor --features bench-peers --bench spawn`
//!
//! Every executor runs the same shape, for batch sizes 1024 and 1: `TOTAL / batch` times,
//! spawn `batch` tasks whose body is empty, then wait for all of them (join handles where the executor has them; embassy has
//! none, so its tasks bump a counter the driver waits on). The clock runs inside the
//! executor's own thread, so start-up is excluded. Reported: median ns per task of
//! `SAMPLES` samples after a warm-up sample.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::time::Instant;

use executor::CpuId;
use executor::hosted::{Machine, block_on_thread};

/// Tasks per sample (in `TOTAL / batch` rounds).
const TOTAL: usize = 100 * 1024;
const SAMPLES: usize = 7;
const OPS: f64 = TOTAL as f64;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn measure(name: &str, mut sample: impl FnMut() -> f64) -> (String, f64) {
    sample(); // warm-up
    let ns = median((0..SAMPLES).map(|_| sample()).collect());
    (name.to_string(), ns)
}

// --- ours ------------------------------------------------------------------------------

fn ours(m: &Machine, batch: usize) -> f64 {
    m.block_on(CpuId(0), async move {
        let mut handles = Vec::with_capacity(batch);
        let start = Instant::now();
        for _ in 0..TOTAL / batch {
            handles.extend((0..batch).map(|_| executor::spawn(async {})));
            for h in handles.drain(..) {
                h.await.unwrap();
            }
        }
        start.elapsed().as_nanos() as f64 / OPS
    })
}

// --- tokio current-thread ----------------------------------------------------------------

fn tokio_current_thread(rt: &tokio::runtime::Runtime, batch: usize) -> f64 {
    rt.block_on(async move {
        let mut handles = Vec::with_capacity(batch);
        let start = Instant::now();
        for _ in 0..TOTAL / batch {
            handles.extend((0..batch).map(|_| tokio::spawn(async {})));
            for h in handles.drain(..) {
                h.await.unwrap();
            }
        }
        start.elapsed().as_nanos() as f64 / OPS
    })
}

// --- async-executor (smol) --------------------------------------------------------------

fn smol_executor(ex: &async_executor::Executor<'static>, batch: usize) -> f64 {
    block_on_thread(ex.run(async move {
        let mut tasks = Vec::with_capacity(batch);
        let start = Instant::now();
        for _ in 0..TOTAL / batch {
            tasks.extend((0..batch).map(|_| ex.spawn(async {})));
            for t in tasks.drain(..) {
                t.await;
            }
        }
        start.elapsed().as_nanos() as f64 / OPS
    }))
}

fn smol_local_executor(ex: &async_executor::LocalExecutor<'static>, batch: usize) -> f64 {
    block_on_thread(ex.run(async move {
        let mut tasks = Vec::with_capacity(batch);
        let start = Instant::now();
        for _ in 0..TOTAL / batch {
            tasks.extend((0..batch).map(|_| ex.spawn(async {})));
            for t in tasks.drain(..) {
                t.await;
            }
        }
        start.elapsed().as_nanos() as f64 / OPS
    }))
}

// --- embassy-executor (std platform) -----------------------------------------------------

static EMBASSY_DONE: AtomicUsize = AtomicUsize::new(0);

#[embassy_executor::task(pool_size = 1024)]
async fn embassy_trivial() {
    EMBASSY_DONE.fetch_add(1, Ordering::Relaxed);
}

struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

// One slot per sample: a finished driver slot is not reused across executors here.
#[embassy_executor::task(pool_size = 32)]
async fn embassy_driver(
    spawner: embassy_executor::Spawner,
    batch: usize,
    result: mpsc::Sender<f64>,
) {
    EMBASSY_DONE.store(0, Ordering::Relaxed);
    let start = Instant::now();
    for round in 1..=TOTAL / batch {
        for _ in 0..batch {
            spawner.spawn(embassy_trivial().expect("pool slot free"));
        }
        while EMBASSY_DONE.load(Ordering::Relaxed) < round * batch {
            YieldOnce(false).await;
        }
    }
    let _ = result.send(start.elapsed().as_nanos() as f64 / OPS);
}

fn embassy(batch: usize) -> f64 {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ex: &'static mut embassy_executor::Executor =
            Box::leak(Box::new(embassy_executor::Executor::new()));
        let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx2, rx2) = mpsc::channel();
        let f = finished.clone();
        std::thread::spawn(move || {
            let v: f64 = rx2.recv().unwrap();
            f.store(true, Ordering::SeqCst);
            tx.send(v).unwrap();
        });
        ex.run_until(
            |spawner| spawner.spawn(embassy_driver(spawner, batch, tx2).expect("driver slot")),
            move || finished.load(Ordering::SeqCst),
        );
    });
    rx.recv().unwrap()
}

fn main() {
    let machine = Machine::start(1);
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let smol: &'static async_executor::Executor<'static> =
        Box::leak(Box::new(async_executor::Executor::new()));
    let smol_local: &'static async_executor::LocalExecutor<'static> =
        Box::leak(Box::new(async_executor::LocalExecutor::new()));

    println!(
        "spawn + run to completion of a trivial task, {TOTAL} tasks per sample, median of {SAMPLES}"
    );
    for batch in [1024, 1] {
        let rows = [
            measure("damselfly executor (hosted, 1 CPU)", || {
                ours(&machine, batch)
            }),
            measure("tokio current_thread", || {
                tokio_current_thread(&tokio_rt, batch)
            }),
            measure("async-executor Executor", || smol_executor(smol, batch)),
            measure("async-executor LocalExecutor", || {
                smol_local_executor(smol_local, batch)
            }),
            measure("embassy-executor platform-std", || embassy(batch)),
        ];
        let ours_ns = rows[0].1;
        println!();
        if batch == 1 {
            println!("batch of 1 (spawn one task, await it, repeat):");
        } else {
            println!("batch of {batch} (spawn {batch} tasks, then await them all):");
        }
        println!();
        println!("| executor | ns/task | time vs ours |");
        println!("|---|---:|---:|");
        for (name, ns) in &rows {
            println!("| {name} | {ns:.1} | {:.2}x |", ns / ours_ns);
        }
    }
    drop(machine);
}
