//! Frame-pointer backtraces, symbolised from the embedded symbol table.
//!
//! The kernel is built with `-C force-frame-pointers=yes`, so every frame
//! starts with `[rbp] = caller's rbp, [rbp + 8] = return address`. The boot
//! stub and `switch_stack` start each stack with `rbp = 0`, which ends the
//! chain. Every frame pointer is checked (aligned, moving up the stack,
//! inside a mapped kernel stack) before it is read, so a corrupt chain ends
//! the backtrace instead of faulting inside the panic handler.

use core::fmt::Write;

/// Deepest backtrace printed.
pub const MAX_FRAMES: usize = 32;

/// The embedded table, or `None` when xtask did not patch it in.
pub fn symbols() -> Option<crate::symbols::SymbolTable<'static>> {
    crate::symbols::SymbolTable::new(crate::arch::ksyms())
}

/// Writes ` name+0xoff` for `addr`, or `<unknown>`.
pub fn write_symbol(w: &mut impl Write, addr: u64) {
    match symbols().and_then(|t| t.lookup(addr)) {
        Some((name, offset)) => {
            let _ = write!(w, "{name}+{offset:#x}");
        }
        None => {
            let _ = write!(w, "<unknown>");
        }
    }
}

/// Return addresses of the frame chain starting at `rbp`, innermost first.
pub fn walk(mut rbp: u64, out: &mut [u64]) -> usize {
    let mut n = 0;
    while n < out.len() && rbp != 0 && rbp.is_multiple_of(8) && crate::mm::is_stack_address(rbp, 16)
    {
        // SAFETY: `is_stack_address` checked that rbp..rbp+16 lies in a
        // mapped kernel stack, so both words are readable.
        let (next, ret) = unsafe { (*(rbp as *const u64), *((rbp + 8) as *const u64)) };
        if ret == 0 {
            break;
        }
        out[n] = ret;
        n += 1;
        if next <= rbp {
            break; // frames must move up the stack
        }
        rbp = next;
    }
    n
}

/// Prints a symbolised backtrace starting at frame pointer `rbp`.
pub fn write_backtrace(w: &mut impl Write, rbp: u64) {
    let mut frames = [0u64; MAX_FRAMES];
    let n = walk(rbp, &mut frames);
    let _ = writeln!(w, "    backtrace:");
    for (i, &ret) in frames[..n].iter().enumerate() {
        // The return address points after the call; look up the call itself.
        let _ = write!(w, "      #{i:<2} {ret:#018x} ");
        write_symbol(w, ret.saturating_sub(1));
        let _ = writeln!(w);
    }
    if n == 0 {
        let _ = writeln!(w, "      (no frames)");
    }
}
