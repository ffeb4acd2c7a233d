//! The host side of armstop's test harness: which QEMU machines exist, which board's images
//! each boots and how it loads them, how to start them, how to read the firmware's test
//! protocol and exit status off the console, what the harness self-tests must show, and JUnit
//! output.
//!
//! Invariant: an image counts as passed only if its transcript is complete and consistent
//! (`begin`, one result per started test, an `end` whose counts match) *and* the image's exit
//! status agrees. Where that status comes from is the board's [`ExitMethod`]: QEMU's exit code
//! (semihosting, `virt`), or the `armstop: exit status N` console line printed before PSCI
//! SYSTEM_OFF (the Pi, where QEMU always exits 0). Anything else is a failure with a message
//! saying what was wrong.

pub mod console;
pub mod symbols;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use armstop_boards::{Board, ExitMethod, PsciConduit};

/// Boot firmware loaded next to the image: the Pi 4's armstub, TF-A's BL31.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Firmware {
    /// What it is, for messages.
    pub what: &'static str,
    /// File names in the firmware directory, most wanted first.
    pub files: &'static [&'static str],
    /// What using a later file instead of the first one means, said when that happens.
    pub fallback: &'static str,
    /// Load address (the CPUs start there).
    pub addr: u64,
}

/// TF-A's BL31 for the Pi 4 (Debian's `rpi4/bl31.bin`), which `scripts/setup.sh` unpacks into
/// `target/pi-firmware/` together with `bl31-qemu.bin`, the same build patched for emulation.
pub const TFA_BL31: Firmware = Firmware {
    what: "TF-A BL31 for the Pi 4",
    files: &["bl31-qemu.bin", "bl31.bin"],
    fallback: "this BL31 is not patched for emulation: QEMU ignores its RMR_EL3 warm-reset \
               request, so a core turned off with PSCI CPU_OFF never comes back and tests that \
               turn a core on again fail",
    addr: 0,
};

/// How the image (and any boot firmware) reaches the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Load {
    /// `-kernel <board images>/<image>`: the ELF, entered at its entry point.
    KernelElf,
    /// `-kernel <board images>/<image>.bin`: the raw image, which the machine places at the
    /// board's load address (`raspi4b`: 0x80000, entered at EL2, secondaries on spin tables).
    KernelRaw,
    /// No `-kernel`: the firmware and the raw image each through `-device loader`, the image at
    /// the board's load address; every CPU starts in the firmware, which enters the image.
    Firmware(Firmware),
}

impl Load {
    /// Whether the image is the raw binary (`<image>.bin`) rather than the ELF.
    pub const fn raw(&self) -> bool {
        !matches!(self, Self::KernelElf)
    }
}

/// A QEMU machine of the test matrix.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    /// Short name used on the command line and in results.
    pub name: &'static str,
    /// What it emulates.
    pub description: &'static str,
    /// The board ([`armstop_boards::Board::name`]) whose images it boots: its PSCI conduit,
    /// load address and exit method come from there.
    pub board: &'static str,
    /// `-M` argument.
    pub qemu_machine: &'static str,
    /// `-cpu`, where the machine has a choice (`raspi4b` has not).
    pub cpu: Option<&'static str>,
    /// `-smp`, where the machine has a choice.
    pub smp: Option<u16>,
    /// `-m` (`raspi4b` accepts exactly 2G).
    pub memory: &'static str,
    /// EL the firmware is entered at.
    pub boot_el: u8,
    /// How the image is loaded.
    pub load: Load,
    /// Which part of `just test` it takes (see [`Tier`]).
    pub tier: Tier,
}

/// Which images `just test` boots on a machine: the whole matrix cannot run every image on every
/// machine in its time budget, so each machine has a part.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Every image: the suites, the reboot suite and the harness self-tests (the default
    /// machines of `armstop-runner test`).
    Full,
    /// Another CPU count: the suite and hotplug images, whose tests skip (with the reason)
    /// what the machine is too small for.
    Sizes,
    /// A large machine: the main image's report (`just run`) and the bench's scale run.
    Scale,
}

impl Machine {
    /// The board whose images this machine boots. Every name in [`MACHINES`] is one of
    /// [`armstop_boards::ALL`] (checked by this crate's tests).
    pub fn board(&self) -> &'static Board {
        armstop_boards::by_name(self.board)
            .unwrap_or_else(|| panic!("machine {}: unknown board {:?}", self.name, self.board))
            .1
    }

    /// How the image ends and reports its status: the board's.
    pub fn exit(&self) -> ExitMethod {
        self.board().exit
    }

    /// The PSCI conduit the firmware picks here: the board's, or from the boot EL.
    pub fn conduit(&self) -> &'static str {
        match (self.board().psci, self.boot_el) {
            (PsciConduit::Hvc, _) | (PsciConduit::FromBootEl, 1) => "HVC",
            (PsciConduit::Smc, _) | (PsciConduit::FromBootEl, _) => "SMC",
        }
    }

    /// One line on how the image's status reaches the runner.
    pub fn status_source(&self) -> &'static str {
        match self.exit() {
            ExitMethod::Semihosting => "status = QEMU's exit code (semihosting)",
            ExitMethod::PsciSystemOff => {
                "status = `armstop: exit status N` on the console (PSCI SYSTEM_OFF, QEMU exits 0)"
            }
        }
    }
}

/// A QEMU `virt` machine with a Cortex-A72 per CPU.
const fn virt(
    name: &'static str,
    description: &'static str,
    qemu_machine: &'static str,
    smp: u16,
    boot_el: u8,
    tier: Tier,
) -> Machine {
    Machine {
        name,
        description,
        board: "qemu-virt",
        qemu_machine,
        cpu: Some("cortex-a72"),
        smp: Some(smp),
        memory: "1G",
        boot_el,
        load: Load::KernelElf,
        tier,
    }
}

/// Every machine the runner knows.
pub const MACHINES: &[Machine] = &[
    virt("virt-gicv2", "QEMU virt, GICv2, entered at EL1", "virt,gic-version=2", 4, 1, Tier::Full),
    virt("virt-gicv3", "QEMU virt, GICv3, entered at EL1", "virt,gic-version=3", 4, 1, Tier::Full),
    virt(
        "virt-el2-gicv2",
        "QEMU virt with virtualization=on, GICv2, entered at EL2",
        "virt,virtualization=on,gic-version=2",
        4,
        2,
        Tier::Full,
    ),
    virt(
        "virt-el2-gicv3",
        "QEMU virt with virtualization=on, GICv3, entered at EL2",
        "virt,virtualization=on,gic-version=3",
        4,
        2,
        Tier::Full,
    ),
    virt("virt-gicv2-smp1", "QEMU virt, GICv2, 1 CPU", "virt,gic-version=2", 1, 1, Tier::Sizes),
    virt("virt-gicv2-smp2", "QEMU virt, GICv2, 2 CPUs", "virt,gic-version=2", 2, 1, Tier::Sizes),
    virt(
        "virt-gicv2-smp8",
        "QEMU virt, GICv2, 8 CPUs (GICv2's limit)",
        "virt,gic-version=2",
        8,
        1,
        Tier::Sizes,
    ),
    virt("virt-gicv3-smp1", "QEMU virt, GICv3, 1 CPU", "virt,gic-version=3", 1, 1, Tier::Sizes),
    virt("virt-gicv3-smp2", "QEMU virt, GICv3, 2 CPUs", "virt,gic-version=3", 2, 1, Tier::Sizes),
    virt("virt-gicv3-smp8", "QEMU virt, GICv3, 8 CPUs", "virt,gic-version=3", 8, 1, Tier::Sizes),
    virt(
        "virt-gicv3-smp16",
        "QEMU virt, GICv3, 16 CPUs (one full cluster)",
        "virt,gic-version=3",
        16,
        1,
        Tier::Scale,
    ),
    virt(
        "virt-gicv3-smp64",
        "QEMU virt, GICv3, 64 CPUs (four clusters; the image's default room)",
        "virt,gic-version=3",
        64,
        1,
        Tier::Scale,
    ),
    Machine {
        name: "raspi4b-tfa",
        description: "QEMU raspi4b (4x A72, GIC-400, 2 GiB), TF-A BL31 as armstub, entered at EL2",
        board: "raspi4-tfa",
        qemu_machine: "raspi4b",
        cpu: None,
        smp: None,
        memory: "2G",
        boot_el: 2,
        load: Load::Firmware(TFA_BL31),
        tier: Tier::Full,
    },
    Machine {
        name: "raspi4b-own-psci",
        description: "QEMU raspi4b (4x A72, GIC-400, 2 GiB), raw image at 0x80000, secondaries \
                      on spin tables, armstop's own EL2 PSCI provider",
        board: "raspi4-own-psci",
        qemu_machine: "raspi4b",
        cpu: None,
        smp: None,
        memory: "2G",
        boot_el: 2,
        load: Load::KernelRaw,
        tier: Tier::Full,
    },
];

/// Looks a machine up by name.
pub fn machine(name: &str) -> Result<&'static Machine, String> {
    MACHINES.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<_> = MACHINES.iter().map(|m| m.name).collect();
        format!("unknown machine {name:?}; known machines: {}", names.join(", "))
    })
}

/// Which image to boot.
#[derive(Clone, Copy, Debug)]
pub enum ImageRef<'a> {
    /// An image name (`suite`), found as `<root>/<machine's board>/<name>` (ELF) or
    /// `<name>.bin` (raw), whichever the machine loads.
    Named {
        /// The image root (`target/images`).
        root: &'a Path,
        /// The image name.
        name: &'a str,
    },
    /// A file given by path: used as it is for an ELF; for a raw load, `<path>.bin` next to
    /// it unless the path already ends in `.bin`.
    Path(&'a Path),
}

fn with_bin(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".bin");
    s.into()
}

impl ImageRef<'_> {
    /// The file `m` boots.
    pub fn path(&self, m: &Machine) -> PathBuf {
        match *self {
            Self::Named { root, name } => {
                let elf = root.join(m.board).join(name);
                if m.load.raw() { with_bin(&elf) } else { elf }
            }
            Self::Path(p) if m.load.raw() && p.extension().is_none_or(|e| e != "bin") => {
                with_bin(p)
            }
            Self::Path(p) => p.to_path_buf(),
        }
    }

    /// The ELF with the symbols of what `m` boots (for GDB).
    pub fn elf(&self, m: &Machine) -> PathBuf {
        match *self {
            Self::Named { root, name } => root.join(m.board).join(name),
            Self::Path(p) if p.extension().is_some_and(|e| e == "bin") => p.with_extension(""),
            Self::Path(p) => p.to_path_buf(),
        }
    }

    /// The name results are filed under.
    pub fn name(&self) -> String {
        match *self {
            Self::Named { name, .. } => name.to_string(),
            Self::Path(p) => p.file_name().unwrap_or_default().to_string_lossy().into_owned(),
        }
    }
}

/// The files one boot of one image on one machine needs, checked to exist.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BootFiles {
    /// The image as the machine loads it (ELF or raw).
    pub image: PathBuf,
    /// Boot firmware (`-device loader`), where the machine has some.
    pub firmware: Option<PathBuf>,
    /// Things the user should know (a fallback firmware, and what that costs).
    pub notes: Vec<String>,
    /// Whether a guest reset reboots the machine, for an image that resets it on purpose.
    /// Otherwise QEMU exits on a reset (`-no-reboot`), so that an image that resets by
    /// accident ends its run instead of starting again.
    pub reboot_on_reset: bool,
    /// A device tree to hand the machine instead of its own (`-dtb`), for tests of what the
    /// firmware does with a wrong or malformed one.
    pub dtb: Option<PathBuf>,
}

/// Finds `fw` in `dir`: its first file that exists, with a note if that is not the preferred
/// one; an error naming the set-up script if none does.
pub fn find_firmware(fw: &Firmware, dir: &Path) -> Result<(PathBuf, Option<String>), String> {
    for (i, f) in fw.files.iter().enumerate() {
        let p = dir.join(f);
        if p.is_file() {
            let note = (i > 0).then(|| {
                format!(
                    "using {}: {} is missing; {}",
                    p.display(),
                    dir.join(fw.files[0]).display(),
                    fw.fallback
                )
            });
            return Ok((p, note));
        }
    }
    Err(format!(
        "no {} in {} (looked for {}): run `./bootstrap.sh setup` (or `bash scripts/setup.sh`), \
         which unpacks the Raspberry Pi boot files into target/pi-firmware/",
        fw.what,
        dir.display(),
        fw.files.join(", ")
    ))
}

/// Resolves and checks what booting `image` on `m` needs; `firmware_dir` holds boot firmware
/// (`target/pi-firmware`).
pub fn boot_files(m: &Machine, image: ImageRef, firmware_dir: &Path) -> Result<BootFiles, String> {
    let path = image.path(m);
    if !path.is_file() {
        return Err(match image {
            ImageRef::Named { name, .. } => format!(
                "no {name:?} image for board {} (machine {}): {} does not exist; run `just build`, \
                 which builds every board's images into <root>/<board>/",
                m.board,
                m.name,
                path.display()
            ),
            ImageRef::Path(_) => format!(
                "no such image: {} (machine {} boots the {} image)",
                path.display(),
                m.name,
                if m.load.raw() { "raw `.bin`" } else { "ELF" }
            ),
        });
    }
    let mut files =
        BootFiles { image: path, firmware: None, notes: vec![], reboot_on_reset: false, dtb: None };
    if let Load::Firmware(fw) = &m.load {
        let (p, note) = find_firmware(fw, firmware_dir)?;
        files.firmware = Some(p);
        files.notes.extend(note);
    }
    Ok(files)
}

/// `-device loader,file=...` wants a comma in a file name doubled.
fn loader(file: &Path, addr: u64) -> String {
    format!("loader,file={},addr={addr:#x}", file.display().to_string().replace(',', ",,"))
}

/// QEMU's arguments to boot `files` on `m`, logging guest errors to `log` if given.
pub fn qemu_args(m: &Machine, files: &BootFiles, log: Option<&Path>) -> Vec<String> {
    let mut a: Vec<String> = vec!["-M".into(), m.qemu_machine.into()];
    if let Some(cpu) = m.cpu {
        a.extend(["-cpu".into(), cpu.into()]);
    }
    if let Some(n) = m.smp {
        a.extend(["-smp".into(), n.to_string()]);
    }
    a.extend(
        [
            "-m", m.memory, "-nic", "none", "-display", "none", "-monitor", "none", "-serial",
            "stdio",
        ]
        .map(String::from),
    );
    if !files.reboot_on_reset {
        a.push("-no-reboot".into());
    }
    // Only where the image exits through semihosting: elsewhere `hlt` must trap, as on hardware.
    if m.exit() == ExitMethod::Semihosting {
        a.push("-semihosting".into());
    }
    match m.load {
        Load::KernelElf | Load::KernelRaw => {
            a.extend(["-kernel".into(), files.image.display().to_string()])
        }
        Load::Firmware(fw) => {
            let firmware = files.firmware.as_deref().unwrap_or(Path::new(fw.files[0]));
            a.extend(["-device".into(), loader(firmware, fw.addr)]);
            a.extend(["-device".into(), loader(&files.image, m.board().load_address)]);
        }
    }
    if let Some(dtb) = &files.dtb {
        a.extend(["-dtb".into(), dtb.display().to_string()]);
    }
    if let Some(log) = log {
        a.extend([
            "-d".into(),
            "guest_errors,unimp".into(),
            "-D".into(),
            log.display().to_string(),
        ]);
    }
    a
}

/// A test's result as the firmware reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// Passed.
    Ok,
    /// Failed, with the message.
    Failed(String),
    /// Not run, with the reason.
    Ignored(String),
}

/// One test of one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestResult {
    /// Test name (`module::test`).
    pub name: String,
    /// What happened.
    pub status: Status,
}

/// What was read from one boot of one image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageReport {
    /// Suite name from the `begin` line.
    pub suite: Option<String>,
    /// Per-test results, in order.
    pub tests: Vec<TestResult>,
    /// What was wrong with the run as a whole (empty if nothing).
    pub problems: Vec<String>,
    /// The `end` line's counts.
    pub end: Option<(usize, usize, usize)>,
    /// Tests the image has (the `begin` line's `tests=`).
    pub total: Option<usize>,
    /// Where a run that stopped at a failure says to go on (the `end` line's `next=`).
    pub next: Option<usize>,
    /// The index of the last test that started (its `start` line's `#<i>`).
    pub last_started: Option<usize>,
    /// Figures tests reported (`armstop-test: figure <text>`), with the test that was running.
    pub figures: Vec<(String, String)>,
    /// The image's exit status, read where the machine reports it (QEMU's exit code, or the
    /// console's `armstop: exit status N`); `None` if it reported none (timed out, killed, or
    /// no status line).
    pub status: Option<i32>,
}

impl ImageReport {
    /// Whether every test passed (or was ignored) and the run was sound.
    pub fn passed(&self) -> bool {
        self.problems.is_empty()
            && self.tests.iter().all(|t| !matches!(t.status, Status::Failed(_)))
    }
}

/// How the QEMU process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Exited with this status (`None`: killed by a signal).
    Code(Option<i32>),
    /// Killed by the runner after this many seconds.
    TimedOut(u64),
}

/// What an image whose board exits by [`ExitMethod::PsciSystemOff`] prints, followed by its
/// status, before it powers off (`firmware/armstop/src/power.rs`).
pub const STATUS_LINE: &str = "armstop: exit status ";

/// The status a console transcript reports (`armstop: exit status N`), if any. The line may
/// follow a partial line another core left unfinished (the firmware prints it even when it
/// cannot get the console lock), but the status must end the line. Two different statuses, or
/// one that is not a number from 0 to 255, are an error.
pub fn console_status(lines: &[String]) -> Result<Option<i32>, String> {
    let mut found: Option<i32> = None;
    for raw in lines {
        let line = raw.trim_end_matches(['\r', '\n']);
        let Some(at) = line.find(STATUS_LINE) else { continue };
        let text = line[at + STATUS_LINE.len()..].trim_end();
        let status: i32 = match text.parse::<u8>() {
            Ok(s) => s.into(),
            Err(_) => return Err(format!("malformed status line: {line:?}")),
        };
        match found {
            Some(f) if f != status => {
                return Err(format!("the image reported two exit statuses: {f}, then {status}"));
            }
            _ => found = Some(status),
        }
    }
    Ok(found)
}

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Reads the firmware's test protocol out of a console transcript and checks it against the
/// image's exit status, which `method` says where to find: QEMU's `exit`, or the console.
pub fn parse_transcript(lines: &[String], exit: Exit, method: ExitMethod) -> ImageReport {
    let mut r = ImageReport::default();
    let mut running: Option<String> = None;
    for raw in lines {
        let line = raw.trim_end_matches(['\r', '\n']);
        if let Some(rest) = line.strip_prefix("armstop-test: begin ") {
            r.suite = field(rest, "suite").map(str::to_string);
            r.total = field(rest, "tests").and_then(|v| v.parse().ok());
        } else if let Some(e) = line.strip_prefix("armstop-test: plan error: ") {
            r.problems.push(format!("the image refused its plan: {e}"));
        } else if let Some(rest) = line.strip_prefix("armstop-test: start ") {
            let rest = rest.trim();
            let (name, index) = match rest.rsplit_once(" #") {
                Some((n, i)) if i.parse::<usize>().is_ok() => (n, i.parse().ok()),
                _ => (rest, None),
            };
            r.last_started = index.or(r.last_started);
            running = Some(name.to_string());
        } else if let Some(text) = line.strip_prefix("armstop-test: figure ") {
            r.figures.push((running.clone().unwrap_or_default(), text.to_string()));
        } else if let Some(rest) = line.strip_prefix("armstop-test: end ") {
            let count = |k| field(rest, k).and_then(|v| v.parse().ok());
            r.next = count("next");
            match (count("passed"), count("failed"), count("ignored")) {
                (Some(p), Some(f), Some(i)) => r.end = Some((p, f, i)),
                _ => r.problems.push(format!("malformed end line: {line:?}")),
            }
        } else if let Some(rest) = line.strip_prefix("test ") {
            let Some((name, result)) = rest.split_once(" ... ") else { continue };
            let status = if result.starts_with("ok") {
                Status::Ok
            } else if let Some(m) = result.strip_prefix("FAILED") {
                Status::Failed(m.trim_start_matches(':').trim().to_string())
            } else if let Some(m) = result.strip_prefix("ignored") {
                Status::Ignored(m.trim_start_matches(':').trim().to_string())
            } else {
                continue;
            };
            if running.as_deref() == Some(name) {
                running = None;
            }
            r.tests.push(TestResult { name: name.to_string(), status });
        }
    }
    if r.suite.is_none() {
        r.problems.push("the image never began its tests (no `armstop-test: begin` line)".into());
    }
    if let Some(name) = running {
        let why = match exit {
            Exit::TimedOut(s) => format!("hung (timed out after {s} s)"),
            _ => "started but never finished (the image stopped mid-test)".to_string(),
        };
        r.tests.push(TestResult { name, status: Status::Failed(why) });
    }
    let count = |f: fn(&Status) -> bool| r.tests.iter().filter(|t| f(&t.status)).count();
    let seen = (
        count(|s| *s == Status::Ok),
        count(|s| matches!(s, Status::Failed(_))),
        count(|s| matches!(s, Status::Ignored(_))),
    );
    // Where the image's status comes from; a console status counts only if QEMU then exited
    // (timed out or killed, it says how far the image got, no more).
    let (reported, said) = match method {
        ExitMethod::Semihosting => (Ok(None), "QEMU exited"),
        ExitMethod::PsciSystemOff => (console_status(lines), "the image reported exit status"),
    };
    let status = match (method, &reported, exit) {
        (ExitMethod::Semihosting, _, Exit::Code(c)) => c,
        (ExitMethod::PsciSystemOff, Ok(s), Exit::Code(Some(_))) => *s,
        _ => None,
    };
    if let Err(e) = &reported {
        r.problems.push(e.clone());
    }
    if method == ExitMethod::PsciSystemOff {
        match exit {
            Exit::Code(Some(0)) if reported == Ok(None) => r.problems.push(format!(
                "no `{STATUS_LINE}N` line: on this machine the image prints its status on the \
                 console before PSCI SYSTEM_OFF, and QEMU always exits 0"
            )),
            Exit::Code(Some(c)) if c != 0 => r.problems.push(format!(
                "QEMU exited {c}; on this machine it should exit 0 (the image reports its status \
                 on the console and powers off with PSCI SYSTEM_OFF)"
            )),
            _ => {}
        }
    }
    r.status = status;
    match (r.end, exit) {
        (_, Exit::TimedOut(s)) => match reported {
            Ok(Some(c)) => r.problems.push(format!(
                "timed out after {s} s, after `{STATUS_LINE}{c}` (PSCI SYSTEM_OFF did not end QEMU)"
            )),
            _ => r.problems.push(format!("timed out after {s} s")),
        },
        (None, _) => r.problems.push("no `armstop-test: end` line".into()),
        (Some(end), _) if end != seen => r.problems.push(format!(
            "end line says passed={} failed={} ignored={}, but the test lines say {}/{}/{}",
            end.0, end.1, end.2, seen.0, seen.1, seen.2
        )),
        _ => {}
    }
    match status {
        Some(0) if seen.1 > 0 => r.problems.push(format!("{said} 0 although tests failed")),
        Some(c) if c != 0 && seen.1 == 0 && r.end.is_some() => {
            r.problems.push(format!("{said} {c} although every test passed"))
        }
        _ => {}
    }
    if exit == Exit::Code(None) {
        r.problems.push("QEMU was killed by a signal".into());
    }
    r
}

/// One expectation of the `selftest-fail` image: a test and the words its result must carry.
pub struct Expectation {
    /// Test name.
    pub test: &'static str,
    /// `None`: must pass; `Some(words)`: must fail with a message containing every word.
    pub fails_with: Option<&'static [&'static str]>,
}

/// What `selftest-fail` must report, test by test.
pub const SELFTEST_FAIL: &[Expectation] = &[
    Expectation { test: "selftest::passes", fails_with: None },
    Expectation { test: "selftest::assert_fails", fails_with: Some(&["assertion"]) },
    Expectation { test: "selftest::panics_on_boot_core", fails_with: Some(&["panicked at"]) },
    Expectation {
        test: "selftest::panics_on_secondary",
        fails_with: Some(&["cpu1", "panicked at"]),
    },
    // The runner adds the function and line (from the image's DWARF) to a fault's message.
    Expectation {
        test: "selftest::data_abort",
        fails_with: Some(&[
            "Data Abort",
            "FAR",
            "[at ",
            "selftest::data_abort (",
            "selftest-fail.rs:43:",
        ]),
    },
    Expectation { test: "selftest::stack_overflow", fails_with: Some(&["stack overflow"]) },
    Expectation {
        test: "selftest::assert_fails_in_a_stopper_callback_on_secondary",
        fails_with: Some(&["cpu1", "assertion in a stopper callback"]),
    },
    Expectation {
        test: "selftest::assert_fails_in_a_stop_machine_callback_on_secondary",
        fails_with: Some(&["cpu1", "assertion in a stopper callback"]),
    },
    Expectation { test: "selftest::machine_is_sane_after_failed_callbacks", fails_with: None },
];

/// What the run of one fault image (`--fault-image`, an image that faults on purpose with no
/// harness, so the machine must stop) must show.
pub struct FaultExpectation {
    /// The image.
    pub image: &'static str,
    /// The CPU whose report it must be (`None`: either of two that fault at once).
    pub winner: Option<usize>,
    /// Words the console must carry after the image began.
    pub words: &'static [&'static str],
    /// How many other CPUs must show as "faulted too".
    pub faulted_too: usize,
}

/// The fault images and what each must report.
pub const FAULT_IMAGES: &[FaultExpectation] = &[
    FaultExpectation {
        image: "fault-panic",
        winner: Some(1),
        words: &["panicked at", "deliberate panic on a secondary CPU", "exception: none"],
        faulted_too: 0,
    },
    FaultExpectation {
        image: "fault-abort",
        winner: Some(0),
        words: &["Data Abort", "translation fault", "ESR=0x", "FAR=0x700000000", "ELR=0x"],
        faulted_too: 0,
    },
    FaultExpectation {
        image: "fault-double",
        winner: None,
        words: &["deliberate simultaneous panic"],
        faulted_too: 1,
    },
];

/// Checks a fault image's console `lines` and exit `status` (`None`: none known) against its
/// [`FAULT_IMAGES`] entry: one report (one `FAULT cpuN:` line, one `FAULT REPORT`), a
/// non-empty backtrace, one line for each other CPU saying where it stopped (with its own
/// backtrace), nothing run after the fault, and a failure status. Returns the problems.
pub fn check_fault_image(image: &str, lines: &[String], status: Option<i32>) -> Vec<String> {
    let Some(e) = FAULT_IMAGES.iter().find(|e| e.image == image) else {
        return vec![format!("{image}: no such fault image (known: {:?})", fault_image_names())];
    };
    let mut problems = Vec::new();
    let Some(begin) = lines.iter().position(|l| l.contains("fault-test: begin cpus=")) else {
        return vec!["the image never began (no `fault-test: begin` line)".into()];
    };
    let after = &lines[begin..];
    let cpus: usize =
        after[0].split("cpus=").nth(1).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
    let count = |pat: &str| after.iter().filter(|l| l.contains(pat)).count();
    let messages = after.iter().filter(|l| l.trim_start().starts_with("FAULT cpu")).count();
    if messages != 1 {
        problems.push(format!("{messages} `FAULT cpuN:` lines; exactly one wanted"));
    }
    let reports: Vec<&String> = after.iter().filter(|l| l.contains("FAULT REPORT cpu")).collect();
    let winner = match reports.as_slice() {
        [r] => r
            .split("FAULT REPORT cpu")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok()),
        _ => {
            problems.push(format!("{} fault reports; exactly one wanted", reports.len()));
            None
        }
    };
    if let (Some(want), Some(got)) = (e.winner, winner)
        && want != got
    {
        problems.push(format!("the report is cpu{got}'s, cpu{want}'s wanted"));
    }
    for w in e.words {
        if count(w) == 0 {
            problems.push(format!("no console line says {w:?}"));
        }
    }
    if !after.iter().any(|l| l.contains("  backtrace: 0x")) {
        problems.push("no backtrace (a `  backtrace: 0x...` line)".into());
    }
    if let Some(w) = winner {
        for c in (0..cpus).filter(|&c| c != w) {
            let line = after.iter().find(|l| {
                l.contains(&format!("  cpu{c} stopped at ELR=0x"))
                    || l.contains(&format!("  cpu{c} faulted too, stopped at ELR=0x"))
            });
            match line {
                None => problems.push(format!("no line says where cpu{c} stopped")),
                Some(l) if !l.contains("(backtrace 0x") => {
                    problems.push(format!("cpu{c}'s line has no backtrace: {l:?}"))
                }
                Some(_) => {}
            }
        }
    }
    let too = count("faulted too, stopped at");
    if too != e.faulted_too {
        problems.push(format!("{too} CPUs shown as `faulted too`; {} wanted", e.faulted_too));
    }
    if count("still running after the fault") > 0 {
        problems.push("the image ran on after the fault".into());
    }
    if count("FAULT END: machine stopped") != 1 {
        problems.push("no `FAULT END: machine stopped` line".into());
    }
    match status {
        Some(0) => problems.push("exit status 0: a fault must end the run as a failure".into()),
        None => problems.push("no exit status".into()),
        Some(_) => {}
    }
    problems
}

/// The names [`FAULT_IMAGES`] knows.
pub fn fault_image_names() -> Vec<&'static str> {
    FAULT_IMAGES.iter().map(|e| e.image).collect()
}

/// The test `selftest-hang` must be caught hanging in.
pub const SELFTEST_HANG: &str = "selftest::hangs";

/// Checks a `selftest-fail` run: one `(check name, problem or None)` per expectation, plus one
/// for the image as a whole (it must fail, with the end line its table implies, and a non-zero exit
/// status wherever the machine reports it: see [`ImageReport::status`]).
pub fn check_selftest_fail(r: &ImageReport, exit: Exit) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for e in SELFTEST_FAIL {
        let got = r.tests.iter().find(|t| t.name == e.test);
        let problem = match (got.map(|t| &t.status), e.fails_with) {
            (None, _) => Some("not reported at all".to_string()),
            (Some(Status::Ok), None) => None,
            (Some(s), None) => Some(format!("should pass, got {s:?}")),
            (Some(Status::Failed(m)), Some(words)) => {
                let missing: Vec<_> = words.iter().filter(|w| !m.contains(**w)).collect();
                (!missing.is_empty()).then(|| format!("failure message {m:?} lacks {missing:?}"))
            }
            (Some(s), Some(_)) => Some(format!("should fail, got {s:?}")),
        };
        out.push((e.test.to_string(), problem));
    }
    let passing = SELFTEST_FAIL.iter().filter(|e| e.fails_with.is_none()).count();
    let want_end = (passing, SELFTEST_FAIL.len() - passing, 0);
    let whole = if r.end != Some(want_end) {
        Some(format!("end line {:?}, expected {want_end:?}", r.end))
    } else if !matches!(r.status, Some(c) if c != 0) {
        Some(format!(
            "QEMU ended {exit:?}, image exit status {:?}; a failing image must exit non-zero",
            r.status
        ))
    } else if r.passed() {
        Some("the runner judged the failing image a pass".into())
    } else {
        None
    };
    out.push(("image_fails".into(), whole));
    out
}

/// Checks a `selftest-hang` run: it must have timed out, with the hanging test named.
pub fn check_selftest_hang(r: &ImageReport, exit: Exit) -> Option<String> {
    if !matches!(exit, Exit::TimedOut(_)) {
        return Some(format!("the hanging image was not timed out (ended {exit:?})"));
    }
    match r.tests.iter().find(|t| t.name == SELFTEST_HANG) {
        Some(TestResult { status: Status::Failed(m), .. }) if m.contains("hung") => None,
        other => Some(format!("{SELFTEST_HANG} not reported as hung: {other:?}")),
    }
}

/// The console's line when a soak begins (`soak: N s; progress every 10 s`).
pub const SOAK_BEGIN: &str = "soak: ";
/// The load engine's last line (`armstop::load::Totals`), with the counts as `key=value`.
pub const SOAK_END: &str = "armstop-load: --- End of soak: ";
/// The console's verdict on a soak that passed.
pub const SOAK_OK: &str = "soak: ok: ";

/// The counts of the soak's end line that must be 0.
pub const SOAK_MUST_BE_ZERO: &[&str] =
    &["lost", "wrong", "bad_refusals", "park_with_works", "bad_transitions", "errors"];

/// Checks what the console showed for `soak <secs>s`: a soak of that length began, ended with
/// the engine's end line, every count of [`SOAK_MUST_BE_ZERO`] is 0 there, the line says
/// SUCCESS and the console's verdict is `ok`. `Ok` carries the end line.
pub fn check_soak(lines: &[String], secs: u32) -> Result<String, String> {
    let mut problems: Vec<String> = Vec::new();
    let line = |prefix: &str| {
        lines.iter().map(|l| l.trim_end_matches(['\r', '\n'])).find_map(|l| l.strip_prefix(prefix))
    };
    match line(SOAK_BEGIN).map(|b| b.split(' ').next().unwrap_or("")) {
        None => problems.push("the soak never began (no `soak: N s` line)".into()),
        Some(s) if s == secs.to_string() => {}
        Some(s) => problems.push(format!("the console soaks for {s:?} s, not the {secs} s asked")),
    }
    let end = line(SOAK_END);
    match end {
        None => problems.push("no end-of-soak totals (`armstop-load: --- End of soak`)".into()),
        Some(rest) => {
            for key in SOAK_MUST_BE_ZERO {
                match field(rest, key) {
                    Some("0") => {}
                    Some(v) => problems.push(format!("{key}={v}")),
                    None => problems.push(format!("the end line has no {key}=")),
                }
            }
            if !rest.starts_with("SUCCESS") {
                problems.push("the end line does not say SUCCESS".into());
            }
        }
    }
    if problems.is_empty() && line(SOAK_OK).is_none() {
        problems.push("the console did not say `soak: ok`".into());
    }
    match (problems.is_empty(), end) {
        (true, Some(rest)) => Ok(rest.to_string()),
        _ => Err(problems.join("; ")),
    }
}

/// How long the runner lets a soak of `secs` seconds run before it gives up on it: the
/// duration, a quarter more for a slow host, and three minutes for the boot, the last cycle and
/// the drain (a healthy soak prints its totals within seconds of its duration).
pub fn soak_timeout(secs: u32) -> u64 {
    u64::from(secs) + u64::from(secs) / 4 + 180
}

/// Escapes text for XML attributes and content.
pub fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                let _ = write!(o, "&#x{:x};", c as u32);
            }
            c => o.push(c),
        }
    }
    o
}

/// One JUnit test suite: a name and its results.
pub struct JunitSuite {
    /// `machine/image`.
    pub name: String,
    /// Results.
    pub tests: Vec<TestResult>,
}

/// Renders JUnit XML.
pub fn junit_xml(suites: &[JunitSuite]) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    for s in suites {
        let failures = s.tests.iter().filter(|t| matches!(t.status, Status::Failed(_))).count();
        let skipped = s.tests.iter().filter(|t| matches!(t.status, Status::Ignored(_))).count();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
            xml_escape(&s.name),
            s.tests.len()
        );
        for t in &s.tests {
            let _ = write!(
                x,
                "    <testcase classname=\"{}\" name=\"{}\"",
                xml_escape(&s.name),
                xml_escape(&t.name)
            );
            match &t.status {
                Status::Ok => x.push_str("/>\n"),
                Status::Failed(m) => {
                    let _ = writeln!(x, "><failure message=\"{}\"/></testcase>", xml_escape(m));
                }
                Status::Ignored(m) => {
                    let _ = writeln!(x, "><skipped message=\"{}\"/></testcase>", xml_escape(m));
                }
            }
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEMI: ExitMethod = ExitMethod::Semihosting;
    const CONSOLE: ExitMethod = ExitMethod::PsciSystemOff;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(|l| format!("{l}\r")).collect()
    }

    const GOOD: &str = "[ 0.1] cpu0 INFO  noise
armstop-test: begin suite=suite board=qemu-virt cpus=4 tests=3
armstop-test: start a::one
test a::one ... ok (12 us)
noise test line
armstop-test: start a::two
test a::two ... ignored: not on GICv3
armstop-test: start a::three
FAULT cpu1: boom
test a::three ... FAILED: cpu1: panicked at x.rs:1:1: boom
armstop-test: end passed=1 failed=1 ignored=1";

    #[test]
    fn reads_results_through_noise_and_crlf() {
        let r = parse_transcript(&lines(GOOD), Exit::Code(Some(1)), SEMI);
        assert_eq!(r.suite.as_deref(), Some("suite"));
        assert_eq!(r.tests.len(), 3);
        assert_eq!(r.tests[0], TestResult { name: "a::one".into(), status: Status::Ok });
        assert_eq!(r.tests[1].status, Status::Ignored("not on GICv3".into()));
        assert_eq!(r.tests[2].status, Status::Failed("cpu1: panicked at x.rs:1:1: boom".into()));
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(!r.passed());
    }

    #[test]
    fn a_clean_run_passes() {
        let t = "armstop-test: begin suite=s board=b cpus=4 tests=1\narmstop-test: start m::t\ntest m::t ... ok (1 us)\narmstop-test: end passed=1 failed=0 ignored=0";
        let r = parse_transcript(&lines(t), Exit::Code(Some(0)), SEMI);
        assert!(r.passed(), "{:?}", r.problems);
    }

    #[test]
    fn a_run_stopped_at_its_failure_says_where_to_go_on() {
        let t = "armstop-test: begin suite=s board=b cpus=4 tests=5\narmstop-test: plan from=1 only=* stop-at-failure: 4 of 5 tests\narmstop-test: start m::a #1\ntest m::a ... FAILED: x\narmstop-test: end passed=0 failed=1 ignored=0 next=2";
        let r = parse_transcript(&lines(t), Exit::Code(Some(1)), SEMI);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert_eq!((r.total, r.next, r.last_started), (Some(5), Some(2), Some(1)));
        assert_eq!(r.tests[0].name, "m::a", "the index is not part of the name");
        let hung =
            "armstop-test: begin suite=s board=b cpus=4 tests=5\narmstop-test: start m::a #3";
        let r = parse_transcript(&lines(hung), Exit::TimedOut(9), SEMI);
        assert_eq!((r.next, r.last_started), (None, Some(3)));
        let refused = "armstop-test: begin suite=s tests=5\narmstop-test: plan error: unknown word (got \"plan x\")\narmstop-test: end passed=0 failed=0 ignored=0";
        let r = parse_transcript(&lines(refused), Exit::Code(Some(1)), SEMI);
        assert!(
            r.problems.iter().any(|p| p.contains("refused its plan: unknown word")),
            "{:?}",
            r.problems
        );
    }

    #[test]
    fn protocol_errors_are_failures() {
        let cases: &[(&str, Exit, &str)] = &[
            ("cpu0 INFO nothing", Exit::Code(Some(0)), "never began"),
            (
                "armstop-test: begin suite=s\ntest m::t ... ok (1 us)",
                Exit::Code(Some(0)),
                "no `armstop-test: end`",
            ),
            (
                "armstop-test: begin suite=s\ntest m::t ... ok (1 us)\narmstop-test: end passed=2 failed=0 ignored=0",
                Exit::Code(Some(0)),
                "end line says",
            ),
            (
                "armstop-test: begin suite=s\narmstop-test: start m::t\ntest m::t ... FAILED: x\narmstop-test: end passed=0 failed=1 ignored=0",
                Exit::Code(Some(0)),
                "exited 0 although",
            ),
            (
                "armstop-test: begin suite=s\narmstop-test: start m::t\ntest m::t ... ok (1 us)\narmstop-test: end passed=1 failed=0 ignored=0",
                Exit::Code(Some(3)),
                "exited 3 although",
            ),
            (
                "armstop-test: begin suite=s\narmstop-test: start m::t",
                Exit::TimedOut(5),
                "timed out after 5 s",
            ),
            (
                "armstop-test: begin suite=s\narmstop-test: start m::t",
                Exit::Code(None),
                "killed by a signal",
            ),
            (
                "armstop-test: begin suite=s\narmstop-test: end passed=x",
                Exit::Code(Some(0)),
                "malformed end",
            ),
        ];
        for (t, exit, want) in cases {
            let r = parse_transcript(&lines(t), *exit, SEMI);
            assert!(!r.passed(), "{t:?} passed");
            assert!(
                r.problems.iter().any(|p| p.contains(want)),
                "{t:?}: {:?} lacks {want:?}",
                r.problems
            );
        }
    }

    #[test]
    fn a_hang_names_the_running_test() {
        let t = "armstop-test: begin suite=s\narmstop-test: start m::ok\ntest m::ok ... ok (1 us)\narmstop-test: start m::hang";
        let r = parse_transcript(&lines(t), Exit::TimedOut(7), SEMI);
        assert_eq!(
            r.tests[1],
            TestResult {
                name: "m::hang".into(),
                status: Status::Failed("hung (timed out after 7 s)".into())
            }
        );
        assert_eq!(
            check_selftest_hang(&r, Exit::TimedOut(7)),
            Some("selftest::hangs not reported as hung: None".into())
        );
    }

    fn selftest_transcript(secondary: &str) -> String {
        format!(
            "armstop-test: begin suite=selftest-fail
test selftest::passes ... ok (1 us)
test selftest::assert_fails ... FAILED: cpu0: panicked at a.rs:1:1: assertion `left == right` failed
test selftest::panics_on_boot_core ... FAILED: cpu0: panicked at a.rs:2:1: x
test selftest::panics_on_secondary ... {secondary}
test selftest::data_abort ... FAILED: cpu0: Data Abort (read) FAR=0x7 ELR=0x1 [at core::ptr::read_volatile (core/src/ptr/mod.rs:1:1), inlined into selftest_fail::selftest::data_abort (tests/target/src/bin/selftest-fail.rs:43:22)]
test selftest::stack_overflow ... FAILED: cpu0: stack overflow: Thread stack of cpu0
test selftest::assert_fails_in_a_stopper_callback_on_secondary ... FAILED: cpu1: panicked at a.rs:4:1: assertion in a stopper callback on cpu1
test selftest::assert_fails_in_a_stop_machine_callback_on_secondary ... FAILED: cpu1: panicked at a.rs:4:1: assertion in a stopper callback on cpu1
test selftest::machine_is_sane_after_failed_callbacks ... ok (1 us)
armstop-test: end passed={} failed={} ignored=0",
            if secondary.starts_with("ok") { 3 } else { 2 },
            if secondary.starts_with("ok") { 6 } else { 7 }
        )
    }

    const FAULT_PANIC: &str = "fault-test: begin cpus=3
FAULT cpu1: panicked at a.rs:1:1: deliberate panic on a secondary CPU
FAULT REPORT cpu1 (stopping the machine)
  exception: none (a panic or fatal error)
  backtrace: 0x1 <- 0x2
  cpu0 stopped at ELR=0x10 (backtrace 0x11)
  cpu2 stopped at ELR=0x20 (backtrace 0x21)
FAULT END: machine stopped";

    #[test]
    fn a_conforming_fault_report_passes() {
        assert_eq!(
            check_fault_image("fault-panic", &lines(FAULT_PANIC), Some(1)),
            Vec::<String>::new()
        );
    }

    #[test]
    fn fault_reports_that_break_the_rules_are_caught() {
        let twice = FAULT_PANIC.replace("FAULT END", "FAULT REPORT cpu2 (x)\nFAULT END");
        let p = check_fault_image("fault-panic", &lines(&twice), Some(1));
        assert!(p.iter().any(|p| p.contains("2 fault reports")), "{p:?}");
        let missing = FAULT_PANIC.replace("  cpu2 stopped at ELR=0x20 (backtrace 0x21)\n", "");
        let p = check_fault_image("fault-panic", &lines(&missing), Some(1));
        assert_eq!(p, ["no line says where cpu2 stopped"]);
        let no_bt = FAULT_PANIC.replace("(backtrace 0x21)", "(backtrace (no frames))");
        let p = check_fault_image("fault-panic", &lines(&no_bt), Some(1));
        assert!(p[0].contains("cpu2's line has no backtrace"), "{p:?}");
        let p = check_fault_image("fault-panic", &lines(FAULT_PANIC), Some(0));
        assert!(p[0].contains("exit status 0"), "{p:?}");
        let p = check_fault_image("fault-abort", &lines(FAULT_PANIC), Some(1));
        assert!(p.iter().any(|p| p.contains("cpu0's wanted")), "{p:?}");
        let on = format!("{FAULT_PANIC}\nfault-test: still running after the fault (x)");
        let p = check_fault_image("fault-panic", &lines(&on), Some(1));
        assert_eq!(p, ["the image ran on after the fault"]);
    }

    #[test]
    fn selftest_expectations_hold_for_a_conforming_run() {
        let t = selftest_transcript("FAILED: cpu1: panicked at a.rs:3:1: y");
        let r = parse_transcript(&lines(&t), Exit::Code(Some(1)), SEMI);
        for (name, problem) in check_selftest_fail(&r, Exit::Code(Some(1))) {
            assert_eq!(problem, None, "{name}");
        }
    }

    #[test]
    fn selftest_catches_a_missed_failure() {
        let t = selftest_transcript("ok (3 us)");
        let r = parse_transcript(&lines(&t), Exit::Code(Some(1)), SEMI);
        let checks = check_selftest_fail(&r, Exit::Code(Some(1)));
        let bad: Vec<_> = checks.iter().filter(|c| c.1.is_some()).map(|c| c.0.as_str()).collect();
        assert_eq!(bad, ["selftest::panics_on_secondary", "image_fails"]);
        let t = selftest_transcript("FAILED: cpu2: panicked at a.rs:3:1: y");
        let r = parse_transcript(&lines(&t), Exit::Code(Some(1)), SEMI);
        assert!(
            check_selftest_fail(&r, Exit::Code(Some(1)))[3].1.as_ref().unwrap().contains("cpu1")
        );
        let r = parse_transcript(
            &lines(&selftest_transcript("FAILED: cpu1: panicked at")),
            Exit::Code(Some(0)),
            SEMI,
        );
        assert!(
            check_selftest_fail(&r, Exit::Code(Some(0))).last().unwrap().1.is_some(),
            "exit 0 caught"
        );
    }

    #[test]
    fn junit_escapes_and_counts() {
        let x = junit_xml(&[JunitSuite {
            name: "virt/suite".into(),
            tests: vec![
                TestResult { name: "a<b>".into(), status: Status::Ok },
                TestResult {
                    name: "c".into(),
                    status: Status::Failed("x \"y\" & 'z'\u{1}".into()),
                },
                TestResult { name: "d".into(), status: Status::Ignored("r".into()) },
            ],
        }]);
        assert!(x.contains("tests=\"3\" failures=\"1\" skipped=\"1\""));
        assert!(x.contains("name=\"a&lt;b&gt;\""));
        assert!(x.contains("message=\"x &quot;y&quot; &amp; &apos;z&apos;&#x1;\""));
        assert!(x.contains("<skipped message=\"r\"/>"));
    }

    #[test]
    fn machines_are_known_by_name_with_helpful_errors() {
        assert_eq!(machine("virt-gicv3").unwrap().boot_el, 1);
        let e = machine("virt-gicv9").unwrap_err();
        assert!(e.contains("virt-gicv2") && e.contains("raspi4b-own-psci"), "{e}");
    }

    /// Files for `qemu_args` without touching the file system.
    fn files(image: &str, firmware: Option<&str>) -> BootFiles {
        BootFiles {
            image: image.into(),
            firmware: firmware.map(PathBuf::from),
            notes: vec![],
            reboot_on_reset: false,
            dtb: None,
        }
    }

    fn has(a: &[String], pair: [&str; 2]) -> bool {
        a.windows(2).any(|w| w == pair)
    }

    #[test]
    fn machine_table_invariants() {
        let names: Vec<_> = MACHINES.iter().map(|m| m.name).collect();
        assert_eq!(
            names,
            [
                "virt-gicv2",
                "virt-gicv3",
                "virt-el2-gicv2",
                "virt-el2-gicv3",
                "virt-gicv2-smp1",
                "virt-gicv2-smp2",
                "virt-gicv2-smp8",
                "virt-gicv3-smp1",
                "virt-gicv3-smp2",
                "virt-gicv3-smp8",
                "virt-gicv3-smp16",
                "virt-gicv3-smp64",
                "raspi4b-tfa",
                "raspi4b-own-psci"
            ]
        );
        for (i, m) in MACHINES.iter().enumerate() {
            assert!(!names[..i].contains(&m.name), "{} twice", m.name);
            let board = armstop_boards::by_name(m.board)
                .unwrap_or_else(|| {
                    panic!("{}: board {:?} not in armstop_boards::ALL", m.name, m.board)
                })
                .1;
            assert_eq!(m.board().name, m.board);
            assert_eq!(m.exit(), board.exit, "{}: exit handling is the board's", m.name);
            assert!(matches!(m.boot_el, 1 | 2), "{}", m.name);
            let a = qemu_args(m, &files("/img", Some("/fw")), None);
            // The status comes from QEMU's exit code exactly where semihosting is on; a board
            // that prints its status must never get `-semihosting` (its `hlt` must trap).
            assert_eq!(
                a.contains(&"-semihosting".into()),
                board.exit == ExitMethod::Semihosting,
                "{}: {a:?}",
                m.name
            );
            // A reset ends QEMU, except for an image that resets the machine on purpose.
            assert!(a.contains(&"-no-reboot".into()), "{}: {a:?}", m.name);
            let rebooting = BootFiles { reboot_on_reset: true, ..files("/img", Some("/fw")) };
            let r = qemu_args(m, &rebooting, None);
            assert!(!r.contains(&"-no-reboot".into()), "{}: {r:?}", m.name);
            assert_eq!(r.len(), a.len() - 1, "{}: only -no-reboot differs", m.name);
            match board.psci {
                PsciConduit::Hvc => assert_eq!(m.conduit(), "HVC", "{}", m.name),
                PsciConduit::Smc => assert_eq!(m.conduit(), "SMC", "{}", m.name),
                PsciConduit::FromBootEl => {
                    assert_eq!(m.conduit(), ["HVC", "SMC"][usize::from(m.boot_el) - 1])
                }
            }
            // A raw image only works where it is placed at the board's load address: the Pi's
            // 0x80000 (`raspi4b -kernel` and TF-A both enter there).
            if m.load.raw() {
                assert_eq!(board.load_address, 0x8_0000, "{}", m.name);
                assert_eq!(m.qemu_machine, "raspi4b", "{}", m.name);
            }
            if m.qemu_machine == "raspi4b" {
                assert_eq!(
                    (m.memory, m.cpu, m.smp),
                    ("2G", None, None),
                    "{}: fixed machine",
                    m.name
                );
                assert_eq!(m.boot_el, 2, "{}", m.name);
            } else {
                assert_eq!(m.cpu, Some("cortex-a72"), "{}", m.name);
                let n = m.smp.expect("virt has a choice of CPUs");
                assert_eq!(m.tier == Tier::Full, n == 4, "{}: the full matrix is 4 CPUs", m.name);
                // GICv2 serves 8 CPUs; the image has room for the board's max_cpus.
                let limit = if m.qemu_machine.contains("gic-version=2") { 8 } else { 512 };
                assert!(n >= 1 && n <= limit && usize::from(n) <= board.max_cpus, "{}", m.name);
            }
        }
        for b in armstop_boards::ALL {
            assert!(MACHINES.iter().any(|m| m.board == b.name), "no machine boots {}", b.name);
        }
        assert_eq!(machine("raspi4b-tfa").unwrap().exit(), ExitMethod::PsciSystemOff);
        assert_eq!(machine("virt-el2-gicv3").unwrap().exit(), ExitMethod::Semihosting);
    }

    #[test]
    fn qemu_args_for_each_kind_of_machine() {
        let virt = qemu_args(machine("virt-el2-gicv2").unwrap(), &files("/i/suite", None), None);
        assert!(has(&virt, ["-M", "virt,virtualization=on,gic-version=2"]));
        assert!(has(&virt, ["-cpu", "cortex-a72"]) && has(&virt, ["-smp", "4"]));
        assert!(has(&virt, ["-kernel", "/i/suite"]) && has(&virt, ["-m", "1G"]));
        assert!(!virt.iter().any(|a| a == "-device"));

        let tfa = machine("raspi4b-tfa").unwrap();
        let a = qemu_args(
            tfa,
            &files("/i/suite.bin", Some("/fw/bl31-qemu.bin")),
            Some(Path::new("/l")),
        );
        assert!(has(&a, ["-M", "raspi4b"]) && has(&a, ["-m", "2G"]));
        for absent in ["-kernel", "-cpu", "-smp", "-semihosting", "-bios"] {
            assert!(!a.iter().any(|x| x == absent), "{absent} in {a:?}");
        }
        let devices: Vec<_> =
            a.windows(2).filter(|w| w[0] == "-device").map(|w| w[1].as_str()).collect();
        assert_eq!(
            devices,
            ["loader,file=/fw/bl31-qemu.bin,addr=0x0", "loader,file=/i/suite.bin,addr=0x80000"]
        );
        assert!(
            has(&a, ["-D", "/l"])
                && has(&a, ["-serial", "stdio"])
                && a.contains(&"-no-reboot".into())
        );
        // QEMU's option parser takes a doubled comma as a comma in a file name.
        let a = qemu_args(tfa, &files("/a,b/suite.bin", Some("/fw/bl31.bin")), None);
        assert!(a.contains(&"loader,file=/a,,b/suite.bin,addr=0x80000".into()), "{a:?}");

        let own =
            qemu_args(machine("raspi4b-own-psci").unwrap(), &files("/i/suite.bin", None), None);
        assert!(has(&own, ["-M", "raspi4b"]) && has(&own, ["-kernel", "/i/suite.bin"]));
        for absent in ["-device", "-cpu", "-smp", "-semihosting"] {
            assert!(!own.iter().any(|x| x == absent), "{absent} in {own:?}");
        }
    }

    /// A scratch directory of its own for one test, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Self {
            let d =
                std::env::temp_dir().join(format!("armstop-runner-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Self(d)
        }

        fn touch(&self, rel: &str) -> PathBuf {
            let p = self.0.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
            p
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn images_resolve_under_each_machines_board() {
        let s = Scratch::new("images");
        let root = s.0.join("images");
        let fw = s.0.join("pi-firmware");
        s.touch("images/qemu-virt/suite");
        s.touch("images/qemu-virt/suite.bin");
        s.touch("images/raspi4-tfa/suite");
        s.touch("images/raspi4-tfa/suite.bin");
        s.touch("images/raspi4-own-psci/suite");
        s.touch("pi-firmware/bl31-qemu.bin");
        s.touch("pi-firmware/bl31.bin");
        let suite = ImageRef::Named { root: &root, name: "suite" };

        let virt = boot_files(machine("virt-gicv2").unwrap(), suite, &fw).unwrap();
        assert_eq!(
            virt,
            BootFiles {
                image: root.join("qemu-virt/suite"),
                firmware: None,
                notes: vec![],
                reboot_on_reset: false,
                dtb: None,
            }
        );
        let tfa = boot_files(machine("raspi4b-tfa").unwrap(), suite, &fw).unwrap();
        assert_eq!(tfa.image, root.join("raspi4-tfa/suite.bin"));
        assert_eq!(tfa.firmware, Some(fw.join("bl31-qemu.bin")));
        assert!(tfa.notes.is_empty(), "{:?}", tfa.notes);

        // Only the ELF was built for raspi4-own-psci: the raw image it loads is missing.
        let own = machine("raspi4b-own-psci").unwrap();
        let e = boot_files(own, suite, &fw).unwrap_err();
        for w in
            ["\"suite\"", "board raspi4-own-psci", "raspi4b-own-psci", "suite.bin", "just build"]
        {
            assert!(e.contains(w), "{e:?} lacks {w}");
        }
        let e = boot_files(
            machine("virt-gicv3").unwrap(),
            ImageRef::Named { root: &root, name: "hotplug" },
            &fw,
        )
        .unwrap_err();
        assert!(e.contains("board qemu-virt") && e.contains("just build"), "{e}");

        // A path: the ELF as given; for a raw load, `.bin` next to it.
        let elf = root.join("raspi4-tfa/suite");
        let bin = root.join("raspi4-tfa/suite.bin");
        let m = machine("raspi4b-tfa").unwrap();
        assert_eq!(boot_files(m, ImageRef::Path(&elf), &fw).unwrap().image, bin);
        assert_eq!(boot_files(m, ImageRef::Path(&bin), &fw).unwrap().image, bin);
        assert_eq!(ImageRef::Path(&bin).elf(m), elf);
        assert_eq!(suite.elf(m), elf, "GDB gets the ELF's symbols");
        assert_eq!(ImageRef::Path(&elf).path(machine("virt-gicv3").unwrap()), elf);
        let e =
            boot_files(own, ImageRef::Path(&root.join("raspi4-own-psci/suite")), &fw).unwrap_err();
        assert!(e.contains("no such image") && e.contains("suite.bin"), "{e}");
    }

    #[test]
    fn tfa_falls_back_to_the_unpatched_bl31_and_says_so() {
        let s = Scratch::new("firmware");
        let m = machine("raspi4b-tfa").unwrap();
        let image = s.touch("images/raspi4-tfa/suite.bin");
        let e = boot_files(m, ImageRef::Path(&image), &s.0).unwrap_err();
        for w in ["bl31-qemu.bin", "bl31.bin", "./bootstrap.sh", "scripts/setup.sh"] {
            assert!(e.contains(w), "{e:?} lacks {w}");
        }
        let bl31 = s.touch("bl31.bin");
        let f = boot_files(m, ImageRef::Path(&image), &s.0).unwrap();
        assert_eq!(f.firmware.as_deref(), Some(bl31.as_path()));
        assert_eq!(f.notes.len(), 1);
        assert!(
            f.notes[0].contains("bl31-qemu.bin is missing") && f.notes[0].contains("CPU_OFF"),
            "{:?}",
            f.notes
        );
        let a = qemu_args(m, &f, None);
        assert!(a.contains(&format!("loader,file={},addr=0x0", bl31.display())), "{a:?}");
        s.touch("bl31-qemu.bin");
        let f = boot_files(m, ImageRef::Path(&image), &s.0).unwrap();
        assert!(f.firmware.unwrap().ends_with("bl31-qemu.bin") && f.notes.is_empty());
    }

    /// TF-A's own console lines, as BL31 prints them before entering armstop.
    const TFA_BANNER: &str = "WARNING: Stub magic failure, using default kernel address 0x80000
WARNING: Stub magic failure, DTB address unknown
NOTICE:  BL31: v2.8(debug):
NOTICE:  BL31: Built : 06:31:44, Nov 25 2022
INFO:    ARM GICv2 driver initialized
INFO:    BL31: Initializing runtime services
WARNING: BL31: cortex_a72: CPU workaround for 1319367 was missing!
INFO:    BL31: Preparing for EL3 exit to normal world
INFO:    Entry point address = 0x80000
INFO:    SPSR = 0x3c9
ERROR:   BL31: test ... FAILED? (not armstop's)
[   0.078835] cpu0 INFO  armstop 0.1.0 on raspi4-tfa: boot CPU MPIDR 0x0, entered at EL2";

    /// What TF-A prints when the image calls PSCI SYSTEM_OFF.
    const TFA_SYSTEM_OFF: &str = "INFO:    PSCI Power Domain Map:
INFO:      Domain Node : Level 1, parent_node 4294967295, State ON (0x0)
INFO:      CPU Node : MPID 0x0, parent_node 0, State ON (0x0)
INFO:    rpi3: PSCI_SYSTEM_OFF: Invoking watchdog reset";

    fn pi(body: &str, status: Option<&str>) -> Vec<String> {
        let mut t = format!("{TFA_BANNER}\n{body}");
        if let Some(s) = status {
            t.push_str(&format!("\narmstop: exit status {s}"));
        }
        t.push_str(&format!("\n{TFA_SYSTEM_OFF}"));
        lines(&t)
    }

    const PASSING: &str = "armstop-test: begin suite=s board=raspi4-tfa cpus=4 tests=1
armstop-test: start m::t
test m::t ... ok (1 us)
armstop-test: end passed=1 failed=0 ignored=0";

    const FAILING: &str = "armstop-test: begin suite=s board=raspi4-tfa cpus=4 tests=1
armstop-test: start m::t
test m::t ... FAILED: cpu0: panicked at a.rs:1:1: x
armstop-test: end passed=0 failed=1 ignored=0";

    #[test]
    fn the_pi_status_comes_from_the_console() {
        let ok = Exit::Code(Some(0));
        let r = parse_transcript(&pi(PASSING, Some("0")), ok, CONSOLE);
        assert!(r.passed(), "{:?}", r.problems);
        assert_eq!((r.suite.as_deref(), r.tests.len(), r.status), (Some("s"), 1, Some(0)));
        let r = parse_transcript(&pi(FAILING, Some("1")), ok, CONSOLE);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(!r.passed());
        assert_eq!(r.status, Some(1));

        let cases: &[(&str, Option<&str>, Exit, &str)] = &[
            (PASSING, None, ok, "no `armstop: exit status N` line"),
            (FAILING, None, ok, "no `armstop: exit status N` line"),
            (FAILING, Some("0"), ok, "reported exit status 0 although tests failed"),
            (PASSING, Some("1"), ok, "reported exit status 1 although every test passed"),
            (
                PASSING,
                Some("0"),
                Exit::Code(Some(1)),
                "QEMU exited 1; on this machine it should exit 0",
            ),
            (PASSING, Some("x"), ok, "malformed status line"),
            (PASSING, Some("300"), ok, "malformed status line"),
            (PASSING, Some("0\narmstop: exit status 1"), ok, "two exit statuses: 0, then 1"),
            (
                PASSING,
                Some("0"),
                Exit::TimedOut(9),
                "after `armstop: exit status 0` (PSCI SYSTEM_OFF did not end QEMU)",
            ),
            (PASSING, Some("0"), Exit::Code(None), "killed by a signal"),
        ];
        for (body, status, exit, want) in cases {
            let r = parse_transcript(&pi(body, *status), *exit, CONSOLE);
            assert!(!r.passed(), "{body:?} {status:?} {exit:?} passed");
            assert!(
                r.problems.iter().any(|p| p.contains(want)),
                "{status:?} {exit:?}: {:?} lacks {want:?}",
                r.problems
            );
        }
        // Where QEMU's exit code is the status, a console status line means nothing.
        let r = parse_transcript(&pi(FAILING, Some("0")), Exit::Code(Some(1)), SEMI);
        assert!(r.problems.is_empty() && r.status == Some(1), "{r:?}");
        let r = parse_transcript(&pi(PASSING, None), Exit::Code(Some(0)), SEMI);
        assert!(r.passed(), "{:?}", r.problems);
    }

    #[test]
    fn status_line_after_a_partial_line_counts() {
        let t = format!("{PASSING}\n[   1.0] cpu2 INFO  half a liarmstop: exit status 0\r");
        assert_eq!(console_status(&lines(&t)), Ok(Some(0)));
        let r = parse_transcript(&lines(&t), Exit::Code(Some(0)), CONSOLE);
        assert!(r.passed(), "{:?}", r.problems);
        assert_eq!(
            console_status(&lines("armstop: exit status 3 and more"))
                .map_err(|e| e.contains("malformed")),
            Err(true)
        );
        assert_eq!(
            console_status(&lines("armstop: exit status 1\narmstop: exit status 1")),
            Ok(Some(1))
        );
    }

    #[test]
    fn tfa_noise_is_not_read_as_results() {
        let r = parse_transcript(&pi(GOOD, Some("1")), Exit::Code(Some(1)), SEMI);
        assert_eq!(r.tests.len(), 3, "{:?}", r.tests);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        let r = parse_transcript(&pi(GOOD, Some("1")), Exit::Code(Some(0)), CONSOLE);
        assert_eq!(r.tests.len(), 3, "{:?}", r.tests);
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        // A boot that never gets past TF-A.
        let r = parse_transcript(&lines(TFA_BANNER), Exit::TimedOut(60), CONSOLE);
        assert!(
            r.tests.is_empty() && r.problems.iter().any(|p| p.contains("never began")),
            "{r:?}"
        );
    }

    #[test]
    fn harness_selftests_hold_on_the_pi() {
        let t = selftest_transcript("FAILED: cpu1: panicked at a.rs:3:1: y");
        // The Pi: QEMU exits 0, the failing status is on the console.
        let r = parse_transcript(&pi(&t, Some("1")), Exit::Code(Some(0)), CONSOLE);
        for (name, problem) in check_selftest_fail(&r, Exit::Code(Some(0))) {
            assert_eq!(problem, None, "{name}");
        }
        let r = parse_transcript(&pi(&t, None), Exit::Code(Some(0)), CONSOLE);
        let whole = check_selftest_fail(&r, Exit::Code(Some(0))).pop().unwrap();
        assert!(whole.1.as_ref().is_some_and(|p| p.contains("must exit non-zero")), "{whole:?}");
        let r = parse_transcript(&pi(&t, Some("0")), Exit::Code(Some(0)), CONSOLE);
        assert!(check_selftest_fail(&r, Exit::Code(Some(0))).pop().unwrap().1.is_some());
        let hang = "armstop-test: begin suite=selftest-hang\narmstop-test: start selftest::hangs";
        let r = parse_transcript(&pi(hang, None), Exit::TimedOut(5), CONSOLE);
        assert_eq!(check_selftest_hang(&r, Exit::TimedOut(5)), None);
        let r = parse_transcript(&pi(hang, Some("1")), Exit::Code(Some(0)), CONSOLE);
        assert!(check_selftest_hang(&r, Exit::Code(Some(0))).is_some());
    }

    #[test]
    fn figures_belong_to_the_running_test() {
        let t = "armstop-test: begin suite=s board=b cpus=4 tests=1\narmstop-test: start m::t\narmstop-test: figure storm: 2000 cycles\ntest m::t ... ok (1 us)\narmstop-test: end passed=1 failed=0 ignored=0";
        let lines: Vec<String> = t.lines().map(str::to_string).collect();
        let r = parse_transcript(&lines, Exit::Code(Some(0)), SEMI);
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.figures, vec![("m::t".to_string(), "storm: 2000 cycles".to_string())]);
    }

    fn soak_lines(begin_secs: u32, end: &str) -> Vec<String> {
        [
            format!("soak {begin_secs}s"),
            format!("soak: {begin_secs} s; progress every 10 s"),
            "armstop-load: progress soak: 10/15 s, 1280 cycles".to_string(),
            format!("armstop-load: --- End of soak: {end}"),
            "soak: ok: 31225 requests run, none lost".to_string(),
        ]
        .into()
    }

    const SOAK_DONE: &str = "SUCCESS lost=0 wrong=0 bad_refusals=0 park_with_works=0 \
                        bad_transitions=0 errors=0 watchdog_reports=3 cycles=1616 accepted=31225";

    #[test]
    fn a_soak_passes_only_with_every_count_zero() {
        let ok = soak_lines(15, SOAK_DONE);
        assert_eq!(check_soak(&ok, 15), Ok(SOAK_DONE.to_string()));
        // Watchdog reports are printed, not judged: an overcommitted host can be that slow.
        for (key, bad) in [
            ("lost", "lost=1"),
            ("wrong", "wrong=2"),
            ("bad_refusals", "bad_refusals=1"),
            ("park_with_works", "park_with_works=1"),
            ("bad_transitions", "bad_transitions=4"),
            ("errors", "errors=1"),
        ] {
            let end = SOAK_DONE.replace(&format!("{key}=0"), bad).replace("SUCCESS", "FAILURE");
            let e = check_soak(&soak_lines(15, &end), 15).unwrap_err();
            assert!(e.contains(bad) && e.contains("does not say SUCCESS"), "{key}: {e}");
            // Even if the line said SUCCESS and the console said ok.
            let end = SOAK_DONE.replace(&format!("{key}=0"), bad);
            assert_eq!(check_soak(&soak_lines(15, &end), 15).unwrap_err(), bad, "{key}");
        }
        let e = check_soak(&ok, 600).unwrap_err();
        assert!(e.contains("soaks for \"15\" s, not the 600 s asked"), "{e}");
        let e = check_soak(&ok[..3], 15).unwrap_err();
        assert!(e.contains("no end-of-soak totals"), "{e}");
        assert!(check_soak(&ok[..4], 15).unwrap_err().contains("did not say `soak: ok`"));
        let e = check_soak(&ok[..0], 15).unwrap_err();
        assert!(e.contains("never began"), "{e}");
        let missing = SOAK_DONE.replace("lost=0 ", "");
        let e = check_soak(&soak_lines(15, &missing), 15).unwrap_err();
        assert_eq!(e, "the end line has no lost=");
    }
}
