//! Down and up on every secondary CPU, what a CPU that came back has re-initialised, interrupt
//! migration, and every refusal.

use core::sync::atomic::{AtomicBool, Ordering};

use armstop::board::{BOARD, cpu_count};
use armstop::hotplug::{self, CpuState, DownError, HOTPLUG, UpError};
use armstop::smp::{self, CallError};
use armstop::stop::{CpuSet, STOPPERS, StopError};
use armstop::{gic, target_test};
use smccc::psci::AffinityState;

use crate::fresh;

fn me() -> i32 {
    armstop::cpu::id() as i32
}

/// What a CPU reports about its own set-up: VBAR, SCTLR.M and the timer control.
fn setup(_: usize) -> usize {
    use aarch64_cpu::registers::{CNTP_CTL_EL0, Readable, SCTLR_EL1, VBAR_EL1};
    let vectors_ok = VBAR_EL1.get() == armstop::arch::exception::vectors_address();
    let mmu_on = SCTLR_EL1.is_set(SCTLR_EL1::M) && SCTLR_EL1.is_set(SCTLR_EL1::C);
    let timer_off = !CNTP_CTL_EL0.is_set(CNTP_CTL_EL0::ENABLE);
    usize::from(vectors_ok) | usize::from(mmu_on) << 1 | usize::from(timer_off) << 2
}

#[target_test]
fn every_secondary_goes_down_and_comes_back_reinitialised() {
    fresh();
    for cpu in 1..cpu_count() {
        let before = HOTPLUG.stats();
        let t = hotplug::cpu_down(cpu).unwrap_or_else(|e| panic!("cpu_down({cpu}): {e}"));
        assert!(t.stop_ns > 0 && t.total_ns() >= t.stop_ns);
        assert_eq!(hotplug::state(cpu), CpuState::Off);
        assert_eq!(
            armstop::psci::affinity_info(BOARD.cpus[cpu]),
            Ok(AffinityState::Off),
            "PSCI must report cpu{cpu} off"
        );
        assert!(!STOPPERS.is_enabled(cpu) && STOPPERS.is_parked(cpu));
        assert_eq!(smp::online_mask(), armstop::board::all_cpus() - CpuSet::single(cpu));
        assert_eq!(STOPPERS.stop_one_cpu(cpu, me), Err(StopError::NoEnt));
        assert_eq!(smp::run_on(cpu, setup, 0), Err(CallError::Offline(CpuState::Off)));
        let u = hotplug::cpu_up(cpu).unwrap_or_else(|e| panic!("cpu_up({cpu}): {e}"));
        assert!(u.total_ns() > 0);
        assert_eq!(hotplug::state(cpu), CpuState::Online);
        assert_eq!(smp::run_on(cpu, setup, 0), Ok(0b111), "cpu{cpu}: vectors, MMU, timer");
        assert_eq!(STOPPERS.stop_one_cpu(cpu, me), Ok(cpu as i32));
        assert_eq!(STOPPERS.stop_two_cpus(cpu, 0, me), Ok(cpu as i32));
        assert_eq!(smp::seen_mpidr(cpu), Some(BOARD.cpus[cpu]));
        let after = HOTPLUG.stats();
        assert_eq!((after.downs - before.downs, after.ups - before.ups), (1, 1));
    }
    // SGIs reach a CPU that came back (the GIC interface was re-initialised; nothing stale
    // was left pending or active across CPU_OFF).
    for cpu in 1..cpu_count() {
        let before = gic::sgi_count(cpu, gic::SGI_TEST_FIRST);
        gic::send_sgi(gic::SGI_TEST_FIRST, gic::SgiTarget::Cpu(cpu)).unwrap();
        assert!(
            armstop::time::wait_until(core::time::Duration::from_secs(1), || {
                gic::sgi_count(cpu, gic::SGI_TEST_FIRST) > before
            }),
            "cpu{cpu} did not take an SGI after coming back"
        );
    }
    assert_eq!(STOPPERS.stats().park_with_works, 0);
    assert_eq!(HOTPLUG.stats().bad_transitions, 0);
}

#[target_test]
fn interrupts_follow_a_cpu_going_down() {
    fresh();
    let spi = gic::lines() - 1;
    gic::enable_spi(spi, 3).expect("enable the test SPI");
    assert_eq!(gic::spi_targets(spi), CpuSet::single(3));
    let on3 = gic::spi_count(3);
    gic::set_spi_pending(spi);
    assert!(armstop::time::wait_until(core::time::Duration::from_secs(1), || {
        gic::spi_count(3) > on3
    }));
    hotplug::cpu_down(3).unwrap();
    assert_eq!(gic::spi_targets(spi), CpuSet::single(0), "SPI moved to the lowest online CPU");
    let on0 = gic::spi_count(0);
    gic::set_spi_pending(spi);
    assert!(
        armstop::time::wait_until(core::time::Duration::from_secs(1), || gic::spi_count(0) > on0),
        "the moved SPI was not delivered to cpu0"
    );
    hotplug::cpu_up(3).unwrap();
    gic::disable_spi(spi);
    assert_eq!(gic::unexpected_count(), 0);
}

#[target_test]
fn cpu_down_refusals() {
    fresh();
    let n = cpu_count();
    assert_eq!(hotplug::cpu_down(n), Err(DownError::InvalidCpu));
    assert_eq!(hotplug::cpu_down(0), Err(DownError::SelfTarget));
    // The boot CPU runs the main program: it could never power off.
    fn down0(_: usize) -> usize {
        (hotplug::cpu_down(0) == Err(DownError::Pinned)) as usize
    }
    assert_eq!(smp::run_on(1, down0, 0), Ok(1), "cpu_down(0) from cpu1 must be Pinned");
    // From inside a stopper callback: refused, nothing happens.
    let r =
        STOPPERS.stop_one_cpu(1, || (hotplug::cpu_down(2) == Err(DownError::FromCallback)) as i32);
    assert_eq!(r, Ok(1));
    assert_eq!(hotplug::state(2), CpuState::Online);
    // Already offline, and the last online CPU.
    hotplug::cpu_down(3).unwrap();
    assert_eq!(hotplug::cpu_down(3), Err(DownError::NotOnline(CpuState::Off)));
    assert_eq!(
        crate::text(hotplug::cpu_down(3).unwrap_err()).as_str(),
        "CPU is already offline (OFF)"
    );
    hotplug::cpu_down(2).unwrap();
    hotplug::cpu_down(1).unwrap();
    assert_eq!(smp::online_mask(), CpuSet::single(0));
    assert_eq!(hotplug::cpu_down(0), Err(DownError::LastOnline));
    for cpu in 1..n {
        hotplug::cpu_up(cpu).unwrap();
    }
    assert_eq!(HOTPLUG.stats().bad_transitions, 0);
}

#[target_test]
fn cpu_up_refusals() {
    fresh();
    assert_eq!(hotplug::cpu_up(1), Err(UpError::AlreadyOnline));
    assert_eq!(hotplug::cpu_up(0), Err(UpError::AlreadyOnline));
    assert_eq!(hotplug::cpu_up(cpu_count()), Err(UpError::InvalidCpu));
    hotplug::cpu_down(2).unwrap();
    let r = STOPPERS.stop_one_cpu(1, || (hotplug::cpu_up(2) == Err(UpError::FromCallback)) as i32);
    assert_eq!(r, Ok(1));
    assert_eq!(hotplug::state(2), CpuState::Off, "the refusal changed nothing");
    hotplug::cpu_up(2).unwrap();
}

static GATE: AtomicBool = AtomicBool::new(false);
/// Holds cpu2 in its stopper until the next work (take_cpu_down's) is queued behind it. Not a
/// flag set by the test: stop_machine stops the test's own CPU too.
static GATED_F: fn() -> i32 = || {
    while !GATE.load(Ordering::Acquire) && !STOPPERS.has_work(2) {
        core::hint::spin_loop();
    }
    0
};
static GATED: armstop::stop::NowaitWork = armstop::stop::NowaitWork::new("gated", &GATED_F);

/// Ends anything an earlier, failed test left waiting here.
pub fn open_gates() {
    GATE.store(true, Ordering::SeqCst);
}

fn nine(_: usize) -> usize {
    9
}

fn down2(_: usize) -> usize {
    hotplug::cpu_down(2).is_ok() as usize
}

/// A call posted to a CPU that goes down before running it is refused, not left to time out.
#[target_test]
fn a_call_posted_to_a_dying_cpu_is_refused() {
    fresh();
    GATE.store(false, Ordering::SeqCst);
    // cpu2 sits in a stopper work, so it cannot reach the call mailbox...
    assert!(STOPPERS.stop_one_cpu_nowait(2, &GATED));
    assert!(armstop::time::wait_until(core::time::Duration::from_secs(1), || {
        STOPPERS.running(2).is_some()
    }));
    let call = smp::post(2, nine, 0).expect("cpu2 is still online");
    // ...while cpu1 takes it down: take_cpu_down is queued behind the gated work, which then
    // ends; cpu2 goes from its stopper straight to dying, with the call still posted.
    let down = smp::post(1, down2, 0).unwrap();
    assert_eq!(down.wait_timeout(core::time::Duration::from_secs(10)), Ok(1));
    assert_eq!(call.wait(), Err(CallError::Offline(CpuState::Off)));
    assert_eq!(smp::run_on(2, nine, 0), Err(CallError::Offline(CpuState::Off)));
    hotplug::cpu_up(2).unwrap();
    assert_eq!(smp::run_on(2, nine, 0), Ok(9));
}
