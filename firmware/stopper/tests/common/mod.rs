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

use armstop_stopper::{Platform, Stoppers};

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
    fn relax(&self) {
        std::hint::spin_loop();
        thread::yield_now();
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
            })));
        for cpu in 0..N {
            s.stop_machine_unpark(cpu);
        }
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
        for h in self.handles.drain(..) {
            let _ = h.join();
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
