//! armstop's own PSCI provider, for boards whose boot firmware parks the secondary CPUs on spin
//! tables and offers no PSCI (the Raspberry Pi 4's stock armstub, QEMU `raspi4b -kernel`).
//!
//! The firmware's boot CPU, still at EL2, releases every secondary from its spin table into an
//! EL2 holding pen; from then on the EL1 firmware turns CPUs on and off with ordinary PSCI calls
//! over HVC, exactly as it does with TF-A or QEMU's built-in PSCI. This crate is the part that
//! does not touch hardware: the call dispatcher ([`Provider::call`]), the per-CPU power states
//! and the pen's hand-over ([`Provider::pen_poll`]); the EL2 vectors, the pen loop and the
//! watchdog live in the firmware, behind [`Platform`].
//!
//! Implemented (PSCI 1.1, function ids and return codes as in the specification, DEN0022):
//!
//! | call | behaviour |
//! |---|---|
//! | `PSCI_VERSION` | 1.1 |
//! | `PSCI_FEATURES` | 0 for each call below (CPU_SUSPEND: original `power_state` format, platform-coordinated), `NOT_SUPPORTED` otherwise |
//! | `CPU_ON` (32 and 64) | `INVALID_PARAMETERS` for a target that is not a CPU of the board (or has non-affinity bits), `INVALID_ADDRESS` for an entry point outside RAM or not word aligned, `ALREADY_ON`, `ON_PENDING`; else the CPU leaves the pen at `entry` in EL1h with `x0 = context_id` |
//! | `CPU_OFF` | the caller goes back to the pen (from where a later `CPU_ON` starts it again); does not return |
//! | `AFFINITY_INFO` (32 and 64) | 0 on, 1 off, 2 on-pending; level 0 only (`INVALID_PARAMETERS` otherwise) |
//! | `CPU_SUSPEND` (32 and 64) | standby at power level 0 (`wfi`), returning 0; power-down states are `INVALID_PARAMETERS` |
//! | `MIGRATE_INFO_TYPE` | 2: no Trusted OS |
//! | `SYSTEM_OFF`, `SYSTEM_RESET` | the board's watchdog halt / reset; do not return |
//!
//! Invariants: a CPU's power state changes only under the [`Bakery`] lock (CPU_ON: off →
//! on-pending; the pen: on-pending → on; CPU_OFF: on → off), so two racing CPU_ONs of one CPU
//! give one `SUCCESS` and one refusal, and a CPU_ON that races the target's own CPU_OFF either
//! sees it on (`ALREADY_ON`) or starts it again from the pen. The pen reads only the state word,
//! never a separate mailbox the dying CPU could clear after a CPU_ON filled it. Nothing here
//! uses a read-modify-write atomic or a spin lock: the provider runs with the MMU off (see
//! [`bakery`]).
//!
//! The names are the specification's; Linux is a PSCI *client* (`drivers/firmware/psci/`),
//! and the closest provider is TF-A's generic PSCI library (`lib/psci/`: `psci_cpu_on`,
//! `psci_cpu_off`, `psci_affinity_info`), whose per-CPU `aff_info_state` is [`Power`] here.
//!
//! ```
//! use armstop_psci_provider::{Action, Platform, Power, Provider, Start};
//! use smccc::psci::error::{ALREADY_ON, INVALID_ADDRESS, SUCCESS};
//! use smccc::psci::{PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_64};
//!
//! /// Two CPUs whose MPIDR affinity is their logical id; RAM from 0x8_0000.
//! struct Board;
//!
//! impl Platform for Board {
//!     fn cpu_of(&self, affinity: u64) -> Option<usize> {
//!         (affinity < 2).then_some(affinity as usize)
//!     }
//!     fn is_valid_entry(&self, entry: u64) -> bool {
//!         (0x8_0000..0x4000_0000).contains(&entry)
//!     }
//!     fn wake(&self, _cpu: usize) {} // `dsb sy; sev` on the target
//!     fn standby(&self) {}
//!     fn system_off(&self) -> ! {
//!         unreachable!()
//!     }
//!     fn system_reset(&self) -> ! {
//!         unreachable!()
//!     }
//! }
//!
//! let psci: Provider<2> = Provider::new();
//! psci.boot(0);
//! let ret = |code: i32| Action::Return(code.into());
//!
//! // CPU 0 starts CPU 1 at 0x8_0000 with context 7; a second CPU_ON is refused.
//! assert_eq!(psci.call(&Board, 0, PSCI_CPU_ON_64, [1, 0x8_0000, 7]), ret(SUCCESS));
//! assert_eq!(psci.power(1), Power::OnPending);
//! assert_eq!(psci.call(&Board, 0, PSCI_CPU_ON_64, [1, 0x4000_0000, 0]), ret(INVALID_ADDRESS));
//!
//! // CPU 1, woken in its pen, leaves it for the entry point.
//! assert_eq!(psci.pen_poll(1), Some(Start { entry: 0x8_0000, context: 7 }));
//! assert_eq!(psci.call(&Board, 0, PSCI_AFFINITY_INFO_64, [1, 0, 0]), ret(0)); // on
//! assert_eq!(psci.call(&Board, 0, PSCI_CPU_ON_64, [1, 0x8_0000, 7]), ret(ALREADY_ON));
//!
//! // CPU 1 turns itself off and goes back to the pen.
//! assert_eq!(psci.call(&Board, 1, PSCI_CPU_OFF, [0; 3]), Action::PowerDown);
//! assert_eq!(psci.call(&Board, 0, PSCI_AFFINITY_INFO_64, [1, 0, 0]), ret(1)); // off
//! assert_eq!(psci.pen_poll(1), None);
//! ```
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bakery;

pub use bakery::Bakery;

use armstop_boards::MPIDR_AFFINITY_MASK;
use armstop_sync::{AtomicU32, AtomicU64, Ordering::SeqCst};
use smccc::psci::error::{
    ALREADY_ON, INVALID_ADDRESS, INVALID_PARAMETERS, NOT_SUPPORTED, ON_PENDING, SUCCESS,
};
use smccc::psci::{
    PSCI_AFFINITY_INFO_32, PSCI_AFFINITY_INFO_64, PSCI_CPU_OFF, PSCI_CPU_ON_32, PSCI_CPU_ON_64,
    PSCI_CPU_SUSPEND_32, PSCI_CPU_SUSPEND_64, PSCI_FEATURES, PSCI_MIGRATE_INFO_TYPE,
    PSCI_SYSTEM_OFF, PSCI_SYSTEM_RESET, PSCI_VERSION,
};

/// The PSCI version reported: 1.1 (major in bits 30:16, minor in 15:0).
pub const VERSION: u32 = 1 << 16 | 1;

/// `MIGRATE_INFO_TYPE`'s answer: "Trusted OS is not present or does not require migration".
pub const MIGRATE_NONE: i64 = 2;

/// Every call the provider implements, for `PSCI_FEATURES`.
pub const IMPLEMENTED: &[u32] = &[
    PSCI_VERSION,
    PSCI_FEATURES,
    PSCI_CPU_ON_32,
    PSCI_CPU_ON_64,
    PSCI_CPU_OFF,
    PSCI_AFFINITY_INFO_32,
    PSCI_AFFINITY_INFO_64,
    PSCI_CPU_SUSPEND_32,
    PSCI_CPU_SUSPEND_64,
    PSCI_MIGRATE_INFO_TYPE,
    PSCI_SYSTEM_OFF,
    PSCI_SYSTEM_RESET,
];

/// A CPU's power state, with `AFFINITY_INFO`'s numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Power {
    /// Running (or about to run) at EL1.
    On = 0,
    /// In the pen.
    Off = 1,
    /// A CPU_ON was accepted; the CPU has not left the pen yet.
    OnPending = 2,
}

impl Power {
    fn from_word(w: u32) -> Self {
        match w {
            0 => Self::On,
            2 => Self::OnPending,
            _ => Self::Off,
        }
    }
}

/// What the provider needs from the hardware.
pub trait Platform {
    /// The logical id of the CPU whose MPIDR affinity fields are `affinity` (no other bits
    /// set), if the board has it.
    fn cpu_of(&self, affinity: u64) -> Option<usize>;
    /// Whether a CPU may be started at `entry` (in RAM the EL1 firmware can run from).
    fn is_valid_entry(&self, entry: u64) -> bool;
    /// Wakes `cpu` from its pen wait (`dsb sy; sev`).
    fn wake(&self, cpu: usize);
    /// Waits for an interrupt (CPU_SUSPEND's standby state).
    fn standby(&self);
    /// Turns the system off (on the Pi: the watchdog halt). Never returns.
    fn system_off(&self) -> !;
    /// Resets the system. Never returns.
    fn system_reset(&self) -> !;
}

/// What the caller's CPU does once a call is handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Return this value in `x0`.
    Return(i64),
    /// CPU_OFF succeeded: go to the pen, and leave it only for a later CPU_ON.
    PowerDown,
}

/// Where a CPU leaving the pen starts, at EL1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct Start {
    /// Entry point.
    pub entry: u64,
    /// `x0` at entry (CPU_ON's context id).
    pub context: u64,
}

/// The provider's state for `N` CPUs (logical ids `0..N`).
pub struct Provider<const N: usize> {
    lock: Bakery<N>,
    state: [AtomicU32; N],
    entry: [AtomicU64; N],
    context: [AtomicU64; N],
}

impl<const N: usize> Provider<N> {
    armstop_sync::loom_const_fn! {
        /// Every CPU off; [`Provider::boot`] marks the boot CPU on.
        pub fn new() -> Self {
            Self {
                lock: Bakery::new(),
                state: armstop_sync::array_of!(AtomicU32::new(Power::Off as u32); N),
                entry: armstop_sync::array_of!(AtomicU64::new(0); N),
                context: armstop_sync::array_of!(AtomicU64::new(0); N),
            }
        }
    }

    /// Starts the provider's bookkeeping: `boot_cpu` on, every other CPU off. Once, on the boot
    /// CPU, before any secondary is released into the pen.
    pub fn boot(&self, boot_cpu: usize) {
        for (cpu, s) in self.state.iter().enumerate() {
            let p = if cpu == boot_cpu { Power::On } else { Power::Off };
            s.store(p as u32, SeqCst);
        }
    }

    /// The power state of `cpu` (`AFFINITY_INFO`'s view).
    pub fn power(&self, cpu: usize) -> Power {
        Power::from_word(self.state[cpu].load(SeqCst))
    }

    /// Handles one PSCI call made by CPU `me`: `fid` from `w0`, arguments from `x1..x3`.
    pub fn call<P: Platform>(&self, p: &P, me: usize, fid: u32, args: [u64; 3]) -> Action {
        let [a1, a2, a3] = args;
        let w = |x: u64| u64::from(x as u32);
        let ret = match fid {
            PSCI_VERSION => i64::from(VERSION),
            PSCI_FEATURES => features(a1 as u32),
            PSCI_CPU_ON_32 => self.cpu_on(p, me, w(a1), w(a2), w(a3)),
            PSCI_CPU_ON_64 => self.cpu_on(p, me, a1, a2, a3),
            PSCI_CPU_OFF => return self.cpu_off(me),
            PSCI_AFFINITY_INFO_32 => self.affinity_info(p, w(a1), w(a2)),
            PSCI_AFFINITY_INFO_64 => self.affinity_info(p, a1, a2),
            PSCI_CPU_SUSPEND_32 | PSCI_CPU_SUSPEND_64 => suspend(p, a1 as u32),
            PSCI_MIGRATE_INFO_TYPE => MIGRATE_NONE,
            PSCI_SYSTEM_OFF => p.system_off(),
            PSCI_SYSTEM_RESET => p.system_reset(),
            _ => NOT_SUPPORTED.into(),
        };
        Action::Return(ret)
    }

    fn target<P: Platform>(p: &P, target: u64) -> Option<usize> {
        if target & !MPIDR_AFFINITY_MASK != 0 {
            return None;
        }
        p.cpu_of(target).filter(|&cpu| cpu < N)
    }

    fn cpu_on<P: Platform>(&self, p: &P, me: usize, target: u64, entry: u64, ctx: u64) -> i64 {
        let Some(cpu) = Self::target(p, target) else { return INVALID_PARAMETERS.into() };
        if !entry.is_multiple_of(4) || !p.is_valid_entry(entry) {
            return INVALID_ADDRESS.into();
        }
        let accepted = self.lock.with(me, || match self.power(cpu) {
            Power::On => Err(ALREADY_ON),
            Power::OnPending => Err(ON_PENDING),
            Power::Off => {
                // Entry and context before the state: the pen reads them once it sees
                // on-pending (all accesses sequentially consistent, under the lock).
                self.entry[cpu].store(entry, SeqCst);
                self.context[cpu].store(ctx, SeqCst);
                self.state[cpu].store(Power::OnPending as u32, SeqCst);
                Ok(())
            }
        });
        match accepted {
            Ok(()) => {
                p.wake(cpu);
                SUCCESS.into()
            }
            Err(e) => e.into(),
        }
    }

    fn cpu_off(&self, me: usize) -> Action {
        // From here on AFFINITY_INFO says off, while this CPU still runs the provider's exit
        // path; that path uses only the provider's own EL2 stack, never memory the EL1 firmware
        // may reuse once it sees the CPU off.
        self.lock.with(me, || self.state[me].store(Power::Off as u32, SeqCst));
        Action::PowerDown
    }

    fn affinity_info<P: Platform>(&self, p: &P, target: u64, lowest_level: u64) -> i64 {
        if lowest_level != 0 {
            return INVALID_PARAMETERS.into();
        }
        match Self::target(p, target) {
            Some(cpu) => self.power(cpu) as i64,
            None => INVALID_PARAMETERS.into(),
        }
    }

    /// The pen's check, on CPU `me`: if a CPU_ON was accepted for it, marks it on and returns
    /// where to start. The pen calls this after every wake-up.
    pub fn pen_poll(&self, me: usize) -> Option<Start> {
        if self.power(me) != Power::OnPending {
            return None;
        }
        self.lock.with(me, || {
            let start = Start {
                entry: self.entry[me].load(SeqCst),
                context: self.context[me].load(SeqCst),
            };
            self.state[me].store(Power::On as u32, SeqCst);
            Some(start)
        })
    }
}

#[cfg(not(loom))]
impl<const N: usize> Default for Provider<N> {
    fn default() -> Self {
        Self::new()
    }
}

fn features(fid: u32) -> i64 {
    // For CPU_SUSPEND the flags are 0 too: original power_state format (bit 1 clear), no
    // OS-initiated mode (bit 0 clear).
    if IMPLEMENTED.contains(&fid) { SUCCESS.into() } else { NOT_SUPPORTED.into() }
}

/// `power_state` in the original format: StateID 15:0, StateType 16 (1 = power down),
/// PowerLevel 25:24; every other bit must be zero.
fn suspend<P: Platform>(p: &P, power_state: u32) -> i64 {
    const STATE_ID: u32 = 0xffff;
    const POWER_DOWN: u32 = 1 << 16;
    const LEVEL: u32 = 3 << 24;
    let reserved = !(STATE_ID | POWER_DOWN | LEVEL);
    if power_state & (reserved | POWER_DOWN | LEVEL) != 0 {
        return INVALID_PARAMETERS.into();
    }
    p.standby();
    SUCCESS.into()
}
