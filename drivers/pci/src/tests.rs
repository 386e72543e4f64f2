// SPDX-License-Identifier: MIT OR Apache-2.0
//! pci tests against the fake q35 configuration space.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use crate::capability::{CAP_MSI, CAP_MSIX, CAP_PCIE, CAP_VENDOR, x86_msi_address, x86_msi_data};
use crate::fake::{FakeConfigSpace, FakeFunction, q35};
use crate::*;

#[test]
fn address_encodings_match_the_mechanisms() {
    let bdf = Bdf::new(1, 2, 3);
    assert_eq!(
        ecam_offset(bdf, 0x10),
        (1 << 20) | (2 << 15) | (3 << 12) | 0x10
    );
    assert_eq!(
        legacy_address(bdf, 0x13),
        0x8000_0000 | (1 << 16) | (2 << 11) | (3 << 8) | 0x10
    );
    assert_eq!(format!("{}", Bdf::new(0, 0x1f, 2)), "00:1f.2");
}

#[test]
fn narrow_accessors_are_built_on_dwords() {
    let cfg = q35();
    let bdf = Bdf::new(0, 2, 0);
    assert_eq!(cfg.read_u16(bdf, reg::VENDOR_ID), 0x1af4);
    assert_eq!(cfg.read_u16(bdf, reg::DEVICE_ID), 0x1042);
    assert_eq!(cfg.read_u8(bdf, reg::INTERRUPT_PIN), 1);
    cfg.write_u8(bdf, reg::INTERRUPT_LINE, 11);
    assert_eq!(cfg.read_u8(bdf, reg::INTERRUPT_LINE), 11);
    assert_eq!(
        cfg.read_u8(bdf, reg::INTERRUPT_PIN),
        1,
        "neighbour byte kept"
    );
    cfg.write_u16(bdf, reg::COMMAND, 0x0006);
    assert_eq!(cfg.read_u16(bdf, reg::COMMAND), 6);
    assert_eq!(
        cfg.read_u16(bdf, reg::STATUS) & reg::STATUS_CAPABILITIES,
        reg::STATUS_CAPABILITIES
    );
}

#[test]
fn enumeration_finds_every_q35_function_including_behind_the_bridge() {
    let table = enumerate(&q35());
    let found: Vec<(Bdf, u16, u16)> = table
        .devices()
        .iter()
        .map(|d| (d.bdf, d.header.vendor_id, d.header.device_id))
        .collect();
    assert_eq!(
        found,
        [
            (Bdf::new(0, 0, 0), 0x8086, 0x29c0),
            (Bdf::new(0, 1, 0), 0x1234, 0x1111),
            (Bdf::new(0, 2, 0), 0x1af4, 0x1042),
            (Bdf::new(0, 3, 0), 0x1b36, 0x000c),
            (Bdf::new(0, 0x1f, 0), 0x8086, 0x2918),
            (Bdf::new(0, 0x1f, 2), 0x8086, 0x2922),
            (Bdf::new(0, 0x1f, 3), 0x8086, 0x2930),
            (Bdf::new(1, 0, 0), 0x1af4, 0x1041),
        ]
    );
    let ahci = table.get(Bdf::new(0, 0x1f, 2)).unwrap();
    assert_eq!(
        (ahci.header.class, ahci.header.subclass, ahci.header.prog_if),
        (1, 6, 1)
    );
    assert_eq!(ahci.interrupt_pin_name(), Some('A'));
    assert_eq!(table.by_class(0x06, 0x04).count(), 1);
    assert_eq!(
        table.by_id(0x1af4, 0x1041).next().unwrap().bdf,
        Bdf::new(1, 0, 0)
    );
    let blk = table.get(Bdf::new(0, 2, 0)).unwrap();
    assert_eq!(blk.header.subsystem, (0x1af4, 2));
    assert_eq!(
        table.get(Bdf::new(0, 3, 0)).unwrap().header.secondary_bus,
        Some(1)
    );
}

#[test]
fn functions_1_to_7_are_skipped_unless_multifunction() {
    // A function 1 exists but function 0 does not say multi-function: not probed.
    let cfg = FakeConfigSpace::new()
        .with(Bdf::new(0, 4, 0), FakeFunction::new(0x1, 0x2, 0xff, 0, 0))
        .with(Bdf::new(0, 4, 1), FakeFunction::new(0x1, 0x3, 0xff, 0, 0));
    assert_eq!(enumerate(&cfg).devices().len(), 1);
}

#[test]
fn a_bridge_loop_is_walked_once() {
    let cfg = FakeConfigSpace::new()
        .with(
            Bdf::new(0, 1, 0),
            FakeFunction::new(0x1b36, 0xc, 6, 4, 0).bridge(0, 1, 1),
        )
        .with(
            Bdf::new(1, 0, 0),
            FakeFunction::new(0x1b36, 0xc, 6, 4, 0).bridge(1, 0, 0),
        )
        .with(
            Bdf::new(1, 1, 0),
            FakeFunction::new(0x1b36, 0xc, 6, 4, 0).bridge(1, 1, 1),
        );
    let table = enumerate(&cfg);
    assert_eq!(table.devices().len(), 3);
}

#[test]
fn lspci_lines() {
    let table = enumerate(&q35());
    let lines: Vec<String> = table.devices().iter().map(|d| format!("{d}")).collect();
    assert_eq!(lines[0], "00:00.0 Host bridge [0600]: [8086:29c0] (rev 01)");
    assert_eq!(
        lines[5],
        "00:1f.2 SATA controller [0106]: [8086:2922] (rev 01)"
    );
    assert_eq!(
        lines[7],
        "01:00.0 Ethernet controller [0200]: [1af4:1041] (rev 01)"
    );
}

#[test]
fn bars_are_sized_and_restored() {
    let cfg = q35();
    let table = enumerate(&cfg);
    let vga = table.get(Bdf::new(0, 1, 0)).unwrap();
    assert_eq!(
        vga.bars[0],
        Some(Bar::Memory {
            addr: 0xfd00_0000,
            size: 0x100_0000,
            is_64bit: false,
            is_prefetchable: true
        })
    );
    assert_eq!(vga.bars[1], None);
    assert_eq!(
        vga.bars[2].map(|b| (b.addr(), b.size())),
        Some((0xfebd_0000, 0x1000))
    );
    let blk = table.get(Bdf::new(0, 2, 0)).unwrap();
    assert_eq!(
        blk.bars[4],
        Some(Bar::Memory {
            addr: 0xfe00_0000,
            size: 0x4000,
            is_64bit: true,
            is_prefetchable: true
        })
    );
    assert_eq!(blk.bars[5], None, "upper half of the 64-bit BAR");
    let ahci = table.get(Bdf::new(0, 0x1f, 2)).unwrap();
    assert_eq!(
        ahci.bars[4],
        Some(Bar::Io {
            port: 0xc040,
            size: 32
        })
    );
    let smbus = table.get(Bdf::new(0, 0x1f, 3)).unwrap();
    assert_eq!(
        smbus.bars[4],
        Some(Bar::Io {
            port: 0x700,
            size: 64
        })
    );
    // Restored: the registers read as before sizing.
    assert_eq!(cfg.read_u32(Bdf::new(0, 1, 0), reg::BAR0), 0xfd00_0008);
    assert_eq!(cfg.read_u32(Bdf::new(0, 2, 0), reg::BAR0 + 16), 0xfe00_000c);
    assert_eq!(cfg.read_u32(Bdf::new(0, 2, 0), reg::BAR0 + 20), 0);
    assert_eq!(cfg.read_u32(Bdf::new(0, 0x1f, 2), reg::BAR0 + 16), 0xc041);
    // A bridge has two BARs only; bus numbers are not BARs.
    let port = table.get(Bdf::new(0, 3, 0)).unwrap();
    assert_eq!(port.bars[0].map(|b| b.size()), Some(0x1000));
    assert_eq!(cfg.read_u8(Bdf::new(0, 3, 0), reg::SECONDARY_BUS), 1);
}

#[test]
fn a_64bit_bar_above_4g_is_decoded() {
    let cfg = FakeConfigSpace::new().with(
        Bdf::new(0, 5, 0),
        FakeFunction::new(1, 2, 3, 0, 0).bar_mem64(0, 0x8_0000_0000, 0x2_0000_0000, false),
    );
    let table = enumerate(&cfg);
    let dev = &table.devices()[0];
    assert_eq!(
        dev.bars[0],
        Some(Bar::Memory {
            addr: 0x8_0000_0000,
            size: 0x2_0000_0000,
            is_64bit: true,
            is_prefetchable: false
        })
    );
}

#[test]
fn sizing_turns_decoding_off_and_back_on() {
    let cfg = q35();
    let bdf = Bdf::new(0, 1, 0);
    cfg.write_u16(bdf, reg::COMMAND, reg::COMMAND_MEMORY | reg::COMMAND_IO);
    let header = Header::read(&cfg, bdf).unwrap();
    read_bars(&cfg, bdf, &header);
    assert_eq!(
        cfg.read_u16(bdf, reg::COMMAND),
        reg::COMMAND_MEMORY | reg::COMMAND_IO
    );
    enable(&cfg, bdf, true, false, true);
    assert_eq!(
        cfg.read_u16(bdf, reg::COMMAND),
        reg::COMMAND_MEMORY | reg::COMMAND_IO | reg::COMMAND_BUS_MASTER
    );
}

#[test]
fn capability_list_is_walked_in_order() {
    let cfg = q35();
    let ids: Vec<u8> = capabilities(&cfg, Bdf::new(0, 2, 0))
        .map(|c| c.id)
        .collect();
    assert_eq!(
        ids,
        [CAP_MSIX, CAP_VENDOR, CAP_VENDOR, CAP_VENDOR, CAP_VENDOR]
    );
    assert_eq!(
        capabilities(&cfg, Bdf::new(0, 0, 0)).count(),
        0,
        "no status bit: no list"
    );
    assert_eq!(
        find_capability(&cfg, Bdf::new(0, 3, 0), CAP_PCIE).map(|c| c.offset),
        Some(0x40)
    );
}

#[test]
fn a_looping_capability_list_ends() {
    // 0x40 -> 0x44 -> 0x40 ...
    let f = FakeFunction::new(1, 2, 3, 0, 0)
        .capability(0x01, &[0, 0])
        .capability(0x05, &[0, 0])
        .poke(0x45, 0x40);
    let cfg = FakeConfigSpace::new().with(Bdf::new(0, 0, 0), f);
    assert_eq!(capabilities(&cfg, Bdf::new(0, 0, 0)).count(), 48);
    // A pointer into the header ends the list.
    let f = FakeFunction::new(1, 2, 3, 0, 0)
        .capability(0x01, &[0, 0])
        .poke(0x41, 0x10);
    let cfg = FakeConfigSpace::new().with(Bdf::new(0, 0, 0), f);
    assert_eq!(capabilities(&cfg, Bdf::new(0, 0, 0)).count(), 1);
    assert_eq!(find_capability(&cfg, Bdf::new(0, 0, 0), CAP_MSIX), None);
}

#[test]
fn msix_capability_is_decoded_and_enabled() {
    let cfg = q35();
    let bdf = Bdf::new(0, 2, 0);
    let msix = Msix::read(&cfg, bdf).unwrap();
    assert_eq!(
        msix,
        Msix {
            offset: 0x40,
            vector_count: 2,
            table_bar: 1,
            table_offset: 0,
            pba_bar: 1,
            pba_offset: 0x800
        }
    );
    assert_eq!(msix.entry_offset(1), Some(16));
    assert_eq!(msix.entry_offset(2), None);
    assert_eq!(msix.state(&cfg, bdf), (false, false));
    msix.set_enabled(&cfg, bdf, true, true);
    assert_eq!(msix.state(&cfg, bdf), (true, true));
    assert_ne!(
        cfg.read_u16(bdf, reg::COMMAND) & reg::COMMAND_INTX_DISABLE,
        0
    );
    msix.set_enabled(&cfg, bdf, true, false);
    assert_eq!(msix.state(&cfg, bdf), (true, false));
    assert_eq!(
        cfg.read_u16(bdf, msix.offset + 2) & 0x7ff,
        1,
        "table size kept"
    );
    assert_eq!(
        msix_entry(x86_msi_address(3), x86_msi_data(0x41), false),
        [0xfee0_3000, 0, 0x41, 0]
    );
    assert_eq!(Msix::read(&cfg, Bdf::new(0, 1, 0)), None);
}

#[test]
fn msi_is_programmed_with_one_vector() {
    let cfg = q35();
    let bdf = Bdf::new(0, 0x1f, 2);
    let msi = Msi::read(&cfg, bdf).unwrap();
    assert_eq!(
        msi,
        Msi {
            offset: 0x40,
            is_64bit: true,
            has_masking: false,
            vectors_capable: 1
        }
    );
    assert_eq!(find_capability(&cfg, bdf, CAP_MSI).unwrap().offset, 0x40);
    msi.program(&cfg, bdf, x86_msi_address(1), 0x42).unwrap();
    assert_eq!(cfg.read_u32(bdf, 0x44), 0xfee0_1000);
    assert_eq!(cfg.read_u32(bdf, 0x48), 0);
    assert_eq!(cfg.read_u16(bdf, 0x4c), 0x42);
    assert_eq!(cfg.read_u16(bdf, 0x42) & 1, 1, "enabled");
    assert!(msi.is_enabled(&cfg, bdf));
    assert_ne!(
        cfg.read_u16(bdf, reg::COMMAND) & reg::COMMAND_INTX_DISABLE,
        0
    );
    msi.disable(&cfg, bdf);
    assert!(!msi.is_enabled(&cfg, bdf));
    assert_eq!(cfg.read_u16(bdf, 0x4c), 0x42, "disabling keeps the message");
    let msi32 = Msi {
        is_64bit: false,
        ..msi
    };
    assert_eq!(msi32.program(&cfg, bdf, 1 << 32, 0), Err(()));
}

#[test]
fn absent_functions_and_garbage_headers() {
    let cfg = FakeConfigSpace::new();
    assert_eq!(Header::read(&cfg, Bdf::new(0, 0, 0)), None);
    assert!(enumerate(&cfg).devices().is_empty());
    // A CardBus bridge (type 2) has no BARs decoded here.
    let cfg = FakeConfigSpace::new().with(
        Bdf::new(0, 0, 0),
        FakeFunction::new(1, 2, 6, 7, 0).poke(0x0e, 2),
    );
    let table = enumerate(&cfg);
    let dev = &table.devices()[0];
    assert_eq!(dev.bars, [None; 6]);
}

#[test]
fn unassigned_bars_get_aligned_disjoint_addresses_in_the_windows() {
    let cfg = FakeConfigSpace::new()
        .with(
            Bdf::new(0, 1, 0),
            FakeFunction::new(0x1af4, 0x1001, 0x01, 0x00, 0)
                .bar_io(0, 0, 0x80)
                .bar_mem32(1, 0, 0x1000, false)
                .bar_mem64(4, 0, 0x4000, true),
        )
        .with(
            Bdf::new(0, 2, 0),
            FakeFunction::new(0x1234, 0x1111, 0x03, 0x00, 0)
                // Programmed by firmware inside the window: kept, and not overlapped.
                .bar_mem32(0, 0xc000_0000, 0x1000, false)
                .bar_mem32(2, 0, 0x10_0000, false),
        );
    let mut table = enumerate(&cfg);
    let done = assign_unassigned(&cfg, &mut table, 0xc000_0000..0xfec0_0000, 0xc000..0x1_0000);
    assert_eq!(done.len(), 4, "{done:?}");
    assert!(done.iter().all(|a| a.addr.is_some()), "{done:?}");
    let mut placed: Vec<(u64, u64, bool)> = Vec::new();
    for d in table.devices() {
        for bar in d.bars.iter().flatten() {
            let (addr, size) = (bar.addr(), bar.size());
            assert_ne!(addr, 0, "{} still unassigned: {bar:?}", d.bdf);
            assert_eq!(addr % size, 0, "{bar:?} not aligned to its size");
            match bar {
                Bar::Memory { .. } => assert!((0xc000_0000..0xfec0_0000).contains(&addr)),
                Bar::Io { .. } => assert!((0xc000..0x1_0000).contains(&addr)),
            }
            placed.push((addr, size, matches!(bar, Bar::Io { .. })));
        }
    }
    assert_eq!(
        table.get(Bdf::new(0, 2, 0)).unwrap().bars[0]
            .unwrap()
            .addr(),
        0xc000_0000
    );
    for (i, a) in placed.iter().enumerate() {
        for b in &placed[i + 1..] {
            let disjoint = a.2 != b.2 || a.0 + a.1 <= b.0 || b.0 + b.1 <= a.0;
            assert!(disjoint, "{a:x?} overlaps {b:x?}");
        }
    }
}

#[test]
fn a_window_too_small_leaves_the_bar_unassigned_and_says_so() {
    let cfg = FakeConfigSpace::new().with(
        Bdf::new(0, 1, 0),
        FakeFunction::new(0x1af4, 0x1001, 0x01, 0x00, 0).bar_mem32(0, 0, 0x10_0000, false),
    );
    let mut table = enumerate(&cfg);
    let done = assign_unassigned(&cfg, &mut table, 0xc000_0000..0xc008_0000, 0..0);
    assert_eq!(
        done,
        [Assignment {
            bdf: Bdf::new(0, 1, 0),
            index: 0,
            addr: None
        }]
    );
    assert_eq!(table.devices()[0].bars[0].unwrap().addr(), 0);
}

#[test]
fn intx_pins_reach_the_ich9_gsis_qemu_wires() {
    let cfg = q35()
        .with(
            Bdf::new(1, 0, 0),
            FakeFunction::new(0x1af4, 0x1042, 0x01, 0x00, 0).interrupt(1, 0),
        )
        .with(
            Bdf::new(1, 5, 0),
            FakeFunction::new(0x1af4, 0x1042, 0x01, 0x00, 0).interrupt(2, 0),
        );
    let table = enumerate(&cfg);
    let route = |bdf: Bdf| intx::route(table.devices(), table.get(bdf).unwrap());
    let gsi = |bdf: Bdf| route(bdf).map(|r| r.gsi);
    // Slot 2, INTA: PIRQ E + 2 = G -> GSI 22.
    assert_eq!(gsi(Bdf::new(0, 2, 0)), Ok(22));
    // Slot 31 (D31IR at reset): INTA -> PIRQ A -> GSI 16.
    assert_eq!(gsi(Bdf::new(0, 0x1f, 2)), Ok(16));
    // Behind the bridge at 00:03.0: device 0 INTA stays INTA at slot 3 -> H -> 23;
    // device 5 INTB swizzles to INTC at slot 3 -> PIRQ E + (3 + 2) % 4 = F -> 21.
    assert_eq!(gsi(Bdf::new(1, 0, 0)), Ok(23));
    assert_eq!(gsi(Bdf::new(1, 5, 0)), Ok(21));
    let r = route(Bdf::new(0, 2, 0)).unwrap();
    assert!(r.is_level && !r.is_active_low);
    // The bridge itself has no pin.
    assert_eq!(gsi(Bdf::new(0, 3, 0)), Err(intx::IntxError::NoPin));
}

#[test]
fn intx_rotates_with_slot_and_pin_on_ich9() {
    // Four pins of one slot reach four different lines, and one pin of four
    // consecutive slots too (the spread the rotation exists for).
    let by_pin: Vec<u32> = (1..=4).map(|pin| intx::ich9_gsi(4, pin)).collect();
    assert_eq!(by_pin, [20, 21, 22, 23]);
    let by_slot: Vec<u32> = (4..8).map(|slot| intx::ich9_gsi(slot, 2)).collect();
    assert_eq!(by_slot, [21, 22, 23, 20]);
    assert_eq!(intx::ich9_gsi(25, 4), 19);
}

#[test]
fn intx_refuses_unknown_chipsets_and_orphan_buses() {
    // An i440fx-like table (no ICH9 LPC bridge at 00:1f.0).
    let cfg = FakeConfigSpace::new()
        .with(
            Bdf::new(0, 0, 0),
            FakeFunction::new(0x8086, 0x1237, 0x06, 0x00, 0),
        )
        .with(
            Bdf::new(0, 4, 0),
            FakeFunction::new(0x1af4, 0x1042, 0x01, 0x00, 0).interrupt(1, 11),
        )
        .with(
            Bdf::new(7, 0, 0),
            FakeFunction::new(0x1af4, 0x1042, 0x01, 0x00, 0).interrupt(1, 11),
        );
    let mut devices = enumerate(&cfg).devices().to_vec();
    let d = devices.iter().find(|d| d.bdf == Bdf::new(0, 4, 0)).unwrap();
    assert_eq!(
        intx::route(&devices, d),
        Err(intx::IntxError::UnknownChipset)
    );
    // Bus 7 is not reachable by enumeration: build its entry by hand.
    let mut orphan = d.clone();
    orphan.bdf = Bdf::new(7, 0, 0);
    devices.push(orphan.clone());
    assert_eq!(
        intx::pin_on_bus0(&devices, &orphan),
        Err(intx::IntxError::NoBridge(7))
    );
}
