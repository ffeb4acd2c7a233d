//! Down and up on every secondary CPU, what a CPU that came back has re-initialised, interrupt
//! migration, and every refusal.

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use armstop::board::{self, cpu_count};
use armstop::hotplug::{self, CpuState, DownError, HOTPLUG, UpError};
use armstop::smp::{self, CallError};
use armstop::stop::{CpuSet, STOPPERS, StopError};
use armstop::testing::require_cpus;
use armstop::{gic, target_test};
use smccc::psci::AffinityState;

use crate::{fresh, last};

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
    require_cpus(2);
    for cpu in 1..cpu_count() {
        let before = HOTPLUG.stats();
        let t = hotplug::cpu_down(cpu).unwrap_or_else(|e| panic!("cpu_down({cpu}): {e}"));
        assert!(t.stop_ns > 0 && t.total_ns() >= t.stop_ns);
        assert_eq!(hotplug::state(cpu), CpuState::Off);
        assert_eq!(
            armstop::psci::affinity_info(board::mpidr(cpu).expect("a listed CPU")),
            Ok(AffinityState::Off),
            "PSCI must report cpu{cpu} off"
        );
        assert!(!STOPPERS.is_enabled(cpu) && STOPPERS.is_parked(cpu));
        assert_eq!(smp::online_mask(), board::all_cpus() - CpuSet::single(cpu));
        assert_eq!(STOPPERS.stop_one_cpu(cpu, me), Err(StopError::NoEnt));
        assert_eq!(smp::run_on(cpu, setup, 0), Err(CallError::Offline(CpuState::Off)));
        let u = hotplug::cpu_up(cpu).unwrap_or_else(|e| panic!("cpu_up({cpu}): {e}"));
        assert!(u.total_ns() > 0);
        assert_eq!(hotplug::state(cpu), CpuState::Online);
        assert_eq!(smp::run_on(cpu, setup, 0), Ok(0b111), "cpu{cpu}: vectors, MMU, timer");
        assert_eq!(STOPPERS.stop_one_cpu(cpu, me), Ok(cpu as i32));
        assert_eq!(STOPPERS.stop_two_cpus(cpu, 0, me), Ok(cpu as i32));
        assert_eq!(smp::seen_mpidr(cpu), board::mpidr(cpu), "cpu{cpu}'s MPIDR after CPU_ON");
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

/// SPIs taken by each CPU in `interrupts_follow_a_cpu_going_down`.
static SPI_TAKEN: [core::sync::atomic::AtomicU64; armstop::board::NR_CPUS] =
    [const { core::sync::atomic::AtomicU64::new(0) }; armstop::board::NR_CPUS];

fn count_spi() {
    SPI_TAKEN[armstop::cpu::id()].fetch_add(1, Ordering::Relaxed);
}

fn spi_count(cpu: usize) -> u64 {
    SPI_TAKEN[cpu].load(Ordering::Relaxed)
}

#[target_test]
fn interrupts_follow_a_cpu_going_down() {
    fresh();
    require_cpus(2);
    // The test SPI starts on the last CPU, which goes down.
    let cpu = last();
    let spi = gic::lines() - 1;
    gic::enable_spi(spi, cpu, count_spi).expect("enable the test SPI");
    assert_eq!(gic::spi_targets(spi), CpuSet::single(cpu));
    let before = spi_count(cpu);
    gic::set_spi_pending(spi);
    assert!(
        armstop::time::wait_until(core::time::Duration::from_secs(1), || spi_count(cpu) > before),
        "the SPI was not delivered to cpu{cpu}"
    );
    hotplug::cpu_down(cpu).unwrap();
    assert_eq!(gic::spi_targets(spi), CpuSet::single(0), "SPI moved to the lowest online CPU");
    let on0 = spi_count(0);
    gic::set_spi_pending(spi);
    assert!(
        armstop::time::wait_until(core::time::Duration::from_secs(1), || spi_count(0) > on0),
        "the moved SPI was not delivered to cpu0"
    );
    hotplug::cpu_up(cpu).unwrap();
    gic::disable_spi(spi);
    assert_eq!(gic::unexpected_count(), 0);
}

#[target_test]
fn cpu_down_refusals() {
    fresh();
    require_cpus(2);
    let n = cpu_count();
    let last = last();
    assert_eq!(hotplug::cpu_down(n), Err(DownError::InvalidCpu));
    assert_eq!(hotplug::cpu_down(0), Err(DownError::SelfTarget));
    // The boot CPU runs the main program: it could never power off.
    fn down0(_: usize) -> usize {
        (hotplug::cpu_down(0) == Err(DownError::Pinned)) as usize
    }
    assert_eq!(smp::run_on(1, down0, 0), Ok(1), "cpu_down(0) from cpu1 must be Pinned");
    // From inside a stopper callback (on cpu1; on 2 CPUs against its own CPU): refused,
    // nothing happens.
    let r = STOPPERS
        .stop_one_cpu(1, || (hotplug::cpu_down(last) == Err(DownError::FromCallback)) as i32);
    assert_eq!(r, Ok(1));
    assert_eq!(hotplug::state(last), CpuState::Online);
    // Already offline, and the last online CPU: every secondary goes down, the last first.
    hotplug::cpu_down(last).unwrap();
    assert_eq!(hotplug::cpu_down(last), Err(DownError::NotOnline(CpuState::Off)));
    assert_eq!(
        crate::text(hotplug::cpu_down(last).unwrap_err()).as_str(),
        "CPU is already offline (OFF)"
    );
    for cpu in (1..last).rev() {
        hotplug::cpu_down(cpu).unwrap_or_else(|e| panic!("cpu_down({cpu}): {e}"));
    }
    assert_eq!(smp::online_mask(), CpuSet::single(0));
    assert_eq!(hotplug::cpu_down(0), Err(DownError::LastOnline));
    for cpu in 1..n {
        hotplug::cpu_up(cpu).unwrap_or_else(|e| panic!("cpu_up({cpu}): {e}"));
    }
    assert_eq!(HOTPLUG.stats().bad_transitions, 0);
}

#[target_test]
fn cpu_up_refusals() {
    fresh();
    require_cpus(2);
    for cpu in 0..cpu_count() {
        assert_eq!(hotplug::cpu_up(cpu), Err(UpError::AlreadyOnline), "cpu{cpu}");
    }
    assert_eq!(hotplug::cpu_up(cpu_count()), Err(UpError::InvalidCpu));
    // The last CPU goes down; a callback on the one below it (cpu0 on 2 CPUs) may not start it.
    let down = last();
    let caller = down - 1;
    hotplug::cpu_down(down).unwrap();
    let r = STOPPERS
        .stop_one_cpu(caller, || (hotplug::cpu_up(down) == Err(UpError::FromCallback)) as i32);
    assert_eq!(r, Ok(1));
    assert_eq!(hotplug::state(down), CpuState::Off, "the refusal changed nothing");
    hotplug::cpu_up(down).unwrap();
}

static GATE: AtomicBool = AtomicBool::new(false);
/// The CPU that dies with a call posted to it: the last one.
static DYING: AtomicUsize = AtomicUsize::new(0);
/// Holds the dying CPU in its stopper until the next work (take_cpu_down's) is queued behind
/// it. Not a flag set by the test: stop_machine stops the test's own CPU too.
static GATED_F: fn() -> i32 = || {
    let cpu = DYING.load(Ordering::Acquire);
    while !GATE.load(Ordering::Acquire) && !STOPPERS.has_work(cpu) {
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

fn take_down(cpu: usize) -> usize {
    hotplug::cpu_down(cpu).is_ok() as usize
}

/// A call posted to a CPU that goes down before running it is refused, not left to time out.
#[target_test]
fn a_call_posted_to_a_dying_cpu_is_refused() {
    fresh();
    // The dying CPU (the last one), and cpu1, which takes it down.
    require_cpus(3);
    let dying = last();
    DYING.store(dying, Ordering::SeqCst);
    GATE.store(false, Ordering::SeqCst);
    // The dying CPU sits in a stopper work, so it cannot reach the call mailbox...
    assert!(STOPPERS.stop_one_cpu_nowait(dying, &GATED));
    assert!(armstop::time::wait_until(core::time::Duration::from_secs(1), || {
        STOPPERS.running(dying).is_some()
    }));
    let call = smp::post(dying, nine, 0).expect("the dying CPU is still online");
    // ...while cpu1 takes it down: take_cpu_down is queued behind the gated work, which then
    // ends; the CPU goes from its stopper straight to dying, with the call still posted.
    let down = smp::post(1, take_down, dying).unwrap();
    assert_eq!(down.wait_timeout(core::time::Duration::from_secs(10)), Ok(1));
    assert_eq!(call.wait(), Err(CallError::Offline(CpuState::Off)));
    assert_eq!(smp::run_on(dying, nine, 0), Err(CallError::Offline(CpuState::Off)));
    hotplug::cpu_up(dying).unwrap();
    assert_eq!(smp::run_on(dying, nine, 0), Ok(9));
}
