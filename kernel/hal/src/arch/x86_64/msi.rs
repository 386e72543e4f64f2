//! Message-signalled interrupts: the vectors reserved for them (0x30..=0x3f,
//! one per device queue). The message format is `pci::x86_msi_address`/
//! `x86_msi_data`.

use core::sync::atomic::{AtomicU8, Ordering};

/// First vector for MSI/MSI-X.
pub const FIRST_VECTOR: u8 = 0x30;
/// Number of MSI vectors (0x30..=0x3f).
pub const VECTORS: u8 = 16;

static NEXT: AtomicU8 = AtomicU8::new(FIRST_VECTOR);

/// Reserves a fresh vector for one device interrupt; `None` once all 16 are
/// taken.
pub fn alloc_vector() -> Option<u8> {
    let v = NEXT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
            (v < FIRST_VECTOR + VECTORS).then_some(v + 1)
        })
        .ok()?;
    Some(v)
}
