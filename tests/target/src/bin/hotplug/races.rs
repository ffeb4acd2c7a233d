//! The races of Linux's history, against real cores going down and up: the online race
//! (45178ac0cea8), observe-then-queue (f0498d2a54e7), and stop_two_cpus racing cpu_down.
//! Each racer runs on cpu1 as a posted call while cpu0 cycles the last CPU (cpu3 on 4 CPUs);
//! every outcome is counted and checked exactly. The races are between two CPUs and the
//! controller: they need 3 CPUs, and a bigger machine's others stay idle.

use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use core::time::Duration;

use armstop::hotplug::{self, CpuState};
use armstop::smp;
use armstop::stop::{STOPPERS, StopError};
use armstop::target_test;
use armstop::testing::{figure, require_cpus};

use crate::fresh;

const CYCLES: usize = 200;
const RACER: usize = 1;

/// The CPU that goes down and up: the last one.
fn target() -> usize {
    crate::last()
}

/// The start of each race: [`fresh`], and the controller, the racer and the target.
fn start() {
    fresh();
    require_cpus(3);
}

static STOP: AtomicBool = AtomicBool::new(false);

/// Ends anything an earlier, failed test left running here.
pub fn open_gates() {
    STOP.store(true, Ordering::SeqCst);
}
static OK: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);
static WRONG: AtomicU64 = AtomicU64::new(0);

fn reset() {
    STOP.store(false, Ordering::SeqCst);
    for c in [&OK, &REFUSED, &WRONG] {
        c.store(0, Ordering::SeqCst);
    }
}

/// On the target: it must be this CPU, and not yet dead.
fn check_on_target() {
    let target = target();
    let alive = matches!(hotplug::state(target), CpuState::Online | CpuState::Dying);
    if armstop::cpu::id() != target || !alive {
        WRONG.fetch_add(1, Ordering::SeqCst);
    }
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::SeqCst)
}

// --- The online race -------------------------------------------------------------------------

static GEN: AtomicUsize = AtomicUsize::new(0);
static DONE: AtomicUsize = AtomicUsize::new(0);

/// Waits for each new generation of the target, spins until it is online, and queues to it at
/// once: this must never be refused.
fn online_poller(_: usize) -> usize {
    let target = target();
    let mut seen = 0;
    loop {
        while GEN.load(Ordering::SeqCst) == seen {
            if STOP.load(Ordering::SeqCst) {
                return 0;
            }
            core::hint::spin_loop();
        }
        seen = GEN.load(Ordering::SeqCst);
        while !hotplug::HOTPLUG.is_online(target) {
            core::hint::spin_loop();
        }
        match STOPPERS.stop_one_cpu(target, || {
            check_on_target();
            armstop::cpu::id() as i32
        }) {
            Ok(id) if id == target as i32 => OK.fetch_add(1, Ordering::SeqCst),
            Ok(_) => WRONG.fetch_add(1, Ordering::SeqCst),
            Err(_) => REFUSED.fetch_add(1, Ordering::SeqCst),
        };
        DONE.store(seen, Ordering::SeqCst);
    }
}

/// Linux 45178ac0cea8: a CPU is marked online only after its stopper is enabled, so a poller
/// that queues the moment it sees the CPU online is never refused.
#[target_test]
fn online_race_a_cpu_seen_online_always_accepts_work() {
    start();
    let target = target();
    reset();
    GEN.store(0, Ordering::SeqCst);
    DONE.store(0, Ordering::SeqCst);
    let poller = smp::post(RACER, online_poller, 0).unwrap();
    for i in 1..=CYCLES {
        hotplug::cpu_down(target).unwrap_or_else(|e| panic!("cpu_down: {e}"));
        // The poller starts spinning on "online" while the CPU is still off.
        GEN.store(i, Ordering::SeqCst);
        hotplug::cpu_up(target).unwrap_or_else(|e| panic!("cpu_up: {e}"));
        // Keep it up until the poller has queued to it.
        let served =
            armstop::time::wait_until(Duration::from_secs(5), || DONE.load(Ordering::SeqCst) == i);
        assert!(served, "the poller never got an answer from cpu{target} in cycle {i}");
    }
    STOP.store(true, Ordering::SeqCst);
    poller.wait().unwrap();
    figure(format_args!(
        "online race: {CYCLES} cycles, {} served, {} refused",
        get(&OK),
        get(&REFUSED)
    ));
    assert_eq!(get(&REFUSED), 0, "a CPU seen online refused work");
    assert_eq!(get(&WRONG), 0);
    assert_eq!(get(&OK), CYCLES as u64);
}

// --- Observe, then queue ---------------------------------------------------------------------

static OBSERVE_LOCK: spin::Mutex<()> = spin::Mutex::new(());
static SEEN_OFFLINE: AtomicU64 = AtomicU64::new(0);

/// Sees the target online under a lock, drops the lock, then queues: while the target goes
/// down, the work runs before it is off, or the request is refused; never a hang.
fn observer(_: usize) -> usize {
    let target = target();
    while !STOP.load(Ordering::SeqCst) {
        let seen = {
            let _g = OBSERVE_LOCK.lock();
            hotplug::HOTPLUG.is_online(target)
        };
        if !seen {
            SEEN_OFFLINE.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        let ran = AtomicUsize::new(0);
        let r = STOPPERS.stop_one_cpu(target, || {
            check_on_target();
            ran.fetch_add(1, Ordering::SeqCst);
            0
        });
        match (r, ran.load(Ordering::SeqCst)) {
            (Ok(0), 1) => OK.fetch_add(1, Ordering::SeqCst),
            (Err(StopError::NoEnt), 0) => REFUSED.fetch_add(1, Ordering::SeqCst),
            _ => WRONG.fetch_add(1, Ordering::SeqCst),
        };
    }
    0
}

/// Linux f0498d2a54e7.
#[target_test]
fn observe_then_queue_runs_or_is_refused_while_the_cpu_goes_down() {
    start();
    reset();
    SEEN_OFFLINE.store(0, Ordering::SeqCst);
    let racer = smp::post(RACER, observer, 0).unwrap();
    for _ in 0..CYCLES {
        crate::cycle(target());
    }
    STOP.store(true, Ordering::SeqCst);
    racer.wait().unwrap();
    figure(format_args!(
        "observe-then-queue: {CYCLES} cycles, {} ran, {} refused after being seen online, {} observations offline",
        get(&OK),
        get(&REFUSED),
        get(&SEEN_OFFLINE)
    ));
    assert_eq!(get(&WRONG), 0, "a work ran off its CPU, after it died, or was lost");
    assert!(get(&OK) > 0);
    assert_eq!(STOPPERS.stats().park_with_works, 0);
}

// --- stop_two_cpus racing cpu_down -----------------------------------------------------------

static BOTH: AtomicU64 = AtomicU64::new(0);

fn two_cpus_racer(_: usize) -> usize {
    let target = target();
    let mut i = 0usize;
    while !STOP.load(Ordering::SeqCst) {
        i += 1;
        // Alternate which CPU runs the function: the racer's own or the moving target.
        let (a, b) = if i % 2 == 0 { (RACER, target) } else { (target, RACER) };
        let ran = AtomicUsize::new(0);
        let r = STOPPERS.stop_two_cpus(a, b, || {
            // The other CPU must be held in its stopper: never one without the other.
            if armstop::cpu::id() != a || STOPPERS.running(b).is_none() {
                WRONG.fetch_add(1, Ordering::SeqCst);
            }
            if a == target || b == target {
                let alive = matches!(hotplug::state(target), CpuState::Online | CpuState::Dying);
                if !alive {
                    WRONG.fetch_add(1, Ordering::SeqCst);
                }
            }
            ran.fetch_add(1, Ordering::SeqCst);
            0
        });
        match (r, ran.load(Ordering::SeqCst)) {
            (Ok(0), 1) => BOTH.fetch_add(1, Ordering::SeqCst),
            (Err(StopError::NoEnt), 0) => REFUSED.fetch_add(1, Ordering::SeqCst),
            _ => WRONG.fetch_add(1, Ordering::SeqCst),
        };
    }
    0
}

/// stop_two_cpus either runs with both CPUs in their stoppers or fails on both; it needs no
/// "is the CPU active" check.
#[target_test]
fn stop_two_cpus_racing_cpu_down_runs_on_both_or_neither() {
    start();
    reset();
    BOTH.store(0, Ordering::SeqCst);
    let racer = smp::post(RACER, two_cpus_racer, 0).unwrap();
    for _ in 0..CYCLES {
        crate::cycle(target());
    }
    STOP.store(true, Ordering::SeqCst);
    racer.wait().unwrap();
    figure(format_args!(
        "stop_two_cpus vs cpu_down: {CYCLES} cycles, {} ran on both, {} refused",
        get(&BOTH),
        get(&REFUSED)
    ));
    assert_eq!(get(&WRONG), 0, "stop_two_cpus ran on one CPU only, or after the CPU died");
    assert!(get(&BOTH) > 0 && get(&REFUSED) > 0, "the race window was never hit");
    assert_eq!(STOPPERS.stats().park_with_works, 0);
}
