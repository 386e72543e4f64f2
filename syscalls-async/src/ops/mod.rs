// SPDX-License-Identifier: MIT OR Apache-2.0
//! Every opcode, one `async fn` each, grouped by subsystem. [`run`] dispatches a decoded
//! [`Request`]; both doors end up here.
//!
//! Operations copy between user memory and kernel `Vec`s ([`UserMemory`]) and never hold a
//! lock across an `.await`.

mod file;
mod memory;
mod port;
mod process;
mod ring;
mod time;

pub(crate) use time::{clock_gettime, deadline_ns};

use alloc::{sync::Arc, vec::Vec};

use abi::Errno;
use abi::ring::{Opcode, Sqe};

use crate::{
    decode::{Request, UserBuf},
    kernel::UserMemory,
    process::Process,
};

/// Performs `request` for `proc`. `Ok` values are the (non-negative) result.
pub(crate) async fn run(proc: &Arc<Process>, request: Request) -> Result<i64, Errno> {
    use Request as R;
    match request {
        R::Read { fd, buf } => file::read(proc, fd, buf, None).await,
        R::Pread { fd, buf, offset } => file::read(proc, fd, buf, Some(offset)).await,
        R::Write { fd, buf } => file::write(proc, fd, buf, None).await,
        R::Pwrite { fd, buf, offset } => file::write(proc, fd, buf, Some(offset)).await,
        R::Openat {
            dir,
            path,
            flags,
            mode,
        } => file::openat(proc, dir, path, flags, mode).await,
        R::Fstat { fd, out } => file::fstat(proc, fd, out).await,
        R::Statat {
            dir,
            path,
            follow,
            empty_path,
            out,
        } => file::statat(proc, dir, path, follow, empty_path, out).await,
        R::Getdents { fd, buf } => file::getdents(proc, fd, buf).await,
        R::Mkdirat { dir, path, mode } => file::mkdirat(proc, dir, path, mode).await,
        R::Unlinkat {
            dir,
            path,
            remove_dir,
        } => file::unlinkat(proc, dir, path, remove_dir).await,
        R::Renameat {
            old_dir,
            old,
            new_dir,
            new,
            no_replace,
        } => file::renameat(proc, old_dir, old, new_dir, new, no_replace).await,
        R::Lseek {
            fd,
            offset,
            whence,
            out,
        } => file::lseek(proc, fd, offset, whence, out).await,
        R::Spawn { args } => process::spawn(proc, args).await,
        R::Wait {
            pid,
            status,
            no_hang,
        } => process::wait(proc, pid, status, no_hang).await,
        R::Exit { status } => process::exit(proc, status).await,
        R::Sleep { deadline } => time::sleep(proc, deadline).await.map(|()| 0),
        R::Timeout { deadline } | R::LinkTimeout { deadline } => {
            time::sleep(proc, deadline).await?;
            Err(Errno::Time)
        }
        R::PortCall { fd, msg, reply } => port::call(proc, fd, msg, reply).await,
        R::PortReceive { fd, buf, token_out } => port::receive(proc, fd, buf, token_out).await,
        R::RingSetup { params } => ring::setup(proc, params),
        R::RingEnter {
            to_submit,
            min_complete,
            flags,
            timeout_ns,
        } => ring::enter(proc, to_submit, min_complete, flags, timeout_ns).await,
        R::Chdir { path } => process::chdir(proc, path).await,
        sync => match run_sync(proc, &sync) {
            Some(result) => result,
            // `run_sync` takes every opcode the arms above do not.
            None => Err(Errno::NoSys),
        },
    }
}

/// Most entries a `RingEnter` may submit when it is started on the trap, interrupts off
/// ([`starts_on_trap`]); a bigger batch is submitted by the thread's task.
pub(crate) const TRAP_RING_BATCH: u32 = 32;

/// `true` for the entries the trap door may start on the trap itself, with interrupts
/// off ([`Process::try_inline`](crate::Process::try_inline)): those whose
/// [`Process::start`](crate::Process::start) is short and bounded. That is the
/// operations [`run_sync`] completes at a small, fixed cost, and a `RingEnter` of at most
/// [`TRAP_RING_BATCH`] entries. Left out: `Kill` (it may end the caller, which must then
/// not return to user mode), the memory-map changes (their cost grows with the range)
/// and `ProcList` (with the process table). Listing an opcode wrongly costs time, not
/// correctness: what `start` cannot finish is handed to the thread's task to wait for.
pub(crate) fn starts_on_trap(sqe: &Sqe) -> bool {
    use Opcode as O;
    match Opcode::from_u8(sqe.opcode) {
        Some(
            O::Nop
            | O::Getpid
            | O::ClockGettime
            | O::Close
            | O::Dup
            | O::Pipe
            | O::Cancel
            | O::PortCreate
            | O::PortSend
            | O::PortReply
            | O::Getcwd
            | O::SysInfo,
        ) => true,
        Some(O::RingEnter) => sqe.len <= TRAP_RING_BATCH,
        _ => false,
    }
}

/// `true` for the opcodes [`run_sync`] never takes (they always need [`run`]'s future),
/// judged on the opcode byte alone, so the ring's inline attempt can pass them over
/// without decoding an entry the general path then decodes again. Only a shortcut: an
/// opcode missing here is decoded twice, one listed wrongly still runs (through `run`).
pub(crate) fn always_waits(opcode: u8) -> bool {
    use Opcode as O;
    matches!(
        Opcode::from_u8(opcode),
        Some(
            O::Read
                | O::Write
                | O::Pread
                | O::Pwrite
                | O::Openat
                | O::Fstat
                | O::Statat
                | O::Getdents
                | O::Mkdirat
                | O::Unlinkat
                | O::Renameat
                | O::Lseek
                | O::Spawn
                | O::Wait
                | O::Sleep
                | O::Timeout
                | O::PortCall
                | O::PortReceive
                | O::Chdir
        )
    )
}

/// Performs `request` at once if it is one of the operations that never wait (`Nop`,
/// `Getpid`, `ClockGettime`, descriptor-table and memory-map changes, port sends and
/// replies, ...); `None` for the others, which need [`run`]. Both doors use it to skip
/// building, polling and dropping a future for the cheap operations.
///
/// # Context
/// Never suspends; takes only leaf locks (descriptor table, ring state, process table).
#[inline]
pub(crate) fn run_sync(proc: &Arc<Process>, request: &Request) -> Option<Result<i64, Errno>> {
    match *request {
        // Answered in the caller: the call below saves and restores the registers its
        // larger arms need, some twenty-five instructions.
        Request::Nop => Some(Ok(0)),
        Request::Getpid { parent } => Some(Ok(proc.pid_of(parent).into())),
        _ => run_sync_args(proc, request),
    }
}

/// [`run_sync`] for the operations other than `Nop`.
#[inline(never)]
fn run_sync_args(proc: &Arc<Process>, request: &Request) -> Option<Result<i64, Errno>> {
    use Request as R;
    Some(match *request {
        R::Nop => Ok(0),
        R::Getpid { parent } => Ok(proc.pid_of(parent).into()),
        R::ClockGettime { clock, out } => time::clock_gettime(proc, clock, out),
        R::Close { fd } => process::close(proc, fd),
        R::Dup {
            fd,
            to,
            close_on_exec,
        } => process::dup(proc, fd, to, close_on_exec),
        R::Pipe {
            out,
            close_on_exec,
            non_blocking,
        } => process::pipe(proc, out, close_on_exec, non_blocking),
        R::Kill { pid, signal } => proc.kernel.kill(proc.pid(), pid, signal).map(|()| 0),
        R::Cancel { user_data } => match proc.ring() {
            Some(ring) => ring.cancel_matching(user_data, None).map(|()| 0),
            None => Err(Errno::NoEnt),
        },
        R::Mmap {
            hint,
            len,
            prot,
            flags,
            out,
        } => memory::mmap(proc, hint, len, prot, flags, out),
        R::Munmap { addr, len } => proc.kernel.munmap(proc.pid(), addr, len).map(|()| 0),
        R::Mprotect { addr, len, prot } => proc
            .kernel
            .mprotect(proc.pid(), addr, len, prot)
            .map(|()| 0),
        R::PortCreate => port::create(proc),
        R::PortSend { fd, msg } => port::send(proc, fd, msg),
        R::PortReply { fd, token, msg } => port::reply(proc, fd, token, msg),
        R::ProcList { out, capacity } => process::proc_list(proc, out, capacity),
        R::Getcwd { buf } => process::getcwd(proc, buf),
        R::SysInfo { out } => process::sys_info(proc, out),
        _ => return None,
    })
}

/// Copies a user buffer into a new `Vec`.
///
/// # Errors
/// `NoMem` if the allocation fails; `Fault` from the copy.
pub(crate) fn copy_in(memory: &dyn UserMemory, buf: UserBuf) -> Result<Vec<u8>, Errno> {
    fs::proto::copy_in(memory, buf.addr, buf.len)
}

/// Copies `data` (at most `buf.len` bytes of it) out to a user buffer.
///
/// # Errors
/// `Fault` from the copy.
pub(crate) fn copy_out(memory: &dyn UserMemory, buf: UserBuf, data: &[u8]) -> Result<(), Errno> {
    let n = data.len().min(buf.len);
    if n == 0 {
        return Ok(());
    }
    memory.copy_to_user(buf.addr, &data[..n])
}
