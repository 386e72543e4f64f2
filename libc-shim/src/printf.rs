// SPDX-License-Identifier: MIT OR Apache-2.0
//! The formatting engine of the C `printf` family, in safe code.
//!
//! Supported: conversions `d i u x X o c s p %`, flags `-` (left-justify), `0` (zero-pad),
//! `+` and space (sign), `#` (`0x` prefix for `x`), width and precision as digits or `*`,
//! length modifiers `hh h l ll z j t` (they only choose how many bits of the argument count).
//! No floating point: `%f` and friends print `?`. Where arguments come from is the
//! [`ArgSource`] trait, so the C entry points in `ffi::printf` read registers and the
//! stack while the tests here feed a list.

/// Supplies the variadic arguments in order.
pub trait ArgSource {
    /// The next integer-class argument (ints, longs, pointers, chars), as 64 raw bits.
    fn next_word(&mut self) -> u64;
    /// The bytes of the NUL-terminated string at the next argument (`None` for NULL).
    /// `max` bounds how far to look (the precision), so `%.3s` need not be NUL-terminated.
    fn next_str(&mut self, max: Option<usize>) -> Option<&[u8]>;
}

/// Receives the formatted bytes.
pub trait Sink {
    /// Appends `bytes`.
    fn put(&mut self, bytes: &[u8]);
}

/// A sink writing into a fixed buffer with C `snprintf` truncation: at most `len - 1`
/// bytes, then a NUL (when `len > 0`); the count of all bytes is kept separately.
pub struct BufSink<'a> {
    buf: &'a mut [u8],
    used: usize,
}

impl<'a> BufSink<'a> {
    /// A sink over `buf`.
    pub fn new(buf: &'a mut [u8]) -> BufSink<'a> {
        BufSink { buf, used: 0 }
    }

    /// Writes the terminating NUL (if there is room for any byte at all).
    pub fn terminate(self) {
        if !self.buf.is_empty() {
            let at = self.used.min(self.buf.len() - 1);
            self.buf[at] = 0;
        }
    }
}

impl Sink for BufSink<'_> {
    fn put(&mut self, bytes: &[u8]) {
        let room = self.buf.len().saturating_sub(1).saturating_sub(self.used);
        let n = room.min(bytes.len());
        self.buf[self.used..self.used + n].copy_from_slice(&bytes[..n]);
        self.used += n;
    }
}

/// Counts bytes while passing them to an inner sink.
struct Counting<'s, S: Sink + ?Sized> {
    inner: &'s mut S,
    count: usize,
}

impl<S: Sink + ?Sized> Counting<'_, S> {
    fn put(&mut self, bytes: &[u8]) {
        self.count += bytes.len();
        self.inner.put(bytes);
    }

    fn pad(&mut self, byte: u8, n: usize) {
        let chunk = [byte; 16];
        let mut left = n;
        while left > 0 {
            let k = left.min(chunk.len());
            self.put(&chunk[..k]);
            left -= k;
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: usize,
    precision: Option<usize>,
    /// Bits of the argument that count: 8, 16, 32 or 64.
    bits: u32,
}

/// Formats `format` (without its NUL) with arguments from `args` into `out`, and returns
/// the number of bytes produced (what C `printf` returns).
pub fn format<A: ArgSource + ?Sized, S: Sink + ?Sized>(
    format: &[u8],
    args: &mut A,
    out: &mut S,
) -> usize {
    let mut out = Counting {
        inner: out,
        count: 0,
    };
    let mut i = 0;
    while i < format.len() {
        let start = i;
        while i < format.len() && format[i] != b'%' {
            i += 1;
        }
        if i > start {
            out.put(&format[start..i]);
        }
        if i >= format.len() {
            break;
        }
        i += 1; // the '%'
        let mut spec = Spec {
            bits: 32,
            ..Spec::default()
        };
        while let Some(&c) = format.get(i) {
            match c {
                b'-' => spec.left = true,
                b'0' => spec.zero = true,
                b'+' => spec.plus = true,
                b' ' => spec.space = true,
                b'#' => spec.alt = true,
                _ => break,
            }
            i += 1;
        }
        if format.get(i) == Some(&b'*') {
            i += 1;
            let w = args.next_word() as u32 as i32;
            if w < 0 {
                spec.left = true;
            }
            spec.width = w.unsigned_abs() as usize;
        } else {
            spec.width = digits(format, &mut i);
        }
        if format.get(i) == Some(&b'.') {
            i += 1;
            if format.get(i) == Some(&b'*') {
                i += 1;
                let p = args.next_word() as u32 as i32;
                spec.precision = (p >= 0).then_some(p as usize);
            } else {
                spec.precision = Some(digits(format, &mut i));
            }
        }
        loop {
            match format.get(i) {
                Some(b'h') => spec.bits = if spec.bits == 16 { 8 } else { 16 },
                Some(b'l' | b'z' | b'j' | b't' | b'q' | b'L') => spec.bits = 64,
                _ => break,
            }
            i += 1;
        }
        let Some(&conv) = format.get(i) else {
            out.put(b"%");
            break;
        };
        i += 1;
        match conv {
            b'd' | b'i' => {
                let raw = args.next_word();
                let v = sign_extend(raw, spec.bits);
                let sign: &[u8] = if v < 0 {
                    b"-"
                } else if spec.plus {
                    b"+"
                } else if spec.space {
                    b" "
                } else {
                    b""
                };
                number(&mut out, &spec, sign, v.unsigned_abs(), 10, false);
            }
            b'u' => number(
                &mut out,
                &spec,
                b"",
                truncate(args.next_word(), spec.bits),
                10,
                false,
            ),
            b'o' => number(
                &mut out,
                &spec,
                b"",
                truncate(args.next_word(), spec.bits),
                8,
                false,
            ),
            b'x' | b'X' => {
                let v = truncate(args.next_word(), spec.bits);
                let prefix: &[u8] = match (spec.alt && v != 0, conv) {
                    (true, b'x') => b"0x",
                    (true, _) => b"0X",
                    _ => b"",
                };
                number(&mut out, &spec, prefix, v, 16, conv == b'X');
            }
            b'p' => {
                let v = args.next_word();
                if v == 0 {
                    padded(&mut out, &spec, b"(nil)");
                } else {
                    spec.precision = None;
                    number(&mut out, &spec, b"0x", v, 16, false);
                }
            }
            b'c' => {
                let c = [args.next_word() as u8];
                padded(&mut out, &spec, &c);
            }
            b's' => {
                let precision = spec.precision;
                let text = args.next_str(precision);
                let text = text.unwrap_or(b"(null)");
                let text = match precision {
                    Some(p) if p < text.len() => &text[..p],
                    _ => text,
                };
                // `padded` needs `out` mutably while `text` borrows `args`: disjoint.
                padded(&mut out, &spec, text);
            }
            b'%' => out.put(b"%"),
            b'f' | b'F' | b'e' | b'E' | b'g' | b'G' | b'a' | b'A' => out.put(b"?"),
            other => {
                out.put(b"%");
                out.put(&[other]);
            }
        }
    }
    out.count
}

fn digits(format: &[u8], i: &mut usize) -> usize {
    let mut n: usize = 0;
    while let Some(d) = format.get(*i).filter(|c| c.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add((d - b'0') as usize);
        *i += 1;
    }
    n
}

fn truncate(raw: u64, bits: u32) -> u64 {
    if bits >= 64 {
        raw
    } else {
        raw & ((1u64 << bits) - 1)
    }
}

fn sign_extend(raw: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((raw << shift) as i64) >> shift
}

fn padded<S: Sink + ?Sized>(out: &mut Counting<'_, S>, spec: &Spec, text: &[u8]) {
    let pad = spec.width.saturating_sub(text.len());
    if !spec.left {
        out.pad(b' ', pad);
    }
    out.put(text);
    if spec.left {
        out.pad(b' ', pad);
    }
}

fn number<S: Sink + ?Sized>(
    out: &mut Counting<'_, S>,
    spec: &Spec,
    prefix: &[u8],
    mut v: u64,
    base: u64,
    upper: bool,
) {
    let table: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut buf = [0u8; 64];
    let mut n = 0;
    // C: precision 0 with value 0 prints no digits.
    if !(v == 0 && spec.precision == Some(0)) {
        loop {
            buf[buf.len() - 1 - n] = table[(v % base) as usize];
            n += 1;
            v /= base;
            if v == 0 {
                break;
            }
        }
    }
    let digits = &buf[buf.len() - n..];
    let min_digits = spec.precision.unwrap_or(0).min(64);
    let zeros = min_digits.saturating_sub(n);
    let body = prefix.len() + zeros + n;
    let pad = spec.width.saturating_sub(body);
    // The 0 flag is ignored with `-` or with a precision, as in C.
    let zero_pad = spec.zero && !spec.left && spec.precision.is_none();
    if !spec.left && !zero_pad {
        out.pad(b' ', pad);
    }
    out.put(prefix);
    if zero_pad {
        out.pad(b'0', pad);
    }
    out.pad(b'0', zeros);
    out.put(digits);
    if spec.left {
        out.pad(b' ', pad);
    }
}

#[cfg(test)]
mod tests {
    use alloc::string::String;
    use alloc::vec::Vec;

    use super::*;

    enum Arg {
        W(u64),
        S(Option<&'static str>),
    }

    struct List(Vec<Arg>, usize);

    impl ArgSource for List {
        fn next_word(&mut self) -> u64 {
            self.1 += 1;
            match self.0.get(self.1 - 1) {
                Some(Arg::W(w)) => *w,
                _ => panic!("argument {} is not a word", self.1 - 1),
            }
        }
        fn next_str(&mut self, _max: Option<usize>) -> Option<&[u8]> {
            self.1 += 1;
            match self.0.get(self.1 - 1) {
                Some(Arg::S(s)) => s.map(str::as_bytes),
                _ => panic!("argument {} is not a string", self.1 - 1),
            }
        }
    }

    impl Sink for Vec<u8> {
        fn put(&mut self, bytes: &[u8]) {
            self.extend_from_slice(bytes);
        }
    }

    fn f(fmt: &str, args: Vec<Arg>) -> String {
        let mut out = Vec::new();
        let mut list = List(args, 0);
        let n = format(fmt.as_bytes(), &mut list, &mut out);
        assert_eq!(n, out.len());
        assert_eq!(list.1, list.0.len(), "not every argument was used");
        String::from_utf8(out).unwrap()
    }

    use Arg::{S, W};

    #[test]
    fn plain_text_and_percent() {
        assert_eq!(f("hello 100%% sure", vec![]), "hello 100% sure");
    }

    #[test]
    fn signed_conversions_sign_extend_by_length() {
        assert_eq!(f("%d", vec![W(-5i32 as u32 as u64)]), "-5");
        assert_eq!(f("%i", vec![W(42)]), "42");
        assert_eq!(f("%ld", vec![W(-5i64 as u64)]), "-5");
        assert_eq!(f("%lld", vec![W(i64::MIN as u64)]), "-9223372036854775808");
        assert_eq!(f("%d", vec![W(0xffff_ffff_0000_0007)]), "7");
        assert_eq!(f("%hhd", vec![W(0xff)]), "-1");
        assert_eq!(f("%+d % d", vec![W(3), W(3)]), "+3  3");
    }

    #[test]
    fn unsigned_hex_octal() {
        assert_eq!(f("%u", vec![W(u32::MAX as u64)]), "4294967295");
        assert_eq!(f("%lu", vec![W(u64::MAX)]), "18446744073709551615");
        assert_eq!(f("%zu", vec![W(12345)]), "12345");
        assert_eq!(f("%x %X", vec![W(0xbeef), W(0xbeef)]), "beef BEEF");
        assert_eq!(f("%#x %o", vec![W(255), W(8)]), "0xff 10");
        assert_eq!(f("%x", vec![W(0x1_0000_0001)]), "1");
    }

    #[test]
    fn width_zero_pad_and_left_justify() {
        assert_eq!(f("[%5d]", vec![W(42)]), "[   42]");
        assert_eq!(f("[%05d]", vec![W(42)]), "[00042]");
        assert_eq!(f("[%05d]", vec![W(-42i32 as u32 as u64)]), "[-0042]");
        assert_eq!(f("[%-5d]", vec![W(42)]), "[42   ]");
        assert_eq!(f("[%08x]", vec![W(0xabc)]), "[00000abc]");
        assert_eq!(f("[%*d]", vec![W(4), W(7)]), "[   7]");
        assert_eq!(f("[%.3d]", vec![W(7)]), "[007]");
        assert_eq!(f("[%.0d]", vec![W(0)]), "[]");
    }

    #[test]
    fn strings_chars_pointers() {
        assert_eq!(f("%s!", vec![S(Some("hi"))]), "hi!");
        assert_eq!(
            f("[%5s][%-4s]", vec![S(Some("ab")), S(Some("c"))]),
            "[   ab][c   ]"
        );
        assert_eq!(f("%.2s", vec![S(Some("abcdef"))]), "ab");
        assert_eq!(f("%s", vec![S(None)]), "(null)");
        assert_eq!(f("%c%c", vec![W(b'o' as u64), W(b'k' as u64)]), "ok");
        assert_eq!(f("%p", vec![W(0x400000)]), "0x400000");
        assert_eq!(f("%p", vec![W(0)]), "(nil)");
    }

    #[test]
    fn unknown_and_truncated_conversions_are_printed_literally() {
        assert_eq!(f("%y", vec![]), "%y");
        assert_eq!(f("50%", vec![]), "50%");
        assert_eq!(f("%f", vec![]), "?");
    }

    #[test]
    fn buf_sink_truncates_like_snprintf() {
        let mut buf = [0xffu8; 6];
        let mut sink = BufSink::new(&mut buf);
        let n = format(b"hello world", &mut List(vec![], 0), &mut sink);
        sink.terminate();
        assert_eq!(n, 11);
        assert_eq!(&buf, b"hello\0");
        let mut empty: [u8; 0] = [];
        let mut sink = BufSink::new(&mut empty);
        assert_eq!(format(b"abc", &mut List(vec![], 0), &mut sink), 3);
        sink.terminate();
    }
}
