//! `Stoppers::running_mask`, the lock-free "a stop request is running" snapshot the activity
//! LED reads: set exactly while works run, on exactly the CPUs that run them.

#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use armstop_stopper::{CpuSet, NowaitWork, Platform};
use common::{Machine, N};

#[test]
fn idle_stoppers_show_an_empty_mask() {
    let m = Machine::new();
    assert_eq!(m.s.running_mask(), CpuSet::EMPTY);
    let s = m.s;
    assert_eq!(m.on(1, move || s.stop_one_cpu(2, || 0)), Ok(0));
    assert_eq!(m.s.running_mask(), CpuSet::EMPTY, "cleared once the work has run");
}

#[test]
fn stop_one_cpu_shows_its_target_alone() {
    let m = Machine::new();
    let s = m.s;
    for target in 0..N {
        let seen = m.on((target + 1) % N, move || {
            s.stop_one_cpu(target, || s.running_mask().to_bits().expect("small") as i32)
                .expect("queued")
        });
        assert_eq!(seen as u64, 1 << target, "seen from inside the work on cpu{target}");
    }
}

#[test]
fn stop_machine_shows_every_cpu_while_the_function_runs() {
    let m = Machine::new();
    let s = m.s;
    let seen = Arc::new(AtomicU64::new(0));
    let seen2 = seen.clone();
    let r = m.on(0, move || {
        s.stop_machine(
            || {
                seen2.fetch_or(s.running_mask().to_bits().expect("small"), Ordering::SeqCst);
                0
            },
            Some(CpuSet::first_n(N)),
        )
    });
    assert_eq!(r, Ok(0));
    // Every participant is inside its multi-CPU stop work from PREPARE to EXIT, so each sees
    // all of them while the function runs.
    assert_eq!(seen.load(Ordering::SeqCst), (1 << N) - 1);
    assert_eq!(m.s.running_mask(), CpuSet::EMPTY);
}

#[test]
fn an_observer_elsewhere_sees_a_long_work_and_its_end() {
    static RELEASE: AtomicU64 = AtomicU64::new(0);
    static F: fn() -> i32 = || {
        while RELEASE.load(Ordering::SeqCst) == 0 {
            std::hint::spin_loop();
        }
        0
    };
    static WORK: NowaitWork = NowaitWork::new("long", &F);
    let m = Machine::new();
    let s = m.s;
    assert!(m.on(0, move || s.stop_one_cpu_nowait(3, &WORK)));
    // Observed from a thread that is no CPU at all, as an interrupt handler elsewhere would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while s.running_mask() != CpuSet::single(3) {
        assert!(std::time::Instant::now() < deadline, "the work never showed as running");
        s.platform().relax();
    }
    RELEASE.store(1, Ordering::SeqCst);
    while WORK.is_pending() || !s.running_mask().is_empty() {
        assert!(std::time::Instant::now() < deadline, "the work never showed as finished");
        s.platform().relax();
    }
}
