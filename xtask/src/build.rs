//! Building the kernel image: cargo for x86_64-unknown-none, then the
//! symbol table patched into the image's `.ksyms` section.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::prereq::{self, TARGET};

/// Which kernel image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// The kernel users run.
    Normal,
    /// With the in-kernel test suite (`ktest` feature).
    Test,
}

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

/// Cargo's target directory (`CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// Where finished images go: `build/` under the root, or `$XTASK_BUILD_DIR`
/// (so two checkouts or two people sharing one tree do not overwrite each
/// other's images).
pub fn out_dir() -> PathBuf {
    match std::env::var_os("XTASK_BUILD_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("build"),
    }
}

/// Whether kernels are built optimised (`cargo xtask bench`, `run --release`):
/// the release profile, without debug assertions. Tests use the dev profile.
static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Builds later kernels with the release profile.
pub fn use_release_profile() {
    RELEASE.store(true, std::sync::atomic::Ordering::Relaxed);
}

fn release() -> bool {
    RELEASE.load(std::sync::atomic::Ordering::Relaxed)
}

/// Builds `variant` and returns the path of the finished image.
pub fn kernel(variant: Variant) -> Result<PathBuf, String> {
    prereq::rust_target()?;
    let mut cargo = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(root())
        .args(["build", "--package", "kernel", "--target", TARGET]);
    if variant == Variant::Test {
        cargo.args(["--features", "ktest"]);
    }
    if release() {
        // Whole-program optimisation for the optimised kernel only: the kernel is
        // many small crates (hal, executor, ports, fs, the drivers) whose hot paths
        // cross crate boundaries (a DMA store, a per-CPU lookup, a port call), and
        // without LTO a call to another crate's non-generic function that is not
        // marked `#[inline]` is never inlined. Measured with
        // bench/tcg-profile: 8.29k -> 7.44k guest instructions per 4 KiB read at
        // queue depth 32. Not in Cargo.toml's profile, which the user programs
        // share: LTO for each of their many binaries would slow every build.
        cargo.args([
            "--release",
            "--config",
            "profile.release.lto=\"fat\"",
            "--config",
            "profile.release.codegen-units=1",
        ]);
    }
    let status = cargo
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the kernel failed".into());
    }
    let profile = if release() { "release" } else { "debug" };
    let built = target_dir().join(TARGET).join(profile).join("kernel");
    std::fs::create_dir_all(out_dir()).map_err(|e| format!("creating build/: {e}"))?;
    let image = out_dir().join(match variant {
        Variant::Normal => "kernel",
        Variant::Test => "kernel-test",
    });
    std::fs::copy(&built, &image).map_err(|e| format!("copying {}: {e}", built.display()))?;
    let count = crate::symbols::embed(&image)?;
    eprintln!(
        "xtask: built {} ({count} symbols embedded)",
        image.display()
    );
    initrd()?;
    Ok(image)
}

/// Where the boot archive goes.
pub fn initrd_path() -> PathBuf {
    out_dir().join("initrd.cpio")
}

/// Packs the root tree `user/root/` into the boot archive (cpio newc).
/// Times are 0 so the archive is reproducible.
pub fn initrd() -> Result<PathBuf, String> {
    fn add(
        builder: &mut fs::cpio::ArchiveBuilder,
        dir: &Path,
        prefix: &str,
    ) -> Result<usize, String> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .map_err(|e| format!("reading {}: {e}", dir.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        entries.sort_by_key(|e| e.file_name());
        let mut count = 0;
        for entry in entries {
            let name = entry
                .file_name()
                .into_string()
                .map_err(|n| format!("non-UTF-8 name {n:?}"))?;
            let path = format!("{prefix}{name}");
            let kind = entry.file_type().map_err(|e| e.to_string())?;
            if kind.is_dir() {
                builder.dir(&path, 0o755, 0);
                count += 1 + add(builder, &entry.path(), &format!("{path}/"))?;
            } else if kind.is_symlink() {
                let target = std::fs::read_link(entry.path()).map_err(|e| e.to_string())?;
                builder.symlink(&path, &target.to_string_lossy(), 0);
                count += 1;
            } else {
                let data = std::fs::read(entry.path())
                    .map_err(|e| format!("reading {}: {e}", entry.path().display()))?;
                builder.file(&path, 0o644, 0, &data);
                count += 1;
            }
        }
        Ok(count)
    }
    let mut builder = fs::cpio::ArchiveBuilder::new();
    let count = add(&mut builder, &root().join("user/root"), "")?;
    // The programs (init, sh, tools, tests, benchmarks), built optimised:
    // the benchmarks measure them.
    let programs = crate::user::build_user_programs(true)?;
    let mut dirs = std::collections::BTreeSet::new();
    for (path, elf) in &programs {
        let mut parent = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map_or(&[][..], |(_, d)| d)
        {
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
            if dirs.insert(parent.clone()) && !root().join("user/root").join(&parent).is_dir() {
                builder.dir(&parent, 0o755, 0);
            }
        }
        builder.file(path, 0o755, 0, elf);
    }
    let path = initrd_path();
    std::fs::write(&path, builder.finish())
        .map_err(|e| format!("writing {}: {e}", path.display()))?;
    eprintln!(
        "xtask: packed {} ({count} entries from user/root, {} programs)",
        path.display(),
        programs.len()
    );
    Ok(path)
}

pub fn command(args: &[String]) -> Result<(), String> {
    crate::check_options(args, &[], &["--test"])?;
    kernel(Variant::Normal)?;
    if args.iter().any(|a| a == "--test") {
        kernel(Variant::Test)?;
    }
    Ok(())
}
