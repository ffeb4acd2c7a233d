//! What `just run` shows: the SGI delivery matrix and the round-trip time of an SGI ping-pong.
//!
//! Also used by the on-target tests, which check the same numbers instead of printing them.

use core::sync::atomic::{AtomicU64, Ordering};
use core::time::Duration;

use armstop_boards::MAX_CPUS;

use crate::board::cpu_count;
use crate::gic::{self, SGI_TEST_FIRST, SgiTarget};
use crate::ipi::{self, Message};
use crate::println;
use crate::smp;
use crate::time::{Instant, wait_until};

/// SGIs each sender sends each receiver in the matrix.
pub const MATRIX_ROUNDS: u64 = 16;
/// How long one SGI may take to arrive before it counts as lost.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_millis(500);

/// `[sender][receiver]` SGIs delivered in the last matrix run, and the source CPUs the GIC
/// reported that disagreed with the sender (GICv2 only).
pub struct Matrix {
    /// Deliveries.
    pub delivered: [[u64; MAX_CPUS]; MAX_CPUS],
    /// Deliveries whose GIC-reported source was wrong.
    pub wrong_source: [[u64; MAX_CPUS]; MAX_CPUS],
}

static DELIVERED: [[AtomicU64; MAX_CPUS]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; MAX_CPUS] }; MAX_CPUS];
static WRONG_SOURCE: [[AtomicU64; MAX_CPUS]; MAX_CPUS] =
    [const { [const { AtomicU64::new(0) }; MAX_CPUS] }; MAX_CPUS];

const SGI_MATRIX: u8 = SGI_TEST_FIRST;

/// Sends [`MATRIX_ROUNDS`] SGIs from `sender` (the calling CPU) to each other online CPU, one
/// at a time, each waited for; counts deliveries. Runs on the sender.
fn send_row(_: usize) -> usize {
    let me = crate::cpu::id();
    for dst in 0..cpu_count() {
        if dst == me || !smp::is_online(dst) {
            continue;
        }
        for _ in 0..MATRIX_ROUNDS {
            let before = gic::sgi_count(dst, SGI_MATRIX);
            if gic::send_sgi(SGI_MATRIX, SgiTarget::Cpu(dst)).is_err() {
                break;
            }
            if !wait_until(DELIVERY_TIMEOUT, || gic::sgi_count(dst, SGI_MATRIX) > before) {
                continue; // lost: shows as a short count
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

/// Runs the matrix: every online CPU in turn sends to every other.
pub fn run_matrix() -> Matrix {
    for row in DELIVERED.iter().chain(WRONG_SOURCE.iter()) {
        for c in row {
            c.store(0, Ordering::Relaxed);
        }
    }
    for src in 0..cpu_count() {
        if smp::is_online(src)
            && let Err(e) = smp::run_on(src, send_row, 0)
        {
            log::error!("matrix row of cpu{src}: {e}");
        }
    }
    let mut m =
        Matrix { delivered: [[0; MAX_CPUS]; MAX_CPUS], wrong_source: [[0; MAX_CPUS]; MAX_CPUS] };
    for s in 0..MAX_CPUS {
        for d in 0..MAX_CPUS {
            m.delivered[s][d] = DELIVERED[s][d].load(Ordering::Relaxed);
            m.wrong_source[s][d] = WRONG_SOURCE[s][d].load(Ordering::Relaxed);
        }
    }
    m
}

/// Prints the matrix.
pub fn sgi_matrix() {
    let n = cpu_count();
    let m = run_matrix();
    println!(
        "SGI delivery matrix ({:?}, {MATRIX_ROUNDS} SGIs per pair; rows send, columns receive):",
        gic::version()
    );
    let mut header = crate::console::LineBuf::<128>::new();
    let _ = core::fmt::Write::write_str(&mut header, "          ");
    for d in 0..n {
        let _ = core::fmt::write(&mut header, format_args!("  cpu{d}"));
    }
    println!("{}", header.as_str());
    let mut full = true;
    for s in 0..n {
        let mut line = crate::console::LineBuf::<128>::new();
        let _ = core::fmt::write(&mut line, format_args!("    cpu{s} "));
        for d in 0..n {
            if s == d {
                let _ = core::fmt::write(&mut line, format_args!("{:>6}", "-"));
            } else {
                full &= m.delivered[s][d] == MATRIX_ROUNDS && m.wrong_source[s][d] == 0;
                let _ = core::fmt::write(&mut line, format_args!("{:>6}", m.delivered[s][d]));
            }
        }
        println!("{}", line.as_str());
    }
    println!(
        "SGI matrix: {}",
        if full { "complete (every pair delivered every SGI)" } else { "INCOMPLETE" }
    );
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

/// Prints the ping-pong round trip to every other online CPU.
pub fn ping_pong() {
    const ROUNDS: u32 = 1000;
    for cpu in 1..cpu_count() {
        if !smp::is_online(cpu) {
            continue;
        }
        match ping_pong_round_trip(cpu, ROUNDS) {
            Some((best, mean)) => println!(
                "SGI ping-pong cpu0 <-> cpu{cpu}: best {} ns, mean {} ns over {ROUNDS} round trips",
                best.as_nanos(),
                mean.as_nanos()
            ),
            None => println!(
                "SGI ping-pong cpu0 <-> cpu{cpu}: LOST (no answer within {} ms)",
                DELIVERY_TIMEOUT.as_millis()
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

/// Shows the stopper at work: `stop_one_cpu` on each CPU, `stop_two_cpus` on each pair and a
/// `stop_machine` across all CPUs, each checked and timed.
pub fn stopper() {
    use crate::stop::STOPPERS;
    const N: u32 = 200;
    let n = cpu_count();
    println!(
        "Stopper ({} stoppers enabled, mask {:#x}):",
        STOPPERS.enabled_mask().count_ones(),
        STOPPERS.enabled_mask()
    );
    for cpu in 0..n {
        let l = measure(N, || {
            let r = STOPPERS.stop_one_cpu(cpu, || crate::cpu::id() as i32);
            assert_eq!(r, Ok(cpu as i32), "stop_one_cpu({cpu}) ran elsewhere or failed");
        });
        print_latency(alloc_free_label("stop_one_cpu", cpu, None).as_str(), &l);
    }
    for a in 0..n {
        for b in (a + 1)..n {
            let l = measure(N, || {
                let r = STOPPERS.stop_two_cpus(a, b, || crate::cpu::id() as i32);
                assert_eq!(r, Ok(a as i32), "stop_two_cpus({a},{b}) ran f off cpu{a}");
            });
            print_latency(alloc_free_label("stop_two_cpus", a, Some(b)).as_str(), &l);
        }
    }
    let ran = AtomicU64::new(0);
    let l = measure(N, || {
        let r = STOPPERS.stop_machine(
            || {
                ran.fetch_add(1 << (8 * crate::cpu::id()), Ordering::Relaxed);
                0
            },
            Some(STOPPERS.enabled_mask()),
        );
        assert_eq!(r, Ok(0));
    });
    print_latency("stop_machine (all CPUs run f)", &l);
    let per_cpu = ran.load(Ordering::Relaxed);
    let counts: [u64; 4] = core::array::from_fn(|c| (per_cpu >> (8 * c)) & 0xff);
    println!("  stop_machine callbacks per CPU (mod 256): {counts:?}; expected {} each", N % 256);
    let st = STOPPERS.stats();
    println!(
        "  stopper totals: park-with-works bugs {}, stop_cpus_in_progress back-offs {}, watchdog reports {}",
        st.park_with_works, st.in_progress_retries, st.watchdog_reports
    );
}

fn alloc_free_label(what: &str, a: usize, b: Option<usize>) -> crate::console::LineBuf<40> {
    let mut l = crate::console::LineBuf::new();
    let _ = match b {
        Some(b) => core::fmt::write(&mut l, format_args!("{what}({a},{b})")),
        None => core::fmt::write(&mut l, format_args!("{what}({a})")),
    };
    l
}

/// Shows CPU hotplug: each secondary CPU is taken down and brought back a few times, with the
/// time of each step, while the stopper keeps serving the CPUs that are up (every online CPU
/// runs a `stop_one_cpu`, and a `stop_machine` runs across them) and refuses the one that is
/// down.
pub fn hotplug() {
    use crate::hotplug::{self, HOTPLUG};
    use crate::stop::{STOPPERS, StopError};
    const ROUNDS: usize = 3;
    let n = cpu_count();
    println!("CPU hotplug (stop_machine(take_cpu_down), flush, park, PSCI CPU_OFF; CPU_ON back):");
    for round in 0..ROUNDS {
        for cpu in 1..n {
            let down = match hotplug::cpu_down(cpu) {
                Ok(t) => t,
                Err(e) => {
                    println!("  cpu_down({cpu}) FAILED: {e}");
                    continue;
                }
            };
            let online = HOTPLUG.online_mask();
            // The stopper on the CPUs that are up, and the refusal for the one that is not.
            let mut served = 0;
            for c in (0..n).filter(|&c| online & (1 << c) != 0) {
                if STOPPERS.stop_one_cpu(c, || crate::cpu::id() as i32) == Ok(c as i32) {
                    served += 1;
                }
            }
            let machine = AtomicU64::new(0);
            let r = STOPPERS.stop_machine(
                || {
                    machine.fetch_or(1 << crate::cpu::id(), Ordering::Relaxed);
                    0
                },
                Some((1 << n) - 1),
            );
            let refused = STOPPERS.stop_one_cpu(cpu, || 0) == Err(StopError::NoEnt);
            println!(
                "  round {round}: cpu_down({cpu}) in {} us (stop_machine {}, flush+park {}, until OFF {})",
                down.total_ns() / 1000,
                down.stop_ns / 1000,
                down.dead_ns / 1000,
                down.off_ns / 1000,
            );
            println!(
                "    online {online:#06b}: stop_one_cpu served {served}/{}, stop_machine ran on {:#06b}{}, stop_one_cpu({cpu}) {}",
                online.count_ones(),
                machine.load(Ordering::Relaxed),
                if r == Ok(0) { "" } else { " (FAILED)" },
                if refused { "refused (NoEnt)" } else { "NOT REFUSED" },
            );
            match hotplug::cpu_up(cpu) {
                Ok(t) => println!(
                    "    cpu_up({cpu}) in {} us (CPU_ON {}, until online {})",
                    t.total_ns() / 1000,
                    t.on_ns / 1000,
                    t.online_ns / 1000
                ),
                Err(e) => println!("    cpu_up({cpu}) FAILED: {e}"),
            }
        }
    }
    let hs = HOTPLUG.stats();
    let ss = STOPPERS.stats();
    println!(
        "  hotplug totals: {} downs, {} ups, online {:#06b}; park-with-works bugs {}, bad transitions {}",
        hs.downs,
        hs.ups,
        HOTPLUG.online_mask(),
        ss.park_with_works,
        hs.bad_transitions
    );
}
