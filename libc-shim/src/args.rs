// SPDX-License-Identifier: MIT OR Apache-2.0
//! The program's arguments and environment, as the kernel laid them on the initial stack.

use alloc::vec::Vec;

/// `argv` and `envp` of the process. Strings are the kernel's bytes (normally UTF-8);
/// [`Args::get`] and [`Args::iter`] give `&str` and replace a non-UTF-8 one with `"?"`.
#[derive(Clone, Debug, Default)]
pub struct Args {
    argv: Vec<&'static [u8]>,
    envp: Vec<&'static [u8]>,
}

impl Args {
    /// Arguments and environment from their byte strings (no NULs inside).
    pub fn new(argv: Vec<&'static [u8]>, envp: Vec<&'static [u8]>) -> Args {
        Args { argv, envp }
    }

    /// `argc`.
    pub fn len(&self) -> usize {
        self.argv.len()
    }

    /// Whether there is not even `argv[0]`.
    pub fn is_empty(&self) -> bool {
        self.argv.is_empty()
    }

    /// `argv[i]` as text.
    pub fn get(&self, i: usize) -> Option<&'static str> {
        self.argv
            .get(i)
            .map(|b| core::str::from_utf8(b).unwrap_or("?"))
    }

    /// `argv[i]` as bytes.
    pub fn get_bytes(&self, i: usize) -> Option<&'static [u8]> {
        self.argv.get(i).copied()
    }

    /// Every argument, `argv[0]` first.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// The environment, `NAME=value` strings.
    pub fn env(&self) -> impl Iterator<Item = &'static [u8]> + '_ {
        self.envp.iter().copied()
    }

    /// The value of environment variable `name`.
    pub fn var(&self, name: &str) -> Option<&'static str> {
        self.envp.iter().find_map(|e| {
            let rest = e.strip_prefix(name.as_bytes())?.strip_prefix(b"=")?;
            core::str::from_utf8(rest).ok()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_iteration() {
        let a = Args::new(
            vec![b"ls", b"-l", b"\xff"],
            vec![b"PATH=/bin", b"PATHX=no", b"HOME=/"],
        );
        assert_eq!(a.len(), 3);
        assert_eq!(a.get(1), Some("-l"));
        assert_eq!(a.get(2), Some("?"));
        assert_eq!(a.iter().collect::<Vec<_>>(), ["ls", "-l", "?"]);
        assert_eq!(a.var("PATH"), Some("/bin"));
        assert_eq!(a.var("HOME"), Some("/"));
        assert_eq!(a.var("PAT"), None);
    }
}
