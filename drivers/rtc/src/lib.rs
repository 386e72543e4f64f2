// SPDX-License-Identifier: MIT OR Apache-2.0
//! rtc: read the CMOS real-time clock and convert to Unix time.
#![doc = include_str!("../README.md")]
#![no_std]
#![deny(unsafe_code)]
#![warn(missing_docs)]

/// Access to CMOS registers (index port `0x70`, data port `0x71`).
///
/// # Context
/// Any CPU; the kernel's implementation holds a lock across the index write and the data
/// read. Never called from interrupt context by this crate.
pub trait CmosPort {
    /// Reads CMOS register `register` (0..128).
    fn read(&self, register: u8) -> u8;
}

/// Seconds register.
pub const REG_SECONDS: u8 = 0x00;
/// Minutes register.
pub const REG_MINUTES: u8 = 0x02;
/// Hours register.
pub const REG_HOURS: u8 = 0x04;
/// Day of month register.
pub const REG_DAY: u8 = 0x07;
/// Month register.
pub const REG_MONTH: u8 = 0x08;
/// Year (two digits) register.
pub const REG_YEAR: u8 = 0x09;
/// Status register A (bit 7: update in progress).
pub const REG_STATUS_A: u8 = 0x0a;
/// Status register B (bit 1: 24-hour; bit 2: binary).
pub const REG_STATUS_B: u8 = 0x0b;

/// Reads of status A before giving up on "update in progress".
pub const MAX_UIP_POLLS: usize = 100_000;
/// Pairs of reads before giving up on two agreeing.
pub const MAX_ATTEMPTS: usize = 8;

/// A calendar date and time (UTC, as the RTC keeps it on this platform).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// Full year, e.g. 2024.
    pub year: i64,
    /// 1..=12.
    pub month: u8,
    /// 1..=31.
    pub day: u8,
    /// 0..=23.
    pub hour: u8,
    /// 0..=59.
    pub minute: u8,
    /// 0..=59.
    pub second: u8,
}

/// Why the clock could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RtcError {
    /// The update-in-progress bit never cleared.
    UpdateStuck,
    /// Two consecutive reads never agreed.
    Unstable,
    /// A field is out of range (a dead battery or a bad century register).
    Invalid(DateTime),
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil` algorithm; valid for every `i64` year that does not overflow).
pub const fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01 (the inverse of
/// [`days_from_civil`], same algorithm family).
pub const fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// `true` for Gregorian leap years.
pub const fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in `month` of `year`.
pub const fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

impl DateTime {
    /// The UTC date and time `secs` seconds after the Unix epoch.
    pub const fn from_unix(secs: i64) -> DateTime {
        let days = secs.div_euclid(86_400);
        let rest = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: (rest / 3600) as u8,
            minute: (rest / 60 % 60) as u8,
            second: (rest % 60) as u8,
        }
    }

    /// Day of the week, 0 = Sunday (1970-01-01 was a Thursday).
    pub const fn weekday(&self) -> u8 {
        (days_from_civil(self.year, self.month, self.day) + 4).rem_euclid(7) as u8
    }

    /// Seconds since the Unix epoch.
    pub const fn to_unix(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day) * 86_400
            + self.hour as i64 * 3600
            + self.minute as i64 * 60
            + self.second as i64
    }

    /// `true` if every field is in range.
    pub const fn is_valid(&self) -> bool {
        self.month >= 1
            && self.month <= 12
            && self.day >= 1
            && self.day <= days_in_month(self.year, self.month)
            && self.hour < 24
            && self.minute < 60
            && self.second < 60
    }
}

const fn from_bcd(v: u8) -> u8 {
    (v >> 4) * 10 + (v & 0x0f)
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct Raw([u8; 7]);

fn read_raw(port: &impl CmosPort, century_register: u8) -> Raw {
    Raw([
        port.read(REG_SECONDS),
        port.read(REG_MINUTES),
        port.read(REG_HOURS),
        port.read(REG_DAY),
        port.read(REG_MONTH),
        port.read(REG_YEAR),
        if century_register != 0 {
            port.read(century_register)
        } else {
            0
        },
    ])
}

fn wait_not_updating(port: &impl CmosPort) -> Result<(), RtcError> {
    for _ in 0..MAX_UIP_POLLS {
        if port.read(REG_STATUS_A) & 0x80 == 0 {
            return Ok(());
        }
        core::hint::spin_loop();
    }
    Err(RtcError::UpdateStuck)
}

/// Decodes raw register values per status register B.
fn decode(raw: Raw, status_b: u8, has_century: bool) -> DateTime {
    let is_binary = status_b & 0x04 != 0;
    let is_24h = status_b & 0x02 != 0;
    let conv = |v: u8| if is_binary { v } else { from_bcd(v) };
    let [s, m, h, d, mo, y, c] = raw.0;
    let is_pm = h & 0x80 != 0;
    let mut hour = conv(h & 0x7f);
    if !is_24h {
        // 12-hour mode: 12 AM is 0, 12 PM is 12.
        hour %= 12;
        if is_pm {
            hour += 12;
        }
    }
    let yy = conv(y) as i64;
    let year = if has_century {
        conv(c) as i64 * 100 + yy
    } else if yy < 70 {
        2000 + yy
    } else {
        1900 + yy
    };
    DateTime {
        year,
        month: conv(mo),
        day: conv(d),
        hour,
        minute: conv(m),
        second: conv(s),
    }
}

/// Reads the date and time. `century_register` is the FADT's `century` field (0: the
/// RTC has none; years 00-69 then mean 20xx).
///
/// # Errors
/// [`RtcError::UpdateStuck`], [`RtcError::Unstable`], [`RtcError::Invalid`].
///
/// # Context
/// Boot or any task; busy-waits at most one RTC update (under 2 ms on hardware).
pub fn read_datetime(port: &impl CmosPort, century_register: u8) -> Result<DateTime, RtcError> {
    wait_not_updating(port)?;
    let mut last = read_raw(port, century_register);
    for _ in 0..MAX_ATTEMPTS {
        wait_not_updating(port)?;
        let now = read_raw(port, century_register);
        if now == last {
            let status_b = port.read(REG_STATUS_B);
            let dt = decode(now, status_b, century_register != 0);
            return if dt.is_valid() {
                Ok(dt)
            } else {
                Err(RtcError::Invalid(dt))
            };
        }
        last = now;
    }
    Err(RtcError::Unstable)
}

/// Reads the clock as Unix seconds.
///
/// # Errors
/// As [`read_datetime`].
pub fn read_unix_time(port: &impl CmosPort, century_register: u8) -> Result<i64, RtcError> {
    read_datetime(port, century_register).map(|dt| dt.to_unix())
}

#[cfg(test)]
mod tests;
