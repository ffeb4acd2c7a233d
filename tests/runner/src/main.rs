//! `armstop-runner`: boots firmware images in QEMU.
//!
//! ```text
//! armstop-runner test [--machines a,b] [--timeout S] [--junit PATH] [--log-dir DIR] [--verbose]
//!                     --suite ELF... [--selftest-fail ELF] [--selftest-hang ELF] [--selftest-hang-timeout S]
//! armstop-runner boot [--machine M] [--timeout S] [--gdb] [--log-dir DIR] ELF
//! armstop-runner machines
//! ```
//! `--qemu PATH` (or `ARMSTOP_QEMU`) names the QEMU binary. `test` ends with the line
//! `N passed, N failed` and exits 0 only if nothing failed.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use armstop_runner::{
    Exit, JunitSuite, MACHINES, Machine, Status, TestResult, check_selftest_fail,
    check_selftest_hang, junit_xml, machine, parse_transcript, qemu_args,
};

const TAIL: usize = 40;

struct Run {
    lines: Vec<String>,
    stderr: String,
    exit: Exit,
}

struct Options {
    qemu: String,
    machines: Vec<&'static Machine>,
    timeout: u64,
    hang_timeout: u64,
    junit: Option<PathBuf>,
    log_dir: Option<PathBuf>,
    verbose: bool,
    gdb: bool,
    suites: Vec<PathBuf>,
    selftest_fail: Option<PathBuf>,
    selftest_hang: Option<PathBuf>,
    images: Vec<PathBuf>,
}

fn usage() -> String {
    "usage: armstop-runner [--qemu PATH] test [--machines a,b] [--timeout S] [--junit PATH] [--log-dir DIR] [--verbose] --suite ELF... [--selftest-fail ELF] [--selftest-hang ELF] [--selftest-hang-timeout S]\n       armstop-runner [--qemu PATH] boot [--machine M] [--timeout S] [--gdb] [--log-dir DIR] ELF\n       armstop-runner machines".into()
}

fn parse(args: &[String]) -> Result<(String, Options), String> {
    let mut o = Options {
        qemu: std::env::var("ARMSTOP_QEMU").unwrap_or_else(|_| "qemu-system-aarch64".into()),
        machines: MACHINES.iter().collect(),
        timeout: 0,
        hang_timeout: 5,
        junit: None,
        log_dir: None,
        verbose: false,
        gdb: false,
        suites: vec![],
        selftest_fail: None,
        selftest_hang: None,
        images: vec![],
    };
    let mut cmd = None;
    let mut timeout = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |what: &str| it.next().cloned().ok_or_else(|| format!("{a} needs {what}"));
        match a.as_str() {
            "--qemu" => o.qemu = value("a path")?,
            "--machines" | "--machine" => {
                o.machines =
                    value("machine names")?.split(',').map(machine).collect::<Result<_, _>>()?
            }
            "--timeout" => {
                timeout =
                    Some(value("seconds")?.parse().map_err(|_| "--timeout takes whole seconds")?)
            }
            "--selftest-hang-timeout" => {
                o.hang_timeout = value("seconds")?
                    .parse()
                    .map_err(|_| "--selftest-hang-timeout takes whole seconds")?
            }
            "--junit" => o.junit = Some(value("a path")?.into()),
            "--log-dir" => o.log_dir = Some(value("a directory")?.into()),
            "--suite" => o.suites.push(value("an image")?.into()),
            "--selftest-fail" => o.selftest_fail = Some(value("an image")?.into()),
            "--selftest-hang" => o.selftest_hang = Some(value("an image")?.into()),
            "--verbose" => o.verbose = true,
            "--gdb" => o.gdb = true,
            "-h" | "--help" => return Err(usage()),
            s if s.starts_with('-') => return Err(format!("unknown option {s}\n{}", usage())),
            s if cmd.is_none() => cmd = Some(s.to_string()),
            s => o.images.push(s.into()),
        }
    }
    let cmd = cmd.ok_or_else(usage)?;
    o.timeout = timeout.unwrap_or(if cmd == "test" { 60 } else { 0 });
    for image in o.suites.iter().chain(&o.selftest_fail).chain(&o.selftest_hang).chain(&o.images) {
        if !image.is_file() {
            return Err(format!("no such image: {}", image.display()));
        }
    }
    Ok((cmd, o))
}

/// Boots `image` on `m`, reading the console until QEMU exits or `timeout` (0: none) passes.
fn boot(
    o: &Options,
    m: &Machine,
    image: &Path,
    timeout: u64,
    echo: Option<&str>,
) -> Result<Run, String> {
    let log = o.log_dir.as_ref().map(|d| {
        let _ = std::fs::create_dir_all(d);
        d.join(format!(
            "{}-{}.log",
            m.name,
            image.file_name().unwrap_or_default().to_string_lossy()
        ))
    });
    let mut child = Command::new(&o.qemu)
        .args(qemu_args(m, image, log.as_deref()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot start {}: {e} (run `just setup`, or set --qemu / ARMSTOP_QEMU)", o.qemu)
        })?;
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
    let mut stderr = child.stderr.take().expect("piped stderr");
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let start = Instant::now();
    let mut lines = Vec::new();
    let exit = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(line) => {
                if let Some(prefix) = echo {
                    println!("{prefix}{line}");
                }
                lines.push(line);
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
                if let Some(prefix) = echo {
                    println!("{prefix}{line}");
                }
                lines.push(line);
            }
            break Exit::Code(status.code());
        }
        if timeout > 0 && start.elapsed() >= Duration::from_secs(timeout) {
            let _ = child.kill();
            let _ = child.wait();
            break Exit::TimedOut(timeout);
        }
    };
    let stderr = err_thread.join().unwrap_or_default();
    Ok(Run { lines, stderr, exit })
}

fn show_tail(run: &Run, prefix: &str) {
    let tail: VecDeque<_> = run.lines.iter().rev().take(TAIL).rev().collect();
    println!("{prefix}last {} console lines:", tail.len());
    for l in tail {
        println!("{prefix}| {}", l.trim_end());
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

fn test(o: &Options) -> Result<bool, String> {
    if o.suites.is_empty() && o.selftest_fail.is_none() && o.selftest_hang.is_none() {
        return Err(format!("test needs at least one image\n{}", usage()));
    }
    let mut junit = Vec::new();
    for m in &o.machines {
        println!(
            "=== {}: {} ({} entry, PSCI over {})",
            m.name,
            m.description,
            format_args!("EL{}", m.boot_el),
            m.conduit
        );
        let echo_prefix = format!("[{}] | ", m.name);
        let echo = o.verbose.then_some(echo_prefix.as_str());
        for suite in &o.suites {
            let run = boot(o, m, suite, o.timeout, echo)?;
            let report = parse_transcript(&run.lines, run.exit);
            let name = report.suite.clone().unwrap_or_else(|| image_name(suite));
            let mut tests: Vec<TestResult> = report
                .tests
                .iter()
                .map(|t| TestResult {
                    name: format!("{name}::{}", t.name),
                    status: t.status.clone(),
                })
                .collect();
            for (t, short) in tests.iter().zip(&report.tests) {
                print_result(m.name, t);
                for (_, text) in report.figures.iter().filter(|(n, _)| *n == short.name) {
                    println!("[{}]     {text}", m.name);
                }
            }
            if !report.problems.is_empty() {
                let msg = report.problems.join("; ");
                let t =
                    TestResult { name: format!("{name}::<image>"), status: Status::Failed(msg) };
                print_result(m.name, &t);
                tests.push(t);
            }
            if !report.passed() {
                show_tail(&run, &format!("[{}] ", m.name));
            }
            junit.push(JunitSuite { name: format!("{}/{name}", m.name), tests });
        }
        let mut harness = Vec::new();
        if let Some(image) = &o.selftest_fail {
            let run = boot(o, m, image, o.timeout, echo)?;
            let report = parse_transcript(&run.lines, run.exit);
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
        if let Some(image) = &o.selftest_hang {
            let run = boot(o, m, image, o.hang_timeout, echo)?;
            let report = parse_transcript(&run.lines, run.exit);
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
        for t in &harness {
            print_result(m.name, t);
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

fn image_name(p: &Path) -> String {
    p.file_name().unwrap_or_default().to_string_lossy().into_owned()
}

fn boot_interactive(o: &Options) -> Result<ExitCode, String> {
    let [image] = o.images.as_slice() else {
        return Err(format!("boot takes exactly one image\n{}", usage()));
    };
    let m = match o.machines.as_slice() {
        [m] => *m,
        // Not narrowed down with --machine: the default.
        _ => machine("virt-gicv3")?,
    };
    let mut args = qemu_args(
        m,
        image,
        o.log_dir.as_ref().map(|d| d.join(format!("{}-boot.log", m.name))).as_deref(),
    );
    if o.gdb {
        args.extend(["-s".into(), "-S".into()]);
        eprintln!(
            "QEMU waits for GDB on :1234: gdb-multiarch {} -ex 'target remote :1234'",
            image.display()
        );
    }
    let mut child = Command::new(&o.qemu).args(&args).spawn().map_err(|e| {
        format!("cannot start {}: {e} (run `just setup`, or set --qemu / ARMSTOP_QEMU)", o.qemu)
    })?;
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(match status.code() {
                Some(0) => ExitCode::SUCCESS,
                Some(c) => {
                    eprintln!("armstop-runner: QEMU exited with status {c}");
                    ExitCode::from(c.clamp(1, 255) as u8)
                }
                None => {
                    eprintln!("armstop-runner: QEMU was killed by a signal");
                    ExitCode::FAILURE
                }
            });
        }
        if o.timeout > 0 && start.elapsed() >= Duration::from_secs(o.timeout) {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("armstop-runner: timed out after {} s; QEMU killed", o.timeout);
            return Ok(ExitCode::FAILURE);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = parse(&args).and_then(|(cmd, o)| match cmd.as_str() {
        "test" => test(&o).map(|ok| if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE }),
        "boot" => boot_interactive(&o),
        "machines" => {
            for m in MACHINES {
                println!(
                    "{:<16} {}\n{:<16} {} {}",
                    m.name,
                    m.description,
                    "",
                    o.qemu,
                    qemu_args(m, Path::new("<image>"), None).join(" ")
                );
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
