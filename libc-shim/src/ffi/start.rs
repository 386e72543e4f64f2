// SPDX-License-Identifier: MIT OR Apache-2.0
//! Process start: `_start` (an assembly stub) hands the initial stack pointer to
//! [`start`], which reads argc/argv/envp (System V x86_64 ABI, section 3.4.1), calls the
//! program's main and exits with its return value.
//!
//! The program's main is the symbol `__damselfly_main`, defined by `libc_shim::entry!`
//! in a Rust program, or by `ffi::capi` (feature `capi`) calling C's `main`.

use alloc::vec::Vec;

use crate::args::Args;

#[cfg(target_os = "none")]
core::arch::global_asm!(
    ".section .text._start,\"ax\",@progbits",
    ".global _start",
    ".type _start,@function",
    "_start:",
    // Mark the outermost frame for backtraces, pass the initial rsp, keep the ABI's
    // 16-byte alignment at the call.
    "    xor ebp, ebp",
    "    mov rdi, rsp",
    "    and rsp, -16",
    "    call {start}",
    "    ud2",
    start = sym start,
);

/// The raw `argc`, `argv` and `envp` for C's `main`.
#[derive(Clone, Copy)]
pub struct RawArgs {
    /// Number of arguments.
    pub argc: i32,
    /// `argv`, NULL-terminated.
    pub argv: *const *const u8,
    /// `envp`, NULL-terminated.
    pub envp: *const *const u8,
}

#[cfg(target_os = "none")]
static mut RAW_ARGS: RawArgs = RawArgs {
    argc: 0,
    argv: core::ptr::null(),
    envp: core::ptr::null(),
};

/// The arguments as the kernel passed them (for the C `main` bridge).
#[cfg(target_os = "none")]
pub fn raw_args() -> RawArgs {
    // SAFETY: written once in `start` before any main runs; single-threaded process.
    unsafe { RAW_ARGS }
}

/// The bytes of the NUL-terminated string at `p`.
///
/// # Safety
/// `p` points at a NUL-terminated string that lives and stays unchanged for `'static`.
pub unsafe fn c_str(p: *const u8) -> &'static [u8] {
    let mut n = 0;
    // SAFETY: the caller promises a terminating NUL, so every byte up to it is readable.
    while unsafe { *p.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: the `n` bytes before the NUL were just read; they live for 'static.
    unsafe { core::slice::from_raw_parts(p, n) }
}

/// Reads a NULL-terminated pointer vector.
///
/// # Safety
/// `v` points at a NULL-terminated array of pointers to NUL-terminated strings, all
/// living unchanged for `'static`.
unsafe fn c_vector(v: *const *const u8) -> Vec<&'static [u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        // SAFETY: the array is NULL-terminated and we stop at the NULL.
        let p = unsafe { *v.add(i) };
        if p.is_null() {
            return out;
        }
        // SAFETY: each entry is a NUL-terminated static string (caller's promise).
        out.push(unsafe { c_str(p) });
        i += 1;
    }
}

/// What the auxiliary vector told the shim.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Aux {
    /// `AT_CLOCK_PAGE`: the clock page's address (0: none).
    pub clock_page: usize,
}

/// Reads the auxiliary vector at `v` (key/value pairs up to `AT_NULL`).
///
/// # Safety
/// `v` points at an `AT_NULL`-terminated auxiliary vector.
unsafe fn aux_vector(v: *const usize) -> Aux {
    let mut aux = Aux::default();
    let mut i = 0;
    loop {
        // SAFETY: pairs up to and including the AT_NULL pair are readable (caller).
        let (key, value) = unsafe { (*v.add(i), *v.add(i + 1)) };
        match key as u64 {
            0 => return aux,
            abi::clock::AT_CLOCK_PAGE => aux.clock_page = value,
            _ => {}
        }
        i += 2;
    }
}

/// Parses the initial stack at `sp`: `argc`, `argv[0..argc]`, NULL, `envp...`, NULL,
/// then the auxiliary vector.
///
/// # Safety
/// `sp` is the process's initial stack pointer as laid out by the kernel (SysV).
pub unsafe fn parse_initial_stack(sp: *const usize) -> (RawArgs, Args, Aux) {
    // SAFETY: the first word at the initial rsp is argc.
    let argc = unsafe { *sp };
    // SAFETY: argv starts right after argc.
    let argv = unsafe { sp.add(1) } as *const *const u8;
    // SAFETY: argv has argc entries and a NULL, then envp begins.
    let envp = unsafe { argv.add(argc + 1) };
    // SAFETY: the kernel's stack strings live for the whole process and are not changed
    // by the shim (C code may, which only changes what C sees).
    let (av, ev) = unsafe { (c_vector(argv), c_vector(envp)) };
    // SAFETY: the auxiliary vector follows envp's NULL (SysV); `ev.len()` entries came
    // before that NULL.
    let aux = unsafe { aux_vector(envp.add(ev.len() + 1) as *const usize) };
    let raw = RawArgs {
        argc: argc as i32,
        argv,
        envp,
    };
    (raw, Args::new(av, ev), aux)
}

#[cfg(target_os = "none")]
unsafe extern "Rust" {
    /// The program's main, defined by `entry!` or the C bridge.
    fn __damselfly_main(args: Args) -> i32;
}

#[cfg(target_os = "none")]
extern "C" fn start(sp: *const usize) -> ! {
    // SAFETY: `_start` passes the untouched initial rsp.
    let (raw, args, aux) = unsafe { parse_initial_stack(sp) };
    // SAFETY: single-threaded, and nothing reads RAW_ARGS before this point.
    unsafe { RAW_ARGS = raw };
    // SAFETY: the kernel's AT_CLOCK_PAGE value is its mapped, readable clock page.
    unsafe { super::clock::set_page(aux.clock_page) };
    // SAFETY: exactly one `__damselfly_main` is defined per program (by `entry!`), with
    // this signature; the macro makes the signature match.
    let status = unsafe { __damselfly_main(args) };
    crate::sys::exit(status)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_sysv_initial_stack() {
        let a0 = b"prog\0";
        let a1 = b"x y\0";
        let e0 = b"K=V\0";
        let stack: Vec<usize> = vec![
            2,
            a0.as_ptr() as usize,
            a1.as_ptr() as usize,
            0,
            e0.as_ptr() as usize,
            0,
            6, // AT_PAGESZ
            4096,
            abi::clock::AT_CLOCK_PAGE as usize,
            0x7fff_ffff_1000,
            0, // AT_NULL
            0,
        ];
        // SAFETY: the vector is laid out as the kernel would, strings are 'static.
        let (raw, args, aux) = unsafe { parse_initial_stack(stack.as_ptr()) };
        assert_eq!(aux.clock_page, 0x7fff_ffff_1000);
        assert_eq!(raw.argc, 2);
        assert_eq!(args.iter().collect::<Vec<_>>(), ["prog", "x y"]);
        assert_eq!(args.var("K"), Some("V"));
    }
}
