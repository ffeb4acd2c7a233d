//! The firmware's own on-target tests: each `#[armstop::target_test]` runs on the boot core
//! with every core up, and fails by panicking on any core.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicUsize, Ordering};

use armstop::stop::{CpuSet, STOPPERS, StopError};

armstop::test_main!("app-tests");

#[armstop::target_test]
fn stop_machine_runs_my_callback_on_every_core() {
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    armstop::testing::require_cpus(2);
    let n = armstop::board::cpu_count();
    let r = STOPPERS.stop_machine(
        || {
            SEEN.fetch_or(1 << armstop::cpu::id(), Ordering::Relaxed);
            0
        },
        Some(CpuSet::first_n(n)),
    );
    assert_eq!(r, Ok(0));
    assert_eq!(SEEN.load(Ordering::Relaxed), (1 << n) - 1, "every core ran it");
}

#[armstop::target_test]
fn stop_two_cpus_runs_on_the_first_while_the_second_waits() {
    armstop::testing::require_cpus(2);
    let r = STOPPERS.stop_two_cpus(1, 0, || armstop::cpu::id() as i32);
    assert_eq!(r, Ok(1));
}

#[armstop::target_test]
fn a_callback_cannot_wait_for_another_stopper() {
    armstop::testing::require_cpus(2);
    let r = STOPPERS.stop_one_cpu(1, || match STOPPERS.stop_one_cpu(0, || 0) {
        Err(StopError::WouldDeadlock) => 7,
        _ => -1,
    });
    assert_eq!(r, Ok(7));
}
