// SPDX-License-Identifier: MIT OR Apache-2.0
//! The trap door: one `syscall` instruction carrying one `Sqe` (`abi::ring`, "The trap
//! door"). On the host (tests) the same function calls the in-process fake kernel.

use abi::Sqe;

/// Submits `sqe` through the trap door and returns the raw result (`>= 0` or `-errno`).
///
/// # Safety
/// Every address in `sqe` must be valid for what the opcode does with it (readable or
/// writable for the stated length, for the duration of the call), as the table in
/// `abi::ring` describes; the kernel writes through the addresses it is given. Addresses
/// that are not mapped at all are safe: the kernel answers `EFAULT`.
#[cfg(target_os = "none")]
#[inline]
pub unsafe fn trap(sqe: &Sqe) -> i64 {
    let ret: i64;
    // SAFETY: the trap-door convention clobbers only rax (the result), rcx and r11; the
    // kernel touches memory only through the addresses in `sqe`, which the caller vouches
    // for. No `nomem`: the kernel may write any memory the Sqe points to.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") 0i64 => ret,
            in("rdi") sqe as *const Sqe,
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

/// Host build outside tests: there is no kernel to talk to.
///
/// # Safety
/// None needed; kept `unsafe` to match the real signature.
#[cfg(all(not(target_os = "none"), not(test)))]
pub unsafe fn trap(_sqe: &Sqe) -> i64 {
    abi::Errno::NoSys.to_syscall_result()
}
