//! xtask: build, boot and test Damselfly. `cargo xtask help` lists commands.
//!
//! Everything a developer or CI does goes through here, so a green run
//! locally means a green CI: `cargo xtask test` is the whole test suite.
#![forbid(unsafe_code)]

mod build;
mod disk;
mod prereq;
mod qemu;
mod session;
mod symbols;
mod test;
mod user;

use std::process::ExitCode;

const HELP: &str = "\
cargo xtask <command> [options]

commands:
  build                 build the kernel (and its test variant with --test)
  run [options]         boot Damselfly in QEMU, console on this terminal
        --smp N         CPUs (default 1)
        --mem SIZE      memory, QEMU syntax (default 256M)
        --accel tcg|kvm accelerator (default tcg, the reference)
        --gdb           wait for a debugger on localhost:1234
        --append TEXT   extra kernel command line
        --disk FILE     attach FILE (raw) as /dev/vda (default: build/disk.img, 64 MiB, created once)
        --no-disk       no disk
        --disk-intx     attach the disk without MSI-X (the kernel uses its INTx line)
        --release       optimised kernel
  test                  every test: host crates, loom models, then QEMU suites (-smp 1, 2, 4)
  ktest NAME[,NAME]     boot the test kernel running the named in-kernel tests
        --smp N
        --disk-intx     the disk without MSI-X (INTx through the IOAPIC)
        --timeout SECS  boot timeout (default 120; 600 for the million-message test)
        --append TEXT   extra kernel command line (e.g. haltpoll=0)
  bench [--runs N]      boot-time figures (medians over N boots, default 10)
  loom [-p CRATE]       loom model checks (executor, ports, fs; --cfg loom, release)
  help                  this text
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{HELP}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "build" => build::command(rest),
        "run" => qemu::run_command(rest),
        "test" => test::command(rest),
        "ktest" => test::ktest_command(rest),
        "bench" => test::bench_command(rest),
        "loom" => test::loom_command(rest),
        "help" | "--help" | "-h" => {
            print!("{HELP}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{HELP}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The value following `flag` in `args`, if present.
pub fn flag_value<'a>(args: &'a [String], flag: &str) -> Result<Option<&'a str>, String> {
    match args.iter().position(|a| a == flag) {
        None => Ok(None),
        Some(i) => args
            .get(i + 1)
            .map(|v| Some(v.as_str()))
            .ok_or(format!("{flag} needs a value")),
    }
}

/// Rejects options not in `known` (flags with values list the flag only).
pub fn check_options(
    args: &[String],
    known_flags: &[&str],
    known_switches: &[&str],
) -> Result<(), String> {
    let mut i = 0;
    while i < args.len() {
        let a = args[i].as_str();
        if known_flags.contains(&a) {
            i += 2;
        } else if known_switches.contains(&a) {
            i += 1;
        } else {
            return Err(format!("unknown option {a:?} (see `cargo xtask help`)"));
        }
    }
    Ok(())
}
