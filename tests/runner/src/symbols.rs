//! Code addresses in a console transcript (a fault's ELR, its backtrace, where each other CPU
//! was stopped) as function, file and line, from the image's ELF and its DWARF, through
//! `addr2line`: what `probe-rs` and `defmt` users see for a fault.
//!
//! Only lines of a fault report are read (those with `ELR=` or a `backtrace`), and only
//! addresses inside the image's code, so a data address (`FAR=`) or a register value is never
//! dressed up as a place in the source.

use std::path::Path;

/// An image's debug information, ready for lookups.
pub struct Symbols {
    loader: addr2line::Loader,
    /// The image's executable sections, as address ranges.
    code: Vec<std::ops::Range<u64>>,
}

impl Symbols {
    /// Opens `elf` (an image as built: the ELF, not its `.bin`).
    pub fn open(elf: &Path) -> Result<Self, String> {
        let data = std::fs::read(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
        let code = code_ranges(&data).map_err(|e| format!("{}: {e}", elf.display()))?;
        let loader = addr2line::Loader::new(elf).map_err(|e| format!("{}: {e}", elf.display()))?;
        Ok(Symbols { loader, code })
    }

    /// Where `addr` is: `function (file:line:column)`, innermost first, then each function it
    /// was inlined into (`inlined into ...`). `None` outside the image's code.
    pub fn place(&self, addr: u64) -> Option<String> {
        if !self.code.iter().any(|r| r.contains(&addr)) {
            return None;
        }
        let mut parts = Vec::new();
        if let Ok(mut frames) = self.loader.find_frames(addr) {
            while let Ok(Some(f)) = frames.next() {
                let name = f
                    .function
                    .as_ref()
                    .and_then(|n| n.demangle().ok())
                    .map_or_else(|| "??".to_string(), |n| strip_hash(&n).to_string());
                let at = f.location.as_ref().map(|l| {
                    let file = l.file.map(short_path).unwrap_or("??");
                    match (l.line, l.column) {
                        (Some(line), Some(c)) if c > 0 => format!("{file}:{line}:{c}"),
                        (Some(line), _) => format!("{file}:{line}"),
                        _ => file.to_string(),
                    }
                });
                parts.push(match at {
                    Some(at) => format!("{name} ({at})"),
                    None => name,
                });
            }
        }
        if parts.is_empty() {
            // No line table there (hand-written assembly): the symbol table's name.
            parts.push(self.loader.find_symbol(addr)?.to_string());
        }
        Some(parts.join(", inlined into "))
    }

    /// For one console line of a fault report, each code address in it with its place
    /// (`0x...: function (file:line:column)`); nothing for any other line. A backtrace entry
    /// is a return address: it is looked up one instruction back, at the call.
    pub fn annotate(&self, line: &str) -> Vec<String> {
        fault_addresses(line)
            .into_iter()
            .filter_map(|(addr, is_return)| {
                let probe = if is_return { addr.saturating_sub(4) } else { addr };
                Some(format!("{addr:#x}: {}", self.place(probe)?))
            })
            .collect()
    }

    /// `message` (a test's failure) with the places of its `ELR=` and `LR=` added, where
    /// they are in the image's code.
    pub fn annotate_message(&self, message: &str) -> String {
        let places: Vec<String> = fault_addresses(message)
            .into_iter()
            .filter_map(|(addr, is_return)| {
                let place = self.place(if is_return { addr.saturating_sub(4) } else { addr })?;
                Some(if is_return { format!("called from {place}") } else { format!("at {place}") })
            })
            .collect();
        if places.is_empty() {
            message.to_string()
        } else {
            format!("{message} [{}]", places.join("; "))
        }
    }
}

/// The code addresses a fault report line holds, and whether each is a return address: the
/// value after `ELR=` (not one), after `LR=` and each entry after `backtrace` (one each).
pub fn fault_addresses(line: &str) -> Vec<(u64, bool)> {
    let mut out = Vec::new();
    if let Some(a) = line.find("ELR=").and_then(|at| hex_at(&line[at + 4..])) {
        out.push((a, false));
    }
    if let Some(a) = line.find(" LR=").and_then(|at| hex_at(&line[at + 4..])) {
        out.push((a, true));
    }
    if let Some(at) = line.find("backtrace") {
        let rest = &line[at + "backtrace".len()..];
        for word in rest.split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ':') {
            if let Some(a) = word.strip_prefix("0x").and_then(|h| u64::from_str_radix(h, 16).ok()) {
                out.push((a, true));
            }
        }
    }
    out
}

fn hex_at(s: &str) -> Option<u64> {
    let h = s.strip_prefix("0x")?;
    let end = h.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(h.len());
    u64::from_str_radix(&h[..end], 16).ok()
}

/// `foo::bar::h0123456789abcdef` without its hash.
fn strip_hash(name: &str) -> &str {
    match name.rsplit_once("::h") {
        Some((head, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            head
        }
        _ => name,
    }
}

/// A source path as the user wants it: inside the repository relative to it, a library's
/// from its crate down (`.../core/src/...` → `core/src/...`).
fn short_path(file: &str) -> &str {
    for marker in ["/library/", "/.cargo/registry/src/"] {
        if let Some(at) = file.find(marker) {
            return &file[at + marker.len()..];
        }
    }
    let here = std::env::current_dir().ok();
    match here.as_ref().and_then(|d| d.to_str()).and_then(|d| file.strip_prefix(d)) {
        Some(rel) => rel.trim_start_matches('/'),
        None => file,
    }
}

/// The address ranges of an ELF's executable sections (64-bit little-endian, as every image
/// is), read from its section headers.
fn code_ranges(elf: &[u8]) -> Result<Vec<std::ops::Range<u64>>, String> {
    let u16_at = |o: usize| elf.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u64_at = |o: usize| elf.get(o..o + 8).map(|b| u64::from_le_bytes(b.try_into().unwrap()));
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let bad = || "truncated ELF header".to_string();
    let shoff = u64_at(0x28).ok_or_else(bad)? as usize;
    let shentsize = usize::from(u16_at(0x3a).ok_or_else(bad)?);
    let shnum = usize::from(u16_at(0x3c).ok_or_else(bad)?);
    const SHF_EXECINSTR: u64 = 4;
    let mut out = Vec::new();
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let flags = u64_at(h + 8).ok_or_else(bad)?;
        let addr = u64_at(h + 16).ok_or_else(bad)?;
        let size = u64_at(h + 32).ok_or_else(bad)?;
        if flags & SHF_EXECINSTR != 0 && size > 0 {
            out.push(addr..addr + size);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_lines_give_their_code_addresses() {
        assert_eq!(
            fault_addresses(
                "FAULT cpu0: Data Abort FAR=0x700000000 ELR=0x40201584 ESR=0x96000005 EC=0x25"
            ),
            [(0x4020_1584, false)]
        );
        assert_eq!(
            fault_addresses("  backtrace: 0x402015bc <- 0x4020a9dc <- 0x40200074"),
            [(0x4020_15bc, true), (0x4020_a9dc, true), (0x4020_0074, true)]
        );
        assert_eq!(
            fault_addresses(
                "  cpu1 stopped at ELR=0x40209e2c (backtrace 0x4020acc4 <- 0x402000bc)"
            ),
            [(0x4020_9e2c, false), (0x4020_acc4, true), (0x4020_00bc, true)]
        );
        assert_eq!(
            fault_addresses(
                "  exception: Data Abort (EC 0x25) ESR=0x1 FAR=0x2 ELR=0x40201584 LR=0x402015bc"
            ),
            [(0x4020_1584, false), (0x4020_15bc, true)]
        );
        assert!(fault_addresses("test x ... ok (12 us)").is_empty());
        assert!(fault_addresses("FAR=0x1234 and nothing else").is_empty());
    }

    #[test]
    fn names_lose_their_hash() {
        assert_eq!(
            strip_hash("armstop::fault::report::h0123456789abcdef"),
            "armstop::fault::report"
        );
        assert_eq!(strip_hash("a::h12"), "a::h12");
        assert_eq!(
            short_path("/usr/lib/rustlib/src/rust/library/core/src/panicking.rs"),
            "core/src/panicking.rs"
        );
    }

    #[test]
    fn a_file_that_is_no_elf_is_refused() {
        assert!(code_ranges(b"\x7fELF\x01\x01").unwrap_err().contains("64-bit"));
        assert!(code_ranges(b"MZ").is_err());
        assert!(code_ranges(b"\x7fELF\x02\x01").unwrap_err().contains("truncated"));
    }
}
