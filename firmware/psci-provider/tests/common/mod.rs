//! A fake board for the provider's tests: four CPUs with affinities 0, 1, 2 and 0x100 (a second
//! cluster, so logical ids are not Aff0), RAM at 0x4000_0000..0x8000_0000, and counters for what
//! the provider asked of the hardware. Shared by the host tests and the loom models, which use
//! different parts of it.
#![allow(dead_code)]

use armstop_psci_provider::Platform;
use std::sync::atomic::{AtomicUsize, Ordering};

/// MPIDR affinity of logical CPUs 0..4.
pub const AFFINITIES: [u64; 4] = [0, 1, 2, 0x100];
/// Where a CPU may be started.
pub const RAM: core::ops::Range<u64> = 0x4000_0000..0x8000_0000;
/// A valid entry point.
pub const ENTRY: u64 = 0x4008_0000;

/// The fake board, with what the provider asked of it.
#[derive(Default)]
pub struct FakeBoard {
    /// Pen wake-ups sent to each CPU.
    pub wakes: [AtomicUsize; 4],
    /// CPU_SUSPEND standbys entered.
    pub standbys: AtomicUsize,
}

impl Platform for FakeBoard {
    fn cpu_of(&self, affinity: u64) -> Option<usize> {
        AFFINITIES.iter().position(|&a| a == affinity)
    }
    fn is_valid_entry(&self, entry: u64) -> bool {
        RAM.contains(&entry)
    }
    fn wake(&self, cpu: usize) {
        self.wakes[cpu].fetch_add(1, Ordering::SeqCst);
    }
    fn standby(&self) {
        self.standbys.fetch_add(1, Ordering::SeqCst);
    }
    fn system_off(&self) -> ! {
        panic!("system_off called")
    }
    fn system_reset(&self) -> ! {
        panic!("system_reset called")
    }
}
