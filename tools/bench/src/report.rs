//! What `just bench` shows: the console table with the ratios, the targets, the JSON record of
//! a whole bench and the SVG plot.
//!
//! Every ratio is taken within one run (armstop and Linux booted one after the other on the
//! same machine, same flags), then summarised over the runs as the median with the range, so
//! that the noise of a shared, overcommitted host shows as a spread instead of hiding in one
//! number. No figure here decides anything: the targets say met or missed, and nothing fails on
//! a time.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::armstop::{ArmstopRun, Figure};
use crate::linux::LinuxRun;

/// One boot of armstop's bench image on one machine configuration, and Linux's beside it.
#[derive(Clone, Debug)]
pub struct MachineRun {
    /// The runner's machine name (`virt-gicv2`).
    pub machine: String,
    /// The configuration: the machine name, plus any extra QEMU flags (`-icount shift=1`).
    pub config: String,
    /// Which repetition (0-based).
    pub repeat: u32,
    /// armstop's figures.
    pub armstop: ArmstopRun,
    /// Linux's, where the configuration has a Linux side.
    pub linux: Option<LinuxRun>,
}

/// A whole `just bench`.
#[derive(Clone, Debug)]
pub struct Bench {
    /// When it ran (UTC, RFC 3339).
    pub date: String,
    /// CPUs the host has.
    pub host_cpus: usize,
    /// `qemu-system-aarch64 --version`, first line.
    pub qemu_version: String,
    /// Iterations per figure asked of the bench image.
    pub iters: u32,
    /// Runs of each configuration.
    pub repeats: u32,
    /// Linux offline/online cycles per CPU and run.
    pub linux_cycles: u32,
    /// Release images' raw sizes in bytes, by name (`qemu-virt/armstop.bin`).
    pub image_sizes: BTreeMap<String, u64>,
    /// Every run.
    pub runs: Vec<MachineRun>,
}

/// The spin-then-sleep mode is what ships; the targets are judged on it.
pub const SHIPPED_MODE: &str = "sleep";

fn median(v: &[u64]) -> Option<u64> {
    let mut s = v.to_vec();
    s.sort_unstable();
    (!s.is_empty()).then(|| s[(s.len() - 1) / 2])
}

fn median_f(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (!s.is_empty()).then(|| s[(s.len() - 1) / 2])
}

/// A time in ns, for people: `842 ns`, `18.7 us`, `9.4 ms`, `1.20 s`.
pub fn human(ns: f64) -> String {
    match ns {
        n if n < 1e3 => format!("{n:.0} ns"),
        n if n < 1e4 => format!("{:.2} us", n / 1e3),
        n if n < 1e6 => format!("{:.1} us", n / 1e3),
        n if n < 1e7 => format!("{:.2} ms", n / 1e6),
        n if n < 1e9 => format!("{:.1} ms", n / 1e6),
        n => format!("{:.2} s", n / 1e9),
    }
}

/// What a figure is compared with.
#[derive(Clone, Copy, Debug)]
enum Other {
    /// An armstop floor figure (mode `floor`) of the same run.
    Floor(&'static str),
    /// A Linux figure of the same run.
    Linux(LinuxFigure),
}

/// The Linux figures armstop's are compared with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinuxFigure {
    /// `echo 0 > online`.
    Down,
    /// `echo 1 > online`.
    Up,
    /// Both.
    Cycle,
    /// The `takedown_cpu` step (its `stop_machine(take_cpu_down)`).
    Takedown,
}

impl LinuxFigure {
    fn samples(self, l: &LinuxRun) -> &[u64] {
        match self {
            Self::Down => &l.down_ns,
            Self::Up => &l.up_ns,
            Self::Cycle => &l.cycle_ns,
            Self::Takedown => &l.takedown_ns,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Down => "Linux offline",
            Self::Up => "Linux online",
            Self::Cycle => "Linux offline+online",
            Self::Takedown => "Linux takedown_cpu",
        }
    }
}

/// The rows of the table: each request kind, and what it is set against.
const ROWS: &[(&str, Option<Other>)] = &[
    ("boot_to_all_online", None),
    ("sgi_pingpong", None),
    ("sgi_broadcast_ack", None),
    ("psci_cpu_on", None),
    ("psci_cpu_off", None),
    ("psci_cycle", None),
    ("stop_one_cpu_local", None),
    ("stop_one_cpu_remote", Some(Other::Floor("sgi_pingpong"))),
    ("stop_one_cpu_nowait", None),
    ("stop_two_cpus_0_1", Some(Other::Floor("sgi_pingpong"))),
    ("stop_two_cpus_1_2", Some(Other::Floor("sgi_broadcast_ack"))),
    ("stop_cpus", Some(Other::Floor("sgi_broadcast_ack"))),
    ("stop_machine_2cpus", Some(Other::Floor("sgi_pingpong"))),
    ("stop_machine_3cpus", Some(Other::Floor("sgi_broadcast_ack"))),
    ("stop_machine_4cpus", Some(Other::Floor("sgi_broadcast_ack"))),
    ("cpu_down", Some(Other::Linux(LinuxFigure::Down))),
    ("cpu_down_stop_machine", Some(Other::Linux(LinuxFigure::Takedown))),
    ("cpu_up", Some(Other::Linux(LinuxFigure::Up))),
    ("hotplug_cycle", Some(Other::Linux(LinuxFigure::Cycle))),
];

/// The modes a row is shown in.
const MODES: [&str; 4] = ["floor", "spin", "sleep", "sleep0"];

/// What the scale curve follows, by CPU count: label, figure kind (`stop_machine_all`: the
/// machine's own CPU count) and mode (`shipped`: [`SHIPPED_MODE`]).
pub const SCALE_KINDS: &[(&str, &str, &str)] = &[
    ("broadcast SGI + acks (floor)", "sgi_broadcast_ack", "floor"),
    ("stop_one_cpu remote", "stop_one_cpu_remote", "shipped"),
    ("stop_two_cpus(1,2)", "stop_two_cpus_1_2", "shipped"),
    ("stop_cpus (all but cpu0)", "stop_cpus", "shipped"),
    ("stop_machine (every CPU)", "stop_machine_all", "shipped"),
    ("stop_machine, spin-only", "stop_machine_all", "spin"),
    ("cpu_down's stop_machine", "cpu_down_stop_machine", "shipped"),
    ("hotplug cycle", "hotplug_cycle", "shipped"),
    ("boot to all online", "boot_to_all_online", "floor"),
];

fn other_median(run: &MachineRun, other: Other) -> Option<u64> {
    match other {
        Other::Floor(k) => run.armstop.figure(k, "floor").map(|f| f.median),
        Other::Linux(l) => run.linux.as_ref().and_then(|r| median(l.samples(r))),
    }
}

fn other_name(other: Other) -> &'static str {
    match other {
        Other::Floor(k) => k,
        Other::Linux(l) => l.name(),
    }
}

/// Median and range over runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    /// Median of the runs' values.
    pub median: f64,
    /// Smallest.
    pub lo: f64,
    /// Largest.
    pub hi: f64,
}

fn spread(v: &[f64]) -> Option<Spread> {
    let m = median_f(v)?;
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some(Spread { median: m, lo, hi })
}

impl Spread {
    fn show_time(&self, runs: usize) -> String {
        if runs > 1 {
            format!("{} ({}-{})", human(self.median), human(self.lo), human(self.hi))
        } else {
            human(self.median)
        }
    }

    fn show_ratio(&self, runs: usize) -> String {
        if runs > 1 {
            format!("{:.2}x ({:.2}-{:.2})", self.median, self.lo, self.hi)
        } else {
            format!("{:.2}x", self.median)
        }
    }
}

impl Bench {
    /// The configurations, in the order first run.
    pub fn configs(&self) -> Vec<&str> {
        let mut c: Vec<&str> = Vec::new();
        for r in &self.runs {
            if !c.contains(&r.config.as_str()) {
                c.push(&r.config);
            }
        }
        c
    }

    /// CPUs the bench image found online at boot on `config` (its `begin` line).
    pub fn cpus_of(&self, config: &str) -> Option<u32> {
        self.runs_of(config).find_map(|r| r.armstop.begin.get("cpus")?.parse().ok())
    }

    /// The configurations the targets are judged on: the 4-CPU machines without extra flags
    /// (the scale machines and `-icount` are judged apart, or not at all).
    fn judged(&self) -> Vec<&str> {
        self.configs()
            .into_iter()
            .filter(|c| !c.contains(' ') && self.cpus_of(c) == Some(4))
            .collect()
    }

    /// The scale curve: for each of [`SCALE_KINDS`], the shipped mode's median on each GICv3
    /// `virt` configuration without extra flags, by CPU count (ascending). The whole-machine
    /// `stop_machine` is `stop_machine_<n>cpus` on each.
    pub fn scale(&self) -> Vec<(&'static str, Vec<(u32, f64)>)> {
        let mut configs: Vec<(u32, &str)> = self
            .configs()
            .into_iter()
            .filter(|c| !c.contains(' ') && c.starts_with("virt-gicv3"))
            .filter_map(|c| Some((self.cpus_of(c)?, c)))
            .collect();
        configs.sort_unstable();
        configs.dedup_by_key(|(n, _)| *n);
        if configs.len() < 2 {
            return Vec::new();
        }
        SCALE_KINDS
            .iter()
            .map(|&(label, kind, mode)| {
                let points = configs
                    .iter()
                    .filter_map(|&(n, c)| {
                        let k = if kind == "stop_machine_all" {
                            format!("stop_machine_{n}cpus")
                        } else {
                            kind.to_string()
                        };
                        let m = if mode == "shipped" { SHIPPED_MODE } else { mode };
                        self.figure_spread(c, &k, m).map(|s| (n, s.median))
                    })
                    .collect();
                (label, points)
            })
            .filter(|(_, p): &(&str, Vec<(u32, f64)>)| !p.is_empty())
            .collect()
    }

    fn runs_of<'a>(&'a self, config: &'a str) -> impl Iterator<Item = &'a MachineRun> + 'a {
        self.runs.iter().filter(move |r| r.config == config)
    }

    /// A figure's median, over the runs of `config`.
    pub fn figure_spread(&self, config: &str, kind: &str, mode: &str) -> Option<Spread> {
        let v: Vec<f64> = self
            .runs_of(config)
            .filter_map(|r| r.armstop.figure(kind, mode))
            .map(|f| f.median as f64)
            .collect();
        spread(&v)
    }

    fn ratio_spread(&self, config: &str, kind: &str, mode: &str, other: Other) -> Option<Spread> {
        let v: Vec<f64> = self
            .runs_of(config)
            .filter_map(|r| {
                let mine = r.armstop.figure(kind, mode)?.median as f64;
                let theirs = other_median(r, other)? as f64;
                (mine > 0.0 && theirs > 0.0).then_some(mine / theirs)
            })
            .collect();
        spread(&v)
    }

    fn linux_spread(&self, config: &str, l: LinuxFigure) -> Option<Spread> {
        let v: Vec<f64> = self
            .runs_of(config)
            .filter_map(|r| r.linux.as_ref().and_then(|x| median(l.samples(x))))
            .map(|m| m as f64)
            .collect();
        spread(&v)
    }

    /// The console table, every configuration, with ratios, and the targets if `judge` (a
    /// smoke run's few iterations say nothing about them).
    pub fn table(&self, judge: bool) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "armstop bench, {}: host with {} CPUs, {}; {} run(s) of each configuration, {} \
             iterations per figure, Linux {} cycles per CPU per run",
            self.date,
            self.host_cpus,
            self.qemu_version,
            self.repeats,
            self.iters,
            self.linux_cycles
        );
        let _ = writeln!(
            o,
            "(medians; with several runs, the median over runs and its range. Ratios are armstop \
             / the other, taken within each run: under 1 is faster.)"
        );
        for config in self.configs() {
            let runs = self.runs_of(config).count();
            let first = self.runs_of(config).next().expect("a run");
            let _ = writeln!(o, "\n== {config}: {}", first.armstop.qemu_args.join(" "));
            let _ = writeln!(o, "  {:<24} {:<6} {:<26} against", "figure", "mode", "median");
            for (kind, other) in ROWS {
                for mode in MODES {
                    let Some(s) = self.figure_spread(config, kind, mode) else { continue };
                    let mut against = String::new();
                    if let Some(other) = other
                        && let Some(r) = self.ratio_spread(config, kind, mode, *other)
                    {
                        let _ = write!(against, "{} of {}", r.show_ratio(runs), other_name(*other));
                        if let Other::Linux(l) = other
                            && let Some(ls) = self.linux_spread(config, *l)
                        {
                            let _ = write!(
                                against,
                                " ({}; {:.0}x faster)",
                                ls.show_time(runs),
                                1.0 / r.median
                            );
                        }
                    }
                    let _ =
                        writeln!(o, "  {kind:<24} {mode:<6} {:<26} {against}", s.show_time(runs));
                }
            }
            for r in self.runs_of(config) {
                for (mode, c) in &r.armstop.counters {
                    let c: Vec<String> = c.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    let _ = writeln!(o, "  run {}: {mode} mode: {}", r.repeat, c.join(", "));
                }
            }
        }
        let scale = self.scale();
        if !scale.is_empty() {
            let cpus: Vec<u32> = scale[0].1.iter().map(|p| p.0).collect();
            let _ = writeln!(
                o,
                "\nscale (virt GICv3; medians over runs, shipped mode unless named; growth = \
                 largest / smallest machine):"
            );
            let head: Vec<String> = cpus.iter().map(|n| format!("{n:>3} CPUs")).collect();
            let _ = writeln!(o, "  {:<30} {}  growth", "", head.join("   "));
            for (label, points) in &scale {
                let cells: Vec<String> = cpus
                    .iter()
                    .map(|n| {
                        points.iter().find(|p| p.0 == *n).map_or_else(|| "-".into(), |p| human(p.1))
                    })
                    .map(|c| format!("{c:>8}"))
                    .collect();
                let growth = match (points.first(), points.last()) {
                    (Some(a), Some(b)) if points.len() > 1 && a.1 > 0.0 => {
                        format!("{:.1}x over {}x the CPUs", b.1 / a.1, b.0 / a.0.max(1))
                    }
                    _ => String::new(),
                };
                let _ = writeln!(o, "  {label:<30} {}  {growth}", cells.join("   "));
            }
        }
        if !self.image_sizes.is_empty() {
            let _ = writeln!(o, "\nrelease images (raw):");
            for (name, size) in &self.image_sizes {
                let _ = writeln!(o, "  {name:<32} {size} bytes ({:.1} KiB)", *size as f64 / 1024.0);
            }
        }
        if !judge {
            let _ = writeln!(o, "\ntargets: not judged on a smoke run");
            return o;
        }
        let _ = writeln!(
            o,
            "\ntargets (judged on the shipped spin-then-sleep mode, host of {} CPUs):",
            self.host_cpus
        );
        for t in self.targets() {
            let _ = writeln!(
                o,
                "  [{}] {}: {}",
                if t.met { "met" } else { "MISSED" },
                t.what,
                t.measured
            );
        }
        o
    }

    /// Each target of the performance issue, judged on what was measured.
    pub fn targets(&self) -> Vec<Target> {
        let mut t = Vec::new();
        let plain = self.judged();
        let mut ratio_target = |what: &str, kind: &str, other: Other, limit: f64, faster: bool| {
            for config in &plain {
                let Some(r) = self.ratio_spread(config, kind, SHIPPED_MODE, other) else {
                    continue;
                };
                let (met, measured) = if faster {
                    let x = 1.0 / r.median;
                    (
                        x >= limit,
                        format!(
                            "{config}: {x:.0}x faster (runs: {:.0}x-{:.0}x)",
                            1.0 / r.hi,
                            1.0 / r.lo
                        ),
                    )
                } else {
                    (
                        r.median <= limit,
                        format!("{config}: {:.2}x (runs: {:.2}x-{:.2}x)", r.median, r.lo, r.hi),
                    )
                };
                t.push(Target { what: what.to_string(), measured, met });
            }
        };
        ratio_target(
            "hotplug down+up cycle >= 50x faster than Linux's",
            "hotplug_cycle",
            Other::Linux(LinuxFigure::Cycle),
            50.0,
            true,
        );
        ratio_target(
            "cpu_down's stop_machine step >= 20x faster than Linux's takedown_cpu",
            "cpu_down_stop_machine",
            Other::Linux(LinuxFigure::Takedown),
            20.0,
            true,
        );
        ratio_target(
            "hotplug cycle within 3x of the raw PSCI OFF + ON floor",
            "hotplug_cycle",
            Other::Floor("psci_cycle"),
            3.0,
            false,
        );
        ratio_target(
            "stop_machine(noop) on 4 CPUs within 4x of the broadcast SGI + acks floor",
            "stop_machine_4cpus",
            Other::Floor("sgi_broadcast_ack"),
            4.0,
            false,
        );
        ratio_target(
            "stop_one_cpu remote within 1.5x of the SGI round trip",
            "stop_one_cpu_remote",
            Other::Floor("sgi_pingpong"),
            1.5,
            false,
        );
        for config in self.configs().into_iter().filter(|c| c.contains("-icount shift=1")) {
            if let Some(s) = self.figure_spread(config, "stop_machine_4cpus", SHIPPED_MODE) {
                t.push(Target {
                    what: "stop_machine(noop) on 4 CPUs under 5 ms with -icount shift=1".into(),
                    measured: format!("{config}: {}", human(s.median)),
                    met: s.median < 5e6,
                });
            }
        }
        for (name, size) in self.image_sizes.iter().filter(|(n, _)| n.ends_with("/armstop.bin")) {
            t.push(Target {
                what: "release image <= 128 KiB".into(),
                measured: format!("{name}: {:.1} KiB", *size as f64 / 1024.0),
                met: *size <= 128 * 1024,
            });
        }
        for config in &plain {
            if let Some(s) = self.figure_spread(config, "boot_to_all_online", "floor") {
                t.push(Target {
                    what: "boot to every CPU online <= 50 ms of guest time".into(),
                    measured: format!("{config}: {}", human(s.median)),
                    met: s.median <= 50e6,
                });
            }
        }
        t
    }

    /// The whole bench as JSON: the set-up, every run's figures (armstop's and Linux's, with
    /// the exact QEMU arguments), the summary table's numbers and the targets.
    pub fn json(&self) -> Value {
        let fig = |f: &Figure| {
            json!({"kind": f.kind, "mode": f.mode, "cpus": f.cpus, "n": f.n, "min_ns": f.min,
                   "median_ns": f.median, "p99_ns": f.p99, "max_ns": f.max, "mean_ns": f.mean})
        };
        let runs: Vec<Value> = self
            .runs
            .iter()
            .map(|r| {
                json!({
                    "machine": r.machine,
                    "config": r.config,
                    "repeat": r.repeat,
                    "armstop": {
                        "qemu_args": r.armstop.qemu_args,
                        "begin": r.armstop.begin,
                        "figures": r.armstop.figures.iter().map(fig).collect::<Vec<_>>(),
                        "counters": r.armstop.counters,
                        "skipped": r.armstop.skipped,
                    },
                    "linux": r.linux.as_ref().map(|l| json!({
                        "kernel": l.kernel,
                        "cpus": l.cpus,
                        "cycles_per_cpu": l.cycles_per_cpu,
                        "qemu_args": l.qemu_args,
                        "down_ns": l.down_ns,
                        "up_ns": l.up_ns,
                        "cycle_ns": l.cycle_ns,
                        "takedown_ns": l.takedown_ns,
                        "step_median_ns": l.steps.iter()
                            .map(|(k, v)| (k.clone(), median(v).unwrap_or(0)))
                            .collect::<BTreeMap<_, _>>(),
                    })),
                })
            })
            .collect();
        let targets: Vec<Value> = self
            .targets()
            .iter()
            .map(|t| json!({"target": t.what, "measured": t.measured, "met": t.met}))
            .collect();
        json!({
            "date": self.date,
            "host_cpus": self.host_cpus,
            "qemu_version": self.qemu_version,
            "iters": self.iters,
            "repeats": self.repeats,
            "linux_cycles_per_cpu": self.linux_cycles,
            "image_sizes": self.image_sizes,
            "runs": runs,
            "targets": targets,
        })
    }

    /// The plot: per configuration, the median of each request kind as a bar on a log scale,
    /// armstop's spin-only and spin-then-sleep waits beside its floors and Linux.
    pub fn svg(&self) -> String {
        const W: f64 = 980.0;
        const LABEL: f64 = 190.0;
        const BAR: f64 = 7.0;
        const LO: f64 = 1e3; // 1 us
        const HI: f64 = 1e9; // 1 s
        let x = |ns: f64| {
            LABEL
                + (ns.clamp(LO, HI).log10() - LO.log10()) / (HI.log10() - LO.log10())
                    * (W - LABEL - 20.0)
        };
        let colour = |series: &str| match series {
            "floor" => "#7f7f7f",
            "spin" => "#d62728",
            "sleep" => "#1f77b4",
            "sleep0" => "#9467bd",
            _ => "#2ca02c",
        };
        let mut body = String::new();
        let mut y = 74.0;
        for config in self.configs() {
            let _ = writeln!(
                body,
                r#"<text x="10" y="{y}" font-size="14" font-weight="bold">{}</text>"#,
                xml(config)
            );
            y += 12.0;
            let top = y;
            for (kind, other) in ROWS {
                let mut bars: Vec<(&str, f64)> = MODES
                    .iter()
                    .filter_map(|m| self.figure_spread(config, kind, m).map(|s| (*m, s.median)))
                    .collect();
                if let Some(Other::Linux(l)) = other
                    && let Some(s) = self.linux_spread(config, *l)
                {
                    bars.push(("linux", s.median));
                }
                if bars.is_empty() {
                    continue;
                }
                let h = BAR * bars.len() as f64 + 6.0;
                let _ = writeln!(
                    body,
                    r#"<text x="{}" y="{}" font-size="11" text-anchor="end">{}</text>"#,
                    LABEL - 6.0,
                    y + h / 2.0 + 3.0,
                    xml(kind)
                );
                for (i, (series, ns)) in bars.iter().enumerate() {
                    let by = y + 3.0 + BAR * i as f64;
                    let _ = writeln!(
                        body,
                        r#"<rect x="{LABEL}" y="{by}" width="{:.1}" height="{}" fill="{}"><title>{} {}: {}</title></rect>"#,
                        x(*ns) - LABEL,
                        BAR - 1.0,
                        colour(series),
                        xml(kind),
                        series,
                        human(*ns)
                    );
                }
                y += h;
            }
            for e in 3..=9 {
                let gx = x(10f64.powi(e));
                let _ = writeln!(
                    body,
                    r##"<line x1="{gx:.1}" y1="{top}" x2="{gx:.1}" y2="{y}" stroke="#ccc" stroke-width="0.5"/><text x="{gx:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"##,
                    y + 12.0,
                    human(10f64.powi(e))
                );
            }
            y += 40.0;
        }
        let scale = self.scale();
        if !scale.is_empty() {
            y += self.scale_svg(&scale, y, &mut body);
        }
        let mut legend = String::new();
        for (i, (series, name)) in [
            ("floor", "floor (no stopper)"),
            ("spin", "armstop, spin-only waits"),
            ("sleep", "armstop, spin then sleep (shipped)"),
            ("sleep0", "armstop, sleep at once"),
            ("linux", "Linux 6.1, same QEMU"),
        ]
        .iter()
        .enumerate()
        {
            // Three to a row, so that no label runs into the next.
            let (lx, ly) = (10.0 + 330.0 * (i % 3) as f64, 30.0 + 14.0 * (i / 3) as f64);
            let _ = write!(
                legend,
                r#"<rect x="{lx}" y="{ly}" width="12" height="10" fill="{}"/><text x="{}" y="{}" font-size="11">{name}</text>"#,
                colour(series),
                lx + 16.0,
                ly + 9.0
            );
        }
        format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="14">armstop vs its floors and Linux: median latency per request kind (log scale); host of {} CPUs, {}</text>
{legend}
{body}</svg>
"#,
            self.host_cpus,
            xml(self.qemu_version.split(" (").next().unwrap_or(&self.qemu_version))
        )
    }
}

impl Bench {
    /// The scale panel of the plot at height `top`: each of [`SCALE_KINDS`] as a line over the
    /// CPU count (log scale both ways), labelled at its right end; returns the panel's height.
    fn scale_svg(&self, scale: &[(&str, Vec<(u32, f64)>)], top: f64, body: &mut String) -> f64 {
        const LEFT: f64 = 80.0;
        const RIGHT: f64 = 700.0;
        const H: f64 = 300.0;
        const LO: f64 = 1e3;
        const HI: f64 = 1e9;
        const PALETTE: [&str; 9] = [
            "#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#e377c2", "#9467bd", "#8c564b",
            "#17becf",
        ];
        let cpus: Vec<u32> = scale.iter().flat_map(|(_, p)| p.iter().map(|q| q.0)).collect();
        let (min, max) = (
            f64::from(*cpus.iter().min().unwrap_or(&1)),
            f64::from(*cpus.iter().max().unwrap_or(&2)),
        );
        let y0 = top + 30.0;
        let px = |n: u32| {
            LEFT + (f64::from(n).log2() - min.log2()) / (max.log2() - min.log2()).max(1e-9)
                * (RIGHT - LEFT)
        };
        let py = |ns: f64| {
            y0 + H - (ns.clamp(LO, HI).log10() - LO.log10()) / (HI.log10() - LO.log10()) * H
        };
        let _ = writeln!(
            body,
            r#"<text x="10" y="{}" font-size="14" font-weight="bold">scale: virt GICv3, median latency by CPU count (shipped mode unless named; log scales)</text>"#,
            top + 14.0
        );
        for e in 3..=9 {
            let gy = py(10f64.powi(e));
            let _ = writeln!(
                body,
                r##"<line x1="{LEFT}" y1="{gy:.1}" x2="{RIGHT}" y2="{gy:.1}" stroke="#ccc" stroke-width="0.5"/><text x="{}" y="{:.1}" font-size="10" text-anchor="end">{}</text>"##,
                LEFT - 4.0,
                gy + 3.0,
                human(10f64.powi(e))
            );
        }
        let mut ticks = cpus.clone();
        ticks.sort_unstable();
        ticks.dedup();
        for n in ticks {
            let gx = px(n);
            let _ = writeln!(
                body,
                r##"<line x1="{gx:.1}" y1="{y0}" x2="{gx:.1}" y2="{}" stroke="#ccc" stroke-width="0.5"/><text x="{gx:.1}" y="{}" font-size="10" text-anchor="middle">{n} CPUs</text>"##,
                y0 + H,
                y0 + H + 14.0
            );
        }
        let mut labels: Vec<(f64, f64, &str, String)> = Vec::new();
        for (i, (label, points)) in scale.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let path: Vec<String> =
                points.iter().map(|&(n, ns)| format!("{:.1},{:.1}", px(n), py(ns))).collect();
            let _ = writeln!(
                body,
                r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                path.join(" ")
            );
            for &(n, ns) in points {
                let _ = writeln!(
                    body,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}"><title>{} on {n} CPUs: {}</title></circle>"#,
                    px(n),
                    py(ns),
                    xml(label),
                    human(ns)
                );
            }
            if let Some(&(n, ns)) = points.last() {
                labels.push((
                    py(ns) + 3.0,
                    px(n) + 6.0,
                    colour,
                    format!("{} ({})", xml(label), human(ns)),
                ));
            }
        }
        // Labels of lines that end close together are moved apart, top to bottom.
        labels.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut last = f64::MIN;
        for (ly, lx, colour, text) in labels {
            let ly = ly.max(last + 11.0);
            last = ly;
            let _ = writeln!(
                body,
                r#"<text x="{lx:.1}" y="{ly:.1}" font-size="10" fill="{colour}">{text}</text>"#
            );
        }
        H + 70.0
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One target: what it asks, what was measured, and whether that meets it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The target, in words.
    pub what: String,
    /// The measurement, in words.
    pub measured: String,
    /// Whether it is met.
    pub met: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(kind: &str, mode: &str, median: u64) -> Figure {
        Figure {
            kind: kind.into(),
            mode: mode.into(),
            cpus: 4,
            n: 1,
            min: median,
            median,
            p99: median,
            max: median,
            mean: median,
        }
    }

    fn run(repeat: u32, scale: u64) -> MachineRun {
        let armstop = ArmstopRun {
            figures: vec![
                fig("sgi_broadcast_ack", "floor", 40_000),
                fig("psci_cycle", "floor", 100_000),
                fig("stop_machine_4cpus", "sleep", 200_000 * scale),
                fig("hotplug_cycle", "sleep", 500_000),
                fig("boot_to_all_online", "floor", 9_000_000),
            ],
            begin: [("cpus".to_string(), "4".to_string())].into(),
            ..Default::default()
        };
        let linux = LinuxRun {
            kernel: "6.1".into(),
            cpus: 4,
            cycles_per_cpu: 1,
            down_ns: vec![40_000_000],
            up_ns: vec![45_000_000],
            cycle_ns: vec![85_000_000, 90_000_000, 80_000_000],
            takedown_ns: vec![15_000_000],
            steps: BTreeMap::new(),
            qemu_args: vec![],
        };
        MachineRun {
            machine: "virt-gicv2".into(),
            config: "virt-gicv2".into(),
            repeat,
            armstop,
            linux: Some(linux),
        }
    }

    fn bench(runs: Vec<MachineRun>) -> Bench {
        Bench {
            date: "2026-12-01T00:00:00Z".into(),
            host_cpus: 2,
            qemu_version: "QEMU emulator version 10.0.2".into(),
            iters: 1,
            repeats: runs.len() as u32,
            linux_cycles: 1,
            image_sizes: [("qemu-virt/armstop.bin".to_string(), 140_000)].into(),
            runs,
        }
    }

    /// A bench image run on a GICv3 machine of `cpus` CPUs whose whole-machine stop_machine
    /// takes `sm` ns.
    fn scale_run(cpus: u32, sm: u64) -> MachineRun {
        let config = if cpus == 4 { "virt-gicv3".into() } else { format!("virt-gicv3-smp{cpus}") };
        MachineRun {
            machine: config.clone(),
            config,
            repeat: 0,
            armstop: ArmstopRun {
                figures: vec![
                    fig(&format!("stop_machine_{cpus}cpus"), "sleep", sm),
                    fig("boot_to_all_online", "floor", 60_000_000),
                    fig("hotplug_cycle", "sleep", 500_000),
                    fig("psci_cycle", "floor", 10_000),
                ],
                begin: [("cpus".to_string(), cpus.to_string())].into(),
                ..Default::default()
            },
            linux: None,
        }
    }

    #[test]
    fn the_scale_curve_follows_the_cpu_count_and_is_not_judged() {
        let b =
            bench(vec![scale_run(64, 4_000_000), scale_run(4, 250_000), scale_run(16, 1_000_000)]);
        let s = b.scale();
        let sm = s.iter().find(|(l, _)| l.starts_with("stop_machine (every")).expect("curve");
        assert_eq!(sm.1, [(4, 250_000.0), (16, 1_000_000.0), (64, 4_000_000.0)], "sorted by CPUs");
        let table = b.table(true);
        assert!(table.contains("16.0x over 16x the CPUs"), "{table}");
        assert!(b.svg().contains("scale: virt GICv3") && b.svg().contains("<polyline"));
        // Only the 4-CPU machine is judged: the 64-CPU boot (60 ms here) is no missed target.
        let boot: Vec<_> = b.targets().into_iter().filter(|t| t.what.contains("50 ms")).collect();
        assert_eq!(boot.len(), 1, "{boot:?}");
        assert!(boot[0].measured.starts_with("virt-gicv3:"), "{boot:?}");
        // One machine size alone is no curve.
        assert!(bench(vec![scale_run(4, 1)]).scale().is_empty());
    }

    #[test]
    fn ratios_are_per_run_and_targets_judged() {
        let b = bench(vec![run(0, 1), run(1, 2)]);
        // stop_machine / broadcast: 5x in run 0, 10x in run 1; median of two = the lower.
        let r = b
            .ratio_spread(
                "virt-gicv2",
                "stop_machine_4cpus",
                "sleep",
                Other::Floor("sgi_broadcast_ack"),
            )
            .unwrap();
        assert_eq!((r.lo, r.hi), (5.0, 10.0));
        let t = b.targets();
        let find = |w: &str| t.iter().find(|t| t.what.contains(w)).unwrap_or_else(|| panic!("{w}"));
        // 85 ms / 0.5 ms = 170x.
        assert!(find("50x faster").met);
        assert!(find("50x faster").measured.contains("170x"), "{:?}", find("50x faster"));
        // 0.5 ms vs 0.1 ms: 5x, over 3x.
        assert!(!find("within 3x").met);
        assert!(!find("within 4x").met);
        assert!(!find("128 KiB").met);
        assert!(find("50 ms").met);
        let table = b.table(true);
        assert!(b.table(false).ends_with("targets: not judged on a smoke run\n"));
        assert!(table.contains("[MISSED] release image"), "{table}");
        assert!(table.contains("Linux offline+online"), "{table}");
        let j = b.json();
        assert_eq!(j["host_cpus"], 2);
        assert_eq!(j["runs"].as_array().unwrap().len(), 2);
        assert_eq!(j["runs"][0]["linux"]["cycle_ns"][1], 90_000_000);
        let svg = b.svg();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("hotplug_cycle") && svg.contains("Linux 6.1"));
    }

    #[test]
    fn human_units() {
        assert_eq!(human(842.0), "842 ns");
        assert_eq!(human(18_700.0), "18.7 us");
        assert_eq!(human(9_400_000.0), "9.40 ms");
        assert_eq!(human(88_000_000.0), "88.0 ms");
        assert_eq!(human(1_200_000_000.0), "1.20 s");
    }
}
