// SPDX-License-Identifier: MIT OR Apache-2.0
//! `RingSetup` and `RingEnter` (trap door only).

use alloc::{boxed::Box, sync::Arc};

use abi::{
    Errno, RingEnterFlags, RingLayout,
    ring::{RING_SETUP_ALL, RING_SETUP_POLLED},
};

use super::{copy_in, copy_out};
use crate::{decode::UserBuf, process::Process, ring::Ring};

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn setup(proc: &Arc<Process>, params: UserBuf) -> Result<i64, Errno> {
    let p = copy_in(&*proc.memory, params)?;
    let (sq, cq, flags, idle_us) = (le_u32(&p, 0), le_u32(&p, 4), le_u32(&p, 8), le_u32(&p, 12));
    if flags & !RING_SETUP_ALL != 0 || p[48..64].iter().any(|&b| b != 0) {
        return Err(Errno::Inval);
    }
    let layout = RingLayout::new(sq, cq)?;
    if proc.ring.lock().is_some() {
        return Err(Errno::Busy);
    }
    if proc.is_exiting() {
        return Err(Errno::Srch);
    }
    let (addr, region) = proc
        .kernel
        .map_ring(proc.pid(), layout.region_len as usize)?;
    let polled = flags & RING_SETUP_POLLED != 0;
    let ring = Ring::new(proc, layout, addr, region, polled, idle_us as u64 * 1000)?;
    let mut out = [0u8; 64];
    let mut put = |at: usize, v: &[u8]| out[at..at + v.len()].copy_from_slice(v);
    put(0, &layout.sq_entries.to_le_bytes());
    put(4, &layout.cq_entries.to_le_bytes());
    put(8, &flags.to_le_bytes());
    put(12, &idle_us.to_le_bytes());
    put(16, &addr.to_le_bytes());
    put(24, &(layout.region_len as u64).to_le_bytes());
    put(32, &layout.sq_header.to_le_bytes());
    put(36, &layout.cq_header.to_le_bytes());
    put(40, &layout.sqes.to_le_bytes());
    put(44, &layout.cqes.to_le_bytes());
    let installed = {
        let mut slot = proc.ring.lock();
        if slot.is_none() {
            *slot = Some(ring.clone());
            true
        } else {
            false
        }
    };
    if !installed {
        let _ = proc
            .kernel
            .munmap(proc.pid(), addr, layout.region_len as u64);
        return Err(Errno::Busy);
    }
    proc.kernel.spawn_task(Box::pin(ring.clone().run()));
    if polled {
        proc.kernel.spawn_task(Box::pin(ring.clone().poll_loop()));
    }
    // Written last: a process that passes a bad pointer still gets its ring, but learns
    // nothing about it (as Linux does for io_uring_setup's params).
    copy_out(&*proc.memory, params, &out)?;
    Ok(0)
}

pub(crate) async fn enter(
    proc: &Process,
    to_submit: u32,
    min_complete: u32,
    flags: RingEnterFlags,
    timeout_ns: Option<u64>,
) -> Result<i64, Errno> {
    let ring = proc.ring().ok_or(Errno::Inval)?;
    ring.enter(to_submit, min_complete, flags, timeout_ns)
        .await
        .map(|n| n as i64)
}
