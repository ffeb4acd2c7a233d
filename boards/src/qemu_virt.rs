//! QEMU `virt` with `-cpu cortex-a72 -smp 4` (see ../shared/PLATFORM.md).
//!
//! One image serves `gic-version=2` and `gic-version=3`, entered at EL1 (PSCI over HVC) or, with
//! `virtualization=on`, at EL2 (PSCI over SMC): the GIC version is probed and the conduit follows
//! the boot exception level.

use crate::{Board, ExitMethod, GicLayout, MemoryKind, Pl011, PsciConduit, Region};

/// The `virt` machine as armstop uses it.
pub const BOARD: Board = Board {
    name: "qemu-virt",
    // QEMU numbers virt CPUs 0..n in Aff0 (8 per cluster in Aff1 from the 9th on).
    cpus: &[0, 1, 2, 3],
    memory: &[
        // GICD at 0x0800_0000, GICC (v2) 0x0801_0000, GICR (v3) 0x080a_0000 up to 0x0900_0000,
        // PL011 at 0x0900_0000.
        Region { name: "gic", base: 0x0800_0000, size: 0x0100_0000, kind: MemoryKind::Device },
        Region { name: "uart", base: 0x0900_0000, size: 0x1000, kind: MemoryKind::Device },
        // `-m 1G` and up; the image is linked at 0x4008_0000.
        Region { name: "ram", base: 0x4000_0000, size: 0x4000_0000, kind: MemoryKind::Normal },
    ],
    uart: Pl011 { base: 0x0900_0000, clock_hz: Some(24_000_000), baud: 115_200 },
    gic: GicLayout::Probe { gicd: 0x0800_0000, gicc_v2: 0x0801_0000, gicr_v3: 0x080a_0000 },
    psci: PsciConduit::FromBootEl,
    own_psci: None,
    pm_watchdog: None,
    cpu_on_after_off_us: 0,
    gpio: None,
    exit: ExitMethod::Semihosting,
    // Above the DTB QEMU places at the start of RAM.
    load_address: 0x4008_0000,
};
