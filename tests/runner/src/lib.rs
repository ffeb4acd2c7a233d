//! The host side of armstop's test harness: which QEMU machines exist and how to start them,
//! how to read the firmware's test protocol off the console, what the harness self-tests must
//! show, and JUnit output.
//!
//! Invariant: an image counts as passed only if its transcript is complete and consistent
//! (`begin`, one result per started test, an `end` whose counts match) *and* QEMU's exit status
//! agrees; anything else is a failure with a message saying what was wrong.

use std::fmt::Write as _;
use std::path::Path;

/// How the image reaches the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    /// `-kernel ELF` (QEMU enters at the ELF entry).
    Elf,
    /// `-device loader,file=IMAGE,addr=ADDR` (a raw image at a fixed address).
    Loader(u64),
}

/// A QEMU machine of the test matrix.
#[derive(Clone, Copy, Debug)]
pub struct Machine {
    /// Short name used on the command line and in results.
    pub name: &'static str,
    /// What it emulates.
    pub description: &'static str,
    /// `-M` argument.
    pub qemu_machine: &'static str,
    /// EL the firmware is entered at.
    pub boot_el: u8,
    /// PSCI conduit the firmware should pick.
    pub conduit: &'static str,
    /// How the image is passed.
    pub kernel: Kernel,
}

/// Every machine the runner knows.
pub const MACHINES: &[Machine] = &[
    Machine {
        name: "virt-gicv2",
        description: "QEMU virt, GICv2, entered at EL1",
        qemu_machine: "virt,gic-version=2",
        boot_el: 1,
        conduit: "HVC",
        kernel: Kernel::Elf,
    },
    Machine {
        name: "virt-gicv3",
        description: "QEMU virt, GICv3, entered at EL1",
        qemu_machine: "virt,gic-version=3",
        boot_el: 1,
        conduit: "HVC",
        kernel: Kernel::Elf,
    },
    Machine {
        name: "virt-el2-gicv2",
        description: "QEMU virt with virtualization=on, GICv2, entered at EL2",
        qemu_machine: "virt,virtualization=on,gic-version=2",
        boot_el: 2,
        conduit: "SMC",
        kernel: Kernel::Elf,
    },
    Machine {
        name: "virt-el2-gicv3",
        description: "QEMU virt with virtualization=on, GICv3, entered at EL2",
        qemu_machine: "virt,virtualization=on,gic-version=3",
        boot_el: 2,
        conduit: "SMC",
        kernel: Kernel::Elf,
    },
];

/// Looks a machine up by name.
pub fn machine(name: &str) -> Result<&'static Machine, String> {
    MACHINES.iter().find(|m| m.name == name).ok_or_else(|| {
        let names: Vec<_> = MACHINES.iter().map(|m| m.name).collect();
        format!("unknown machine {name:?}; known machines: {}", names.join(", "))
    })
}

/// QEMU's arguments to boot `image` on `m`, logging guest errors to `log` if given.
pub fn qemu_args(m: &Machine, image: &Path, log: Option<&Path>) -> Vec<String> {
    let mut a: Vec<String> = [
        "-M",
        m.qemu_machine,
        "-cpu",
        "cortex-a72",
        "-smp",
        "4",
        "-m",
        "1G",
        "-nic",
        "none",
        "-display",
        "none",
        "-monitor",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-semihosting",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    match m.kernel {
        Kernel::Elf => a.extend(["-kernel".into(), image.display().to_string()]),
        Kernel::Loader(addr) => {
            a.extend(["-device".into(), format!("loader,file={},addr={addr:#x}", image.display())])
        }
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
    /// Figures tests reported (`armstop-test: figure <text>`), with the test that was running.
    pub figures: Vec<(String, String)>,
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

fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
}

/// Reads the firmware's test protocol out of a console transcript and checks it against how
/// QEMU ended.
pub fn parse_transcript(lines: &[String], exit: Exit) -> ImageReport {
    let mut r = ImageReport::default();
    let mut running: Option<String> = None;
    for raw in lines {
        let line = raw.trim_end_matches(['\r', '\n']);
        if let Some(rest) = line.strip_prefix("armstop-test: begin ") {
            r.suite = field(rest, "suite").map(str::to_string);
        } else if let Some(name) = line.strip_prefix("armstop-test: start ") {
            running = Some(name.trim().to_string());
        } else if let Some(text) = line.strip_prefix("armstop-test: figure ") {
            r.figures.push((running.clone().unwrap_or_default(), text.to_string()));
        } else if let Some(rest) = line.strip_prefix("armstop-test: end ") {
            let count = |k| field(rest, k).and_then(|v| v.parse().ok());
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
    match (r.end, exit) {
        (_, Exit::TimedOut(s)) => r.problems.push(format!("timed out after {s} s")),
        (None, _) => r.problems.push("no `armstop-test: end` line".into()),
        (Some(end), _) if end != seen => r.problems.push(format!(
            "end line says passed={} failed={} ignored={}, but the test lines say {}/{}/{}",
            end.0, end.1, end.2, seen.0, seen.1, seen.2
        )),
        _ => {}
    }
    match exit {
        Exit::Code(Some(0)) if seen.1 > 0 => {
            r.problems.push("QEMU exited 0 although tests failed".into())
        }
        Exit::Code(Some(c)) if c != 0 && seen.1 == 0 && r.end.is_some() => {
            r.problems.push(format!("QEMU exited {c} although every test passed"))
        }
        Exit::Code(None) => r.problems.push("QEMU was killed by a signal".into()),
        _ => {}
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
    Expectation { test: "selftest::data_abort", fails_with: Some(&["Data Abort", "FAR"]) },
    Expectation { test: "selftest::stack_overflow", fails_with: Some(&["stack overflow"]) },
];

/// The test `selftest-hang` must be caught hanging in.
pub const SELFTEST_HANG: &str = "selftest::hangs";

/// Checks a `selftest-fail` run: one `(check name, problem or None)` per expectation, plus one
/// for the image as a whole (it must fail, with `end passed=1 failed=5`, and a non-zero exit).
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
    let want_end = (1, SELFTEST_FAIL.len() - 1, 0);
    let whole = if r.end != Some(want_end) {
        Some(format!("end line {:?}, expected {want_end:?}", r.end))
    } else if !matches!(exit, Exit::Code(Some(c)) if c != 0) {
        Some(format!("QEMU ended {exit:?}; a failing image must exit non-zero"))
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
        let r = parse_transcript(&lines(GOOD), Exit::Code(Some(1)));
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
        let r = parse_transcript(&lines(t), Exit::Code(Some(0)));
        assert!(r.passed(), "{:?}", r.problems);
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
            let r = parse_transcript(&lines(t), *exit);
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
        let r = parse_transcript(&lines(t), Exit::TimedOut(7));
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
test selftest::data_abort ... FAILED: cpu0: Data Abort (read) FAR=0x7 ELR=0x1
test selftest::stack_overflow ... FAILED: cpu0: stack overflow: Thread stack of cpu0
armstop-test: end passed={} failed={} ignored=0",
            if secondary.starts_with("ok") { 2 } else { 1 },
            if secondary.starts_with("ok") { 4 } else { 5 }
        )
    }

    #[test]
    fn selftest_expectations_hold_for_a_conforming_run() {
        let t = selftest_transcript("FAILED: cpu1: panicked at a.rs:3:1: y");
        let r = parse_transcript(&lines(&t), Exit::Code(Some(1)));
        for (name, problem) in check_selftest_fail(&r, Exit::Code(Some(1))) {
            assert_eq!(problem, None, "{name}");
        }
    }

    #[test]
    fn selftest_catches_a_missed_failure() {
        let t = selftest_transcript("ok (3 us)");
        let r = parse_transcript(&lines(&t), Exit::Code(Some(1)));
        let checks = check_selftest_fail(&r, Exit::Code(Some(1)));
        let bad: Vec<_> = checks.iter().filter(|c| c.1.is_some()).map(|c| c.0.as_str()).collect();
        assert_eq!(bad, ["selftest::panics_on_secondary", "image_fails"]);
        let t = selftest_transcript("FAILED: cpu2: panicked at a.rs:3:1: y");
        let r = parse_transcript(&lines(&t), Exit::Code(Some(1)));
        assert!(
            check_selftest_fail(&r, Exit::Code(Some(1)))[3].1.as_ref().unwrap().contains("cpu1")
        );
        let r = parse_transcript(
            &lines(&selftest_transcript("FAILED: cpu1: panicked at")),
            Exit::Code(Some(0)),
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
        assert!(e.contains("virt-gicv2") && e.contains("virt-el2-gicv3"), "{e}");
        let a = qemu_args(machine("virt-el2-gicv2").unwrap(), Path::new("/i"), None);
        assert!(a.windows(2).any(|w| w == ["-M", "virt,virtualization=on,gic-version=2"]));
        assert!(a.windows(2).any(|w| w == ["-kernel", "/i"]));
        assert!(a.contains(&"-semihosting".to_string()));
    }

    #[test]
    fn figures_belong_to_the_running_test() {
        let t = "armstop-test: begin suite=s board=b cpus=4 tests=1\narmstop-test: start m::t\narmstop-test: figure storm: 2000 cycles\ntest m::t ... ok (1 us)\narmstop-test: end passed=1 failed=0 ignored=0";
        let lines: Vec<String> = t.lines().map(str::to_string).collect();
        let r = parse_transcript(&lines, Exit::Code(Some(0)));
        assert!(r.passed(), "{r:?}");
        assert_eq!(r.figures, vec![("m::t".to_string(), "storm: 2000 cycles".to_string())]);
    }
}
