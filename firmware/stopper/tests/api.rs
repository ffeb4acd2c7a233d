//! Every request kind and every error path, on a host machine of 4 std-thread CPUs.

#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use armstop_stopper::{CpuSet, NowaitWork, Platform, SPIN_ONLY, StopError};
use common::{Machine, N};

fn me(m: &Machine) -> usize {
    m.s.platform().cpu_id()
}

#[test]
fn stop_one_cpu_runs_on_the_target_and_returns_its_value() {
    let m = Machine::new();
    let s = m.s;
    for target in 0..N {
        let ran_on = m.on(0, move || {
            let seen = AtomicUsize::new(usize::MAX);
            let r = s.stop_one_cpu(target, || {
                seen.store(s.platform().cpu_id(), Ordering::SeqCst);
                7
            });
            (r, seen.load(Ordering::SeqCst))
        });
        assert_eq!(ran_on, (Ok(7), target));
    }
}

#[test]
fn stop_one_cpu_on_a_disabled_stopper_fails_and_never_runs() {
    let m = Machine::new();
    let s = m.s;
    m.on(2, move || {
        s.stop_machine_park(2);
        assert!(s.park());
    });
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    let r = m.on(0, move || {
        s.stop_one_cpu(2, || {
            r2.store(true, Ordering::SeqCst);
            0
        })
    });
    assert_eq!(r, Err(StopError::NoEnt));
    assert_eq!(StopError::NoEnt.errno(), -2);
    std::thread::sleep(Duration::from_millis(50));
    assert!(!ran.load(Ordering::SeqCst), "f ran on a disabled stopper");
    assert_eq!(m.on(0, move || s.stop_one_cpu(N, || 0)), Err(StopError::InvalidCpu));
}

/// The stoppers have room for `N` CPUs; a machine found at boot with fewer makes the ids past
/// its own invalid, not merely offline, for every request kind.
#[test]
fn ids_past_nr_cpu_ids_are_invalid_not_offline() {
    let m = Machine::new();
    let s = m.s;
    s.set_nr_cpu_ids(N - 1);
    assert_eq!(s.nr_cpu_ids(), N - 1);
    let last = N - 1;
    assert_eq!(m.on(0, move || s.stop_one_cpu(last, || 0)), Err(StopError::InvalidCpu));
    assert_eq!(m.on(0, move || s.stop_two_cpus(0, last, || 0)), Err(StopError::InvalidCpu));
    let set = CpuSet::single(last);
    assert_eq!(m.on(0, move || s.stop_cpus(set, || 0)), Err(StopError::InvalidCpu));
    assert_eq!(m.on(0, move || s.stop_machine(|| 0, Some(set))), Err(StopError::InvalidCpu));
    assert_eq!(m.on(0, move || s.stop_one_cpu(last - 1, || 7)), Ok(7), "the others still work");
    s.set_nr_cpu_ids(0);
    assert_eq!(s.nr_cpu_ids(), 1, "clamped: the boot CPU always exists");
    s.set_nr_cpu_ids(usize::MAX);
    assert_eq!(s.nr_cpu_ids(), N, "clamped to the stoppers' room");
}

#[test]
fn nowait_runs_and_its_buffer_is_reusable_only_after_running() {
    static COUNT: AtomicUsize = AtomicUsize::new(0);
    static GATE: AtomicBool = AtomicBool::new(false);
    static F: fn() -> i32 = || {
        while !GATE.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        COUNT.fetch_add(1, Ordering::SeqCst);
        0
    };
    static WORK: NowaitWork = NowaitWork::new("count", &F);
    let m = Machine::new();
    let s = m.s;
    assert!(m.on(0, move || s.stop_one_cpu_nowait(1, &WORK)));
    assert!(WORK.is_pending());
    assert!(!m.on(0, move || s.stop_one_cpu_nowait(2, &WORK)), "a pending buffer was queued twice");
    GATE.store(true, Ordering::SeqCst);
    while WORK.is_pending() {
        std::thread::yield_now();
    }
    assert_eq!(COUNT.load(Ordering::SeqCst), 1);
    assert!(m.on(0, move || s.stop_one_cpu_nowait(3, &WORK)));
    while WORK.is_pending() {
        std::thread::yield_now();
    }
    assert_eq!(COUNT.load(Ordering::SeqCst), 2);
    assert!(!m.on(0, move || s.stop_one_cpu_nowait(N, &WORK)), "invalid CPU");
}

#[test]
fn stop_two_cpus_runs_on_the_first_while_the_second_is_held() {
    let m = Machine::new();
    let s = m.s;
    let r = m.on(3, move || {
        let where_ = Mutex::new(Vec::new());
        let r = s.stop_two_cpus(2, 0, || {
            where_.lock().unwrap().push(s.platform().cpu_id());
            // cpu0 is inside its stopper (the multi-CPU stop), not free.
            assert!(s.running(0).is_some(), "cpu0 not held in its stopper");
            5
        });
        (r, where_.into_inner().unwrap())
    });
    assert_eq!(r, (Ok(5), vec![2]));
    assert_eq!(m.on(0, move || s.stop_two_cpus(1, 1, || 0)), Err(StopError::SameCpu));
    assert_eq!(m.on(0, move || s.stop_two_cpus(1, N, || 0)), Err(StopError::InvalidCpu));
}

#[test]
fn stop_two_cpus_with_a_disabled_cpu_queues_nothing() {
    let m = Machine::new();
    let s = m.s;
    m.on(3, move || {
        s.stop_machine_park(3);
        assert!(s.park());
    });
    let before = s.runs(1);
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    assert_eq!(
        m.on(0, move || s.stop_two_cpus(1, 3, || {
            r2.store(true, Ordering::SeqCst);
            0
        })),
        Err(StopError::NoEnt)
    );
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(s.runs(1), before, "a work was queued on the enabled CPU");
    assert!(!ran.load(Ordering::SeqCst));
}

#[test]
fn stop_cpus_runs_only_where_enabled_and_fails_when_none_is() {
    let m = Machine::new();
    let s = m.s;
    m.on(1, move || {
        s.stop_machine_park(1);
        assert!(s.park());
    });
    let hits = Arc::new(Mutex::new(Vec::new()));
    let h = hits.clone();
    let r = m.on(0, move || {
        s.stop_cpus(CpuSet::from_bits(0b1110), || {
            h.lock().unwrap().push(s.platform().cpu_id());
            0
        })
    });
    assert_eq!(r, Ok(0));
    let mut got = hits.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec![2, 3]);
    assert_eq!(
        m.on(0, move || s.stop_cpus(CpuSet::from_bits(0b0010), || 1)),
        Err(StopError::NoEnt)
    );
    assert_eq!(m.on(0, move || s.stop_cpus(CpuSet::single(N), || 1)), Err(StopError::InvalidCpu));
}

#[test]
fn try_stop_cpus_fails_fast_while_another_runs() {
    let m = Machine::new();
    let s = m.s;
    static HOLD: AtomicBool = AtomicBool::new(true);
    static INSIDE: AtomicBool = AtomicBool::new(false);
    let first = m.spawn_on(0, move || {
        s.stop_cpus(CpuSet::from_bits(0b0010), || {
            INSIDE.store(true, Ordering::SeqCst);
            while HOLD.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            0
        })
    });
    while !INSIDE.load(Ordering::SeqCst) {
        std::thread::yield_now();
    }
    assert_eq!(
        m.on(2, move || s.try_stop_cpus(CpuSet::from_bits(0b1000), || 0)),
        Err(StopError::Busy)
    );
    HOLD.store(false, Ordering::SeqCst);
    assert_eq!(first.recv().unwrap(), Ok(0));
    assert_eq!(m.on(2, move || s.try_stop_cpus(CpuSet::from_bits(0b1000), || 0)), Ok(0));
}

#[test]
fn stop_machine_without_a_mask_runs_once_with_everyone_stopped() {
    let m = Machine::new();
    let s = m.s;
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let r = m.on(2, move || {
        s.stop_machine(
            || {
                c.fetch_add(1, Ordering::SeqCst);
                for cpu in 0..N {
                    assert!(s.running(cpu).is_some(), "cpu{cpu} not inside its stopper during RUN");
                }
                0
            },
            None,
        )
    });
    assert_eq!(r, Ok(0));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn stop_machine_with_a_mask_runs_on_those_cpus() {
    let m = Machine::new();
    let s = m.s;
    let hits = Arc::new(Mutex::new(Vec::new()));
    let h = hits.clone();
    assert_eq!(
        m.on(0, move || s.stop_machine(
            || {
                h.lock().unwrap().push(s.platform().cpu_id());
                0
            },
            Some(CpuSet::from_bits(0b1001))
        )),
        Ok(0)
    );
    let mut got = hits.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, vec![0, 3]);
}

#[test]
fn non_zero_returns_propagate() {
    let m = Machine::new();
    let s = m.s;
    assert_eq!(m.on(0, move || s.stop_one_cpu(1, || -5)), Ok(-5));
    assert_eq!(m.on(0, move || s.stop_two_cpus(1, 2, || -7)), Ok(-7));
    assert_eq!(
        m.on(0, move || s.stop_cpus(CpuSet::from_bits(0b0110), || if s.platform().cpu_id() == 2 {
            -9
        } else {
            0
        })),
        Ok(-9)
    );
    assert_eq!(m.on(0, move || s.stop_machine(|| -11, Some(CpuSet::from_bits(0b1111)))), Ok(-11));
}

#[test]
fn works_run_in_fifo_order_per_cpu() {
    const K: usize = 64;
    static ORDER: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    static GATE: AtomicBool = AtomicBool::new(false);
    static BLOCK: fn() -> i32 = || {
        while !GATE.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        0
    };
    static BLOCKER: NowaitWork = NowaitWork::new("block", &BLOCK);
    static FNS: [fn() -> i32; K] = {
        let mut a: [fn() -> i32; K] = [|| 0; K];
        macro_rules! set { ($($i:literal)*) => { $( a[$i] = || { ORDER.lock().unwrap().push($i); 0 }; )* } }
        set!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
             32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
        a
    };
    static WORKS: [NowaitWork; K] = {
        let mut i = 0;
        let mut w = [const { NowaitWork::new("noop", &FNS[0]) }; K];
        while i < K {
            w[i] = NowaitWork::new("ordered", &FNS[i]);
            i += 1;
        }
        w
    };
    let m = Machine::new();
    let s = m.s;
    m.on(0, move || {
        assert!(s.stop_one_cpu_nowait(3, &BLOCKER));
        for w in &WORKS {
            assert!(s.stop_one_cpu_nowait(3, w));
        }
    });
    GATE.store(true, Ordering::SeqCst);
    while WORKS.iter().any(NowaitWork::is_pending) {
        std::thread::yield_now();
    }
    assert_eq!(*ORDER.lock().unwrap(), (0..K).collect::<Vec<_>>());
}

#[test]
fn waiting_requests_from_a_callback_are_refused() {
    let m = Machine::new();
    let s = m.s;
    let r = m.on(0, move || {
        let inner = Mutex::new(None);
        s.stop_one_cpu(1, || {
            *inner.lock().unwrap() = Some((
                s.stop_one_cpu(2, || 0),
                s.stop_two_cpus(2, 3, || 0),
                s.stop_cpus(CpuSet::from_bits(0b100), || 0),
                s.stop_machine(|| 0, None),
            ));
            0
        })
        .unwrap();
        inner.into_inner().unwrap().unwrap()
    });
    let e = Err(StopError::WouldDeadlock);
    assert_eq!(r, (e, e, e, e));
}

#[test]
fn parking_flushes_queued_works_first() {
    static RAN: AtomicU64 = AtomicU64::new(0);
    static F: fn() -> i32 = || {
        RAN.fetch_add(1, Ordering::SeqCst);
        0
    };
    static W: [NowaitWork; 3] = [const { NowaitWork::new("flushed", &F) }; 3];
    let m = Machine::new();
    let s = m.s;
    // Queue three works, then park from a callback on the same CPU (as take_cpu_down does):
    // the three are behind the callback and must run before the stopper parks.
    let parked = m.on(1, move || {
        s.stop_one_cpu(2, || {
            for w in &W {
                assert!(s.stop_one_cpu_nowait(2, w));
            }
            s.stop_machine_park(2);
            0
        })
    });
    assert_eq!(parked, Ok(0));
    while !s.is_parked(2) {
        std::thread::yield_now();
    }
    assert_eq!(RAN.load(Ordering::SeqCst), 3);
    assert_eq!(s.stats().park_with_works, 0);
    assert!(!s.is_enabled(2));
    s.stop_machine_unpark(2);
    assert_eq!(m.on(0, move || s.stop_one_cpu(2, || 1)), Ok(1));
}

/// With spin-only waits nothing sleeps, so nothing may be woken either: a wake sent to a CPU
/// that is not asleep on that channel is a spurious SGI (it ends the CPU's next sleep early).
#[test]
fn spin_only_waits_neither_sleep_nor_wake() {
    let m = Machine::new();
    let s = m.s;
    s.set_spin_ns(SPIN_ONLY);
    let all = CpuSet::first_n(N);
    let r = m.on(0, move || {
        [
            s.stop_one_cpu(1, || 1),
            s.stop_two_cpus(1, 2, || 2),
            s.stop_cpus(all, || 3),
            s.try_stop_cpus(all, || 4),
            s.stop_machine(|| 5, None),
        ]
    });
    assert_eq!(r, [Ok(1), Ok(2), Ok(3), Ok(4), Ok(5)]);
    let st = s.stats();
    assert_eq!((st.sleeps, st.wakes), (0, 0), "{st:?}");
    assert_eq!(st.watchdog_reports, 0, "no watchdog is set: {:?}", m.reports());
}

/// With no spin budget, a requester whose work takes a while sleeps until it is done (its CPU
/// has no works of its own to run meanwhile).
#[test]
fn a_requester_with_no_spin_budget_sleeps() {
    let m = Machine::new();
    let s = m.s;
    if s.spin_ns() == SPIN_ONLY {
        return; // ARMSTOP_SPIN_NS=spin: no wait sleeps
    }
    s.set_spin_ns(0);
    let r = m.on(0, move || {
        s.stop_one_cpu(3, || {
            std::thread::sleep(Duration::from_millis(50));
            8
        })
    });
    assert_eq!(r, Ok(8));
    assert!(s.stats().sleeps > 0, "the requester never slept in 50 ms");
}

/// A wait spins for its budget before it sleeps: within the budget, no sleep.
#[test]
fn a_wait_within_its_spin_budget_does_not_sleep() {
    let m = Machine::new();
    let s = m.s;
    s.set_spin_ns(10_000_000_000);
    assert_eq!(s.spin_ns(), 10_000_000_000);
    let r = m.on(0, move || {
        s.stop_one_cpu(3, || {
            std::thread::sleep(Duration::from_millis(50));
            9
        })
    });
    assert_eq!(r, Ok(9));
    assert_eq!(s.stats().sleeps, 0, "slept within a 10 s budget");
}

/// A `stop_cpus` that waits for the mutex a `try_stop_cpus` holds sleeps on that mutex, and the
/// `try_stop_cpus` must wake it when it lets go.
#[test]
fn a_stop_cpus_behind_a_try_stop_cpus_is_woken() {
    static GATE: AtomicBool = AtomicBool::new(false);
    let m = Machine::new();
    let s = m.s;
    let held = m.spawn_on(0, move || {
        s.try_stop_cpus(CpuSet::single(3), || {
            while !GATE.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            1
        })
    });
    while s.running(3).is_none() {
        std::thread::yield_now();
    }
    let behind = m.spawn_on(1, move || s.stop_cpus(CpuSet::single(2), || 2));
    let until = Instant::now() + Duration::from_secs(1);
    while s.spin_ns() != SPIN_ONLY && !s.is_sleeping(1) && Instant::now() < until {
        std::thread::yield_now();
    }
    GATE.store(true, Ordering::SeqCst);
    assert_eq!(held.recv_timeout(Duration::from_secs(10)), Ok(Ok(1)));
    let r = behind.recv_timeout(Duration::from_secs(10));
    assert_eq!(r, Ok(Ok(2)), "the stop_cpus waiting for the mutex was never woken");
}

/// A platform with no CPU threads: one CPU, the caller, and a record of the kicks and relaxes.
#[derive(Default)]
struct Recorder {
    kicks: Mutex<Vec<usize>>,
    relaxes: AtomicUsize,
}

impl Platform for Recorder {
    fn cpu_id(&self) -> usize {
        0
    }
    fn kick(&self, cpu: usize) {
        self.kicks.lock().unwrap().push(cpu);
    }
    fn irq_save(&self) -> usize {
        0
    }
    fn irq_restore(&self, _: usize) {}
    fn relax(&self) {
        self.relaxes.fetch_add(1, Ordering::SeqCst);
    }
    fn now_ns(&self) -> u64 {
        0
    }
    fn report(&self, _: std::fmt::Arguments<'_>) {}
}

/// The `Platform` defaults: `kick_set` kicks each CPU of the set, `sleep` on a platform that
/// cannot sleep spins once (a relax) and returns, `halt` halts nothing and `run_callback` just
/// calls the callback.
#[test]
fn platform_defaults_kick_each_cpu_and_spin_for_sleep() {
    let p = Recorder::default();
    p.kick_set(CpuSet::from_bits(0b1101));
    assert_eq!(*p.kicks.lock().unwrap(), vec![0, 2, 3]);
    p.sleep(u64::MAX);
    assert_eq!(p.relaxes.load(Ordering::SeqCst), 1);
    // A platform that does not say how to halt a CPU cannot: the watchdog then waits on.
    assert!(!p.halt(0) && !p.halt(3));
    assert_eq!(p.run_callback(&mut || 7), 7);
}

/// One CPU with a clock that only moves when it is told to: each relax is 1 ns, and a sleep
/// records when it began and wakes the waiter (its condition reads `slept_at`).
#[derive(Default)]
struct Ticks {
    now: AtomicU64,
    relaxes: AtomicUsize,
    slept_at: Mutex<Option<(u64, usize)>>,
}

impl Platform for Ticks {
    fn cpu_id(&self) -> usize {
        0
    }
    fn kick(&self, _: usize) {}
    fn irq_save(&self) -> usize {
        0
    }
    fn irq_restore(&self, _: usize) {}
    fn relax(&self) {
        self.relaxes.fetch_add(1, Ordering::SeqCst);
        self.now.fetch_add(1, Ordering::SeqCst);
    }
    fn sleep(&self, _deadline_ns: u64) {
        let mut at = self.slept_at.lock().unwrap();
        at.get_or_insert((self.now.load(Ordering::SeqCst), self.relaxes.load(Ordering::SeqCst)));
    }
    fn now_ns(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
    fn report(&self, _: std::fmt::Arguments<'_>) {}
}

/// The spin budget to the nanosecond: a wait relaxes while less than the budget has passed
/// since it began and sleeps the first time it finds the whole budget spent (0: at once); a
/// wait with a deadline gives up the first time it finds the deadline reached.
#[test]
fn a_wait_spins_exactly_its_budget_and_stops_at_its_deadline() {
    for budget in [0, 1, 5] {
        let s = armstop_stopper::Stoppers::<Ticks, 1>::new(Ticks::default());
        s.set_spin_ns(budget);
        let p = s.platform();
        assert!(s.wait_until(1, u64::MAX, || p.slept_at.lock().unwrap().is_some()));
        let (at, relaxes) = p.slept_at.lock().unwrap().unwrap();
        assert_eq!((at, relaxes), (budget, budget as usize), "budget {budget} ns");
    }
    for deadline in [0, 1, 5] {
        let s = armstop_stopper::Stoppers::<Ticks, 1>::new(Ticks::default());
        s.set_spin_ns(SPIN_ONLY);
        assert!(!s.wait_until(1, deadline, || false));
        let p = s.platform();
        assert_eq!(p.relaxes.load(Ordering::SeqCst), deadline as usize, "deadline {deadline}");
        assert!(p.slept_at.lock().unwrap().is_none(), "a spin-only wait slept");
    }
}

/// The spin budget as `ARMSTOP_SPIN_NS` spells it: ns, or `spin` for spin-only.
#[test]
fn spin_budgets_parse() {
    use armstop_stopper::parse_spin_ns;
    assert_eq!(parse_spin_ns("spin"), Some(SPIN_ONLY));
    assert_eq!(parse_spin_ns("20000"), Some(20_000));
    assert_eq!(parse_spin_ns("0"), Some(0));
    assert_eq!(parse_spin_ns("20us"), None);
}

/// Ids past the stoppers' room are no CPU: not enabled, not asleep, not halted (and never
/// looked up).
#[test]
fn per_cpu_queries_past_the_room_answer_no() {
    let m = Machine::new();
    assert!(!m.s.is_enabled(N));
    assert!(!m.s.is_sleeping(N));
    assert!(!m.s.is_halted(N) && !m.s.is_halted(usize::MAX));
    assert_eq!(m.s.enabled_mask(), CpuSet::first_n(N));
}

/// `is_parked` tells a parked stopper from a running one: only the CPU that parked is.
#[test]
fn only_a_parked_stopper_says_it_is_parked() {
    let m = Machine::new();
    let s = m.s;
    assert!((0..N).all(|c| !s.is_parked(c) && !s.park_requested(c)), "every stopper runs");
    let requested = m.on(2, move || {
        s.stop_machine_park(2);
        let requested = (0..N).map(|c| s.park_requested(c)).collect::<Vec<_>>();
        assert!(s.park());
        requested
    });
    assert_eq!(requested, [false, false, true, false], "asked to park: cpu2 alone");
    assert!(!s.park_requested(2), "parking answers the request");
    assert_eq!((0..N).map(|c| s.is_parked(c)).collect::<Vec<_>>(), [false, false, true, false]);
    s.stop_machine_unpark(2);
    assert!(!s.is_parked(2));
}

/// `run_works` runs what is queued, in order, and says how many it ran (the stopper loop goes
/// on to idle only when that is 0).
#[test]
fn run_works_counts_what_it_ran() {
    static ORDER: Mutex<Vec<usize>> = Mutex::new(Vec::new());
    static FS: [fn() -> i32; 3] = [
        || {
            ORDER.lock().unwrap().push(0);
            0
        },
        || {
            ORDER.lock().unwrap().push(1);
            0
        },
        || {
            ORDER.lock().unwrap().push(2);
            0
        },
    ];
    static W: [NowaitWork; 3] = [
        NowaitWork::new("w0", &FS[0]),
        NowaitWork::new("w1", &FS[1]),
        NowaitWork::new("w2", &FS[2]),
    ];
    let s = armstop_stopper::Stoppers::<Recorder, 1>::new(Recorder::default());
    s.stop_machine_unpark(0);
    assert_eq!(s.run_works(), 0, "nothing queued");
    for w in &W {
        assert!(s.stop_one_cpu_nowait(0, w));
    }
    assert_eq!(*s.platform().kicks.lock().unwrap(), [0, 0, 0], "one kick per work");
    assert_eq!(s.run_works(), 3);
    assert_eq!(*ORDER.lock().unwrap(), [0, 1, 2]);
    assert_eq!((s.runs(0), s.run_works()), (3, 0));
    assert!(W.iter().all(|w| !w.is_pending()));
}

/// A multi-CPU stop's participants that wait for a late one sleep (with no watchdog there is
/// no deadline to wake up for), and are woken when it arrives.
#[test]
fn participants_waiting_for_a_late_cpu_sleep() {
    static GATE: AtomicBool = AtomicBool::new(false);
    let m = Machine::new();
    let s = m.s;
    if s.spin_ns() == SPIN_ONLY {
        return; // ARMSTOP_SPIN_NS=spin: no wait sleeps
    }
    let busy = m.spawn_on(0, move || {
        s.stop_one_cpu(3, || {
            while !GATE.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            0
        })
    });
    while s.running(3).is_none() {
        std::thread::yield_now();
    }
    let sm = m.spawn_on(1, move || s.stop_machine(|| 7, None));
    let until = Instant::now() + Duration::from_secs(1);
    while !s.is_sleeping(2) && Instant::now() < until {
        std::thread::yield_now();
    }
    let slept = s.is_sleeping(2);
    GATE.store(true, Ordering::SeqCst);
    assert_eq!(busy.recv_timeout(Duration::from_secs(10)), Ok(Ok(0)));
    assert_eq!(sm.recv_timeout(Duration::from_secs(10)), Ok(Ok(7)));
    assert!(slept, "cpu2 never slept while the stop_machine waited for cpu3");
    assert_eq!(s.stats().watchdog_reports, 0, "no watchdog is set: {:?}", m.reports());
}

/// Keeps cpu3 in a callback (asked from cpu0) until `slow` is cleared; returns once it runs
/// there, with the request's answer to come.
fn hold_cpu3(
    m: &Machine,
    slow: &'static AtomicBool,
) -> std::sync::mpsc::Receiver<Result<i32, StopError>> {
    let s = m.s;
    let busy = m.spawn_on(0, move || {
        s.stop_one_cpu(3, || {
            while slow.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            0
        })
    });
    while s.running(3).is_none() {
        std::thread::yield_now();
    }
    busy
}

/// The watchdog's report of a late `stop_two_cpus` names both CPUs it waits for.
#[test]
fn watchdog_names_both_cpus_of_a_late_stop_two_cpus() {
    static SLOW: AtomicBool = AtomicBool::new(true);
    let m = Machine::new();
    let s = m.s;
    s.set_watchdog(20_000_000);
    // The callback does finish: this is about the report, so the request only reports.
    s.set_watchdog_fails(false);
    let busy = hold_cpu3(&m, &SLOW);
    let two = m.spawn_on(1, move || s.stop_two_cpus(2, 3, || 0));
    let want = "stop request not finished after 20 ms; waiting for CPUs 2-3";
    let deadline = Instant::now() + Duration::from_secs(10);
    while !m.reports().iter().any(|l| l.contains(want)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    SLOW.store(false, Ordering::SeqCst);
    assert_eq!(busy.recv_timeout(Duration::from_secs(10)), Ok(Ok(0)));
    assert_eq!(two.recv_timeout(Duration::from_secs(10)), Ok(Ok(0)));
    assert!(m.reports().iter().any(|l| l.contains(want)), "{:?}", m.reports());
}

/// The watchdog reports a late multi-CPU stop's state once, whichever participant notices first;
/// after that the participants that wait on in it sleep again (no later deadline to wake for).
#[test]
fn after_its_report_a_waiting_participant_sleeps_again() {
    static SLOW: AtomicBool = AtomicBool::new(true);
    let m = Machine::new();
    let s = m.s;
    if s.spin_ns() == SPIN_ONLY {
        return; // ARMSTOP_SPIN_NS=spin: no wait sleeps
    }
    s.set_watchdog(20_000_000);
    // The callback does finish: this is about the report, so the request only reports.
    s.set_watchdog_fails(false);
    let busy = hold_cpu3(&m, &SLOW);
    let sm = m.spawn_on(1, move || s.stop_machine(|| 0, None));
    let reported = |m: &Machine| m.reports().iter().any(|l| l.contains("multi-CPU stop (PREPARE)"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !reported(&m) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    while !s.is_sleeping(2) && Instant::now() < deadline {
        std::thread::yield_now();
    }
    let slept = s.is_sleeping(2);
    SLOW.store(false, Ordering::SeqCst);
    assert_eq!(busy.recv_timeout(Duration::from_secs(10)), Ok(Ok(0)));
    assert_eq!(sm.recv_timeout(Duration::from_secs(10)), Ok(Ok(0)));
    let prepare = m.reports().iter().filter(|l| l.contains("multi-CPU stop (PREPARE)")).count();
    assert_eq!(prepare, 1, "one report per state, by whoever notices first: {:?}", m.reports());
    assert!(slept, "cpu2 did not sleep again after the watchdog reported PREPARE");
}

#[test]
fn errnos_are_linuxs() {
    assert_eq!(StopError::InvalidCpu.errno(), -22);
    assert_eq!(StopError::SameCpu.errno(), -22);
    assert_eq!(StopError::Busy.errno(), -11);
    assert_eq!(StopError::WouldDeadlock.errno(), -35);
    assert_eq!(StopError::TimedOut.errno(), -110);
    let _ = me;
}
