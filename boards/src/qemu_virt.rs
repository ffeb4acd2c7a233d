//! QEMU `virt` with `-cpu cortex-a72`, any `-smp` (see ../shared/PLATFORM.md).
//!
//! One image serves `gic-version=2` and `gic-version=3`, entered at EL1 (PSCI over HVC) or, with
//! `virtualization=on`, at EL2 (PSCI over SMC): the GIC version is probed and the conduit follows
//! the boot exception level. The CPUs come from the device tree QEMU provides, which is also
//! checked against the addresses here.

use crate::{Board, DeviceTree, ExitMethod, GicLayout, MemoryKind, Pl011, PsciConduit, Region};

/// Start of RAM, where QEMU puts the device tree for an image that is not a Linux kernel.
pub const RAM_BASE: u64 = 0x4000_0000;

/// The `virt` machine as armstop uses it.
pub const BOARD: Board = Board {
    name: "qemu-virt",
    // From the device tree: QEMU numbers virt CPUs 0.. in Aff0, 8 per cluster (Aff1) on GICv2
    // and 16 on GICv3.
    cpus: &[],
    // GICv3's low redistributor region holds 123 frames; 64 leaves room and keeps the image's
    // stacks at 9 MiB. `ARMSTOP_MAX_CPUS` builds an image with room for more.
    max_cpus: 64,
    device_tree: DeviceTree::Required { fallback: Some(RAM_BASE) },
    memory: &[
        // GICD at 0x0800_0000, GICC (v2) 0x0801_0000, GICR (v3) 0x080a_0000 up to 0x0900_0000,
        // PL011 at 0x0900_0000.
        Region { name: "gic", base: 0x0800_0000, size: 0x0100_0000, kind: MemoryKind::Device },
        Region { name: "uart", base: 0x0900_0000, size: 0x1000, kind: MemoryKind::Device },
        // `-m 1G` and up.
        Region { name: "ram", base: RAM_BASE, size: 0x4000_0000, kind: MemoryKind::Normal },
    ],
    // SPI 1 (the virt machine's device tree: `interrupts = <0 1 4>`).
    uart: Pl011 { base: 0x0900_0000, clock_hz: Some(24_000_000), baud: 115_200, intid: Some(33) },
    gic: GicLayout::Probe { gicd: 0x0800_0000, gicc_v2: 0x0801_0000, gicr_v3: 0x080a_0000 },
    psci: PsciConduit::FromBootEl,
    own_psci: None,
    pm_watchdog: None,
    cpu_on_after_off_us: 0,
    gpio: None,
    exit: ExitMethod::Semihosting,
    // 2 MiB above the start of RAM: QEMU places its 1 MiB device tree at the start of RAM only
    // if it fits below the ELF's lowest address.
    load_address: 0x4020_0000,
};
