//! `config.txt` for an armstop card: generated from the board data, and checked back.
//!
//! The Pi's VideoCore firmware (`start4.elf`) reads `config.txt` to decide how to start the ARM
//! cores: in which state, which file to load, where, with which armstub, and how the UART is set
//! up. armstop's firmware assumes answers to all of these (it is linked at the board's
//! `load_address`, expects PSCI from TF-A or provides it itself, programs the PL011 from a known
//! clock, maps a fixed amount of RAM), so a card that says otherwise boots into silence.
//!
//! Invariant kept here: every setting whose value the firmware also assumes is derived from the
//! same [`Board`] value the image was built for ([`settings`]), and [`check`] verifies a
//! `config.txt` read back from a card against the board's fields directly (not through
//! [`settings`]) for the assumptions that matter most: 64-bit entry, `kernel_address ==
//! load_address`, an armstub if and only if the board has no PSCI provider of its own, and the
//! PL011 UART0 on GPIO14/15 as the console. Everything else must match [`settings`] exactly;
//! settings the generator does not write, conditional sections and `include` are rejected.

use std::fmt;

use armstop_boards::{Board, GicLayout, MemoryKind, PinFunction};

/// The file the firmware loads and starts (`kernel=`); armstop's raw image goes here.
pub const KERNEL: &str = "kernel8.img";
/// The armstub for boards without a PSCI provider of their own: TF-A's BL31 (`armstub=`).
pub const ARMSTUB: &str = "bl31.bin";
/// The BCM2711's PL011 UART0 in low-peripheral mode, the only UART `disable-bt` gives GPIO14/15.
pub const PL011_UART0: u64 = 0xfe20_1000;
/// GPIO of UART0's TXD0 (ALT0), header pin 8.
pub const TXD0: u8 = 14;
/// GPIO of UART0's RXD0 (ALT0), header pin 10.
pub const RXD0: u8 = 15;
/// The GIC-400's distributor on the BCM2711 (`enable_gic=1` routes interrupts through it).
pub const GIC400_GICD: u64 = 0xff84_1000;

const MIB: u64 = 1 << 20;
/// The VideoCore takes its share (`gpu_mem`) from the top of the first GiB.
const FIRST_GIB: u64 = 1 << 30;

/// One `key=value` line the generator writes, with the reason for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    /// The firmware's name for it.
    pub key: &'static str,
    /// Its value, as written.
    pub value: String,
    /// Why armstop needs it, in a few words (for error messages).
    pub reason: &'static str,
    /// The full justification, written above the line as a comment.
    pub comment: String,
}

/// Why a board cannot be described by a Pi 4 `config.txt` (the card would disagree with the
/// firmware whatever it said).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoardMismatch {
    /// The console is not the PL011 UART0, the UART `dtoverlay=disable-bt` routes to GPIO14/15.
    NotPl011Uart0 {
        /// The board's UART base.
        base: u64,
    },
    /// The console UART has no known clock, so `init_uart_clock` could not match it.
    NoUartClock,
    /// The board does not route GPIO14/15 to ALT0 (PL011 TXD0/RXD0) at boot.
    PinsNotRouted,
    /// The interrupt controller is not the GIC-400 `enable_gic=1` selects.
    NotGic400,
    /// The RAM region the image is loaded into does not end a whole number of MiB below 1 GiB,
    /// so no `gpu_mem` split gives the ARM exactly that memory.
    RamSplit {
        /// End of the board's RAM region holding the load address (0 if there is none).
        end: u64,
    },
}

impl fmt::Display for BoardMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPl011Uart0 { base } => write!(
                f,
                "its console UART is at {base:#x}, not the PL011 UART0 at {PL011_UART0:#x} that \
                 dtoverlay=disable-bt routes to GPIO{TXD0}/{RXD0}"
            ),
            Self::NoUartClock => {
                write!(f, "its console UART has no clock_hz, so init_uart_clock cannot match it")
            }
            Self::PinsNotRouted => write!(
                f,
                "its gpio.boot_pins do not route GPIO{TXD0}/{RXD0} to ALT0 (PL011 TXD0/RXD0)"
            ),
            Self::NotGic400 => {
                write!(f, "its GIC is not the GIC-400 (GICv2, GICD {GIC400_GICD:#x})")
            }
            Self::RamSplit { end } => write!(
                f,
                "its RAM region holding the load address ends at {end:#x}, not a whole number of \
                 MiB below 1 GiB, so no gpu_mem gives the ARM exactly that memory"
            ),
        }
    }
}

/// `gpu_mem` (MiB) that leaves the ARM exactly the board's RAM region holding the image.
fn gpu_mem_mib(board: &Board) -> Result<u64, BoardMismatch> {
    let ram = board
        .memory
        .iter()
        .find(|r| r.kind == MemoryKind::Normal && r.contains(board.load_address, 1));
    let end = ram.map_or(0, |r| r.end());
    if end == 0 || end >= FIRST_GIB || !(FIRST_GIB - end).is_multiple_of(MIB) {
        return Err(BoardMismatch::RamSplit { end });
    }
    Ok((FIRST_GIB - end) / MIB)
}

/// Whether the board's console is the PL011 UART0 on GPIO14/15, as `disable-bt` sets it up.
fn console_routed(board: &Board) -> Result<(), BoardMismatch> {
    if board.uart.base != PL011_UART0 {
        return Err(BoardMismatch::NotPl011Uart0 { base: board.uart.base });
    }
    let pins = board.gpio.map_or(&[][..], |g| g.boot_pins);
    let alt0 = |n: u8| pins.iter().any(|p| p.pin == n && p.function == PinFunction::Alt0);
    if !alt0(TXD0) || !alt0(RXD0) {
        return Err(BoardMismatch::PinsNotRouted);
    }
    Ok(())
}

/// Every line of `board`'s `config.txt`, in order, each with its justification.
pub fn settings(board: &Board) -> Result<Vec<Setting>, BoardMismatch> {
    console_routed(board)?;
    let Some(uart_clock) = board.uart.clock_hz else {
        return Err(BoardMismatch::NoUartClock);
    };
    let GicLayout::V2 { gicd: GIC400_GICD, gicc } = board.gic else {
        return Err(BoardMismatch::NotGic400);
    };
    let gpu_mem = gpu_mem_mib(board)?;
    let ram_end = FIRST_GIB - gpu_mem * MIB;
    let load = board.load_address;
    let set = |key, value: String, reason, comment: String| Setting { key, value, reason, comment };

    let mut s = vec![
        set(
            "arm_64bit",
            "1".into(),
            "armstop is an AArch64 image",
            "Start the ARM cores in AArch64 and treat the kernel as a 64-bit image: armstop is\n\
             AArch64 only."
                .into(),
        ),
        set(
            "kernel",
            KERNEL.into(),
            "the file holding armstop's raw image",
            format!(
                "The file to load and start: armstop's raw image (target/images/{}/*.bin,\n\
                 not the ELF). Named so that no other name the firmware would try is used.",
                board.name
            ),
        ),
        set(
            "kernel_address",
            format!("{load:#x}"),
            "armstop is linked and entered at the board's load_address",
            format!(
                "Where armstop is linked (board load_address, linker/armstop.ld). Current\n\
                 firmware loads 64-bit kernels at 0x200000 unless told otherwise, and the armstub\n\
                 enters the kernel at the address the firmware reports: it must be {load:#x}."
            ),
        ),
    ];
    if board.own_psci.is_none() {
        s.push(set(
            "armstub",
            ARMSTUB.into(),
            "the board has no PSCI provider of its own: TF-A's BL31 provides PSCI",
            format!(
                "TF-A's BL31 (Debian arm-trusted-firmware, rpi4/bl31.bin, unmodified) instead of\n\
                 the firmware's built-in armstub: loaded at 0, it keeps 0-{:#x} (its mailboxes at\n\
                 0x100) to itself, answers PSCI 1.1 over SMC and enters armstop at EL2.",
                load - 1
            ),
        ));
    }
    s.extend([
        set(
            "enable_gic",
            "1".into(),
            "armstop drives the GIC-400 (SGIs between cores)",
            format!(
                "Route interrupts through the GIC-400 (GICD {GIC400_GICD:#x}, GICC\n\
                 {gicc:#x}), which armstop drives (SGIs between cores, the stopper's\n\
                 kicks); otherwise they go to the legacy interrupt controller. The Pi 4's\n\
                 default, set so it cannot be lost."
            ),
        ),
        set(
            "enable_uart",
            "1".into(),
            "the console UART must be enabled on GPIO14/15",
            format!(
                "Enable the primary UART on GPIO{TXD0}/{RXD0} with a stable clock. Without it the\n\
                 firmware leaves the pins alone and uart_2ndstage has nowhere to write."
            ),
        ),
        set(
            "dtoverlay",
            "disable-bt".into(),
            "the PL011 UART0 (armstop's console) must be on GPIO14/15, not on Bluetooth",
            format!(
                "Give the PL011 UART0 ({PL011_UART0:#x}, armstop's console, board uart.base) to\n\
                 GPIO{TXD0}/{RXD0} instead of Bluetooth. Debian's raspi-firmware ships no\n\
                 overlays/ directory, so on this card the firmware has no overlay file to\n\
                 apply and GPIO{TXD0}/{RXD0} may stay on the mini UART (ALT5, the Pi 4's\n\
                 default), where the firmware's log and TF-A's go. armstop routes\n\
                 GPIO{TXD0}/{RXD0} to the PL011 (ALT0, pulls off: board gpio.boot_pins) itself\n\
                 at boot, so the same two pins give a console either way. Kept for a card that\n\
                 carries overlays/disable-bt.dtbo."
            ),
        ),
        set(
            "init_uart_clock",
            uart_clock.to_string(),
            "armstop computes the PL011's baud divisors from this clock (board uart.clock_hz)",
            format!(
                "The PL011's reference clock, from which armstop computes its baud divisors\n\
                 (board uart.clock_hz). {} MHz is the firmware's default; set so the two cannot\n\
                 drift apart.",
                uart_clock / 1_000_000
            ),
        ),
        set(
            "init_uart_baud",
            board.uart.baud.to_string(),
            "the firmware's log and armstop's console share one line rate (board uart.baud)",
            "Line rate of the firmware's own UART log, the same as armstop's (board uart.baud),\n\
             so one terminal setting reads both."
                .into(),
        ),
        set(
            "uart_2ndstage",
            "1".into(),
            "the firmware's log tells a firmware problem from an armstop problem",
            "The firmware (start4.elf) logs its progress on the UART: its log without an armstop\n\
             banner means the firmware ran and the problem is later (kernel8.img, config.txt);\n\
             no output at all points at the wiring, the card or the EEPROM bootloader."
                .into(),
        ),
        set(
            "disable_commandline_tags",
            "1".into(),
            "nothing may be written at 0x100 (the armstub's page); armstop reads no ATAGs",
            "Keep the firmware from writing ATAGs at 0x100 before starting the cores: that page\n\
             belongs to the armstub (TF-A's mailboxes, the stock stub's spin tables just below),\n\
             and armstop reads neither ATAGs nor a device tree (Debian's firmware package has no\n\
             .dtb files to load)."
                .into(),
        ),
        set(
            "gpu_mem",
            gpu_mem.to_string(),
            "the ARM must get exactly the RAM armstop maps (the board's RAM region)",
            format!(
                "The VideoCore's share, taken from the top of the first GiB: the ARM gets\n\
                 0-{:#x}, exactly the board's RAM region armstop maps as normal memory (it ends\n\
                 at {ram_end:#x}). {gpu_mem} MiB is the Pi 4 default; set so a larger GPU share\n\
                 cannot take memory armstop uses.",
                ram_end - 1
            ),
        ),
    ]);
    Ok(s)
}

/// Appends `text` to `out` as `#` comment lines.
fn comment(out: &mut String, text: &str) {
    for line in text.lines() {
        out.push_str(if line.is_empty() { "#" } else { "# " });
        out.push_str(line);
        out.push('\n');
    }
}

/// The whole `config.txt` for `board`: a header, then each setting under its justification.
/// `provenance` (Debian package versions of the boot files) goes into the header if known.
pub fn generate(board: &Board, provenance: Option<&str>) -> Result<String, BoardMismatch> {
    let settings = settings(board)?;
    let psci = match board.own_psci {
        None => "PSCI from TF-A's BL31 over SMC",
        Some(_) => "the stock armstub's spin tables; PSCI from armstop itself, over HVC",
    };
    let mut out = String::new();
    comment(
        &mut out,
        &format!(
            "config.txt for armstop {} on {}:\n{psci}.\n\
             Generated by armstop-sdcard from the board data (boards/src/raspi4.rs);\n\
             `just sdcard` rewrites it, and its checker rejects a card whose settings\n\
             disagree with the firmware.",
            env!("CARGO_PKG_VERSION"),
            board.name
        ),
    );
    if let Some(p) = provenance.map(str::trim_end).filter(|p| !p.trim().is_empty()) {
        comment(&mut out, &format!("Boot files from Debian:\n{p}"));
    }
    for s in &settings {
        out.push('\n');
        comment(&mut out, &s.comment);
        out.push_str(&format!("{}={}\n", s.key, s.value));
        if let (Some(own), "kernel_address") = (board.own_psci, s.key) {
            let slots = own.spin_table.iter().map(|a| format!("{a:#x}")).collect::<Vec<_>>();
            out.push('\n');
            comment(
                &mut out,
                &format!(
                    "No armstub: the firmware's built-in one enters armstop at EL2 with the other\n\
                     cores polling its spin tables ({}; board own_psci.spin_table), from\n\
                     which armstop's own PSCI provider releases them; it answers PSCI over HVC.\n\
                     With armstub={ARMSTUB} the cores would wait in TF-A's pen instead.",
                    slots[1..].join(", ")
                ),
            );
        }
    }
    Ok(out)
}

/// One `key=value` line of a `config.txt`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key, as written.
    pub key: String,
    /// The value, trimmed.
    pub value: String,
    /// 1-based line number.
    pub line: usize,
}

/// What is wrong with a card's `config.txt`, for the firmware built for its board.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigProblem {
    /// A line that is neither a comment nor `key=value`.
    Syntax {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A conditional section (`[pi4]`, `[gpio4=1]`, ...) or `include`: settings that might not
    /// apply, or come from elsewhere.
    Conditional {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
    /// A key set twice (the firmware would take one of them silently).
    Duplicate {
        /// 1-based line number of the second one.
        line: usize,
        /// The key.
        key: String,
    },
    /// A setting the firmware needs is absent.
    Missing {
        /// The key.
        key: &'static str,
        /// The value it must have.
        want: String,
        /// Why.
        reason: &'static str,
    },
    /// A setting has the wrong value.
    Wrong {
        /// The key.
        key: &'static str,
        /// The value on the card.
        found: String,
        /// The value it must have.
        want: String,
        /// Why.
        reason: &'static str,
    },
    /// A setting that must not be there for this board.
    Forbidden {
        /// The key.
        key: &'static str,
        /// Its value on the card.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A setting the generator never writes (it could change what the firmware assumes).
    Unexpected {
        /// 1-based line number.
        line: usize,
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// The board itself cannot be described by a Pi 4 `config.txt`.
    Board(BoardMismatch),
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Syntax { line, text } => write!(f, "line {line}: not key=value: {text:?}"),
            Self::Conditional { line, text } => write!(
                f,
                "line {line}: {text:?}: conditional sections and include are not allowed (every \
                 setting must apply to every Pi 4 and be on this card)"
            ),
            Self::Duplicate { line, key } => write!(f, "line {line}: {key} is set twice"),
            Self::Missing { key, want, reason } => {
                write!(f, "{key}={want} is missing ({reason})")
            }
            Self::Wrong { key, found, want, reason } => {
                write!(f, "{key}={found}, but it must be {want} ({reason})")
            }
            Self::Forbidden { key, value, reason } => {
                write!(f, "{key}={value} must not be set ({reason})")
            }
            Self::Unexpected { line, key, value } => write!(
                f,
                "line {line}: {key}={value} is not a setting armstop's card makes (it could change \
                 what the firmware assumes)"
            ),
            Self::Board(m) => write!(f, "the board cannot boot from a Pi 4 card: {m}"),
        }
    }
}

/// Keys that may appear more than once (each line adds one).
const MULTI: &[&str] = &["dtoverlay", "dtparam"];

/// Splits `text` into `key=value` entries; reports lines that are not.
pub fn parse(text: &str) -> (Vec<Entry>, Vec<ConfigProblem>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let (line, t) = (i + 1, raw.trim());
        if t.is_empty() || t.starts_with('#') || t.eq_ignore_ascii_case("[all]") {
            continue;
        }
        if t.starts_with('[') || t.starts_with("include") {
            problems.push(ConfigProblem::Conditional { line, text: t.into() });
            continue;
        }
        let Some((key, value)) = t.split_once('=') else {
            problems.push(ConfigProblem::Syntax { line, text: t.into() });
            continue;
        };
        let (key, value) = (key.trim(), value.trim());
        if !MULTI.contains(&key) && entries.iter().any(|e| e.key == key) {
            problems.push(ConfigProblem::Duplicate { line, key: key.into() });
            continue;
        }
        entries.push(Entry { key: key.into(), value: value.into(), line });
    }
    (entries, problems)
}

/// A `config.txt` integer: decimal or `0x` hexadecimal.
pub fn parse_int(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Whether two values are the same setting (numerically, where both are numbers).
fn same(a: &str, b: &str) -> bool {
    match (parse_int(a), parse_int(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// Checks a card's `config.txt` against what the firmware built for `board` assumes; empty if
/// it agrees.
pub fn check(board: &Board, text: &str) -> Vec<ConfigProblem> {
    let (entries, mut problems) = parse(text);
    let expected = match settings(board) {
        Ok(s) => s,
        Err(m) => {
            problems.push(ConfigProblem::Board(m));
            return problems;
        }
    };
    let get = |key: &str| entries.iter().find(|e| e.key == key);
    let mut need =
        |key: &'static str, want: String, ok: &dyn Fn(&str) -> bool, reason| match get(key) {
            None => problems.push(ConfigProblem::Missing { key, want, reason }),
            Some(e) if !ok(&e.value) => {
                problems.push(ConfigProblem::Wrong { key, found: e.value.clone(), want, reason })
            }
            Some(_) => {}
        };

    // What the firmware assumes, straight from the board (not through `settings`).
    need("arm_64bit", "1".into(), &|v| v == "1", "armstop is an AArch64 image");
    need("kernel", KERNEL.into(), &|v| v == KERNEL, "the file holding armstop's raw image");
    need(
        "kernel_address",
        format!("{:#x}", board.load_address),
        &|v| parse_int(v) == Some(board.load_address),
        "armstop is linked and entered at the board's load_address",
    );
    need("enable_uart", "1".into(), &|v| v == "1", "the console UART must be enabled");
    let overlays: Vec<&Entry> = entries.iter().filter(|e| e.key == "dtoverlay").collect();
    if !overlays.iter().any(|e| e.value == "disable-bt") {
        problems.push(ConfigProblem::Missing {
            key: "dtoverlay",
            want: "disable-bt".into(),
            reason: "the PL011 UART0 (armstop's console) must be on GPIO14/15, not on Bluetooth",
        });
    }
    match (board.own_psci, get("armstub")) {
        (None, None) => problems.push(ConfigProblem::Missing {
            key: "armstub",
            want: ARMSTUB.into(),
            reason: "the board has no PSCI provider of its own: TF-A's BL31 provides PSCI",
        }),
        (None, Some(e)) if e.value != ARMSTUB => problems.push(ConfigProblem::Wrong {
            key: "armstub",
            found: e.value.clone(),
            want: ARMSTUB.into(),
            reason: "the board has no PSCI provider of its own: TF-A's BL31 provides PSCI",
        }),
        (Some(_), Some(e)) => problems.push(ConfigProblem::Forbidden {
            key: "armstub",
            value: e.value.clone(),
            reason: "armstop provides PSCI itself and releases the cores from the stock \
                     armstub's spin tables",
        }),
        _ => {}
    }

    // Everything else the generator writes, with its value; and nothing it does not write.
    const DIRECT: &[&str] =
        &["arm_64bit", "kernel", "kernel_address", "enable_uart", "dtoverlay", "armstub"];
    for s in expected.iter().filter(|s| !DIRECT.contains(&s.key)) {
        match get(s.key) {
            None => problems.push(ConfigProblem::Missing {
                key: s.key,
                want: s.value.clone(),
                reason: s.reason,
            }),
            Some(e) if !same(&e.value, &s.value) => problems.push(ConfigProblem::Wrong {
                key: s.key,
                found: e.value.clone(),
                want: s.value.clone(),
                reason: s.reason,
            }),
            Some(_) => {}
        }
    }
    for e in &entries {
        let known =
            expected.iter().any(|s| s.key == e.key && (s.key != "dtoverlay" || s.value == e.value))
                || (e.key == "armstub" && board.own_psci.is_some());
        if !known {
            problems.push(ConfigProblem::Unexpected {
                line: e.line,
                key: e.key.clone(),
                value: e.value.clone(),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use armstop_boards::{Pl011, raspi4};

    fn keys(problems: &[ConfigProblem]) -> Vec<String> {
        problems
            .iter()
            .map(|p| match p {
                ConfigProblem::Missing { key, .. }
                | ConfigProblem::Wrong { key, .. }
                | ConfigProblem::Forbidden { key, .. } => (*key).to_string(),
                ConfigProblem::Unexpected { key, .. } | ConfigProblem::Duplicate { key, .. } => {
                    key.clone()
                }
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn generated_config_agrees_with_its_board() {
        for b in [&raspi4::TFA, &raspi4::OWN_PSCI] {
            let text = generate(b, Some("Package: x Version: 1")).unwrap();
            assert_eq!(check(b, &text), vec![], "{}:\n{text}", b.name);
            let (entries, problems) = parse(&text);
            assert!(problems.is_empty());
            let value = |k: &str| entries.iter().find(|e| e.key == k).map(|e| e.value.as_str());
            assert_eq!(value("arm_64bit"), Some("1"));
            assert_eq!(value("kernel"), Some("kernel8.img"));
            assert_eq!(value("kernel_address"), Some("0x80000"));
            assert_eq!(value("enable_uart"), Some("1"));
            assert_eq!(value("enable_gic"), Some("1"));
            assert_eq!(value("dtoverlay"), Some("disable-bt"));
            assert_eq!(value("init_uart_clock"), Some("48000000"));
            assert_eq!(value("init_uart_baud"), Some("115200"));
            assert_eq!(value("gpu_mem"), Some("76"), "RAM ends at 0x3b400000");
            let stub = value("armstub");
            assert_eq!(stub.is_some(), b.own_psci.is_none(), "{}: armstub iff no own PSCI", b.name);
            assert!(text.contains("Package: x Version: 1"));
        }
    }

    #[test]
    fn every_setting_is_justified_by_a_comment_above_it() {
        for b in [&raspi4::TFA, &raspi4::OWN_PSCI] {
            let text = generate(b, None).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, l) in lines.iter().enumerate() {
                if !l.starts_with('#') && l.contains('=') {
                    assert!(
                        i > 0 && lines[i - 1].starts_with("# "),
                        "{}: {l} has no comment",
                        b.name
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_values_are_caught_each_with_its_key() {
        let b = &raspi4::TFA;
        let good = generate(b, None).unwrap();
        let edit = |from: &str, to: &str| {
            assert!(good.contains(from), "{from}");
            check(b, &good.replace(from, to))
        };
        assert_eq!(
            keys(&edit("kernel_address=0x80000", "kernel_address=0x200000")),
            ["kernel_address"]
        );
        assert_eq!(keys(&edit("kernel_address=0x80000\n", "")), ["kernel_address"]);
        assert_eq!(
            keys(&edit("kernel_address=0x80000", "kernel_address=524288")),
            Vec::<String>::new()
        );
        assert_eq!(keys(&edit("arm_64bit=1", "arm_64bit=0")), ["arm_64bit"]);
        assert_eq!(keys(&edit("enable_uart=1", "enable_uart=0")), ["enable_uart"]);
        assert_eq!(
            keys(&edit("dtoverlay=disable-bt", "dtoverlay=miniuart-bt")),
            ["dtoverlay", "dtoverlay"]
        );
        assert_eq!(keys(&edit("armstub=bl31.bin\n", "")), ["armstub"]);
        assert_eq!(keys(&edit("armstub=bl31.bin", "armstub=bl31-qemu.bin")), ["armstub"]);
        assert_eq!(keys(&edit("gpu_mem=76", "gpu_mem=256")), ["gpu_mem"]);
        assert_eq!(
            keys(&edit("init_uart_clock=48000000", "init_uart_clock=3000000")),
            ["init_uart_clock"]
        );
        assert_eq!(keys(&check(b, &format!("{good}arm_peri_high=1\n"))), ["arm_peri_high"]);
        assert_eq!(keys(&check(b, &format!("{good}enable_gic=1\n"))), ["enable_gic"], "duplicate");
        let p = check(b, &format!("{good}[pi4]\n"));
        assert!(matches!(p[..], [ConfigProblem::Conditional { .. }]), "{p:?}");
        let p = check(b, &format!("{good}include extra.txt\n"));
        assert!(matches!(p[..], [ConfigProblem::Conditional { .. }]), "{p:?}");
        let p = check(b, &format!("{good}just some words\n"));
        assert!(matches!(p[..], [ConfigProblem::Syntax { .. }]), "{p:?}");
    }

    #[test]
    fn armstub_only_where_the_board_has_no_psci_provider() {
        let own = &raspi4::OWN_PSCI;
        let text = generate(own, None).unwrap();
        assert!(!text.contains("\narmstub="));
        let p = check(own, &format!("{text}armstub=bl31.bin\n"));
        assert!(matches!(p[..], [ConfigProblem::Forbidden { key: "armstub", .. }]), "{p:?}");
        // The TF-A card's config on the own-PSCI board, and the other way round.
        let tfa = generate(&raspi4::TFA, None).unwrap();
        assert_eq!(keys(&check(own, &tfa)), ["armstub"]);
        assert_eq!(keys(&check(&raspi4::TFA, &text)), ["armstub"]);
    }

    #[test]
    fn boards_a_card_cannot_describe_are_refused() {
        let mini = Board { uart: Pl011 { base: 0xfe21_5040, ..raspi4::TFA.uart }, ..raspi4::TFA };
        assert_eq!(generate(&mini, None), Err(BoardMismatch::NotPl011Uart0 { base: 0xfe21_5040 }));
        let p = check(&mini, "arm_64bit=1\n");
        assert!(matches!(p[..], [ConfigProblem::Board(_)]), "{p:?}");
        let nopins = Board { gpio: None, ..raspi4::TFA };
        assert_eq!(settings(&nopins), Err(BoardMismatch::PinsNotRouted));
        let noclock = Board { uart: Pl011 { clock_hz: None, ..raspi4::TFA.uart }, ..raspi4::TFA };
        assert_eq!(settings(&noclock), Err(BoardMismatch::NoUartClock));
        let virt = armstop_boards::qemu_virt::BOARD;
        assert!(settings(&virt).is_err());
    }

    #[test]
    fn integers_are_decimal_or_hex() {
        assert_eq!(parse_int("0x80000"), Some(0x80000));
        assert_eq!(parse_int("524288"), Some(0x80000));
        assert_eq!(parse_int("0x"), None);
        assert_eq!(parse_int("80000h"), None);
    }
}
