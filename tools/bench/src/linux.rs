//! Linux 6.1 on the same QEMU machine: the performance anchor for armstop's CPU hotplug.
//!
//! `scripts/linux-guest.sh` prepares `target/linux/`: Debian's arm64 cloud kernel (`Image`) and
//! an initramfs whose busybox `/init` enables the kernel's `cpuhp` trace events, offlines and
//! onlines every secondary CPU `armstop.cycles` times with trace markers around each write to
//! `/sys/devices/system/cpu/cpuN/online`, and prints the trace on the console between
//! `armstop-linux: trace begin` and `armstop-linux: trace end` (one block per CPU). All timing
//! comes from the trace's own timestamps (the kernel's trace clock, µs resolution).
//!
//! What the trace looks like (Linux 6.1, `trace` file, default options):
//!
//! ```text
//!             init-1       [000] .....     1.688774: tracing_mark_write: armstop down cpu1 0
//!      kworker/0:1-16      [000] .....     1.714652: cpuhp_enter: cpu: 0001 target: 153 step: 236 (cpuhp_kick_ap_work)
//!          cpuhp/1-18      [001] .....     1.715266: cpuhp_enter: cpu: 0001 target: 153 step: 235 (sched_cpu_deactivate)
//!          cpuhp/1-18      [001] .....     1.730985: cpuhp_exit:  cpu: 0001  state: 234 step: 235 ret: 0
//!      kworker/0:1-16      [000] .....     1.733499: cpuhp_enter: cpu: 0001 target:   0 step: 153 (takedown_cpu)
//!      kworker/0:1-16      [000] .....     1.756765: cpuhp_exit:  cpu: 0001  state:  92 step: 153 ret: 0
//! ```
//!
//! `cpu:` is the CPU being hotplugged, `[000]` the CPU the event was recorded on. A step's
//! enter and exit are recorded by the same task (the control CPU's kworker or `init` for the
//! BP states such as `takedown_cpu` and `bringup_cpu`, the dying CPU's `cpuhp/N` thread for its
//! AP states), and steps nest across tasks (`cpuhp_kick_ap_work` and `bringup_cpu` enclose the
//! AP thread's steps), so enter and exit are paired per (task, hotplugged CPU) on a stack. The
//! exit names no function: it carries the step number, which must match the enter's.
//! The STARTING/DYING steps that run on the CPU itself with interrupts off (inside
//! `take_cpu_down` and `notify_cpu_starting`) never appear: tracepoints are skipped on a CPU
//! that is not in `cpu_online_mask`. They are inside `takedown_cpu` and `bringup_cpu`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use crate::qemu::{self, tail};

use armstop_runner::{BootFiles, Load, Machine};

/// Prefix of every line the guest's `/init` prints.
pub const PREFIX: &str = "armstop-linux: ";

/// The kernel command line, without the `armstop.cycles=` parameter. `loglevel=1` keeps the
/// kernel's own messages (CPU N: shutdown, psci: CPU N killed) off the console so the trace
/// stays parseable; `panic=-1` with `-no-reboot` ends QEMU at once on a panic.
pub const CMDLINE: &str = "console=ttyAMA0 loglevel=1 panic=-1";

/// Figures from one Linux run, all in nanoseconds (trace timestamps are µs resolution).
///
/// The per-cycle vectors hold one entry per hotplug cycle, CPU 1's cycles first, then CPU 2's,
/// and so on (`(cpus - 1) * cycles_per_cpu` entries).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinuxRun {
    /// `uname -r` of the guest kernel.
    pub kernel: String,
    /// CPUs the guest saw online at the start (`nproc`); CPUs 1..cpus were cycled.
    pub cpus: usize,
    /// Offline/online cycles per secondary CPU.
    pub cycles_per_cpu: u32,
    /// `echo 0 > online`: from the marker before it to the marker after it.
    pub down_ns: Vec<u64>,
    /// `echo 1 > online`: from the marker before it to the marker after it.
    pub up_ns: Vec<u64>,
    /// One whole cycle: from the marker before `echo 0` to the marker after `echo 1`.
    pub cycle_ns: Vec<u64>,
    /// The `takedown_cpu` step of each offline (`stop_machine(take_cpu_down)` on the control
    /// CPU, then waiting for the CPU to die and be killed through PSCI).
    pub takedown_ns: Vec<u64>,
    /// Every cpuhp step, by the callback's name as the trace prints it, both directions: one
    /// entry per enter/exit pair in trace order. A name used by several states, or by both
    /// directions (`console_cpu_notify`), or a multi-instance state (one pair per instance,
    /// `cpuhp_multi_enter`) has several entries per cycle.
    pub steps: BTreeMap<String, Vec<u64>>,
    /// The QEMU arguments of the run (without the binary); empty from [`parse`].
    pub qemu_args: Vec<String>,
}

/// The QEMU arguments that boot Linux on `m` exactly as armstop is booted there (same -M, -cpu,
/// -smp, -m, -nic none, display/monitor/serial: [`armstop_runner::qemu_args`] with the kernel
/// loaded by `-kernel`), with `-kernel dir/Image -initrd dir/initramfs.cpio.gz` and `-append`
/// ([`CMDLINE`] and `armstop.cycles=cycles`). `dir` is what `scripts/linux-guest.sh` fills,
/// `target/linux`.
pub fn qemu_args(m: &Machine, dir: &Path, cycles: u32) -> Vec<String> {
    let mut kernel_machine = *m;
    if matches!(kernel_machine.load, Load::Firmware(_)) {
        kernel_machine.load = Load::KernelRaw;
    }
    let files = BootFiles {
        image: dir.join("Image"),
        firmware: None,
        notes: Vec::new(),
        reboot_on_reset: false,
        dtb: None,
    };
    let mut a = armstop_runner::qemu_args(&kernel_machine, &files, None);
    a.extend([
        "-initrd".into(),
        dir.join("initramfs.cpio.gz").display().to_string(),
        "-append".into(),
        format!("{CMDLINE} armstop.cycles={cycles}"),
    ]);
    a
}

/// One line of the `trace` file.
#[derive(Debug)]
struct TraceLine<'a> {
    /// `comm-pid`.
    task: &'a str,
    /// Time stamp in ns.
    ts: u64,
    /// Event name (`cpuhp_enter`, `tracing_mark_write`, ...).
    event: &'a str,
    /// What follows `event: `.
    body: &'a str,
}

/// `1.688774` (seconds, fraction) in ns.
fn parse_timestamp(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.')?;
    if secs.is_empty()
        || frac.is_empty()
        || frac.len() > 9
        || !secs.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let frac_ns: u64 = frac.parse::<u64>().ok()? * 10u64.pow(9 - frac.len() as u32);
    secs.parse::<u64>().ok()?.checked_mul(1_000_000_000)?.checked_add(frac_ns)
}

/// Splits `   comm-pid  [001] .....   1.234567: event: body`.
fn parse_trace_line(line: &str) -> Option<TraceLine<'_>> {
    // The first ` [NNN]` is the CPU column (a comm may hold spaces but not that).
    let mut search = 0;
    let (task, rest) = loop {
        let i = search + line[search..].find(" [")?;
        let after = &line[i + 2..];
        let close = after.find(']')?;
        if close > 0 && after[..close].bytes().all(|b| b.is_ascii_digit()) {
            break (line[..i].trim(), &after[close + 1..]);
        }
        search = i + 2;
    };
    if task.is_empty() {
        return None;
    }
    let mut rest = rest.trim_start();
    // Optional irq-info flags column (`.....`), then the time stamp with its colon.
    let (first, tail) = rest.split_once(' ')?;
    let ts = match first.strip_suffix(':').and_then(parse_timestamp) {
        Some(ts) => {
            rest = tail;
            ts
        }
        None => {
            let (second, tail) = tail.trim_start().split_once(' ')?;
            rest = tail;
            second.strip_suffix(':').and_then(parse_timestamp)?
        }
    };
    let (event, body) = rest.trim_start().split_once(": ")?;
    if event.is_empty() || event.contains(' ') {
        return None;
    }
    Some(TraceLine { task, ts, event, body: body.trim() })
}

/// The value after `key` in a `key: value key: value` event body.
fn field<'a>(body: &'a str, key: &str) -> Option<&'a str> {
    let mut words = body.split_whitespace();
    while let Some(w) = words.next() {
        if w == key {
            return words.next();
        }
    }
    None
}

fn num_field(body: &str, key: &str) -> Option<i64> {
    field(body, key)?.parse().ok()
}

/// A hotplug phase announced by a marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// `armstop down cpuN k`: before `echo 0`.
    Down,
    /// `armstop up cpuN k`: offline done, before `echo 1`.
    Up,
    /// `armstop done cpuN k`: online done.
    Done,
}

impl Phase {
    fn word(self) -> &'static str {
        match self {
            Phase::Down => "down",
            Phase::Up => "up",
            Phase::Done => "done",
        }
    }
}

/// The marker text for `(cpu, cycle, phase)`.
fn marker(cpu: usize, cycle: u32, phase: Phase) -> String {
    format!("armstop {} cpu{cpu} {cycle}", phase.word())
}

/// An open step: its step number, callback name and enter time.
struct Open {
    step: i64,
    name: String,
    ts: u64,
}

/// Parses a console transcript (lines) into figures; every malformed/missing piece is an Err
/// naming what was wrong (no trace begin/end, an `armstop-linux: error` line, unmatched
/// enter/exit, a marker sequence out of order, zero cycles, ...). `cycles` is the number of
/// cycles per CPU the guest was asked for (`armstop.cycles`).
pub fn parse(lines: &[String], cycles: u32) -> Result<LinuxRun, String> {
    if cycles == 0 {
        return Err("zero cycles per CPU asked for: nothing to measure".into());
    }
    let mut kernel = None;
    let mut cpus = None;
    let mut guest_cycles = None;
    let mut done = false;
    let mut in_block = false;
    let mut blocks = 0usize;
    let mut trace: Vec<(usize, TraceLine)> = Vec::new();
    for (n, raw) in lines.iter().enumerate() {
        let line = raw.trim_end_matches(['\r', '\n']);
        let lineno = n + 1;
        if let Some(what) = line.trim_start().strip_prefix(PREFIX) {
            let what = what.trim();
            if what.starts_with("error") {
                return Err(format!("line {lineno}: the guest reported: {line}"));
            } else if what.starts_with("trace begin") {
                if in_block {
                    return Err(format!("line {lineno}: trace begin inside a trace block"));
                }
                in_block = true;
                blocks += 1;
            } else if what.starts_with("trace end") {
                if !in_block {
                    return Err(format!("line {lineno}: trace end without trace begin"));
                }
                in_block = false;
            } else if let Some(k) = what.strip_prefix("kernel ") {
                kernel = Some(k.trim().to_string());
            } else if let Some(c) = what.strip_prefix("cpus ") {
                cpus = Some(
                    c.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("line {lineno}: bad cpu count: {line}"))?,
                );
            } else if let Some(c) = what.strip_prefix("cycles ") {
                guest_cycles = Some(
                    c.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("line {lineno}: bad cycle count: {line}"))?,
                );
            } else if what == "done" {
                done = true;
            }
            continue;
        }
        if !in_block || line.trim().is_empty() {
            continue;
        }
        if line.contains("LOST") && line.contains("EVENTS") {
            return Err(format!("line {lineno}: the trace lost events: {line}"));
        }
        let t = parse_trace_line(line).ok_or_else(|| {
            format!("line {lineno}: not a trace line inside a trace block: {line:?}")
        })?;
        trace.push((lineno, t));
    }
    if in_block {
        return Err("no `armstop-linux: trace end` after the last trace begin".into());
    }
    if blocks == 0 {
        return Err("no `armstop-linux: trace begin` in the transcript".into());
    }
    let kernel = kernel.ok_or("no `armstop-linux: kernel` line (uname -r)")?;
    let cpus = cpus.ok_or("no `armstop-linux: cpus` line")?;
    if cpus < 2 {
        return Err(format!("the guest had {cpus} CPU(s): no secondary CPU to hotplug"));
    }
    match guest_cycles {
        None => return Err("no `armstop-linux: cycles` line".into()),
        Some(0) => return Err("the guest ran zero cycles per CPU".into()),
        Some(g) if g != cycles => {
            return Err(format!("the guest ran {g} cycles per CPU, {cycles} were asked for"));
        }
        Some(_) => {}
    }
    if !done {
        return Err("no `armstop-linux: done` line: the guest did not finish".into());
    }

    // The expected marker sequence.
    let expected: Vec<(usize, u32, Phase)> = (1..cpus)
        .flat_map(|c| {
            (0..cycles).flat_map(move |k| [Phase::Down, Phase::Up, Phase::Done].map(|p| (c, k, p)))
        })
        .collect();
    let mut next = 0usize; // index into `expected` of the next marker
    let mut marker_ts = Vec::with_capacity(expected.len());
    let mut open: BTreeMap<(String, u64), Vec<Open>> = BTreeMap::new();
    let mut steps: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut takedown_ns = Vec::new();
    let mut takedown_this_cycle = 0usize;

    for (lineno, t) in &trace {
        match t.event {
            "tracing_mark_write" => {
                if !t.body.starts_with("armstop ") {
                    continue;
                }
                let Some(&(c, k, p)) = expected.get(next) else {
                    return Err(format!("line {lineno}: marker {:?} after the last cycle", t.body));
                };
                let want = marker(c, k, p);
                if t.body != want {
                    return Err(format!(
                        "line {lineno}: marker out of order: expected {want:?}, got {:?}",
                        t.body
                    ));
                }
                if let Some(((task, cpu), stack)) = open.iter().find(|(_, s)| !s.is_empty()) {
                    let o = &stack[stack.len() - 1];
                    return Err(format!(
                        "line {lineno}: at marker {want:?}: cpuhp_enter of step {} ({}) for \
                         cpu{cpu} by {task} has no cpuhp_exit",
                        o.step, o.name
                    ));
                }
                if p == Phase::Up {
                    if takedown_this_cycle != 1 {
                        return Err(format!(
                            "line {lineno}: {} takedown_cpu steps in offline {:?} (want 1)",
                            takedown_this_cycle,
                            marker(c, k, Phase::Down)
                        ));
                    }
                    takedown_this_cycle = 0;
                }
                marker_ts.push(t.ts);
                next += 1;
            }
            "cpuhp_enter" | "cpuhp_multi_enter" | "cpuhp_exit" => {
                // Which window are we in? The last marker seen.
                let window = next.checked_sub(1).map(|i| expected[i]);
                let (c, k, p) = match window {
                    Some((c, k, p @ (Phase::Down | Phase::Up))) => (c, k, p),
                    _ => {
                        return Err(format!(
                            "line {lineno}: {} outside a hotplug write (after {}): {}",
                            t.event,
                            window.map_or("no marker".into(), |(c, k, p)| format!(
                                "{:?}",
                                marker(c, k, p)
                            )),
                            t.body
                        ));
                    }
                };
                let cpu = num_field(t.body, "cpu:")
                    .and_then(|v| u64::try_from(v).ok())
                    .ok_or_else(|| format!("line {lineno}: {} without cpu: {}", t.event, t.body))?;
                if cpu != c as u64 {
                    return Err(format!(
                        "line {lineno}: {} for cpu{cpu} during {:?}",
                        t.event,
                        marker(c, k, p)
                    ));
                }
                let step = num_field(t.body, "step:").ok_or_else(|| {
                    format!("line {lineno}: {} without step: {}", t.event, t.body)
                })?;
                let key = (t.task.to_string(), cpu);
                if t.event == "cpuhp_exit" {
                    let o = open.get_mut(&key).and_then(Vec::pop).ok_or_else(|| {
                        format!(
                            "line {lineno}: cpuhp_exit of step {step} for cpu{cpu} by {} without \
                             cpuhp_enter",
                            t.task
                        )
                    })?;
                    if o.step != step {
                        return Err(format!(
                            "line {lineno}: cpuhp_exit of step {step} for cpu{cpu} by {}, but the \
                             open step is {} ({})",
                            t.task, o.step, o.name
                        ));
                    }
                    let ret = num_field(t.body, "ret:").ok_or_else(|| {
                        format!("line {lineno}: cpuhp_exit without ret: {}", t.body)
                    })?;
                    if ret != 0 {
                        return Err(format!(
                            "line {lineno}: step {step} ({}) for cpu{cpu} failed: ret {ret}",
                            o.name
                        ));
                    }
                    let d = t.ts.checked_sub(o.ts).ok_or_else(|| {
                        format!(
                            "line {lineno}: cpuhp_exit of step {step} ({}) before its enter",
                            o.name
                        )
                    })?;
                    if o.name == "takedown_cpu" {
                        if p != Phase::Down {
                            return Err(format!(
                                "line {lineno}: takedown_cpu while onlining cpu{cpu}"
                            ));
                        }
                        takedown_ns.push(d);
                        takedown_this_cycle += 1;
                    }
                    steps.entry(o.name).or_default().push(d);
                } else {
                    let name = t
                        .body
                        .rsplit_once('(')
                        .and_then(|(_, n)| n.strip_suffix(')'))
                        .filter(|n| !n.is_empty())
                        .ok_or_else(|| {
                            format!(
                                "line {lineno}: {} without a callback name: {}",
                                t.event, t.body
                            )
                        })?;
                    open.entry(key).or_default().push(Open {
                        step,
                        name: name.to_string(),
                        ts: t.ts,
                    });
                }
            }
            _ => {}
        }
    }
    if let Some(((task, cpu), stack)) = open.iter().find(|(_, s)| !s.is_empty()) {
        let o = &stack[stack.len() - 1];
        return Err(format!(
            "cpuhp_enter of step {} ({}) for cpu{cpu} by {task} has no cpuhp_exit",
            o.step, o.name
        ));
    }
    if next < expected.len() {
        let (c, k, p) = expected[next];
        return Err(format!(
            "the trace ends after {next} of {} markers: {:?} is missing",
            expected.len(),
            marker(c, k, p)
        ));
    }

    let mut down_ns = Vec::new();
    let mut up_ns = Vec::new();
    let mut cycle_ns = Vec::new();
    for (i, w) in marker_ts.chunks_exact(3).enumerate() {
        let (c, k, _) = expected[3 * i];
        let (d, u) = match (w[1].checked_sub(w[0]), w[2].checked_sub(w[1])) {
            (Some(d), Some(u)) => (d, u),
            _ => return Err(format!("markers of {:?} go back in time", marker(c, k, Phase::Down))),
        };
        down_ns.push(d);
        up_ns.push(u);
        cycle_ns.push(d + u);
    }
    Ok(LinuxRun {
        kernel,
        cpus,
        cycles_per_cpu: cycles,
        down_ns,
        up_ns,
        cycle_ns,
        takedown_ns,
        steps,
        qemu_args: Vec::new(),
    })
}

/// The files `scripts/linux-guest.sh` makes, in `target/linux`.
const OUTPUTS: [&str; 4] = ["Image", "initramfs.cpio.gz", "VERSIONS", "init"];

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Runs `scripts/linux-guest.sh` unless every output is newer than it.
fn prepare(repo: &Path) -> Result<PathBuf, String> {
    let script = repo.join("scripts/linux-guest.sh");
    let dir = repo.join("target/linux");
    let script_time = mtime(&script).ok_or_else(|| format!("no {}", script.display()))?;
    let fresh = OUTPUTS.iter().all(|f| mtime(&dir.join(f)).is_some_and(|t| t > script_time));
    if !fresh {
        let out = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed ({}):\n{}{}",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    Ok(dir)
}

/// Runs `scripts/linux-guest.sh` (repo root given) if needed, boots QEMU (binary `qemu`) with
/// [`qemu_args`], with a timeout (QEMU is killed on timeout, and the error says so with the
/// last console lines), and parses the console with [`parse`]. Only QEMU `virt` machines: the
/// Debian kernel needs the device tree QEMU generates there.
pub fn run(
    qemu: &str,
    repo: &Path,
    m: &Machine,
    cycles: u32,
    timeout: Duration,
    watch: &qemu::Watch,
) -> Result<LinuxRun, String> {
    if !m.qemu_machine.starts_with("virt") {
        return Err(format!(
            "{}: Linux is benchmarked on QEMU virt only (-M {} gives the kernel no device tree)",
            m.name, m.qemu_machine
        ));
    }
    if cycles == 0 {
        return Err("zero cycles per CPU asked for: nothing to measure".into());
    }
    let dir = prepare(repo)?;
    let args = qemu_args(m, &dir, cycles);
    let cmd = qemu::command_line(qemu, &args);
    let console = qemu::run(qemu, &args, timeout, Some(watch))
        .map_err(|e| format!("Linux on {}: {e}", m.name))?;
    let lines = console.lines;
    if !console.status.success() {
        return Err(format!(
            "Linux on {}: QEMU exited with {} ({cmd}); stderr: {}; last console lines:\n{}",
            m.name,
            console.status,
            console.stderr.trim(),
            tail(&lines, 15)
        ));
    }
    let mut r = parse(&lines, cycles).map_err(|e| {
        format!("Linux on {}: {e} ({cmd}); last console lines:\n{}", m.name, tail(&lines, 15))
    })?;
    r.qemu_args = args;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("1.688774"), Some(1_688_774_000));
        assert_eq!(parse_timestamp("0.5"), Some(500_000_000));
        assert_eq!(parse_timestamp("12.000000001"), Some(12_000_000_001));
        for bad in ["", "1", ".5", "1.", "1.x", "a.1", "1.0000000001"] {
            assert_eq!(parse_timestamp(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn trace_lines() {
        let t = parse_trace_line(
            "     kworker/0:1-16      [000] .....     1.733499: cpuhp_enter: cpu: 0001 target:   0 \
             step: 153 (takedown_cpu)",
        )
        .unwrap();
        assert_eq!(t.task, "kworker/0:1-16");
        assert_eq!(t.ts, 1_733_499_000);
        assert_eq!(t.event, "cpuhp_enter");
        assert_eq!(num_field(t.body, "step:"), Some(153));
        assert_eq!(num_field(t.body, "target:"), Some(0));
        assert_eq!(num_field(t.body, "cpu:"), Some(1));
        // Without the irq-info column, and a comm with a space and brackets.
        let t = parse_trace_line("  my [x] task-7 [003]  2.000001: tracing_mark_write: a [1] b")
            .unwrap();
        assert_eq!(t.task, "my [x] task-7");
        assert_eq!(t.ts, 2_000_001_000);
        assert_eq!(t.body, "a [1] b");
        for bad in
            ["", "init-1 [000] ..... 1.2 cpuhp_enter: x", "[000] 1.2: e: b", "x-1 [0a] 1.2: e: b"]
        {
            assert!(parse_trace_line(bad).is_none(), "{bad:?}");
        }
    }
}
