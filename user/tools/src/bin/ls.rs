// SPDX-License-Identifier: MIT OR Apache-2.0
//! `ls [-l] [paths...]`: lists directories (sorted, without `.` and `..`), or names
//! files; `-l` adds type, permissions, size and inode.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use libc_shim::abi::{Errno, FileType, Stat};
use libc_shim::dir::read_dir;
use libc_shim::{eprintln, println, sys};

libc_shim::entry!(main);

fn mode_string(st: &Stat) -> String {
    let kind = match FileType::from_mode(st.st_mode) {
        Some(FileType::Directory) => 'd',
        Some(FileType::CharDevice) => 'c',
        Some(FileType::BlockDevice) => 'b',
        Some(FileType::Fifo) => 'p',
        Some(FileType::Symlink) => 'l',
        Some(FileType::Socket) => 's',
        _ => '-',
    };
    let mut s = String::new();
    s.push(kind);
    for shift in [6, 3, 0] {
        let bits = (st.st_mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn show(path: &str, name: &str, long: bool) {
    if !long {
        println!("{name}");
        return;
    }
    match sys::stat(path) {
        Ok(st) => println!(
            "{} {:3} {:8} {:6} {name}",
            mode_string(&st),
            st.st_nlink,
            st.st_size,
            st.st_ino
        ),
        Err(e) => println!("?????????? {name} ({e})"),
    }
}

fn list(path: &str, long: bool) -> Result<(), Errno> {
    let st = sys::stat(path)?;
    if FileType::from_mode(st.st_mode) != Some(FileType::Directory) {
        show(path, path, long);
        return Ok(());
    }
    let mut entries = read_dir(path)?;
    entries.retain(|e| e.name != "." && e.name != "..");
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for e in entries {
        let full = if path.ends_with('/') {
            format!("{path}{}", e.name)
        } else {
            format!("{path}/{}", e.name)
        };
        show(&full, &e.name, long);
    }
    Ok(())
}

fn main(args: libc_shim::Args) -> i32 {
    let long = args.get(1) == Some("-l");
    let paths: alloc::vec::Vec<&str> = args.iter().skip(if long { 2 } else { 1 }).collect();
    let paths = if paths.is_empty() {
        alloc::vec!["."]
    } else {
        paths
    };
    let mut status = 0;
    for (i, path) in paths.iter().enumerate() {
        if paths.len() > 1 {
            println!("{}{path}:", if i > 0 { "\n" } else { "" });
        }
        if let Err(e) = list(path, long) {
            eprintln!("ls: {path}: {e}");
            status = 1;
        }
    }
    status
}
