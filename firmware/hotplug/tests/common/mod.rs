//! A host "machine" with CPUs that power off and on: one std thread per CPU. A powered-off CPU's
//! thread waits for CPU_ON; a powered-on one runs the stopper loop (works, then
//! `dying_step`, then tasks given to that CPU) until `dying_step` says to power off.
//! Fault injection: a CPU can be made to stall at boot (never report in) or after its dead
//! report (never power off) until released, and CPU_ON can be refused.

#![allow(dead_code)]

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use armstop_hotplug::{CpuState, Hotplug, Power, Step, Timeouts};
use armstop_stopper::{CpuSet, Platform, Stoppers};

pub const N: usize = 4;

thread_local! {
    static CPU: Cell<usize> = const { Cell::new(usize::MAX) };
}

pub fn me() -> usize {
    CPU.with(|c| c.get())
}

type Task = Box<dyn FnOnce() + Send>;

/// What the CPU threads share with the platform and power implementations.
pub struct Hw {
    threads: OnceLock<Vec<Thread>>,
    tasks: [Mutex<VecDeque<Task>>; N],
    start: Instant,
    stop: AtomicBool,
    pub reports: Mutex<Vec<String>>,
    powered: [AtomicBool; N],
    power_on: [AtomicBool; N],
    /// Fault injection: the next boot of this CPU never reports in, until cleared.
    pub stall_boot: [AtomicBool; N],
    /// Fault injection: the next boot of this CPU reports in only once this is cleared (late,
    /// if the controller has given up on it by then).
    pub late_boot: [AtomicBool; N],
    /// Fault injection: after its dead report the CPU does not power off, until cleared.
    pub stall_off: [AtomicBool; N],
    /// Fault injection: CPU_ON is refused with this error.
    pub refuse_on: Mutex<Option<PsciError>>,
    pub migrations: Mutex<Vec<(usize, usize)>>,
}

impl Hw {
    fn wake(&self, cpu: usize) {
        if let Some(t) = self.threads.get() {
            t[cpu].unpark();
        }
    }
}

pub struct HostPlatform(&'static Hw);

impl Platform for HostPlatform {
    fn cpu_id(&self) -> usize {
        me()
    }
    fn kick(&self, cpu: usize) {
        self.0.wake(cpu);
    }
    fn irq_save(&self) -> usize {
        0
    }
    fn irq_restore(&self, _: usize) {}
    fn relax(&self) {
        thread::yield_now();
    }
    fn wake(&self, cpus: CpuSet) {
        for cpu in cpus.iter().filter(|&c| c < N) {
            self.0.wake(cpu);
        }
    }
    // No deadline: park for good, so a lost wake-up hangs (and fails) the test.
    fn sleep(&self, deadline_ns: u64) {
        if deadline_ns == u64::MAX {
            thread::park();
        } else if let Some(left) = deadline_ns.checked_sub(self.now_ns()) {
            thread::park_timeout(Duration::from_nanos(left));
        }
    }
    fn now_ns(&self) -> u64 {
        self.0.start.elapsed().as_nanos() as u64
    }
    fn report(&self, args: fmt::Arguments<'_>) {
        let line = args.to_string();
        eprintln!("{line}");
        self.0.reports.lock().unwrap().push(line);
    }
}

/// PSCI's errors, as far as the host model produces them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PsciError {
    AlreadyOn,
    Denied,
}

impl fmt::Display for PsciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::AlreadyOn => "ALREADY_ON",
            Self::Denied => "DENIED",
        };
        write!(f, "CPU_ON refused: {name}")
    }
}

pub struct HostPower(&'static Hw);

impl Power for HostPower {
    type Error = PsciError;

    fn cpu_on(&self, cpu: usize) -> Result<(), PsciError> {
        if let Some(e) = *self.0.refuse_on.lock().unwrap() {
            return Err(e);
        }
        if self.0.powered[cpu].swap(true, Ordering::SeqCst) {
            return Err(PsciError::AlreadyOn);
        }
        self.0.power_on[cpu].store(true, Ordering::SeqCst);
        self.0.wake(cpu);
        Ok(())
    }

    fn is_off(&self, cpu: usize) -> Result<bool, PsciError> {
        Ok(!self.0.powered[cpu].load(Ordering::SeqCst))
    }

    fn migrate_irqs(&self, cpu: usize, to: usize) {
        self.0.migrations.lock().unwrap().push((cpu, to));
    }
}

pub type S = Stoppers<HostPlatform, N>;
pub type H = Hotplug<'static, HostPlatform, HostPower, N>;

pub struct Machine {
    pub s: &'static S,
    pub hp: &'static H,
    pub hw: &'static Hw,
    handles: Vec<thread::JoinHandle<()>>,
}

impl Machine {
    /// A machine with cpu0 booted and the others brought up through `cpu_up`; short timeouts.
    pub fn new() -> Self {
        let hw: &'static Hw = Box::leak(Box::new(Hw {
            threads: OnceLock::new(),
            tasks: std::array::from_fn(|_| Mutex::new(VecDeque::new())),
            start: Instant::now(),
            stop: AtomicBool::new(false),
            reports: Mutex::new(Vec::new()),
            powered: std::array::from_fn(|c| AtomicBool::new(c == 0)),
            power_on: std::array::from_fn(|c| AtomicBool::new(c == 0)),
            stall_boot: std::array::from_fn(|_| AtomicBool::new(false)),
            stall_off: std::array::from_fn(|_| AtomicBool::new(false)),
            late_boot: std::array::from_fn(|_| AtomicBool::new(false)),
            refuse_on: Mutex::new(None),
            migrations: Mutex::new(Vec::new()),
        }));
        let s: &'static S = Box::leak(Box::new(Stoppers::new(HostPlatform(hw))));
        s.set_watchdog(10_000_000_000);
        // Every wait sleeps at once unless ARMSTOP_SPIN_NS says otherwise (a number of ns, or
        // `spin`): the sleep path is the one with wake-ups to lose.
        s.set_spin_ns(std::env::var("ARMSTOP_SPIN_NS").map_or(0, |v| {
            armstop_stopper::parse_spin_ns(&v).expect("ARMSTOP_SPIN_NS: a number of ns, or `spin`")
        }));
        let hp: &'static H = Box::leak(Box::new(Hotplug::new(s, HostPower(hw))));
        hp.set_timeouts(Timeouts {
            boot_ns: 5_000_000_000,
            dead_ns: 5_000_000_000,
            off_ns: 5_000_000_000,
        });
        let handles: Vec<_> = (0..N)
            .map(|cpu| {
                thread::Builder::new()
                    .name(format!("cpu{cpu}"))
                    .spawn(move || {
                        CPU.with(|c| c.set(cpu));
                        while hw.threads.get().is_none() {
                            thread::yield_now();
                        }
                        cpu_thread(hw, s, hp, cpu);
                    })
                    .unwrap()
            })
            .collect();
        hw.threads.set(handles.iter().map(|h| h.thread().clone()).collect()).ok().unwrap();
        let m = Machine { s, hp, hw, handles };
        m.on(0, move || {
            for cpu in 1..N {
                hp.cpu_up(cpu).unwrap_or_else(|e| panic!("cpu{cpu}: {e}"));
            }
        });
        assert_eq!(hp.online_mask(), CpuSet::first_n(N));
        m
    }

    /// Runs `f` on `cpu`'s thread (between its stopper works) and returns a receiver for the
    /// result. The CPU must be online for it to run.
    pub fn spawn_on<R: Send + 'static>(
        &self,
        cpu: usize,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> mpsc::Receiver<R> {
        let (tx, rx) = mpsc::channel();
        self.hw.tasks[cpu].lock().unwrap().push_back(Box::new(move || {
            let _ = tx.send(f());
        }));
        self.hw.wake(cpu);
        rx
    }

    /// Runs `f` on `cpu` and waits for its result (failing the test after 60 s: a hang).
    pub fn on<R: Send + 'static>(&self, cpu: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
        self.spawn_on(cpu, f)
            .recv_timeout(Duration::from_secs(60))
            .expect("task on a CPU hung or panicked")
    }

    pub fn powered(&self, cpu: usize) -> bool {
        self.hw.powered[cpu].load(Ordering::SeqCst)
    }

    pub fn reports(&self) -> Vec<String> {
        self.hw.reports.lock().unwrap().clone()
    }

    /// Every CPU back online (from cpu0), for the end of a test that took some down.
    pub fn all_up(&self) {
        let hp = self.hp;
        self.on(0, move || {
            for cpu in 1..N {
                if hp.state(cpu) != CpuState::Online {
                    hp.cpu_up(cpu).unwrap_or_else(|e| panic!("cpu{cpu}: {e}"));
                }
            }
        });
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.hw.stop.store(true, Ordering::SeqCst);
        for cpu in 0..N {
            self.hw.stall_boot[cpu].store(false, Ordering::SeqCst);
            self.hw.stall_off[cpu].store(false, Ordering::SeqCst);
            self.hw.late_boot[cpu].store(false, Ordering::SeqCst);
            self.hw.wake(cpu);
        }
        if thread::panicking() {
            // A failed test: CPU threads may be inside a stop request that needs a CPU whose
            // thread has just stopped, so joining them could hang and hide the failure. Leave
            // them (the test process ends with the failure reported).
            return;
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn idle(hw: &Hw) -> bool {
    thread::park_timeout(Duration::from_millis(10));
    !hw.stop.load(Ordering::SeqCst)
}

/// Waits while `flag` is set; false if the machine is stopping.
fn stall(hw: &Hw, flag: &AtomicBool) -> bool {
    while flag.load(Ordering::SeqCst) {
        if !idle(hw) {
            return false;
        }
    }
    true
}

fn cpu_thread(hw: &'static Hw, s: &'static S, hp: &'static H, cpu: usize) {
    let mut first = true;
    loop {
        // Powered off: wait for CPU_ON.
        while !hw.power_on[cpu].swap(false, Ordering::SeqCst) {
            if !idle(hw) {
                return;
            }
        }
        if hw.stall_boot[cpu].load(Ordering::SeqCst) {
            // Injected: never reports in; turns itself off once released.
            if !stall(hw, &hw.stall_boot[cpu]) {
                return;
            }
            hw.powered[cpu].store(false, Ordering::SeqCst);
            continue;
        }
        // Injected: slow to come up, it reports in once released.
        if !stall(hw, &hw.late_boot[cpu]) {
            return;
        }
        if first && cpu == 0 {
            hp.boot_cpu_online();
        } else if hp.cpu_online().is_err() {
            hw.powered[cpu].store(false, Ordering::SeqCst);
            continue;
        }
        first = false;
        // The stopper loop.
        loop {
            if hw.stop.load(Ordering::SeqCst) {
                return;
            }
            if s.run_works() > 0 {
                continue;
            }
            // Works may be queued between the stopper finding its list empty and parking (an
            // IRQ on hardware can land here); give other threads the chance to do so.
            thread::yield_now();
            if hp.dying_step() == Step::PowerOff {
                break;
            }
            let task = hw.tasks[cpu].lock().unwrap().pop_front();
            match task {
                Some(t) => t(),
                None => {
                    // A kick (unpark) between the checks above and this park ends it at once.
                    if !idle(hw) {
                        return;
                    }
                }
            }
        }
        if !stall(hw, &hw.stall_off[cpu]) {
            return;
        }
        hw.powered[cpu].store(false, Ordering::SeqCst);
    }
}
