//! Prerequisites: the Rust target and QEMU. Missing ones are installed when
//! that is possible (rustup; apt as root), otherwise one clear message says
//! what to run.

use std::path::Path;
use std::process::Command;

pub const TARGET: &str = "x86_64-unknown-none";
pub const QEMU: &str = "qemu-system-x86_64";

/// Makes sure the kernel target is installed for the pinned toolchain.
pub fn rust_target() -> Result<(), String> {
    let sysroot = Command::new("rustc")
        .args(["--print", "sysroot"])
        .current_dir(crate::build::root())
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = String::from_utf8_lossy(&sysroot.stdout).trim().to_string();
    if Path::new(&sysroot)
        .join("lib/rustlib")
        .join(TARGET)
        .exists()
    {
        return Ok(());
    }
    eprintln!(
        "xtask: the {TARGET} target is missing; running `rustup toolchain install` (reads rust-toolchain.toml)"
    );
    let status = Command::new("rustup")
        .args(["toolchain", "install"])
        .current_dir(crate::build::root())
        .status()
        .map_err(|e| {
            format!("cannot run rustup: {e}; install the target with: rustup target add {TARGET}")
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "rustup failed; install the target with: rustup target add {TARGET} --toolchain 1.95.0"
        ))
    }
}

/// Makes sure QEMU is installed (apt-get as root, else a message).
pub fn qemu() -> Result<(), String> {
    if Command::new(QEMU)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(());
    }
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let install = "apt-get update && apt-get install -y qemu-system-x86";
    if !is_root {
        return Err(format!(
            "{QEMU} is not installed; install it with: sudo sh -c '{install}'"
        ));
    }
    eprintln!("xtask: {QEMU} is missing; running: {install}");
    let ok = Command::new("sh")
        .args(["-c", install])
        .status()
        .is_ok_and(|s| s.success());
    if ok
        && Command::new(QEMU)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    {
        Ok(())
    } else {
        Err(format!("installing QEMU failed; run: {install}"))
    }
}
