//! The operator's console: what `just run` (and a Pi on its UART) offers once the report is
//! done. A line is edited by `armstop-shell`'s [`Editor`], checked by its [`parse_line`], and
//! run here on the boot CPU, which answers every line with at least one line: the result, or
//! `error: ...` naming what was wrong (then the prompt again, whatever happened).
//!
//! Invariants: nothing a line holds reaches a request before the parser has checked it, and
//! what depends on the machine's state (a CPU that is off) is refused by the request itself,
//! whose error is printed as it is; the console never waits for input with the CPU busy (it
//! sleeps on the UART's interrupt); and each request's latency, its outcome and every refusal
//! are counted where `cpus` and `stats` show them.

use core::fmt;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use armstop_shell::{COMMANDS, Command, Editor, Event, ParseError, parse_line};
use armstop_stopper::{AtomicCpuSet, CpuSet};

use crate::board::{BOARD, NR_CPUS, cpu_count};
use crate::console::{self, Rx};
use crate::hotplug::{self, HOTPLUG};
use crate::println;
use crate::stop::STOPPERS;
use crate::time::Instant;

/// What the console prints before each line.
pub const PROMPT: &str = "armstop> ";

/// Per CPU: the latency of the last console request that involved it, in ns (0: none yet).
static LAST_NS: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

/// The console's own counters, for `stats`.
struct Counters {
    lines: AtomicU64,
    errors: AtomicU64,
    refused: AtomicU64,
    lost_input: AtomicU64,
}

static COUNTERS: Counters = Counters {
    lines: AtomicU64::new(0),
    errors: AtomicU64::new(0),
    refused: AtomicU64::new(0),
    lost_input: AtomicU64::new(0),
};

fn count(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// A time in ns, printed with a unit that suits it.
struct Ns(u64);

impl fmt::Display for Ns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ns = self.0;
        if ns < 10_000 {
            write!(f, "{}.{:02} us", ns / 1000, ns % 1000 / 10)
        } else if ns < 10_000_000 {
            write!(f, "{}.{} us", ns / 1000, ns % 1000 / 100)
        } else {
            write!(f, "{}.{:02} ms", ns / 1_000_000, ns % 1_000_000 / 10_000)
        }
    }
}

fn since(t0: Instant) -> u64 {
    (Instant::now() - t0).as_nanos() as u64
}

fn note_latency(cpus: CpuSet, ns: u64) {
    for cpu in cpus.iter().take_while(|&c| c < NR_CPUS) {
        LAST_NS[cpu].store(ns.max(1), Ordering::Relaxed);
    }
}

/// Runs the console on the boot CPU, for good: reads, edits and runs lines until `reset` or
/// `poweroff`.
pub fn run() -> ! {
    let waits_on_irq = match BOARD.uart.intid {
        Some(intid) => {
            match crate::gic::enable_spi(intid, crate::cpu::id(), console::on_rx_interrupt) {
                Ok(()) => {
                    console::enable_rx_interrupts();
                    true
                }
                Err(e) => {
                    println!(
                        "console: UART interrupt {intid} not available ({e}); polling for input"
                    );
                    false
                }
            }
        }
        None => false,
    };
    println!(
        "== armstop console: `help` lists the commands; Tab completes, the arrow keys edit and \
         recall lines =="
    );
    let mut ed = Editor::new(PROMPT);
    let mut lost = 0;
    console::write_raw(PROMPT.as_bytes());
    loop {
        let byte = match next_input(waits_on_irq) {
            Rx::Byte(b) => b,
            Rx::Lost(flags) => {
                count(&COUNTERS.lost_input);
                lost = flags;
                ed.input_lost();
                continue;
            }
        };
        let event = ed.feed(byte, &mut |s| console::write_raw(s));
        match event {
            Event::Pending => continue,
            Event::Line(line) => execute(line.as_bytes()),
            Event::TooLong(n) => error(format_args!("{}; nothing was run", ParseError::TooLong(n))),
            Event::Lost => error(format_args!(
                "input lost on the UART ({}); the line was discarded",
                console::describe_loss(lost)
            )),
            Event::Cancelled => {}
        }
        console::write_raw(PROMPT.as_bytes());
    }
}

/// The next byte (or loss) from the UART, sleeping until there is one.
fn next_input(waits_on_irq: bool) -> Rx {
    loop {
        if let Some(rx) = console::read() {
            return rx;
        }
        if waits_on_irq {
            // Masked between the last look and the `wfi`: an interrupt that comes in between
            // stays pending and ends the `wfi`, and is taken once IRQs are unmasked again.
            let irq = crate::cpu::mask_irqs();
            if !console::rx_pending() {
                crate::cpu::wait_for_interrupt();
            }
            drop(irq);
        } else {
            core::hint::spin_loop();
        }
    }
}

fn error(args: fmt::Arguments<'_>) {
    count(&COUNTERS.errors);
    println!("error: {args}");
}

/// A stop request the stopper refused: counted, and said with the CPU's state.
fn refused(what: fmt::Arguments<'_>, e: impl fmt::Display) {
    count(&COUNTERS.refused);
    error(format_args!("{what}: {e}"));
}

/// Parses and runs one line.
pub fn execute(line: &[u8]) {
    count(&COUNTERS.lines);
    match parse_line(line, cpu_count()) {
        Ok(None) => {}
        Ok(Some(cmd)) => run_command(cmd),
        Err(e) => error(format_args!("{e}")),
    }
}

fn run_command(cmd: Command) {
    match cmd {
        Command::Help(None) => {
            for (name, usage, help) in COMMANDS {
                println!("  {name:<9}{usage:<20}{help}");
            }
            println!(
                "  CPU sets: 1,3 or 0-2. Keys: Tab completes; Left/Right, Home/End, Backspace \
                 and Delete edit; Up/Down recall; Ctrl-C drops the line."
            );
        }
        Command::Help(Some(name)) => {
            if let Some((name, usage, help)) = COMMANDS.iter().find(|c| c.0 == name) {
                println!("{name} {usage}: {help}");
            }
        }
        Command::Cpus => cpus(),
        Command::Stop(cpu) => stop(cpu),
        Command::Stop2(a, b) => stop2(a, b),
        Command::StopCpus(set) => stop_cpus(set),
        Command::StopAll => stop_all(),
        Command::Off(cpu) => off(cpu),
        Command::On(cpu) => on(cpu),
        Command::Storm(len) => load_run(
            "storm",
            match len {
                armstop_shell::StormLength::Cycles(c) => crate::load::Length::Cycles(c),
                armstop_shell::StormLength::Seconds(s) => crate::load::Length::Seconds(s),
            },
        ),
        Command::Soak(secs) => load_run("soak", crate::load::Length::Seconds(secs)),
        Command::Bench => bench(),
        Command::Stats => stats(),
        Command::Sleep(ms) => {
            sleep(core::time::Duration::from_millis(ms.into()));
            println!("sleep: {ms} ms");
        }
        Command::Watchdog(ms) => {
            STOPPERS.set_watchdog(u64::from(ms) * 1_000_000);
            match ms {
                0 => println!("watchdog: off"),
                ms => println!(
                    "watchdog: a stop request still waiting after {ms} ms is reported, then fails \
                     (a CPU stuck in its callback is halted)"
                ),
            }
        }
        Command::Reset => {
            println!("reset: PSCI SYSTEM_RESET");
            let e = crate::psci::system_reset();
            error(format_args!("reset: SYSTEM_RESET returned {}", crate::psci::error_name(e)));
        }
        Command::Poweroff => match crate::demo::failures() {
            0 => {
                println!("poweroff: PSCI SYSTEM_OFF");
                crate::power::system_off()
            }
            n => {
                println!("poweroff: the report had {n} failed checks; exit status 1");
                crate::power::exit(1)
            }
        },
    }
}

/// Sleeps for `d` in `wfi` with the timer armed, taking interrupts (the UART's, kicks) as they
/// come, so that input typed meanwhile is buffered.
fn sleep(d: core::time::Duration) {
    use armstop_stopper::Platform;
    let end = Instant::now() + d;
    while Instant::now() < end {
        let irq = crate::cpu::mask_irqs();
        STOPPERS.platform().sleep(end.since_boot().as_nanos() as u64);
        drop(irq);
    }
}

fn cpus() {
    for cpu in 0..cpu_count() {
        let last = LAST_NS[cpu].load(Ordering::Relaxed);
        let mut last_text = console::LineBuf::<24>::new();
        let _ = match last {
            0 => fmt::Write::write_str(&mut last_text, "-"),
            ns => fmt::write(&mut last_text, format_args!("{}", Ns(ns))),
        };
        println!(
            "{}, last request {}{}",
            crate::smp::cpu_report(cpu),
            last_text.as_str(),
            if cpu == 0 { " (boot CPU, runs this console)" } else { "" }
        );
    }
}

fn stop(cpu: usize) {
    let ran_on = AtomicUsize::new(usize::MAX);
    let t0 = Instant::now();
    let r = STOPPERS.stop_one_cpu(cpu, || {
        ran_on.store(crate::cpu::id(), Ordering::Relaxed);
        0
    });
    let ns = since(t0);
    match r {
        Ok(_) => {
            note_latency(CpuSet::single(cpu), ns);
            match ran_on.load(Ordering::Relaxed) {
                c if c == cpu => println!("stop {cpu}: ran on cpu{cpu} in {}", Ns(ns)),
                c => error(format_args!("stop {cpu}: FAILED: the function ran on cpu{c}")),
            }
        }
        Err(e) => refused(format_args!("stop {cpu}: cpu{cpu} is {}", hotplug::state(cpu)), e),
    }
}

fn stop2(a: usize, b: usize) {
    let ran_on = AtomicUsize::new(usize::MAX);
    let other_stopped = AtomicUsize::new(0);
    let t0 = Instant::now();
    let r = STOPPERS.stop_two_cpus(a, b, || {
        ran_on.store(crate::cpu::id(), Ordering::Relaxed);
        // The other CPU sits in its stopper meanwhile.
        if STOPPERS.running_mask().contains(b) {
            other_stopped.store(1, Ordering::Relaxed);
        }
        0
    });
    let ns = since(t0);
    match r {
        Ok(_) => {
            note_latency(CpuSet::single(a) | CpuSet::single(b), ns);
            let ran = ran_on.load(Ordering::Relaxed);
            if ran != a {
                error(format_args!("stop2 {a} {b}: FAILED: the function ran on cpu{ran}"));
            } else if other_stopped.load(Ordering::Relaxed) == 0 {
                error(format_args!("stop2 {a} {b}: FAILED: cpu{b} was not in its stopper"));
            } else {
                println!("stop2 {a} {b}: ran on cpu{a} while cpu{b} waited, in {}", Ns(ns));
            }
        }
        Err(e) => refused(
            format_args!(
                "stop2 {a} {b}: cpu{a} is {}, cpu{b} is {}",
                hotplug::state(a),
                hotplug::state(b)
            ),
            e,
        ),
    }
}

fn stop_cpus(set: CpuSet) {
    let ran = AtomicCpuSet::new();
    let t0 = Instant::now();
    let r = STOPPERS.stop_cpus(set, || {
        ran.insert(crate::cpu::id(), Ordering::Relaxed);
        0
    });
    let ns = since(t0);
    match r {
        Ok(_) => {
            let ran = ran.load(Ordering::Relaxed);
            note_latency(ran, ns);
            let skipped = set - ran;
            if !ran.is_subset(&set) {
                error(format_args!("stopcpus {set}: FAILED: ran on {ran}, outside the set"));
            } else if skipped.is_empty() {
                println!("stopcpus {set}: ran on {ran} ({} CPUs) in {}", ran.len(), Ns(ns));
            } else {
                println!(
                    "stopcpus {set}: ran on {ran} ({} CPUs) in {}; not on {skipped}, whose \
                     stoppers are disabled (offline)",
                    ran.len(),
                    Ns(ns)
                );
            }
        }
        Err(e) => refused(format_args!("stopcpus {set}"), e),
    }
}

fn stop_all() {
    let ran = AtomicCpuSet::new();
    let stopped = AtomicCpuSet::new();
    let t0 = Instant::now();
    let r = STOPPERS.stop_machine(
        || {
            ran.insert(crate::cpu::id(), Ordering::Relaxed);
            // Every participant is inside its stopper's callback while this one runs.
            for c in STOPPERS.running_mask() {
                stopped.insert(c, Ordering::Relaxed);
            }
            0
        },
        None,
    );
    let ns = since(t0);
    match r {
        Ok(_) => {
            let (ran, stopped) = (ran.load(Ordering::Relaxed), stopped.load(Ordering::Relaxed));
            note_latency(stopped, ns);
            let online = HOTPLUG.online_mask();
            if ran.len() != 1 || !online.is_subset(&stopped) {
                error(format_args!(
                    "stopall: FAILED: ran on {ran}, with {stopped} stopped of {online} online"
                ));
            } else {
                println!(
                    "stopall: ran on cpu{} with CPUs {stopped} stopped ({} CPUs), in {}",
                    ran.first().unwrap_or(0),
                    stopped.len(),
                    Ns(ns)
                );
            }
        }
        Err(e) => refused(format_args!("stopall"), e),
    }
}

fn off(cpu: usize) {
    match hotplug::cpu_down(cpu) {
        Ok(t) => {
            println!(
                "off {cpu}: cpu{cpu} is {} (cpu_down {}: stop_machine {}, flush and park {}, \
                 power off {})",
                hotplug::state(cpu),
                Ns(t.total_ns()),
                Ns(t.stop_ns),
                Ns(t.dead_ns),
                Ns(t.off_ns)
            );
        }
        Err(e) => refused(format_args!("off {cpu}"), e),
    }
}

fn on(cpu: usize) {
    match hotplug::cpu_up(cpu) {
        Ok(t) => println!(
            "on {cpu}: cpu{cpu} is {} (cpu_up {}: CPU_ON {}, to online {})",
            hotplug::state(cpu),
            Ns(t.total_ns()),
            Ns(t.on_ns),
            Ns(t.online_ns)
        ),
        Err(e) => refused(format_args!("on {cpu}"), e),
    }
}

/// `storm` and `soak`: the load engine, its progress every 10 s, then its totals.
fn load_run(what: &str, len: crate::load::Length) {
    use crate::load;
    match len {
        load::Length::Cycles(c) => println!("{what}: {c} hotplug cycles; progress every 10 s"),
        load::Length::Seconds(s) => println!("{what}: {s} s; progress every 10 s"),
    }
    let mut show = |p: &load::Progress| load::print(p);
    let t = match (what, len) {
        ("soak", load::Length::Seconds(s)) => load::soak(s, &mut show),
        _ => load::storm(len, &mut show),
    };
    load::print(&t);
    if t.ok() {
        println!("{what}: ok: {} requests run, none lost", t.run());
    } else {
        error(format_args!(
            "{what}: FAILED: {} lost, {} wrong runs, {} bad refusals, {} errors",
            t.lost(),
            t.wrong,
            t.bad_refusals,
            t.errors
        ));
    }
}

/// Runs per `bench` figure.
const BENCH_RUNS: usize = 20;

/// Times `f` [`BENCH_RUNS`] times; `None` if any run failed. Prints one line.
fn figure(what: fmt::Arguments<'_>, mut f: impl FnMut() -> bool) {
    let mut ns = [0u64; BENCH_RUNS];
    for slot in &mut ns {
        let t0 = Instant::now();
        if !f() {
            error(format_args!("bench: {what}: a run failed; no figure"));
            return;
        }
        *slot = since(t0);
    }
    ns.sort_unstable();
    println!(
        "bench: {what:<28} min {:>10}  median {:>10}  max {:>10}  ({BENCH_RUNS} runs)",
        Ns(ns[0]),
        Ns(ns[BENCH_RUNS / 2]),
        Ns(ns[BENCH_RUNS - 1])
    );
}

fn bench() {
    let online = HOTPLUG.online_mask();
    println!(
        "bench: {} of {} CPUs online ({online}); timer {} Hz; `just bench` has the full set",
        online.len(),
        cpu_count(),
        crate::time::frequency()
    );
    let Some(last) = online.last().filter(|&c| c != 0) else {
        println!("bench: one CPU online: only the local figures");
        figure(format_args!("stop_one_cpu local"), || STOPPERS.stop_one_cpu(0, || 0).is_ok());
        figure(format_args!("stop_machine (1 CPU)"), || STOPPERS.stop_machine(|| 0, None).is_ok());
        return;
    };
    figure(format_args!("stop_one_cpu cpu{last}"), || STOPPERS.stop_one_cpu(last, || 0).is_ok());
    figure(format_args!("stop_two_cpus 0 {last}"), || {
        STOPPERS.stop_two_cpus(0, last, || 0).is_ok()
    });
    figure(format_args!("stop_cpus {online}"), || STOPPERS.stop_cpus(online, || 0).is_ok());
    figure(format_args!("stop_machine ({} CPUs)", online.len()), || {
        STOPPERS.stop_machine(|| 0, None).is_ok()
    });
    figure(format_args!("cpu_down + cpu_up cpu{last}"), || {
        hotplug::cpu_down(last).is_ok() && hotplug::cpu_up(last).is_ok()
    });
}

fn stats() {
    let s = STOPPERS.stats();
    let h = HOTPLUG.stats();
    println!(
        "stopper: park-with-works {} (a bug if not 0), stop_two_cpus back-offs {}, watchdog \
         reports {}, sleeps {}, wakes {}",
        s.park_with_works, s.in_progress_retries, s.watchdog_reports, s.sleeps, s.wakes
    );
    println!(
        "watchdog: requests failed {}, CPUs halted {}, halts refused {}, callbacks recovered \
         after a fault {}",
        s.timed_out, s.halts, s.halt_refused, s.fault_recoveries
    );
    println!(
        "hotplug: cpu_down {}, cpu_up {}, bad transitions {} (a bug if not 0), late CPUs {}",
        h.downs, h.ups, h.bad_transitions, h.late_cpus
    );
    let c = &COUNTERS;
    println!(
        "console: lines {}, errors {}, requests refused {}, input lost {}",
        c.lines.load(Ordering::Relaxed),
        c.errors.load(Ordering::Relaxed),
        c.refused.load(Ordering::Relaxed),
        c.lost_input.load(Ordering::Relaxed)
    );
    println!(
        "gic: unexpected interrupts {}; report: {} failed checks; uptime {} s",
        crate::gic::unexpected_count(),
        crate::demo::failures(),
        Instant::now().since_boot().as_secs()
    );
}
