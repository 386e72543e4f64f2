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
