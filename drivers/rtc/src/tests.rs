// SPDX-License-Identifier: MIT OR Apache-2.0
//! rtc tests: a fake CMOS with scripted updates.

use core::cell::{Cell, RefCell};

use super::*;

/// A fake CMOS: registers, plus a script of changes applied after N reads.
struct FakeCmos {
    regs: RefCell<[u8; 128]>,
    reads: Cell<usize>,
    /// (after this many reads, register, value)
    script: RefCell<[(usize, u8, u8); 4]>,
    uip_reads_left: Cell<usize>,
    always_changing: bool,
}

impl FakeCmos {
    fn new(status_b: u8, values: [u8; 6], century: Option<(u8, u8)>) -> FakeCmos {
        let mut regs = [0u8; 128];
        for (reg, v) in [
            REG_SECONDS,
            REG_MINUTES,
            REG_HOURS,
            REG_DAY,
            REG_MONTH,
            REG_YEAR,
        ]
        .iter()
        .zip(values)
        {
            regs[*reg as usize] = v;
        }
        regs[REG_STATUS_B as usize] = status_b;
        if let Some((reg, v)) = century {
            regs[reg as usize] = v;
        }
        FakeCmos {
            regs: RefCell::new(regs),
            reads: Cell::new(0),
            script: RefCell::new([(usize::MAX, 0, 0); 4]),
            uip_reads_left: Cell::new(0),
            always_changing: false,
        }
    }
}

impl CmosPort for FakeCmos {
    fn read(&self, register: u8) -> u8 {
        let n = self.reads.get() + 1;
        self.reads.set(n);
        for (after, reg, v) in self.script.borrow().iter() {
            if *after == n {
                self.regs.borrow_mut()[*reg as usize] = *v;
            }
        }
        if register == REG_STATUS_A && self.uip_reads_left.get() > 0 {
            self.uip_reads_left.set(self.uip_reads_left.get() - 1);
            return 0x80;
        }
        if self.always_changing && register == REG_SECONDS {
            return (n % 60) as u8;
        }
        self.regs.borrow()[register as usize]
    }
}

const BCD_24H: u8 = 0x02;
const BINARY_24H: u8 = 0x06;
const BCD_12H: u8 = 0x00;

fn dt(year: i64, month: u8, day: u8, hour: u8, minute: u8, second: u8) -> DateTime {
    DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second,
    }
}

#[test]
fn days_from_civil_known_dates() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(1969, 12, 31), -1);
    assert_eq!(days_from_civil(2000, 1, 1), 10_957);
    assert_eq!(days_from_civil(2000, 2, 29), 11_016);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(
        days_from_civil(1900, 3, 1) - days_from_civil(1900, 2, 28),
        1,
        "1900 is not leap"
    );
    assert_eq!(
        days_from_civil(2024, 3, 1) - days_from_civil(2024, 2, 28),
        2,
        "2024 is leap"
    );
}

#[test]
fn unix_time_of_known_instants() {
    assert_eq!(dt(1970, 1, 1, 0, 0, 0).to_unix(), 0);
    assert_eq!(dt(2000, 2, 29, 12, 0, 0).to_unix(), 951_825_600);
    assert_eq!(dt(2001, 9, 9, 1, 46, 40).to_unix(), 1_000_000_000);
    assert_eq!(dt(2038, 1, 19, 3, 14, 7).to_unix(), i32::MAX as i64);
    assert_eq!(dt(2038, 1, 19, 3, 14, 8).to_unix(), 1 << 31);
    assert_eq!(dt(2106, 2, 7, 6, 28, 16).to_unix(), 1 << 32);
    assert_eq!(dt(2099, 12, 31, 23, 59, 59).to_unix(), 4_102_444_799);
    assert_eq!(dt(2024, 2, 29, 0, 0, 0).to_unix(), 1_709_164_800);
}

#[test]
fn every_day_from_1970_to_2200_is_one_day_after_the_previous() {
    let mut expected = 0;
    for year in 1970..2200 {
        for month in 1..=12 {
            for day in 1..=days_in_month(year, month) {
                assert_eq!(
                    days_from_civil(year, month, day),
                    expected,
                    "{year}-{month}-{day}"
                );
                expected += 1;
            }
        }
    }
}

#[test]
fn leap_years() {
    assert!(is_leap_year(2000) && is_leap_year(2024) && is_leap_year(2400));
    assert!(!is_leap_year(1900) && !is_leap_year(2100) && !is_leap_year(2023));
    assert!(dt(2000, 2, 29, 0, 0, 0).is_valid());
    assert!(!dt(2100, 2, 29, 0, 0, 0).is_valid());
}

#[test]
fn bcd_24_hour_with_century_register() {
    let cmos = FakeCmos::new(
        BCD_24H,
        [0x59, 0x30, 0x23, 0x29, 0x02, 0x00],
        Some((0x32, 0x20)),
    );
    assert_eq!(read_datetime(&cmos, 0x32), Ok(dt(2000, 2, 29, 23, 30, 59)));
}

#[test]
fn binary_mode() {
    let cmos = FakeCmos::new(BINARY_24H, [7, 14, 3, 19, 1, 38], Some((0x32, 20)));
    assert_eq!(read_unix_time(&cmos, 0x32), Ok(i32::MAX as i64));
}

#[test]
fn years_past_2038_without_century_register() {
    let cmos = FakeCmos::new(BCD_24H, [0x00, 0x00, 0x00, 0x01, 0x01, 0x50], None);
    assert_eq!(read_datetime(&cmos, 0), Ok(dt(2050, 1, 1, 0, 0, 0)));
    let cmos = FakeCmos::new(BCD_24H, [0x00, 0x00, 0x00, 0x01, 0x01, 0x99], None);
    assert_eq!(read_datetime(&cmos, 0).unwrap().year, 1999);
}

#[test]
fn twelve_hour_mode_midnight_noon_and_pm() {
    let at = |hour_reg: u8| {
        let cmos = FakeCmos::new(BCD_12H, [0, 0, hour_reg, 0x01, 0x06, 0x24], None);
        read_datetime(&cmos, 0).unwrap().hour
    };
    assert_eq!(at(0x12), 0, "12 AM");
    assert_eq!(at(0x01), 1);
    assert_eq!(at(0x80 | 0x12), 12, "12 PM");
    assert_eq!(at(0x80 | 0x11), 23, "11 PM");
    // Binary 12-hour.
    let cmos = FakeCmos::new(0x04, [0, 0, 0x80 | 7, 1, 6, 24], None);
    assert_eq!(read_datetime(&cmos, 0).unwrap().hour, 19);
}

#[test]
fn waits_for_update_in_progress_to_clear() {
    let cmos = FakeCmos::new(BCD_24H, [0x01, 0x02, 0x03, 0x04, 0x05, 0x06], None);
    cmos.uip_reads_left.set(50);
    assert_eq!(read_datetime(&cmos, 0), Ok(dt(2006, 5, 4, 3, 2, 1)));
}

#[test]
fn a_tick_between_reads_is_read_again() {
    // The seconds roll over from 59 to 00 and the minute advances during the first read.
    let cmos = FakeCmos::new(BCD_24H, [0x59, 0x59, 0x23, 0x31, 0x12, 0x99], None);
    *cmos.script.borrow_mut() = [
        (3, REG_SECONDS, 0x00),
        (3, REG_MINUTES, 0x00),
        (3, REG_HOURS, 0x00),
        (3, REG_YEAR, 0x99),
    ];
    let got = read_datetime(&cmos, 0).unwrap();
    assert_eq!(got, dt(1999, 12, 31, 0, 0, 0));
}

#[test]
fn a_stuck_or_unstable_rtc_is_an_error() {
    let cmos = FakeCmos::new(BCD_24H, [0; 6], None);
    cmos.uip_reads_left.set(usize::MAX);
    assert_eq!(read_datetime(&cmos, 0), Err(RtcError::UpdateStuck));
    let mut cmos = FakeCmos::new(BCD_24H, [0, 0, 0, 1, 1, 0x24], None);
    cmos.always_changing = true;
    assert_eq!(read_datetime(&cmos, 0), Err(RtcError::Unstable));
}

#[test]
fn garbage_fields_are_invalid_not_a_panic() {
    let cmos = FakeCmos::new(BCD_24H, [0x99, 0x99, 0x99, 0x99, 0x99, 0x99], None);
    assert!(matches!(read_datetime(&cmos, 0), Err(RtcError::Invalid(_))));
    let cmos = FakeCmos::new(BINARY_24H, [0xff; 6], Some((0x32, 0xff)));
    assert!(matches!(
        read_datetime(&cmos, 0x32),
        Err(RtcError::Invalid(_))
    ));
}

#[test]
fn from_unix_inverts_to_unix_across_leap_years_and_before_1970() {
    for secs in [
        0i64,
        -1,
        951_782_400,    // 2000-02-29 00:00:00
        1_795_273_361,  // 2026-11-21
        4_107_542_399,  // 2100-02-28 23:59:59 (2100 is not a leap year)
        -2_208_988_800, // 1900-01-01
    ] {
        let dt = DateTime::from_unix(secs);
        assert!(dt.is_valid(), "{secs}: {dt:?}");
        assert_eq!(dt.to_unix(), secs, "{dt:?}");
    }
    let dt = DateTime::from_unix(951_782_400);
    assert_eq!((dt.year, dt.month, dt.day), (2000, 2, 29));
    assert_eq!(DateTime::from_unix(-1).second, 59);
    // Every day of 400 years round-trips.
    for day in -73_000..73_000 {
        assert_eq!(days_from_civil_tuple(civil_from_days(day)), day);
    }
}

fn days_from_civil_tuple((y, m, d): (i64, u8, u8)) -> i64 {
    days_from_civil(y, m, d)
}

#[test]
fn weekdays_of_known_dates() {
    assert_eq!(DateTime::from_unix(0).weekday(), 4); // Thursday 1970-01-01
    assert_eq!(DateTime::from_unix(1_795_273_361).weekday(), 6); // Saturday 2026-11-21
}
