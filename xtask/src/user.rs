//! Building the user programs for the boot archive: the Rust crates under `user/` for
//! x86_64-unknown-none, and the C test program `user/c/hello.c` with gcc against
//! libc-shim's static library (`libc-shim/capi`).
//!
//! `build_user_programs` returns `(path in the initrd, ELF bytes)` pairs: `bin/init`,
//! `bin/sh`, the tools as `bin/<name>`, tests as `bin/tests/<name>` and benchmarks as
//! `bin/bench/<name>`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::build::{root, target_dir};
use crate::prereq::{self, TARGET};

/// A user package, where its binaries go in the initrd, and how to list them.
struct Package {
    name: &'static str,
    dir: &'static str,
    initrd_dir: &'static str,
}

const PACKAGES: &[Package] = &[
    Package {
        name: "user-init",
        dir: "user/init",
        initrd_dir: "bin",
    },
    Package {
        name: "user-sh",
        dir: "user/sh",
        initrd_dir: "bin",
    },
    Package {
        name: "user-tools",
        dir: "user/tools",
        initrd_dir: "bin",
    },
    Package {
        name: "user-tests",
        dir: "user/tests",
        initrd_dir: "bin/tests",
    },
    Package {
        name: "user-bench",
        dir: "user/bench",
        initrd_dir: "bin/bench",
    },
];

/// The binary names of a package: `src/bin/*.rs`, or its `[[bin]]`/package name.
fn binaries(package: &Package) -> Result<Vec<String>, String> {
    let bin_dir = root().join(package.dir).join("src/bin");
    if bin_dir.is_dir() {
        let mut names = Vec::new();
        for entry in
            std::fs::read_dir(&bin_dir).map_err(|e| format!("{}: {e}", bin_dir.display()))?
        {
            let path = entry.map_err(|e| e.to_string())?.path();
            if path.extension().is_some_and(|x| x == "rs")
                && let Some(stem) = path.file_stem()
            {
                names.push(stem.to_string_lossy().into_owned());
            }
        }
        names.sort();
        return Ok(names);
    }
    Ok(vec![package.name.trim_start_matches("user-").to_string()])
}

/// Builds every user program and returns `(initrd path, ELF bytes)` pairs.
pub fn build_user_programs(release: bool) -> Result<Vec<(String, Vec<u8>)>, String> {
    prereq::rust_target()?;
    let packages: Vec<&Package> = PACKAGES
        .iter()
        .filter(|p| root().join(p.dir).join("Cargo.toml").exists())
        .collect();
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(root())
        .args(["build", "--target", TARGET]);
    if release {
        // Optimised, without debug info: the boot archive stays small.
        cargo.args([
            "--release",
            "--config",
            "profile.release.strip=\"debuginfo\"",
        ]);
    }
    for p in &packages {
        cargo.args(["--package", p.name]);
    }
    let status = cargo
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the user programs failed".into());
    }
    // The C route needs libc-shim's static library. A separate cargo run: built together,
    // feature unification would turn on `capi` (C's `main` bridge) in the Rust programs.
    let mut capi = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    capi.current_dir(root())
        .args(["build", "--target", TARGET, "--package", "libc-shim-capi"]);
    if release {
        capi.arg("--release");
    }
    let status = capi
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building libc-shim-capi failed".into());
    }
    let out = target_dir()
        .join(TARGET)
        .join(if release { "release" } else { "debug" });
    let mut programs = Vec::new();
    for p in packages {
        for name in binaries(p)? {
            let path = out.join(&name);
            let bytes =
                std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
            programs.push((format!("{}/{name}", p.initrd_dir), bytes));
        }
    }
    let hello = build_c_hello(&out)?;
    let bytes = std::fs::read(&hello).map_err(|e| format!("reading {}: {e}", hello.display()))?;
    programs.push(("bin/tests/c-hello".into(), bytes));
    Ok(programs)
}

/// Compiles `user/c/hello.c` with gcc against `libdamselfly_c.a` from `lib_dir`.
pub fn build_c_hello(lib_dir: &Path) -> Result<PathBuf, String> {
    let root = root();
    let output = target_dir().join("c").join("hello");
    std::fs::create_dir_all(output.parent().expect("has a parent"))
        .map_err(|e| format!("creating {}: {e}", output.display()))?;
    let status = Command::new("gcc")
        .args([
            "-static",
            "-nostdlib",
            "-ffreestanding",
            "-fno-pie",
            "-no-pie",
            "-O2",
        ])
        .args(["-fno-stack-protector", "-Wl,--build-id=none"])
        .arg("-I")
        .arg(root.join("libc-shim/include"))
        .arg(root.join("user/c/hello.c"))
        .arg(lib_dir.join("libdamselfly_c.a"))
        .arg("-T")
        .arg(root.join("libc-shim/link.ld"))
        .arg("-o")
        .arg(&output)
        .status()
        .map_err(|e| format!("cannot run gcc (apt-get install gcc): {e}"))?;
    if !status.success() {
        return Err("building user/c/hello.c failed".into());
    }
    Ok(output)
}
