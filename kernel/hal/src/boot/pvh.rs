//! Reading the PVH `hvm_start_info` defensively.
//!
//! Layout (all little endian): u32 magic 0x336ec578, u32 version, u32 flags,
//! u32 nr_modules, u64 modlist_paddr, u64 cmdline_paddr, u64 rsdp_paddr,
//! u64 memmap_paddr, u32 memmap_entries, u32 reserved. Module entries are
//! {u64 paddr, u64 size, u64 cmdline, u64 reserved}; memory-map entries
//! {u64 addr, u64 size, u32 type, u32 reserved}. qboot places the module
//! list at an address that is not 8-aligned, so every field is read with
//! `read_unaligned`; everything lives below 4 GiB (identity-mapped by the
//! boot stub) and is copied out before low memory is reused.

use core::ptr::read_unaligned;

use super::memmap::{Range, RawRegion};
use super::{BootInfo, MAX_CMDLINE, MAX_MEMMAP};

const MAGIC: u32 = 0x336e_c578;

/// Why the start_info could not be used.
#[derive(Clone, Copy, Debug)]
pub enum PvhError {
    BadMagic(u32),
    NoMemoryMap,
}

impl core::fmt::Display for PvhError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PvhError::BadMagic(m) => write!(f, "bad start_info magic {m:#x} (not a PVH boot?)"),
            PvhError::NoMemoryMap => write!(f, "start_info has no memory map"),
        }
    }
}

fn read<T: Copy>(addr: u64) -> T {
    // SAFETY: callers only pass addresses the PVH loader handed over, which
    // lie below 4 GiB and are identity-mapped by the boot stub; unaligned
    // reads are allowed by read_unaligned.
    unsafe { read_unaligned(addr as *const T) }
}

/// Copies what the kernel needs from the start_info at `addr` into `info`.
/// Returns how many memory-map entries did not fit (0 normally).
pub fn copy(addr: u64, info: &mut BootInfo) -> Result<usize, PvhError> {
    let magic: u32 = read(addr);
    if magic != MAGIC {
        return Err(PvhError::BadMagic(magic));
    }
    let nr_modules: u32 = read(addr + 12);
    let modlist: u64 = read(addr + 16);
    let cmdline: u64 = read(addr + 24);
    let rsdp: u64 = read(addr + 32);
    let memmap: u64 = read(addr + 40);
    let memmap_entries: u32 = read(addr + 48);
    if memmap == 0 || memmap_entries == 0 {
        return Err(PvhError::NoMemoryMap);
    }

    let kept = (memmap_entries as usize).min(MAX_MEMMAP);
    for i in 0..kept {
        let e = memmap + i as u64 * 24;
        info.memmap[i] = RawRegion {
            addr: read(e),
            size: read(e + 8),
            kind: read(e + 16),
        };
    }
    info.memmap_len = kept;

    if cmdline != 0 {
        let mut n = 0;
        while n < MAX_CMDLINE {
            let b: u8 = read(cmdline + n as u64);
            if b == 0 {
                break;
            }
            info.cmdline[n] = b;
            n += 1;
        }
        info.cmdline_len = n;
    }
    info.rsdp = (rsdp != 0).then_some(rsdp);
    if nr_modules > 0 && modlist != 0 {
        let paddr: u64 = read(modlist);
        let size: u64 = read(modlist + 8);
        if size != 0 {
            info.initrd = Some(Range::new(paddr, paddr.saturating_add(size)));
        }
    }
    Ok(memmap_entries as usize - kept)
}
