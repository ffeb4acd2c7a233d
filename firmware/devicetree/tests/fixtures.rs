//! The hand-written device trees in tests/data/*.dts (compiled by scripts/dump-dtbs.sh): what
//! QEMU's blobs do not show, and one blob per semantic error.

use armstop_devicetree::{DtError, Gic, MAX_CPUS, PsciMethod, Region, parse};

macro_rules! dtb {
    ($name:literal) => {
        include_bytes!(concat!("data/", $name, ".dtb")).as_slice()
    };
}

fn err(dtb: &[u8]) -> DtError {
    parse(dtb).expect_err("parse should fail")
}

#[test]
fn base_is_valid() {
    let m = parse(dtb!("base")).unwrap();
    assert_eq!(m.cpus(), &[0, 1]);
    assert_eq!(m.memory, Some(Region { base: 0x4000_0000, size: 0x1000_0000 }));
    let gicd = Region { base: 0x0800_0000, size: 0x1000 };
    let gicc = Region { base: 0x0801_0000, size: 0x2000 };
    assert_eq!(m.gic, Gic::V2 { gicd, gicc }, "arm,gic-400 is a GICv2");
    assert_eq!(m.psci, Some(PsciMethod::Hvc));
    assert_eq!(m.uart, Some(0x0900_0000));
    assert_eq!(m.timer_ppis, Some([13, 14, 11, 10]));
}

#[test]
fn edge_cases() {
    let m = parse(dtb!("edge-cases")).unwrap();
    // #address-cells = <2> in /cpus (Aff3 in the high cell); the disabled cpu@200, the
    // cpu-map and the cache node are not CPUs.
    assert_eq!(m.cpus(), &[0x0, 0x100, 0x1_0000_0000]);
    assert_eq!(m.logical_id(0x1_0000_0000), Some(2));
    assert_eq!(m.logical_id(0x200), None);
    // Only the first region of the first memory node.
    assert_eq!(m.memory, Some(Region { base: 0x8000_0000, size: 0x2000_0000 }));
    let Gic::V3 { gicd, redistributors } = m.gic else { panic!("{:?}", m.gic) };
    assert_eq!(gicd, Region { base: 0x0800_0000, size: 0x1_0000 });
    assert_eq!(
        redistributors.regions(),
        &[
            Region { base: 0x080a_0000, size: 0xf6_0000 },
            Region { base: 0x40_0000_0000, size: 0x400_0000 }
        ],
        "the GICC frame after the redistributors is not one"
    );
    assert_eq!(m.psci, Some(PsciMethod::Smc), "arm,psci-0.2 alone");
    assert_eq!(m.uart, Some(0x0904_0000), "stdout-path = \"serial1:115200n8\", through /aliases");
    assert_eq!(m.timer_ppis, Some([13, 14, 11, 10]), "the fifth (EL2 virtual) PPI is not kept");
}

#[test]
fn gicv2_fallbacks() {
    let m = parse(dtb!("gicv2-fallbacks")).unwrap();
    assert_eq!(m.cpus(), &[0, 1, 2]);
    assert_eq!(m.memory, None);
    assert_eq!(m.timer_ppis, None);
    assert_eq!(m.psci, Some(PsciMethod::Hvc), "the old arm,psci compatible");
    let gicd = Region { base: 0x0800_0000, size: 0x1_0000 };
    let gicc = Region { base: 0x0801_0000, size: 0x1_0000 };
    assert_eq!(m.gic, Gic::V2 { gicd, gicc }, "GICH and GICV are not kept");
    assert_eq!(m.uart, Some(0x0901_0000), "stdout-path is no PL011, the first is disabled");
}

#[test]
fn no_cpus_node() {
    let e = err(dtb!("no-cpus"));
    assert_eq!(e, DtError::NoCpusNode);
    assert_eq!(e.to_string(), "device tree has no /cpus node");
}

#[test]
fn zero_cpus() {
    let e = err(dtb!("zero-cpus"));
    assert_eq!(e, DtError::NoCpus);
    assert_eq!(e.to_string(), "device tree /cpus has no enabled CPU node");
}

#[test]
fn duplicate_mpidr() {
    let e = err(dtb!("duplicate-mpidr"));
    assert_eq!(e, DtError::DuplicateMpidr(1));
    assert_eq!(e.to_string(), "two CPU nodes have MPIDR 0x1");
}

#[test]
fn mpidr_with_non_affinity_bits() {
    let e = err(dtb!("mpidr-non-affinity"));
    assert_eq!(e, DtError::BadMpidr(0x8000_0001));
    assert_eq!(e.to_string(), "CPU MPIDR 0x80000001 has bits outside the affinity fields");
}

#[test]
fn cpu_without_reg() {
    let e = err(dtb!("cpu-no-reg"));
    assert!(matches!(e, DtError::CpuReg(n) if n == "cpu@1"), "{e:?}");
    assert_eq!(e.to_string(), "CPU node cpu@1 has no usable reg");
}

#[test]
fn cpus_with_size_cells() {
    let e = err(dtb!("cpus-size-cells"));
    assert!(
        matches!(e, DtError::BadProperty { node, property: "#size-cells" } if node == "cpus"),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "device tree node cpus: malformed #size-cells");
}

#[test]
fn too_many_cpus() {
    let e = err(dtb!("too-many-cpus"));
    assert_eq!(e, DtError::TooManyCpus(MAX_CPUS + 1));
    assert_eq!(e.to_string(), "device tree has 513 CPUs; at most 512 are supported");
}

#[test]
fn no_gic() {
    let e = err(dtb!("no-gic"));
    assert_eq!(e, DtError::NoGic);
    assert!(e.to_string().starts_with("device tree has no GIC node"), "{e}");
}

#[test]
fn gic_reg_too_short() {
    let e = err(dtb!("gic-short-reg"));
    assert_eq!(e, DtError::GicReg { found: 2, needed: 3 });
    assert_eq!(e.to_string(), "GIC reg has 2 entries, 3 needed");
}

#[test]
fn bad_psci_method() {
    let e = err(dtb!("bad-psci-method"));
    assert!(matches!(e, DtError::BadPsciMethod(m) if m == "svc"), "{e:?}");
    assert_eq!(e.to_string(), "PSCI method \"svc\" is neither \"hvc\" nor \"smc\"");
}

#[test]
fn timer_interrupt_not_a_ppi() {
    let e = err(dtb!("bad-timer"));
    assert!(
        matches!(e, DtError::BadProperty { node, property: "interrupts" } if node == "timer"),
        "{e:?}"
    );
}
