//! In-kernel tests: run inside QEMU by the kernel built with `ktest`.
//!
//! Every test is listed in [`TESTS`] (a plain array: the registry needs no
//! linker tricks and no nightly features). Run them with
//! `cargo xtask test`, or one by name with `cargo xtask ktest NAME`.
#![no_std]
#![deny(unsafe_code)]

extern crate alloc;

mod bench;
mod devices;
mod disk;
mod fault;
mod memory;
mod report;
mod rootfs;
mod sched;
mod smp;
mod user;

pub use devices::set_pci_interrupt_check;
pub use disk::{GUEST_FIRST_SECTOR, HOST_FIRST_SECTOR, PATTERN_SECTORS, TestDisk, set_disks};
pub use rootfs::set_root;
pub use sched::set_runtime;

/// How the runner waits: drives the boot CPU's executor until the condition holds
/// (`stop`, poll interval in ns). Set by the kernel before the tests run.
pub type WaitHook = fn(&mut dyn FnMut() -> bool, u64);

static WAIT_HOOK: spin::Once<WaitHook> = spin::Once::new();

/// Hands the suite the kernel's way of waiting (CPU 0 runs its tasks meanwhile).
pub fn set_wait_hook(hook: WaitHook) {
    WAIT_HOOK.call_once(|| hook);
}

/// Waits until `done()` holds or `timeout_ns` passes; false on timeout. CPU 0's
/// executor runs while waiting, so tasks spawned on the boot CPU make progress.
pub fn wait_until(mut done: impl FnMut() -> bool, timeout_ns: u64) -> bool {
    let deadline = hal::arch::time::now_ns().saturating_add(timeout_ns);
    let mut check = || done() || hal::arch::time::now_ns() > deadline;
    match WAIT_HOOK.get() {
        Some(hook) => hook(&mut check, 200_000),
        // Halt rather than spin: a spinning vCPU steals host time from the others.
        None => {
            while !check() {
                hal::arch::time::halt_for_ns(200_000);
            }
        }
    }
    done()
}

use hal::arch::trap::vector;
use hal::ktest::{Expect, KernelTest};

/// Every in-kernel test, in the order they run.
pub static TESTS: &[KernelTest] = &[
    KernelTest::new("boot_info_is_sane", memory::boot_info_is_sane),
    KernelTest::new(
        "memcpy_copies_exactly_the_bytes_asked",
        memory::memcpy_copies_exactly_the_bytes_asked,
    ),
    KernelTest::new(
        "memcmp_orders_like_a_byte_compare",
        memory::memcmp_orders_like_a_byte_compare,
    ),
    KernelTest::new(
        "acpi_lists_the_boot_cpu_and_an_ioapic",
        memory::acpi_lists_the_boot_cpu_and_an_ioapic,
    ),
    KernelTest::new(
        "ioapic_routes_com1_with_isa_defaults_or_override",
        devices::ioapic_routes_com1_with_isa_defaults_or_override,
    ),
    KernelTest::new(
        "com1_rx_interrupt_without_input_stays_quiet",
        devices::com1_rx_interrupt_without_input_stays_quiet,
    ),
    KernelTest::new(
        "com1_loopback_byte_raises_rx_interrupt_through_ioapic",
        devices::com1_loopback_byte_raises_rx_interrupt_through_ioapic,
    ),
    KernelTest::new(
        "kernel_stacks_have_unmapped_guard_pages",
        memory::kernel_stacks_have_unmapped_guard_pages,
    ),
    KernelTest::new(
        "frames_alloc_and_free_restore_counters",
        memory::frames_alloc_and_free_restore_counters,
    ),
    KernelTest::new(
        "heap_stress_many_sizes_random_free",
        memory::heap_stress_many_sizes_random_free,
    ),
    KernelTest::new(
        "heap_grows_for_a_large_allocation",
        memory::heap_grows_for_a_large_allocation,
    ),
    KernelTest::new("paging_map_write_unmap", memory::paging_map_write_unmap),
    KernelTest::new(
        "paging_protect_read_only_then_write_faults",
        fault::paging_protect_read_only_then_write_faults,
    )
    .expect(Expect::Fault(vector::PAGE_FAULT)),
    KernelTest::new(
        "write_to_kernel_rodata_faults",
        fault::write_to_kernel_rodata_faults,
    )
    .expect(Expect::Fault(vector::PAGE_FAULT)),
    KernelTest::new(
        "write_to_kernel_text_faults",
        fault::write_to_kernel_text_faults,
    )
    .expect(Expect::Fault(vector::PAGE_FAULT)),
    KernelTest::new(
        "execute_from_data_page_faults",
        fault::execute_from_data_page_faults,
    )
    .expect(Expect::Fault(vector::PAGE_FAULT)),
    KernelTest::new(
        "unmapped_page_read_faults",
        fault::unmapped_page_read_faults,
    )
    .expect(Expect::Fault(vector::PAGE_FAULT)),
    KernelTest::new(
        "stack_overflow_hits_the_guard_page",
        fault::stack_overflow_hits_the_guard_page,
    )
    .expect(Expect::Fault(vector::DOUBLE_FAULT)),
    KernelTest::new(
        "invalid_opcode_is_reported",
        fault::invalid_opcode_is_reported,
    )
    .expect(Expect::Fault(vector::INVALID_OPCODE)),
    KernelTest::new("divide_error_is_reported", fault::divide_error_is_reported)
        .expect(Expect::Fault(vector::DIVIDE_ERROR)),
    KernelTest::new("breakpoint_is_reported", fault::breakpoint_is_reported)
        .expect(Expect::Fault(vector::BREAKPOINT)),
    KernelTest::new("expected_panic_is_caught", report::expected_panic_is_caught)
        .expect(Expect::Panic),
    KernelTest::new(
        "out_of_memory_names_the_size",
        memory::out_of_memory_names_the_size,
    )
    .expect(Expect::PanicContaining(
        "memory allocation of 1099511627776 bytes failed",
    )),
    KernelTest::new(
        "symbols_resolve_kernel_functions",
        report::symbols_resolve_kernel_functions,
    ),
    KernelTest::new(
        "backtrace_walks_nested_frames",
        report::backtrace_walks_nested_frames,
    ),
    KernelTest::new(
        "self_ipi_reaches_its_handler",
        report::self_ipi_reaches_its_handler,
    ),
    KernelTest::new(
        "unexpected_vector_is_logged_and_survived",
        report::unexpected_vector_is_logged_and_survived,
    ),
    KernelTest::new(
        "every_listed_cpu_comes_online",
        report::every_listed_cpu_comes_online,
    ),
    KernelTest::new(
        "remote_ipi_wakes_a_halted_cpu",
        report::remote_ipi_wakes_a_halted_cpu,
    ),
    KernelTest::new(
        "monotonic_clock_never_goes_back",
        report::monotonic_clock_never_goes_back,
    ),
    KernelTest::new(
        "apic_timer_fires_no_earlier_than_its_deadline",
        report::apic_timer_fires_no_earlier_than_its_deadline,
    ),
    KernelTest::new(
        "syscall_and_invalid_opcode_come_back_from_ring_3",
        user::syscall_and_invalid_opcode_come_back_from_ring_3,
    ),
    KernelTest::new(
        "user_access_to_kernel_memory_is_a_user_page_fault",
        user::user_access_to_kernel_memory_is_a_user_page_fault,
    ),
    KernelTest::new(
        "a_spinning_user_thread_is_preempted_by_the_timer",
        user::a_spinning_user_thread_is_preempted_by_the_timer,
    ),
    KernelTest::new(
        "sse_state_belongs_to_the_user_context",
        user::sse_state_belongs_to_the_user_context,
    ),
    KernelTest::new(
        "copies_check_every_page_of_user_memory",
        user::copies_check_every_page_of_user_memory,
    ),
    KernelTest::new(
        "reserved_pages_are_filled_on_first_touch",
        user::reserved_pages_are_filled_on_first_touch,
    ),
    KernelTest::new(
        "pinned_user_pages_cannot_be_unmapped_or_freed",
        user::pinned_user_pages_cannot_be_unmapped_or_freed,
    ),
    KernelTest::new("tasks_run_on_every_cpu", sched::tasks_run_on_every_cpu),
    KernelTest::new(
        "port_calls_between_every_pair_of_cpus",
        sched::port_calls_between_every_pair_of_cpus,
    ),
    KernelTest::new(
        "sleep_on_the_boot_cpu_lasts_at_least_its_duration",
        sched::sleep_on_the_boot_cpu_lasts_at_least_its_duration,
    ),
    KernelTest::new(
        "cross_cpu_port_round_trips",
        sched::cross_cpu_port_round_trips,
    ),
    KernelTest::new(
        "sleep_on_an_ap_lasts_at_least_its_duration",
        sched::sleep_on_an_ap_lasts_at_least_its_duration,
    ),
    KernelTest::new(
        "boot_archive_is_unpacked_into_the_root_tmpfs",
        rootfs::boot_archive_is_unpacked_into_the_root_tmpfs,
    ),
    // Benchmarks: selected by name (`cargo xtask bench` runs them).
    KernelTest::new(
        "bench_cross_cpu_port_round_trip",
        sched::bench_cross_cpu_port_round_trip,
    )
    .by_name_only(),
    KernelTest::new(
        "bench_sleep_1ms_overshoot",
        sched::bench_sleep_1ms_overshoot,
    )
    .by_name_only(),
    KernelTest::new("bench_ipi_one_way", bench::bench_ipi_one_way).by_name_only(),
    KernelTest::new("bench_alloc_free_scaling", bench::bench_alloc_free_scaling).by_name_only(),
    KernelTest::new("bench_remote_free", bench::bench_remote_free).by_name_only(),
    KernelTest::new(
        "bench_user_trap_round_trip",
        user::bench_user_trap_round_trip,
    )
    .by_name_only(),
    KernelTest::new(
        "token_serializes_tasks_from_every_cpu",
        smp::token_serializes_tasks_from_every_cpu,
    ),
    KernelTest::new(
        "thousands_of_timers_fire_on_time_and_cancelled_ones_never",
        smp::thousands_of_timers_fire_on_time_and_cancelled_ones_never,
    ),
    KernelTest::new(
        "allocator_cross_cpu_frees_leak_nothing",
        smp::allocator_cross_cpu_frees_leak_nothing,
    ),
    KernelTest::new(
        "ipi_storm_between_every_pair_loses_nothing",
        smp::ipi_storm_between_every_pair_loses_nothing,
    ),
    KernelTest::new(
        "halted_cpu_wakes_on_remote_message",
        smp::halted_cpu_wakes_on_remote_message,
    ),
    KernelTest::new(
        "cross_cpu_ping_pong_loses_no_wakeup",
        smp::cross_cpu_ping_pong_loses_no_wakeup,
    ),
    KernelTest::new(
        "ipis_survive_an_interrupt_flood_on_the_sender",
        smp::ipis_survive_an_interrupt_flood_on_the_sender,
    ),
    KernelTest::new(
        "cross_cpu_ping_pong_million_messages",
        smp::cross_cpu_ping_pong_million_messages,
    )
    .by_name_only(),
    // Tests of the runner itself: xtask selects them by name and checks that
    // the run FAILS (a panic nobody expected) or HANGS (caught by its timeout).
    KernelTest::new(
        "selftest_unexpected_panic",
        report::selftest_unexpected_panic,
    )
    .by_name_only(),
    KernelTest::new("selftest_hang", report::selftest_hang).by_name_only(),
    KernelTest::new(
        "pci_msi_and_intx_reach_the_edu_device",
        devices::pci_msi_and_intx_reach_the_edu_device,
    ),
    KernelTest::new("power_off", devices::power_off).by_name_only(),
    KernelTest::new("reboot", devices::reboot).by_name_only(),
    KernelTest::new("disk_reports_its_geometry", disk::disk_reports_its_geometry),
    KernelTest::new(
        "disk_interrupts_match_the_function",
        disk::disk_interrupts_match_the_function,
    ),
    KernelTest::new(
        "disk_reads_what_the_host_wrote",
        disk::disk_reads_what_the_host_wrote,
    ),
    KernelTest::new(
        "disk_writes_what_the_host_reads_back",
        disk::disk_writes_what_the_host_reads_back,
    ),
    KernelTest::new(
        "disk_many_requests_in_flight_from_every_cpu",
        disk::disk_many_requests_in_flight_from_every_cpu,
    ),
    KernelTest::new("disk_flush_after_writes", disk::disk_flush_after_writes),
    KernelTest::new(
        "disk_bad_requests_get_errors",
        disk::disk_bad_requests_get_errors,
    ),
    KernelTest::new(
        "disk_cancelled_requests_leave_the_device_usable",
        disk::disk_cancelled_requests_leave_the_device_usable,
    ),
    KernelTest::new(
        "disk_survives_an_interrupt_storm",
        disk::disk_survives_an_interrupt_storm,
    ),
];
