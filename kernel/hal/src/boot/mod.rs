//! Boot information and the boot sequence.
//!
//! [`BootInfo`] is the kernel's own copy of what the PVH loader handed over
//! (memory map, RSDP, command line, initrd), taken before low memory is
//! reused. The pure parts (memory-map normalisation, command line) are in
//! submodules and tested on the host.

pub mod cmdline;
pub mod memmap;

#[cfg(target_os = "none")]
mod pvh;
#[cfg(target_os = "none")]
pub(crate) mod sequence;
#[cfg(target_os = "none")]
pub(crate) use sequence::entry;
#[cfg(target_os = "none")]
pub use sequence::{acpi, info, initrd_bytes};

use memmap::{Range, RawRegion};

/// Most firmware memory-map entries kept.
pub const MAX_MEMMAP: usize = 128;
/// Longest command line kept (longer ones are cut, with a warning).
pub const MAX_CMDLINE: usize = 1024;

/// What the boot loader told us, copied into kernel memory.
#[derive(Clone, Debug)]
pub struct BootInfo {
    memmap: [RawRegion; MAX_MEMMAP],
    memmap_len: usize,
    usable: [Range; MAX_MEMMAP],
    usable_len: usize,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    /// Physical address of the ACPI RSDP, if the loader gave one.
    pub rsdp: Option<u64>,
    /// Physical range of the initrd (the first PVH module), if any.
    pub initrd: Option<Range>,
    /// Physical range of the kernel image.
    pub kernel: Range,
}

impl BootInfo {
    pub const fn empty() -> Self {
        const Z: RawRegion = RawRegion {
            addr: 0,
            size: 0,
            kind: 0,
        };
        BootInfo {
            memmap: [Z; MAX_MEMMAP],
            memmap_len: 0,
            usable: [Range::new(0, 0); MAX_MEMMAP],
            usable_len: 0,
            cmdline: [0; MAX_CMDLINE],
            cmdline_len: 0,
            rsdp: None,
            initrd: None,
            kernel: Range::new(0, 0),
        }
    }

    /// The firmware memory map as given (unsorted, unfiltered).
    pub fn memory_map(&self) -> &[RawRegion] {
        &self.memmap[..self.memmap_len]
    }

    /// Usable RAM after normalisation and reservations, sorted.
    pub fn usable(&self) -> &[Range] {
        &self.usable[..self.usable_len]
    }

    /// The kernel command line (non-UTF-8 bytes make it empty).
    pub fn cmdline(&self) -> &str {
        core::str::from_utf8(&self.cmdline[..self.cmdline_len]).unwrap_or("")
    }

    /// Parsed command line.
    pub fn options(&self) -> cmdline::CmdLine<'_> {
        cmdline::CmdLine::parse(self.cmdline())
    }
}
