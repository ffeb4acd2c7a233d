//! The board this image was built for, and the CPUs of the machine it booted on.
//!
//! The one place a board is chosen (at build time, by `ARMSTOP_BOARD`; see `build.rs`):
//! everything else reads [`BOARD`] and acts on its data. The CPU list is set once, by the boot
//! CPU before any other CPU runs: from the device tree where the board requires one, from the
//! board's table otherwise ([`set_cpus`]).
//!
//! Invariant: logical CPU ids are `0..cpu_count()`, `cpu_count() <= NR_CPUS`, and id 0 is the
//! boot CPU; every per-CPU table in the firmware has `NR_CPUS` entries.

use armstop_boards::{Board, MPIDR_AFFINITY_MASK};
use armstop_stopper::CpuSet;

include!(concat!(env!("OUT_DIR"), "/board.rs"));

const _: () = assert!(NR_CPUS >= 1 && NR_CPUS <= armstop_boards::MAX_CPUS);

struct CpuTable {
    mpidr: [u64; NR_CPUS],
    len: usize,
}

static CPUS: spin::Once<CpuTable> = spin::Once::new();

/// Why a CPU list cannot be this machine's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuListError {
    /// More CPUs than the image has room for.
    TooMany {
        /// CPUs in the list.
        found: usize,
    },
    /// No CPUs.
    Empty,
    /// The boot CPU's MPIDR is not in the list.
    NoBootCpu(u64),
    /// Set twice.
    AlreadySet,
}

impl core::fmt::Display for CpuListError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooMany { found } => write!(
                f,
                "the machine has {found} CPUs, but this image has room for {NR_CPUS} (board \
                 {}): rebuild with ARMSTOP_MAX_CPUS={found} or more",
                BOARD.name
            ),
            Self::Empty => write!(f, "the CPU list is empty"),
            Self::NoBootCpu(m) => write!(f, "the boot CPU (MPIDR {m:#x}) is not in the CPU list"),
            Self::AlreadySet => write!(f, "the CPU list was already set"),
        }
    }
}

/// Sets the machine's CPUs: `mpidrs` (affinity values) in the order the firmware description
/// gives them, with the boot CPU (MPIDR `boot`) moved to logical id 0 (as Linux's
/// `cpu_logical_map` does) and the others in order after it. Once, on the boot CPU, before
/// any other CPU runs.
pub fn set_cpus(mpidrs: &[u64], boot: u64) -> Result<(), CpuListError> {
    if mpidrs.is_empty() {
        return Err(CpuListError::Empty);
    }
    if mpidrs.len() > NR_CPUS {
        return Err(CpuListError::TooMany { found: mpidrs.len() });
    }
    let boot = boot & MPIDR_AFFINITY_MASK;
    if !mpidrs.iter().any(|&m| m & MPIDR_AFFINITY_MASK == boot) {
        return Err(CpuListError::NoBootCpu(boot));
    }
    let mut t = CpuTable { mpidr: [0; NR_CPUS], len: 1 };
    t.mpidr[0] = boot;
    for m in mpidrs.iter().map(|m| m & MPIDR_AFFINITY_MASK).filter(|&m| m != boot) {
        t.mpidr[t.len] = m;
        t.len += 1;
    }
    let mut fresh = false;
    CPUS.call_once(|| {
        fresh = true;
        t
    });
    if fresh { Ok(()) } else { Err(CpuListError::AlreadySet) }
}

/// Number of CPUs on the machine (logical ids `0..cpu_count()`); 0 until [`set_cpus`].
pub fn cpu_count() -> usize {
    CPUS.get().map_or(0, |t| t.len)
}

/// Every CPU of the machine, as a set.
pub fn all_cpus() -> CpuSet {
    CpuSet::first_n(cpu_count())
}

/// MPIDR affinity value of logical CPU `cpu` (`None` for an id the machine does not have).
pub fn mpidr(cpu: usize) -> Option<u64> {
    CPUS.get().filter(|t| cpu < t.len).map(|t| t.mpidr[cpu])
}

/// Logical id of the CPU with this MPIDR, if the machine has it.
pub fn logical_id(mpidr: u64) -> Option<usize> {
    let aff = mpidr & MPIDR_AFFINITY_MASK;
    CPUS.get().and_then(|t| t.mpidr[..t.len].iter().position(|&m| m == aff))
}
