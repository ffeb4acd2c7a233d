//! Boot: every CPU came up through CPU_ON at the expected EL with the right identity.

use armstop::board::{self, BOARD, cpu_count};
use armstop::boards::PsciConduit;
use armstop::hotplug::{self, UpError};
use armstop::psci::Conduit;
use armstop::smp::{self, CpuState};
use armstop::target_test;
use armstop::testing::require_all_cpus;

#[target_test]
fn every_cpu_online() {
    require_all_cpus();
    for cpu in 0..cpu_count() {
        assert_eq!(smp::state(cpu), CpuState::Online, "cpu{cpu}");
    }
}

#[target_test]
fn mpidrs_match_board_table() {
    // The CPU list comes from the device tree on virt (the board has no table), from the
    // board's table on the Pi: each CPU reported the MPIDR the list gives it, and a board
    // table, where there is one, is the list.
    for cpu in 0..cpu_count() {
        let listed = board::mpidr(cpu).expect("a listed CPU");
        assert_eq!(smp::seen_mpidr(cpu), Some(listed), "cpu{cpu} reported a different MPIDR");
        if !BOARD.cpus.is_empty() {
            assert_eq!(BOARD.cpus.get(cpu), Some(&listed), "cpu{cpu} in the board's table");
        }
    }
    assert_eq!(board::mpidr(cpu_count()), None, "a CPU past the machine's");
}

fn read_identity(_: usize) -> usize {
    (armstop::cpu::id() << 32)
        | (board::logical_id(armstop::cpu::mpidr()).unwrap_or(0xffff) << 16)
        | armstop::cpu::current_el() as usize
}

#[target_test]
fn logical_id_and_el_on_every_cpu() {
    for cpu in 0..cpu_count() {
        let v = smp::run_on(cpu, read_identity, 0).expect("call");
        assert_eq!(v >> 32, cpu, "TPIDR_EL1 on cpu{cpu}");
        assert_eq!((v >> 16) & 0xffff, cpu, "MPIDR table lookup on cpu{cpu}");
        assert_eq!(v & 0xffff, 1, "cpu{cpu} runs at EL1");
    }
}

#[target_test]
fn cpus_entered_at_the_expected_el_and_conduit_matches() {
    let el = smp::boot_el(0);
    assert!(el == 1 || el == 2, "boot EL {el}");
    // Secondaries start where PSCI puts them: at the boot CPU's entry EL with firmware PSCI
    // (QEMU, TF-A), at EL1 (the EL of the CPU_ON caller) with armstop's own EL2 provider.
    let secondary_el = if armstop::own_psci::enabled() { 1 } else { el };
    for cpu in 1..cpu_count() {
        assert_eq!(smp::boot_el(cpu), secondary_el, "cpu{cpu} entered at an unexpected EL");
    }
    let expected = match BOARD.psci {
        PsciConduit::Hvc => Conduit::Hvc,
        PsciConduit::Smc => Conduit::Smc,
        PsciConduit::FromBootEl if el == 2 => Conduit::Smc,
        PsciConduit::FromBootEl => Conduit::Hvc,
    };
    assert_eq!(armstop::psci::conduit(), expected);
}

fn vbar(_: usize) -> usize {
    use aarch64_cpu::registers::{Readable, VBAR_EL1};
    VBAR_EL1.get() as usize
}

#[target_test]
fn vectors_installed_on_every_cpu() {
    let want = armstop::arch::exception::vectors_address() as usize;
    assert_eq!(want % 2048, 0, "vector table alignment");
    for cpu in 0..cpu_count() {
        assert_eq!(smp::run_on(cpu, vbar, 0).expect("call"), want, "cpu{cpu}");
    }
}

#[target_test]
fn starting_an_online_cpu_is_refused() {
    require_all_cpus();
    for cpu in 0..cpu_count() {
        assert_eq!(hotplug::cpu_up(cpu), Err(UpError::AlreadyOnline), "cpu{cpu}");
    }
    assert_eq!(hotplug::cpu_up(cpu_count()), Err(UpError::InvalidCpu));
    for cpu in 0..cpu_count() {
        assert_eq!(smp::state(cpu), CpuState::Online, "the refusal changed nothing on cpu{cpu}");
    }
}
