//! Loading a program: a static x86_64 ELF executable into a fresh address
//! space, with argv, envp and auxv on its initial stack (the System V
//! layout `_start` expects).
//!
//! Every field of the file is checked before it is used: segment ranges
//! inside the file and the user half, no overflow, a known machine and
//! type. A bad file is `ENOEXEC` and leaves nothing mapped (the space is
//! dropped by the caller).
//!
//! Shared text: a read-only segment (code, constants) is loaded into frames
//! of its own once and mapped into every process that loads the same bytes
//! at the same address, as a page cache maps a file's pages (see
//! [`TextCache`]). Writable segments get fresh pages per process. Besides the
//! memory, this keeps code where it was: under QEMU's TCG a program whose
//! code lands in other frames is translated again, which cost more than the
//! rest of a spawn together.

use alloc::{collections::VecDeque, sync::Arc, vec::Vec};

use abi::Errno;
use abi::clock::AT_CLOCK_PAGE;
use elf::ElfBytes;
use elf::endian::LittleEndian;
use hal::arch::user::USER_TOP;
use hal::mm::space::{AddressSpace, SharedPages, UserProt};

/// Top of the initial stack (the page above it stays unmapped).
pub const STACK_TOP: u64 = 0x0000_7fff_ffff_0000;
/// Size of the initial stack; the page below it is an unmapped guard.
pub const STACK_BYTES: u64 = 256 * 1024;
/// Lowest address a segment may use (page 0 stays unmapped: null faults).
const LOWEST: u64 = 0x1_0000;
/// Most bytes argv and envp strings may take together.
pub const ARG_MAX: usize = 64 * 1024;

const PAGE: u64 = 4096;

/// Read-only segments kept for sharing: the most recently loaded first.
const TEXT_CACHE_SEGMENTS: usize = 32;

/// One shared read-only segment: its place, its protection, the file bytes it
/// holds (compared in full on every hit, so a changed file is never served
/// stale text) and the frames holding them.
struct SharedSegment {
    start: u64,
    mem_end: u64,
    prot: UserProt,
    bytes: Vec<u8>,
    pages: Arc<SharedPages>,
}

/// The shared read-only segments of recently loaded programs (bounded; a
/// segment evicted here lives on in the spaces that still map it).
pub struct TextCache(spin::Mutex<VecDeque<Arc<SharedSegment>>>);

static TEXT_CACHE: TextCache = TextCache(spin::Mutex::new(VecDeque::new()));

impl TextCache {
    /// The frames for a read-only segment at `start..mem_end` holding `bytes`
    /// (the file's part, zero after it), from the cache or made and cached now.
    fn get(
        start: u64,
        mem_end: u64,
        prot: UserProt,
        bytes: &[u8],
    ) -> Result<Arc<SharedSegment>, Errno> {
        let mut cache = TEXT_CACHE.0.lock();
        let hit = cache.iter().position(|s| {
            s.start == start && s.mem_end == mem_end && s.prot == prot && s.bytes == bytes
        });
        if let Some(i) = hit {
            let segment = cache.remove(i).expect("found just above");
            cache.push_front(segment.clone());
            return Ok(segment);
        }
        let first = start & !(PAGE - 1);
        let pages = ((mem_end.next_multiple_of(PAGE) - first) / PAGE) as usize;
        let frames =
            SharedPages::with_bytes(pages, (start - first) as usize, bytes).map_err(map_err)?;
        let segment = Arc::new(SharedSegment {
            start,
            mem_end,
            prot,
            bytes: bytes.to_vec(),
            pages: Arc::new(frames),
        });
        cache.push_front(segment.clone());
        cache.truncate(TEXT_CACHE_SEGMENTS);
        Ok(segment)
    }

    /// Frames the cache holds (a cache, so not counted as in use by `SysInfo`'s
    /// leak-sensitive figure).
    pub fn frames() -> usize {
        TEXT_CACHE.0.lock().iter().map(|s| s.pages.pages()).sum()
    }
}

/// Maps `segment`'s frames into `space`, page by page.
fn map_segment(space: &AddressSpace, segment: &SharedSegment) -> Result<(), Errno> {
    let first = segment.start & !(PAGE - 1);
    for i in 0..segment.pages.pages() {
        space
            .map_shared(first + i as u64 * PAGE, &segment.pages, i, segment.prot)
            .map_err(map_err)?;
    }
    Ok(())
}

/// Loads a segment into fresh pages of its own: `data` (the file's bytes) at `start`,
/// zero up to `mem_end`.
fn copy_segment(
    space: &AddressSpace,
    start: u64,
    mem_end: u64,
    prot: UserProt,
    data: &[u8],
) -> Result<(), Errno> {
    let mut page = start & !(PAGE - 1);
    while page < mem_end {
        // The file bytes that fall in this page.
        let lo = page.max(start);
        let hi = (page + PAGE).min(start + data.len() as u64);
        let bytes = if lo < hi {
            &data[(lo - start) as usize..(hi - start) as usize]
        } else {
            &[][..]
        };
        match space.map_copy(page, prot, (lo - page) as usize, bytes) {
            Ok(()) => {}
            Err(hal::mm::MemError::BadAddress(_)) if space.is_mapped(page) => {
                // Two segments share this page (as ld lays out small
                // programs): widen its permissions and add these bytes.
                space
                    .protect(
                        page,
                        UserProt {
                            read: true,
                            write: true,
                            execute: true,
                        },
                    )
                    .map_err(map_err)?;
                space.write_initial(lo, bytes).map_err(|_| Errno::NoExec)?;
            }
            Err(e) => return Err(map_err(e)),
        }
        page += PAGE;
    }
    Ok(())
}

/// Where a loaded program starts.
#[derive(Debug, Clone, Copy)]
pub struct Image {
    pub entry: u64,
    pub stack_pointer: u64,
    /// First page above the highest segment (where anonymous mappings may go).
    pub end: u64,
}

fn noexec(why: &str) -> Errno {
    log::debug!(target: "exec", "not a loadable executable: {why}");
    Errno::NoExec
}

fn map_err(e: hal::mm::MemError) -> Errno {
    match e {
        hal::mm::MemError::NoMemory => Errno::NoMem,
        hal::mm::MemError::BadAddress(_) => Errno::NoExec,
        hal::mm::MemError::Busy(_) => Errno::Busy,
        hal::mm::MemError::ReadOnly(_) => Errno::NoExec,
    }
}

/// Loads `file` (a whole ELF image) into `space` and builds the stack.
///
/// # Errors
/// `NoExec` for anything but a well-formed static x86_64 executable,
/// `NoMem` when memory runs out, `TooBig` (E2BIG) for oversized arguments.
pub fn load(
    space: &AddressSpace,
    file: &[u8],
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    random: [u8; 16],
) -> Result<Image, Errno> {
    let elf =
        ElfBytes::<LittleEndian>::minimal_parse(file).map_err(|_| noexec("unparsable header"))?;
    let header = &elf.ehdr;
    if header.class != elf::file::Class::ELF64 {
        return Err(noexec("not 64-bit"));
    }
    if header.e_machine != elf::abi::EM_X86_64 {
        return Err(noexec("not x86_64"));
    }
    if header.e_type != elf::abi::ET_EXEC {
        return Err(noexec("not a static executable (ET_EXEC)"));
    }
    let segments = elf.segments().ok_or_else(|| noexec("no program headers"))?;
    // The pages each loadable segment touches: a read-only segment is shared only
    // if no other segment touches its pages.
    let page_span = |ph: &elf::segment::ProgramHeader| {
        let first = ph.p_vaddr & !(PAGE - 1);
        let last = ph.p_vaddr.saturating_add(ph.p_memsz).next_multiple_of(PAGE);
        (first, last)
    };
    let spans: Vec<(u64, u64)> = segments
        .iter()
        .filter(|ph| ph.p_type == elf::abi::PT_LOAD && ph.p_memsz != 0)
        .map(|ph| page_span(&ph))
        .collect();
    let mut end = 0u64;
    let mut loaded = 0;
    for ph in segments.iter() {
        if ph.p_type != elf::abi::PT_LOAD || ph.p_memsz == 0 {
            continue;
        }
        let start = ph.p_vaddr;
        let mem_end = start
            .checked_add(ph.p_memsz)
            .ok_or_else(|| noexec("segment overflows"))?;
        let file_end = ph
            .p_offset
            .checked_add(ph.p_filesz)
            .ok_or_else(|| noexec("segment overflows the file"))?;
        if start < LOWEST || mem_end > STACK_TOP - STACK_BYTES - PAGE || ph.p_filesz > ph.p_memsz {
            return Err(noexec("segment outside the user area"));
        }
        if file_end > file.len() as u64 {
            return Err(noexec("segment beyond the end of the file"));
        }
        let prot = UserProt {
            read: true,
            write: ph.p_flags & elf::abi::PF_W != 0,
            execute: ph.p_flags & elf::abi::PF_X != 0,
        };
        let data = &file[ph.p_offset as usize..file_end as usize];
        let span = page_span(&ph);
        let alone = spans
            .iter()
            .filter(|&&(a, b)| a < span.1 && span.0 < b)
            .count()
            == 1;
        if !prot.write && alone {
            let segment = TextCache::get(start, mem_end, prot, data)?;
            map_segment(space, &segment)?;
        } else {
            copy_segment(space, start, mem_end, prot, data)?;
        }
        end = end.max(mem_end.next_multiple_of(PAGE));
        loaded += 1;
    }
    if loaded == 0 {
        return Err(noexec("no loadable segment"));
    }
    if header.e_entry < LOWEST || header.e_entry >= end {
        return Err(noexec("entry point outside the program"));
    }
    let clock = crate::clock_page::map_into(space);
    let stack_pointer = build_stack(space, header.e_entry, argv, envp, random, clock)?;
    Ok(Image {
        entry: header.e_entry,
        stack_pointer,
        end,
    })
}

const AT_NULL: u64 = 0;
const AT_PAGESZ: u64 = 6;
const AT_ENTRY: u64 = 9;
const AT_RANDOM: u64 = 25;

/// Maps the stack and writes, from the top down: the strings, 16 random
/// bytes, then (16-aligned) argc, argv[], NULL, envp[], NULL, auxv pairs
/// (`AT_CLOCK_PAGE` among them when the clock page is mapped).
fn build_stack(
    space: &AddressSpace,
    entry: u64,
    argv: &[Vec<u8>],
    envp: &[Vec<u8>],
    random: [u8; 16],
    clock: Option<u64>,
) -> Result<u64, Errno> {
    let strings: usize = argv.iter().chain(envp).map(|s| s.len() + 1).sum();
    if strings > ARG_MAX || argv.len() + envp.len() > ARG_MAX / 8 {
        return Err(Errno::TooBig);
    }
    // Reserved, not mapped: a page comes when first touched (by the writes below,
    // or by the program), so a process pays for the stack it uses.
    space
        .reserve_zeroed(STACK_TOP - STACK_BYTES, STACK_BYTES, UserProt::READ_WRITE)
        .map_err(map_err)?;
    let mut top = STACK_TOP;
    let mut push_bytes = |bytes: &[u8], nul: bool| -> Result<u64, Errno> {
        top -= (bytes.len() + usize::from(nul)) as u64;
        space.write_initial(top, bytes).map_err(|_| Errno::Fault)?;
        if nul {
            space
                .write_initial(top + bytes.len() as u64, &[0])
                .map_err(|_| Errno::Fault)?;
        }
        Ok(top)
    };
    let random_at = push_bytes(&random, false)?;
    let mut argv_at = Vec::with_capacity(argv.len());
    for arg in argv {
        argv_at.push(push_bytes(arg, true)?);
    }
    let mut envp_at = Vec::with_capacity(envp.len());
    for var in envp {
        envp_at.push(push_bytes(var, true)?);
    }
    let mut words: Vec<u64> = Vec::with_capacity(argv.len() + envp.len() + 12);
    words.push(argv.len() as u64);
    words.extend(&argv_at);
    words.push(0);
    words.extend(&envp_at);
    words.push(0);
    words.extend([AT_PAGESZ, PAGE, AT_ENTRY, entry, AT_RANDOM, random_at]);
    if let Some(page) = clock {
        words.extend([AT_CLOCK_PAGE, page]);
    }
    words.extend([AT_NULL, 0]);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let rsp = (top - bytes.len() as u64) & !15;
    space.write_initial(rsp, &bytes).map_err(|_| Errno::Fault)?;
    debug_assert!(rsp < USER_TOP);
    Ok(rsp)
}
