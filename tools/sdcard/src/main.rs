//! `armstop-sdcard`: builds (and checks) Raspberry Pi 4 SD cards for armstop; `just sdcard`.
//!
//! Every card it writes has been read back and checked first (see the library's docs); the
//! `check` command runs the same checker on an existing image.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use armstop_sdcard::card::{self, Sources, VARIANTS};
use armstop_sdcard::fat::{SECTOR, Tools};
use armstop_sdcard::{Error, check};

const USAGE: &str = "\
usage: armstop-sdcard [--root DIR] [--out DIR] [--image NAME] [VARIANT...]
       armstop-sdcard check [--root DIR] [--image NAME] VARIANT CARD.img
       armstop-sdcard variants

Builds, for each VARIANT (default: all), target/sdcard/<variant>/ (the card's files) and
target/sdcard/armstop-<variant>.img (MBR + FAT32), from target/images/<variant>/<NAME>.bin
(NAME: armstop unless --image says otherwise) and the Debian boot files in target/pi-firmware/.
Each is read back and checked before it is left there. `check` runs the checker on an image.";

struct Args {
    root: PathBuf,
    out: Option<PathBuf>,
    image: String,
    rest: Vec<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        root: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")),
        out: None,
        image: "armstop".into(),
        rest: Vec::new(),
    };
    // Canonical, so that messages name real paths.
    a.root = a.root.canonicalize().unwrap_or(a.root);
    while let Some(arg) = argv.next() {
        let mut value = |flag: &str| argv.next().ok_or(format!("{flag} needs a value"));
        match arg.as_str() {
            "--root" => {
                let p = PathBuf::from(value("--root")?);
                a.root = p.canonicalize().unwrap_or(p);
            }
            "--out" => a.out = Some(value("--out")?.into()),
            "--image" => a.image = value("--image")?,
            "-h" | "--help" => return Err(String::new()),
            f if f.starts_with('-') => return Err(format!("unknown option {f}")),
            _ => a.rest.push(arg),
        }
    }
    Ok(a)
}

/// `path` relative to the current directory where it is under it, for shorter messages.
fn show(path: &Path) -> String {
    let cwd = std::env::current_dir().ok();
    let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    cwd.and_then(|c| abs.strip_prefix(c).ok().map(|p| p.display().to_string()))
        .unwrap_or_else(|| abs.display().to_string())
}

fn build(a: &Args) -> Result<(), Error> {
    let names: Vec<&str> = if a.rest.is_empty() {
        VARIANTS.iter().map(|b| b.name).collect()
    } else {
        a.rest.iter().map(String::as_str).collect()
    };
    // Every input first, so that a bad one is reported before anything is written.
    let boards = names.iter().map(|n| card::variant(n)).collect::<Result<Vec<_>, _>>()?;
    let tools = Tools::find()?;
    let plans = boards
        .iter()
        .map(|b| card::plan(b, &Sources::in_repo(&a.root, b, &a.image)))
        .collect::<Result<Vec<_>, _>>()?;
    let out = a.out.clone().unwrap_or_else(|| a.root.join("target/sdcard"));
    let mut images = Vec::new();
    for plan in &plans {
        let name = plan.board.name;
        let stem =
            if a.image == "armstop" { name.to_string() } else { format!("{name}-{}", a.image) };
        let built = card::build(plan, &tools, &out, &stem)?;
        let files: Vec<&str> = plan.files.iter().map(|f| f.name.as_str()).collect();
        println!("sdcard: {name} ({})", card::describe(&plan.board));
        println!("  {}/: {}", show(&built.dir), files.join(" "));
        println!(
            "  {}: {} MiB, MBR + FAT32 partition at sector {} ({} MiB), label ARMSTOP",
            show(&built.image),
            ((built.layout.start + built.layout.sectors) * SECTOR) >> 20,
            built.layout.start,
            (built.layout.sectors * SECTOR) >> 20
        );
        println!(
            "  read back and checked: {} files byte-identical to their sources; config.txt \
             agrees with board {name}",
            files.len()
        );
        images.push((name, built));
    }
    println!();
    println!(
        "To write a card (everything on it is lost; check the device name with `lsblk` first,"
    );
    println!("and make sure it is the card, not a disk):");
    for (name, built) in &images {
        println!(
            "  sudo dd if={} of=/dev/sdX bs=4M conv=fsync status=progress   # {name}",
            show(&built.image)
        );
    }
    println!("or copy the files of one directory to the root of an existing FAT32 boot partition:");
    if let Some((_, built)) = images.first() {
        println!("  cp {}/* /media/$USER/bootfs/", show(&built.dir));
    }
    println!("Console: GPIO14 (pin 8) -> adapter RX, GPIO15 (pin 10) -> adapter TX, GND (pin 6);");
    println!("3.3 V only; `picocom -b 115200 /dev/ttyUSB0`. See README.md, \"Raspberry Pi 4\".");
    Ok(())
}

fn check_image(a: &Args) -> Result<bool, Error> {
    let [variant, image] = &a.rest[..] else {
        eprintln!("{USAGE}");
        return Ok(false);
    };
    let board = card::variant(variant)?;
    let tools = Tools::find()?;
    let sources = Sources::in_repo(&a.root, board, &a.image);
    let plan = card::plan(board, &sources)?;
    let (_, problems) = check::image(&tools, Path::new(image), &plan)?;
    if problems.is_empty() {
        println!("sdcard: {image}: a good {variant} card ({} files)", plan.files.len());
        return Ok(true);
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&sources.kernel) > modified(Path::new(image)) {
        eprintln!(
            "sdcard: note: {} changed after the card was made; `just sdcard` makes it again",
            show(&sources.kernel)
        );
    }
    Err(Error::Rejected { card: image.into(), problems })
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1).peekable();
    let command = match argv.peek().map(String::as_str) {
        Some("check") | Some("variants") => argv.next(),
        _ => None,
    };
    let a = match parse(argv) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("sdcard: error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(if e.is_empty() { 0 } else { 2 });
        }
    };
    let result = match command.as_deref() {
        Some("variants") => {
            for b in VARIANTS {
                println!("{:<16} {}", b.name, card::describe(b));
            }
            Ok(true)
        }
        Some("check") => check_image(&a),
        _ => build(&a).map(|()| true),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("sdcard: error: {e}");
            ExitCode::FAILURE
        }
    }
}
