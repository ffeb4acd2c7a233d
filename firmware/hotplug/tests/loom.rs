//! Exhaustive (bounded) loom models of hotplug against the stopper. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p armstop-hotplug --test loom --release`.
//!
//! The dying CPU's thread runs what the firmware runs on it: `take_cpu_down` (as the
//! `stop_machine` callback would), then its stopper loop's `dying_step`. Mutations:
//! `--features pre-fix-park` (the stopper's park before Linux's fix) must fail the down-vs-queue
//! models; `--features pre-fix-online` (online before the stopper is enabled, before Linux
//! 45178ac0cea8) must fail the online race.
#![cfg(loom)]

use armstop_hotplug::{CpuState, Hotplug, Power, Step};
use armstop_stopper::model::{LoomPlatform, set_cpu};
use armstop_stopper::{NowaitWork, Platform, StopError, Stoppers};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicUsize, Ordering};
use std::fmt;

#[derive(Clone, Copy, Debug)]
struct NoPsci;

impl fmt::Display for NoPsci {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not modelled")
    }
}

/// Power is outside these models: they call the CPU-side steps directly.
struct LoomPower;

impl Power for LoomPower {
    type Error = NoPsci;
    fn cpu_on(&self, _: usize) -> Result<(), NoPsci> {
        Err(NoPsci)
    }
    fn is_off(&self, _: usize) -> Result<bool, NoPsci> {
        Err(NoPsci)
    }
    fn migrate_irqs(&self, _: usize, _: usize) {}
}

type H = Hotplug<'static, LoomPlatform, LoomPower, 2>;

/// Two CPUs, both online the way the firmware brings them up. Leaked, as the firmware's are
/// statics (loom checks `Arc`s for leaks, not boxes).
fn machine() -> &'static H {
    let s: &'static Stoppers<LoomPlatform, 2> =
        Box::leak(Box::new(armstop_stopper::model::stoppers()));
    let hp: &'static H = Box::leak(Box::new(Hotplug::new(s, LoomPower)));
    for cpu in 0..2 {
        set_cpu(cpu);
        hp.boot_cpu_online();
    }
    hp
}

/// cpu1 going down as the firmware takes it: `take_cpu_down` inside the stop_machine, then its
/// stopper loop's dying step, which must flush, park and report it dead.
fn go_down(hp: &'static H) -> loom::thread::JoinHandle<()> {
    loom::thread::spawn(move || {
        set_cpu(1);
        assert_eq!(hp.take_cpu_down(1), 0);
        assert_eq!(hp.dying_step(), Step::PowerOff);
        assert_eq!(hp.state(1), CpuState::Dead);
    })
}

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b
}

/// Whether the calling CPU is cpu1 and it was still alive (not yet reported dead).
fn alive(hp: &H) -> bool {
    hp.stoppers().platform().cpu_id() == 1
        && matches!(hp.state(1), CpuState::Online | CpuState::Dying)
}

/// Down vs queue: a nowait work queued while cpu1 goes down runs on cpu1 before it is dead
/// (queue said yes) or never (queue said no).
#[test]
#[cfg_attr(feature = "pre-fix-park", should_panic(expected = "accepted work never ran"))]
fn down_vs_nowait_queue() {
    builder().check(|| {
        let hp = machine();
        let ran: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let f: &'static _ = Box::leak(Box::new(move || {
            assert!(alive(hp), "work ran after its CPU was dead, or elsewhere");
            ran.fetch_add(1, Ordering::SeqCst);
            0
        }));
        let work: &'static NowaitWork = Box::leak(Box::new(NowaitWork::new("modelled", f)));
        let dying = go_down(hp);
        set_cpu(0);
        let queued = hp.stoppers().stop_one_cpu_nowait(1, work);
        dying.join().unwrap();
        match (queued, ran.load(Ordering::SeqCst)) {
            (true, 1) | (false, 0) => {}
            (true, _) => panic!("accepted work never ran"),
            (false, _) => panic!("refused work ran"),
        }
        assert_eq!(hp.stoppers().stats().park_with_works, 0);
    });
}

/// Observe-then-queue (Linux f0498d2a54e7): a caller saw cpu1 online under a lock and queues
/// after dropping it, while cpu1 goes down. The work runs before cpu1 is dead, or the caller
/// gets NoEnt; it never waits forever (loom fails a model that cannot finish).
#[test]
#[cfg_attr(feature = "pre-fix-park", should_panic(expected = "accepted work never ran"))]
fn observe_then_queue_vs_down() {
    builder().check(|| {
        let hp = machine();
        let seen_lock = Arc::new(loom::sync::Mutex::new(()));
        let dying = go_down(hp);
        set_cpu(0);
        let seen = {
            let _g = seen_lock.lock().unwrap();
            hp.is_online(1)
        };
        if seen {
            let ran = Arc::new(AtomicUsize::new(0));
            let r = ran.clone();
            let result = hp.stoppers().stop_one_cpu(1, move || {
                assert!(alive(hp), "work ran after its CPU was dead, or elsewhere");
                r.fetch_add(1, Ordering::SeqCst);
                5
            });
            match result {
                Ok(5) if ran.load(Ordering::SeqCst) == 1 => {}
                Ok(_) => panic!("accepted work never ran"),
                Err(StopError::NoEnt) => assert_eq!(ran.load(Ordering::SeqCst), 0),
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
        dying.join().unwrap();
    });
}

/// The online race (Linux 45178ac0cea8): whoever sees cpu1 online can queue to it at once.
#[test]
#[cfg_attr(feature = "pre-fix-online", should_panic(expected = "online CPU refused work"))]
fn online_race() {
    builder().check(|| {
        let s: &'static Stoppers<LoomPlatform, 2> =
            Box::leak(Box::new(armstop_stopper::model::stoppers()));
        let hp: &'static H = Box::leak(Box::new(Hotplug::new(s, LoomPower)));
        set_cpu(0);
        hp.boot_cpu_online();
        // cpu_up(1)'s part on the controlling CPU, up to CPU_ON.
        hp.transition(1, CpuState::Off, CpuState::Booting).unwrap();
        let finished = Arc::new(AtomicUsize::new(0));
        let f1 = finished.clone();
        let booting = loom::thread::spawn(move || {
            set_cpu(1);
            hp.cpu_online().unwrap();
            while f1.load(Ordering::SeqCst) == 0 {
                s.run_works();
                loom::thread::yield_now();
            }
        });
        while !hp.is_online(1) {
            loom::thread::yield_now();
        }
        let r = s.stop_one_cpu(1, || s.platform().cpu_id() as i32);
        finished.store(1, Ordering::SeqCst);
        booting.join().unwrap();
        match r {
            Ok(v) => assert_eq!(v, 1),
            Err(e) => panic!("online CPU refused work: {e}"),
        }
    });
}

/// `stop_two_cpus(0, 1)` racing `cpu_down(1)`: it runs with both CPUs in their stoppers, or
/// fails with nothing queued on either; never on one alone. No "is the CPU active" check.
/// (Not under `pre-fix-park`: there a drained half leaves the other waiting forever, which is
/// the same bug the models above catch.)
#[test]
#[cfg(not(feature = "pre-fix-park"))]
fn stop_two_cpus_vs_down() {
    let mut b = builder();
    b.preemption_bound = Some(2);
    b.max_branches = 10_000;
    b.check(|| {
        let hp = machine();
        let s = hp.stoppers();
        let dying = go_down(hp);
        set_cpu(0);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let result = s.stop_two_cpus(0, 1, move || {
            assert!(s.running(1).is_some(), "cpu1 not held in its stopper");
            r.fetch_add(1, Ordering::SeqCst);
            0
        });
        dying.join().unwrap();
        match result {
            Ok(0) => {
                assert_eq!(ran.load(Ordering::SeqCst), 1);
                assert_eq!((s.runs(0), s.runs(1)), (1, 1), "one half each");
            }
            Err(StopError::NoEnt) => {
                assert_eq!(ran.load(Ordering::SeqCst), 0);
                assert_eq!((s.runs(0), s.runs(1)), (0, 0), "nothing queued on either");
            }
            other => panic!("unexpected {other:?}"),
        }
    });
}

/// Power for the sleeping-controller model: cpu1 is off once its thread says so.
struct OffFlag(&'static loom::sync::atomic::AtomicBool);

impl Power for OffFlag {
    type Error = NoPsci;
    fn cpu_on(&self, _: usize) -> Result<(), NoPsci> {
        Err(NoPsci)
    }
    fn is_off(&self, _: usize) -> Result<bool, NoPsci> {
        Ok(self.0.load(Ordering::SeqCst))
    }
    fn migrate_irqs(&self, _: usize, _: usize) {}
}

/// `cpu_down(1)` with every wait sleeping at once: the controller sleeps in the stop_machine,
/// then until cpu1's dead report wakes it, then polls the firmware until cpu1 is off; cpu1's
/// idle loop sleeps until kicked. Ends with cpu1 off and its stopper parked.
#[test]
fn sleep_cpu_down_controller_is_woken() {
    let mut b = builder();
    b.preemption_bound = Some(2);
    b.max_branches = 10_000;
    b.check(|| {
        let off: &'static loom::sync::atomic::AtomicBool =
            Box::leak(Box::new(loom::sync::atomic::AtomicBool::new(false)));
        let s: &'static Stoppers<LoomPlatform, 2> =
            Box::leak(Box::new(armstop_stopper::model::stoppers()));
        let hp: &'static Hotplug<'static, LoomPlatform, OffFlag, 2> =
            Box::leak(Box::new(Hotplug::new(s, OffFlag(off))));
        for cpu in 0..2 {
            set_cpu(cpu);
            hp.boot_cpu_online();
        }
        let dying = loom::thread::spawn(move || {
            set_cpu(1);
            loop {
                s.run_works();
                if hp.dying_step() == Step::PowerOff {
                    off.store(true, Ordering::SeqCst);
                    break;
                }
                loom::thread::park();
            }
        });
        set_cpu(0);
        let r = hp.cpu_down(1);
        dying.join().unwrap();
        assert!(r.is_ok(), "cpu_down failed: {:?}", r.err().map(|e| e.to_string()));
        assert_eq!(hp.state(1), CpuState::Off);
        assert!(s.is_parked(1));
    });
}
