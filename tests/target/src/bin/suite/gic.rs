//! SGIs between every pair of CPUs, to sets, to all others, and the GIC's bookkeeping.

use core::time::Duration;

use armstop::board::{NR_CPUS, all_cpus, cpu_count};
use armstop::demo;
use armstop::gic::{self, GicError, SGI_TEST_FIRST, SgiTarget, Version};
use armstop::ipi::{self, Message};
use armstop::smp;
use armstop::stop::CpuSet;
use armstop::target_test;
use armstop::testing::{require_all_cpus, require_cpus};
use armstop::time::wait_until;

const SGI_SELF: u8 = SGI_TEST_FIRST + 1;
const SGI_SET: u8 = SGI_TEST_FIRST + 2;
const SGI_OTHERS: u8 = SGI_TEST_FIRST + 3;
const SGI_CLEARED: u8 = SGI_TEST_FIRST + 4;
const WAIT: Duration = Duration::from_millis(500);

fn counts(sgi: u8) -> [u64; NR_CPUS] {
    let mut c = [0; NR_CPUS];
    for (cpu, v) in c.iter_mut().enumerate().take(cpu_count()) {
        *v = gic::sgi_count(cpu, sgi);
    }
    c
}

#[target_test]
fn sgi_matrix_every_pair_delivers_every_sgi() {
    require_cpus(2);
    let m = demo::run_matrix();
    for s in 0..cpu_count() {
        for d in 0..cpu_count() {
            if s != d {
                assert_eq!(m.delivered(s, d), m.rounds, "cpu{s} -> cpu{d}");
                assert_eq!(m.wrong_source(s, d), 0, "GICv2 source for cpu{s} -> cpu{d}");
            }
        }
    }
}

fn send_to_self(_: usize) -> usize {
    let me = armstop::cpu::id();
    let before = gic::sgi_count(me, SGI_SELF);
    gic::send_sgi(SGI_SELF, SgiTarget::Cpu(me)).expect("send");
    usize::from(wait_until(WAIT, || gic::sgi_count(me, SGI_SELF) == before + 1))
}

#[target_test]
fn sgi_to_self_on_every_cpu() {
    for cpu in 0..cpu_count() {
        assert_eq!(
            smp::run_on(cpu, send_to_self, 0).expect("call"),
            1,
            "cpu{cpu} did not get its own SGI"
        );
    }
}

#[target_test]
fn sgi_to_a_set_reaches_exactly_that_set() {
    require_all_cpus();
    let n = cpu_count();
    // On 4 CPUs: 1-2, 1,3, 0-3, 0 and 2,3; on 8: 1-6, the odd CPUs, 0-7, 0 and 4-7. (A set
    // that is empty on this machine is left out: on 1 CPU, only {0} is left.)
    let inner = all_cpus() - CpuSet::single(0) - CpuSet::single(n - 1);
    let odd: CpuSet = (1..n).step_by(2).collect();
    let upper: CpuSet = (n / 2..n).collect();
    for set in [inner, odd, all_cpus(), CpuSet::single(0), upper] {
        if set.is_empty() {
            continue;
        }
        let before = counts(SGI_SET);
        gic::send_sgi(SGI_SET, SgiTarget::Set(set)).expect("send");
        for cpu in 0..cpu_count() {
            let want = before[cpu] + u64::from(set.contains(cpu));
            assert!(
                wait_until(WAIT, || gic::sgi_count(cpu, SGI_SET) >= want),
                "cpu{cpu} missed set {set}"
            );
        }
        // Give a wrongly targeted SGI time to arrive before checking nobody else got one.
        armstop::time::wait_until(Duration::from_millis(5), || false);
        for cpu in 0..cpu_count() {
            assert_eq!(
                gic::sgi_count(cpu, SGI_SET),
                before[cpu] + u64::from(set.contains(cpu)),
                "cpu{cpu}, set {set}"
            );
        }
    }
}

fn send_to_all_others(_: usize) -> usize {
    gic::send_sgi(SGI_OTHERS, SgiTarget::AllOthers).expect("send");
    0
}

#[target_test]
fn sgi_to_all_others_skips_the_sender() {
    require_cpus(2);
    for sender in 0..cpu_count() {
        let before = counts(SGI_OTHERS);
        smp::run_on(sender, send_to_all_others, 0).expect("call");
        for cpu in 0..cpu_count() {
            let want = before[cpu] + u64::from(cpu != sender);
            assert!(
                wait_until(WAIT, || gic::sgi_count(cpu, SGI_OTHERS) >= want),
                "cpu{cpu} missed it"
            );
        }
        armstop::time::wait_until(Duration::from_millis(5), || false);
        assert_eq!(
            gic::sgi_count(sender, SGI_OTHERS),
            before[sender],
            "sender cpu{sender} got its own broadcast"
        );
    }
}

#[target_test]
fn gicv2_reports_the_source_cpu() {
    if gic::version() != Version::V2 {
        armstop::testing::ignore(format_args!("GICv3 SGIs carry no source CPU"));
    }
    require_cpus(2);
    for src in 1..cpu_count() {
        smp::run_on(src, send_to_all_others, 0).expect("call");
        assert!(
            wait_until(WAIT, || gic::sgi_last_source(0, SGI_OTHERS) == Some(src)),
            "source of SGI from cpu{src}"
        );
    }
}

fn pend_then_reinit(_: usize) -> usize {
    let me = armstop::cpu::id();
    let _masked = armstop::cpu::mask_irqs();
    let before = gic::sgi_count(me, SGI_CLEARED);
    gic::send_sgi(SGI_CLEARED, SgiTarget::Cpu(me)).expect("send");
    let pending = wait_until(WAIT, || gic::pending_on_this_cpu() == Some(u32::from(SGI_CLEARED)));
    gic::init_cpu().expect("re-init");
    let cleared = gic::pending_on_this_cpu().is_none();
    drop(_masked);
    armstop::time::wait_until(Duration::from_millis(2), || false);
    let not_taken = gic::sgi_count(me, SGI_CLEARED) == before;
    usize::from(pending) | usize::from(cleared) << 1 | usize::from(not_taken) << 2
}

#[target_test]
fn cpu_init_clears_sgis_left_pending() {
    // The boot CPU and the last one (the same CPU on a 1-CPU machine).
    for cpu in CpuSet::single(0) | CpuSet::single(cpu_count() - 1) {
        let r = smp::run_on(cpu, pend_then_reinit, 0).expect("call");
        assert_ne!(r & 1, 0, "cpu{cpu}: the SGI never showed as pending");
        assert_ne!(r & 2, 0, "cpu{cpu}: still pending after gic::init_cpu");
        assert_ne!(r & 4, 0, "cpu{cpu}: the cleared SGI was delivered anyway");
    }
}

#[target_test]
fn bad_sgi_targets_are_refused() {
    assert_eq!(gic::send_sgi(16, SgiTarget::Cpu(0)), Err(GicError::BadTarget));
    assert_eq!(gic::send_sgi(1, SgiTarget::Cpu(cpu_count())), Err(GicError::BadTarget));
    assert_eq!(
        gic::send_sgi(1, SgiTarget::Set(CpuSet::single(cpu_count()))),
        Err(GicError::BadTarget)
    );
    assert_eq!(ipi::send(cpu_count(), Message::Wake), Err(GicError::BadTarget));
}

#[target_test]
fn ping_pong_1000_round_trips_to_every_cpu() {
    require_cpus(2);
    for cpu in 1..cpu_count() {
        let (best, mean) = demo::ping_pong_round_trip(cpu, 1000).expect("a pong was lost");
        assert!(best <= mean);
    }
}

#[target_test]
fn no_unexpected_interrupts() {
    assert_eq!(gic::unexpected_count(), 0);
}
