//! virtio-blk glue: the kernel's implementations of the virtio traits over
//! hal's device handles, and the probe that brings a disk up as a driver
//! task serving a block port.
//!
//! The driver itself (drivers/virtio-blk) is host-tested and hardware-free;
//! this file only maps the BARs, allocates DMA memory, routes the interrupts
//! and spawns the tasks.
//!
//! Interrupts: MSI-X when the function has it (one vector and one request
//! queue per CPU), else its legacy INTx line through the IOAPIC (one queue,
//! served on CPU 0, whose line handler reads the ISR status, which is what
//! acknowledges the device). virtio's PCI transport defines no plain-MSI
//! mode, so MSI is not a choice for it.

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;

use executor::CpuId;
use hal::device::{DmaMemory, Mmio};
use pci::{Bar, ConfigSpace, Msix, PciDevice};
use ports::Port;
use ports::proto::block::{BlockInfo, BlockMsg};
use virtio::transport::{CapRegion, CommonCfg, NO_VECTOR, Notifier, VIRTIO_F_EVENT_IDX};
use virtio::{DmaDirection, DmaMapper, DmaRegion, DmaSegment, QueueLayout, Registers, SplitQueue};

/// A register window inside a mapped BAR (a virtio capability's region).
#[derive(Clone, Debug)]
pub struct Window {
    bar: &'static Mmio,
    base: usize,
    len: usize,
}

impl Window {
    fn offset(&self, offset: usize, size: usize) -> usize {
        assert!(
            offset + size <= self.len,
            "virtio window access at {offset:#x} beyond {:#x} bytes",
            self.len
        );
        self.base + offset
    }
}

impl Registers for Window {
    fn read_u8(&self, offset: usize) -> u8 {
        self.bar.read_u8(self.offset(offset, 1))
    }
    fn read_u16(&self, offset: usize) -> u16 {
        self.bar.read_u16(self.offset(offset, 2))
    }
    fn read_u32(&self, offset: usize) -> u32 {
        self.bar.read_u32(self.offset(offset, 4))
    }
    fn write_u8(&self, offset: usize, value: u8) {
        self.bar.write_u8(self.offset(offset, 1), value)
    }
    fn write_u16(&self, offset: usize, value: u16) {
        self.bar.write_u16(self.offset(offset, 2), value)
    }
    fn write_u32(&self, offset: usize, value: u32) {
        self.bar.write_u32(self.offset(offset, 4), value)
    }
}

/// DMA memory for queues and request headers.
#[derive(Debug)]
pub struct Dma(DmaMemory);

impl DmaRegion for Dma {
    fn device_addr(&self) -> u64 {
        self.0.phys()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn read_u16(&self, offset: usize) -> u16 {
        self.0.read_u16(offset)
    }
    fn read_u32(&self, offset: usize) -> u32 {
        self.0.read_u32(offset)
    }
    fn write_u16(&self, offset: usize, value: u16) {
        self.0.write_u16(offset, value)
    }
    fn write_u32(&self, offset: usize, value: u32) {
        self.0.write_u32(offset, value)
    }
    fn write_u64(&self, offset: usize, value: u64) {
        self.0.write_u64(offset, value)
    }
    fn barrier(&self) {
        self.0.barrier()
    }
}

/// Lends kernel heap buffers to a device: no copy, no bounce buffer; the
/// segments are the buffer's physical pages, merged where contiguous
/// (there is no IOMMU, so physical = device address).
#[derive(Debug, Default)]
pub struct HeapMapper;

/// A buffer while the device owns it.
#[derive(Debug)]
pub struct Mapped {
    buf: Vec<u8>,
    segments: Vec<DmaSegment>,
}

impl DmaMapper for HeapMapper {
    type Mapped = Mapped;

    fn map(&self, buf: Vec<u8>, _direction: DmaDirection) -> Result<Mapped, Vec<u8>> {
        let mut segments: Vec<DmaSegment> = Vec::new();
        let start = buf.as_ptr() as u64;
        let end = start + buf.len() as u64;
        let mut va = start;
        while va < end {
            let page_end = (va | 0xfff) + 1;
            let len = (page_end.min(end) - va) as u32;
            let Some(phys) = hal::mm::translate(va) else {
                return Err(buf);
            };
            match segments.last_mut() {
                Some(last) if last.addr + last.len as u64 == phys && last.len < (1 << 30) => {
                    last.len += len
                }
                _ => segments.push(DmaSegment { addr: phys, len }),
            }
            va += len as u64;
        }
        if segments.is_empty() {
            return Err(buf);
        }
        Ok(Mapped { buf, segments })
    }

    fn segments<'a>(&self, mapped: &'a Mapped) -> &'a [DmaSegment] {
        &mapped.segments
    }

    fn unmap(&self, mapped: Mapped) -> Vec<u8> {
        mapped.buf
    }

    /// Pinned user pages (zero-copy `O_DIRECT`) go to the device by their physical
    /// address as they are: there is no IOMMU, so physical = device address.
    fn external_addr(&self, phys: u64, _len: u32, _direction: DmaDirection) -> Option<u64> {
        Some(phys)
    }
}

/// How a disk's completions interrupt the CPUs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Interrupts {
    /// One MSI-X vector per queue (queue `i` on CPU `i`).
    MsiX {
        /// The CPU vectors, by queue.
        vectors: Vec<u8>,
    },
    /// The function's INTx line (one queue).
    Intx {
        /// The IOAPIC input.
        gsi: u32,
        /// The CPU vector.
        vector: u8,
    },
}

impl core::fmt::Display for Interrupts {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Interrupts::MsiX { vectors } => write!(f, "MSI-X vectors {vectors:x?}"),
            Interrupts::Intx { gsi, vector } => {
                write!(f, "INTx on GSI {gsi} (vector {vector:#x}, no MSI-X)")
            }
        }
    }
}

/// A disk brought up at boot.
#[derive(Clone)]
pub struct Disk {
    /// `vda`, `vdb`, ...
    pub name: String,
    /// The driver's port: per CPU (`Port::per_cpu`), so a request goes to the queue
    /// of the CPU it is made on.
    pub port: Port<BlockMsg>,
    /// Its geometry.
    pub info: BlockInfo,
    /// How its completions interrupt.
    pub interrupts: Interrupts,
    /// Its PCI function.
    pub bdf: pci::Bdf,
}

static DISKS: spin::Mutex<Vec<Disk>> = spin::Mutex::new(Vec::new());

/// The disks probed so far, in probe order.
pub fn disks() -> Vec<Disk> {
    DISKS.lock().clone()
}

/// virtio-blk, modern (1042) or transitional (1001) with the modern
/// capabilities.
pub fn matches(d: &PciDevice) -> bool {
    d.header.vendor_id == 0x1af4 && matches!(d.header.device_id, 0x1042 | 0x1001)
}

/// Largest queue the driver asks for.
const QUEUE_SIZE: u16 = 256;

/// Brings one virtio-blk function up (see drivers/README.md, "virtio-blk
/// probe, step by step").
pub fn probe(device: &PciDevice) -> Result<(), String> {
    let cfg = crate::pci::config();
    let bdf = device.bdf;
    let caps = virtio::find_caps(cfg, bdf).map_err(|e| e.to_string())?;
    let mut bars: [Option<&'static Mmio>; 6] = [None; 6];
    let mut window = |region: CapRegion| -> Result<Window, String> {
        let index = usize::from(region.bar);
        let mmio = match bars[index] {
            Some(m) => m,
            None => {
                let Some(Bar::Memory { addr, size, .. }) = device.bars[index] else {
                    return Err(alloc::format!("BAR {index} is not memory"));
                };
                let m: &'static Mmio = Box::leak(Box::new(
                    Mmio::map(addr, size).map_err(|e| alloc::format!("BAR {index}: {e}"))?,
                ));
                bars[index] = Some(m);
                m
            }
        };
        let (base, len) = (region.offset as usize, region.length as usize);
        if base.checked_add(len).is_none_or(|end| end > mmio.len()) {
            return Err(alloc::format!("capability outside BAR {index}"));
        }
        Ok(Window {
            bar: mmio,
            base,
            len,
        })
    };
    let common = CommonCfg::new(window(caps.common)?);
    let notify = window(caps.notify)?;
    let isr = window(caps.isr)?;
    let device_cfg = window(caps.device.ok_or("no device configuration capability")?)?;
    // The MSI-X table's BAR, mapped through the same cache.
    let msix = match Msix::read(cfg, bdf) {
        Some(msix) => {
            let table = window(CapRegion {
                bar: msix.table_bar,
                offset: msix.table_offset,
                length: 16 * u32::from(msix.vector_count),
            })?;
            Some((msix, table))
        }
        None => None,
    };
    pci::enable(cfg, bdf, true, false, true);

    let (features, info) =
        virtio_blk::negotiate(&common, &device_cfg).map_err(|e| e.to_string())?;
    let runtime = crate::sched::runtime().ok_or("no executor")?;
    // One request queue per CPU (as many as the device offers and the MSI-X table
    // holds), each served by a driver task on its CPU with its completion interrupt
    // there: a program's request never crosses CPUs (Linux's blk-mq does the same).
    // Without MSI-X, one queue on the INTx line.
    let wanted = usize::from(virtio_blk::num_queues(features, &device_cfg))
        .min(runtime.cpu_count())
        .min(
            msix.as_ref()
                .map_or(1, |(m, _)| usize::from(m.vector_count)),
        )
        .max(1);
    let mut irq = match &msix {
        Some((msix, table)) => {
            msix.set_enabled(cfg, bdf, true, true);
            common.set_config_vector(NO_VECTOR);
            QueueIrq::MsiX { msix, table }
        }
        None => {
            let command = cfg.read_u16(bdf, pci::reg::COMMAND);
            cfg.write_u16(
                bdf,
                pci::reg::COMMAND,
                command & !pci::reg::COMMAND_INTX_DISABLE,
            );
            QueueIrq::Intx { device, line: None }
        }
    };
    let mut queues = Vec::new();
    for q in 0..wanted {
        match setup_queue(
            &common, &mut irq, &notify, &isr, &caps, q as u16, features, info,
        ) {
            Ok(queue) => queues.push(queue),
            // Out of MSI vectors (16 for the whole machine): serve with fewer queues.
            Err(e) if q > 0 => {
                log::warn!(target: "virtio-blk", "{bdf}: queue {q}: {e}; using {q} queues");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if let Some((msix, _)) = &msix {
        msix.set_enabled(cfg, bdf, true, false);
    }
    common.driver_ok().map_err(|e| e.to_string())?;

    let mut members = Vec::new();
    let mut vectors = Vec::new();
    for (q, (driver, vector)) in queues.into_iter().enumerate() {
        let cpu = CpuId(q as u32);
        let (port, server) = Port::executor(cpu, ports::AlwaysQueue);
        runtime
            .spawn_on(cpu, driver.run(server))
            .map_err(|e| alloc::format!("spawn: {e:?}"))?;
        members.push(port);
        vectors.push(vector);
    }
    let queues = members.len();
    let port = Port::per_cpu(members).ok_or("no queue")?;
    let interrupts = match irq {
        QueueIrq::Intx {
            line: Some(line), ..
        } => Interrupts::Intx {
            gsi: line.gsi,
            vector: line.vector,
        },
        _ => Interrupts::MsiX { vectors },
    };
    let mut disks = DISKS.lock();
    let name = alloc::format!("vd{}", (b'a' + disks.len() as u8) as char);
    log::info!(
        target: "virtio-blk",
        "{bdf} {name}: {} MiB ({} sectors of {}){}{}, {queues} queue(s) (one per CPU from 0), {interrupts}",
        info.len_bytes() >> 20,
        info.sectors,
        info.sector_size,
        if info.read_only { ", read-only" } else { "" },
        if info.has_flush { ", write cache (flush)" } else { "" },
    );
    disks.push(Disk {
        name,
        port,
        info,
        interrupts,
        bdf,
    });
    Ok(())
}

/// A queue's driver (not yet running) and its CPU vector.
type QueueDriver = (virtio_blk::VirtioBlk<Dma, Window, HeapMapper>, u8);

/// How the probe routes its queues' interrupts.
enum QueueIrq<'a> {
    /// A vector per queue, in the MSI-X table.
    MsiX { msix: &'a Msix, table: &'a Window },
    /// The function's INTx line, routed with the first (only) queue.
    Intx {
        device: &'a PciDevice,
        line: Option<crate::irq::IntxLine>,
    },
}

/// Sets up request queue `q`: its rings and header slots in DMA memory, its
/// interrupt (an MSI vector on CPU `q` in MSI-X table entry `q`, or the INTx
/// line), the queue registers, and its driver.
#[allow(clippy::too_many_arguments)] // the probe's locals, passed once
fn setup_queue(
    common: &CommonCfg<Window>,
    irq: &mut QueueIrq<'_>,
    notify: &Window,
    isr: &Window,
    caps: &virtio::transport::VirtioPciCaps,
    q: u16,
    features: u64,
    info: BlockInfo,
) -> Result<QueueDriver, String> {
    let size = common.queue_max_size(q).min(QUEUE_SIZE);
    if size == 0 {
        return Err(alloc::format!("queue {q} unavailable"));
    }
    let size = 1 << (15 - size.leading_zeros()); // a power of two
    let layout = QueueLayout::try_new(size).map_err(|e| alloc::format!("{e:?}"))?;
    let region = Dma(DmaMemory::new(layout.len_bytes).map_err(|e| e.to_string())?);
    let headers = Dma(
        DmaMemory::new(size as usize * virtio_blk::HEADER_SLOT_BYTES).map_err(|e| e.to_string())?,
    );
    let queue = SplitQueue::try_new(region, size, features & VIRTIO_F_EVENT_IDX != 0)
        .map_err(|e| alloc::format!("{e:?}"))?;
    let cpu = CpuId(u32::from(q));
    let irq_slot: Arc<spin::Once<virtio_blk::BlkInterrupt<Window>>> = Arc::new(spin::Once::new());
    let slot = irq_slot.clone();
    let (msix_vector, cpu_vector) = match irq {
        QueueIrq::MsiX { msix, table } => {
            let route = crate::irq::route_msi(
                cpu,
                Box::new(move || {
                    if let Some(irq) = slot.get() {
                        irq.on_interrupt_msix();
                    }
                }),
            )
            .map_err(|e| alloc::format!("no interrupt: {e:?}"))?;
            let entry = pci::msix_entry(route.address, route.data, false);
            let offset =
                msix.entry_offset(q).ok_or("no MSI-X entry")? as usize - msix.table_offset as usize;
            for (i, word) in entry.iter().enumerate() {
                table.write_u32(offset + 4 * i, *word);
            }
            (q, route.vector)
        }
        QueueIrq::Intx { line: Some(_), .. } => {
            return Err("INTx serves one queue".into());
        }
        QueueIrq::Intx { device, line } => {
            // Reading the ISR acknowledges the device; a shared line asks
            // every device on it.
            let routed = crate::irq::route_intx(
                device,
                cpu,
                Box::new(move || slot.get().is_some_and(|irq| irq.on_interrupt())),
            )
            .map_err(|e| alloc::format!("no MSI-X, and INTx: {e}"))?;
            *line = Some(routed);
            (NO_VECTOR, routed.vector)
        }
    };
    let notify_off = common
        .setup_queue(q, &queue, msix_vector)
        .map_err(|e| e.to_string())?;
    let notifier = Notifier::new(notify.clone(), notify_off, caps.notify_off_multiplier, q);
    let (driver, irq) =
        virtio_blk::VirtioBlk::new(queue, headers, notifier, HeapMapper, info, isr.clone());
    irq_slot.call_once(|| irq);
    Ok((driver, cpu_vector))
}
