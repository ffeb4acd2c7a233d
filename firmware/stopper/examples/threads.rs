//! A firmware that is not armstop, on the host: four "CPUs", each a std thread, sharing one
//! `Stoppers` through a `Platform` of their own. It is the minimum a foreign firmware
//! provides (see the crate docs, "What a firmware provides", and the `Platform` trait's
//! contract table):
//!
//! - a `Platform`: which CPU am I (a thread-local), kick a CPU (a pending flag and an
//!   unpark: the "SGI"), mask and restore "IRQs" (a thread-local; a pending kick is taken
//!   when they are unmasked, as on the target), sleep and wake (the same flags and
//!   `park_timeout`), a clock, and a place for reports;
//! - on every CPU but the boot one, a stopper loop: run the works, honour a park request,
//!   sleep until kicked;
//! - the stoppers enabled (`stop_machine_unpark`) before a CPU counts as online.
//!
//! CPU 0 is the main thread, as a firmware's boot CPU runs its main program: it makes the
//! requests and checks what they did. Run it with
//!
//! ```sh
//! cargo run -p armstop-stopper --example threads
//! ```
//!
//! It prints each request and its result and exits non-zero if any is wrong (or if the
//! stopper reported anything: on a healthy machine it never does).

// The loom build (`--cfg loom`) swaps the stoppers' atomics for loom's, which only work inside a
// loom model: this example is for the ordinary build.
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
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::thread::{self, Thread};
    use std::time::{Duration, Instant};

    use armstop_stopper::{CpuSet, NowaitWork, Platform, StopError, Stoppers};

    /// CPUs on this machine.
    const N: usize = 4;

    /// The machine's CPUs, as the stopper sees them. Everything is `const`-constructible, so
    /// the stoppers can be a `static`, as in a firmware.
    struct Threads {
        /// Each CPU's thread, to unpark (CPU 0 is the main thread).
        threads: OnceLock<Vec<Thread>>,
        /// Per CPU: a kick is pending (the stopper SGI, not yet taken).
        kick: [AtomicBool; N],
        /// Per CPU: a wake is pending (the wake SGI, never taken, only cleared).
        wake: [AtomicBool; N],
        /// Time zero.
        start: OnceLock<Instant>,
        /// How many lines the stopper reported (a healthy run reports none).
        reports: AtomicUsize,
    }

    thread_local! {
        /// Which CPU this thread is (`usize::MAX`: none).
        static CPU: Cell<usize> = const { Cell::new(usize::MAX) };
        /// Whether this CPU has its "IRQs" masked.
        static MASKED: Cell<bool> = const { Cell::new(false) };
    }

    static STOPPERS: Stoppers<Threads, N> = Stoppers::new(Threads {
        threads: OnceLock::new(),
        kick: [const { AtomicBool::new(false) }; N],
        wake: [const { AtomicBool::new(false) }; N],
        start: OnceLock::new(),
        reports: AtomicUsize::new(0),
    });

    impl Threads {
        fn unpark(&self, cpu: usize) {
            if let Some(t) = self.threads.get() {
                t[cpu].unpark();
            }
        }

        /// The kick's "interrupt handler": if a kick is pending, take it and run the works.
        /// Runs with IRQs masked, as a real handler does, so works never nest in works.
        fn take_kick(&self, me: usize) {
            // Acquire: pairs with the kick's Release, so the works queued before it are seen.
            while self.kick[me].swap(false, Ordering::Acquire) {
                STOPPERS.run_works();
            }
        }
    }

    impl Platform for Threads {
        fn cpu_id(&self) -> usize {
            CPU.with(Cell::get)
        }

        // The "SGI": mark it pending, then unpark the thread. Release, so that whoever takes
        // it sees the work queued before it; the unpark ends a `park` the target is in, or
        // the next one (park tokens never get lost). Never waits for the target, never runs
        // anything here, even when the target is this CPU.
        fn kick(&self, cpu: usize) {
            self.kick[cpu].store(true, Ordering::Release);
            self.unpark(cpu);
        }

        fn irq_save(&self) -> usize {
            MASKED.with(|m| m.replace(true)) as usize
        }

        // Unmasking takes a pending kick at once, as the target does when it writes DAIF.
        // The stopper never restores with one of its locks held, so running works here is
        // allowed (see the contract).
        fn irq_restore(&self, saved: usize) {
            let unmask = saved == 0;
            if unmask {
                let me = self.cpu_id();
                self.take_kick(me);
            }
            MASKED.with(|m| m.set(!unmask));
        }

        // A spin. The host has fewer cores than there are "CPUs", so spinners yield.
        fn relax(&self) {
            std::hint::spin_loop();
            thread::yield_now();
        }

        // The wake "SGI": pending until cleared, and an unpark to end a sleep.
        fn wake(&self, cpus: CpuSet) {
            for cpu in cpus {
                self.wake[cpu].store(true, Ordering::Release);
                self.unpark(cpu);
            }
        }

        // Complete when it returns: a store. A wake sent after it is not lost (the stopper's
        // SeqCst fences order this store before the notifier's).
        fn clear_wake(&self) {
            assert!(MASKED.with(Cell::get), "clear_wake is called with IRQs masked");
            self.wake[self.cpu_id()].store(false, Ordering::Relaxed);
        }

        // `wfi` with IRQs masked: ended by a pending wake or kick (neither is taken here: the
        // kick stays pending for `irq_restore`), or by the deadline. It may return early (an
        // old park token): the stopper checks again.
        fn sleep(&self, deadline_ns: u64) {
            assert!(MASKED.with(Cell::get), "sleep is called with IRQs masked");
            let me = self.cpu_id();
            if self.wake[me].load(Ordering::Acquire) || self.kick[me].load(Ordering::Acquire) {
                return;
            }
            if deadline_ns == u64::MAX {
                thread::park();
            } else if let Some(left) = deadline_ns.checked_sub(self.now_ns()) {
                thread::park_timeout(Duration::from_nanos(left));
            }
        }

        // One monotonic clock for every CPU.
        fn now_ns(&self) -> u64 {
            self.start.get_or_init(Instant::now).elapsed().as_nanos() as u64
        }

        fn report(&self, args: fmt::Arguments<'_>) {
            self.reports.fetch_add(1, Ordering::Relaxed);
            eprintln!("stopper: {args}");
        }

        // Callbacks run with IRQs masked. A platform with an NMI-like path would open it here
        // for `halt`; this one has none (the default `halt` says so).
        fn run_callback(&self, f: &mut dyn FnMut() -> i32) -> i32 {
            assert!(MASKED.with(Cell::get), "callbacks run with IRQs masked");
            f()
        }
    }

    /// Set when the machine shuts down.
    static QUIT: AtomicBool = AtomicBool::new(false);

    /// A secondary CPU: its stopper loop.
    fn cpu_loop(me: usize) {
        CPU.with(|c| c.set(me));
        while STOPPERS.platform().threads.get().is_none() {
            thread::yield_now();
        }
        loop {
            // Everything queued (the kick's handler runs it too, whenever IRQs are unmasked).
            STOPPERS.run_works();
            // Nothing left: if `stop_machine_park` asked for it, flush and park.
            if STOPPERS.park() {
                println!("  cpu{me}: stopper parked");
            }
            if QUIT.load(Ordering::Acquire) {
                return;
            }
            // Idle, as the target's idle loop: mask, check, `wfi`, unmask (where a pending
            // kick is taken). A kick between the check and the park leaves a park token, so
            // the park returns at once: no kick is lost.
            let p = STOPPERS.platform();
            let irq = p.irq_save();
            if !p.kick[me].load(Ordering::Acquire) && !QUIT.load(Ordering::Acquire) {
                thread::park();
            }
            p.irq_restore(irq);
        }
    }

    fn me() -> usize {
        STOPPERS.platform().cpu_id()
    }

    /// Waits up to a second for `cond`, checking it every 100 us once the spin budget is spent.
    fn poll_until(cond: impl FnMut() -> bool) -> bool {
        let deadline = STOPPERS.platform().now_ns() + 1_000_000_000;
        // The channel only names what is waited for; nobody notifies this one.
        let chan = &QUIT as *const AtomicBool as usize;
        STOPPERS.wait_until_polled(chan, deadline, 100_000, cond)
    }

    fn masked() -> bool {
        MASKED.with(Cell::get)
    }

    /// Counts the checks that failed.
    struct Checks(usize);

    impl Checks {
        fn check<T: PartialEq + fmt::Debug>(&mut self, what: &str, got: T, want: T) {
            if got == want {
                println!("ok    {what}: {got:?}");
            } else {
                println!("WRONG {what}: {got:?}, expected {want:?}");
                self.0 += 1;
            }
        }
    }

    pub fn main() -> ExitCode {
        // This thread is CPU 0, the boot CPU.
        CPU.with(|c| c.set(0));
        // Every CPU's stopper enabled before anyone may send it work ("online").
        for cpu in 0..N {
            STOPPERS.stop_machine_unpark(cpu);
        }
        let handles: Vec<_> = (1..N)
            .map(|cpu| {
                thread::Builder::new().name(format!("cpu{cpu}")).spawn(move || cpu_loop(cpu))
            })
            .collect::<Result<_, _>>()
            .expect("spawn the CPU threads");
        let mut threads = vec![thread::current()];
        threads.extend(handles.iter().map(|h| h.thread().clone()));
        STOPPERS.platform().threads.set(threads).expect("set once");
        // A request that waits longer than this is reported (and failed): a bug, here.
        STOPPERS.set_watchdog(5_000_000_000);

        let mut c = Checks(0);

        // stop_one_cpu: on each CPU (CPU 0 too: its wait runs its own work), IRQs masked.
        for cpu in 0..N {
            let r = STOPPERS.stop_one_cpu(cpu, || if masked() { me() as i32 * 10 } else { -1 });
            c.check(
                &format!("stop_one_cpu({cpu}) returns 10 x the CPU it ran on"),
                r,
                Ok(cpu as i32 * 10),
            );
        }

        // stop_two_cpus: f runs on the first CPU while the second sits in its stopper too.
        let r = STOPPERS.stop_two_cpus(1, 3, || {
            let both = STOPPERS.running_mask();
            if me() == 1 && both.contains(1) && both.contains(3) { 0 } else { -1 }
        });
        c.check("stop_two_cpus(1, 3): f on cpu1 while cpu3 is stopped", r, Ok(0));

        // stop_machine: every CPU stopped; f runs on the CPUs asked for, once on one for None.
        let ran = AtomicUsize::new(0);
        let r = STOPPERS.stop_machine(
            || {
                ran.fetch_add(1, Ordering::Relaxed);
                if STOPPERS.running_mask() == CpuSet::first_n(N) { 0 } else { -1 }
            },
            Some(CpuSet::from_bits(0b0110)),
        );
        c.check("stop_machine(f, {1,2}): every CPU stopped", r, Ok(0));
        c.check("  CPUs f ran on", ran.load(Ordering::Relaxed), 2);
        let r = STOPPERS.stop_machine(|| me() as i32 + 100, None);
        c.check("stop_machine(f, None): f once, on the first CPU", r, Ok(100));

        // stop_cpus: f on each CPU of the set (no state machine: each runs when it is kicked);
        // the first non-zero result is the request's.
        let ran = AtomicUsize::new(0);
        let r = STOPPERS.stop_cpus(CpuSet::from_bits(0b1011), || {
            ran.fetch_add(1, Ordering::Relaxed);
            if me() == 2 { 7 } else { 0 }
        });
        c.check("stop_cpus({0,1,3})", (r, ran.load(Ordering::Relaxed)), (Ok(0), 3));
        let r = STOPPERS.stop_cpus(CpuSet::from_bits(0b1100), || if me() == 2 { 7 } else { 0 });
        c.check("stop_cpus({2,3}), where cpu2 fails with 7", r, Ok(7));

        // stop_one_cpu_nowait: a 'static buffer, queued from inside another CPU's callback.
        static NOWAIT_RAN_ON: AtomicUsize = AtomicUsize::new(usize::MAX);
        static F: fn() -> i32 = || {
            NOWAIT_RAN_ON.store(me(), Ordering::Relaxed);
            0
        };
        static WORK: NowaitWork = NowaitWork::new("example nowait", &F);
        let r = STOPPERS.stop_one_cpu(1, || STOPPERS.stop_one_cpu_nowait(2, &WORK) as i32);
        c.check("stop_one_cpu_nowait(2) from a callback on cpu1 is queued", r, Ok(1));
        // Wait the way the stoppers do (this CPU's own works run meanwhile), polling every
        // 100 us once the spin budget is spent: nobody notifies the end of a nowait work.
        let done = poll_until(|| !WORK.is_pending());
        c.check("  and runs, on cpu2", (done, NOWAIT_RAN_ON.load(Ordering::Relaxed)), (true, 2));

        // Refusals.
        let r = STOPPERS.stop_one_cpu(1, || match STOPPERS.stop_one_cpu(2, || 0) {
            Err(StopError::WouldDeadlock) => 0,
            _ => -1,
        });
        c.check("a stop request from inside a callback is refused", r, Ok(0));
        c.check("stop_two_cpus(1, 1)", STOPPERS.stop_two_cpus(1, 1, || 0), Err(StopError::SameCpu));
        c.check("stop_one_cpu(N)", STOPPERS.stop_one_cpu(N, || 0), Err(StopError::InvalidCpu));

        // A CPU going offline: stop_machine_park from a stop_machine callback on it (what
        // armstop-hotplug's take_cpu_down does), then its loop flushes and parks its stopper.
        let r = STOPPERS.stop_machine(
            || {
                STOPPERS.stop_machine_park(3);
                0
            },
            Some(CpuSet::single(3)),
        );
        c.check("stop_machine(park cpu3, {3})", r, Ok(0));
        let parked = poll_until(|| STOPPERS.is_parked(3));
        c.check("  cpu3's loop parked its stopper", parked, true);
        let ran3 = AtomicBool::new(false);
        let r = STOPPERS.stop_one_cpu(3, || {
            ran3.store(true, Ordering::Relaxed);
            0
        });
        c.check("stop_one_cpu(3) on a parked stopper", r, Err(StopError::NoEnt));
        c.check("  and f never ran", ran3.load(Ordering::Relaxed), false);
        let r = STOPPERS
            .stop_machine(|| STOPPERS.running_mask().contains(3) as i32, Some(CpuSet::first_n(N)));
        c.check("stop_machine without cpu3 (f never sees it stopped)", r, Ok(0));
        STOPPERS.stop_machine_unpark(3);
        c.check("back online: stop_one_cpu(3)", STOPPERS.stop_one_cpu(3, || me() as i32), Ok(3));

        // Shut down: every CPU leaves its loop.
        QUIT.store(true, Ordering::Release);
        for cpu in 1..N {
            STOPPERS.platform().unpark(cpu);
        }
        for h in handles {
            h.join().expect("a CPU thread panicked");
        }

        let stats = STOPPERS.stats();
        println!(
            "stats: {} sleeps, {} wakes, {} in-progress back-offs",
            stats.sleeps, stats.wakes, stats.in_progress_retries
        );
        c.check("parks with works still queued", stats.park_with_works, 0);
        c.check(
            "lines the stopper reported",
            STOPPERS.platform().reports.load(Ordering::Relaxed),
            0,
        );
        if c.0 == 0 {
            println!("all results as expected");
            ExitCode::SUCCESS
        } else {
            println!("{} results wrong", c.0);
            ExitCode::FAILURE
        }
    }
}
