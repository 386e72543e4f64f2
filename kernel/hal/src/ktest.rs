//! In-kernel test descriptors (the runner lives in the kernel binary).
//!
//! A test is a plain `fn()`. It passes by returning, or, when it is meant to
//! provoke one, by faulting with the expected exception or panicking; the
//! runner resumes with the next test on a fresh stack either way.

/// What a test is expected to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Return normally.
    Return,
    /// Raise this exception vector (see `arch::trap::vector`).
    Fault(u8),
    /// Panic.
    Panic,
    /// Panic with a message containing this text.
    PanicContaining(&'static str),
}

/// One in-kernel test.
#[derive(Clone, Copy, Debug)]
pub struct KernelTest {
    pub name: &'static str,
    pub run: fn(),
    pub expect: Expect,
    /// Runs under `test=all`. Tests of the runner itself (a deliberate
    /// unexpected panic, a hang) are selected only by name.
    pub in_all: bool,
}

impl KernelTest {
    pub const fn new(name: &'static str, run: fn()) -> Self {
        Self {
            name,
            run,
            expect: Expect::Return,
            in_all: true,
        }
    }
    pub const fn expect(mut self, expect: Expect) -> Self {
        self.expect = expect;
        self
    }
    /// Only runs when selected by name.
    pub const fn by_name_only(mut self) -> Self {
        self.in_all = false;
        self
    }
}

/// Abandons the current stack and runs `entry` from the top of `stack`:
/// how the test runner recovers from a fault or panic without unwinding.
/// Nothing owned by the abandoned frames is dropped (a leak, which is safe).
///
/// # Context
/// Boot CPU, interrupts off (inside an exception or panic handler, or the
/// runner), with no other CPU running: nothing else may refer to data on
/// the abandoned frames, and `stack` must be used by nothing else but the
/// runner (it may be the stack being abandoned).
#[cfg(target_os = "none")]
pub fn restart_on(stack: &'static crate::mm::KernelStack, entry: fn() -> !) -> ! {
    // SAFETY: `stack` is a mapped kernel stack (from `alloc_stack`, so its
    // top is page-aligned) reserved for the runner; per the context above
    // no live reference points into the frames being abandoned.
    unsafe { crate::arch::cpu::switch_stack(stack.top, entry) }
}
