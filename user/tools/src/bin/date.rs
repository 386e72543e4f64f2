// SPDX-License-Identifier: MIT OR Apache-2.0
//! `date [-u] [+%s]`: the wall-clock time (UTC; the kernel reads the CMOS
//! RTC at boot), as `Sat Nov 21 14:02:03 UTC 2026`, or seconds since the
//! epoch with `+%s`.
#![no_std]
#![no_main]

use libc_shim::{eprintln, println, sys};
use rtc::DateTime;

libc_shim::entry!(main);

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

fn main(args: libc_shim::Args) -> i32 {
    let mut seconds = false;
    for a in args.iter().skip(1) {
        match a {
            "-u" | "--utc" => {}
            "+%s" => seconds = true,
            other => {
                eprintln!("date: unsupported argument {other:?} (usage: date [-u] [+%s])");
                return 2;
            }
        }
    }
    let now = match sys::clock_gettime(sys::CLOCK_REALTIME) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("date: {e}");
            return 1;
        }
    };
    if seconds {
        println!("{}", now.tv_sec);
        return 0;
    }
    let t = DateTime::from_unix(now.tv_sec);
    println!(
        "{} {} {:2} {:02}:{:02}:{:02} UTC {}",
        DAYS[usize::from(t.weekday())],
        MONTHS[usize::from(t.month - 1)],
        t.day,
        t.hour,
        t.minute,
        t.second,
        t.year
    );
    0
}
