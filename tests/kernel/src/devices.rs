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
