// SPDX-License-Identifier: MIT OR Apache-2.0
//! Experiment: 4 KiB copy strategies under TCG.
#![no_std]
#![no_main]
extern crate alloc;
#[path = "../common.rs"]
mod common;
use core::arch::asm;

#[repr(align(4096))]
struct Page([u8; 4096]);

fn movsb(d: *mut u8, s: *const u8, n: usize) {
    unsafe { asm!("rep movsb", inout("rdi") d => _, inout("rsi") s => _, inout("rcx") n => _) }
}
fn movsq(d: *mut u8, s: *const u8, n: usize) {
    unsafe { asm!("rep movsq", inout("rdi") d => _, inout("rsi") s => _, inout("rcx") n / 8 => _) }
}
fn gpr(d: *mut u8, s: *const u8, n: usize) {
    unsafe {
        asm!("2:",
        "mov r8, [rsi]", "mov r9, [rsi+8]", "mov r10, [rsi+16]", "mov r11, [rsi+24]",
        "mov [rdi], r8", "mov [rdi+8], r9", "mov [rdi+16], r10", "mov [rdi+24], r11",
        "mov r8, [rsi+32]", "mov r9, [rsi+40]", "mov r10, [rsi+48]", "mov r11, [rsi+56]",
        "mov [rdi+32], r8", "mov [rdi+40], r9", "mov [rdi+48], r10", "mov [rdi+56], r11",
        "add rsi, 64", "add rdi, 64", "dec rcx", "jnz 2b",
        inout("rdi") d => _, inout("rsi") s => _, inout("rcx") n / 64 => _, out("r8") _, out("r9") _, out("r10") _, out("r11") _)
    }
}
fn sse(d: *mut u8, s: *const u8, n: usize) {
    unsafe {
        asm!("2:",
        "movups xmm0, [rsi]", "movups xmm1, [rsi+16]", "movups xmm2, [rsi+32]", "movups xmm3, [rsi+48]",
        "movups [rdi], xmm0", "movups [rdi+16], xmm1", "movups [rdi+32], xmm2", "movups [rdi+48], xmm3",
        "add rsi, 64", "add rdi, 64", "dec rcx", "jnz 2b",
        inout("rdi") d => _, inout("rsi") s => _, inout("rcx") n / 64 => _, out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _)
    }
}
fn sse128(d: *mut u8, s: *const u8, n: usize) {
    unsafe {
        asm!("2:",
        "movups xmm0, [rsi]", "movups xmm1, [rsi+16]", "movups xmm2, [rsi+32]", "movups xmm3, [rsi+48]",
        "movups xmm4, [rsi+64]", "movups xmm5, [rsi+80]", "movups xmm6, [rsi+96]", "movups xmm7, [rsi+112]",
        "movups [rdi], xmm0", "movups [rdi+16], xmm1", "movups [rdi+32], xmm2", "movups [rdi+48], xmm3",
        "movups [rdi+64], xmm4", "movups [rdi+80], xmm5", "movups [rdi+96], xmm6", "movups [rdi+112], xmm7",
        "add rsi, 128", "add rdi, 128", "dec rcx", "jnz 2b",
        inout("rdi") d => _, inout("rsi") s => _, inout("rcx") n / 128 => _, out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
        out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _)
    }
}
fn avx(d: *mut u8, s: *const u8, n: usize) {
    unsafe {
        asm!("2:",
        "vmovups ymm0, [rsi]", "vmovups ymm1, [rsi+32]",
        "vmovups [rdi], ymm0", "vmovups [rdi+32], ymm1",
        "add rsi, 64", "add rdi, 64", "dec rcx", "jnz 2b", "vzeroupper",
        inout("rdi") d => _, inout("rsi") s => _, inout("rcx") n / 64 => _, out("ymm0") _, out("ymm1") _)
    }
}

libc_shim::entry!(main);
fn main(args: libc_shim::Args) -> i32 {
    let s = common::Settings::from_env(&args);
    let src = alloc::boxed::Box::new(Page([7; 4096]));
    let mut dst = alloc::boxed::Box::new(Page([0; 4096]));
    let variants: [(&str, fn(*mut u8, *const u8, usize)); 6] = [
        ("copy_movsb", movsb),
        ("copy_movsq", movsq),
        ("copy_gpr64", gpr),
        ("copy_sse64", sse),
        ("copy_sse128", sse128),
        ("copy_avx64", avx),
    ];
    for (name, f) in variants {
        common::run(name, &s, 1, |iters| {
            let t0 = libc_shim::sys::now_ns();
            for _ in 0..iters {
                f(dst.0.as_mut_ptr(), src.0.as_ptr(), 4096);
                core::hint::black_box(&mut dst);
            }
            libc_shim::sys::now_ns() - t0
        });
    }
    assert_eq!(dst.0[4095], 7);
    0
}
