//! Comparing what the device tree says with a board's fixed data.

use core::fmt;

use armstop_boards::{Board, GicLayout};

use crate::{Gic, Machine};

/// The first field in which a [`Board`] and a [`Machine`] disagree, with both values.
/// `Display` names the field: `cpu count: board says 4, device tree says 8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// A different number of CPUs.
    CpuCount {
        /// The board's.
        board: usize,
        /// The device tree's.
        dt: usize,
    },
    /// Logical CPU `cpu` has a different MPIDR.
    Mpidr {
        /// Logical CPU id (index in both tables).
        cpu: usize,
        /// The board's.
        board: u64,
        /// The device tree's.
        dt: u64,
    },
    /// A different GIC architecture version (2 or 3).
    GicVersion {
        /// The board's.
        board: u8,
        /// The device tree's.
        dt: u8,
    },
    /// A different GIC distributor base.
    GicDistributor {
        /// The board's.
        board: u64,
        /// The device tree's.
        dt: u64,
    },
    /// A different GICv2 CPU interface base.
    GicCpuInterface {
        /// The board's.
        board: u64,
        /// The device tree's.
        dt: u64,
    },
    /// A different first GICv3 redistributor frame.
    GicRedistributor {
        /// The board's.
        board: u64,
        /// The device tree's (its first redistributor region's base).
        dt: u64,
    },
    /// A different PL011 base, or none in the device tree.
    Uart {
        /// The board's.
        board: u64,
        /// The device tree's.
        dt: Option<u64>,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::CpuCount { board, dt } => {
                write!(f, "cpu count: board says {board}, device tree says {dt}")
            }
            Self::Mpidr { cpu, board, dt } => {
                write!(f, "cpu {cpu} MPIDR: board {board:#x}, device tree {dt:#x}")
            }
            Self::GicVersion { board, dt } => {
                write!(f, "GIC version: board says v{board}, device tree says v{dt}")
            }
            Self::GicDistributor { board, dt } => {
                write!(f, "GIC distributor: board {board:#x}, device tree {dt:#x}")
            }
            Self::GicCpuInterface { board, dt } => {
                write!(f, "GIC CPU interface: board {board:#x}, device tree {dt:#x}")
            }
            Self::GicRedistributor { board, dt } => {
                write!(f, "GIC redistributor: board {board:#x}, device tree {dt:#x}")
            }
            Self::Uart { board, dt: Some(dt) } => {
                write!(f, "UART: board {board:#x}, device tree {dt:#x}")
            }
            Self::Uart { board, dt: None } => {
                write!(f, "UART: board {board:#x}, device tree has no PL011")
            }
        }
    }
}

impl core::error::Error for Mismatch {}

/// Checks that `m` describes `board`: the same CPUs, MPIDR for MPIDR in the same order (the
/// board's logical CPU ids are indices into its table), then [`check_board_devices`]. A board
/// whose table is empty because the device tree gives the CPUs fails this with
/// [`Mismatch::CpuCount`]; check such a board with [`check_board_devices`].
pub fn check_board(board: &Board, m: &Machine) -> Result<(), Mismatch> {
    let dt = m.cpus();
    if board.cpus.len() != dt.len() {
        return Err(Mismatch::CpuCount { board: board.cpus.len(), dt: dt.len() });
    }
    for (cpu, (&board, &dt)) in board.cpus.iter().zip(dt).enumerate() {
        if board != dt {
            return Err(Mismatch::Mpidr { cpu, board, dt });
        }
    }
    check_board_devices(board, m)
}

/// Checks that the devices the firmware drives from `board`'s data are where `m` says: the GIC
/// (version, distributor, and the CPU interface or first redistributor frame; a
/// [`GicLayout::Probe`] board matches either version) and the PL011. The CPUs are not compared:
/// for a board whose CPU list comes from the device tree (QEMU `virt`, any `-smp`).
pub fn check_board_devices(board: &Board, m: &Machine) -> Result<(), Mismatch> {
    let same = |board: u64, dt: u64, what: fn(u64, u64) -> Mismatch| {
        if board == dt { Ok(()) } else { Err(what(board, dt)) }
    };
    let gicd = |board, dt| Mismatch::GicDistributor { board, dt };
    let gicc = |board, dt| Mismatch::GicCpuInterface { board, dt };
    let gicr = |board, dt| Mismatch::GicRedistributor { board, dt };
    match (board.gic, m.gic) {
        (GicLayout::V2 { gicd: d, gicc: c }, Gic::V2 { gicd: dt_d, gicc: dt_c })
        | (GicLayout::Probe { gicd: d, gicc_v2: c, .. }, Gic::V2 { gicd: dt_d, gicc: dt_c }) => {
            same(d, dt_d.base, gicd)?;
            same(c, dt_c.base, gicc)?;
        }
        (GicLayout::V3 { gicd: d, gicr: r }, Gic::V3 { gicd: dt_d, redistributors })
        | (GicLayout::Probe { gicd: d, gicr_v3: r, .. }, Gic::V3 { gicd: dt_d, redistributors }) => {
            same(d, dt_d.base, gicd)?;
            same(r, redistributors.first().base, gicr)?;
        }
        (GicLayout::V2 { .. }, Gic::V3 { .. }) => {
            return Err(Mismatch::GicVersion { board: 2, dt: 3 });
        }
        (GicLayout::V3 { .. }, Gic::V2 { .. }) => {
            return Err(Mismatch::GicVersion { board: 3, dt: 2 });
        }
    }
    if m.uart != Some(board.uart.base) {
        return Err(Mismatch::Uart { board: board.uart.base, dt: m.uart });
    }
    Ok(())
}
