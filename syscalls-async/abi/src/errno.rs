// SPDX-License-Identifier: MIT OR Apache-2.0
//! POSIX error numbers, with Linux x86_64 values.
//!
//! `Errno` is the third error tier of STYLE.md C.5: everything whose semantics really are POSIX
//! (fs, net, syscalls-async) reports one of these. The numeric values are Linux's
//! (`asm-generic/errno-base.h` and `asm-generic/errno.h`), so a C program built against
//! libc-shim sees the numbers it expects. A syscall returns `-(errno as i32)`.

use core::fmt;

macro_rules! errnos {
    ($( $(#[$extra:meta])* $variant:ident = $value:literal, $cname:literal, $desc:literal; )*) => {
        /// A POSIX error number (Linux x86_64 values).
        ///
        /// Variants are CamelCase; each carries its C name as a doc alias, so rustdoc search
        /// and `git grep` find `ENOENT` as well as `NoEnt`.
        #[repr(i32)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Errno {
            $(
                #[doc = $desc]
                #[doc(alias = $cname)]
                $(#[$extra])*
                $variant = $value,
            )*
        }

        impl Errno {
            /// Every defined error number, in ascending numeric order.
            pub const ALL: &'static [Errno] = &[$(Errno::$variant,)*];

            /// The error for a raw number, or `None` if the number is not one we define.
            pub const fn from_i32(value: i32) -> Option<Errno> {
                match value {
                    $($value => Some(Errno::$variant),)*
                    _ => None,
                }
            }

            /// The C name, e.g. `"ENOENT"`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Errno::$variant => $cname,)*
                }
            }

            /// A short English description, e.g. `"No such file or directory"`.
            pub const fn description(self) -> &'static str {
                match self {
                    $(Errno::$variant => $desc,)*
                }
            }
        }
    };
}

errnos! {
    Perm = 1, "EPERM", "Operation not permitted";
    NoEnt = 2, "ENOENT", "No such file or directory";
    Srch = 3, "ESRCH", "No such process";
    Intr = 4, "EINTR", "Interrupted system call";
    Io = 5, "EIO", "Input/output error";
    NxIo = 6, "ENXIO", "No such device or address";
    TooBig = 7, "E2BIG", "Argument list too long";
    NoExec = 8, "ENOEXEC", "Exec format error";
    BadF = 9, "EBADF", "Bad file descriptor";
    Child = 10, "ECHILD", "No child processes";
    #[doc(alias = "EWOULDBLOCK")]
    Again = 11, "EAGAIN", "Resource temporarily unavailable";
    NoMem = 12, "ENOMEM", "Cannot allocate memory";
    Acces = 13, "EACCES", "Permission denied";
    Fault = 14, "EFAULT", "Bad address";
    NotBlk = 15, "ENOTBLK", "Block device required";
    Busy = 16, "EBUSY", "Device or resource busy";
    Exist = 17, "EEXIST", "File exists";
    XDev = 18, "EXDEV", "Invalid cross-device link";
    NoDev = 19, "ENODEV", "No such device";
    NotDir = 20, "ENOTDIR", "Not a directory";
    IsDir = 21, "EISDIR", "Is a directory";
    Inval = 22, "EINVAL", "Invalid argument";
    NFile = 23, "ENFILE", "Too many open files in system";
    MFile = 24, "EMFILE", "Too many open files";
    NotTy = 25, "ENOTTY", "Inappropriate ioctl for device";
    TxtBsy = 26, "ETXTBSY", "Text file busy";
    FBig = 27, "EFBIG", "File too large";
    NoSpc = 28, "ENOSPC", "No space left on device";
    SPipe = 29, "ESPIPE", "Illegal seek";
    RoFs = 30, "EROFS", "Read-only file system";
    MLink = 31, "EMLINK", "Too many links";
    Pipe = 32, "EPIPE", "Broken pipe";
    Dom = 33, "EDOM", "Numerical argument out of domain";
    Range = 34, "ERANGE", "Numerical result out of range";
    #[doc(alias = "EDEADLOCK")]
    DeadLk = 35, "EDEADLK", "Resource deadlock avoided";
    NameTooLong = 36, "ENAMETOOLONG", "File name too long";
    NoLck = 37, "ENOLCK", "No locks available";
    NoSys = 38, "ENOSYS", "Function not implemented";
    NotEmpty = 39, "ENOTEMPTY", "Directory not empty";
    Loop = 40, "ELOOP", "Too many levels of symbolic links";
    NoMsg = 42, "ENOMSG", "No message of desired type";
    NoData = 61, "ENODATA", "No data available";
    Time = 62, "ETIME", "Timer expired";
    Proto = 71, "EPROTO", "Protocol error";
    Overflow = 75, "EOVERFLOW", "Value too large for defined data type";
    BadFd = 77, "EBADFD", "File descriptor in bad state";
    IlSeq = 84, "EILSEQ", "Invalid or incomplete multibyte or wide character";
    NotSock = 88, "ENOTSOCK", "Socket operation on non-socket";
    DestAddrReq = 89, "EDESTADDRREQ", "Destination address required";
    MsgSize = 90, "EMSGSIZE", "Message too long";
    ProtoType = 91, "EPROTOTYPE", "Protocol wrong type for socket";
    NoProtoOpt = 92, "ENOPROTOOPT", "Protocol not available";
    ProtoNoSupport = 93, "EPROTONOSUPPORT", "Protocol not supported";
    #[doc(alias = "ENOTSUP")]
    OpNotSupp = 95, "EOPNOTSUPP", "Operation not supported";
    AfNoSupport = 97, "EAFNOSUPPORT", "Address family not supported by protocol";
    AddrInUse = 98, "EADDRINUSE", "Address already in use";
    AddrNotAvail = 99, "EADDRNOTAVAIL", "Cannot assign requested address";
    NetDown = 100, "ENETDOWN", "Network is down";
    NetUnreach = 101, "ENETUNREACH", "Network is unreachable";
    NetReset = 102, "ENETRESET", "Network dropped connection on reset";
    ConnAborted = 103, "ECONNABORTED", "Software caused connection abort";
    ConnReset = 104, "ECONNRESET", "Connection reset by peer";
    NoBufs = 105, "ENOBUFS", "No buffer space available";
    IsConn = 106, "EISCONN", "Transport endpoint is already connected";
    NotConn = 107, "ENOTCONN", "Transport endpoint is not connected";
    Shutdown = 108, "ESHUTDOWN", "Cannot send after transport endpoint shutdown";
    TimedOut = 110, "ETIMEDOUT", "Connection timed out";
    ConnRefused = 111, "ECONNREFUSED", "Connection refused";
    HostUnreach = 113, "EHOSTUNREACH", "No route to host";
    Already = 114, "EALREADY", "Operation already in progress";
    InProgress = 115, "EINPROGRESS", "Operation now in progress";
    Stale = 116, "ESTALE", "Stale file handle";
    DQuot = 122, "EDQUOT", "Disk quota exceeded";
    Canceled = 125, "ECANCELED", "Operation canceled";
}

impl Errno {
    /// The raw number (positive).
    pub const fn as_i32(self) -> i32 {
        self as i32
    }

    /// The value a syscall returns for this error: the negated number.
    pub const fn to_syscall_result(self) -> i64 {
        -(self as i32 as i64)
    }
}

impl fmt::Display for Errno {
    /// `ENOENT (No such file or directory)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.description())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_linux_x86_64() {
        assert_eq!(Errno::Perm.as_i32(), 1);
        assert_eq!(Errno::NoEnt.as_i32(), 2);
        assert_eq!(Errno::BadF.as_i32(), 9);
        assert_eq!(Errno::Again.as_i32(), 11);
        assert_eq!(Errno::Exist.as_i32(), 17);
        assert_eq!(Errno::XDev.as_i32(), 18);
        assert_eq!(Errno::NotDir.as_i32(), 20);
        assert_eq!(Errno::IsDir.as_i32(), 21);
        assert_eq!(Errno::Inval.as_i32(), 22);
        assert_eq!(Errno::NameTooLong.as_i32(), 36);
        assert_eq!(Errno::NoSys.as_i32(), 38);
        assert_eq!(Errno::NotEmpty.as_i32(), 39);
        assert_eq!(Errno::Loop.as_i32(), 40);
        assert_eq!(Errno::OpNotSupp.as_i32(), 95);
        assert_eq!(Errno::TimedOut.as_i32(), 110);
        assert_eq!(Errno::Canceled.as_i32(), 125);
    }

    #[test]
    fn from_i32_round_trips_every_variant() {
        for &e in Errno::ALL {
            assert_eq!(Errno::from_i32(e.as_i32()), Some(e));
        }
    }

    #[test]
    fn from_i32_rejects_unknown_numbers() {
        for v in [0, -1, 41, 200, i32::MIN, i32::MAX] {
            assert_eq!(Errno::from_i32(v), None);
        }
    }

    #[test]
    fn all_is_sorted_and_names_are_unique() {
        for pair in Errno::ALL.windows(2) {
            assert!(pair[0].as_i32() < pair[1].as_i32(), "{:?}", pair);
        }
        for (i, a) in Errno::ALL.iter().enumerate() {
            assert!(a.name().starts_with('E'));
            assert!(!a.description().is_empty());
            for b in &Errno::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
            }
        }
    }

    #[test]
    fn syscall_result_is_negated() {
        assert_eq!(Errno::NoEnt.to_syscall_result(), -2);
    }

    #[test]
    fn size_is_four_bytes() {
        assert_eq!(core::mem::size_of::<Errno>(), 4);
    }
}
