//! The Damselfly kernel binary: boot entry and wiring.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

hal::entry_point!(kmain);

fn kmain(_info: &'static hal::BootInfo) -> ! {
    log::info!("hello from kmain");
    hal::arch::cpu::exit_qemu(hal::arch::cpu::ExitCode::Success)
}
