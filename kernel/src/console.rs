//! The kernel console: a small command prompt on COM1 when there is no
//! `/bin/init`. Lines come from the console driver's line discipline
//! (`rootfs::console`), or by polling COM1 when the driver is not running.
//! Type `help` for the commands.

use alloc::string::String;

use hal::arch::{cpu, serial};

const HELP: &str = "commands: help, mem, cmdline, cat PATH, panic (demonstrates the panic report), shutdown (ACPI power-off), reboot, halt (leave QEMU through its debug-exit device)";

fn print(s: &str) {
    serial::write_str(s);
}

/// Reads commands forever (or until `halt`).
pub fn run() -> ! {
    print("\nDamselfly kernel console (no userland yet). Type `help`.\n");
    let mut line = String::new();
    loop {
        print("damselfly> ");
        line.clear();
        read_line(&mut line);
        match line.trim() {
            "" => {}
            "help" => print(HELP),
            "mem" => {
                let frames = hal::mm::frame_stats();
                let heap = hal::mm::heap_stats();
                print(&alloc::format!(
                    "frames: {} free of {} ({} MiB free); heap: {} of {} bytes used",
                    frames.free,
                    frames.usable,
                    frames.free * 4 / 1024,
                    heap.used,
                    heap.size
                ));
                print_slab_stats();
            }
            "cmdline" => print(hal::boot::info().map_or("", |i| i.cmdline())),
            "panic" => panic!("requested from the console"),
            command if command.starts_with("cat ") => {
                match crate::rootfs::read_file(command[4..].trim(), 1 << 20) {
                    Ok(bytes) => print(&String::from_utf8_lossy(&bytes)),
                    Err(e) => print(&alloc::format!("cat: {}", e.description())),
                }
            }
            "shutdown" | "poweroff" => hal::power::shutdown(),
            "reboot" => hal::power::reboot(),
            "halt" | "exit" => {
                print("bye\n");
                cpu::exit_qemu(cpu::ExitCode::Success);
            }
            other => print(&alloc::format!("unknown command {other:?}; {HELP}")),
        }
        print("\n");
    }
}

/// The slab allocator's counters: one line per CPU, then one per size
/// class in use (summed over CPUs).
fn print_slab_stats() {
    for cpu in 0..hal::arch::smp::online_cpus() {
        let Some(s) = hal::mm::slab_cpu_stats(cpu) else {
            break;
        };
        let (sent, drained) = s.classes.iter().fold((0, 0), |(a, b), c| {
            (a + c.remote_frees_sent, b + c.remote_frees)
        });
        print(&alloc::format!(
            "\nslab cpu {cpu}: {} slabs held, {} objects allocated, large allocs/frees {}/{}; remote frees sent {sent}, taken back {drained}; out of memory {}",
            s.slabs(),
            s.classes.iter().map(|c| c.allocs).sum::<u64>(),
            s.large.allocs,
            s.large.frees,
            s.out_of_memory,
        ));
    }
    let total = hal::mm::slab_stats();
    print(&alloc::format!(
        "\nslab total: {} objects ({} bytes) in use, {} pages held, {} remote frees pending",
        total.objects_in_use(),
        total.bytes_in_use(),
        total.pages_held(),
        total.pending_remote_frees()
    ));
    for c in total.classes.iter().filter(|c| c.allocs > 0) {
        print(&alloc::format!(
            "\n  class {:>5} B: {} in use, {} allocs, {} local frees, {} remote frees, {} slabs",
            c.object_size,
            c.in_use(),
            c.allocs,
            c.frees,
            c.remote_frees,
            c.slabs
        ));
    }
}

/// Reads one line: from the console driver's line discipline when it runs
/// (it echoes and edits), else by polling COM1 with echo and backspace here.
fn read_line(line: &mut String) {
    if let Some(console) = crate::rootfs::console() {
        let mut buf = [0u8; 256];
        loop {
            let mut got = None;
            crate::sched::run_until(
                &mut || {
                    got = console.try_read(&mut buf).ok();
                    got.is_some()
                },
                1_000_000,
            );
            match got {
                // End of file (^D) ends the line too.
                Some(0) => return,
                Some(n) => {
                    line.push_str(&String::from_utf8_lossy(&buf[..n]));
                    if line.ends_with('\n') {
                        return;
                    }
                }
                None => {}
            }
        }
    }
    loop {
        // Wait for input while CPU 0's tasks run (no console driver: polled).
        let mut input = None;
        crate::sched::run_until(
            &mut || {
                input = serial::try_read_byte();
                input.is_some()
            },
            1_000_000,
        );
        let Some(byte) = input else { continue };
        match byte {
            b'\r' | b'\n' => {
                print("\n");
                return;
            }
            0x7f | 0x08 if line.pop().is_some() => print("\x08 \x08"),
            b if b.is_ascii_graphic() || b == b' ' => {
                line.push(b as char);
                serial::write_byte(b);
            }
            _ => {}
        }
    }
}
