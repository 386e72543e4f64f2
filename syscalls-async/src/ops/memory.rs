// SPDX-License-Identifier: MIT OR Apache-2.0
//! `Mmap` (`Munmap` and `Mprotect` go straight to the kernel).

use abi::Errno;

use super::copy_out;
use crate::{decode::UserBuf, process::Process};

pub(crate) fn mmap(
    proc: &Process,
    hint: u64,
    len: u64,
    prot: u32,
    flags: u32,
    out: Option<UserBuf>,
) -> Result<i64, Errno> {
    let addr = proc.kernel.mmap(proc.pid(), hint, len, prot, flags)?;
    if let Some(out) = out
        && let Err(e) = copy_out(&*proc.memory, out, &addr.to_le_bytes())
    {
        // Do not leak a mapping the caller cannot learn about.
        let _ = proc.kernel.munmap(proc.pid(), addr, len);
        return Err(e);
    }
    Ok(addr as i64)
}
