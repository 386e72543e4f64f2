//! Links every binary with libc-shim's script (static, non-PIE, based at 0x400000).
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = format!("{dir}/../../libc-shim/link.ld");
    println!("cargo:rerun-if-changed={script}");
    if std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-none") {
        println!("cargo:rustc-link-arg-bins=-T{script}");
    }
}
