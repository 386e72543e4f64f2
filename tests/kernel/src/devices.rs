//! Platform devices: ACPI power-off (by name only: it ends the boot).

/// Powers the machine off through ACPI; xtask expects QEMU to exit with
/// status 0 after the "ACPI power-off" log line (never through the
/// isa-debug-exit device, whose statuses are odd).
pub fn power_off() {
    hal::power::shutdown();
}

/// Resets the machine; with `-no-reboot` QEMU then exits with status 0.
/// xtask expects the "ACPI reset register" log line and no fallback.
pub fn reboot() {
    hal::power::reboot();
}

/// The kernel's PCI interrupt self-check (`kernel/src/edu.rs`): plain MSI and
/// INTx from QEMU's `edu` device, raised and counted.
pub type PciInterruptCheck = fn() -> Result<alloc::string::String, alloc::string::String>;

static PCI_INTERRUPT_CHECK: spin::Once<PciInterruptCheck> = spin::Once::new();

/// Hands the suite the kernel's PCI interrupt self-check.
pub fn set_pci_interrupt_check(check: PciInterruptCheck) {
    PCI_INTERRUPT_CHECK.call_once(|| check);
}

/// MSI and INTx, the two fallbacks below MSI-X, on a real (emulated) device:
/// xtask attaches QEMU's `edu` to test boots; its interrupts are raised one
/// by one, through MSI to the last CPU, then through its level-triggered
/// INTx line via the IOAPIC, and each must be handled exactly once.
pub fn pci_msi_and_intx_reach_the_edu_device() {
    let check = PCI_INTERRUPT_CHECK
        .get()
        .expect("the kernel set no PCI interrupt check");
    match check() {
        Ok(what) => log::info!(target: "ktest", "{what}"),
        Err(why) => panic!("{why}"),
    }
}

/// Halts in steps of 100 µs until `done()` or about `ms` milliseconds pass.
fn halt_until(ms: u64, done: impl Fn() -> bool) -> bool {
    let deadline = hal::arch::time::now_ns() + ms * 1_000_000;
    while !done() {
        if hal::arch::time::now_ns() > deadline {
            return false;
        }
        hal::arch::time::halt_for_ns(100_000);
    }
    true
}

pub fn ioapic_routes_com1_with_isa_defaults_or_override() {
    use hal::arch::{ioapic, serial};
    let entry = ioapic::entry(serial::COM1_IRQ).expect("an IOAPIC serves IRQ 4");
    let (gsi, flags) = ioapic::isa_irq_routing(serial::COM1_IRQ);
    assert_eq!(entry & 0xff, u64::from(serial::VECTOR_COM1), "vector");
    assert_eq!(entry & (1 << 16), 0, "unmasked");
    assert_eq!(
        (entry >> 56) as u32,
        hal::arch::apic::id(),
        "to the boot CPU"
    );
    assert_eq!(
        entry as u32 & ((1 << 13) | (1 << 15)),
        flags,
        "polarity and trigger"
    );
    if !hal::boot::acpi().is_some_and(|a| a.overrides.iter().any(|o| o.isa_irq == 4)) {
        assert_eq!(gsi, 4, "no override: GSI = IRQ");
    }
    ioapic::mask(serial::COM1_IRQ).expect("mask");
    assert_ne!(
        ioapic::entry(serial::COM1_IRQ).unwrap() & (1 << 16),
        0,
        "masked"
    );
    ioapic::unmask(serial::COM1_IRQ).expect("unmask");
    assert_eq!(
        ioapic::entry(serial::COM1_IRQ).unwrap() & (1 << 16),
        0,
        "unmasked again"
    );
}

/// With the receive interrupt on and no input, no interrupt arrives (no
/// storm from a level left asserted).
pub fn com1_rx_interrupt_without_input_stays_quiet() {
    use hal::arch::serial;
    while serial::try_read_byte().is_some() {}
    let before = serial::interrupts();
    serial::set_rx_interrupt(true);
    halt_until(20, || false);
    serial::set_rx_interrupt(false);
    let taken = serial::interrupts() - before;
    assert!(taken <= 1, "{taken} COM1 interrupts with no input");
}

/// A byte written in loopback mode comes back as received data, and its
/// interrupt reaches the boot CPU through the IOAPIC.
pub fn com1_loopback_byte_raises_rx_interrupt_through_ioapic() {
    use hal::arch::serial;
    let before = serial::interrupts();
    // No logging until loopback is off again: output would loop back too.
    serial::set_loopback(true);
    while serial::try_read_byte().is_some() {}
    serial::set_rx_interrupt(true);
    serial::write_byte(0x5a);
    let arrived = halt_until(200, || serial::interrupts() > before);
    let byte = serial::try_read_byte();
    serial::set_rx_interrupt(false);
    while serial::try_read_byte().is_some() {}
    serial::set_loopback(false);
    assert!(arrived, "no COM1 interrupt within 200 ms");
    assert_eq!(byte, Some(0x5a), "the byte came back");
    halt_until(10, || false);
    let taken = serial::interrupts() - before;
    assert!(taken <= 4, "{taken} interrupts for one byte");
}
