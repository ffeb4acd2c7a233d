//! What goes on a card for each Pi 4 variant, where each file comes from, and how the card is
//! written: a directory (for an existing FAT32 boot partition) and an image file (for `dd`).
//!
//! Invariant: nothing is left at the final paths unless it has been read back and passed
//! [`crate::check`]: both outputs are built under temporary names, checked against the
//! [`Plan`] (the source files' bytes and the board), and only then renamed into place, so a
//! failed or interrupted run never leaves a card that looks finished.

use std::fs;
use std::path::{Path, PathBuf};

use armstop_boards::{Board, raspi4};

use crate::config::{self, ARMSTUB, KERNEL};
use crate::fat::{self, Layout, Tools};
use crate::{Error, check};

/// The boards a card can be made for: the Pi 4 variants, which differ in where PSCI comes from.
pub const VARIANTS: &[Board] = &[raspi4::TFA, raspi4::OWN_PSCI];

/// The config file the firmware reads.
pub const CONFIG: &str = "config.txt";
/// The VideoCore firmware for the Pi 4.
pub const START4: &str = "start4.elf";
/// Its memory-split fixup, which must match it.
pub const FIXUP4: &str = "fixup4.dat";
/// Debian's copyright file for `start4.elf`/`fixup4.dat` (their licence asks for it to travel
/// with them).
pub const VC_LICENCE: &str = "LICENCE.raspi-firmware";
/// Debian's copyright file for TF-A (BSD-3-Clause: binary copies carry the notice).
pub const TFA_LICENCE: &str = "LICENCE.arm-trusted-firmware";
/// The emulation-only BL31 `scripts/setup.sh` makes next to the real one; never on a card.
pub const EMULATION_BL31: &str = "bl31-qemu.bin";

/// What a variant is for, in a few words.
pub fn describe(board: &Board) -> &'static str {
    match board.own_psci {
        None => "PSCI 1.1 from TF-A's BL31 (armstub), over SMC",
        Some(_) => "stock armstub's spin tables; armstop's own PSCI provider, over HVC",
    }
}

/// The variant called `name`.
pub fn variant(name: &str) -> Result<&'static Board, Error> {
    VARIANTS
        .iter()
        .find(|b| b.name == name)
        .ok_or_else(|| Error::UnknownVariant { given: name.into() })
}

/// Where a card's files come from.
#[derive(Clone, Debug)]
pub struct Sources {
    /// armstop's raw image, to become `kernel8.img`.
    pub kernel: PathBuf,
    /// `scripts/setup.sh`'s unpacked Debian boot files (`bl31.bin`, `boot/start4.elf`, ...).
    pub pi_firmware: PathBuf,
}

impl Sources {
    /// The usual places in a checkout at `root`: `target/images/<variant>/<image>.bin` and
    /// `target/pi-firmware/`.
    pub fn in_repo(root: &Path, board: &Board, image: &str) -> Sources {
        Sources {
            kernel: root.join("target/images").join(board.name).join(format!("{image}.bin")),
            pi_firmware: root.join("target/pi-firmware"),
        }
    }

    fn boot(&self, name: &str) -> PathBuf {
        self.pi_firmware.join("boot").join(name)
    }
}

/// One file of a card.
#[derive(Clone, Debug)]
pub struct CardFile {
    /// Its name at the root of the card.
    pub name: String,
    /// Its exact contents.
    pub bytes: Vec<u8>,
    /// Where it came from, for messages (a path, or "generated from board data").
    pub from: String,
}

/// Everything one card must hold, read from the sources: the card is correct if it holds these
/// files, byte for byte, and nothing else.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The board the image was built for.
    pub board: Board,
    /// The files, in the order they are written.
    pub files: Vec<CardFile>,
    /// The emulation-only BL31, if `scripts/setup.sh` made one, to make sure it is not used.
    pub emulation_bl31: Option<Vec<u8>>,
}

impl Plan {
    /// The planned file called `name` (the FAT is case-insensitive, and so is this).
    pub fn file(&self, name: &str) -> Option<&CardFile> {
        self.files.iter().find(|f| f.name.eq_ignore_ascii_case(name))
    }
}

fn read(path: &Path, missing: impl FnOnce() -> Error) -> Result<CardFile, Error> {
    match fs::read(path) {
        Ok(bytes) => Ok(CardFile {
            name: path.file_name().unwrap_or_default().to_string_lossy().into_owned(),
            bytes,
            from: path.display().to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
        Err(e) => Err(Error::Io { what: format!("reading {}", path.display()), source: e }),
    }
}

/// Reads everything `board`'s card needs from `src`; a missing input is an error that says
/// what makes it.
pub fn plan(board: &Board, src: &Sources) -> Result<Plan, Error> {
    let name = board.name;
    let mut kernel = read(&src.kernel, || Error::MissingFirmwareImage {
        variant: name,
        path: src.kernel.clone(),
    })?;
    kernel.name = KERNEL.into();
    let boot_file = |p: PathBuf| read(&p, || Error::MissingBootFile { path: p.clone() });
    let optional = |p: PathBuf| read(&p, || Error::MissingBootFile { path: p.clone() }).ok();
    let versions = fs::read_to_string(src.pi_firmware.join("VERSIONS")).ok();
    let provenance = versions.map(|v| {
        v.lines()
            .filter_map(|l| {
                let l = l.strip_prefix("Package: ")?;
                let (pkg, ver) = l.split_once(" Version: ")?;
                // TF-A's package only where its BL31 is on the card.
                let used = board.own_psci.is_none() || pkg != "arm-trusted-firmware";
                used.then(|| format!("  {pkg} {ver}"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    let config = config::generate(board, provenance.as_deref())
        .map_err(|mismatch| Error::Board { variant: name, mismatch })?;
    let mut files = vec![
        kernel,
        CardFile {
            name: CONFIG.into(),
            bytes: config.into_bytes(),
            from: "generated from board data".into(),
        },
        boot_file(src.boot(START4))?,
        boot_file(src.boot(FIXUP4))?,
    ];
    if board.own_psci.is_none() {
        files.push(boot_file(src.pi_firmware.join(ARMSTUB))?);
        files.extend(optional(src.pi_firmware.join(TFA_LICENCE)));
    }
    files.extend(optional(src.boot(VC_LICENCE)));
    let emulation_bl31 = fs::read(src.pi_firmware.join(EMULATION_BL31)).ok();
    Ok(Plan { board: *board, files, emulation_bl31 })
}

/// What [`build`] wrote.
#[derive(Clone, Debug)]
pub struct Built {
    /// The card's files, for copying to an existing boot partition.
    pub dir: PathBuf,
    /// The card image, for writing to a whole card.
    pub image: PathBuf,
    /// The image's partition.
    pub layout: Layout,
}

/// Writes `plan`'s card under `out`: the directory `<stem>/` and the image `armstop-<stem>.img`,
/// each read back and checked before it replaces an earlier one.
pub fn build(plan: &Plan, tools: &Tools, out: &Path, stem: &str) -> Result<Built, Error> {
    let io = |what: &str, p: &Path| {
        let what = format!("{what} {}", p.display());
        move |source| Error::Io { what, source }
    };
    fs::create_dir_all(out).map_err(io("creating", out))?;
    let staging = out.join(format!(".{stem}.new"));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io("removing", &staging))?;
    }
    fs::create_dir(&staging).map_err(io("creating", &staging))?;
    let mut paths = Vec::new();
    for f in &plan.files {
        let p = staging.join(&f.name);
        fs::write(&p, &f.bytes).map_err(io("writing", &p))?;
        paths.push(p);
    }
    let problems = check::files(plan, &read_dir(&staging)?);
    if !problems.is_empty() {
        return Err(Error::Rejected { card: staging, problems });
    }

    let image_new = out.join(format!("armstop-{stem}.img.new"));
    fat::make(tools, &image_new, &paths)?;
    let (layout, problems) = check::image(tools, &image_new, plan)?;
    let Some(layout) = layout.filter(|_| problems.is_empty()) else {
        return Err(Error::Rejected { card: image_new, problems });
    };

    let dir = out.join(stem);
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(io("removing", &dir))?;
    }
    fs::rename(&staging, &dir).map_err(io("renaming", &staging))?;
    let image = out.join(format!("armstop-{stem}.img"));
    fs::rename(&image_new, &image).map_err(io("renaming", &image_new))?;
    Ok(Built { dir, image, layout })
}

/// Every file in `dir` with its contents (a card directory, read back).
pub fn read_dir(dir: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let io = |p: &Path| {
        let what = format!("reading {}", p.display());
        move |source| Error::Io { what, source }
    };
    let mut files = Vec::new();
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        let mut name = e.file_name().to_string_lossy().into_owned();
        let bytes = if e.path().is_dir() {
            name.push('/');
            Vec::new()
        } else {
            fs::read(e.path()).map_err(io(&e.path()))?
        };
        files.push((name, bytes));
    }
    files.sort();
    Ok(files)
}
