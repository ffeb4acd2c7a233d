//! The seed's guarantee under fire: thousands of random cpu_down/cpu_up cycles while the other
//! secondary cores hammer the moving target with every request kind. Every request is
//! accounted for: an accepted work ran exactly once, on its target, before the target was off;
//! a refused one never ran; nothing hangs (the stopper watchdog names a stuck CPU, the runner's
//! timeout ends the run); the park-with-works counter stays 0.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use armstop::board::cpu_count;
use armstop::hotplug::{self, CpuState, HOTPLUG};
use armstop::smp;
use armstop::stop::{CpuSet, NowaitWork, STOPPERS};
use armstop::target_test;
use armstop::testing::{figure, require_cpus};
use armstop_boards::MAX_CPUS;

use crate::{Rng, fresh};

/// Random down/up cycles (the issue asks for at least 2,000). Not scaled down with the CPU
/// count, though a cycle costs about n^2 on n CPUs (n - 2 CPUs hammer, and the stop_machine
/// of each cpu_down, like each hammering stop_machine, waits for every CPU): under QEMU on a
/// 2-CPU host the storm takes about 8 s on 4 CPUs and 50 s on 8. The hotplug image is not run
/// on bigger machines; one that is would need this bounded.
const CYCLES: usize = 2000;

static TARGET: AtomicUsize = AtomicUsize::new(0);
static STOP: AtomicBool = AtomicBool::new(false);

/// Ends anything an earlier, failed test left running here.
pub fn open_gates() {
    STOP.store(true, Ordering::SeqCst);
}

static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static REJECTED: AtomicU64 = AtomicU64::new(0);
static RAN: AtomicU64 = AtomicU64::new(0);
static NOWAIT_ACCEPTED: AtomicU64 = AtomicU64::new(0);
static NOWAIT_REJECTED: AtomicU64 = AtomicU64::new(0);
static NOWAIT_RAN: AtomicU64 = AtomicU64::new(0);
static MACHINE_CALLS: AtomicU64 = AtomicU64::new(0);
static MACHINE_RAN: AtomicU64 = AtomicU64::new(0);
static WRONG: AtomicU64 = AtomicU64::new(0);

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::SeqCst)
}

/// On the CPU a work runs on: it must be the target, and not yet dead.
fn check_on_target(t: usize) {
    let alive = matches!(hotplug::state(t), CpuState::Online | CpuState::Dying);
    if armstop::cpu::id() != t || !alive {
        WRONG.fetch_add(1, Ordering::SeqCst);
    }
}

static NOWAIT_F: fn() -> i32 = || {
    check_on_target(TARGET.load(Ordering::SeqCst));
    NOWAIT_RAN.fetch_add(1, Ordering::SeqCst);
    0
};
/// One nowait buffer per hammering CPU.
static NOWAIT: [NowaitWork; MAX_CPUS] =
    [const { NowaitWork::new("storm nowait", &NOWAIT_F) }; MAX_CPUS];

/// One request from `cpu` against the target `t`, checked exactly.
fn hammer_once(cpu: usize, t: usize, i: usize) {
    let ran = AtomicUsize::new(0);
    let f = || {
        check_on_target(t);
        ran.fetch_add(1, Ordering::SeqCst);
        0
    };
    let accepted = match i % 4 {
        0 => STOPPERS.stop_one_cpu(t, f).is_ok(),
        1 => {
            if NOWAIT[cpu].is_pending() {
                return;
            }
            let c = if STOPPERS.stop_one_cpu_nowait(t, &NOWAIT[cpu]) {
                &NOWAIT_ACCEPTED
            } else {
                &NOWAIT_REJECTED
            };
            c.fetch_add(1, Ordering::SeqCst);
            return;
        }
        2 => STOPPERS
            .stop_two_cpus(t, cpu, || {
                if STOPPERS.running(cpu).is_none() {
                    WRONG.fetch_add(1, Ordering::SeqCst); // the other CPU was not held
                }
                f()
            })
            .is_ok(),
        _ => {
            // Runs f on the target iff the target took part; never anywhere else, never twice.
            MACHINE_CALLS.fetch_add(1, Ordering::SeqCst);
            if STOPPERS.stop_machine(f, Some(CpuSet::single(t))) != Ok(0) {
                WRONG.fetch_add(1, Ordering::SeqCst);
            }
            let n = ran.load(Ordering::SeqCst) as u64;
            if n > 1 {
                WRONG.fetch_add(1, Ordering::SeqCst);
            }
            MACHINE_RAN.fetch_add(n, Ordering::SeqCst);
            return;
        }
    };
    let n = ran.load(Ordering::SeqCst);
    if n != usize::from(accepted) {
        WRONG.fetch_add(1, Ordering::SeqCst);
    }
    let c = if accepted { &ACCEPTED } else { &REJECTED };
    c.fetch_add(1, Ordering::SeqCst);
    RAN.fetch_add(n as u64, Ordering::SeqCst);
}

/// A hammering CPU's posted call: requests against the current target until told to stop.
fn hammer(seed: usize) -> usize {
    let cpu = armstop::cpu::id();
    let t = TARGET.load(Ordering::SeqCst);
    let mut i = seed;
    while !STOP.load(Ordering::SeqCst) {
        hammer_once(cpu, t, i);
        i += 1;
    }
    0
}

fn wait_nowaits_drained() {
    for (cpu, w) in NOWAIT.iter().enumerate() {
        assert!(
            armstop::time::wait_until(Duration::from_secs(2), || !w.is_pending()),
            "cpu{cpu}'s accepted nowait work never ran"
        );
    }
}

#[target_test]
fn hotplug_storm_every_request_is_accounted_for() {
    fresh();
    // A controller (cpu0), a target and at least one hammering CPU.
    require_cpus(3);
    let n = cpu_count();
    for c in [
        &ACCEPTED,
        &REJECTED,
        &RAN,
        &NOWAIT_ACCEPTED,
        &NOWAIT_REJECTED,
        &NOWAIT_RAN,
        &MACHINE_CALLS,
        &MACHINE_RAN,
        &WRONG,
    ] {
        c.store(0, Ordering::SeqCst);
    }
    let (downs0, ups0) = (HOTPLUG.stats().downs, HOTPLUG.stats().ups);
    let watchdog0 = STOPPERS.stats().watchdog_reports;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut per_target = [0u32; MAX_CPUS];
    let start = armstop::time::Instant::now();
    for cycle in 0..CYCLES {
        let t = 1 + rng.below(n as u64 - 1) as usize;
        per_target[t] += 1;
        TARGET.store(t, Ordering::SeqCst);
        STOP.store(false, Ordering::SeqCst);
        let mut hammers: [Option<smp::Pending>; MAX_CPUS] = [const { None }; MAX_CPUS];
        for (cpu, h) in hammers.iter_mut().enumerate().take(n).skip(1) {
            if cpu != t {
                *h = Some(smp::post(cpu, hammer, cycle).expect("a hammering CPU is online"));
            }
        }
        if let Err(e) = hotplug::cpu_down(t) {
            panic!("cycle {cycle}: cpu_down({t}): {e}");
        }
        // The guarantee: every nowait work accepted for t ran before t went off. (A buffer is
        // also marked pending for the moment a refused attempt takes, so allow that to pass:
        // an accepted work that was dropped stays pending for good, as t is off.)
        for (cpu, w) in NOWAIT.iter().enumerate() {
            assert!(
                armstop::time::wait_until(Duration::from_secs(1), || !w.is_pending()),
                "cycle {cycle}: cpu{cpu}'s accepted nowait work still pending after cpu{t} went off"
            );
        }
        if let Err(e) = hotplug::cpu_up(t) {
            panic!("cycle {cycle}: cpu_up({t}): {e}");
        }
        STOP.store(true, Ordering::SeqCst);
        for (cpu, h) in hammers.into_iter().enumerate() {
            if let Some(h) = h {
                assert_eq!(
                    h.wait_timeout(Duration::from_secs(30)),
                    Ok(0),
                    "cycle {cycle}: cpu{cpu}"
                );
            }
        }
        wait_nowaits_drained();
        if (cycle + 1) % 250 == 0 {
            armstop::println!(
                "  storm: {} cycles in {} ms; {} accepted, {} rejected so far",
                cycle + 1,
                start.elapsed().as_millis(),
                get(&ACCEPTED) + get(&NOWAIT_ACCEPTED),
                get(&REJECTED) + get(&NOWAIT_REJECTED)
            );
        }
    }
    let downs = HOTPLUG.stats().downs - downs0;
    let ups = HOTPLUG.stats().ups - ups0;
    figure(format_args!(
        "hotplug storm: {CYCLES} cycles ({downs} downs, {ups} ups; targets cpu1..: {:?})",
        &per_target[1..n]
    ));
    figure(format_args!(
        "  waiting requests (stop_one_cpu, stop_two_cpus): {} accepted, {} rejected, {} ran",
        get(&ACCEPTED),
        get(&REJECTED),
        get(&RAN)
    ));
    figure(format_args!(
        "  stop_one_cpu_nowait: {} accepted, {} rejected, {} ran",
        get(&NOWAIT_ACCEPTED),
        get(&NOWAIT_REJECTED),
        get(&NOWAIT_RAN)
    ));
    figure(format_args!(
        "  stop_machine on the target: {} calls, {} ran on it (0 while it was down)",
        get(&MACHINE_CALLS),
        get(&MACHINE_RAN)
    ));
    figure(format_args!(
        "  wrong runs {}, park-with-works bugs {}, bad transitions {}, watchdog reports {}",
        get(&WRONG),
        STOPPERS.stats().park_with_works,
        HOTPLUG.stats().bad_transitions,
        STOPPERS.stats().watchdog_reports - watchdog0
    ));
    assert_eq!(get(&WRONG), 0, "a work ran off its CPU, after its CPU died, twice, or not at all");
    assert_eq!((downs, ups), (CYCLES as u64, CYCLES as u64));
    assert_eq!(get(&RAN), get(&ACCEPTED), "every accepted waiting request ran exactly once");
    assert_eq!(get(&NOWAIT_RAN), get(&NOWAIT_ACCEPTED), "every accepted nowait work ran once");
    assert!(get(&REJECTED) > 0 && get(&NOWAIT_REJECTED) > 0, "the storm never hit a down CPU");
    assert!(get(&ACCEPTED) > 0 && get(&NOWAIT_ACCEPTED) > 0 && get(&MACHINE_RAN) > 0);
    assert_eq!(STOPPERS.stats().park_with_works, 0);
    assert_eq!(HOTPLUG.stats().bad_transitions, 0);
}
