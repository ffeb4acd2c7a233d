//! The watchdog that fails a request (see `armstop_stopper::Stoppers::set_watchdog`).

use core::fmt::Write;
use core::sync::atomic::{AtomicUsize, Ordering};

use armstop::board::cpu_count;
use armstop::console::LineBuf;
use armstop::hotplug::{self, CpuState};
use armstop::stop::{CpuSet, STOPPERS, StopError, WATCHDOG_NS};
use armstop::target_test;
use armstop::testing::{ignore, require_all_cpus};

/// Short enough that no test waits long, long enough for a healthy request under emulation on
/// a busy host.
const LIMIT_NS: u64 = 200_000_000;

fn text(d: impl core::fmt::Display) -> LineBuf<240> {
    let mut b = LineBuf::new();
    let _ = write!(b, "{d}");
    b
}

/// A callback that never returns (until the halt SGI takes its CPU away).
fn never_returns() -> i32 {
    loop {
        core::hint::spin_loop();
    }
}

/// The CPU a test halts: the highest that still serves requests, if at least two others do
/// (the requester, cpu0, and one more to show that multi-CPU requests still work).
fn victim() -> usize {
    if cpu_count() < 4 {
        ignore(format_args!(
            "needs 4 CPUs (each test halts one); this machine has {}",
            cpu_count()
        ));
    }
    let serving = STOPPERS.enabled_mask();
    match serving.iter().last() {
        Some(v) if serving.len() >= 3 => v,
        _ => ignore(format_args!("CPUs {serving} serve requests; 3 needed")),
    }
}

#[target_test]
fn every_cpu_reports_online_before_the_faults() {
    require_all_cpus();
    for cpu in 0..cpu_count() {
        let line = text(armstop::smp::cpu_report(cpu));
        assert!(line.as_str().contains("ONLINE"), "{}", line.as_str());
        assert!(!line.as_str().contains("halted"), "{}", line.as_str());
    }
}

#[target_test]
fn a_stop_one_cpu_whose_callback_never_returns_times_out_and_halts_its_cpu() {
    let victim = victim();
    let before = STOPPERS.stats();
    STOPPERS.set_watchdog(LIMIT_NS);
    armstop::console::capture_start();
    let r = STOPPERS.stop_one_cpu(victim, never_returns);
    STOPPERS.set_watchdog(WATCHDOG_NS);
    assert_eq!(r, Err(StopError::TimedOut), "the caller sees the failure");
    let (running, halted) = (
        text(format_args!("cpu{victim}: running ")),
        text(format_args!("cpu{victim}: halted inside")),
    );
    armstop::console::capture_finish(|t, _| {
        // The watchdog names the CPU and the callback (`fn <- caller`), then the halt.
        assert!(t.contains(running.as_str()), "report:\n{t}");
        assert!(t.contains("never_returns <- "), "report:\n{t}");
        assert!(t.contains("watchdog.rs"), "report:\n{t}");
        assert!(t.contains(halted.as_str()), "report:\n{t}");
    });
    let after = STOPPERS.stats();
    assert_eq!(after.timed_out, before.timed_out + 1);
    assert_eq!(after.halts, before.halts + 1);
    assert!(STOPPERS.is_halted(victim) && !STOPPERS.is_enabled(victim));
    assert_eq!(hotplug::state(victim), CpuState::Halted);
    let line = text(armstop::smp::cpu_report(victim));
    assert!(
        line.as_str().contains("HALTED") && line.as_str().contains("halted at ELR=0x"),
        "{}",
        line.as_str()
    );
    // Excluded from later requests, and the others still serve stop_machine.
    assert_eq!(STOPPERS.stop_one_cpu(victim, || 0), Err(StopError::NoEnt));
    assert!(hotplug::cpu_up(victim).is_err(), "a halted CPU cannot be brought up");
    static RAN: AtomicUsize = AtomicUsize::new(0);
    RAN.store(0, Ordering::SeqCst);
    let r = STOPPERS.stop_machine(
        || {
            RAN.fetch_add(1, Ordering::SeqCst);
            3
        },
        Some(CpuSet::first_n(cpu_count())),
    );
    assert_eq!(r, Ok(3));
    assert_eq!(
        RAN.load(Ordering::SeqCst),
        STOPPERS.enabled_mask().len(),
        "every CPU but the halted ones ran it"
    );
    assert!(!STOPPERS.enabled_mask().contains(victim));
}

#[target_test]
fn a_stop_machine_with_a_stuck_participant_fails_and_the_others_go_on() {
    let victim = victim();
    STOPPERS.set_watchdog(LIMIT_NS);
    armstop::console::capture_start();
    let r = STOPPERS.stop_machine(
        move || if armstop::cpu::id() == victim { never_returns() } else { 0 },
        Some(STOPPERS.enabled_mask()),
    );
    STOPPERS.set_watchdog(WATCHDOG_NS);
    assert_eq!(r, Err(StopError::TimedOut));
    let halted = text(format_args!("cpu{victim}: halted inside"));
    armstop::console::capture_finish(|t, _| {
        assert!(t.contains("multi-CPU stop (RUN)"), "report:\n{t}");
        assert!(t.contains(halted.as_str()), "report:\n{t}");
    });
    assert!(STOPPERS.is_halted(victim));
    assert_eq!(hotplug::state(victim), CpuState::Halted);
    // The two CPUs left still do every kind of request.
    assert_eq!(STOPPERS.stop_machine(|| 5, None), Ok(5));
    assert_eq!(STOPPERS.stop_two_cpus(1, 0, || 6), Ok(6));
    assert_eq!(STOPPERS.stop_one_cpu(1, || armstop::cpu::id() as i32), Ok(1));
    assert!(STOPPERS.halted().contains(victim));
}
