//! The stopper on the target: every request kind, its errors, and Linux's regression scenarios
//! across real cores kicked by SGIs.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use armstop::board::{NR_CPUS, all_cpus, cpu_count};
use armstop::smp;
use armstop::stop::{CpuSet, NowaitWork, STOPPERS, StopError};
use armstop::target_test;
use armstop::testing::{require_all_cpus, require_cpus};
use armstop::time::wait_until;

use crate::hits::Hits;

/// How long a requester posted to another CPU may take for a whole scenario.
const SCENARIO: Duration = Duration::from_secs(120);

fn me() -> i32 {
    armstop::cpu::id() as i32
}

/// The highest CPU id of the machine.
fn last() -> usize {
    cpu_count() - 1
}

#[target_test]
fn stop_one_cpu_runs_on_each_cpu_with_irqs_masked() {
    require_all_cpus();
    for cpu in 0..cpu_count() {
        let r = STOPPERS.stop_one_cpu(cpu, || {
            assert!(armstop::stop::ordinary_irqs_masked(), "callback ran with IRQs enabled");
            me()
        });
        assert_eq!(r, Ok(cpu as i32));
    }
    assert_eq!(STOPPERS.stop_one_cpu(cpu_count(), || 0), Err(StopError::InvalidCpu));
}

static NOWAIT_RAN: AtomicUsize = AtomicUsize::new(0);
static NOWAIT_GATE: AtomicBool = AtomicBool::new(true);
static NOWAIT_F: fn() -> i32 = || {
    while NOWAIT_GATE.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    NOWAIT_RAN.fetch_add(1 + armstop::cpu::id() * 100, Ordering::SeqCst);
    0
};
static NOWAIT: NowaitWork = NowaitWork::new("suite nowait", &NOWAIT_F);

#[target_test]
fn nowait_runs_on_its_cpu_and_its_buffer_is_not_queued_twice() {
    // The work holds its CPU until this one opens the gate: it must go to another CPU.
    require_cpus(2);
    let target = last();
    NOWAIT_RAN.store(0, Ordering::SeqCst);
    NOWAIT_GATE.store(true, Ordering::SeqCst);
    assert!(STOPPERS.stop_one_cpu_nowait(target, &NOWAIT));
    // While it is pending the buffer is refused everywhere, its own CPU included (not tried on
    // cpu0: queued there by mistake, it would spin with this CPU's IRQs masked, for good).
    for cpu in 1..cpu_count() {
        assert!(
            !STOPPERS.stop_one_cpu_nowait(cpu, &NOWAIT),
            "pending buffer queued again, to cpu{cpu}"
        );
    }
    NOWAIT_GATE.store(false, Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(2), || !NOWAIT.is_pending()));
    assert_eq!(NOWAIT_RAN.load(Ordering::SeqCst), 1 + target * 100, "once, on cpu{target}");
    assert!(!STOPPERS.stop_one_cpu_nowait(cpu_count(), &NOWAIT));
}

#[target_test]
fn stop_two_cpus_runs_on_the_first_and_holds_the_second() {
    require_cpus(2);
    // Every ordered pair (56 on 8 CPUs; each is one short request).
    for a in 0..cpu_count() {
        for b in (0..cpu_count()).filter(|&b| b != a) {
            let r = STOPPERS.stop_two_cpus(a, b, || {
                assert!(STOPPERS.running(b).is_some(), "cpu{b} was not held in its stopper");
                me()
            });
            assert_eq!(r, Ok(a as i32), "stop_two_cpus({a}, {b})");
        }
    }
    assert_eq!(STOPPERS.stop_two_cpus(1, 1, || 0), Err(StopError::SameCpu));
    assert_eq!(STOPPERS.stop_two_cpus(1, cpu_count(), || 0), Err(StopError::InvalidCpu));
}

#[target_test]
fn stop_cpus_and_try_stop_cpus_run_once_per_cpu() {
    require_cpus(2);
    let hits = Hits::new();
    let f = || {
        hits.hit();
        0
    };
    // Every CPU but one (the caller's own included), then that one.
    let gap = cpu_count() / 2;
    let rest = all_cpus() - CpuSet::single(gap);
    assert_eq!(STOPPERS.stop_cpus(rest, f), Ok(0));
    hits.assert_each(|cpu| u64::from(cpu != gap), "stop_cpus");
    assert_eq!(STOPPERS.try_stop_cpus(CpuSet::single(gap), f), Ok(0));
    hits.assert_each(|_| 1, "stop_cpus, then try_stop_cpus");
    assert_eq!(STOPPERS.stop_cpus(CpuSet::single(NR_CPUS), f), Err(StopError::InvalidCpu));
    assert_eq!(STOPPERS.stop_cpus(CpuSet::single(cpu_count()), f), Err(StopError::InvalidCpu));
}

#[target_test]
fn stop_machine_runs_once_or_on_each_given_cpu() {
    require_all_cpus();
    let hits = Hits::new();
    let f = || {
        for cpu in 0..cpu_count() {
            assert!(STOPPERS.running(cpu).is_some(), "cpu{cpu} not stopped during RUN");
        }
        hits.hit();
        0
    };
    assert_eq!(STOPPERS.stop_machine(f, None), Ok(0));
    hits.assert_each(|cpu| u64::from(cpu == 0), "None runs once, on the first CPU");
    hits.clear();
    assert_eq!(STOPPERS.stop_machine(f, Some(all_cpus())), Ok(0));
    hits.assert_each(|_| 1, "every CPU given");
    let last = last();
    let r = STOPPERS.stop_machine(|| if me() == last as i32 { -16 } else { 0 }, Some(all_cpus()));
    assert_eq!(r, Ok(-16), "cpu{last}'s return value");
}

#[target_test]
fn waiting_requests_from_callbacks_are_refused() {
    require_cpus(2);
    let last = last();
    // From a callback on cpu1, against valid targets (an invalid one is refused first).
    let r = STOPPERS.stop_one_cpu(1, || {
        let e = Err(StopError::WouldDeadlock);
        assert_eq!(STOPPERS.stop_one_cpu(last, || 0), e);
        assert_eq!(STOPPERS.stop_two_cpus(0, last, || 0), e);
        assert_eq!(STOPPERS.stop_cpus(all_cpus(), || 0), e);
        assert_eq!(STOPPERS.stop_machine(|| 0, None), e);
        7
    });
    assert_eq!(r, Ok(7));
}

#[target_test]
fn a_parked_stopper_refuses_work_cleanly_and_unparks() {
    // The last CPU parks (never the boot CPU, which runs the test); q is its neighbour.
    require_cpus(2);
    let p = last();
    let q = p - 1;
    assert_eq!(
        STOPPERS.stop_one_cpu(p, || {
            STOPPERS.stop_machine_park(p);
            0
        }),
        Ok(0)
    );
    assert!(wait_until(Duration::from_secs(2), || STOPPERS.is_parked(p)), "cpu{p} never parked");
    let ran = AtomicBool::new(false);
    let f = || {
        ran.store(true, Ordering::SeqCst);
        0
    };
    assert_eq!(STOPPERS.stop_one_cpu(p, f), Err(StopError::NoEnt));
    assert_eq!(STOPPERS.stop_two_cpus(q, p, f), Err(StopError::NoEnt));
    assert!(!ran.load(Ordering::SeqCst), "f ran although refused");
    let hits = Hits::new();
    let g = || {
        hits.hit();
        0
    };
    let both = CpuSet::single(q) | CpuSet::single(p);
    assert_eq!(STOPPERS.stop_cpus(both, g), Ok(0), "runs where enabled");
    assert_eq!(STOPPERS.stop_machine(g, Some(all_cpus())), Ok(0), "over the enabled CPUs");
    // stop_cpus: cpu q only; stop_machine: every CPU but p; never on p.
    hits.assert_each(
        |cpu| match cpu {
            _ if cpu == p => 0,
            _ if cpu == q => 2,
            _ => 1,
        },
        "stop_cpus and stop_machine with a parked CPU",
    );
    assert_eq!(STOPPERS.stop_cpus(CpuSet::single(p), g), Err(StopError::NoEnt));
    assert_eq!(STOPPERS.stats().park_with_works, 0);
    STOPPERS.stop_machine_unpark(p);
    assert_eq!(STOPPERS.stop_one_cpu(p, me), Ok(p as i32));
}

// --- Regression scenarios: thousands of iterations, exact counts -----------------------------

const CROSSED: usize = 1000;
static PAIR_RUNS: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];

/// Pair `i` of the ring over cpu0..cpu(m-1), m = cpu_count() - 1: (i, i + 1), the last one
/// closing it as (m - 1, 0). Each CPU of the ring is second in one pair and first in the next.
fn ring_pair(i: usize) -> (usize, usize) {
    let m = cpu_count() - 1;
    (i, (i + 1) % m)
}

fn crossed_pair(i: usize) -> usize {
    let (a, b) = ring_pair(i);
    for _ in 0..CROSSED {
        let r = STOPPERS.stop_two_cpus(a, b, || {
            assert_eq!(me(), a as i32);
            PAIR_RUNS[i].fetch_add(1, Ordering::Relaxed);
            0
        });
        assert_eq!(r, Ok(0));
    }
    0
}

/// Every secondary requests one pair of the ring at once: on 4 CPUs cpu1, cpu2 and cpu3 ask
/// for (0, 1), (1, 2) and (2, 0); on 8, cpu1..cpu7 for (0, 1) .. (6, 0). On 3, (0, 1) against
/// (1, 0).
#[target_test]
fn crossed_stop_two_cpus_from_every_secondary_at_once() {
    require_cpus(3);
    let pairs = cpu_count() - 1;
    for c in &PAIR_RUNS {
        c.store(0, Ordering::Relaxed);
    }
    let posted: [Option<smp::Pending>; NR_CPUS] = core::array::from_fn(|i| {
        (i < pairs).then(|| smp::post(i + 1, crossed_pair, i).expect("post"))
    });
    for (i, p) in posted.into_iter().enumerate() {
        if let Some(p) = p {
            assert_eq!(p.wait_timeout(SCENARIO), Ok(0), "requester of pair {:?}", ring_pair(i));
        }
    }
    for (i, c) in PAIR_RUNS.iter().enumerate().take(pairs) {
        assert_eq!(c.load(Ordering::Relaxed), CROSSED, "pair {:?}", ring_pair(i));
    }
}

static STOP_PAIRS: AtomicBool = AtomicBool::new(false);
static RANDOM_PAIR_RUNS: AtomicUsize = AtomicUsize::new(0);

fn random_pairs(seed: usize) -> usize {
    let mut x = seed as u64 * 2_654_435_761 + 1;
    let mut n = 0;
    while !STOP_PAIRS.load(Ordering::Relaxed) {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let cpus = cpu_count();
        let a = (x >> 33) as usize % cpus;
        let b = (a + 1 + (x >> 40) as usize % (cpus - 1)) % cpus;
        assert_eq!(
            STOPPERS.stop_two_cpus(a, b, || {
                RANDOM_PAIR_RUNS.fetch_add(1, Ordering::Relaxed);
                0
            }),
            Ok(0)
        );
        n += 1;
    }
    n
}

#[target_test]
fn stop_machine_in_a_loop_against_random_stop_two_cpus() {
    // Every secondary requests random pairs of all the CPUs.
    require_cpus(2);
    const MACHINES: u64 = 300;
    STOP_PAIRS.store(false, Ordering::Relaxed);
    RANDOM_PAIR_RUNS.store(0, Ordering::Relaxed);
    let retries_before = STOPPERS.stats().in_progress_retries;
    let posted: [Option<smp::Pending>; NR_CPUS] = core::array::from_fn(|cpu| {
        (1..cpu_count()).contains(&cpu).then(|| smp::post(cpu, random_pairs, cpu).expect("post"))
    });
    let runs = AtomicU64::new(0);
    // At least MACHINES stop_machines, and on (bounded) until a back-off has been seen.
    let mut machines = 0;
    while machines < MACHINES
        || (STOPPERS.stats().in_progress_retries == retries_before && machines < 10 * MACHINES)
    {
        let r = STOPPERS.stop_machine(
            || {
                runs.fetch_add(1, Ordering::Relaxed);
                0
            },
            None,
        );
        assert_eq!(r, Ok(0));
        machines += 1;
    }
    STOP_PAIRS.store(true, Ordering::Relaxed);
    let requested: usize = posted
        .into_iter()
        .flatten()
        .map(|p| p.wait_timeout(SCENARIO).expect("pair requester"))
        .sum();
    assert_eq!(runs.load(Ordering::Relaxed), machines);
    assert_eq!(
        RANDOM_PAIR_RUNS.load(Ordering::Relaxed),
        requested,
        "a stop_two_cpus ran twice or not at all"
    );
    let retries = STOPPERS.stats().in_progress_retries - retries_before;
    armstop::println!(
        "stop_cpus_in_progress back-offs: {retries} over {requested} stop_two_cpus and {machines} stop_machine"
    );
    assert!(requested > 0);
    assert!(retries > 0, "the stop_cpus_in_progress window was never hit");
}

static FROM_CALLBACK_RAN: AtomicUsize = AtomicUsize::new(0);
static FROM_CALLBACK_F: fn() -> i32 = || {
    FROM_CALLBACK_RAN.fetch_add(1, Ordering::Relaxed);
    0
};
static FROM_CALLBACK: NowaitWork = NowaitWork::new("queued from a callback", &FROM_CALLBACK_F);
static QUEUED_FROM_CALLBACK: AtomicUsize = AtomicUsize::new(0);
const NESTED: usize = 1000;

/// The scenario's CPUs: A runs a callback that queues to B while B is busy in
/// stop_two_cpus(A, B), which B itself requests; a third secondary requests A's callbacks. The
/// scenario is between two CPUs: on a bigger machine the others stay idle.
const A: usize = 1;
const B: usize = 2;
const A_REQUESTER: usize = 3;

fn b_side(_: usize) -> usize {
    for _ in 0..NESTED {
        assert_eq!(STOPPERS.stop_two_cpus(A, B, || 0), Ok(0));
    }
    0
}

fn a_side(_: usize) -> usize {
    for _ in 0..NESTED {
        assert_eq!(
            STOPPERS.stop_one_cpu(A, || {
                if STOPPERS.stop_one_cpu_nowait(B, &FROM_CALLBACK) {
                    QUEUED_FROM_CALLBACK.fetch_add(1, Ordering::Relaxed);
                }
                0
            }),
            Ok(0)
        );
    }
    0
}

#[target_test]
fn nowait_from_a_callback_into_a_cpu_in_stop_two_cpus() {
    require_cpus(A_REQUESTER + 1);
    FROM_CALLBACK_RAN.store(0, Ordering::Relaxed);
    QUEUED_FROM_CALLBACK.store(0, Ordering::Relaxed);
    let b = smp::post(B, b_side, 0).expect("post");
    let a = smp::post(A_REQUESTER, a_side, 0).expect("post");
    assert_eq!(a.wait_timeout(SCENARIO), Ok(0));
    assert_eq!(b.wait_timeout(SCENARIO), Ok(0));
    assert!(wait_until(Duration::from_secs(2), || !FROM_CALLBACK.is_pending()));
    let queued = QUEUED_FROM_CALLBACK.load(Ordering::Relaxed);
    assert!(queued > 0);
    assert_eq!(FROM_CALLBACK_RAN.load(Ordering::Relaxed), queued, "an accepted work was lost");
}

/// Runs for 300 ms: long past the 50 ms watchdog, and it ends by itself (every other CPU is
/// held by the stop_machine that waits for it, so nothing else could release it).
static SLOW_F: fn() -> i32 = || {
    armstop::time::wait_until(Duration::from_millis(300), || false);
    0
};
static SLOW_WORK: NowaitWork = NowaitWork::new("suite::stopper::slow_participant", &SLOW_F);

#[target_test]
fn a_participant_late_past_the_watchdog_is_named() {
    // The slow participant is the last CPU; the boot CPU requests the stop_machine.
    require_cpus(2);
    let slow = last();
    // A slow callback that ends by itself: reported, not failed.
    STOPPERS.set_watchdog_fails(false);
    STOPPERS.set_watchdog(50_000_000);
    let reports = STOPPERS.stats().watchdog_reports;
    assert!(STOPPERS.stop_one_cpu_nowait(slow, &SLOW_WORK));
    assert!(wait_until(Duration::from_secs(1), || STOPPERS.running(slow).is_some()));
    armstop::console::capture_start();
    let r = STOPPERS.stop_machine(|| 0, None);
    STOPPERS.set_watchdog(armstop::stop::WATCHDOG_NS);
    STOPPERS.set_watchdog_fails(true);
    assert_eq!(r, Ok(0));
    let mut want = armstop::console::LineBuf::<96>::new();
    let _ = write!(want, "cpu{slow}: running suite::stopper::slow_participant <- ");
    armstop::console::capture_finish(|text, _| {
        assert!(text.contains(want.as_str()), "watchdog report:\n{text}");
    });
    assert!(STOPPERS.stats().watchdog_reports > reports);
}
