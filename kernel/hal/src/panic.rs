//! The kernel panic handler: message, location, backtrace, then a failure
//! exit (or the in-kernel test runner's hook, which may resume).

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::cpu::{self, ExitCode};
use crate::arch::serial::RawWriter;

/// Called after the report. May divert the kernel (the test runner resumes
/// with the next test); if it returns, the kernel exits with a failure.
pub type PanicHook = fn(&PanicInfo<'_>);

static PANIC_HOOK: spin::Once<PanicHook> = spin::Once::new();
static PANICKING: AtomicBool = AtomicBool::new(false);

/// Installs the panic hook (once).
pub fn set_panic_hook(hook: PanicHook) {
    PANIC_HOOK.call_once(|| hook);
}

/// Lets a hook that resumed the kernel arm the handler again.
pub fn rearm() {
    PANICKING.store(false, Ordering::SeqCst);
}

#[panic_handler]
fn panic(info: &PanicInfo<'_>) -> ! {
    let mut w = RawWriter;
    if PANICKING.swap(true, Ordering::SeqCst) {
        let _ = writeln!(w, "\n!!! PANIC while panicking: {}", info.message());
        cpu::exit_qemu(ExitCode::Failure);
    }
    let _ = write!(w, "\n!!! PANIC: {}", info.message());
    if let Some(location) = info.location() {
        let _ = write!(
            w,
            " at {}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        );
    }
    let _ = writeln!(w);
    crate::backtrace::write_backtrace(&mut w, cpu::frame_pointer());
    if let Some(hook) = PANIC_HOOK.get() {
        hook(info);
    }
    cpu::exit_qemu(ExitCode::Failure)
}
