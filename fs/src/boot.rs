// SPDX-License-Identifier: MIT OR Apache-2.0
//! Building the root filesystem at boot: a tmpfs root filled from the boot archive, with
//! devfs on `/dev`.
//!
//! Everything here completes inline (tmpfs and devfs serve inline), so the kernel can run
//! it with [`crate::service::try_complete_inline`] before any executor is up.

use alloc::sync::Arc;
use core::fmt;

use abi::Errno;

use crate::{
    cpio::{self, ArchiveError, UnpackStats},
    devfs::Devfs,
    platform::{Clock, ConsoleDevice, EntropySource},
    tmpfs::Tmpfs,
    vfs::Vfs,
};

/// What the kernel hands to fs at boot.
#[derive(Clone)]
pub struct BootServices {
    /// Wall-clock time for timestamps.
    pub clock: Arc<dyn Clock>,
    /// Behind `/dev/random` and `/dev/urandom`.
    pub entropy: Arc<dyn EntropySource>,
    /// Behind `/dev/console`.
    pub console: Arc<dyn ConsoleDevice>,
}

/// Why the root filesystem could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootError {
    /// The boot archive is malformed or could not be unpacked.
    Archive(ArchiveError),
    /// `/dev` could not be created or devfs could not be mounted on it.
    Dev(Errno),
}

impl fmt::Display for BootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BootError::Archive(e) => write!(f, "boot archive: {e}"),
            BootError::Dev(e) => write!(f, "mounting devfs on /dev: {e}"),
        }
    }
}

/// The root VFS: a tmpfs with `initrd` (a cpio newc archive) unpacked into it and devfs
/// mounted on `/dev` (created if the archive has none).
///
/// # Errors
/// [`BootError`] naming the archive entry at fault, or the devfs mount failure.
pub async fn mount_root(
    services: &BootServices,
    initrd: &[u8],
) -> Result<(Vfs, UnpackStats), BootError> {
    let vfs = Vfs::new(Arc::new(Tmpfs::new(services.clock.clone())));
    let root = vfs.root();
    let stats = cpio::unpack(&vfs, &root, initrd)
        .await
        .map_err(BootError::Archive)?;
    match vfs.mkdir(&root, b"/dev", 0o755).await {
        Ok(()) | Err(Errno::Exist) => {}
        Err(e) => return Err(BootError::Dev(e)),
    }
    let devfs = Devfs::new(
        services.clock.clone(),
        services.entropy.clone(),
        services.console.clone(),
    );
    vfs.mount(&root, b"/dev", Arc::new(devfs))
        .await
        .map_err(BootError::Dev)?;
    log::info!(
        target: "vfs",
        "root tmpfs: {} dirs, {} files, {} symlinks, {} hard links, {} bytes from the boot archive; devfs on /dev",
        stats.directories,
        stats.files,
        stats.symlinks,
        stats.hard_links,
        stats.bytes
    );
    Ok((vfs, stats))
}
