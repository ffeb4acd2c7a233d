//! Exhaustive (bounded) loom models of the stopper's races. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p armstop-stopper --test loom --release`.
//!
//! With `--features pre-fix-park` (the behaviour before Linux's fix "stop_machine: Ensure that a
//! queued callback will be called before cpu_stop_park()"), `queue_vs_park` must fail: that is
//! how we know the model can see the bug the fix is about.
//!
//! `stop_two_cpus_opposite_orders` is the model of two `stop_two_cpus` on one pair in opposite
//! orders: with a lock order that follows the arguments instead of the CPU numbers (the
//! cargo-mutants mutant `a < b` → `a == b` in `stop_two_cpus`) it fails with loom's deadlock
//! report (an ABBA on the two stoppers' locks), which the host stress tests do not reach.
#![cfg(loom)]

use armstop_stopper::model::{LoomPlatform, set_cpu};
use armstop_stopper::{CpuSet, NowaitWork, Platform, StopError, Stoppers};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};

/// Two CPUs' stoppers, both enabled, waits sleeping at once (see `model::stoppers`).
fn two_enabled() -> Arc<Stoppers<LoomPlatform, 2>> {
    let s: Arc<Stoppers<LoomPlatform, 2>> = Arc::new(armstop_stopper::model::stoppers());
    s.stop_machine_unpark(0);
    s.stop_machine_unpark(1);
    s
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b
}

/// The core guarantee: a nowait work queued while cpu1 goes down either runs (queue said yes)
/// or is refused (queue said no); never accepted and dropped.
#[test]
#[cfg_attr(feature = "pre-fix-park", should_panic(expected = "accepted work never ran"))]
fn queue_vs_park() {
    builder().check(|| {
        let s = two_enabled();
        // A nowait work's buffer and function are 'static; leak them (not an Arc: loom checks
        // those for leaks).
        let ran: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let f: &'static _ = Box::leak(Box::new(move || {
            ran.fetch_add(1, Ordering::SeqCst);
            0
        }));
        let work: &'static NowaitWork = Box::leak(Box::new(NowaitWork::new("modelled", f)));

        let s1 = s.clone();
        // cpu1: take_cpu_down's park, then the stopper loop's flush and park.
        let dying = loom::thread::spawn(move || {
            set_cpu(1);
            s1.stop_machine_park(1);
            s1.run_works();
            assert!(s1.park());
        });
        set_cpu(0);
        let queued = s.stop_one_cpu_nowait(1, work);
        dying.join().unwrap();
        let ran = ran.load(Ordering::SeqCst);
        if queued {
            assert_eq!(ran, 1, "accepted work never ran");
        } else {
            assert_eq!(ran, 0, "refused work ran");
        }
        assert_eq!(s.stats().park_with_works, 0);
    });
}

/// The same race for a waiting request: `stop_one_cpu` either returns the function's value
/// after it ran, or `NoEnt` with the function never run, and never waits forever.
#[test]
#[cfg_attr(feature = "pre-fix-park", should_panic(expected = "accepted work never ran"))]
fn stop_one_cpu_vs_park() {
    builder().check(|| {
        let s = two_enabled();
        let ran = Arc::new(AtomicUsize::new(0));
        let s1 = s.clone();
        let dying = loom::thread::spawn(move || {
            set_cpu(1);
            s1.stop_machine_park(1);
            s1.run_works();
            s1.park();
        });
        set_cpu(0);
        let r = ran.clone();
        let result = s.stop_one_cpu(1, move || {
            r.fetch_add(1, Ordering::SeqCst);
            3
        });
        dying.join().unwrap();
        match result {
            Ok(v) => {
                assert_eq!(ran.load(Ordering::SeqCst), 1, "accepted work never ran");
                assert_eq!(v, 3);
            }
            Err(e) => {
                assert_eq!(e, StopError::NoEnt);
                assert_eq!(ran.load(Ordering::SeqCst), 0);
            }
        }
    });
}

/// `stop_two_cpus(0, 1)` against `stop_machine` on both CPUs: both finish (the
/// `stop_cpus_in_progress` back-off keeps the two from being queued in crossed order, which
/// would have each CPU's stopper wait in a different multi-CPU stop forever), each function
/// runs exactly once.
#[test]
fn stop_two_cpus_vs_stop_machine() {
    let mut b = builder();
    b.preemption_bound = Some(2);
    b.check(|| {
        let s = two_enabled();
        let two = Arc::new(AtomicUsize::new(0));
        let machine = Arc::new(AtomicUsize::new(0));
        // Requests finished; a CPU keeps serving its stopper until both are, since the other
        // request may still have a work queued on it.
        let finished = Arc::new(AtomicUsize::new(0));
        let (s1, t, f1) = (s.clone(), two.clone(), finished.clone());
        // Each requester also runs its own CPU's stopper while it waits.
        let cpu1 = loom::thread::spawn(move || {
            set_cpu(1);
            let r = s1.stop_two_cpus(1, 0, move || {
                t.fetch_add(1, Ordering::SeqCst);
                0
            });
            f1.fetch_add(1, Ordering::SeqCst);
            while f1.load(Ordering::SeqCst) < 2 {
                s1.run_works();
                loom::thread::yield_now();
            }
            r
        });
        set_cpu(0);
        let m = machine.clone();
        let r0 = s.stop_machine(
            move || {
                m.fetch_add(1, Ordering::SeqCst);
                0
            },
            None,
        );
        finished.fetch_add(1, Ordering::SeqCst);
        while finished.load(Ordering::SeqCst) < 2 {
            s.run_works();
            loom::thread::yield_now();
        }
        assert_eq!(cpu1.join().unwrap(), Ok(0));
        assert_eq!(r0, Ok(0));
        assert_eq!(two.load(Ordering::SeqCst), 1);
        assert_eq!(machine.load(Ordering::SeqCst), 1);
    });
}

/// `stop_two_cpus(0, 1)` from cpu0 against `stop_two_cpus(1, 0)` from cpu1, each requester
/// serving its own CPU's stopper while it waits: both finish and each function runs exactly
/// once, on its own `a`. `queue_two_works` holds both stoppers' locks while it queues the pair
/// of works, so the two works always land in the same order on both lists; what keeps this from
/// deadlocking is that both calls take the two locks in one global order (the lower CPU's
/// first, as Linux's `cpu_stop_queue_two_works`). An order that follows the arguments (cpu0's
/// call taking cpu1's lock first, cpu1's call cpu0's) lets each requester hold one lock and
/// wait for the other's: an ABBA deadlock, which loom reports. Host stress of opposite pairs
/// does not hit that window (one preemption between the two lock takes); this model does (it
/// kills the cargo-mutants mutant `a < b` → `a == b` in `stop_two_cpus`).
#[test]
fn stop_two_cpus_opposite_orders() {
    builder().check(|| {
        let s = two_enabled();
        let ran01 = Arc::new(AtomicUsize::new(0));
        let ran10 = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let (s1, r1, f1) = (s.clone(), ran10.clone(), finished.clone());
        let cpu1 = loom::thread::spawn(move || {
            set_cpu(1);
            let s2 = s1.clone();
            let r = s1.stop_two_cpus(1, 0, move || {
                r1.fetch_add(1 << (8 * s2.platform().cpu_id()), Ordering::SeqCst);
                0
            });
            // The other request may still have a work queued here: serve it until both are done.
            f1.fetch_add(1, Ordering::SeqCst);
            s1.platform().kick(0);
            idle_loop(&s1, &f1, 2);
            r
        });
        set_cpu(0);
        let (r0, s2) = (ran01.clone(), s.clone());
        let mine = s.stop_two_cpus(0, 1, move || {
            r0.fetch_add(1 << (8 * s2.platform().cpu_id()), Ordering::SeqCst);
            0
        });
        finished.fetch_add(1, Ordering::SeqCst);
        s.platform().kick(1);
        idle_loop(&s, &finished, 2);
        assert_eq!(cpu1.join().unwrap(), Ok(0));
        assert_eq!(mine, Ok(0));
        assert_eq!(ran01.load(Ordering::SeqCst), 1, "(0, 1): once, on cpu0");
        assert_eq!(ran10.load(Ordering::SeqCst), 1 << 8, "(1, 0): once, on cpu1");
    });
}

/// The PREPARE → DISABLE_IRQ → RUN → EXIT machine with its acknowledge counter: the function
/// runs exactly once on the active CPU only, while the other participant is inside the
/// machine, and both leave. (Two CPUs: with three, the polling stoppers put the model past
/// loom's branch limits; the host tests run the same code on four.)
#[test]
fn stop_machine_ack_counter() {
    let mut b = builder();
    b.preemption_bound = Some(2);
    // The serving CPU polls until the request is done; every poll is a branch.
    b.max_branches = 10_000;
    b.check(|| {
        let s = two_enabled();
        let finished = Arc::new(AtomicUsize::new(0));
        let (s1, f1) = (s.clone(), finished.clone());
        let server = loom::thread::spawn(move || {
            set_cpu(1);
            while f1.load(Ordering::SeqCst) == 0 {
                s1.run_works();
                loom::thread::yield_now();
            }
        });
        set_cpu(0);
        let ran = Arc::new(AtomicUsize::new(0));
        let (r, s2) = (ran.clone(), s.clone());
        let result = s.stop_machine(
            move || {
                assert!(s2.running(0).is_some(), "cpu0 not stopped during RUN");
                r.fetch_add(1 << (8 * s2.platform().cpu_id()), Ordering::SeqCst);
                0
            },
            Some(CpuSet::from_bits(0b10)),
        );
        finished.store(1, Ordering::SeqCst);
        server.join().unwrap();
        assert_eq!(result, Ok(0));
        assert_eq!(ran.load(Ordering::SeqCst), 1 << 8, "once on cpu1, never on cpu0");
    });
}

// ---- Sleeping waits: every model below runs with a spin budget of 0, so each wait sleeps as
// soon as it finds nothing to do, and a wake-up that is lost leaves a thread parked for good,
// which loom reports as a deadlock. Under `--features mutation-lost-wakeup` (a waiter that
// checks before it announces itself) each must fail that way: `just loom` runs them one by one
// and requires loom's deadlock report (loom aborts the process there, so should_panic cannot).

/// A CPU's idle loop as the firmware runs it: run the stopper's works, then sleep until kicked
/// (`wfi`; here a park, ended by the kick's unpark), until `finished` reaches `n`.
fn idle_loop(s: &Stoppers<LoomPlatform, 2>, finished: &AtomicUsize, n: usize) {
    loop {
        s.run_works();
        if finished.load(Ordering::SeqCst) >= n {
            break;
        }
        loom::thread::park();
    }
}

/// Two enabled stoppers, cpu1 in its idle loop; runs `f` as cpu0, then lets cpu1 go.
fn with_cpu1_idle<R>(f: impl FnOnce(&Arc<Stoppers<LoomPlatform, 2>>) -> R) -> R {
    let s = two_enabled();
    let finished = Arc::new(AtomicUsize::new(0));
    let (s1, f1) = (s.clone(), finished.clone());
    let server = loom::thread::spawn(move || {
        set_cpu(1);
        idle_loop(&s1, &f1, 1);
    });
    set_cpu(0);
    let r = f(&s);
    finished.store(1, Ordering::SeqCst);
    s.platform().kick(1);
    server.join().unwrap();
    assert!(!s.is_sleeping(0) && !s.is_sleeping(1));
    r
}

/// A requester sleeping on its `stop_one_cpu` is woken by the work's completion, and the
/// function's value reaches it.
#[test]
fn sleep_requester_is_woken() {
    builder().check(|| {
        assert_eq!(with_cpu1_idle(|s| s.stop_one_cpu(1, || 7)), Ok(7));
    });
}

/// Both participants of a two-CPU `stop_machine` sleep between states and are woken by
/// whoever moves the state machine on; the function runs once, on the active CPU.
#[test]
fn sleep_participants_are_woken() {
    let mut b = builder();
    b.preemption_bound = Some(2);
    b.check(|| {
        let ran = Arc::new(AtomicUsize::new(0));
        let result = with_cpu1_idle(|s| {
            let (r, s2) = (ran.clone(), s.clone());
            s.stop_machine(
                move || {
                    r.fetch_add(1 << (8 * s2.platform().cpu_id()), Ordering::SeqCst);
                    0
                },
                Some(CpuSet::from_bits(0b10)),
            )
        });
        assert_eq!(result, Ok(0));
        assert_eq!(ran.load(Ordering::SeqCst), 1 << 8, "once on cpu1, never on cpu0");
    });
}

/// Two `stop_cpus` from two CPUs at once: the one that waits for the other's mutex sleeps,
/// runs the other's work on its own CPU when kicked, and is woken when the mutex is free.
#[test]
fn sleep_stop_cpus_mutex_waiter_is_woken() {
    let mut b = builder();
    b.preemption_bound = Some(2);
    b.check(|| {
        let s = two_enabled();
        let ran = Arc::new(AtomicUsize::new(0));
        let finished = Arc::new(AtomicUsize::new(0));
        let (s1, r1, f1) = (s.clone(), ran.clone(), finished.clone());
        let other = loom::thread::spawn(move || {
            set_cpu(1);
            let r = s1.stop_cpus(CpuSet::from_bits(0b01), move || {
                r1.fetch_add(1, Ordering::SeqCst);
                1
            });
            f1.fetch_add(1, Ordering::SeqCst);
            s1.platform().kick(0);
            idle_loop(&s1, &f1, 2);
            r
        });
        set_cpu(0);
        let r0 = ran.clone();
        let mine = s.stop_cpus(CpuSet::from_bits(0b10), move || {
            r0.fetch_add(0x100, Ordering::SeqCst);
            2
        });
        finished.fetch_add(1, Ordering::SeqCst);
        s.platform().kick(1);
        idle_loop(&s, &finished, 2);
        assert_eq!(other.join().unwrap(), Ok(1));
        assert_eq!(mine, Ok(2));
        assert_eq!(ran.load(Ordering::SeqCst), 0x101, "each function once");
    });
}

/// The watchdog's claim on a CPU stuck in a callback against that callback returning: a claimed
/// CPU never goes back into the request's memory until it is given back (see
/// `model::claim_vs_callback_return`); both outcomes of the race occur.
#[test]
fn claim_vs_callback_return() {
    let outcomes = std::sync::Arc::new(std::sync::Mutex::new([false; 2]));
    let o = outcomes.clone();
    builder().check(move || {
        let claimed = armstop_stopper::model::claim_vs_callback_return();
        o.lock().unwrap()[usize::from(claimed)] = true;
    });
    assert_eq!(*outcomes.lock().unwrap(), [true, true], "a race outcome never happened");
}
