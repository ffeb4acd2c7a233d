//! Finding the blob, checking its header, and reading its tree into a [`Machine`].
//!
//! `dtoolkit`'s [`Fdt::new`] validates the whole structure block up front (tokens, node and
//! property names, string offsets, lengths); its accessors then cannot fail on that blob, so
//! only property *values* are checked here. Two of its conveniences are not relied on where
//! they would hide a malformed blob: it reads a missing or malformed `#address-cells` /
//! `#size-cells` as 2 / 1 (so the cells of every parent whose `reg`s are read are checked
//! here first), and it needs `totalsize` to equal the slice's length exactly (so the blob is cut
//! to `totalsize` here, after the header checks that give the specific errors).

use armstop_boards::MPIDR_AFFINITY_MASK;
use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::standard::{NodeStandard, Reg};
use dtoolkit::{Node, Property, ToCellInt};

use crate::{
    DtError, FDT_MAGIC, Gic, HEADER_LEN, MAX_CPUS, MAX_REDISTRIBUTOR_REGIONS, Machine, Name,
    PsciMethod, Redistributors, Region,
};

/// Compatible strings of a GICv3 distributor node.
const GIC_V3: &[&str] = &["arm,gic-v3"];
/// Compatible strings of a GIC distributor node: GICv3's, then GICv2's.
const GIC_ANY: &[&str] = &["arm,gic-v3", "arm,cortex-a15-gic", "arm,gic-400"];
/// Compatible strings of a PSCI node, newest first.
const PSCI: &[&str] = &["arm,psci-1.0", "arm,psci-0.2", "arm,psci"];
/// Compatible string of a PL011 UART.
const PL011: &[&str] = &["arm,pl011"];
/// Compatible string of the ARMv8 generic timer.
const TIMER: &[&str] = &["arm,armv8-timer"];

/// The header bytes needed to find the blob: `magic` and `totalsize`.
const PREFIX_LEN: usize = 8;

/// Checks the header at the start of `mem` and returns the blob in it: `mem`'s first
/// `totalsize` bytes (`mem` may be longer, such as a whole RAM window).
pub fn blob_in(mem: &[u8]) -> Result<&[u8], DtError> {
    let size =
        blob_size(mem, mem.len(), |totalsize| DtError::Truncated { totalsize, len: mem.len() })?;
    mem.get(..size).ok_or(DtError::Truncated { totalsize: size as u32, len: mem.len() })
}

/// Reads the header of the blob at `addr` (magic `0xd00dfeed`, then the big-endian
/// `totalsize`, which must not exceed `max_len`) and returns the blob, `totalsize` bytes.
///
/// The address is the one QEMU's boot stub passes in `x0`; 0 (an ELF image gets no device
/// tree) is [`DtError::BadAddress`], not a read of address 0.
///
/// # Safety
///
/// Unless `addr` is 0 or `addr + max_len` overflows (both rejected before any read),
/// `[addr, addr + max_len)` must be memory that can be read as plain bytes for the duration of
/// the call (only its first 8 bytes, then the blob's `totalsize`, are read), and the blob's
/// bytes must not be written while the returned slice is alive (`'a`).
pub unsafe fn blob_at<'a>(addr: usize, max_len: usize) -> Result<&'a [u8], DtError> {
    if addr == 0 || max_len > isize::MAX as usize || addr.checked_add(max_len).is_none() {
        return Err(DtError::BadAddress(addr));
    }
    let ptr = core::ptr::with_exposed_provenance::<u8>(addr);
    // SAFETY: `ptr` is non-null and `PREFIX_LEN.min(max_len)` bytes from it lie in the range the
    // caller guarantees readable; the range does not wrap and is at most `isize::MAX` long
    // (checked above); `u8` needs no alignment. The slice is only read during this call.
    let prefix = unsafe { core::slice::from_raw_parts(ptr, PREFIX_LEN.min(max_len)) };
    let size = blob_size(prefix, max_len, |totalsize| DtError::TooLarge { totalsize, max_len })?;
    // SAFETY: `blob_size` returned a `size` of at most `max_len`, so these bytes lie in the
    // caller's readable range (non-null, not wrapping, as above); the caller guarantees that
    // nothing writes them while the returned slice lives.
    Ok(unsafe { core::slice::from_raw_parts(ptr, size) })
}

/// The blob's `totalsize`, read from `prefix` (the blob's first bytes), checked to hold the
/// header and to be at most `available` bytes (else `too_big`).
fn blob_size(
    prefix: &[u8],
    available: usize,
    too_big: impl FnOnce(u32) -> DtError,
) -> Result<usize, DtError> {
    let short = DtError::TooShort { len: prefix.len().min(available) };
    let magic = be32(prefix, 0).ok_or(short.clone())?;
    if magic != FDT_MAGIC {
        return Err(DtError::BadMagic(magic));
    }
    let totalsize = be32(prefix, 4).ok_or(short)?;
    let size = totalsize as usize;
    if size < HEADER_LEN {
        return Err(DtError::TotalSizeTooSmall(totalsize));
    }
    if size > available {
        return Err(too_big(totalsize));
    }
    Ok(size)
}

/// The big-endian word at `at`, if `bytes` holds it.
fn be32(bytes: &[u8], at: usize) -> Option<u32> {
    let word = bytes.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(word.try_into().ok()?))
}

/// Reads the device tree in `dtb` (its first `totalsize` bytes; `dtb` may be longer) into a
/// [`Machine`]. See the crate docs for which nodes are read, and [`DtError`] for what can be
/// wrong. Never panics.
pub fn parse(dtb: &[u8]) -> Result<Machine, DtError> {
    let fdt = Fdt::new(blob_in(dtb)?)?;
    let root = fdt.root();
    check_cells(root, 1..=2, 1..=2)?;
    let (cpus, ncpus) = cpus(fdt)?;
    let (gic, gic_node) = gic(root)?;
    Ok(Machine {
        cpus,
        ncpus,
        memory: memory(root)?,
        gic,
        psci: psci(root)?,
        uart: uart(fdt, root)?,
        timer_ppis: timer(root, gic_node)?,
    })
}

/// The MPIDRs of the enabled children of `/cpus` with `device_type = "cpu"`, and their count.
fn cpus(fdt: Fdt<'_>) -> Result<([u64; MAX_CPUS], usize), DtError> {
    let cpus = *fdt.cpus().map_err(|_| DtError::NoCpusNode)?;
    // The CPU binding: `reg` is the MPIDR in one or two cells, with no size.
    check_cells(cpus, 1..=2, 0..=0)?;
    let mut mpidrs = [0; MAX_CPUS];
    let mut n = 0;
    // Every child, not only dtoolkit's `Cpus::cpus` (children named `cpu`): what makes a CPU
    // node is its device_type, and a `cpu-map` or cache node is not one.
    for node in cpus.children().filter(|c| enabled(c) && device_type(c) == Some("cpu")) {
        let mpidr = cpu_reg(node)?;
        if mpidr & !MPIDR_AFFINITY_MASK != 0 {
            return Err(DtError::BadMpidr(mpidr));
        }
        // Past MAX_CPUS the nodes are only counted, for the error.
        if n < MAX_CPUS {
            if mpidrs[..n].contains(&mpidr) {
                return Err(DtError::DuplicateMpidr(mpidr));
            }
            mpidrs[n] = mpidr;
        }
        n += 1;
    }
    match n {
        0 => Err(DtError::NoCpus),
        n if n > MAX_CPUS => Err(DtError::TooManyCpus(n)),
        n => Ok((mpidrs, n)),
    }
}

/// The first address in a CPU node's `reg`: its MPIDR affinity value.
fn cpu_reg(node: FdtNode<'_>) -> Result<u64, DtError> {
    let bad = || DtError::CpuReg(name(node));
    let first = node.reg().map_err(|_| bad())?.ok_or_else(bad)?.next().ok_or_else(bad)?;
    first.address::<u64>().map_err(|_| bad())
}

/// The first enabled GIC among the root's children, and its node.
fn gic(root: FdtNode<'_>) -> Result<(Gic, FdtNode<'_>), DtError> {
    let node = find_compatible(root, GIC_ANY).ok_or(DtError::NoGic)?;
    let v3 = is_any_compatible(node, GIC_V3);
    let nredist = if v3 {
        match node.property("#redistributor-regions") {
            None => 1,
            Some(p) => p.value_as::<u32>().map_err(|_| bad(node, "#redistributor-regions"))?,
        }
    } else {
        0
    };
    if v3 && !(1..=MAX_REDISTRIBUTOR_REGIONS as u32).contains(&nredist) {
        return Err(DtError::RedistributorRegions(nredist));
    }
    let nredist = nredist as usize;
    let needed = if v3 { 1 + nredist } else { 2 };
    // GICD, then GICC (v2) or the redistributor regions (v3); later frames are counted only.
    let mut frames = [Region::default(); 1 + MAX_REDISTRIBUTOR_REGIONS];
    let mut found = 0;
    for reg in regs(node)? {
        if found < needed
            && let Some(slot) = frames.get_mut(found)
        {
            *slot = region(node, reg)?;
        }
        found += 1;
    }
    if found < needed {
        return Err(DtError::GicReg { found, needed });
    }
    let [gicd, rest @ ..] = frames;
    let gic = if v3 {
        let mut regions = [Region::default(); MAX_REDISTRIBUTOR_REGIONS];
        for (slot, frame) in regions.iter_mut().zip(rest).take(nredist) {
            *slot = frame;
        }
        Gic::V3 { gicd, redistributors: Redistributors { regions, count: nredist } }
    } else {
        Gic::V2 { gicd, gicc: rest[0] }
    };
    Ok((gic, node))
}

/// The first region of the first enabled root node with `device_type = "memory"`.
fn memory(root: FdtNode<'_>) -> Result<Option<Region>, DtError> {
    match root.children().find(|n| enabled(n) && device_type(n) == Some("memory")) {
        Some(node) => first_region(node).map(Some),
        None => Ok(None),
    }
}

/// The PSCI node's conduit, if there is an enabled PSCI node.
fn psci(root: FdtNode<'_>) -> Result<Option<PsciMethod>, DtError> {
    let Some(node) = find_compatible(root, PSCI) else {
        return Ok(None);
    };
    let method = node.property("method").ok_or(DtError::NoPsciMethod)?;
    match method.value_as::<&str>() {
        Ok("hvc") => Ok(Some(PsciMethod::Hvc)),
        Ok("smc") => Ok(Some(PsciMethod::Smc)),
        Ok(other) => Err(DtError::BadPsciMethod(Name::new(other))),
        Err(_) => Err(bad(node, "method")),
    }
}

/// The console PL011's base: the one `/chosen`'s `stdout-path` names, else the first.
fn uart<'a>(fdt: Fdt<'a>, root: FdtNode<'a>) -> Result<Option<u64>, DtError> {
    match stdout_pl011(fdt, root).or_else(|| find_compatible(root, PL011)) {
        Some(node) => Ok(Some(first_region(node)?.base)),
        None => Ok(None),
    }
}

/// The enabled root PL011 `/chosen`'s `stdout-path` names, directly or through `/aliases`.
/// The path is a preference only: a missing or unusable one (malformed, an unknown alias, a
/// node that is not an enabled PL011 among the root's children) leaves the choice to the
/// first PL011 rather than failing.
fn stdout_pl011<'a>(fdt: Fdt<'a>, root: FdtNode<'a>) -> Option<FdtNode<'a>> {
    let chosen = fdt.find_node("/chosen")?;
    let path = chosen.property("stdout-path")?.value_as::<&str>().ok()?;
    // `path[:options]`, where path may be an alias.
    let path = path.split(':').next()?;
    let path = if path.starts_with('/') {
        path
    } else {
        fdt.find_node("/aliases")?.property(path)?.value_as::<&str>().ok()?
    };
    let child = path.strip_prefix('/')?;
    if child.is_empty() || child.contains('/') {
        return None;
    }
    let node = root.child(child)?;
    (enabled(&node) && is_any_compatible(node, PL011)).then_some(node)
}

/// The generic timer's four PPIs, if there is an enabled timer node. Its `interrupts` are read
/// in the GIC's three-cell form (type, number, flags), by position (`interrupt-names` is not
/// consulted): four entries, or five with the EL2 virtual timer's, which is not kept.
fn timer(root: FdtNode<'_>, gic: FdtNode<'_>) -> Result<Option<[u32; 4]>, DtError> {
    let Some(node) = find_compatible(root, TIMER) else {
        return Ok(None);
    };
    if gic.property("#interrupt-cells").map(|p| p.value_as::<u32>()) != Some(Ok(3)) {
        return Err(bad(gic, "#interrupt-cells"));
    }
    let bad_irq = || bad(node, "interrupts");
    let entries = node
        .property("interrupts")
        .ok_or_else(bad_irq)?
        .as_prop_encoded_array([1, 1, 1])
        .map_err(|_| bad_irq())?;
    let mut ppis = [0; 4];
    let mut n = 0;
    for [kind, number, _flags] in entries {
        // Type 1 is a PPI, numbered 0..16 from INTID 16.
        let ppi = match (kind.to_int::<u32>(), number.to_int::<u32>()) {
            (Ok(1), Ok(ppi)) if ppi < 16 => ppi,
            _ => return Err(bad_irq()),
        };
        if let Some(slot) = ppis.get_mut(n) {
            *slot = ppi;
        }
        n += 1;
    }
    if !(4..=5).contains(&n) {
        return Err(bad_irq());
    }
    Ok(Some(ppis))
}

/// Checks that `node`'s `#address-cells` and `#size-cells` (the layout of its children's
/// `reg`) are well-formed and in the given ranges; missing ones are the spec's defaults, 2 and 1.
fn check_cells(
    node: FdtNode<'_>,
    address: core::ops::RangeInclusive<u32>,
    size: core::ops::RangeInclusive<u32>,
) -> Result<(), DtError> {
    if !node.address_cells().is_ok_and(|c| address.contains(&c)) {
        return Err(bad(node, "#address-cells"));
    }
    if !node.size_cells().is_ok_and(|c| size.contains(&c)) {
        return Err(bad(node, "#size-cells"));
    }
    Ok(())
}

/// `node`'s `reg` entries (with its parent's cells, checked by the caller).
fn regs<'a>(node: FdtNode<'a>) -> Result<impl Iterator<Item = Reg<'a>> + 'a, DtError> {
    node.reg().map_err(|_| bad(node, "reg"))?.ok_or_else(|| bad(node, "reg"))
}

/// `node`'s first `reg` entry.
fn first_region(node: FdtNode<'_>) -> Result<Region, DtError> {
    let reg = regs(node)?.next().ok_or_else(|| bad(node, "reg"))?;
    region(node, reg)
}

/// One `reg` entry of `node` as a [`Region`].
fn region(node: FdtNode<'_>, reg: Reg<'_>) -> Result<Region, DtError> {
    match (reg.address::<u64>(), reg.size::<u64>()) {
        (Ok(base), Ok(size)) => Ok(Region { base, size }),
        _ => Err(bad(node, "reg")),
    }
}

/// The first enabled child of `root` compatible with any of `compatible`.
fn find_compatible<'a>(root: FdtNode<'a>, compatible: &[&str]) -> Option<FdtNode<'a>> {
    root.children().find(|n| enabled(n) && is_any_compatible(*n, compatible))
}

/// Whether `node`'s `compatible` list holds any of `compatible`.
fn is_any_compatible(node: FdtNode<'_>, compatible: &[&str]) -> bool {
    compatible.iter().any(|c| node.is_compatible(c))
}

/// Whether `node` is enabled: no `status`, or `"okay"` (or the older `"ok"`).
fn enabled(node: &FdtNode<'_>) -> bool {
    node.property("status").is_none_or(|p| matches!(p.value_as::<&str>(), Ok("okay" | "ok")))
}

/// `node`'s `device_type`, if it is a string.
fn device_type<'a>(node: &FdtNode<'a>) -> Option<&'a str> {
    node.property("device_type")?.value_as::<&str>().ok()
}

/// `node`'s name for messages, `/` for the root.
fn name(node: FdtNode<'_>) -> Name {
    let n = node.name();
    Name::new(if n.is_empty() { "/" } else { n })
}

/// A [`DtError::BadProperty`] for `property` of `node`.
fn bad(node: FdtNode<'_>, property: &'static str) -> DtError {
    DtError::BadProperty { node: name(node), property }
}
