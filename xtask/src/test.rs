//! `cargo xtask test`: host tests, then the QEMU kernel suites, then the
//! runner's own self-tests; one closing line `N passed, M failed`.
//! Also `ktest` (named in-kernel tests) and `bench` (boot-time figures).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::build::{self, Variant};
use crate::qemu::{self, Boot, Outcome, STATUS_FAIL, STATUS_PASS};
use crate::{check_options, flag_value, prereq};

/// A whole suite boot must finish in this time under TCG.
const SUITE_TIMEOUT: Duration = Duration::from_secs(120);
/// The whole host `cargo test` step (build included) is killed after this.
const HOST_TEST_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// The hang self-test is killed after this.
const HANG_TIMEOUT: Duration = Duration::from_secs(4);
/// Boot timeout for the long by-name tests (the million-message ping-pong).
const LONG_TIMEOUT: Duration = Duration::from_secs(600);
/// SMP configurations the kernel suite runs under.
const SMP_CONFIGS: [u32; 3] = [1, 2, 4];

#[derive(Default)]
struct Tally {
    passed: usize,
    failed: usize,
    failures: Vec<String>,
}

impl Tally {
    fn record(&mut self, name: &str, ok: bool, detail: &str) {
        if ok {
            self.passed += 1;
            println!("test {name} ... ok");
        } else {
            self.failed += 1;
            println!("test {name} ... FAILED {detail}");
            self.failures.push(name.to_string());
        }
    }
}

pub fn command(args: &[String]) -> Result<(), String> {
    check_options(args, &[], &["--user"])?;
    prereq::qemu()?;
    prereq::rust_target()?;
    let mut tally = Tally::default();
    // `--user`: only the user-program suites (a quicker loop while working on userland).
    let only_user = args.iter().any(|a| a == "--user");
    if only_user {
        user_suites(&mut tally)?;
        return finish(tally);
    }

    println!("== host tests (cargo test) ==");
    host_tests(&mut tally)?;

    println!("== loom models ({}) ==", LOOM_CRATES.join(", "));
    for krate in LOOM_CRATES {
        loom(krate, Some(&mut tally))?;
    }

    println!("== QEMU kernel suites ==");
    let image = build::kernel(Variant::Test)?;
    for smp in SMP_CONFIGS {
        kernel_suite(&image, smp, &mut tally)?;
    }
    intx_suite(&image, &mut tally)?;
    million_messages(&image, &mut tally)?;

    println!("== user programs (QEMU, driven through the shell) ==");
    user_suites(&mut tally)?;

    println!("== test-runner self-tests ==");
    runner_selftests(&image, &mut tally)?;

    finish(tally)
}

/// Prints the failures and the closing `N passed, M failed` line.
fn finish(tally: Tally) -> Result<(), String> {
    if !tally.failures.is_empty() {
        println!("failures:");
        for f in &tally.failures {
            println!("    {f}");
        }
    }
    println!("{} passed, {} failed", tally.passed, tally.failed);
    if tally.failed == 0 {
        Ok(())
    } else {
        Err(format!("{} test(s) failed", tally.failed))
    }
}

/// Runs `cargo test` (the workspace's default members), streaming its
/// output, and adds up its `test result:` lines.
fn host_tests(tally: &mut Tally) -> Result<(), String> {
    // GNU timeout runs cargo in its own process group and kills the whole
    // group (test binaries included) when the limit passes: a hung host test
    // fails the run instead of hanging CI.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let limit = HOST_TEST_TIMEOUT.as_secs().to_string();
    let mut child = Command::new("timeout")
        .current_dir(build::root())
        .args([
            "--kill-after=10",
            &limit,
            &cargo,
            "test",
            "--no-fail-fast",
            "--color",
            "never",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let (mut passed, mut failed) = (0, 0);
    for line in BufReader::new(stdout).lines() {
        let line = line.map_err(|e| e.to_string())?;
        println!("{line}");
        let (p, f) = result_counts(&line);
        passed += p;
        failed += f;
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    tally.passed += passed;
    tally.failed += failed;
    if status.code() == Some(124) || status.code() == Some(137) {
        tally.record(
            "host: cargo test",
            false,
            &format!(
                "(timed out after {} s; killed)",
                HOST_TEST_TIMEOUT.as_secs()
            ),
        );
    } else if !status.success() && failed == 0 {
        // Build errors fail before any test runs.
        tally.record(
            "host: cargo test",
            false,
            "(cargo test failed before reporting results)",
        );
    } else if failed > 0 {
        tally
            .failures
            .push(format!("host: {failed} cargo test failure(s), see above"));
    }
    Ok(())
}

/// Crates with loom models (`cfg(loom)`), run by `test` and `loom`.
const LOOM_CRATES: [&str; 3] = ["executor", "ports", "fs"];

/// Runs a crate's loom models (`--cfg loom`, release, their own target dir
/// so the normal build is not invalidated); adds the results to `tally`.
fn loom(krate: &str, tally: Option<&mut Tally>) -> Result<(), String> {
    let target = build::target_dir().join("loom");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(build::root())
        .env("RUSTFLAGS", "--cfg loom")
        .env("LOOM_MAX_PREEMPTIONS", "2")
        .env("CARGO_TARGET_DIR", &target)
        .args([
            "test",
            "--color",
            "never",
            "--release",
            "--lib",
            "-p",
            krate,
            "loom",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test for loom: {e}"))?
        .wait_with_output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&output.stdout);
    print!("{text}");
    let (passed, failed) = text
        .lines()
        .map(result_counts)
        .fold((0, 0), |(p, f), (lp, lf)| (p + lp, f + lf));
    let ok = output.status.success() && failed == 0 && passed > 0;
    match tally {
        Some(t) => {
            t.passed += passed;
            t.failed += failed;
            if !ok {
                t.record(
                    &format!("loom: {krate}"),
                    false,
                    "(loom models failed or none ran)",
                );
            }
        }
        None if !ok => return Err(format!("loom models of {krate} failed or none ran")),
        None => println!("{krate}: {passed} loom models passed"),
    }
    Ok(())
}

/// `cargo xtask loom [-p CRATE]`.
pub fn loom_command(args: &[String]) -> Result<(), String> {
    check_options(args, &["-p"], &[])?;
    match flag_value(args, "-p")? {
        Some(krate) => loom(krate, None),
        None => LOOM_CRATES.iter().try_for_each(|k| loom(k, None)),
    }
}

/// (passed, failed) from a libtest `test result:` line; (0, 0) for other lines.
fn result_counts(line: &str) -> (usize, usize) {
    match line.strip_prefix("test result: ") {
        Some(rest) => (count_before(rest, " passed"), count_before(rest, " failed")),
        None => (0, 0),
    }
}

/// The number right before `suffix` in "ok. 3 passed; 0 failed; ...".
fn count_before(text: &str, suffix: &str) -> usize {
    text.split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(suffix)
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A `ktest` result line: (name, ok, detail).
fn ktest_line(line: &str) -> Option<(&str, bool, &str)> {
    let rest = line.split_once(" ktest] ")?.1;
    if let Some(name) = rest.strip_suffix(" ... ok") {
        return Some((name, true, ""));
    }
    let (name, why) = rest.split_once(" ... FAILED: ")?;
    Some((name, false, why))
}

fn show_log(outcome: &Outcome) {
    println!(
        "---- serial log ----\n{}---- end of serial log ----",
        outcome.log()
    );
}

fn timing(outcome: &Outcome) -> String {
    let first = outcome
        .lines
        .first()
        .map_or(0.0, |(t, _)| t.as_secs_f64() * 1e3);
    format!(
        "first line {first:.1} ms, exit {:.1} ms",
        outcome.elapsed.as_secs_f64() * 1e3
    )
}

/// Records every `ktest` result line of `outcome` as `kernel[<config>]::<name>`;
/// returns how many there were.
fn record_ktests(outcome: &Outcome, config: &str, tally: &mut Tally) -> usize {
    let mut seen = 0;
    for (_, line) in &outcome.lines {
        if let Some((name, ok, why)) = ktest_line(line) {
            seen += 1;
            tally.record(&format!("kernel[{config}]::{name}"), ok, why);
        }
    }
    seen
}

fn kernel_suite(image: &std::path::Path, smp: u32, tally: &mut Tally) -> Result<(), String> {
    let mut boot = Boot::new(image);
    boot.smp = smp;
    boot.append = "test=all".into();
    let disk = crate::disk::prepare_test_disk(&format!("smp{smp}"))?;
    boot.disk = Some(disk.clone());
    boot.edu = true;
    let outcome = qemu::run_captured(&boot, SUITE_TIMEOUT)?;
    let seen = record_ktests(&outcome, &format!("smp={smp}"), tally);
    let guest_wrote = outcome.contains("disk_writes_what_the_host_reads_back ... ok");
    let verified = if guest_wrote {
        crate::disk::verify_guest_pattern(&disk)
    } else {
        Err("the guest's write test did not pass".into())
    };
    tally.record(
        &format!("kernel[smp={smp}]: the host reads back the guest's disk pattern"),
        verified.is_ok(),
        verified.as_ref().err().map_or("", |e| e.as_str()),
    );
    let _ = std::fs::remove_file(&disk);
    let cpus = format!("acpi] {smp} CPUs enabled");
    tally.record(
        &format!("kernel[smp={smp}]: ACPI reports {smp} CPUs"),
        outcome.contains(&cpus),
        "",
    );
    let clean_exit = outcome.status == Some(STATUS_PASS) && outcome.contains("ktest] summary:");
    if !clean_exit || seen == 0 {
        let why = match outcome.status {
            None => format!("timed out after {} s", SUITE_TIMEOUT.as_secs()),
            Some(s) => format!("QEMU status {s} (33 is a pass; 0 is a triple fault)"),
        };
        tally.record(&format!("kernel[smp={smp}]: suite boot"), false, &why);
        show_log(&outcome);
    }
    println!("   (smp={smp}: {})", timing(&outcome));
    Ok(())
}

/// The disk tests run again (at -smp 2) with a disk that has no MSI-X, so
/// the kernel drives it through its INTx line routed by the IOAPIC.
const INTX_TESTS: &str = "disk_interrupts_match_the_function,disk_reports_its_geometry,\
disk_reads_what_the_host_wrote,disk_many_requests_in_flight_from_every_cpu,\
disk_flush_after_writes,disk_bad_requests_get_errors,\
disk_cancelled_requests_leave_the_device_usable,disk_survives_an_interrupt_storm";

/// The disk suite over INTx (see [`INTX_TESTS`]).
fn intx_suite(image: &std::path::Path, tally: &mut Tally) -> Result<(), String> {
    let mut boot = Boot::new(image);
    boot.smp = 2;
    boot.append = format!("test={INTX_TESTS}");
    let disk = crate::disk::prepare_test_disk("intx")?;
    boot.disk = Some(disk.clone());
    boot.disk_intx = true;
    let outcome = qemu::run_captured(&boot, SUITE_TIMEOUT)?;
    let _ = std::fs::remove_file(&disk);
    let seen = record_ktests(&outcome, "smp=2,intx", tally);
    let expected = INTX_TESTS.split(',').count();
    tally.record(
        "kernel[smp=2,intx]: the disk runs on INTx, every disk test ran",
        outcome.contains("INTx on GSI") && seen == expected,
        &format!("(ran {seen} of {expected}; see the serial log)"),
    );
    if outcome.status != Some(STATUS_PASS) || seen != expected {
        show_log(&outcome);
    }
    println!("   (smp=2, INTx disk: {})", timing(&outcome));
    Ok(())
}

/// The million-message cross-CPU ping-pong, in a boot of its own: it takes
/// 100-140 s under TCG, past the suites' timeout.
fn million_messages(image: &std::path::Path, tally: &mut Tally) -> Result<(), String> {
    const NAME: &str = "cross_cpu_ping_pong_million_messages";
    let mut boot = Boot::new(image);
    boot.smp = 2;
    boot.append = format!("test={NAME}");
    let outcome = qemu::run_captured(&boot, LONG_TIMEOUT)?;
    let ok = outcome.status == Some(STATUS_PASS) && outcome.contains(&format!("{NAME} ... ok"));
    let why = match outcome.status {
        None => format!("timed out after {} s", LONG_TIMEOUT.as_secs()),
        _ => "see the serial log".into(),
    };
    tally.record(&format!("kernel[smp=2]::{NAME}"), ok, &why);
    if !ok {
        show_log(&outcome);
    }
    println!("   (million messages: {})", timing(&outcome));
    Ok(())
}

/// The user test programs (`user/tests`), each printing one `PASS name` or
/// `FAIL name: reason` line, run one after another from the shell.
const USER_TESTS: [&str; 11] = [
    "trap",
    "clock",
    "efault",
    "leak_check",
    "spawn_wait",
    "faults",
    "ring",
    "exit_inflight",
    "scribble",
    "fuzz",
    "c-hello",
];

/// The benchmark programs in `user/bench`, in the order they run.
const USER_BENCHES: [&str; 6] = [
    "bench_syscall",
    "bench_ring",
    "bench_ipc",
    "bench_spawn",
    "bench_file",
    "bench_disk",
];

/// Runs the user benchmark programs from the shell at -smp 2 (as the Linux
/// peer runs its own) and prints their `RESULT` lines.
fn user_benchmarks() -> Result<(), String> {
    let image = build::kernel(Variant::Normal)?;
    let mut boot = Boot::new(&image);
    boot.smp = 2;
    // A fresh, fully written disk for the disk benchmark, as the Linux peer's.
    let disk = crate::disk::prepare_bench_disk()?;
    boot.disk = Some(disk.clone());
    let mut commands: Vec<String> = USER_BENCHES
        .iter()
        .map(|b| format!("/bin/bench/{b}"))
        .collect();
    commands.push(format!("echo {SESSION_DONE}"));
    let o = qemu::run_session(&boot, &commands, SESSION_DONE, Duration::from_secs(600));
    // The image is on the host's tmpfs (memory): never leave it behind.
    let _ = std::fs::remove_file(&disk);
    let o = o?;
    println!(
        "# user programs (TCG, -M q35 with qboot, -smp 2), the peer-linux benchmarks' method and names"
    );
    for (_, line) in &o.lines {
        if line.starts_with("RESULT ") || line.starts_with("FAIL ") || line.starts_with("SKIP ") {
            println!("{line}");
        }
    }
    if o.status != Some(0) {
        show_log(&o);
        return Err("the user benchmark session did not finish".into());
    }
    Ok(())
}

/// Marks the end of a scripted shell session.
const SESSION_DONE: &str = "SESSION-DONE";

/// The user programs at -smp 1 and 2, then the typed shell session.
fn user_suites(tally: &mut Tally) -> Result<(), String> {
    let normal = build::kernel(Variant::Normal)?;
    for smp in [1, 2] {
        user_suite(&normal, smp, tally)?;
    }
    device_session(&normal, tally)?;
    shell_session(&normal, tally)?;
    console_session(&normal, tally)
}

/// Bytes of the console input storm: larger than the driver's receive ring
/// (4 KiB) and the line discipline's limit (16 KiB), so flow control is used.
const STORM_LINES: usize = 800;

/// The console driver and its line discipline, typed through the serial port:
/// editing keys, ^C of a running program and at the prompt, ^D ending `cat`
/// and the shell, and an input storm (issue 7).
fn console_session(image: &std::path::Path, tally: &mut Tally) -> Result<(), String> {
    use crate::session::Step::{self, Burst, Expect, Pause, Type};
    let mut boot = Boot::new(image);
    boot.smp = 2;
    let expect = |label: &str, text: &str| Expect {
        label: format!("console: {label}"),
        text: text.into(),
    };
    let storm: String = (0..STORM_LINES)
        .map(|i| format!("storm {i:05} abcdefghijklmnopqrstuvwxyz0123\n"))
        .collect();
    let mut storm_bytes = storm.clone().into_bytes();
    storm_bytes.push(0x04); // ^D at the start of a line: end of file for cat
    let steps: Vec<Step> = vec![
        expect("the shell prompts", "$ "),
        Type("\x7f\x08echo abX\x7f\x7fcd\r".into()),
        expect(
            "backspace (also at the start of a line) edits the line",
            "\nacd\n",
        ),
        Type("garbage\x15echo killed line\r".into()),
        expect("^U kills the line", "\nkilled line\n"),
        Type("sleep 100\r".into()),
        Pause(Duration::from_millis(1500)),
        Type("\x03".into()),
        expect("^C echoes and ends `sleep 100`", "^C\n$ "),
        Type("echo status=$?\r".into()),
        expect("a program ended by ^C leaves $? = 130", "\nstatus=130\n"),
        Type("half typed\x03".into()),
        expect("^C at the prompt gives a fresh prompt", "half typed^C\n$ "),
        Type("echo again=$?\r".into()),
        expect("and sets $? = 130", "\nagain=130\n"),
        Type("cat\r".into()),
        Type("line one\r".into()),
        expect("cat gets a line at a time", "line one\nline one\n"),
        Type("part\x04".into()),
        expect("^D on a non-empty line delivers it", "partpart"),
        Type("\x04".into()),
        expect("^D on an empty line ends cat", "$ "),
        Type("echo cat=$?\r".into()),
        expect("cat exits 0 at end of file", "\ncat=0\n"),
        Type("mkdir -p /tmp\r".into()),
        expect("prompt", "$ "),
        Type("cat > /tmp/storm\r".into()),
        Pause(Duration::from_millis(500)),
        Burst(storm_bytes),
        expect(
            "the storm's last line is echoed",
            &format!("storm {:05}", STORM_LINES - 1),
        ),
        expect("cat ends at the ^D after the storm", "$ "),
        Type("stat /tmp/storm\r".into()),
        expect(
            "every byte of the storm arrived",
            &format!("Size: {}\t", storm.len()),
        ),
        Type("echo alive\r".into()),
        expect("the kernel still answers", "\nalive\n"),
        Type("\x04".into()),
        Pause(Duration::from_millis(500)),
        Type("echo respawned\r".into()),
        expect(
            "^D at the prompt exits sh; init starts a new one",
            "\nrespawned\n",
        ),
    ];
    let t = crate::session::run(&boot, &steps, Duration::from_secs(90))?;
    let expected = steps.iter().filter(|s| matches!(s, Expect { .. })).count();
    let mut all_ok = t.checks.len() == expected;
    for (label, ok) in &t.checks {
        all_ok &= ok;
        tally.record(label, *ok, "not in the output in time");
    }
    for step in &steps[..] {
        if let Expect { label, .. } = step
            && !t.checks.iter().any(|(l, _)| l == label)
        {
            tally.record(label, false, "not reached (an earlier check failed)");
        }
    }
    if !all_ok {
        println!(
            "---- console output ----\n{}\n---- end ({:.1} s) ----",
            t.output,
            t.elapsed.as_secs_f64()
        );
    }
    println!("   (console session: {:.1} s)", t.elapsed.as_secs_f64());
    Ok(())
}

fn user_suite(image: &std::path::Path, smp: u32, tally: &mut Tally) -> Result<(), String> {
    let mut boot = Boot::new(image);
    boot.smp = smp;
    let mut commands: Vec<String> = USER_TESTS
        .iter()
        .map(|t| format!("/bin/tests/{t}"))
        .collect();
    commands.push(format!("echo {SESSION_DONE}"));
    let outcome = qemu::run_session(&boot, &commands, SESSION_DONE, SUITE_TIMEOUT)?;
    let mut results: std::collections::BTreeMap<String, (bool, String)> = Default::default();
    for (_, line) in &outcome.lines {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("PASS ") {
            let name = rest.split_whitespace().next().unwrap_or("").to_string();
            results.insert(name, (true, String::new()));
        } else if let Some(rest) = line.strip_prefix("FAIL ") {
            let (name, why) = rest.split_once(':').unwrap_or((rest, ""));
            results.insert(name.trim().to_string(), (false, why.trim().to_string()));
        }
    }
    for test in USER_TESTS {
        match results.get(test) {
            Some((ok, why)) => tally.record(&format!("user[smp={smp}]::{test}"), *ok, why),
            None => tally.record(
                &format!("user[smp={smp}]::{test}"),
                false,
                "printed no PASS/FAIL line",
            ),
        }
    }
    let healthy = outcome.status == Some(0);
    tally.record(
        &format!("user[smp={smp}]: the kernel survived every program"),
        healthy,
        "the session did not finish (see the log)",
    );
    if !healthy || results.values().any(|(ok, _)| !ok) {
        show_log(&outcome);
    }
    println!(
        "   (user smp={smp}: {:.1} s)",
        outcome.elapsed.as_secs_f64()
    );
    Ok(())
}

/// The devices from the shell, on a machine with a test disk: `lspci`
/// lists the virtio disk, `date` tells the host's time (the RTC), and the
/// `blockdev` test program does block I/O through `/dev/vda`, whose result
/// xtask then checks in the image.
fn device_session(image: &std::path::Path, tally: &mut Tally) -> Result<(), String> {
    let mut boot = Boot::new(image);
    boot.smp = 2;
    let disk = crate::disk::prepare_test_disk("devices")?;
    boot.disk = Some(disk.clone());
    let commands = [
        "lspci".to_string(),
        "date +%s".to_string(),
        "date".to_string(),
        "/bin/tests/blockdev".to_string(),
        format!("echo {SESSION_DONE}"),
    ];
    let outcome = qemu::run_session(&boot, &commands, SESSION_DONE, SUITE_TIMEOUT)?;
    let passed = outcome.contains("PASS blockdev");
    tally.record(
        "devices: /bin/tests/blockdev (block I/O through /dev/vda)",
        passed,
        outcome
            .lines
            .iter()
            .find(|(_, l)| l.starts_with("FAIL blockdev"))
            .map_or("no PASS line", |(_, l)| l.as_str()),
    );
    let verified = if passed {
        crate::disk::verify_user_pattern(&disk)
    } else {
        Err("the program did not pass".into())
    };
    tally.record(
        "devices: the host reads back what the program wrote to /dev/vda",
        verified.is_ok(),
        verified.as_ref().err().map_or("", |e| e.as_str()),
    );
    let _ = std::fs::remove_file(&disk);
    let output: Vec<&str> = outcome
        .lines
        .iter()
        .map(|(_, l)| l.trim())
        .filter(|l| !l.starts_with("$ "))
        .collect();
    let lspci = output
        .iter()
        .any(|l| l.starts_with("00:") && l.contains("[1af4:1001]") && l.contains("storage"));
    tally.record(
        "devices: `lspci` lists the virtio-blk disk",
        lspci,
        "no 1af4:1001 line",
    );
    let host_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let guest_now = output.iter().find_map(|l| l.parse::<i64>().ok());
    let close = guest_now.is_some_and(|g| (g - host_now).abs() < 600);
    tally.record(
        "devices: `date +%s` is the host's time (CMOS RTC)",
        close,
        &format!("guest says {guest_now:?}, host {host_now}"),
    );
    let date = output.iter().any(|l| l.contains(" UTC ") && l.len() >= 28);
    tally.record(
        "devices: `date` prints the calendar time",
        date,
        "no `... UTC yyyy` line",
    );
    if outcome.status != Some(0) || !(lspci && close && date && passed && verified.is_ok()) {
        show_log(&outcome);
    }
    Ok(())
}

/// A person's session at the shell, typed through the serial port: each
/// command's output is checked.
fn shell_session(image: &std::path::Path, tally: &mut Tally) -> Result<(), String> {
    let mut boot = Boot::new(image);
    boot.smp = 2;
    // (typed line, text the output must then contain)
    let steps: [(&str, &str); 23] = [
        ("echo hello world", "hello world"),
        ("echo abX\x7fc", "abc"),
        ("cd /bin", ""),
        ("pwd", "/bin"),
        ("cd /", ""),
        ("mkdir /work", ""),
        ("echo first > /work/f", ""),
        ("echo second >> /work/f", ""),
        ("cat < /work/f | cat", "first\nsecond"),
        ("mv /work/f /work/g", ""),
        ("ls /work", "g"),
        ("false", ""),
        ("echo status=$?", "status=1"),
        ("ps", "~init"),
        ("GREETING=hi env", "~GREETING=hi"),
        ("PLACE=lab", ""),
        ("WHO=you env", "~PLACE=lab"),
        // Pinned children report the CPU they were put on (unpinned, the two `ps` would
        // take round-robin slots of the same parity: `oncpu` itself takes one between).
        ("oncpu 0 ps", "~  0 running  ps"),
        ("oncpu 1 ps", "~  1 running  ps"),
        ("oncpu 1 false", ""),
        ("echo oncpu=$?", "oncpu=1"),
        ("oncpu 7 true", "~oncpu: /bin/true on CPU 7: "),
        ("echo bad=$?", "bad=127"),
    ];
    let commands: Vec<String> = steps
        .iter()
        .map(|(typed, _)| typed.to_string())
        .chain(std::iter::once(format!("echo {SESSION_DONE}")))
        .collect();
    let outcome = qemu::run_session(&boot, &commands, SESSION_DONE, SUITE_TIMEOUT)?;
    // Output lines only (not the echoed command lines after a prompt).
    let output: Vec<&str> = outcome
        .lines
        .iter()
        .map(|(_, l)| l.trim())
        .filter(|l| !l.starts_with("$ "))
        .collect();
    let mut all_ok = true;
    for (typed, expect) in steps {
        if expect.is_empty() {
            continue;
        }
        // Whole consecutive lines; `~text` means a line containing text.
        let wanted: Vec<&str> = expect.split('\n').collect();
        let matches = |line: &str, want: &str| match want.strip_prefix('~') {
            Some(part) => line.contains(part),
            None => line == want,
        };
        let ok = output
            .windows(wanted.len())
            .any(|w| w.iter().zip(&wanted).all(|(l, e)| matches(l, e)));
        all_ok &= ok;
        tally.record(
            &format!("shell: `{typed}` shows {expect:?}"),
            ok,
            "not in the output",
        );
    }
    tally.record(
        "shell: session completed",
        outcome.status == Some(0),
        "timed out",
    );
    if !all_ok || outcome.status != Some(0) {
        show_log(&outcome);
    }
    Ok(())
}

fn runner_selftests(image: &std::path::Path, tally: &mut Tally) -> Result<(), String> {
    let boot_with = |append: &str| {
        let mut b = Boot::new(image);
        b.append = append.into();
        b
    };

    let o = qemu::run_captured(&boot_with("test=selftest_unexpected_panic"), SUITE_TIMEOUT)?;
    let ok = o.status == Some(STATUS_FAIL)
        && o.contains("selftest_unexpected_panic ... FAILED: unexpected panic at ")
        && o.contains(": selftest: a panic no test expects")
        && o.contains("!!! PANIC: selftest: a panic no test expects")
        && o.contains("report::selftest_unexpected_panic");
    tally.record(
        "runner: an unexpected panic fails the run with a symbolised report",
        ok,
        "",
    );
    if !ok {
        show_log(&o);
    }

    let o = qemu::run_captured(&boot_with("test=selftest_hang"), HANG_TIMEOUT)?;
    let ok = o.timed_out() && o.contains("ktest] selftest_hang ...");
    tally.record("runner: a hang is caught by the boot timeout", ok, "");
    if !ok {
        show_log(&o);
    }

    // ACPI power-off and reset: QEMU exits with status 0 (never reachable
    // through isa-debug-exit), after the kernel's line naming the register.
    let o = qemu::run_captured(&boot_with("test=power_off"), SUITE_TIMEOUT)?;
    let ok = o.status == Some(0) && o.contains("power] ACPI power-off: S5");
    tally.record("power: shutdown powers QEMU off through ACPI S5", ok, "");
    if !ok {
        show_log(&o);
    }
    let o = qemu::run_captured(&boot_with("test=reboot"), SUITE_TIMEOUT)?;
    let ok = o.status == Some(0)
        && o.contains("power] reset through the ACPI reset register")
        && !o.contains("keyboard controller");
    tally.record(
        "power: reboot resets through the ACPI reset register",
        ok,
        "",
    );
    if !ok {
        show_log(&o);
    }

    let o = qemu::run_captured(&boot_with("test=no_such_test"), SUITE_TIMEOUT)?;
    let ok = o.status == Some(STATUS_FAIL) && o.contains("no test matches \"no_such_test\"");
    tally.record("runner: an unknown test name is an error", ok, "");
    if !ok {
        show_log(&o);
    }

    let o = qemu::run_captured(&boot_with("bogus=1 test=boot_info_is_sane"), SUITE_TIMEOUT)?;
    let ok = o.status == Some(STATUS_PASS)
        && o.contains("UnknownOption(\"bogus\") ignored; valid options: log=");
    tally.record(
        "boot: an unknown command-line option warns and lists the valid ones",
        ok,
        "",
    );
    if !ok {
        show_log(&o);
    }
    Ok(())
}

/// `cargo xtask ktest NAME[,NAME] [--smp N]`.
pub fn ktest_command(args: &[String]) -> Result<(), String> {
    let (names, rest) = args
        .split_first()
        .ok_or("which test? `cargo xtask ktest list` names them")?;
    check_options(rest, &["--smp", "--timeout", "--append"], &["--disk-intx"])?;
    prereq::qemu()?;
    let timeout = match flag_value(rest, "--timeout")? {
        Some(t) => Duration::from_secs(
            t.parse()
                .map_err(|_| format!("--timeout takes seconds, not {t:?}"))?,
        ),
        None if names.contains("million") => LONG_TIMEOUT,
        None => SUITE_TIMEOUT,
    };
    let image = build::kernel(Variant::Test)?;
    let mut boot = Boot::new(&image);
    boot.append = match flag_value(rest, "--append")? {
        Some(extra) => format!("test={names} {extra}"),
        None => format!("test={names}"),
    };
    let disk = crate::disk::prepare_test_disk("ktest")?;
    boot.disk = Some(disk.clone());
    boot.disk_intx = rest.iter().any(|a| a == "--disk-intx");
    boot.edu = true;
    if let Some(smp) = flag_value(rest, "--smp")? {
        boot.smp = smp
            .parse()
            .map_err(|_| format!("--smp takes a number, not {smp:?}"))?;
    }
    let outcome = qemu::run_captured(&boot, timeout)?;
    print!("{}", outcome.log());
    println!("({})", timing(&outcome));
    if outcome.contains("disk_writes_what_the_host_reads_back ... ok") {
        match crate::disk::verify_guest_pattern(&disk) {
            Ok(()) => println!("xtask: the host read back the guest's disk pattern"),
            Err(e) => return Err(format!("the guest's disk pattern is wrong: {e}")),
        }
    }
    match outcome.status {
        Some(STATUS_PASS) => Ok(()),
        None => Err(format!("timed out after {} s", timeout.as_secs())),
        Some(s) => Err(format!("failed (QEMU status {s})")),
    }
}

/// Median, min, max of `samples` in nanoseconds, as a `RESULT` line.
fn result_line(name: &str, samples: &mut [f64]) -> String {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    format!(
        "RESULT {name} ns_per_op={median:.0} min={:.0} max={:.0} samples={} iters=1",
        samples[0],
        samples[samples.len() - 1],
        samples.len()
    )
}

/// `cargo xtask bench [--runs N]`: boot-time figures under TCG.
pub fn bench_command(args: &[String]) -> Result<(), String> {
    check_options(args, &["--runs"], &[])?;
    let runs: usize = flag_value(args, "--runs")?
        .unwrap_or("10")
        .parse()
        .map_err(|_| "--runs takes a number")?;
    prereq::qemu()?;
    // Benchmarks measure the optimised kernel (tests run the dev build).
    build::use_release_profile();
    let image = build::kernel(Variant::Test)?;
    let (mut first_line, mut kmain, mut small_exit, mut suite_exit) =
        (vec![], vec![], vec![], vec![]);
    for _ in 0..runs.max(1) {
        let mut boot = Boot::new(&image);
        boot.append = "test=boot_info_is_sane".into();
        let o = qemu::run_captured(&boot, SUITE_TIMEOUT)?;
        if o.status != Some(STATUS_PASS) {
            show_log(&o);
            return Err("a benchmark boot failed".into());
        }
        first_line.push(o.lines.first().map_or(0.0, |(t, _)| t.as_nanos() as f64));
        let up = o
            .lines
            .iter()
            .find(|(_, l)| l.contains(" up"))
            .map_or(0.0, |(t, _)| t.as_nanos() as f64);
        kmain.push(up);
        small_exit.push(o.elapsed.as_nanos() as f64);
        // The whole suite, with the devices its tests need (as `kernel_suite`).
        boot.append = "test=all".into();
        boot.disk = Some(crate::disk::prepare_test_disk("bench")?);
        boot.edu = true;
        let o = qemu::run_captured(&boot, SUITE_TIMEOUT)?;
        if o.status != Some(STATUS_PASS) {
            show_log(&o);
            return Err("a benchmark boot of the suite failed".into());
        }
        suite_exit.push(o.elapsed.as_nanos() as f64);
    }
    println!(
        "# in-guest benchmarks (TCG, -M q35; -smp 2: client and server on one AP, -smp 3: two APs;"
    );
    println!(
        "# -smp 4: IPI CPU 0 -> 1, allocators on CPUs 0..k for k = 1, 2, 4, remote frees CPU 1 -> 2)"
    );
    for smp in [2, 3, 4] {
        let mut boot = Boot::new(&image);
        boot.smp = smp;
        boot.append = match smp {
            2 => "test=bench_cross_cpu_port_round_trip,bench_sleep_1ms_overshoot,bench_user_trap_round_trip".into(),
            3 => "test=bench_cross_cpu_port_round_trip".into(),
            _ => "test=bench_ipi_one_way,bench_alloc_free_scaling,bench_remote_free".into(),
        };
        let o = qemu::run_captured(&boot, SUITE_TIMEOUT)?;
        if o.status != Some(STATUS_PASS) {
            show_log(&o);
            return Err(format!("the in-guest benchmark failed at -smp {smp}"));
        }
        for (_, line) in &o.lines {
            if let Some(i) = line.find("RESULT ") {
                println!("{}", &line[i..]);
            }
        }
    }
    user_benchmarks()?;
    println!("# boot timing: QEMU start to event, TCG, -M q35 with qboot, -smp 1, {runs} runs");
    println!(
        "{}",
        result_line("boot_qemu_start_to_first_log_line", &mut first_line)
    );
    println!("{}", result_line("boot_qemu_start_to_kmain", &mut kmain));
    println!(
        "{}",
        result_line("boot_qemu_start_to_exit_one_test", &mut small_exit)
    );
    println!(
        "{}",
        result_line("boot_qemu_start_to_exit_full_suite", &mut suite_exit)
    );
    Ok(())
}
