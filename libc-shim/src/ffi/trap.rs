// SPDX-License-Identifier: MIT OR Apache-2.0
//! The trap door: one `syscall` instruction carrying one `Sqe` (`abi::ring`, "The trap
//! door"), in registers when it fits (it does unless `addr3` is set), else in memory. On
//! the host (tests) the same functions call the in-process fake kernel.

use abi::Sqe;

/// Submits `sqe` through the trap door and returns the raw result (`>= 0` or `-errno`).
///
/// # Safety
/// Every address in `sqe` must be valid for what the opcode does with it (readable or
/// writable for the stated length, for the duration of the call), as the table in
/// `abi::ring` describes; the kernel writes through the addresses it is given. Addresses
/// that are not mapped at all are safe: the kernel answers `EFAULT`.
/// The entry goes in registers (the register form) unless its `addr3` is set; then in
/// memory.
#[cfg(target_os = "none")]
#[inline]
pub unsafe fn trap(sqe: &Sqe) -> i64 {
    let Some(r) = sqe.to_trap_registers() else {
        // SAFETY: the caller's promise, passed on.
        return unsafe { trap_in_memory(sqe) };
    };
    let ret: i64;
    // SAFETY: the trap-door convention clobbers only rax (the result), rcx and r11; the
    // kernel touches memory only through the addresses in the entry, which the caller
    // vouches for. No `nomem`: the kernel may write any memory the entry points to.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") abi::ring::TRAP_REGISTERS => ret,
            in("rdi") r[0],
            in("rsi") r[1],
            in("rdx") r[2],
            in("r10") r[3],
            in("r8") r[4],
            in("r9") r[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// [`trap`] in the memory form: the kernel copies the entry from `sqe`'s address.
///
/// # Safety
/// As [`trap`].
#[cfg(target_os = "none")]
#[inline]
pub unsafe fn trap_in_memory(sqe: *const Sqe) -> i64 {
    let ret: i64;
    // SAFETY: as in `trap`; the kernel reads the entry itself through `rdi` (and answers
    // EFAULT if it cannot).
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") abi::ring::TRAP_MEMORY => ret,
            in("rdi") sqe,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Host build: the fake kernel of the tests handles the entry.
///
/// # Safety
/// As on Damselfly: addresses in `sqe` must be valid for the operation.
#[cfg(all(not(target_os = "none"), test))]
pub unsafe fn trap(sqe: &Sqe) -> i64 {
    super::fake::trap(sqe)
}

/// Host build (tests): the fake kernel, as [`trap`].
///
/// # Safety
/// `sqe` points at a readable `Sqe`; its addresses are valid for the operation.
#[cfg(all(not(target_os = "none"), test))]
pub unsafe fn trap_in_memory(sqe: *const Sqe) -> i64 {
    // SAFETY: the caller's promise.
    super::fake::trap(unsafe { &*sqe })
}

/// Host build outside tests: there is no kernel to talk to.
///
/// # Safety
/// None needed; kept `unsafe` to match the real signature.
#[cfg(all(not(target_os = "none"), not(test)))]
pub unsafe fn trap(_sqe: &Sqe) -> i64 {
    abi::Errno::NoSys.to_syscall_result()
}

/// Host build outside tests: there is no kernel to talk to.
///
/// # Safety
/// None needed; kept `unsafe` to match the real signature.
#[cfg(all(not(target_os = "none"), not(test)))]
pub unsafe fn trap_in_memory(_sqe: *const Sqe) -> i64 {
    abi::Errno::NoSys.to_syscall_result()
}
