//! armstop's own PSCI provider (boards whose boot firmware offers none): every call it
//! implements and every refusal, through the real HVC path from EL1. On other boards PSCI comes
//! from the firmware, whose answers to these calls armstop does not define: ignored there.

use armstop::board::{self, BOARD, cpu_count};
use armstop::psci::{self, raw_call};
use armstop::smp;
use armstop::target_test;
use armstop::testing::{ignore, require_cpus};
use smccc::psci::error::{INVALID_ADDRESS, INVALID_PARAMETERS, NOT_SUPPORTED, SUCCESS};
use smccc::psci::*;

fn require_own_provider() {
    if !armstop::own_psci::enabled() {
        ignore(format_args!("board {} takes PSCI from its firmware", BOARD.name));
    }
}

#[target_test]
fn own_provider_reports_1_1_and_exactly_its_features() {
    require_own_provider();
    assert_eq!(raw_call(PSCI_VERSION, [0; 3]), 0x1_0001, "PSCI 1.1");
    for fid in armstop_psci_provider::IMPLEMENTED {
        assert_eq!(raw_call(PSCI_FEATURES, [u64::from(*fid), 0, 0]), 0, "{fid:#x}");
    }
    for fid in [PSCI_SYSTEM_RESET2_64, PSCI_CPU_FREEZE, PSCI_SYSTEM_SUSPEND_64, PSCI_MEM_PROTECT] {
        assert_eq!(raw_call(PSCI_FEATURES, [u64::from(fid), 0, 0]), NOT_SUPPORTED.into());
        assert_eq!(raw_call(fid, [0; 3]), NOT_SUPPORTED.into(), "{fid:#x} called");
    }
    assert_eq!(raw_call(PSCI_MIGRATE_INFO_TYPE, [0; 3]), 2, "no Trusted OS");
}

#[target_test]
fn own_provider_refuses_bad_cpu_on_arguments() {
    require_own_provider();
    // A running secondary: the last CPU.
    require_cpus(2);
    let cpu = cpu_count() - 1;
    let entry = armstop::arch::boot::secondary_entry_address();
    let on = |target: u64, entry: u64| raw_call(PSCI_CPU_ON_64, [target, entry, 0]);
    let busy = board::mpidr(cpu).expect("a listed CPU");
    assert_eq!(on(1 << 31 | busy, entry), INVALID_PARAMETERS.into(), "MPIDR bit 31 set");
    assert_eq!(on(0x7f, entry), INVALID_PARAMETERS.into(), "no such CPU");
    // The target is running: the address check comes first, so nothing is started.
    assert_eq!(on(busy, entry + 2), INVALID_ADDRESS.into(), "unaligned entry");
    assert_eq!(on(busy, 0xf0_0000_0000), INVALID_ADDRESS.into(), "entry outside RAM");
    assert_eq!(psci::cpu_on(busy, entry, 0), Err(psci::Error::AlreadyOn));
    assert_eq!(smp::state(cpu), smp::CpuState::Online, "refusals changed nothing");
}

#[target_test]
fn own_provider_affinity_info_levels_and_32_bit_calls() {
    require_own_provider();
    armstop::testing::require_all_cpus();
    for cpu in 0..cpu_count() {
        let mpidr = board::mpidr(cpu).expect("a listed CPU");
        assert_eq!(raw_call(PSCI_AFFINITY_INFO_64, [mpidr, 0, 0]), 0, "cpu{cpu} on");
        let high = 0xdead_0000_0000_0000;
        assert_eq!(raw_call(PSCI_AFFINITY_INFO_32, [high | mpidr, high, 0]), 0, "32-bit");
        assert_eq!(
            raw_call(PSCI_AFFINITY_INFO_64, [mpidr, 1, 0]),
            INVALID_PARAMETERS.into(),
            "level 1"
        );
    }
}

fn suspend_standby(_: usize) -> usize {
    // An SGI to this CPU, kept pending by the masked IRQs, ends the standby (wfi at EL2) at
    // once: a pending interrupt wakes a WFI whatever the masks and the EL it targets.
    let _masked = armstop::cpu::mask_irqs();
    let me = armstop::cpu::id();
    armstop::ipi::send(me, armstop::ipi::Message::Wake).expect("SGI to self");
    raw_call(PSCI_CPU_SUSPEND_64, [0, 0, 0]) as usize
}

#[target_test]
fn own_provider_suspends_to_standby_only() {
    require_own_provider();
    for cpu in 0..cpu_count() {
        let r = smp::run_on(cpu, suspend_standby, 0).expect("call");
        assert_eq!(r as i64, i64::from(SUCCESS), "cpu{cpu} standby");
    }
    let entry = armstop::arch::boot::secondary_entry_address();
    for (state, what) in [(1 << 16, "power down"), (1 << 24, "level 1"), (1 << 20, "reserved bit")]
    {
        assert_eq!(
            raw_call(PSCI_CPU_SUSPEND_64, [state, entry, 0]),
            INVALID_PARAMETERS.into(),
            "{what}"
        );
    }
}

#[target_test]
fn own_provider_answers_only_hvc_0() {
    require_own_provider();
    let r: u64;
    // SAFETY: an HVC with a non-zero immediate: the provider must return NOT_SUPPORTED in x0
    // and preserve every other register (none is used here).
    unsafe {
        core::arch::asm!("hvc #1", inout("x0") u64::from(PSCI_VERSION) => r, options(nostack));
    }
    assert_eq!(r as i64, i64::from(NOT_SUPPORTED));
}

fn off_and_back(_: usize) -> usize {
    0
}

#[target_test]
fn own_provider_turns_a_cpu_off_and_on_again() {
    require_own_provider();
    // The last CPU goes off and on (cpu0 cannot).
    require_cpus(2);
    let cpu = cpu_count() - 1;
    let mpidr = board::mpidr(cpu).expect("a listed CPU");
    for round in 0..3 {
        armstop::hotplug::cpu_down(cpu).expect("cpu_down");
        assert_eq!(raw_call(PSCI_AFFINITY_INFO_64, [mpidr, 0, 0]), 1, "round {round}: off");
        armstop::hotplug::cpu_up(cpu).expect("cpu_up");
        assert_eq!(raw_call(PSCI_AFFINITY_INFO_64, [mpidr, 0, 0]), 0, "round {round}: on");
        assert_eq!(smp::run_on(cpu, off_and_back, 0), Ok(0), "round {round}: it runs");
        assert_eq!(smp::boot_el(cpu), 1, "round {round}: entered at EL1 (cpu{cpu})");
    }
}
