//! The generic timer and the `embedded-hal` delay.

use core::time::Duration;

use armstop::board::cpu_count;
use armstop::smp;
use armstop::target_test;
use armstop::time::{self, Delay, Instant};
use embedded_hal::delay::DelayNs;

#[target_test]
fn frequency_is_programmed() {
    let f = time::frequency();
    assert!(f >= 1_000_000, "CNTFRQ_EL0 = {f}: firmware did not program it");
}

#[target_test]
fn counter_is_monotonic() {
    let mut last = Instant::now();
    for _ in 0..10_000 {
        let now = Instant::now();
        assert!(now >= last, "counter went backwards");
        last = now;
    }
}

fn now_ticks(_: usize) -> usize {
    Instant::now().ticks() as usize
}

#[target_test]
fn counter_is_shared_by_every_cpu() {
    // Each CPU's reading falls between two readings on this CPU taken around the call.
    for cpu in 0..cpu_count() {
        let before = Instant::now().ticks() as usize;
        let theirs = smp::run_on(cpu, now_ticks, 0).expect("call");
        let after = Instant::now().ticks() as usize;
        assert!((before..=after).contains(&theirs), "cpu{cpu}'s counter is not the system counter");
    }
}

#[target_test]
fn delay_waits_at_least_what_was_asked() {
    for us in [0u32, 1, 50, 2_000] {
        let t0 = Instant::now();
        Delay.delay_us(us);
        let took = t0.elapsed();
        assert!(took >= Duration::from_micros(u64::from(us)), "delay_us({us}) took {took:?}");
    }
    let t0 = Instant::now();
    Delay.delay_ms(3);
    assert!(t0.elapsed() >= Duration::from_millis(3));
}

#[target_test]
fn wait_until_reports_timeouts() {
    let t0 = Instant::now();
    assert!(!time::wait_until(Duration::from_millis(2), || false));
    assert!(t0.elapsed() >= Duration::from_millis(2));
    assert!(time::wait_until(Duration::from_secs(10), || true));
}
