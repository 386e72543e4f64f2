//! QEMU's `edu` teaching device (PCI 1234:11e8) as the interrupt self-check:
//! the one device QEMU offers whose interrupts software can raise at will,
//! through plain MSI (one vector) or its INTx pin. xtask attaches one to the
//! test boots (`-device edu`); the in-kernel test
//! `pci_msi_and_intx_reach_the_edu_device` runs [`check_interrupts`].
//!
//! Registers (BAR 0, 32-bit accesses): 0x00 identification (`0x010000ed`),
//! 0x24 interrupt status, 0x60 raise (ORs the value into the status and
//! signals), 0x64 acknowledge (clears those bits; the INTx line drops when
//! the status is 0).

use alloc::boxed::Box;
use alloc::string::String;

use hal::device::Mmio;
use pci::{Bar, PciDevice};

const REG_IDENT: usize = 0x00;
/// The identification register's low byte (the high bytes are the version).
const IDENT_MAGIC: u32 = 0xed;

#[cfg(feature = "ktest")]
pub use check::check_interrupts;

#[cfg_attr(not(feature = "ktest"), allow(dead_code))] // read by the self-check only
struct Edu {
    device: PciDevice,
    regs: &'static Mmio,
}

static EDU: spin::Once<Edu> = spin::Once::new();

/// The edu device.
pub fn matches(d: &PciDevice) -> bool {
    (d.header.vendor_id, d.header.device_id) == (0x1234, 0x11e8)
}

/// Maps BAR 0 and checks the identification register; interrupts are set up
/// by [`check_interrupts`] only.
pub fn probe(device: &PciDevice) -> Result<(), String> {
    let Some(Bar::Memory { addr, size, .. }) = device.bars[0] else {
        return Err("BAR 0 is not memory".into());
    };
    let regs: &'static Mmio = Box::leak(Box::new(
        Mmio::map(addr, size).map_err(|e| alloc::format!("BAR 0: {e}"))?,
    ));
    pci::enable(crate::pci::config(), device.bdf, true, false, true);
    let ident = regs.read_u32(REG_IDENT);
    if ident & 0xff != IDENT_MAGIC {
        return Err(alloc::format!(
            "identification {ident:#x}, not an edu device"
        ));
    }
    log::info!(target: "edu", "{}: edu device version {:#x} (interrupt self-check)", device.bdf, ident >> 16);
    EDU.call_once(|| Edu {
        device: device.clone(),
        regs,
    });
    Ok(())
}

/// The self-check (test kernels only).
#[cfg(feature = "ktest")]
mod check {
    use alloc::boxed::Box;
    use alloc::string::String;
    use alloc::sync::Arc;
    use core::sync::atomic::{AtomicU32, Ordering};

    use executor::CpuId;
    use hal::device::Mmio;
    use pci::ConfigSpace;

    use super::EDU;

    const REG_IRQ_STATUS: usize = 0x24;
    const REG_IRQ_RAISE: usize = 0x60;
    const REG_IRQ_ACK: usize = 0x64;

    /// Interrupts raised per mode by [`check_interrupts`].
    const ROUNDS: u32 = 200;

    /// Reads the status and acknowledges what it holds; returns whether there was anything.
    fn acknowledge(regs: &Mmio, count: &AtomicU32) -> bool {
        let status = regs.read_u32(REG_IRQ_STATUS);
        if status == 0 {
            return false;
        }
        regs.write_u32(REG_IRQ_ACK, status);
        count.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Raises [`ROUNDS`] interrupts one at a time and waits (running this CPU's
    /// executor) for the handler to count each.
    fn raise_and_count(regs: &Mmio, count: &AtomicU32, mode: &str) -> Result<(), String> {
        for round in 0..ROUNDS {
            regs.write_u32(REG_IRQ_RAISE, 1);
            let deadline = hal::arch::time::now_ns() + 2_000_000_000;
            let mut done =
                || count.load(Ordering::Relaxed) > round || hal::arch::time::now_ns() > deadline;
            crate::sched::run_until(&mut done, 100_000);
            let seen = count.load(Ordering::Relaxed);
            if seen <= round {
                return Err(alloc::format!(
                    "{mode}: interrupt {round} not handled within 2 s ({seen} handled)"
                ));
            }
            if seen > round + 1 {
                return Err(alloc::format!(
                    "{mode}: {seen} interrupts handled for {} raised",
                    round + 1
                ));
            }
        }
        Ok(())
    }

    /// Routes the edu device's MSI to the last CPU and raises [`ROUNDS`]
    /// interrupts, then turns MSI off, routes its INTx line (level-triggered,
    /// through the IOAPIC, to CPU 0) and raises [`ROUNDS`] more; each must be
    /// handled exactly once. Returns what it did.
    ///
    /// # Errors
    /// No edu device, no MSI capability, a routing failure, or an interrupt
    /// lost or duplicated.
    ///
    /// # Context
    /// Boot CPU, once (the vectors it routes stay routed).
    pub fn check_interrupts() -> Result<String, String> {
        let edu = EDU
            .get()
            .ok_or("no edu device (xtask attaches one to test boots)")?;
        let cfg = crate::pci::config();
        let bdf = edu.device.bdf;
        let regs = edu.regs;
        let runtime = crate::sched::runtime().ok_or("no executor")?;

        // Plain MSI, one vector, on the last CPU (a remote one when there are two or more).
        let msi = pci::Msi::read(cfg, bdf).ok_or("no MSI capability")?;
        let msi_cpu = CpuId(runtime.cpu_count() as u32 - 1);
        let msi_count = Arc::new(AtomicU32::new(0));
        let counter = msi_count.clone();
        let route = crate::irq::route_msi(
            msi_cpu,
            Box::new(move || {
                acknowledge(regs, &counter);
            }),
        )
        .map_err(|e| alloc::format!("MSI route: {e:?}"))?;
        msi.program(cfg, bdf, route.address, route.data as u16)
            .map_err(|()| "MSI address does not fit the capability")?;
        raise_and_count(regs, &msi_count, "MSI")?;

        // MSI off, INTx back on: the same device through its pin.
        msi.disable(cfg, bdf);
        let command = cfg.read_u16(bdf, pci::reg::COMMAND);
        cfg.write_u16(
            bdf,
            pci::reg::COMMAND,
            command & !pci::reg::COMMAND_INTX_DISABLE,
        );
        let intx_count = Arc::new(AtomicU32::new(0));
        let counter = intx_count.clone();
        let line = crate::irq::route_intx(
            &edu.device,
            CpuId(0),
            Box::new(move || acknowledge(regs, &counter)),
        )
        .map_err(|e| alloc::format!("INTx route: {e}"))?;
        raise_and_count(regs, &intx_count, "INTx")?;
        if msi_count.load(Ordering::Relaxed) != ROUNDS {
            return Err("an MSI interrupt arrived after MSI was turned off".into());
        }
        Ok(alloc::format!(
            "MSI vector {:#x} on CPU {}: {ROUNDS} interrupts; INTx GSI {} vector {:#x} on CPU 0: {ROUNDS} interrupts",
            route.vector,
            msi_cpu.0,
            line.gsi,
            line.vector
        ))
    }
}
