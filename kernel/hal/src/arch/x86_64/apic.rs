//! The local APIC: x2APIC (MSRs) when the CPU has it, xAPIC (MMIO)
//! otherwise. End of interrupt, inter-processor interrupts (fixed, INIT,
//! startup), the error and spurious vectors, and the one-shot timer.
//!
//! Every CPU sees its own local APIC at the same address, so one mapping
//! serves all of them.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use x86_64::registers::model_specific::Msr;

/// Spurious-interrupt vector (no EOI for it).
pub const VECTOR_SPURIOUS: u8 = 0xff;
/// APIC error vector.
pub const VECTOR_ERROR: u8 = 0xfe;

const IA32_APIC_BASE: u32 = 0x1b;
const BASE_ENABLE: u64 = 1 << 11;
const BASE_X2APIC: u64 = 1 << 10;

// Register offsets (xAPIC MMIO); the x2APIC MSR is 0x800 + offset / 16.
const REG_ID: u32 = 0x20;
const REG_TPR: u32 = 0x80;
const REG_EOI: u32 = 0xb0;
const REG_SVR: u32 = 0xf0;
const REG_ESR: u32 = 0x280;
const REG_ICR_LOW: u32 = 0x300;
const REG_ICR_HIGH: u32 = 0x310;
const REG_LVT_TIMER: u32 = 0x320;
const REG_LVT_LINT0: u32 = 0x350;
const REG_LVT_LINT1: u32 = 0x360;
const REG_LVT_ERROR: u32 = 0x370;
const REG_TIMER_INITIAL: u32 = 0x380;
const REG_TIMER_CURRENT: u32 = 0x390;
const REG_TIMER_DIVIDE: u32 = 0x3e0;

const LVT_MASKED: u32 = 1 << 16;
const ICR_DELIVERY_PENDING: u32 = 1 << 12;
const ICR_LEVEL_ASSERT: u32 = 1 << 14;
const ICR_INIT: u32 = 5 << 8;
const ICR_STARTUP: u32 = 6 << 8;

/// 0 until `init_bsp`; then the xAPIC register base (virtual), or 1 for x2APIC.
static MODE: AtomicU64 = AtomicU64::new(0);
const MODE_X2APIC: u64 = 1;

fn has_x2apic() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0
}

fn read(reg: u32) -> u32 {
    match MODE.load(Ordering::Relaxed) {
        0 => 0,
        // SAFETY: x2APIC mode is enabled on this CPU (init_this_cpu), so the
        // MSR exists; reading an APIC register has no memory effects.
        MODE_X2APIC => unsafe { Msr::new(0x800 + reg / 16).read() as u32 },
        // SAFETY: `base` is the uncached mapping of the local APIC page made
        // by init_bsp; `reg` is a register offset inside that page.
        base => unsafe { core::ptr::read_volatile((base + u64::from(reg)) as *const u32) },
    }
}

fn write(reg: u32, value: u32) {
    match MODE.load(Ordering::Relaxed) {
        0 => {}
        // SAFETY: as in `read`; APIC register writes only affect the APIC.
        MODE_X2APIC => unsafe { Msr::new(0x800 + reg / 16).write(u64::from(value)) },
        // SAFETY: as in `read`.
        base => unsafe { core::ptr::write_volatile((base + u64::from(reg)) as *mut u32, value) },
    }
}

/// Maps the local APIC (xAPIC) or selects x2APIC, then enables it on the
/// boot CPU. Returns whether x2APIC is in use.
///
/// # Errors
/// When the register page cannot be mapped.
pub fn init_bsp(lapic_phys: u64) -> Result<bool, crate::mm::MemError> {
    if has_x2apic() {
        MODE.store(MODE_X2APIC, Ordering::SeqCst);
    } else {
        // SAFETY: the local APIC page is device memory named by ACPI; this
        // is its only mapping.
        let va = unsafe { crate::mm::map_mmio(lapic_phys, 4096)? };
        MODE.store(va, Ordering::SeqCst);
    }
    init_this_cpu();
    Ok(MODE.load(Ordering::SeqCst) == MODE_X2APIC)
}

/// Enables this CPU's local APIC (call on every CPU after `init_bsp`).
pub fn init_this_cpu() {
    let mut base = Msr::new(IA32_APIC_BASE);
    // SAFETY: enabling the APIC (and x2APIC mode when chosen) in the base
    // MSR keeps its address; it only changes how the APIC is reached.
    unsafe {
        let mut value = base.read() | BASE_ENABLE;
        if MODE.load(Ordering::SeqCst) == MODE_X2APIC {
            value |= BASE_X2APIC;
        }
        base.write(value);
    }
    write(REG_TPR, 0);
    write(REG_LVT_LINT0, LVT_MASKED);
    write(REG_LVT_LINT1, LVT_MASKED);
    write(REG_LVT_ERROR, u32::from(VECTOR_ERROR));
    write(REG_ESR, 0);
    write(REG_ESR, 0);
    write(REG_SVR, 0x100 | u32::from(VECTOR_SPURIOUS));
    set_timer_lvt(LVT_MASKED);
    eoi();
}

/// This CPU's APIC id.
pub fn id() -> u32 {
    match MODE.load(Ordering::Relaxed) {
        MODE_X2APIC => read(REG_ID),
        _ => read(REG_ID) >> 24,
    }
}

/// Signals end of interrupt.
pub fn eoi() {
    write(REG_EOI, 0);
}

static SPURIOUS: AtomicU64 = AtomicU64::new(0);

/// Counts a spurious interrupt (vector 0xff: no EOI) and logs the first few
/// with the CPU number.
pub fn on_spurious() {
    let n = SPURIOUS.fetch_add(1, Ordering::Relaxed);
    if n < 8 {
        log::warn!(target: "apic", "spurious interrupt on CPU {} ({} so far)", crate::cpu_index(), n + 1);
    }
}

/// Spurious interrupts since boot.
pub fn spurious_interrupts() -> u64 {
    SPURIOUS.load(Ordering::Relaxed)
}

/// Reads and clears the error status.
pub fn take_error_status() -> u32 {
    write(REG_ESR, 0);
    read(REG_ESR)
}

fn send_icr(apic_id: u32, low: u32) {
    if MODE.load(Ordering::Relaxed) == MODE_X2APIC {
        // SAFETY: x2APIC mode: the ICR is one 64-bit MSR (0x830); writing it
        // sends the interrupt and has no memory effects.
        unsafe { Msr::new(0x830).write((u64::from(apic_id) << 32) | u64::from(low)) };
    } else {
        // Two writes: the destination, then the command that sends. An
        // interrupt between them whose handler sends an IPI of its own
        // (an MSI posting to this CPU's executor) would rewrite the
        // destination, and this IPI would go to the wrong CPU: a lost
        // wake-up. So the pair runs with interrupts off.
        x86_64::instructions::interrupts::without_interrupts(|| {
            write(REG_ICR_HIGH, apic_id << 24);
            write(REG_ICR_LOW, low);
            let mut spins = 0;
            while read(REG_ICR_LOW) & ICR_DELIVERY_PENDING != 0 && spins < 1_000_000 {
                spins += 1;
                core::hint::spin_loop();
            }
        });
    }
}

/// Sends fixed interrupt `vector` to the CPU with `apic_id`.
pub fn send_ipi(apic_id: u32, vector: u8) {
    send_icr(apic_id, ICR_LEVEL_ASSERT | u32::from(vector));
}

/// INIT to `apic_id` (first step of starting an application processor).
pub fn send_init(apic_id: u32) {
    send_icr(apic_id, ICR_INIT | ICR_LEVEL_ASSERT);
}

/// Startup IPI: the target starts in real mode at `page_number * 4096`.
pub fn send_startup(apic_id: u32, page_number: u8) {
    send_icr(
        apic_id,
        ICR_STARTUP | ICR_LEVEL_ASSERT | u32::from(page_number),
    );
}

/// The timer's LVT entry as last written on each CPU, plus one (0: not
/// known). Arming writes the LVT and the divider only when they change:
/// each APIC register write is a trap to the hypervisor, and the timer is
/// re-armed often.
static TIMER_LVT: [AtomicU32; crate::percpu::MAX_CPUS] =
    [const { AtomicU32::new(0) }; crate::percpu::MAX_CPUS];

/// Sets the timer's LVT entry (and the divide-by-16 the one-shot rate
/// assumes), skipping the writes when this CPU has that entry already.
fn set_timer_lvt(lvt: u32) {
    let cached = crate::percpu::is_ready()
        .then(|| TIMER_LVT.get(crate::percpu::cpu_index()))
        .flatten();
    if let Some(cached) = cached
        && cached.load(Ordering::Relaxed) == lvt + 1
    {
        return;
    }
    write(REG_TIMER_DIVIDE, 0b11); // divide by 16
    write(REG_LVT_TIMER, lvt);
    if let Some(cached) = cached {
        cached.store(lvt + 1, Ordering::Relaxed);
    }
}

/// Arms the one-shot timer: `vector` fires after `ticks` APIC-timer ticks
/// (bus clock divided by 16). 0 stops it.
pub fn timer_oneshot(vector: u8, ticks: u32) {
    set_timer_lvt(u32::from(vector));
    write(REG_TIMER_INITIAL, ticks);
}

/// Puts the timer in TSC-deadline mode on `vector` (armed by writing the
/// IA32_TSC_DEADLINE MSR; the caller checked CPUID).
pub fn timer_tsc_deadline_mode(vector: u8) {
    set_timer_lvt((0b10 << 17) | u32::from(vector));
}

/// Starts the timer counting down from `ticks` with its interrupt masked
/// (for measuring its rate); `timer_oneshot(_, 0)` or a later arm stops it.
pub fn timer_count_masked(ticks: u32) {
    set_timer_lvt(LVT_MASKED);
    write(REG_TIMER_INITIAL, ticks);
}

/// Ticks left on the timer.
pub fn timer_current() -> u32 {
    read(REG_TIMER_CURRENT)
}
