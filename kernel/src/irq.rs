//! Device interrupts: message-signalled vectors and legacy INTx lines routed
//! to a CPU's executor.
//!
//! The hardware handler (interrupt context) only posts the vector to the
//! executor of the CPU it arrived on; the executor then runs the driver's
//! `on_interrupt` in task context at its next interrupt point (DragonFly's
//! `ipending` + `splz`). So a driver's interrupt half never runs with a
//! lock of the interrupted code held.
//!
//! An INTx line is level-triggered and possibly shared: it stays asserted
//! until the driver acknowledges its device, which happens in task context.
//! So its hardware handler first masks the line at the IOAPIC (then EOIs and
//! posts, like MSI); the task half runs every handler sharing the line (each
//! reads its device's status, which acknowledges it) and unmasks the line
//! (Linux's "oneshot" threaded interrupts work the same way). A line that
//! keeps firing with no handler claiming it is left masked after
//! [`UNCLAIMED_LIMIT`] interrupts in a row, with an error logged, rather
//! than starving the CPU.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU32, Ordering};

use executor::CpuId;
use hal::arch::msi;

/// Handlers by MSI vector (index = vector - `msi::FIRST_VECTOR`), set once.
static HANDLERS: [spin::Once<Box<dyn Fn() + Send + Sync>>; msi::VECTORS as usize] =
    [const { spin::Once::new() }; msi::VECTORS as usize];

/// Interrupt context: post the vector to this CPU's executor.
fn on_msi(vector: u8) {
    if let Some(runtime) = crate::sched::runtime() {
        let _ = runtime.post_interrupt(CpuId(hal::cpu_index() as u32), usize::from(vector));
    }
}

/// Task context on the target CPU: the driver's interrupt half.
fn run_handler(index: usize) {
    if let Some(handler) = HANDLERS.get(index).and_then(|h| h.get()) {
        handler();
    }
}

/// A routed message-signalled interrupt: what to program into the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsiRoute {
    /// The CPU vector.
    pub vector: u8,
    /// Message address (the target CPU's local APIC).
    pub address: u64,
    /// Message data (the vector, edge triggered).
    pub data: u32,
}

/// Why an interrupt could not be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// All 16 MSI vectors are taken.
    NoVector,
    /// The CPU does not exist or has no executor yet.
    NoSuchCpu,
}

/// Reserves an MSI vector delivered to `cpu`, whose executor runs
/// `handler` (task context) each time the device signals it.
///
/// # Errors
/// [`RouteError`].
pub fn route_msi(cpu: CpuId, handler: Box<dyn Fn() + Send + Sync>) -> Result<MsiRoute, RouteError> {
    let (vector, apic_id) = claim_vector(cpu, handler, on_msi)?;
    Ok(MsiRoute {
        vector,
        address: pci::capability::x86_msi_address(apic_id as u8),
        data: pci::capability::x86_msi_data(vector),
    })
}

/// Reserves a vector from the MSI pool for `cpu`: `task_half` runs there in
/// task context each time `hard_handler` (interrupt context) posts it.
/// Returns the vector and the CPU's APIC id.
fn claim_vector(
    cpu: CpuId,
    task_half: Box<dyn Fn() + Send + Sync>,
    hard_handler: hal::arch::trap::InterruptHandler,
) -> Result<(u8, u32), RouteError> {
    let runtime = crate::sched::runtime().ok_or(RouteError::NoSuchCpu)?;
    let apic_id = hal::arch::smp::apic_id_of(cpu.index())
        .filter(|&id| id < 256)
        .ok_or(RouteError::NoSuchCpu)?;
    let vector = msi::alloc_vector().ok_or(RouteError::NoVector)?;
    let index = usize::from(vector - msi::FIRST_VECTOR);
    HANDLERS[index].call_once(|| task_half);
    runtime
        .register_interrupt(cpu, usize::from(vector), run_handler, index)
        .map_err(|_| RouteError::NoSuchCpu)?;
    hal::arch::trap::set_interrupt_handler(vector, hard_handler)
        .map_err(|_| RouteError::NoVector)?;
    Ok((vector, apic_id))
}

/// Unclaimed interrupts in a row after which an INTx line is left masked.
pub const UNCLAIMED_LIMIT: u32 = 100_000;

/// GSI of the INTx line on each MSI-pool vector (`u32::MAX`: not an INTx line).
static INTX_GSI: [AtomicU32; msi::VECTORS as usize] =
    [const { AtomicU32::new(u32::MAX) }; msi::VECTORS as usize];

/// A shared INTx line: its GSI and the handlers on it.
struct Line {
    gsi: u32,
    /// Each returns whether its device had signalled (and is now acknowledged).
    handlers: spin::Mutex<Vec<Box<dyn Fn() -> bool + Send + Sync>>>,
    unclaimed: AtomicU32,
}

/// The routed lines, with where each is routed.
static LINES: spin::Mutex<Vec<(IntxLine, Arc<Line>)>> = spin::Mutex::new(Vec::new());

/// Interrupt context: mask the level-triggered line (it stays asserted until
/// the driver acknowledges the device in task context), then post.
fn on_intx(vector: u8) {
    let gsi = INTX_GSI[usize::from(vector - msi::FIRST_VECTOR)].load(Ordering::Relaxed);
    if gsi != u32::MAX {
        let _ = hal::arch::ioapic::set_gsi_masked(gsi, true);
    }
    on_msi(vector);
}

/// Task context: every handler on the line, then unmask it.
fn run_line(line: &Line) {
    let mut claimed = false;
    for handler in line.handlers.lock().iter() {
        claimed |= handler();
    }
    if claimed {
        line.unclaimed.store(0, Ordering::Relaxed);
    } else if line.unclaimed.fetch_add(1, Ordering::Relaxed) + 1 == UNCLAIMED_LIMIT {
        log::error!(target: "irq", "GSI {}: {UNCLAIMED_LIMIT} interrupts in a row nobody claimed; line left masked", line.gsi);
        return;
    }
    let _ = hal::arch::ioapic::set_gsi_masked(line.gsi, false);
}

/// A routed INTx line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntxLine {
    /// The IOAPIC input.
    pub gsi: u32,
    /// The CPU vector.
    pub vector: u8,
    /// Where the handlers run.
    pub cpu: CpuId,
}

/// Why an INTx line could not be routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntxRouteError {
    /// The pin's GSI is unknown (see `pci::intx`).
    Wiring(pci::intx::IntxError),
    /// No vector or CPU (see [`RouteError`]).
    Route(RouteError),
    /// No IOAPIC serves the GSI.
    NoIoApic(u32),
}

impl core::fmt::Display for IntxRouteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            IntxRouteError::Wiring(e) => write!(f, "{e}"),
            IntxRouteError::Route(e) => write!(f, "{e:?}"),
            IntxRouteError::NoIoApic(gsi) => write!(f, "no IOAPIC serves GSI {gsi}"),
        }
    }
}

/// Adds `handler` to `device`'s INTx line, routing the line to `cpu` if it
/// is the first handler on it (a shared line keeps its first CPU). The
/// handler runs in task context on that CPU and returns whether its device
/// had signalled; reading the device's interrupt status is what acknowledges
/// a level-triggered interrupt, so it must do that before returning.
///
/// # Errors
/// [`IntxRouteError`].
pub fn route_intx(
    device: &pci::PciDevice,
    cpu: CpuId,
    handler: Box<dyn Fn() -> bool + Send + Sync>,
) -> Result<IntxLine, IntxRouteError> {
    let wiring = pci::intx::route(crate::pci::devices(), device).map_err(IntxRouteError::Wiring)?;
    let mut lines = LINES.lock();
    if let Some((routed, line)) = lines.iter().find(|(r, _)| r.gsi == wiring.gsi) {
        line.handlers.lock().push(handler);
        return Ok(*routed);
    }
    let line = Arc::new(Line {
        gsi: wiring.gsi,
        handlers: spin::Mutex::new(alloc::vec![handler]),
        unclaimed: AtomicU32::new(0),
    });
    let task_half = line.clone();
    let (vector, apic_id) = claim_vector(cpu, Box::new(move || run_line(&task_half)), on_intx)
        .map_err(IntxRouteError::Route)?;
    // Before the IOAPIC routes the line: the hardware handler masks by GSI.
    INTX_GSI[usize::from(vector - msi::FIRST_VECTOR)].store(wiring.gsi, Ordering::Relaxed);
    let mode = hal::arch::ioapic::LineMode {
        is_level: wiring.is_level,
        is_active_low: wiring.is_active_low,
    };
    hal::arch::ioapic::route_gsi(wiring.gsi, vector, apic_id, mode)
        .map_err(|_| IntxRouteError::NoIoApic(wiring.gsi))?;
    let routed = IntxLine {
        gsi: wiring.gsi,
        vector,
        cpu,
    };
    lines.push((routed, line));
    log::info!(target: "irq", "GSI {} (INTx, level) -> vector {vector:#x} on CPU {}", wiring.gsi, cpu.0);
    Ok(routed)
}
