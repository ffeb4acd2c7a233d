//! The provider's calls and error codes, one by one, and its races under std threads.
#![cfg(not(loom))]

mod common;

use armstop_psci_provider::{Action, Bakery, Power, Provider, Start, VERSION};
use common::{ENTRY, FakeBoard};
use smccc::psci::error::*;
use smccc::psci::*;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

fn booted() -> (Provider<4>, FakeBoard) {
    let p = Provider::new();
    p.boot(0);
    (p, FakeBoard::default())
}

fn ret(a: Action) -> i64 {
    match a {
        Action::Return(v) => v,
        Action::PowerDown => panic!("unexpected power-down"),
    }
}

fn call(p: &Provider<4>, b: &FakeBoard, me: usize, fid: u32, args: [u64; 3]) -> i64 {
    ret(p.call(b, me, fid, args))
}

#[test]
fn version_is_1_1_and_features_cover_exactly_the_implemented_calls() {
    let (p, b) = booted();
    assert_eq!(call(&p, &b, 0, PSCI_VERSION, [0; 3]), 0x1_0001);
    assert_eq!(VERSION, 0x1_0001);
    for fid in [
        PSCI_VERSION,
        PSCI_FEATURES,
        PSCI_CPU_ON_32,
        PSCI_CPU_ON_64,
        PSCI_CPU_OFF,
        PSCI_AFFINITY_INFO_32,
        PSCI_AFFINITY_INFO_64,
        PSCI_CPU_SUSPEND_32,
        PSCI_CPU_SUSPEND_64,
        PSCI_MIGRATE_INFO_TYPE,
        PSCI_SYSTEM_OFF,
        PSCI_SYSTEM_RESET,
    ] {
        assert_eq!(call(&p, &b, 0, PSCI_FEATURES, [fid.into(), 0, 0]), 0, "{fid:#x}");
    }
    for fid in [
        PSCI_SYSTEM_RESET2_64,
        PSCI_CPU_FREEZE,
        PSCI_SYSTEM_SUSPEND_64,
        PSCI_MIGRATE_64,
        PSCI_MEM_PROTECT,
        0x8000_0000, // SMCCC_VERSION: not a PSCI call
        0x1234_5678,
    ] {
        assert_eq!(call(&p, &b, 0, PSCI_FEATURES, [fid.into(), 0, 0]), NOT_SUPPORTED.into());
        assert_eq!(call(&p, &b, 0, fid, [0; 3]), NOT_SUPPORTED.into(), "{fid:#x} itself");
    }
    assert_eq!(call(&p, &b, 0, PSCI_MIGRATE_INFO_TYPE, [0; 3]), 2);
}

#[test]
fn cpu_on_starts_the_cpu_from_the_pen_with_its_context() {
    let (p, b) = booted();
    assert_eq!(p.pen_poll(3), None, "nothing to start yet");
    assert_eq!(call(&p, &b, 0, PSCI_CPU_ON_64, [0x100, ENTRY, 0xc0ffee]), SUCCESS.into());
    assert_eq!(b.wakes[3].load(Ordering::SeqCst), 1, "the pen was woken");
    assert_eq!(call(&p, &b, 0, PSCI_AFFINITY_INFO_64, [0x100, 0, 0]), Power::OnPending as i64);
    assert_eq!(p.pen_poll(2), None, "another CPU's pen does not start");
    assert_eq!(p.pen_poll(3), Some(Start { entry: ENTRY, context: 0xc0ffee }));
    assert_eq!(p.pen_poll(3), None, "started once");
    assert_eq!(call(&p, &b, 0, PSCI_AFFINITY_INFO_64, [0x100, 0, 0]), 0);
}

#[test]
fn cpu_on_refusals_have_the_specified_codes() {
    let (p, b) = booted();
    let on = |me, t, e| call(&p, &b, me, PSCI_CPU_ON_64, [t, e, 0]);
    assert_eq!(
        on(0, 0x8000_0001, ENTRY),
        INVALID_PARAMETERS.into(),
        "MPIDR bit 31 is not affinity"
    );
    assert_eq!(on(0, 0x1_0000_0001, ENTRY), INVALID_PARAMETERS.into(), "no such CPU (Aff3)");
    assert_eq!(on(0, 3, ENTRY), INVALID_PARAMETERS.into(), "Aff0 3 is not on this board");
    assert_eq!(on(0, 1, ENTRY + 2), INVALID_ADDRESS.into(), "unaligned entry");
    assert_eq!(on(0, 1, 0x1000), INVALID_ADDRESS.into(), "entry outside RAM");
    assert_eq!(on(0, 0, ENTRY), ALREADY_ON.into(), "the caller itself");
    assert_eq!(on(0, 1, ENTRY), SUCCESS.into());
    assert_eq!(on(2, 1, ENTRY), ON_PENDING.into(), "not left the pen yet");
    p.pen_poll(1).unwrap();
    assert_eq!(on(2, 1, ENTRY), ALREADY_ON.into());
    assert_eq!(b.wakes[1].load(Ordering::SeqCst), 1, "refusals wake nobody");
}

#[test]
fn thirty_two_bit_calls_ignore_the_upper_halves() {
    let (p, b) = booted();
    let hi = 0xdead_beef_0000_0000;
    assert_eq!(call(&p, &b, 0, PSCI_CPU_ON_32, [hi | 2, hi | ENTRY, hi | 7]), SUCCESS.into());
    assert_eq!(p.pen_poll(2), Some(Start { entry: ENTRY, context: 7 }));
    assert_eq!(call(&p, &b, 0, PSCI_AFFINITY_INFO_32, [hi | 2, hi, 0]), 0);
    assert_eq!(
        call(&p, &b, 0, PSCI_AFFINITY_INFO_64, [hi | 2, 0, 0]),
        INVALID_PARAMETERS.into(),
        "the 64-bit call does not"
    );
}

#[test]
fn cpu_off_returns_to_the_pen_and_cpu_on_works_again() {
    let (p, b) = booted();
    for round in 0..3u64 {
        assert_eq!(call(&p, &b, 0, PSCI_CPU_ON_64, [1, ENTRY, round]), SUCCESS.into());
        assert_eq!(p.pen_poll(1), Some(Start { entry: ENTRY, context: round }));
        assert_eq!(p.call(&b, 1, PSCI_CPU_OFF, [0; 3]), Action::PowerDown);
        assert_eq!(p.power(1), Power::Off);
        assert_eq!(call(&p, &b, 0, PSCI_AFFINITY_INFO_64, [1, 0, 0]), 1);
        assert_eq!(p.pen_poll(1), None, "stays in the pen until the next CPU_ON");
    }
}

#[test]
fn affinity_info_answers_level_0_only() {
    let (p, b) = booted();
    assert_eq!(call(&p, &b, 0, PSCI_AFFINITY_INFO_64, [0, 0, 0]), 0);
    assert_eq!(call(&p, &b, 0, PSCI_AFFINITY_INFO_64, [2, 0, 0]), 1);
    for level in 1..4 {
        assert_eq!(
            call(&p, &b, 0, PSCI_AFFINITY_INFO_64, [0, level, 0]),
            INVALID_PARAMETERS.into()
        );
    }
    assert_eq!(call(&p, &b, 0, PSCI_AFFINITY_INFO_64, [7, 0, 0]), INVALID_PARAMETERS.into());
}

/// A CPU the board has but the provider has no room for is not a target: refused, never
/// looked up.
#[test]
fn a_cpu_past_the_providers_room_is_invalid() {
    let p = Provider::<3>::new();
    p.boot(0);
    let b = FakeBoard::default();
    for fid in [PSCI_CPU_ON_64, PSCI_AFFINITY_INFO_64] {
        let r = ret(p.call(&b, 0, fid, [0x100, if fid == PSCI_CPU_ON_64 { ENTRY } else { 0 }, 0]));
        assert_eq!(r, INVALID_PARAMETERS.into(), "{fid:#x} of cpu3 on a 3-CPU provider");
    }
    assert_eq!(ret(p.call(&b, 0, PSCI_CPU_ON_64, [2, ENTRY, 0])), SUCCESS.into());
}

#[test]
fn cpu_suspend_offers_standby_only() {
    let (p, b) = booted();
    assert_eq!(call(&p, &b, 0, PSCI_CPU_SUSPEND_64, [0, ENTRY, 0]), SUCCESS.into());
    assert_eq!(call(&p, &b, 0, PSCI_CPU_SUSPEND_32, [0x1234, 0, 0]), SUCCESS.into(), "any StateID");
    assert_eq!(b.standbys.load(Ordering::SeqCst), 2);
    for bad in [1 << 16, 1 << 24, 2 << 24, 1 << 30, 1 << 20] {
        assert_eq!(
            call(&p, &b, 0, PSCI_CPU_SUSPEND_64, [bad, ENTRY, 0]),
            INVALID_PARAMETERS.into(),
            "{bad:#x}"
        );
    }
    assert_eq!(b.standbys.load(Ordering::SeqCst), 2, "refused suspends do not wait");
}

#[test]
#[should_panic(expected = "system_off called")]
fn system_off_goes_to_the_board() {
    let (p, b) = booted();
    p.call(&b, 2, PSCI_SYSTEM_OFF, [0; 3]);
}

#[test]
#[should_panic(expected = "system_reset called")]
fn system_reset_goes_to_the_board() {
    let (p, b) = booted();
    p.call(&b, 1, PSCI_SYSTEM_RESET, [0; 3]);
}

/// Lamport's lock gives mutual exclusion with plain loads and stores: a counter updated by a
/// separate load and store under it loses no increment.
#[test]
fn bakery_lock_loses_no_update() {
    // Kept small: a waiter spins until the holder is scheduled again, and the test machine may
    // have fewer cores than threads.
    const THREADS: usize = 3;
    const ROUNDS: u64 = 2_000;
    let lock = Arc::new(Bakery::<THREADS>::new());
    let counter = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|me| {
            let (lock, counter, start) = (lock.clone(), counter.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..ROUNDS {
                    lock.with(me, || {
                        let v = counter.load(Ordering::Relaxed);
                        std::hint::spin_loop();
                        counter.store(v + 1, Ordering::Relaxed);
                    });
                }
            })
        })
        .collect();
    handles.into_iter().for_each(|h| h.join().unwrap());
    assert_eq!(counter.load(Ordering::SeqCst), THREADS as u64 * ROUNDS);
}

/// Three CPUs race to turn cpu3 on while cpu3 goes round off → pen → on: every round exactly
/// one CPU_ON succeeds, the others are refused with ALREADY_ON or ON_PENDING, and cpu3 starts
/// exactly once per success with that caller's context.
#[test]
fn racing_cpu_ons_give_one_success_per_start() {
    const ROUNDS: usize = 500;
    let p = Arc::new(Provider::<4>::new());
    p.boot(0);
    let b = Arc::new(FakeBoard::default());
    let successes = Arc::new(AtomicUsize::new(0));
    let starts = Arc::new(AtomicUsize::new(0));
    let callers_done = Arc::new(AtomicUsize::new(0));
    let callers: Vec<_> = (0..3)
        .map(|me| {
            let (p, b, successes) = (p.clone(), b.clone(), successes.clone());
            let callers_done = callers_done.clone();
            std::thread::spawn(move || {
                let mut mine = 0;
                for _ in 0..ROUNDS {
                    match ret(p.call(&*b, me, PSCI_CPU_ON_64, [0x100, ENTRY, me as u64])) {
                        0 => mine += 1,
                        r => assert!(r == ALREADY_ON.into() || r == ON_PENDING.into(), "{r}"),
                    }
                }
                successes.fetch_add(mine, Ordering::SeqCst);
                callers_done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let target = {
        let (p, b, starts) = (p.clone(), b.clone(), starts.clone());
        std::thread::spawn(move || {
            loop {
                // Read before polling: once every caller is done, one more empty poll means
                // no accepted CPU_ON is left unstarted.
                let finished = callers_done.load(Ordering::SeqCst) == 3;
                match p.pen_poll(3) {
                    Some(s) => {
                        assert!(s.context < 3 && s.entry == ENTRY);
                        starts.fetch_add(1, Ordering::SeqCst);
                        assert_eq!(p.call(&*b, 3, PSCI_CPU_OFF, [0; 3]), Action::PowerDown);
                    }
                    None if finished => break,
                    None => std::thread::yield_now(),
                }
            }
        })
    };
    callers.into_iter().for_each(|h| h.join().unwrap());
    target.join().unwrap();
    let (s, n) = (successes.load(Ordering::SeqCst), starts.load(Ordering::SeqCst));
    assert!(s > 0, "the race never let a CPU_ON through");
    assert_eq!(p.power(3), Power::Off, "an accepted CPU_ON was left pending");
    assert_eq!(s, n, "every accepted CPU_ON started cpu3 exactly once");
    assert_eq!(b.wakes[3].load(Ordering::SeqCst), s, "one wake per success");
}
