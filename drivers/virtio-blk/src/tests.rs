// SPDX-License-Identifier: MIT OR Apache-2.0
//! virtio-blk against a fake disk on its own thread that completes requests out of
//! order, with the driver task on a hosted executor.

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::time::Duration;

extern crate std;
use std::thread;

use executor::CpuId;
use executor::hosted::Machine;
use ports::Port;
use ports::proto::block::{BlockDone, BlockError, BlockInfo, BlockMsg, ExternalBuf};
use spin::Mutex;
use virtio::fake::{DeviceQueue, FakeCommonCfg, FakeMemory, FakeWindow};
use virtio::transport::{CommonCfg, Notifier, VIRTIO_F_EVENT_IDX, VIRTIO_F_VERSION_1};
use virtio::{QueueLayout, SplitQueue, VecRegion};

use super::*;

const SECTORS: u64 = 256;

/// What the fake disk does besides serving requests.
#[derive(Default)]
struct Behaviour {
    /// Sector -> status to answer for requests starting there.
    status_for_sector: Vec<(u64, u8)>,
    /// Report a used length larger than the chain for the next completion.
    garbage_len_once: bool,
    /// Push a used element with an out-of-range id before the next completion.
    garbage_id_once: bool,
    /// Write a used index far beyond the ring instead of the next completion.
    garbage_index_once: bool,
    /// Complete nothing while set.
    paused: bool,
    /// Requests starting at this sector are held (not completed) while it is set.
    hold_sector: Option<u64>,
}

struct Disk {
    data: Mutex<Vec<u8>>,
    behaviour: Mutex<Behaviour>,
    flushes: AtomicUsize,
    max_pending: AtomicUsize,
    served: AtomicUsize,
    stop: AtomicBool,
}

struct Rig {
    machine: Machine,
    port: Port<BlockMsg>,
    disk: Arc<Disk>,
    memory: Arc<FakeMemory>,
    device: Option<thread::JoinHandle<()>>,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.disk.stop.store(true, Ordering::Release);
        if let Some(t) = self.device.take() {
            let _ = t.join();
        }
    }
}

fn rig(size: u16, info: BlockInfo, event_idx: bool) -> Rig {
    rig_with_timeout(size, info, event_idx, DEFAULT_REQUEST_TIMEOUT)
}

/// A rig whose driver times requests out after `timeout`.
fn rig_with_timeout(size: u16, info: BlockInfo, event_idx: bool, timeout: Duration) -> Rig {
    let memory = Arc::new(FakeMemory::new());
    let layout = QueueLayout::try_new(size).unwrap();
    let region = memory.region(layout.len_bytes);
    let headers = memory.region(size as usize * HEADER_SLOT_BYTES);
    let queue = SplitQueue::try_new(region.clone(), size, event_idx).unwrap();
    let notify = Arc::new(FakeWindow::new(64, false));
    let isr = Arc::new(FakeWindow::new(4, true));
    let (driver, irq) = VirtioBlk::new(
        queue,
        headers,
        Notifier::new(notify.clone(), 0, 4, 0),
        memory.clone(),
        info,
        isr.clone(),
    );
    let driver = driver.with_request_timeout(timeout);
    let disk = Arc::new(Disk {
        data: Mutex::new(
            (0..SECTORS as usize * 512)
                .map(|i| (i / 512) as u8)
                .collect(),
        ),
        behaviour: Mutex::new(Behaviour::default()),
        flushes: AtomicUsize::new(0),
        max_pending: AtomicUsize::new(0),
        served: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
    });
    let device = {
        let disk = disk.clone();
        let memory = memory.clone();
        thread::spawn(move || {
            let mut dq = DeviceQueue::new(region, size, event_idx);
            let mut pending: Vec<(u16, Vec<virtio::fake::Descriptor>)> = Vec::new();
            let mut held = Vec::new();
            let mut idle = 0;
            let mut seed = 0x2545_f491u32;
            while !disk.stop.load(Ordering::Acquire) {
                let before = pending.len();
                while let Some(chain) = dq.pop_avail() {
                    pending.push(chain);
                }
                disk.max_pending.fetch_max(pending.len(), Ordering::Relaxed);
                idle = if pending.len() == before { idle + 1 } else { 0 };
                let (paused, hold) = {
                    let b = disk.behaviour.lock();
                    (b.paused, b.hold_sector)
                };
                // Set held chains aside (not counted as pending); release them when
                // the hold is lifted.
                match hold {
                    Some(sector) => {
                        let (keep, hold_now): (Vec<_>, Vec<_>) = pending
                            .drain(..)
                            .partition(|(_, chain)| header_of(&memory, chain).sector != sector);
                        pending = keep;
                        held.extend(hold_now);
                    }
                    None => pending.append(&mut held),
                }
                if pending.is_empty() || paused || (pending.len() < 48 && idle < 3) {
                    let _ = notify.take_writes();
                    thread::sleep(Duration::from_micros(100));
                    continue;
                }
                // Out of order: a pseudo-random permutation.
                while !pending.is_empty() {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let (head, chain) = pending.swap_remove(seed as usize % pending.len());
                    let len = serve(&disk, &memory, &chain);
                    let mut b = disk.behaviour.lock();
                    if core::mem::take(&mut b.garbage_id_once) {
                        dq.push_used(9999, 0);
                    }
                    let len = if core::mem::take(&mut b.garbage_len_once) {
                        1 << 30
                    } else {
                        len
                    };
                    if core::mem::take(&mut b.garbage_index_once) {
                        dq.set_used_idx_raw(40_000);
                        continue;
                    }
                    drop(b);
                    dq.push_used(head as u32, len);
                    disk.served.fetch_add(1, Ordering::Relaxed);
                }
                isr.set(0, &[1]);
                irq.on_interrupt();
            }
        })
    };
    let machine = Machine::start(2);
    let (port, server) = Port::executor(CpuId(0), ports::AlwaysQueue);
    machine.spawn_on(CpuId(0), driver.run(server)).unwrap();
    Rig {
        machine,
        port,
        disk,
        memory,
        device: Some(device),
    }
}

fn header_of(memory: &FakeMemory, chain: &[virtio::fake::Descriptor]) -> RequestHeader {
    RequestHeader::from_bytes(&memory.read(chain[0].addr, 16).unwrap()).unwrap()
}

/// Serves one chain like QEMU; returns the used length.
fn serve(disk: &Disk, memory: &FakeMemory, chain: &[virtio::fake::Descriptor]) -> u32 {
    let header = header_of(memory, chain);
    let status_desc = chain.last().unwrap();
    let data = &chain[1..chain.len() - 1];
    let forced = disk
        .behaviour
        .lock()
        .status_for_sector
        .iter()
        .find(|(s, _)| *s == header.sector)
        .map(|(_, st)| *st);
    let mut written = 0;
    let status = match (forced, header.kind) {
        (Some(st), _) => st,
        (None, VIRTIO_BLK_T_IN) => {
            let bytes = disk.data.lock();
            let mut at = header.sector as usize * 512;
            for d in data {
                assert!(d.device_writable);
                assert!(memory.write(d.addr, &bytes[at..at + d.len as usize]));
                at += d.len as usize;
                written += d.len;
            }
            VIRTIO_BLK_S_OK
        }
        (None, VIRTIO_BLK_T_OUT) => {
            let mut bytes = disk.data.lock();
            let mut at = header.sector as usize * 512;
            for d in data {
                assert!(!d.device_writable);
                let chunk = memory.read(d.addr, d.len as usize).unwrap();
                bytes[at..at + d.len as usize].copy_from_slice(&chunk);
                at += d.len as usize;
            }
            VIRTIO_BLK_S_OK
        }
        (None, VIRTIO_BLK_T_FLUSH) => {
            assert!(data.is_empty());
            disk.flushes.fetch_add(1, Ordering::Relaxed);
            VIRTIO_BLK_S_OK
        }
        (None, _) => VIRTIO_BLK_S_UNSUPP,
    };
    assert!(memory.write(status_desc.addr, &[status]));
    written + 1
}

fn info(read_only: bool, has_flush: bool) -> BlockInfo {
    BlockInfo {
        sectors: SECTORS,
        sector_size: 512,
        read_only,
        has_flush,
    }
}

fn call(rig: &Rig, msg: BlockMsg) -> (Result<BlockDone, BlockError>, Vec<u8>) {
    let port = rig.port.clone();
    rig.machine.block_on(CpuId(1), async move {
        BlockMsg::from_reply(port.call(msg).await).into_parts()
    })
}

#[test]
fn sixty_four_concurrent_requests_complete_out_of_order() {
    for event_idx in [true, false] {
        let rig = rig(256, info(false, true), event_idx);
        let port = rig.port.clone();
        let results = rig.machine.block_on(CpuId(1), async move {
            // 64 writes at once, each of one distinct sector, 1 or 2 sectors long.
            let handles: Vec<_> = (0..64u64)
                .map(|i| {
                    let port = port.clone();
                    executor::spawn(async move {
                        let n = 1 + (i % 2) as usize;
                        let buf = vec![0xa0 ^ i as u8; 512 * n];
                        let msg = BlockMsg::from_reply(
                            port.call(BlockMsg::write(i * 2, buf).with_op_id(i)).await,
                        );
                        (msg.op_id, msg.into_parts())
                    })
                })
                .collect();
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        });
        for (i, (op, (result, buf))) in results.into_iter().enumerate() {
            assert_eq!(op, i as u64);
            assert_eq!(result, Ok(BlockDone::Done));
            assert_eq!(buf.len(), 512 * (1 + i % 2), "buffer handed back");
        }
        assert!(
            rig.disk.max_pending.load(Ordering::Relaxed) >= 32,
            "at least 32 in flight at once"
        );
        // 64 reads at once see the data.
        let port = rig.port.clone();
        let reads = rig.machine.block_on(CpuId(1), async move {
            let handles: Vec<_> = (0..64u64)
                .map(|i| {
                    let port = port.clone();
                    executor::spawn(async move {
                        BlockMsg::from_reply(port.call(BlockMsg::read(i * 2, vec![0; 512])).await)
                            .into_parts()
                    })
                })
                .collect();
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        });
        for (i, (result, buf)) in reads.into_iter().enumerate() {
            assert_eq!(result, Ok(BlockDone::Done));
            assert_eq!(buf, vec![0xa0 ^ i as u8; 512]);
        }
        assert_eq!(rig.memory.mapped_buffers(), 0);
    }
}

#[test]
fn reads_span_page_boundaries_in_several_segments() {
    let rig = rig(64, info(false, true), true);
    let (result, buf) = call(&rig, BlockMsg::read(10, vec![0; 512 * 12]));
    assert_eq!(result, Ok(BlockDone::Done));
    let expected: Vec<u8> = (10..22).flat_map(|s| [s as u8; 512]).collect();
    assert_eq!(buf, expected);
}

#[test]
fn info_and_argument_errors_are_answered_without_the_device() {
    let rig = rig(16, info(false, true), true);
    assert_eq!(
        call(&rig, BlockMsg::info()).0,
        Ok(BlockDone::Info(info(false, true)))
    );
    assert_eq!(
        call(&rig, BlockMsg::read(0, vec![0; 100])),
        (Err(BlockError::Invalid), vec![0; 100])
    );
    assert_eq!(
        call(&rig, BlockMsg::read(SECTORS, vec![0; 512])),
        (Err(BlockError::OutOfRange), vec![0; 512])
    );
    assert_eq!(rig.disk.served.load(Ordering::Relaxed), 0);
}

#[test]
fn a_read_only_device_refuses_writes_with_erofs() {
    let rig = rig(16, info(true, false), true);
    let (result, buf) = call(&rig, BlockMsg::write(0, vec![7; 512]));
    assert_eq!(result, Err(BlockError::ReadOnly));
    assert_eq!(BlockError::ReadOnly.errno(), 30);
    assert_eq!(buf, vec![7; 512], "buffer back on error");
    assert_eq!(
        call(&rig, BlockMsg::read(3, vec![0; 512])),
        (Ok(BlockDone::Done), vec![3; 512])
    );
}

#[test]
fn flush_reaches_the_device_only_when_it_has_a_cache() {
    let rig_cache = rig(16, info(false, true), true);
    assert_eq!(call(&rig_cache, BlockMsg::flush()).0, Ok(BlockDone::Done));
    assert_eq!(rig_cache.disk.flushes.load(Ordering::Relaxed), 1);
    let rig_none = rig(16, info(false, false), true);
    assert_eq!(call(&rig_none, BlockMsg::flush()).0, Ok(BlockDone::Done));
    assert_eq!(rig_none.disk.flushes.load(Ordering::Relaxed), 0);
}

#[test]
fn device_errors_become_block_errors_and_the_task_survives() {
    let rig = rig(16, info(false, true), true);
    rig.disk.behaviour.lock().status_for_sector =
        vec![(5, VIRTIO_BLK_S_IOERR), (6, VIRTIO_BLK_S_UNSUPP), (7, 0x77)];
    assert_eq!(
        call(&rig, BlockMsg::read(5, vec![0; 512])),
        (Err(BlockError::Io), vec![0; 512])
    );
    assert_eq!(
        call(&rig, BlockMsg::write(6, vec![1; 512])),
        (Err(BlockError::Unsupported), vec![1; 512])
    );
    assert_eq!(
        call(&rig, BlockMsg::read(7, vec![0; 512])).0,
        Err(BlockError::Io),
        "garbage status"
    );
    assert_eq!(
        call(&rig, BlockMsg::read(8, vec![0; 512])),
        (Ok(BlockDone::Done), vec![8; 512])
    );
}

#[test]
fn garbage_used_elements_fail_one_request_and_the_queue_stays_usable() {
    let rig = rig(16, info(false, true), true);
    rig.disk.behaviour.lock().garbage_len_once = true;
    assert_eq!(
        call(&rig, BlockMsg::read(1, vec![0; 512])).0,
        Err(BlockError::Io)
    );
    rig.disk.behaviour.lock().garbage_id_once = true;
    assert_eq!(
        call(&rig, BlockMsg::read(2, vec![0; 512])),
        (Ok(BlockDone::Done), vec![2; 512])
    );
    for i in 0..40 {
        assert_eq!(
            call(&rig, BlockMsg::read(i, vec![0; 512])).0,
            Ok(BlockDone::Done)
        );
    }
}

#[test]
fn a_cancelled_request_is_reclaimed_when_the_device_completes_it() {
    let rig = rig(16, info(false, true), true);
    rig.disk.behaviour.lock().paused = true;
    let port = rig.port.clone();
    let timed_out = rig.machine.block_on(CpuId(1), async move {
        executor::timeout(
            Duration::from_millis(20),
            port.call(BlockMsg::read(4, vec![0; 512])),
        )
        .await
        .is_err()
    });
    assert!(timed_out, "the call was dropped while the device held it");
    assert_eq!(
        rig.memory.mapped_buffers(),
        1,
        "the device still owns the buffer"
    );
    rig.disk.behaviour.lock().paused = false;
    // The queue is usable: more requests than the ring could hold if the chain leaked.
    for i in 0..20 {
        assert_eq!(
            call(&rig, BlockMsg::read(i, vec![0; 512])),
            (Ok(BlockDone::Done), vec![i as u8; 512])
        );
    }
    assert_eq!(
        rig.memory.mapped_buffers(),
        0,
        "the cancelled buffer was unmapped and freed"
    );
}

#[test]
fn a_buffer_that_cannot_be_mapped_is_an_io_error_with_the_buffer_back() {
    let rig = rig(16, info(false, true), true);
    rig.memory.refuse_maps(1);
    assert_eq!(
        call(&rig, BlockMsg::write(0, vec![9; 512])),
        (Err(BlockError::Io), vec![9; 512])
    );
    assert_eq!(
        call(&rig, BlockMsg::write(0, vec![9; 512])).0,
        Ok(BlockDone::Done)
    );
}

#[test]
fn negotiation_reads_capacity_and_read_only() {
    let dev = FakeCommonCfg::new(
        VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VIRTIO_BLK_F_RO | (1 << 2),
        &[256],
    );
    let config = FakeWindow::new(64, false);
    config.set(0, &(0x1_0000_0010u64).to_le_bytes());
    let (features, info) = negotiate(&CommonCfg::new(&dev), &config).unwrap();
    assert_eq!(
        features,
        VIRTIO_F_VERSION_1 | VIRTIO_F_EVENT_IDX | VIRTIO_BLK_F_RO
    );
    assert_eq!(
        info,
        BlockInfo {
            sectors: 0x1_0000_0010,
            sector_size: 512,
            read_only: true,
            has_flush: false
        }
    );
}

#[test]
fn queue_count_comes_from_the_config_only_with_the_multi_queue_feature() {
    let dev = FakeCommonCfg::new(VIRTIO_F_VERSION_1 | VIRTIO_BLK_F_MQ, &[256, 256, 256]);
    let config = FakeWindow::new(64, false);
    config.set(34, &3u16.to_le_bytes());
    let (features, _) = negotiate(&CommonCfg::new(&dev), &config).unwrap();
    assert_eq!(
        features & VIRTIO_BLK_F_MQ,
        VIRTIO_BLK_F_MQ,
        "MQ is asked for"
    );
    assert_eq!(num_queues(features, &config), 3);
    assert_eq!(
        num_queues(features & !VIRTIO_BLK_F_MQ, &config),
        1,
        "no MQ: queue 0 only"
    );
    config.set(34, &0u16.to_le_bytes());
    assert_eq!(
        num_queues(features, &config),
        1,
        "a device saying 0 still has queue 0"
    );
}

#[test]
fn on_interrupt_claims_only_its_own_interrupts() {
    let memory = FakeMemory::new();
    let region = memory.region(QueueLayout::try_new(4).unwrap().len_bytes);
    let headers = memory.region(4 * HEADER_SLOT_BYTES);
    let isr = FakeWindow::new(4, true);
    let notify = FakeWindow::new(4, false);
    let (_driver, irq) = VirtioBlk::new(
        SplitQueue::try_new(region, 4, false).unwrap(),
        headers,
        Notifier::new(&notify, 0, 0, 0),
        Arc::new(memory),
        info(false, false),
        &isr,
    );
    assert!(!irq.on_interrupt(), "ISR 0: shared line, not ours");
    isr.set(0, &[1]);
    assert!(irq.on_interrupt());
    assert!(!irq.on_interrupt(), "the read acknowledged it");
    let _ = VecRegion::new(0, 0);
}

#[test]
fn a_device_that_breaks_the_used_ring_fails_requests_instead_of_hanging_them() {
    let rig = rig(16, info(false, true), true);
    rig.disk.behaviour.lock().garbage_index_once = true;
    let (result, buf) = call(&rig, BlockMsg::read(1, vec![0; 512]));
    assert_eq!(result, Err(BlockError::Io));
    assert!(
        buf.is_empty(),
        "the buffer stays quarantined: the device may still write it"
    );
    assert_eq!(
        call(&rig, BlockMsg::read(2, vec![0; 512])),
        (Err(BlockError::Io), vec![0; 512])
    );
    assert_eq!(call(&rig, BlockMsg::info()).0, Err(BlockError::Io));
}

// ---------------------------------------------------------------- external memory

/// `len` bytes of parked caller memory (holding `data`) as an external buffer in page
/// segments, owned by `owner`; returns it and its address.
fn external(rig: &Rig, data: Vec<u8>, owner: &Arc<()>) -> (ExternalBuf, u64) {
    use ports::proto::block::PhysSegment;
    let len = data.len() as u64;
    let addr = rig.memory.park(data);
    let mut segments = Vec::new();
    let mut at = addr;
    while at < addr + len {
        let next = ((at / 4096 + 1) * 4096).min(addr + len);
        segments.push(PhysSegment {
            addr: at,
            len: (next - at) as u32,
        });
        at = next;
    }
    (ExternalBuf::new(segments, owner.clone()), addr)
}

fn call_msg(rig: &Rig, msg: BlockMsg) -> BlockMsg {
    let port = rig.port.clone();
    rig.machine.block_on(CpuId(1), async move {
        BlockMsg::from_reply(port.call(msg).await)
    })
}

#[test]
fn external_memory_is_read_into_and_written_from_in_place() {
    let rig = rig(64, info(false, true), true);
    let owner = Arc::new(());
    // A write from caller memory spanning pages, then a read into other caller memory.
    let data: Vec<u8> = (0..512 * 12).map(|i| (i % 249) as u8).collect();
    let (buf, _) = external(&rig, data.clone(), &owner);
    let back = call_msg(&rig, BlockMsg::write_external(20, buf));
    assert_eq!(back.result, Some(Ok(BlockDone::Done)));
    assert!(back.buf.is_empty());
    assert_eq!(back.external.as_ref().map(ExternalBuf::len), Some(512 * 12));
    drop(back);
    assert_eq!(rig.disk.data.lock()[20 * 512..32 * 512], data[..]);

    let (buf, addr) = external(&rig, vec![0; 512 * 12], &owner);
    assert!(buf.segments().len() > 1, "the test covers several segments");
    let back = call_msg(&rig, BlockMsg::read_external(20, buf));
    assert_eq!(back.result, Some(Ok(BlockDone::Done)));
    drop(back);
    assert_eq!(rig.memory.read(addr, 512 * 12), Some(data));
    assert_eq!(Arc::strong_count(&owner), 1, "the driver kept no piece");
    assert_eq!(
        rig.memory.mapped_buffers(),
        2,
        "nothing was mapped (only the parked memory)"
    );
}

#[test]
fn external_memory_errors_hand_it_back_and_refuse_too_many_segments() {
    let rig = rig(256, info(false, true), true);
    let owner = Arc::new(());
    // Not whole sectors, past the end, and both `buf` and `external` at once.
    let (buf, _) = external(&rig, vec![0; 100], &owner);
    let back = call_msg(&rig, BlockMsg::read_external(0, buf));
    assert_eq!(back.result, Some(Err(BlockError::Invalid)));
    assert!(back.external.is_some(), "the memory comes back");
    drop(back);
    let (buf, _) = external(&rig, vec![0; 1024], &owner);
    let back = call_msg(&rig, BlockMsg::read_external(SECTORS - 1, buf));
    assert_eq!(back.result, Some(Err(BlockError::OutOfRange)));
    drop(back);
    let (buf, _) = external(&rig, vec![0; 512], &owner);
    let mut msg = BlockMsg::read_external(0, buf);
    msg.buf = vec![0; 512];
    assert_eq!(call_msg(&rig, msg).result, Some(Err(BlockError::Invalid)));

    // 129 one-sector segments: more than a request may carry.
    let (whole, _) = external(&rig, vec![0; 129 * 4096], &owner);
    let pieces: Vec<_> = (0..129).map(|i| whole.slice(i * 4096, 512)).collect();
    let segments: Vec<_> = pieces.iter().flat_map(|p| p.segments().to_vec()).collect();
    let buf = ExternalBuf::new(segments, owner.clone());
    assert_eq!(buf.segments().len(), 129);
    let back = call_msg(&rig, BlockMsg::read_external(0, buf));
    assert_eq!(back.result, Some(Err(BlockError::Invalid)));
    assert!(back.external.is_some());
    drop(back);

    // Memory the device cannot reach (the mapper refuses it) is an I/O error.
    let (buf, addr) = external(&rig, vec![0; 512], &owner);
    rig.memory.unpark(addr);
    let back = call_msg(&rig, BlockMsg::write_external(0, buf));
    assert_eq!(back.result, Some(Err(BlockError::Io)));
    drop((back, whole, pieces));
    assert_eq!(Arc::strong_count(&owner), 1);
}

#[test]
fn a_cancelled_external_request_keeps_its_memory_until_the_device_is_done() {
    let rig = rig(16, info(false, true), true);
    let owner = Arc::new(());
    rig.disk.behaviour.lock().paused = true;
    let (buf, addr) = external(&rig, vec![0; 512], &owner);
    let port = rig.port.clone();
    let timed_out = rig.machine.block_on(CpuId(1), async move {
        executor::timeout(
            Duration::from_millis(20),
            port.call(BlockMsg::read_external(4, buf)),
        )
        .await
        .is_err()
    });
    assert!(timed_out, "the call was dropped while the device held it");
    assert_eq!(
        Arc::strong_count(&owner),
        2,
        "the driver still holds the memory"
    );
    rig.disk.behaviour.lock().paused = false;
    for i in 0..20 {
        assert_eq!(
            call(&rig, BlockMsg::read(i, vec![0; 512])),
            (Ok(BlockDone::Done), vec![i as u8; 512])
        );
    }
    assert_eq!(
        Arc::strong_count(&owner),
        1,
        "released once the device answered"
    );
    assert_eq!(rig.memory.read(addr, 512), Some(vec![4; 512]));
}

#[test]
fn a_broken_ring_quarantines_external_memory_forever() {
    let rig = rig(16, info(false, true), true);
    let owner = Arc::new(());
    rig.disk.behaviour.lock().garbage_index_once = true;
    let (buf, _) = external(&rig, vec![0; 512], &owner);
    let back = call_msg(&rig, BlockMsg::read_external(1, buf));
    assert_eq!(back.result, Some(Err(BlockError::Io)));
    assert!(back.external.is_none(), "the device may still write it");
    drop(back);
    assert_eq!(Arc::strong_count(&owner), 2, "the pin is never released");
}

// ---------------------------------------------------------------- request timeouts

/// Waits on the test thread until `cond` holds; fails after 5 s.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "still waiting for {what}"
        );
        thread::sleep(Duration::from_millis(1));
    }
}

/// `call`, failing the test instead of hanging if no answer comes within 5 s.
fn call_within(rig: &Rig, msg: BlockMsg) -> BlockMsg {
    let port = rig.port.clone();
    rig.machine.block_on(CpuId(1), async move {
        let reply = executor::timeout(Duration::from_secs(5), port.call(msg)).await;
        BlockMsg::from_reply(reply.expect("no answer within 5 s"))
    })
}

/// Once the device is let go, every held request's late completion is reaped (no
/// mapped buffer left) and five chains fit on the queue again.
fn assert_late_completions_reaped_and_queue_usable(rig: &Rig) {
    wait_until("the late completions to be reaped", || {
        rig.memory.mapped_buffers() == 0
    });
    assert_the_whole_queue_is_usable(rig, 5);
}

/// No slot or descriptor leaked: `chains` one-sector reads (all the queue holds) sit on
/// the device at once, then complete with the right data.
fn assert_the_whole_queue_is_usable(rig: &Rig, chains: u64) {
    rig.disk.behaviour.lock().paused = true;
    rig.disk.max_pending.store(0, Ordering::Relaxed);
    let port = rig.port.clone();
    let all = rig
        .machine
        .spawn_on(CpuId(1), async move {
            let handles: Vec<_> = (0..chains)
                .map(|i| {
                    let port = port.clone();
                    executor::spawn(async move {
                        BlockMsg::from_reply(port.call(BlockMsg::read(i, vec![0; 512])).await)
                            .into_parts()
                    })
                })
                .collect();
            let mut out = Vec::new();
            for h in handles {
                out.push(h.await.unwrap());
            }
            out
        })
        .unwrap();
    wait_until("every chain on the device at once", || {
        rig.disk.max_pending.load(Ordering::Relaxed) == chains as usize
    });
    rig.disk.behaviour.lock().paused = false;
    let results = rig.machine.block_on(CpuId(1), async move {
        executor::timeout(Duration::from_secs(5), all)
            .await
            .expect("answered")
            .unwrap()
    });
    for (i, parts) in results.into_iter().enumerate() {
        assert_eq!(parts, (Ok(BlockDone::Done), vec![i as u8; 512]));
    }
}

#[test]
fn a_request_to_a_hung_device_times_out_and_its_late_completion_is_reaped() {
    let timeout = Duration::from_millis(100);
    let rig = rig_with_timeout(16, info(false, true), true, timeout);
    rig.disk.behaviour.lock().paused = true;
    let started = std::time::Instant::now();
    let (result, buf) = call_within(&rig, BlockMsg::read(4, vec![0xee; 512 * 3])).into_parts();
    let took = started.elapsed();
    assert_eq!(result, Err(BlockError::TimedOut));
    assert_eq!(BlockError::TimedOut.errno(), 110, "ETIMEDOUT");
    assert_eq!(
        buf,
        vec![0; 512 * 3],
        "a fresh zeroed buffer of the same length"
    );
    assert!(took >= timeout, "answered before the deadline: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(
        rig.memory.mapped_buffers(),
        1,
        "the device still holds the lent buffer"
    );

    rig.disk.behaviour.lock().paused = false;
    wait_until("the late completion to be reaped", || {
        rig.memory.mapped_buffers() == 0
    });
    assert_eq!(
        call(&rig, BlockMsg::read(5, vec![0; 512])),
        (Ok(BlockDone::Done), vec![5; 512])
    );
    // 16 descriptors, 3 per chain: 5 chains, none kept by the timed-out one.
    assert_the_whole_queue_is_usable(&rig, 5);
}

#[test]
fn requests_beyond_the_queue_to_a_hung_device_all_time_out_within_two_timeouts() {
    let timeout = Duration::from_millis(200);
    let rig = rig_with_timeout(16, info(false, true), true, timeout);
    rig.disk.behaviour.lock().paused = true;
    let port = rig.port.clone();
    let started = std::time::Instant::now();
    let results = rig.machine.block_on(CpuId(1), async move {
        // 40 requests: 5 fit the queue, 35 wait in the backlog.
        let handles: Vec<_> = (0..40u64)
            .map(|i| {
                let port = port.clone();
                executor::spawn(async move {
                    let msg = BlockMsg::read(i, vec![0xee; 512]).with_op_id(i);
                    let reply = executor::timeout(Duration::from_secs(5), port.call(msg)).await;
                    let msg = BlockMsg::from_reply(reply.expect("no answer within 5 s"));
                    (msg.op_id, msg.into_parts())
                })
            })
            .collect();
        let mut out = Vec::new();
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    });
    let took = started.elapsed();
    assert_eq!(results.len(), 40);
    let mut from_device = 0;
    for (i, (op, (result, buf))) in results.into_iter().enumerate() {
        assert_eq!(op, i as u64);
        assert_eq!(result, Err(BlockError::TimedOut), "op {i}");
        assert_eq!(buf.len(), 512, "op {i}");
        if buf == [0; 512] {
            from_device += 1;
        } else {
            assert_eq!(
                buf, [0xee; 512],
                "a backlog request gets its own buffer back"
            );
        }
    }
    assert_eq!(rig.disk.max_pending.load(Ordering::Relaxed), 5);
    assert_eq!(from_device, 5, "exactly the requests the device held");
    assert!(took >= timeout, "{took:?}");
    // The backlog is stamped on arrival, not in rounds as slots would come free.
    assert!(
        took < timeout * 5 / 2,
        "about two timeouts at most: {took:?}"
    );

    rig.disk.behaviour.lock().paused = false;
    assert_late_completions_reaped_and_queue_usable(&rig);
}

#[test]
fn requests_completed_before_their_deadline_are_not_timed_out_when_the_timer_fires() {
    let timeout = Duration::from_millis(200);
    let rig = rig_with_timeout(16, info(false, true), true, timeout);
    let started = std::time::Instant::now();
    let mut n = 0u64;
    // Keep the device busy across two timeouts, so the timer fires with requests in
    // flight and with completed ones behind it.
    while started.elapsed() < timeout * 2 + Duration::from_millis(100) {
        let sector = n % SECTORS;
        let (result, buf) = call_within(&rig, BlockMsg::read(sector, vec![0; 512])).into_parts();
        assert_eq!(result, Ok(BlockDone::Done), "request {n}");
        assert_eq!(buf, vec![sector as u8; 512]);
        n += 1;
    }
    // Idle past another deadline, then more: the re-armed timer must not hit them.
    thread::sleep(timeout * 2);
    for sector in 0..20 {
        assert_eq!(
            call_within(&rig, BlockMsg::read(sector, vec![0; 512])).into_parts(),
            (Ok(BlockDone::Done), vec![sector as u8; 512])
        );
    }
    let fired = rig.machine.stats(CpuId(0)).timers_fired;
    assert!(
        (2..=6).contains(&fired),
        "one timer for all {n} requests, firing about once per timeout: {fired}"
    );
}

#[test]
fn only_the_hung_request_times_out_while_others_keep_completing() {
    let timeout = Duration::from_millis(200);
    let rig = rig_with_timeout(16, info(false, true), true, timeout);
    rig.disk.behaviour.lock().hold_sector = Some(9);
    let port = rig.port.clone();
    let hung = rig
        .machine
        .spawn_on(CpuId(1), async move {
            BlockMsg::from_reply(port.call(BlockMsg::read(9, vec![0xee; 512])).await).into_parts()
        })
        .unwrap();
    let started = std::time::Instant::now();
    let mut n = 0u64;
    while started.elapsed() < timeout + Duration::from_millis(100) {
        let sector = 10 + n % 20;
        assert_eq!(
            call_within(&rig, BlockMsg::read(sector, vec![0; 512])).into_parts(),
            (Ok(BlockDone::Done), vec![sector as u8; 512]),
            "request {n}"
        );
        n += 1;
    }
    let hung = rig.machine.block_on(CpuId(1), async move {
        executor::timeout(Duration::from_secs(5), hung)
            .await
            .expect("answered")
            .unwrap()
    });
    assert_eq!(hung, (Err(BlockError::TimedOut), vec![0; 512]));
    rig.disk.behaviour.lock().hold_sector = None;
    assert_late_completions_reaped_and_queue_usable(&rig);
}

#[test]
fn a_timed_out_external_request_keeps_its_memory_until_the_late_completion() {
    let timeout = Duration::from_millis(100);
    let rig = rig_with_timeout(16, info(false, true), true, timeout);
    let owner = Arc::new(());
    rig.disk.behaviour.lock().paused = true;
    let (buf, addr) = external(&rig, vec![0; 512], &owner);
    let back = call_within(&rig, BlockMsg::read_external(4, buf));
    assert_eq!(back.result, Some(Err(BlockError::TimedOut)));
    assert!(back.external.is_none(), "the device may still write it");
    assert!(back.buf.is_empty());
    drop(back);
    assert_eq!(
        Arc::strong_count(&owner),
        2,
        "the driver still holds the memory (and so the pin)"
    );

    rig.disk.behaviour.lock().paused = false;
    wait_until("the late completion to release the memory", || {
        Arc::strong_count(&owner) == 1
    });
    assert_eq!(
        rig.memory.read(addr, 512),
        Some(vec![4; 512]),
        "the late DMA landed in memory that was still held"
    );
    assert_the_whole_queue_is_usable(&rig, 5);
}

#[test]
#[should_panic(expected = "zero request timeout")]
fn a_zero_request_timeout_is_refused() {
    let _ = rig_with_timeout(16, info(false, true), true, Duration::ZERO);
}
