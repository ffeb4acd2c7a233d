//! `armstop-runner`: boots firmware images in QEMU.
//!
//! ```text
//! armstop-runner test [--machines a,b] [--images ROOT] [--firmware-dir DIR] [--timeout S]
//!                     [--begin-timeout S] [--junit PATH] [--log-dir DIR] [--verbose]
//!                     --suite NAME... [--reboot-suite NAME...] [--selftest-fail NAME]
//!                     [--selftest-hang NAME] [--selftest-hang-timeout S]
//! armstop-runner boot [--machine M] [--images ROOT] [--firmware-dir DIR] [--timeout S] [--gdb]
//!                     [--log-dir DIR] NAME|PATH
//! armstop-runner run [--script FILE] [MACHINE...]
//! armstop-runner soak [--machine M] [--images ROOT] [--timeout S] [--log-dir DIR]
//!                     --duration D
//! armstop-runner machines [--images ROOT] [--firmware-dir DIR]
//! ```
//! `run` boots the main image and hands its console to the terminal, types `--script` into it
//! (each step checked), or tells it `poweroff` when stdin is no terminal; `test --script FILE`
//! runs the script on every machine, one test per step (format: `armstop_runner::console`).
//! `soak` types `soak <D>` (`30s`, `10m`, `1h`) into the main image's console, echoes it, and
//! exits 0 only if the soak ran for that long and its totals show nothing lost, no wrong run,
//! no bad refusal, no stopper parked with works, no bad hotplug transition and no error; its
//! timeout is the duration plus a margin (`armstop_runner::soak_timeout`).
//! An image NAME is booted on each machine as `ROOT/<machine's board>/NAME` (ELF) or
//! `NAME.bin` (raw), whichever the machine loads; ROOT defaults to `target/images`, and the
//! boot firmware (TF-A for `raspi4b-tfa`) is looked for in DIR, by default `ROOT/../pi-firmware`.
//! `boot` also takes a path (anything with a `/`). `--qemu PATH` (or `ARMSTOP_QEMU`) names the
//! QEMU binary. A `--reboot-suite` image is a suite that resets the machine on purpose: it is
//! booted so that a reset reboots the machine, where every other image ends QEMU on a reset. `test` runs every machine unless told otherwise, ends with the line
//! `N passed, N failed` and exits 0 only if nothing failed.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use armstop_boards::ExitMethod;
use armstop_runner::console::{self as script, FRESH_PROMPT, Step, count_prompts};
use armstop_runner::symbols::{Symbols, fault_addresses};
use armstop_runner::{
    BootFiles, Exit, ImageRef, ImageReport, JunitSuite, Load, MACHINES, Machine, Status,
    TestResult, Tier, boot_files, check_fault_image, check_selftest_fail, check_selftest_hang,
    check_soak, console_status, find_firmware, junit_xml, machine, parse_transcript, qemu_args,
    soak_timeout,
};
use armstop_shell::plan::Plan as TestPlan;

const TAIL: usize = 40;

/// The test protocol's first line: until it shows, the image is still booting.
const BEGIN: &str = "armstop-test: begin ";

struct Run {
    lines: Vec<String>,
    stderr: String,
    exit: Exit,
    /// For a line of a fault report (by index in `lines`): its code addresses as function,
    /// file and line.
    places: Vec<(usize, Vec<String>)>,
}

/// The ELF of an image the machine boots (its `.bin` is the raw copy of it).
fn elf_of(files: &BootFiles) -> PathBuf {
    match files.image.extension() {
        Some(e) if e == "bin" => files.image.with_extension(""),
        _ => files.image.clone(),
    }
}

/// Adds to each failure caused by a fault where it happened: the function, file and line of
/// its `ELR=` and `LR=`, from the image's debug information.
fn symbolize(report: &mut ImageReport, files: &BootFiles) {
    let mut symbols = LazySymbols::new(files);
    for t in &mut report.tests {
        if let Status::Failed(m) = &t.status
            && !fault_addresses(m).is_empty()
            && let Some(s) = symbols.get()
        {
            t.status = Status::Failed(s.annotate_message(m));
        }
    }
}

/// The image's symbols, opened at the first fault line that needs them (an image with no
/// fault never pays for it); a note, once, if they cannot be read.
struct LazySymbols {
    elf: PathBuf,
    opened: Option<Result<Symbols, String>>,
}

impl LazySymbols {
    fn new(files: &BootFiles) -> Self {
        LazySymbols { elf: elf_of(files), opened: None }
    }

    fn get(&mut self) -> Option<&Symbols> {
        let elf = &self.elf;
        self.opened.get_or_insert_with(|| Symbols::open(elf)).as_ref().ok()
    }

    /// A fault line's places, or why there are none (once).
    fn annotate(&mut self, line: &str) -> Vec<String> {
        if fault_addresses(line).is_empty() {
            return vec![];
        }
        let first = self.opened.is_none();
        if let Some(s) = self.get() {
            return s.annotate(line);
        }
        match &self.opened {
            Some(Err(e)) if first => vec![format!("(no source lines: {e})")],
            _ => vec![],
        }
    }
}

struct Options {
    qemu: String,
    machines: Vec<&'static Machine>,
    timeout: u64,
    begin_timeout: u64,
    hang_timeout: u64,
    junit: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    verbose: bool,
    gdb: bool,
    images: PathBuf,
    firmware_dir: PathBuf,
    suites: Vec<String>,
    /// Of `suites`, the images that reset the machine on purpose (booted so that it reboots).
    reboot_suites: Vec<String>,
    selftest_fail: Option<String>,
    selftest_hang: Option<String>,
    /// Images that fault on purpose and must stop the machine with one report.
    fault_images: Vec<String>,
    /// `-dtb` for every boot.
    dtb: Option<PathBuf>,
    /// For `boot-error`: the console line (part of it) the boot must stop with.
    expect: Option<String>,
    /// For `run` and `test`: console scripts to type into the main image, each in a boot of
    /// its own (`run` takes one).
    scripts: Vec<PathBuf>,
    /// For `soak`: how long, in seconds.
    duration: Option<u32>,
    /// For `test`: only the tests whose names contain this.
    only: Option<String>,
    args: Vec<String>,
    /// Positional arguments after `--`.
    after_dashes: Vec<String>,
}

fn usage() -> String {
    "usage: armstop-runner [--qemu PATH] test [--machines a,b] [--images ROOT] [--firmware-dir DIR] [--timeout S] [--begin-timeout S] [--junit PATH] [--log-dir DIR] [--verbose] --suite NAME... [--reboot-suite NAME...] [--selftest-fail NAME] [--selftest-hang NAME] [--selftest-hang-timeout S] [--fault-image NAME...] [--only TEXT]\n       armstop-runner [--qemu PATH] test-image NAME [MACHINE...] [-- FILTER]   (test --suite NAME [--machines ...] [--only FILTER])\n       armstop-runner [--qemu PATH] boot [--machine M] [--images ROOT] [--firmware-dir DIR] [--timeout S] [--gdb] [--log-dir DIR] NAME|PATH\n       armstop-runner [--qemu PATH] boot-error [--machine M] [--smp N] [--dtb FILE] --expect TEXT NAME\n       armstop-runner [--qemu PATH] run [--script FILE] [--timeout S] [MACHINE...]\n       armstop-runner [--qemu PATH] soak [--machine M] [--images ROOT] [--timeout S] [--log-dir DIR] --duration D\n       armstop-runner machines [--images ROOT] [--firmware-dir DIR]\n(`run` boots the main image on each machine and hands its console to the terminal, or types the script into it, or `poweroff` when stdin is no terminal; `test --script FILE` runs the script on every machine, each step a test.)\n(`boot` and `test` also take --smp N, another CPU count for the machines named, and --dtb FILE, a device tree of your own.)\nImages are ROOT/<board>/NAME (default ROOT: target/images); boot firmware is in DIR (default ROOT/../pi-firmware).".into()
}

/// Where boot firmware is looked for when not told: next to the image root
/// (`target/images` → `target/pi-firmware`).
fn default_firmware_dir(images: &Path) -> PathBuf {
    images
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("target/pi-firmware"), |p| p.join("pi-firmware"))
}

fn parse(args: &[String]) -> Result<(String, Options), String> {
    let mut o = Options {
        qemu: std::env::var("ARMSTOP_QEMU").unwrap_or_else(|_| "qemu-system-aarch64".into()),
        machines: MACHINES.iter().filter(|m| m.tier == Tier::Full).collect(),
        timeout: 0,
        begin_timeout: 60,
        hang_timeout: 5,
        junit: None,
        log_dir: None,
        verbose: false,
        gdb: false,
        images: PathBuf::from("target/images"),
        firmware_dir: PathBuf::new(),
        suites: vec![],
        reboot_suites: vec![],
        selftest_fail: None,
        fault_images: Vec::new(),
        selftest_hang: None,
        dtb: None,
        expect: None,
        scripts: vec![],
        duration: None,
        only: None,
        args: vec![],
        after_dashes: vec![],
    };
    let mut smp: Option<u16> = None;
    let mut cmd = None;
    let mut timeout = None;
    let mut firmware_dir = None;
    let seconds =
        |v: String, what: &str| v.parse().map_err(|_| format!("{what} takes whole seconds"));
    let mut dashes = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| it.next().cloned().ok_or_else(|| format!("{a} needs {what}"));
        match a.as_str() {
            "--qemu" => o.qemu = value("a path")?,
            "--machines" | "--machine" => {
                o.machines =
                    value("machine names")?.split(',').map(machine).collect::<Result<_, _>>()?
            }
            "--timeout" => timeout = Some(seconds(value("seconds")?, a)?),
            "--begin-timeout" => o.begin_timeout = seconds(value("seconds")?, a)?,
            "--selftest-hang-timeout" => o.hang_timeout = seconds(value("seconds")?, a)?,
            "--junit" => o.junit = Some(value("a path")?.into()),
            "--log-dir" => o.log_dir = Some(value("a directory")?.into()),
            "--images" => o.images = value("a directory")?.into(),
            "--firmware-dir" => firmware_dir = Some(value("a directory")?.into()),
            "--suite" => o.suites.push(value("an image name")?),
            "--reboot-suite" => {
                let name = value("an image name")?;
                o.suites.push(name.clone());
                o.reboot_suites.push(name);
            }
            "--selftest-fail" => o.selftest_fail = Some(value("an image name")?),
            "--selftest-hang" => o.selftest_hang = Some(value("an image name")?),
            "--fault-image" => o.fault_images.push(value("an image name")?),
            "--verbose" => o.verbose = true,
            "--smp" => {
                let v = value("a CPU count")?;
                smp = Some(v.parse().ok().filter(|n| (1..=512).contains(n)).ok_or_else(|| {
                    format!("--smp {v:?}: a CPU count from 1 to 512 (GICv2 machines: 8)")
                })?);
            }
            "--dtb" => o.dtb = Some(value("a device tree blob")?.into()),
            "--expect" => o.expect = Some(value("a console message")?),
            "--script" => o.scripts.push(value("a console script")?.into()),
            "--duration" => {
                let v = value("a duration")?;
                o.duration =
                    Some(armstop_shell::parse_duration(v.as_bytes()).ok_or_else(|| {
                        format!(
                            "--duration {v:?}: a duration such as 30s, 10m or 1h, at most {} s",
                            armstop_shell::STORM_MAX_SECS
                        )
                    })?);
            }
            "--gdb" => o.gdb = true,
            "--only" => {
                let v = value("a part of a test name")?;
                if v.is_empty()
                    || v.len() > armstop_shell::plan::ONLY_MAX
                    || v.contains(char::is_whitespace)
                {
                    return Err(format!(
                        "--only {v:?}: a part of a test name, 1 to {} bytes, no spaces",
                        armstop_shell::plan::ONLY_MAX
                    ));
                }
                o.only = Some(v);
            }
            "-h" | "--help" => return Err(usage()),
            // `just run -- --script F` passes the separator on; `test-image` takes a filter
            // after it.
            "--" => dashes = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{}", usage())),
            s if cmd.is_none() => cmd = Some(s.to_string()),
            s if dashes => o.after_dashes.push(s.into()),
            s => o.args.push(s.into()),
        }
    }
    let cmd = cmd.ok_or_else(usage)?;
    if let Some(n) = smp {
        // The same machine with another CPU count: named as it is, with `-smp` showing in the
        // command line the header prints.
        o.machines = o
            .machines
            .iter()
            .map(|m| match m.smp {
                Some(_) => Ok(&*Box::leak(Box::new(Machine { smp: Some(n), ..**m }))),
                None => Err(format!("--smp: {} has a fixed CPU count", m.name)),
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(f) = o.scripts.iter().find(|f| !f.is_file()) {
        return Err(format!("--script {}: no such file", f.display()));
    }
    if let Some(dtb) = o.dtb.as_ref().filter(|d| !d.is_file()) {
        return Err(format!("--dtb {}: no such file", dtb.display()));
    }
    // The hotplug image takes about two minutes under TCG: keep the default generous.
    o.timeout = timeout.unwrap_or(if cmd == "test" || cmd == "test-image" { 600 } else { 0 });
    if cmd == "test-image" {
        // `test-image IMAGE [MACHINE...] [-- FILTER]`: `test --suite IMAGE [--machines ...]
        // [--only FILTER]`.
        let Some((image, machines)) = o.args.split_first() else {
            return Err(format!("test-image needs an image name\n{}", usage()));
        };
        o.suites = vec![image.clone()];
        if !machines.is_empty() {
            o.machines = machines.iter().map(|n| machine(n)).collect::<Result<_, _>>()?;
        }
        match o.after_dashes.as_slice() {
            [] => {}
            [f] if o.only.is_none() => {
                if f.is_empty() || f.len() > armstop_shell::plan::ONLY_MAX {
                    return Err(format!(
                        "filter {f:?}: 1 to {} bytes",
                        armstop_shell::plan::ONLY_MAX
                    ));
                }
                o.only = Some(f.clone());
            }
            _ => return Err("test-image takes one filter after `--`".into()),
        }
        o.args.clear();
    } else if !o.after_dashes.is_empty() {
        return Err(format!("unexpected {:?} after `--`\n{}", o.after_dashes, usage()));
    }
    o.firmware_dir = firmware_dir.unwrap_or_else(|| default_firmware_dir(&o.images));
    for name in
        o.suites.iter().chain(&o.selftest_fail).chain(&o.selftest_hang).chain(&o.fault_images)
    {
        if name.contains('/') || name.is_empty() {
            return Err(format!(
                "{name:?}: test takes image names (booted as <images root>/<board>/<name>), not paths"
            ));
        }
    }
    Ok((cmd, o))
}

/// `files` with `--dtb`'s tree, where `m` can take one.
fn with_dtb(o: &Options, m: &Machine, files: BootFiles) -> Result<BootFiles, String> {
    // QEMU hands a tree only to a kernel it loads itself; with boot firmware loaded at 0 it
    // places the tree there too, over the firmware.
    if o.dtb.is_some() && matches!(m.load, Load::Firmware(_)) {
        return Err(format!(
            "--dtb: {} boots through firmware loaded at 0, which QEMU would overwrite with the \
             tree; use a machine that boots the image with -kernel",
            m.name
        ));
    }
    Ok(BootFiles { dtb: o.dtb.clone(), ..files })
}

/// How long `boot` lets QEMU run.
struct Limits {
    /// Whole run (0: no limit).
    total: u64,
    /// Until the test protocol's `begin` line (0: no limit), so that a machine that hangs at
    /// boot is given up on early.
    begin: u64,
}

/// Starts QEMU for `files` on `m` with its console on a pipe, and QEMU's own log (guest errors)
/// in the log directory, if there is one, as `<machine>-<log_name>.log`.
fn spawn_qemu(
    o: &Options,
    m: &Machine,
    files: &BootFiles,
    log_name: &str,
    stdin: Stdio,
    stderr: Stdio,
) -> Result<std::process::Child, String> {
    let log = o.log_dir.as_ref().map(|d| {
        let _ = std::fs::create_dir_all(d);
        d.join(format!("{}-{log_name}.log", m.name))
    });
    Command::new(&o.qemu)
        .args(qemu_args(m, files, log.as_deref()))
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .map_err(|e| {
            format!("cannot start {}: {e} (run `just setup`, or set --qemu / ARMSTOP_QEMU)", o.qemu)
        })
}

/// Boots `files` on `m`, reading the console until QEMU exits or a limit passes. `echo` prints
/// each line as it comes, with a prefix; `interactive` also leaves QEMU's stderr on the terminal.
/// `plan`, if any, is typed on the console when a test image asks for its plan.
#[allow(clippy::too_many_arguments)]
fn boot(
    o: &Options,
    m: &Machine,
    files: &BootFiles,
    log_name: &str,
    limits: Limits,
    echo: Option<&str>,
    interactive: bool,
    plan: Option<Vec<u8>>,
) -> Result<Run, String> {
    let stderr = if interactive { Stdio::inherit() } else { Stdio::piped() };
    let stdin = if plan.is_some() { Stdio::piped() } else { Stdio::null() };
    let mut child = spawn_qemu(o, m, files, log_name, stdin, stderr)?;
    // Typed only once asked: what QEMU hands the UART before the image has enabled it is
    // dropped. From a thread, so a full pipe cannot hold up the reading.
    let mut answer = plan.zip(child.stdin.take());
    let mut type_plan = move || {
        if let Some((bytes, mut pipe)) = answer.take() {
            std::thread::spawn(move || {
                use std::io::Write;
                let _ = pipe.write_all(&bytes).and_then(|()| pipe.flush());
            });
        }
    };
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let err_thread = child.stderr.take().map(|mut stderr| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        })
    });
    let start = Instant::now();
    let mut lines: Vec<String> = Vec::new();
    let mut began = false;
    // Keeps a line; says whether it is the protocol's `begin`.
    let mut symbols = LazySymbols::new(files);
    let mut places: Vec<(usize, Vec<String>)> = Vec::new();
    let mut take = |line: String, lines: &mut Vec<String>| {
        if let Some(prefix) = echo {
            println!("{prefix}{line}");
        }
        let here = symbols.annotate(&line);
        if !here.is_empty() {
            if let Some(prefix) = echo {
                for p in &here {
                    println!("{prefix}    = {p}");
                }
            }
            places.push((lines.len(), here));
        }
        if line.starts_with(PLAN_ASKED) {
            type_plan();
        }
        let begin = line.starts_with(BEGIN);
        lines.push(line);
        begin
    };
    let exit = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                began |= take(line, &mut lines);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().map_err(|e| format!("waiting for QEMU: {e}"))?;
                break Exit::Code(status.code());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if let Some(status) = child.try_wait().map_err(|e| format!("waiting for QEMU: {e}"))? {
            // Drain what is still buffered.
            while let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                take(line, &mut lines);
            }
            break Exit::Code(status.code());
        }
        let elapsed = start.elapsed();
        let limit = if limits.total > 0 && elapsed >= Duration::from_secs(limits.total) {
            Some(limits.total)
        } else if limits.begin > 0 && !began && elapsed >= Duration::from_secs(limits.begin) {
            Some(limits.begin)
        } else {
            None
        };
        if let Some(s) = limit {
            let _ = child.kill();
            let _ = child.wait();
            break Exit::TimedOut(s);
        }
    };
    let stderr = err_thread.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(Run { lines, stderr, exit, places })
}

fn show_tail(run: &Run, prefix: &str) {
    let first = run.lines.len().saturating_sub(TAIL);
    println!("{prefix}last {} console lines:", run.lines.len() - first);
    for (i, l) in run.lines.iter().enumerate().skip(first) {
        println!("{prefix}| {}", l.trim_end());
        for (_, places) in run.places.iter().filter(|(at, _)| *at == i) {
            for p in places {
                println!("{prefix}|     = {p}");
            }
        }
    }
    if !run.stderr.trim().is_empty() {
        println!("{prefix}QEMU stderr:");
        for l in run.stderr.lines().rev().take(TAIL).collect::<Vec<_>>().into_iter().rev() {
            println!("{prefix}! {l}");
        }
    }
}

fn print_result(machine: &str, t: &TestResult) {
    match &t.status {
        Status::Ok => println!("[{machine}] {} ... ok", t.name),
        Status::Failed(m) => println!("[{machine}] {} ... FAILED: {m}", t.name),
        Status::Ignored(m) => println!("[{machine}] {} ... ignored: {m}", t.name),
    }
}

/// One machine's part of a `test` run, with every file checked before anything boots.
struct Plan {
    machine: &'static Machine,
    suites: Vec<(String, BootFiles)>,
    selftest_fail: Option<BootFiles>,
    selftest_hang: Option<BootFiles>,
    fault_images: Vec<(String, BootFiles)>,
    notes: Vec<String>,
}

fn plan(o: &Options, m: &'static Machine) -> Result<Plan, String> {
    let files = |name: &str| -> Result<BootFiles, String> {
        let f = boot_files(m, ImageRef::Named { root: &o.images, name }, &o.firmware_dir)?;
        with_dtb(o, m, f)
    };
    let suites = o
        .suites
        .iter()
        .map(|n| {
            let f = BootFiles { reboot_on_reset: o.reboot_suites.contains(n), ..files(n)? };
            Ok((n.clone(), f))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let selftest_fail = o.selftest_fail.as_deref().map(files).transpose()?;
    let selftest_hang = o.selftest_hang.as_deref().map(files).transpose()?;
    let fault_images = o
        .fault_images
        .iter()
        .map(|n| Ok((n.clone(), files(n)?)))
        .collect::<Result<Vec<_>, String>>()?;
    let mut notes: Vec<String> = Vec::new();
    for n in suites.iter().map(|s| &s.1).chain(&selftest_fail).chain(&selftest_hang) {
        for note in &n.notes {
            if !notes.contains(note) {
                notes.push(note.clone());
            }
        }
    }
    Ok(Plan { machine: m, suites, selftest_fail, selftest_hang, fault_images, notes })
}

fn header(m: &Machine) -> String {
    format!(
        "{} (board {}, PSCI over {}; {})",
        m.description,
        m.board,
        m.conduit(),
        m.status_source()
    )
}

fn test(o: &Options) -> Result<bool, String> {
    if o.suites.is_empty()
        && o.selftest_fail.is_none()
        && o.selftest_hang.is_none()
        && o.scripts.is_empty()
        && o.fault_images.is_empty()
    {
        return Err(format!("test needs at least one image or --script\n{}", usage()));
    }
    let scripts = o.scripts.iter().map(|f| read_script(f)).collect::<Result<Vec<_>, _>>()?;
    // Every image and firmware file of every machine first: a missing one stops the run
    // before anything boots.
    let plans = o.machines.iter().map(|m| plan(o, m)).collect::<Result<Vec<_>, _>>()?;
    let limits = |total| Limits { total, begin: o.begin_timeout };
    let mut junit = Vec::new();
    for p in &plans {
        let m = p.machine;
        println!("=== {}: {}", m.name, header(m));
        for note in &p.notes {
            println!("[{}] note: {note}", m.name);
        }
        let echo_prefix = format!("[{}] | ", m.name);
        let echo = o.verbose.then_some(echo_prefix.as_str());
        for (image, files) in &p.suites {
            let (name, tests) = run_suite(o, m, files, image, echo)?;
            junit.push(JunitSuite { name: format!("{}/{name}", m.name), tests });
        }
        let mut harness = Vec::new();
        if let (Some(files), Some(image)) = (&p.selftest_fail, &o.selftest_fail) {
            // Every test in one boot, going on after failures: the harness's own recovery is
            // what this image checks.
            let every = plan_bytes(&TestPlan::ALL);
            let run = boot(o, m, files, image, limits(o.timeout), echo, false, every)?;
            let mut report = parse_transcript(&run.lines, run.exit, m.exit());
            symbolize(&mut report, files);
            let checks = check_selftest_fail(&report, run.exit);
            let failed = checks.iter().any(|c| c.1.is_some());
            for (check, problem) in checks {
                harness.push(TestResult {
                    name: format!("harness-selftest::{check}"),
                    status: problem.map_or(Status::Ok, Status::Failed),
                });
            }
            if failed {
                show_tail(&run, &format!("[{}] ", m.name));
            }
        }
        if let (Some(files), Some(image)) = (&p.selftest_hang, &o.selftest_hang) {
            let every = plan_bytes(&TestPlan::ALL);
            let run = boot(o, m, files, image, limits(o.hang_timeout), echo, false, every)?;
            let report = parse_transcript(&run.lines, run.exit, m.exit());
            let problem = check_selftest_hang(&report, run.exit);
            if problem.is_some() {
                show_tail(&run, &format!("[{}] ", m.name));
            } else if o.verbose {
                // What a user sees when their own test hangs.
                show_tail(&run, &format!("[{}] (expected hang) ", m.name));
            }
            harness.push(TestResult {
                name: "harness-selftest::hang_detected".into(),
                status: problem.map_or(Status::Ok, Status::Failed),
            });
        }
        for (name, files) in &p.fault_images {
            let run = boot(o, m, files, name, limits(o.hang_timeout), echo, false, None)?;
            let status = match (run.exit, m.exit()) {
                (Exit::Code(Some(c)), ExitMethod::Semihosting) => Some(c),
                (Exit::Code(Some(_)), ExitMethod::PsciSystemOff) => {
                    console_status(&run.lines).ok().flatten()
                }
                _ => None,
            };
            let mut problems = check_fault_image(name, &run.lines, status);
            if let Exit::TimedOut(s) = run.exit {
                problems.insert(0, format!("hung: killed after {s} s"));
            }
            if !problems.is_empty() {
                show_tail(&run, &format!("[{}] ", m.name));
            }
            harness.push(TestResult {
                name: format!("fault::{name}"),
                status: if problems.is_empty() {
                    Status::Ok
                } else {
                    Status::Failed(problems.join("; "))
                },
            });
        }
        for t in &harness {
            print_result(m.name, t);
        }
        for (name, steps) in &scripts {
            let tests = console_tests(o, m, name, steps)?;
            for t in &tests {
                print_result(m.name, t);
            }
            junit.push(JunitSuite { name: format!("{}/{name}", m.name), tests });
        }
        if !harness.is_empty() {
            junit.push(JunitSuite { name: format!("{}/harness-selftest", m.name), tests: harness });
        }
    }
    let all = junit.iter().flat_map(|s| &s.tests);
    let (mut passed, mut failed, mut ignored) = (0, 0, 0);
    for t in all {
        match t.status {
            Status::Ok => passed += 1,
            Status::Failed(_) => failed += 1,
            Status::Ignored(_) => ignored += 1,
        }
    }
    if let Some(path) = &o.junit {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(path, junit_xml(&junit))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if failed > 0 {
        println!("\nFailures:");
        for s in &junit {
            for t in &s.tests {
                if let Status::Failed(m) = &t.status {
                    println!("  [{}] {}: {m}", s.name, t.name);
                }
            }
        }
    }
    println!();
    if ignored > 0 {
        println!("{passed} passed, {failed} failed, {ignored} skipped");
    } else {
        println!("{passed} passed, {failed} failed");
    }
    Ok(failed == 0 && passed > 0)
}

/// The line a test image asks for its plan with.
const PLAN_ASKED: &str = "armstop-test: plan?";

/// What the runner types for a plan.
fn plan_bytes(plan: &TestPlan) -> Option<Vec<u8>> {
    Some(format!("{plan}\r").into_bytes())
}

/// Boots test image `image` on `m` until each of its tests (those `--only` selects) has run,
/// printing each result; returns the suite's name and the results. The image is told to stop
/// at its first failure, and is booted again from the next test: each failure it reports is
/// on a freshly booted machine, so it is the test's own and not one an earlier test left
/// behind (a held mailbox, a CPU left off). A test that hangs, or stops the machine, is killed
/// with it, and the run goes on from the next test the same way.
fn run_suite(
    o: &Options,
    m: &Machine,
    files: &BootFiles,
    image: &str,
    echo: Option<&str>,
) -> Result<(String, Vec<TestResult>), String> {
    let only = o.only.as_deref().unwrap_or("");
    let mut name = image.to_string();
    let mut tests: Vec<TestResult> = Vec::new();
    let (mut from, mut boots, mut total) = (0, 0, None);
    loop {
        boots += 1;
        let plan = TestPlan { from, only, stop_at_failure: true };
        let typed = plan_bytes(&plan);
        let limits = Limits { total: o.timeout, begin: o.begin_timeout };
        let run = boot(o, m, files, image, limits, echo, false, typed)?;
        let mut report = parse_transcript(&run.lines, run.exit, m.exit());
        name = report.suite.clone().unwrap_or(name);
        total = report.total.or(total);
        // Where to go on: where the image said, or after the test it hung in or died in
        // (whose failure is already a result, so the time-out is no second one).
        let died_in = match (report.next, report.tests.last()) {
            (None, Some(t)) if report.end.is_none() && matches!(t.status, Status::Failed(_)) => {
                report.last_started
            }
            _ => None,
        };
        if died_in.is_some() {
            report.problems.retain(|p| {
                !(p.starts_with("timed out after")
                    || p.starts_with("no `armstop-test: end` line")
                    || p.starts_with("no `armstop: exit status"))
            });
        }
        let next = report.next.or(died_in.map(|i| i + 1));
        symbolize(&mut report, files);
        for short in &report.tests {
            let t = TestResult {
                name: format!("{name}::{}", short.name),
                status: short.status.clone(),
            };
            print_result(m.name, &t);
            for (_, text) in report.figures.iter().filter(|(n, _)| *n == short.name) {
                println!("[{}]     {text}", m.name);
            }
            tests.push(t);
        }
        if !report.problems.is_empty() {
            let msg = report.problems.join("; ");
            let t = TestResult { name: format!("{name}::<image>"), status: Status::Failed(msg) };
            print_result(m.name, &t);
            tests.push(t);
        }
        if !report.passed() {
            show_tail(&run, &format!("[{}] ", m.name));
        }
        match (next, total) {
            // At most one boot per test: a plan that did not move on cannot loop.
            (Some(n), Some(t)) if n < t && n > from && boots <= t => {
                println!(
                    "[{}] note: {name}: booting again from test #{n}, so that the next failure \
                     is on a clean machine",
                    m.name
                );
                from = n;
            }
            _ => break,
        }
    }
    if tests.is_empty() && !only.is_empty() {
        let t = TestResult {
            name: format!("{name}::<only>"),
            status: Status::Failed(format!(
                "no test of {image} has {only:?} in its name (it has {} tests)",
                total.unwrap_or(0)
            )),
        };
        print_result(m.name, &t);
        tests.push(t);
    }
    if boots > 1 {
        println!(
            "[{}] note: {name}: {boots} boots; each failure above came first on its own freshly \
             booted machine",
            m.name
        );
    }
    Ok((name, tests))
}

/// `boot`'s argument: a path if it has a `/` (or names a `.bin`), else an image name.
fn image_ref<'a>(o: &'a Options, arg: &'a str) -> ImageRef<'a> {
    if arg.contains('/') || arg.ends_with(".bin") {
        ImageRef::Path(Path::new(arg))
    } else {
        ImageRef::Named { root: &o.images, name: arg }
    }
}

fn boot_interactive(o: &Options) -> Result<ExitCode, String> {
    let [arg] = o.args.as_slice() else {
        return Err(format!("boot takes exactly one image\n{}", usage()));
    };
    let m = match o.machines.as_slice() {
        [m] => *m,
        // Not narrowed down with --machine: the default.
        _ => machine("virt-gicv3")?,
    };
    let image = image_ref(o, arg);
    let files = with_dtb(o, m, boot_files(m, image, &o.firmware_dir)?)?;
    for note in &files.notes {
        eprintln!("armstop-runner: note: {note}");
    }
    let fail = |what: String| {
        eprintln!("armstop-runner: {what}");
        ExitCode::FAILURE
    };
    if o.gdb {
        let mut args = qemu_args(m, &files, None);
        args.extend(["-s".into(), "-S".into()]);
        eprintln!(
            "QEMU waits for GDB on :1234: gdb-multiarch {} -ex 'target remote :1234'",
            image.elf(m).display()
        );
        let status = Command::new(&o.qemu).args(&args).status().map_err(|e| {
            format!("cannot start {}: {e} (run `just setup`, or set --qemu / ARMSTOP_QEMU)", o.qemu)
        })?;
        return Ok(match status.code() {
            Some(0) => ExitCode::SUCCESS,
            c => fail(format!("QEMU ended with {c:?}")),
        });
    }
    // The console goes through the runner: on boards that report their status on it, that is
    // where the status is.
    let limits = Limits { total: o.timeout, begin: 0 };
    let run = boot(o, m, &files, "boot", limits, Some(""), true, None)?;
    let status = match (run.exit, m.exit()) {
        (Exit::TimedOut(s), _) => return Ok(fail(format!("timed out after {s} s; QEMU killed"))),
        (Exit::Code(None), _) => return Ok(fail("QEMU was killed by a signal".into())),
        (Exit::Code(Some(c)), ExitMethod::Semihosting) => c,
        // No status line: a plain PSCI SYSTEM_OFF, the main image's end when all went well.
        (Exit::Code(Some(0)), ExitMethod::PsciSystemOff) => {
            console_status(&run.lines)?.unwrap_or(0)
        }
        (Exit::Code(Some(c)), ExitMethod::PsciSystemOff) => {
            return Ok(fail(format!("QEMU exited {c}; on {} it should exit 0", m.name)));
        }
    };
    Ok(match status {
        0 => ExitCode::SUCCESS,
        c => fail(format!("the image ended with exit status {c}")),
    })
}

/// `boot-error`: boots an image that must stop at boot (a wrong or malformed device tree, more
/// CPUs than the image has room for) and checks that it says why, with a console line that
/// contains `--expect`, and ends with a failure status rather than hanging or running on.
fn boot_error(o: &Options) -> Result<ExitCode, String> {
    let [arg] = o.args.as_slice() else {
        return Err(format!("boot-error takes exactly one image\n{}", usage()));
    };
    let expect = o.expect.as_deref().ok_or("boot-error needs --expect TEXT")?;
    let m = match o.machines.as_slice() {
        [m] => *m,
        _ => machine("virt-gicv3")?,
    };
    let files = with_dtb(o, m, boot_files(m, image_ref(o, arg), &o.firmware_dir)?)?;
    let what = format!(
        "{}{}{}",
        m.name,
        m.smp.map_or(String::new(), |n| format!(" -smp {n}")),
        o.dtb.as_ref().map_or(String::new(), |d| format!(" -dtb {}", d.display()))
    );
    let limits = Limits { total: if o.timeout == 0 { 120 } else { o.timeout }, begin: 0 };
    let run = boot(o, m, &files, "boot-error", limits, o.verbose.then_some("| "), false, None)?;
    let said = run.lines.iter().find(|l| l.contains(expect));
    let status = match (run.exit, m.exit()) {
        (Exit::TimedOut(s), _) => Err(format!("did not stop: killed after {s} s")),
        (Exit::Code(None), _) => Err("QEMU was killed by a signal".into()),
        (Exit::Code(Some(c)), ExitMethod::Semihosting) => Ok(c),
        (Exit::Code(Some(_)), ExitMethod::PsciSystemOff) => {
            Ok(console_status(&run.lines)?.unwrap_or(0))
        }
    };
    let problem = match (status, said) {
        (Err(e), _) => Some(e),
        (Ok(0), _) => Some("the boot ended with status 0: it did not stop".into()),
        (Ok(_), None) => Some(format!("no console line says {expect:?}")),
        (Ok(_), Some(_)) => None,
    };
    match problem {
        None => {
            println!("[{what}] boot stops with {:?} ... ok", said.map_or("", |l| l.trim()));
            Ok(ExitCode::SUCCESS)
        }
        Some(p) => {
            println!("[{what}] boot stops with {expect:?} ... FAILED: {p}");
            show_tail(&run, &format!("[{}] ", m.name));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// `soak`: the main image on one machine (default `virt-gicv3`), its console told `soak <D>`,
/// the run echoed as it comes; passes only if the console's totals show nothing lost or run
/// wrong ([`check_soak`]). Given up on after [`soak_timeout`] (or `--timeout`).
fn soak(o: &Options) -> Result<ExitCode, String> {
    let secs = o.duration.ok_or("soak needs --duration D (30s, 10m, 1h)")?;
    if !o.args.is_empty() {
        return Err(format!(
            "soak takes no image: it types `soak <duration>` into the main image's console\n{}",
            usage()
        ));
    }
    let m = match o.machines.as_slice() {
        [m] => *m,
        _ => machine("virt-gicv3")?,
    };
    let files = with_dtb(o, m, boot_files(m, image_ref(o, "armstop"), &o.firmware_dir)?)?;
    for note in &files.notes {
        println!("[{}] note: {note}", m.name);
    }
    let timeout = if o.timeout == 0 { soak_timeout(secs) } else { o.timeout };
    let host = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "=== soak of {secs} s on {}: {} ({host} host CPUs; given up after {timeout} s)",
        m.name,
        header(m)
    );
    let step = Step {
        name: format!("soak {secs}s"),
        input: format!("soak {secs}s\r").into_bytes(),
        needs_cpus: 1,
        checks: vec![],
        line: 0,
        open: false,
    };
    let s = converse(o, m, &files, std::slice::from_ref(&step), "soak", true, timeout)?;
    println!();
    let verdict = match &s.steps[..] {
        [StepRun::Ran(lines, None)] => check_soak(lines, secs),
        [StepRun::Ran(_, Some(p))] => Err(p.clone()),
        [StepRun::Skipped(why)] => Err(why.clone()),
        _ => Err("the soak never ran".into()),
    };
    match verdict {
        Ok(end) => {
            println!("[{}] soak of {secs} s ... ok: {end}", m.name);
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            println!("[{}] soak of {secs} s ... FAILED: {why}", m.name);
            if !s.stderr.trim().is_empty() {
                let run = Run {
                    lines: vec![],
                    stderr: s.stderr,
                    exit: Exit::Code(s.status),
                    places: vec![],
                };
                show_tail(&run, &format!("[{}] ", m.name));
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What `machines` shows for `m`: its description and the command line, with `<image>` for
/// the image name and the firmware file that would be used.
fn describe(o: &Options, m: &Machine) -> String {
    let image = ImageRef::Named { root: &o.images, name: "<image>" };
    let mut files = BootFiles {
        image: image.path(m),
        firmware: None,
        notes: vec![],
        reboot_on_reset: false,
        dtb: None,
    };
    if let Load::Firmware(fw) = &m.load {
        match find_firmware(fw, &o.firmware_dir) {
            Ok((p, note)) => {
                files.firmware = Some(p);
                files.notes.extend(note);
            }
            Err(e) => {
                files.firmware = Some(o.firmware_dir.join(fw.files[0]));
                files.notes.push(format!("cannot boot yet: {e}"));
            }
        }
    }
    let mut s = format!(
        "{:<17} {}\n{:<17} {} {}",
        m.name,
        header(m),
        "",
        o.qemu,
        qemu_args(m, &files, None).join(" ")
    );
    for note in files.notes {
        s.push_str(&format!("\n{:<17} note: {note}", ""));
    }
    s
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&args).and_then(|(cmd, o)| match cmd.as_str() {
        "test" | "test-image" => {
            test(&o).map(|ok| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        "boot" => boot_interactive(&o),
        "boot-error" => boot_error(&o),
        "run" => run_main(&o),
        "soak" => soak(&o),
        "machines" => {
            for m in MACHINES {
                println!("{}", describe(&o, m));
            }
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command {other:?}\n{}", usage())),
    });
    result.unwrap_or_else(|e| {
        eprintln!("armstop-runner: {e}");
        ExitCode::from(2)
    })
}

/// What a console session gave for one step.
enum StepRun {
    /// The step was typed; what the console showed for it (rendered), and a problem that
    /// stopped it before its checks could be made (no prompt in time).
    Ran(Vec<String>, Option<String>),
    /// Not typed: why.
    Skipped(String),
}

/// A console session with the main image: the report, then each step's part.
struct Session {
    report: Vec<String>,
    steps: Vec<StepRun>,
    /// The machine's exit status, if it ended (through the board's exit method).
    status: Option<i32>,
    transcript: Vec<u8>,
    stderr: String,
}

/// The CPUs `m` has.
fn cpus_of(m: &Machine) -> usize {
    m.smp.map_or(4, usize::from)
}

/// Boots `files` on `m` with its UART on pipes, waits for the console's prompt, then types
/// each step and waits for the prompt again (or for the machine to end; at most `step_secs`,
/// plus the time the step's lines ask for);
/// `poweroff` at the end if it is still running. `echo` copies the console to stdout as it
/// comes.
fn converse(
    o: &Options,
    m: &Machine,
    files: &BootFiles,
    steps: &[Step],
    log_name: &str,
    echo: bool,
    step_secs: u64,
) -> Result<Session, String> {
    use std::io::Write;
    let mut child = spawn_qemu(o, m, files, log_name, Stdio::piped(), Stdio::piped())?;
    // Typed by a thread of its own: a guest that stops reading fills the pipe, and a write
    // that blocks would keep the step's time limit from ever being looked at.
    let stdin = child.stdin.take().map(|mut pipe| {
        let (tx, rx) = mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            for bytes in rx {
                // A machine that has just ended closes its end of the pipe: what it shows
                // says so.
                if pipe.write_all(&bytes).and_then(|()| pipe.flush()).is_err() {
                    break;
                }
            }
        });
        tx
    });
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    let mut stdout = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr_pipe.read_to_string(&mut s);
        s
    });
    let mut all: Vec<u8> = Vec::new();
    let mut ended: Option<Option<i32>> = None;
    let begin =
        // The whole report comes first: on 64 CPUs under TCG it takes about 30 s on 2 host CPUs.
        Duration::from_secs(if o.begin_timeout == 0 { 600 } else { o.begin_timeout.max(300) });
    let mut runs = Vec::new();
    let mut alive = wait_prompt(&mut child, &rx, echo, &mut all, 0, (1, false), begin, &mut ended)?;
    let report = script::render(&all);
    let mut stop_reason = match (alive, ended) {
        (true, _) => None,
        (false, Some(_)) => Some("the machine ended before its console's prompt".to_string()),
        (false, None) => Some(format!("no console prompt within {} s", begin.as_secs())),
    };
    for step in steps {
        if let Some(r) = &stop_reason {
            runs.push(StepRun::Skipped(format!("not run: {r}")));
            continue;
        }
        if step.needs_cpus > cpus_of(m) {
            runs.push(StepRun::Skipped(format!(
                "needs {} CPUs; this machine has {}",
                step.needs_cpus,
                cpus_of(m)
            )));
            continue;
        }
        let step_limit = Duration::from_secs(step_secs.saturating_add(step.asks_secs()));
        let mark = all.len();
        if let Some(w) = &stdin {
            let _ = w.send(step.input.clone());
        }
        alive = wait_prompt(
            &mut child,
            &rx,
            echo,
            &mut all,
            mark,
            (step.prompts(), step.open),
            step_limit,
            &mut ended,
        )?;
        let mut shown = &all[mark..];
        if alive && shown.ends_with(FRESH_PROMPT) {
            shown = &shown[..shown.len() - FRESH_PROMPT.len() + 2];
        }
        let lines = script::render(shown);
        let problem = match (alive, ended) {
            (true, _) => None,
            (false, Some(_)) => {
                stop_reason = Some(format!("the machine ended at step {:?}", step.name));
                None
            }
            (false, None) => {
                let why = format!("no prompt within {} s", step_limit.as_secs());
                stop_reason = Some(format!("step {:?} hung", step.name));
                Some(why)
            }
        };
        runs.push(StepRun::Ran(lines, problem));
    }
    if ended.is_none() {
        if alive && let Some(w) = &stdin {
            let _ = w.send(b"poweroff\r".to_vec());
            let mark = all.len();
            let limit = Duration::from_secs(30);
            let _ =
                wait_prompt(&mut child, &rx, echo, &mut all, mark, (1, false), limit, &mut ended);
        }
        if ended.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
    drop(stdin);
    let stderr = err_thread.join().unwrap_or_default();
    let lines = script::render(&all);
    let status = match (ended, m.exit()) {
        (Some(Some(c)), ExitMethod::Semihosting) => Some(c),
        (Some(Some(0)), ExitMethod::PsciSystemOff) => Some(console_status(&lines)?.unwrap_or(0)),
        (Some(Some(c)), ExitMethod::PsciSystemOff) => Some(c),
        _ => None,
    };
    Ok(Session { report, steps: runs, status, transcript: all, stderr })
}

/// Reads the console into `all` until the output since `mark` has `prompts` fresh prompts and
/// ends with one (or, `open`, has them at all), which is true; or the machine ends (`ended`
/// set; false) or `limit` passes (false).
#[allow(clippy::too_many_arguments)]
fn wait_prompt(
    child: &mut std::process::Child,
    rx: &mpsc::Receiver<Vec<u8>>,
    echo: bool,
    all: &mut Vec<u8>,
    mark: usize,
    (prompts, open): (usize, bool),
    limit: Duration,
    ended: &mut Option<Option<i32>>,
) -> Result<bool, String> {
    use std::io::Write;
    let start = Instant::now();
    loop {
        if let Ok(chunk) = rx.recv_timeout(Duration::from_millis(50)) {
            if echo {
                let mut out = std::io::stdout();
                let _ = out.write_all(&chunk);
                let _ = out.flush();
            }
            all.extend_from_slice(&chunk);
            let done = count_prompts(&all[mark..]) >= prompts
                && (open || all[mark..].ends_with(FRESH_PROMPT));
            if done {
                return Ok(true);
            }
            // A machine that never stops printing has not answered either.
            if start.elapsed() >= limit {
                return Ok(false);
            }
            continue;
        }
        if let Some(st) = child.try_wait().map_err(|e| format!("waiting for QEMU: {e}"))? {
            while let Ok(chunk) = rx.recv_timeout(Duration::from_millis(200)) {
                all.extend_from_slice(&chunk);
            }
            *ended = Some(st.code());
            return Ok(false);
        }
        if start.elapsed() >= limit {
            return Ok(false);
        }
    }
}

/// `run`: the main image on each machine named (default virt-gicv2 and virt-gicv3): with a
/// terminal, its console is the terminal's; with `--script`, the script is typed and checked;
/// otherwise (stdin not a terminal: CI) the report is shown and the console told `poweroff`.
fn run_main(o: &Options) -> Result<ExitCode, String> {
    use std::io::IsTerminal;
    let names: Vec<&str> = if o.args.is_empty() {
        vec!["virt-gicv2", "virt-gicv3"]
    } else {
        o.args.iter().map(String::as_str).collect()
    };
    let machines: Vec<&'static Machine> =
        names.iter().map(|n| machine(n)).collect::<Result<_, _>>()?;
    let steps = match o.scripts.as_slice() {
        [] => vec![],
        [f] => read_script(f)?.1,
        _ => return Err("run takes one --script".into()),
    };
    let interactive = o.scripts.is_empty() && std::io::stdin().is_terminal();
    let host_cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut ok = true;
    for m in machines {
        let m = match o.machines.as_slice() {
            // `--smp` given: the machine as changed by it.
            [one] if one.name == m.name => *one,
            _ => m,
        };
        println!("### armstop on {} ({host_cpus} host CPUs)", m.name);
        let files = with_dtb(o, m, boot_files(m, image_ref(o, "armstop"), &o.firmware_dir)?)?;
        if interactive {
            println!("(the console is yours: `help` lists the commands, `poweroff` ends the run)");
            let status =
                Command::new(&o.qemu).args(qemu_args(m, &files, None)).status().map_err(|e| {
                    format!(
                        "cannot start {}: {e} (run `just setup`, or set --qemu / ARMSTOP_QEMU)",
                        o.qemu
                    )
                })?;
            ok &= status.success();
            continue;
        }
        // A step that asks for time (`soak 2h`) is given it on top of this.
        let step_secs = if o.timeout == 0 { CONSOLE_STEP_SECS } else { o.timeout };
        let session = converse(o, m, &files, &steps, "run", true, step_secs)?;
        println!();
        let (mut failed, mut ignored) = (0, 0);
        for (step, r) in steps.iter().zip(&session.steps) {
            let problem = match r {
                StepRun::Skipped(why) => {
                    println!("[{}] console: {} ... ignored: {why}", m.name, step.name);
                    ignored += 1;
                    continue;
                }
                StepRun::Ran(_, Some(p)) => Some(p.clone()),
                StepRun::Ran(lines, None) => script::check(step, lines, session.status),
            };
            if let Some(p) = problem {
                failed += 1;
                println!("[{}] console: {} ... FAILED: {p}", m.name, step.name);
            }
        }
        if !steps.is_empty() {
            let passed = steps.len() - failed - ignored;
            println!(
                "[{}] console: {passed} steps passed, {failed} failed, {ignored} ignored",
                m.name
            );
        }
        match session.status {
            Some(0) if failed == 0 => {}
            Some(0) => ok = false,
            Some(c) => {
                println!("armstop-runner: {}: the image ended with exit status {c}", m.name);
                ok = false;
            }
            None => {
                println!("armstop-runner: {}: the machine did not end; QEMU killed", m.name);
                ok = false;
            }
        }
        if failed > 0 {
            println!("armstop-runner: {}: {failed} console steps failed", m.name);
            ok = false;
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// How long a step of `test --script` may take to give its prompt back: the scripts' longest
/// steps (a storm, a soak of seconds) take a few seconds; a hung one fails in good time.
const CONSOLE_STEP_SECS: u64 = 180;
/// Lines of the report shown before each of its failed checks.
const REPORT_CONTEXT: usize = 16;

/// A script file's steps, and its name in results (`console-` and the file's stem).
fn read_script(f: &Path) -> Result<(String, Vec<Step>), String> {
    let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
    let steps = script::parse_script(&text).map_err(|e| format!("{}: {e}", f.display()))?;
    let stem = f.file_stem().map_or("script".into(), |s| s.to_string_lossy().into_owned());
    Ok((format!("console-{stem}"), steps))
}

/// `test --script`: the main image on `m`, the script typed into its console, each step one
/// test (`<name>::<step>`), and the run's end (`<name>::<end>`: exit status 0, no hang).
fn console_tests(
    o: &Options,
    m: &Machine,
    suite: &str,
    steps: &[Step],
) -> Result<Vec<TestResult>, String> {
    let files = with_dtb(o, m, boot_files(m, image_ref(o, "armstop"), &o.firmware_dir)?)?;
    let s = converse(o, m, &files, steps, suite, false, CONSOLE_STEP_SECS)?;
    let mut results = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let mut any_failed = false;
    for (step, r) in steps.iter().zip(&s.steps) {
        let base = format!("{suite}::{}", step.name.escape_debug());
        let n = seen.iter().filter(|x| **x == base).count();
        seen.push(base.clone());
        let name = if n == 0 { base } else { format!("{base}#{}", n + 1) };
        let status = match r {
            StepRun::Skipped(why) => Status::Ignored(why.clone()),
            StepRun::Ran(_, Some(p)) => Status::Failed(p.clone()),
            StepRun::Ran(lines, None) => match script::check(step, lines, s.status) {
                None => Status::Ok,
                Some(p) => {
                    let shown: Vec<_> = lines.iter().take(12).map(|l| l.trim_end()).collect();
                    Status::Failed(format!("{p} (script line {}; output: {shown:?})", step.line))
                }
            },
        };
        any_failed |= matches!(status, Status::Failed(_));
        results.push(TestResult { name, status });
    }
    let end = match s.status {
        Some(0) => Status::Ok,
        Some(c) => Status::Failed(format!("the image ended with exit status {c}")),
        None => Status::Failed("the machine did not end after poweroff; QEMU killed".into()),
    };
    any_failed |= matches!(end, Status::Failed(_));
    results.push(TestResult { name: format!("{suite}::<end>"), status: end });
    let report_failures: Vec<&str> =
        s.report.iter().filter(|l| l.contains("FAILED")).map(|l| l.trim()).collect();
    if !report_failures.is_empty() {
        // The lines before each failed check (its section: a matrix, a table) say what failed.
        let mut shown = vec![false; s.report.len()];
        for (i, l) in s.report.iter().enumerate() {
            if l.contains("FAILED") && !l.starts_with("== done") {
                shown[i.saturating_sub(REPORT_CONTEXT)..=i].fill(true);
            }
        }
        let context: Vec<&str> =
            s.report.iter().zip(&shown).filter(|(_, s)| **s).map(|(l, _)| l.as_str()).collect();
        results.push(TestResult {
            name: format!("{suite}::<report>"),
            status: Status::Failed(format!(
                "the report before the console has FAILED checks: {report_failures:?}; around \
                 them:\n    {}",
                context.join("\n    ")
            )),
        });
        any_failed = true;
    }
    if any_failed {
        let lines = script::render(&s.transcript);
        let run = Run { lines, stderr: s.stderr, exit: Exit::Code(s.status), places: vec![] };
        show_tail(&run, &format!("[{}] ", m.name));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn smp_and_dtb_override_the_machine() {
        let (_, o) = parse(&args("boot --machine virt-gicv3 --smp 16 armstop")).unwrap();
        assert_eq!((o.machines[0].name, o.machines[0].smp), ("virt-gicv3", Some(16)));
        for bad in ["0", "513", "x"] {
            let e = parse(&args(&format!("boot --smp {bad} armstop"))).err().unwrap();
            assert!(e.contains("CPU count from 1 to 512"), "{e}");
        }
        let e = parse(&args("boot --machine raspi4b-tfa --smp 2 armstop")).err().unwrap();
        assert!(e.contains("raspi4b-tfa has a fixed CPU count"), "{e}");
        let e = parse(&args("boot --dtb /no/such.dtb armstop")).err().unwrap();
        assert!(e.contains("no such file"), "{e}");
        let base =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../firmware/devicetree/tests/data/base.dtb");
        let (_, o) = parse(&args(&format!("boot --machine raspi4b-tfa --dtb {base} a"))).unwrap();
        let e = with_dtb(&o, o.machines[0], BootFiles::default()).err().unwrap();
        assert!(e.contains("raspi4b-tfa boots through firmware loaded at 0"), "{e}");
        let dtb =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../firmware/devicetree/tests/data/base.dtb");
        let (_, o) = parse(&args(&format!("boot --dtb {dtb} armstop"))).unwrap();
        let files = BootFiles {
            image: "/i/armstop".into(),
            firmware: None,
            notes: vec![],
            reboot_on_reset: false,
            dtb: o.dtb.clone(),
        };
        let a = qemu_args(machine("virt-gicv3").unwrap(), &files, None);
        assert!(a.windows(2).any(|w| w[0] == "-dtb" && w[1] == dtb), "{a:?}");
    }

    #[test]
    fn test_defaults_to_the_full_tier_and_the_built_images() {
        let (cmd, o) = parse(&args("test --suite suite --suite hotplug")).unwrap();
        assert_eq!(cmd, "test");
        let names: Vec<_> = o.machines.iter().map(|m| m.name).collect();
        let full = MACHINES.iter().filter(|m| m.tier == Tier::Full).map(|m| m.name);
        assert_eq!(names, full.collect::<Vec<_>>());
        assert_eq!(names.len(), 6, "four virt machines and the two Pis");
        assert!(names.contains(&"raspi4b-tfa") && names.contains(&"raspi4b-own-psci"));
        assert_eq!((o.timeout, o.begin_timeout, o.hang_timeout), (600, 60, 5));
        assert_eq!(o.images, Path::new("target/images"));
        assert_eq!(o.firmware_dir, Path::new("target/pi-firmware"));
        assert_eq!(o.suites, ["suite", "hotplug"]);
        assert!(o.reboot_suites.is_empty());
    }

    #[test]
    fn a_reboot_suite_is_a_suite_that_may_reset() {
        let (_, o) =
            parse(&args("test --suite suite --reboot-suite reset --suite hotplug")).unwrap();
        assert_eq!(o.suites, ["suite", "reset", "hotplug"]);
        assert_eq!(o.reboot_suites, ["reset"]);
        let err = |a: &str| parse(&args(a)).err().expect("an error");
        assert!(err("test --reboot-suite").contains("needs an image name"));
        assert!(err("test --reboot-suite a/b").contains("image names"));
    }

    #[test]
    fn options_name_images_machines_and_firmware() {
        let (_, o) = parse(&args(
            "test --machines raspi4b-tfa,virt-gicv2 --images /w/target/images --timeout 9 \
             --selftest-fail selftest-fail --selftest-hang selftest-hang",
        ))
        .unwrap();
        assert_eq!(
            o.machines.iter().map(|m| m.name).collect::<Vec<_>>(),
            ["raspi4b-tfa", "virt-gicv2"]
        );
        assert_eq!(o.firmware_dir, Path::new("/w/target/pi-firmware"), "next to the image root");
        assert_eq!((o.timeout, o.selftest_fail.as_deref()), (9, Some("selftest-fail")));
        let (_, o) = parse(&args("boot --images images --firmware-dir /fw armstop")).unwrap();
        assert_eq!((o.timeout, o.firmware_dir.as_path()), (0, Path::new("/fw")));
        assert_eq!(default_firmware_dir(Path::new("images")), Path::new("target/pi-firmware"));

        let e = parse(&args("test --suite target/images/qemu-virt/suite")).err().unwrap();
        assert!(e.contains("image names"), "{e}");
        let e = parse(&args("test --machines virt-gicv2,raspi3 --suite s")).err().unwrap();
        assert!(e.contains("unknown machine \"raspi3\""), "{e}");
        let e = parse(&args("test --timeout soon --suite s")).err().unwrap();
        assert!(e.contains("--timeout takes whole seconds"), "{e}");
    }

    #[test]
    fn a_script_must_exist_and_a_lone_separator_is_skipped() {
        let e = parse(&args("run --script /no/such.script")).err().unwrap();
        assert!(e.contains("--script /no/such.script: no such file"), "{e}");
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../console/commands.script");
        let (cmd, o) = parse(&args(&format!("run virt-gicv2 -- --script {script}"))).unwrap();
        assert_eq!((cmd.as_str(), o.args.as_slice()), ("run", &["virt-gicv2".to_string()][..]));
        let text = std::fs::read_to_string(script).unwrap();
        let mut steps = script::parse_script(&text).unwrap();
        let reset = concat!(env!("CARGO_MANIFEST_DIR"), "/../console/reset.script");
        steps.extend(read_script(Path::new(reset)).unwrap().1);
        // Every command of the console has a step of its own in the scripts `just test` runs.
        for (name, _, _) in armstop_shell::COMMANDS {
            assert!(
                steps.iter().any(|s| s.name.split(' ').next() == Some(name)),
                "no step runs {name}"
            );
        }
    }

    #[test]
    fn soak_takes_a_duration_as_the_console_does() {
        let (cmd, o) = parse(&args("soak --machine raspi4b-tfa --duration 10m")).unwrap();
        assert_eq!(
            (cmd.as_str(), o.duration, o.machines[0].name),
            ("soak", Some(600), "raspi4b-tfa")
        );
        assert_eq!(parse(&args("soak --duration 1h")).unwrap().1.duration, Some(3600));
        assert_eq!(parse(&args("soak --duration 30s")).unwrap().1.duration, Some(30));
        for bad in ["600", "0s", "25h", "10x", "m"] {
            let e = parse(&args(&format!("soak --duration {bad}"))).err().unwrap();
            assert!(e.contains("a duration such as 30s, 10m or 1h, at most 86400 s"), "{bad}: {e}");
        }
        assert_eq!(soak_timeout(600), 600 + 150 + 180, "a margin the soak cannot reach");
    }

    #[test]
    fn boot_takes_a_name_or_a_path() {
        let (_, o) = parse(&args("boot --images /r x")).unwrap();
        let m = machine("raspi4b-own-psci").unwrap();
        assert_eq!(image_ref(&o, "armstop").path(m), Path::new("/r/raspi4-own-psci/armstop.bin"));
        assert_eq!(image_ref(&o, "./armstop").path(m), Path::new("./armstop.bin"));
        assert_eq!(image_ref(&o, "armstop.bin").path(m), Path::new("armstop.bin"));
        let virt = machine("virt-gicv3").unwrap();
        assert_eq!(image_ref(&o, "t/armstop").path(virt), Path::new("t/armstop"));
        assert_eq!(image_ref(&o, "armstop").path(virt), Path::new("/r/qemu-virt/armstop"));
    }
}
