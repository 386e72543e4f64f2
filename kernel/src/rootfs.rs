//! The root filesystem: a tmpfs filled from the boot archive (the initrd
//! xtask packs from `user/root/`), with devfs on `/dev`, mounted at boot.
//!
//! The kernel provides what `fs` asks for through its platform traits: a
//! clock, an entropy source and the console (COM1 through the `uart16550`
//! driver task and its line discipline; ^C goes to `foreground`). Mounting runs before any
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

// ---------------------------------------------------------------------------------------
// The console: COM1 through the uart16550 driver and its line discipline
// ---------------------------------------------------------------------------------------

/// COM1's registers, as the driver asks for them.
struct Com1(serial::Com1Registers);

impl uart16550::Registers for Com1 {
    fn read(&self, offset: u8) -> u8 {
        self.0.read(offset)
    }

    fn write(&self, offset: u8, value: u8) {
        self.0.write(offset, value)
    }
}

/// `/dev/console`: cooked input from the driver task's line discipline (echo,
/// erase, ^C, ^D), output with `\n` -> `\r\n` through the polled transmitter.
struct SerialConsole {
    console: Arc<uart16550::Console>,
    tx: uart16550::Transmitter<Com1>,
}

fn errno(e: uart16550::ReadError) -> Errno {
    match e {
        uart16550::ReadError::WouldBlock => Errno::Again,
        uart16550::ReadError::Interrupted => Errno::Intr,
    }
}

impl ConsoleDevice for SerialConsole {
    fn write(&self, data: &[u8]) -> usize {
        uart16550::onlcr(data, |chunk| self.tx.blocking_write(chunk));
        data.len()
    }

    fn try_read(&self, buf: &mut [u8]) -> Result<usize, Errno> {
        self.console.try_read(buf).map_err(errno)
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<Result<usize, Errno>> {
        self.console.poll_read(cx, buf).map(|r| r.map_err(errno))
    }
}

/// The console when the driver could not start: output through hal's polled
/// writer, no input (reads wait forever rather than report end of file, which
/// would make init restart the shell in a loop).
struct OutputOnlyConsole;

impl ConsoleDevice for OutputOnlyConsole {
    fn write(&self, data: &[u8]) -> usize {
        uart16550::onlcr(data, |chunk| {
            chunk.iter().for_each(|&b| serial::write_byte(b))
        });
        data.len()
    }

    fn try_read(&self, _buf: &mut [u8]) -> Result<usize, Errno> {
        Err(Errno::Again)
    }

    fn poll_read(&self, _cx: &mut Context<'_>, _buf: &mut [u8]) -> Poll<Result<usize, Errno>> {
        Poll::Pending
    }
}

/// The driver's interrupt half, for the hooks below.
static UART_IRQ: spin::Once<uart16550::UartInterrupt<Com1>> = spin::Once::new();
/// The cooked console, also read by the kernel console prompt (`console`).
static CONSOLE: spin::Once<Arc<uart16550::Console>> = spin::Once::new();

/// The cooked console, once the driver runs.
pub fn console() -> Option<&'static Arc<uart16550::Console>> {
    CONSOLE.get()
}

/// The executor's interrupt vector for COM1 (CPU 0).
const CONSOLE_VECTOR: usize = 1;
/// How often COM1 is polled when its interrupt cannot be routed.
const POLL_INTERVAL: core::time::Duration = core::time::Duration::from_millis(10);

/// Runs on CPU 0's executor (task context) after an interrupt: wakes the driver task.
fn console_input(_arg: usize) {
    if let Some(irq) = UART_IRQ.get() {
        irq.wake();
    }
}

/// The UART interrupt hook (interrupt context): the driver acknowledges and drains
/// the receive FIFO; the wake-up is posted to CPU 0's executor, since a waker may
/// not run in interrupt context.
fn console_interrupt() {
    if let Some(irq) = UART_IRQ.get()
        && irq.on_interrupt()
        && let Some(runtime) = crate::sched::runtime()
    {
        let _ = runtime.post_interrupt(executor::CpuId(0), CONSOLE_VECTOR);
    }
}

/// Routes COM1's interrupt to the driver (boot CPU). `false`: use polling.
fn route_console_interrupt(runtime: &executor::Runtime) -> bool {
    if let Err(e) = runtime.register_interrupt(executor::CpuId(0), CONSOLE_VECTOR, console_input, 0)
    {
        log::warn!(target: "console", "no executor vector for COM1 ({e:?}): console input is polled");
        return false;
    }
    serial::set_interrupt_hook(console_interrupt);
    match serial::route_interrupt(hal::arch::apic::id()) {
        Ok(()) => true,
        Err(e) => {
            log::warn!(target: "console", "no COM1 interrupt ({e:?}): console input is polled");
            false
        }
    }
}

/// Starts the COM1 driver task (CPU 0) and returns `/dev/console`, or `None` when
/// console input cannot work (no executor, no UART); the caller falls back to an
/// output-only console.
fn start_console_driver() -> Option<SerialConsole> {
    let runtime = crate::sched::runtime()?;
    let regs = serial::take_registers()?;
    let (uart, irq) = match uart16550::Uart::try_new(Com1(regs), uart16550::Config::default()) {
        Ok(pair) => pair,
        Err(e) => {
            log::error!(target: "console", "COM1: {e:?}; the console has no input");
            return None;
        }
    };
    let irq = UART_IRQ.call_once(|| irq);
    let console = CONSOLE
        .call_once(|| Arc::new(uart16550::Console::new()))
        .clone();
    let tx = uart.transmitter();
    if route_console_interrupt(runtime) {
        uart.enable_interrupts();
    } else {
        // A timer plays the interrupt.
        let poller = async move {
            loop {
                executor::sleep(POLL_INTERVAL).await;
                if irq.on_interrupt() {
                    irq.wake();
                }
            }
        };
        if let Err(e) = runtime.spawn_on(executor::CpuId(0), poller) {
            log::error!(target: "console", "console poller: {e:?}");
        }
    }
    let task_console = console.clone();
    let task = async move {
        task_console
            .run(uart, || {
                crate::foreground::interrupt();
            })
            .await
    };
    if let Err(e) = runtime.spawn_on(executor::CpuId(0), task) {
        log::error!(target: "console", "console driver task: {e:?}");
        return None;
    }
    Some(SerialConsole { console, tx })
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

/// Remounts `/dev` as a devfs served on every CPU (a per-CPU port, one
/// devfs task per CPU; console reads that wait go to CPU 0's).
fn serve_devfs_from_a_task(vfs: &Vfs, devfs: fs::devfs::Devfs) {
    let Some(runtime) = crate::sched::runtime() else {
        return;
    };
    let root = vfs.root();
    let devfs = DEVFS.call_once(|| Arc::new(devfs));
    let (port, tasks) = devfs.clone().serve_per_cpu(runtime.cpu_count());
    let remounted = fs::service::try_complete_inline(async {
        vfs.unmount(&root, b"/dev").await?;
        vfs.mount(&root, b"/dev", port).await
    });
    match remounted {
        Some(Ok(_)) => {
            for (cpu, task) in tasks.into_iter().enumerate() {
                if let Err(e) = runtime.spawn_on(executor::CpuId(cpu as u32), task) {
                    log::error!(target: "vfs", "devfs task on CPU {cpu}: {e:?}");
                }
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
/// one); a malformed archive is logged with the entry it names. Starts the
/// console driver first, unless the in-kernel tests run (they own COM1).
pub fn mount() {
    let testing = hal::boot::info().is_some_and(|i| i.options().test.is_some());
    let driver = if testing {
        None
    } else {
        start_console_driver()
    };
    let console: Arc<dyn ConsoleDevice> = match driver {
        Some(console) => Arc::new(console),
        None => Arc::new(OutputOnlyConsole),
    };
    let services = BootServices {
        clock: Arc::new(BootClock),
        entropy: Arc::new(TscEntropy {
            state: AtomicU64::new(cpu::rdtsc()),
        }),
        console,
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
            // With the executors running, /dev is served by a task on CPU 0:
            // a console read can wait for a line instead of failing, and
            // disks (whose misses wait for the device) can be added.
            if crate::sched::runtime().is_some() {
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
