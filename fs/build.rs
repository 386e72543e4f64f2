// SPDX-License-Identifier: MIT OR Apache-2.0
//! Build script: declares the `loom` cfg so `--cfg loom` model runs do not warn.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
