// SPDX-License-Identifier: MIT OR Apache-2.0
//! `stat paths...`: prints each path's metadata.
#![no_std]
#![no_main]

use libc_shim::abi::FileType;
use libc_shim::{eprintln, println, sys};

libc_shim::entry!(main);

fn main(args: libc_shim::Args) -> i32 {
    let mut status = 0;
    for path in args.iter().skip(1) {
        match sys::stat(path) {
            Ok(st) => {
                let kind = match FileType::from_mode(st.st_mode) {
                    Some(FileType::Regular) => "regular file",
                    Some(FileType::Directory) => "directory",
                    Some(FileType::CharDevice) => "character device",
                    Some(FileType::BlockDevice) => "block device",
                    Some(FileType::Fifo) => "fifo",
                    Some(FileType::Symlink) => "symbolic link",
                    Some(FileType::Socket) => "socket",
                    None => "unknown",
                };
                println!("  File: {path}");
                println!("  Size: {}\tBlocks: {}\t{kind}", st.st_size, st.st_blocks);
                println!(
                    "Device: {}\tInode: {}\tLinks: {}",
                    st.st_dev, st.st_ino, st.st_nlink
                );
                println!(
                    "Access: ({:04o})\tUid: {}\tGid: {}",
                    st.st_mode & 0o7777,
                    st.st_uid,
                    st.st_gid
                );
                println!("Modify: {}.{:09}", st.st_mtime.tv_sec, st.st_mtime.tv_nsec);
            }
            Err(e) => {
                eprintln!("stat: {path}: {e}");
                status = 1;
            }
        }
    }
    status
}
