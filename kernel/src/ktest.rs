//! The in-kernel test runner (kernel built with the `ktest` feature).
//!
//! `test=all` runs every test of `kernel_tests::TESTS` marked `in_all`;
//! `test=a,b` runs the named ones; `test=list` prints the names. One line
//! per test: `ktest <name> ... ok` or `ktest <name> ... FAILED: <why>`, then
//! `ktest summary: N passed, M failed`, then QEMU exits with status 33 if
//! every selected test passed and 35 otherwise.
//!
//! Tests that fault or panic (on purpose or not) do not stop the run: the
//! fault and panic hooks record the outcome and resume with the next test on
//! a fresh stack; the interrupted test's stack is abandoned.

use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

use hal::arch::cpu::{self, ExitCode};
use hal::arch::trap::TrapFrame;
use hal::ktest::{Expect, KernelTest};
use kernel_tests::TESTS;

const NONE: usize = usize::MAX;
static CURRENT: AtomicUsize = AtomicUsize::new(NONE);
static PASSED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);
static RESUME_STACK: spin::Once<hal::mm::KernelStack> = spin::Once::new();
static SELECTION: spin::Once<&'static str> = spin::Once::new();

fn selected(test: &KernelTest, selection: &str) -> bool {
    match selection {
        "all" => test.in_all,
        list => list.split(',').any(|n| n == test.name),
    }
}

/// Runs the tests chosen by `selection` (the `test=` value); never returns.
pub fn run(selection: &'static str) -> ! {
    if selection == "list" {
        for t in TESTS {
            log::info!(target: "ktest", "{}{}", t.name, if t.in_all { "" } else { " (by name only)" });
        }
        cpu::exit_qemu(ExitCode::Success);
    }
    let unknown = selection
        .split(',')
        .find(|n| *n != "all" && !TESTS.iter().any(|t| t.name == *n));
    if let Some(name) = unknown {
        log::error!(target: "ktest", "no test matches {name:?}; `test=list` prints the names");
        cpu::exit_qemu(ExitCode::Failure);
    }
    SELECTION.call_once(|| selection);
    if let Some(runtime) = crate::sched::runtime() {
        kernel_tests::set_runtime(runtime);
    }
    kernel_tests::set_wait_hook(crate::sched::run_until);
    if let Some(root) = crate::rootfs::root() {
        kernel_tests::set_root(root);
    }
    kernel_tests::set_pci_interrupt_check(crate::edu::check_interrupts);
    kernel_tests::set_disks(
        crate::blk::disks()
            .into_iter()
            .map(|d| kernel_tests::TestDisk {
                name: d.name,
                port: d.port,
                info: d.info,
                bdf: (d.bdf.bus, d.bdf.device, d.bdf.function),
                vector: match &d.interrupts {
                    crate::blk::Interrupts::Intx { vector, .. } => *vector,
                    crate::blk::Interrupts::MsiX { vectors } => vectors[0],
                },
                intx_gsi: match d.interrupts {
                    crate::blk::Interrupts::Intx { gsi, .. } => Some(gsi),
                    crate::blk::Interrupts::MsiX { .. } => None,
                },
            })
            .collect(),
    );
    let stack = hal::mm::alloc_stack(32).expect("no memory for the test runner's stack");
    RESUME_STACK.call_once(|| stack);
    hal::arch::trap::set_fault_hook(on_fault);
    hal::panic::set_panic_hook(on_panic);
    run_from(0)
}

fn run_from(first: usize) -> ! {
    let selection = SELECTION.get().copied().unwrap_or("all");
    for (i, test) in TESTS.iter().enumerate().skip(first) {
        if !selected(test, selection) {
            continue;
        }
        CURRENT.store(i, Ordering::SeqCst);
        log::info!(target: "ktest", "{} ...", test.name);
        (test.run)();
        match test.expect {
            Expect::Return => pass(test),
            Expect::Fault(v) => fail(test, format_args!("returned, expected exception {v}")),
            Expect::Panic | Expect::PanicContaining(_) => {
                fail(test, format_args!("returned, expected a panic"))
            }
        }
    }
    CURRENT.store(NONE, Ordering::SeqCst);
    let (passed, failed) = (PASSED.load(Ordering::SeqCst), FAILED.load(Ordering::SeqCst));
    log::info!(target: "ktest", "summary: {passed} passed, {failed} failed");
    cpu::exit_qemu(if failed == 0 && passed > 0 {
        ExitCode::Success
    } else {
        ExitCode::Failure
    })
}

fn pass(test: &KernelTest) {
    PASSED.fetch_add(1, Ordering::SeqCst);
    log::info!(target: "ktest", "{} ... ok", test.name);
}

fn fail(test: &KernelTest, why: core::fmt::Arguments<'_>) {
    FAILED.fetch_add(1, Ordering::SeqCst);
    log::error!(target: "ktest", "{} ... FAILED: {why}", test.name);
}

/// Continues with the test after the current one, on the runner's stack.
fn resume() -> ! {
    hal::panic::rearm();
    let stack = RESUME_STACK.get().expect("set before any test runs");
    hal::ktest::restart_on(stack, || {
        run_from(CURRENT.load(Ordering::SeqCst).wrapping_add(1))
    })
}

fn current() -> Option<&'static KernelTest> {
    TESTS.get(CURRENT.load(Ordering::SeqCst))
}

fn on_fault(frame: &TrapFrame) {
    let Some(test) = current() else { return };
    match test.expect {
        Expect::Fault(v) if u64::from(v) == frame.vector => pass(test),
        _ => fail(
            test,
            format_args!(
                "unexpected exception {} ({})",
                frame.vector,
                hal::arch::trap::exception_name(frame.vector)
            ),
        ),
    }
    resume()
}

fn on_panic(info: &core::panic::PanicInfo<'_>) {
    let Some(test) = current() else { return };
    match test.expect {
        Expect::Panic => pass(test),
        Expect::PanicContaining(needle) => {
            let mut message = Buffer::new();
            let _ = write!(message, "{}", info.message());
            if message.as_str().contains(needle) {
                pass(test)
            } else {
                fail(
                    test,
                    format_args!("panic message {:?} lacks {needle:?}", message.as_str()),
                )
            }
        }
        // The message goes on the FAILED line itself, so a report that keeps
        // only the summary lines (a CI record) still says why.
        _ => match info.location() {
            Some(at) => fail(
                test,
                format_args!("unexpected panic at {at}: {}", info.message()),
            ),
            None => fail(test, format_args!("unexpected panic: {}", info.message())),
        },
    }
    resume()
}

/// A fixed-size text buffer (the panic path must not allocate).
struct Buffer {
    bytes: [u8; 256],
    len: usize,
}

impl Buffer {
    fn new() -> Self {
        Self {
            bytes: [0; 256],
            len: 0,
        }
    }
    fn as_str(&self) -> &str {
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("")
    }
}

impl Write for Buffer {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = self.bytes.len() - self.len;
        // Cut at a char boundary so the buffer stays valid UTF-8.
        let mut n = s.len().min(room);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}
