// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Port`: the three port kinds and the put path (DragonFly's `mp_putport`).
//!
//! Read first: a put either completes inline (the handler ran right here, on the
//! caller's stack: no queueing, no allocation, no task switch) or queues the message in
//! one envelope, and the reply comes later. Which one is the target's decision, made by
//! its handler; callers write the same code either way.
//!
//! Kinds (DragonFly backends in brackets):
//! - executor port [thread port]: bound to one CPU. Its handler runs on that CPU and may
//!   finish a message inline or queue it for the port's `Server` task on the same CPU. A
//!   put from another CPU crosses in the port's inbox and an IPI (`remote.rs`).
//! - spin port [spin port]: a small synchronous handler behind a `spin` lock, run on the
//!   caller's CPU, from any CPU. Always inline.
//! - function port [putonly(fn)]: a put is a direct function call. Always inline.

use alloc::sync::Arc;
use core::fmt;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::Poll;

use crate::call::Call;
use crate::envelope::Envelope;
use crate::error::{PortError, Reply};
use crate::list::List;
use crate::platform::{CpuId, cpu_count, current_cpu_checked};
use crate::remote::{self, Key, RemoteDrain};
use crate::reply_port::ReplyPort;
use crate::server::Server;
use crate::sync::{self, Mutex};

// ===================================================================================
// Handlers
// ===================================================================================

/// What an executor port's handler did with a message.
#[derive(Debug)]
pub enum Handled<M> {
    /// Completed inline: this is the reply (DragonFly: any return other than EASYNC).
    Done(M),
    /// Not now: queue the message for the port's server task (DragonFly: EASYNC).
    Queue(M),
}

/// The inline half of an executor port: decides, per message, "done now" or "queue".
///
/// Implemented for every `Fn(M) -> Handled<M> + Send + Sync + 'static`.
///
/// # Context
/// `put` runs on the port's CPU, inside whatever called into the port: the caller's task
/// for a same-CPU put, the executor's IPI drain for a put from another CPU. It must not
/// block; it may take short spin locks.
pub trait Handler<M>: Send + Sync + 'static {
    /// Completes `msg` now or hands it back to be queued.
    fn put(&self, msg: M) -> Handled<M>;
}

impl<M, F> Handler<M> for F
where
    F: Fn(M) -> Handled<M> + Send + Sync + 'static,
{
    #[inline]
    fn put(&self, msg: M) -> Handled<M> {
        self(msg)
    }
}

/// A handler that queues every message: a plain server port (DragonFly's thread port).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysQueue;

impl<M> Handler<M> for AlwaysQueue {
    #[inline]
    fn put(&self, msg: M) -> Handled<M> {
        Handled::Queue(msg)
    }
}

// ===================================================================================
// Executor ports
// ===================================================================================

/// Queue of messages waiting for the server task.
pub(crate) struct Local<M> {
    pub(crate) queue: List<M>,
    pub(crate) server: Option<core::task::Waker>,
}

/// An executor port. The handler is the last field so that `ExecPort<M, H>` unsizes to
/// `ExecPort<M, dyn Handler<M>>`: one indirection to the handler, not two.
pub(crate) struct ExecPort<M, H: ?Sized = dyn Handler<M>> {
    pub(crate) cpu: CpuId,
    key: Key,
    /// Set (under `local`'s lock) when the server is dropped.
    pub(crate) closed: AtomicBool,
    pub(crate) local: Mutex<Local<M>>,
    /// Messages put from other CPUs, drained on `cpu` by `put_remote`.
    remote: Mutex<List<M>>,
    /// Set while `drain_remote` runs (only ever touched on `cpu`). An IPI sent from
    /// inside the drain may drain this CPU's incoming IPIs, including another
    /// `put_remote` for this port: that nested call must leave the newer messages to the
    /// outer loop, or they would overtake older ones of the same sender.
    draining: AtomicBool,
    handler: H,
}

/// Where a put goes after the inline attempt.
pub(crate) enum Attempt<M> {
    /// Finished inline (or bounced): here is the reply.
    Done(Reply<M>),
    /// Queue on the port's own CPU.
    Local(M),
    /// Carry to the port's CPU through its inbox and an IPI.
    Remote(M),
}

impl<M: Send + 'static, H: ?Sized + Handler<M>> ExecPort<M, H> {
    /// Runs the inline half on the current CPU, or says where the message must go.
    #[inline]
    fn try_inline(&self, msg: M) -> Attempt<M> {
        match current_cpu_checked() {
            Some(cpu) if cpu == self.cpu => match self.handler.put(msg) {
                Handled::Done(msg) => Attempt::Done(Ok(msg)),
                Handled::Queue(msg) => Attempt::Local(msg),
            },
            Some(_) if self.cpu.index() < cpu_count() => Attempt::Remote(msg),
            Some(_) => Attempt::Done(Err((PortError::NoSuchCpu, msg))),
            None => Attempt::Done(Err((PortError::NotOnCpu, msg))),
        }
    }

    /// Links `env` for the server and wakes it; bounces it if the server is gone.
    pub(crate) fn enqueue_local(&self, env: sync::Arc<Envelope<M>>) {
        let mut local = self.local.lock();
        if self.closed.load(Ordering::Relaxed) {
            drop(local);
            bounce(env, PortError::Closed);
            return;
        }
        local.queue.push_back(env);
        let server = local.server.take();
        drop(local);
        if let Some(waker) = server {
            waker.wake();
        }
    }

    /// Links `env` into the inbox; the first message of a batch sends the IPI.
    pub(crate) fn enqueue_remote(&self, env: sync::Arc<Envelope<M>>) {
        let mut remote = self.remote.lock();
        let was_empty = remote.is_empty();
        remote.push_back(env);
        drop(remote);
        if was_empty {
            remote::kick(self.cpu, self.key);
        }
    }
}

impl<M: Send + 'static, H: ?Sized + Handler<M>> RemoteDrain for ExecPort<M, H> {
    fn drain_remote(&self) {
        debug_assert_eq!(
            current_cpu_checked(),
            Some(self.cpu),
            "ports: inbox drained on the wrong CPU"
        );
        if self.draining.swap(true, Ordering::Relaxed) {
            return; // nested in our own drain: the outer loop takes the new messages
        }
        // Take a whole batch per lock hold, and loop until the inbox stays empty: a put
        // that arrives meanwhile is served by this loop (its IPI then finds nothing).
        loop {
            let mut batch = self.remote.lock().take_all();
            if batch.is_empty() {
                break;
            }
            while let Some(env) = batch.pop_front() {
                let Some(msg) = env.take_msg() else {
                    debug_assert!(false, "ports: a message in the inbox was not queued");
                    continue;
                };
                match self.handler.put(msg) {
                    Handled::Done(msg) => Envelope::complete(env, Ok(msg)),
                    Handled::Queue(msg) => {
                        env.put_back(msg);
                        self.enqueue_local(env);
                    }
                }
            }
        }
        self.draining.store(false, Ordering::Relaxed);
    }
}

impl<M, H: ?Sized> Drop for ExecPort<M, H> {
    fn drop(&mut self) {
        remote::unregister(self.key);
        // Nobody can serve these any more: hand every message back to its originator.
        let mut inbox = self.remote.lock().take_all();
        let mut queued = self.local.lock().queue.take_all();
        while let Some(env) = inbox.pop_front().or_else(|| queued.pop_front()) {
            bounce(env, PortError::Closed);
        }
    }
}

/// Completes a queued envelope with `error`, handing the message back.
pub(crate) fn bounce<M>(env: sync::Arc<Envelope<M>>, error: PortError) {
    if let Some(msg) = env.take_msg() {
        Envelope::complete(env, Err((error, msg)));
    }
}

// ===================================================================================
// Port handles
// ===================================================================================

type SpinHandler<M> = spin::Mutex<dyn FnMut(M) -> M + Send>;
type FunctionHandler<M> = dyn Fn(M) -> M + Send + Sync;

/// The kinds. An enum rather than one `dyn` target: the benchmark of the inline path
/// (`benches/ports.rs`, section 4) measured the enum faster, because a function port's
/// handler then returns its `M` in registers instead of an `Attempt` through memory.
enum Kind<M> {
    Executor(Arc<ExecPort<M>>),
    Spin(Arc<SpinHandler<M>>),
    Function(Arc<FunctionHandler<M>>),
    /// One member per CPU; a put goes to the caller's CPU's member.
    PerCpu(Arc<[Port<M>]>),
}

/// A message port: where requests of type `M` are put. Cheap to clone (one `Arc`).
///
/// `M` is the whole message: its arguments, its buffers and, once replied, its results.
/// It has exactly one owner at any time: the originator until a put, the port or its
/// target while in flight, the originator again after the reply.
pub struct Port<M> {
    kind: Kind<M>,
}

impl<M> Clone for Port<M> {
    fn clone(&self) -> Self {
        Self {
            kind: match &self.kind {
                Kind::Executor(port) => Kind::Executor(port.clone()),
                Kind::Spin(handler) => Kind::Spin(handler.clone()),
                Kind::Function(handler) => Kind::Function(handler.clone()),
                Kind::PerCpu(members) => Kind::PerCpu(members.clone()),
            },
        }
    }
}

impl<M> fmt::Debug for Port<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Executor(port) => f
                .debug_struct("Port")
                .field("kind", &"executor")
                .field("cpu", &port.cpu)
                .finish(),
            Kind::Spin(_) => f.debug_struct("Port").field("kind", &"spin").finish(),
            Kind::Function(_) => f.debug_struct("Port").field("kind", &"function").finish(),
            Kind::PerCpu(members) => f
                .debug_struct("Port")
                .field("kind", &"per-cpu")
                .field("members", &members.len())
                .finish(),
        }
    }
}

impl<M: Send + 'static> Port<M> {
    /// Creates an executor port on `cpu`, served by `handler` inline and by the returned
    /// [`Server`] for the messages the handler queues.
    ///
    /// The server must be driven by a task on `cpu` (spawn it with `executor::spawn_on`).
    /// Whether `cpu` exists is checked at each put ([`PortError::NoSuchCpu`]), so ports
    /// can be created before the CPUs are started.
    ///
    /// # Cancel safety
    /// Not a future; creates the port with no message in it.
    ///
    /// # Context
    /// Any CPU; allocates the port and takes the port registry's write lock.
    pub fn executor<H: Handler<M>>(cpu: CpuId, handler: H) -> (Port<M>, Server<M>) {
        let exec: Arc<ExecPort<M, H>> =
            Arc::new_cyclic(|weak: &alloc::sync::Weak<ExecPort<M, H>>| {
                let weak: alloc::sync::Weak<dyn RemoteDrain> = weak.clone();
                ExecPort {
                    cpu,
                    key: remote::register(weak),
                    closed: AtomicBool::new(false),
                    local: Mutex::new(Local {
                        queue: List::new(),
                        server: None,
                    }),
                    remote: Mutex::new(List::new()),
                    draining: AtomicBool::new(false),
                    handler,
                }
            });
        let exec: Arc<ExecPort<M>> = exec;
        let port = Port {
            kind: Kind::Executor(exec.clone()),
        };
        (port.clone(), Server::new(exec, port))
    }

    /// Creates a spin port: `handler` runs under a spin lock on the caller's CPU, from
    /// any CPU, and always completes inline.
    ///
    /// Keep the handler tiny, and do not put to a port from inside it: every CPU that
    /// puts to the port spins while it runs.
    ///
    /// # Cancel safety
    /// Not a future; creates the port with no message in it.
    ///
    /// # Context
    /// Any CPU; allocates the port.
    pub fn spin(handler: impl FnMut(M) -> M + Send + 'static) -> Port<M> {
        let handler: Arc<SpinHandler<M>> = Arc::new(spin::Mutex::new(handler));
        Port {
            kind: Kind::Spin(handler),
        }
    }

    /// Creates a function port: a put is a direct call of `handler` on the caller's CPU.
    ///
    /// # Cancel safety
    /// Not a future; creates the port with no message in it.
    ///
    /// # Context
    /// Any CPU; allocates the port.
    pub fn function(handler: impl Fn(M) -> M + Send + Sync + 'static) -> Port<M> {
        let handler: Arc<FunctionHandler<M>> = Arc::new(handler);
        Port {
            kind: Kind::Function(handler),
        }
    }

    /// Creates a per-CPU port from `members`, one per CPU in CPU order: a put, send, call
    /// or forward goes to the member of the CPU it is made on (CPU `c` uses member
    /// `c % members.len()`; off-CPU callers use member 0). So a service that keeps one
    /// executor port and task per CPU (a driver with a queue per CPU, a filesystem
    /// serving block I/O where it is asked) is reached without crossing CPUs, as
    /// DragonFly's per-CPU message ports are, while its users hold one `Port`.
    ///
    /// `None` if `members` is empty.
    ///
    /// # Cancel safety
    /// Not a future; moves no message.
    ///
    /// # Context
    /// Any CPU; allocates the member list.
    pub fn per_cpu(members: alloc::vec::Vec<Port<M>>) -> Option<Port<M>> {
        if members.is_empty() {
            return None;
        }
        Some(Port {
            kind: Kind::PerCpu(members.into()),
        })
    }

    /// The port a message put here from this CPU goes to: the member of this CPU for a
    /// per-CPU port, else the port itself.
    ///
    /// # Cancel safety
    /// Not a future; moves no message.
    ///
    /// # Context
    /// Any CPU; never suspends.
    pub fn local(&self) -> &Port<M> {
        match &self.kind {
            Kind::PerCpu(members) => {
                let cpu = current_cpu_checked().map_or(0, CpuId::index);
                members[cpu % members.len()].local()
            }
            _ => self,
        }
    }

    /// The CPU an executor port is bound to (for a per-CPU port, the CPU of this CPU's
    /// member); `None` for spin and function ports.
    ///
    /// # Cancel safety
    /// Not a future; moves no message.
    ///
    /// # Context
    /// Any CPU; never suspends.
    pub fn cpu(&self) -> Option<CpuId> {
        match &self.local().kind {
            Kind::Executor(port) => Some(port.cpu),
            Kind::Spin(_) | Kind::Function(_) | Kind::PerCpu(_) => None,
        }
    }

    /// The inline attempt: common to `put`, `send`, `call` and `forward`.
    #[inline(always)]
    pub(crate) fn attempt(&self, msg: M) -> Attempt<M> {
        match &self.kind {
            Kind::Executor(port) => port.try_inline(msg),
            Kind::Spin(handler) => Attempt::Done(Ok((handler.lock())(msg))),
            Kind::Function(handler) => Attempt::Done(Ok(handler(msg))),
            Kind::PerCpu(_) => self.local().attempt(msg),
        }
    }

    /// Queues an envelope after `attempt` said `Local` or `Remote`.
    /// (A task stays on its CPU between the two, so a per-CPU port picks the same member.)
    pub(crate) fn enqueue(&self, env: sync::Arc<Envelope<M>>, remote: bool) {
        let Kind::Executor(port) = &self.local().kind else {
            unreachable!("ports: spin and function ports complete every message inline");
        };
        if remote {
            port.enqueue_remote(env)
        } else {
            port.enqueue_local(env)
        }
    }

    /// Puts `msg` to the port (DragonFly's `mp_putport`).
    ///
    /// Returns `Ready(Ok(reply))` when the target completed the message inline: no
    /// queueing, no allocation, no task switch; the reply does *not* go to `reply_port`.
    /// Returns `Ready(Err((error, msg)))` when the port cannot take the message.
    /// Returns `Pending` when the message was queued (one envelope allocation): its reply
    /// will arrive on `reply_port`.
    ///
    /// # Errors
    /// [`PortError::NoSuchCpu`] if the port's CPU does not exist, [`PortError::NotOnCpu`]
    /// if called off-CPU (executor ports only), [`PortError::Closed`] if the port's
    /// server is gone (this one may also arrive later on `reply_port`).
    ///
    /// # Cancel safety
    /// Not a future. Once it returns `Pending` the message belongs to the port, and its
    /// reply is delivered to `reply_port` whatever happens to the caller.
    ///
    /// # Context
    /// Any CPU, any task; never suspends. A same-CPU put to an executor port runs the
    /// handler right here; a spin port takes its spin lock; a cross-CPU put links the
    /// message into the target's inbox and may send one IPI.
    pub fn put(&self, msg: M, reply_port: &ReplyPort<M>) -> Poll<Reply<M>> {
        match self.attempt(msg) {
            Attempt::Done(reply) => Poll::Ready(reply),
            Attempt::Local(msg) => {
                self.enqueue(Envelope::new_send(msg, reply_port.queue().clone()), false);
                Poll::Pending
            }
            Attempt::Remote(msg) => {
                self.enqueue(Envelope::new_send(msg, reply_port.queue().clone()), true);
                Poll::Pending
            }
        }
    }

    /// Sends `msg` (DragonFly's `lwkt_sendmsg`): the reply always arrives on
    /// `reply_port`, also when the target completed it inline, and so do errors.
    ///
    /// Costs exactly one envelope allocation (an inline reply still has to be queued on
    /// the reply port).
    ///
    /// # Cancel safety
    /// Not a future: the message belongs to the port from the moment of the call, and its
    /// reply (or error) is always delivered to `reply_port`.
    ///
    /// # Context
    /// Any CPU, any task; never suspends (see [`Port::put`]).
    pub fn send(&self, msg: M, reply_port: &ReplyPort<M>) {
        if let Poll::Ready(reply) = self.put(msg, reply_port) {
            reply_port.queue().push(Envelope::new_replied(reply));
        }
    }

    /// Sends `msg` and awaits its reply (DragonFly's `lwkt_domsg`).
    ///
    /// Nothing happens until the first poll. The first poll is `Ready` when the target
    /// completes the message inline (no allocation, no task switch); otherwise the message
    /// is queued in one envelope and the future waits for the reply.
    ///
    /// # Errors
    /// The output is `Err((error, msg))` with the message handed back: see [`PortError`].
    ///
    /// # Cancel safety
    /// Dropping the future before its first poll drops the unsent message. Dropping it
    /// while the message is in flight *orphans* the message: an abort is requested (see
    /// [`Call::abort`]), the target keeps the message and its buffers until it replies,
    /// and the reply is then dropped by the replier. Memory the target uses is never
    /// freed early, and nothing leaks.
    ///
    /// # Context
    /// A task on any CPU; suspends only if the message was queued.
    pub fn call(&self, msg: M) -> Call<'_, M> {
        Call::new(self, msg)
    }
}
