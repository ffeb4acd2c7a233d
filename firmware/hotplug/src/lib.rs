//! CPU hotplug sequencing over the stopper: taking a CPU down through `stop_machine`, parking
//! and flushing its stopper before it powers off, and bringing it back with its stopper enabled
//! before it counts as online. Portable over [`Power`] (PSCI on the target, std threads on the
//! host, loom's threads in the models) and over the stopper's `Platform`: a firmware that is
//! not armstop uses it with its own of both.
//!
//! A CPU's life, with every transition checked ([`CpuState`]):
//!
//! ```text
//!            cpu_up: CPU_ON            the CPU: unpark, then
//!   Off ─────────────────────▶ Booting ───────────────────▶ Online
//!    ▲                            │ refused / no report            │ take_cpu_down (on the CPU,
//!    │                            ▼                                ▼  inside stop_machine)
//!    │      AFFINITY_INFO OFF  Failed ◀── timeouts ────────────  Dying
//!   Dead ◀──────────────────────────────────────────────────────  │ stopper flushed and parked
//!    ▲                                                            │ (on the CPU, in its loop)
//!    └────────────────────────────────────────────────────────────┘
//! ```
//!
//! Going down ([`Hotplug::cpu_down`]) keeps the stopper's guarantee, in this order:
//! 1. `stop_machine(take_cpu_down, {n})`: on `n`, with every CPU stopped, `n` leaves `Online`
//!    (so no new user sees it online), its interrupts move to another CPU, and
//!    `stop_machine_park(n)` clears its stopper's `enabled` flag;
//! 2. `n`'s stopper loop ([`Hotplug::dying_step`]) takes the stopper lock, runs every work
//!    queued before `enabled` went false, parks, and only then reports `Dead`;
//! 3. `n` powers off (PSCI CPU_OFF); the controlling CPU waits for the `Dead` report and then
//!    for the firmware to say the CPU is off, each with a timeout that marks it `Failed`.
//!
//! Coming up ([`Hotplug::cpu_up`]): CPU_ON, then on the new CPU [`Hotplug::cpu_online`] enables
//! its stopper **before** it moves to `Online` (Linux 45178ac0cea8), so anyone who sees it
//! online can queue work to it, and it cannot be taken down before its stopper has run.
//!
//! `cpu_up` and `cpu_down` are serialised with each other (Linux's `cpu_hotplug_lock`).
//!
//! | armstop | Linux (`kernel/cpu.c`, `kernel/stop_machine.c`, arm64's `smp.c` and `psci.c`) |
//! |---|---|
//! | [`Hotplug::cpu_down`] | `cpu_down` / `remove_cpu` (the teardown steps down to `CPUHP_OFFLINE`) |
//! | [`Hotplug::take_cpu_down`] | `take_cpu_down`, run through `stop_machine_cpuslocked` (here [`Stoppers::stop_machine`], which takes no hotplug lock) |
//! | [`Hotplug::dying_step`] | the stopper thread's park, then the dying CPU's idle-dead report (`cpuhp_report_idle_dead`) |
//! | [`Step::PowerOff`] | arm64's `cpu_die` (PSCI CPU_OFF, `cpu_psci_cpu_die`) |
//! | [`Hotplug::cpu_up`] | `cpu_up` / `add_cpu` |
//! | [`Hotplug::cpu_online`] | `stop_machine_unpark`, then `set_cpu_online`, on the new CPU |
//! | [`Hotplug::boot_cpu_online`] | `boot_cpu_init` (the boot CPU marked online) |
//! | [`CpuState::Off`] | `CPUHP_OFFLINE` |
//! | [`CpuState::Booting`] | `CPUHP_BRINGUP_CPU` (the control CPU waiting for the new one, arm64's `__cpu_up`) |
//! | [`CpuState::Online`], [`Hotplug::online_mask`], [`Hotplug::is_online`] | `CPUHP_ONLINE`, `cpu_online_mask`, `cpu_online()` |
//! | [`CpuState::Dying`] | `CPUHP_TEARDOWN_CPU` down to `CPUHP_AP_OFFLINE`: the dying CPU in `take_cpu_down`, then flushing its stopper |
//! | [`CpuState::Dead`] | `CPUHP_AP_IDLE_DEAD` |
//! | [`CpuState::Failed`], [`CpuState::Halted`] | — (Linux rolls a failed step back instead) |
//! | `cpu_up` and `cpu_down` serialised | `cpu_hotplug_lock` (`cpus_write_lock`) |
//! | [`Power`] | arm64's `struct cpu_operations`, and the IRQ migration of its `__cpu_disable` |
//! | [`Power::cpu_on`] | `cpu_psci_cpu_boot` (PSCI CPU_ON), from `__cpu_up` |
//! | [`Power::is_off`] | `cpu_psci_cpu_kill`'s AFFINITY_INFO poll, from `__cpu_die` |
//! | [`Power::migrate_irqs`] | `irq_migrate_all_off_this_cpu`, from arm64's `__cpu_disable` |
//! | [`Timeouts`] | `__cpu_up`'s wait for the new CPU, and `cpu_psci_cpu_kill`'s for AFFINITY_INFO OFF |
//! | [`Hotplug::pin`] | — (Linux can take any arm64 CPU down; armstop's boot CPU runs the main program and never returns to a stopper loop) |
//!
//! The boot CPU runs the main program and never returns to a stopper loop, so the firmware
//! [pins](Hotplug::pin) it: `cpu_down` refuses it rather than wait for a death that cannot come.
//!
//! # Example
//!
//! A machine with room for two CPUs, only one of which exists: the calling thread, with the
//! stopper platform of `armstop-stopper`'s crate-level example and a [`Power`] that cannot
//! start anything. `examples/hotplug_threads.rs` takes a real (std thread) CPU down and up
//! while another CPU makes stop requests (`cargo run -p armstop-hotplug --example
//! hotplug_threads`).
//!
//! ```
//! use armstop_hotplug::{CpuState, DownError, Hotplug, Power, UpError, transition_allowed};
//! use armstop_stopper::{Platform, Stoppers};
//! use std::time::Instant;
//!
//! struct OneCpu(Instant);
//!
//! impl Platform for OneCpu {
//!     fn cpu_id(&self) -> usize {
//!         0
//!     }
//!     fn kick(&self, _cpu: usize) {}
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
//! /// A board whose firmware refuses to start any CPU.
//! struct NoSecondaries;
//!
//! impl Power for NoSecondaries {
//!     type Error = &'static str;
//!     fn cpu_on(&self, _cpu: usize) -> Result<(), Self::Error> {
//!         Err("CPU_ON refused")
//!     }
//!     fn is_off(&self, _cpu: usize) -> Result<bool, Self::Error> {
//!         Ok(true)
//!     }
//!     fn migrate_irqs(&self, _cpu: usize, _to: usize) {}
//! }
//!
//! let stoppers: Stoppers<OneCpu, 2> = Stoppers::new(OneCpu(Instant::now()));
//! let hotplug = Hotplug::new(&stoppers, NoSecondaries);
//!
//! // At boot, on the boot CPU: its stopper enabled, then online.
//! hotplug.boot_cpu_online();
//! assert_eq!(hotplug.state(0), CpuState::Online);
//! assert!(stoppers.is_enabled(0));
//!
//! // The last online CPU cannot go down; a refused CPU_ON marks the CPU FAILED.
//! assert_eq!(hotplug.cpu_down(0), Err(DownError::LastOnline));
//! assert_eq!(hotplug.cpu_up(1), Err(UpError::Power("CPU_ON refused")));
//! assert_eq!(hotplug.state(1), CpuState::Failed);
//! assert!(transition_allowed(CpuState::Failed, CpuState::Booting), "cpu_up may retry it");
//! assert_eq!(hotplug.stats().bad_transitions, 0);
//! ```
//!
//! # What a firmware provides
//!
//! Everything `armstop-stopper` needs (its `Platform` and stopper loops), a [`Power`] (what
//! each method may and must do is in its `# Contract`), and in the loops:
//! - every CPU's stopper loop calls [`Hotplug::dying_step`] when it has nothing else to do (in
//!   place of `Stoppers::park`), and on [`Step::PowerOff`] powers the CPU off; once
//!   [`Power::is_off`] says it is off, the CPU touches no memory any more;
//! - a CPU started by [`Power::cpu_on`] initialises itself and calls [`Hotplug::cpu_online`]
//!   before it serves anything, and powers off again if that returns `Err`;
//! - the boot CPU calls [`Hotplug::boot_cpu_online`] once, and is [pinned](Hotplug::pin) if it
//!   never comes back to its stopper loop.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

use core::fmt;

use armstop_stopper::sync::{AtomicU32, AtomicU64, Mutex, Ordering};
use armstop_stopper::{AtomicCpuSet, CpuSet, Platform, StopError, Stoppers, WaitingGuard};

/// A CPU's hotplug state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum CpuState {
    /// Powered off (or never started).
    Off = 0,
    /// CPU_ON accepted; the CPU has not reported in yet.
    Booting = 1,
    /// Stopper enabled, serving requests.
    Online = 2,
    /// Taken down by `take_cpu_down`: no longer online, stopper disabled, flushing.
    Dying = 3,
    /// Its stopper flushed and parked; it is about to power off.
    Dead = 4,
    /// It did not start or stop as asked; the console says why. `cpu_up` may retry it.
    Failed = 5,
    /// A stopper watchdog halted it inside a callback that never returned
    /// ([`armstop_stopper::Stoppers::is_halted`]): parked for good, its stopper disabled. Not a
    /// state of the table below: it is read from the stoppers, and overrides the stored one.
    /// Neither `cpu_up` nor `cpu_down` touches it; only a reset brings it back.
    Halted = 6,
}

impl CpuState {
    fn from_u32(v: u32) -> Self {
        match v {
            0 => Self::Off,
            1 => Self::Booting,
            2 => Self::Online,
            3 => Self::Dying,
            4 => Self::Dead,
            6 => Self::Halted,
            _ => Self::Failed,
        }
    }

    /// The state's name as the console prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Off => "OFF",
            Self::Booting => "BOOTING",
            Self::Online => "ONLINE",
            Self::Dying => "DYING",
            Self::Dead => "DEAD",
            Self::Failed => "FAILED",
            Self::Halted => "HALTED",
        }
    }
}

impl fmt::Display for CpuState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, so that tables can give it a width.
        f.pad(self.name())
    }
}

/// Every transition a CPU may make; anything else is a bug.
const TRANSITIONS: &[(CpuState, CpuState)] = {
    use CpuState::*;
    &[
        (Off, Booting),
        (Failed, Booting),
        (Booting, Online),
        (Booting, Failed),
        (Online, Dying),
        (Dying, Dead),
        (Dying, Failed),
        (Dead, Off),
        (Dead, Failed),
    ]
};

/// Whether `from → to` is a transition a CPU may make.
pub fn transition_allowed(from: CpuState, to: CpuState) -> bool {
    TRANSITIONS.contains(&(from, to))
}

/// The hardware side of hotplug: starting a CPU, asking whether it is off, and moving its
/// interrupts away.
///
/// | method | called | must never | hotplug relies on |
/// |---|---|---|---|
/// | [`cpu_on`](Power::cpu_on) | by `cpu_up`, on the controlling CPU, hotplug lock held, the CPU `Booting` | call `cpu_up`/`cpu_down`, wait for the new CPU to report in | `Ok`: the CPU starts and calls [`Hotplug::cpu_online`]; what was stored before the call is visible to it |
/// | [`is_off`](Power::is_off) | by `cpu_down`, on the controlling CPU, repeatedly, hotplug lock held, the CPU `Dead` | block for long | `Ok(true)`: the CPU has stopped touching memory for good |
/// | [`migrate_irqs`](Power::migrate_irqs) | by `take_cpu_down`, on the dying CPU, inside `stop_machine`: IRQs masked, every other CPU stopped | wait for another CPU or a lock one may hold, make a request, sleep | it returns, soon |
///
/// None of them is called from inside a stopper callback except `migrate_irqs`, and none with a
/// stopper lock held.
pub trait Power: Sync {
    /// What the firmware's refusals look like (PSCI errors on the target).
    type Error: Copy + fmt::Debug + fmt::Display;

    /// Starts `cpu` (PSCI CPU_ON, with fresh boot arguments). The started CPU re-initialises
    /// itself and calls [`Hotplug::cpu_online`].
    ///
    /// # Contract
    /// Called by [`Hotplug::cpu_up`] on the controlling CPU, with the hotplug lock held (so
    /// never at the same time as another `cpu_on` or `is_off`), outside stopper callbacks, with
    /// `cpu` already `Booting`. It was `Off` (reported off by [`Power::is_off`], if it ran
    /// before) or `Failed`: a `Failed` CPU may still be running, and the firmware's answer
    /// says whether it can be started (PSCI: `ALREADY_ON`).
    /// - It may block (a firmware call), but not for long: the boot timeout only starts when it
    ///   returns.
    /// - **Ordering.** What the controlling CPU stored before the call must be visible to
    ///   `cpu` when it starts: its `cpu_online` moves it from `Booting` to `Online` and fails
    ///   (the CPU then powers off) if it does not see `Booting`. A PSCI CPU_ON is such a
    ///   barrier; so is a flag stored with `Release` that the new CPU reads with `Acquire`.
    /// - `Ok` means `cpu` will run and call [`Hotplug::cpu_online`] on itself (if it never
    ///   does, `cpu_up` times out and marks it `Failed`). `Err` means it did not start and
    ///   will not; `cpu_up` marks it `Failed` and returns the error.
    /// - It must not call `cpu_up` or `cpu_down` (the hotplug lock is held) nor wait for
    ///   `cpu` to report in: `cpu_up` does that, running this CPU's stopper works meanwhile.
    fn cpu_on(&self, cpu: usize) -> Result<(), Self::Error>;

    /// Whether the firmware reports `cpu` off (PSCI AFFINITY_INFO).
    ///
    /// # Contract
    /// Called by [`Hotplug::cpu_down`] on the controlling CPU once `cpu` has reported `Dead`
    /// (its stopper flushed and parked), with the hotplug lock held, outside stopper callbacks,
    /// over and over until it says off or the off timeout passes: nobody announces the end of
    /// a CPU_OFF, so it is polled (every [`OFF_POLL_NS`] once the spin budget is spent).
    /// - Each call must return promptly (one firmware query), and may be made any number of
    ///   times.
    /// - `Ok(true)` only once `cpu` has stopped touching memory for good: `cpu_up` may start
    ///   it again as soon as `cpu_down` returns, and the firmware then reuses its stacks and
    ///   boot arguments. `Ok(false)`: not yet. `Err`: the firmware refused; `cpu` is marked
    ///   `Failed`.
    fn is_off(&self, cpu: usize) -> Result<bool, Self::Error>;

    /// On `cpu`, with every CPU stopped and IRQs masked: route the interrupts that target
    /// `cpu` to `to` instead (or disable them).
    ///
    /// # Contract
    /// Called once per `cpu_down`, by [`Hotplug::take_cpu_down`] on `cpu` itself, inside the
    /// `stop_machine` callback: IRQs masked, and every other online CPU spinning in its stopper
    /// with IRQs masked, waiting for this callback to return. `cpu` is already `Dying` (no
    /// longer in [`Hotplug::online_mask`]); `to` is the lowest online CPU (`N` if there is none,
    /// which `cpu_down`, refusing to take the last online CPU, never lets happen).
    /// - It must return, and soon: the whole machine waits for it.
    /// - It must not wait for another CPU, nor for a lock another CPU may hold (they are all
    ///   stopped), nor sleep. A stop request here is refused (`WouldDeadlock`), and so are
    ///   `cpu_up` and `cpu_down` (`FromCallback`).
    fn migrate_irqs(&self, cpu: usize, to: usize);
}

/// Why `cpu_down` refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownError<E> {
    /// No such CPU.
    InvalidCpu,
    /// Called from inside a stopper callback: it would wait for its own stopper.
    FromCallback,
    /// The CPU is not online (it is off, or being brought up or down).
    NotOnline(CpuState),
    /// The CPU failed to start or stop earlier; bring it up again first.
    Failed,
    /// It is the last online CPU.
    LastOnline,
    /// A CPU cannot take itself down: it would have to wait for its own death.
    SelfTarget,
    /// The CPU's thread never returns to its stopper loop (the boot CPU runs the main
    /// program), so it could never power off.
    Pinned,
    /// The `stop_machine` that runs `take_cpu_down` failed.
    Stop(StopError),
    /// The CPU did not report its stopper flushed and parked in time (its thread is busy?).
    /// It is now `Failed`; if it reaches its stopper loop later, it turns itself off.
    NoDeadReport {
        /// How long the controlling CPU waited, in ms.
        waited_ms: u64,
    },
    /// The CPU reported dead but the firmware never said it is off. It is now `Failed`.
    NotOff {
        /// How long the controlling CPU polled, in ms.
        waited_ms: u64,
    },
    /// The firmware refused AFFINITY_INFO. The CPU is now `Failed`.
    Power(E),
}

impl<E: fmt::Display> fmt::Display for DownError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCpu => write!(f, "no such CPU"),
            Self::FromCallback => {
                write!(f, "cpu_down from inside a stopper callback would deadlock")
            }
            Self::NotOnline(s @ (CpuState::Off | CpuState::Dead)) => {
                write!(f, "CPU is already offline ({s})")
            }
            Self::NotOnline(s) => write!(f, "CPU is {s}: a hotplug operation is in progress"),
            Self::Failed => write!(f, "CPU is FAILED (did not start or stop); cpu_up it first"),
            Self::LastOnline => write!(f, "it is the last online CPU"),
            Self::SelfTarget => write!(f, "a CPU cannot take itself down; call from another CPU"),
            Self::Pinned => {
                write!(f, "CPU runs the main program and never returns to its stopper loop")
            }
            Self::Stop(e) => write!(f, "stop_machine(take_cpu_down) failed: {e}"),
            Self::NoDeadReport { waited_ms } => write!(
                f,
                "CPU did not flush and park its stopper within {waited_ms} ms; marked FAILED"
            ),
            Self::NotOff { waited_ms } => write!(
                f,
                "CPU parked, but the firmware did not report it OFF within {waited_ms} ms; marked FAILED"
            ),
            Self::Power(e) => write!(f, "{e}; marked FAILED"),
        }
    }
}

/// Why `cpu_up` refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpError<E> {
    /// No such CPU.
    InvalidCpu,
    /// Called from inside a stopper callback.
    FromCallback,
    /// The CPU is already online.
    AlreadyOnline,
    /// The CPU is being taken down, or is dead but not yet off.
    NotOff(CpuState),
    /// The firmware refused CPU_ON. The CPU is now `Failed`.
    Power(E),
    /// CPU_ON was accepted, but the CPU did not report in. It is now `Failed`.
    Timeout {
        /// How long the controlling CPU waited, in ms.
        waited_ms: u64,
    },
}

impl<E: fmt::Display> fmt::Display for UpError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCpu => write!(f, "no such CPU"),
            Self::FromCallback => write!(f, "cpu_up from inside a stopper callback would deadlock"),
            Self::AlreadyOnline => write!(f, "CPU is already online"),
            Self::NotOff(s) => write!(f, "CPU is {s}, not OFF or FAILED"),
            Self::Power(e) => write!(f, "{e}; marked FAILED"),
            Self::Timeout { waited_ms } => write!(
                f,
                "CPU_ON accepted, but the CPU did not report in within {waited_ms} ms; marked FAILED"
            ),
        }
    }
}

/// What the calling CPU's stopper loop must do next ([`Hotplug::dying_step`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing: the stopper was not asked to park.
    Run,
    /// The stopper flushed and parked, but the CPU is not going down (a bare
    /// `stop_machine_park`, outside hotplug): wait to be unparked.
    Parked,
    /// Flushed, parked and reported dead: power off now (mask everything, disable the
    /// interrupt controller's CPU interface, PSCI CPU_OFF).
    PowerOff,
}

/// Timings of one `cpu_down`, in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DownTimes {
    /// The `stop_machine(take_cpu_down)`.
    pub stop_ns: u64,
    /// From its end to the CPU's dead report (flush and park).
    pub dead_ns: u64,
    /// From the dead report to the firmware reporting it off.
    pub off_ns: u64,
}

impl DownTimes {
    /// The whole `cpu_down`.
    pub fn total_ns(&self) -> u64 {
        self.stop_ns + self.dead_ns + self.off_ns
    }
}

/// Timings of one `cpu_up`, in ns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UpTimes {
    /// The CPU_ON call.
    pub on_ns: u64,
    /// From CPU_ON's return to the CPU reporting online.
    pub online_ns: u64,
}

impl UpTimes {
    /// The whole `cpu_up`.
    pub fn total_ns(&self) -> u64 {
        self.on_ns + self.online_ns
    }
}

/// Counters that tests read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Successful `cpu_down`s.
    pub downs: u64,
    /// Successful `cpu_up`s.
    pub ups: u64,
    /// Transitions refused because they are not in the table or the state was not what the
    /// caller expected (bugs; must stay 0).
    pub bad_transitions: u64,
    /// CPUs that reported in, or reached their stopper loop to die, after the controlling CPU
    /// had given up on them.
    pub late_cpus: u64,
}

/// How long the controlling CPU waits for each step, in ns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// From CPU_ON's return to the CPU reporting online.
    pub boot_ns: u64,
    /// From the end of `take_cpu_down` to the dead report.
    pub dead_ns: u64,
    /// From the dead report to the firmware reporting the CPU off.
    pub off_ns: u64,
}

impl Timeouts {
    /// Two seconds for each step: far beyond what a healthy CPU needs, even under emulation.
    pub const DEFAULT: Timeouts =
        Timeouts { boot_ns: 2_000_000_000, dead_ns: 2_000_000_000, off_ns: 2_000_000_000 };
}

/// The hotplug state of every CPU, and `cpu_up` / `cpu_down`.
pub struct Hotplug<'s, S: Platform, P: Power, const N: usize> {
    stoppers: &'s Stoppers<S, N>,
    power: P,
    state: [AtomicU32; N],
    pinned: AtomicCpuSet,
    lock: Mutex<()>,
    boot_ns: AtomicU64,
    dead_ns: AtomicU64,
    off_ns: AtomicU64,
    downs: AtomicU64,
    ups: AtomicU64,
    bad_transitions: AtomicU64,
    late_cpus: AtomicU64,
}

/// How often `cpu_down` asks the firmware whether a dead CPU is off yet, once it sleeps: the
/// firmware tells nobody when a CPU_OFF completes.
pub const OFF_POLL_NS: u64 = 10_000;

impl<'s, S: Platform, P: Power, const N: usize> Hotplug<'s, S, P, N> {
    armstop_stopper::loom_const_fn! {
        /// Every CPU `Off`, with [`Timeouts::DEFAULT`].
        pub fn new(stoppers: &'s Stoppers<S, N>, power: P) -> Self {
            Self {
                stoppers,
                power,
                state: armstop_stopper::array_of![AtomicU32::new(CpuState::Off as u32); N],
                pinned: AtomicCpuSet::new(),
                lock: Mutex::new(()),
                boot_ns: AtomicU64::new(Timeouts::DEFAULT.boot_ns),
                dead_ns: AtomicU64::new(Timeouts::DEFAULT.dead_ns),
                off_ns: AtomicU64::new(Timeouts::DEFAULT.off_ns),
                downs: AtomicU64::new(0),
                ups: AtomicU64::new(0),
                bad_transitions: AtomicU64::new(0),
                late_cpus: AtomicU64::new(0),
            }
        }
    }

    /// The stoppers this hotplug drives.
    pub fn stoppers(&self) -> &'s Stoppers<S, N> {
        self.stoppers
    }

    /// The power interface.
    pub fn power(&self) -> &P {
        &self.power
    }

    /// Sets how long each step may take.
    pub fn set_timeouts(&self, t: Timeouts) {
        self.boot_ns.store(t.boot_ns, Ordering::Relaxed);
        self.dead_ns.store(t.dead_ns, Ordering::Relaxed);
        self.off_ns.store(t.off_ns, Ordering::Relaxed);
    }

    /// The timeouts in force.
    pub fn timeouts(&self) -> Timeouts {
        Timeouts {
            boot_ns: self.boot_ns.load(Ordering::Relaxed),
            dead_ns: self.dead_ns.load(Ordering::Relaxed),
            off_ns: self.off_ns.load(Ordering::Relaxed),
        }
    }

    /// Marks `cpu` as one whose thread never returns to its stopper loop (the boot CPU, which
    /// runs the main program): `cpu_down` refuses it, as it could never power off.
    pub fn pin(&self, cpu: usize) {
        self.pinned.insert(cpu, Ordering::Relaxed);
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        Stats {
            downs: self.downs.load(Ordering::Relaxed),
            ups: self.ups.load(Ordering::Relaxed),
            bad_transitions: self.bad_transitions.load(Ordering::Relaxed),
            late_cpus: self.late_cpus.load(Ordering::Relaxed),
        }
    }

    /// `cpu`'s state.
    pub fn state(&self, cpu: usize) -> CpuState {
        if self.stoppers.is_halted(cpu) {
            return CpuState::Halted;
        }
        CpuState::from_u32(self.state[cpu].load(Ordering::Acquire))
    }

    /// Whether `cpu` is online (false for ids past the last CPU).
    pub fn is_online(&self, cpu: usize) -> bool {
        cpu < N && self.state(cpu) == CpuState::Online
    }

    /// Mask of online CPUs.
    pub fn online_mask(&self) -> CpuSet {
        (0..N).filter(|&c| self.is_online(c)).collect()
    }

    /// Moves `cpu` from `from` to `to` if it is in `from`; `Err(actual)` otherwise.
    fn try_transition(&self, cpu: usize, from: CpuState, to: CpuState) -> Result<(), CpuState> {
        debug_assert!(transition_allowed(from, to));
        self.state[cpu]
            .compare_exchange(from as u32, to as u32, Ordering::AcqRel, Ordering::Acquire)
            .map_err(CpuState::from_u32)?;
        // The controlling CPU may sleep waiting for this CPU's report (`wait`).
        self.stoppers.notify(self.state_chan());
        Ok(())
    }

    /// What `wait` sleeps on: any CPU's state change.
    fn state_chan(&self) -> usize {
        &self.state as *const [AtomicU32; N] as usize
    }

    /// Moves `cpu` from `from` to `to`. A transition outside the table, or from a state the
    /// CPU is not in, is a bug: it is reported and counted, and the state is left alone.
    pub fn transition(&self, cpu: usize, from: CpuState, to: CpuState) -> Result<(), CpuState> {
        let allowed = transition_allowed(from, to);
        let actual = if allowed {
            match self.try_transition(cpu, from, to) {
                Ok(()) => return Ok(()),
                Err(actual) => actual,
            }
        } else {
            self.state(cpu)
        };
        self.bad_transitions.fetch_add(1, Ordering::Relaxed);
        let why = if allowed { "" } else { "not an allowed transition; " };
        self.stoppers.platform().report(format_args!(
            "BUG: cpu{cpu}: state transition {from} -> {to} refused: {why}the CPU is {actual}"
        ));
        Err(actual)
    }

    /// Takes the hotplug lock, running this CPU's stopper works while it waits (the holder may
    /// be in a `stop_machine` that needs them).
    fn lock(&self) -> WaitingGuard<'_, (), S, N> {
        self.stoppers.lock_waiting(&self.lock)
    }

    /// Waits until `done()` or `timeout_ns` passes; returns whether `done()` held. `done` must
    /// read CPU states (whose changes wake a sleeping waiter), or give `poll_ns`, the longest
    /// sleep between checks of a condition that nobody notifies.
    fn wait(&self, timeout_ns: u64, poll_ns: u64, done: impl FnMut() -> bool) -> bool {
        let deadline = self.stoppers.platform().now_ns().saturating_add(timeout_ns);
        self.stoppers.wait_until_polled(self.state_chan(), deadline, poll_ns, done)
    }

    /// For the boot CPU, once, at boot: enables its stopper and marks it online, in the same
    /// order as a CPU started by `cpu_up`.
    pub fn boot_cpu_online(&self) {
        let me = self.stoppers.platform().cpu_id();
        let _ = self.transition(me, CpuState::Off, CpuState::Booting);
        let _ = self.cpu_online();
    }

    /// On a CPU started by `cpu_up`, once it is ready for work: enables its stopper, **then**
    /// marks it online. `Err` if the controlling CPU gave up waiting for it: the CPU must then
    /// power off (its stopper has been flushed and parked again).
    pub fn cpu_online(&self) -> Result<(), CpuState> {
        let me = self.stoppers.platform().cpu_id();
        #[cfg(not(feature = "pre-fix-online"))]
        self.stoppers.stop_machine_unpark(me);
        let r = self.try_transition(me, CpuState::Booting, CpuState::Online);
        #[cfg(feature = "pre-fix-online")]
        // The order before Linux 45178ac0cea8: online first, stopper enabled after.
        self.stoppers.stop_machine_unpark(me);
        if let Err(actual) = r {
            // The controller timed out and marked us FAILED; someone may have queued work in
            // the moment the stopper was enabled, so flush it before turning off.
            self.stoppers.stop_machine_park(me);
            self.stoppers.park();
            if actual == CpuState::Failed {
                self.late_cpus.fetch_add(1, Ordering::Relaxed);
                self.stoppers.platform().report(format_args!(
                    "cpu{me} reported in after cpu_up gave up on it; it stays FAILED and turns off"
                ));
            } else {
                self.bad_transitions.fetch_add(1, Ordering::Relaxed);
                self.stoppers.platform().report(format_args!(
                    "BUG: cpu{me} came up while {actual}, not BOOTING; turning off"
                ));
            }
            return Err(actual);
        }
        Ok(())
    }

    /// `take_cpu_down`: the `stop_machine` callback, on the dying CPU `n` with every CPU
    /// stopped and IRQs masked. Public for models and tests; `cpu_down` is the API.
    pub fn take_cpu_down(&self, n: usize) -> i32 {
        let me = self.stoppers.platform().cpu_id();
        if me != n {
            self.stoppers.platform().report(format_args!("BUG: take_cpu_down({n}) ran on cpu{me}"));
            return StopError::InvalidCpu.errno();
        }
        if self.transition(n, CpuState::Online, CpuState::Dying).is_err() {
            return -16; // EBUSY
        }
        // Every other CPU is stopped, so the online set cannot change under us.
        let to = self.online_mask().first().unwrap_or(N);
        self.power.migrate_irqs(n, to);
        self.stoppers.stop_machine_park(n);
        0
    }

    /// Called by every CPU's stopper loop when it has nothing else to do. If the stopper was
    /// asked to park, flushes it (runs every work queued before `enabled` went false), parks
    /// it, and, if the CPU is going down, reports it dead.
    pub fn dying_step(&self) -> Step {
        if !self.stoppers.park() {
            return Step::Run;
        }
        let me = self.stoppers.platform().cpu_id();
        match self.try_transition(me, CpuState::Dying, CpuState::Dead) {
            Ok(()) => Step::PowerOff,
            Err(CpuState::Failed) => {
                self.late_cpus.fetch_add(1, Ordering::Relaxed);
                self.stoppers.platform().report(format_args!(
                    "cpu{me} reached its stopper loop after cpu_down gave up on it; turning off"
                ));
                Step::PowerOff
            }
            Err(_) => Step::Parked,
        }
    }

    /// Takes `n` down: `stop_machine(take_cpu_down, {n})`, then waits for `n` to flush and
    /// park its stopper and for the firmware to report it off. Call from another online CPU.
    #[track_caller]
    pub fn cpu_down(&self, n: usize) -> Result<DownTimes, DownError<P::Error>> {
        if n >= self.stoppers.nr_cpu_ids() {
            return Err(DownError::InvalidCpu);
        }
        if self.stoppers.in_callback() {
            return Err(DownError::FromCallback);
        }
        let _g = self.lock();
        match self.state(n) {
            CpuState::Online => {}
            CpuState::Failed => return Err(DownError::Failed),
            s => return Err(DownError::NotOnline(s)),
        }
        if (self.online_mask() - CpuSet::single(n)).is_empty() {
            return Err(DownError::LastOnline);
        }
        let p = self.stoppers.platform();
        if p.cpu_id() == n {
            return Err(DownError::SelfTarget);
        }
        if self.pinned.contains(n, Ordering::Relaxed) {
            return Err(DownError::Pinned);
        }
        let t0 = p.now_ns();
        match self.stoppers.stop_machine(|| self.take_cpu_down(n), Some(CpuSet::single(n))) {
            Ok(0) => {}
            Ok(_) => return Err(DownError::NotOnline(self.state(n))),
            Err(e) => return Err(DownError::Stop(e)),
        }
        let t1 = p.now_ns();
        let dead_ns = self.dead_ns.load(Ordering::Relaxed);
        if !self.wait(dead_ns, u64::MAX, || self.state(n) == CpuState::Dead) {
            // Losing this race to the dead report just means it made it after all.
            if self.try_transition(n, CpuState::Dying, CpuState::Failed).is_ok() {
                return Err(DownError::NoDeadReport { waited_ms: dead_ns / 1_000_000 });
            }
        }
        let t2 = p.now_ns();
        let off_ns = self.off_ns.load(Ordering::Relaxed);
        let mut refused = None;
        let off = self.wait(off_ns, OFF_POLL_NS, || match self.power.is_off(n) {
            Ok(off) => off,
            Err(e) => {
                refused = Some(e);
                true
            }
        });
        if let Some(e) = refused {
            let _ = self.transition(n, CpuState::Dead, CpuState::Failed);
            return Err(DownError::Power(e));
        }
        if !off {
            let _ = self.transition(n, CpuState::Dead, CpuState::Failed);
            return Err(DownError::NotOff { waited_ms: off_ns / 1_000_000 });
        }
        let _ = self.transition(n, CpuState::Dead, CpuState::Off);
        self.downs.fetch_add(1, Ordering::Relaxed);
        Ok(DownTimes { stop_ns: t1 - t0, dead_ns: t2 - t1, off_ns: p.now_ns() - t2 })
    }

    /// Brings `n` up: CPU_ON, then waits for it to enable its stopper and report online. A
    /// `Failed` CPU may be retried; the firmware's answer says whether it can be.
    pub fn cpu_up(&self, n: usize) -> Result<UpTimes, UpError<P::Error>> {
        if n >= self.stoppers.nr_cpu_ids() {
            return Err(UpError::InvalidCpu);
        }
        if self.stoppers.in_callback() {
            return Err(UpError::FromCallback);
        }
        let _g = self.lock();
        let from = match self.state(n) {
            s @ (CpuState::Off | CpuState::Failed) => s,
            CpuState::Online => return Err(UpError::AlreadyOnline),
            s => return Err(UpError::NotOff(s)),
        };
        let _ = self.transition(n, from, CpuState::Booting);
        let p = self.stoppers.platform();
        let t0 = p.now_ns();
        if let Err(e) = self.power.cpu_on(n) {
            let _ = self.transition(n, CpuState::Booting, CpuState::Failed);
            return Err(UpError::Power(e));
        }
        let t1 = p.now_ns();
        let boot_ns = self.boot_ns.load(Ordering::Relaxed);
        if !self.wait(boot_ns, u64::MAX, || self.state(n) != CpuState::Booting)
            && self.try_transition(n, CpuState::Booting, CpuState::Failed).is_ok()
        {
            return Err(UpError::Timeout { waited_ms: boot_ns / 1_000_000 });
        }
        self.ups.fetch_add(1, Ordering::Relaxed);
        Ok(UpTimes { on_ns: t1 - t0, online_ns: p.now_ns() - t1 })
    }
}
