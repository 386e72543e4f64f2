// SPDX-License-Identifier: MIT OR Apache-2.0
//! The interrupt half: acknowledge and wake, nothing else (STYLE.md C.2, C.6).

use alloc::sync::Arc;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use virtio::Registers;

/// Shared between [`BlkInterrupt`] and the driver task.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    pending: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    pub(crate) fn raise(&self) {
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// `Ready` (and clears) if raised since the last call; else registers the waker.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.pending.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        if self.pending.swap(false, Ordering::AcqRel) {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

/// The interrupt handle of one virtio-blk device: what the kernel's interrupt vector
/// (MSI-X, or INTx through the IOAPIC) calls.
///
/// `I` is the ISR status window. Reading it acknowledges an INTx interrupt; with MSI-X
/// the read is not needed ([`BlkInterrupt::on_interrupt_msix`]).
#[derive(Debug)]
pub struct BlkInterrupt<I: Registers> {
    isr: I,
    signal: Arc<Signal>,
}

impl<I: Registers> BlkInterrupt<I> {
    pub(crate) fn new(isr: I, signal: Arc<Signal>) -> Self {
        BlkInterrupt { isr, signal }
    }

    /// INTx (possibly shared line): reads the ISR, which acknowledges the interrupt, and
    /// wakes the driver task if the device had something. Returns whether the interrupt
    /// was this device's.
    ///
    /// # Context
    /// Interrupt context, any CPU: one MMIO read, one atomic store, one wake; never
    /// allocates, never logs, never blocks.
    pub fn on_interrupt(&self) -> bool {
        let status = virtio::read_isr(&self.isr);
        if status.is_queue || status.is_config {
            self.signal.raise();
            true
        } else {
            false
        }
    }

    /// MSI-X (a vector of its own): nothing to acknowledge at the device; wakes the
    /// driver task.
    ///
    /// # Context
    /// As [`BlkInterrupt::on_interrupt`].
    pub fn on_interrupt_msix(&self) {
        self.signal.raise();
    }
}
