//! Device interrupts: message-signalled vectors routed to a CPU's executor.
//!
//! The hardware handler (interrupt context) only posts the vector to the
//! executor of the CPU it arrived on; the executor then runs the driver's
//! `on_interrupt` in task context at its next interrupt point (DragonFly's
//! `ipending` + `splz`). So a driver's interrupt half never runs with a
//! lock of the interrupted code held.

use alloc::boxed::Box;

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
    let runtime = crate::sched::runtime().ok_or(RouteError::NoSuchCpu)?;
    let apic_id = hal::arch::smp::apic_id_of(cpu.index())
        .filter(|&id| id < 256)
        .ok_or(RouteError::NoSuchCpu)?;
    let vector = msi::alloc_vector().ok_or(RouteError::NoVector)?;
    let index = usize::from(vector - msi::FIRST_VECTOR);
    HANDLERS[index].call_once(|| handler);
    runtime
        .register_interrupt(cpu, usize::from(vector), run_handler, index)
        .map_err(|_| RouteError::NoSuchCpu)?;
    hal::arch::trap::set_interrupt_handler(vector, on_msi).map_err(|_| RouteError::NoVector)?;
    Ok(MsiRoute {
        vector,
        address: pci::capability::x86_msi_address(apic_id as u8),
        data: pci::capability::x86_msi_data(vector),
    })
}
