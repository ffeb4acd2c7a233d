//! The card checker: does a card, as read back, hold exactly what the Pi needs to boot the
//! firmware built for its board?
//!
//! Invariant: a card passes only if (1) every file the Pi needs is there, whatever the plan says
//! (`kernel8.img`, `config.txt`, `start4.elf`, `fixup4.dat`, and `bl31.bin` exactly when the
//! board has no PSCI provider of its own); (2) every planned file is byte-identical to its
//! source and nothing else is on the card; (3) `config.txt` agrees with the board
//! ([`config::check`]); (4) `kernel8.img` is a raw image built for this board; (5) the armstub is
//! the real, unpatched rpi4 BL31, never the emulation-only copy; and (6) for an image, the
//! partition table and boot sector describe one FAT32 partition.

use std::fmt;
use std::path::Path;

use crate::Error;
use crate::card::{CONFIG, FIXUP4, Plan, START4, VARIANTS};
use crate::config::{self, ARMSTUB, ConfigProblem, KERNEL};
use crate::fat::{self, Layout, Tools};

/// `msr RMR_EL3, x0`: TF-A's warm-reset request at the end of CPU_OFF. The emulation-only BL31
/// has it replaced by a branch; the real one must keep it, or a core turned off never returns.
pub const MSR_RMR_EL3_X0: u32 = 0xd51e_c040;
/// The magic word an armstub carries at 0xf0; the firmware clears it and fills in the kernel's
/// address (and TF-A enters the kernel there) only when it finds it.
pub const STUB_MAGIC: u32 = 0x5afe_570b;
/// Offset of [`STUB_MAGIC`] in the armstub.
pub const STUB_MAGIC_OFFSET: usize = 0xf0;

/// Something wrong with a card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A file the Pi needs is not on the card.
    Missing {
        /// Its name.
        name: String,
        /// What it is for.
        why: String,
    },
    /// A file differs from the one it was copied from.
    Differs {
        /// Its name on the card.
        name: String,
        /// Its source.
        from: String,
    },
    /// A file (or directory) on the card that the card should not have.
    Unexpected {
        /// Its name.
        name: String,
    },
    /// `config.txt` disagrees with the board.
    Config(ConfigProblem),
    /// `kernel8.img` is not a raw image for this board.
    Kernel(String),
    /// The armstub is not the real rpi4 BL31.
    Armstub(String),
    /// The image is not one FAT32 partition behind an MBR.
    Layout(String),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { name, why } => write!(f, "{name} is missing ({why})"),
            Self::Differs { name, from } => {
                write!(f, "{name} is not byte-identical to its source {from}")
            }
            Self::Unexpected { name } => write!(f, "{name} should not be on this card"),
            Self::Config(p) => write!(f, "{CONFIG}: {p}"),
            Self::Kernel(why) => write!(f, "{KERNEL}: {why}"),
            Self::Armstub(why) => write!(f, "{ARMSTUB}: {why}"),
            Self::Layout(why) => write!(f, "image: {why}"),
        }
    }
}

fn words(bytes: &[u8]) -> impl Iterator<Item = (usize, u32)> + '_ {
    bytes
        .chunks_exact(4)
        .enumerate()
        .map(|(i, w)| (i * 4, u32::from_le_bytes([w[0], w[1], w[2], w[3]])))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// What is wrong with a `kernel8.img` for `plan.board`.
fn kernel_problems(plan: &Plan, bytes: &[u8]) -> Vec<Problem> {
    let name = plan.board.name;
    let mut p = Vec::new();
    if bytes.starts_with(b"\x7fELF") {
        p.push("is an ELF file; the firmware loads it as raw bytes (use the .bin image)".into());
    }
    if !contains(bytes, name.as_bytes()) {
        p.push(format!("does not name board {name}: not an armstop image built for it"));
    }
    for other in VARIANTS.iter().map(|b| b.name) {
        if !name.contains(other) && !other.contains(name) && contains(bytes, other.as_bytes()) {
            p.push(format!("names board {other}: built for another variant"));
        }
    }
    p.into_iter().map(Problem::Kernel).collect()
}

/// What is wrong with an armstub that should be the real rpi4 BL31.
fn armstub_problems(plan: &Plan, bytes: &[u8]) -> Vec<Problem> {
    let mut p = Vec::new();
    let word = |off: usize| words(bytes).find(|&(o, _)| o == off).map(|(_, w)| w);
    if word(0).is_none_or(|w| w >> 26 != 0b000101) {
        p.push(
            "does not start with a branch: not an armstub (the cores start at its byte 0)".into(),
        );
    }
    if word(STUB_MAGIC_OFFSET) != Some(STUB_MAGIC) {
        p.push(format!(
            "has no armstub magic {STUB_MAGIC:#x} at {STUB_MAGIC_OFFSET:#x}: the firmware would \
             not give it the kernel's address"
        ));
    }
    if !words(bytes).any(|(_, w)| w == MSR_RMR_EL3_X0) {
        p.push(
            "has no `msr RMR_EL3, x0`: it is patched (like the emulation-only bl31-qemu.bin), and \
             a core turned off with CPU_OFF would never come back on a real Pi"
                .into(),
        );
    }
    if plan.emulation_bl31.as_deref() == Some(bytes) {
        p.push("is bl31-qemu.bin, patched for QEMU only; a card needs the real bl31.bin".into());
    }
    p.into_iter().map(Problem::Armstub).collect()
}

/// Checks the files of a card (name and contents, as read back) against `plan`.
pub fn files(plan: &Plan, card: &[(String, Vec<u8>)]) -> Vec<Problem> {
    let get = |name: &str| card.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, b)| b);
    let mut problems = Vec::new();

    // (1) What the Pi needs, whatever the plan says.
    let mut needed: Vec<(&'static str, &'static str)> = vec![
        (KERNEL, "the image the firmware starts: armstop"),
        (CONFIG, "how the firmware starts the ARM cores"),
        (START4, "the Pi 4's VideoCore firmware; without it the green LED flashes 4 times"),
        (FIXUP4, "start4.elf's memory-split fixup; it must match start4.elf"),
    ];
    if plan.board.own_psci.is_none() {
        needed.push((ARMSTUB, "TF-A's BL31: this variant's PSCI provider"));
    }
    for &(name, why) in &needed {
        if get(name).is_none() {
            problems.push(Problem::Missing { name: name.into(), why: why.into() });
        }
    }

    // (2) Byte-identical to the sources, and nothing else.
    for f in &plan.files {
        match get(&f.name) {
            Some(b) if *b != f.bytes => {
                problems.push(Problem::Differs { name: f.name.clone(), from: f.from.clone() })
            }
            None if !needed.iter().any(|(n, _)| f.name.eq_ignore_ascii_case(n)) => {
                let why = format!("to be copied from {}", f.from);
                problems.push(Problem::Missing { name: f.name.clone(), why })
            }
            _ => {}
        }
    }
    for (name, _) in card {
        if plan.file(name).is_none() {
            problems.push(Problem::Unexpected { name: name.clone() });
        }
    }

    // (3)-(5) What the firmware assumes about the card.
    if let Some(text) = get(CONFIG) {
        let text = String::from_utf8_lossy(text);
        problems.extend(config::check(&plan.board, &text).into_iter().map(Problem::Config));
    }
    if let Some(k) = get(KERNEL) {
        problems.extend(kernel_problems(plan, k));
    }
    if plan.board.own_psci.is_none()
        && let Some(stub) = get(ARMSTUB)
    {
        problems.extend(armstub_problems(plan, stub));
    }
    problems
}

/// Reads the card image at `path` back (partition table, boot sector, every file through
/// mtools) and checks it against `plan`: its partition, if that was readable, and every problem.
pub fn image(
    tools: &Tools,
    path: &Path,
    plan: &Plan,
) -> Result<(Option<Layout>, Vec<Problem>), Error> {
    let layout = match fat::layout(path) {
        Ok(l) => l,
        Err(why) => return Ok((None, vec![Problem::Layout(why)])),
    };
    let card = fat::read(tools, path)?;
    Ok((Some(layout), files(plan, &card)))
}
