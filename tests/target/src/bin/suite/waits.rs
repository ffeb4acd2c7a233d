//! The stoppers' waits in each mode: sleeping waiters are woken by what they wait for (no
//! request hangs or loses its result when every wait sleeps at once), spin-only waits never
//! sleep, and a sleeping waiter still wakes at its deadline (the watchdog) when nothing else
//! wakes it.

use core::fmt::Write;
use core::time::Duration;

use armstop::board::{all_cpus, cpu_count};
use armstop::hotplug;
use armstop::stop::{CpuSet, DEFAULT_SPIN_NS, NowaitWork, SPIN_ONLY, STOPPERS};
use armstop::target_test;
use armstop::testing::require_cpus;
use armstop::time::wait_until;

use crate::hits::Hits;

fn me() -> i32 {
    armstop::cpu::id() as i32
}

static NOWAIT_F: fn() -> i32 = || 0;
static NOWAIT: NowaitWork = NowaitWork::new("suite::waits::nowait", &NOWAIT_F);

/// Every request kind on every CPU, and a hotplug cycle of the last CPU, checked. Needs a
/// secondary CPU (stop_two_cpus, hotplug).
fn every_request_kind() {
    let n = cpu_count();
    let last = n - 1;
    for cpu in 0..n {
        assert_eq!(STOPPERS.stop_one_cpu(cpu, me), Ok(cpu as i32));
    }
    for cpu in 1..n {
        assert!(STOPPERS.stop_one_cpu_nowait(cpu, &NOWAIT), "nowait to cpu{cpu}");
        assert!(wait_until(Duration::from_secs(2), || !NOWAIT.is_pending()), "cpu{cpu}");
    }
    // A ring of pairs, each run on its first CPU: (0, 1), (1, 2), .., (last, 0): pairs with
    // and without the caller's CPU, every CPU first once.
    for a in 0..n {
        let b = (a + 1) % n;
        assert_eq!(STOPPERS.stop_two_cpus(a, b, me), Ok(a as i32), "stop_two_cpus({a}, {b})");
    }
    let hits = Hits::new();
    let count = || {
        hits.hit();
        0
    };
    assert_eq!(STOPPERS.stop_cpus(all_cpus() - CpuSet::single(0), count), Ok(0));
    assert_eq!(STOPPERS.stop_machine(count, Some(all_cpus())), Ok(0));
    assert_eq!(STOPPERS.stop_machine(count, None), Ok(0));
    // cpu0: both stop_machines; every other CPU: stop_cpus and the first stop_machine.
    hits.assert_each(|_| 2, "callbacks per CPU");
    hotplug::cpu_down(last).unwrap_or_else(|e| panic!("cpu_down({last}): {e}"));
    assert_eq!(STOPPERS.stop_machine(|| 0, None), Ok(0));
    hotplug::cpu_up(last).unwrap_or_else(|e| panic!("cpu_up({last}): {e}"));
}

#[target_test]
fn every_request_kind_completes_when_every_wait_sleeps_at_once() {
    require_cpus(2);
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
    require_cpus(2);
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
    // The last CPU runs a 200 ms callback; the requester (cpu0) sleeps at once, and only its
    // deadline (the physical timer) can end that sleep before the callback does.
    require_cpus(2);
    let slow = cpu_count() - 1;
    let mut waiting = armstop::console::LineBuf::<96>::new();
    let _ = write!(
        waiting,
        "stop request not finished after 20 ms; waiting for CPUs {}",
        CpuSet::single(slow)
    );
    let mut running = armstop::console::LineBuf::<32>::new();
    let _ = write!(running, "cpu{slow}: running ");
    STOPPERS.set_spin_ns(0);
    // A slow callback that ends by itself: reported, not failed.
    STOPPERS.set_watchdog_fails(false);
    STOPPERS.set_watchdog(20_000_000);
    let reports = STOPPERS.stats().watchdog_reports;
    armstop::console::capture_start();
    let r = STOPPERS.stop_one_cpu(slow, SLOW_F);
    STOPPERS.set_watchdog(armstop::stop::WATCHDOG_NS);
    STOPPERS.set_watchdog_fails(true);
    STOPPERS.set_spin_ns(DEFAULT_SPIN_NS);
    assert_eq!(r, Ok(7));
    armstop::console::capture_finish(|text, _| {
        assert!(text.contains(waiting.as_str()), "watchdog report:\n{text}");
        assert!(text.contains(running.as_str()), "watchdog report:\n{text}");
    });
    assert_eq!(STOPPERS.stats().watchdog_reports, reports + 1);
}
