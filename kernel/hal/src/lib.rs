#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), no_std)]

pub mod boot;
pub mod ktest;
pub mod mm;
pub mod power;
pub mod symbols;

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
pub mod acpi;
#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod backtrace;
#[cfg(target_os = "none")]
pub mod device;
#[cfg(target_os = "none")]
mod logger;
#[cfg(target_os = "none")]
pub mod percpu;
#[cfg(target_os = "none")]
pub use percpu::cpu_index;
#[cfg(target_os = "none")]
pub mod panic;

pub use boot::BootInfo;

/// Names the kernel's main function, which hal calls once boot is done:
/// `hal::entry_point!(kmain);` with `fn kmain(info: &'static hal::BootInfo) -> !`.
#[macro_export]
macro_rules! entry_point {
    ($main:path) => {
        // The one unsafe attribute the kernel binary needs: hal's boot code
        // finds the kernel's main by this symbol name.
        #[allow(unsafe_code)]
        #[unsafe(no_mangle)]
        fn damselfly_kernel_main(info: &'static $crate::BootInfo) -> ! {
            let main: fn(&'static $crate::BootInfo) -> ! = $main;
            main(info)
        }
    };
}
