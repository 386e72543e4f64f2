//! The root filesystem mounted at boot from the boot archive.

use fs::Vfs;
use fs::service::try_complete_inline;

static ROOT: spin::Once<&'static Vfs> = spin::Once::new();

/// Hands the kernel's root filesystem to the suite (before the tests run).
pub fn set_root(root: &'static Vfs) {
    ROOT.call_once(|| root);
}

pub fn boot_archive_is_unpacked_into_the_root_tmpfs() {
    let vfs = *ROOT
        .get()
        .expect("the kernel mounts a root filesystem at boot");
    let root = vfs.root();
    // xtask packs user/root/etc/motd; the first line is fixed text.
    let motd = try_complete_inline(vfs.read_to_end(&root, b"/etc/motd", 4096))
        .expect("tmpfs completes inline")
        .expect("/etc/motd from the boot archive");
    assert!(
        motd.starts_with(b"Welcome to Damselfly"),
        "unexpected /etc/motd: {:?}",
        core::str::from_utf8(&motd)
    );
    // devfs is mounted on /dev: /dev/zero reads zeros, /dev/null is empty.
    let null = try_complete_inline(vfs.read_to_end(&root, b"/dev/null", 16)).expect("inline");
    assert_eq!(null.as_deref(), Ok(&[][..]), "/dev/null");
    let missing = try_complete_inline(vfs.read_to_end(&root, b"/etc/nope", 16)).expect("inline");
    assert_eq!(missing, Err(abi::Errno::NoEnt));
}
