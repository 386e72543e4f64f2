//! Reporting: panics, symbols and backtraces, and the runner's self-tests.

pub fn expected_panic_is_caught() {
    panic!("this panic is expected by the test");
}

pub fn symbols_resolve_kernel_functions() {
    let table = hal::backtrace::symbols().expect("xtask embeds the symbol table");
    assert!(table.len() > 100, "only {} symbols", table.len());
    let here = symbols_resolve_kernel_functions as fn() as usize as u64;
    let (name, offset) = table.lookup(here + 1).expect("this function has a symbol");
    assert!(
        name.ends_with("report::symbols_resolve_kernel_functions"),
        "resolved to {name}"
    );
    assert_eq!(offset, 1);
}

#[inline(never)]
fn nested_level_2(out: &mut [u64]) -> usize {
    let n = hal::backtrace::walk(hal::arch::cpu::frame_pointer(), out);
    core::hint::black_box(n)
}

#[inline(never)]
fn nested_level_1(out: &mut [u64]) -> usize {
    core::hint::black_box(nested_level_2(out))
}

pub fn backtrace_walks_nested_frames() {
    let mut frames = [0u64; 16];
    let n = nested_level_1(&mut frames);
    let table = hal::backtrace::symbols().expect("xtask embeds the symbol table");
    let names: alloc::vec::Vec<&str> = frames[..n]
        .iter()
        .filter_map(|&ret| table.lookup(ret - 1).map(|(name, _)| name))
        .collect();
    let position = |needle: &str| names.iter().position(|n| n.ends_with(needle));
    let l1 = position("report::nested_level_1")
        .unwrap_or_else(|| panic!("nested_level_1 not in {names:?}"));
    let top = position("report::backtrace_walks_nested_frames")
        .unwrap_or_else(|| panic!("the test function not in {names:?}"));
    assert!(l1 < top, "frames out of order: {names:?}");
}

pub fn selftest_unexpected_panic() {
    panic!("selftest: a panic no test expects");
}

pub fn selftest_hang() {
    loop {
        core::hint::spin_loop();
    }
}
