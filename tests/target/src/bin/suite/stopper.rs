//! The stopper on the target: every request kind, its errors, and Linux's regression scenarios
//! across real cores kicked by SGIs.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use armstop::board::cpu_count;
use armstop::smp;
use armstop::stop::{CpuSet, NowaitWork, STOPPERS, StopError};
use armstop::target_test;
use armstop::testing::require_all_cpus;
use armstop::time::wait_until;

/// How long a requester posted to another CPU may take for a whole scenario.
const SCENARIO: Duration = Duration::from_secs(120);

const ALL: CpuSet = CpuSet::from_bits(0b1111);

fn me() -> i32 {
    armstop::cpu::id() as i32
}

#[target_test]
fn stop_one_cpu_runs_on_each_cpu_with_irqs_masked() {
    require_all_cpus();
    for cpu in 0..cpu_count() {
        let r = STOPPERS.stop_one_cpu(cpu, || {
            assert!(armstop::cpu::irqs_masked(), "callback ran with IRQs enabled");
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
    NOWAIT_RAN.store(0, Ordering::SeqCst);
    NOWAIT_GATE.store(true, Ordering::SeqCst);
    assert!(STOPPERS.stop_one_cpu_nowait(2, &NOWAIT));
    assert!(!STOPPERS.stop_one_cpu_nowait(3, &NOWAIT), "pending buffer queued again");
    NOWAIT_GATE.store(false, Ordering::SeqCst);
    assert!(wait_until(Duration::from_secs(2), || !NOWAIT.is_pending()));
    assert_eq!(NOWAIT_RAN.load(Ordering::SeqCst), 201);
    assert!(!STOPPERS.stop_one_cpu_nowait(cpu_count(), &NOWAIT));
}

#[target_test]
fn stop_two_cpus_runs_on_the_first_and_holds_the_second() {
    require_all_cpus();
    for (a, b) in [(0, 1), (3, 1), (2, 0)] {
        let r = STOPPERS.stop_two_cpus(a, b, || {
            assert!(STOPPERS.running(b).is_some(), "cpu{b} was not held in its stopper");
            me()
        });
        assert_eq!(r, Ok(a as i32));
    }
    assert_eq!(STOPPERS.stop_two_cpus(1, 1, || 0), Err(StopError::SameCpu));
    assert_eq!(STOPPERS.stop_two_cpus(1, cpu_count(), || 0), Err(StopError::InvalidCpu));
}

#[target_test]
fn stop_cpus_and_try_stop_cpus_run_once_per_cpu() {
    require_all_cpus();
    let hits = AtomicU64::new(0);
    let f = || {
        hits.fetch_add(1 << (8 * armstop::cpu::id()), Ordering::SeqCst);
        0
    };
    assert_eq!(STOPPERS.stop_cpus(CpuSet::from_bits(0b1011), f), Ok(0));
    assert_eq!(hits.load(Ordering::SeqCst), 0x0100_0101);
    assert_eq!(STOPPERS.try_stop_cpus(CpuSet::from_bits(0b0100), f), Ok(0));
    assert_eq!(hits.load(Ordering::SeqCst), 0x0101_0101);
    assert_eq!(
        STOPPERS.stop_cpus(CpuSet::single(armstop::board::NR_CPUS), f),
        Err(StopError::InvalidCpu)
    );
}

#[target_test]
fn stop_machine_runs_once_or_on_each_given_cpu() {
    require_all_cpus();
    let hits = AtomicU64::new(0);
    let f = || {
        for cpu in 0..cpu_count() {
            assert!(STOPPERS.running(cpu).is_some(), "cpu{cpu} not stopped during RUN");
        }
        hits.fetch_add(1 << (8 * armstop::cpu::id()), Ordering::SeqCst);
        0
    };
    assert_eq!(STOPPERS.stop_machine(f, None), Ok(0));
    assert_eq!(hits.swap(0, Ordering::SeqCst), 1, "None runs once, on the first CPU");
    assert_eq!(STOPPERS.stop_machine(f, Some(ALL)), Ok(0));
    assert_eq!(hits.swap(0, Ordering::SeqCst), 0x0101_0101);
    assert_eq!(STOPPERS.stop_machine(|| if me() == 2 { -16 } else { 0 }, Some(ALL)), Ok(-16));
}

#[target_test]
fn waiting_requests_from_callbacks_are_refused() {
    let r = STOPPERS.stop_one_cpu(1, || {
        let e = Err(StopError::WouldDeadlock);
        assert_eq!(STOPPERS.stop_one_cpu(2, || 0), e);
        assert_eq!(STOPPERS.stop_two_cpus(2, 3, || 0), e);
        assert_eq!(STOPPERS.stop_cpus(CpuSet::from_bits(0b100), || 0), e);
        assert_eq!(STOPPERS.stop_machine(|| 0, None), e);
        7
    });
    assert_eq!(r, Ok(7));
}

#[target_test]
fn a_parked_stopper_refuses_work_cleanly_and_unparks() {
    require_all_cpus();
    assert_eq!(
        STOPPERS.stop_one_cpu(3, || {
            STOPPERS.stop_machine_park(3);
            0
        }),
        Ok(0)
    );
    assert!(wait_until(Duration::from_secs(2), || STOPPERS.is_parked(3)), "cpu3 never parked");
    let ran = AtomicBool::new(false);
    let f = || {
        ran.store(true, Ordering::SeqCst);
        0
    };
    assert_eq!(STOPPERS.stop_one_cpu(3, f), Err(StopError::NoEnt));
    assert_eq!(STOPPERS.stop_two_cpus(2, 3, f), Err(StopError::NoEnt));
    assert!(!ran.load(Ordering::SeqCst), "f ran although refused");
    let hits = AtomicU64::new(0);
    let g = || {
        hits.fetch_add(1 << (8 * armstop::cpu::id()), Ordering::SeqCst);
        0
    };
    assert_eq!(STOPPERS.stop_cpus(CpuSet::from_bits(0b1100), g), Ok(0), "runs where enabled");
    assert_eq!(STOPPERS.stop_machine(g, Some(ALL)), Ok(0), "stop_machine over the enabled CPUs");
    // stop_cpus: cpu2 only; stop_machine: cpu0, cpu1, cpu2.
    assert_eq!(hits.load(Ordering::SeqCst), 0x0002_0101, "never on cpu3");
    assert_eq!(STOPPERS.stop_cpus(CpuSet::from_bits(0b1000), g), Err(StopError::NoEnt));
    assert_eq!(STOPPERS.stats().park_with_works, 0);
    STOPPERS.stop_machine_unpark(3);
    assert_eq!(STOPPERS.stop_one_cpu(3, || me()), Ok(3));
}

// --- Regression scenarios: thousands of iterations, exact counts -----------------------------

const CROSSED: usize = 1000;
static PAIR_RUNS: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];

fn crossed_pair(i: usize) -> usize {
    let (a, b) = [(0, 1), (1, 2), (2, 0)][i];
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

#[target_test]
fn crossed_stop_two_cpus_from_three_cpus_at_once() {
    require_all_cpus();
    for c in &PAIR_RUNS {
        c.store(0, Ordering::Relaxed);
    }
    let p1 = smp::post(1, crossed_pair, 0).expect("post");
    let p2 = smp::post(2, crossed_pair, 1).expect("post");
    let p3 = smp::post(3, crossed_pair, 2).expect("post");
    for p in [p1, p2, p3] {
        assert_eq!(p.wait_timeout(SCENARIO), Ok(0));
    }
    for (i, c) in PAIR_RUNS.iter().enumerate() {
        assert_eq!(c.load(Ordering::Relaxed), CROSSED, "pair {i}");
    }
}

static STOP_PAIRS: AtomicBool = AtomicBool::new(false);
static RANDOM_PAIR_RUNS: AtomicUsize = AtomicUsize::new(0);

fn random_pairs(seed: usize) -> usize {
    let mut x = seed as u64 * 2_654_435_761 + 1;
    let mut n = 0;
    while !STOP_PAIRS.load(Ordering::Relaxed) {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let a = (x >> 33) as usize % 4;
        let b = (a + 1 + (x >> 40) as usize % 3) % 4;
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
    require_all_cpus();
    const MACHINES: u64 = 300;
    STOP_PAIRS.store(false, Ordering::Relaxed);
    RANDOM_PAIR_RUNS.store(0, Ordering::Relaxed);
    let retries_before = STOPPERS.stats().in_progress_retries;
    let posted: [_; 3] =
        core::array::from_fn(|i| smp::post(i + 1, random_pairs, i + 1).expect("post"));
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
    let requested: usize =
        posted.into_iter().map(|p| p.wait_timeout(SCENARIO).expect("pair requester")).sum();
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

fn b_side(_: usize) -> usize {
    for _ in 0..NESTED {
        assert_eq!(STOPPERS.stop_two_cpus(1, 2, || 0), Ok(0));
    }
    0
}

fn a_side(_: usize) -> usize {
    for _ in 0..NESTED {
        // A = cpu1 runs a callback that queues to B = cpu2, which is busy in stop_two_cpus(A, B).
        assert_eq!(
            STOPPERS.stop_one_cpu(1, || {
                if STOPPERS.stop_one_cpu_nowait(2, &FROM_CALLBACK) {
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
    require_all_cpus();
    FROM_CALLBACK_RAN.store(0, Ordering::Relaxed);
    QUEUED_FROM_CALLBACK.store(0, Ordering::Relaxed);
    let b = smp::post(2, b_side, 0).expect("post");
    let a = smp::post(3, a_side, 0).expect("post");
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
    require_all_cpus();
    STOPPERS.set_watchdog(50_000_000);
    let reports = STOPPERS.stats().watchdog_reports;
    assert!(STOPPERS.stop_one_cpu_nowait(3, &SLOW_WORK));
    assert!(wait_until(Duration::from_secs(1), || STOPPERS.running(3).is_some()));
    armstop::console::capture_start();
    let r = STOPPERS.stop_machine(|| 0, None);
    STOPPERS.set_watchdog(armstop::stop::WATCHDOG_NS);
    assert_eq!(r, Ok(0));
    armstop::console::capture_finish(|text, _| {
        assert!(
            text.contains("cpu3: running suite::stopper::slow_participant <- "),
            "watchdog report:\n{text}"
        );
    });
    assert!(STOPPERS.stats().watchdog_reports > reports);
}
