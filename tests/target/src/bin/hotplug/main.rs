//! armstop's on-target hotplug suite: cores taken down through stop_machine, flushed, parked and
//! turned off with PSCI CPU_OFF, and brought back with CPU_ON; every refusal and failure path;
//! the races of Linux's history; and the storm that checks the stopper's guarantee under fire.
#![no_std]
#![no_main]

armstop::test_main!("hotplug");

mod basics;
mod faults;
mod races;
mod storm;

use armstop::hotplug::{self, HOTPLUG, Timeouts};

/// The start of every test here: anything a failed test left spinning is let go, default
/// timeouts, no injected faults, every CPU online (a
/// failed test may have left one down), and no hotplug bugs so far.
///
/// Every test here takes a secondary CPU down (cpu0 never goes down), so each then requires
/// the CPUs it needs with `armstop::testing::require_cpus`: after this, so that a CPU an
/// earlier failed test left stalled is released before it is brought back.
pub fn fresh() {
    basics::open_gates();
    faults::open_gates();
    races::open_gates();
    storm::open_gates();
    HOTPLUG.set_timeouts(Timeouts::DEFAULT);
    for cpu in 0..armstop::board::cpu_count() {
        hotplug::release(cpu);
    }
    armstop::testing::require_all_cpus();
    assert_eq!(HOTPLUG.stats().bad_transitions, 0, "an earlier test made a bad transition");
}

/// The highest CPU id of the machine.
pub fn last() -> usize {
    armstop::board::cpu_count() - 1
}

/// Takes `cpu` down and brings it back, failing the test with the reason if either fails.
pub fn cycle(cpu: usize) {
    if let Err(e) = hotplug::cpu_down(cpu) {
        panic!("cpu_down({cpu}): {e}");
    }
    if let Err(e) = hotplug::cpu_up(cpu) {
        panic!("cpu_up({cpu}): {e}");
    }
}

/// Waits until PSCI reports `cpu` off (a stalled CPU that was released turns itself off).
pub fn wait_psci_off(cpu: usize) {
    use smccc::psci::AffinityState;
    let mpidr = armstop::board::mpidr(cpu).expect("a listed CPU");
    let off = armstop::time::wait_until(core::time::Duration::from_secs(2), || {
        armstop::psci::affinity_info(mpidr) == Ok(AffinityState::Off)
    });
    assert!(off, "cpu{cpu} never turned off after its release");
}

/// A small xorshift generator: reproducible "random" choices.
pub struct Rng(pub u64);

impl Rng {
    /// The next value below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// How `d` displays (no allocator here: a fixed line buffer).
pub fn text(d: impl core::fmt::Display) -> armstop::console::LineBuf<240> {
    let mut b = armstop::console::LineBuf::new();
    let _ = core::fmt::write(&mut b, format_args!("{d}"));
    b
}
