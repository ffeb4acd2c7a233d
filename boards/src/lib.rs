//! Board data for armstop.
//!
//! A board is described by *data*: where RAM and devices are, which MPIDR each logical CPU has,
//! which GIC and UART it uses, how PSCI is reached and how a test image reports its status. The
//! firmware reads one [`Board`] value and never branches on a board's name, so adding a board is
//! adding a value here (and, where a device really differs, a small driver impl in the firmware).
//!
//! Invariant kept here (checked by [`Board::validate`], on the host in this crate's tests and on
//! the target at boot): memory regions are page aligned and disjoint, every device the firmware
//! touches lies in a device region, MPIDRs are unique, and the boot CPU is logical CPU 0.
//!
//! Linux keeps no such table: it reads all of this from the device tree (armstop checks a
//! tree against a board with `armstop-devicetree`). The MPIDR table is Linux's
//! `cpu_logical_map` ([`Board::logical_id`] is `get_logical_index`).
//!
//! ```
//! use armstop_boards::{ALL, PsciConduit, by_name, raspi4};
//!
//! for board in ALL {
//!     board.validate().unwrap_or_else(|e| panic!("{}: {e}", board.name));
//! }
//! let (_, pi) = by_name("raspi4-tfa").unwrap();
//! assert_eq!(pi.psci, PsciConduit::Smc);
//! assert_eq!(pi.logical_id(0x8000_0003), Some(3)); // MPIDR_EL1, RES1 bit 31 ignored
//! assert_eq!(pi.pm_watchdog, Some(raspi4::PM_BASE));
//! assert!(pi.devices().any(|(name, _)| name == "UART"));
//!
//! // A board with a device outside its device regions does not validate.
//! let mut bad = *pi;
//! bad.uart.base = 0x1000;
//! assert!(bad.validate().is_err());
//! ```
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod qemu_virt;
pub mod raspi4;

/// Every board armstop knows, by [`Board::name`]. An image is built for one of them
/// (`ARMSTOP_BOARD`, see the firmware's build script).
pub const ALL: &[Board] = &[qemu_virt::BOARD, raspi4::TFA, raspi4::OWN_PSCI];

/// The board called `name`, and its index in [`ALL`].
pub fn by_name(name: &str) -> Option<(usize, &'static Board)> {
    ALL.iter().enumerate().find(|(_, b)| b.name == name)
}

/// Most CPUs any machine may have: what a CPU set can name (GICv3's limit under QEMU `virt`).
/// How many an *image* has room for is its board's [`Board::max_cpus`], or `ARMSTOP_MAX_CPUS`
/// at build time.
pub use armstop_cpuset::MAX_CPUS;

/// The smallest translation granule the firmware maps with (4 KiB).
pub const PAGE_SIZE: u64 = 4096;

/// How memory in a [`Region`] is mapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    /// Normal memory, inner and outer write-back cacheable, inner shareable.
    Normal,
    /// Device-nGnRE memory, never executable.
    Device,
}

/// A physical address range mapped one-to-one by the firmware.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// What the region is, for messages.
    pub name: &'static str,
    /// First byte.
    pub base: u64,
    /// Length in bytes.
    pub size: u64,
    /// How it is mapped.
    pub kind: MemoryKind,
}

impl Region {
    /// One past the last byte.
    pub const fn end(&self) -> u64 {
        self.base + self.size
    }

    /// Whether `[addr, addr + len)` lies inside this region.
    pub const fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base && addr + len <= self.end()
    }
}

/// The interrupt controller, and where its frames are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GicLayout {
    /// GICv2 (e.g. the Pi 4's GIC-400): distributor and memory-mapped CPU interface.
    V2 {
        /// Distributor base.
        gicd: u64,
        /// CPU interface base.
        gicc: u64,
    },
    /// GICv3: distributor and the first redistributor frame; CPU interface by system registers.
    V3 {
        /// Distributor base.
        gicd: u64,
        /// First redistributor frame.
        gicr: u64,
    },
    /// Either, told apart at boot by the distributor's `GICD_PIDR2.ArchRev` (QEMU `virt` places
    /// both versions' distributors at the same address, and the machine option picks one).
    Probe {
        /// Distributor base (either version).
        gicd: u64,
        /// CPU interface base, used if the distributor is a GICv2.
        gicc_v2: u64,
        /// First redistributor frame, used if the distributor is a GICv3.
        gicr_v3: u64,
    },
}

/// How the firmware reaches PSCI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciConduit {
    /// From the exception level the firmware was entered at: EL1 → HVC (the hypervisor, or
    /// QEMU's built-in PSCI, answers), EL2 → SMC (EL3 firmware answers).
    FromBootEl,
    /// Always HVC.
    Hvc,
    /// Always SMC.
    Smc,
}

/// Whether the board's boot path hands the firmware a flattened device tree, and what it is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceTree {
    /// None is expected: everything comes from the board data.
    None,
    /// One may come in `x0` (as Linux's boot protocol passes it). If it does, what it says about
    /// the CPUs and the GIC is checked against the board data, and a mismatch stops the boot;
    /// if not, the board data is used alone.
    Optional,
    /// The CPUs come from it (the board's [`Board::cpus`] table is empty), and its devices are
    /// checked against the board data. It is at the address in `x0` or, when `x0` holds none,
    /// at `fallback` (QEMU `virt` puts it at the start of RAM for an ELF, and passes no
    /// pointer). No device tree is a boot error.
    Required {
        /// Where to look when `x0` holds no device tree.
        fallback: Option<u64>,
    },
}

/// How a test image ends and hands its status to whoever started it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitMethod {
    /// Arm semihosting `SYS_EXIT_EXTENDED` (QEMU with `-semihosting`): the status becomes the
    /// emulator's exit code. Never on hardware: `hlt` traps there.
    Semihosting,
    /// Print the status, then PSCI SYSTEM_OFF.
    PsciSystemOff,
}

/// A PL011 UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pl011 {
    /// Register base.
    pub base: u64,
    /// UARTCLK in Hz; `None` when firmware already programmed the baud rate and it must be kept.
    pub clock_hz: Option<u32>,
    /// Line rate.
    pub baud: u32,
    /// Its interrupt's GIC INTID (an SPI), which the console waits on for input; `None`: the
    /// console polls (with a timer tick) instead.
    pub intid: Option<u32>,
}

/// Function of a BCM2711 GPIO pin (a `GPFSELn` field, 3 bits per pin). The encoding is the
/// hardware's (ALT4 and ALT5 are 0b011 and 0b010); the GPIO driver (`armstop-bcm2711`) uses
/// this type too, so board data and registers cannot disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PinFunction {
    /// Input.
    Input = 0b000,
    /// Output.
    Output = 0b001,
    /// Alternate function 0 (on the Pi 4, GPIO14/15 = PL011 UART0 TXD0/RXD0).
    Alt0 = 0b100,
    /// Alternate function 1.
    Alt1 = 0b101,
    /// Alternate function 2.
    Alt2 = 0b110,
    /// Alternate function 3.
    Alt3 = 0b111,
    /// Alternate function 4.
    Alt4 = 0b011,
    /// Alternate function 5 (on the Pi 4, GPIO14/15 = mini UART).
    Alt5 = 0b010,
}

impl PinFunction {
    /// The function a 3-bit `GPFSELn` field selects (bits above the field are ignored).
    pub const fn from_bits(bits: u32) -> Self {
        match bits & 0b111 {
            0b000 => Self::Input,
            0b001 => Self::Output,
            0b100 => Self::Alt0,
            0b101 => Self::Alt1,
            0b110 => Self::Alt2,
            0b111 => Self::Alt3,
            0b011 => Self::Alt4,
            _ => Self::Alt5,
        }
    }
}

/// A GPIO pin's pull resistor (a `GPIO_PUP_PDN_CNTRL_REGn` field, 2 bits per pin on the
/// BCM2711); shared with the GPIO driver like [`PinFunction`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pull {
    /// No pull resistor.
    None = 0b00,
    /// Pull-up.
    Up = 0b01,
    /// Pull-down.
    Down = 0b10,
}

impl Pull {
    /// The pull a 2-bit field selects; `None` (the `Option`) for the reserved value 0b11.
    pub const fn from_bits(bits: u32) -> Option<Self> {
        match bits & 0b11 {
            0b00 => Some(Self::None),
            0b01 => Some(Self::Up),
            0b10 => Some(Self::Down),
            _ => None,
        }
    }
}

/// How one GPIO pin is set up at boot, before the console is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinSetting {
    /// GPIO number.
    pub pin: u8,
    /// Function to select.
    pub function: PinFunction,
    /// Pull resistor.
    pub pull: Pull,
}

/// A BCM2711 GPIO block and what armstop does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gpio {
    /// Register base (`GPFSEL0`).
    pub base: u64,
    /// Pins set up at boot (the console's TX/RX).
    pub boot_pins: &'static [PinSetting],
    /// The activity LED's pin, driven high to light it, if the board has one.
    pub activity_led: Option<u8>,
}

/// armstop's own PSCI provider, for boards whose boot firmware leaves the secondary CPUs on spin
/// tables and offers no PSCI (the Pi's stock armstub). The boot CPU, still at EL2, releases every
/// secondary from its spin table into armstop's EL2 holding pen and answers PSCI calls made with
/// HVC from EL1. Its SYSTEM_OFF and SYSTEM_RESET use the board's [`Board::pm_watchdog`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnPsci {
    /// Spin-table slot of each logical CPU (the boot CPU's entry is not used): the address the
    /// boot firmware's pen polls for an entry point.
    pub spin_table: &'static [u64],
}

/// Everything the firmware needs to know about one board.
#[derive(Clone, Copy, Debug)]
pub struct Board {
    /// Short name, printed at boot and in test output.
    pub name: &'static str,
    /// MPIDR affinity value (Aff3..Aff0, i.e. `MPIDR_EL1 & 0xff_00ff_ffff`) of each logical CPU,
    /// boot CPU first. Logical CPU ids are indices into this table, never `Aff0`. Empty when
    /// the device tree gives the CPUs ([`DeviceTree::Required`]).
    pub cpus: &'static [u64],
    /// How many CPUs an image for this board has room for (its per-CPU stacks and tables);
    /// `ARMSTOP_MAX_CPUS` at build time overrides it. At least `cpus.len()`, at most
    /// [`MAX_CPUS`]. A machine with more CPUs than this is a boot error that says so.
    pub max_cpus: usize,
    /// Whether a device tree comes with the boot, and what it decides.
    pub device_tree: DeviceTree,
    /// Memory map: every region the firmware may touch.
    pub memory: &'static [Region],
    /// Console.
    pub uart: Pl011,
    /// Interrupt controller.
    pub gic: GicLayout,
    /// PSCI conduit.
    pub psci: PsciConduit,
    /// armstop's own PSCI provider at EL2, where the boot firmware has none (then `psci` is
    /// [`PsciConduit::Hvc`]).
    pub own_psci: Option<OwnPsci>,
    /// The BCM2711 power-management block (`PM_RSTC` at +0x1c, `PM_RSTS` at +0x20, `PM_WDOG`
    /// at +0x24), whose watchdog resets the SoC or halts it (the Pi's power-off), if the board
    /// has one.
    pub pm_watchdog: Option<u64>,
    /// How long to wait, after PSCI first reports a CPU off, before a CPU_ON of it: for PSCI
    /// firmware that reports a CPU off before it is ready to be turned on again (0: none).
    pub cpu_on_after_off_us: u32,
    /// The GPIO block (console pin routing, activity LED), where armstop must set it up.
    pub gpio: Option<Gpio>,
    /// How test images report their status.
    pub exit: ExitMethod,
    /// Where the image is linked and loaded (the linker script's start address).
    pub load_address: u64,
}

/// The affinity bits of MPIDR_EL1 (Aff3 in 39:32, Aff2..Aff0 in 23:0).
pub const MPIDR_AFFINITY_MASK: u64 = 0xff_00ff_ffff;

/// What is wrong with a [`Board`] description.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardError {
    /// A CPU table and device-tree policy that do not fit: no CPUs and no device tree to find
    /// them in, a table where the device tree gives the CPUs, or more than `max_cpus`.
    CpuCount(usize),
    /// `max_cpus` is 0 or above [`MAX_CPUS`].
    MaxCpus(usize),
    /// Two logical CPUs share an MPIDR, or one has bits outside the affinity fields.
    BadMpidr(u64),
    /// A region's base or size is not a multiple of [`PAGE_SIZE`], or it is empty.
    Misaligned(&'static str),
    /// Two regions overlap.
    Overlap(&'static str, &'static str),
    /// A device the firmware uses is not inside a device region.
    DeviceUnmapped(&'static str, u64),
    /// The board has no normal memory.
    NoRam,
    /// The load address is not page aligned or not in normal memory.
    LoadAddress(u64),
    /// The own PSCI provider is reached by HVC only, and needs one spin-table slot per CPU,
    /// each an aligned word in normal memory below the image.
    OwnPsci(&'static str),
    /// A GPIO pin number the block does not have (0..=57 on the BCM2711), or one set twice.
    BadPin(u8),
}

impl core::fmt::Display for BoardError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::CpuCount(n) => write!(
                f,
                "board lists {n} CPUs: a board needs 1..=max_cpus of them, or none and a \
                 required device tree"
            ),
            Self::MaxCpus(n) => write!(f, "max_cpus = {n}; 1..={MAX_CPUS} are supported"),
            Self::BadMpidr(m) => write!(f, "MPIDR {m:#x} is duplicated or has non-affinity bits"),
            Self::Misaligned(r) => write!(f, "region {r} is empty or not page aligned"),
            Self::Overlap(a, b) => write!(f, "regions {a} and {b} overlap"),
            Self::DeviceUnmapped(d, a) => write!(f, "{d} at {a:#x} is not in a device region"),
            Self::NoRam => write!(f, "board has no normal memory region"),
            Self::LoadAddress(a) => write!(f, "load address {a:#x} is not a page in RAM"),
            Self::OwnPsci(why) => write!(f, "own PSCI provider: {why}"),
            Self::BadPin(p) => write!(f, "GPIO {p} does not exist or is set up twice"),
        }
    }
}

impl Board {
    /// Logical CPU id of the CPU with this MPIDR, if the board has it.
    pub fn logical_id(&self, mpidr: u64) -> Option<usize> {
        let aff = mpidr & MPIDR_AFFINITY_MASK;
        self.cpus.iter().position(|&m| m == aff)
    }

    /// Device frames the firmware touches, with names, for validation and mapping checks.
    pub fn devices(&self) -> impl Iterator<Item = (&'static str, u64)> {
        let gic: [(&'static str, u64); 3] = match self.gic {
            GicLayout::V2 { gicd, gicc } => [("GICD", gicd), ("GICC", gicc), ("GICC", gicc)],
            GicLayout::V3 { gicd, gicr } => [("GICD", gicd), ("GICR", gicr), ("GICR", gicr)],
            GicLayout::Probe { gicd, gicc_v2, gicr_v3 } => {
                [("GICD", gicd), ("GICC", gicc_v2), ("GICR", gicr_v3)]
            }
        };
        let gpio = self.gpio.map(|g| ("GPIO", g.base));
        let pm = self.pm_watchdog.map(|base| ("PM", base));
        core::iter::once(("UART", self.uart.base)).chain(gic).chain(gpio).chain(pm)
    }

    /// Highest GPIO number of a BCM2711 GPIO block.
    pub const MAX_GPIO: u8 = 57;

    /// Checks the invariants in the crate docs.
    pub fn validate(&self) -> Result<(), BoardError> {
        let n = self.cpus.len();
        if self.max_cpus == 0 || self.max_cpus > MAX_CPUS {
            return Err(BoardError::MaxCpus(self.max_cpus));
        }
        let from_dt = matches!(self.device_tree, DeviceTree::Required { .. });
        if n > self.max_cpus || (n == 0) != from_dt {
            return Err(BoardError::CpuCount(n));
        }
        for (i, &m) in self.cpus.iter().enumerate() {
            if m & !MPIDR_AFFINITY_MASK != 0 || self.cpus[..i].contains(&m) {
                return Err(BoardError::BadMpidr(m));
            }
        }
        for (i, r) in self.memory.iter().enumerate() {
            if r.size == 0 || !r.base.is_multiple_of(PAGE_SIZE) || !r.size.is_multiple_of(PAGE_SIZE)
            {
                return Err(BoardError::Misaligned(r.name));
            }
            for o in &self.memory[..i] {
                if r.base < o.end() && o.base < r.end() {
                    return Err(BoardError::Overlap(o.name, r.name));
                }
            }
        }
        let in_ram = |a: u64| {
            self.memory.iter().any(|r| r.kind == MemoryKind::Normal && r.contains(a, PAGE_SIZE))
        };
        if !self.memory.iter().any(|r| r.kind == MemoryKind::Normal) {
            return Err(BoardError::NoRam);
        }
        if !self.load_address.is_multiple_of(PAGE_SIZE) || !in_ram(self.load_address) {
            return Err(BoardError::LoadAddress(self.load_address));
        }
        if let Some(p) = self.own_psci {
            if self.psci != PsciConduit::Hvc {
                return Err(BoardError::OwnPsci("it is reached over HVC: set psci to Hvc"));
            }
            if self.pm_watchdog.is_none() {
                return Err(BoardError::OwnPsci("SYSTEM_OFF and SYSTEM_RESET need a PM watchdog"));
            }
            if from_dt || p.spin_table.len() != n {
                return Err(BoardError::OwnPsci("one spin-table slot per CPU"));
            }
            let slot_ok = |a: u64| {
                a.is_multiple_of(8) && a < self.load_address && in_ram(a & !(PAGE_SIZE - 1))
            };
            if !p.spin_table.iter().all(|&a| slot_ok(a)) {
                return Err(BoardError::OwnPsci(
                    "spin-table slots must be aligned words in RAM below the image",
                ));
            }
        }
        if let Some(g) = self.gpio {
            let pins = g.boot_pins.iter().map(|p| p.pin).chain(g.activity_led);
            for (i, p) in pins.clone().enumerate() {
                if p > Self::MAX_GPIO || pins.clone().take(i).any(|q| q == p) {
                    return Err(BoardError::BadPin(p));
                }
            }
        }
        for (name, addr) in self.devices() {
            let mapped = self
                .memory
                .iter()
                .any(|r| r.kind == MemoryKind::Device && r.contains(addr, PAGE_SIZE));
            if !mapped {
                return Err(BoardError::DeviceUnmapped(name, addr));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM: Region =
        Region { name: "ram", base: 0x4000_0000, size: 0x4000_0000, kind: MemoryKind::Normal };
    const DEV: Region =
        Region { name: "dev", base: 0x0800_0000, size: 0x0200_0000, kind: MemoryKind::Device };

    fn board(cpus: &'static [u64], memory: &'static [Region]) -> Board {
        Board {
            name: "t",
            cpus,
            max_cpus: 8,
            device_tree: DeviceTree::None,
            memory,
            uart: Pl011 {
                base: 0x0900_0000,
                clock_hz: Some(24_000_000),
                baud: 115_200,
                intid: None,
            },
            gic: GicLayout::V2 { gicd: 0x0800_0000, gicc: 0x0801_0000 },
            psci: PsciConduit::Hvc,
            own_psci: None,
            pm_watchdog: None,
            cpu_on_after_off_us: 0,
            gpio: None,
            exit: ExitMethod::Semihosting,
            load_address: 0x4008_0000,
        }
    }

    #[test]
    fn builtin_boards_are_valid() {
        for b in ALL {
            assert_eq!(b.validate(), Ok(()), "{}", b.name);
        }
    }

    #[test]
    fn boards_are_found_by_unique_names() {
        for (i, b) in ALL.iter().enumerate() {
            assert_eq!(by_name(b.name).map(|(j, _)| j), Some(i), "{}", b.name);
        }
        assert!(by_name("raspi5").is_none());
        let pi = by_name("raspi4-tfa").unwrap().1;
        assert_eq!(pi.load_address, 0x8_0000);
        assert_eq!(pi.logical_id(0x8000_0003), Some(3), "Pi MPIDRs carry bit 31");
        assert!(matches!(pi.gic, GicLayout::V2 { gicd: 0xff84_1000, gicc: 0xff84_2000 }));
        let own = by_name("raspi4-own-psci").unwrap().1;
        assert_eq!(own.psci, PsciConduit::Hvc);
        assert_eq!(own.own_psci.unwrap().spin_table, &[0xd8, 0xe0, 0xe8, 0xf0]);
        assert!(pi.own_psci.is_none(), "TF-A provides PSCI");
        assert_eq!(pi.gpio.unwrap().activity_led, Some(42));
    }

    #[test]
    fn rejects_bad_own_psci_and_pins() {
        const LOW: Region = Region { name: "low", base: 0, size: 0x1000, kind: MemoryKind::Normal };
        const PM: OwnPsci = OwnPsci { spin_table: &[0xd8, 0xe0] };
        let mut b = board(&[0, 1], &[LOW, RAM, DEV]);
        b.own_psci = Some(PM);
        assert!(matches!(b.validate(), Err(BoardError::OwnPsci(_))), "no watchdog for OFF/RESET");
        b.pm_watchdog = Some(0x0800_0000);
        assert_eq!(b.validate(), Ok(()));
        b.psci = PsciConduit::Smc;
        assert!(matches!(b.validate(), Err(BoardError::OwnPsci(_))), "SMC with own provider");
        b.psci = PsciConduit::Hvc;
        b.own_psci = Some(OwnPsci { spin_table: &[0xd8] });
        assert!(matches!(b.validate(), Err(BoardError::OwnPsci(_))), "a slot per CPU");
        b.own_psci = Some(OwnPsci { spin_table: &[0xd8, 0xe4] });
        assert!(matches!(b.validate(), Err(BoardError::OwnPsci(_))), "unaligned slot");
        b.own_psci = Some(OwnPsci { spin_table: &[0xd8, 0x4008_0000] });
        assert!(matches!(b.validate(), Err(BoardError::OwnPsci(_))), "slot in the image");
        b.own_psci = Some(PM);
        b.pm_watchdog = Some(0x2000_0000);
        assert_eq!(b.validate(), Err(BoardError::DeviceUnmapped("PM", 0x2000_0000)));
        b.own_psci = None;
        b.pm_watchdog = None;
        const fn pin(pin: u8) -> PinSetting {
            PinSetting { pin, function: PinFunction::Alt0, pull: Pull::None }
        }
        const PINS: &[PinSetting] = &[pin(14), pin(15)];
        let pins = PINS;
        b.gpio = Some(Gpio { base: 0x0800_0000, boot_pins: pins, activity_led: Some(15) });
        assert_eq!(b.validate(), Err(BoardError::BadPin(15)), "LED on a console pin");
        b.gpio = Some(Gpio { base: 0x0800_0000, boot_pins: &[], activity_led: Some(58) });
        assert_eq!(b.validate(), Err(BoardError::BadPin(58)));
        b.gpio = Some(Gpio { base: 0x0800_0000, boot_pins: pins, activity_led: Some(42) });
        assert_eq!(b.validate(), Ok(()));
    }

    #[test]
    fn logical_ids_come_from_the_table_not_aff0() {
        let b = board(&[0x100, 0x0, 0x1_0000_0001], &[RAM, DEV]);
        assert_eq!(b.logical_id(0x8000_0100), Some(0), "MPIDR bit 31 (RES1) is ignored");
        assert_eq!(b.logical_id(0x0), Some(1));
        assert_eq!(b.logical_id(0x1_0000_0001), Some(2), "Aff3 counts");
        assert_eq!(b.logical_id(0x1), None);
    }

    #[test]
    fn rejects_bad_cpu_tables() {
        assert_eq!(board(&[], &[RAM, DEV]).validate(), Err(BoardError::CpuCount(0)));
        assert_eq!(board(&[0; 9], &[RAM, DEV]).validate(), Err(BoardError::CpuCount(9)));
        let mut b = board(&[], &[RAM, DEV]);
        b.device_tree = DeviceTree::Required { fallback: None };
        assert_eq!(b.validate(), Ok(()), "the device tree gives the CPUs");
        b.cpus = &[0, 1];
        assert_eq!(b.validate(), Err(BoardError::CpuCount(2)), "a table and a required DT");
        b.cpus = &[];
        b.max_cpus = 0;
        assert_eq!(b.validate(), Err(BoardError::MaxCpus(0)));
        b.max_cpus = MAX_CPUS + 1;
        assert_eq!(b.validate(), Err(BoardError::MaxCpus(MAX_CPUS + 1)));
        assert_eq!(board(&[1, 2, 1], &[RAM, DEV]).validate(), Err(BoardError::BadMpidr(1)));
        assert_eq!(
            board(&[0x8000_0000], &[RAM, DEV]).validate(),
            Err(BoardError::BadMpidr(0x8000_0000))
        );
    }

    #[test]
    fn rejects_bad_memory_maps() {
        const ODD: Region =
            Region { name: "odd", base: 0x1000_0800, size: 0x1000, kind: MemoryKind::Normal };
        const OVER: Region =
            Region { name: "over", base: 0x7fff_f000, size: 0x2000, kind: MemoryKind::Normal };
        const NODEV: Region =
            Region { name: "dev", base: 0x0800_0000, size: 0x1000, kind: MemoryKind::Device };
        assert_eq!(board(&[0], &[RAM, DEV, ODD]).validate(), Err(BoardError::Misaligned("odd")));
        assert_eq!(
            board(&[0], &[RAM, DEV, OVER]).validate(),
            Err(BoardError::Overlap("ram", "over"))
        );
        assert_eq!(board(&[0], &[DEV]).validate(), Err(BoardError::NoRam));
        let mut b = board(&[0], &[RAM, DEV]);
        b.load_address = 0x0900_0000;
        assert_eq!(b.validate(), Err(BoardError::LoadAddress(0x0900_0000)), "device, not RAM");
        b.load_address = 0x4008_0800;
        assert_eq!(b.validate(), Err(BoardError::LoadAddress(0x4008_0800)), "unaligned");
        assert_eq!(
            board(&[0], &[RAM, NODEV]).validate(),
            Err(BoardError::DeviceUnmapped("UART", 0x0900_0000))
        );
    }
}
