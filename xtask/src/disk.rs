//! Test disks: the host's side of the block I/O tests.
//!
//! Before a test boot xtask writes a known pattern into a fresh image; the
//! kernel's `disk_reads_what_the_host_wrote` reads it back, and its
//! `disk_writes_what_the_host_reads_back` writes another pattern that xtask
//! checks here after the run. The layout and [`pattern_byte`] must match
//! tests/kernel/src/disk.rs.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::{build, qemu};

/// Where the host's pattern is (1 MiB at 1 MiB).
const HOST_FIRST_SECTOR: u64 = 2048;
/// Where the guest writes the pattern the host checks (1 MiB at 2 MiB).
const GUEST_FIRST_SECTOR: u64 = 4096;
/// Sectors in each pattern region.
const PATTERN_SECTORS: u64 = 2048;
const SECTOR: usize = 512;

/// Byte `i` of sector `sector` of the pattern tagged `tag` (as in the kernel
/// tests).
fn pattern_byte(tag: u8, sector: u64, i: usize) -> u8 {
    let x = sector
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(i as u64 * 0x85eb)
        .wrapping_add(u64::from(tag) * 0xc2b2_ae35);
    (x ^ (x >> 13) ^ (x >> 29)) as u8
}

fn pattern(tag: u8, first: u64, sectors: u64) -> Vec<u8> {
    (first..first + sectors)
        .flat_map(|s| (0..SECTOR).map(move |i| pattern_byte(tag, s, i)))
        .collect()
}

/// A fresh 64 MiB image named after `label` with the host pattern in place.
pub fn prepare_test_disk(label: &str) -> Result<PathBuf, String> {
    let path = build::out_dir().join(format!("test-disk-{label}.img"));
    std::fs::create_dir_all(build::out_dir()).map_err(|e| e.to_string())?;
    qemu::create_disk(&path, qemu::DEFAULT_DISK_BYTES)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.seek(SeekFrom::Start(HOST_FIRST_SECTOR * SECTOR as u64))
        .and_then(|_| f.write_all(&pattern(b'H', HOST_FIRST_SECTOR, PATTERN_SECTORS)))
        .map_err(|e| format!("writing the host pattern: {e}"))?;
    Ok(path)
}

/// A 64 MiB image written in full (no sparse holes, as the Linux peer's disk
/// benchmark uses), for `bench_disk`.
///
/// It goes on the host's tmpfs (`/dev/shm`) when there is one: QEMU's
/// default cache mode reads the image through the host page cache, and a host
/// that reclaims cache (a balloon, free-page reporting) drops those pages in
/// the middle of a run, so reads that should cost a `memcpy` on the host wait
/// for its disk instead. tmpfs pages stay. The Linux peer is run the same way
/// (`DISK_IMG=/dev/shm/...`, bench/peer-linux).
pub fn prepare_bench_disk() -> Result<PathBuf, String> {
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() && std::fs::metadata(shm).is_ok_and(|m| !m.permissions().readonly()) {
        shm.to_path_buf()
    } else {
        build::out_dir()
    };
    let path = dir.join(format!("damselfly-bench-disk-{}.img", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let chunk: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut f = std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    for _ in 0..qemu::DEFAULT_DISK_BYTES >> 20 {
        f.write_all(&chunk)
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(path)
}

/// Checks the pattern the guest wrote; the error names the first bad sector.
pub fn verify_guest_pattern(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut data = vec![0; PATTERN_SECTORS as usize * SECTOR];
    f.seek(SeekFrom::Start(GUEST_FIRST_SECTOR * SECTOR as u64))
        .and_then(|_| f.read_exact(&mut data))
        .map_err(|e| format!("reading the guest pattern: {e}"))?;
    let want = pattern(b'G', GUEST_FIRST_SECTOR, PATTERN_SECTORS);
    match data.iter().zip(&want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!(
            "sector {} byte {}: {:#04x}, the guest should have written {:#04x}",
            GUEST_FIRST_SECTOR + (i / SECTOR) as u64,
            i % SECTOR,
            data[i],
            want[i]
        )),
    }
}

/// Where user/tests' `blockdev` writes its pattern through `/dev/vda` (256 KiB at
/// 3 MiB, tag `U`, written at odd offsets and lengths).
const USER_OFFSET: u64 = 3 << 20;
const USER_LEN: usize = 256 << 10;

/// Checks the pattern the `blockdev` test program wrote through `/dev/vda`.
pub fn verify_user_pattern(path: &Path) -> Result<(), String> {
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut data = vec![0; USER_LEN];
    f.seek(SeekFrom::Start(USER_OFFSET))
        .and_then(|_| f.read_exact(&mut data))
        .map_err(|e| format!("reading the user pattern: {e}"))?;
    let first_sector = USER_OFFSET / SECTOR as u64;
    let want = pattern(b'U', first_sector, (USER_LEN / SECTOR) as u64);
    match data.iter().zip(&want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!(
            "byte {:#x} of the disk: {:#04x}, /dev/vda was written {:#04x}",
            USER_OFFSET + i as u64,
            data[i],
            want[i]
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_differ_by_tag_sector_and_offset() {
        let a = pattern(b'H', 10, 2);
        assert_ne!(a, pattern(b'G', 10, 2));
        assert_ne!(a[..SECTOR], a[SECTOR..]);
        assert!(a[..SECTOR].windows(2).any(|w| w[0] != w[1]));
    }
}
