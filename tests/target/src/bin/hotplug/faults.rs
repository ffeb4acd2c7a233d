//! Cores that will not start or stop: each is detected by its timeout, marked FAILED with the
//! reason, refused by `cpu_down`, and recovered by `cpu_up` once PSCI reports it off.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;

use armstop::board::cpu_count;
use armstop::hotplug::{self, CpuState, DownError, Fault, HOTPLUG, Timeouts, UpError};
use armstop::smp;
use armstop::stop::{STOPPERS, StopError};
use armstop::target_test;
use armstop::testing::require_cpus;

use crate::{fresh, last, wait_psci_off};

const SHORT: Timeouts =
    Timeouts { boot_ns: 300_000_000, dead_ns: 300_000_000, off_ns: 300_000_000 };

#[target_test]
fn a_core_that_never_reports_in_is_failed_then_recovered() {
    fresh();
    // The last CPU stalls.
    require_cpus(2);
    let cpu = last();
    HOTPLUG.set_timeouts(SHORT);
    hotplug::cpu_down(cpu).unwrap();
    hotplug::inject(cpu, Fault::StallBoot);
    assert_eq!(hotplug::cpu_up(cpu), Err(UpError::Timeout { waited_ms: 300 }));
    assert_eq!(hotplug::state(cpu), CpuState::Failed);
    // What the console's `cpus` prints for it.
    let line = crate::text(smp::cpu_report(cpu));
    assert!(line.as_str().contains("FAILED"), "cpus line: {}", line.as_str());
    assert!(!STOPPERS.is_enabled(cpu), "a core that never reported in has no stopper");
    assert_eq!(STOPPERS.stop_one_cpu(cpu, || 0), Err(StopError::NoEnt));
    assert_eq!(hotplug::cpu_down(cpu), Err(DownError::Failed));
    // PSCI says it is running (it is, stalled): CPU_ON is refused by name.
    let e = hotplug::cpu_up(cpu).unwrap_err();
    assert!(matches!(e, UpError::Power(p) if p.error == armstop::psci::Error::AlreadyOn), "{e}");
    let text = crate::text(e);
    let text = text.as_str();
    assert!(text.contains("CPU_ON returned ALREADY_ON"), "{text}");
    assert_eq!(hotplug::state(cpu), CpuState::Failed);
    hotplug::release(cpu);
    wait_psci_off(cpu);
    hotplug::cpu_up(cpu).expect("a FAILED core that PSCI reports off can be started again");
    assert_eq!(STOPPERS.stop_one_cpu(cpu, || armstop::cpu::id() as i32), Ok(cpu as i32));
    HOTPLUG.set_timeouts(Timeouts::DEFAULT);
    assert_eq!(HOTPLUG.stats().bad_transitions, 0);
}

#[target_test]
fn a_core_that_never_powers_off_is_failed_then_recovered() {
    fresh();
    // The middle CPU stalls (cpu2 on 4 CPUs, cpu4 on 8, cpu1 on 2).
    require_cpus(2);
    let cpu = cpu_count() / 2;
    HOTPLUG.set_timeouts(SHORT);
    hotplug::inject(cpu, Fault::StallOff);
    assert_eq!(hotplug::cpu_down(cpu), Err(DownError::NotOff { waited_ms: 300 }));
    assert_eq!(hotplug::state(cpu), CpuState::Failed);
    let line = crate::text(smp::cpu_report(cpu));
    assert!(line.as_str().contains("FAILED"), "cpus line: {}", line.as_str());
    assert!(
        !STOPPERS.is_enabled(cpu) && STOPPERS.is_parked(cpu),
        "flushed and parked before it stalled"
    );
    hotplug::release(cpu);
    wait_psci_off(cpu);
    hotplug::cpu_up(cpu).unwrap();
    HOTPLUG.set_timeouts(Timeouts::DEFAULT);
    assert_eq!(HOTPLUG.stats().bad_transitions, 0);
}

static BUSY: AtomicBool = AtomicBool::new(false);
static BUSY_STARTED: AtomicBool = AtomicBool::new(false);

/// Ends anything an earlier, failed test left waiting here.
pub fn open_gates() {
    BUSY.store(false, Ordering::SeqCst);
}

fn busy(_: usize) -> usize {
    BUSY_STARTED.store(true, Ordering::SeqCst);
    while BUSY.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    1
}

/// A core whose thread is busy (a long cross-CPU call) serves take_cpu_down from its SGI
/// handler but cannot reach its idle loop to die: the controller gives up and marks it FAILED;
/// when the call ends the core flushes, parks and turns itself off, and can be brought back.
#[target_test]
fn a_busy_core_misses_its_dead_report_and_turns_off_late() {
    fresh();
    // cpu1 is the busy core.
    require_cpus(2);
    HOTPLUG.set_timeouts(SHORT);
    let late = HOTPLUG.stats().late_cpus;
    BUSY.store(true, Ordering::SeqCst);
    BUSY_STARTED.store(false, Ordering::SeqCst);
    let call = smp::post(1, busy, 0).unwrap();
    // Posted is not running: a CPU that has not started the call yet just refuses it and dies.
    assert!(
        armstop::time::wait_until(Duration::from_secs(2), || BUSY_STARTED.load(Ordering::SeqCst))
    );
    assert_eq!(hotplug::cpu_down(1), Err(DownError::NoDeadReport { waited_ms: 300 }));
    assert_eq!(hotplug::state(1), CpuState::Failed);
    assert_eq!(STOPPERS.stop_one_cpu(1, || 0), Err(StopError::NoEnt));
    BUSY.store(false, Ordering::SeqCst);
    assert_eq!(call.wait_timeout(Duration::from_secs(2)), Ok(1));
    wait_psci_off(1);
    assert_eq!(HOTPLUG.stats().late_cpus, late + 1);
    hotplug::cpu_up(1).unwrap();
    HOTPLUG.set_timeouts(Timeouts::DEFAULT);
    assert_eq!(HOTPLUG.stats().bad_transitions, 0);
    assert_eq!(STOPPERS.stats().park_with_works, 0);
}
