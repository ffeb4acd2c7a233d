//! The on-target test harness.
//!
//! A test is a plain `fn()` marked `#[armstop::target_test]`; the attribute places a
//! [`TestCase`] in the `.armstop_tests` link section, and [`run`] walks that section on the boot
//! CPU after every CPU is up. A test fails by panicking (or faulting) on any CPU: the fault
//! path records the first message, restarts the faulting CPU on fresh stacks (the boot CPU into
//! the harness, a secondary into its idle loop) and the harness goes on with the next test.
//!
//! Console protocol, read by the host runner (`tests/runner`):
//! ```text
//! armstop-test: begin suite=<suite> board=<board> cpus=<n> tests=<N>
//! armstop-test: plan? <how to answer>
//! armstop-test: plan from=<i> only=<text> stop-at-failure: <k> of <N> tests
//! armstop-test: start <name> #<i>
//! armstop-test: figure <text>          (any number: totals a test reports; the runner prints them)
//! test <name> ... ok (<N> us) | ignored: <reason> | FAILED: <message>
//! armstop-test: end passed=<p> failed=<f> ignored=<i> [next=<j>]
//! ```
//! then the image exits with status 0 if nothing failed, 1 otherwise.
//!
//! The plan is read from the console right after `begin`: a line `plan [from=<i>] [only=<text>]
//! [stop-at-failure]` runs the tests from index `i` (0-based, in link order) whose names
//! contain `text`; with `stop-at-failure` the run ends after the first failure, with `next=`
//! the index to go on from, so that the runner can boot a clean machine for the rest and every
//! failure it reports is the test's own, not left over from the one before. The runner types
//! its plan when it sees `plan?` (not before: QEMU hands the UART bytes as soon as it can, and
//! what arrives before the image has enabled it is dropped). With no runner, an empty line, or
//! nothing within [`PLAN_WAIT`], every test runs; a line that is not a plan is an error that
//! ends the run.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

pub use armstop_shell::plan::{Plan, parse_plan};

use crate::board::{BOARD, cpu_count};
use crate::console::LineBuf;
use crate::println;
use crate::time::Instant;

/// One registered test.
#[repr(C)]
pub struct TestCase {
    /// `module::path::name` (crate name included; stripped when printed).
    pub name: &'static str,
    /// The test.
    pub func: fn(),
}

unsafe extern "C" {
    static __armstop_tests_start: u8;
    static __armstop_tests_end: u8;
}

/// Every test linked into this image, in link order.
pub fn tests() -> &'static [TestCase] {
    // SAFETY: the linker script brackets `.armstop_tests`, which only holds `TestCase` statics
    // emitted by `#[target_test]` (8-aligned, `#[repr(C)]`), with these two symbols.
    unsafe {
        let start = (&raw const __armstop_tests_start).cast::<TestCase>();
        let end = (&raw const __armstop_tests_end).cast::<TestCase>();
        let n = (end as usize - start as usize) / core::mem::size_of::<TestCase>();
        core::slice::from_raw_parts(start, n)
    }
}

fn display_name(t: &TestCase) -> &'static str {
    t.name.split_once("::").map_or(t.name, |(_, rest)| rest)
}

static RUNNING: AtomicBool = AtomicBool::new(false);
static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PASSED: AtomicUsize = AtomicUsize::new(0);
static FAILED: AtomicUsize = AtomicUsize::new(0);
static IGNORED: AtomicUsize = AtomicUsize::new(0);
static STARTED_AT: AtomicU64 = AtomicU64::new(0);

enum Outcome {
    None,
    Failed(LineBuf<{ crate::fault::MESSAGE_MAX }>),
    Ignored(LineBuf<{ crate::fault::MESSAGE_MAX }>),
}

/// The first failure (or the ignore request) of the running test.
static OUTCOME: spin::Mutex<Outcome> = spin::Mutex::new(Outcome::None);

/// Whether the harness is running tests (faults are test failures, not the end of the run).
pub fn is_running() -> bool {
    RUNNING.load(Ordering::Acquire)
}

/// How long the harness waits for a byte of the plan: with none at all, it runs every test.
pub const PLAN_WAIT: core::time::Duration = core::time::Duration::from_secs(3);

/// The plan's line, kept for the run (the plan borrows its `only=` text from it).
static PLAN_LINE: spin::Once<LineBuf<128>> = spin::Once::new();
/// The plan this run follows (set once, before the first test; never locked, so a test that
/// faults and restarts the harness finds it as it was).
static PLAN: spin::Once<Plan<'static>> = spin::Once::new();
/// The last test reported failed (for `stop-at-failure`).
static LAST_FAILED: AtomicBool = AtomicBool::new(false);

/// Reads the plan's line from the console: up to the first CR or LF after a byte that is not
/// one, waiting at most [`PLAN_WAIT`] for each byte (a runner types it at once, if slowly
/// under load; a terminal with nobody at it sends nothing). `Err` if it was too long or input
/// was lost.
fn read_plan_line(buf: &mut LineBuf<128>) -> Result<(), &'static str> {
    use crate::console::Rx;
    let mut deadline = Instant::now() + PLAN_WAIT;
    let mut started = false;
    loop {
        let rx = crate::console::read();
        if rx.is_some() {
            deadline = Instant::now() + PLAN_WAIT;
        }
        match rx {
            Some(Rx::Byte(b'\r' | b'\n')) if started => return Ok(()),
            // Line ends before the plan: a CR LF's LF, or an Enter typed before it.
            Some(Rx::Byte(b'\r' | b'\n')) => {}
            Some(Rx::Byte(b)) if b.is_ascii_graphic() || b == b' ' => {
                started = true;
                buf.write_char(char::from(b)).map_err(|_| "plan line over 128 bytes")?;
            }
            Some(Rx::Byte(_)) => return Err("plan line has a control or non-ASCII byte"),
            Some(Rx::Lost(_)) => return Err("input lost on the UART while reading the plan"),
            None if Instant::now() > deadline => {
                return if started { Err("plan line not ended in time") } else { Ok(()) };
            }
            None => core::hint::spin_loop(),
        }
    }
}

/// Runs the registered tests the plan read from the console selects (every test without
/// one) and ends the run with the result. Boot CPU only.
pub fn run(suite: &str) -> ! {
    let all = tests();
    println!(
        "armstop-test: begin suite={suite} board={} cpus={} tests={}",
        BOARD.name,
        crate::smp::online_mask().len(),
        all.len()
    );
    println!(
        "armstop-test: plan? (type `plan [from=<i>] [only=<text>] [stop-at-failure]`; Enter, \
         or nothing within {} s: every test)",
        PLAN_WAIT.as_secs()
    );
    let mut buf = LineBuf::new();
    let read = read_plan_line(&mut buf);
    let line = PLAN_LINE.call_once(|| buf).as_str();
    let plan = match read.and_then(|()| parse_plan(line)) {
        Ok(p) => *PLAN.call_once(|| p),
        Err(e) => {
            println!("armstop-test: plan error: {e} (got {line:?})");
            println!("armstop-test: end passed=0 failed=0 ignored=0");
            crate::power::exit(1)
        }
    };
    let selected =
        all.iter().enumerate().filter(|(i, t)| plan.selects(*i, display_name(t))).count();
    println!(
        "armstop-test: plan from={} only={} {}: {selected} of {} tests",
        plan.from,
        if plan.only.is_empty() { "*" } else { plan.only },
        if plan.stop_at_failure { "stop-at-failure" } else { "go-on-after-failure" },
        all.len()
    );
    CURRENT.store(plan.from, Ordering::Relaxed);
    RUNNING.store(true, Ordering::Release);
    // A fault on any CPU fails the running test instead of stopping the machine.
    crate::fault::set_hook(Some(|cpu, message| is_running() && on_fault(cpu, message)));
    run_from_current()
}

fn run_from_current() -> ! {
    let all = tests();
    let plan = PLAN.get().copied().unwrap_or(Plan::ALL);
    let mut next = None;
    loop {
        let i = CURRENT.load(Ordering::Relaxed);
        if LAST_FAILED.load(Ordering::Relaxed) && plan.stop_at_failure {
            // The next test the plan selects, if any: a boot for none would be wasted.
            next = (i..all.len()).find(|&j| plan.selects(j, display_name(&all[j])));
            break;
        }
        let Some(t) = all.get(i) else { break };
        if !plan.selects(i, display_name(t)) {
            CURRENT.store(i + 1, Ordering::Relaxed);
            continue;
        }
        *OUTCOME.lock() = Outcome::None;
        println!("armstop-test: start {} #{i}", display_name(t));
        STARTED_AT.store(Instant::now().ticks(), Ordering::Relaxed);
        (t.func)();
        finish_current();
    }
    RUNNING.store(false, Ordering::Release);
    let (p, f, ig) = (
        PASSED.load(Ordering::Relaxed),
        FAILED.load(Ordering::Relaxed),
        IGNORED.load(Ordering::Relaxed),
    );
    match next {
        Some(n) => println!("armstop-test: end passed={p} failed={f} ignored={ig} next={n}"),
        None => println!("armstop-test: end passed={p} failed={f} ignored={ig}"),
    }
    crate::power::exit(if f == 0 { 0 } else { 1 })
}

/// Reports the current test by what was recorded for it, and moves on.
fn finish_current() {
    let i = CURRENT.load(Ordering::Relaxed);
    let name = display_name(&tests()[i]);
    let start = STARTED_AT.load(Ordering::Relaxed);
    let us = crate::time::Instant::now().ticks().saturating_sub(start) * 1_000_000
        / crate::time::frequency().max(1);
    match &*OUTCOME.lock() {
        Outcome::None => {
            LAST_FAILED.store(false, Ordering::Relaxed);
            PASSED.fetch_add(1, Ordering::Relaxed);
            println!("test {name} ... ok ({us} us)");
        }
        Outcome::Failed(m) => {
            LAST_FAILED.store(true, Ordering::Relaxed);
            FAILED.fetch_add(1, Ordering::Relaxed);
            println!("test {name} ... FAILED: {}", m.as_str());
        }
        Outcome::Ignored(r) => {
            LAST_FAILED.store(false, Ordering::Relaxed);
            IGNORED.fetch_add(1, Ordering::Relaxed);
            println!("test {name} ... ignored: {}", r.as_str());
        }
    }
    CURRENT.store(i + 1, Ordering::Relaxed);
}

fn record(outcome: Outcome) {
    let mut o = OUTCOME.lock();
    // The first failure is the cause; later ones (e.g. the caller's unwrap of a faulted call)
    // are consequences.
    if matches!(*o, Outcome::None) {
        *o = outcome;
    }
}

/// Fault hook from [`crate::fault::fatal`]: fails the running test and restarts `cpu`.
///
/// A fault inside a stop request's callback (a failed assertion in a test's callback, on any
/// CPU) first has the stopper finish that CPU's part of the request as if the callback had
/// returned `-EFAULT` ([`armstop_stopper::Stoppers::recover_fault`]), so its requester gets an
/// answer and no CPU is left waiting on memory the restart gives up. If that cannot be done
/// (the request's other CPUs do not let go in time), returns `false`: the machine stops.
pub fn on_fault(cpu: usize, message: &str) -> bool {
    let mut m = LineBuf::new();
    let _ = m.write_str(message.lines().next().unwrap_or(""));
    record(Outcome::Failed(m));
    let stoppers = &crate::stop::STOPPERS;
    if stoppers.in_callback() && !stoppers.recover_fault(EFAULT) {
        crate::console::force_line(format_args!(
            "cpu{cpu}: the stop request its callback faulted in could not be finished; \
             stopping the machine"
        ));
        return false;
    }
    if cpu == 0 {
        crate::arch::boot::restart_on(0, resume_harness)
    }
    crate::smp::on_secondary_fault(cpu);
    crate::arch::boot::restart_on(cpu, crate::smp::idle_entry)
}

extern "C" fn resume_harness() -> ! {
    crate::cpu::unmask_irqs();
    finish_current();
    run_from_current()
}

/// What a faulted callback returns to its requester (Linux's `-EFAULT`).
pub const EFAULT: i32 = -14;

/// Ends the running test as ignored, with the reason printed. Boot CPU only; never returns.
pub fn ignore(reason: core::fmt::Arguments<'_>) -> ! {
    assert_eq!(crate::cpu::id(), 0, "testing::ignore called off the boot CPU");
    let mut r = LineBuf::new();
    let _ = r.write_fmt(reason);
    record(Outcome::Ignored(r));
    crate::arch::boot::restart_on(0, resume_harness)
}

/// Reports a figure of the running test (a total, a count, a time): the runner prints it under
/// the test's result, so `just test` shows it without `--verbose`.
pub fn figure(args: core::fmt::Arguments<'_>) {
    println!("armstop-test: figure {args}");
}

/// Number of CPUs the tests can use.
pub fn online_cpus() -> usize {
    crate::smp::online_mask().len()
}

/// Brings every CPU online ([`require_all_cpus`]), then ends the running test as ignored,
/// with the reason, if the machine has fewer than `n` CPUs: a test that needs `n` CPUs is
/// skipped on a smaller machine, never failed and never passed. Boot CPU only.
pub fn require_cpus(n: usize) {
    require_all_cpus();
    if cpu_count() < n {
        ignore(format_args!("needs {n} CPUs; this machine has {}", cpu_count()));
    }
}

/// Asserts that every CPU of the board is online (most multi-CPU tests need them all).
///
/// A CPU that an earlier (failed) test left off is brought back up first, with a note, so one
/// failure does not cascade through the rest of the run.
pub fn require_all_cpus() {
    for cpu in 0..cpu_count() {
        if !crate::smp::is_online(cpu) {
            let was = crate::smp::state(cpu);
            crate::console::force_line(format_args!(
                "note: cpu{cpu} is {was} (left by an earlier test); bringing it up"
            ));
            if let Err(e) = crate::hotplug::cpu_up(cpu) {
                panic!("cpu{cpu} is {was} and cannot be brought up: {e}");
            }
        }
    }
    assert_eq!(crate::smp::online_mask(), crate::board::all_cpus(), "not every CPU is online");
}
