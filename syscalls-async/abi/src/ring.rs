// SPDX-License-Identifier: MIT OR Apache-2.0
//! The syscall message format: the 64-byte submission entry (`Sqe`), the 16-byte completion
//! entry (`Cqe`), opcodes, flags, argument structs and the shared ring layout.
//!
//! Every operation a user program asks of the kernel is one `Sqe`. It reaches the kernel
//! through one of two doors, and means the same thing through both.
//!
//! # The trap door
//!
//! The `syscall` instruction carrying one `Sqe`, in one of two forms:
//! - memory ([`TRAP_MEMORY`]): `rax = 0` and `rdi` = the user address of one 64-byte `Sqe`,
//!   which the kernel copies once;
//! - registers ([`TRAP_REGISTERS`]): `rax = 1` and the `Sqe`'s words in `rdi`, `rsi`, `rdx`,
//!   `r10`, `r8`, `r9` ([`Sqe::to_trap_registers`]; `user_data` and `addr3` are not
//!   carried and read as zero). Nothing is copied from user memory to fetch it, which makes
//!   it the cheaper form; libc-shim uses it for every entry whose `addr3` is zero.
//!
//! The kernel performs the entry and returns the result in `rax` as an `i64`: `>= 0` is
//! success, a negative value is `-errno`; any other `rax` on entry is `ENOSYS`. No `Cqe` is posted for a
//! trap-door submission (`user_data` and the `LINK`/`HARDLINK`/`DRAIN`/`SKIP_SUCCESS` flags
//! are ignored there). `rcx` and `r11` are clobbered; every other register is preserved.
//! `Exit` never returns. `RingSetup` and `RingEnter` are themselves opcodes sent through the
//! trap door.
//!
//! # The ring door
//!
//! One region of shared pages per process, described by a [`RingLayout`], holds a
//! submission queue (SQ) header, a completion queue (CQ) header, the `Sqe` array and the
//! `Cqe` array. `RingSetup` creates and maps it; its [`RingParams`] say where.
//!
//! - SQ: userland writes `sqes[tail & mask]`, then publishes with a release store of
//!   `tail + 1`. The kernel consumes from `head` and stores `head` after it copied an entry
//!   (so the slot may be reused as soon as `head` moves past it). There is no indirection
//!   array: the SQ is indexed directly by `tail & mask`.
//! - CQ: the kernel writes `cqes[tail & mask]` and publishes `tail`; userland reads from
//!   `head` and stores `head` to hand slots back.
//! - Indices are free-running `u32`s (wrapping); `tail - head` (wrapping) is the number of
//!   entries in the queue and never exceeds `entries`. A kernel that sees otherwise treats
//!   the ring as corrupt, sets [`SQ_CORRUPT`] and stops consuming it.
//! - `RingEnter` (a trap-door `Sqe`): `len` = to_submit, `off` = min_complete, `op_flags` =
//!   [`RingEnterFlags`], `addr` = timeout in ns (0 = none). It returns the number of
//!   entries consumed from the SQ.
//! - A completion is never dropped. When the CQ is full, completions wait in a kernel-side
//!   overflow list; [`CQ_OVERFLOW`] and [`SQ_CQ_FULL`] are set and the kernel consumes no
//!   further entries until userland reaps and the list drains back into the CQ.
//! - Polled mode ([`RING_SETUP_POLLED`]): a kernel task drains the SQ without traps. After
//!   an idle period it sets [`SQ_NEED_WAKEUP`] and sleeps; userland that sees the flag after
//!   publishing `tail` makes a `RingEnter` with [`RingEnterFlags::SQ_WAKEUP`].
//!
//! # Field meanings per opcode
//!
//! Paths are a pointer and a byte length (no NUL terminator needed; at most [`PATH_MAX`]
//! bytes, a NUL inside is `EINVAL`). `dirfd` may be `AT_FDCWD`. Every field that the table
//! does not name must be zero, otherwise the result is `-EINVAL`. "Result" is `Cqe::res` or
//! the trap door's `rax` on success.
//!
//! | Opcode | `fd` | `addr` | `len` | `off` | `op_flags` | `addr2` | `addr3` | `aux` | Result |
//! |---|---|---|---|---|---|---|---|---|---|
//! | `Nop` | | | | | | | | | 0 |
//! | `Read` | fd | buffer | count | | | | | | bytes read (0 = EOF) |
//! | `Write` | fd | buffer | count | | | | | | bytes written |
//! | `Pread` | fd | buffer | count | file offset | | | | | bytes read |
//! | `Pwrite` | fd | buffer | count | file offset | | | | | bytes written |
//! | `Openat` | dirfd | path | path len | mode | `OpenFlags` | | | | new fd |
//! | `Close` | fd | | | | | | | | 0 |
//! | `Fstat` | fd | `*mut Stat` | | | | | | | 0 |
//! | `Statat` | dirfd | path | path len | | `AT_SYMLINK_NOFOLLOW`, `AT_EMPTY_PATH` | `*mut Stat` | | | 0 |
//! | `Getdents` | fd | buffer | buffer len | | | | | | bytes of `linux_dirent64` records (0 = end) |
//! | `Mkdirat` | dirfd | path | path len | mode | | | | | 0 |
//! | `Unlinkat` | dirfd | path | path len | | `AT_REMOVEDIR` | | | | 0 |
//! | `Renameat` | old dirfd | old path | old path len | new dirfd (as `i64`) | `RENAME_*` | new path | | new path len | 0 |
//! | `Lseek` | fd | | | offset (as `i64`) | `Whence` | `*mut u64` new offset, or 0 | | | new offset |
//! | `Dup` | old fd | | | new fd if [`DUP_TO`] | [`DUP_TO`], [`DUP_CLOEXEC`] | | | | new fd |
//! | `Pipe` | | `*mut [i32; 2]` (read end, write end) | | | `O_CLOEXEC`, `O_NONBLOCK` | | | | 0 |
//! | `Spawn` | | `*const SpawnArgs` | `size_of::<SpawnArgs>()` | | | | | | child pid |
//! | `Wait` | pid (-1 = any child) | `*mut i32` status, or 0 | | | [`WAIT_NOHANG`] | | | | pid (0 with `WAIT_NOHANG` and none exited) |
//! | `Exit` | | | | status (low 8 bits used) | | | | | never completes |
//! | `Kill` | pid | | | | signal ([`SIGKILL`], ...) | | | | 0 |
//! | `Getpid` | | | | | [`GETPID_PARENT`] for the parent | | | | pid |
//! | `ClockGettime` | clock ([`CLOCK_REALTIME`], [`CLOCK_MONOTONIC`]) | `*mut Timespec` | | | | | | | 0 |
//! | `Sleep` | | ns | | | [`TIMEOUT_ABS`]: `addr` is a monotonic deadline | | | | 0 |
//! | `Timeout` | | ns | | | [`TIMEOUT_ABS`] | | | | `-ETIME` when it fires |
//! | `LinkTimeout` | | ns | | | [`TIMEOUT_ABS`] | | | | `-ETIME` if it fired, `-ECANCELED` if the linked op finished first |
//! | `Cancel` | | target `user_data` | | | | | | | 0, or `-ENOENT` if nothing in flight has it |
//! | `Mmap` | | hint (0 = any) | | length | `PROT_*` | `*mut u64` address, or 0 | | `MAP_*` | address |
//! | `Munmap` | | address | | length | | | | | 0 |
//! | `Mprotect` | | address | | length | `PROT_*` | | | | 0 |
//! | `PortCreate` | | | | | | | | | port fd |
//! | `PortSend` | port fd | message | message len | | | | | | 0 |
//! | `PortCall` | port fd | request | request len | | | reply buffer | | reply buffer len | reply len |
//! | `PortReceive` | port fd | buffer | buffer len | | | `*mut u64` reply token | | | message len |
//! | `PortReply` | port fd | reply | reply len | reply token | | | | | 0 |
//! | `RingSetup` | | `*mut RingParams` | `size_of::<RingParams>()` | | | | | | 0 |
//! | `RingEnter` | | timeout ns (0 = none) | to_submit | min_complete | [`RingEnterFlags`] | | | | entries consumed |
//! | `ProcList` | | `*mut ProcInfo` array | capacity (entries) | | | | | | entries written |
//! | `Chdir` | | path | path len | | | | | | 0 |
//! | `Getcwd` | | buffer | buffer len | | | | | | length including the NUL (`-ERANGE` if too small) |
//! | `SysInfo` | | `*mut SysInfo` | `size_of::<SysInfo>()` | | | | | | 0 |
//!
//! `Exit`, `RingSetup` and `RingEnter` are trap-door only: on the ring they complete with
//! `-EINVAL`.
//!
//! A result is an `i64` through the trap door but an `i32` in a `Cqe`: results above
//! `i32::MAX` (an `Mmap` address, a large `Lseek` offset) are posted as `i32::MAX`, which is
//! why those two opcodes also store the full value at `addr2` when it is not 0.
//!
//! Port messages are at most [`PORT_MESSAGE_MAX`] bytes. A `PortReceive` of a message that
//! was sent with `PortSend` stores reply token 0 (no reply expected). `Wait` status words use
//! the Linux encoding: exited with code `c` is `(c & 0xff) << 8`, killed by signal `s` is `s`.

use crate::errno::Errno;

// ------------------------------------------------------------------------------------------
// Submission and completion entries
// ------------------------------------------------------------------------------------------

/// A submission entry: one operation. Exactly 64 bytes; every field is a plain integer, so
/// any bit pattern is a valid `Sqe` (the decoder, not the type, rejects bad values).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sqe {
    /// The [`Opcode`], as a byte.
    pub opcode: u8,
    /// [`SqeFlags`] bits.
    pub flags: u8,
    /// Reserved for an I/O priority; must be zero.
    pub ioprio: u16,
    /// A descriptor, dirfd, pid or clock id (see the table in the module doc).
    pub fd: i32,
    /// A file offset, mode, length or other 64-bit scalar.
    pub off: u64,
    /// The main user address (or a scalar such as a timeout in ns).
    pub addr: u64,
    /// The length of the buffer at `addr`.
    pub len: u32,
    /// Per-opcode flags (`OpenFlags`, `AT_*`, `Whence`, ...).
    pub op_flags: u32,
    /// Opaque to the kernel; copied into the `Cqe`. The correlation id in logs.
    pub user_data: u64,
    /// A second user address.
    pub addr2: u64,
    /// A third user address (reserved for future opcodes; must be zero today).
    pub addr3: u64,
    /// A second 32-bit argument (second length, `MAP_*` flags).
    pub aux: u32,
    /// Reserved; must be zero.
    pub reserved: u32,
}

/// Byte offsets of every `Sqe` field (the layout is part of the ABI).
pub mod sqe_offset {
    /// `Sqe::opcode`.
    pub const OPCODE: usize = 0;
    /// `Sqe::flags`.
    pub const FLAGS: usize = 1;
    /// `Sqe::ioprio`.
    pub const IOPRIO: usize = 2;
    /// `Sqe::fd`.
    pub const FD: usize = 4;
    /// `Sqe::off`.
    pub const OFF: usize = 8;
    /// `Sqe::addr`.
    pub const ADDR: usize = 16;
    /// `Sqe::len`.
    pub const LEN: usize = 24;
    /// `Sqe::op_flags`.
    pub const OP_FLAGS: usize = 28;
    /// `Sqe::user_data`.
    pub const USER_DATA: usize = 32;
    /// `Sqe::addr2`.
    pub const ADDR2: usize = 40;
    /// `Sqe::addr3`.
    pub const ADDR3: usize = 48;
    /// `Sqe::aux`.
    pub const AUX: usize = 56;
    /// `Sqe::reserved`.
    pub const RESERVED: usize = 60;
}

/// The trap door's memory form: `rax = TRAP_MEMORY`, `rdi` = the address of an `Sqe`.
pub const TRAP_MEMORY: u64 = 0;
/// The trap door's register form: `rax = TRAP_REGISTERS`, the `Sqe` in `rdi`, `rsi`, `rdx`,
/// `r10`, `r8` and `r9` ([`Sqe::to_trap_registers`]). No memory is read to fetch it.
pub const TRAP_REGISTERS: u64 = 1;

/// Size of an `Sqe` in bytes.
pub const SQE_SIZE: usize = 64;
/// Size of a `Cqe` in bytes.
pub const CQE_SIZE: usize = 16;

impl Sqe {
    /// An all-zero entry (a `Nop` with no flags).
    pub const ZERO: Sqe = Sqe {
        opcode: 0,
        flags: 0,
        ioprio: 0,
        fd: 0,
        off: 0,
        addr: 0,
        len: 0,
        op_flags: 0,
        user_data: 0,
        addr2: 0,
        addr3: 0,
        aux: 0,
        reserved: 0,
    };

    /// A zeroed entry for `opcode`.
    #[inline]
    pub const fn new(opcode: Opcode) -> Sqe {
        let mut s = Sqe::ZERO;
        s.opcode = opcode as u8;
        s
    }

    /// The entry as eight little-endian 64-bit words, in memory order (word `i` covers bytes
    /// `8*i..8*i+8`). This is how the kernel reads a shared slot: eight atomic loads.
    #[inline]
    pub const fn to_words(&self) -> [u64; 8] {
        [
            self.opcode as u64
                | (self.flags as u64) << 8
                | (self.ioprio as u64) << 16
                | (self.fd as u32 as u64) << 32,
            self.off,
            self.addr,
            self.len as u64 | (self.op_flags as u64) << 32,
            self.user_data,
            self.addr2,
            self.addr3,
            self.aux as u64 | (self.reserved as u64) << 32,
        ]
    }

    /// The inverse of [`Sqe::to_words`]. Total: every word pattern is an `Sqe`.
    #[inline]
    pub const fn from_words(w: [u64; 8]) -> Sqe {
        Sqe {
            opcode: w[0] as u8,
            flags: (w[0] >> 8) as u8,
            ioprio: (w[0] >> 16) as u16,
            fd: (w[0] >> 32) as u32 as i32,
            off: w[1],
            addr: w[2],
            len: w[3] as u32,
            op_flags: (w[3] >> 32) as u32,
            user_data: w[4],
            addr2: w[5],
            addr3: w[6],
            aux: w[7] as u32,
            reserved: (w[7] >> 32) as u32,
        }
    }

    /// The six words the trap door's register form carries ([`TRAP_REGISTERS`]), in the
    /// order `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9`: words 0, 1, 2, 3, 5 and 7 of
    /// [`Sqe::to_words`]. `user_data` (word 4) means nothing to the trap door and `addr3`
    /// (word 6) is reserved, so they are left out; `None` if `addr3` is not zero (such an
    /// entry needs the memory form).
    #[inline]
    pub const fn to_trap_registers(&self) -> Option<[u64; 6]> {
        if self.addr3 != 0 {
            return None;
        }
        let w = self.to_words();
        Some([w[0], w[1], w[2], w[3], w[5], w[7]])
    }

    /// The entry the register form carries: the inverse of [`Sqe::to_trap_registers`],
    /// with `user_data` and `addr3` zero. Total.
    #[inline]
    pub const fn from_trap_registers(r: [u64; 6]) -> Sqe {
        Sqe::from_words([r[0], r[1], r[2], r[3], 0, r[4], 0, r[5]])
    }

    /// The entry's 64 bytes as they lie in memory (x86_64 is little-endian).
    pub fn to_bytes(&self) -> [u8; SQE_SIZE] {
        let mut out = [0u8; SQE_SIZE];
        for (i, w) in self.to_words().iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    /// The entry from its 64 bytes in memory. Total.
    pub fn from_bytes(bytes: &[u8; SQE_SIZE]) -> Sqe {
        let mut w = [0u64; 8];
        for (i, word) in w.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
            *word = u64::from_le_bytes(b);
        }
        Sqe::from_words(w)
    }
}

/// A completion entry. Exactly 16 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cqe {
    /// The `user_data` of the `Sqe` this completes.
    pub user_data: u64,
    /// The result: `>= 0` on success (meaning per opcode), `-errno` on failure.
    pub res: i32,
    /// [`CqeFlags`] bits.
    pub flags: u32,
}

impl Cqe {
    /// The entry as two little-endian 64-bit words in memory order.
    #[inline]
    pub const fn to_words(&self) -> [u64; 2] {
        [
            self.user_data,
            self.res as u32 as u64 | (self.flags as u64) << 32,
        ]
    }

    /// The inverse of [`Cqe::to_words`]. Total.
    #[inline]
    pub const fn from_words(w: [u64; 2]) -> Cqe {
        Cqe {
            user_data: w[0],
            res: w[1] as u32 as i32,
            flags: (w[1] >> 32) as u32,
        }
    }

    /// The result as `Ok(value)` or `Err(errno)`. A negative value that is not a known
    /// errno maps to `Err(Errno::Io)`.
    pub fn result(&self) -> Result<u32, Errno> {
        if self.res >= 0 {
            Ok(self.res as u32)
        } else {
            Err(Errno::from_i32(self.res.wrapping_neg()).unwrap_or(Errno::Io))
        }
    }
}

// ------------------------------------------------------------------------------------------
// Opcodes and flags
// ------------------------------------------------------------------------------------------

macro_rules! opcodes {
    ($( $variant:ident = $value:literal, $doc:literal; )*) => {
        /// The operation an `Sqe` asks for. The module doc has the per-opcode field table.
        #[repr(u8)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Opcode {
            $( #[doc = $doc] $variant = $value, )*
        }

        impl Opcode {
            /// Every opcode, in numeric order.
            pub const ALL: &'static [Opcode] = &[$(Opcode::$variant,)*];

            /// The opcode for a raw byte, or `None` if it is not one.
            pub const fn from_u8(value: u8) -> Option<Opcode> {
                match value {
                    $($value => Some(Opcode::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

opcodes! {
    Nop = 0, "Does nothing; completes with 0.";
    Read = 1, "`read(fd, buf, len)` at the file position.";
    Write = 2, "`write(fd, buf, len)` at the file position.";
    Pread = 3, "`pread(fd, buf, len, off)`.";
    Pwrite = 4, "`pwrite(fd, buf, len, off)`.";
    Openat = 5, "`openat(dirfd, path, flags, mode)`.";
    Close = 6, "`close(fd)`.";
    Fstat = 7, "`fstat(fd, statbuf)`.";
    Statat = 8, "`fstatat(dirfd, path, statbuf, flags)`.";
    Getdents = 9, "`getdents64(fd, buf, len)`.";
    Mkdirat = 10, "`mkdirat(dirfd, path, mode)`.";
    Unlinkat = 11, "`unlinkat(dirfd, path, flags)`.";
    Renameat = 12, "`renameat2(olddirfd, old, newdirfd, new, flags)`.";
    Lseek = 13, "`lseek(fd, off, whence)`.";
    Dup = 14, "`dup(fd)`, or `dup3(fd, newfd, flags)` with `DUP_TO`.";
    Pipe = 15, "`pipe2(fds, flags)`.";
    Spawn = 16, "Start a program in a new process (`posix_spawn`-like).";
    Wait = 17, "`waitpid(pid, status, options)`.";
    Exit = 18, "`exit(status)`; never completes.";
    Kill = 19, "`kill(pid, sig)`.";
    Getpid = 20, "`getpid()` / `getppid()`.";
    ClockGettime = 21, "`clock_gettime(clock, ts)`.";
    Sleep = 22, "Sleep for (or until) a time; completes with 0.";
    Timeout = 23, "A timer; completes with `-ETIME` when it fires.";
    LinkTimeout = 24, "A deadline for the previous linked entry.";
    Cancel = 25, "Cancel the in-flight entry with a given `user_data`.";
    Mmap = 26, "Map anonymous memory (zero-filled on demand: a page is taken when first touched).";
    Munmap = 27, "Unmap memory.";
    Mprotect = 28, "Change the protection of mapped memory (`EACCES` for write on a program's shared text).";
    PortCreate = 29, "Create a message port; returns its descriptor.";
    PortSend = 30, "Send a message to a port; no reply.";
    PortCall = 31, "Send a message to a port and wait for the reply.";
    PortReceive = 32, "Receive the next message on a port.";
    PortReply = 33, "Reply to a message received with a reply token.";
    RingSetup = 34, "Create and map this process's ring (trap door only).";
    RingEnter = 35, "Submit ring entries and/or wait for completions (trap door only).";
    ProcList = 36, "List processes into a `ProcInfo` array.";
    Chdir = 37, "`chdir(path)`.";
    Getcwd = 38, "`getcwd(buf, len)`.";
    SysInfo = 39, "Kernel counters (memory, processes) into a `SysInfo`.";
}

/// Flags of an `Sqe` (`Sqe::flags`). Unknown bits are `EINVAL`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SqeFlags(u8);

impl SqeFlags {
    /// No flags.
    pub const NONE: SqeFlags = SqeFlags(0);
    /// The next entry starts only after this one succeeds; if this one fails (result < 0),
    /// the rest of the chain completes with `-ECANCELED`. (A short read is not a failure.)
    pub const LINK: SqeFlags = SqeFlags(1 << 0);
    /// Like `LINK`, but the chain continues whatever this entry's result.
    pub const HARDLINK: SqeFlags = SqeFlags(1 << 1);
    /// Start this entry only after every earlier entry has completed, and hold later
    /// entries until this one has.
    pub const DRAIN: SqeFlags = SqeFlags(1 << 2);
    /// Do not try to complete inline at submission; always run it as a task.
    pub const FORCE_ASYNC: SqeFlags = SqeFlags(1 << 3);
    /// Post no `Cqe` when the entry succeeds (failures are still posted).
    pub const SKIP_SUCCESS: SqeFlags = SqeFlags(1 << 4);
    /// Every defined flag.
    pub const ALL: SqeFlags = SqeFlags(0x1f);

    /// Validates raw flag bits.
    ///
    /// # Errors
    /// `Inval` if an undefined bit is set.
    pub const fn from_bits(bits: u8) -> Result<SqeFlags, Errno> {
        if bits & !SqeFlags::ALL.0 != 0 {
            Err(Errno::Inval)
        } else {
            Ok(SqeFlags(bits))
        }
    }

    /// The raw bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// True if every bit of `other` is set.
    pub const fn contains(self, other: SqeFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// Both sets of bits.
    pub const fn union(self, other: SqeFlags) -> SqeFlags {
        SqeFlags(self.0 | other.0)
    }
}

impl core::ops::BitOr for SqeFlags {
    type Output = SqeFlags;
    fn bitor(self, rhs: SqeFlags) -> SqeFlags {
        self.union(rhs)
    }
}

/// Flags of a `Cqe` (`Cqe::flags`). None are defined yet; the kernel writes 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CqeFlags(pub u32);

/// `Dup`: `off` holds the wanted new descriptor (`dup2`/`dup3`); it is closed first if open.
pub const DUP_TO: u32 = 1 << 0;
/// `Dup`: set close-on-exec on the new descriptor.
pub const DUP_CLOEXEC: u32 = 1 << 1;
/// `Wait`: return 0 at once if no child has exited.
pub const WAIT_NOHANG: u32 = 1;
/// `Getpid`: return the parent's pid instead.
pub const GETPID_PARENT: u32 = 1;
/// `Sleep`, `Timeout`, `LinkTimeout`: `addr` is an absolute `CLOCK_MONOTONIC` time in ns.
pub const TIMEOUT_ABS: u32 = 1;
/// `ClockGettime`: wall-clock time.
pub const CLOCK_REALTIME: i32 = 0;
/// `ClockGettime`: time since boot, never goes backwards.
pub const CLOCK_MONOTONIC: i32 = 1;

/// Signal: interrupt (Ctrl-C).
pub const SIGINT: u32 = 2;
/// Signal: kill, cannot be caught.
pub const SIGKILL: u32 = 9;
/// Signal: terminate.
pub const SIGTERM: u32 = 15;

/// `Mmap`/`Mprotect`: readable.
pub const PROT_READ: u32 = 1;
/// `Mmap`/`Mprotect`: writable.
pub const PROT_WRITE: u32 = 2;
/// `Mmap`/`Mprotect`: executable.
pub const PROT_EXEC: u32 = 4;
/// `Mmap`: shared mapping.
pub const MAP_SHARED: u32 = 0x01;
/// `Mmap`: private mapping.
pub const MAP_PRIVATE: u32 = 0x02;
/// `Mmap`: place the mapping exactly at the hint.
pub const MAP_FIXED: u32 = 0x10;
/// `Mmap`: not backed by a file (the only kind supported).
pub const MAP_ANONYMOUS: u32 = 0x20;

/// Longest path, in bytes, an `Sqe` may name.
pub const PATH_MAX: usize = 4096;
/// Largest port message, in bytes.
pub const PORT_MESSAGE_MAX: usize = 4096;
/// The first address above the user half: every user buffer must lie below it.
pub const USER_ADDRESS_END: u64 = 0x0000_8000_0000_0000;

// ------------------------------------------------------------------------------------------
// Argument structs
// ------------------------------------------------------------------------------------------

/// A user string or buffer: a pointer and a byte length (no NUL terminator needed).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct UserSlice {
    /// User address of the first byte.
    pub ptr: u64,
    /// Length in bytes.
    pub len: u64,
}

/// One descriptor handed to a spawned child: the child's `child_fd` refers to what the
/// parent's `parent_fd` refers to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FdMapEntry {
    /// The descriptor number in the child.
    pub child_fd: i32,
    /// The descriptor number in the parent.
    pub parent_fd: i32,
}

/// `Spawn`'s argument block (`Sqe::addr`, with `Sqe::len == size_of::<SpawnArgs>()`).
///
/// Strings are [`UserSlice`]s (pointer + length, no NUL needed). `argv` and `envp` point to
/// arrays of `UserSlice`. `fd_map` points to an array of [`FdMapEntry`]; an empty map means
/// the child gets the parent's descriptors 0, 1 and 2 (those that are open). At most
/// [`SPAWN_MAX_ARGS`] strings in each of argv and envp, at most [`SPAWN_MAX_STRING_BYTES`]
/// bytes of strings in total (`E2BIG` otherwise), at most [`SPAWN_MAX_FDS`] map entries.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SpawnArgs {
    /// The program's path.
    pub path: UserSlice,
    /// User address of the `UserSlice` array of arguments (`argv[0]` included).
    pub argv: u64,
    /// Number of arguments.
    pub argc: u64,
    /// User address of the `UserSlice` array of `KEY=value` strings.
    pub envp: u64,
    /// Number of environment strings.
    pub envc: u64,
    /// User address of the `FdMapEntry` array.
    pub fd_map: u64,
    /// Number of `FdMapEntry`s.
    pub fd_map_len: u64,
    /// `SPAWN_*` flags: [`SPAWN_FOREGROUND`], [`SPAWN_CPU`] with a CPU number
    /// ([`spawn_on_cpu`]); an unknown bit is `EINVAL`.
    pub flags: u64,
}

/// `SpawnArgs::flags`: run the child on one CPU, the one numbered in bits
/// [`SPAWN_CPU_SHIFT`]`..+16` (see [`spawn_on_cpu`]), instead of the kernel's round-robin
/// placement. `EINVAL` if no such CPU is online, or if those bits are set without this flag.
pub const SPAWN_CPU: u64 = 1 << 1;
/// Where [`SPAWN_CPU`]'s CPU number sits in `SpawnArgs::flags` (16 bits).
pub const SPAWN_CPU_SHIFT: u32 = 32;
/// The 16 bits of `SpawnArgs::flags` that hold [`SPAWN_CPU`]'s CPU number.
pub const SPAWN_CPU_FIELD: u64 = 0xffff << SPAWN_CPU_SHIFT;

/// The `SpawnArgs::flags` bits that place the child on CPU `cpu`.
pub const fn spawn_on_cpu(cpu: u16) -> u64 {
    SPAWN_CPU | (cpu as u64) << SPAWN_CPU_SHIFT
}

/// Most argv (and, separately, envp) strings a `Spawn` accepts.
pub const SPAWN_MAX_ARGS: usize = 1024;
/// Most bytes of argv plus envp strings a `Spawn` accepts.
pub const SPAWN_MAX_STRING_BYTES: usize = 128 * 1024;
/// Most fd map entries a `Spawn` accepts.
pub const SPAWN_MAX_FDS: usize = 64;
/// `SpawnArgs::flags`: the child is in the console's foreground: ^C typed on the
/// console terminates it as SIGINT would (wait status 2, a shell's `$?` 130). The
/// processes it spawns are in the foreground too. Interactive shells set it.
pub const SPAWN_FOREGROUND: u64 = 1 << 0;

/// A process's scheduling state in [`ProcInfo`].
pub mod proc_state {
    /// Running on a CPU right now.
    pub const RUNNING: u32 = 0;
    /// Ready to run.
    pub const RUNNABLE: u32 = 1;
    /// Waiting for something.
    pub const SLEEPING: u32 = 2;
    /// Exited, not yet waited for.
    pub const ZOMBIE: u32 = 3;
}

/// One process as `ProcList` reports it (for `ps`). 48 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProcInfo {
    /// Process id.
    pub pid: i32,
    /// Parent's process id (0 for none).
    pub ppid: i32,
    /// One of [`proc_state`].
    pub state: u32,
    /// The CPU that owns the process.
    pub cpu: u32,
    /// The program's name, NUL-padded (not necessarily NUL-terminated when 32 bytes long).
    pub name: [u8; 32],
}

impl ProcInfo {
    /// The record's 48 bytes in memory order.
    pub fn to_bytes(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out[0..4].copy_from_slice(&self.pid.to_le_bytes());
        out[4..8].copy_from_slice(&self.ppid.to_le_bytes());
        out[8..12].copy_from_slice(&self.state.to_le_bytes());
        out[12..16].copy_from_slice(&self.cpu.to_le_bytes());
        out[16..48].copy_from_slice(&self.name);
        out
    }

    /// Sets `name` from bytes, truncated to 32 and NUL-padded.
    pub fn set_name(&mut self, name: &[u8]) {
        let n = name.len().min(self.name.len());
        self.name = [0; 32];
        self.name[..n].copy_from_slice(&name[..n]);
    }
}

/// What `SysInfo` reports: the kernel's memory and process counters, for leak checks and
/// tools. 64 bytes.
///
/// The heap counters are exact whichever CPU allocated or freed (an object freed on another
/// CPU than its owner's counts as freed at once), so two snapshots taken with nothing
/// running in between are equal when nothing leaked. Frames are split into those the heap
/// holds (slabs kept as caches included), those the shared-text cache holds (programs'
/// read-only segments, kept for the next process that loads them) and all others (page
/// tables, user pages, ring pages, kernel stacks): the last figure does not move when a
/// cache grows or shrinks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SysInfo {
    /// Frames usable at boot.
    pub frames_usable: u64,
    /// Frames free now.
    pub frames_free: u64,
    /// Frames in use outside the kernel heap and the shared-text cache:
    /// `usable - free - heap_pages - text cache`.
    pub frames_other: u64,
    /// Pages the kernel heap holds (slabs, large allocations, the early heap).
    pub heap_pages: u64,
    /// Heap allocations live (slab objects plus large allocations).
    pub heap_objects: u64,
    /// Bytes of those (whole slab objects, whole pages of large allocations).
    pub heap_bytes: u64,
    /// Processes in the process table (zombies included).
    pub processes: u32,
    /// CPUs online.
    pub cpus: u32,
    /// Monotonic time since boot, ns.
    pub uptime_ns: u64,
}

impl SysInfo {
    /// The record's 64 bytes in memory order.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        let words = [
            self.frames_usable,
            self.frames_free,
            self.frames_other,
            self.heap_pages,
            self.heap_objects,
            self.heap_bytes,
        ];
        for (i, w) in words.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        out[48..52].copy_from_slice(&self.processes.to_le_bytes());
        out[52..56].copy_from_slice(&self.cpus.to_le_bytes());
        out[56..64].copy_from_slice(&self.uptime_ns.to_le_bytes());
        out
    }
}

/// `RingSetup`: poll the SQ from a kernel task (no `RingEnter` needed to submit).
pub const RING_SETUP_POLLED: u32 = 1 << 0;
/// Every defined `RingParams::flags` bit.
pub const RING_SETUP_ALL: u32 = RING_SETUP_POLLED;
/// Largest number of entries in either queue.
pub const RING_MAX_ENTRIES: u32 = 4096;

/// `RingSetup`'s argument block, read and written back (`Sqe::addr`, with
/// `Sqe::len == size_of::<RingParams>()`). 64 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RingParams {
    /// In: SQ entries (power of two, 1..=4096).
    pub sq_entries: u32,
    /// In: CQ entries (power of two, `>= sq_entries`, <= 4096), or 0 for `2 * sq_entries`
    /// (capped at 4096). Out: the actual number.
    pub cq_entries: u32,
    /// In: `RING_SETUP_*` bits.
    pub flags: u32,
    /// In: polled mode only: idle time in microseconds before the polling task sleeps (0 =
    /// a kernel default).
    pub sq_idle_us: u32,
    /// Out: user address of the mapped region (page-aligned).
    pub region_addr: u64,
    /// Out: region length in bytes (a multiple of 4096).
    pub region_len: u64,
    /// Out: offset of the SQ header in the region (see [`ring_header`]).
    pub sq_header: u32,
    /// Out: offset of the CQ header.
    pub cq_header: u32,
    /// Out: offset of the `Sqe` array.
    pub sqes: u32,
    /// Out: offset of the `Cqe` array.
    pub cqes: u32,
    /// Reserved; must be zero in, zero out.
    pub reserved: [u32; 4],
}

/// Byte offsets of the `u32` fields inside an SQ or CQ header (each header occupies its own
/// 64-byte cache line). Who writes each field is noted; the other side only reads it.
pub mod ring_header {
    /// Consumer index. SQ: written by the kernel. CQ: written by userland.
    pub const HEAD: u32 = 0;
    /// Producer index. SQ: written by userland. CQ: written by the kernel.
    pub const TAIL: u32 = 4;
    /// `entries - 1`. Written once by the kernel at setup.
    pub const MASK: u32 = 8;
    /// Number of slots. Written once by the kernel at setup.
    pub const ENTRIES: u32 = 12;
    /// `SQ_*` / `CQ_*` flag bits. Written by the kernel.
    pub const FLAGS: u32 = 16;
    /// SQ: entries consumed but rejected before decoding (none today; reserved counter).
    /// Written by the kernel.
    pub const DROPPED: u32 = 20;
    /// CQ: how many completions went through the overflow list (cumulative). Written by
    /// the kernel.
    pub const OVERFLOW: u32 = 24;
    /// Size of one header.
    pub const SIZE: u32 = 64;
}

/// SQ header flag: the polling task is asleep; make a `RingEnter` with `SQ_WAKEUP`.
pub const SQ_NEED_WAKEUP: u32 = 1 << 0;
/// SQ header flag: submission is paused because completions are waiting for CQ space.
pub const SQ_CQ_FULL: u32 = 1 << 1;
/// SQ header flag: the kernel found the header corrupt (e.g. `tail - head > entries`) and
/// stopped consuming; the ring is unusable.
pub const SQ_CORRUPT: u32 = 1 << 2;
/// CQ header flag: completions are waiting in the kernel's overflow list.
pub const CQ_OVERFLOW: u32 = 1 << 0;

/// Flags of `RingEnter` (`Sqe::op_flags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct RingEnterFlags(u32);

impl RingEnterFlags {
    /// No flags: submit only.
    pub const NONE: RingEnterFlags = RingEnterFlags(0);
    /// Wait until `min_complete` completions are available in the CQ (or the timeout).
    pub const GETEVENTS: RingEnterFlags = RingEnterFlags(1 << 0);
    /// Polled mode: wake the polling task.
    pub const SQ_WAKEUP: RingEnterFlags = RingEnterFlags(1 << 1);
    /// Polled mode: wait until the SQ has room (the poller consumed something).
    pub const SQ_WAIT: RingEnterFlags = RingEnterFlags(1 << 2);
    /// Every defined flag.
    pub const ALL: RingEnterFlags = RingEnterFlags(0x7);

    /// Validates raw flag bits.
    ///
    /// # Errors
    /// `Inval` if an undefined bit is set.
    pub const fn from_bits(bits: u32) -> Result<RingEnterFlags, Errno> {
        if bits & !RingEnterFlags::ALL.0 != 0 {
            Err(Errno::Inval)
        } else {
            Ok(RingEnterFlags(bits))
        }
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// True if every bit of `other` is set.
    pub const fn contains(self, other: RingEnterFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl core::ops::BitOr for RingEnterFlags {
    type Output = RingEnterFlags;
    fn bitor(self, rhs: RingEnterFlags) -> RingEnterFlags {
        RingEnterFlags(self.0 | rhs.0)
    }
}

// ------------------------------------------------------------------------------------------
// Region layout
// ------------------------------------------------------------------------------------------

/// Where everything lies in a ring region: SQ header at 0, CQ header at 64 (separate cache
/// lines), the `Sqe` array at 128, the `Cqe` array after it (64-byte aligned), the whole
/// rounded up to a multiple of 4096 bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RingLayout {
    /// SQ slots (power of two).
    pub sq_entries: u32,
    /// CQ slots (power of two).
    pub cq_entries: u32,
    /// Offset of the SQ header.
    pub sq_header: u32,
    /// Offset of the CQ header.
    pub cq_header: u32,
    /// Offset of the `Sqe` array.
    pub sqes: u32,
    /// Offset of the `Cqe` array.
    pub cqes: u32,
    /// Region size in bytes (a multiple of 4096).
    pub region_len: u32,
}

impl RingLayout {
    /// Computes the layout. `cq_entries == 0` means `2 * sq_entries` (at most 4096).
    ///
    /// # Errors
    /// `Inval` if an entry count is zero (SQ), not a power of two, above
    /// [`RING_MAX_ENTRIES`], or the CQ is smaller than the SQ.
    pub const fn new(sq_entries: u32, cq_entries: u32) -> Result<RingLayout, Errno> {
        let cq_entries = if cq_entries == 0 {
            let d = sq_entries.saturating_mul(2);
            if d > RING_MAX_ENTRIES {
                RING_MAX_ENTRIES
            } else {
                d
            }
        } else {
            cq_entries
        };
        if !sq_entries.is_power_of_two()
            || !cq_entries.is_power_of_two()
            || sq_entries > RING_MAX_ENTRIES
            || cq_entries > RING_MAX_ENTRIES
            || cq_entries < sq_entries
        {
            return Err(Errno::Inval);
        }
        let sq_header = 0;
        let cq_header = ring_header::SIZE;
        let sqes = 2 * ring_header::SIZE;
        let cqes = sqes + sq_entries * SQE_SIZE as u32; // multiple of 64 already
        let end = cqes + cq_entries * CQE_SIZE as u32;
        let region_len = end.div_ceil(4096) * 4096;
        Ok(RingLayout {
            sq_entries,
            cq_entries,
            sq_header,
            cq_header,
            sqes,
            cqes,
            region_len,
        })
    }

    /// Offset of SQ slot `index & (sq_entries - 1)`.
    pub const fn sqe_offset(&self, index: u32) -> u32 {
        self.sqes + (index & (self.sq_entries - 1)) * SQE_SIZE as u32
    }

    /// Offset of CQ slot `index & (cq_entries - 1)`.
    pub const fn cqe_offset(&self, index: u32) -> u32 {
        self.cqes + (index & (self.cq_entries - 1)) * CQE_SIZE as u32
    }

    /// Fills the output fields of `params` (everything but `region_addr`).
    pub fn write_params(&self, params: &mut RingParams) {
        params.sq_entries = self.sq_entries;
        params.cq_entries = self.cq_entries;
        params.region_len = self.region_len as u64;
        params.sq_header = self.sq_header;
        params.cq_header = self.cq_header;
        params.sqes = self.sqes;
        params.cqes = self.cqes;
        params.reserved = [0; 4];
    }
}

#[cfg(test)]
mod tests {
    use core::mem::{offset_of, size_of};

    use super::*;

    #[test]
    fn sqe_layout_is_64_bytes_with_fixed_offsets() {
        assert_eq!(size_of::<Sqe>(), SQE_SIZE);
        assert_eq!(offset_of!(Sqe, opcode), sqe_offset::OPCODE);
        assert_eq!(offset_of!(Sqe, flags), sqe_offset::FLAGS);
        assert_eq!(offset_of!(Sqe, ioprio), sqe_offset::IOPRIO);
        assert_eq!(offset_of!(Sqe, fd), sqe_offset::FD);
        assert_eq!(offset_of!(Sqe, off), sqe_offset::OFF);
        assert_eq!(offset_of!(Sqe, addr), sqe_offset::ADDR);
        assert_eq!(offset_of!(Sqe, len), sqe_offset::LEN);
        assert_eq!(offset_of!(Sqe, op_flags), sqe_offset::OP_FLAGS);
        assert_eq!(offset_of!(Sqe, user_data), sqe_offset::USER_DATA);
        assert_eq!(offset_of!(Sqe, addr2), sqe_offset::ADDR2);
        assert_eq!(offset_of!(Sqe, addr3), sqe_offset::ADDR3);
        assert_eq!(offset_of!(Sqe, aux), sqe_offset::AUX);
        assert_eq!(offset_of!(Sqe, reserved), sqe_offset::RESERVED);
        assert_eq!(core::mem::align_of::<Sqe>(), 8);
    }

    #[test]
    fn trap_register_form_round_trips() {
        let s = Sqe {
            opcode: 7,
            flags: 0x81,
            ioprio: 0,
            fd: -3,
            off: 0x1122_3344_5566_7788,
            addr: 0xdead_beef_0000,
            len: 4096,
            op_flags: 0x8000_0001,
            user_data: 99,
            addr2: 0x7000_0000,
            addr3: 0,
            aux: 0xffff_fffe,
            reserved: 5,
        };
        let r = s.to_trap_registers().unwrap();
        let back = Sqe::from_trap_registers(r);
        // user_data is not carried; everything else is.
        assert_eq!(back, Sqe { user_data: 0, ..s });
        assert_eq!(r[0] as u8, 7);
        assert_eq!((r[0] >> 32) as i32, -3);
        assert_eq!(
            Sqe { addr3: 1, ..s }.to_trap_registers(),
            None,
            "addr3 needs the memory form"
        );
    }

    #[test]
    fn cqe_layout_is_16_bytes() {
        assert_eq!(size_of::<Cqe>(), CQE_SIZE);
        assert_eq!(offset_of!(Cqe, user_data), 0);
        assert_eq!(offset_of!(Cqe, res), 8);
        assert_eq!(offset_of!(Cqe, flags), 12);
    }

    #[test]
    fn argument_struct_layouts() {
        assert_eq!(size_of::<UserSlice>(), 16);
        assert_eq!(size_of::<FdMapEntry>(), 8);
        assert_eq!(offset_of!(FdMapEntry, parent_fd), 4);
        assert_eq!(size_of::<SpawnArgs>(), 72);
        assert_eq!(offset_of!(SpawnArgs, path), 0);
        assert_eq!(offset_of!(SpawnArgs, argv), 16);
        assert_eq!(offset_of!(SpawnArgs, argc), 24);
        assert_eq!(offset_of!(SpawnArgs, envp), 32);
        assert_eq!(offset_of!(SpawnArgs, envc), 40);
        assert_eq!(offset_of!(SpawnArgs, fd_map), 48);
        assert_eq!(offset_of!(SpawnArgs, fd_map_len), 56);
        assert_eq!(offset_of!(SpawnArgs, flags), 64);
        assert_eq!(size_of::<ProcInfo>(), 48);
        assert_eq!(offset_of!(ProcInfo, ppid), 4);
        assert_eq!(offset_of!(ProcInfo, state), 8);
        assert_eq!(offset_of!(ProcInfo, cpu), 12);
        assert_eq!(offset_of!(ProcInfo, name), 16);
        assert_eq!(size_of::<SysInfo>(), 64);
        assert_eq!(offset_of!(SysInfo, frames_free), 8);
        assert_eq!(offset_of!(SysInfo, frames_other), 16);
        assert_eq!(offset_of!(SysInfo, heap_pages), 24);
        assert_eq!(offset_of!(SysInfo, heap_objects), 32);
        assert_eq!(offset_of!(SysInfo, heap_bytes), 40);
        assert_eq!(offset_of!(SysInfo, processes), 48);
        assert_eq!(offset_of!(SysInfo, cpus), 52);
        assert_eq!(offset_of!(SysInfo, uptime_ns), 56);
        assert_eq!(size_of::<RingParams>(), 64);
        assert_eq!(offset_of!(RingParams, cq_entries), 4);
        assert_eq!(offset_of!(RingParams, flags), 8);
        assert_eq!(offset_of!(RingParams, sq_idle_us), 12);
        assert_eq!(offset_of!(RingParams, region_addr), 16);
        assert_eq!(offset_of!(RingParams, region_len), 24);
        assert_eq!(offset_of!(RingParams, sq_header), 32);
        assert_eq!(offset_of!(RingParams, cq_header), 36);
        assert_eq!(offset_of!(RingParams, sqes), 40);
        assert_eq!(offset_of!(RingParams, cqes), 44);
        assert_eq!(offset_of!(RingParams, reserved), 48);
    }

    #[test]
    fn sys_info_bytes_follow_the_field_offsets() {
        let info = SysInfo {
            frames_usable: 1,
            frames_free: 2,
            frames_other: 3,
            heap_pages: 4,
            heap_objects: 5,
            heap_bytes: 6,
            processes: 7,
            cpus: 8,
            uptime_ns: 9,
        };
        let b = info.to_bytes();
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        assert_eq!(u64_at(offset_of!(SysInfo, frames_usable)), 1);
        assert_eq!(u64_at(offset_of!(SysInfo, frames_free)), 2);
        assert_eq!(u64_at(offset_of!(SysInfo, frames_other)), 3);
        assert_eq!(u64_at(offset_of!(SysInfo, heap_pages)), 4);
        assert_eq!(u64_at(offset_of!(SysInfo, heap_objects)), 5);
        assert_eq!(u64_at(offset_of!(SysInfo, heap_bytes)), 6);
        assert_eq!(u32_at(offset_of!(SysInfo, processes)), 7);
        assert_eq!(u32_at(offset_of!(SysInfo, cpus)), 8);
        assert_eq!(u64_at(offset_of!(SysInfo, uptime_ns)), 9);
    }

    #[test]
    fn sqe_words_and_bytes_round_trip() {
        let s = Sqe {
            opcode: Opcode::Renameat as u8,
            flags: 0x13,
            ioprio: 0xbeef,
            fd: -100,
            off: 0x0102_0304_0506_0708,
            addr: 0x1111_2222_3333_4444,
            len: 0xdead_beef,
            op_flags: 0x8000_0001,
            user_data: u64::MAX - 7,
            addr2: 42,
            addr3: 43,
            aux: 0xffff_fffe,
            reserved: 0x7fff_ffff,
        };
        assert_eq!(Sqe::from_words(s.to_words()), s);
        let b = s.to_bytes();
        assert_eq!(Sqe::from_bytes(&b), s);
        // Byte positions agree with the field offsets.
        assert_eq!(b[sqe_offset::OPCODE], s.opcode);
        assert_eq!(b[sqe_offset::FLAGS], s.flags);
        assert_eq!(&b[sqe_offset::FD..sqe_offset::FD + 4], &s.fd.to_le_bytes());
        assert_eq!(
            &b[sqe_offset::LEN..sqe_offset::LEN + 4],
            &s.len.to_le_bytes()
        );
        assert_eq!(
            &b[sqe_offset::AUX..sqe_offset::AUX + 4],
            &s.aux.to_le_bytes()
        );
        assert_eq!(
            &b[sqe_offset::USER_DATA..sqe_offset::USER_DATA + 8],
            &s.user_data.to_le_bytes()
        );
        // Any word pattern decodes and re-encodes identically.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..1000 {
            let mut w = [0u64; 8];
            for v in w.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *v = x;
            }
            assert_eq!(Sqe::from_words(w).to_words(), w);
        }
    }

    #[test]
    fn cqe_round_trips_and_result() {
        let c = Cqe {
            user_data: 7,
            res: -2,
            flags: 3,
        };
        assert_eq!(Cqe::from_words(c.to_words()), c);
        assert_eq!(c.result(), Err(Errno::NoEnt));
        let ok = Cqe {
            user_data: 0,
            res: 5,
            flags: 0,
        };
        assert_eq!(ok.result(), Ok(5));
    }

    #[test]
    fn opcodes_round_trip_and_are_dense() {
        for (i, &op) in Opcode::ALL.iter().enumerate() {
            assert_eq!(op as u8 as usize, i);
            assert_eq!(Opcode::from_u8(op as u8), Some(op));
        }
        assert_eq!(Opcode::from_u8(Opcode::ALL.len() as u8), None);
        assert_eq!(Opcode::from_u8(255), None);
        assert_eq!(Sqe::new(Opcode::Getcwd).opcode, Opcode::Getcwd as u8);
    }

    #[test]
    fn flags_reject_unknown_bits() {
        assert_eq!(SqeFlags::from_bits(0x20), Err(Errno::Inval));
        let f = SqeFlags::from_bits(0x1f).unwrap();
        assert!(f.contains(SqeFlags::LINK | SqeFlags::SKIP_SUCCESS));
        assert_eq!(RingEnterFlags::from_bits(8), Err(Errno::Inval));
        assert!(
            RingEnterFlags::from_bits(3)
                .unwrap()
                .contains(RingEnterFlags::SQ_WAKEUP)
        );
    }

    #[test]
    fn ring_layout_offsets() {
        let l = RingLayout::new(32, 0).unwrap();
        assert_eq!(l.cq_entries, 64);
        assert_eq!(l.sq_header, 0);
        assert_eq!(l.cq_header, 64);
        assert_eq!(l.sqes, 128);
        assert_eq!(l.cqes, 128 + 32 * 64);
        assert_eq!(l.region_len, 4096);
        assert_eq!(l.sqe_offset(33), 128 + 64);
        assert_eq!(l.cqe_offset(65), l.cqes + 16);
        let big = RingLayout::new(4096, 0).unwrap();
        assert_eq!(big.cq_entries, 4096);
        assert_eq!(big.region_len % 4096, 0);
        assert!(big.region_len >= 128 + 4096 * 64 + 4096 * 16);
        let mut p = RingParams::default();
        big.write_params(&mut p);
        assert_eq!(p.cqes, big.cqes);
        assert_eq!(p.region_len, big.region_len as u64);
    }

    #[test]
    fn ring_layout_rejects_bad_sizes() {
        assert_eq!(RingLayout::new(0, 0), Err(Errno::Inval));
        assert_eq!(RingLayout::new(3, 0), Err(Errno::Inval));
        assert_eq!(RingLayout::new(8192, 0), Err(Errno::Inval));
        assert_eq!(RingLayout::new(16, 8), Err(Errno::Inval));
        assert_eq!(RingLayout::new(16, 24), Err(Errno::Inval));
        assert_eq!(RingLayout::new(16, 8192), Err(Errno::Inval));
        assert_eq!(RingLayout::new(u32::MAX, 0), Err(Errno::Inval));
        assert!(RingLayout::new(1, 1).is_ok());
    }

    #[test]
    fn header_fields_fit_one_cache_line() {
        use ring_header::*;
        for f in [HEAD, TAIL, MASK, ENTRIES, FLAGS, DROPPED, OVERFLOW] {
            assert!(f + 4 <= SIZE);
            assert_eq!(f % 4, 0);
        }
    }
}
