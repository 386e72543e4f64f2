//! Booting QEMU: the interactive `run`, and captured boots with a timeout
//! for tests and benchmarks.
//!
//! The reference setup is TCG on `-M q35` with qboot as firmware: PCI
//! Express with ECAM (ACPI MCFG), MSI-X, the HPET and a virtio-blk disk,
//! and still a fast boot (qboot skips SeaBIOS's option ROMs; about 60 ms to
//! the kernel here). KVM on these machines is a nested kvm-pvm with quirks
//! (shared/reference/boot.md, section 7), so it is an option, not the
//! default. The kernel leaves through isa-debug-exit: QEMU status 33 is
//! success, 35 failure; a triple fault exits 0, which is never a pass.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::build::{self, Variant};
use crate::{check_options, flag_value, prereq};

/// QEMU status for a kernel that exited with `ExitCode::Success`.
pub const STATUS_PASS: i32 = 33;
/// QEMU status for `ExitCode::Failure` (test failure, panic, fault).
pub const STATUS_FAIL: i32 = 35;

/// One boot's configuration.
#[derive(Clone, Debug)]
pub struct Boot {
    pub image: PathBuf,
    pub smp: u32,
    pub mem: String,
    pub accel: String,
    pub append: String,
    pub gdb: bool,
    /// The boot archive, passed as the PVH module.
    pub initrd: Option<PathBuf>,
    /// A raw disk image attached as a virtio-blk PCI device (`/dev/vda`).
    pub disk: Option<PathBuf>,
    /// Attach the disk without MSI-X (`vectors=0`), so the kernel falls
    /// back to the function's INTx line through the IOAPIC.
    pub disk_intx: bool,
    /// Attach QEMU's `edu` device (after the disk): the test kernel raises
    /// its MSI and INTx interrupts (`pci_msi_and_intx_reach_the_edu_device`).
    pub edu: bool,
}

/// The firmware that boots q35 quickly (Debian's qemu-system-data ships it).
pub const QBOOT: &str = "/usr/share/qemu/qboot.rom";

/// Size of the disk image xtask creates when none is given.
pub const DEFAULT_DISK_BYTES: u64 = 64 << 20;

/// The QEMU options of the disk: the same for Damselfly and the Linux peer
/// (bench/peer-linux), so disk benchmarks compare like with like. `intx`
/// removes the function's MSI-X capability (`vectors=0`).
pub fn disk_args(image: &Path, intx: bool) -> Vec<String> {
    vec![
        "-drive".into(),
        format!("if=none,id=disk0,format=raw,file={}", image.display()),
        "-device".into(),
        if intx {
            "virtio-blk-pci,drive=disk0,vectors=0".into()
        } else {
            "virtio-blk-pci,drive=disk0".into()
        },
    ]
}

/// Creates (or replaces) a zero-filled raw image of `bytes`.
pub fn create_disk(path: &Path, bytes: u64) -> Result<(), String> {
    let file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.set_len(bytes)
        .map_err(|e| format!("cannot size {}: {e}", path.display()))
}

/// The default disk, `build/disk.img`: created (64 MiB of zeros) when
/// missing, kept across runs like a real disk.
pub fn default_disk() -> Result<PathBuf, String> {
    let path = build::out_dir().join("disk.img");
    if !path.exists() {
        create_disk(&path, DEFAULT_DISK_BYTES)?;
        eprintln!(
            "xtask: created {} ({} MiB)",
            path.display(),
            DEFAULT_DISK_BYTES >> 20
        );
    }
    Ok(path)
}

impl Boot {
    pub fn new(image: &Path) -> Self {
        Self {
            image: image.to_path_buf(),
            smp: 1,
            mem: "256M".into(),
            accel: "tcg".into(),
            append: String::new(),
            gdb: false,
            initrd: Some(build::initrd_path()).filter(|p| p.exists()),
            disk: None,
            disk_intx: false,
            edu: false,
        }
    }

    pub(crate) fn command(&self, serial: &str) -> Command {
        let mut qemu = Command::new(prereq::QEMU);
        qemu.args(["-M", "q35"]);
        if Path::new(QBOOT).exists() {
            qemu.args(["-bios", QBOOT]);
        }
        qemu.args([
            "-accel",
            &self.accel,
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
        ]);
        if self.accel == "kvm" {
            // `-cpu host` aborts on kvm-pvm unless arch-capabilities is off.
            qemu.args(["-cpu", "host,-arch-capabilities"]);
        } else {
            // Every feature TCG emulates: SMEP, SMAP, XSAVE and AVX for user
            // mode, NX, x2APIC (qemu64, the default, has none of the first four).
            qemu.args(["-cpu", "max"]);
        }
        qemu.args(["-smp", &self.smp.to_string(), "-m", &self.mem]);
        qemu.args([
            "-serial",
            serial,
            "-device",
            "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]);
        qemu.arg("-kernel").arg(&self.image);
        if let Some(initrd) = &self.initrd {
            qemu.arg("-initrd").arg(initrd);
        }
        if let Some(disk) = &self.disk {
            qemu.args(disk_args(disk, self.disk_intx));
        }
        if self.edu {
            qemu.args(["-device", "edu"]);
        }
        if !self.append.is_empty() {
            qemu.args(["-append", &self.append]);
        }
        if self.gdb {
            qemu.args(["-s", "-S"]);
        }
        // Extra arguments for debugging (a monitor socket, tracing), split on spaces.
        if let Ok(extra) = std::env::var("XTASK_QEMU_ARGS") {
            qemu.args(extra.split_whitespace());
        }
        qemu
    }

    /// A shell-pasteable form of the command, for logs.
    pub fn describe(&self) -> String {
        let cmd = self.command("stdio");
        let args: Vec<String> = cmd
            .get_args()
            .map(|a| {
                let a = a.to_string_lossy();
                if a.contains(' ') || a.is_empty() {
                    format!("'{a}'")
                } else {
                    a.into_owned()
                }
            })
            .collect();
        format!("{} {}", prereq::QEMU, args.join(" "))
    }
}

/// What a captured boot produced.
#[derive(Debug)]
pub struct Outcome {
    /// QEMU's exit status; `None` when the timeout killed it.
    pub status: Option<i32>,
    /// Serial lines, each with its arrival time after QEMU started.
    pub lines: Vec<(Duration, String)>,
    /// QEMU's own error output.
    pub stderr: String,
    pub elapsed: Duration,
}

impl Outcome {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        for (_, line) in &self.lines {
            s.push_str(line);
            s.push('\n');
        }
        if !self.stderr.is_empty() {
            s.push_str("--- qemu stderr ---\n");
            s.push_str(&self.stderr);
        }
        s
    }

    pub fn contains(&self, needle: &str) -> bool {
        self.lines.iter().any(|(_, l)| l.contains(needle))
    }
}

/// Boots and captures the serial console; kills QEMU after `timeout`.
pub fn run_captured(boot: &Boot, timeout: Duration) -> Result<Outcome, String> {
    let start = Instant::now();
    let mut child = boot
        .command("stdio")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", prereq::QEMU))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n') {
            let Ok(line) = line else { break };
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_string();
            if tx.send((start.elapsed(), text)).is_err() {
                break;
            }
        }
    });
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = Vec::new();
    let status = loop {
        while let Ok(line) = rx.try_recv() {
            lines.push(line);
        }
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status.code();
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(5)) {
            lines.push(line);
        }
    };
    let _ = reader.join();
    lines.extend(rx.try_iter());
    let stderr = err_reader.join().unwrap_or_default();
    // A kill leaves status None; a signal death (no code) is reported as -1.
    let status = match status {
        None if start.elapsed() > timeout => None,
        None => Some(-1),
        s => s,
    };
    Ok(Outcome {
        status,
        lines,
        stderr,
        elapsed: start.elapsed(),
    })
}

/// `cargo xtask run`.
pub fn run_command(args: &[String]) -> Result<(), String> {
    check_options(
        args,
        &["--smp", "--mem", "--accel", "--append", "--disk"],
        &["--gdb", "--release", "--no-disk", "--disk-intx"],
    )?;
    prereq::qemu()?;
    if args.iter().any(|a| a == "--release") {
        build::use_release_profile();
    }
    let image = build::kernel(Variant::Normal)?;
    let mut boot = Boot::new(&image);
    if let Some(smp) = flag_value(args, "--smp")? {
        boot.smp = smp
            .parse()
            .map_err(|_| format!("--smp takes a number, not {smp:?}"))?;
    }
    if let Some(mem) = flag_value(args, "--mem")? {
        boot.mem = mem.to_string();
    }
    if let Some(accel) = flag_value(args, "--accel")? {
        if accel != "tcg" && accel != "kvm" {
            return Err(format!("--accel takes tcg or kvm, not {accel:?}"));
        }
        boot.accel = accel.to_string();
    }
    if let Some(append) = flag_value(args, "--append")? {
        boot.append = append.to_string();
    }
    boot.gdb = args.iter().any(|a| a == "--gdb");
    boot.disk_intx = args.iter().any(|a| a == "--disk-intx");
    boot.disk = match flag_value(args, "--disk")? {
        _ if args.iter().any(|a| a == "--no-disk") => None,
        Some(file) => {
            let path = PathBuf::from(file);
            if !path.exists() {
                return Err(format!(
                    "--disk {file}: no such file (create one with: truncate -s 64M {file})"
                ));
            }
            Some(path)
        }
        None => Some(default_disk()?),
    };
    eprintln!("xtask: {}", boot.describe());
    eprintln!("xtask: console on this terminal; Ctrl-A X quits QEMU");
    if boot.gdb {
        eprintln!(
            "xtask: waiting for gdb: gdb {} -ex 'target remote :1234'",
            image.display()
        );
    }
    let status = boot
        .command("mon:stdio")
        .status()
        .map_err(|e| format!("cannot start QEMU: {e}"))?;
    match status.code() {
        Some(STATUS_PASS) | Some(0) => Ok(()),
        Some(code) => Err(format!(
            "the kernel exited with failure (QEMU status {code})"
        )),
        None => Err("QEMU was killed".into()),
    }
}

/// Drives the guest's shell through the serial console: sends each of
/// `commands` (with a carriage return, as a terminal does) after the next
/// shell prompt (`$ `) appears, then waits for `done` in the output and
/// stops QEMU. `Outcome::status` is `Some(0)` when `done` appeared, `None`
/// on timeout (the log then shows how far it got).
pub fn run_session(
    boot: &Boot,
    commands: &[String],
    done: &str,
    timeout: Duration,
) -> Result<Outcome, String> {
    let start = Instant::now();
    let mut qemu = PipedQemu::start(boot)?;
    let mut output: Vec<u8> = Vec::new();
    let mut line_times: Vec<Duration> = Vec::new();
    let mut prompts_seen = 0;
    let mut next = 0;
    let finished = loop {
        if let Ok(chunk) = qemu.output.recv_timeout(Duration::from_millis(5)) {
            for &b in &chunk {
                if b == b'\n' {
                    line_times.push(start.elapsed());
                }
            }
            output.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&output);
        let prompts = text.matches("$ ").count();
        if prompts > prompts_seen && next < commands.len() {
            prompts_seen = prompts;
            qemu.type_slowly(commands[next].bytes().chain(std::iter::once(b'\r')));
            next += 1;
        }
        if next == commands.len() && text.lines().any(|l| l.trim_end_matches('\r') == done) {
            break true;
        }
        if qemu.has_exited() || start.elapsed() > timeout {
            break false;
        }
    };
    let (status, rest, stderr) = qemu.stop();
    output.extend_from_slice(&rest);
    let text = String::from_utf8_lossy(&output).replace('\r', "");
    let lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| {
            (
                line_times
                    .get(i)
                    .copied()
                    .unwrap_or_else(|| start.elapsed()),
                l.to_string(),
            )
        })
        .collect();
    Ok(Outcome {
        status: if finished {
            Some(0)
        } else {
            status.filter(|_| start.elapsed() <= timeout)
        },
        lines,
        stderr,
        elapsed: start.elapsed(),
    })
}

/// A QEMU whose serial port is on pipes: what the guest writes arrives on
/// `output` in chunks (read by a thread of its own, so writing to the guest
/// can never deadlock against its output); QEMU's stderr is collected too.
pub struct PipedQemu {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    /// The guest's serial output, as it comes.
    pub output: mpsc::Receiver<Vec<u8>>,
    reader: std::thread::JoinHandle<()>,
    stderr: std::thread::JoinHandle<String>,
}

impl PipedQemu {
    /// Boots `boot` with the serial port on the pipes.
    pub fn start(boot: &Boot) -> Result<PipedQemu, String> {
        let mut child = boot
            .command("stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", prereq::QEMU))?;
        let stdin = child.stdin.take().expect("stdin is piped");
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let (tx, output) = mpsc::channel::<Vec<u8>>();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Ok(PipedQemu {
            child,
            stdin,
            output,
            reader,
            stderr,
        })
    }

    /// Types `bytes` one at a time, 300 µs apart, as a person would (slow
    /// enough for the guest's UART FIFO).
    pub fn type_slowly(&mut self, bytes: impl IntoIterator<Item = u8>) {
        for byte in bytes {
            self.write(&[byte]);
            std::thread::sleep(Duration::from_micros(300));
        }
    }

    /// Writes `bytes` to the serial port in one go.
    pub fn write(&mut self, bytes: &[u8]) {
        use std::io::Write;
        let _ = self.stdin.write_all(bytes);
        let _ = self.stdin.flush();
    }

    /// Whether QEMU has exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Kills QEMU; returns its exit status (`None` when killed), the output
    /// not yet taken from `output`, and its stderr.
    pub fn stop(mut self) -> (Option<i32>, Vec<u8>, String) {
        let _ = self.child.kill();
        let status = self.child.wait().ok().and_then(|s| s.code());
        let _ = self.reader.join();
        let rest = self.output.try_iter().flatten().collect();
        (status, rest, self.stderr.join().unwrap_or_default())
    }
}
