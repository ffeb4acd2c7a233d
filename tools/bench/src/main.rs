//! `armstop-bench`: armstop's release bench image and Linux 6.1 on the same QEMU machines, in
//! one run; prints the table with the ratios and the targets, writes the JSON and the plot.
//!
//! ```text
//! armstop-bench [--machines a,b] [--repeat R] [--iters N] [--linux-cycles N]
//!               [--icount-iters N | --no-icount] [--no-linux] [--smoke] [--out DIR]
//!               [--images ROOT] [--firmware-dir DIR] [--qemu PATH] [--repo DIR]
//! ```
//! Each run boots, for each machine, the bench image (`ROOT/<board>/release/bench`) and then
//! Linux with exactly the same machine flags; the first `virt` machine is also run with
//! `-icount shift=1`. `--smoke` checks that every request kind still runs and is reported, with
//! a few iterations, one run and one Linux cycle (for `just test`); it fails if a figure is
//! missing, never on a time.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use armstop_bench::report::{Bench, MachineRun};
use armstop_bench::{armstop, linux, qemu};
use armstop_runner::Machine;

struct Options {
    machines: Vec<&'static Machine>,
    repeat: u32,
    iters: u32,
    linux_cycles: u32,
    icount_iters: Option<u32>,
    linux: bool,
    smoke: bool,
    /// The scale machines (armstop only, `scale_iters` per figure).
    scale: Vec<&'static Machine>,
    scale_iters: u32,
    out: PathBuf,
    images: PathBuf,
    firmware_dir: Option<PathBuf>,
    qemu: String,
    repo: PathBuf,
}

const USAGE: &str = "usage: armstop-bench [--machines a,b] [--repeat R] [--iters N] [--linux-cycles N] [--icount-iters N | --no-icount] [--no-linux] [--scale-machines a,b | --no-scale] [--scale-iters N] [--smoke] [--out DIR] [--images ROOT] [--firmware-dir DIR] [--qemu PATH] [--repo DIR]";

/// The machines of the scale curve, beside the 4-CPU `virt-gicv3` of the default machines.
const SCALE_MACHINES: &[&str] = &["virt-gicv3-smp16", "virt-gicv3-smp64"];

/// The request kinds every full-size (4-CPU) machine must report, in these modes.
const EXPECTED: &[(&str, &[&str])] = &[
    ("boot_to_all_online", &["floor"]),
    ("sgi_pingpong", &["floor"]),
    ("sgi_broadcast_ack", &["floor"]),
    ("psci_cpu_on", &["floor"]),
    ("psci_cpu_off", &["floor"]),
    ("psci_cycle", &["floor"]),
    ("stop_one_cpu_local", &["spin", "sleep", "sleep0"]),
    ("stop_one_cpu_remote", &["spin", "sleep", "sleep0"]),
    ("stop_one_cpu_nowait", &["spin", "sleep", "sleep0"]),
    ("stop_two_cpus_0_1", &["spin", "sleep", "sleep0"]),
    ("stop_two_cpus_1_2", &["spin", "sleep", "sleep0"]),
    ("stop_cpus", &["spin", "sleep", "sleep0"]),
    ("stop_machine_2cpus", &["spin", "sleep", "sleep0"]),
    ("stop_machine_3cpus", &["spin", "sleep", "sleep0"]),
    ("stop_machine_4cpus", &["spin", "sleep", "sleep0"]),
    ("cpu_down", &["spin", "sleep", "sleep0"]),
    ("cpu_down_stop_machine", &["spin", "sleep", "sleep0"]),
    ("cpu_up", &["spin", "sleep", "sleep0"]),
    ("hotplug_cycle", &["spin", "sleep", "sleep0"]),
];

fn number(flag: &str, v: Option<&String>, min: u32) -> Result<u32, String> {
    let v = v.ok_or_else(|| format!("{flag} needs a number"))?;
    match v.parse::<u32>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(format!("{flag} {v:?}: a whole number of at least {min}")),
    }
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        machines: vec![],
        repeat: 3,
        iters: 300,
        linux_cycles: 20,
        icount_iters: Some(20),
        linux: true,
        smoke: false,
        scale: SCALE_MACHINES
            .iter()
            .map(|n| armstop_runner::machine(n))
            .collect::<Result<_, _>>()?,
        scale_iters: 30,
        out: PathBuf::from("target/bench"),
        images: PathBuf::from("target/images"),
        firmware_dir: None,
        qemu: std::env::var("ARMSTOP_QEMU").unwrap_or_else(|_| "qemu-system-aarch64".into()),
        repo: PathBuf::from("."),
    };
    let mut out_given = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--machines" => {
                let v = it.next().ok_or("--machines needs a list")?;
                for name in v.split(',').filter(|s| !s.is_empty()) {
                    o.machines.push(armstop_runner::machine(name)?);
                }
            }
            "--repeat" => o.repeat = number(a, it.next(), 1)?,
            "--iters" => o.iters = number(a, it.next(), 1)?,
            "--linux-cycles" => o.linux_cycles = number(a, it.next(), 1)?,
            "--icount-iters" => o.icount_iters = Some(number(a, it.next(), 1)?),
            "--no-icount" => o.icount_iters = None,
            "--no-linux" => o.linux = false,
            "--scale-machines" => {
                let v = it.next().ok_or("--scale-machines needs a list")?;
                o.scale = v
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(armstop_runner::machine)
                    .collect::<Result<_, _>>()?;
            }
            "--no-scale" => o.scale.clear(),
            "--scale-iters" => o.scale_iters = number(a, it.next(), 1)?,
            "--smoke" => o.smoke = true,
            "--out" => {
                o.out = it.next().ok_or("--out needs a directory")?.into();
                out_given = true;
            }
            "--images" => o.images = it.next().ok_or("--images needs a directory")?.into(),
            "--firmware-dir" => {
                o.firmware_dir = Some(it.next().ok_or("--firmware-dir needs a directory")?.into())
            }
            "--qemu" => o.qemu = it.next().ok_or("--qemu needs a path")?.clone(),
            "--repo" => o.repo = it.next().ok_or("--repo needs a directory")?.into(),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    if o.machines.is_empty() {
        o.machines =
            vec![armstop_runner::machine("virt-gicv2")?, armstop_runner::machine("virt-gicv3")?];
    }
    if o.smoke {
        o.repeat = 1;
        o.iters = 2;
        o.linux_cycles = 1;
        o.icount_iters = o.icount_iters.map(|_| 2);
        o.scale_iters = 2;
        if !out_given {
            o.out = PathBuf::from("target/bench-smoke");
        }
    }
    Ok(o)
}

fn first_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .unwrap_or_else(|| format!("({cmd} {} failed)", args.join(" ")))
}

/// What a smoke run must have: every expected figure, on every configuration of a 4-CPU
/// machine, and Linux's side where it ran.
fn smoke_check(b: &Bench, linux: bool) -> Vec<String> {
    let mut missing = Vec::new();
    for r in &b.runs {
        let four = r.armstop.begin.get("cpus").is_some_and(|c| c == "4");
        for (kind, modes) in EXPECTED {
            for mode in *modes {
                if four && r.armstop.figure(kind, mode).is_none() {
                    missing.push(format!("{}: no {kind} ({mode})", r.config));
                }
            }
        }
        if let Some(n) =
            r.armstop.begin.get("cpus").filter(|c| c.parse::<u32>().is_ok_and(|n| n > 4))
        {
            let kind = format!("stop_machine_{n}cpus");
            if r.armstop.figure(&kind, "sleep").is_none() {
                missing.push(format!("{}: no {kind} (sleep)", r.config));
            }
        }
        let has_linux = r.machine.starts_with("virt")
            && !r.config.contains(' ')
            && r.armstop.begin.get("cpus").is_some_and(|c| c == "4");
        if linux && has_linux && r.linux.is_none() {
            missing.push(format!("{}: no Linux figures", r.config));
        }
    }
    missing
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let o = match parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("armstop-bench: {e}");
            return ExitCode::from(2);
        }
    };
    match bench(&o) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("armstop-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(o: &Options) -> Result<bool, String> {
    let firmware_dir = o.firmware_dir.clone().unwrap_or_else(|| {
        o.images
            .parent()
            .map_or_else(|| PathBuf::from("target/pi-firmware"), |p| p.join("pi-firmware"))
    });
    let host_cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut b = Bench {
        date: first_line("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        host_cpus,
        qemu_version: first_line(&o.qemu, &["--version"]),
        iters: o.iters,
        repeats: o.repeat,
        linux_cycles: o.linux_cycles,
        image_sizes: BTreeMap::new(),
        runs: Vec::new(),
    };
    for m in &o.machines {
        for image in ["armstop.bin", "bench.bin"] {
            let p = o.images.join(m.board).join("release").join(image);
            if let Ok(md) = std::fs::metadata(&p) {
                b.image_sizes.insert(format!("{}/{image}", m.board), md.len());
            }
        }
    }
    let icount_machine = o.machines.iter().find(|m| m.qemu_machine.starts_with("virt"));
    let mut configs: Vec<(&Machine, Vec<&str>, u32)> =
        o.machines.iter().map(|m| (*m, vec![], o.iters)).collect();
    if let (Some(m), Some(iters)) = (icount_machine, o.icount_iters) {
        configs.push((m, vec!["-icount", "shift=1"], iters));
    }
    for m in o.scale.iter().filter(|m| !o.machines.iter().any(|n| n.name == m.name)) {
        configs.push((m, vec![], o.scale_iters));
    }
    let t0 = Instant::now();
    // Each configuration's figure count and time on its first run, for the progress lines
    // of the runs after it.
    let mut earlier: std::collections::HashMap<String, (usize, Duration)> = Default::default();
    let mut linux_took: std::collections::HashMap<String, Duration> = Default::default();
    let total = o.repeat as usize * configs.len();
    let mut done = 0;
    for repeat in 0..o.repeat {
        for (m, extra, iters) in &configs {
            let config = if extra.is_empty() {
                m.name.to_string()
            } else {
                format!("{} {}", m.name, extra.join(" "))
            };
            let t = Instant::now();
            let (figures, took) = earlier.get(&config).copied().unzip();
            let watch = qemu::Watch {
                label: format!("armstop on {config}"),
                counts: Some((armstop::FIGURE, "figures")),
                expected: figures,
                expected_time: took,
            };
            let a = armstop::run(
                &o.qemu,
                &o.images,
                &firmware_dir,
                m,
                *iters,
                extra,
                Duration::from_secs(900),
                &watch,
            )?;
            earlier.insert(config.clone(), (a.figures.len(), t.elapsed()));
            let armstop_s = t.elapsed().as_secs_f64();
            // Linux on the scale machines would take most of the bench's time, for a side
            // the curve does not show.
            let with_linux = o.linux
                && extra.is_empty()
                && m.qemu_machine.starts_with("virt")
                && !o.scale.iter().any(|s| s.name == m.name);
            let t = Instant::now();
            let l = if with_linux {
                let watch = qemu::Watch {
                    label: format!("Linux on {config}"),
                    counts: None,
                    expected: None,
                    expected_time: linux_took.get(&config).copied(),
                };
                let l = linux::run(
                    &o.qemu,
                    &o.repo,
                    m,
                    o.linux_cycles,
                    Duration::from_secs(900),
                    &watch,
                )?;
                linux_took.insert(config.clone(), t.elapsed());
                Some(l)
            } else {
                None
            };
            done += 1;
            eprintln!(
                "armstop-bench: [{done}/{total}] run {} of {config}: armstop {armstop_s:.1} s{}; {:.0} s so far",
                repeat + 1,
                if with_linux {
                    format!(", Linux {:.1} s", t.elapsed().as_secs_f64())
                } else {
                    String::new()
                },
                t0.elapsed().as_secs_f64()
            );
            b.runs.push(MachineRun {
                machine: m.name.into(),
                config,
                repeat,
                armstop: a,
                linux: l,
            });
        }
    }
    print!("{}", b.table(!o.smoke));
    std::fs::create_dir_all(&o.out).map_err(|e| format!("{}: {e}", o.out.display()))?;
    let stamp = b.date.replace(':', "");
    let write = |name: &str, body: &str| -> Result<PathBuf, String> {
        let p = o.out.join(name);
        std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))?;
        Ok(p)
    };
    let json = serde_json::to_string_pretty(&b.json()).expect("JSON of plain values");
    let jp = write(&format!("bench-{stamp}.json"), &json)?;
    write("latest.json", &json)?;
    let svg = b.svg();
    let sp = write(&format!("bench-{stamp}.svg"), &svg)?;
    write("latest.svg", &svg)?;
    println!("\nwrote {} and {} (also latest.json, latest.svg)", show(&jp), show(&sp));
    if o.smoke {
        let missing = smoke_check(&b, o.linux);
        for m in &missing {
            eprintln!("armstop-bench: smoke: {m}");
        }
        println!(
            "bench smoke: {} configuration(s) booted, {} missing figure(s)",
            b.runs.len(),
            missing.len()
        );
        return Ok(missing.is_empty());
    }
    Ok(true)
}

fn show(p: &Path) -> String {
    p.display().to_string()
}
