//! The root filesystem: a tmpfs filled from the boot archive (the initrd
//! xtask packs from `user/root/`), with devfs on `/dev`, mounted at boot.
//!
//! The kernel provides what `fs` asks for through its platform traits: a
//! clock, an entropy source and the console. Mounting runs before any
//! executor on the boot CPU; tmpfs and devfs complete every operation
//! inline, so the mount future finishes on its first poll.

use alloc::sync::Arc;
use core::sync::atomic::{AtomicU64, Ordering};
use core::task::{Context, Poll};

use abi::{Errno, Timespec};
use fs::Vfs;
use fs::boot::BootServices;
use fs::platform::{Clock, ConsoleDevice, EntropySource};
use hal::arch::{cpu, serial, time};

/// Time since boot: there is no wall clock until the RTC driver.
struct BootClock;

impl Clock for BootClock {
    fn now(&self) -> Timespec {
        Timespec::from_nanos(time::now_ns())
    }
}

/// splitmix64 over TSC readings. Unpredictable enough for tests and
/// temporary names; NOT a cryptographic source (no hardware RNG is used yet).
struct TscEntropy {
    state: AtomicU64,
}

impl EntropySource for TscEntropy {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let mixed = self.state.fetch_add(cpu::rdtsc() | 1, Ordering::Relaxed);
            let mut z = mixed.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
        }
    }
}

/// COM1, polled (the interrupt-driven UART comes with the drivers).
struct SerialConsole;

impl ConsoleDevice for SerialConsole {
    fn write(&self, data: &[u8]) -> usize {
        for &b in data {
            serial::write_byte(b);
        }
        data.len()
    }

    fn try_read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut n = 0;
        while n < buf.len() {
            match serial::try_read_byte() {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        if n == 0 && !buf.is_empty() {
            Err(Errno::Again)
        } else {
            Ok(n)
        }
    }

    /// No receive interrupt yet, so nothing could wake a waiter: an empty
    /// line answers `Again` instead of `Pending`.
    fn poll_read(&self, _cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Errno>> {
        Poll::Ready(self.try_read(buf))
    }
}

static ROOT: spin::Once<Vfs> = spin::Once::new();

/// The root filesystem, once mounted.
pub fn root() -> Option<&'static Vfs> {
    ROOT.get()
}

/// Mounts the root tmpfs from the boot archive (an empty root without
/// one); a malformed archive is logged with the entry it names.
pub fn mount() {
    let services = BootServices {
        clock: Arc::new(BootClock),
        entropy: Arc::new(TscEntropy {
            state: AtomicU64::new(cpu::rdtsc()),
        }),
        console: Arc::new(SerialConsole),
    };
    let archive = hal::boot::initrd_bytes().unwrap_or(&[]);
    match fs::service::try_complete_inline(fs::boot::mount_root(&services, archive)) {
        // fs::boot logs what was unpacked.
        Some(Ok((vfs, _stats))) => {
            ROOT.call_once(|| vfs);
        }
        Some(Err(e)) => log::error!(target: "vfs", "no root filesystem: {e:?}"),
        None => log::error!(target: "vfs", "mounting the root did not complete inline"),
    }
}

/// The contents of `path` on the root filesystem (for the console).
pub fn read_file(path: &str, limit: usize) -> Result<alloc::vec::Vec<u8>, Errno> {
    let vfs = root().ok_or(Errno::NoEnt)?;
    fs::service::try_complete_inline(vfs.read_to_end(&vfs.root(), path.as_bytes(), limit))
        .unwrap_or(Err(Errno::Again))
}
