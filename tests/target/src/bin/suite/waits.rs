//! The stoppers' waits in each mode: sleeping waiters are woken by what they wait for (no
//! request hangs or loses its result when every wait sleeps at once), spin-only waits never
//! sleep, and a sleeping waiter still wakes at its deadline (the watchdog) when nothing else
//! wakes it.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use armstop::hotplug;
use armstop::stop::{CpuSet, DEFAULT_SPIN_NS, NowaitWork, SPIN_ONLY, STOPPERS};
use armstop::target_test;
use armstop::testing::require_all_cpus;
use armstop::time::wait_until;

fn me() -> i32 {
    armstop::cpu::id() as i32
}

static NOWAIT_F: fn() -> i32 = || 0;
static NOWAIT: NowaitWork = NowaitWork::new("suite::waits::nowait", &NOWAIT_F);

/// Every request kind, and a hotplug cycle, checked.
fn every_request_kind() {
    for cpu in 0..4 {
        assert_eq!(STOPPERS.stop_one_cpu(cpu, me), Ok(cpu as i32));
    }
    assert!(STOPPERS.stop_one_cpu_nowait(2, &NOWAIT));
    assert!(wait_until(Duration::from_secs(2), || !NOWAIT.is_pending()));
    assert_eq!(STOPPERS.stop_two_cpus(1, 2, me), Ok(1));
    assert_eq!(STOPPERS.stop_two_cpus(0, 3, me), Ok(0));
    let hits = AtomicU64::new(0);
    let count = || {
        hits.fetch_add(1 << (8 * armstop::cpu::id()), Ordering::SeqCst);
        0
    };
    assert_eq!(STOPPERS.stop_cpus(CpuSet::from_bits(0b1110), count), Ok(0));
    assert_eq!(STOPPERS.stop_machine(count, Some(CpuSet::from_bits(0b1111))), Ok(0));
    assert_eq!(STOPPERS.stop_machine(count, None), Ok(0));
    assert_eq!(hits.load(Ordering::SeqCst), 0x0202_0202, "callbacks per CPU");
    hotplug::cpu_down(3).expect("cpu_down(3)");
    assert_eq!(STOPPERS.stop_machine(|| 0, None), Ok(0));
    hotplug::cpu_up(3).expect("cpu_up(3)");
}

#[target_test]
fn every_request_kind_completes_when_every_wait_sleeps_at_once() {
    require_all_cpus();
    let before = STOPPERS.stats();
    STOPPERS.set_spin_ns(0);
    every_request_kind();
    STOPPERS.set_spin_ns(DEFAULT_SPIN_NS);
    let after = STOPPERS.stats();
    assert!(after.sleeps > before.sleeps, "no wait slept with a spin budget of 0");
    assert!(after.wakes > before.wakes, "no sleeper was woken");
    assert_eq!(after.watchdog_reports, before.watchdog_reports, "a sleeper waited 5 s");
    armstop::testing::figure(format_args!(
        "sleeps {}, wakes {}",
        after.sleeps - before.sleeps,
        after.wakes - before.wakes
    ));
}

#[target_test]
fn spin_only_waits_never_sleep() {
    require_all_cpus();
    STOPPERS.set_spin_ns(SPIN_ONLY);
    let before = STOPPERS.stats();
    every_request_kind();
    let after = STOPPERS.stats();
    STOPPERS.set_spin_ns(DEFAULT_SPIN_NS);
    assert_eq!((after.sleeps, after.wakes), (before.sleeps, before.wakes));
}

static SLOW_F: fn() -> i32 = || {
    armstop::time::wait_until(Duration::from_millis(200), || false);
    7
};

#[target_test]
fn a_sleeping_requester_wakes_at_its_watchdog_deadline() {
    require_all_cpus();
    // cpu3 runs a 200 ms callback; the requester sleeps at once, and only its deadline (the
    // physical timer) can end that sleep before the callback does.
    STOPPERS.set_spin_ns(0);
    STOPPERS.set_watchdog(20_000_000);
    let reports = STOPPERS.stats().watchdog_reports;
    armstop::console::capture_start();
    let r = STOPPERS.stop_one_cpu(3, SLOW_F);
    STOPPERS.set_watchdog(armstop::stop::WATCHDOG_NS);
    STOPPERS.set_spin_ns(DEFAULT_SPIN_NS);
    assert_eq!(r, Ok(7));
    armstop::console::capture_finish(|text, _| {
        assert!(
            text.contains("stop request not finished after 20 ms; waiting for CPUs 0x8"),
            "watchdog report:\n{text}"
        );
        assert!(text.contains("cpu3: running "), "watchdog report:\n{text}");
    });
    assert_eq!(STOPPERS.stats().watchdog_reports, reports + 1);
}
