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

/// Wall-clock time (the RTC's reading at boot plus time since boot) for
/// file times.
struct BootClock;

impl Clock for BootClock {
    fn now(&self) -> Timespec {
        Timespec::from_nanos(time::now_ns() + crate::rtc::realtime_base_ns())
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

/// COM1: polled output; input wakes its reader through the UART's receive
/// interrupt (routed by the IOAPIC to CPU 0, posted to CPU 0's executor,
/// whose handler wakes the waiting read). The full driver with a line
/// discipline comes with the drivers issue.
struct SerialConsole;

/// The read waiting for console input.
static CONSOLE_WAKER: spin::Mutex<Option<core::task::Waker>> = spin::Mutex::new(None);

/// The executor's interrupt vector for console input (CPU 0).
const CONSOLE_VECTOR: usize = 1;

/// Runs on CPU 0's executor (task context) after a receive interrupt.
fn console_input(_arg: usize) {
    if let Some(waker) = CONSOLE_WAKER.lock().take() {
        waker.wake();
    }
}

/// The UART interrupt hook (interrupt context): post, nothing more.
fn console_interrupt() {
    if let Some(runtime) = crate::sched::runtime() {
        let _ = runtime.post_interrupt(executor::CpuId(0), CONSOLE_VECTOR);
    }
}

/// Turns on interrupt-driven console input (boot CPU, once the executor exists).
fn enable_console_interrupts() -> bool {
    let Some(runtime) = crate::sched::runtime() else {
        return false;
    };
    if runtime
        .register_interrupt(executor::CpuId(0), CONSOLE_VECTOR, console_input, 0)
        .is_err()
    {
        return false;
    }
    serial::set_interrupt_hook(console_interrupt);
    match serial::route_interrupt(hal::arch::apic::id()) {
        Ok(()) => {
            serial::set_rx_interrupt(true);
            true
        }
        Err(e) => {
            log::warn!(target: "console", "no COM1 interrupt ({e:?}): console input is polled");
            false
        }
    }
}

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

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Errno>> {
        match self.try_read(buf) {
            Err(Errno::Again) => {}
            done => return Poll::Ready(done),
        }
        *CONSOLE_WAKER.lock() = Some(cx.waker().clone());
        // Input that arrived before the waker was in place has no interrupt
        // of its own left: look again.
        match self.try_read(buf) {
            Err(Errno::Again) => Poll::Pending,
            done => Poll::Ready(done),
        }
    }
}

static ROOT: spin::Once<Arc<Vfs>> = spin::Once::new();

/// The root filesystem, once mounted.
pub fn root() -> Option<&'static Arc<Vfs>> {
    ROOT.get()
}

/// The devfs served by a task (block devices need it), once mounted.
static DEVFS: spin::Once<Arc<fs::devfs::Devfs>> = spin::Once::new();

/// The task-served devfs on `/dev`, where disks are added.
pub fn devfs() -> Option<&'static Arc<fs::devfs::Devfs>> {
    DEVFS.get()
}

/// Remounts `/dev` as a devfs served by a port on CPU 0 plus its task.
fn serve_devfs_from_a_task(vfs: &Vfs, devfs: fs::devfs::Devfs) {
    let Some(runtime) = crate::sched::runtime() else {
        return;
    };
    let root = vfs.root();
    let devfs = DEVFS.call_once(|| Arc::new(devfs));
    let (port, task) = devfs.clone().serve_on(executor::CpuId(0));
    let remounted = fs::service::try_complete_inline(async {
        vfs.unmount(&root, b"/dev").await?;
        vfs.mount(&root, b"/dev", port).await
    });
    match remounted {
        Some(Ok(_)) => {
            if let Err(e) = runtime.spawn_on(executor::CpuId(0), task) {
                log::error!(target: "vfs", "devfs task: {e:?}");
            }
        }
        other => {
            log::error!(target: "vfs", "cannot serve /dev from a task: {:?}", other.map(|r| r.err()))
        }
    }
}

/// What to add to time since boot for wall-clock time (the RTC's reading).
pub fn realtime_base_ns() -> u64 {
    crate::rtc::realtime_base_ns()
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
    let (clock, entropy, console) = (
        services.clock.clone(),
        services.entropy.clone(),
        services.console.clone(),
    );
    match fs::service::try_complete_inline(fs::boot::mount_root(&services, archive)) {
        // fs::boot logs what was unpacked.
        Some(Ok((vfs, _stats))) => {
            // With interrupts for console input, /dev is served by a task on
            // CPU 0 so a read can wait for input instead of failing.
            if enable_console_interrupts() {
                serve_devfs_from_a_task(&vfs, fs::devfs::Devfs::new(clock, entropy, console));
            }
            ROOT.call_once(|| Arc::new(vfs));
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
