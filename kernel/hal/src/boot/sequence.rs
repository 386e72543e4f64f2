//! The boot sequence, from the stub's call to the kernel's main function.
//!
//! 1. serial and the IDT (so early faults are reported),
//! 2. copy start_info (before low memory can be reused),
//! 3. logger and command line,
//! 4. normalise the memory map, build the page tables, start the frame
//!    allocator and the heap,
//! 5. move to a stack with a guard page, load the GDT/TSS with IST stacks,
//! 6. call the kernel's main (named with [`crate::entry_point!`]).

use super::memmap::{Range, normalize};
use super::{BootInfo, pvh};
use crate::arch::cpu::{self, ExitCode};
use crate::arch::{gdt, serial, trap};
use crate::mm;

/// Pages of the stack the kernel runs on after boot.
const MAIN_STACK_PAGES: u64 = 32;
/// Pages of each IST stack.
const IST_STACK_PAGES: u64 = 4;

static BOOT_INFO: spin::Once<BootInfo> = spin::Once::new();

static ACPI: spin::Once<crate::acpi::AcpiInfo> = spin::Once::new();

/// The boot archive (the first PVH module), if the loader gave one.
pub fn initrd_bytes() -> Option<&'static [u8]> {
    let range = info()?.initrd?;
    let len = usize::try_from(range.len()).ok()?;
    // SAFETY: the initrd range is reserved from the frame allocator at boot
    // (never handed out, never written), lies in RAM and so in the direct
    // map, and stays there for the kernel's lifetime.
    Some(unsafe {
        core::slice::from_raw_parts(crate::mm::phys_to_virt(range.start) as *const u8, len)
    })
}

/// What ACPI told us, if the tables were usable.
pub fn acpi() -> Option<&'static crate::acpi::AcpiInfo> {
    ACPI.get()
}

/// The boot information, once boot has copied it (always, after hal init).
pub fn info() -> Option<&'static BootInfo> {
    BOOT_INFO.get()
}

unsafe extern "Rust" {
    /// Defined by the kernel binary through `hal::entry_point!`.
    fn damselfly_kernel_main(info: &'static BootInfo) -> !;
}

/// Called by the PVH stub with the physical address of `hvm_start_info`.
pub(crate) extern "C" fn entry(start_info: u32) -> ! {
    serial::init();
    trap::init();
    let mut info = BootInfo::empty();
    let lost = match pvh::copy(u64::from(start_info), &mut info) {
        Ok(lost) => lost,
        Err(e) => {
            let _ =
                core::fmt::Write::write_fmt(&mut serial::RawWriter, format_args!("boot: {e}\n"));
            cpu::exit_qemu(ExitCode::Failure);
        }
    };
    crate::logger::init(info.options().log_level);
    log::info!(target: "boot", "Damselfly booting (PVH, start_info at {start_info:#x})");
    if lost > 0 {
        log::warn!(target: "boot", "{lost} memory-map entries beyond {} ignored", super::MAX_MEMMAP);
    }
    for w in info.options().warnings() {
        log::warn!(target: "boot", "command line: {w:?} ignored; valid options: {}", super::cmdline::VALID_OPTIONS);
    }

    info.kernel = mm::paging::kernel_image_phys();
    let low_memory = Range::new(0, 0x10_0000); // firmware, start_info, future SMP trampoline
    let reserved = [low_memory, info.kernel, info.initrd.unwrap_or_default()];
    let mut usable = [Range::default(); super::MAX_MEMMAP];
    let n = match normalize(info.memory_map(), &reserved, &mut usable) {
        Ok(n) => n,
        Err(e) => panic!("memory map: {e:?}"),
    };
    info.usable[..n].copy_from_slice(&usable[..n]);
    info.usable_len = n;

    // The direct map covers every memory-map entry (ACPI tables sit in
    // reserved ranges), capped at 1 TiB against a bogus entry.
    let top = info
        .memory_map()
        .iter()
        .map(|r| r.addr.saturating_add(r.size))
        .max()
        .unwrap_or(0)
        .min(1 << 40);
    mm::paging::init(info.usable(), top);
    mm::heap::init();
    BOOT_INFO.call_once(|| info);

    let stack = mm::alloc_stack(MAIN_STACK_PAGES).expect("no memory for the main kernel stack");
    // SAFETY: the stack was just mapped for this purpose alone, its top is
    // page-aligned, and nothing on the boot stack is used afterwards.
    unsafe { cpu::switch_stack(stack.top, after_stack_switch) }
}

fn after_stack_switch() -> ! {
    let ist = [(); 3].map(|()| {
        mm::alloc_stack(IST_STACK_PAGES)
            .expect("no memory for IST stacks")
            .top
    });
    gdt::configure_idt(gdt::init(ist));
    let info = BOOT_INFO
        .get()
        .expect("boot info is set before the stack switch");
    // Before any AP can exist: `cpu_index` trusts GS once any CPU set it.
    crate::percpu::init_this_cpu(0);
    let frames = mm::frame_stats();
    log::info!(
        target: "boot",
        "memory: {} MiB usable in {} ranges, {} frames free; kernel {:#x}..{:#x}; initrd {:?}; cmdline {:?}",
        frames.usable * 4 / 1024,
        info.usable().len(),
        frames.free,
        info.kernel.start,
        info.kernel.end,
        info.initrd,
        info.cmdline()
    );
    match crate::acpi::read(info.rsdp) {
        Ok(acpi) => {
            log::info!(
                target: "acpi",
                "{} CPUs enabled (APIC ids {:?}), {} disabled; {} IOAPIC(s); {} IRQ override(s); HPET {:#x?}; PCI ECAM {:#x?}; PM timer {:#x?}",
                acpi.cpus.len(),
                acpi.cpus.iter().map(|c| c.apic_id).collect::<alloc::vec::Vec<_>>(),
                acpi.disabled_cpus,
                acpi.ioapics.len(),
                acpi.overrides.len(),
                acpi.hpet_address,
                acpi.pci_ecam,
                acpi.pm_timer_port,
            );
            match crate::arch::apic::init_bsp(acpi.local_apic_address) {
                Ok(x2apic) => {
                    log::info!(target: "apic", "local APIC enabled ({})", if x2apic { "x2APIC" } else { "xAPIC" })
                }
                Err(e) => log::error!(target: "apic", "cannot map the local APIC: {e:?}"),
            }
            match crate::arch::time::calibrate(Some(&acpi)) {
                Ok(c) => log::info!(
                    target: "time",
                    "TSC {}.{:03} MHz ({}invariant), APIC timer {} kHz ({}), calibrated against the {:?} ({} Hz)",
                    c.tsc_hz / 1_000_000,
                    c.tsc_hz / 1000 % 1000,
                    if crate::arch::time::tsc_is_invariant() { "" } else { "not " },
                    c.apic_timer_hz / 1000,
                    if c.tsc_deadline { "TSC-deadline mode" } else { "one-shot mode" },
                    c.source,
                    c.reference_hz,
                ),
                Err(e) => {
                    log::error!(target: "time", "clock calibration failed: {e:?}; no monotonic clock")
                }
            }
            if crate::arch::ioapic::init(&acpi) > 0 {
                if let Err(e) = crate::arch::serial::route_interrupt(crate::arch::apic::id()) {
                    log::warn!(target: "ioapic", "COM1 IRQ not routed: {e:?}");
                }
            }
            ACPI.call_once(|| acpi);
        }
        Err(e) => {
            log::warn!(target: "acpi", "no usable ACPI tables ({e:?}); running on the boot CPU only")
        }
    }
    // SAFETY: the kernel binary defines this function through
    // `hal::entry_point!`, with exactly this signature.
    unsafe { damselfly_kernel_main(info) }
}
