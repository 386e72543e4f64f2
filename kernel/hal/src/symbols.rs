//! The kernel's embedded symbol table: encoding (used by xtask) and lookup
//! (used by the panic and exception reports).
//!
//! xtask links the kernel, collects its function symbols from the ELF,
//! encodes them with [`encode`] and writes the blob into the reserved
//! `.ksyms` section of the image, so symbol addresses do not move. Layout,
//! all little endian:
//!
//! ```text
//! magic "DSYM" | count: u32 | strtab_len: u32 | reserved: u32
//! count x { addr: u64, size: u32, name_off: u32 }   sorted by addr
//! strtab: names, not NUL-terminated, addressed by (name_off, next name_off)
//! ```

/// Bytes reserved for the table inside the kernel image.
pub const CAPACITY: usize = 512 * 1024;

const MAGIC: &[u8; 4] = b"DSYM";
const HEADER: usize = 16;
const ENTRY: usize = 16;

/// One function symbol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Symbol<'a> {
    pub addr: u64,
    pub size: u32,
    pub name: &'a str,
}

/// Why [`encode`] failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The table needs this many bytes, more than the output holds.
    TooLarge { needed: usize },
}

/// Encodes `symbols` (any order) into `out`; returns the bytes written.
///
/// # Errors
/// [`EncodeError::TooLarge`] if `out` is too small; nothing useful is written.
pub fn encode(symbols: &mut [Symbol<'_>], out: &mut [u8]) -> Result<usize, EncodeError> {
    symbols.sort_unstable_by_key(|s| s.addr);
    let names: usize = symbols.iter().map(|s| s.name.len()).sum();
    let needed = HEADER + symbols.len() * ENTRY + names;
    if needed > out.len() || names > u32::MAX as usize || symbols.len() > u32::MAX as usize {
        return Err(EncodeError::TooLarge { needed });
    }
    out[..4].copy_from_slice(MAGIC);
    out[4..8].copy_from_slice(&(symbols.len() as u32).to_le_bytes());
    out[8..12].copy_from_slice(&(names as u32).to_le_bytes());
    out[12..16].fill(0);
    let strtab = HEADER + symbols.len() * ENTRY;
    let mut name_off = 0usize;
    for (i, s) in symbols.iter().enumerate() {
        let e = HEADER + i * ENTRY;
        out[e..e + 8].copy_from_slice(&s.addr.to_le_bytes());
        out[e + 8..e + 12].copy_from_slice(&s.size.to_le_bytes());
        out[e + 12..e + 16].copy_from_slice(&(name_off as u32).to_le_bytes());
        out[strtab + name_off..strtab + name_off + s.name.len()].copy_from_slice(s.name.as_bytes());
        name_off += s.name.len();
    }
    Ok(needed)
}

/// A read-only view of an encoded table. Every accessor bounds-checks, so a
/// corrupt or absent table yields `None`, never a fault.
#[derive(Clone, Copy)]
pub struct SymbolTable<'a> {
    bytes: &'a [u8],
    count: usize,
    strtab: usize,
    strtab_len: usize,
}

impl<'a> SymbolTable<'a> {
    /// Wraps `bytes`; `None` if they do not hold a well-formed table.
    pub fn new(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() < HEADER || &bytes[..4] != MAGIC {
            return None;
        }
        let count = u32_at(bytes, 4)? as usize;
        let strtab_len = u32_at(bytes, 8)? as usize;
        let strtab = HEADER.checked_add(count.checked_mul(ENTRY)?)?;
        if strtab.checked_add(strtab_len)? > bytes.len() {
            return None;
        }
        Some(Self {
            bytes,
            count,
            strtab,
            strtab_len,
        })
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    fn entry(&self, i: usize) -> Option<(u64, u32, usize)> {
        let e = HEADER + i * ENTRY;
        let addr = u64::from_le_bytes(self.bytes.get(e..e + 8)?.try_into().ok()?);
        Some((
            addr,
            u32_at(self.bytes, e + 8)?,
            u32_at(self.bytes, e + 12)? as usize,
        ))
    }

    fn name(&self, i: usize) -> Option<&'a str> {
        let (_, _, start) = self.entry(i)?;
        let end = if i + 1 < self.count {
            self.entry(i + 1)?.2
        } else {
            self.strtab_len
        };
        let raw = self.bytes.get(self.strtab + start..self.strtab + end)?;
        core::str::from_utf8(raw).ok()
    }

    /// The function containing `addr` and the offset into it.
    pub fn lookup(&self, addr: u64) -> Option<(&'a str, u64)> {
        // Last entry with start <= addr.
        let (mut lo, mut hi) = (0, self.count);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.entry(mid)?.0 <= addr {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let i = lo.checked_sub(1)?;
        let (start, size, _) = self.entry(i)?;
        let offset = addr - start;
        if size != 0 && offset >= u64::from(size) {
            return None;
        }
        Some((self.name(i)?, offset))
    }
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(symbols: &mut [Symbol<'_>]) -> Vec<u8> {
        let mut out = vec![0u8; 4096];
        let n = encode(symbols, &mut out).unwrap();
        out.truncate(n);
        out
    }

    #[test]
    fn lookup_finds_the_containing_function_and_offset() {
        let mut syms = [
            Symbol {
                addr: 0x2000,
                size: 0x10,
                name: "b::second",
            },
            Symbol {
                addr: 0x1000,
                size: 0x100,
                name: "a::first",
            },
            Symbol {
                addr: 0x3000,
                size: 0,
                name: "c::unsized",
            },
        ];
        let bytes = table(&mut syms);
        let t = SymbolTable::new(&bytes).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(t.lookup(0x1000), Some(("a::first", 0)));
        assert_eq!(t.lookup(0x10ff), Some(("a::first", 0xff)));
        assert_eq!(t.lookup(0x1100), None, "past the end of a sized symbol");
        assert_eq!(t.lookup(0x2004), Some(("b::second", 4)));
        assert_eq!(t.lookup(0x3abc), Some(("c::unsized", 0xabc)));
        assert_eq!(t.lookup(0xfff), None, "below the first symbol");
    }

    #[test]
    fn an_empty_or_corrupt_table_is_rejected_or_harmless() {
        assert!(SymbolTable::new(&[0u8; 64]).is_none(), "no magic");
        let mut syms = [Symbol {
            addr: 0x1000,
            size: 8,
            name: "f",
        }];
        let mut bytes = table(&mut syms);
        bytes[4] = 0xff; // count far larger than the data
        assert!(SymbolTable::new(&bytes).is_none());
        let empty = table(&mut []);
        let t = SymbolTable::new(&empty).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.lookup(0x1234), None);
    }

    #[test]
    fn encode_reports_the_size_it_needs() {
        let mut syms = [Symbol {
            addr: 1,
            size: 1,
            name: "a_rather_long_name",
        }];
        let mut out = [0u8; 20];
        assert_eq!(
            encode(&mut syms, &mut out),
            Err(EncodeError::TooLarge {
                needed: 16 + 16 + 18
            })
        );
    }
}
