//! The Damselfly kernel binary: boot entry and wiring.
//!
//! `hal` boots the machine and calls [`kmain`]. With the `ktest` feature and
//! `test=...` on the command line it runs the in-kernel tests; otherwise it
//! starts the kernel console.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

mod console;
#[cfg(feature = "ktest")]
mod ktest;

hal::entry_point!(kmain);

fn kmain(info: &'static hal::BootInfo) -> ! {
    log::info!("Damselfly {} up", env!("CARGO_PKG_VERSION"));
    if let Some(selection) = info.options().test {
        #[cfg(feature = "ktest")]
        ktest::run(selection);
        #[cfg(not(feature = "ktest"))]
        log::warn!("test={selection} ignored: this kernel was built without the ktest feature");
    }
    console::run()
}
