//! The kernel's `memcpy` (plain 8-byte moves, unrolled to 64 bytes per turn) and
//! `memcmp`/`bcmp` (8 bytes per compare).
//!
//! compiler_builtins' `memcpy` for this target copies with `rep movsq`. QEMU's
//! TCG (the reference accelerator) runs every iteration of a `rep` string
//! instruction as a translation block of its own, so a 4 KiB copy costs about
//! 930 ns there against about 700 ns for this loop (measured in a kernel test
//! under TCG). A tmpfs read or write moves each of its bytes through here
//! once (between the file's page and the caller's memory). On hardware (KVM)
//! the loop is still a fair copy for the sizes the kernel moves (messages,
//! futures, 4 KiB pages).
//!
//! The symbol overrides compiler_builtins' (a weak definition). It is written
//! in assembly, so the compiler cannot turn it back into a call to `memcpy`.

/// Copies `n` bytes from `src` to `dest` (the ranges do not overlap); returns `dest`.
///
/// # Safety
/// `src..src+n` is readable, `dest..dest+n` writable, and they do not overlap: the
/// contract of C's `memcpy`, which the compiler relies on when it emits calls to it.
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // rdi = dest, rsi = src, rdx = n (System V); rax returns dest. Only
    // caller-saved registers are used, and no stack.
    core::arch::naked_asm!(
        "mov rax, rdi",
        "mov rcx, rdx",
        "shr rcx, 6",
        "jz 3f",
        "2:",
        "mov r8, [rsi]",
        "mov r9, [rsi + 8]",
        "mov r10, [rsi + 16]",
        "mov r11, [rsi + 24]",
        "mov [rdi], r8",
        "mov [rdi + 8], r9",
        "mov [rdi + 16], r10",
        "mov [rdi + 24], r11",
        "mov r8, [rsi + 32]",
        "mov r9, [rsi + 40]",
        "mov r10, [rsi + 48]",
        "mov r11, [rsi + 56]",
        "mov [rdi + 32], r8",
        "mov [rdi + 40], r9",
        "mov [rdi + 48], r10",
        "mov [rdi + 56], r11",
        "add rsi, 64",
        "add rdi, 64",
        "dec rcx",
        "jnz 2b",
        "3:",
        "mov rcx, rdx",
        "and rcx, 63",
        "shr rcx, 3",
        "jz 5f",
        "4:",
        "mov r8, [rsi]",
        "mov [rdi], r8",
        "add rsi, 8",
        "add rdi, 8",
        "dec rcx",
        "jnz 4b",
        // The last n % 8 bytes without a byte loop: when the copy is 8 bytes
        // or longer, one 8-byte move ending at the last byte (it rewrites a
        // few bytes already copied, with the same values); else 4, 2, 1.
        "5:",
        "mov rcx, rdx",
        "and rcx, 7",
        "jz 9f",
        "cmp rdx, 8",
        "jb 6f",
        "mov r8, [rsi + rcx - 8]",
        "mov [rdi + rcx - 8], r8",
        "ret",
        "6:",
        "test cl, 4",
        "jz 7f",
        "mov r8d, [rsi]",
        "mov [rdi], r8d",
        "add rsi, 4",
        "add rdi, 4",
        "7:",
        "test cl, 2",
        "jz 8f",
        "mov r8w, [rsi]",
        "mov [rdi], r8w",
        "add rsi, 2",
        "add rdi, 2",
        "8:",
        "test cl, 1",
        "jz 9f",
        "mov r8b, [rsi]",
        "mov [rdi], r8b",
        "9:",
        "ret",
    )
}

/// Compares `n` bytes at `a` and `b` as unsigned bytes: 0 if equal, else negative or
/// positive as the first differing byte of `a` is below or above `b`'s.
///
/// compiler_builtins' version compares a byte at a time through a closure, two calls and
/// a translated block per byte under TCG; the namecache compares a name with it on every
/// path look-up. This one compares 8 bytes at a time and finds the first differing byte
/// of a word by comparing both words byte-swapped (the lower address is the more
/// significant then). In assembly, so the compiler cannot turn it back into a call.
///
/// # Safety
/// `a..a+n` and `b..b+n` are readable: the contract of C's `memcmp`.
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // rdi = a, rsi = b, rdx = n; eax returns. Caller-saved registers only, no stack.
    core::arch::naked_asm!(
        "cmp rdx, 8",
        "jb 4f",
        // The last 8 bytes of each, for the tail below.
        "lea r10, [rdi + rdx - 8]",
        "lea r11, [rsi + rdx - 8]",
        "2:",
        "mov r8, [rdi]",
        "mov r9, [rsi]",
        "cmp r8, r9",
        "jne 8f",
        "add rdi, 8",
        "add rsi, 8",
        "sub rdx, 8",
        "cmp rdx, 8",
        "jae 2b",
        "test rdx, rdx",
        "jz 3f",
        // The last n % 8 bytes: the 8 bytes ending at the last one (those before the
        // tail are equal, so the first difference in this word is in the tail).
        "mov r8, [r10]",
        "mov r9, [r11]",
        "cmp r8, r9",
        "jne 8f",
        "3:",
        "xor eax, eax",
        "ret",
        // Fewer than 8 bytes: 4, 2 and 1 at a time, in address order.
        "4:",
        "test dl, 4",
        "jz 5f",
        "mov r8d, [rdi]",
        "mov r9d, [rsi]",
        "cmp r8d, r9d",
        "jne 9f",
        "add rdi, 4",
        "add rsi, 4",
        "5:",
        "test dl, 2",
        "jz 6f",
        "movzx r8d, word ptr [rdi]",
        "movzx r9d, word ptr [rsi]",
        "rol r8w, 8",
        "rol r9w, 8",
        "cmp r8d, r9d",
        "jne 7f",
        "add rdi, 2",
        "add rsi, 2",
        "6:",
        "xor eax, eax",
        "test dl, 1",
        "jz 10f",
        "movzx eax, byte ptr [rdi]",
        "movzx ecx, byte ptr [rsi]",
        "sub eax, ecx",
        "10:",
        "ret",
        // Two different words: byte-swapped, the first differing byte decides.
        "8:",
        "bswap r8",
        "bswap r9",
        "cmp r8, r9",
        "7:",
        "sbb eax, eax",
        "or eax, 1",
        "ret",
        "9:",
        "bswap r8d",
        "bswap r9d",
        "cmp r8d, r9d",
        "sbb eax, eax",
        "or eax, 1",
        "ret",
    )
}

/// `memcmp` for equality only (0 if equal, non-zero otherwise), which the compiler emits
/// for `==` on byte slices.
///
/// # Safety
/// As [`memcmp`].
#[unsafe(no_mangle)]
#[unsafe(naked)]
pub unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    core::arch::naked_asm!("jmp {memcmp}", memcmp = sym memcmp)
}
