//! Kernel command line: `key=value` words separated by spaces.
//!
//! Known keys: `log=<error|warn|info|debug|trace>` sets the log level,
//! `test=<all|list|name[,name...]>` selects in-kernel tests (in a kernel
//! built with the `ktest` feature), `haltpoll=<microseconds>` caps how long an
//! idle CPU polls before it halts (0: never poll). An unknown key or bad value is not
//! fatal: it is reported through [`CmdLine::warnings`] so boot can warn and
//! list the valid options.

/// The options the kernel understands, for the warning message.
pub const VALID_OPTIONS: &str =
    "log=<error|warn|info|debug|trace>, test=<all|list|name[,name...]>, haltpoll=<microseconds>";

/// Log levels, mirroring `log::LevelFilter` without depending on it here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// One problem found while parsing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmdLineWarning<'a> {
    UnknownOption(&'a str),
    BadValue { key: &'a str, value: &'a str },
}

/// The parsed command line. Borrowed from the caller's copy of the string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CmdLine<'a> {
    pub log_level: LogLevel,
    /// The raw `test=` value, if any (`all`, `list`, or comma-separated names).
    pub test: Option<&'a str>,
    /// `haltpoll=`: the longest poll before halting, in microseconds.
    pub halt_poll_us: Option<u64>,
    text: &'a str,
}

impl<'a> CmdLine<'a> {
    /// Parses `text`. Never fails: see [`CmdLine::warnings`].
    pub fn parse(text: &'a str) -> Self {
        let mut cmd = CmdLine {
            log_level: LogLevel::Info,
            test: None,
            halt_poll_us: None,
            text,
        };
        for (key, value) in words(text) {
            match (key, value) {
                ("log", Some(v)) => {
                    if let Some(level) = parse_level(v) {
                        cmd.log_level = level;
                    }
                }
                ("test", Some(v)) if !v.is_empty() => cmd.test = Some(v),
                ("haltpoll", Some(v)) => {
                    if let Ok(us) = v.parse() {
                        cmd.halt_poll_us = Some(us);
                    }
                }
                _ => {}
            }
        }
        cmd
    }

    /// Everything in the command line that was not understood.
    pub fn warnings(&self) -> impl Iterator<Item = CmdLineWarning<'a>> {
        words(self.text).filter_map(|(key, value)| match (key, value) {
            ("log", Some(v)) if parse_level(v).is_some() => None,
            ("test", Some(v)) if !v.is_empty() => None,
            ("haltpoll", Some(v)) if v.parse::<u64>().is_ok() => None,
            ("log" | "test" | "haltpoll", v) => Some(CmdLineWarning::BadValue {
                key,
                value: v.unwrap_or(""),
            }),
            _ => Some(CmdLineWarning::UnknownOption(key)),
        })
    }

    /// Whether the test named `name` is selected by `test=`.
    pub fn selects_test(&self, name: &str) -> bool {
        match self.test {
            None => false,
            Some("all") => true,
            Some(list) => list.split(',').any(|n| n == name),
        }
    }
}

fn words(text: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    text.split_ascii_whitespace()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (w, None),
        })
}

fn parse_level(v: &str) -> Option<LogLevel> {
    Some(match v {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_line_gives_defaults_and_no_warnings() {
        let c = CmdLine::parse("");
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.test, None);
        assert_eq!(c.warnings().count(), 0);
    }

    #[test]
    fn log_and_test_are_parsed() {
        let c = CmdLine::parse("  log=debug   test=heap_stress,paging_map ");
        assert_eq!(c.log_level, LogLevel::Debug);
        assert!(c.selects_test("heap_stress"));
        assert!(c.selects_test("paging_map"));
        assert!(!c.selects_test("paging"));
        assert_eq!(c.warnings().count(), 0);
    }

    #[test]
    fn test_all_selects_everything() {
        assert!(CmdLine::parse("test=all").selects_test("anything"));
        assert!(!CmdLine::parse("log=warn").selects_test("anything"));
    }

    #[test]
    fn unknown_options_and_bad_values_warn() {
        let c = CmdLine::parse("console=ttyS0 log=loud quiet test=");
        let w: Vec<_> = c.warnings().collect();
        assert_eq!(
            w,
            vec![
                CmdLineWarning::UnknownOption("console"),
                CmdLineWarning::BadValue {
                    key: "log",
                    value: "loud"
                },
                CmdLineWarning::UnknownOption("quiet"),
                CmdLineWarning::BadValue {
                    key: "test",
                    value: ""
                },
            ]
        );
        assert_eq!(c.log_level, LogLevel::Info, "a bad value keeps the default");
    }

    #[test]
    fn haltpoll_takes_microseconds() {
        let c = CmdLine::parse("haltpoll=0");
        assert_eq!(c.halt_poll_us, Some(0));
        assert_eq!(c.warnings().count(), 0);
        assert_eq!(CmdLine::parse("haltpoll=350").halt_poll_us, Some(350));
        assert_eq!(CmdLine::parse("log=warn").halt_poll_us, None);
        let bad = CmdLine::parse("haltpoll=fast");
        assert_eq!(bad.halt_poll_us, None, "a bad value keeps the default");
        assert_eq!(
            bad.warnings().collect::<Vec<_>>(),
            vec![CmdLineWarning::BadValue {
                key: "haltpoll",
                value: "fast"
            }]
        );
    }
}
