//! The load engine: the hotplug storm ([`storm`]) and the soak run ([`soak`]), with every
//! request accounted for. The on-target hotplug storm test, the soak image and the operator
//! console all run these.
//!
//! A **storm** takes a random secondary CPU (the moving target) down and brings it back, again
//! and again, while every other secondary CPU hammers that target with every request kind
//! (`stop_one_cpu`, `stop_one_cpu_nowait`, `stop_two_cpus`, `stop_cpus`, `stop_machine`). A
//! **soak** is the same storm with requests from every CPU to every CPU: the hammering CPUs
//! aim at random CPUs (the moving one, each other, themselves, the boot CPU), and the boot CPU
//! makes one request of each kind between cycles.
//!
//! Invariant: every request is accounted for, by what its function did, not by what the
//! request returned. Each request's function counts its own runs, per CPU; after the call
//! returns (a nowait work: after the run has quiesced, every CPU back up and every buffer
//! drained), a request is
//! - *run* if it was accepted and its function ran exactly once on each CPU that had to run it
//!   (the target of a one-CPU request; for `stop_cpus` and `stop_machine`, each CPU of the set
//!   that stays online throughout; for a `stop_cpus` of the moving target alone, which is
//!   refused unless its work was queued there, that target);
//! - *lost* if it was accepted and its function missed such a CPU (a nowait work: accepted and
//!   never run);
//! - a *wrong run* if its function ran anywhere else: on a CPU outside the request, twice on one
//!   CPU, on a CPU that was neither online nor dying, after a refusal, or (`stop_two_cpus`)
//!   without the other CPU held in its stopper; a nowait work still queued once its CPU is off
//!   counts here too;
//! - a *bad refusal* if it was refused and the moving CPU (the only one that goes down) cannot
//!   explain it: a one- or two-CPU request that does not name it, a `stop_cpus` that names
//!   another CPU too, any `stop_machine` (the requester always takes part).
//!
//! Only the moving target's share of a multi-CPU request may or may not run (it depends on
//! whether its stopper was still enabled when the request queued), so that share is counted
//! apart (`target_runs`) and only checked for wrong runs.

use core::fmt::{self, Write as _};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use crate::board::{NR_CPUS, cpu_count};
use crate::console::LineBuf;
use crate::hotplug::{self, CpuState, HOTPLUG};
use crate::smp;
use crate::stop::{CpuSet, NowaitWork, STOPPERS, StopError};
use crate::time::{Instant, wait_until};

/// How long a storm or soak runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Length {
    /// This many hotplug cycles.
    Cycles(u32),
    /// This many seconds.
    Seconds(u32),
}

/// How often the engine hands its caller a [`Progress`] (issue 14: at least every 10 s).
pub const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How long the boot CPU waits for a hammering CPU to stop once told (one request, however
/// slow the host, ends well within this).
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an accepted nowait work may take to run once the machine is quiet.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// CPUs with a nowait buffer of their own (one function per buffer, so the function knows its
/// requester); a CPU past these makes the other kinds of request only.
pub const NOWAIT_CPUS: usize = 64;

/// The request kinds, in the order [`Totals::kinds`] keeps them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Kind {
    /// `stop_one_cpu`.
    One = 0,
    /// `stop_one_cpu_nowait`.
    Nowait = 1,
    /// `stop_two_cpus`.
    Two = 2,
    /// `stop_cpus`.
    Cpus = 3,
    /// `stop_machine`.
    Machine = 4,
}

/// Every kind, in order.
pub const KINDS: [Kind; 5] = [Kind::One, Kind::Nowait, Kind::Two, Kind::Cpus, Kind::Machine];

impl Kind {
    /// The stopper function's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::One => "stop_one_cpu",
            Self::Nowait => "stop_one_cpu_nowait",
            Self::Two => "stop_two_cpus",
            Self::Cpus => "stop_cpus",
            Self::Machine => "stop_machine",
        }
    }
}

/// One kind's counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindTotals {
    /// Requests the stopper accepted (returned `Ok`, or `true` for a nowait work).
    pub accepted: u64,
    /// Requests it refused (`NoEnt`: a CPU was down or going down).
    pub refused: u64,
    /// Accepted requests whose function ran where it had to (see the module docs).
    pub run: u64,
    /// Accepted requests whose function did not.
    pub lost: u64,
    /// Runs of a multi-CPU request's function on the moving target (may or may not happen).
    pub target_runs: u64,
    /// Longest request, from the call to its return (a nowait work: from the call to its run).
    pub max_latency_ns: u64,
}

/// What a storm or soak did. `Display` prints it as rcutorture prints its totals: one line per
/// figure, and an `End of ...` line that says SUCCESS or FAILURE with the key counts.
pub struct Totals {
    /// `"storm"` or `"soak"`.
    pub what: &'static str,
    /// CPUs of the machine.
    pub cpus: usize,
    /// How long it ran.
    pub elapsed: Duration,
    /// Per request kind, in the order of [`KINDS`].
    pub kinds: [KindTotals; 5],
    /// Hotplug cycles (one `cpu_down` and one `cpu_up` of the moving target).
    pub cycles: u64,
    /// Shortest cycle, ns (0 if none).
    pub cycle_min_ns: u64,
    /// Longest cycle, ns.
    pub cycle_max_ns: u64,
    /// All cycles together, ns.
    pub cycle_sum_ns: u64,
    /// `cpu_down`s and `cpu_up`s hotplug counted meanwhile.
    pub downs: u64,
    /// See `downs`.
    pub ups: u64,
    /// How often each CPU was the moving target.
    pub targets: [u32; NR_CPUS],
    /// CPUs that made at least one request.
    pub senders: CpuSet,
    /// Wrong runs (see the module docs).
    pub wrong: u64,
    /// Refusals although every CPU named stayed online.
    pub bad_refusals: u64,
    /// The stopper's park-with-works counter (a stopper parked with works queued), meanwhile.
    pub park_with_works: u64,
    /// Hotplug's bad state transitions, meanwhile.
    pub bad_transitions: u64,
    /// Stopper watchdog reports (a request waited past the watchdog), meanwhile. Not a failure
    /// by itself: an overcommitted host can be that slow.
    pub watchdog_reports: u64,
    /// Hotplug operations or hammering CPUs that failed; the run ends at the first.
    pub errors: u64,
    /// The first error.
    pub first_error: LineBuf<160>,
    /// What the machine's size left out, if anything (1 or 2 CPUs).
    pub note: Option<&'static str>,
}

impl Totals {
    fn new(what: &'static str) -> Self {
        Self {
            what,
            cpus: cpu_count(),
            elapsed: Duration::ZERO,
            kinds: [KindTotals::default(); 5],
            cycles: 0,
            cycle_min_ns: 0,
            cycle_max_ns: 0,
            cycle_sum_ns: 0,
            downs: 0,
            ups: 0,
            targets: [0; NR_CPUS],
            senders: CpuSet::EMPTY,
            wrong: 0,
            bad_refusals: 0,
            park_with_works: 0,
            bad_transitions: 0,
            watchdog_reports: 0,
            errors: 0,
            first_error: LineBuf::new(),
            note: None,
        }
    }

    /// One kind's counts.
    pub fn kind(&self, k: Kind) -> &KindTotals {
        &self.kinds[k as usize]
    }

    /// Requests accepted and never run, over every kind.
    pub fn lost(&self) -> u64 {
        self.kinds.iter().map(|k| k.lost).sum()
    }

    /// Requests accepted, over every kind.
    pub fn accepted(&self) -> u64 {
        self.kinds.iter().map(|k| k.accepted).sum()
    }

    /// Requests refused, over every kind.
    pub fn refused(&self) -> u64 {
        self.kinds.iter().map(|k| k.refused).sum()
    }

    /// Requests run, over every kind.
    pub fn run(&self) -> u64 {
        self.kinds.iter().map(|k| k.run).sum()
    }

    /// Whether the stopper kept its guarantee: nothing lost, no wrong run, no bad refusal, no
    /// stopper parked with works, no bad hotplug transition, no failed operation.
    pub fn ok(&self) -> bool {
        self.lost() == 0
            && self.wrong == 0
            && self.bad_refusals == 0
            && self.park_with_works == 0
            && self.bad_transitions == 0
            && self.errors == 0
    }
}

/// Hands `f` each line of `d`'s text, without its newline (each cut to
/// [`crate::console::LINE_MAX`] bytes, a console line's most).
pub fn for_each_line(d: &dyn fmt::Display, f: &mut dyn FnMut(&str)) {
    struct Lines<'a> {
        line: LineBuf<{ crate::console::LINE_MAX }>,
        f: &'a mut dyn FnMut(&str),
    }
    impl fmt::Write for Lines<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let mut rest = s;
            while let Some(i) = rest.find('\n') {
                let _ = self.line.write_str(&rest[..i]);
                (self.f)(self.line.as_str());
                self.line.clear();
                rest = &rest[i + 1..];
            }
            self.line.write_str(rest)
        }
    }
    let mut w = Lines { line: LineBuf::new(), f };
    let _ = write!(w, "{d}");
    if !w.line.as_str().is_empty() {
        (w.f)(w.line.as_str());
    }
}

/// Prints `d` on the console, one console line per line of its text (`Totals` prints many).
pub fn print(d: &dyn fmt::Display) {
    for_each_line(d, &mut |l| crate::println!("{l}"));
}

fn us(ns: u64) -> u64 {
    ns / 1000
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const P: &str = "armstop-load:";
        let ms = self.elapsed.as_millis();
        writeln!(
            f,
            "{P} {} on {} CPU{}: {} cycles in {}.{:03} s",
            self.what,
            self.cpus,
            if self.cpus == 1 { "" } else { "s" },
            self.cycles,
            ms / 1000,
            ms % 1000
        )?;
        if let Some(note) = self.note {
            writeln!(f, "{P} note: {note}")?;
        }
        writeln!(
            f,
            "{P}   {:<20} {:>10} {:>10} {:>10} {:>6} {:>10} {:>12}",
            "kind", "accepted", "refused", "run", "lost", "on target", "max latency"
        )?;
        for k in KINDS {
            let t = self.kind(k);
            writeln!(
                f,
                "{P}   {:<20} {:>10} {:>10} {:>10} {:>6} {:>10} {:>9} us",
                k.name(),
                t.accepted,
                t.refused,
                t.run,
                t.lost,
                t.target_runs,
                us(t.max_latency_ns)
            )?;
        }
        writeln!(
            f,
            "{P}   {:<20} {:>10} {:>10} {:>10} {:>6}",
            "all",
            self.accepted(),
            self.refused(),
            self.run(),
            self.lost()
        )?;
        let mean = self.cycle_sum_ns.checked_div(self.cycles).unwrap_or(0);
        writeln!(
            f,
            "{P} hotplug: {} cycles ({} downs, {} ups): min {} us, max {} us, sum {} ms, mean {} us",
            self.cycles,
            self.downs,
            self.ups,
            us(self.cycle_min_ns),
            us(self.cycle_max_ns),
            self.cycle_sum_ns / 1_000_000,
            us(mean)
        )?;
        if self.cycles > 0 && self.cpus <= 8 {
            write!(f, "{P} moving targets:")?;
            for (c, n) in self.targets.iter().enumerate().take(self.cpus).skip(1) {
                write!(f, " cpu{c} {n}")?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "{P} requests from CPUs {}; wrong runs {}, bad refusals {}, park-with-works {}, bad \
             transitions {}, watchdog reports {}, errors {}",
            self.senders,
            self.wrong,
            self.bad_refusals,
            self.park_with_works,
            self.bad_transitions,
            self.watchdog_reports,
            self.errors
        )?;
        if self.errors > 0 {
            writeln!(f, "{P} first error: {}", self.first_error.as_str())?;
        }
        write!(
            f,
            "{P} --- End of {}: {} lost={} wrong={} bad_refusals={} park_with_works={} \
             bad_transitions={} errors={} watchdog_reports={} cycles={} accepted={}",
            self.what,
            if self.ok() { "SUCCESS" } else { "FAILURE" },
            self.lost(),
            self.wrong,
            self.bad_refusals,
            self.park_with_works,
            self.bad_transitions,
            self.errors,
            self.watchdog_reports,
            self.cycles,
            self.accepted()
        )
    }
}

/// Where a run is, handed to the caller's callback every [`PROGRESS_EVERY`].
pub struct Progress<'a> {
    /// Since the run began.
    pub elapsed: Duration,
    /// Cycles done.
    pub cycles: u64,
    /// What the run was asked for.
    pub length: Length,
    /// The totals so far (nowait works still queued count as neither run nor lost yet).
    pub totals: &'a Totals,
}

impl Progress<'_> {
    /// Cycles per second so far, in tenths.
    pub fn rate_tenths(&self) -> u64 {
        let ms = self.elapsed.as_millis().max(1) as u64;
        self.cycles * 10_000 / ms
    }

    /// Time left, if known: the rest of the duration, or the cycles left at the rate so far.
    pub fn left(&self) -> Option<Duration> {
        match self.length {
            Length::Seconds(s) => Some(Duration::from_secs(s.into()).saturating_sub(self.elapsed)),
            Length::Cycles(c) if self.cycles > 0 => {
                let left = u64::from(c).saturating_sub(self.cycles);
                Some(Duration::from_millis(
                    (self.elapsed.as_millis() as u64).saturating_mul(left) / self.cycles,
                ))
            }
            Length::Cycles(_) => None,
        }
    }
}

impl fmt::Display for Progress<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.totals;
        write!(f, "armstop-load: progress {}: ", t.what)?;
        match self.length {
            Length::Seconds(s) => {
                write!(f, "{}/{s} s, {} cycles", self.elapsed.as_secs(), self.cycles)?
            }
            Length::Cycles(c) => {
                write!(f, "{}/{c} cycles, {} s", self.cycles, self.elapsed.as_secs())?
            }
        }
        let r = self.rate_tenths();
        let secs = self.elapsed.as_secs().max(1);
        write!(
            f,
            ", {}.{} cycles/s, {} requests/s",
            r / 10,
            r % 10,
            (t.accepted() + t.refused()) / secs
        )?;
        match self.left() {
            Some(d) => write!(f, ", {} s left", d.as_secs())?,
            None => f.write_str(", time left unknown")?,
        }
        write!(
            f,
            "; requests {} accepted, {} refused, {} lost, {} wrong, {} bad refusals, {} errors",
            t.accepted(),
            t.refused(),
            t.lost(),
            t.wrong,
            t.bad_refusals,
            t.errors
        )
    }
}

// ---- The counters every CPU updates during a run ----

struct KindCounters {
    accepted: AtomicU64,
    refused: AtomicU64,
    run: AtomicU64,
    lost: AtomicU64,
    target_runs: AtomicU64,
    max_latency_ns: AtomicU64,
}

impl KindCounters {
    const fn new() -> Self {
        Self {
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            run: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            target_runs: AtomicU64::new(0),
            max_latency_ns: AtomicU64::new(0),
        }
    }

    fn reset(&self) {
        for c in [
            &self.accepted,
            &self.refused,
            &self.run,
            &self.lost,
            &self.target_runs,
            &self.max_latency_ns,
        ] {
            c.store(0, Ordering::SeqCst);
        }
    }

    fn snapshot(&self) -> KindTotals {
        KindTotals {
            accepted: self.accepted.load(Ordering::SeqCst),
            refused: self.refused.load(Ordering::SeqCst),
            run: self.run.load(Ordering::SeqCst),
            lost: self.lost.load(Ordering::SeqCst),
            target_runs: self.target_runs.load(Ordering::SeqCst),
            max_latency_ns: self.max_latency_ns.load(Ordering::SeqCst),
        }
    }
}

static KIND: [KindCounters; 5] = [const { KindCounters::new() }; 5];
static WRONG: AtomicU64 = AtomicU64::new(0);
static BAD_REFUSALS: AtomicU64 = AtomicU64::new(0);
static SENDERS: [AtomicBool; NR_CPUS] = [const { AtomicBool::new(false) }; NR_CPUS];

/// No CPU is moving (between cycles, and on a 1-CPU machine).
const NO_TARGET: usize = usize::MAX;
/// The CPU being taken down and brought back in this cycle, or [`NO_TARGET`].
static MOVING: AtomicUsize = AtomicUsize::new(NO_TARGET);
/// Tells the hammering CPUs to return.
static STOP: AtomicBool = AtomicBool::new(true);
/// Whether the hammering CPUs aim at random CPUs (soak) or at the moving target only (storm).
static SOAK: AtomicBool = AtomicBool::new(false);

fn count(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::SeqCst);
}

/// Whether `cpu` may run a work now: online, or dying (`take_cpu_down` and the flush before the
/// park run there).
fn alive(cpu: usize) -> bool {
    matches!(hotplug::state(cpu), CpuState::Online | CpuState::Dying)
}

/// One request's runs, per CPU, as its function counts them.
struct Runs([AtomicU32; NR_CPUS]);

impl Runs {
    fn new() -> Self {
        Self([const { AtomicU32::new(0) }; NR_CPUS])
    }

    /// Called by the request's function, on the CPU it runs on, which must be one of `allowed`
    /// and alive.
    fn record(&self, allowed: CpuSet) {
        let me = crate::cpu::id();
        if !allowed.contains(me) || !alive(me) {
            count(&WRONG, 1);
        }
        self.0[me].fetch_add(1, Ordering::SeqCst);
    }

    fn on(&self, cpu: usize) -> u32 {
        self.0[cpu].load(Ordering::SeqCst)
    }
}

/// Books one waiting request of kind `k` over `set` (the CPUs it names), which `r` answered
/// after `ns`: `must` are the CPUs that had to run its function if it was accepted.
fn book(k: Kind, set: CpuSet, must: CpuSet, r: Result<i32, StopError>, runs: &Runs, ns: u64) {
    let c = &KIND[k as usize];
    let moving = MOVING.load(Ordering::SeqCst);
    // Runs on CPUs of the set other than those that had to: the moving target's share, checked
    // only for being at most one.
    let mut extra = 0;
    for cpu in set.iter() {
        let n = runs.on(cpu);
        if n > 1 {
            count(&WRONG, u64::from(n - 1));
        }
        if !must.contains(cpu) && n > 0 {
            extra += 1;
        }
    }
    match r {
        Ok(_) => {
            count(&c.accepted, 1);
            c.max_latency_ns.fetch_max(ns, Ordering::SeqCst);
            if must.iter().all(|cpu| runs.on(cpu) >= 1) {
                count(&c.run, 1);
            } else {
                count(&c.lost, 1);
            }
            count(&c.target_runs, extra);
        }
        Err(_) => {
            count(&c.refused, 1);
            // A refused request's function never runs anywhere.
            let ran: u64 = set.iter().map(|cpu| u64::from(runs.on(cpu))).sum();
            count(&WRONG, ran);
            // Only the moving CPU goes down, so only it can explain a refusal: of a one- or
            // two-CPU request that names it; of a `stop_cpus` that names it alone (the others
            // are enabled and would take the work); of a `stop_machine`, never (the requester
            // takes part).
            let legitimate = moving != NO_TARGET
                && match k {
                    Kind::Cpus => set == CpuSet::single(moving),
                    Kind::Machine => false,
                    _ => set.contains(moving),
                };
            if !legitimate {
                count(&BAD_REFUSALS, 1);
            }
        }
    }
}

/// The CPUs of `set` that stay online throughout (all but the moving one), which an accepted
/// request must have run on. For `stop_cpus` (`queued_only`), a set of the moving CPU alone
/// is accepted only if its work was queued there, so then that CPU must have run it; a
/// `stop_machine` is accepted whoever takes part, so its moving CPU never must.
fn must_run(set: CpuSet, queued_only: bool) -> CpuSet {
    let moving = MOVING.load(Ordering::SeqCst);
    let mut m = set;
    if moving != NO_TARGET {
        m.remove(moving);
    }
    if m.is_empty() && queued_only { set } else { m }
}

// ---- Nowait works: one buffer per requesting CPU, whose function knows its slot ----

struct NowaitSlot {
    work: NowaitWork,
    /// Where it was last queued.
    target: AtomicUsize,
    /// When (ticks).
    queued_at: AtomicU64,
    accepted: AtomicU64,
    run: AtomicU64,
}

/// Runs on the target of slot `C`'s work.
fn nowait_run<const C: usize>() -> i32 {
    let s = &NOWAIT[C];
    let t = s.target.load(Ordering::SeqCst);
    let me = crate::cpu::id();
    if me != t || !alive(me) {
        count(&WRONG, 1);
    }
    let queued = Instant::from_ticks(s.queued_at.load(Ordering::SeqCst));
    let ns = queued.elapsed().as_nanos() as u64;
    KIND[Kind::Nowait as usize].max_latency_ns.fetch_max(ns, Ordering::SeqCst);
    count(&s.run, 1);
    0
}

macro_rules! nowait_slots {
    ($($c:literal)*) => {
        [$(NowaitSlot {
            work: NowaitWork::new("load nowait", &nowait_run::<$c>),
            target: AtomicUsize::new(0),
            queued_at: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            run: AtomicU64::new(0),
        }),*]
    };
}

static NOWAIT: [NowaitSlot; NOWAIT_CPUS] = nowait_slots!(
    0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31
    32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61
    62 63
);

/// Queues this CPU's nowait work on `t` if its buffer is free; `false` if it was not.
fn nowait_once(me: usize, t: usize) -> bool {
    let Some(s) = NOWAIT.get(me) else { return false };
    // Only this CPU queues its buffer, so a pending one is still queued (or running), and a
    // free one cannot become pending under us.
    if s.work.is_pending() {
        return false;
    }
    s.target.store(t, Ordering::SeqCst);
    s.queued_at.store(Instant::now().ticks(), Ordering::SeqCst);
    let c = &KIND[Kind::Nowait as usize];
    if STOPPERS.stop_one_cpu_nowait(t, &s.work) {
        count(&s.accepted, 1);
        count(&c.accepted, 1);
    } else {
        count(&c.refused, 1);
        let moving = MOVING.load(Ordering::SeqCst);
        if moving == NO_TARGET || t != moving {
            count(&BAD_REFUSALS, 1);
        }
    }
    true
}

/// Waits until no nowait work is queued; `false` if one still is after [`DRAIN_TIMEOUT`].
fn drain_nowaits() -> bool {
    wait_until(DRAIN_TIMEOUT, || NOWAIT.iter().all(|s| !s.work.is_pending()))
}

/// Books the nowait works: lost (accepted, never run) and run more often than accepted. Only
/// once no work is queued.
fn settle_nowaits() {
    let c = &KIND[Kind::Nowait as usize];
    let (mut run, mut lost) = (0, 0);
    for s in &NOWAIT {
        let a = s.accepted.swap(0, Ordering::SeqCst);
        let r = s.run.swap(0, Ordering::SeqCst);
        run += r.min(a);
        lost += a.saturating_sub(r);
        count(&WRONG, r.saturating_sub(a));
    }
    count(&c.run, run);
    count(&c.lost, lost);
}

// ---- Requests ----

/// A small xorshift generator: reproducible choices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

fn timed<R>(f: impl FnOnce() -> R) -> (R, u64) {
    let t0 = Instant::now();
    let r = f();
    (r, t0.elapsed().as_nanos() as u64)
}

/// One request of kind `k` from this CPU to `t` (and, for the multi-CPU kinds, `u`), checked.
fn request(k: Kind, t: usize, u: usize) {
    let me = crate::cpu::id();
    SENDERS[me].store(true, Ordering::Relaxed);
    let runs = Runs::new();
    match k {
        Kind::One => {
            let set = CpuSet::single(t);
            let (r, ns) = timed(|| {
                STOPPERS.stop_one_cpu(t, || {
                    runs.record(set);
                    0
                })
            });
            book(k, set, set, r, &runs, ns);
        }
        Kind::Nowait => {
            if !nowait_once(me, t) {
                // Its buffer is still queued (or this CPU has none): a waiting request instead.
                request(Kind::One, t, u);
            }
        }
        Kind::Two => {
            // `t` runs the function while `b` is held in its stopper.
            let b = if u == t { me } else { u };
            if b == t {
                return request(Kind::One, t, u);
            }
            let set = CpuSet::single(t);
            let (r, ns) = timed(|| {
                STOPPERS.stop_two_cpus(t, b, || {
                    if STOPPERS.running(b).is_none() {
                        count(&WRONG, 1); // the other CPU was not held
                    }
                    runs.record(set);
                    0
                })
            });
            // Both CPUs named (a refusal is legitimate if either is the moving one); only `t`
            // runs the function.
            book(k, set | CpuSet::single(b), set, r, &runs, ns);
        }
        Kind::Cpus => {
            let set = CpuSet::single(t) | CpuSet::single(u);
            let (r, ns) = timed(|| {
                STOPPERS.stop_cpus(set, || {
                    runs.record(set);
                    0
                })
            });
            book(k, set, must_run(set, true), r, &runs, ns);
        }
        Kind::Machine => {
            // Every enabled CPU stops; the function runs on those of the set that take part.
            let set = CpuSet::single(t) | CpuSet::single(u);
            let (r, ns) = timed(|| {
                STOPPERS.stop_machine(
                    || {
                        runs.record(set);
                        0
                    },
                    Some(set),
                )
            });
            book(k, set, must_run(set, false), r, &runs, ns);
        }
    }
}

/// A hammering CPU's posted call: requests until told to stop, every kind in turn.
fn hammer(seed: usize) -> usize {
    let me = crate::cpu::id();
    let n = cpu_count() as u64;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ (seed as u64).wrapping_mul(0x9e37_79b9));
    let soak = SOAK.load(Ordering::SeqCst);
    let mut i = seed;
    while !STOP.load(Ordering::SeqCst) {
        let moving = MOVING.load(Ordering::SeqCst);
        let k = KINDS[i % KINDS.len()];
        let (t, u) = if soak {
            (rng.below(n) as usize, rng.below(n) as usize)
        } else if k == Kind::Cpus && (i / KINDS.len()) % 2 == 0 {
            // Every other `stop_cpus` names the target alone: accepted means queued there, so
            // its run on the target is checked exactly.
            (moving, moving)
        } else {
            (moving, me)
        };
        request(k, t, u);
        i += 1;
    }
    0
}

/// The boot CPU's share of a soak, between cycles: one request of each kind, at random CPUs.
fn boot_cpu_round(rng: &mut Rng) {
    let n = cpu_count() as u64;
    for k in KINDS {
        let (t, u) = (rng.below(n) as usize, rng.below(n) as usize);
        if k == Kind::Two && n < 2 {
            continue; // needs two CPUs
        }
        let u = if k == Kind::Two && u == t { (t + 1) % n as usize } else { u };
        request(k, t, u);
    }
}

// ---- The run ----

fn reset() {
    for k in &KIND {
        k.reset();
    }
    WRONG.store(0, Ordering::SeqCst);
    BAD_REFUSALS.store(0, Ordering::SeqCst);
    for s in &SENDERS {
        s.store(false, Ordering::SeqCst);
    }
    for s in &NOWAIT {
        s.accepted.store(0, Ordering::SeqCst);
        s.run.store(0, Ordering::SeqCst);
    }
    MOVING.store(NO_TARGET, Ordering::SeqCst);
}

/// Fills `t` with the counters so far (`base`: the stopper's and hotplug's counters at start).
fn snapshot(t: &mut Totals, base: &Base, start: Instant) {
    t.elapsed = start.elapsed();
    for (i, k) in KIND.iter().enumerate() {
        t.kinds[i] = k.snapshot();
    }
    t.wrong = WRONG.load(Ordering::SeqCst);
    t.bad_refusals = BAD_REFUSALS.load(Ordering::SeqCst);
    t.senders = (0..cpu_count()).filter(|&c| SENDERS[c].load(Ordering::Relaxed)).collect();
    let (st, hs) = (STOPPERS.stats(), HOTPLUG.stats());
    t.park_with_works = st.park_with_works - base.park_with_works;
    t.watchdog_reports = st.watchdog_reports - base.watchdog_reports;
    t.bad_transitions = hs.bad_transitions - base.bad_transitions;
    t.downs = hs.downs - base.downs;
    t.ups = hs.ups - base.ups;
}

struct Base {
    park_with_works: u64,
    watchdog_reports: u64,
    bad_transitions: u64,
    downs: u64,
    ups: u64,
}

fn error(t: &mut Totals, args: fmt::Arguments<'_>) {
    t.errors += 1;
    if t.errors == 1 {
        let _ = t.first_error.write_fmt(args);
        crate::println!("armstop-load: error: {}", t.first_error.as_str());
    }
}

/// One hotplug cycle of `target` with the other secondaries hammering; `Err` ends the run.
fn cycle(t: &mut Totals, target: usize, seed: usize) -> Result<(), ()> {
    let n = cpu_count();
    MOVING.store(target, Ordering::SeqCst);
    STOP.store(false, Ordering::SeqCst);
    let mut hammers: [Option<smp::Pending>; NR_CPUS] = [const { None }; NR_CPUS];
    for (cpu, h) in hammers.iter_mut().enumerate().take(n).skip(1) {
        if cpu != target {
            match smp::post(cpu, hammer, seed.wrapping_add(cpu)) {
                Ok(p) => *h = Some(p),
                Err(e) => error(t, format_args!("posting the hammer to cpu{cpu}: {e}")),
            }
        }
    }
    let t0 = Instant::now();
    let mut result = match hotplug::cpu_down(target) {
        Ok(_) => Ok(()),
        Err(e) => {
            let c = t.cycles;
            error(t, format_args!("cycle {c}: cpu_down({target}): {e}"));
            Err(())
        }
    };
    if result.is_ok() {
        // The guarantee: every nowait work accepted for the target ran before it went off. A
        // buffer is also pending for the moment a refused attempt takes, so give that time; an
        // accepted work that was dropped or kept stays pending, as the target is off.
        for (cpu, s) in NOWAIT.iter().enumerate() {
            let gone = wait_until(Duration::from_secs(1), || {
                !s.work.is_pending() || s.target.load(Ordering::SeqCst) != target
            });
            if !gone {
                count(&WRONG, 1);
                crate::println!(
                    "armstop-load: cycle {}: cpu{cpu}'s nowait work still queued after cpu{target} went off",
                    t.cycles
                );
            }
        }
        match hotplug::cpu_up(target) {
            Ok(_) => {
                let ns = t0.elapsed().as_nanos() as u64;
                t.cycle_min_ns = if t.cycles == 0 { ns } else { t.cycle_min_ns.min(ns) };
                t.cycle_max_ns = t.cycle_max_ns.max(ns);
                t.cycle_sum_ns += ns;
                t.cycles += 1;
                t.targets[target] += 1;
            }
            Err(e) => {
                let c = t.cycles;
                error(t, format_args!("cycle {c}: cpu_up({target}): {e}"));
                result = Err(());
            }
        }
    }
    STOP.store(true, Ordering::SeqCst);
    for (cpu, h) in hammers.into_iter().enumerate() {
        if let Some(h) = h
            && let Err(e) = h.wait_timeout(JOIN_TIMEOUT)
        {
            error(t, format_args!("hammering cpu{cpu}: {e}"));
            result = Err(());
        }
    }
    MOVING.store(NO_TARGET, Ordering::SeqCst);
    result
}

fn run(what: &'static str, len: Length, progress: &mut dyn FnMut(&Progress)) -> Totals {
    let soak = what == "soak";
    let n = cpu_count();
    let mut t = Totals::new(what);
    reset();
    SOAK.store(soak, Ordering::SeqCst);
    let (st, hs) = (STOPPERS.stats(), HOTPLUG.stats());
    let base = Base {
        park_with_works: st.park_with_works,
        watchdog_reports: st.watchdog_reports,
        bad_transitions: hs.bad_transitions,
        downs: hs.downs,
        ups: hs.ups,
    };
    t.note = match (n, soak) {
        (1, false) => {
            Some("one CPU: no storm target (cpu0 is pinned) and no CPU to hammer; no cycles run")
        }
        (1, true) => Some(
            "one CPU: no storm target (cpu0 is pinned); cpu0 makes every request kind but stop_two_cpus on itself",
        ),
        (2, false) => Some(
            "two CPUs: cpu1 is the only target and no CPU is left to hammer it; cycles run unhammered",
        ),
        (2, true) => Some(
            "two CPUs: cpu1 is the only target and no CPU is left to hammer it; cpu0 makes every request kind between cycles",
        ),
        _ => None,
    };
    if let Some(note) = t.note {
        crate::println!("armstop-load: note: {note}");
    }
    let start = Instant::now();
    let mut last = Instant::now();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut round = 0usize;
    loop {
        let elapsed = start.elapsed();
        let done = match len {
            Length::Cycles(c) => t.cycles >= u64::from(c),
            Length::Seconds(s) => elapsed >= Duration::from_secs(s.into()),
        };
        // A storm on one CPU has nothing to do; neither has a count of cycles there.
        if done || (n == 1 && (!soak || matches!(len, Length::Cycles(_)))) {
            break;
        }
        if n >= 2 {
            let target = 1 + rng.below(n as u64 - 1) as usize;
            if cycle(&mut t, target, round).is_err() {
                break;
            }
            if drain_nowaits() {
                settle_nowaits();
            } else {
                // Booked at the end, once the rest has quiesced (it may yet run).
                crate::println!(
                    "armstop-load: cycle {}: an accepted nowait work has not run",
                    t.cycles
                );
            }
        }
        if soak {
            boot_cpu_round(&mut rng);
        }
        round += 1;
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            snapshot(&mut t, &base, start);
            progress(&Progress {
                elapsed: start.elapsed(),
                cycles: t.cycles,
                length: len,
                totals: &t,
            });
        }
    }
    // Quiesce: every CPU up (a failed cycle may have left the target down), every nowait work
    // run or given up on, then book them.
    STOP.store(true, Ordering::SeqCst);
    for cpu in 1..n {
        if !smp::is_online(cpu) && hotplug::cpu_up(cpu).is_err() {
            crate::println!(
                "armstop-load: cpu{cpu} is {} and could not be brought back",
                hotplug::state(cpu)
            );
        }
    }
    let _ = drain_nowaits();
    settle_nowaits();
    snapshot(&mut t, &base, start);
    t
}

/// Tells the hammering CPUs of a run that was cut short (the harness restarted the boot CPU
/// after a failure inside it) to return.
pub fn abandon() {
    STOP.store(true, Ordering::SeqCst);
}

/// The hotplug storm: random `cpu_down`/`cpu_up` cycles of a moving target (a secondary CPU)
/// while every other secondary CPU hammers it with every request kind; for `len` cycles or
/// seconds, calling `progress` every [`PROGRESS_EVERY`]. Boot CPU only (it is the controller).
///
/// On one CPU there is nothing to take down and nothing to hammer with, and on two nothing to
/// hammer with: the totals say so in their note. Stops at the first failed hotplug operation
/// (counted in `errors`).
pub fn storm(len: Length, progress: &mut dyn FnMut(&Progress)) -> Totals {
    assert_eq!(crate::cpu::id(), 0, "load::storm runs on the boot CPU");
    run("storm", len, progress)
}

/// The soak run: the storm for `secs` seconds, with every request kind from every CPU to
/// random CPUs (the boot CPU's between cycles), calling `progress` every [`PROGRESS_EVERY`].
/// Boot CPU only.
pub fn soak(secs: u32, progress: &mut dyn FnMut(&Progress)) -> Totals {
    assert_eq!(crate::cpu::id(), 0, "load::soak runs on the boot CPU");
    run("soak", Length::Seconds(secs), progress)
}
