//! The benchmark image's work (`just bench`): every stop request kind, timed many times with
//! the generic counter, beside the floors it cannot beat, in both wait modes.
//!
//! Floors, timed by the boot CPU spinning (no stopper involved): an SGI ping-pong with one
//! CPU; one broadcast SGI that every other CPU acknowledges with a memory write from its
//! handler; and raw PSCI: CPU_ON until the started core runs (a stub of a few instructions,
//! entered with the MMU off, writes a flag and calls CPU_OFF itself), and CPU_OFF until
//! AFFINITY_INFO says OFF. Requests: `stop_one_cpu` local and remote, `stop_one_cpu_nowait`
//! throughput, `stop_two_cpus` (with and without the requester), `stop_cpus`, `stop_machine`
//! on every CPU count from 2 up (CPUs taken down by hotplug to get there), `cpu_down` (and its
//! `stop_machine` step), `cpu_up` and the full cycle. Each request kind runs with spin-only
//! waits ([`SPIN_ONLY`]), with the default spin-then-sleep waits, and with waits that sleep at
//! once, side by side.
//!
//! Output, one line per figure, for `armstop-bench` on the host to parse (all times in ns):
//! `armstop-bench: figure kind=K mode=M cpus=C n=N min=.. median=.. p99=.. max=.. mean=..`,
//! framed by a `begin` line (the machine's shape and the parameters) and an `end` line. A
//! request that fails ends the run with an `error` line and exit status 1: a figure is only
//! printed for requests that all did what they should.
//!
//! Parameters come from the semihosting command line (`-append "iters=N"`) where the board
//! exits through semihosting (QEMU `virt`); elsewhere (the Pi) the defaults hold.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use armstop_boards::ExitMethod;
use armstop_stopper::{CpuSet, DEFAULT_SPIN_NS, SPIN_ONLY};

use crate::board::{BOARD, NR_CPUS, cpu_count};
use crate::hotplug::{self, HOTPLUG};
use crate::ipi::{self, Message};
use crate::stop::{NowaitWork, STOPPERS};
use crate::time::{Instant, wait_until};
use crate::{println, psci};

/// Samples one figure may hold; more iterations are cut to this.
pub const MAX_SAMPLES: usize = 1024;
/// Iterations per figure when nothing else is asked for.
pub const DEFAULT_ITERS: u32 = 300;
/// How long one floor operation (an SGI, a PSCI step) may take before the run fails.
const FLOOR_TIMEOUT: Duration = Duration::from_secs(2);
/// Works per `stop_one_cpu_nowait` throughput sample.
const NOWAIT_BATCH: u32 = 16;

/// The wait modes compared: name and spin budget. `sleep` is what ships (the default
/// budget); `sleep0` sleeps as soon as a wait finds nothing to do.
pub const MODES: [(&str, u64); 3] =
    [("spin", SPIN_ONLY), ("sleep", DEFAULT_SPIN_NS), ("sleep0", 0)];

/// What a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// Iterations per figure (1..=[`MAX_SAMPLES`]).
    pub iters: u32,
}

impl Params {
    /// Parses `iters=N` out of a command line; other words are refused, so that a typo is
    /// not silently a default.
    pub fn parse(cmdline: &str) -> Result<Self, &str> {
        let mut p = Params { iters: DEFAULT_ITERS };
        // QEMU puts the image's path first.
        for word in cmdline.split_ascii_whitespace().filter(|w| w.contains('=')) {
            match word.split_once('=') {
                Some(("iters", v)) => match v.parse::<u32>() {
                    Ok(n) if (1..=MAX_SAMPLES as u32).contains(&n) => p.iters = n,
                    _ => return Err(word),
                },
                _ => return Err(word),
            }
        }
        Ok(p)
    }
}

/// The samples of up to four figures measured together (a hotplug cycle gives four).
static SAMPLES: spin::Mutex<[[u64; MAX_SAMPLES]; 4]> = spin::Mutex::new([[0; MAX_SAMPLES]; 4]);

/// Ends the run: a request did not do what it should.
fn fail(args: core::fmt::Arguments<'_>) -> ! {
    println!("armstop-bench: error {args}");
    crate::power::exit(1)
}

fn ns(d: Duration) -> u64 {
    d.as_nanos() as u64
}

fn timed(f: impl FnOnce()) -> u64 {
    let t0 = Instant::now();
    f();
    ns(t0.elapsed())
}

/// Sorts `s` and prints it as figure `kind`.
fn report(kind: &str, mode: &str, s: &mut [u64]) {
    if s.is_empty() {
        return;
    }
    s.sort_unstable();
    let n = s.len();
    let pct = |p: usize| s[((n - 1) * p).div_ceil(100)];
    let mean = s.iter().sum::<u64>() / n as u64;
    println!(
        "armstop-bench: figure kind={kind} mode={mode} cpus={} n={n} min={} median={} p99={} max={} mean={mean}",
        STOPPERS.enabled_mask().len(),
        s[0],
        pct(50),
        pct(99),
        s[n - 1],
    );
}

/// Runs `one` `iters` times and reports what it returns as figure `kind`.
fn figure(kind: &str, mode: &str, iters: u32, mut one: impl FnMut() -> u64) {
    let mut buf = SAMPLES.lock();
    let n = (iters as usize).min(MAX_SAMPLES);
    for i in 0..n {
        buf[0][i] = one();
    }
    report(kind, mode, &mut buf[0][..n]);
}

fn skipped(kind: &str, why: &str) {
    println!("armstop-bench: skipped kind={kind} reason={why}");
}

/// The semihosting command line, where the board has semihosting.
fn cmdline(buf: &mut [u8]) -> Option<&str> {
    if BOARD.exit != ExitMethod::Semihosting {
        return None;
    }
    // SYS_GET_CMDLINE (0x15): x1 points at { buffer, length }; the host fills the buffer and
    // sets the length, and returns 0 in x0.
    let mut block = [buf.as_mut_ptr() as u64, buf.len() as u64];
    let ret: u64;
    // SAFETY: the semihosting call writes at most `block[1]` bytes into `buf` and the new
    // length into `block[1]`; both outlive the call. Only on boards that exit through
    // semihosting, where the emulator traps `hlt #0xf000`.
    unsafe {
        core::arch::asm!("hlt #0xf000", inout("x0") 0x15u64 => ret, in("x1") block.as_mut_ptr(),
            options(nostack))
    };
    if ret != 0 {
        return None;
    }
    let len = (block[1] as usize).min(buf.len());
    core::str::from_utf8(&buf[..len]).ok()
}

/// The benchmark image's main: measures everything, prints it, and powers off.
pub fn run() -> ! {
    let boot_ns = ns(Instant::now().since_boot());
    let mut line = [0u8; 256];
    let params = match cmdline(&mut line).map(Params::parse) {
        None => Params { iters: DEFAULT_ITERS },
        Some(Ok(p)) => p,
        Some(Err(word)) => fail(format_args!(
            "bad parameter {word:?}: the command line takes iters=N, N from 1 to {MAX_SAMPLES}"
        )),
    };
    let n = cpu_count();
    let online = HOTPLUG.online_mask();
    if online != crate::board::all_cpus() {
        fail(format_args!("only CPUs {online} of {n} came up"));
    }
    println!(
        "armstop-bench: begin board={} cpus={n} gic={:?} psci={:?} timer_hz={} iters={} spin_ns={}",
        BOARD.name,
        crate::gic::version(),
        psci::conduit(),
        crate::time::frequency(),
        params.iters,
        DEFAULT_SPIN_NS
    );
    // From the counter's start (the machine's) to main, which runs once every CPU is online.
    println!(
        "armstop-bench: figure kind=boot_to_all_online mode=floor cpus={n} n=1 min={boot_ns} median={boot_ns} p99={boot_ns} max={boot_ns} mean={boot_ns}"
    );
    floors(params.iters);
    for (mode, spin) in MODES {
        STOPPERS.set_spin_ns(spin);
        let before = STOPPERS.stats();
        requests(mode, params.iters);
        let after = STOPPERS.stats();
        println!(
            "armstop-bench: counters mode={mode} sleeps={} wakes={} back_offs={} watchdog_reports={}",
            after.sleeps - before.sleeps,
            after.wakes - before.wakes,
            after.in_progress_retries - before.in_progress_retries,
            after.watchdog_reports - before.watchdog_reports,
        );
    }
    STOPPERS.set_spin_ns(DEFAULT_SPIN_NS);
    let st = STOPPERS.stats();
    let hs = HOTPLUG.stats();
    if st.park_with_works != 0 || hs.bad_transitions != 0 {
        fail(format_args!(
            "park-with-works bugs {}, bad hotplug transitions {}",
            st.park_with_works, hs.bad_transitions
        ));
    }
    println!("armstop-bench: end");
    crate::power::exit(0)
}

fn floors(iters: u32) {
    let n = cpu_count();
    if n < 2 {
        for k in ["sgi_pingpong", "sgi_broadcast_ack", "psci_cpu_on", "psci_cpu_off"] {
            skipped(k, "needs 2 CPUs");
        }
        return;
    }
    figure("sgi_pingpong", "floor", iters, || match crate::demo::ping_pong_round_trip(1, 1) {
        Some((t, _)) => ns(t),
        None => fail(format_args!("no pong from cpu1")),
    });
    let others = crate::board::all_cpus() - CpuSet::single(0);
    figure("sgi_broadcast_ack", "floor", iters, || {
        let before: [u64; NR_CPUS] =
            core::array::from_fn(|c| if c < n { ipi::handled(0, c, Message::Wake) } else { 0 });
        let t0 = Instant::now();
        if ipi::send_set(others, Message::Wake).is_err() {
            fail(format_args!("broadcast SGI refused"));
        }
        let acked = wait_until(FLOOR_TIMEOUT, || {
            (1..n).all(|c| ipi::handled(0, c, Message::Wake) > before[c])
        });
        let t = ns(t0.elapsed());
        if !acked {
            fail(format_args!("broadcast SGI not acknowledged by every CPU"));
        }
        t
    });
    psci_floor(1, iters);
}

/// Where the raw PSCI stub says it ran. Its own cache line: the stub writes it with the MMU
/// (and so the cache) off.
#[repr(C, align(64))]
struct Flag(AtomicU32);
static RAN: Flag = Flag(AtomicU32::new(0));

core::arch::global_asm!(
    r#"
    .section .text.armstop_bench_pen, "ax"
    .global armstop_bench_pen
    .balign 8
// Entered by PSCI CPU_ON with the MMU off; x0 = the flag's address | 1 for SMC (0: HVC).
armstop_bench_pen:
    and     x1, x0, #1
    bic     x0, x0, #1
    mov     w2, #1
    str     w2, [x0]
    dsb     sy
    movz    x0, #0x0002
    movk    x0, #0x8400, lsl #16    // PSCI CPU_OFF
    cbnz    x1, 1f
    hvc     #0
    b       2f
1:  smc     #0
2:  wfe                             // CPU_OFF returned: the boot CPU times out on it
    b       2b
"#
);

unsafe extern "C" {
    fn armstop_bench_pen() -> !;
}

/// Discards this CPU's cached copy of the flag (the stub writes memory directly).
fn refetch_flag() -> u32 {
    // SAFETY: `dc civac` on the flag's own line: the boot CPU only wrote 0 there, which was
    // cleaned to memory before CPU_ON, so nothing is lost.
    unsafe {
        core::arch::asm!("dc civac, {}", "dsb sy", in(reg) &RAN as *const Flag, options(nostack))
    };
    RAN.0.load(Ordering::Acquire)
}

/// Raw PSCI on `cpu` (taken down first, brought back after): CPU_ON until the stub runs, and
/// its CPU_OFF until AFFINITY_INFO says OFF; no stopper or armstop boot code involved.
fn psci_floor(cpu: usize, iters: u32) {
    if let Err(e) = hotplug::cpu_down(cpu) {
        fail(format_args!("cpu_down({cpu}) before the PSCI floor: {e}"));
    }
    let mpidr = crate::board::mpidr(cpu).unwrap_or_else(|| fail(format_args!("no cpu{cpu}")));
    let smc = u64::from(psci::conduit() == psci::Conduit::Smc);
    let settle = Duration::from_micros(u64::from(BOARD.cpu_on_after_off_us));
    let mut buf = SAMPLES.lock();
    let n = (iters as usize).min(MAX_SAMPLES);
    for i in 0..n {
        RAN.0.store(0, Ordering::Relaxed);
        crate::mm::clean_dcache_range(&RAN as *const Flag as usize, 64);
        // TF-A's pen needs a moment after it first reports a CPU off (board data).
        let t_settle = Instant::now();
        while t_settle.elapsed() < settle {
            core::hint::spin_loop();
        }
        let t0 = Instant::now();
        let entry = armstop_bench_pen as *const () as u64;
        if let Err(e) = psci::cpu_on(mpidr, entry, (&RAN as *const Flag as u64) | smc) {
            fail(format_args!("raw CPU_ON of cpu{cpu}: {}", psci::error_name(e)));
        }
        if !wait_until(FLOOR_TIMEOUT, || refetch_flag() != 0) {
            fail(format_args!("cpu{cpu} never ran after a raw CPU_ON"));
        }
        let t1 = Instant::now();
        let off = wait_until(FLOOR_TIMEOUT, || {
            psci::affinity_info(mpidr).is_ok_and(|s| s == smccc::psci::AffinityState::Off)
        });
        if !off {
            fail(format_args!("cpu{cpu} never reported OFF after its own CPU_OFF"));
        }
        buf[0][i] = ns(t1 - t0);
        buf[1][i] = ns(t1.elapsed());
        buf[2][i] = buf[0][i] + buf[1][i];
    }
    let [on, off, cycle, _] = &mut *buf;
    report("psci_cpu_on", "floor", &mut on[..n]);
    report("psci_cpu_off", "floor", &mut off[..n]);
    report("psci_cycle", "floor", &mut cycle[..n]);
    drop(buf);
    if let Err(e) = hotplug::cpu_up(cpu) {
        fail(format_args!("cpu_up({cpu}) after the PSCI floor: {e}"));
    }
}

fn noop() -> i32 {
    0
}

static NOOP: fn() -> i32 = noop;
static NOWAIT: [NowaitWork; 8] = [const { NowaitWork::new("bench nowait", &NOOP) }; 8];

fn check(what: &str, r: Result<i32, crate::stop::StopError>, want: i32) {
    if r != Ok(want) {
        fail(format_args!("{what}: {r:?}, expected Ok({want})"));
    }
}

fn me() -> i32 {
    crate::cpu::id() as i32
}

fn requests(mode: &str, iters: u32) {
    let n = cpu_count();
    figure("stop_one_cpu_local", mode, iters, || {
        timed(|| check("stop_one_cpu(0)", STOPPERS.stop_one_cpu(0, me), 0))
    });
    if n < 2 {
        for k in ["stop_one_cpu_remote", "stop_one_cpu_nowait", "stop_two_cpus", "hotplug"] {
            skipped(k, "needs 2 CPUs");
        }
    } else {
        figure("stop_one_cpu_remote", mode, iters, || {
            timed(|| check("stop_one_cpu(1)", STOPPERS.stop_one_cpu(1, me), 1))
        });
        nowait_throughput(mode, iters);
        figure("stop_two_cpus_0_1", mode, iters, || {
            timed(|| check("stop_two_cpus(0,1)", STOPPERS.stop_two_cpus(0, 1, me), 0))
        });
    }
    if n < 3 {
        skipped("stop_two_cpus_1_2", "needs 3 CPUs");
    } else {
        figure("stop_two_cpus_1_2", mode, iters, || {
            timed(|| check("stop_two_cpus(1,2)", STOPPERS.stop_two_cpus(1, 2, me), 1))
        });
    }
    let others = STOPPERS.enabled_mask() - CpuSet::single(0);
    if others.is_empty() {
        skipped("stop_cpus", "needs 2 CPUs");
    } else {
        let ran = AtomicU64::new(0);
        figure("stop_cpus", mode, iters, || {
            timed(|| {
                let r = STOPPERS.stop_cpus(others, || {
                    ran.fetch_add(1, Ordering::Relaxed);
                    0
                });
                check("stop_cpus", r, 0);
            })
        });
        let want = u64::from(iters.min(MAX_SAMPLES as u32)) * others.len() as u64;
        if ran.load(Ordering::Relaxed) != want {
            fail(format_args!(
                "stop_cpus ran {} callbacks, expected {want}",
                ran.load(Ordering::Relaxed)
            ));
        }
    }
    stop_machine_by_cpu_count(mode, iters);
    if n >= 2 {
        hotplug_cycles(mode, iters, n - 1);
    }
}

fn nowait_throughput(mode: &str, iters: u32) {
    let n = cpu_count();
    figure("stop_one_cpu_nowait", mode, iters, || {
        let t0 = Instant::now();
        for k in 0..NOWAIT_BATCH as usize {
            let w: &'static NowaitWork = &NOWAIT[k % NOWAIT.len()];
            let cpu = 1 + k % (n - 1);
            if !wait_until(FLOOR_TIMEOUT, || !w.is_pending()) {
                fail(format_args!("a nowait work never ran"));
            }
            if !STOPPERS.stop_one_cpu_nowait(cpu, w) {
                fail(format_args!("stop_one_cpu_nowait({cpu}) refused"));
            }
        }
        if !wait_until(FLOOR_TIMEOUT, || NOWAIT.iter().all(|w| !w.is_pending())) {
            fail(format_args!("a nowait work never ran"));
        }
        ns(t0.elapsed()) / u64::from(NOWAIT_BATCH)
    });
}

/// `stop_machine(noop)` with every CPU online, then with one fewer each time (hotplug), down
/// to 2; every CPU comes back afterwards.
fn stop_machine_by_cpu_count(mode: &str, iters: u32) {
    let n = cpu_count();
    let mut down = 0;
    loop {
        let cpus = n - down;
        let mut kind = crate::console::LineBuf::<32>::new();
        let _ = match cpus {
            1 => core::fmt::Write::write_str(&mut kind, "stop_machine_1cpu"),
            _ => core::fmt::write(&mut kind, format_args!("stop_machine_{cpus}cpus")),
        };
        let online = STOPPERS.enabled_mask();
        let ran = armstop_stopper::AtomicCpuSet::new();
        figure(kind.as_str(), mode, iters, || {
            timed(|| {
                let r = STOPPERS.stop_machine(
                    || {
                        ran.insert(crate::cpu::id(), Ordering::Relaxed);
                        0
                    },
                    Some(online),
                );
                check("stop_machine", r, 0);
            })
        });
        if ran.load(Ordering::Relaxed) != online {
            fail(format_args!(
                "stop_machine ran on {}, not on {online}",
                ran.load(Ordering::Relaxed)
            ));
        }
        if cpus <= 2 {
            break;
        }
        // On a large machine: all of it, then 4, 3 and 2 CPUs (the counts every machine of the
        // bench's matrix has), not every count in between.
        let next = if cpus > 4 { 4 } else { cpus - 1 };
        for cpu in (next..cpus).rev() {
            if let Err(e) = hotplug::cpu_down(cpu) {
                fail(format_args!("cpu_down({cpu}): {e}"));
            }
            down += 1;
        }
    }
    for cpu in (n - down)..n {
        if let Err(e) = hotplug::cpu_up(cpu) {
            fail(format_args!("cpu_up({cpu}): {e}"));
        }
    }
}

/// `cpu_down(cpu)` then `cpu_up(cpu)`, `iters` times: both, the down's `stop_machine` step,
/// and the whole cycle.
fn hotplug_cycles(mode: &str, iters: u32, cpu: usize) {
    let mut buf = SAMPLES.lock();
    let n = (iters as usize).min(MAX_SAMPLES);
    for i in 0..n {
        let d =
            hotplug::cpu_down(cpu).unwrap_or_else(|e| fail(format_args!("cpu_down({cpu}): {e}")));
        let u = hotplug::cpu_up(cpu).unwrap_or_else(|e| fail(format_args!("cpu_up({cpu}): {e}")));
        buf[0][i] = d.total_ns();
        buf[1][i] = d.stop_ns;
        buf[2][i] = u.total_ns();
        buf[3][i] = d.total_ns() + u.total_ns();
    }
    let [down, stop, up, cycle] = &mut *buf;
    report("cpu_down", mode, &mut down[..n]);
    report("cpu_down_stop_machine", mode, &mut stop[..n]);
    report("cpu_up", mode, &mut up[..n]);
    report("hotplug_cycle", mode, &mut cycle[..n]);
}
