//! Publishing what the drivers found: `/sys/pci` (the PCI device table, as
//! text, for `lspci`) on the root filesystem.

use abi::OpenFlags;

/// Writes the device files (boot CPU, after `rootfs::mount` and the PCI
/// probe). Failures are logged; boot goes on.
pub fn publish() {
    let Some(vfs) = crate::rootfs::root() else {
        return;
    };
    let root = vfs.root();
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
