//! The CMOS/RTC register file behind ports 0x70/0x71.

use spin::Mutex;
use x86_64::instructions::port::Port;

static LOCK: Mutex<()> = Mutex::new(());

/// Reads CMOS register `register` (0..128). NMIs stay enabled (bit 7 of the
/// index clear).
pub fn read(register: u8) -> u8 {
    let _guard = LOCK.lock();
    // SAFETY: the CMOS index/data ports; selecting a register and reading
    // it has no effect beyond the RTC, and the lock keeps the pair together.
    unsafe {
        Port::<u8>::new(0x70).write(register & 0x7f);
        Port::<u8>::new(0x71).read()
    }
}
