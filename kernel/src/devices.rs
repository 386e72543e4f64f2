//! Publishing what the drivers found: the disks as `/dev/vdX` (devfs block
//! nodes over the driver ports, through the block cache) and `/sys/pci` (the
//! PCI device table, as text, for `lspci`) on the root filesystem.

use abi::OpenFlags;

/// Writes the device files (boot CPU, after `rootfs::mount` and the PCI
/// probe). Failures are logged; boot goes on.
pub fn publish() {
    let Some(vfs) = crate::rootfs::root() else {
        return;
    };
    let root = vfs.root();
    let devfs = crate::rootfs::devfs();
    for disk in crate::blk::disks() {
        let Some(devfs) = devfs else {
            log::warn!(target: "blk", "{}: no task-served devfs; not in /dev", disk.name);
            continue;
        };
        match devfs.add_block(&disk.name, disk.port, disk.info) {
            // Nothing has looked up /dev/<name> yet at boot, so no negative
            // namecache entry can hide the new node.
            Ok(()) => {
                log::info!(target: "blk", "/dev/{} ({} MiB, PCI {}, {})", disk.name, disk.info.len_bytes() >> 20, disk.bdf, disk.interrupts);
            }
            Err(e) => log::warn!(target: "blk", "/dev/{}: {e}", disk.name),
        }
    }
    let result = fs::service::try_complete_inline(async {
        match vfs.mkdir(&root, b"/sys", 0o755).await {
            Ok(()) | Err(abi::Errno::Exist) => {}
            Err(e) => return Err(e),
        }
        let flags = OpenFlags::WRITE_ONLY | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let file = vfs.open(&root, b"/sys/pci", flags, 0o444).await?;
        let (written, _) = vfs
            .write(&file, crate::pci::table_text().into_bytes())
            .await;
        written.map(|_| ())
    });
    match result {
        Some(Ok(())) => {}
        Some(Err(e)) => log::warn!(target: "pci", "cannot write /sys/pci: {e}"),
        None => log::warn!(target: "pci", "writing /sys/pci did not complete inline"),
    }
}
