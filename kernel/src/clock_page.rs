//! The clock page (`abi::clock`): one page the kernel fills at boot with its TSC
//! clock's parameters and maps read-only into every process, so `clock_gettime`
//! is a user-mode TSC read instead of a trap (Linux's vDSO data page plays this
//! part there).
//!
//! The kernel's own clock is the TSC on every CPU (`hal::arch::time::now_ns`), so
//! the page adds no assumption: a program reads the same clock the kernel does,
//! with the same arithmetic (`abi::clock::monotonic_ns`). The page is shared by
//! all processes and never written after it is published; a process can neither
//! write it (read-only, and `mprotect` refuses it) nor free it (it is borrowed).

use alloc::sync::Arc;

use abi::clock::{CLOCK_PAGE_MAGIC, CLOCK_PAGE_VERSION, ClockPage};
use hal::mm::space::{AddressSpace, SharedPages, UserProt};

/// Where every process sees the page: the page above the stack's top (the
/// stack grows down from `STACK_TOP`, so a gap page separates them).
pub const ADDRESS: u64 = crate::exec::STACK_TOP + 0x1000;

static PAGE: spin::Once<Option<Arc<SharedPages>>> = spin::Once::new();

/// The page, written on first use (after calibration and the RTC); `None` if
/// the TSC is not calibrated or no frame was free (programs then trap).
fn page() -> Option<&'static Arc<SharedPages>> {
    PAGE.call_once(|| {
        let (tsc_zero, ns_mult) = hal::arch::time::tsc_clock();
        if ns_mult == 0 {
            log::warn!("clock page: the TSC is not calibrated; clock_gettime traps");
            return None;
        }
        let Ok(pages) = SharedPages::new(1) else {
            log::warn!("clock page: no free frame; clock_gettime traps");
            return None;
        };
        let fields = ClockPage {
            magic: CLOCK_PAGE_MAGIC,
            version: CLOCK_PAGE_VERSION,
            seq: 0,
            tsc_zero,
            ns_mult,
            realtime_base_ns: crate::rtc::realtime_base_ns(),
        };
        write(&pages, &fields);
        Some(Arc::new(pages))
    })
    .as_ref()
}

/// Stores `fields` at the start of the page (`ClockPage::to_words`, each as two
/// 32-bit halves, low first), the magic and version word last.
fn write(pages: &SharedPages, fields: &ClockPage) {
    use core::sync::atomic::Ordering::Release;
    let halves = pages.words();
    let words = fields.to_words();
    for (i, word) in words.iter().enumerate().skip(1).chain([(0, &words[0])]) {
        halves[2 * i].store(*word as u32, Release);
        halves[2 * i + 1].store((*word >> 32) as u32, Release);
    }
}

/// Maps the page read-only at [`ADDRESS`] in `space`: its address for the
/// auxiliary vector, or `None` when there is no page (the program traps).
pub fn map_into(space: &AddressSpace) -> Option<u64> {
    let pages = page()?;
    match space.map_shared(ADDRESS, pages, 0, UserProt::READ) {
        Ok(()) => Some(ADDRESS),
        Err(e) => {
            log::warn!("clock page: not mapped ({e:?}); this program traps for the clock");
            None
        }
    }
}

/// Whether `[addr, addr + len)` touches the page (`munmap` and `mprotect` refuse it).
pub fn overlaps(addr: u64, len: u64) -> bool {
    addr < ADDRESS + 0x1000 && ADDRESS < addr.saturating_add(len)
}
