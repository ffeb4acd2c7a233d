//! Exhaustive (bounded) loom models of the provider's races. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p armstop-psci-provider --test loom --release`.
#![cfg(loom)]

mod common;

use armstop_psci_provider::{Action, Bakery, Power, Provider};
use common::{ENTRY, FakeBoard};
use loom::sync::Arc;
use loom::sync::atomic::{AtomicU32, Ordering};
use smccc::psci::error::{ALREADY_ON, ON_PENDING, SUCCESS};
use smccc::psci::{PSCI_CPU_OFF, PSCI_CPU_ON_64};

fn builder() -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b
}

fn ret(a: Action) -> i64 {
    match a {
        Action::Return(v) => v,
        Action::PowerDown => panic!("unexpected power-down"),
    }
}

/// Mutual exclusion: two CPUs each do a split load/store increment under the lock.
#[test]
fn bakery_excludes() {
    builder().check(|| {
        let lock = Arc::new(Bakery::<2>::new());
        let n = Arc::new(AtomicU32::new(0));
        let t = {
            let (lock, n) = (lock.clone(), n.clone());
            loom::thread::spawn(move || {
                lock.with(1, || {
                    let v = n.load(Ordering::Relaxed);
                    n.store(v + 1, Ordering::Relaxed);
                })
            })
        };
        lock.with(0, || {
            let v = n.load(Ordering::Relaxed);
            n.store(v + 1, Ordering::Relaxed);
        });
        t.join().unwrap();
        assert_eq!(n.load(Ordering::Relaxed), 2, "an increment was lost: no mutual exclusion");
    });
}

/// Two CPUs turn cpu2 on at once: exactly one succeeds, and cpu2's pen starts it with the
/// winner's context.
#[test]
fn racing_cpu_ons() {
    builder().check(|| {
        let p = Arc::new(Provider::<4>::new());
        p.boot(0);
        let b = Arc::new(FakeBoard::default());
        let other = {
            let (p, b) = (p.clone(), b.clone());
            loom::thread::spawn(move || ret(p.call(&*b, 1, PSCI_CPU_ON_64, [2, ENTRY, 1])))
        };
        let mine = ret(p.call(&*b, 0, PSCI_CPU_ON_64, [2, ENTRY, 0]));
        let theirs = other.join().unwrap();
        let ok = i64::from(SUCCESS);
        assert!((mine == ok) != (theirs == ok), "exactly one success: {mine} {theirs}");
        let refused = if mine == ok { theirs } else { mine };
        assert!(refused == ON_PENDING.into() || refused == ALREADY_ON.into());
        let start = p.pen_poll(2).expect("accepted CPU_ON must start the CPU");
        assert_eq!(start.context, if mine == ok { 0 } else { 1 });
    });
}

/// cpu1 turns itself off while cpu0 turns it on: either the CPU_ON is refused as ALREADY_ON
/// (it came first) and cpu1 stays off, or it succeeds and cpu1's pen starts it; never an
/// accepted CPU_ON that the pen misses.
#[test]
fn cpu_on_races_the_targets_cpu_off() {
    builder().check(|| {
        let p = Arc::new(Provider::<2>::new());
        p.boot(0);
        p.call(&FakeBoard::default(), 0, PSCI_CPU_ON_64, [1, ENTRY, 0]);
        p.pen_poll(1).expect("cpu1 up");
        let b = Arc::new(FakeBoard::default());
        let dying = {
            let (p, b) = (p.clone(), b.clone());
            loom::thread::spawn(move || {
                assert_eq!(p.call(&*b, 1, PSCI_CPU_OFF, [0; 3]), Action::PowerDown);
                // The pen: one look after arriving (a real pen looks again on every wake).
                p.pen_poll(1)
            })
        };
        let r = ret(p.call(&*b, 0, PSCI_CPU_ON_64, [1, ENTRY, 42]));
        let started = dying.join().unwrap().or_else(|| p.pen_poll(1));
        if r == i64::from(SUCCESS) {
            assert_eq!(started.map(|s| s.context), Some(42), "accepted CPU_ON never started");
            assert_eq!(p.power(1), Power::On);
        } else {
            assert_eq!(r, i64::from(ALREADY_ON));
            assert_eq!(started, None);
            assert_eq!(p.power(1), Power::Off);
        }
    });
}
