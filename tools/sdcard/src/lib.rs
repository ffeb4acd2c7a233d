//! Raspberry Pi 4 SD cards for armstop, built on the host from Debian's boot files.
//!
//! For each Pi 4 variant ([`card::VARIANTS`]: TF-A's BL31 as armstub, or armstop's own PSCI
//! provider behind the stock armstub) a card holds `kernel8.img` (armstop's raw image),
//! `config.txt` (generated from the board data, [`config`]), `start4.elf` and `fixup4.dat`
//! (Debian `raspi-firmware`), `bl31.bin` for the TF-A variant (Debian `arm-trusted-firmware`,
//! `rpi4/bl31.bin`, unmodified) and the packages' copyright files. [`card::build`] writes it
//! twice: as a directory, to copy onto an existing FAT32 boot partition, and as an image file
//! (MBR + one FAT32 partition, made with dosfstools and mtools, [`fat`]; nothing is mounted),
//! to write to a whole card.
//!
//! Invariant kept by the crate: a card is only ever left at its final path after it has been
//! read back (from the FAT image through mtools, or from the directory) and passed
//! [`check::files`], which checks it against the sources byte for byte and against the board
//! the image was built for, independently of how the card was made.
#![deny(unsafe_code)]

pub mod card;
pub mod check;
pub mod config;
pub mod fat;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use check::Problem;
use config::BoardMismatch;

/// Why a card could not be made or checked. Every variant's message says what to do about it.
#[derive(Debug)]
pub enum Error {
    /// Not one of [`card::VARIANTS`].
    UnknownVariant {
        /// What was asked for.
        given: String,
    },
    /// armstop's raw image for the variant has not been built.
    MissingFirmwareImage {
        /// The variant.
        variant: &'static str,
        /// Where the image should be.
        path: PathBuf,
    },
    /// One of Debian's boot files that `scripts/setup.sh` unpacks is not there.
    MissingBootFile {
        /// Where it should be.
        path: PathBuf,
    },
    /// A program cards are made or read with is not installed.
    MissingTool {
        /// The program.
        tool: &'static str,
        /// The Debian package it comes in.
        package: &'static str,
    },
    /// A program failed.
    ToolFailed {
        /// The command line.
        command: String,
        /// How it ended.
        status: String,
        /// What it said.
        stderr: String,
    },
    /// A file operation failed.
    Io {
        /// What was being done, to which path.
        what: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The variant's board data cannot be expressed as a Pi 4 `config.txt`.
    Board {
        /// The variant.
        variant: &'static str,
        /// What does not fit.
        mismatch: BoardMismatch,
    },
    /// A card, read back, failed the checker.
    Rejected {
        /// The directory or image checked.
        card: PathBuf,
        /// Everything wrong with it.
        problems: Vec<Problem>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownVariant { given } => {
                write!(f, "unknown variant {given:?}; the Pi 4 variants are:")?;
                for b in card::VARIANTS {
                    write!(f, "\n  {:<16} {}", b.name, card::describe(b))?;
                }
                Ok(())
            }
            Self::MissingFirmwareImage { variant, path } => write!(
                f,
                "no firmware image for {variant} at {}: run `just build` first",
                path.display()
            ),
            Self::MissingBootFile { path } => write!(
                f,
                "missing Raspberry Pi boot file {}: run ./bootstrap.sh (or scripts/setup.sh), \
                 which unpacks Debian's raspi-firmware and arm-trusted-firmware into \
                 target/pi-firmware/",
                path.display()
            ),
            Self::MissingTool { tool, package } => write!(
                f,
                "`{tool}` not found: {package} is not installed; run scripts/setup.sh (or \
                 ./bootstrap.sh), or `apt-get install {package}`"
            ),
            Self::ToolFailed { command, status, stderr } => {
                write!(f, "{command} failed ({status}): {stderr}")
            }
            Self::Io { what, source } => write!(f, "{what}: {source}"),
            Self::Board { variant, mismatch } => {
                write!(f, "board {variant} cannot boot from a Pi 4 card: {mismatch}")
            }
            Self::Rejected { card, problems } => {
                write!(f, "card {} rejected:", card.display())?;
                for p in problems {
                    write!(f, "\n  - {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for Error {}

/// A fresh directory under the system's temporary directory, removed with everything in it when
/// dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `armstop-sdcard-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> Result<TempDir, Error> {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("armstop-sdcard-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)
            .map_err(|source| Error::Io { what: format!("creating {}", p.display()), source })?;
        Ok(TempDir(p))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
