//! What `just run` shows: the SGI delivery matrix, the round-trip time of an SGI ping-pong, the
//! stopper and hotplug, on however many CPUs the machine has.
//!
//! Also used by the on-target tests, which check the same numbers instead of printing them.
//! Nothing here asserts on the machine's shape: a check that fails is printed as `FAILED` and
//! counted ([`failures`]), and the main image ends with a non-zero status if any did. Where a
//! section would grow with the square of the CPU count (the matrix, `stop_two_cpus` on every
//! pair), it shrinks its rounds or samples its pairs on large machines, and says so.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use armstop_stopper::CpuSet;

use crate::board::{NR_CPUS, cpu_count};
use crate::gic::{self, SGI_TEST_FIRST, SgiTarget};
use crate::ipi::{self, Message};
use crate::println;
use crate::smp;
use crate::time::{Instant, wait_until};

/// SGIs each sender sends each receiver in the matrix, on machines of up to 8 CPUs.
pub const MATRIX_ROUNDS: u64 = 16;
/// How long one SGI may take to arrive before it counts as lost. This is no speed target (the
/// report prints the slowest delivery as a figure): a lost SGI never arrives, so the limit
/// only has to outlast a slow one, and under TCG on an overcommitted host a receiving vCPU can
/// wait seconds for a host CPU (with 500 ms, then 2 s, runs beside other QEMUs on a 2-CPU
/// host came out one pair short). A pair that loses one is not sent the rest of its rounds.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Up to this many CPUs the report prints whole matrices and every pair; above, summaries.
pub const FULL_REPORT_CPUS: usize = 8;

static FAILURES: AtomicU32 = AtomicU32::new(0);

/// Checks of the report that failed so far.
pub fn failures() -> u32 {
    FAILURES.load(Ordering::Relaxed)
}

fn failed() -> &'static str {
    FAILURES.fetch_add(1, Ordering::Relaxed);
    "FAILED"
}

/// SGIs per pair in the matrix on a machine of `n` CPUs: [`MATRIX_ROUNDS`] up to 8 CPUs, then
/// fewer, so the whole matrix stays about 1000 SGIs per CPU (at least one per pair).
pub fn matrix_rounds(n: usize) -> u64 {
    if n <= FULL_REPORT_CPUS { MATRIX_ROUNDS } else { (1024 / n as u64).clamp(1, MATRIX_ROUNDS) }
}

/// `[sender][receiver]` SGIs delivered in the last matrix run, and the source CPUs the GIC
/// reported that disagreed with the sender (GICv2 only). A view of the counters
/// [`run_matrix`] fills.
pub struct Matrix {
    /// SGIs each pair was sent.
    pub rounds: u64,
}

impl Matrix {
    /// SGIs from `s` that `d` took.
    pub fn delivered(&self, s: usize, d: usize) -> u64 {
        DELIVERED[s][d].load(Ordering::Relaxed)
    }

    /// Deliveries from `s` to `d` whose GIC-reported source was wrong.
    pub fn wrong_source(&self, s: usize, d: usize) -> u64 {
        WRONG_SOURCE[s][d].load(Ordering::Relaxed)
    }

    /// The slowest delivery, and its sender and receiver.
    pub fn slowest(&self) -> (Duration, usize, usize) {
        let pair = SLOWEST_PAIR.load(Ordering::Relaxed);
        let ns = SLOWEST_NS.load(Ordering::Relaxed);
        (Duration::from_nanos(ns), (pair >> 16) as usize, (pair & 0xffff) as usize)
    }

    /// Whether `s` to `d` delivered every SGI with the right source.
    pub fn complete(&self, s: usize, d: usize) -> bool {
        self.delivered(s, d) == self.rounds && self.wrong_source(s, d) == 0
    }
}

/// The slowest delivery of the last matrix run, in ns, and its pair (`sender << 16 | receiver`).
static SLOWEST_NS: AtomicU64 = AtomicU64::new(0);
static SLOWEST_PAIR: AtomicU64 = AtomicU64::new(0);

static DELIVERED: [[AtomicU64; NR_CPUS]; NR_CPUS] =
    [const { [const { AtomicU64::new(0) }; NR_CPUS] }; NR_CPUS];
static WRONG_SOURCE: [[AtomicU64; NR_CPUS]; NR_CPUS] =
    [const { [const { AtomicU64::new(0) }; NR_CPUS] }; NR_CPUS];

const SGI_MATRIX: u8 = SGI_TEST_FIRST;

/// Sends `rounds` SGIs from the calling CPU to each other online CPU, one at a time, each
/// waited for; counts deliveries.
fn send_row(rounds: usize) -> usize {
    let me = crate::cpu::id();
    for dst in 0..cpu_count() {
        if dst == me || !smp::is_online(dst) {
            continue;
        }
        for _ in 0..rounds {
            let before = gic::sgi_count(dst, SGI_MATRIX);
            let t0 = Instant::now();
            if gic::send_sgi(SGI_MATRIX, SgiTarget::Cpu(dst)).is_err() {
                break;
            }
            if !wait_until(DELIVERY_TIMEOUT, || gic::sgi_count(dst, SGI_MATRIX) > before) {
                break; // lost: shows as a short count
            }
            let ns = t0.elapsed().as_nanos() as u64;
            if SLOWEST_NS.fetch_max(ns, Ordering::Relaxed) < ns {
                SLOWEST_PAIR.store(((me as u64) << 16) | dst as u64, Ordering::Relaxed);
            }
            DELIVERED[me][dst].fetch_add(1, Ordering::Relaxed);
            if gic::version() == gic::Version::V2
                && gic::sgi_last_source(dst, SGI_MATRIX) != Some(me)
            {
                WRONG_SOURCE[me][dst].fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    0
}

/// Runs the matrix: every online CPU in turn sends [`matrix_rounds`] SGIs to every other.
pub fn run_matrix() -> Matrix {
    for row in DELIVERED.iter().chain(WRONG_SOURCE.iter()) {
        for c in row {
            c.store(0, Ordering::Relaxed);
        }
    }
    SLOWEST_NS.store(0, Ordering::Relaxed);
    let rounds = matrix_rounds(cpu_count());
    // A row that loses an SGI to every receiver waits for each: its caller must outwait that,
    // or the next row would start beside it.
    let row_limit = DELIVERY_TIMEOUT * cpu_count() as u32 + crate::call::CALL_TIMEOUT;
    for src in 0..cpu_count() {
        if smp::is_online(src)
            && let Err(e) = crate::call::post(src, send_row, rounds as usize)
                .and_then(|p| p.wait_timeout(row_limit))
        {
            log::error!("matrix row of cpu{src}: {e}");
        }
    }
    Matrix { rounds }
}

/// Prints the matrix: whole up to [`FULL_REPORT_CPUS`], else the senders whose every SGI
/// arrived, and each pair that lost one.
pub fn sgi_matrix() {
    let n = cpu_count();
    let m = run_matrix();
    let online = smp::online_mask();
    println!(
        "SGI delivery matrix ({:?}, {} SGIs per pair of the {} online CPUs; rows send, columns receive):",
        gic::version(),
        m.rounds,
        online.len()
    );
    let pairs = || {
        online.iter().flat_map(move |s| online.iter().filter(move |&d| d != s).map(move |d| (s, d)))
    };
    if n <= FULL_REPORT_CPUS {
        let mut header = crate::console::LineBuf::<128>::new();
        let _ = core::fmt::Write::write_str(&mut header, "          ");
        for d in 0..n {
            let _ = core::fmt::write(&mut header, format_args!("  cpu{d}"));
        }
        println!("{}", header.as_str());
        for s in 0..n {
            let mut line = crate::console::LineBuf::<128>::new();
            let _ = core::fmt::write(&mut line, format_args!("    cpu{s} "));
            for d in 0..n {
                if s == d {
                    let _ = core::fmt::write(&mut line, format_args!("{:>6}", "-"));
                } else {
                    let _ = core::fmt::write(&mut line, format_args!("{:>6}", m.delivered(s, d)));
                }
            }
            println!("{}", line.as_str());
        }
    } else {
        let complete: CpuSet =
            online.iter().filter(|&s| pairs().all(|(a, d)| a != s || m.complete(s, d))).collect();
        println!("  senders whose every SGI arrived: {complete}");
        for (s, d) in pairs().filter(|&(s, d)| !m.complete(s, d)).take(16) {
            println!(
                "  cpu{s} -> cpu{d}: {} of {} delivered, {} with a wrong source",
                m.delivered(s, d),
                m.rounds,
                m.wrong_source(s, d)
            );
        }
    }
    let (slowest, s, d) = m.slowest();
    println!(
        "  slowest delivery: {} us (cpu{s} -> cpu{d}); an SGI not taken within {} s counts as lost",
        slowest.as_micros(),
        DELIVERY_TIMEOUT.as_secs()
    );
    let lost = pairs().filter(|&(s, d)| !m.complete(s, d)).count();
    if lost == 0 {
        println!("SGI matrix: complete (every pair delivered every SGI)");
    } else {
        println!("SGI matrix: INCOMPLETE on {lost} pairs {}", failed());
    }
}

/// Round trips of a ping (boot CPU → `cpu`) answered by a pong, `rounds` times; returns the
/// fastest and the mean, or `None` if an answer did not come.
pub fn ping_pong_round_trip(cpu: usize, rounds: u32) -> Option<(Duration, Duration)> {
    let me = crate::cpu::id();
    let mut best = Duration::MAX;
    let mut total = Duration::ZERO;
    for _ in 0..rounds {
        let before = ipi::handled(cpu, me, Message::Pong);
        let t0 = Instant::now();
        ipi::send(cpu, Message::Ping).ok()?;
        if !wait_until(DELIVERY_TIMEOUT, || ipi::handled(cpu, me, Message::Pong) > before) {
            return None;
        }
        let t = t0.elapsed();
        best = best.min(t);
        total += t;
    }
    Some((best, total / rounds.max(1)))
}

/// Prints the ping-pong round trip to every other online CPU (1000 round trips each up to
/// [`FULL_REPORT_CPUS`] CPUs, fewer on larger machines).
pub fn ping_pong() {
    let n = cpu_count();
    let rounds: u32 = if n <= FULL_REPORT_CPUS { 1000 } else { (8000 / n as u32).max(50) };
    for cpu in 1..n {
        if !smp::is_online(cpu) {
            continue;
        }
        match ping_pong_round_trip(cpu, rounds) {
            Some((best, mean)) => println!(
                "SGI ping-pong cpu0 <-> cpu{cpu}: best {} ns, mean {} ns over {rounds} round trips",
                best.as_nanos(),
                mean.as_nanos()
            ),
            None => println!(
                "SGI ping-pong cpu0 <-> cpu{cpu}: LOST (no answer within {} s) {}",
                DELIVERY_TIMEOUT.as_secs(),
                failed()
            ),
        }
    }
}

/// Latency figures of one request kind: fastest, mean and slowest of `n` requests.
pub struct Latency {
    /// Requests made.
    pub n: u32,
    /// Fastest.
    pub best: Duration,
    /// Mean.
    pub mean: Duration,
    /// Slowest.
    pub worst: Duration,
}

fn measure(n: u32, mut f: impl FnMut()) -> Latency {
    let (mut best, mut worst, mut total) = (Duration::MAX, Duration::ZERO, Duration::ZERO);
    for _ in 0..n {
        let t0 = Instant::now();
        f();
        let t = t0.elapsed();
        best = best.min(t);
        worst = worst.max(t);
        total += t;
    }
    Latency { n, best, mean: total / n.max(1), worst }
}

fn print_latency(what: &str, l: &Latency) {
    println!(
        "  {what:<28} {:>6} requests: best {:>7} ns, mean {:>7} ns, worst {:>8} ns",
        l.n,
        l.best.as_nanos(),
        l.mean.as_nanos(),
        l.worst.as_nanos()
    );
}

/// Shows the stopper at work: `stop_one_cpu` on each CPU, `stop_two_cpus` on each pair (on
/// large machines, on the ring of pairs `(a, a+1)`) and a `stop_machine` across all CPUs, each
/// checked and timed.
pub fn stopper() {
    use crate::stop::STOPPERS;
    let n = cpu_count();
    let enabled = STOPPERS.enabled_mask();
    // Fewer requests per figure on large machines: each one costs more there, and there are
    // more figures.
    let reqs: u32 = if n <= FULL_REPORT_CPUS { 200 } else { 20 };
    println!("Stopper ({} stoppers enabled: CPUs {enabled}):", enabled.len());
    let mut wrong = 0u32;
    for cpu in enabled {
        let l = measure(reqs, || {
            if STOPPERS.stop_one_cpu(cpu, || crate::cpu::id() as i32) != Ok(cpu as i32) {
                wrong += 1;
            }
        });
        print_latency(alloc_free_label("stop_one_cpu", cpu, None).as_str(), &l);
    }
    let all_pairs = n <= FULL_REPORT_CPUS;
    if !all_pairs {
        println!("  stop_two_cpus on the ring of {} pairs (a, a+1) of the enabled CPUs:", n);
    }
    let cpus: [usize; NR_CPUS] = {
        let mut t = [0; NR_CPUS];
        for (i, c) in enabled.iter().enumerate() {
            t[i] = c;
        }
        t
    };
    let cpus = &cpus[..enabled.len()];
    for (i, &a) in cpus.iter().enumerate() {
        let partners = if all_pairs { &cpus[i + 1..] } else { &cpus[(i + 1) % cpus.len()..][..1] };
        for &b in partners.iter().filter(|&&b| b != a) {
            let l = measure(reqs, || {
                if STOPPERS.stop_two_cpus(a, b, || crate::cpu::id() as i32) != Ok(a as i32) {
                    wrong += 1;
                }
            });
            print_latency(alloc_free_label("stop_two_cpus", a, Some(b)).as_str(), &l);
        }
    }
    if wrong != 0 {
        println!(
            "  {wrong} stop_one_cpu/stop_two_cpus requests ran elsewhere or failed {}",
            failed()
        );
    }
    for c in &RAN {
        c.store(0, Ordering::Relaxed);
    }
    let mut bad = 0;
    let l = measure(reqs, || {
        let r = STOPPERS.stop_machine(
            || {
                RAN[crate::cpu::id()].fetch_add(1, Ordering::Relaxed);
                0
            },
            Some(enabled),
        );
        if r != Ok(0) {
            bad += 1;
        }
    });
    print_latency("stop_machine (all CPUs run f)", &l);
    let short: CpuSet =
        enabled.iter().filter(|&c| RAN[c].load(Ordering::Relaxed) != reqs).collect();
    if bad == 0 && short.is_empty() {
        println!("  stop_machine callbacks: {reqs} on each of CPUs {enabled}, as expected");
    } else {
        println!(
            "  stop_machine: {bad} requests failed; CPUs {short} did not run f {reqs} times {}",
            failed()
        );
    }
    let st = STOPPERS.stats();
    println!(
        "  stopper totals: park-with-works bugs {}, stop_cpus_in_progress back-offs {}, watchdog reports {}",
        st.park_with_works, st.in_progress_retries, st.watchdog_reports
    );
    if st.park_with_works != 0 {
        println!("  a stopper parked with works queued {}", failed());
    }
}

/// Callbacks each CPU ran in the last `stop_machine` figure.
static RAN: [AtomicU32; NR_CPUS] = [const { AtomicU32::new(0) }; NR_CPUS];

fn alloc_free_label(what: &str, a: usize, b: Option<usize>) -> crate::console::LineBuf<40> {
    let mut l = crate::console::LineBuf::new();
    let _ = match b {
        Some(b) => core::fmt::write(&mut l, format_args!("{what}({a},{b})")),
        None => core::fmt::write(&mut l, format_args!("{what}({a})")),
    };
    l
}

/// Shows CPU hotplug: each secondary CPU is taken down and brought back (three times each on
/// machines of up to 4 CPUs, once on larger ones), with the time of each step, while the
/// stopper keeps serving the CPUs that are up (every online CPU runs a `stop_one_cpu`, and a
/// `stop_machine` runs across them) and refuses the one that is down.
pub fn hotplug() {
    use crate::hotplug::{self, HOTPLUG};
    use crate::stop::{STOPPERS, StopError};
    let n = cpu_count();
    let rounds = if n <= 4 { 3 } else { 1 };
    println!("CPU hotplug (stop_machine(take_cpu_down), flush, park, PSCI CPU_OFF; CPU_ON back):");
    if n == 1 {
        println!("  one CPU: nothing to take down (the boot CPU is pinned)");
    }
    for round in 0..rounds {
        for cpu in 1..n {
            let down = match hotplug::cpu_down(cpu) {
                Ok(t) => t,
                Err(e) => {
                    println!("  cpu_down({cpu}) {}: {e}", failed());
                    continue;
                }
            };
            let online = HOTPLUG.online_mask();
            // The stopper on the CPUs that are up, and the refusal for the one that is not.
            let served = online
                .iter()
                .filter(|&c| STOPPERS.stop_one_cpu(c, || crate::cpu::id() as i32) == Ok(c as i32))
                .count();
            for c in &RAN {
                c.store(0, Ordering::Relaxed);
            }
            let r = STOPPERS.stop_machine(
                || {
                    RAN[crate::cpu::id()].fetch_add(1, Ordering::Relaxed);
                    0
                },
                Some(crate::board::all_cpus()),
            );
            let ran: CpuSet = (0..n).filter(|&c| RAN[c].load(Ordering::Relaxed) != 0).collect();
            let refused = STOPPERS.stop_one_cpu(cpu, || 0) == Err(StopError::NoEnt);
            let ok = served == online.len() && r == Ok(0) && ran == online && refused;
            println!(
                "  round {round}: cpu_down({cpu}) in {} us (stop_machine {}, flush+park {}, until OFF {})",
                down.total_ns() / 1000,
                down.stop_ns / 1000,
                down.dead_ns / 1000,
                down.off_ns / 1000,
            );
            println!(
                "    online {online}: stop_one_cpu served {served}/{}, stop_machine ran on {ran}{}, stop_one_cpu({cpu}) {}{}",
                online.len(),
                if r == Ok(0) { "" } else { " (FAILED)" },
                if refused { "refused (NoEnt)" } else { "NOT REFUSED" },
                if ok { "" } else { " FAILED" },
            );
            if !ok {
                failed();
            }
            match hotplug::cpu_up(cpu) {
                Ok(t) => println!(
                    "    cpu_up({cpu}) in {} us (CPU_ON {}, until online {})",
                    t.total_ns() / 1000,
                    t.on_ns / 1000,
                    t.online_ns / 1000
                ),
                Err(e) => println!("    cpu_up({cpu}) {}: {e}", failed()),
            }
        }
    }
    let hs = HOTPLUG.stats();
    let ss = STOPPERS.stats();
    println!(
        "  hotplug totals: {} downs, {} ups, online {}; park-with-works bugs {}, bad transitions {}",
        hs.downs,
        hs.ups,
        HOTPLUG.online_mask(),
        ss.park_with_works,
        hs.bad_transitions
    );
}
