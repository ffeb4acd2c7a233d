//! Identity-map translation tables for AArch64 stage 1 at EL1, 4 KiB granule, 39-bit VA
//! (`TCR_EL1.T0SZ = 25`, walks start at level 1).
//!
//! The firmware describes memory as ranges with a [`Kind`]; [`IdMap::set`] writes the largest
//! descriptors that fit (1 GiB and 2 MiB blocks, 4 KiB pages) and splits an existing block into a
//! next-level table when a later range covers only part of it. That one primitive gives both the
//! W^X image layout (RAM as read-write no-execute, then `.text` read-only executable over it) and
//! unmapped stack guard pages ([`Kind::Unmapped`] over a page of RAM).
//!
//! Invariant: the tables are built once, before the MMU is enabled, and not changed while any
//! core walks them. Changing a live mapping needs break-before-make and TLB maintenance, which
//! this crate does not do. Tables come from a caller-provided pool and are never freed.
//!
//! Written by hand rather than with `aarch64-paging`: that crate allocates its tables from a
//! global allocator and armstop has no heap; what the firmware needs is ~200 lines with tests.
//!
//! | here | Linux (arm64) |
//! |---|---|
//! | [`IdMap`], [`IdMap::root_address`] | the boot identity map, `idmap_pg_dir`, for `TTBR0_EL1` |
//! | [`IdMap::set`] | `__create_pgd_mapping`: the largest blocks that fit, pages elsewhere |
//! | [`Kind::Data`], [`Kind::Code`], [`Kind::ReadOnly`] | `PAGE_KERNEL`, `PAGE_KERNEL_ROX`, `PAGE_KERNEL_RO` |
//! | [`Kind::Device`] | `PROT_DEVICE_nGnRE` |
//!
//! ```
//! use armstop_idmap::{IdMap, Kind, PAGE, Table};
//!
//! let mut pool = vec![Table::EMPTY; 8];
//! let mut map = IdMap::new(&mut pool).unwrap();
//! // A GiB of RAM as data: one 1 GiB block in the root table.
//! map.set(0x4000_0000, 0x4000_0000, Kind::Data).unwrap();
//! assert_eq!(map.tables_used(), 1);
//! // The image's code inside it: the block splits into 2 MiB blocks, one of them into pages.
//! map.set(0x4008_0000, 16 * PAGE, Kind::Code).unwrap();
//! assert_eq!(map.tables_used(), 3);
//! // A guard page below a stack, and a UART.
//! map.set(0x4100_0000, PAGE, Kind::Unmapped).unwrap();
//! map.set(0x0900_0000, PAGE, Kind::Device).unwrap();
//!
//! assert_eq!(map.translate(0x4008_1234), Some((0x4008_1234, Kind::Code)));
//! assert_eq!(map.translate(0x4009_0000), Some((0x4009_0000, Kind::Data)));
//! assert_eq!(map.translate(0x4100_0008), None);
//! assert_eq!(map.translate(0x0900_0018), Some((0x0900_0018, Kind::Device)));
//! assert!(map.set(0x4000_0100, PAGE, Kind::Data).is_err(), "not 4 KiB aligned");
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

/// Entries per table.
pub const ENTRIES: usize = 512;
/// Bytes per page.
pub const PAGE: u64 = 4096;
/// Size of the identity-mapped address space (39-bit VA).
pub const VA_LIMIT: u64 = 1 << 39;

/// `MAIR_EL1` value: index 0 normal write-back read/write-allocate (inner and outer),
/// index 1 Device-nGnRE.
pub const MAIR: u64 = 0xff | (0x04 << 8);
const ATTR_NORMAL: u64 = 0 << 2;
const ATTR_DEVICE: u64 = 1 << 2;

const VALID: u64 = 1 << 0;
const TABLE_OR_PAGE: u64 = 1 << 1;
const AP_RO: u64 = 1 << 7;
const SH_INNER: u64 = 0b11 << 8;
const AF: u64 = 1 << 10;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;
const ADDR_MASK: u64 = 0x0000_ffff_ffff_f000;

/// `TCR_EL1` for these tables: T0SZ = 25, TTBR0 walks inner/outer write-back cacheable and inner
/// shareable, 4 KiB granule, TTBR1 walks disabled (EPD1), IPS from `ID_AA64MMFR0_EL1.PARange`
/// (passed in, capped at 48 bits).
pub const fn tcr(pa_range: u64) -> u64 {
    let ips = if pa_range > 5 { 5 } else { pa_range };
    25 | (0b01 << 8) | (0b01 << 10) | (0b11 << 12) | (1 << 23) | (ips << 32)
}

/// How a range is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Normal cacheable memory, read-write, never executable.
    Data,
    /// Normal cacheable memory, read-only, executable at EL1 (the image's code).
    Code,
    /// Normal cacheable memory, read-only, never executable.
    ReadOnly,
    /// Device-nGnRE, read-write, never executable.
    Device,
    /// No translation: any access faults (guard pages).
    Unmapped,
}

impl Kind {
    fn attrs(self) -> u64 {
        match self {
            Kind::Data => ATTR_NORMAL | SH_INNER | AF | PXN | UXN,
            Kind::Code => ATTR_NORMAL | SH_INNER | AF | AP_RO | UXN,
            Kind::ReadOnly => ATTR_NORMAL | SH_INNER | AF | AP_RO | PXN | UXN,
            // Shareability is ignored for device memory (always outer shareable).
            Kind::Device => ATTR_DEVICE | AF | PXN | UXN,
            Kind::Unmapped => 0,
        }
    }

    fn from_attrs(desc: u64) -> Kind {
        if desc & VALID == 0 {
            Kind::Unmapped
        } else if desc & (0b111 << 2) == ATTR_DEVICE {
            Kind::Device
        } else if desc & PXN == 0 {
            Kind::Code
        } else if desc & AP_RO != 0 {
            Kind::ReadOnly
        } else {
            Kind::Data
        }
    }
}

/// One translation table.
#[derive(Clone, Copy)]
#[repr(C, align(4096))]
pub struct Table(pub [u64; ENTRIES]);

impl Table {
    /// An all-invalid table.
    pub const EMPTY: Table = Table([0; ENTRIES]);
}

/// Why a mapping could not be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// Base or size not a multiple of 4 KiB, or the range is empty.
    Misaligned {
        /// Start of the range.
        base: u64,
        /// Its length.
        size: u64,
    },
    /// The range reaches past the 39-bit address space.
    OutOfRange {
        /// Start of the range.
        base: u64,
        /// Its length.
        size: u64,
    },
    /// The table pool is used up.
    NoTables,
}

impl core::fmt::Display for MapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Misaligned { base, size } => {
                write!(f, "range {base:#x}+{size:#x} is empty or not 4 KiB aligned")
            }
            Self::OutOfRange { base, size } => {
                write!(f, "range {base:#x}+{size:#x} is beyond the 39-bit address space")
            }
            Self::NoTables => write!(f, "translation table pool exhausted"),
        }
    }
}

/// Bytes one entry covers at `level` (1, 2 or 3).
const fn entry_size(level: usize) -> u64 {
    1 << (12 + 9 * (3 - level))
}

/// An identity map under construction, over a pool of tables; table 0 is the level 1 root.
pub struct IdMap<'a> {
    pool: &'a mut [Table],
    used: usize,
}

impl<'a> IdMap<'a> {
    /// Starts an empty map (everything unmapped) in `pool`, which must hold at least one table.
    pub fn new(pool: &'a mut [Table]) -> Result<Self, MapError> {
        let root = pool.first_mut().ok_or(MapError::NoTables)?;
        *root = Table::EMPTY;
        Ok(Self { pool, used: 1 })
    }

    /// Address of the root table: the value for `TTBR0_EL1` (the pool is identity mapped).
    pub fn root_address(&self) -> u64 {
        self.pool.as_ptr() as u64
    }

    /// How many tables are in use.
    pub fn tables_used(&self) -> usize {
        self.used
    }

    /// Maps `[base, base + size)` one-to-one as `kind`, replacing whatever was mapped there.
    pub fn set(&mut self, base: u64, size: u64, kind: Kind) -> Result<(), MapError> {
        if size == 0 || !base.is_multiple_of(PAGE) || !size.is_multiple_of(PAGE) {
            return Err(MapError::Misaligned { base, size });
        }
        if base.checked_add(size).is_none_or(|end| end > VA_LIMIT) {
            return Err(MapError::OutOfRange { base, size });
        }
        self.set_in(0, 1, base, base + size, kind)
    }

    fn set_in(
        &mut self,
        table: usize,
        level: usize,
        start: u64,
        end: u64,
        kind: Kind,
    ) -> Result<(), MapError> {
        let size = entry_size(level);
        let mut addr = start;
        while addr < end {
            let entry_base = addr & !(size - 1);
            let entry_end = entry_base + size;
            let idx = ((addr / size) % ENTRIES as u64) as usize;
            let sub_end = end.min(entry_end);
            let desc = self.pool[table].0[idx];
            if addr == entry_base && sub_end == entry_end {
                // The whole entry: a block (levels 1 and 2) or page (level 3). A table it
                // replaces is abandoned, never reused: the pool is small and maps are built once.
                self.pool[table].0[idx] = Self::leaf(level, entry_base, kind);
            } else {
                let next = if level < 3 && desc & (VALID | TABLE_OR_PAGE) == VALID | TABLE_OR_PAGE {
                    self.index_of(desc & ADDR_MASK)
                } else {
                    // Split: a next-level table reproducing what the entry mapped.
                    let was = Kind::from_attrs(desc);
                    let next = self.alloc()?;
                    let child = entry_size(level + 1);
                    for i in 0..ENTRIES {
                        self.pool[next].0[i] =
                            Self::leaf(level + 1, entry_base + i as u64 * child, was);
                    }
                    let table_addr = &self.pool[next] as *const Table as u64;
                    self.pool[table].0[idx] = table_addr | VALID | TABLE_OR_PAGE;
                    next
                };
                self.set_in(next, level + 1, addr, sub_end, kind)?;
            }
            addr = sub_end;
        }
        Ok(())
    }

    fn leaf(level: usize, addr: u64, kind: Kind) -> u64 {
        if kind == Kind::Unmapped {
            return 0;
        }
        let ty = if level == 3 { VALID | TABLE_OR_PAGE } else { VALID };
        addr | ty | kind.attrs()
    }

    fn alloc(&mut self) -> Result<usize, MapError> {
        if self.used == self.pool.len() {
            return Err(MapError::NoTables);
        }
        self.pool[self.used] = Table::EMPTY;
        self.used += 1;
        Ok(self.used - 1)
    }

    fn index_of(&self, addr: u64) -> usize {
        let base = self.pool.as_ptr() as u64;
        ((addr - base) / core::mem::size_of::<Table>() as u64) as usize
    }

    /// What `va` translates to: the output address and how it is mapped, or `None` if unmapped.
    /// Walks the tables as the hardware would, so tests (host and target) can check the map.
    pub fn translate(&self, va: u64) -> Option<(u64, Kind)> {
        if va >= VA_LIMIT {
            return None;
        }
        let mut table = 0;
        for level in 1..=3 {
            let size = entry_size(level);
            let desc = self.pool[table].0[((va / size) % ENTRIES as u64) as usize];
            if desc & VALID == 0 {
                return None;
            }
            let is_table = desc & TABLE_OR_PAGE != 0;
            if level < 3 && is_table {
                table = self.index_of(desc & ADDR_MASK);
                continue;
            }
            let out = (desc & ADDR_MASK & !(size - 1)) | (va & (size - 1));
            return Some((out, Kind::from_attrs(desc)));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: u64 = 1 << 30;
    const M2: u64 = 2 << 20;

    fn pool() -> Vec<Table> {
        vec![Table::EMPTY; 16]
    }

    #[test]
    fn large_aligned_ranges_use_blocks() {
        let mut p = pool();
        let mut m = IdMap::new(&mut p).unwrap();
        m.set(G, G, Kind::Data).unwrap();
        m.set(0, M2, Kind::Device).unwrap();
        assert_eq!(m.tables_used(), 2, "1 GiB block at level 1, 2 MiB block in one level 2 table");
        assert_eq!(m.translate(G + 0x1234), Some((G + 0x1234, Kind::Data)));
        assert_eq!(m.translate(0x1000), Some((0x1000, Kind::Device)));
        assert_eq!(m.translate(M2), None);
        assert_eq!(m.translate(2 * G), None);
    }

    #[test]
    fn later_ranges_split_blocks_and_win() {
        let mut p = pool();
        let mut m = IdMap::new(&mut p).unwrap();
        m.set(G, G, Kind::Data).unwrap();
        m.set(G + 0x8_0000, 0x3000, Kind::Code).unwrap();
        m.set(G + 0x8_3000, 0x1000, Kind::Unmapped).unwrap();
        assert_eq!(m.translate(G + 0x7_ffff), Some((G + 0x7_ffff, Kind::Data)));
        assert_eq!(m.translate(G + 0x8_0000), Some((G + 0x8_0000, Kind::Code)));
        assert_eq!(m.translate(G + 0x8_2fff), Some((G + 0x8_2fff, Kind::Code)));
        assert_eq!(m.translate(G + 0x8_3000), None, "guard page");
        assert_eq!(m.translate(G + 0x8_4000), Some((G + 0x8_4000, Kind::Data)));
        assert_eq!(
            m.translate(G + G - 1),
            Some((G + G - 1, Kind::Data)),
            "rest of the split block"
        );
        assert_eq!(m.tables_used(), 3);
    }

    #[test]
    fn every_kind_round_trips_through_its_descriptor() {
        for kind in [Kind::Data, Kind::Code, Kind::ReadOnly, Kind::Device] {
            let mut p = pool();
            let mut m = IdMap::new(&mut p).unwrap();
            m.set(0x20_0000, 0x1000, kind).unwrap();
            assert_eq!(m.translate(0x20_0000), Some((0x20_0000, kind)));
        }
    }

    #[test]
    fn only_code_is_executable_and_only_data_and_device_writable() {
        for (kind, exec, write) in [
            (Kind::Data, false, true),
            (Kind::Code, true, false),
            (Kind::ReadOnly, false, false),
            (Kind::Device, false, true),
        ] {
            let a = kind.attrs();
            assert_eq!(a & PXN == 0, exec, "{kind:?}");
            assert_eq!(a & AP_RO == 0, write, "{kind:?}");
            assert_ne!(a & UXN, 0, "nothing runs at EL0");
            assert_ne!(a & AF, 0, "no access-flag faults");
        }
    }

    #[test]
    fn bad_ranges_are_refused() {
        let mut p = pool();
        let mut m = IdMap::new(&mut p).unwrap();
        assert_eq!(
            m.set(0x800, 0x1000, Kind::Data),
            Err(MapError::Misaligned { base: 0x800, size: 0x1000 })
        );
        assert_eq!(
            m.set(0x1000, 0, Kind::Data),
            Err(MapError::Misaligned { base: 0x1000, size: 0 })
        );
        assert_eq!(
            m.set(VA_LIMIT - PAGE, 2 * PAGE, Kind::Data),
            Err(MapError::OutOfRange { base: VA_LIMIT - PAGE, size: 2 * PAGE })
        );
        assert_eq!(
            m.set(u64::MAX - 0xfff, PAGE, Kind::Data),
            Err(MapError::OutOfRange { base: u64::MAX - 0xfff, size: PAGE })
        );
    }

    #[test]
    fn pool_exhaustion_is_an_error_not_corruption() {
        let mut p = vec![Table::EMPTY; 2];
        let mut m = IdMap::new(&mut p).unwrap();
        m.set(0, PAGE, Kind::Data).unwrap_err();
        assert_eq!(m.set(0, PAGE, Kind::Data), Err(MapError::NoTables));
        assert_eq!(IdMap::new(&mut []).err(), Some(MapError::NoTables));
    }

    #[test]
    fn descriptors_have_the_architected_layout() {
        let mut p = pool();
        let mut m = IdMap::new(&mut p).unwrap();
        m.set(G, G, Kind::Data).unwrap();
        m.set(0, PAGE, Kind::Device).unwrap();
        let root = m.root_address();
        // Level 1 block for 1 GiB..2 GiB: bits 1:0 = 0b01, output address in 47:30.
        assert_eq!(p[0].0[1] & 0b11, 0b01);
        assert_eq!(p[0].0[1] & ADDR_MASK, G);
        // Level 1 entry 0 is a table pointing into the pool; level 3 page has bits 1:0 = 0b11.
        assert_eq!(p[0].0[0] & 0b11, 0b11);
        assert_eq!(root, p.as_ptr() as u64);
        let l2 = &p[1];
        assert_eq!(p[0].0[0] & ADDR_MASK, l2 as *const Table as u64);
        let l3 = &p[2];
        assert_eq!(l3.0[0] & 0b11, 0b11);
        assert_eq!(l3.0[0] & (0b111 << 2), ATTR_DEVICE);
        assert_eq!(tcr(2) & 0x3f, 25);
        assert_eq!(tcr(2) >> 32 & 0b111, 2);
        assert_eq!(tcr(7) >> 32 & 0b111, 5, "IPS capped at 48 bits");
    }
}
