//! Embeds the kernel's function symbols into its own image, so panic and
//! exception reports name functions without any host-side tool.
//!
//! The kernel reserves a zero-filled, fixed-size static in the `.ksyms`
//! section (`hal::arch::KSYMS`); this writes `hal::symbols::encode`'s table
//! over its bytes in the ELF file. Nothing moves, so no relink is needed.

use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

/// Patches the table into `image`; returns the number of symbols.
pub fn embed(image: &Path) -> Result<usize, String> {
    let mut bytes =
        std::fs::read(image).map_err(|e| format!("reading {}: {e}", image.display()))?;
    let (offset, capacity, names) = {
        let elf = object::File::parse(&*bytes)
            .map_err(|e| format!("parsing {}: {e}", image.display()))?;
        let blob = elf
            .symbols()
            .find(|s| {
                s.name().is_ok_and(|n| {
                    format!("{:#}", rustc_demangle::demangle(n)).ends_with("::KSYMS")
                })
            })
            .ok_or("the kernel has no KSYMS symbol (hal::arch::KSYMS)")?;
        let section = elf
            .section_by_index(blob.section_index().ok_or("KSYMS has no section")?)
            .map_err(|e| e.to_string())?;
        let (file_start, _) = section
            .file_range()
            .ok_or("the .ksyms section has no file bytes")?;
        let offset = file_start + (blob.address() - section.address());
        let names: Vec<(u64, u32, String)> = elf
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
            .filter_map(|s| {
                let name = s.name().ok()?;
                Some((
                    s.address(),
                    u32::try_from(s.size()).unwrap_or(0),
                    format!("{:#}", rustc_demangle::demangle(name)),
                ))
            })
            .collect();
        (offset as usize, blob.size() as usize, names)
    };
    let mut symbols: Vec<hal::symbols::Symbol<'_>> = names
        .iter()
        .map(|(addr, size, name)| hal::symbols::Symbol {
            addr: *addr,
            size: *size,
            name,
        })
        .collect();
    symbols.sort_by_key(|s| s.addr);
    symbols.dedup_by_key(|s| s.addr);
    let out = bytes
        .get_mut(offset..offset + capacity)
        .ok_or("KSYMS lies outside the file")?;
    hal::symbols::encode(&mut symbols, out)
        .map_err(|e| format!("symbol table does not fit .ksyms: {e:?}"))?;
    std::fs::write(image, &bytes).map_err(|e| format!("writing {}: {e}", image.display()))?;
    Ok(symbols.len())
}
