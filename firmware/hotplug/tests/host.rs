//! Hotplug on the host machine (std threads as CPUs): the down/up sequence, every refusal and
//! failure path, and the races of Linux's history, with exact accounting.
#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use armstop_hotplug::{
    CpuState, DownError, DownTimes, Step, Timeouts, UpError, UpTimes, transition_allowed,
};
use armstop_stopper::{CpuSet, NowaitWork, Platform, SPIN_ONLY, StopError};
use common::{Machine, N, PsciError, me};

const SHORT: Timeouts =
    Timeouts { boot_ns: 200_000_000, dead_ns: 200_000_000, off_ns: 200_000_000 };

#[test]
fn boot_brings_every_cpu_online_through_cpu_up() {
    let m = Machine::new();
    assert_eq!(m.hp.stats().ups, (N - 1) as u64);
    for cpu in 0..N {
        assert_eq!(m.hp.state(cpu), CpuState::Online);
        assert!(m.s.is_enabled(cpu));
    }
    assert!(!m.hp.is_online(N), "an id past the last CPU is no CPU, not an online one");
    assert_eq!(m.hp.stats().bad_transitions, 0);
}

#[test]
fn down_parks_disables_and_powers_off_then_up_serves_again() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    let t = m.on(0, move || hp.cpu_down(2)).expect("cpu_down(2)");
    assert!(t.total_ns() > 0);
    assert_eq!(hp.state(2), CpuState::Off);
    assert!(!m.powered(2), "AFFINITY_INFO must say OFF");
    assert!(!s.is_enabled(2) && s.is_parked(2));
    assert_eq!(hp.online_mask(), CpuSet::from_bits(0b1011));
    assert_eq!(*m.hw.migrations.lock().unwrap(), vec![(2, 0)], "interrupts moved to cpu0");
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    assert_eq!(
        m.on(1, move || s.stop_one_cpu(2, move || {
            r.store(true, Ordering::SeqCst);
            0
        })),
        Err(StopError::NoEnt)
    );
    assert!(!ran.load(Ordering::SeqCst));
    // stop_machine now runs without cpu2.
    assert_eq!(m.on(1, move || s.stop_machine(|| me() as i32 + 10, None)), Ok(10));
    m.on(0, move || hp.cpu_up(2)).expect("cpu_up(2)");
    assert_eq!(hp.state(2), CpuState::Online);
    assert_eq!(m.on(1, move || s.stop_one_cpu(2, || me() as i32)), Ok(2));
    assert_eq!(hp.stats().downs, 1);
    assert_eq!(s.stats().park_with_works, 0);
    assert_eq!(hp.stats().bad_transitions, 0);
}

/// The report prints each step and the whole: the whole must be their sum (distinct odd
/// figures, so that no other combination of them gives it).
#[test]
fn a_down_or_up_takes_the_sum_of_its_steps() {
    assert_eq!(DownTimes { stop_ns: 5, dead_ns: 7, off_ns: 11 }.total_ns(), 23);
    assert_eq!(UpTimes { on_ns: 5, online_ns: 7 }.total_ns(), 12);
}

/// The times `cpu_down` and `cpu_up` report are their steps' durations: each took some time,
/// and together no longer than the call.
#[test]
fn reported_times_fit_in_the_call() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    let (down, up, elapsed) = m.on(0, move || {
        let t0 = s.platform().now_ns();
        let down = hp.cpu_down(1).unwrap();
        let up = hp.cpu_up(1).unwrap();
        (down, up, s.platform().now_ns() - t0)
    });
    let steps = [down.stop_ns, down.dead_ns, down.off_ns, up.on_ns, up.online_ns];
    assert!(steps.iter().all(|&t| t > 1), "a step that took no time: {down:?} {up:?}");
    assert!(down.total_ns() + up.total_ns() <= elapsed, "{down:?} {up:?} in {elapsed} ns");
}

#[test]
fn cpu_down_refusals() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    assert_eq!(m.on(0, move || hp.cpu_down(N)), Err(DownError::InvalidCpu));
    assert_eq!(m.on(1, move || hp.cpu_down(1)), Err(DownError::SelfTarget));
    // From inside a stopper callback.
    let r = m.on(1, move || {
        s.stop_one_cpu(3, || {
            hp.cpu_down(2).map_or_else(|e| e == DownError::FromCallback, |_| false) as i32
        })
    });
    assert_eq!(r, Ok(1), "cpu_down from a callback must be refused");
    hp.pin(3);
    assert_eq!(m.on(0, move || hp.cpu_down(3)), Err(DownError::Pinned));
    m.on(0, move || hp.cpu_down(1)).unwrap();
    assert_eq!(m.on(0, move || hp.cpu_down(1)), Err(DownError::NotOnline(CpuState::Off)));
    m.on(0, move || hp.cpu_down(2)).unwrap();
    // cpu3 is pinned, so take down cpu0 from cpu3 to leave cpu3 alone... it is pinned only
    // against being taken down, so the last-online check comes first.
    m.on(3, move || hp.cpu_down(0)).unwrap();
    assert_eq!(hp.online_mask(), CpuSet::from_bits(0b1000));
    assert_eq!(m.on(3, move || hp.cpu_down(3)), Err(DownError::LastOnline));
    assert_eq!(m.on(3, move || hp.cpu_up(3)), Err(UpError::AlreadyOnline));
    assert_eq!(m.on(3, move || hp.cpu_up(N)), Err(UpError::InvalidCpu));
    let r =
        m.on(3, move || s.stop_one_cpu(3, || (hp.cpu_up(1) == Err(UpError::FromCallback)) as i32));
    assert_eq!(r, Ok(1), "cpu_up from a callback must be refused");
    m.on(3, move || {
        for cpu in 0..3 {
            hp.cpu_up(cpu).unwrap();
        }
    });
    assert_eq!(hp.online_mask(), CpuSet::from_bits(0b1111));
    assert_eq!(hp.stats().bad_transitions, 0);
}

#[test]
fn a_cpu_that_never_reports_in_is_failed_refused_and_recoverable() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    hp.set_timeouts(SHORT);
    m.on(0, move || hp.cpu_down(3)).unwrap();
    m.hw.stall_boot[3].store(true, Ordering::SeqCst);
    assert_eq!(m.on(0, move || hp.cpu_up(3)), Err(UpError::Timeout { waited_ms: 200 }));
    assert_eq!(hp.state(3), CpuState::Failed);
    assert!(!s.is_enabled(3), "a failed CPU's stopper refuses work");
    assert_eq!(m.on(0, move || hp.cpu_down(3)), Err(DownError::Failed));
    // Still running in the firmware's view: CPU_ON says so, by name, and it stays FAILED.
    assert_eq!(m.on(0, move || hp.cpu_up(3)), Err(UpError::Power(PsciError::AlreadyOn)));
    assert_eq!(hp.state(3), CpuState::Failed);
    m.hw.stall_boot[3].store(false, Ordering::SeqCst);
    while m.powered(3) {
        thread::sleep(Duration::from_millis(1));
    }
    m.on(0, move || hp.cpu_up(3)).expect("a FAILED CPU that is off can be retried");
    assert_eq!(m.on(1, move || s.stop_one_cpu(3, || me() as i32)), Ok(3));
    assert_eq!(hp.stats().bad_transitions, 0);
}

/// While the controlling CPU waits for a CPU to report in, it sleeps, on a channel of its own
/// (the CPU states'), which a state change notifies.
#[test]
fn the_controller_sleeps_while_it_waits_for_a_boot() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    if s.spin_ns() == SPIN_ONLY {
        return; // ARMSTOP_SPIN_NS=spin: no wait sleeps
    }
    hp.set_timeouts(Timeouts { boot_ns: 1_000_000_000, ..SHORT });
    m.on(0, move || hp.cpu_down(3)).unwrap();
    m.hw.stall_boot[3].store(true, Ordering::SeqCst);
    let sleeps = s.stats().sleeps;
    let up = m.spawn_on(0, move || hp.cpu_up(3));
    let until = Instant::now() + Duration::from_millis(900);
    while !s.is_sleeping(0) && Instant::now() < until {
        thread::yield_now();
    }
    let slept = s.is_sleeping(0);
    assert_eq!(up.recv().unwrap(), Err(UpError::Timeout { waited_ms: 1000 }));
    assert!(slept, "cpu0 never slept in the 900 ms it waited for cpu3 to report in");
    assert!(s.stats().sleeps > sleeps, "cpu0 announced itself but never slept");
    m.hw.stall_boot[3].store(false, Ordering::SeqCst);
    while m.powered(3) {
        thread::sleep(Duration::from_millis(1));
    }
}

/// A CPU that reports in after `cpu_up` gave up on it stays FAILED: it flushes and parks the
/// stopper it has just enabled, counts as late (not as a bug), and turns itself off.
#[test]
fn a_cpu_that_reports_in_late_stays_failed_and_turns_off() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    hp.set_timeouts(SHORT);
    m.on(0, move || hp.cpu_down(3)).unwrap();
    m.hw.late_boot[3].store(true, Ordering::SeqCst);
    assert_eq!(m.on(0, move || hp.cpu_up(3)), Err(UpError::Timeout { waited_ms: 200 }));
    m.hw.late_boot[3].store(false, Ordering::SeqCst);
    while m.powered(3) {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(hp.state(3), CpuState::Failed);
    assert!(!s.is_enabled(3) && s.is_parked(3), "its stopper must be parked again");
    assert_eq!((hp.stats().late_cpus, hp.stats().bad_transitions), (1, 0));
    assert!(
        m.reports().iter().any(|l| l.contains("cpu3 reported in after cpu_up gave up on it")),
        "{:?}",
        m.reports()
    );
    m.on(0, move || hp.cpu_up(3)).expect("a late CPU that is off can be retried");
    assert_eq!(m.on(1, move || s.stop_one_cpu(3, || me() as i32)), Ok(3));
}

#[test]
fn cpu_on_refused_marks_failed_and_retry_works() {
    let m = Machine::new();
    let hp = m.hp;
    m.on(0, move || hp.cpu_down(1)).unwrap();
    *m.hw.refuse_on.lock().unwrap() = Some(PsciError::Denied);
    let e = m.on(0, move || hp.cpu_up(1)).unwrap_err();
    assert_eq!(e, UpError::Power(PsciError::Denied));
    assert_eq!(e.to_string(), "CPU_ON refused: DENIED; marked FAILED");
    assert_eq!(hp.state(1), CpuState::Failed);
    *m.hw.refuse_on.lock().unwrap() = None;
    m.on(0, move || hp.cpu_up(1)).unwrap();
    assert_eq!(hp.state(1), CpuState::Online);
}

#[test]
fn a_cpu_busy_in_its_thread_misses_the_dead_report_and_turns_off_late() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    hp.set_timeouts(SHORT);
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    // A long task on cpu2: its stopper still runs take_cpu_down (the waiter runs works), but
    // the CPU only reaches its loop's dying step when the task ends.
    let busy = m.spawn_on(2, move || {
        while !r.load(Ordering::SeqCst) {
            if s.has_work(2) {
                s.run_works();
            }
            thread::yield_now();
        }
    });
    thread::sleep(Duration::from_millis(20));
    assert_eq!(m.on(0, move || hp.cpu_down(2)), Err(DownError::NoDeadReport { waited_ms: 200 }));
    assert_eq!(hp.state(2), CpuState::Failed);
    assert!(!s.is_enabled(2));
    release.store(true, Ordering::SeqCst);
    busy.recv().unwrap();
    while m.powered(2) {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(hp.stats().late_cpus, 1);
    m.on(0, move || hp.cpu_up(2)).unwrap();
    assert_eq!(hp.stats().bad_transitions, 0);
}

#[test]
fn a_cpu_that_never_powers_off_is_failed_after_the_affinity_timeout() {
    let m = Machine::new();
    let hp = m.hp;
    hp.set_timeouts(SHORT);
    m.hw.stall_off[1].store(true, Ordering::SeqCst);
    assert_eq!(m.on(0, move || hp.cpu_down(1)), Err(DownError::NotOff { waited_ms: 200 }));
    assert_eq!(hp.state(1), CpuState::Failed);
    m.hw.stall_off[1].store(false, Ordering::SeqCst);
    while m.powered(1) {
        thread::sleep(Duration::from_millis(1));
    }
    m.on(0, move || hp.cpu_up(1)).unwrap();
    assert_eq!(hp.stats().bad_transitions, 0);
}

/// The stopper loop's step: nothing to do on a CPU whose stopper was not asked to park; flushed
/// and parked, but not dying, after a bare `stop_machine_park`.
#[test]
fn dying_step_runs_on_parks_or_powers_off_as_asked() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    assert_eq!(m.on(1, move || hp.dying_step()), Step::Run);
    let step = m.on(2, move || {
        s.stop_machine_park(2);
        hp.dying_step()
    });
    assert_eq!(step, Step::Parked);
    assert!(s.is_parked(2) && !s.is_enabled(2));
    assert_eq!(hp.state(2), CpuState::Online, "a bare park is not a death");
    s.stop_machine_unpark(2);
    assert_eq!(m.on(1, move || s.stop_one_cpu(2, || me() as i32)), Ok(2));
    assert_eq!(hp.stats().bad_transitions, 0);
}

/// `take_cpu_down` on a CPU that is no longer online refuses, with Linux's -EBUSY.
#[test]
fn take_cpu_down_of_a_cpu_not_online_is_ebusy() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    let r = m.on(1, move || s.stop_one_cpu(2, || hp.take_cpu_down(2) * 100 + hp.take_cpu_down(2)));
    assert_eq!(r, Ok(-16), "the first takes cpu2 down (0), the second is refused (-EBUSY)");
    assert_eq!(hp.stats().bad_transitions, 1, "the refused transition is reported");
    // cpu2 flushes, parks and turns off as if cpu_down had asked; then it can come back.
    while m.powered(2) {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(hp.state(2), CpuState::Dead);
    hp.transition(2, CpuState::Dead, CpuState::Off).unwrap();
    m.on(0, move || hp.cpu_up(2)).unwrap();
}

#[test]
fn wrong_transitions_are_reported_and_refused() {
    let m = Machine::new();
    let hp = m.hp;
    assert!(!transition_allowed(CpuState::Online, CpuState::Off));
    assert!(!transition_allowed(CpuState::Off, CpuState::Online));
    assert_eq!(hp.transition(1, CpuState::Online, CpuState::Off), Err(CpuState::Online));
    assert_eq!(hp.transition(1, CpuState::Off, CpuState::Booting), Err(CpuState::Online));
    assert_eq!(hp.state(1), CpuState::Online, "left alone");
    assert_eq!(hp.stats().bad_transitions, 2);
    let reports = m.reports();
    assert!(reports.iter().any(|l| l.contains(
        "BUG: cpu1: state transition ONLINE -> OFF refused: not an allowed transition; the CPU is ONLINE"
    )));
    assert!(
        reports
            .iter()
            .any(|l| l.contains("state transition OFF -> BOOTING refused: the CPU is ONLINE"))
    );
}

// --- Races --------------------------------------------------------------------------------

/// Runs `racer` on `racer_cpu` until the controller (cpu0) has taken `target` down and up
/// `cycles` times.
fn race(
    m: &Machine,
    target: usize,
    racer_cpu: usize,
    cycles: usize,
    racer: impl Fn() + Send + Sync + 'static,
) {
    let hp = m.hp;
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let racing = m.spawn_on(racer_cpu, move || {
        while !st.load(Ordering::SeqCst) {
            racer();
        }
    });
    m.on(0, move || {
        for _ in 0..cycles {
            hp.cpu_down(target).unwrap();
            hp.cpu_up(target).unwrap();
        }
    });
    stop.store(true, Ordering::SeqCst);
    racing.recv_timeout(Duration::from_secs(60)).expect("racer hung");
}

/// Linux 45178ac0cea8: a CPU seen online must accept stopper work at once.
#[test]
fn online_race_a_cpu_seen_online_accepts_work() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    let (hits, refusals) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (h, r) = (hits.clone(), refusals.clone());
    race(&m, 3, 1, 200, move || {
        while !hp.is_online(3) {
            thread::yield_now();
            if s.has_work(1) {
                s.run_works();
            }
            if hp.stats().downs >= 200 && hp.state(3) == CpuState::Online {
                break;
            }
        }
        match s.stop_one_cpu(3, || me() as i32) {
            Ok(3) => h.fetch_add(1, Ordering::SeqCst),
            Ok(cpu) => panic!("ran on cpu{cpu}"),
            // It may have gone down again since: only a refusal while it is still online is
            // the bug.
            Err(_) if hp.state(3) != CpuState::Online => r.fetch_add(1, Ordering::SeqCst),
            Err(e) => panic!("cpu3 is online but refused work: {e}"),
        };
    });
    assert!(hits.load(Ordering::SeqCst) > 0);
    eprintln!(
        "online race: {} hits, {} refusals",
        hits.load(Ordering::SeqCst),
        refusals.load(Ordering::SeqCst)
    );
}

/// What a storm counted.
#[derive(Default)]
struct Tally {
    accepted: AtomicU64,
    rejected: AtomicU64,
    ran: AtomicU64,
    /// Per hammering CPU's buffer: nowait works accepted, and how many of them ran. Counted
    /// per buffer because a buffer's `is_pending` is also true while a queue attempt on it is
    /// in progress, and the hammerers keep attempting (and failing) after the target is down.
    nowait_accepted: [AtomicU64; N],
    nowait_ran: [AtomicU64; N],
    machine_calls: AtomicU64,
    machine_ran: AtomicU64,
    wrong: AtomicU64,
}

static TALLY: std::sync::LazyLock<Tally> = std::sync::LazyLock::new(Tally::default);
static TARGET: AtomicUsize = AtomicUsize::new(0);
static STORM_HP: std::sync::OnceLock<&'static common::H> = std::sync::OnceLock::new();

/// Checks, on the CPU a work runs on, that it is the target and not yet dead.
fn on_target(t: usize) {
    let alive = matches!(STORM_HP.get().unwrap().state(me()), CpuState::Online | CpuState::Dying);
    if me() != t || !alive {
        TALLY.wrong.fetch_add(1, Ordering::SeqCst);
    }
}

fn nowait_f<const C: usize>() -> i32 {
    on_target(TARGET.load(Ordering::SeqCst));
    TALLY.nowait_ran[C].fetch_add(1, Ordering::SeqCst);
    0
}
static NOWAIT_FS: [fn() -> i32; N] = [nowait_f::<0>, nowait_f::<1>, nowait_f::<2>, nowait_f::<3>];
static NOWAIT: [NowaitWork; N] = [
    NowaitWork::new("storm nowait 0", &NOWAIT_FS[0]),
    NowaitWork::new("storm nowait 1", &NOWAIT_FS[1]),
    NowaitWork::new("storm nowait 2", &NOWAIT_FS[2]),
    NowaitWork::new("storm nowait 3", &NOWAIT_FS[3]),
];

/// One hammerer's request against the moving target `t`, checked exactly.
fn hammer_once(s: &'static common::S, cpu: usize, t: usize, i: usize) {
    let ran = AtomicUsize::new(0);
    let f = || {
        on_target(t);
        ran.fetch_add(1, Ordering::SeqCst);
        0
    };
    let ok = match i % 4 {
        0 => s.stop_one_cpu(t, f).is_ok(),
        1 => {
            if !NOWAIT[cpu].is_pending() && s.stop_one_cpu_nowait(t, &NOWAIT[cpu]) {
                TALLY.nowait_accepted[cpu].fetch_add(1, Ordering::SeqCst);
            }
            return;
        }
        2 => s
            .stop_two_cpus(t, cpu, || {
                if s.running(cpu).is_none() {
                    TALLY.wrong.fetch_add(1, Ordering::SeqCst); // the other CPU was not held
                }
                f()
            })
            .is_ok(),
        _ => {
            // Runs on the target iff it took part; it must never run anywhere else.
            TALLY.machine_calls.fetch_add(1, Ordering::SeqCst);
            assert_eq!(s.stop_machine(f, Some(CpuSet::single(t))), Ok(0));
            let n = ran.load(Ordering::SeqCst) as u64;
            if n > 1 {
                TALLY.wrong.fetch_add(1, Ordering::SeqCst);
            }
            TALLY.machine_ran.fetch_add(n, Ordering::SeqCst);
            return;
        }
    };
    let n = ran.load(Ordering::SeqCst);
    if (ok && n != 1) || (!ok && n != 0) {
        TALLY.wrong.fetch_add(1, Ordering::SeqCst);
    }
    let c = if ok { &TALLY.accepted } else { &TALLY.rejected };
    c.fetch_add(1, Ordering::SeqCst);
    TALLY.ran.fetch_add(n as u64, Ordering::SeqCst);
}

/// The guarantee under hotplug: while cpu0 takes a random CPU down and up, the other CPUs
/// hammer it with every request kind. Accepted works run exactly once, on the target, before
/// it is off; refused ones never run; stop_two_cpus runs on both or neither.
#[test]
fn storm_every_request_is_accounted_for() {
    let m = Machine::new();
    let (s, hp) = (m.s, m.hp);
    STORM_HP.set(hp).ok().unwrap();
    const CYCLES: usize = 300;
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for cycle in 0..CYCLES {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let t = 1 + (seed % (N as u64 - 1)) as usize;
        TARGET.store(t, Ordering::SeqCst);
        let stop = Arc::new(AtomicBool::new(false));
        let hammers: Vec<_> = (1..N)
            .filter(|&c| c != t)
            .map(|cpu| {
                let st = stop.clone();
                m.spawn_on(cpu, move || {
                    let mut i = cycle;
                    while !st.load(Ordering::SeqCst) {
                        hammer_once(s, cpu, t, i);
                        i += 1;
                    }
                })
            })
            .collect();
        m.on(0, move || {
            hp.cpu_down(t).unwrap_or_else(|e| panic!("cpu_down({t}): {e}"));
            // Every nowait work accepted for t ran before it went off. No more can be accepted
            // now, and earlier cycles' works have all run, so each buffer has run at least as
            // often as its hammerer has counted acceptances (more if an acceptance it has not
            // counted yet already ran).
            for c in 0..N {
                let accepted = TALLY.nowait_accepted[c].load(Ordering::SeqCst);
                let ran = TALLY.nowait_ran[c].load(Ordering::SeqCst);
                assert!(
                    ran >= accepted,
                    "cpu{c}'s nowait work was accepted {accepted} times but ran {ran} times when cpu{t} went off"
                );
            }
            hp.cpu_up(t).unwrap_or_else(|e| panic!("cpu_up({t}): {e}"));
        });
        stop.store(true, Ordering::SeqCst);
        for h in hammers {
            h.recv_timeout(Duration::from_secs(60)).expect("hammerer hung");
        }
        for w in &NOWAIT {
            while w.is_pending() {
                thread::yield_now();
            }
        }
    }
    let t = &*TALLY;
    let get = |a: &AtomicU64| a.load(Ordering::SeqCst);
    let sum = |a: &[AtomicU64; N]| a.iter().map(get).sum::<u64>();
    eprintln!(
        "storm: {CYCLES} cycles; waiting requests {} accepted, {} rejected, {} ran; nowait {} accepted, {} ran; stop_machine {} calls, {} ran on the target",
        get(&t.accepted),
        get(&t.rejected),
        get(&t.ran),
        sum(&t.nowait_accepted),
        sum(&t.nowait_ran),
        get(&t.machine_calls),
        get(&t.machine_ran)
    );
    assert_eq!(get(&t.wrong), 0, "a work ran on the wrong CPU, after its CPU died, or twice");
    assert_eq!(get(&t.ran), get(&t.accepted));
    for c in 0..N {
        assert_eq!(get(&t.nowait_ran[c]), get(&t.nowait_accepted[c]), "cpu{c}'s nowait work");
    }
    assert!(get(&t.rejected) > 0 && get(&t.accepted) > 0, "the storm never hit the window");
    assert_eq!(hp.stats().downs, CYCLES as u64);
    assert_eq!(s.stats().park_with_works, 0);
    assert_eq!(hp.stats().bad_transitions, 0);
}
