//! CPU hotplug in a firmware that is not armstop, on the host: four "CPUs", each a std
//! thread, that power off and on. CPU 0 (the main thread, the boot CPU) takes CPU 2 down and
//! brings it back up, again and again, while CPU 3 keeps making stop requests that involve
//! CPU 2; every request must either run its function or fail with `NoEnt` having not run it.
//!
//! What the firmware provides here (see the crate docs, "What a firmware provides"):
//!
//! - the stopper's `Platform` (a compact one: kicks and wakes are `unpark`s, whose park
//!   tokens are the pending SGI; there are no interrupts to mask, since a CPU runs its works
//!   from its loop and from the stoppers' own waits; `armstop-stopper`'s `threads` example
//!   has a fuller one, with masking);
//! - a `Power`: CPU_ON wakes the CPU's thread, AFFINITY_INFO reads a "powered" flag that the
//!   CPU clears as the last thing it does, and the IRQ migration is recorded (this machine
//!   has no devices);
//! - each CPU's life: off until CPU_ON, then `cpu_online`, then its stopper loop with
//!   `dying_step` until that says to power off.
//!
//! Run it with
//!
//! ```sh
//! cargo run -p armstop-hotplug --example hotplug_threads
//! ```
//!
//! It prints each step and the stop requests' tally, and exits non-zero if anything is wrong.
//! (Not called `threads`, as `armstop-stopper`'s is: two examples of one name in a workspace
//! would be built to the same file.)

// The loom build (`--cfg loom`) swaps the atomics for loom's, which only work inside a loom
// model: this example is for the ordinary build.
#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    host::main()
}

#[cfg(not(loom))]
mod host {
    use std::cell::Cell;
    use std::fmt;
    use std::process::ExitCode;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock, mpsc};
    use std::thread::{self, Thread};
    use std::time::{Duration, Instant};

    use armstop_hotplug::{CpuState, DownError, Hotplug, Power, Step};
    use armstop_stopper::{CpuSet, Platform, StopError, Stoppers};

    /// CPUs on this machine.
    const N: usize = 4;
    /// How many times CPU 2 goes down and comes back.
    const CYCLES: usize = 200;

    type Task = Box<dyn FnOnce() + Send>;

    /// The machine: its CPUs' threads and power, and the stopper's platform.
    struct Machine {
        threads: OnceLock<Vec<Thread>>,
        start: OnceLock<Instant>,
        reports: AtomicUsize,
        /// Per CPU: powered on (what AFFINITY_INFO reads).
        powered: [AtomicBool; N],
        /// Per CPU: CPU_ON was called; the CPU has not started yet.
        start_request: [AtomicBool; N],
        /// Per CPU: where its interrupts were last moved to (`N`: never moved).
        irqs_to: [AtomicUsize; N],
        /// Per CPU: a task to run in its loop, between stopper works.
        task: [Mutex<Option<Task>>; N],
    }

    thread_local! {
        static CPU: Cell<usize> = const { Cell::new(usize::MAX) };
    }

    static STOPPERS: Stoppers<Machine, N> = Stoppers::new(Machine {
        threads: OnceLock::new(),
        start: OnceLock::new(),
        reports: AtomicUsize::new(0),
        powered: [const { AtomicBool::new(false) }; N],
        start_request: [const { AtomicBool::new(false) }; N],
        irqs_to: [const { AtomicUsize::new(N) }; N],
        task: [const { Mutex::new(None) }; N],
    });

    static HOTPLUG: Hotplug<'static, Machine, Psci, N> = Hotplug::new(&STOPPERS, Psci);

    fn machine() -> &'static Machine {
        STOPPERS.platform()
    }

    fn me() -> usize {
        CPU.with(Cell::get)
    }

    impl Machine {
        fn unpark(&self, cpu: usize) {
            if let Some(t) = self.threads.get() {
                t[cpu].unpark();
            }
        }
    }

    impl Platform for Machine {
        fn cpu_id(&self) -> usize {
            me()
        }
        // Unpark: happens-before the park it ends, so the target sees the queued work; a
        // kick before the target parks leaves a token, so none is lost.
        fn kick(&self, cpu: usize) {
            self.unpark(cpu);
        }
        // Nothing is ever taken asynchronously here, so there is nothing to mask.
        fn irq_save(&self) -> usize {
            0
        }
        fn irq_restore(&self, _saved: usize) {}
        fn relax(&self) {
            std::hint::spin_loop();
            thread::yield_now();
        }
        fn wake(&self, cpus: CpuSet) {
            for cpu in cpus {
                self.unpark(cpu);
            }
        }
        // No `clear_wake`: park tokens cannot be cleared, and a stale one only ends a sleep
        // early, which the stoppers allow.
        fn sleep(&self, deadline_ns: u64) {
            if deadline_ns == u64::MAX {
                thread::park();
            } else if let Some(left) = deadline_ns.checked_sub(self.now_ns()) {
                thread::park_timeout(Duration::from_nanos(left));
            }
        }
        fn now_ns(&self) -> u64 {
            self.start.get_or_init(Instant::now).elapsed().as_nanos() as u64
        }
        fn report(&self, args: fmt::Arguments<'_>) {
            self.reports.fetch_add(1, Ordering::Relaxed);
            eprintln!("report: {args}");
        }
    }

    /// The machine's "PSCI".
    struct Psci;

    impl Power for Psci {
        type Error = &'static str;

        fn cpu_on(&self, cpu: usize) -> Result<(), &'static str> {
            let m = machine();
            if m.powered[cpu].swap(true, Ordering::AcqRel) {
                return Err("CPU_ON: ALREADY_ON");
            }
            // Release: the started CPU sees everything stored before CPU_ON (its BOOTING
            // state among it) once it reads the request with Acquire.
            m.start_request[cpu].store(true, Ordering::Release);
            m.unpark(cpu);
            Ok(())
        }

        fn is_off(&self, cpu: usize) -> Result<bool, &'static str> {
            Ok(!machine().powered[cpu].load(Ordering::Acquire))
        }

        // Inside take_cpu_down, every CPU stopped: only record it (nothing to wait for).
        fn migrate_irqs(&self, cpu: usize, to: usize) {
            machine().irqs_to[cpu].store(to, Ordering::Relaxed);
        }
    }

    /// Set when the machine shuts down.
    static QUIT: AtomicBool = AtomicBool::new(false);

    /// A secondary CPU's whole life: off, booted, serving, off again.
    fn cpu_thread(me: usize) {
        CPU.with(|c| c.set(me));
        let m = machine();
        while m.threads.get().is_none() {
            thread::yield_now();
        }
        loop {
            // Off: wait for CPU_ON.
            while !m.start_request[me].swap(false, Ordering::Acquire) {
                if QUIT.load(Ordering::Acquire) {
                    return;
                }
                thread::park();
            }
            // Booted: enable the stopper, then go online. `Err`: cpu_up gave up on us.
            if HOTPLUG.cpu_online().is_ok() && !serve(me) {
                return;
            }
            // CPU_OFF: the last store this CPU makes before it is off.
            m.powered[me].store(false, Ordering::Release);
        }
    }

    /// The stopper loop of an online CPU. Returns `true` to power off, `false` to quit.
    fn serve(me: usize) -> bool {
        loop {
            STOPPERS.run_works();
            // Nothing queued: if take_cpu_down parked the stopper, flush it, park it and
            // report dead; then power off.
            if HOTPLUG.dying_step() == Step::PowerOff {
                return true;
            }
            let task = machine().task[me].lock().unwrap().take();
            if let Some(task) = task {
                task();
                continue;
            }
            if QUIT.load(Ordering::Acquire) {
                return false;
            }
            // Until a kick, a task or the end; one sent since the checks left a park token.
            thread::park();
        }
    }

    /// What CPU 3's stop requests saw.
    #[derive(Default, Debug)]
    struct Tally {
        one_ok: usize,
        one_noent: usize,
        two_ok: usize,
        two_noent: usize,
        machine_ok: usize,
        wrong: usize,
    }

    static LOAD_STOP: AtomicBool = AtomicBool::new(false);
    static LOAD_DONE: AtomicBool = AtomicBool::new(false);
    static TALLY: Mutex<Option<Tally>> = Mutex::new(None);

    fn load_chan() -> usize {
        &LOAD_DONE as *const AtomicBool as usize
    }

    /// CPU 3's task: stop requests that involve CPU 2, until told to stop. Each request's
    /// function counts its runs: it must have run exactly when the request said `Ok`.
    fn load() {
        let mut t = Tally::default();
        let (ran_one, ran_two) = (AtomicUsize::new(0), AtomicUsize::new(0));
        while !LOAD_STOP.load(Ordering::Acquire) {
            match STOPPERS.stop_one_cpu(2, || {
                ran_one.fetch_add(1, Ordering::Relaxed);
                me() as i32
            }) {
                Ok(2) => t.one_ok += 1,
                Err(StopError::NoEnt) => t.one_noent += 1,
                other => {
                    println!("WRONG stop_one_cpu(2): {other:?}");
                    t.wrong += 1;
                }
            }
            // f on cpu3 while cpu2 sits in its stopper.
            match STOPPERS.stop_two_cpus(3, 2, || {
                ran_two.fetch_add(1, Ordering::Relaxed);
                if me() == 3 { 0 } else { -1 }
            }) {
                Ok(0) => t.two_ok += 1,
                Err(StopError::NoEnt) => t.two_noent += 1,
                other => {
                    println!("WRONG stop_two_cpus(3, 2): {other:?}");
                    t.wrong += 1;
                }
            }
            // Every CPU whose stopper is enabled, whichever they are at the time. Only now and
            // then: it needs cpu0, which runs its works only while it waits, so each of these
            // falls in step with cpu0's hotplug cycle; the requests in between race it.
            if (t.one_ok + t.one_noent) % 8 == 0 {
                match STOPPERS.stop_machine(|| 0, None) {
                    Ok(0) => t.machine_ok += 1,
                    other => {
                        println!("WRONG stop_machine: {other:?}");
                        t.wrong += 1;
                    }
                }
            }
            if ran_one.load(Ordering::Relaxed) != t.one_ok
                || ran_two.load(Ordering::Relaxed) != t.two_ok
            {
                println!("WRONG: a function ran without its request succeeding, or not at all");
                t.wrong += 1;
            }
        }
        *TALLY.lock().unwrap() = Some(t);
        LOAD_DONE.store(true, Ordering::Release);
        // CPU 0 may sleep waiting for this.
        STOPPERS.notify(load_chan());
    }

    /// Counts the checks that failed.
    struct Checks(usize);

    impl Checks {
        fn check<T: PartialEq + fmt::Debug>(&mut self, what: &str, got: T, want: T) {
            if got != want {
                println!("WRONG {what}: {got:?}, expected {want:?}");
                self.0 += 1;
            }
        }
    }

    pub fn main() -> ExitCode {
        let m = machine();
        CPU.with(|c| c.set(0));
        let handles: Vec<_> = (1..N)
            .map(|cpu| {
                thread::Builder::new().name(format!("cpu{cpu}")).spawn(move || cpu_thread(cpu))
            })
            .collect::<Result<_, _>>()
            .expect("spawn the CPU threads");
        let mut threads = vec![thread::current()];
        threads.extend(handles.iter().map(|h| h.thread().clone()));
        m.threads.set(threads).expect("set once");
        STOPPERS.set_watchdog(10_000_000_000);
        let mut c = Checks(0);

        // Boot: this CPU online, pinned (it runs main and never reaches a stopper loop); the
        // others brought up as cpu_up would bring them up later.
        m.powered[0].store(true, Ordering::Release);
        HOTPLUG.boot_cpu_online();
        HOTPLUG.pin(0);
        for cpu in 1..N {
            c.check(&format!("cpu_up({cpu})"), HOTPLUG.cpu_up(cpu).map(|_| ()), Ok(()));
        }
        c.check("online at boot", HOTPLUG.online_mask(), CpuSet::first_n(N));
        println!("booted: CPUs {} online", HOTPLUG.online_mask());

        // Refusals.
        let r = HOTPLUG.cpu_down(0).map(|_| ());
        c.check("cpu_down(0) on cpu0", r, Err(DownError::SelfTarget));
        // From another CPU, through a task on cpu1: the boot CPU is pinned.
        let (tx, rx) = mpsc::channel();
        *m.task[1].lock().unwrap() = Some(Box::new(move || {
            let _ = tx.send(HOTPLUG.cpu_down(0).map(|_| ()));
        }));
        m.unpark(1);
        let r = rx.recv_timeout(Duration::from_secs(10)).expect("cpu1 ran the task");
        c.check("cpu_down(0) on cpu1", r, Err(DownError::Pinned));
        c.check("cpu_down(N)", HOTPLUG.cpu_down(N).map(|_| ()), Err(DownError::InvalidCpu));

        // CPU 3 makes stop requests involving CPU 2 while CPU 2 goes down and up.
        *m.task[3].lock().unwrap() = Some(Box::new(load));
        m.unpark(3);
        let mut slowest_ns = (0, 0);
        for cycle in 0..CYCLES {
            match HOTPLUG.cpu_down(2) {
                Ok(t) => slowest_ns.0 = slowest_ns.0.max(t.total_ns()),
                Err(e) => {
                    println!("WRONG cpu_down(2): {e}");
                    c.0 += 1;
                }
            }
            c.check("cpu2 after cpu_down", HOTPLUG.state(2), CpuState::Off);
            c.check("  its stopper enabled", STOPPERS.is_enabled(2), false);
            c.check("  powered (AFFINITY_INFO)", m.powered[2].load(Ordering::Acquire), false);
            c.check("  its IRQs moved to", m.irqs_to[2].load(Ordering::Relaxed), 0);
            if cycle == 0 {
                let again = HOTPLUG.cpu_down(2).map(|_| ());
                c.check("cpu_down(2) once down", again, Err(DownError::NotOnline(CpuState::Off)));
            }
            match HOTPLUG.cpu_up(2) {
                Ok(t) => slowest_ns.1 = slowest_ns.1.max(t.total_ns()),
                Err(e) => {
                    println!("WRONG cpu_up(2): {e}");
                    c.0 += 1;
                }
            }
            c.check("cpu2 after cpu_up", HOTPLUG.state(2), CpuState::Online);
        }
        println!(
            "cpu2 down and up {CYCLES} times: slowest cpu_down {} us, slowest cpu_up {} us",
            slowest_ns.0 / 1000,
            slowest_ns.1 / 1000
        );

        // Stop the load; wait for it the way the stoppers wait (this CPU's works run meanwhile:
        // the load's stop_machine needs this CPU too).
        LOAD_STOP.store(true, Ordering::Release);
        let deadline = STOPPERS.platform().now_ns() + 10_000_000_000;
        let done = STOPPERS.wait_until(load_chan(), deadline, || LOAD_DONE.load(Ordering::Acquire));
        c.check("the load finished", done, true);
        let t = TALLY.lock().unwrap().take().unwrap_or_default();
        println!(
            "cpu3's requests: stop_one_cpu(2) {} ran, {} NoEnt; stop_two_cpus(3, 2) {} ran, {} NoEnt; \
             stop_machine {} ran",
            t.one_ok, t.one_noent, t.two_ok, t.two_noent, t.machine_ok
        );
        c.check("requests with a wrong result", t.wrong, 0);

        QUIT.store(true, Ordering::Release);
        for cpu in 1..N {
            m.unpark(cpu);
        }
        for h in handles {
            h.join().expect("a CPU thread panicked");
        }

        let hs = HOTPLUG.stats();
        c.check(
            "hotplug (downs, ups)",
            (hs.downs, hs.ups),
            (CYCLES as u64, (CYCLES + N - 1) as u64),
        );
        c.check("bad state transitions", hs.bad_transitions, 0);
        c.check("stoppers parked with works queued", STOPPERS.stats().park_with_works, 0);
        c.check("lines reported", m.reports.load(Ordering::Relaxed), 0);
        if c.0 == 0 {
            println!("all results as expected");
            ExitCode::SUCCESS
        } else {
            println!("{} results wrong", c.0);
            ExitCode::FAILURE
        }
    }
}
