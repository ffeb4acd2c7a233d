//! Card images without mounting anything: an MBR with one FAT32 partition, formatted by
//! `mkfs.fat` (dosfstools) at an offset inside the image file, filled and read back with mtools.
//!
//! Layout, as every Pi 4 EEPROM bootloader reads it (an MBR, not GPT, with a FAT32 LBA partition,
//! type 0x0c): partition 1 from sector [`PART_START`] (4 MiB, where Raspberry Pi OS images put
//! it, so erase-block aligned) for at least [`MIN_PART_BYTES`], nothing else.
//!
//! Invariant: everything that reads a card goes through [`layout`] (the MBR and the FAT32 boot
//! sector, checked) and [`read`] (file names from `mdir`, contents from `mtype`), never through
//! the files the card was made from, so a check of what was read is a check of the image itself.

use std::fmt;
use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;

/// Bytes per sector (the only size the Pi and mtools agree on for SD cards).
pub const SECTOR: u64 = 512;
/// First sector of the FAT32 partition (4 MiB).
pub const PART_START: u64 = 8192;
/// Smallest partition made (256 MiB, like Raspberry Pi OS's boot partition; far above FAT32's
/// minimum cluster count with 512-byte clusters).
pub const MIN_PART_BYTES: u64 = 256 << 20;
/// MBR partition type: FAT32 with LBA addressing.
pub const FAT32_LBA: u8 = 0x0c;
/// Volume label of the boot partition.
pub const LABEL: &str = "ARMSTOP";
/// Fixed MBR disk signature and FAT volume id ("ARMS"), so rebuilt images differ only in content.
const DISK_ID: u32 = 0x534d_5241;

/// The external programs cards are made and read with.
#[derive(Clone, Debug)]
pub struct Tools {
    /// mtools `mcopy` (files into the image).
    pub mcopy: PathBuf,
    /// mtools `mdir` (listing).
    pub mdir: PathBuf,
    /// mtools `mtype` (file contents out of the image).
    pub mtype: PathBuf,
    /// mtools `mdel` (used by tests to damage cards).
    pub mdel: PathBuf,
    /// dosfstools `mkfs.fat`.
    pub mkfs_fat: PathBuf,
}

impl Tools {
    /// Finds the tools on `PATH`, plus `/usr/sbin` and `/sbin` (where `mkfs.fat` lives and a
    /// non-root `PATH` often does not look).
    pub fn find() -> Result<Tools, Error> {
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
        Self::find_in(&dirs)
    }

    /// Finds the tools in `dirs` only.
    pub fn find_in(dirs: &[PathBuf]) -> Result<Tools, Error> {
        let find = |tool: &'static str, package: &'static str| {
            dirs.iter()
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
                .ok_or(Error::MissingTool { tool, package })
        };
        Ok(Tools {
            mcopy: find("mcopy", "mtools")?,
            mdir: find("mdir", "mtools")?,
            mtype: find("mtype", "mtools")?,
            mdel: find("mdel", "mtools")?,
            mkfs_fat: find("mkfs.fat", "dosfstools")?,
        })
    }

    /// An mtools command on the partition inside `image`, isolated from the user's mtools
    /// configuration.
    fn mtool(&self, tool: &Path, image: &Path) -> Command {
        let mut c = Command::new(tool);
        c.env("MTOOLSRC", "/dev/null").env("MTOOLS_SKIP_CHECK", "1");
        c.arg("-i").arg(drive(image));
        c
    }
}

/// mtools' name for the partition inside `image` (`file@@byte-offset`).
fn drive(image: &Path) -> std::ffi::OsString {
    let mut s = image.as_os_str().to_owned();
    s.push(format!("@@{}", PART_START * SECTOR));
    s
}

/// Runs `cmd`; its standard output, or an error naming the command and quoting its stderr.
fn run(cmd: &mut Command) -> Result<Vec<u8>, Error> {
    let line = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| Error::Io { what: format!("running {line}"), source: e })?;
    if !out.status.success() {
        return Err(Error::ToolFailed {
            command: line,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

fn io(what: impl fmt::Display, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let what = format!("{what} {}", path.display());
    move |source| Error::Io { what, source }
}

/// The partition-table sector: one FAT32 LBA partition of `sectors` sectors at [`PART_START`].
pub fn mbr(sectors: u64) -> [u8; 512] {
    let mut m = [0u8; 512];
    m[440..444].copy_from_slice(&DISK_ID.to_le_bytes());
    let e = &mut m[446..462];
    e[0] = 0x00; // not "active": the Pi does not look at it
    e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]); // CHS unused: LBA only
    e[4] = FAT32_LBA;
    e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
    e[8..12].copy_from_slice(&(PART_START as u32).to_le_bytes());
    e[12..16].copy_from_slice(&(sectors as u32).to_le_bytes());
    m[510] = 0x55;
    m[511] = 0xaa;
    m
}

/// Makes `image` (replacing it): MBR, FAT32 partition, then every file in `files` (paths on the
/// host) copied to the partition's root under its own file name.
pub fn make(tools: &Tools, image: &Path, files: &[PathBuf]) -> Result<(), Error> {
    let mut content = 0;
    for f in files {
        content += fs::metadata(f).map_err(io("reading", f))?.len();
    }
    // Room for the files twice over, rounded to MiB, and never below the minimum.
    let part_bytes = (2 * content).div_ceil(1 << 20).max(MIN_PART_BYTES >> 20) << 20;
    let sectors = part_bytes / SECTOR;
    let _ = fs::remove_file(image);
    let f = fs::File::create(image).map_err(io("creating", image))?;
    f.set_len((PART_START + sectors) * SECTOR).map_err(io("sizing", image))?;
    drop(f);
    run(Command::new(&tools.mkfs_fat)
        .args(["-F", "32", "-n", LABEL, "--mbr=n"])
        .arg(format!("-i{DISK_ID:08x}"))
        .arg(format!("-h{PART_START}"))
        .arg(format!("--offset={PART_START}"))
        .arg(image)
        .arg((part_bytes / 1024).to_string()))?;
    // The partition table last: mkfs.fat writes only from its offset, but nothing it does can
    // then leave sector 0 other than this.
    let mut f = fs::OpenOptions::new().write(true).open(image).map_err(io("opening", image))?;
    f.write_all(&mbr(sectors)).map_err(io("writing the MBR of", image))?;
    drop(f);
    if !files.is_empty() {
        let mut c = tools.mtool(&tools.mcopy, image);
        c.arg("-Do").args(files).arg("::/");
        run(&mut c)?;
    }
    Ok(())
}

/// Replaces (or adds) `name` at the root of the card in `image` with `bytes` (used to test the
/// checker on damaged cards).
pub fn put(tools: &Tools, image: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let dir = crate::TempDir::new("put")?;
    let src = dir.path().join(name);
    fs::write(&src, bytes).map_err(io("writing", &src))?;
    let mut c = tools.mtool(&tools.mcopy, image);
    c.arg("-Do").arg(&src).arg(format!("::/{name}"));
    run(&mut c).map(drop)
}

/// Deletes `name` from the root of the card in `image` (used to test the checker).
pub fn delete(tools: &Tools, image: &Path, name: &str) -> Result<(), Error> {
    let mut c = tools.mtool(&tools.mdel, image);
    c.arg(format!("::/{name}"));
    run(&mut c).map(drop)
}

/// Every entry at the root of the card in `image` with its contents, as mtools reads them back.
/// Directories are listed with a trailing `/` and empty contents.
pub fn read(tools: &Tools, image: &Path) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let mut c = tools.mtool(&tools.mdir, image);
    c.args(["-b", "-a", "::/"]);
    let listing = String::from_utf8_lossy(&run(&mut c)?).into_owned();
    let mut files = Vec::new();
    for line in listing.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let name = line.strip_prefix("::/").unwrap_or(line).to_string();
        if name.ends_with('/') {
            files.push((name, Vec::new()));
            continue;
        }
        let mut c = tools.mtool(&tools.mtype, image);
        c.arg(format!("::/{name}"));
        let bytes = run(&mut c)?;
        files.push((name, bytes));
    }
    Ok(files)
}

/// The partition an image holds, as its MBR and boot sector describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// First sector of partition 1.
    pub start: u64,
    /// Its length in sectors.
    pub sectors: u64,
}

/// Reads and checks an image's MBR and the boot sector of its first partition: one FAT32 LBA
/// partition at [`PART_START`], formatted FAT32 with 512-byte sectors. The error says what is
/// wrong.
pub fn layout(image: &Path) -> Result<Layout, String> {
    let mut f = fs::File::open(image).map_err(|e| format!("cannot open: {e}"))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut m = [0u8; 512];
    f.read_exact(&mut m).map_err(|e| format!("cannot read the MBR: {e}"))?;
    if m[510..512] != [0x55, 0xaa] {
        return Err("no MBR (sector 0 lacks the 0x55aa signature)".into());
    }
    let e = &m[446..462];
    let le32 = |b: &[u8]| u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let (kind, start, sectors) = (e[4], le32(&e[8..12]), le32(&e[12..16]));
    if kind != FAT32_LBA {
        return Err(format!("partition 1 has type {kind:#04x}, not FAT32 LBA ({FAT32_LBA:#04x})"));
    }
    if start != PART_START || sectors == 0 || (start + sectors) * SECTOR > len {
        return Err(format!(
            "partition 1 spans sectors {start}..{} of a {}-sector image; expected it to start \
             at {PART_START} and fit",
            start + sectors,
            len / SECTOR
        ));
    }
    if m[462..510].iter().any(|&b| b != 0) {
        return Err("the MBR has more than one partition".into());
    }
    let mut b = [0u8; 512];
    f.seek(SeekFrom::Start(start * SECTOR)).map_err(|e| e.to_string())?;
    f.read_exact(&mut b).map_err(|e| format!("cannot read the boot sector: {e}"))?;
    let le16 = |o: usize| u64::from(u16::from_le_bytes([b[o], b[o + 1]]));
    let fat32 = b[510..512] == [0x55, 0xaa]
        && le16(0x0b) == SECTOR
        && le16(0x11) == 0 // no fixed root directory
        && le16(0x16) == 0 // no 16-bit FAT size
        && le32(&b[0x24..0x28]) != 0
        && &b[0x52..0x5a] == b"FAT32   ";
    if !fat32 {
        return Err("partition 1 is not formatted FAT32 with 512-byte sectors".into());
    }
    if le32(&b[0x1c..0x20]) != start || le32(&b[0x20..0x24]) > sectors {
        return Err("the FAT32 boot sector disagrees with the partition table".into());
    }
    Ok(Layout { start, sectors })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbr_describes_one_fat32_partition_at_4_mib() {
        let m = mbr(0x8_0000);
        assert_eq!(m[510..], [0x55, 0xaa]);
        assert_eq!(m[446 + 4], 0x0c);
        assert_eq!(m[446 + 8..446 + 12], 8192u32.to_le_bytes());
        assert_eq!(m[446 + 12..446 + 16], 0x8_0000u32.to_le_bytes());
        assert!(m[462..510].iter().all(|&b| b == 0));
    }

    #[test]
    fn missing_tools_are_named_with_their_package() {
        let e = Tools::find_in(&[]).unwrap_err().to_string();
        assert!(e.contains("mcopy") && e.contains("mtools"), "{e}");
        assert!(e.contains("scripts/setup.sh") && e.contains("apt-get install mtools"), "{e}");
    }

    #[test]
    fn layout_rejects_what_is_not_an_mbr_fat32_card() {
        let dir = crate::TempDir::new("layout").unwrap();
        let img = dir.path().join("x.img");
        fs::write(&img, vec![0u8; 4096]).unwrap();
        assert!(layout(&img).unwrap_err().contains("no MBR"));
        let mut bytes = vec![0u8; (PART_START as usize + 16) * 512];
        bytes[..512].copy_from_slice(&mbr(16));
        fs::write(&img, &bytes).unwrap();
        assert!(layout(&img).unwrap_err().contains("not formatted FAT32"));
        bytes[446 + 4] = 0x83;
        fs::write(&img, &bytes).unwrap();
        assert!(layout(&img).unwrap_err().contains("type 0x83"));
    }
}
