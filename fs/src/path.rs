// SPDX-License-Identifier: MIT OR Apache-2.0
//! Path and name limits, and name validation.
//!
//! Paths are byte strings (not necessarily UTF-8), as in POSIX. The limits are Linux's so
//! that programs built against libc-shim see the values they expect from `pathconf`.

use abi::Errno;

/// Longest path, in bytes, including the terminating NUL a C caller has (`PATH_MAX`).
pub const PATH_MAX: usize = 4096;
/// Longest single component, in bytes (`NAME_MAX`).
pub const NAME_MAX: usize = 255;
/// Most symbolic links followed while resolving one path (Linux's limit, `ELOOP` past it).
pub const SYMLOOP_MAX: u32 = 40;

/// Checks a name that is about to be created, removed or looked up as a real entry.
///
/// # Errors
/// `NameTooLong` past [`NAME_MAX`]; `Inval` if empty, `.`, `..`, or containing `/` or NUL.
pub fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.len() > NAME_MAX {
        return Err(Errno::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.iter().any(|&b| b == b'/' || b == 0)
    {
        return Err(Errno::Inval);
    }
    Ok(())
}

/// Checks a whole path before walking it.
///
/// # Errors
/// `NoEnt` if empty (POSIX), `NameTooLong` if `PATH_MAX` bytes or more (no room for the
/// NUL), `Inval` if it contains a NUL byte.
pub fn check_path(path: &[u8]) -> Result<(), Errno> {
    if path.is_empty() {
        return Err(Errno::NoEnt);
    }
    if path.len() >= PATH_MAX {
        return Err(Errno::NameTooLong);
    }
    if path.contains(&0) {
        return Err(Errno::Inval);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(check_name(b"a"), Ok(()));
        assert_eq!(check_name(&[b'x'; 255]), Ok(()));
        assert_eq!(check_name(&[b'x'; 256]), Err(Errno::NameTooLong));
        for bad in [&b""[..], b".", b"..", b"a/b", b"a\0"] {
            assert_eq!(check_name(bad), Err(Errno::Inval), "{bad:?}");
        }
        assert_eq!(check_name(b"..."), Ok(()));
    }

    #[test]
    fn paths() {
        assert_eq!(check_path(b""), Err(Errno::NoEnt));
        assert_eq!(check_path(&[b'a'; 4095]), Ok(()));
        assert_eq!(check_path(&[b'a'; 4096]), Err(Errno::NameTooLong));
        assert_eq!(check_path(b"/a\0b"), Err(Errno::Inval));
    }
}
