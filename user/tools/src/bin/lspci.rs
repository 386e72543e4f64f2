// SPDX-License-Identifier: MIT OR Apache-2.0
//! `lspci [-v]`: the PCI functions the kernel found at boot (from
//! `/sys/pci`), one per line as `lspci -nn` prints them; `-v` adds the
//! interrupt pin and the BARs.
#![no_std]
#![no_main]

extern crate alloc;

use libc_shim::{dir, eprintln, println};

libc_shim::entry!(main);

/// One line of `/sys/pci`:
/// `BB:DD.F VVVV:DDDD CC SS PI RR irq=<pin> [barN=kind:addr+size ...]`.
struct Function<'a> {
    bdf: &'a str,
    ids: &'a str,
    class: u8,
    subclass: u8,
    prog_if: u8,
    revision: u8,
    rest: alloc::vec::Vec<&'a str>,
}

fn parse(line: &str) -> Option<Function<'_>> {
    let mut words = line.split_ascii_whitespace();
    let bdf = words.next()?;
    let ids = words.next()?;
    let mut hex = || u8::from_str_radix(words.next()?, 16).ok();
    let (class, subclass, prog_if, revision) = (hex()?, hex()?, hex()?, hex()?);
    Some(Function {
        bdf,
        ids,
        class,
        subclass,
        prog_if,
        revision,
        rest: words.collect(),
    })
}

fn main(args: libc_shim::Args) -> i32 {
    let verbose = match args.get(1) {
        None => false,
        Some("-v") => true,
        Some(other) => {
            eprintln!("lspci: unsupported argument {other:?} (usage: lspci [-v])");
            return 2;
        }
    };
    let text = match dir::read_file("/sys/pci") {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("lspci: /sys/pci: {e}");
            return 1;
        }
    };
    let text = alloc::string::String::from_utf8_lossy(&text);
    for line in text.lines().filter(|l| !l.is_empty()) {
        let Some(f) = parse(line) else {
            eprintln!("lspci: cannot parse {line:?}");
            return 1;
        };
        let prog_if = if f.prog_if != 0 {
            alloc::format!(" (prog-if {:02x})", f.prog_if)
        } else {
            alloc::string::String::new()
        };
        println!(
            "{} {} [{:02x}{:02x}]: [{}] (rev {:02x}){}",
            f.bdf,
            pci::class_name(f.class, f.subclass),
            f.class,
            f.subclass,
            f.ids,
            f.revision,
            prog_if
        );
        if verbose {
            for word in &f.rest {
                println!("\t{word}");
            }
        }
    }
    0
}
