//! armstop's side: boots the release `bench` image (`armstop::bench` in the firmware) on a
//! QEMU machine and parses what it prints.
//!
//! The image prints `armstop-bench: begin k=v ...`, then one line per figure
//! (`armstop-bench: figure kind=K mode=M cpus=C n=N min=.. median=.. p99=.. max=.. mean=..`, ns),
//! `counters` and `skipped` lines, and `armstop-bench: end`; a failed request prints
//! `armstop-bench: error ...` and the image exits with status 1. Every figure must be whole
//! and consistent (min ≤ median ≤ p99 ≤ max, n ≥ 1), or the run is an error.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use armstop_runner::{ImageRef, Machine, boot_files};

use crate::qemu::{self, tail};

/// Prefix of every line the bench image prints for the host.
pub const PREFIX: &str = "armstop-bench: ";
/// The line of one figure: a step of a bench run, for its progress lines.
pub const FIGURE: &str = "armstop-bench: figure";

/// One figure: `n` samples of one request kind in one wait mode, in ns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Figure {
    /// What was measured (`stop_machine_4cpus`, `sgi_pingpong`, ...).
    pub kind: String,
    /// `spin`, `sleep`, or `floor` for what involves no stopper.
    pub mode: String,
    /// Stoppers enabled (CPUs online) when it was reported.
    pub cpus: u32,
    /// Samples.
    pub n: u32,
    /// Fastest.
    pub min: u64,
    /// Median.
    pub median: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Slowest.
    pub max: u64,
    /// Mean.
    pub mean: u64,
}

/// One bench image run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArmstopRun {
    /// The `begin` line's fields (board, cpus, gic, psci, timer_hz, iters, spin_ns).
    pub begin: BTreeMap<String, String>,
    /// Every figure, in the order printed.
    pub figures: Vec<Figure>,
    /// Each `counters` line's fields, by mode (sleeps, wakes, back-offs, watchdog reports).
    pub counters: BTreeMap<String, BTreeMap<String, u64>>,
    /// Figures the image skipped, with its reason (a machine too small for them).
    pub skipped: Vec<(String, String)>,
    /// The QEMU arguments of the run (without the binary); empty from [`parse`].
    pub qemu_args: Vec<String>,
}

impl ArmstopRun {
    /// The figure of `kind` in `mode`, if the run has it.
    pub fn figure(&self, kind: &str, mode: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.kind == kind && f.mode == mode)
    }
}

fn fields(rest: &str) -> Result<BTreeMap<String, String>, String> {
    rest.split_ascii_whitespace()
        .map(|w| {
            w.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| format!("{w:?} is not key=value"))
        })
        .collect()
}

fn num(f: &BTreeMap<String, String>, key: &str) -> Result<u64, String> {
    let v = f.get(key).ok_or_else(|| format!("no {key}="))?;
    v.parse().map_err(|_| format!("{key}={v} is not a number"))
}

fn text(f: &BTreeMap<String, String>, key: &str) -> Result<String, String> {
    f.get(key).cloned().ok_or_else(|| format!("no {key}="))
}

fn figure(f: &BTreeMap<String, String>) -> Result<Figure, String> {
    let small = |k: &str| -> Result<u32, String> {
        u32::try_from(num(f, k)?).map_err(|_| format!("{k} out of range"))
    };
    let fig = Figure {
        kind: text(f, "kind")?,
        mode: text(f, "mode")?,
        cpus: small("cpus")?,
        n: small("n")?,
        min: num(f, "min")?,
        median: num(f, "median")?,
        p99: num(f, "p99")?,
        max: num(f, "max")?,
        mean: num(f, "mean")?,
    };
    if fig.n == 0 {
        return Err("n=0".into());
    }
    if !(fig.min <= fig.median && fig.median <= fig.p99 && fig.p99 <= fig.max) {
        return Err("min <= median <= p99 <= max does not hold".into());
    }
    if !(fig.min..=fig.max).contains(&fig.mean) {
        return Err("mean outside min..max".into());
    }
    Ok(fig)
}

/// Parses a bench image's console. Lines without the prefix (the firmware's log) are ignored;
/// a malformed prefixed line, an `error` line, a missing `begin` or `end`, a figure twice, or
/// no figure at all is an error naming the line.
pub fn parse(lines: &[String]) -> Result<ArmstopRun, String> {
    let mut r = ArmstopRun::default();
    let (mut begun, mut ended) = (false, false);
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.find(PREFIX).map(|at| &line[at + PREFIX.len()..]) else {
            continue;
        };
        let at = |e: String| format!("line {}: {e}: {line:?}", i + 1);
        let (word, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        if ended {
            return Err(at("output after `end`".into()));
        }
        if word != "begin" && !begun {
            return Err(at("before `begin`".into()));
        }
        match word {
            "begin" if begun => return Err(at("a second `begin`".into())),
            "begin" => {
                r.begin = fields(rest).map_err(at)?;
                begun = true;
            }
            "figure" => {
                let f = figure(&fields(rest).map_err(at)?).map_err(at)?;
                if r.figure(&f.kind, &f.mode).is_some() {
                    return Err(at(format!("figure {} ({}) twice", f.kind, f.mode)));
                }
                r.figures.push(f);
            }
            "counters" => {
                let f = fields(rest).map_err(at)?;
                let mode = text(&f, "mode").map_err(at)?;
                let mut c = BTreeMap::new();
                for k in f.keys().filter(|k| *k != "mode") {
                    c.insert(k.clone(), num(&f, k).map_err(at)?);
                }
                r.counters.insert(mode, c);
            }
            "skipped" => {
                let f = fields(rest).map_err(at)?;
                r.skipped.push((text(&f, "kind").map_err(at)?, text(&f, "reason").map_err(at)?));
            }
            "error" => return Err(format!("the bench image failed: {rest}")),
            "end" => ended = true,
            _ => return Err(at(format!("unknown line kind {word:?}"))),
        }
    }
    if !begun {
        return Err("no `armstop-bench: begin` line: the bench image did not start".into());
    }
    if !ended {
        return Err("no `armstop-bench: end` line: the bench image did not finish".into());
    }
    if r.figures.is_empty() {
        return Err("no figures".into());
    }
    Ok(r)
}

/// Boots `image` (`release/bench` under `images`) on `m` with `iters` iterations per figure
/// (passed on the semihosting command line, where the machine has one) and `extra` QEMU
/// arguments (`-icount shift=1`), and parses its console.
// Each argument is one of the run's own settings; a struct for one caller would only move them.
#[allow(clippy::too_many_arguments)]
pub fn run(
    qemu: &str,
    images: &Path,
    firmware_dir: &Path,
    m: &Machine,
    iters: u32,
    extra: &[&str],
    timeout: Duration,
    watch: &qemu::Watch,
) -> Result<ArmstopRun, String> {
    let files =
        boot_files(m, ImageRef::Named { root: images, name: "release/bench" }, firmware_dir)
            .map_err(|e| format!("{e} (`just bench` builds it)"))?;
    let mut args = armstop_runner::qemu_args(m, &files, None);
    args.extend(extra.iter().map(|s| s.to_string()));
    if m.exit() == armstop_boards::ExitMethod::Semihosting {
        args.extend(["-append".into(), format!("iters={iters}")]);
    }
    let cmd = qemu::command_line(qemu, &args);
    let console = qemu::run(qemu, &args, timeout, Some(watch))
        .map_err(|e| format!("armstop on {}: {e}", m.name))?;
    let status = match m.exit() {
        armstop_boards::ExitMethod::Semihosting => console.status.code(),
        armstop_boards::ExitMethod::PsciSystemOff => {
            armstop_runner::console_status(&console.lines).ok().flatten()
        }
    };
    let mut r = parse(&console.lines).map_err(|e| {
        format!(
            "armstop on {}: {e} ({cmd}); last console lines:\n{}",
            m.name,
            tail(&console.lines, 15)
        )
    })?;
    if status != Some(0) {
        return Err(format!(
            "armstop on {}: the bench image ended with status {status:?} ({cmd}); stderr: {}",
            m.name,
            console.stderr.trim()
        ));
    }
    r.qemu_args = args;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(String::from).collect()
    }

    const GOOD: &str = "\
[   0.004] cpu0 INFO  GIC: V2
armstop-bench: begin board=qemu-virt cpus=4 gic=V2 psci=Hvc timer_hz=62500000 iters=3 spin_ns=20000
armstop-bench: figure kind=sgi_pingpong mode=floor cpus=4 n=3 min=1 median=2 p99=3 max=3 mean=2
armstop-bench: figure kind=stop_machine_4cpus mode=spin cpus=4 n=3 min=10 median=20 p99=30 max=30 mean=20
armstop-bench: skipped kind=x reason=needs_8_CPUs
armstop-bench: counters mode=spin sleeps=0 wakes=0 back_offs=0 watchdog_reports=0
armstop-bench: end
";

    #[test]
    fn a_good_run() {
        let r = parse(&lines(GOOD)).unwrap();
        assert_eq!(r.begin["board"], "qemu-virt");
        assert_eq!(r.figures.len(), 2);
        let f = r.figure("stop_machine_4cpus", "spin").unwrap();
        assert_eq!(
            (f.n, f.min, f.median, f.p99, f.max, f.mean, f.cpus),
            (3, 10, 20, 30, 30, 20, 4)
        );
        assert_eq!(r.counters["spin"]["sleeps"], 0);
        assert_eq!(r.skipped, vec![("x".to_string(), "needs_8_CPUs".to_string())]);
    }

    fn error_of(edit: impl Fn(&str) -> String) -> String {
        parse(&lines(&edit(GOOD))).unwrap_err()
    }

    #[test]
    fn every_bad_output_is_an_error() {
        let cases: &[(&str, &str, &str)] = &[
            ("armstop-bench: begin", "armstop-bench: bgin", "before `begin`"),
            ("armstop-bench: end\n", "", "did not finish"),
            ("median=20", "median=x", "median=x is not a number"),
            ("median=20", "median=40", "min <= median <= p99 <= max"),
            ("mean=20", "mean=99", "mean outside"),
            ("n=3 min=10", "n=0 min=10", "n=0"),
            (" p99=30", " p99", "\"p99\" is not key=value"),
            ("kind=sgi_pingpong mode=floor", "kind=stop_machine_4cpus mode=spin", "twice"),
            ("mode=floor", "", "no mode="),
            ("armstop-bench: skipped", "armstop-bench: wobble", "unknown line kind"),
            ("armstop-bench: end\n", "armstop-bench: end\narmstop-bench: end\n", "after `end`"),
        ];
        for (from, to, says) in cases {
            let e = error_of(|s| s.replacen(from, to, 1));
            assert!(e.contains(says), "{from:?} -> {to:?}: {e:?} does not say {says:?}");
        }
        let e = error_of(|s| {
            s.replace("armstop-bench: end", "armstop-bench: error stop_one_cpu(1): Err(NoEnt)")
        });
        assert!(e.contains("the bench image failed: stop_one_cpu(1)"), "{e}");
        assert!(parse(&[]).unwrap_err().contains("did not start"));
        let e = error_of(|s| {
            s.lines().filter(|l| !l.contains("figure")).map(|l| format!("{l}\n")).collect()
        });
        assert!(e.contains("no figures"), "{e}");
    }
}
