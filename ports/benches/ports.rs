// SPDX-License-Identifier: MIT OR Apache-2.0
//! Port benchmarks, each run side by side with its peers in one process.
//!
//! Run: `cargo bench -p ports --bench ports` (set `PORTS_BENCH_SCALE=0.1` for a quick
//! run). Contenders run interleaved, one round each in turn; every figure is the median
//! of `ROUNDS` rounds of `n` operations, in ns per operation; ratios are peer / ports (above 1.0 = ports is faster) except for the
//! inline call, which is ports / floor (the cost over a plain trait-object call).
//!
//! 2. wake-to-poll on one CPU: a ping-pong round trip between two tasks (two wake-ups
//!    and two polls) through a port, vs tokio current-thread with oneshot and mpsc.
//! 3. cross-CPU round trip: two CPUs ping-ponging through a port, vs tokio multi-thread
//!    (two workers) with mpsc, vs two threads with crossbeam channels.
//! 4. inline `call` vs a plain call through a trait object (the floor).

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use executor::CpuId;
use executor::hosted::Machine;
use ports::{AlwaysQueue, Handled, Port, ReplyPort, Server};

const ROUNDS: usize = 11;

fn scale(n: u64) -> u64 {
    let factor: f64 = std::env::var("PORTS_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * factor) as u64).max(100)
}

/// Median ns/op of `ROUNDS` runs of `round(n)`, where `round` returns elapsed ns.
/// Side by side: runs one round of every contender in turn, `ROUNDS` times (so a burst of
/// load from other processes hits all of them alike), and returns each one's median
/// ns/op. A round of `n` operations returns its elapsed ns.
fn compare(n: u64, contenders: &mut [&mut dyn FnMut(u64) -> u64]) -> Vec<f64> {
    for round in contenders.iter_mut() {
        round(n / 10); // warm-up
    }
    let mut samples = vec![Vec::new(); contenders.len()];
    for _ in 0..ROUNDS {
        for (i, round) in contenders.iter_mut().enumerate() {
            samples[i].push(round(n) as f64 / n as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(|a, b| a.partial_cmp(b).unwrap());
            s[ROUNDS / 2]
        })
        .collect()
}

fn elapsed_ns(start: Instant) -> u64 {
    start.elapsed().as_nanos() as u64
}

async fn echo_server(mut server: Server<u64>) {
    loop {
        let mut req = server.recv().await;
        *req.msg_mut() += 1;
        req.reply();
    }
}

// ---------------------------------------------------------------------------------------
// 2. wake-to-poll latency on one CPU
// ---------------------------------------------------------------------------------------

fn ports_one_cpu_call(machine: &Machine, n: u64) -> u64 {
    let (port, server) = Port::<u64>::executor(CpuId(0), AlwaysQueue);
    machine.block_on(CpuId(0), async move {
        let server = executor::spawn(echo_server(server));
        let start = Instant::now();
        let mut x = 0;
        for _ in 0..n {
            x = port.call(x).await.unwrap();
        }
        let ns = elapsed_ns(start);
        assert_eq!(x, n);
        server.cancel();
        ns
    })
}

fn ports_one_cpu_send(machine: &Machine, n: u64) -> u64 {
    let (port, server) = Port::<u64>::executor(CpuId(0), AlwaysQueue);
    machine.block_on(CpuId(0), async move {
        let server = executor::spawn(echo_server(server));
        let mut reply_port = ReplyPort::new();
        let start = Instant::now();
        let mut x = 0;
        for _ in 0..n {
            port.send(x, &reply_port);
            x = reply_port.recv().await.unwrap();
        }
        let ns = elapsed_ns(start);
        assert_eq!(x, n);
        server.cancel();
        ns
    })
}

fn tokio_current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

fn tokio_oneshot_pingpong(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    rt.block_on(async move {
        let (req_tx, mut req_rx) =
            tokio::sync::mpsc::unbounded_channel::<(u64, tokio::sync::oneshot::Sender<u64>)>();
        let server = tokio::spawn(async move {
            while let Some((x, reply)) = req_rx.recv().await {
                let _ = reply.send(x + 1);
            }
        });
        // The caller waits in its own task so that each hop is a task wake-up.
        let client = tokio::spawn(async move {
            let start = Instant::now();
            let mut x = 0;
            for _ in 0..n {
                let (tx, rx) = tokio::sync::oneshot::channel();
                req_tx.send((x, tx)).unwrap();
                x = rx.await.unwrap();
            }
            assert_eq!(x, n);
            elapsed_ns(start)
        });
        let ns = client.await.unwrap();
        server.abort();
        ns
    })
}

fn tokio_mpsc_pingpong(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    rt.block_on(async move {
        let (req_tx, mut req_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let (rep_tx, mut rep_rx) = tokio::sync::mpsc::channel::<u64>(1);
        let server = tokio::spawn(async move {
            while let Some(x) = req_rx.recv().await {
                if rep_tx.send(x + 1).await.is_err() {
                    break;
                }
            }
        });
        let client = tokio::spawn(async move {
            let start = Instant::now();
            let mut x = 0;
            for _ in 0..n {
                req_tx.send(x).await.unwrap();
                x = rep_rx.recv().await.unwrap();
            }
            assert_eq!(x, n);
            elapsed_ns(start)
        });
        let ns = client.await.unwrap();
        server.abort();
        ns
    })
}

// ---------------------------------------------------------------------------------------
// 3. cross-CPU round trip
// ---------------------------------------------------------------------------------------

fn ports_cross_cpu_call(machine: &Machine, n: u64) -> u64 {
    let (port, server) = Port::<u64>::executor(CpuId(1), AlwaysQueue);
    machine.block_on(CpuId(0), async move {
        let server = executor::spawn_on(CpuId(1), echo_server(server)).unwrap();
        let start = Instant::now();
        let mut x = 0;
        for _ in 0..n {
            x = port.call(x).await.unwrap();
        }
        let ns = elapsed_ns(start);
        assert_eq!(x, n);
        server.cancel();
        ns
    })
}

fn ports_cross_cpu_inline_handler(machine: &Machine, n: u64) -> u64 {
    // The remote handler completes in the IPI itself: no server task on CPU1.
    let (port, _server) = Port::<u64>::executor(CpuId(1), |x: u64| Handled::Done(x + 1));
    machine.block_on(CpuId(0), async move {
        let start = Instant::now();
        let mut x = 0;
        for _ in 0..n {
            x = port.call(x).await.unwrap();
        }
        let ns = elapsed_ns(start);
        assert_eq!(x, n);
        ns
    })
}

/// Also counts the round trips whose two halves ran on different worker threads: tokio's
/// scheduler is free to keep both tasks on one worker, which makes it a one-thread
/// ping-pong.
fn tokio_multi_thread_mpsc(rt: &tokio::runtime::Runtime, n: u64, cross_thread: &AtomicU64) -> u64 {
    rt.block_on(async move {
        let (req_tx, mut req_rx) = tokio::sync::mpsc::channel::<(u64, std::thread::ThreadId)>(1);
        let (rep_tx, mut rep_rx) = tokio::sync::mpsc::channel::<(u64, bool)>(1);
        let server = tokio::spawn(async move {
            while let Some((x, from)) = req_rx.recv().await {
                let crossed = from != std::thread::current().id();
                if rep_tx.send((x + 1, crossed)).await.is_err() {
                    break;
                }
            }
        });
        let client = tokio::spawn(async move {
            let start = Instant::now();
            let mut x = 0;
            let mut crossed = 0;
            for _ in 0..n {
                req_tx.send((x, std::thread::current().id())).await.unwrap();
                let (y, c) = rep_rx.recv().await.unwrap();
                x = y;
                crossed += c as u64;
            }
            assert_eq!(x, n);
            (elapsed_ns(start), crossed)
        });
        let (ns, crossed) = client.await.unwrap();
        cross_thread.fetch_add(crossed, Ordering::Relaxed);
        server.abort();
        ns
    })
}

/// A one-slot mailbox with a plain waker: the least a wake-up hand-off can cost, used to
/// attribute a round trip between the executor (or tokio) and the port on top of it.
struct Slot {
    value: spin::Mutex<(Option<u64>, Option<Waker>)>,
}

impl Slot {
    fn new() -> std::sync::Arc<Slot> {
        std::sync::Arc::new(Slot {
            value: spin::Mutex::new((None, None)),
        })
    }

    fn put(&self, x: u64) {
        let waker = {
            let mut v = self.value.lock();
            v.0 = Some(x);
            v.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    async fn take(&self) -> u64 {
        std::future::poll_fn(|cx| {
            let mut v = self.value.lock();
            match v.0.take() {
                Some(x) => Poll::Ready(x),
                None => {
                    v.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }
}

/// The two halves of a slot ping-pong: the client's timed loop and the echo task.
async fn slot_client(ping: std::sync::Arc<Slot>, pong: std::sync::Arc<Slot>, n: u64) -> u64 {
    let start = Instant::now();
    let mut x = 0;
    for _ in 0..n {
        ping.put(x);
        x = pong.take().await;
    }
    let ns = elapsed_ns(start);
    assert_eq!(x, n);
    ns
}

async fn slot_echo(ping: std::sync::Arc<Slot>, pong: std::sync::Arc<Slot>, n: u64) {
    for _ in 0..n {
        let x = ping.take().await;
        pong.put(x + 1);
    }
}

/// The executor alone: two tasks ping-ponging through slots, the echo task on `echo_cpu`.
fn executor_wake_floor(machine: &Machine, echo_cpu: CpuId, n: u64) -> u64 {
    let (ping, pong) = (Slot::new(), Slot::new());
    machine.block_on(CpuId(0), async move {
        let echo = executor::spawn_on(echo_cpu, slot_echo(ping.clone(), pong.clone(), n)).unwrap();
        let ns = slot_client(ping, pong, n).await;
        echo.await.unwrap();
        ns
    })
}

/// Tokio current-thread alone: the same slot ping-pong between two tokio tasks.
fn tokio_wake_floor(rt: &tokio::runtime::Runtime, n: u64) -> u64 {
    let (ping, pong) = (Slot::new(), Slot::new());
    rt.block_on(async move {
        let echo = tokio::spawn(slot_echo(ping.clone(), pong.clone(), n));
        let ns = tokio::spawn(slot_client(ping, pong, n)).await.unwrap();
        echo.await.unwrap();
        ns
    })
}

/// Tokio with the two tasks pinned to two threads: one current-thread runtime per thread,
/// mpsc between them (the multi-thread runtime above mostly keeps both on one worker).
fn tokio_two_runtimes_mpsc(n: u64) -> u64 {
    let (req_tx, mut req_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let (rep_tx, mut rep_rx) = tokio::sync::mpsc::channel::<u64>(1);
    let server = std::thread::spawn(move || {
        tokio_current_thread().block_on(async move {
            while let Some(x) = req_rx.recv().await {
                if rep_tx.send(x + 1).await.is_err() {
                    break;
                }
            }
        })
    });
    let ns = tokio_current_thread().block_on(async move {
        let start = Instant::now();
        let mut x = 0;
        for _ in 0..n {
            req_tx.send(x).await.unwrap();
            x = rep_rx.recv().await.unwrap();
        }
        assert_eq!(x, n);
        elapsed_ns(start)
    });
    server.join().unwrap();
    ns
}

fn crossbeam_threads(n: u64) -> u64 {
    let (req_tx, req_rx) = crossbeam_channel::bounded::<u64>(1);
    let (rep_tx, rep_rx) = crossbeam_channel::bounded::<u64>(1);
    let server = std::thread::spawn(move || {
        while let Ok(x) = req_rx.recv() {
            rep_tx.send(x + 1).unwrap();
        }
    });
    let start = Instant::now();
    let mut x = 0;
    for _ in 0..n {
        req_tx.send(x).unwrap();
        x = rep_rx.recv().unwrap();
    }
    let ns = elapsed_ns(start);
    assert_eq!(x, n);
    drop(req_tx);
    server.join().unwrap();
    ns
}

// ---------------------------------------------------------------------------------------
// 4. inline call vs a trait-object call
// ---------------------------------------------------------------------------------------

trait Service {
    fn handle(&self, x: u64) -> u64;
}

struct AddOne;

impl Service for AddOne {
    #[inline(never)]
    fn handle(&self, x: u64) -> u64 {
        x + 1
    }
}

/// Polls a call once with a no-op waker, as an `.await` on an inline port does.
#[inline(always)]
fn call_once(port: &Port<u64>, x: u64) -> u64 {
    let mut call = pin!(port.call(x));
    match call.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(reply) => reply.unwrap(),
        Poll::Pending => unreachable!("inline port"),
    }
}

/// The floor, run as a task on the same hosted CPU as the port calls it is compared with.
fn trait_object_floor(machine: &Machine, n: u64) -> u64 {
    machine.block_on(CpuId(0), async move {
        let service: Box<dyn Service> = Box::new(AddOne);
        let service: &dyn Service = black_box(&*service);
        let start = Instant::now();
        let mut x = 0;
        for _ in 0..n {
            x = service.handle(black_box(x));
        }
        let ns = elapsed_ns(start);
        assert_eq!(x, n);
        ns
    })
}

fn current_cpu_alone(machine: &Machine, n: u64) -> u64 {
    machine.block_on(CpuId(0), async move {
        let start = Instant::now();
        let mut x = 0;
        for _ in 0..n {
            x += black_box(executor::current_cpu_checked()).map_or(0, |c| c.0 as u64 + 1);
        }
        let ns = elapsed_ns(start);
        assert_eq!(x, n);
        ns
    })
}

fn inline_call_on_cpu(machine: &Machine, port: Port<u64>, n: u64) -> u64 {
    machine.block_on(CpuId(0), async move {
        let port = black_box(&port);
        let start = Instant::now();
        let mut x = 0;
        for _ in 0..n {
            x = call_once(port, black_box(x));
        }
        let ns = elapsed_ns(start);
        assert_eq!(x, n);
        ns
    })
}

// ---------------------------------------------------------------------------------------

fn row(name: &str, ns: f64, ratio: &str) {
    println!("| {name:<64} | {ns:>9.1} | {ratio:>28} |");
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this as a smoke test.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let n = |full: u64| if smoke { 200 } else { scale(full) };
    // `PORTS_BENCH_ONLY=4` runs one section.
    let only = std::env::var("PORTS_BENCH_ONLY").ok();
    let run = |section: &str| only.as_deref().is_none_or(|o| o == section);

    println!("| benchmark | ns/op | ratio |\n|---|---:|---:|");
    if run("2") {
        one_cpu(n);
    }
    if run("3") {
        cross_cpu(n);
    }
    if run("4") {
        inline(n);
    }
}

fn one_cpu(n: impl Fn(u64) -> u64) {
    let one = Machine::start(1);
    let rt = tokio_current_thread();
    let r = compare(
        n(200_000),
        &mut [
            &mut |n| ports_one_cpu_call(&one, n),
            &mut |n| ports_one_cpu_send(&one, n),
            &mut |n| tokio_oneshot_pingpong(&rt, n),
            &mut |n| tokio_mpsc_pingpong(&rt, n),
            &mut |n| executor_wake_floor(&one, CpuId(0), n),
            &mut |n| tokio_wake_floor(&rt, n),
        ],
    );
    let (p_call, p_send, t_oneshot, t_mpsc, e_floor, t_floor) =
        (r[0], r[1], r[2], r[3], r[4], r[5]);
    drop(rt);
    drop(one);
    let vs = |ns: f64| format!("{:.2} x ports call", ns / p_call);
    row(
        "2. one CPU round trip: ports call (server task)",
        p_call,
        "1.00",
    );
    row(
        "2. one CPU round trip: ports send + reply port",
        p_send,
        &vs(p_send),
    );
    row(
        "2. one CPU round trip: tokio current-thread, oneshot",
        t_oneshot,
        &vs(t_oneshot),
    );
    row(
        "2. one CPU round trip: tokio current-thread, mpsc",
        t_mpsc,
        &vs(t_mpsc),
    );
    row(
        "2. (attribution) executor alone: slot + waker ping-pong, no port",
        e_floor,
        &vs(e_floor),
    );
    row(
        "2. (attribution) tokio current-thread alone: same slot ping-pong",
        t_floor,
        &vs(t_floor),
    );
}

fn cross_cpu(n: impl Fn(u64) -> u64) {
    // 3. two CPUs
    let two = Machine::start(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let crossed = AtomicU64::new(0);
    let r = compare(
        n(100_000),
        &mut [
            &mut |n| ports_cross_cpu_call(&two, n),
            &mut |n| ports_cross_cpu_inline_handler(&two, n),
            &mut |n| tokio_multi_thread_mpsc(&rt, n, &crossed),
            &mut tokio_two_runtimes_mpsc,
            &mut crossbeam_threads,
            &mut |n| executor_wake_floor(&two, CpuId(1), n),
        ],
    );
    let (x_call, x_inline, x_tokio, x_tokio2, x_crossbeam, x_floor) =
        (r[0], r[1], r[2], r[3], r[4], r[5]);
    let total = ROUNDS as u64 * n(100_000) + n(100_000) / 10;
    drop(rt);
    drop(two);
    let vs = |ns: f64| format!("{:.2} x ports call", ns / x_call);
    row(
        "3. cross-CPU round trip: ports call (server task on CPU1)",
        x_call,
        "1.00",
    );
    row(
        "3. cross-CPU round trip: ports call (inline handler in the IPI)",
        x_inline,
        &vs(x_inline),
    );
    row(
        "3. cross-CPU round trip: tokio multi-thread (2 workers), mpsc",
        x_tokio,
        &vs(x_tokio),
    );
    row(
        "3. cross-CPU round trip: tokio, 2 current-thread runtimes on 2 threads, mpsc",
        x_tokio2,
        &vs(x_tokio2),
    );
    row(
        "3. cross-CPU round trip: 2 threads, crossbeam bounded(1)",
        x_crossbeam,
        &vs(x_crossbeam),
    );
    row(
        "3. (attribution) executor alone: remote-wake ping-pong, no port",
        x_floor,
        &vs(x_floor),
    );
    eprintln!(
        "note: tokio ran {:.1}% of its round trips with the two tasks on different worker threads",
        100.0 * crossed.load(Ordering::Relaxed) as f64 / total as f64
    );
}

fn inline(n: impl Fn(u64) -> u64) {
    // 4. inline call
    let one = Machine::start(1);
    let exec_port = Port::<u64>::executor(CpuId(0), |x: u64| Handled::Done(x + 1)).0;
    let fn_port = Port::<u64>::function(|x| x + 1);
    let spin_port = Port::<u64>::spin(|x| x + 1);
    let r = compare(
        n(20_000_000),
        &mut [
            &mut |n| trait_object_floor(&one, n),
            &mut |n| inline_call_on_cpu(&one, fn_port.clone(), n),
            &mut |n| inline_call_on_cpu(&one, exec_port.clone(), n),
            &mut |n| inline_call_on_cpu(&one, spin_port.clone(), n),
            &mut |n| current_cpu_alone(&one, n),
        ],
    );
    let (floor, i_fn, i_exec, i_spin, cpu_id) = (r[0], r[1], r[2], r[3], r[4]);
    drop(one);
    let vs = |ns: f64| format!("{:.2} x floor", ns / floor);
    row(
        "4. inline: plain call through a trait object (floor)",
        floor,
        "1.00",
    );
    row("4. inline: ports call, function port", i_fn, &vs(i_fn));
    row(
        "4. inline: ports call, executor port, handler Done",
        i_exec,
        &vs(i_exec),
    );
    row("4. inline: ports call, spin port", i_spin, &vs(i_spin));
    row(
        "4. (attribution) executor::current_cpu_checked() alone",
        cpu_id,
        &vs(cpu_id),
    );
}
