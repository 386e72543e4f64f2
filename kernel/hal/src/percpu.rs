//! Per-CPU data, reached through the GS base: each CPU's GS base points at
//! its own [`PerCpu`], whose first word points at itself.
//!
//! The blocks are a static array, so installing one allocates nothing: the
//! global allocator asks [`cpu_index`] for its per-CPU slab cache, so a CPU
//! must have its GS base before its first allocation.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::VirtAddr;
use x86_64::registers::model_specific::GsBase;

/// This CPU's own data. Invariant: created once per CPU, never freed, and
/// only its CPU stores its address in GS.
#[repr(C)]
pub struct PerCpu {
    self_ptr: *const PerCpu,
    /// Dense CPU number: 0 for the boot CPU, then in start order.
    pub index: u32,
    /// User-mode entry and exit (`arch::x86_64::user`), at fixed offsets its
    /// assembly uses: the kernel stack pointer to resume on a user exit
    /// (offset 16), the running `UserContext` (24), a scratch slot for the
    /// user stack pointer on `syscall` entry (32).
    pub user_kernel_rsp: u64,
    pub user_context: u64,
    pub user_scratch: u64,
}

/// Set once the boot CPU's GS base is valid; before that `cpu_index()` is 0.
/// The boot CPU sets its GS base before any other CPU starts, and every AP
/// sets its own before it runs anything that asks, so once this is true
/// every running CPU has a valid GS base.
static READY: AtomicBool = AtomicBool::new(false);

/// The blocks, one per possible CPU. Invariant: block `i` is written only
/// by `init_this_cpu(i)`, once, before its address is published in GS.
struct Blocks([UnsafeCell<PerCpu>; MAX_CPUS]);

// SAFETY: by the invariant on `Blocks`, each block is written once by its
// own CPU before anyone can read it, then only read.
unsafe impl Sync for Blocks {}

static BLOCKS: Blocks = Blocks(
    [const {
        UnsafeCell::new(PerCpu {
            self_ptr: core::ptr::null(),
            index: 0,
            user_kernel_rsp: 0,
            user_context: 0,
            user_scratch: 0,
        })
    }; MAX_CPUS],
);

/// Installs this CPU's per-CPU block (once per CPU, first thing at
/// bring-up: it allocates nothing, and the allocator needs it).
///
/// # Panics
/// If `index` is `MAX_CPUS` or more.
pub fn init_this_cpu(index: u32) {
    let block = BLOCKS.0[index as usize].get();
    // SAFETY: block `index` belongs to the CPU being brought up as `index`
    // (the Blocks invariant): nothing reads it before GS points at it below.
    unsafe {
        (*block).self_ptr = block;
        (*block).index = index;
    }
    GsBase::write(VirtAddr::from_ptr(block as *const PerCpu));
    READY.store(true, Ordering::SeqCst);
}

/// Whether per-CPU data is set up (on the boot CPU; every later CPU sets
/// its own before it runs code that asks).
#[inline]
pub fn is_ready() -> bool {
    READY.load(Ordering::Relaxed)
}

/// This CPU's dense index (0 on the boot CPU, also before per-CPU init).
#[inline]
pub fn cpu_index() -> usize {
    if !READY.load(Ordering::Relaxed) {
        return 0;
    }
    let index: u32;
    // SAFETY: READY means this CPU's GS base points at its PerCpu block
    // (APs install theirs before running any code that asks), and `index`
    // is at offset 8 of that repr(C) struct.
    unsafe {
        core::arch::asm!("mov {0:e}, gs:[8]", out(reg) index, options(nostack, readonly, preserves_flags))
    };
    index as usize
}

/// Most CPUs the per-CPU cells hold.
pub const MAX_CPUS: usize = 64;

/// One value per CPU, each touched only by its own CPU (by `cpu_index()`),
/// so `T` need not be `Send` or `Sync`: this is where the kernel keeps
/// per-CPU state such as the executor's `LocalCpu`.
///
/// Invariant: slot `i` is only ever read or written by CPU `i`, and kernel
/// code never moves between CPUs while it runs.
pub struct CpuLocal<T> {
    slots: [core::cell::UnsafeCell<Option<T>>; MAX_CPUS],
}

// SAFETY: by the invariant on `CpuLocal`, no two CPUs ever access the same
// slot, so sharing the array between CPUs creates no data race, whatever T is.
unsafe impl<T> Sync for CpuLocal<T> {}

impl<T> CpuLocal<T> {
    /// Empty on every CPU.
    pub const fn new() -> Self {
        Self {
            slots: [const { core::cell::UnsafeCell::new(None) }; MAX_CPUS],
        }
    }

    /// Sets this CPU's value, once.
    ///
    /// # Panics
    /// If this CPU already has a value, or its index is `MAX_CPUS` or more.
    pub fn set(&self, value: T) {
        let slot = &self.slots[cpu_index()];
        // SAFETY: this is the calling CPU's slot (the invariant on CpuLocal);
        // no reference from `with` can be live here because `with` hands out
        // `&T` only for the duration of its closure and `set` is not called
        // from inside one (it would find the slot filled and panic first).
        let slot = unsafe { &mut *slot.get() };
        assert!(slot.is_none(), "CpuLocal set twice on CPU {}", cpu_index());
        *slot = Some(value);
    }

    /// Runs `f` with this CPU's value, setting it with `init` first if it has none.
    pub fn with_or_init<R>(&self, init: impl FnOnce() -> T, f: impl FnOnce(&T) -> R) -> R {
        if self.with(|value| value.is_none()) {
            self.set(init());
        }
        self.with(|value| f(value.expect("set just above")))
    }

    /// Runs `f` with this CPU's value, if it has one.
    pub fn with<R>(&self, f: impl FnOnce(Option<&T>) -> R) -> R {
        let slot = self.slots.get(cpu_index());
        // SAFETY: the calling CPU's slot; only shared references are made
        // while the value is set, and `set` refuses to overwrite a value.
        f(slot.and_then(|s| unsafe { (*s.get()).as_ref() }))
    }
}

impl<T> Default for CpuLocal<T> {
    fn default() -> Self {
        Self::new()
    }
}
