//! The machine as the boot device tree describes it.
//!
//! QEMU's `virt` machine hands the firmware a flattened device tree (FDT) that says what this
//! run of QEMU has: how many CPUs and which MPIDR each has (`-smp`), where RAM is (`-m`), which
//! GIC (`gic-version=`), how PSCI is reached (`virtualization=`), where the PL011 is and which
//! PPIs the generic timer uses. [`parse`] reads such a blob with `dtoolkit` into a [`Machine`],
//! a plain value with fixed-size storage (no heap: it is `Copy`, about 4 KiB for
//! [`MAX_CPUS`] MPIDRs); [`blob_at`] finds the blob in memory from the address the boot stub
//! passes; [`check_board`] and [`check_board_devices`] compare a [`Machine`] with a board's fixed
//! data ([`armstop_boards::Board`]) and name the first field that differs, with both values.
//!
//! Invariant: only [`parse`] makes a [`Machine`]'s CPU list and a GIC's [`Redistributors`]
//! (their fields are private), so the CPU list always holds at least one and at most
//! [`MAX_CPUS`] MPIDRs, each made of affinity bits only ([`MPIDR_AFFINITY_MASK`]) and none
//! twice, and a GICv3 always has 1 to [`MAX_REDISTRIBUTOR_REGIONS`] redistributor regions (a
//! GICv2 its distributor and CPU interface). Any blob that does not give all of that, and any
//! malformed blob at all, yields a [`DtError`] naming what is wrong: parsing never panics,
//! whatever the bytes (the tests feed it truncated, bit-flipped and randomly edited blobs).
//!
//! What is read, and from where (the device tree specification's and the bindings' rules):
//! - CPUs: the children of `/cpus` with `device_type = "cpu"`, in tree order, their `reg`'s
//!   first entry read with `/cpus`'s `#address-cells` (1 or 2; `#size-cells` must be 0).
//! - RAM: the first root node with `device_type = "memory"`, its first `reg` entry.
//! - GIC (`arm,gic-v3`, `arm,cortex-a15-gic`, `arm,gic-400`), PSCI (`arm,psci-1.0`,
//!   `arm,psci-0.2`, `arm,psci`), UART (`arm,pl011`), timer (`arm,armv8-timer`): the first root
//!   node compatible with one of those, its `reg` read with the root's `#address-cells` and
//!   `#size-cells` (1 or 2 each). Nodes under a bus (`ranges`) are not searched, since their
//!   addresses would need translating; QEMU `virt` has none there. The UART is the PL011 that
//!   `/chosen`'s `stdout-path` names (a path or an alias, options after `:` ignored) if it
//!   names one, else the first PL011.
//! - Nodes whose `status` is present and neither `"okay"` nor `"ok"` are skipped throughout.
//!
//! | here | Linux (`drivers/of/`) |
//! |---|---|
//! | [`parse`] | `unflatten_device_tree`, then the lookups below (here nothing is unflattened: one pass over the blob) |
//! | the first compatible node | `of_find_compatible_node` |
//! | `status` | `of_device_is_available` |
//! | `reg` with `#address-cells` / `#size-cells` | `of_address_to_resource`, `of_n_addr_cells` / `of_n_size_cells` |
//! | the UART `stdout-path` names | `of_stdout` |
//! | [`Machine::cpus`], [`Machine::logical_id`] | `of_get_cpu_hwid` over `/cpus`, then `cpu_logical_map` |
//!
//! ```
//! use armstop_boards::qemu_virt;
//! use armstop_devicetree::{Gic, PsciMethod, check_board_devices, parse};
//!
//! // What QEMU 10's `virt,gic-version=3 -smp 4` hands the firmware (scripts/dump-dtbs.sh).
//! let dtb = include_bytes!("../tests/data/virt-gicv3-smp4.dtb");
//! let m = parse(dtb).unwrap();
//! assert_eq!(m.cpus(), &[0, 1, 2, 3]);
//! assert_eq!(m.logical_id(0x8000_0002), Some(2)); // MPIDR_EL1 has bit 31 set
//! assert!(matches!(m.gic, Gic::V3 { .. }));
//! assert_eq!(m.psci, Some(PsciMethod::Hvc));
//! assert_eq!(m.uart, Some(0x0900_0000));
//! // The board data's devices are where the tree says.
//! assert_eq!(check_board_devices(&qemu_virt::BOARD, &m), Ok(()));
//! // Any malformed blob is an error, never a panic.
//! assert!(parse(&dtb[..100]).is_err());
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

mod check;
mod error;
mod parse;

use core::fmt;

use armstop_boards::{MPIDR_AFFINITY_MASK, PsciConduit};
pub use armstop_cpuset::MAX_CPUS;

pub use check::{Mismatch, check_board, check_board_devices};
pub use error::{DtError, Name};
pub use parse::{blob_at, blob_in, parse};

/// The FDT header's magic number (big-endian at offset 0).
pub const FDT_MAGIC: u32 = 0xd00d_feed;

/// Size of the FDT header (version 17): ten big-endian 32-bit fields.
pub const HEADER_LEN: usize = 40;

/// Most GICv3 redistributor regions a [`Machine`] holds. QEMU `virt` uses one up to 123 CPUs
/// and a second (in high memory) beyond.
pub const MAX_REDISTRIBUTOR_REGIONS: usize = 4;

/// A physical address range from a `reg` property.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Region {
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
}

/// The GICv3 redistributor regions, in `reg` order (each a run of per-CPU frames).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Redistributors {
    /// `regions[..count]` are used; the rest stay zero.
    regions: [Region; MAX_REDISTRIBUTOR_REGIONS],
    count: usize,
}

impl Redistributors {
    /// The regions, at least one.
    pub fn regions(&self) -> &[Region] {
        // `count` is 1..=MAX_REDISTRIBUTOR_REGIONS by construction; `get` keeps this panic-free.
        self.regions.get(..self.count).unwrap_or(&self.regions)
    }

    /// The first region: where CPU 0's redistributor frame usually is.
    pub fn first(&self) -> Region {
        self.regions[0]
    }
}

impl fmt::Debug for Redistributors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.regions()).finish()
    }
}

/// The interrupt controller the device tree names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gic {
    /// GICv2 (`arm,cortex-a15-gic` or `arm,gic-400`): `reg` is GICD, GICC (then GICH, GICV,
    /// which are not kept).
    V2 {
        /// Distributor.
        gicd: Region,
        /// Memory-mapped CPU interface.
        gicc: Region,
    },
    /// GICv3 (`arm,gic-v3`): `reg` is GICD, then `#redistributor-regions` (default 1) GICR
    /// regions (then GICC, GICH, GICV, which are not kept).
    V3 {
        /// Distributor.
        gicd: Region,
        /// Redistributor regions.
        redistributors: Redistributors,
    },
}

impl Gic {
    /// The architecture version: 2 or 3.
    pub fn version(&self) -> u8 {
        match self {
            Self::V2 { .. } => 2,
            Self::V3 { .. } => 3,
        }
    }

    /// The distributor, either version.
    pub fn gicd(&self) -> Region {
        match *self {
            Self::V2 { gicd, .. } | Self::V3 { gicd, .. } => gicd,
        }
    }
}

/// How PSCI is called, from `/psci`'s `method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciMethod {
    /// `"hvc"`: the hypervisor (or QEMU's built-in PSCI at EL1) answers.
    Hvc,
    /// `"smc"`: EL3 firmware answers (QEMU with `virtualization=on`, entered at EL2).
    Smc,
}

impl From<PsciMethod> for PsciConduit {
    fn from(m: PsciMethod) -> Self {
        match m {
            PsciMethod::Hvc => PsciConduit::Hvc,
            PsciMethod::Smc => PsciConduit::Smc,
        }
    }
}

/// What the device tree says about the machine: the result of [`parse`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Machine {
    /// `cpus[..ncpus]` are the CPUs' MPIDRs; the rest stay zero.
    cpus: [u64; MAX_CPUS],
    ncpus: usize,
    /// The first RAM region, if there is a memory node.
    pub memory: Option<Region>,
    /// The interrupt controller.
    pub gic: Gic,
    /// The PSCI conduit, if there is a PSCI node.
    pub psci: Option<PsciMethod>,
    /// The console PL011's register base, if there is one.
    pub uart: Option<u64>,
    /// The generic timer's PPIs (interrupt id minus 16; the `interrupts` cells as written), in
    /// the binding's order: secure physical, non-secure physical, virtual, hypervisor physical.
    /// On QEMU `virt`: 13, 14, 11, 10 (INTIDs 29, 30, 27, 26). `None` without a timer node.
    pub timer_ppis: Option<[u32; 4]>,
}

impl Machine {
    /// The CPUs' MPIDR affinity values (`MPIDR_EL1 & MPIDR_AFFINITY_MASK`), in device tree
    /// order: at least one, at most [`MAX_CPUS`], no two equal. QEMU lists the boot CPU first.
    pub fn cpus(&self) -> &[u64] {
        // `ncpus` is 1..=MAX_CPUS by construction; `get` keeps this panic-free.
        self.cpus.get(..self.ncpus).unwrap_or(&self.cpus)
    }

    /// Index in [`Machine::cpus`] (a logical CPU id) of the CPU with this MPIDR; bits outside
    /// the affinity fields (such as bit 31, RES1) are ignored.
    pub fn logical_id(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & MPIDR_AFFINITY_MASK;
        self.cpus().iter().position(|&m| m == aff)
    }
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("cpus", &self.cpus())
            .field("memory", &self.memory)
            .field("gic", &self.gic)
            .field("psci", &self.psci)
            .field("uart", &self.uart)
            .field("timer_ppis", &self.timer_ppis)
            .finish()
    }
}
