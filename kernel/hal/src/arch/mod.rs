//! Architecture selection: one module per architecture, chosen here only.

#[cfg_attr(target_arch = "x86_64", path = "x86_64/mod.rs")]
mod imp;

pub use imp::*;
