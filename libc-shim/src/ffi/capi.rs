// SPDX-License-Identifier: MIT OR Apache-2.0
//! The C ABI (feature `capi`): what `include/damselfly.h` declares. Built into
//! `libdamselfly_c.a` by `libc-shim/capi`. Failing calls return -1 and set `errno` (a
//! plain global: processes have one thread and there is no TLS).
//!
//! The printf family is variadic, which stable Rust cannot define, so each one is a small
//! assembly stub that spills the six argument registers and hands them, with the address
//! of the stack arguments, to a Rust function ([`VaArgs`]). Only integer-class arguments
//! are supported (no `%f`), so the vector registers are not needed.

use alloc::vec::Vec;
use core::alloc::Layout;
use core::ffi::{c_char, c_int, c_long, c_void};

use abi::{Errno, OpenFlags, Timespec, Whence};

use super::start::{c_str, raw_args};
use super::sys;
use crate::printf::{self, ArgSource, BufSink, Sink};

/// The last error of a failing call.
#[unsafe(no_mangle)]
pub static mut errno: c_int = 0;

fn fail(e: Errno) -> c_int {
    // SAFETY: single-threaded process (no user threads): no concurrent access.
    unsafe { errno = e.as_i32() };
    -1
}

fn ret<T: TryInto<c_long>>(r: Result<T, Errno>) -> c_long {
    match r {
        Ok(v) => v.try_into().unwrap_or(c_long::MAX),
        Err(e) => fail(e) as c_long,
    }
}

/// A C string argument as `&str` (`None` for NULL or non-UTF-8).
///
/// # Safety
/// `p` is NULL or a NUL-terminated string that lives for the call.
unsafe fn arg_str<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: caller's promise; the 'static of c_str is narrowed to the call by 'a.
    core::str::from_utf8(unsafe { c_str(p as *const u8) }).ok()
}

// ---------------------------------------------------------------------------
// Process start and exit
// ---------------------------------------------------------------------------

unsafe extern "C" {
    /// The C program's `int main(int argc, char **argv, char **envp)`.
    fn main(argc: c_int, argv: *const *const u8, envp: *const *const u8) -> c_int;
}

/// The shim's `_start` calls this; it calls C's `main`.
#[unsafe(no_mangle)]
fn __damselfly_main(_args: crate::Args) -> i32 {
    let raw = raw_args();
    // SAFETY: `main` is the C program's, with the standard signature; argv and envp are
    // the kernel's NULL-terminated vectors.
    unsafe { main(raw.argc, raw.argv, raw.envp) }
}

/// `exit(status)`.
#[unsafe(no_mangle)]
pub extern "C" fn exit(status: c_int) -> ! {
    sys::exit(status)
}

/// `_exit(status)`.
#[unsafe(no_mangle)]
pub extern "C" fn _exit(status: c_int) -> ! {
    sys::exit(status)
}

/// `getpid()`.
#[unsafe(no_mangle)]
pub extern "C" fn getpid() -> c_int {
    sys::getpid()
}

// ---------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------

/// `open(path, flags, mode)` (mode is a fixed third argument here).
///
/// # Safety
/// `path` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn open(path: *const c_char, flags: c_int, mode: u32) -> c_int {
    // SAFETY: caller's promise.
    let Some(path) = (unsafe { arg_str(path) }) else {
        return fail(Errno::Fault);
    };
    let Ok(flags) = OpenFlags::from_bits(flags as u32) else {
        return fail(Errno::Inval);
    };
    ret(sys::open(path, flags, mode)) as c_int
}

/// `read(fd, buf, n)`.
///
/// # Safety
/// `buf` is writable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn read(fd: c_int, buf: *mut c_void, n: usize) -> isize {
    if n == 0 {
        return 0;
    }
    // SAFETY: caller's promise.
    let buf = unsafe { core::slice::from_raw_parts_mut(buf as *mut u8, n) };
    ret(sys::read(fd, buf)) as isize
}

/// `write(fd, buf, n)`.
///
/// # Safety
/// `buf` is readable for `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn write(fd: c_int, buf: *const c_void, n: usize) -> isize {
    if n == 0 {
        return 0;
    }
    // SAFETY: caller's promise.
    let buf = unsafe { core::slice::from_raw_parts(buf as *const u8, n) };
    ret(sys::write(fd, buf)) as isize
}

/// `close(fd)`.
#[unsafe(no_mangle)]
pub extern "C" fn close(fd: c_int) -> c_int {
    ret(sys::close(fd).map(|()| 0)) as c_int
}

/// `lseek(fd, offset, whence)`.
#[unsafe(no_mangle)]
pub extern "C" fn lseek(fd: c_int, offset: i64, whence: c_int) -> i64 {
    let Ok(whence) = Whence::from_u32(whence as u32) else {
        return fail(Errno::Inval) as i64;
    };
    ret(sys::lseek(fd, offset, whence))
}

// ---------------------------------------------------------------------------
// Time and processes
// ---------------------------------------------------------------------------

/// `clock_gettime(clock, ts)`.
///
/// # Safety
/// `ts` points to a writable `struct timespec`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn clock_gettime(clock: c_int, ts: *mut Timespec) -> c_int {
    match sys::clock_gettime(clock) {
        Ok(t) => {
            // SAFETY: caller's promise.
            unsafe { *ts = t };
            0
        }
        Err(e) => fail(e),
    }
}

/// `nanosleep(req, rem)` (`rem` is never written: sleeps are not interrupted).
///
/// # Safety
/// `req` points to a readable `struct timespec`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nanosleep(req: *const Timespec, _rem: *mut Timespec) -> c_int {
    // SAFETY: caller's promise.
    let t = unsafe { *req };
    if t.tv_sec < 0 || !(0..1_000_000_000).contains(&t.tv_nsec) {
        return fail(Errno::Inval);
    }
    ret(sys::nanosleep(t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64).map(|()| 0)) as c_int
}

/// Simplified `posix_spawn(pid, path, argv, envp)`: no file actions or attributes; the
/// child gets descriptors 0, 1 and 2. Returns 0 or an error number (not -1).
///
/// # Safety
/// `pid` is writable; `path` a NUL-terminated string; `argv` and `envp` NULL or
/// NULL-terminated arrays of NUL-terminated strings.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn posix_spawn(
    pid: *mut c_int,
    path: *const c_char,
    argv: *const *const c_char,
    envp: *const *const c_char,
) -> c_int {
    // SAFETY: caller's promise.
    let Some(path) = (unsafe { arg_str(path) }) else {
        return Errno::Fault.as_i32();
    };
    // SAFETY: caller's promise for both vectors.
    let (argv, envp) = unsafe { (str_vector(argv), str_vector(envp)) };
    match sys::spawn(path, &argv, &envp, &[]) {
        Ok(child) => {
            if !pid.is_null() {
                // SAFETY: caller's promise.
                unsafe { *pid = child };
            }
            0
        }
        Err(e) => e.as_i32(),
    }
}

/// # Safety
/// `v` is NULL or a NULL-terminated array of NUL-terminated strings.
unsafe fn str_vector<'a>(v: *const *const c_char) -> Vec<&'a str> {
    let mut out = Vec::new();
    if v.is_null() {
        return out;
    }
    let mut i = 0;
    loop {
        // SAFETY: NULL-terminated array (caller's promise); we stop at the NULL.
        let p = unsafe { *v.add(i) };
        // SAFETY: each entry is a NUL-terminated string.
        match unsafe { arg_str(p) } {
            Some(s) => out.push(s),
            None if p.is_null() => return out,
            None => out.push("?"),
        }
        i += 1;
    }
}

/// `waitpid(pid, status, options)` (options: 1 = `WNOHANG`).
///
/// # Safety
/// `status` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int {
    let result = if options & 1 != 0 {
        sys::try_waitpid(pid).map(|r| r.unwrap_or((0, sys::ExitStatus::Exited(0))))
    } else {
        sys::waitpid(pid)
    };
    match result {
        Ok((child, st)) => {
            if !status.is_null() {
                let raw = match st {
                    sys::ExitStatus::Exited(c) => (c as c_int) << 8,
                    sys::ExitStatus::Signaled(s) => s as c_int,
                };
                // SAFETY: caller's promise.
                unsafe { *status = raw };
            }
            child
        }
        Err(e) => fail(e),
    }
}

// ---------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------

/// Bytes before each `malloc` block holding its size (keeps 16-byte alignment).
const HEADER: usize = 16;

fn block_layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, 16).ok()
}

/// `malloc(size)`.
#[unsafe(no_mangle)]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    let Some(layout) = block_layout(size) else {
        fail(Errno::NoMem);
        return core::ptr::null_mut();
    };
    // SAFETY: the layout has non-zero size (HEADER > 0).
    let p = unsafe { alloc::alloc::alloc(layout) };
    if p.is_null() {
        fail(Errno::NoMem);
        return p as *mut c_void;
    }
    // SAFETY: `p` is a fresh block of at least HEADER bytes, 16-aligned.
    unsafe {
        (p as *mut usize).write(size);
        p.add(HEADER) as *mut c_void
    }
}

/// `free(p)`.
///
/// # Safety
/// `p` is NULL or came from `malloc`/`calloc`/`realloc` and was not freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: `p` came from malloc, so HEADER bytes before it hold the size.
    unsafe {
        let block = (p as *mut u8).sub(HEADER);
        let size = (block as *const usize).read();
        let layout = block_layout(size).expect("was valid at malloc");
        alloc::alloc::dealloc(block, layout);
    }
}

/// `calloc(n, size)`.
#[unsafe(no_mangle)]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    let Some(total) = n.checked_mul(size) else {
        fail(Errno::NoMem);
        return core::ptr::null_mut();
    };
    let p = malloc(total);
    if !p.is_null() {
        // SAFETY: `p` is a fresh block of `total` bytes.
        unsafe { core::ptr::write_bytes(p as *mut u8, 0, total) };
    }
    p
}

/// `realloc(p, size)`.
///
/// # Safety
/// As `free` for `p`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn realloc(p: *mut c_void, size: usize) -> *mut c_void {
    if p.is_null() {
        return malloc(size);
    }
    // SAFETY: `p` came from malloc (caller's promise), so its header holds the size.
    let old = unsafe { ((p as *mut u8).sub(HEADER) as *const usize).read() };
    let q = malloc(size);
    if !q.is_null() {
        // SAFETY: both blocks are live and distinct; copy the smaller size.
        unsafe {
            core::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, old.min(size));
            free(p);
        }
    }
    q
}

/// `strlen(s)`.
///
/// # Safety
/// `s` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strlen(s: *const c_char) -> usize {
    // SAFETY: caller's promise.
    unsafe { c_str(s as *const u8) }.len()
}

/// `strcmp(a, b)`.
///
/// # Safety
/// Both are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn strcmp(a: *const c_char, b: *const c_char) -> c_int {
    // SAFETY: caller's promise.
    let (a, b) = unsafe { (c_str(a as *const u8), c_str(b as *const u8)) };
    match a.cmp(b) {
        core::cmp::Ordering::Less => -1,
        core::cmp::Ordering::Equal => 0,
        core::cmp::Ordering::Greater => 1,
    }
}

// ---------------------------------------------------------------------------
// printf family
// ---------------------------------------------------------------------------

/// Variadic arguments read from the spilled registers, then the caller's stack.
struct VaArgs {
    regs: *const u64,
    next: usize,
    stack: *const u64,
}

impl ArgSource for VaArgs {
    fn next_word(&mut self) -> u64 {
        if self.next < 6 {
            // SAFETY: `regs` points at the stub's six spilled registers.
            let v = unsafe { *self.regs.add(self.next) };
            self.next += 1;
            v
        } else {
            // SAFETY: the caller passed at least as many arguments as the format names
            // (C's contract for printf); they lie in order above the return address.
            let v = unsafe { *self.stack };
            // SAFETY: stays within (or one past) the caller's argument area.
            self.stack = unsafe { self.stack.add(1) };
            v
        }
    }

    fn next_str(&mut self, max: Option<usize>) -> Option<&[u8]> {
        let p = self.next_word() as *const u8;
        if p.is_null() {
            return None;
        }
        let mut n = 0;
        // SAFETY: C's contract: a `%s` argument is a NUL-terminated string, or with a
        // precision at least that many bytes are readable.
        while max.is_none_or(|m| n < m) && unsafe { *p.add(n) } != 0 {
            n += 1;
        }
        // SAFETY: the `n` bytes were just read.
        Some(unsafe { core::slice::from_raw_parts(p, n) })
    }
}

struct FdSink {
    fd: c_int,
    buf: Vec<u8>,
}

impl Sink for FdSink {
    fn put(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
}

fn print_to(fd: c_int, format: *const c_char, mut args: VaArgs) -> c_int {
    // SAFETY: the format is a NUL-terminated string (C's contract).
    let format = unsafe { c_str(format as *const u8) };
    let mut sink = FdSink {
        fd,
        buf: Vec::new(),
    };
    let n = printf::format(format, &mut args, &mut sink);
    match sys::write_all(sink.fd, &sink.buf) {
        Ok(()) => n as c_int,
        Err(e) => fail(e),
    }
}

extern "C" fn printf_impl(regs: *const u64, stack: *const u64) -> c_int {
    // SAFETY: regs[0] is the format argument (rdi), spilled by the stub.
    let format = unsafe { *regs } as *const c_char;
    print_to(
        1,
        format,
        VaArgs {
            regs,
            next: 1,
            stack,
        },
    )
}

extern "C" fn fprintf_impl(regs: *const u64, stack: *const u64) -> c_int {
    // SAFETY: regs[0] (the FILE*, which is the fd) and regs[1] (format) were spilled.
    let (file, format) = unsafe { (*regs, *regs.add(1)) };
    print_to(
        file as c_int,
        format as *const c_char,
        VaArgs {
            regs,
            next: 2,
            stack,
        },
    )
}

extern "C" fn snprintf_impl(regs: *const u64, stack: *const u64) -> c_int {
    // SAFETY: regs[0..3] are buf, size and format, spilled by the stub.
    let (buf, size, format) = unsafe { (*regs as *mut u8, *regs.add(1) as usize, *regs.add(2)) };
    let out: &mut [u8] = if buf.is_null() || size == 0 {
        &mut []
    } else {
        // SAFETY: C's contract: `buf` is writable for `size` bytes.
        unsafe { core::slice::from_raw_parts_mut(buf, size) }
    };
    // SAFETY: the format is NUL-terminated (C's contract).
    let format = unsafe { c_str(format as *const u8) };
    let mut sink = BufSink::new(out);
    let n = printf::format(
        format,
        &mut VaArgs {
            regs,
            next: 3,
            stack,
        },
        &mut sink,
    );
    sink.terminate();
    n as c_int
}

macro_rules! variadic_stub {
    ($name:literal, $imp:ident) => {
        core::arch::global_asm!(
            concat!(".section .text.", $name, ",\"ax\",@progbits"),
            concat!(".global ", $name),
            concat!(".type ", $name, ",@function"),
            concat!($name, ":"),
            "    push rbp",
            "    mov rbp, rsp",
            "    sub rsp, 48",
            "    mov [rsp], rdi",
            "    mov [rsp + 8], rsi",
            "    mov [rsp + 16], rdx",
            "    mov [rsp + 24], rcx",
            "    mov [rsp + 32], r8",
            "    mov [rsp + 40], r9",
            "    mov rdi, rsp",
            "    lea rsi, [rbp + 16]",
            "    call {imp}",
            "    leave",
            "    ret",
            imp = sym $imp,
        );
    };
}

variadic_stub!("printf", printf_impl);
variadic_stub!("fprintf", fprintf_impl);
variadic_stub!("snprintf", snprintf_impl);

/// `puts(s)`: `s` and a newline to fd 1.
///
/// # Safety
/// `s` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn puts(s: *const c_char) -> c_int {
    // SAFETY: caller's promise.
    let s = unsafe { c_str(s as *const u8) };
    let mut line = Vec::with_capacity(s.len() + 1);
    line.extend_from_slice(s);
    line.push(b'\n');
    match sys::write_all(1, &line) {
        Ok(()) => 1,
        Err(e) => fail(e),
    }
}

/// `putchar(c)`.
#[unsafe(no_mangle)]
pub extern "C" fn putchar(c: c_int) -> c_int {
    match sys::write_all(1, &[c as u8]) {
        Ok(()) => c & 0xff,
        Err(e) => fail(e),
    }
}
