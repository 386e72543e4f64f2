//! virtio-blk through its driver port: data the host wrote before boot, data
//! the host checks after the run, many requests in flight from every CPU,
//! flush, bad requests, a cancelled request, an interrupt storm.
//!
//! xtask attaches a fresh 64 MiB image to each test boot with the host
//! pattern in [`HOST_FIRST_SECTOR`].. and, after the run, checks the guest
//! pattern this suite wrote at [`GUEST_FIRST_SECTOR`].. (xtask/src/disk.rs
//! has the same layout and the same [`pattern_byte`]).

use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::future::Future;
use core::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use executor::CpuId;
use ports::Port;
use ports::proto::block::{BlockDone, BlockError, BlockInfo, BlockMsg};

use crate::sched::runtime;

/// A disk the kernel brought up, handed to the suite.
#[derive(Clone)]
pub struct TestDisk {
    pub name: String,
    pub port: Port<BlockMsg>,
    pub info: BlockInfo,
    /// Its PCI function (bus, device, function).
    pub bdf: (u8, u8, u8),
    /// The CPU vector of its first queue.
    pub vector: u8,
    /// The GSI of its INTx line when it uses one (no MSI-X).
    pub intx_gsi: Option<u32>,
}

static DISKS: spin::Once<Vec<TestDisk>> = spin::Once::new();

/// Hands the suite the kernel's disks (before the tests run).
pub fn set_disks(disks: Vec<TestDisk>) {
    DISKS.call_once(|| disks);
}

/// Where the host's pattern is (1 MiB at 1 MiB).
pub const HOST_FIRST_SECTOR: u64 = 2048;
/// Where this suite writes the pattern the host checks (1 MiB at 2 MiB).
pub const GUEST_FIRST_SECTOR: u64 = 4096;
/// Sectors in each pattern region.
pub const PATTERN_SECTORS: u64 = 2048;
/// Scratch space for the other tests (from 4 MiB on).
const SCRATCH_FIRST_SECTOR: u64 = 8192;

/// Byte `i` of sector `sector` of the pattern tagged `tag` (b'H' host, b'G'
/// guest): changes with every input, so a misplaced or torn sector shows.
pub fn pattern_byte(tag: u8, sector: u64, i: usize) -> u8 {
    let x = sector
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(i as u64 * 0x85eb)
        .wrapping_add(u64::from(tag) * 0xc2b2_ae35);
    (x ^ (x >> 13) ^ (x >> 29)) as u8
}

fn pattern(tag: u8, first: u64, sectors: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(sectors as usize * 512);
    for s in first..first + sectors {
        v.extend((0..512).map(|i| pattern_byte(tag, s, i)));
    }
    v
}

fn disk() -> TestDisk {
    DISKS
        .get()
        .and_then(|d| d.first().cloned())
        .expect("a virtio-blk disk (xtask attaches one to every test boot)")
}

/// Runs `future` on `cpu` and waits (up to 20 s) for its output.
fn run_on<T: Send + 'static>(cpu: usize, future: impl Future<Output = T> + Send + 'static) -> T {
    let slot: Arc<spin::Mutex<Option<T>>> = Arc::new(spin::Mutex::new(None));
    let out = slot.clone();
    runtime()
        .spawn_on(CpuId(cpu as u32), async move {
            let v = future.await;
            *out.lock() = Some(v);
        })
        .expect("spawn on an online CPU");
    assert!(
        crate::wait_until(|| slot.lock().is_some(), 20_000_000_000),
        "disk requests did not complete within 20 s (a lost interrupt?)"
    );
    slot.lock().take().expect("checked above")
}

async fn call(port: &Port<BlockMsg>, msg: BlockMsg) -> (Result<BlockDone, BlockError>, Vec<u8>) {
    BlockMsg::from_reply(port.call(msg).await).into_parts()
}

fn cpus() -> usize {
    hal::arch::smp::online_cpus().max(1)
}

/// Whether PCI function `bdf` lists an MSI-X capability (walked here from
/// configuration space, independently of the kernel's probe).
fn has_msix((bus, device, function): (u8, u8, u8)) -> bool {
    let cfg = hal::arch::pci::ConfigAccess::new();
    let status = cfg.read_u32(bus, device, function, 0x04) >> 16;
    if status & (1 << 4) == 0 {
        return false;
    }
    let mut at = (cfg.read_u32(bus, device, function, 0x34) & 0xfc) as u16;
    for _ in 0..48 {
        if at == 0 {
            return false;
        }
        let header = cfg.read_u32(bus, device, function, at);
        if header & 0xff == 0x11 {
            return true;
        }
        at = ((header >> 8) & 0xfc) as u16;
    }
    false
}

/// The probe uses MSI-X when the function has it and its INTx line through
/// the IOAPIC otherwise (xtask boots one suite with `vectors=0`, which
/// removes MSI-X): the line is routed level-triggered to the disk's vector.
pub fn disk_interrupts_match_the_function() {
    let d = disk();
    if has_msix(d.bdf) {
        assert_eq!(
            d.intx_gsi, None,
            "MSI-X is present but the probe chose INTx"
        );
        return;
    }
    let gsi = d
        .intx_gsi
        .expect("the function has no MSI-X but the disk has no INTx line");
    let entry = hal::arch::ioapic::gsi_entry(gsi).expect("an IOAPIC serves the line");
    assert_eq!(
        entry as u8, d.vector,
        "GSI {gsi} is routed to another vector"
    );
    assert!(entry & (1 << 15) != 0, "GSI {gsi} is not level-triggered");
    log::info!(target: "ktest", "disk on INTx GSI {gsi}, vector {:#x}", d.vector);
}

pub fn disk_reports_its_geometry() {
    let d = disk();
    assert_eq!(d.name, "vda");
    assert_eq!(d.info.sector_size, 512);
    assert_eq!(d.info.sectors, 64 << 11, "xtask attaches a 64 MiB image");
    assert!(!d.info.read_only);
    let port = d.port.clone();
    let (result, _) = run_on(0, async move { call(&port, BlockMsg::info()).await });
    assert_eq!(result, Ok(BlockDone::Info(d.info)));
}

pub fn disk_reads_what_the_host_wrote() {
    let port = disk().port;
    let (result, data) = run_on(0, async move {
        call(
            &port,
            BlockMsg::read(HOST_FIRST_SECTOR, vec![0; PATTERN_SECTORS as usize * 512]),
        )
        .await
    });
    assert_eq!(result, Ok(BlockDone::Done));
    let want = pattern(b'H', HOST_FIRST_SECTOR, PATTERN_SECTORS);
    if let Some(i) = data.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "byte {i} (sector {}) is {:#x}, the host wrote {:#x}",
            HOST_FIRST_SECTOR + i as u64 / 512,
            data[i],
            want[i]
        );
    }
}

/// Writes the guest pattern in 64 KiB requests, all in flight at once, then
/// flushes: xtask checks the image after the run.
pub fn disk_writes_what_the_host_reads_back() {
    let port = disk().port;
    let results = run_on(cpus() - 1, async move {
        let chunk = 128u64; // sectors per request
        let mut calls = Vec::new();
        for first in
            (GUEST_FIRST_SECTOR..GUEST_FIRST_SECTOR + PATTERN_SECTORS).step_by(chunk as usize)
        {
            calls.push(port.call(BlockMsg::write(first, pattern(b'G', first, chunk))));
        }
        let mut results = Vec::new();
        for c in calls {
            results.push(BlockMsg::from_reply(c.await).into_parts().0);
        }
        results.push(call(&port, BlockMsg::flush()).await.0);
        results
    });
    assert!(
        results.iter().all(|r| *r == Ok(BlockDone::Done)),
        "{results:?}"
    );
}

/// Every CPU keeps 32 requests in flight on its own region: each task
/// writes a sector pattern then reads it back.
pub fn disk_many_requests_in_flight_from_every_cpu() {
    const PER_CPU: u64 = 32;
    const ROUNDS: u64 = 4;
    static DONE: AtomicUsize = AtomicUsize::new(0);
    static BAD: AtomicUsize = AtomicUsize::new(0);
    DONE.store(0, SeqCst);
    BAD.store(0, SeqCst);
    let port = disk().port;
    let tasks = cpus() as u64 * PER_CPU;
    for cpu in 0..cpus() {
        for k in 0..PER_CPU {
            let port = port.clone();
            runtime()
                .spawn_on(CpuId(cpu as u32), async move {
                    for round in 0..ROUNDS {
                        let sector = SCRATCH_FIRST_SECTOR + (cpu as u64 * PER_CPU + k) * 8;
                        let tag = (round as u8).wrapping_add(cpu as u8 * 16 + k as u8);
                        let data = pattern(tag, sector, 8);
                        let (w, _) = call(&port, BlockMsg::write(sector, data.clone())).await;
                        let (r, back) = call(&port, BlockMsg::read(sector, vec![0; 4096])).await;
                        if w != Ok(BlockDone::Done) || r != Ok(BlockDone::Done) || back != data {
                            BAD.fetch_add(1, SeqCst);
                        }
                    }
                    DONE.fetch_add(1, SeqCst);
                })
                .expect("spawn on an online CPU");
        }
    }
    assert!(
        crate::wait_until(|| DONE.load(SeqCst) as u64 == tasks, 60_000_000_000),
        "{} of {tasks} tasks finished within 60 s",
        DONE.load(SeqCst)
    );
    assert_eq!(
        BAD.load(SeqCst),
        0,
        "requests failed or read back wrong data"
    );
}

/// A flush sent after writes completed is answered after them, and the
/// data stays readable.
pub fn disk_flush_after_writes() {
    let port = disk().port;
    let (w, f, r, data) = run_on(0, async move {
        let sector = SCRATCH_FIRST_SECTOR + 4096;
        let data = pattern(b'F', sector, 16);
        let (w, _) = call(&port, BlockMsg::write(sector, data.clone())).await;
        let (f, _) = call(&port, BlockMsg::flush()).await;
        let (r, back) = call(&port, BlockMsg::read(sector, vec![0; data.len()])).await;
        (w, f, r, back == data)
    });
    assert_eq!(
        (w, f, r),
        (
            Ok(BlockDone::Done),
            Ok(BlockDone::Done),
            Ok(BlockDone::Done)
        )
    );
    assert!(data, "read after flush returned different data");
}

/// Bad requests get their error code; the driver keeps serving.
pub fn disk_bad_requests_get_errors() {
    let d = disk();
    let port = d.port.clone();
    let last = d.info.sectors;
    let results = run_on(0, async move {
        vec![
            call(&port, BlockMsg::read(last, vec![0; 512])).await.0,
            call(&port, BlockMsg::read(last - 1, vec![0; 1024])).await.0,
            call(&port, BlockMsg::read(u64::MAX, vec![0; 512])).await.0,
            call(&port, BlockMsg::read(0, vec![0; 100])).await.0,
            call(&port, BlockMsg::read(0, Vec::new())).await.0,
            call(&port, BlockMsg::write(0, vec![0; 513])).await.0,
            call(&port, BlockMsg::read(0, vec![0; 512])).await.0,
        ]
    });
    assert_eq!(
        results,
        [
            Err(BlockError::OutOfRange),
            Err(BlockError::OutOfRange),
            Err(BlockError::OutOfRange),
            Err(BlockError::Invalid),
            Err(BlockError::Invalid),
            Err(BlockError::Invalid),
            Ok(BlockDone::Done),
        ]
    );
}

/// Requests dropped by their callers while in flight (the device still
/// working on them) leave the device usable and lose no descriptors.
pub fn disk_cancelled_requests_leave_the_device_usable() {
    let port = disk().port;
    let (ok, data_ok) = run_on(0, async move {
        for round in 0..8u64 {
            // Start 64 reads of 64 KiB, poll each once (so it reaches the
            // driver), then drop them all.
            let mut calls: Vec<_> = (0..64u64)
                .map(|i| {
                    alloc::boxed::Box::pin(
                        port.call(BlockMsg::read(i * 128 + round, vec![0; 65536])),
                    )
                })
                .collect();
            core::future::poll_fn(|cx| {
                for c in &mut calls {
                    let _ = c.as_mut().poll(cx);
                }
                core::task::Poll::Ready(())
            })
            .await;
            drop(calls);
        }
        let sector = SCRATCH_FIRST_SECTOR + 8192;
        let data = pattern(b'C', sector, 8);
        let (w, _) = call(&port, BlockMsg::write(sector, data.clone())).await;
        let (r, back) = call(&port, BlockMsg::read(sector, vec![0; 4096])).await;
        (
            w == Ok(BlockDone::Done) && r == Ok(BlockDone::Done),
            back == data,
        )
    });
    assert!(ok, "requests after the cancelled ones failed");
    assert!(data_ok, "data read after the cancelled requests is wrong");
}

/// Thousands of spurious interrupts on the disk's vector (self-IPIs) while
/// requests run: the driver wakes, finds nothing, and keeps working.
pub fn disk_survives_an_interrupt_storm() {
    let d = disk();
    let port = d.port.clone();
    let vector = d.vector;
    let cpu = 0; // where queue 0's interrupt (MSI-X or INTx) is routed (kernel/src/blk.rs)
    let ok = run_on(cpu, async move {
        let apic = hal::arch::apic::id();
        let mut good = true;
        for round in 0..20u64 {
            for _ in 0..500 {
                hal::arch::apic::send_ipi(apic, vector);
            }
            let sector = SCRATCH_FIRST_SECTOR + 12288 + round * 8;
            let data = pattern(b'S', sector, 8);
            let (w, _) = call(&port, BlockMsg::write(sector, data.clone())).await;
            let (r, back) = call(&port, BlockMsg::read(sector, vec![0; 4096])).await;
            good &= w == Ok(BlockDone::Done) && r == Ok(BlockDone::Done) && back == data;
        }
        good
    });
    assert!(ok, "I/O failed during the interrupt storm");
}
