//! The blobs QEMU 10's `virt` machine hands a guest (dumped by scripts/dump-dtbs.sh), read into
//! a `Machine` and checked against the board data in `armstop_boards::qemu_virt`.

use armstop_boards::{Board, GicLayout, PsciConduit, qemu_virt};
use armstop_devicetree::{
    Gic, Machine, Mismatch, PsciMethod, Region, check_board, check_board_devices, parse,
};

/// One dumped configuration.
struct Config {
    name: &'static str,
    dtb: &'static [u8],
    gic_version: u8,
    smp: usize,
    psci: PsciMethod,
}

macro_rules! config {
    ($name:literal, $gic:literal, $smp:literal, $psci:ident) => {
        Config {
            name: $name,
            dtb: include_bytes!(concat!("data/", $name, ".dtb")),
            gic_version: $gic,
            smp: $smp,
            psci: PsciMethod::$psci,
        }
    };
}

const CONFIGS: &[Config] = &[
    config!("virt-gicv2-smp1", 2, 1, Hvc),
    config!("virt-gicv2-smp2", 2, 2, Hvc),
    config!("virt-gicv2-smp4", 2, 4, Hvc),
    config!("virt-gicv2-smp8", 2, 8, Hvc),
    config!("virt-gicv3-smp1", 3, 1, Hvc),
    config!("virt-gicv3-smp4", 3, 4, Hvc),
    config!("virt-gicv3-smp16", 3, 16, Hvc),
    config!("virt-gicv3-smp64", 3, 64, Hvc),
    config!("virt-gicv3-smp128", 3, 128, Hvc),
    config!("virt-el2-gicv3-smp4", 3, 4, Smc),
];

fn machine(c: &Config) -> Machine {
    parse(c.dtb).unwrap_or_else(|e| panic!("{}: {e}", c.name))
}

/// What `dtc -I dtb -O dts` shows for every dump: `virt` numbers CPUs in Aff0 within clusters
/// of 16 on GICv3 (its GICv2 has at most 8 CPUs, all in cluster 0), Aff1 the cluster.
fn virt_mpidr(cpu: usize) -> u64 {
    ((cpu as u64 / 16) << 8) | (cpu as u64 % 16)
}

#[test]
fn cpu_count_and_mpidrs() {
    for c in CONFIGS {
        let m = machine(c);
        let want: Vec<u64> = (0..c.smp).map(virt_mpidr).collect();
        assert_eq!(m.cpus(), &want[..], "{}", c.name);
        assert_eq!(
            m.logical_id(0x8000_0000 | virt_mpidr(c.smp - 1)),
            Some(c.smp - 1),
            "{}",
            c.name
        );
    }
    let m = machine(&CONFIGS[7]);
    assert_eq!((m.cpus()[15], m.cpus()[16], m.cpus()[63]), (0xf, 0x100, 0x30f), "smp 64");
}

#[test]
fn gic_frames() {
    for c in CONFIGS {
        let m = machine(c);
        assert_eq!(m.gic.version(), c.gic_version, "{}", c.name);
        let gicd = Region { base: 0x0800_0000, size: 0x1_0000 };
        assert_eq!(m.gic.gicd(), gicd, "{}", c.name);
        match m.gic {
            Gic::V2 { gicc, .. } => {
                assert_eq!(gicc, Region { base: 0x0801_0000, size: 0x1_0000 }, "{}", c.name);
            }
            Gic::V3 { redistributors, .. } => {
                // 0xf60000 bytes: 123 frames of 128 KiB, below the UART.
                let low = Region { base: 0x080a_0000, size: 0xf6_0000 };
                let high = Region { base: 0x40_0000_0000, size: 0x400_0000 };
                let want: &[Region] = if c.smp > 123 { &[low, high] } else { &[low] };
                assert_eq!(redistributors.regions(), want, "{}", c.name);
                assert_eq!(redistributors.first(), low);
            }
        }
    }
}

#[test]
fn psci_uart_memory_timer() {
    for c in CONFIGS {
        let m = machine(c);
        assert_eq!(m.psci, Some(c.psci), "{}", c.name);
        assert_eq!(m.uart, Some(0x0900_0000), "{}", c.name);
        assert_eq!(m.memory, Some(Region { base: 0x4000_0000, size: 1 << 30 }), "{}", c.name);
        // Secure phys, non-secure phys, virtual, hypervisor: INTIDs 29, 30, 27, 26.
        assert_eq!(m.timer_ppis, Some([13, 14, 11, 10]), "{}", c.name);
    }
    assert_eq!(PsciConduit::from(PsciMethod::Smc), PsciConduit::Smc);
    assert_eq!(PsciConduit::from(PsciMethod::Hvc), PsciConduit::Hvc);
}

#[test]
fn the_padded_blob_qemu_places_in_ram_reads_the_same() {
    // QEMU's own blob has totalsize 1 MiB, most of it free space after the strings.
    let c = &CONFIGS[2];
    let mut padded = c.dtb.to_vec();
    padded.resize(1 << 20, 0);
    padded[4..8].copy_from_slice(&(1u32 << 20).to_be_bytes());
    assert_eq!(parse(&padded), Ok(machine(c)));
    // And a slice longer than the blob (a RAM window) is cut to totalsize.
    let mut window = c.dtb.to_vec();
    window.extend_from_slice(&[0xa5; 4096]);
    assert_eq!(parse(&window), Ok(machine(c)));
}

#[test]
fn qemu_virt_board_devices_match_every_config() {
    for c in CONFIGS {
        assert_eq!(check_board_devices(&qemu_virt::BOARD, &machine(c)), Ok(()), "{}", c.name);
    }
}

/// `qemu_virt::BOARD` with a fixed `-smp 4` CPU table, as a board without a device tree
/// would have (the real one takes its CPUs from the device tree).
fn smp4_board() -> Board {
    Board { cpus: &[0, 1, 2, 3], ..qemu_virt::BOARD }
}

#[test]
fn a_fixed_cpu_table_matches_its_smp_only() {
    let b = smp4_board();
    for c in CONFIGS {
        let r = check_board(&b, &machine(c));
        if c.smp == 4 {
            assert_eq!(r, Ok(()), "{}", c.name);
        } else {
            assert_eq!(r, Err(Mismatch::CpuCount { board: 4, dt: c.smp }), "{}", c.name);
        }
    }
    let e = check_board(&b, &machine(&CONFIGS[3])).unwrap_err();
    assert_eq!(e.to_string(), "cpu count: board says 4, device tree says 8");
}

#[test]
fn mismatches_name_the_field_and_both_values() {
    let v2 = machine(&CONFIGS[2]);
    let v3 = machine(&CONFIGS[5]);
    let mut b = smp4_board();
    b.cpus = &[0, 1, 0x102, 3];
    let e = check_board(&b, &v2).unwrap_err();
    assert_eq!(e, Mismatch::Mpidr { cpu: 2, board: 0x102, dt: 0x2 });
    assert_eq!(e.to_string(), "cpu 2 MPIDR: board 0x102, device tree 0x2");
    assert_eq!(check_board_devices(&b, &v2), Ok(()), "devices only: the CPU table is not read");

    b = smp4_board();
    b.gic = GicLayout::V2 { gicd: 0xff84_1000, gicc: 0xff84_2000 };
    let e = check_board(&b, &v2).unwrap_err();
    assert_eq!(e.to_string(), "GIC distributor: board 0xff841000, device tree 0x8000000");
    let e = check_board_devices(&b, &v3).unwrap_err();
    assert_eq!(e, Mismatch::GicVersion { board: 2, dt: 3 });
    assert_eq!(e.to_string(), "GIC version: board says v2, device tree says v3");

    b.gic = GicLayout::V2 { gicd: 0x0800_0000, gicc: 0x0802_0000 };
    let e = check_board_devices(&b, &v2).unwrap_err();
    assert_eq!(e.to_string(), "GIC CPU interface: board 0x8020000, device tree 0x8010000");

    b.gic = GicLayout::V3 { gicd: 0x0800_0000, gicr: 0x080a_0000 };
    assert_eq!(check_board_devices(&b, &v3), Ok(()));
    assert_eq!(check_board_devices(&b, &v2), Err(Mismatch::GicVersion { board: 3, dt: 2 }));
    b.gic = GicLayout::Probe { gicd: 0x0800_0000, gicc_v2: 0x0801_0000, gicr_v3: 0x080c_0000 };
    assert_eq!(check_board_devices(&b, &v2), Ok(()), "probe: the v2 frame is right");
    let e = check_board_devices(&b, &v3).unwrap_err();
    assert_eq!(e.to_string(), "GIC redistributor: board 0x80c0000, device tree 0x80a0000");

    b = qemu_virt::BOARD;
    b.uart.base = 0x0904_0000;
    let e = check_board_devices(&b, &v3).unwrap_err();
    assert_eq!(e.to_string(), "UART: board 0x9040000, device tree 0x9000000");
    let mut no_uart = v3;
    no_uart.uart = None;
    let e = check_board_devices(&qemu_virt::BOARD, &no_uart).unwrap_err();
    assert_eq!(e.to_string(), "UART: board 0x9000000, device tree has no PL011");
}

#[test]
fn the_pi_boards_are_not_qemu_virt() {
    let v2 = machine(&CONFIGS[2]);
    for b in [armstop_boards::raspi4::TFA, armstop_boards::raspi4::OWN_PSCI] {
        let want = Mismatch::GicDistributor { board: 0xff84_1000, dt: 0x0800_0000 };
        assert_eq!(check_board_devices(&b, &v2), Err(want), "{}", b.name);
    }
}
