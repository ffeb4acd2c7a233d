//! Raspberry Pi 4 (BCM2711) in low-peripheral mode, as the Pi firmware starts it with
//! `arm_64bit=1` and `enable_gic=1` (see ../shared/PLATFORM.md): four Cortex-A72 cores, GIC-400,
//! the PL011 UART0 on GPIO14/15, the activity LED on GPIO 42.
//!
//! Two variants differ only in where PSCI comes from:
//! - [`TFA`]: Trusted Firmware-A's BL31 as armstub answers PSCI 1.1 over SMC; it owns
//!   0–0x7FFFF, which armstop never writes.
//! - [`OWN_PSCI`]: the stock armstub (or QEMU `raspi4b -kernel`) leaves the secondaries on spin
//!   tables at 0xd8–0xf0 and no PSCI; armstop's own provider at EL2 answers over HVC.

use crate::{
    Board, DeviceTree, ExitMethod, GicLayout, Gpio, MemoryKind, OwnPsci, PinFunction, PinSetting,
    Pl011, PsciConduit, Pull, Region,
};

const MEMORY: &[Region] = &[
    // Spin tables (0xd8..0xf8) or TF-A's BL31 and mailboxes (up to 0x7ffff): mapped so the
    // spin tables can be read; the firmware never places anything here.
    Region { name: "low", base: 0x0, size: 0x8_0000, kind: MemoryKind::Normal },
    // The ARM's share of the first GiB with the firmware's default GPU split; every Pi 4 has
    // at least this much.
    Region { name: "ram", base: 0x8_0000, size: 0x3b40_0000 - 0x8_0000, kind: MemoryKind::Normal },
    // PM watchdog (0xfe10_0000), GPIO (0xfe20_0000), PL011 UART0 (0xfe20_1000).
    Region { name: "peripherals", base: 0xfe00_0000, size: 0x0180_0000, kind: MemoryKind::Device },
    // ARM local peripherals and the GIC-400 (0xff84_1000).
    Region { name: "arm-local", base: 0xff80_0000, size: 0x0080_0000, kind: MemoryKind::Device },
];

/// GPIO14/15 to the PL011 (ALT0) with the pulls off: the firmware's default with Bluetooth on
/// gives them to the mini UART (ALT5), so armstop routes them itself rather than rely on a
/// device-tree overlay being applied.
const GPIO: Gpio = Gpio {
    base: 0xfe20_0000,
    boot_pins: &[
        PinSetting { pin: 14, function: PinFunction::Alt0, pull: Pull::None },
        PinSetting { pin: 15, function: PinFunction::Alt0, pull: Pull::None },
    ],
    activity_led: Some(42),
};

/// BCM2711 power management (watchdog) block.
pub const PM_BASE: u64 = 0xfe10_0000;

/// TF-A 2.8's Raspberry Pi port reports a CPU off (`AFFINITY_INFO`) before the CPU has been
/// through its warm reset into TF-A's pen, and the pen then clears the CPU's mailbox entry: a
/// CPU_ON in that window is accepted, its GO erased, and the CPU never starts
/// (`plat/rpi/common/aarch64/plat_helpers.S`, `plat_wait_for_warm_boot`). The window is
/// microseconds on the board; armstop waits this long after the first OFF before a CPU_ON.
/// (Under QEMU the BL31 is patched to close it; see scripts/setup.sh.)
pub const TFA_OFF_SETTLE_US: u32 = 1000;

const fn pi4(
    name: &'static str,
    psci: PsciConduit,
    own_psci: Option<OwnPsci>,
    cpu_on_after_off_us: u32,
) -> Board {
    Board {
        name,
        // MPIDR 0x8000_0000..3: Aff0 = core, bit 31 (RES1) is not an affinity bit.
        cpus: &[0, 1, 2, 3],
        max_cpus: 4,
        // The Pi firmware passes one to kernel8.img; QEMU's raspi4b only with -dtb.
        device_tree: DeviceTree::Optional,
        memory: MEMORY,
        // UART0 from the 48 MHz UART clock the firmware sets up for it.
        // UART0 is GIC SPI 121 (VideoCore IRQ 57), on the real BCM2711 and in QEMU's.
        uart: Pl011 {
            base: 0xfe20_1000,
            clock_hz: Some(48_000_000),
            baud: 115_200,
            intid: Some(32 + 121),
        },
        gic: GicLayout::V2 { gicd: 0xff84_1000, gicc: 0xff84_2000 },
        psci,
        own_psci,
        pm_watchdog: Some(PM_BASE),
        cpu_on_after_off_us,
        gpio: Some(GPIO),
        exit: ExitMethod::PsciSystemOff,
        // Where the firmware loads kernel8.img with `kernel_address=0x80000`, and where TF-A
        // enters its payload.
        load_address: 0x8_0000,
    }
}

/// PSCI from TF-A's BL31 (armstub), over SMC.
pub const TFA: Board = pi4("raspi4-tfa", PsciConduit::Smc, None, TFA_OFF_SETTLE_US);

/// PSCI from armstop's own EL2 provider, over HVC; the secondaries are released from the spin
/// tables the stock armstub (and QEMU's `-kernel` boot) leaves them polling.
pub const OWN_PSCI: Board = pi4(
    "raspi4-own-psci",
    PsciConduit::Hvc,
    Some(OwnPsci { spin_table: &[0xd8, 0xe0, 0xe8, 0xf0] }),
    // The provider's pen reads only the power state, which CPU_OFF sets under its lock.
    0,
);
