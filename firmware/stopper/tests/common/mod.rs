//! A host "machine" for the stopper: one std thread per CPU, each running the stopper loop
//! and, between works, tasks given to that CPU (as the firmware's idle loop runs calls).

#![allow(dead_code)]

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use armstop_stopper::{CpuSet, Platform, Stoppers};

pub const N: usize = 4;

thread_local! {
    static CPU: Cell<usize> = const { Cell::new(usize::MAX) };
}

type Task = Box<dyn FnOnce() + Send>;

pub struct HostPlatform {
    threads: OnceLock<Vec<Thread>>,
    tasks: [Mutex<VecDeque<Task>>; N],
    start: Instant,
    pub reports: Mutex<Vec<String>>,
    /// Whether `halt` may halt CPUs (a test turns it off to model a platform without an NMI).
    pub can_halt: AtomicBool,
    halt_requested: [AtomicBool; N],
    halted: [AtomicBool; N],
}

impl Platform for HostPlatform {
    fn cpu_id(&self) -> usize {
        CPU.with(|c| c.get())
    }
    fn kick(&self, cpu: usize) {
        self.threads.get().expect("machine started")[cpu].unpark();
    }
    fn irq_save(&self) -> usize {
        0
    }
    fn irq_restore(&self, _: usize) {}
    // A relax is where a halt reaches a host "CPU" (the target's halt SGI reaches it at any
    // instruction of a callback; a stuck host callback relaxes in its loop): it acknowledges
    // and blocks for good, never returning into the callback.
    fn relax(&self) {
        let me = self.cpu_id();
        if me < N && self.halt_requested[me].load(Ordering::SeqCst) {
            self.halted[me].store(true, Ordering::SeqCst);
            loop {
                thread::park();
            }
        }
        std::hint::spin_loop();
        thread::yield_now();
    }
    fn halt(&self, cpu: usize) -> bool {
        if !self.can_halt.load(Ordering::SeqCst) {
            return false;
        }
        self.halt_requested[cpu].store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.halted[cpu].load(Ordering::SeqCst) {
            if Instant::now() > deadline {
                panic!("cpu{cpu} did not reach a halt point");
            }
            thread::yield_now();
        }
        true
    }
    fn wake(&self, cpus: CpuSet) {
        let threads = self.threads.get().expect("machine started");
        for cpu in cpus {
            threads[cpu].unpark();
        }
    }
    // A sleep with no deadline parks for good: a lost wake-up hangs the test, which then fails
    // on its 60 s limit instead of passing late. (Park tokens are the pending wake: a wake
    // before the park makes it return at once; there is no clearing them, so a stale one only
    // makes a sleep return early, which the stopper must and does tolerate.)
    fn sleep(&self, deadline_ns: u64) {
        if deadline_ns == u64::MAX {
            thread::park();
        } else if let Some(left) = deadline_ns.checked_sub(self.now_ns()) {
            thread::park_timeout(Duration::from_nanos(left));
        }
    }
    fn now_ns(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }
    fn report(&self, args: fmt::Arguments<'_>) {
        let line = args.to_string();
        eprintln!("{line}");
        self.reports.lock().unwrap().push(line);
    }
}

/// The spin budget host machines start with: `ARMSTOP_SPIN_NS` (a number, or `spin` for spin
/// only), else 0.
pub fn spin_ns_from_env() -> u64 {
    std::env::var("ARMSTOP_SPIN_NS").map_or(0, |v| {
        armstop_stopper::parse_spin_ns(&v).expect("ARMSTOP_SPIN_NS: a number of ns, or `spin`")
    })
}

pub struct Machine {
    pub s: &'static Stoppers<HostPlatform, N>,
    stop: Arc<AtomicBool>,
    handles: Vec<thread::JoinHandle<()>>,
}

impl Machine {
    /// A machine with every stopper enabled and its loop running.
    pub fn new() -> Self {
        let s: &'static Stoppers<HostPlatform, N> =
            Box::leak(Box::new(Stoppers::new(HostPlatform {
                threads: OnceLock::new(),
                tasks: std::array::from_fn(|_| Mutex::new(VecDeque::new())),
                start: Instant::now(),
                reports: Mutex::new(Vec::new()),
                can_halt: AtomicBool::new(true),
                halt_requested: std::array::from_fn(|_| AtomicBool::new(false)),
                halted: std::array::from_fn(|_| AtomicBool::new(false)),
            })));
        for cpu in 0..N {
            s.stop_machine_unpark(cpu);
        }
        // Every wait sleeps at once unless the test asks otherwise (ARMSTOP_SPIN_NS, or
        // `set_spin_ns`): the sleep path is the one with wake-ups to lose.
        s.set_spin_ns(spin_ns_from_env());
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..N)
            .map(|cpu| {
                let stop = stop.clone();
                thread::Builder::new()
                    .name(format!("cpu{cpu}"))
                    .spawn(move || {
                        CPU.with(|c| c.set(cpu));
                        // Wait until every thread handle is published.
                        while s.platform().threads.get().is_none() {
                            thread::yield_now();
                        }
                        stopper_loop(s, cpu, &stop);
                    })
                    .unwrap()
            })
            .collect();
        let threads = handles.iter().map(|h| h.thread().clone()).collect();
        s.platform().threads.set(threads).ok().unwrap();
        Machine { s, stop, handles }
    }

    /// Runs `f` on `cpu`'s thread (between its stopper works) and returns a receiver for the
    /// result.
    pub fn spawn_on<R: Send + 'static>(
        &self,
        cpu: usize,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> mpsc::Receiver<R> {
        let (tx, rx) = mpsc::channel();
        self.s.platform().tasks[cpu].lock().unwrap().push_back(Box::new(move || {
            let _ = tx.send(f());
        }));
        self.s.platform().kick(cpu);
        rx
    }

    /// Runs `f` on `cpu` and waits for its result (failing the test after 60 s: a hang).
    pub fn on<R: Send + 'static>(&self, cpu: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
        self.spawn_on(cpu, f)
            .recv_timeout(Duration::from_secs(60))
            .expect("task on a CPU hung or panicked")
    }

    pub fn reports(&self) -> Vec<String> {
        self.s.platform().reports.lock().unwrap().clone()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.s.platform().threads.get().unwrap() {
            t.unpark();
        }
        if thread::panicking() {
            // A failed test: a CPU thread may be stuck in the wait that failed it, so joining
            // could hang and hide the failure. Leave them; the process ends with the report.
            return;
        }
        // A halted CPU's thread blocks for good: left behind, as the CPU is.
        for (cpu, h) in self.handles.drain(..).enumerate() {
            if !self.s.platform().halted[cpu].load(Ordering::SeqCst) {
                let _ = h.join();
            }
        }
    }
}

fn stopper_loop(s: &'static Stoppers<HostPlatform, N>, cpu: usize, stop: &AtomicBool) {
    while !stop.load(Ordering::SeqCst) {
        if s.run_works() > 0 {
            continue;
        }
        if s.park() {
            continue;
        }
        let task = s.platform().tasks[cpu].lock().unwrap().pop_front();
        match task {
            Some(t) => t(),
            // A kick (unpark) between the checks above and this park makes it return at once.
            None => thread::park_timeout(Duration::from_millis(20)),
        }
    }
}
