//! PSCI through the board's conduit: version, features and refusals by name.

use armstop::board::{self, cpu_count};
use armstop::psci::{self, Error};
use armstop::target_test;
use armstop::testing::require_all_cpus;
use smccc::psci::AffinityState;

#[target_test]
fn version_is_at_least_1_0() {
    let v = psci::version().expect("PSCI_VERSION");
    assert!(v.major >= 1, "PSCI {v}");
}

#[target_test]
fn features_cover_what_armstop_uses() {
    use smccc::psci::{PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_64, PSCI_SYSTEM_OFF};
    for (fid, name) in [
        (PSCI_CPU_ON_64, "CPU_ON"),
        (PSCI_CPU_OFF, "CPU_OFF"),
        (PSCI_AFFINITY_INFO_64, "AFFINITY_INFO"),
        (PSCI_SYSTEM_OFF, "SYSTEM_OFF"),
    ] {
        assert!(psci::features(fid).is_ok(), "PSCI_FEATURES({name})");
    }
    assert_eq!(psci::features(0x8400_00ff), Err(Error::NotSupported), "an unassigned function id");
}

#[target_test]
fn cpu_on_a_running_cpu_is_already_on() {
    require_all_cpus();
    let entry = armstop::arch::boot::secondary_entry_address();
    for cpu in 0..cpu_count() {
        let mpidr = board::mpidr(cpu).expect("a listed CPU");
        assert_eq!(psci::cpu_on(mpidr, entry, 0), Err(Error::AlreadyOn), "cpu{cpu}");
    }
    assert_eq!(psci::error_name(Error::AlreadyOn), "ALREADY_ON");
}

#[target_test]
fn cpu_on_an_unknown_cpu_is_invalid_parameters() {
    let entry = armstop::arch::boot::secondary_entry_address();
    assert_eq!(psci::cpu_on(0xff_00, entry, 0), Err(Error::InvalidParameters));
    assert_eq!(psci::error_name(Error::InvalidParameters), "INVALID_PARAMETERS");
}

#[target_test]
fn affinity_info_reports_online_cpus_on() {
    require_all_cpus();
    for cpu in 0..cpu_count() {
        let mpidr = board::mpidr(cpu).expect("a listed CPU");
        assert_eq!(psci::affinity_info(mpidr), Ok(AffinityState::On), "cpu{cpu}");
    }
    assert_eq!(psci::affinity_info(0xff_00), Err(Error::InvalidParameters), "unknown MPIDR");
}

#[target_test]
fn psci_targets_are_bare_affinity() {
    // QEMU rejects MPIDR bit 31 (RES1) in CPU_ON's target.
    assert_eq!(psci::target(0x8000_0001), 0x1);
    assert_eq!(psci::target(0x1_0000_0203 | 1 << 31), 0x1_0000_0203);
}
