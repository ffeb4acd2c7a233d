//! Per-CPU stoppers with the semantics of Linux's `kernel/stop_machine.c`, portable over a
//! small [`Platform`] trait: the same code runs on the target (GIC SGIs as kicks, IRQ masking,
//! the generic timer), on the host with std threads, and under `loom`. It is a component: any
//! `no_std` firmware (or a host program) with its own [`Platform`] can use it; armstop is one
//! such firmware.
//!
//! Every CPU runs a stopper loop that sleeps until kicked, then calls [`Stoppers::run_works`]:
//! it pops works in FIFO order under the stopper's lock and runs each with the lock released
//! and IRQs masked. Requests queue works and kick the stopper.
//!
//! | armstop | Linux | errors (errno) |
//! |---|---|---|
//! | [`Stoppers::stop_one_cpu`] | `stop_one_cpu` | `NoEnt` (ENOENT), `InvalidCpu` (EINVAL), `WouldDeadlock` (EDEADLK) |
//! | [`Stoppers::stop_one_cpu_nowait`] | `stop_one_cpu_nowait` | `false`, as Linux |
//! | [`Stoppers::stop_two_cpus`] | `stop_two_cpus` | `NoEnt`, `SameCpu` / `InvalidCpu` (EINVAL), `WouldDeadlock` |
//! | [`Stoppers::stop_cpus`] | `stop_cpus` | `NoEnt`, `InvalidCpu`, `WouldDeadlock` |
//! | [`Stoppers::try_stop_cpus`] | `try_stop_cpus` | `Busy` (EAGAIN), and as `stop_cpus` |
//! | [`Stoppers::stop_machine`] | `stop_machine`, and `stop_machine_cpuslocked`: it takes no CPU-hotplug lock (the participants are fixed under the stoppers' own mutex), so a hotplug operation may call it with its own lock held, as `armstop-hotplug`'s `cpu_down` does | `NoEnt`, `InvalidCpu`, `WouldDeadlock` |
//! | [`Stoppers::stop_machine_park`] | `stop_machine_park` | — |
//! | [`Stoppers::stop_machine_unpark`] | `stop_machine_unpark` | — |
//! | [`Stoppers::run_works`] | `cpu_stopper_thread` | — |
//! | [`Stoppers::park`] | `cpu_stop_park` (with the flush before it) | — |
//! | [`Stoppers::running`] | `print_stop_info` | — |
//! | [`Stoppers`] | the per-CPU `struct cpu_stopper`s (`enabled`: [`Stoppers::is_enabled`]) | — |
//! | [`NowaitWork`] | `struct cpu_stop_work`, the caller's buffer for `stop_one_cpu_nowait` | — |
//! | [`Caller`] | `cpu_stop_work`'s `fn` and `caller`, as `print_stop_info` prints them | — |
//! | [`MultiStopState`] | `enum multi_stop_state` (of `multi_cpu_stop`) | — |
//! | [`Stoppers::set_nr_cpu_ids`] | `nr_cpu_ids` | — |
//! | [`StopError`] | the negative errnos above ([`StopError::errno`]) | — |
//! | [`Platform::kick`] | waking the stopper thread (`wake_up_process`, through `cpu_stop_queue_work`'s wake queue) | — |
//! | [`Platform::irq_save`] / [`Platform::irq_restore`] | `local_irq_save` / `local_irq_restore`, and `preempt_disable` | — |
//! | [`Platform::relax`] | `stop_machine_yield` (`cpu_relax`) | — |
//!
//! Not provided: `stop_core_cpuslocked` and `stop_machine_from_inactive_cpu` (x86 only in
//! Linux). Linux's waits sleep in the scheduler; here a wait spins, then sleeps through
//! [`Platform::sleep`] until a notifier wakes it ([`Stoppers::wait_until`]).
//!
//! # Example
//!
//! A whole platform for a machine of one CPU, the calling thread (a request's wait runs the
//! calling CPU's own works, so nothing needs kicking). `examples/threads.rs` is the same on
//! four CPUs, each a std thread running its stopper loop (`cargo run -p armstop-stopper
//! --example threads`).
//!
//! ```
//! use armstop_stopper::{NowaitWork, Platform, StopError, Stoppers};
//! use std::time::Instant;
//!
//! struct OneCpu(Instant);
//!
//! impl Platform for OneCpu {
//!     fn cpu_id(&self) -> usize {
//!         0
//!     }
//!     // Nothing to wake: the only CPU is the one that queued the work, and it runs it.
//!     fn kick(&self, _cpu: usize) {}
//!     // No interrupts on this machine, so nothing to mask.
//!     fn irq_save(&self) -> usize {
//!         0
//!     }
//!     fn irq_restore(&self, _saved: usize) {}
//!     fn relax(&self) {
//!         std::hint::spin_loop();
//!     }
//!     fn now_ns(&self) -> u64 {
//!         self.0.elapsed().as_nanos() as u64
//!     }
//!     fn report(&self, args: std::fmt::Arguments<'_>) {
//!         eprintln!("{args}");
//!     }
//! }
//!
//! let s: Stoppers<OneCpu, 1> = Stoppers::new(OneCpu(Instant::now()));
//! s.stop_machine_unpark(0); // CPU 0 comes online: its stopper accepts works.
//!
//! assert_eq!(s.stop_one_cpu(0, || 42), Ok(42));
//! assert_eq!(s.stop_machine(|| 7, None), Ok(7));
//! assert_eq!(s.stop_one_cpu(1, || 0), Err(StopError::InvalidCpu));
//! // A stop request from inside a callback would wait for itself.
//! let inner = s.stop_one_cpu(0, || match s.stop_one_cpu(0, || 0) {
//!     Err(StopError::WouldDeadlock) => 0,
//!     _ => 1,
//! });
//! assert_eq!(inner, Ok(0));
//!
//! // Fire and forget: the buffer outlives the request. The stopper loop's body runs it.
//! static F: fn() -> i32 = || 0;
//! static WORK: NowaitWork = NowaitWork::new("example work", &F);
//! assert!(s.stop_one_cpu_nowait(0, &WORK));
//! assert!(WORK.is_pending());
//! assert_eq!(s.run_works(), 1);
//! assert!(!WORK.is_pending());
//!
//! // Going offline: the stopper is flushed and parked; requests then fail, f never runs.
//! s.stop_machine_park(0);
//! assert!(s.park());
//! assert_eq!(s.stop_one_cpu(0, || 1), Err(StopError::NoEnt));
//! ```
//!
//! # What a firmware provides
//!
//! A [`Platform`] (what each method may and must do is in its table and its `# Contract`
//! sections), one [`Stoppers`] shared by every CPU (a `static`: [`Stoppers::new`] is `const`),
//! and on every CPU a loop that:
//! - calls [`Stoppers::run_works`] whenever the CPU is kicked ([`Platform::kick`]): from the
//!   kick's interrupt handler, so that a stopper preempts whatever the CPU runs, and from its
//!   idle loop; a kick that arrives while it is not looking must not be lost;
//! - calls [`Stoppers::park`] when it has nothing else to do, so that a
//!   [`Stoppers::stop_machine_park`] is honoured (`armstop-hotplug`'s `dying_step` does this
//!   and more);
//! - enables its stopper with [`Stoppers::stop_machine_unpark`] before the CPU counts as
//!   online.
//!
//! Requests are made from any CPU, outside callbacks; every caller of a [`Stoppers`] method
//! is one of its `N` CPUs ([`Platform::cpu_id`] below `N`).
//!
//! # Failure and the watchdog
//!
//! Every waiting request may also fail with `TimedOut` (ETIMEDOUT): past the watchdog limit

//! ([`Stoppers::set_watchdog`]), after the report naming each CPU waited for and what it runs,
//! the requester takes its request back: a multi-CPU stop moves to ABORT (waiting participants
//! leave), works not yet started are unlinked under their stopper's lock, and each CPU still
//! inside the callback after another period is claimed and halted through
//! [`Platform::halt`] (disabled for good: [`Stoppers::is_halted`]). Only then does the call
//! return, so no CPU touches the requester's frame afterwards. Linux only warns and waits. A
//! CPU the platform cannot halt (no NMI-like path, or stuck with interrupts masked outside a
//! callback) is waited for, with a report each period, for as long as it takes.
//!
//! The core guarantee is stated, once, where it is kept: in `Stoppers::queue_work`.
//!
//! A callback returns an `i32`; non-zero is a failure, reported to the requester (the first
//! non-zero one, for multi-CPU requests). Callbacks must not wait for other stoppers (a stop
//! request from inside a callback is refused with [`StopError::WouldDeadlock`]); queueing a
//! nowait work from a callback is fine.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub use armstop_sync as sync;
pub use armstop_sync::{array_of, loom_const_fn};

#[cfg(loom)]
pub mod model;

use core::cell::Cell;
use core::fmt;
use core::panic::Location;

pub use armstop_cpuset::{AtomicCpuSet, CpuSet, MAX_CPUS, ParseCpuSetError};

use sync::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, Mutex, Ordering, fence};

/// What the stopper needs from the machine it runs on: one value, shared by every CPU.
///
/// The stopper calls these methods from every context it has: with IRQs masked
/// ([`Platform::irq_save`] in force), inside works, inside a multi-CPU stop while every other
/// CPU spins with IRQs masked waiting for this one, and a few with one of its own locks held (a
/// CPU's work list). What each method may do follows from that; the table sums it up and each
/// method's `# Contract` gives the detail and the reason. Nothing here is a guess about a
/// future use: each line is something the code in this crate does or relies on. "Stopper
/// lock" means one of the stoppers' own locks; "the stoppers" means the [`Stoppers`] this
/// platform belongs to.
///
/// | method | called | must never | the stopper relies on |
/// |---|---|---|---|
/// | [`cpu_id`](Platform::cpu_id) | everywhere, any IRQ state | block | the caller's id, `< N`, the same on every call from that CPU, distinct per CPU |
/// | [`kick`](Platform::kick), [`kick_set`](Platform::kick_set) | after queueing, no stopper lock held; IRQs masked or not; the target may be the caller | wait for the target; run the works on the calling CPU before it returns | the target runs [`Stoppers::run_works`] afterwards and then sees what was queued before the kick; a kick is never lost (pending until served) and ends a [`sleep`](Platform::sleep) |
/// | [`irq_save`](Platform::irq_save), [`irq_restore`](Platform::irq_restore) | around every stopper lock and every work; nested, last saved first restored | block | while masked, this CPU does not start its works on a kick; a kick that arrives meanwhile stays pending |
/// | [`relax`](Platform::relax) | in every spin: IRQs masked, inside works and callbacks, every other CPU stopped; no stopper lock held | take a stopper lock, make a request, block (except where it is the halt point, see [`halt`](Platform::halt)) | it returns |
/// | [`wake`](Platform::wake) | by a notifier: IRQs masked or not, inside works, and with a stopper lock held (a halted CPU's works dropped) | block, wait for the target, take a stopper lock | pending until the target's next [`clear_wake`](Platform::clear_wake); what the notifier stored before it is visible to the sleeper once its `sleep` returns |
/// | [`clear_wake`](Platform::clear_wake) | before each sleep, IRQs masked, on the sleeper | block | complete when it returns: it discards earlier wakes, never a later one |
/// | [`sleep`](Platform::sleep) | IRQs masked, by a waiter, also inside works | take the interrupts that end it (no works run inside) | it returns on a pending wake or kick, and by its deadline; it may return early |
/// | [`now_ns`](Platform::now_ns) | everywhere, IRQs masked too | block, go backwards | one monotonic clock for every CPU |
/// | [`report`](Platform::report) | on watchdog and bug paths: IRQs masked, inside multi-CPU stops, with a stopper lock held | wait for another CPU (such as a console lock a stopped CPU holds), take a stopper lock, make a request | it returns |
/// | [`run_callback`](Platform::run_callback) | once per callback, IRQs masked, no stopper lock held | run anything but `f`, return with IRQs open | `f` runs once, on this CPU, and its value is returned |
/// | [`halt`](Platform::halt) | by a requester whose watchdog ran out, no stopper lock held | return `true` while the CPU can still touch memory | `true`: the CPU never touches memory again |
///
/// The defaults of the optional methods are consistent with each other: without
/// [`wake`](Platform::wake) a platform must not sleep either (the default
/// [`sleep`](Platform::sleep) only relaxes), and without [`halt`](Platform::halt) a stuck
/// callback is waited for.
///
/// On top of the platform, each CPU needs the loop described in the crate docs ("What a
/// firmware provides"); `examples/threads.rs` is a complete platform and loop on std threads.
pub trait Platform: Sync {
    /// The calling CPU's logical id.
    ///
    /// # Contract
    /// Below the stoppers' `N`, the same for every call made on one CPU and different from
    /// every other CPU's: it indexes the per-CPU tables (an id at or above `N` panics). Called
    /// from every context, including with IRQs masked inside a multi-CPU stop, so it must not
    /// block; on the target it reads a system register, on the host a thread-local.
    fn cpu_id(&self) -> usize;

    /// Wakes `cpu`'s stopper loop (an SGI on the target), so that it runs
    /// [`Stoppers::run_works`].
    ///
    /// # Contract
    /// Called right after a work was queued on `cpu`, once the work list's lock has been
    /// released, never with a stopper lock held. IRQs may be masked (a callback queueing a
    /// nowait work) or not. `cpu` may be the calling CPU (`stop_one_cpu` on itself).
    ///
    /// - **Ordering.** The work was queued under `cpu`'s list lock, released before the kick.
    ///   Once `cpu` reacts to the kick (takes its lock in `run_works`), it must see that work:
    ///   the kick must not overtake the stores before it. On the target a `dsb` comes before
    ///   the SGI is sent; on the host, `Thread::unpark` happens before the `park` it ends
    ///   returns (or a flag stored with `Release` and read with `Acquire`).
    /// - **Never lost.** A kick must not be lost when it lands while `cpu` is between finding
    ///   its list empty and going idle, or while it has IRQs masked: it stays pending (as an
    ///   SGI does) until `cpu` runs its works, and a pending kick ends [`Platform::sleep`]
    ///   (a waiter checks its list before it sleeps and relies on a later kick ending the
    ///   sleep). Kicks may be merged: one `run_works` serves them all. A spurious kick is
    ///   harmless.
    /// - **Must not** wait for `cpu` to respond (it may be spinning with IRQs masked in a
    ///   multi-CPU stop, waiting for this CPU), and must not run the works itself before it
    ///   returns: when the calling CPU is the target, its works run later, when it restores
    ///   its IRQs or comes back to its loop. (`stop_two_cpus` kicks both CPUs with IRQs
    ///   masked and relies on its own half not starting, and waiting for the other, before
    ///   the other is kicked.)
    fn kick(&self, cpu: usize);

    /// Wakes the stopper loops of every CPU in `cpus` ([`Platform::kick`] each, by default; one
    /// SGI to the set on the target).
    ///
    /// # Contract
    /// As [`Platform::kick`], for each CPU of `cpus`. Called by `stop_two_cpus`, `stop_cpus`
    /// and `stop_machine` once every work is queued and every list lock released, with IRQs
    /// masked (so that the calling CPU, often one of `cpus`, starts its own work only once
    /// every other CPU has been kicked).
    fn kick_set(&self, cpus: CpuSet) {
        for cpu in cpus {
            self.kick(cpu);
        }
    }

    /// Masks IRQs on this CPU, returning what to restore. While masked, this CPU's stopper
    /// must not run (on the target, kicks are IRQs): that is the stopper's `preempt_disable`.
    ///
    /// # Contract
    /// Called around every access to a work list (so that a kick's handler never finds its own
    /// CPU's list lock held) and around every work it runs (works run masked); calls nest, and
    /// each [`Platform::irq_restore`] gets the value of the matching, most recent `irq_save`.
    /// While masked, a kick must not make this CPU start its works; the kick stays pending.
    /// Must not block. A platform whose kicks are never taken asynchronously (host threads that
    /// only run works from their loop and from the stoppers' own waits) has nothing to mask and
    /// may return anything.
    fn irq_save(&self) -> usize;

    /// Restores the IRQ state [`Platform::irq_save`] returned.
    ///
    /// # Contract
    /// Called with no stopper lock held. Restoring an unmasked state may take a pending kick
    /// at once and run this CPU's works inside this call (as the target's SGI handler does):
    /// the stopper only restores where that is allowed. Must not block otherwise.
    fn irq_restore(&self, saved: usize);

    /// Spin-wait hint (and, under loom, a yield).
    ///
    /// # Contract
    /// Called in every spin: a waiter's spin before it sleeps, a multi-CPU stop's participants
    /// (IRQs masked, every other CPU stopped), a CPU claimed by a requester's watchdog (inside
    /// [`Platform::run_callback`]), and [`Stoppers::running`]'s bounded retries. Never with a
    /// stopper lock held. It must return (soon): it must not take a stopper lock, make a stop
    /// request or wait for another CPU. It may read the lock-free state
    /// ([`Stoppers::running_mask`]; armstop drives its activity LED from here), and yield the
    /// host thread (a host with fewer cores than "CPUs" needs that). The one exception to
    /// "returns": a platform may make it the point where [`Platform::halt`] reaches a CPU,
    /// which then never returns (the host tests do).
    fn relax(&self);

    /// Wakes the CPUs of `cpus` from [`Platform::sleep`] (an SGI on the target).
    ///
    /// # Contract
    /// Called by a notifier once it has changed what the sleepers of `cpus` wait for and seen
    /// them announced as sleeping (after a `SeqCst` fence; see `Stoppers::sleep_once`). It is
    /// called with IRQs masked or not, from inside works (a multi-CPU stop's last
    /// acknowledgement, a completed work), and with a stopper lock held (a halted CPU's queued
    /// works are dropped, and their requesters woken, under its list lock). So it must not
    /// block, wait for the targets, or take a stopper lock.
    ///
    /// - **Pending.** A wake sent after the target's last [`Platform::clear_wake`] must end
    ///   its next `sleep` (it stays pending until then, as an SGI does), even if the target is
    ///   not asleep yet when it is sent.
    /// - **Ordering.** What the notifier stored before the wake must be visible to the target
    ///   once its `sleep` returns because of it: the sleeper checks its condition again then,
    ///   and no second wake comes.
    ///
    /// The default does nothing: a platform without it must not sleep either (see `sleep`'s
    /// default).
    fn wake(&self, cpus: CpuSet) {
        let _ = cpus;
    }

    /// Discards the wakes sent to this CPU so far (clears its pending wake SGI), so that a
    /// stale one does not end the next `sleep` at once.
    ///
    /// # Contract
    /// Called on the sleeper with IRQs masked, before it announces that it sleeps. It must be
    /// complete when it returns: a wake sent after that (by a notifier that saw the
    /// announcement) must survive it. Discarding earlier wakes is optional: the default does
    /// nothing, and a stale wake then only ends a sleep early, which the stopper tolerates.
    fn clear_wake(&self) {}

    /// Sleeps until a wake (see [`Platform::wake`]), a kick, any other interrupt, or the time
    /// `deadline_ns` ([`Platform::now_ns`]'s clock; `u64::MAX`: none); may return early. Called
    /// with IRQs masked (a pending interrupt still ends it, as `wfi` does). The default only
    /// relaxes: a platform that cannot sleep spins.
    ///
    /// # Contract
    /// Called by a waiter with IRQs masked, after it announced itself and checked its condition
    /// (and, outside works, its work list) a last time: by requesters, by `lock_waiting`, by
    /// hotplug's waits, and inside works, by a multi-CPU stop's participants between states.
    ///
    /// - It must return on a wake sent after this CPU's last [`Platform::clear_wake`], on a
    ///   kick sent after the waiter checked its list, and at (or soon after) `deadline_ns`: the
    ///   watchdog and the polled waits ([`Stoppers::wait_until_polled`]) depend on the
    ///   deadline.
    /// - It may return early, for any reason: the caller checks again and sleeps again.
    /// - It must not take the interrupts that end it, nor run works: a participant sleeps
    ///   inside its own work and must not run another one there. It returns with IRQs masked.
    fn sleep(&self, deadline_ns: u64) {
        let _ = deadline_ns;
        self.relax();
    }

    /// Monotonic time in nanoseconds, for the watchdog.
    ///
    /// # Contract
    /// One clock for every CPU: a multi-CPU stop's state time is taken on one CPU and compared
    /// on the others, and deadlines given to [`Platform::sleep`] are in it. It must never go
    /// backwards (small skew between CPUs only delays a report: differences saturate). Called
    /// everywhere, with IRQs masked too, so it must not block. A clock that never advances
    /// (loom's) turns the watchdog and every deadline off.
    fn now_ns(&self) -> u64;

    /// Prints a diagnostic line (watchdog reports, detected bugs).
    ///
    /// # Contract
    /// Called on the watchdog's and the bug paths: with IRQs masked, by a multi-CPU stop's
    /// participant while every other CPU is stopped, and with a stopper lock held (the works a
    /// halted CPU drops are named under its list lock). It must return without waiting for
    /// another CPU (a console lock that a stopped CPU holds would deadlock: armstop forces the
    /// line out), and must not take a stopper lock or make a request. Nothing is reported on a
    /// healthy machine.
    fn report(&self, args: fmt::Arguments<'_>);

    /// Runs a request's own callback `f` on this CPU, inside its stopper work (IRQs masked by
    /// [`Platform::irq_save`]). A platform that can halt a CPU stuck in a callback
    /// ([`Platform::halt`]) opens the one path its halt needs here and closes it again before
    /// returning (on the target: IRQs unmasked with the GIC's priority mask raised, so only the
    /// halt SGI gets through). The default just calls `f`.
    ///
    /// # Contract
    /// Called once for each callback run: by [`Stoppers::run_works`] for a work of its own
    /// (`stop_one_cpu`, a nowait work, each CPU's work of `stop_cpus`), and on each active CPU
    /// of a multi-CPU stop in its RUN state, with IRQs masked and no stopper lock held. It must call `f` exactly once, on this CPU, and return its value, with the
    /// IRQ state it was called with. Whatever it opens must let nothing but the halt through:
    /// a kick's handler running inside would run works inside a work. `f` may never return
    /// (the CPU is halted inside it).
    fn run_callback(&self, f: &mut dyn FnMut() -> i32) -> i32 {
        f()
    }

    /// Halts `cpu`, which a requester whose watchdog ran out found inside
    /// [`Platform::run_callback`] and has claimed (it will not return from the callback into
    /// the request's memory until halted or given back). `true` means: once this returns, `cpu`
    /// never touches memory again (it is parked for good, or off). `false`: this platform cannot
    /// reach it (no NMI-like path; the default), and the request keeps waiting for it.
    ///
    /// # Contract
    /// Called on the requester's CPU, outside any stopper lock and outside callbacks, once per
    /// stuck CPU and watchdog period. It may block until `cpu` has acknowledged (armstop waits a
    /// bounded time for the halt SGI's answer), since the requester frees the request's memory
    /// as soon as this returns `true`: `true` before `cpu` has stopped is a use-after-free.
    /// Whatever the callback held stays held; the stopper disables `cpu` for good.
    fn halt(&self, cpu: usize) -> bool {
        let _ = cpu;
        false
    }
}

/// Why a stop request failed. Each maps to the errno Linux returns in the same situation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopError {
    /// A target stopper is disabled (its CPU is offline or going down); the function did not
    /// run there. Linux: `-ENOENT`.
    NoEnt,
    /// A CPU id or mask names a CPU this system does not have. Linux: `-EINVAL`.
    InvalidCpu,
    /// `stop_two_cpus` with the same CPU twice. Linux: `-EINVAL` (it would deadlock).
    SameCpu,
    /// `try_stop_cpus` found another `stop_cpus`/`stop_machine` in progress. Linux: `-EAGAIN`.
    Busy,
    /// A waiting stop request made from inside a stopper callback, which would wait for
    /// itself. Linux forbids it (callbacks run non-preemptible); `-EDEADLK`.
    WouldDeadlock,
    /// The watchdog ran out ([`Stoppers::set_watchdog`]) and the request was failed: works not
    /// yet started were unlinked (they never run), a multi-CPU stop was aborted, and every CPU
    /// still inside the callback was halted ([`Platform::halt`]) before this was returned, so no
    /// CPU touches the request's memory again. Linux only warns and waits. `-ETIMEDOUT`.
    TimedOut,
}

impl StopError {
    /// The Linux errno (negative) for this error.
    pub const fn errno(self) -> i32 {
        match self {
            Self::NoEnt => -2,
            Self::InvalidCpu | Self::SameCpu => -22,
            Self::Busy => -11,
            Self::WouldDeadlock => -35,
            Self::TimedOut => -110,
        }
    }
}

impl fmt::Display for StopError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoEnt => "stopper disabled (CPU offline or going down)",
            Self::InvalidCpu => "no such CPU",
            Self::SameCpu => "stop_two_cpus needs two different CPUs",
            Self::Busy => "another stop_cpus/stop_machine is in progress",
            Self::WouldDeadlock => "stop request from inside a stopper callback",
            Self::TimedOut => "stop request failed by the watchdog (stuck CPUs halted)",
        })
    }
}

/// Completion of a request: how many works are still to finish, and the first failure.
pub struct Done {
    nr_todo: AtomicUsize,
    ret: AtomicI32,
    /// Set when one of its works was dropped unrun from a halted CPU's stopper
    /// ([`Stoppers::halted`]): the requester then gets `NoEnt`.
    dropped: AtomicBool,
    /// The CPU that waits for it, to be woken by the last `signal`.
    waiter: usize,
}

impl Done {
    fn new(n: usize, waiter: usize) -> Self {
        Self {
            nr_todo: AtomicUsize::new(n),
            ret: AtomicI32::new(0),
            dropped: AtomicBool::new(false),
            waiter,
        }
    }

    /// Records `ret` and counts one work finished (or not queued); the last one wakes the
    /// waiter if it sleeps. The waiter may free `self` as soon as the count reaches zero, so
    /// the decrement is the last access: the wake goes through the stoppers' sleeper table,
    /// keyed by this `Done`'s address, which is only compared, never dereferenced.
    fn signal<P: Platform, const N: usize>(&self, ret: i32, s: &Stoppers<P, N>) {
        if ret != 0 {
            let _ = self.ret.compare_exchange(0, ret, Ordering::Relaxed, Ordering::Relaxed);
        }
        let (chan, waiter) = (self.chan(), self.waiter);
        if self.nr_todo.fetch_sub(1, Ordering::AcqRel) == 1 {
            s.notify_cpu(chan, waiter);
        }
    }

    fn chan(&self) -> usize {
        self as *const Self as usize
    }

    fn finished(&self) -> bool {
        self.nr_todo.load(Ordering::Acquire) == 0
    }
}

/// Who asked for a work and what it runs, for diagnostics (Linux's `print_stop_info`).
#[derive(Clone, Copy, Debug)]
pub struct Caller {
    /// The callback's type name (for a function item, its path).
    pub func: &'static str,
    /// Where the request was made.
    pub location: &'static Location<'static>,
}

impl fmt::Display for Caller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} <- {}", self.func, self.location)
    }
}

/// One queued callback. Linked into a stopper's list (under its lock) while pending.
struct Work<'a> {
    next: Cell<*const Work<'static>>,
    func: &'a (dyn Fn() -> i32 + Sync),
    done: Option<&'a Done>,
    /// For nowait works: cleared once the work has run, so its buffer may be queued again.
    pending: Option<&'a AtomicBool>,
    caller: Caller,
    /// `func` is a multi-CPU stop's participant (`MultiStop::run`), which runs the request's
    /// callback itself; otherwise `func` is the request's callback.
    multi: bool,
}

impl<'a> Work<'a> {
    fn new(func: &'a (dyn Fn() -> i32 + Sync), done: Option<&'a Done>, caller: Caller) -> Self {
        Self { next: Cell::new(core::ptr::null()), func, done, pending: None, caller, multi: false }
    }
}

/// A stopper's pending works, oldest first.
struct List {
    head: *const Work<'static>,
    tail: *const Work<'static>,
}

// SAFETY: the list is only reached through its stopper's mutex; the works it points to are
// kept alive by their requesters until they have run or been completed (see `queue_work`).
unsafe impl Send for List {}

impl List {
    const EMPTY: List = List { head: core::ptr::null(), tail: core::ptr::null() };

    fn is_empty(&self) -> bool {
        self.head.is_null()
    }

    fn push_back(&mut self, w: *const Work<'static>) {
        // SAFETY: `w` is alive while queued (see `queue_work`); `next` is only touched under
        // the stopper lock, which the caller holds (`&mut self`).
        unsafe {
            (*w).next.set(core::ptr::null());
            if self.tail.is_null() {
                self.head = w;
            } else {
                (*self.tail).next.set(w);
            }
        }
        self.tail = w;
    }

    /// Removes `w` if it is queued here; returns whether it was.
    fn unlink(&mut self, w: *const Work<'static>) -> bool {
        let mut prev: *const Work<'static> = core::ptr::null();
        let mut cur = self.head;
        while !cur.is_null() {
            // SAFETY: queued works are alive (see `queue_work`); `next` is only touched under
            // the stopper lock, which the caller holds (`&mut self`).
            let next = unsafe { (*cur).next.get() };
            if core::ptr::eq(cur, w) {
                if prev.is_null() {
                    self.head = next;
                } else {
                    // SAFETY: as above.
                    unsafe { (*prev).next.set(next) };
                }
                if core::ptr::eq(self.tail, w) {
                    self.tail = prev;
                }
                return true;
            }
            prev = cur;
            cur = next;
        }
        false
    }

    fn pop_front(&mut self) -> Option<*const Work<'static>> {
        if self.head.is_null() {
            return None;
        }
        let w = self.head;
        // SAFETY: as in `push_back`.
        self.head = unsafe { (*w).next.get() };
        if self.head.is_null() {
            self.tail = core::ptr::null();
        }
        Some(w)
    }
}

/// One CPU's stopper.
struct CpuStopper {
    /// Whether works may be queued. Cleared locklessly by `stop_machine_park`, set by
    /// `stop_machine_unpark`; read under `works`' lock by every queuer.
    enabled: AtomicBool,
    park_requested: AtomicBool,
    parked: AtomicBool,
    works: Mutex<List>,
    /// What the stopper runs now, for the watchdog.
    running: Mutex<Option<Caller>>,
    in_callback: AtomicBool,
    runs: AtomicU64,
    /// The work popped and not yet completed (its address; 0: none). Set under `works`' lock
    /// when popped, cleared before the work is completed, so a requester that holds its own
    /// work alive can tell whether this CPU is still in it.
    current: AtomicUsize,
    /// Where this CPU is relative to a request's callback: [`USER_IDLE`], [`USER_IN`] (inside
    /// [`Platform::run_callback`]), [`USER_CLAIMED`] (a requester's watchdog claimed it: it
    /// must not leave the callback until halted or given back).
    user: AtomicU32,
    /// The multi-CPU stop this CPU takes part in (its `MultiStop`'s address; 0: none), for
    /// [`Stoppers::recover_fault`].
    multi: AtomicUsize,
    /// The `Done` this CPU waits for as a requester (0: none), for `recover_fault`.
    waiting: AtomicUsize,
    /// Halted by a watchdog ([`Platform::halt`]): never runs again; stopper disabled for good.
    halted: AtomicBool,
}

/// [`CpuStopper::user`]: not in a request's callback.
const USER_IDLE: u32 = 0;
/// [`CpuStopper::user`]: inside a request's callback.
const USER_IN: u32 = 1;
/// [`CpuStopper::user`]: claimed by a requester whose watchdog ran out.
const USER_CLAIMED: u32 = 2;

impl CpuStopper {
    crate::loom_const_fn! {
        fn new() -> Self {
            Self {
                enabled: AtomicBool::new(false),
                park_requested: AtomicBool::new(false),
                parked: AtomicBool::new(true),
                works: Mutex::new(List::EMPTY),
                running: Mutex::new(None),
                in_callback: AtomicBool::new(false),
                runs: AtomicU64::new(0),
                current: AtomicUsize::new(0),
                user: AtomicU32::new(USER_IDLE),
                multi: AtomicUsize::new(0),
                waiting: AtomicUsize::new(0),
                halted: AtomicBool::new(false),
            }
        }
    }
}

/// The multi-CPU state machine's states (Linux's `enum multi_stop_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u32)]
pub enum MultiStopState {
    /// Not started.
    None = 0,
    /// Every participant has entered its stopper.
    Prepare = 1,
    /// Every participant has masked interrupts. Folded into [`MultiStopState::Prepare`] here:
    /// a participant masks interrupts before it acknowledges PREPARE (works run masked), so once
    /// every one has, they all have, and the machine goes on to RUN without this round. Kept
    /// for the numbering and the names in watchdog reports.
    DisableIrq = 2,
    /// The active CPUs run the function.
    Run = 3,
    /// Leaving.
    Exit = 4,
    /// The requester's watchdog failed the request: every participant leaves at once, without
    /// acknowledging (the state machine goes nowhere from here).
    Abort = 5,
}

impl MultiStopState {
    fn from_u32(v: u32) -> Self {
        match v {
            0 => Self::None,
            1 => Self::Prepare,
            2 => Self::DisableIrq,
            3 => Self::Run,
            4 => Self::Exit,
            _ => Self::Abort,
        }
    }
}

/// Shared data of one `stop_two_cpus`/`stop_machine` (Linux's `struct multi_stop_data`).
/// Lives on the requester's stack; the requester waits for every participant's completion,
/// which each signals only after its last access here.
struct MultiStop<'a> {
    func: &'a (dyn Fn() -> i32 + Sync),
    num_threads: usize,
    active: CpuSet,
    state: AtomicU32,
    thread_ack: AtomicUsize,
    acked: AtomicCpuSet,
    state_since: AtomicU64,
    reported: AtomicU32,
    /// The CPU that made the request: the participant that aborts when the watchdog runs out
    /// (it then goes on to fail the request, see `Stoppers::fail_request`).
    requester: usize,
}

/// Counters that tests and benchmarks read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Times `stop_two_cpus` backed off because a `stop_cpus` was queueing.
    pub in_progress_retries: u64,
    /// Times a stopper parked with works still queued (a bug; must stay 0).
    pub park_with_works: u64,
    /// Watchdog reports printed.
    pub watchdog_reports: u64,
    /// Times a waiter went to sleep after its spin budget ran out.
    pub sleeps: u64,
    /// Wakes sent to sleeping waiters (one per CPU woken).
    pub wakes: u64,
    /// Requests the watchdog failed ([`StopError::TimedOut`]).
    pub timed_out: u64,
    /// CPUs halted by a watchdog ([`Platform::halt`] returned true).
    pub halts: u64,
    /// Times a stuck CPU could not be halted (the request kept waiting for it).
    pub halt_refused: u64,
    /// Requests that fault recovery completed for a CPU whose callback faulted
    /// ([`Stoppers::recover_fault`]).
    pub fault_recoveries: u64,
}

/// The spin budget that means "never sleep": every wait spins, as Linux's `multi_cpu_stop`.
pub const SPIN_ONLY: u64 = u64::MAX;

/// A spin budget as a setting spells it: a number of ns, or `spin` for [`SPIN_ONLY`] (what the
/// host machines and loom models read from `ARMSTOP_SPIN_NS`).
pub fn parse_spin_ns(v: &str) -> Option<u64> {
    if v == "spin" { Some(SPIN_ONLY) } else { v.parse().ok() }
}

/// The default spin budget ([`Stoppers::set_spin_ns`]): long enough that on hardware, where a
/// stop request completes in a few microseconds, waits stay on the spin path; short enough
/// that a waiter whose CPU is needed elsewhere (a vCPU on an overcommitted host) gives it back
/// soon.
pub const DEFAULT_SPIN_NS: u64 = 20_000;

/// Every CPU's stopper, and the request API.
pub struct Stoppers<P: Platform, const N: usize> {
    platform: P,
    cpus: [CpuStopper; N],
    /// Linux's `stop_cpus_in_progress`: set while `stop_cpus` queues its works one CPU at a
    /// time, so `stop_two_cpus` cannot queue in between in the opposite order.
    stop_cpus_in_progress: AtomicBool,
    stop_cpus_mutex: Mutex<()>,
    watchdog_ns: AtomicU64,
    /// Whether a request past the watchdog is failed (`fail_request`) or only reported.
    watchdog_fails: AtomicBool,
    in_progress_retries: AtomicU64,
    park_with_works: AtomicU64,
    watchdog_reports: AtomicU64,
    /// How long a wait spins before it sleeps ([`SPIN_ONLY`]: never sleeps).
    spin_ns: AtomicU64,
    /// Per CPU: what it sleeps on (a channel: the address of what it waits for), 0 if awake.
    /// Written by the sleeper only; read by every notifier (see `sleep_once`).
    sleepers: [AtomicUsize; N],
    sleeps: AtomicU64,
    wakes: AtomicU64,
    timed_out: AtomicU64,
    halts: AtomicU64,
    halt_refused: AtomicU64,
    fault_recoveries: AtomicU64,
    /// Linux's `nr_cpu_ids`: ids at or above it are `InvalidCpu` (at most `N`).
    nr_cpu_ids: AtomicUsize,
}

// SAFETY: all shared state is in atomics and mutexes; the raw work pointers in the lists are
// only dereferenced under the rules in `queue_work`.
unsafe impl<P: Platform, const N: usize> Sync for Stoppers<P, N> {}

const fn bit(cpu: usize) -> CpuSet {
    CpuSet::single(cpu)
}

/// The CPUs below `n` that `pred` holds for.
fn cpus_where(n: usize, pred: impl Fn(usize) -> bool) -> CpuSet {
    (0..n).filter(|&c| pred(c)).collect()
}

impl<P: Platform, const N: usize> Stoppers<P, N> {
    crate::loom_const_fn! {
        /// Stoppers for `N` CPUs, all disabled until [`Stoppers::stop_machine_unpark`].
        pub fn new(platform: P) -> Self {
            assert!(N >= 1 && N <= MAX_CPUS);
            Self {
                platform,
                cpus: crate::array_of![CpuStopper::new(); N],
                stop_cpus_in_progress: AtomicBool::new(false),
                stop_cpus_mutex: Mutex::new(()),
                watchdog_ns: AtomicU64::new(0),
                watchdog_fails: AtomicBool::new(true),
                in_progress_retries: AtomicU64::new(0),
                park_with_works: AtomicU64::new(0),
                watchdog_reports: AtomicU64::new(0),
                spin_ns: AtomicU64::new(DEFAULT_SPIN_NS),
                sleepers: crate::array_of![AtomicUsize::new(0); N],
                sleeps: AtomicU64::new(0),
                wakes: AtomicU64::new(0),
                timed_out: AtomicU64::new(0),
                halts: AtomicU64::new(0),
                halt_refused: AtomicU64::new(0),
                fault_recoveries: AtomicU64::new(0),
                nr_cpu_ids: AtomicUsize::new(N),
            }
        }
    }

    /// Sets how many CPUs the machine has (Linux's `nr_cpu_ids`), found at boot; `N` is only
    /// the room the stoppers have. Ids from `n` on are then [`StopError::InvalidCpu`]. Clamped
    /// to `1..=N`; set it before any CPU is enabled.
    pub fn set_nr_cpu_ids(&self, n: usize) {
        self.nr_cpu_ids.store(n.clamp(1, N), Ordering::Relaxed);
    }

    /// How many CPU ids are valid (see [`Stoppers::set_nr_cpu_ids`]).
    pub fn nr_cpu_ids(&self) -> usize {
        self.nr_cpu_ids.load(Ordering::Relaxed)
    }

    /// The platform.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// Sets how long a request may wait before the watchdog reports what each stopper it
    /// waits for is running (0 = never).
    pub fn set_watchdog(&self, ns: u64) {
        self.watchdog_ns.store(ns, Ordering::Relaxed);
    }

    /// Whether a request the watchdog reported is then failed with [`StopError::TimedOut`]
    /// (the default; its stuck CPUs halted), or only reported and waited for, as Linux does
    /// (`false`: for a callback known to be slow but finite, and for tests of the report).
    pub fn set_watchdog_fails(&self, fails: bool) {
        self.watchdog_fails.store(fails, Ordering::Relaxed);
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            in_progress_retries: self.in_progress_retries.load(Ordering::Relaxed),
            park_with_works: self.park_with_works.load(Ordering::Relaxed),
            watchdog_reports: self.watchdog_reports.load(Ordering::Relaxed),
            sleeps: self.sleeps.load(Ordering::Relaxed),
            wakes: self.wakes.load(Ordering::Relaxed),
            timed_out: self.timed_out.load(Ordering::Relaxed),
            halts: self.halts.load(Ordering::Relaxed),
            halt_refused: self.halt_refused.load(Ordering::Relaxed),
            fault_recoveries: self.fault_recoveries.load(Ordering::Relaxed),
        }
    }

    /// Sets how long every wait (a requester's, a multi-CPU stop participant's, the back-offs,
    /// and hotplug's through [`Stoppers::wait_until`]) spins before it sleeps until woken:
    /// [`SPIN_ONLY`] never sleeps, 0 sleeps at once. Takes effect from the next wait.
    pub fn set_spin_ns(&self, ns: u64) {
        self.spin_ns.store(ns, Ordering::Relaxed);
    }

    /// The spin budget ([`Stoppers::set_spin_ns`]).
    pub fn spin_ns(&self) -> u64 {
        self.spin_ns.load(Ordering::Relaxed)
    }

    /// Whether `cpu`'s stopper accepts works.
    pub fn is_enabled(&self, cpu: usize) -> bool {
        cpu < N && self.cpus[cpu].enabled.load(Ordering::Acquire)
    }

    /// The CPUs whose stopper is enabled: those a `stop_machine` involves.
    pub fn enabled_mask(&self) -> CpuSet {
        cpus_where(N, |c| self.is_enabled(c))
    }

    /// Whether `cpu`'s stopper has parked (see [`Stoppers::park`]).
    pub fn is_parked(&self, cpu: usize) -> bool {
        self.cpus[cpu].parked.load(Ordering::Acquire)
    }

    /// Works `cpu`'s stopper has run.
    pub fn runs(&self, cpu: usize) -> u64 {
        self.cpus[cpu].runs.load(Ordering::Relaxed)
    }

    /// What `cpu`'s stopper is running now, if anything (Linux's `print_stop_info`).
    pub fn running(&self, cpu: usize) -> Option<Caller> {
        // The stopper holds this lock only to store one value, so contention is other readers;
        // retry a bounded number of times rather than block, so a report never waits behind a
        // CPU that died holding it.
        for _ in 0..100_000 {
            if let Some(r) = self.cpus[cpu].running.try_lock() {
                return *r;
            }
            self.platform.relax();
        }
        None
    }

    /// Whether the calling CPU is inside a stopper callback.
    pub fn in_callback(&self) -> bool {
        self.cpus[self.platform.cpu_id()].in_callback.load(Ordering::Relaxed)
    }

    /// The CPUs whose stopper is running a work's function right now, as a mask: "a stop
    /// request is running". Read-only and lock-free (one relaxed load per CPU, never waits), so
    /// it may be called from interrupt handlers and from [`Platform::relax`]. Each CPU sets its
    /// bit just before a function runs and clears it just after (the `in_callback` flag); a
    /// reader on another CPU may see a change late, so this is a snapshot for displays (the
    /// activity LED) and diagnostics, never a reason to touch a stopper or a work.
    pub fn running_mask(&self) -> CpuSet {
        cpus_where(N, |c| self.cpus[c].in_callback.load(Ordering::Relaxed))
    }

    /// Queues `work` on `cpu` and kicks its stopper: `true` means the function will run.
    ///
    /// # Safety
    /// `work` must stay alive and unmoved until it has run (its `done` signalled, or its
    /// `pending` flag cleared) or, if this returns `false`, until this returns.
    unsafe fn queue_work(&self, cpu: usize, work: &Work<'_>) -> bool {
        // SAFETY: forwarded from the caller.
        let enabled = unsafe { self.queue_work_unkicked(cpu, work) };
        // Kick after unlocking: never send an IPI with a stopper lock held.
        if enabled {
            self.platform.kick(cpu);
        }
        enabled
    }

    /// [`Stoppers::queue_work`] without the kick, for callers that kick a set at once.
    ///
    /// # Safety
    /// As for `queue_work`; the caller kicks `cpu` if this returns `true`.
    unsafe fn queue_work_unkicked(&self, cpu: usize, work: &Work<'_>) -> bool {
        let stopper = &self.cpus[cpu];
        let irq = self.platform.irq_save();
        let enabled = {
            let mut list = stopper.works.lock();
            // THE GUARANTEE: if queueing a work succeeds, its function will run. A work is
            // appended only while `enabled` reads true under this lock, and a stopper whose
            // `enabled` was cleared takes this lock and runs everything appended before it parks
            // (`park`). Otherwise the request is completed here, without running.
            // The one exception: a request the watchdog failed (`fail_request`) unlinks its works
            // not yet started, and a CPU it halted drops what is queued on it (`mark_halted`);
            // their requesters get `TimedOut` / `NoEnt`, never a function that runs late.
            let enabled = stopper.enabled.load(Ordering::Relaxed);
            if enabled {
                list.push_back(erase(work));
            } else if let Some(done) = work.done {
                done.signal(0, self);
            }
            enabled
        };
        self.platform.irq_restore(irq);
        enabled
    }

    /// Whether `cpu`'s stopper has works queued.
    pub fn has_work(&self, cpu: usize) -> bool {
        let irq = self.platform.irq_save();
        let r = !self.cpus[cpu].works.lock().is_empty();
        self.platform.irq_restore(irq);
        r
    }

    /// The stopper loop's body (Linux's `cpu_stopper_thread`): on the calling CPU, pops and
    /// runs works in FIFO order until the list is empty, each with the lock released and IRQs
    /// masked. Returns how many ran.
    pub fn run_works(&self) -> usize {
        let cpu = self.platform.cpu_id();
        let stopper = &self.cpus[cpu];
        let mut ran = 0;
        loop {
            let irq = self.platform.irq_save();
            let work = {
                let mut list = stopper.works.lock();
                let w = list.pop_front();
                // Under the lock, so a requester that unlinks under it either finds its work
                // still queued or finds it `current` here (`fail_request`).
                if let Some(w) = w {
                    stopper.current.store(w as usize, Ordering::Relaxed);
                }
                w
            };
            let Some(work) = work else {
                self.platform.irq_restore(irq);
                return ran;
            };
            // SAFETY: a queued work is alive until it is completed below (`queue_work`).
            let (func, multi, caller) = unsafe { ((*work).func, (*work).multi, (*work).caller) };
            *stopper.running.lock() = Some(caller);
            stopper.in_callback.store(true, Ordering::Relaxed);
            let ret = if multi { func() } else { self.call_user(stopper, func) };
            self.complete(stopper, work, ret);
            self.platform.irq_restore(irq);
            ran += 1;
        }
    }

    /// Ends the work `work` this CPU's stopper ran (or that fault recovery finished for it).
    fn complete(&self, stopper: &CpuStopper, work: *const Work<'static>, ret: i32) {
        // SAFETY: the work is alive until `done`/`pending` below say it has run.
        let (done, pending) = unsafe { ((*work).done, (*work).pending) };
        stopper.in_callback.store(false, Ordering::Relaxed);
        *stopper.running.lock() = None;
        stopper.runs.fetch_add(1, Ordering::Relaxed);
        // Before the completion: once its owner has it back, the address may be reused.
        stopper.current.store(0, Ordering::Release);
        // Last accesses to the work: after these its owner may reuse or free it.
        if let Some(p) = pending {
            p.store(false, Ordering::Release);
        }
        if let Some(d) = done {
            d.signal(ret, self);
        }
    }

    /// Runs a request's own callback through [`Platform::run_callback`], with the hand-over
    /// to a requester whose watchdog ran out (`claim_stuck`): once it has claimed this CPU, the
    /// CPU must not go back into the request's memory; it waits in here, where the platform's
    /// halt reaches it, until halted (or given back, when the platform cannot halt it).
    fn call_user(&self, stopper: &CpuStopper, f: &(dyn Fn() -> i32 + Sync)) -> i32 {
        stopper.user.store(USER_IN, Ordering::SeqCst);
        self.platform.run_callback(&mut || {
            let ret = f();
            while stopper
                .user
                .compare_exchange(USER_IN, USER_IDLE, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
            {
                self.platform.relax();
            }
            ret
        })
    }

    /// Claims `cpu` if it is inside the callback of `work` (which the caller keeps alive):
    /// from then on it stays inside [`Platform::run_callback`] until [`Stoppers::unclaim`].
    fn claim_stuck(&self, cpu: usize, work: *const Work<'static>) -> bool {
        let st = &self.cpus[cpu];
        if st
            .user
            .compare_exchange(USER_IN, USER_CLAIMED, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        // Stable while claimed: `current` is set before the callback is entered and cleared
        // only after it is left. Another request's callback is given back at once.
        if st.current.load(Ordering::Acquire) != work as usize {
            self.unclaim(cpu);
            return false;
        }
        true
    }

    fn unclaim(&self, cpu: usize) {
        self.cpus[cpu].user.store(USER_IN, Ordering::Release);
    }

    /// Whether a watchdog halted `cpu` ([`Platform::halt`]): its stopper is disabled for good.
    pub fn is_halted(&self, cpu: usize) -> bool {
        cpu < N && self.cpus[cpu].halted.load(Ordering::Acquire)
    }

    /// The CPUs a watchdog halted.
    pub fn halted(&self) -> CpuSet {
        cpus_where(N, |c| self.is_halted(c))
    }

    /// Marks `cpu` halted: its stopper disabled for good, and every work still queued on it
    /// dropped unrun (their requesters get `NoEnt`; a nowait buffer is free again). This is the
    /// one exception to "if queueing succeeds, the function runs".
    fn mark_halted(&self, cpu: usize) {
        let st = &self.cpus[cpu];
        st.halted.store(true, Ordering::Release);
        st.in_callback.store(false, Ordering::Relaxed);
        self.halts.fetch_add(1, Ordering::Relaxed);
        let irq = self.platform.irq_save();
        let mut list = st.works.lock();
        st.enabled.store(false, Ordering::Relaxed);
        while let Some(w) = list.pop_front() {
            // SAFETY: queued, so alive (see `queue_work`); dropping it is its completion.
            let (done, pending, caller) = unsafe { ((*w).done, (*w).pending, (*w).caller) };
            self.platform.report(format_args!(
                "  cpu{cpu}: dropped queued work {caller} (its requester gets NoEnt)"
            ));
            if let Some(p) = pending {
                p.store(false, Ordering::Release);
            }
            if let Some(d) = done {
                d.dropped.store(true, Ordering::Relaxed);
                d.signal(0, self);
            }
        }
        drop(list);
        self.platform.irq_restore(irq);
    }

    /// For the fault path, on a CPU whose request callback faulted (a failed assertion in a
    /// test's callback): finishes the stopper's side of the work as if the callback had
    /// returned `ret` (a multi-CPU stop's participant acknowledges RUN and waits for EXIT, as
    /// it would have), so the requester sees `ret` instead of waiting forever. If this CPU is
    /// itself waiting for a request as its requester, waits (at most the watchdog limit) until
    /// every other CPU is done with that request's memory, which lives on the stack the fault
    /// path is about to give up. Call with IRQs masked, on a stack other than the one the
    /// callback ran on. Returns whether the CPU may now be restarted without any CPU touching
    /// its old stack; `false` if it was in no callback or the wait ran out.
    pub fn recover_fault(&self, ret: i32) -> bool {
        let cpu = self.platform.cpu_id();
        let st = &self.cpus[cpu];
        if st.user.load(Ordering::Acquire) == USER_IDLE {
            return false;
        }
        st.user.store(USER_IDLE, Ordering::Release);
        let work = st.current.load(Ordering::Acquire) as *const Work<'static>;
        if work.is_null() {
            return false;
        }
        let ms = st.multi.swap(0, Ordering::AcqRel) as *const MultiStop<'static>;
        let ret = if ms.is_null() {
            ret
        } else {
            // SAFETY: this CPU's participation holds `ms` alive: the requester waits for this
            // CPU's work to complete, which happens below.
            let ms = unsafe { &*ms };
            ms.ack_state(cpu, self);
            ms.participate(self, MultiStopState::Run, ret)
        };
        self.complete(st, work, ret);
        self.fault_recoveries.fetch_add(1, Ordering::Relaxed);
        // The restart gives up the frame of any wait this CPU was in: forget it here.
        let waiting = st.waiting.swap(0, Ordering::AcqRel) as *const Done;
        if waiting.is_null() {
            return true;
        }
        // SAFETY: the `Done` is on this CPU's thread stack, which is intact until the fault
        // path restarts it, after this returns.
        let done = unsafe { &*waiting };
        let limit = self.watchdog_ns.load(Ordering::Relaxed).max(1_000_000);
        let deadline = self.platform.now_ns().saturating_add(limit);
        self.wait_loop(done.chan(), deadline, u64::MAX, false, &mut || done.finished())
    }

    fn check_cpu(&self, cpu: usize) -> Result<(), StopError> {
        if cpu < self.nr_cpu_ids() { Ok(()) } else { Err(StopError::InvalidCpu) }
    }

    fn check_caller(&self) -> Result<(), StopError> {
        if self.in_callback() { Err(StopError::WouldDeadlock) } else { Ok(()) }
    }

    /// Waits for `done`, whose works are `work_of(cpu)` for the CPUs of `waiting_for`, of the
    /// multi-CPU stop `ms` if any. The calling CPU's own stopper may be among those waited
    /// for, so waiting means running it (as Linux's stopper thread would preempt the waiter).
    /// Past the watchdog limit, reports and fails the request (`fail_request`). Returns the
    /// request's result.
    fn wait(
        &self,
        done: &Done,
        waiting_for: CpuSet,
        work_of: &dyn Fn(usize) -> *const Work<'static>,
        ms: Option<&MultiStop<'_>>,
    ) -> Result<i32, StopError> {
        let me = &self.cpus[self.platform.cpu_id()];
        let outer = me.waiting.swap(done.chan(), Ordering::AcqRel);
        let limit = self.watchdog_ns.load(Ordering::Relaxed);
        let deadline =
            if limit == 0 { u64::MAX } else { self.platform.now_ns().saturating_add(limit) };
        let mut r = Ok(());
        if !self.wait_until(done.chan(), deadline, || done.finished()) {
            self.report_stuck("stop request", waiting_for, limit);
            if self.watchdog_fails.load(Ordering::Relaxed) {
                self.fail_request(done, waiting_for, work_of, ms, limit);
                r = Err(StopError::TimedOut);
            } else {
                self.wait_until(done.chan(), u64::MAX, || done.finished());
            }
        }
        me.waiting.store(outer, Ordering::Release);
        r?;
        if done.dropped.load(Ordering::Relaxed) {
            return Err(StopError::NoEnt);
        }
        Ok(done.ret.load(Ordering::Relaxed))
    }

    /// The watchdog's recovery, on the requester: makes sure no CPU touches the request's
    /// memory (`done`, the works, `ms`, the closure: all in the caller's frame) once this
    /// returns. In this order: a multi-CPU stop is aborted (waiting participants leave); works
    /// not yet started are unlinked under their stopper's lock (they never run); whoever is
    /// still inside the callback after another watchdog period is claimed and halted
    /// ([`Platform::halt`]), its stopper disabled for good. A CPU the platform cannot halt is
    /// waited for, with a report each period, for as long as it takes.
    fn fail_request(
        &self,
        done: &Done,
        targets: CpuSet,
        work_of: &dyn Fn(usize) -> *const Work<'static>,
        ms: Option<&MultiStop<'_>>,
        limit: u64,
    ) {
        self.timed_out.fetch_add(1, Ordering::Relaxed);
        if let Some(ms) = ms {
            ms.abort(self);
        }
        let targets: CpuSet = targets.iter().take_while(|&c| c < N).collect();
        for cpu in targets {
            let w = work_of(cpu);
            let irq = self.platform.irq_save();
            let unlinked = self.cpus[cpu].works.lock().unlink(w);
            self.platform.irq_restore(irq);
            if unlinked {
                self.platform.report(format_args!("  cpu{cpu}: work not started; unlinked"));
                done.signal(0, self);
            }
        }
        let period = limit.max(1_000_000);
        let mut halted = CpuSet::EMPTY;
        loop {
            let until = self.platform.now_ns().saturating_add(period);
            if self.wait_until(done.chan(), until, || done.finished()) {
                return;
            }
            for cpu in targets - halted {
                let w = work_of(cpu);
                if !self.claim_stuck(cpu, w) {
                    continue;
                }
                // SAFETY: `w` is the caller's, alive until this returns.
                let caller = unsafe { (*w).caller };
                if self.platform.halt(cpu) {
                    halted.insert(cpu);
                    self.mark_halted(cpu);
                    self.platform.report(format_args!(
                        "  cpu{cpu}: halted inside {caller}; its stopper is disabled for good \
                         (whatever that callback held stays held)"
                    ));
                    // Its completion, which it will never signal itself.
                    done.signal(0, self);
                } else {
                    self.unclaim(cpu);
                    self.halt_refused.fetch_add(1, Ordering::Relaxed);
                    self.platform.report(format_args!(
                        "  cpu{cpu}: stuck inside {caller} and cannot be halted; still waiting"
                    ));
                }
            }
        }
    }

    /// Waits until `cond()` holds, or until `deadline_ns` ([`Platform::now_ns`]'s clock;
    /// `u64::MAX`: no deadline) has passed; returns whether `cond()` held. Meanwhile it runs
    /// this CPU's stopper works (what it waits for may need them: a stopper preempts its CPU's
    /// waiter), spins for the spin budget ([`Stoppers::set_spin_ns`]), then sleeps until
    /// whoever makes `cond()` true calls [`Stoppers::notify`] with the same `chan`.
    ///
    /// `chan` names what is waited for (by convention the address of the state `cond` reads);
    /// every change that can make `cond()` true must be followed by `notify(chan)`, or a
    /// sleeping waiter sleeps on until its deadline. Call with IRQs enabled (a kick to this CPU
    /// is then taken, and its works run, while it sleeps).
    pub fn wait_until(
        &self,
        chan: usize,
        deadline_ns: u64,
        mut cond: impl FnMut() -> bool,
    ) -> bool {
        self.wait_loop(chan, deadline_ns, u64::MAX, true, &mut cond)
    }

    /// [`Stoppers::wait_until`] for a condition that nobody notifies (firmware state polled
    /// through a call, such as PSCI AFFINITY_INFO): once the spin budget is spent it sleeps at
    /// most `poll_ns` at a time between checks. A notify on `chan` still ends a sleep early.
    pub fn wait_until_polled(
        &self,
        chan: usize,
        deadline_ns: u64,
        poll_ns: u64,
        mut cond: impl FnMut() -> bool,
    ) -> bool {
        self.wait_loop(chan, deadline_ns, poll_ns, true, &mut cond)
    }

    /// [`Stoppers::wait_until`]'s loop; `run_works: false` for waits inside a work (a
    /// multi-CPU stop's participant, which must not run other works) or with IRQs masked.
    fn wait_loop(
        &self,
        chan: usize,
        deadline_ns: u64,
        poll_ns: u64,
        run_works: bool,
        cond: &mut dyn FnMut() -> bool,
    ) -> bool {
        let p = &self.platform;
        let me = p.cpu_id();
        let spin_ns = self.spin_ns.load(Ordering::Relaxed);
        let start = p.now_ns();
        loop {
            if cond() {
                return true;
            }
            if run_works && self.has_work(me) {
                self.run_works();
                continue;
            }
            let now = p.now_ns();
            if now >= deadline_ns {
                return cond();
            }
            if spin_ns == SPIN_ONLY || now.saturating_sub(start) < spin_ns {
                p.relax();
            } else {
                let until = deadline_ns.min(now.saturating_add(poll_ns));
                self.sleep_once(chan, until, run_works, cond);
                // A relax per wake too: the platform's hook (the activity LED) keeps running
                // while a waiter is woken by an interrupt it cannot take.
                p.relax();
            }
        }
    }

    /// One sleep of a waiter on `chan`, free of lost wake-ups: the sleeper announces itself in
    /// `sleepers`, then checks `cond` again; a notifier changes what `cond` reads, then looks at
    /// `sleepers`. With a SeqCst fence on each side (a store→load pattern, so acquire/release
    /// would not do), at least one of them sees the other's write: either the sleeper sees
    /// `cond()` true and does not sleep, or the notifier sees it announced and wakes it. The
    /// wake cannot be lost between the check and the sleep: stale wakes are cleared *before*
    /// the announcement, and one sent after it stays pending until `sleep` returns.
    fn sleep_once(
        &self,
        chan: usize,
        deadline_ns: u64,
        run_works: bool,
        cond: &mut dyn FnMut() -> bool,
    ) {
        let p = &self.platform;
        let me = p.cpu_id();
        // Masked, so that a kick landing after the check below stays pending and ends the
        // sleep (it is taken, and its works run, when IRQs are restored).
        let irq = p.irq_save();
        p.clear_wake();
        #[cfg(feature = "mutation-lost-wakeup")]
        // Test only: the classic lost wake-up, checking before announcing.
        let idle = !(cond() || run_works && self.has_work(me));
        self.sleepers[me].store(chan, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        #[cfg(not(feature = "mutation-lost-wakeup"))]
        let idle = !(cond() || run_works && self.has_work(me));
        if idle {
            self.sleeps.fetch_add(1, Ordering::Relaxed);
            p.sleep(deadline_ns);
        }
        self.sleepers[me].store(0, Ordering::Relaxed);
        p.irq_restore(irq);
    }

    /// Wakes every CPU sleeping on `chan` ([`Stoppers::wait_until`]). Call after the change
    /// that the sleepers wait for; never with a stopper lock held.
    pub fn notify(&self, chan: usize) {
        self.notify_mask(chan, CpuSet::first_n(N));
    }

    /// [`Stoppers::notify`], for a channel only `cpu` can sleep on.
    fn notify_cpu(&self, chan: usize, cpu: usize) {
        if cpu < N {
            self.notify_mask(chan, bit(cpu));
        }
    }

    fn notify_mask(&self, chan: usize, candidates: CpuSet) {
        // Pairs with the fence in `sleep_once` (see there).
        fence(Ordering::SeqCst);
        let mut wake = CpuSet::EMPTY;
        for cpu in candidates.iter().take_while(|&c| c < N) {
            if self.sleepers[cpu].load(Ordering::Relaxed) == chan {
                wake.insert(cpu);
            }
        }
        if !wake.is_empty() {
            self.wakes.fetch_add(wake.len() as u64, Ordering::Relaxed);
            self.platform.wake(wake);
        }
    }

    /// Whether `cpu` sleeps in a wait right now (a snapshot, for tests and diagnostics).
    pub fn is_sleeping(&self, cpu: usize) -> bool {
        cpu < N && self.sleepers[cpu].load(Ordering::Relaxed) != 0
    }

    fn report_stuck(&self, what: &str, cpus: CpuSet, limit: u64) {
        self.watchdog_reports.fetch_add(1, Ordering::Relaxed);
        self.platform.report(format_args!(
            "stopper watchdog: {what} not finished after {} ms; waiting for CPUs {cpus}",
            limit / 1_000_000
        ));
        for cpu in cpus.iter().take_while(|&c| c < N) {
            match self.running(cpu) {
                Some(c) => self.platform.report(format_args!("  cpu{cpu}: running {c}")),
                None => self
                    .platform
                    .report(format_args!("  cpu{cpu}: stopper idle (not yet kicked, or masked)")),
            }
        }
    }

    /// Runs `f` on `cpu` and waits for it. `Err(NoEnt)` if `cpu`'s stopper is disabled; `f`
    /// then never runs.
    #[track_caller]
    pub fn stop_one_cpu<F: Fn() -> i32 + Sync>(&self, cpu: usize, f: F) -> Result<i32, StopError> {
        self.check_cpu(cpu)?;
        self.check_caller()?;
        let caller = Caller { func: core::any::type_name::<F>(), location: Location::caller() };
        let done = Done::new(1, self.platform.cpu_id());
        let work = Work::new(&f, Some(&done), caller);
        // SAFETY: `work`, `f` and `done` live until `wait` sees the work completed.
        if !unsafe { self.queue_work(cpu, &work) } {
            return Err(StopError::NoEnt);
        }
        self.wait(&done, bit(cpu), &|_| erase(&work), None)
    }

    /// Queues `work` on `cpu` without waiting (Linux's `stop_one_cpu_nowait`): `true` means its
    /// function will run. `false` if the stopper is disabled, or if this same work buffer is
    /// still pending from an earlier call (queueing it twice would corrupt the list).
    #[track_caller]
    pub fn stop_one_cpu_nowait(&self, cpu: usize, work: &'static NowaitWork) -> bool {
        if cpu >= N || work.pending.swap(true, Ordering::AcqRel) {
            return false;
        }
        let w = work.work(Location::caller());
        // SAFETY: `work` is 'static; its slot is reserved by `pending` until the stopper clears
        // it after running.
        let queued = unsafe { self.queue_work(cpu, w) };
        if !queued {
            work.pending.store(false, Ordering::Release);
        }
        queued
    }

    /// Runs `f` on `a` while `b` also sits in its stopper with IRQs masked (Linux's
    /// `stop_two_cpus`). Fails with nothing queued if either stopper is disabled.
    #[track_caller]
    pub fn stop_two_cpus<F: Fn() -> i32 + Sync>(
        &self,
        a: usize,
        b: usize,
        f: F,
    ) -> Result<i32, StopError> {
        self.check_cpu(a)?;
        self.check_cpu(b)?;
        if a == b {
            return Err(StopError::SameCpu);
        }
        self.check_caller()?;
        let caller = Caller { func: core::any::type_name::<F>(), location: Location::caller() };
        let ms = MultiStop::new(&f, 2, bit(a), &self.platform, self.platform.cpu_id());
        let run = |_: ()| ms.run(self);
        let run = move || run(());
        let done = Done::new(2, self.platform.cpu_id());
        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
        let w_lo = Work { multi: true, ..Work::new(&run, Some(&done), caller) };
        let w_hi = Work { multi: true, ..Work::new(&run, Some(&done), caller) };
        // SAFETY: the works, `ms` and `done` live until `wait` returns.
        unsafe { self.queue_two_works(lo, &w_lo, hi, &w_hi)? };
        let work_of = |c| if c == lo { erase(&w_lo) } else { erase(&w_hi) };
        self.wait(&done, bit(a) | bit(b), &work_of, Some(&ms))
    }

    /// Queues two works under both locks, taken in ascending CPU order (Linux's
    /// `cpu_stop_queue_two_works`).
    ///
    /// # Safety
    /// As for `queue_work`, for both works.
    unsafe fn queue_two_works(
        &self,
        lo: usize,
        w_lo: &Work<'_>,
        hi: usize,
        w_hi: &Work<'_>,
    ) -> Result<(), StopError> {
        loop {
            // IRQs stay masked until both stoppers are kicked (Linux: preempt_disable): a kick
            // to this CPU would otherwise run its half of the multi-CPU stop at once, waiting
            // for the other CPU that has not been kicked yet.
            let irq = self.platform.irq_save();
            let outcome = {
                let mut l1 = self.cpus[lo].works.lock();
                let mut l2 = self.cpus[hi].works.lock();
                if !self.cpus[lo].enabled.load(Ordering::Relaxed)
                    || !self.cpus[hi].enabled.load(Ordering::Relaxed)
                {
                    Err(StopError::NoEnt)
                } else if self.stop_cpus_in_progress.load(Ordering::Acquire) {
                    // A stop_cpus is queueing one CPU at a time: queueing now could put our
                    // works ahead of its on one CPU and behind on the other, and the two
                    // multi-CPU stops would wait for each other forever. Back off.
                    Ok(false)
                } else {
                    l1.push_back(erase(w_lo));
                    l2.push_back(erase(w_hi));
                    Ok(true)
                }
            };
            if outcome == Ok(true) {
                self.platform.kick_set(bit(lo) | bit(hi));
            }
            self.platform.irq_restore(irq);
            match outcome {
                Ok(true) => return Ok(()),
                Ok(false) => {
                    self.in_progress_retries.fetch_add(1, Ordering::Relaxed);
                    // The queueing CPU has IRQs masked and is done in a moment; this CPU's own
                    // works are not needed for it to finish.
                    let chan = self.in_progress_chan();
                    self.wait_loop(chan, u64::MAX, u64::MAX, false, &mut || {
                        !self.stop_cpus_in_progress.load(Ordering::Acquire)
                    });
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Queues one work per CPU of `mask` with `stop_cpus_in_progress` set; returns whether any
    /// was queued. Caller holds `stop_cpus_mutex`.
    ///
    /// # Safety
    /// `works[c]` for every `c` in `mask` as for `queue_work`.
    unsafe fn queue_stop_cpus_work(&self, mask: CpuSet, works: &[Work<'_>]) -> bool {
        // IRQs masked while queueing (Linux: preempt_disable), so this CPU's own stopper cannot
        // run its work, and wait for stoppers not yet queued, before the loop is done.
        let irq = self.platform.irq_save();
        self.stop_cpus_in_progress.store(true, Ordering::Release);
        let mut queued = CpuSet::EMPTY;
        for cpu in mask.iter().take_while(|&c| c < N) {
            // SAFETY: forwarded from the caller.
            if unsafe { self.queue_work_unkicked(cpu, &works[cpu]) } {
                queued.insert(cpu);
            }
        }
        // One kick for the set, after every lock is released and, as Linux wakes its stopper
        // threads, before the flag is cleared (this CPU's own is taken when IRQs are restored).
        if !queued.is_empty() {
            self.platform.kick_set(queued);
        }
        self.stop_cpus_in_progress.store(false, Ordering::Release);
        self.platform.irq_restore(irq);
        self.notify(self.in_progress_chan());
        !queued.is_empty()
    }

    fn in_progress_chan(&self) -> usize {
        &self.stop_cpus_in_progress as *const AtomicBool as usize
    }

    fn stop_cpus_chan(&self) -> usize {
        &self.stop_cpus_mutex as *const Mutex<()> as usize
    }

    fn stop_cpus_locked(
        &self,
        mask: CpuSet,
        f: &(dyn Fn() -> i32 + Sync),
        caller: Caller,
        ms: Option<&MultiStop<'_>>,
    ) -> Result<i32, StopError> {
        let done = Done::new(mask.len(), self.platform.cpu_id());
        let works: [Work<'_>; N] = core::array::from_fn(|_| Work {
            multi: ms.is_some(),
            ..Work::new(f, Some(&done), caller)
        });
        // SAFETY: `works` and `done` live until `wait` sees every work completed.
        if !unsafe { self.queue_stop_cpus_work(mask, &works) } {
            return Err(StopError::NoEnt);
        }
        self.wait(&done, mask, &|c| erase(&works[c]), ms)
    }

    fn check_mask(&self, mask: CpuSet) -> Result<(), StopError> {
        let valid = CpuSet::first_n(self.nr_cpu_ids());
        if mask.is_subset(&valid) { Ok(()) } else { Err(StopError::InvalidCpu) }
    }

    /// Runs `f` on every CPU of `mask` whose stopper is enabled, and waits (Linux's
    /// `stop_cpus`). `Err(NoEnt)` if none is enabled. Serialised with other `stop_cpus` and
    /// `stop_machine` calls.
    #[track_caller]
    pub fn stop_cpus<F: Fn() -> i32 + Sync>(&self, mask: CpuSet, f: F) -> Result<i32, StopError> {
        self.check_mask(mask)?;
        self.check_caller()?;
        let caller = Caller { func: core::any::type_name::<F>(), location: Location::caller() };
        let _g = self.lock_stop_cpus();
        self.stop_cpus_locked(mask, &f, caller, None)
    }

    /// As [`Stoppers::stop_cpus`], but fails with `Busy` at once if another is in progress.
    #[track_caller]
    pub fn try_stop_cpus<F: Fn() -> i32 + Sync>(
        &self,
        mask: CpuSet,
        f: F,
    ) -> Result<i32, StopError> {
        self.check_mask(mask)?;
        self.check_caller()?;
        let caller = Caller { func: core::any::type_name::<F>(), location: Location::caller() };
        let g = self.stop_cpus_mutex.try_lock().ok_or(StopError::Busy)?;
        let _g = WaitingGuard { s: self, chan: self.stop_cpus_chan(), g: Some(g) };
        self.stop_cpus_locked(mask, &f, caller, None)
    }

    /// Waiting for another stop_cpus, whose works may include one for this CPU: they run while
    /// waiting.
    fn lock_stop_cpus(&self) -> WaitingGuard<'_, (), P, N> {
        self.lock_waiting(&self.stop_cpus_mutex)
    }

    /// Takes `m` as a wait ([`Stoppers::wait_until`]): this CPU's stopper works run while it
    /// waits (the holder may be in a stop request that needs them), and it sleeps once the spin
    /// budget is spent. The guard wakes such sleepers when it releases `m`; every holder that
    /// others may wait for must take it this way.
    pub fn lock_waiting<'a, T>(&'a self, m: &'a Mutex<T>) -> WaitingGuard<'a, T, P, N> {
        let chan = m as *const Mutex<T> as usize;
        let mut guard = None;
        self.wait_until(chan, u64::MAX, || {
            // `cond` may be asked again after it held: keep the guard we have.
            if guard.is_none() {
                guard = m.try_lock();
            }
            guard.is_some()
        });
        WaitingGuard { s: self, chan, g: guard }
    }

    /// Stops every CPU whose stopper is enabled, with IRQs masked, and runs `f` on the CPUs of
    /// `cpus` (or once, on the first of them, for `None`) while the others spin (Linux's
    /// `stop_machine`). Returns the first non-zero return value, or 0.
    #[track_caller]
    pub fn stop_machine<F: Fn() -> i32 + Sync>(
        &self,
        f: F,
        cpus: Option<CpuSet>,
    ) -> Result<i32, StopError> {
        if let Some(m) = cpus {
            self.check_mask(m)?;
        }
        self.check_caller()?;
        let caller = Caller { func: core::any::type_name::<F>(), location: Location::caller() };
        let _g = self.lock_stop_cpus();
        // The participants are fixed under the mutex: enabled flags only go from true to false
        // inside a stop_machine callback (`stop_machine_park`, from take_cpu_down), and that
        // stop_machine holds this mutex, so none of these can be disabled while we queue.
        let online = self.enabled_mask();
        let Some(first) = online.first() else {
            return Err(StopError::NoEnt);
        };
        let active = match cpus {
            Some(m) => m & online,
            None => bit(first),
        };
        let ms = MultiStop::new(&f, online.len(), active, &self.platform, self.platform.cpu_id());
        let run = || ms.run(self);
        self.stop_cpus_locked(online, &run, caller, Some(&ms))
    }

    /// Disables `cpu`'s stopper (Linux's `stop_machine_park`). Called on `cpu` itself from a
    /// stop_machine callback (take_cpu_down).
    pub fn stop_machine_park(&self, cpu: usize) {
        let stopper = &self.cpus[cpu];
        #[cfg(not(feature = "pre-fix-park"))]
        // Lockless. The stopper will take its lock and flush the pending works before it
        // parks (`park`); until then it is fine to queue new works.
        stopper.enabled.store(false, Ordering::Relaxed);
        stopper.park_requested.store(true, Ordering::Release);
    }

    /// Whether `cpu`'s stopper has been asked to park.
    pub fn park_requested(&self, cpu: usize) -> bool {
        self.cpus[cpu].park_requested.load(Ordering::Acquire)
    }

    /// Parks the calling CPU's stopper if [`Stoppers::stop_machine_park`] asked for it: flushes
    /// (runs) every work queued before `enabled` went false, then parks. Returns whether it
    /// parked. Parking with works still queued is a bug: it is reported and counted.
    pub fn park(&self) -> bool {
        let cpu = self.platform.cpu_id();
        let stopper = &self.cpus[cpu];
        if !stopper.park_requested.load(Ordering::Acquire) {
            return false;
        }
        #[cfg(not(feature = "pre-fix-park"))]
        self.run_works();
        #[cfg(feature = "pre-fix-park")]
        {
            // The pre-fix behaviour: drain and complete without running, then disable.
            let irq = self.platform.irq_save();
            let mut list = stopper.works.lock();
            while let Some(w) = list.pop_front() {
                // SAFETY: as in `run_works`.
                let (done, pending) = unsafe { ((*w).done, (*w).pending) };
                if let Some(p) = pending {
                    p.store(false, Ordering::Release);
                }
                if let Some(d) = done {
                    d.signal(0, self);
                }
            }
            stopper.enabled.store(false, Ordering::Relaxed);
            drop(list);
            self.platform.irq_restore(irq);
        }
        let irq = self.platform.irq_save();
        let left = !stopper.works.lock().is_empty();
        self.platform.irq_restore(irq);
        if left {
            self.park_with_works.fetch_add(1, Ordering::Relaxed);
            self.platform
                .report(format_args!("BUG: cpu{cpu}'s stopper parked with works still queued"));
        }
        stopper.park_requested.store(false, Ordering::Relaxed);
        stopper.parked.store(true, Ordering::Release);
        true
    }

    /// Enables `cpu`'s stopper (Linux's `stop_machine_unpark`). Call before the CPU is
    /// reported online, so it cannot be taken down before its stopper has run once.
    pub fn stop_machine_unpark(&self, cpu: usize) {
        let stopper = &self.cpus[cpu];
        stopper.parked.store(false, Ordering::Relaxed);
        stopper.enabled.store(true, Ordering::Release);
    }
}

/// A mutex held through [`Stoppers::lock_waiting`]: once released, it wakes the CPUs that sleep
/// waiting to take it.
pub struct WaitingGuard<'a, T, P: Platform, const N: usize> {
    s: &'a Stoppers<P, N>,
    chan: usize,
    g: Option<sync::MutexGuard<'a, T>>,
}

impl<T, P: Platform, const N: usize> Drop for WaitingGuard<'_, T, P, N> {
    fn drop(&mut self) {
        // Unlock first: a sleeper woken before it would find the mutex still held.
        drop(self.g.take());
        self.s.notify(self.chan);
    }
}

/// A work buffer for [`Stoppers::stop_one_cpu_nowait`], owned by its requester (`'static`,
/// so it outlives the request). It can be queued again once its function has run.
pub struct NowaitWork {
    func: &'static (dyn Fn() -> i32 + Sync),
    name: &'static str,
    pending: AtomicBool,
    slot: core::cell::UnsafeCell<core::mem::MaybeUninit<Work<'static>>>,
}

// SAFETY: `slot` is written only by the caller that set `pending` from false to true, and read
// by the stopper only while `pending` is true.
unsafe impl Sync for NowaitWork {}

impl NowaitWork {
    crate::loom_const_fn! {
        /// A buffer that runs `f`; `name` is what diagnostics call it.
        pub fn new<F: Fn() -> i32 + Sync>(name: &'static str, f: &'static F) -> Self {
            Self {
                func: f,
                name,
                pending: AtomicBool::new(false),
                slot: core::cell::UnsafeCell::new(core::mem::MaybeUninit::uninit()),
            }
        }
    }

    /// Whether it is reserved: queued and not yet run, or a [`Stoppers::stop_one_cpu_nowait`]
    /// call on it is still in progress (and may yet fail). While this is true, the buffer
    /// cannot be queued again; once it is false, any function it was accepted for has run.
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    fn work(&'static self, location: &'static Location<'static>) -> &'static Work<'static> {
        let w = Work {
            next: Cell::new(core::ptr::null()),
            func: self.func,
            done: None,
            pending: Some(&self.pending),
            caller: Caller { func: self.name, location },
            multi: false,
        };
        // SAFETY: the caller won `pending` (false → true), so no one else touches the slot
        // until the stopper clears `pending` after running it.
        unsafe {
            (*self.slot.get()).write(w);
            (*self.slot.get()).assume_init_ref()
        }
    }
}

fn erase(w: &Work<'_>) -> *const Work<'static> {
    (w as *const Work<'_>).cast()
}

impl<'a> MultiStop<'a> {
    fn new<P: Platform>(
        func: &'a (dyn Fn() -> i32 + Sync),
        num_threads: usize,
        active: CpuSet,
        p: &P,
        requester: usize,
    ) -> Self {
        let ms = Self {
            func,
            num_threads,
            active,
            state: AtomicU32::new(MultiStopState::None as u32),
            thread_ack: AtomicUsize::new(0),
            acked: AtomicCpuSet::new(),
            state_since: AtomicU64::new(0),
            reported: AtomicU32::new(0),
            requester,
        };
        ms.set_state(MultiStopState::Prepare as u32, p);
        ms
    }

    /// Linux's `set_state`: reset the acknowledge counter before publishing the state. RUN is
    /// acknowledged by the active CPUs only (the others have nothing to do in it), every other
    /// state by every participant.
    fn set_state(&self, state: u32, p: &impl Platform) {
        let acks =
            if state == MultiStopState::Run as u32 { self.active.len() } else { self.num_threads };
        self.thread_ack.store(acks, Ordering::Relaxed);
        self.acked.clear(Ordering::Relaxed);
        self.state_since.store(p.now_ns(), Ordering::Relaxed);
        // The counter must be reset before anyone can see the new state and acknowledge it.
        fence(Ordering::Release);
        // Never over an abort: a participant that moves the machine on after the requester
        // gave up would run the callback for a request that has already failed.
        let mut cur = self.state.load(Ordering::Relaxed);
        while cur != MultiStopState::Abort as u32 {
            match self.state.compare_exchange_weak(cur, state, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => cur = now,
            }
        }
    }

    /// Moves every participant out (the requester's watchdog ran out) and wakes them.
    fn abort<P: Platform, const N: usize>(&self, s: &Stoppers<P, N>) {
        self.state.store(MultiStopState::Abort as u32, Ordering::Release);
        s.notify_mask(self.chan(), CpuSet::first_n(N));
    }

    /// Linux's `ack_state`: the last CPU to acknowledge a state moves everyone to the next, and
    /// wakes those that sleep waiting for it: for RUN the active CPUs only (the others wait for
    /// EXIT), for EXIT every participant. PREPARE goes straight to RUN (see
    /// [`MultiStopState::DisableIrq`]), or to EXIT when no participant is active.
    fn ack_state<P: Platform, const N: usize>(&self, cpu: usize, s: &Stoppers<P, N>) {
        self.acked.insert(cpu, Ordering::Relaxed);
        if self.thread_ack.fetch_sub(1, Ordering::AcqRel) == 1 {
            let (next, wake) = match MultiStopState::from_u32(self.state.load(Ordering::Relaxed)) {
                MultiStopState::Prepare if !self.active.is_empty() => {
                    (MultiStopState::Run, self.active)
                }
                _ => (MultiStopState::Exit, CpuSet::first_n(N)),
            };
            self.set_state(next as u32, &s.platform);
            // After EXIT, `self` lives until every participant has signalled its work done,
            // which this CPU has not yet: the channel is still this state word.
            s.notify_mask(self.chan(), wake);
        }
    }

    /// Linux's `multi_cpu_stop`: one participant's part.
    fn run<P: Platform, const N: usize>(&self, s: &Stoppers<P, N>) -> i32 {
        let p = &s.platform;
        let me = &s.cpus[p.cpu_id()];
        // Masked before PREPARE is acknowledged, which is what lets DISABLE_IRQ fold into it.
        let irq = p.irq_save();
        me.multi.store(self as *const Self as usize, Ordering::Release);
        let err = self.participate(s, MultiStopState::None, 0);
        me.multi.store(0, Ordering::Release);
        p.irq_restore(irq);
        err
    }

    /// The state machine from state `cur` on, with `err` as the callback's result so far
    /// (`recover_fault` resumes it after RUN), until EXIT or an abort.
    fn participate<P: Platform, const N: usize>(
        &self,
        s: &Stoppers<P, N>,
        mut cur: MultiStopState,
        mut err: i32,
    ) -> i32 {
        let p = &s.platform;
        let cpu = p.cpu_id();
        let is_active = self.active.contains(cpu);
        loop {
            let limit = s.watchdog_ns.load(Ordering::Relaxed);
            // The requester keeps its deadline after the report when the watchdog fails requests:
            // it is the one that aborts. Otherwise everyone waits on without one.
            let aborts = cpu == self.requester && s.watchdog_fails.load(Ordering::Relaxed);
            let reported = self.reported.load(Ordering::Relaxed) == cur as u32 + 1;
            let deadline = if limit == 0 || reported && !aborts {
                u64::MAX
            } else {
                self.state_since.load(Ordering::Relaxed).saturating_add(limit).saturating_add(1)
            };
            // Inside a work with IRQs masked: wait without running other works. A CPU that is
            // not active has nothing to do in RUN and waits on for EXIT (it is not woken for
            // RUN either).
            let changed = s.wait_loop(self.chan(), deadline, u64::MAX, false, &mut || {
                let now = self.state.load(Ordering::Acquire);
                now != cur as u32 && (is_active || now != MultiStopState::Run as u32)
            });
            if !changed {
                // The requester's own participant aborts for everyone, then fails the request.
                if self.watchdog(s, cur)
                    && cpu == self.requester
                    && s.watchdog_fails.load(Ordering::Relaxed)
                {
                    self.abort(s);
                }
                continue;
            }
            cur = MultiStopState::from_u32(self.state.load(Ordering::Acquire));
            match cur {
                MultiStopState::Run => err = s.call_user(&s.cpus[cpu], self.func),
                // Every participant has left RUN behind; nothing here is touched again.
                MultiStopState::Exit => break,
                // The requester gave up; it waits for this work's completion (or halts us).
                MultiStopState::Abort => break,
                _ => {}
            }
            self.ack_state(cpu, s);
        }
        err
    }

    fn chan(&self) -> usize {
        &self.state as *const AtomicU32 as usize
    }

    /// Reports the participants that owe `cur` an acknowledgement, once per state, if the
    /// watchdog limit has passed; returns whether it has.
    fn watchdog<P: Platform, const N: usize>(
        &self,
        s: &Stoppers<P, N>,
        cur: MultiStopState,
    ) -> bool {
        let limit = s.watchdog_ns.load(Ordering::Relaxed);
        if limit == 0 {
            return false;
        }
        let since = self.state_since.load(Ordering::Relaxed);
        if s.platform.now_ns().saturating_sub(since) <= limit {
            return false;
        }
        // One report per state, by whichever participant notices first.
        if self.reported.swap(cur as u32 + 1, Ordering::Relaxed) == cur as u32 + 1 {
            return true;
        }
        let acked = self.acked.load(Ordering::Relaxed);
        // The CPUs that owe an acknowledgement: in RUN only the active ones.
        let all = if cur == MultiStopState::Run { self.active } else { s.enabled_mask() };
        s.report_stuck(
            match cur {
                MultiStopState::Prepare => "multi-CPU stop (PREPARE)",
                MultiStopState::DisableIrq => "multi-CPU stop (DISABLE_IRQ)",
                MultiStopState::Run => "multi-CPU stop (RUN)",
                _ => "multi-CPU stop",
            },
            all - acked,
            limit,
        );
        true
    }
}
