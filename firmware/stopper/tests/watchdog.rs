//! The watchdog that fails a request: every way a request can get stuck, on a host machine of
//! 4 std-thread CPUs whose platform halts a "CPU" at its next relax (where a stuck callback
//! spins), as the target's halt SGI reaches it at any instruction of a callback.

#![cfg(not(loom))]

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use armstop_stopper::{CpuSet, NowaitWork, Platform, StopError};
use common::{HostPlatform, Machine, N};

const LIMIT_NS: u64 = 20_000_000;

/// A callback that never returns: it spins where the platform can halt it.
fn stuck(p: &HostPlatform) -> i32 {
    loop {
        p.relax();
    }
}

/// A nowait work that keeps a CPU busy (in someone else's callback) until released; each use
/// gets statics of its own.
macro_rules! busy_work {
    () => {{
        static RELEASE: AtomicBool = AtomicBool::new(false);
        static BUSY: fn() -> i32 = || {
            while !RELEASE.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            0
        };
        static WORK: NowaitWork = NowaitWork::new("busy", &BUSY);
        Busy { release: &RELEASE, work: &WORK }
    }};
}

struct Busy {
    release: &'static AtomicBool,
    work: &'static NowaitWork,
}

impl Busy {
    /// Queues the work on `cpu` and returns once `cpu` runs it.
    fn occupy(&self, m: &Machine, cpu: usize) {
        let (s, work) = (m.s, self.work);
        assert!(m.on(0, move || s.stop_one_cpu_nowait(cpu, work)));
        wait_for("the busy work to start", || s.running(cpu).is_some());
    }

    /// Lets the work end, and waits until it has.
    fn release(&self) {
        self.release.store(true, Ordering::SeqCst);
        wait_for("the busy work to end", || !self.work.is_pending());
    }
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn stuck_callback_in_stop_one_cpu_times_out_and_its_cpu_is_halted() {
    let m = Machine::new();
    let s = m.s;
    s.set_watchdog(LIMIT_NS);
    let r = m.on(0, move || s.stop_one_cpu(3, || stuck(s.platform())));
    assert_eq!(r, Err(StopError::TimedOut));
    assert!(s.is_halted(3) && !s.is_enabled(3));
    assert_eq!(s.halted(), CpuSet::single(3));
    let st = s.stats();
    assert_eq!((st.timed_out, st.halts, st.halt_refused), (1, 1, 0));
    let reports = m.reports().join("\n");
    assert!(reports.contains("cpu3: running"), "{reports}");
    assert!(reports.contains("cpu3: halted inside"), "{reports}");
    assert!(reports.contains("watchdog.rs"), "caller location missing: {reports}");
    // Excluded from later requests; the others still serve them.
    assert_eq!(m.on(0, move || s.stop_one_cpu(3, || 0)), Err(StopError::NoEnt));
    static RAN: AtomicUsize = AtomicUsize::new(0);
    let r = m.on(1, move || {
        s.stop_machine(
            || {
                RAN.fetch_add(1, Ordering::SeqCst);
                7
            },
            Some(CpuSet::first_n(N)),
        )
    });
    assert_eq!(r, Ok(7));
    assert_eq!(RAN.load(Ordering::SeqCst), 3, "cpus 0-2 ran it, the halted cpu3 did not");
}

#[test]
fn work_not_yet_started_is_unlinked_and_never_runs() {
    let busy = busy_work!();
    static LATE_RAN: AtomicBool = AtomicBool::new(false);
    let m = Machine::new();
    let s = m.s;
    s.set_watchdog(LIMIT_NS);
    busy.occupy(&m, 2);
    let r = m.on(0, move || {
        s.stop_one_cpu(2, || {
            LATE_RAN.store(true, Ordering::SeqCst);
            0
        })
    });
    assert_eq!(r, Err(StopError::TimedOut));
    assert!(m.reports().join("\n").contains("cpu2: work not started; unlinked"));
    // cpu2 was in someone else's callback, not ours: it is not halted.
    assert!(!s.is_halted(2));
    busy.release();
    assert_eq!(m.on(0, move || s.stop_one_cpu(2, || 5)), Ok(5));
    assert!(!LATE_RAN.load(Ordering::SeqCst), "an unlinked work ran");
}

#[test]
fn stop_machine_with_a_stuck_participant_fails_and_the_others_go_on() {
    let m = Machine::new();
    let s = m.s;
    s.set_watchdog(LIMIT_NS);
    let r = m.on(0, move || {
        s.stop_machine(
            || if s.platform().cpu_id() == 2 { stuck(s.platform()) } else { 0 },
            Some(CpuSet::first_n(N)),
        )
    });
    assert_eq!(r, Err(StopError::TimedOut));
    assert_eq!(s.halted(), CpuSet::single(2));
    assert_eq!(s.enabled_mask(), CpuSet::from_iter([0, 1, 3]));
    let reports = m.reports().join("\n");
    assert!(reports.contains("multi-CPU stop (RUN)"), "{reports}");
    assert!(reports.contains("cpu2: halted inside"), "{reports}");
    assert_eq!(m.on(3, move || s.stop_machine(|| 4, None)), Ok(4));
    assert_eq!(m.on(1, move || s.stop_two_cpus(0, 3, || 6)), Ok(6));
}

/// `stop_two_cpus(first, 3)` from cpu0 with cpu3 busy in another work, so cpu3's half of the
/// stop never starts: the watchdog must unlink cpu3's own work (not its partner's) and abort
/// the stop, and the callback must never run, then or once cpu3 is free.
fn stop_two_cpus_whose_partner_never_arrives(first: usize, busy: Busy, ran: &'static AtomicBool) {
    let m = Machine::new();
    let s = m.s;
    s.set_watchdog(LIMIT_NS);
    busy.occupy(&m, 3);
    let r = m.on(0, move || {
        s.stop_two_cpus(first, 3, || {
            ran.store(true, Ordering::SeqCst);
            0
        })
    });
    assert_eq!(r, Err(StopError::TimedOut));
    let reports = m.reports().join("\n");
    assert!(reports.contains("cpu3: work not started; unlinked"), "{reports}");
    assert!(s.halted().is_empty(), "nobody was inside the callback");
    busy.release();
    assert_eq!(m.on(0, move || s.stop_two_cpus(3, first, || 4)), Ok(4));
    assert!(!ran.load(Ordering::SeqCst), "the callback of the failed stop_two_cpus ran");
}

/// The requester is not in the pair: its watchdog fails the request from outside.
#[test]
fn stop_two_cpus_whose_partner_never_arrives_fails_and_unlinks_its_work() {
    static RAN: AtomicBool = AtomicBool::new(false);
    stop_two_cpus_whose_partner_never_arrives(1, busy_work!(), &RAN);
}

/// The requester is one half of the pair and the only one there on time: nobody else can
/// abort, so the requester's own participant must, or the request (and the requester's CPU
/// with it) waits for good.
#[test]
fn stop_two_cpus_with_the_requester_as_one_half_fails_when_the_other_never_arrives() {
    static RAN: AtomicBool = AtomicBool::new(false);
    stop_two_cpus_whose_partner_never_arrives(0, busy_work!(), &RAN);
}

#[test]
fn stop_machine_whose_participant_never_arrives_fails() {
    let busy = busy_work!();
    static RAN: AtomicBool = AtomicBool::new(false);
    let m = Machine::new();
    let s = m.s;
    s.set_watchdog(LIMIT_NS);
    busy.occupy(&m, 3);
    let r = m.on(0, move || {
        s.stop_machine(
            || {
                RAN.store(true, Ordering::SeqCst);
                0
            },
            None,
        )
    });
    assert_eq!(r, Err(StopError::TimedOut));
    let reports = m.reports().join("\n");
    assert!(reports.contains("multi-CPU stop (PREPARE)"), "{reports}");
    assert!(reports.contains("cpu3: work not started; unlinked"), "{reports}");
    assert!(!RAN.load(Ordering::SeqCst), "the callback ran in an aborted stop_machine");
    assert!(s.halted().is_empty());
    busy.release();
    assert_eq!(m.on(1, move || s.stop_machine(|| 3, None)), Ok(3));
}

/// Another participant reports the stuck state first, while the requester is still in its own
/// (slow but finite) callback: the requester must still keep its deadline and fail the request
/// once it is back, rather than take the report as its own and wait for good.
#[test]
fn a_stop_reported_by_another_participant_is_still_failed_by_the_requester() {
    // Longer than the other tests': a participant late to PREPARE on a loaded host would
    // have the stop aborted there, before the case this test is for.
    const LIMIT: u64 = 10 * LIMIT_NS;
    let m = Machine::new();
    let s = m.s;
    s.set_watchdog(LIMIT);
    let r = m.on(0, move || {
        s.stop_machine(
            || match s.platform().cpu_id() {
                0 => {
                    std::thread::sleep(Duration::from_nanos(3 * LIMIT));
                    0
                }
                2 => stuck(s.platform()),
                _ => 0,
            },
            Some(CpuSet::first_n(N)),
        )
    });
    assert_eq!(r, Err(StopError::TimedOut));
    assert_eq!(s.halted(), CpuSet::single(2));
    let reports = m.reports().join("\n");
    assert!(reports.contains("waiting for CPUs 0,2"), "cpu0 was not reported late: {reports}");
    assert_eq!(m.on(1, move || s.stop_machine(|| 3, None)), Ok(3));
}

/// A watchdog that only reports (as Linux's): once the report is made, every participant,
/// the requester too, sleeps until the late CPU arrives; none spins on an expired deadline.
#[test]
fn after_a_report_that_does_not_fail_the_requester_sleeps() {
    static RELEASE: AtomicBool = AtomicBool::new(false);
    let m = Machine::new();
    let s = m.s;
    s.set_spin_ns(0);
    s.set_watchdog(LIMIT_NS);
    s.set_watchdog_fails(false);
    let r = m.spawn_on(0, move || {
        s.stop_machine(
            || {
                while s.platform().cpu_id() == 2 && !RELEASE.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                4
            },
            Some(CpuSet::first_n(N)),
        )
    });
    wait_for("the report", || s.stats().watchdog_reports > 0);
    // Past every participant's deadline (the report is made at the first of them).
    std::thread::sleep(Duration::from_nanos(3 * LIMIT_NS));
    wait_for("the requester to sleep after the report", || s.is_sleeping(0));
    RELEASE.store(true, Ordering::SeqCst);
    assert_eq!(r.recv_timeout(Duration::from_secs(20)).unwrap(), Ok(4));
    assert!(m.reports().join("\n").contains("multi-CPU stop (RUN)"), "{:?}", m.reports());
    assert!(s.halted().is_empty());
}

#[test]
fn a_cpu_that_cannot_be_halted_is_waited_for_with_reports() {
    static RELEASE: AtomicBool = AtomicBool::new(false);
    let m = Machine::new();
    let s = m.s;
    s.platform().can_halt.store(false, Ordering::SeqCst);
    s.set_watchdog(LIMIT_NS);
    let r = m.spawn_on(0, move || {
        s.stop_one_cpu(1, || {
            while !RELEASE.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            0
        })
    });
    wait_for("a refused halt", || s.stats().halt_refused >= 2);
    assert!(r.try_recv().is_err(), "returned while its callback still ran");
    RELEASE.store(true, Ordering::SeqCst);
    assert_eq!(r.recv_timeout(Duration::from_secs(20)).unwrap(), Err(StopError::TimedOut));
    assert!(s.halted().is_empty() && s.is_enabled(1));
    assert!(m.reports().join("\n").contains("cpu1: stuck inside"));
    assert_eq!(m.on(0, move || s.stop_one_cpu(1, || 2)), Ok(2));
}

/// The fault path's recovery (`recover_fault`), as the firmware's exception handler calls it on
/// a CPU whose request callback faulted: outside a callback there is nothing to recover; inside
/// one, the work is finished with the given result, so the requester gets it instead of waiting
/// (or timing out), and the CPU may be restarted. The host "CPU" then stays where the fault
/// path left it (spinning, as it would until restarted), so the machine is not joined.
#[test]
fn a_faulted_callback_is_finished_by_fault_recovery() {
    static RECOVERED: AtomicUsize = AtomicUsize::new(0);
    let m = Machine::new();
    let s = m.s;
    s.set_watchdog(10 * LIMIT_NS);
    assert!(!m.on(1, move || s.recover_fault(0)), "recovered outside any callback");
    let r = m.on(0, move || {
        s.stop_one_cpu(3, || {
            RECOVERED.store(if s.recover_fault(-14) { 1 } else { 2 }, Ordering::SeqCst);
            loop {
                std::hint::spin_loop();
                std::thread::yield_now();
            }
        })
    });
    assert_eq!(r, Ok(-14), "the requester did not get the faulted callback's result");
    wait_for("the recovery to return", || RECOVERED.load(Ordering::SeqCst) != 0);
    assert_eq!(RECOVERED.load(Ordering::SeqCst), 1, "recovery said the CPU may not restart");
    assert!(s.halted().is_empty());
    assert_eq!(s.stats().timed_out, 0);
    std::mem::forget(m);
}
