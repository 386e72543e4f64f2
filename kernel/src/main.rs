//! The Damselfly kernel binary: boot entry and wiring.
//!
//! `hal` boots the machine and calls [`kmain`]. With the `ktest` feature and
//! `test=...` on the command line it runs the in-kernel tests; otherwise it
//! starts the kernel console.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod blk;
mod clock_page;
mod console;
mod devices;
mod edu;
mod exec;
mod foreground;
mod irq;
#[cfg(feature = "ktest")]
mod ktest;
mod pci;
mod process;
mod rootfs;
mod rtc;
mod sched;

hal::entry_point!(kmain);

fn kmain(info: &'static hal::BootInfo) -> ! {
    log::info!("Damselfly {} up", env!("CARGO_PKG_VERSION"));
    start_cpus();
    rtc::init();
    pci::init();
    rootfs::mount();
    devices::publish();
    if let Some(selection) = info.options().test {
        #[cfg(feature = "ktest")]
        ktest::run(selection);
        #[cfg(not(feature = "ktest"))]
        log::warn!("test={selection} ignored: this kernel was built without the ktest feature");
    }
    start_userland();
    console::run()
}

/// Starts `/bin/init` from the root filesystem and gives the boot CPU to
/// its executor; returns only if there is no init (the kernel console then
/// serves instead).
fn start_userland() {
    let Some(vfs) = rootfs::root() else { return };
    let services = process::init(vfs.clone());
    match services.start_init("/bin/init") {
        Ok(pid) => {
            log::info!("init started (pid {pid})");
            sched::run_forever()
        }
        Err(abi::Errno::NoEnt) => log::info!("no /bin/init in the boot archive: kernel console"),
        Err(e) => log::error!("cannot start /bin/init: {e}; kernel console instead"),
    }
}

/// Starts every CPU ACPI lists, then the executors on the APs.
fn start_cpus() {
    let Some(acpi) = hal::boot::acpi() else {
        return;
    };
    let ids: alloc::vec::Vec<u32> = acpi.cpus.iter().map(|c| c.apic_id).collect();
    hal::arch::smp::start_aps(&ids, sched::ap_main, |outcome| match outcome {
        hal::arch::smp::ApStart::Started { index, apic_id } => {
            log::debug!(target: "smp", "CPU {index} (APIC id {apic_id}) started")
        }
        other => {
            log::error!(target: "smp", "a CPU failed to start: {other:?}; continuing without it")
        }
    });
    log::info!(target: "smp", "{} of {} CPUs online", hal::arch::smp::online_cpus(), ids.len());
    sched::start();
}
