//! What can be wrong with a device tree, as values a boot error can print.

use core::fmt;

use dtoolkit::error::FdtParseError;

use crate::{FDT_MAGIC, HEADER_LEN, MAX_CPUS, MAX_REDISTRIBUTOR_REGIONS};

/// A short piece of text copied out of the blob (a node name, a property value) so that a
/// [`DtError`] does not borrow the blob. Longer text is cut at [`Name::CAPACITY`] bytes (on a
/// character boundary) and printed with a trailing `...`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Name {
    bytes: [u8; Name::CAPACITY],
    len: u8,
    cut: bool,
}

impl Name {
    /// Most bytes kept.
    pub const CAPACITY: usize = 40;

    /// `s`, cut to [`Name::CAPACITY`] bytes if longer.
    pub fn new(s: &str) -> Self {
        let mut len = s.len().min(Self::CAPACITY);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; Self::CAPACITY];
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        // `len` is at most CAPACITY (40), so it fits in a u8.
        Self { bytes, len: len as u8, cut: len < s.len() }
    }

    /// The text kept (without the `...` of a cut one).
    pub fn as_str(&self) -> &str {
        // A prefix of a `str` cut on a character boundary is UTF-8; the fallback is never taken.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// Whether the text was longer than [`Name::CAPACITY`] and was cut.
    pub fn is_cut(&self) -> bool {
        self.cut
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.cut { f.write_str("...") } else { Ok(()) }
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        !self.cut && self.as_str() == *other
    }
}

/// Why a device tree could not be read into a [`crate::Machine`]. One variant per failure;
/// `Display` gives a one-line message for a boot log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DtError {
    /// [`crate::blob_at`] was given address 0 (QEMU passes no device tree to an ELF image) or a
    /// range that wraps around the address space.
    BadAddress(usize),
    /// The address where the boot says the blob is lies outside the board's RAM, so it is not
    /// read at all (for the caller of [`crate::blob_at`], which knows the memory map).
    NotInRam(u64),
    /// Too few bytes to hold the header's first two words (`magic`, `totalsize`).
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// The first word is not [`FDT_MAGIC`]: no device tree here.
    BadMagic(u32),
    /// The header's `totalsize` is larger than the bytes available: the blob is truncated.
    Truncated {
        /// The header's `totalsize`.
        totalsize: u32,
        /// Bytes available.
        len: usize,
    },
    /// The header's `totalsize` is larger than the caller's limit ([`crate::blob_at`]).
    TooLarge {
        /// The header's `totalsize`.
        totalsize: u32,
        /// The limit.
        max_len: usize,
    },
    /// The header's `totalsize` is smaller than the header itself ([`crate::HEADER_LEN`]).
    TotalSizeTooSmall(u32),
    /// `dtoolkit` rejected the blob's structure (header offsets, tokens, names, strings).
    Parse(FdtParseError),
    /// There is no `/cpus` node.
    NoCpusNode,
    /// `/cpus` has no child with `device_type = "cpu"` that is enabled.
    NoCpus,
    /// A CPU node has no `reg`, an empty one, or one that does not fit `/cpus`'s cells.
    CpuReg(Name),
    /// A CPU's `reg` has bits outside the MPIDR affinity fields.
    BadMpidr(u64),
    /// Two CPUs have the same MPIDR.
    DuplicateMpidr(u64),
    /// More enabled CPU nodes than [`MAX_CPUS`]; the count.
    TooManyCpus(usize),
    /// No enabled root node is compatible with `arm,cortex-a15-gic`, `arm,gic-400` (GICv2) or
    /// `arm,gic-v3`.
    NoGic,
    /// The GIC's `reg` has fewer entries than its version needs.
    GicReg {
        /// Entries found.
        found: usize,
        /// Entries needed: 2 for GICv2, 1 + `#redistributor-regions` for GICv3.
        needed: usize,
    },
    /// GICv3 `#redistributor-regions` is 0 or more than [`MAX_REDISTRIBUTOR_REGIONS`].
    RedistributorRegions(u32),
    /// The PSCI node has no `method`.
    NoPsciMethod,
    /// The PSCI node's `method` is neither `"hvc"` nor `"smc"`.
    BadPsciMethod(Name),
    /// A property this crate reads is malformed or out of range (wrong length, not a string,
    /// too many cells for 64 bits, cell counts other than the binding allows, a timer
    /// interrupt that is not a PPI).
    BadProperty {
        /// The node (`/` for the root).
        node: Name,
        /// The property.
        property: &'static str,
    },
}

impl fmt::Display for DtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadAddress(a) => {
                write!(f, "no device tree: address {a:#x} is null or its range wraps")
            }
            Self::NotInRam(a) => write!(f, "no device tree: address {a:#x} is not in RAM"),
            Self::TooShort { len } => {
                write!(f, "device tree is {len} bytes, too short for its header")
            }
            Self::BadMagic(m) => {
                write!(f, "no device tree: magic is {m:#010x}, expected {FDT_MAGIC:#010x}")
            }
            Self::Truncated { totalsize, len } => write!(
                f,
                "device tree is truncated: totalsize is {totalsize} bytes, {len} available"
            ),
            Self::TooLarge { totalsize, max_len } => {
                write!(f, "device tree totalsize {totalsize} is over the {max_len}-byte limit")
            }
            Self::TotalSizeTooSmall(t) => {
                write!(f, "device tree totalsize {t} is smaller than its {HEADER_LEN}-byte header")
            }
            Self::Parse(e) => write!(f, "malformed device tree: {e}"),
            Self::NoCpusNode => write!(f, "device tree has no /cpus node"),
            Self::NoCpus => write!(f, "device tree /cpus has no enabled CPU node"),
            Self::CpuReg(n) => write!(f, "CPU node {n} has no usable reg"),
            Self::BadMpidr(m) => write!(f, "CPU MPIDR {m:#x} has bits outside the affinity fields"),
            Self::DuplicateMpidr(m) => write!(f, "two CPU nodes have MPIDR {m:#x}"),
            Self::TooManyCpus(n) => {
                write!(f, "device tree has {n} CPUs; at most {MAX_CPUS} are supported")
            }
            Self::NoGic => write!(
                f,
                "device tree has no GIC node (arm,cortex-a15-gic, arm,gic-400 or arm,gic-v3)"
            ),
            Self::GicReg { found, needed } => {
                write!(f, "GIC reg has {found} entries, {needed} needed")
            }
            Self::RedistributorRegions(n) => write!(
                f,
                "GICv3 #redistributor-regions is {n}; 1 to {MAX_REDISTRIBUTOR_REGIONS} supported"
            ),
            Self::NoPsciMethod => write!(f, "PSCI node has no method"),
            Self::BadPsciMethod(m) => {
                write!(f, "PSCI method \"{m}\" is neither \"hvc\" nor \"smc\"")
            }
            Self::BadProperty { node, property } => {
                write!(f, "device tree node {node}: malformed {property}")
            }
        }
    }
}

impl core::error::Error for DtError {}

impl From<FdtParseError> for DtError {
    fn from(e: FdtParseError) -> Self {
        Self::Parse(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cut_on_a_character_boundary() {
        let short = Name::new("cpu@1");
        assert_eq!(
            (short.as_str(), short.is_cut(), short.to_string()),
            ("cpu@1", false, "cpu@1".into())
        );
        assert!(short == "cpu@1");
        let long = "x".repeat(39) + "é" + "tail";
        let cut = Name::new(&long);
        assert_eq!(cut.as_str(), "x".repeat(39), "é (2 bytes) would end past byte 40");
        assert!(cut.is_cut());
        assert_eq!(cut.to_string(), "x".repeat(39) + "...");
        assert!(cut != "x".repeat(39).as_str(), "a cut name equals no string");
        assert_eq!(format!("{:?}", Name::new("svc")), "\"svc\"");
    }
}
