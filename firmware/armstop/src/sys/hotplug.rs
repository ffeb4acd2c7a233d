//! CPU hotplug on the target: `armstop-hotplug`'s sequencing over PSCI and the GIC.
//!
//! [`cpu_down`] runs `take_cpu_down` on the dying CPU through `stop_machine`, which moves its
//! SPIs to the lowest online CPU and parks its stopper; the CPU's idle loop then flushes and
//! parks the stopper and reports dead; its idle loop refuses any cross-CPU call still posted to
//! it ([`crate::call`]), and `die` masks everything, disables its GIC CPU interface and timers
//! and calls PSCI CPU_OFF.
//! [`cpu_up`] calls PSCI CPU_ON with fresh boot arguments; the CPU re-initialises vectors,
//! stacks, MMU, GIC interface and timer, and enables its stopper before it is marked online
//! (`smp::armstop_secondary_main`).
//!
//! Invariant: a CPU's stacks and boot arguments are only rewritten while PSCI reports it off
//! (`cpu_down` waits for AFFINITY_INFO OFF before the CPU can be started again).
//!
//! Fault injection for tests ([`inject`]): a CPU can be made to stall instead of reporting in,
//! or instead of calling CPU_OFF, until [`release`]d — the two ways a real core can fail a
//! hotplug operation, which the controlling CPU must detect by timeout.

use core::fmt;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use core::time::Duration;

use armstop_hotplug::{Hotplug, Power};
use smccc::psci::AffinityState;

use crate::board::{BOARD, NR_CPUS};
use crate::psci;
use crate::stop::{Firmware, STOPPERS};
use crate::time::Instant;

pub use armstop_hotplug::{
    CpuState, DownError, DownTimes, Stats, Step, Timeouts, UpError, UpTimes,
};

/// A PSCI refusal, with the call it answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PsciError {
    /// The PSCI function.
    pub call: &'static str,
    /// The error it returned.
    pub error: psci::Error,
}

impl fmt::Display for PsciError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.error {
            psci::Error::AlreadyOn => ": the firmware reports the CPU running, outside armstop",
            psci::Error::OnPending => ": an earlier CPU_ON of this CPU is still in progress",
            psci::Error::InvalidParameters => ": the firmware does not know this MPIDR",
            psci::Error::InvalidAddress => ": the entry point was rejected",
            psci::Error::Denied => ": the firmware does not allow it",
            _ => "",
        };
        write!(f, "PSCI {} returned {}{why}", self.call, psci::error_name(self.error))
    }
}

/// PSCI as hotplug's power interface.
pub struct Psci;

/// When PSCI first reported each CPU off since its last CPU_ON (`Instant` ticks; 0: not yet), for
/// the board's `cpu_on_after_off_us`.
static OFF_SEEN: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

impl Power for Psci {
    type Error = PsciError;

    fn cpu_on(&self, cpu: usize) -> Result<(), PsciError> {
        let settle = Duration::from_micros(u64::from(BOARD.cpu_on_after_off_us));
        let off_at = OFF_SEEN[cpu].swap(0, Ordering::Relaxed);
        if off_at != 0 && !settle.is_zero() {
            // Only a CPU_ON soon after the CPU went off waits (hotplug serialises both).
            let since = Instant::from_ticks(off_at);
            while since.elapsed() < settle {
                core::hint::spin_loop();
            }
        }
        let mpidr = mpidr_of(cpu, "CPU_ON")?;
        let args = crate::arch::boot::prepare_boot_args(cpu);
        psci::cpu_on(mpidr, crate::arch::boot::secondary_entry_address(), args)
            .map_err(|error| PsciError { call: "CPU_ON", error })
    }

    fn is_off(&self, cpu: usize) -> Result<bool, PsciError> {
        let off = psci::affinity_info(mpidr_of(cpu, "AFFINITY_INFO")?)
            .map(|s| s == AffinityState::Off)
            .map_err(|error| PsciError { call: "AFFINITY_INFO", error })?;
        if off && OFF_SEEN[cpu].load(Ordering::Relaxed) == 0 {
            OFF_SEEN[cpu].store(crate::time::ticks().max(1), Ordering::Relaxed);
        }
        Ok(off)
    }

    fn migrate_irqs(&self, cpu: usize, to: usize) {
        crate::gic::migrate_spis(cpu, to);
    }
}

/// `cpu`'s MPIDR, or the error PSCI would give for a CPU it does not know (hotplug checks ids
/// first, so this is only reached through a bug).
fn mpidr_of(cpu: usize, call: &'static str) -> Result<u64, PsciError> {
    crate::board::mpidr(cpu).ok_or(PsciError { call, error: psci::Error::InvalidParameters })
}

/// Every CPU's hotplug state, over [`STOPPERS`].
pub static HOTPLUG: Hotplug<'static, Firmware, Psci, NR_CPUS> = Hotplug::new(&STOPPERS, Psci);

/// Takes `cpu` down (see the module docs). Call from another online CPU.
#[track_caller]
pub fn cpu_down(cpu: usize) -> Result<DownTimes, DownError<PsciError>> {
    let r = HOTPLUG.cpu_down(cpu);
    if let (Ok(t), Some(l)) = (&r, LAST_NS.get(cpu)) {
        l.store(t.stop_ns + t.dead_ns + t.off_ns, Ordering::Relaxed);
    }
    if let Err(
        e @ (DownError::NoDeadReport { .. } | DownError::NotOff { .. } | DownError::Power(_)),
    ) = r
    {
        log::error!("cpu_down({cpu}): {e}");
    }
    r
}

/// Brings `cpu` up (see the module docs).
pub fn cpu_up(cpu: usize) -> Result<UpTimes, UpError<PsciError>> {
    let r = HOTPLUG.cpu_up(cpu);
    if let (Ok(t), Some(l)) = (&r, LAST_NS.get(cpu)) {
        l.store(t.total_ns(), Ordering::Relaxed);
    }
    if let Err(e @ (UpError::Power(_) | UpError::Timeout { .. })) = r {
        log::error!("cpu_up({cpu}): {e}");
    }
    r
}

/// How long each CPU's last successful `cpu_up`/`cpu_down` took, in ns (0: none yet).
static LAST_NS: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

/// How long `cpu`'s last successful [`cpu_up`] or [`cpu_down`] took, if it had one.
pub fn last_latency_ns(cpu: usize) -> Option<u64> {
    LAST_NS.get(cpu).map(|l| l.load(Ordering::Relaxed)).filter(|&n| n != 0)
}

/// The state of `cpu`.
pub fn state(cpu: usize) -> CpuState {
    HOTPLUG.state(cpu)
}

/// A way to make a CPU fail a hotplug step, for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Fault {
    /// The next time it starts, it never reports in: it spins with everything masked until
    /// released, then turns itself off.
    StallBoot = 1,
    /// The next time it goes down, it reports dead but does not call CPU_OFF until released.
    StallOff = 2,
}

const NO_FAULT: u8 = 0;
static FAULTS: [AtomicU8; NR_CPUS] = [const { AtomicU8::new(NO_FAULT) }; NR_CPUS];

/// Arms `fault` for `cpu`'s next start or stop.
pub fn inject(cpu: usize, fault: Fault) {
    FAULTS[cpu].store(fault as u8, Ordering::SeqCst);
}

/// Ends a stall injected with [`inject`] (or disarms it if it has not happened yet).
pub fn release(cpu: usize) {
    FAULTS[cpu].store(NO_FAULT, Ordering::SeqCst);
}

/// Spins while `fault` is armed for this CPU (everything masked, so nothing else runs here).
pub(crate) fn stall_if(fault: Fault) -> bool {
    let cpu = crate::cpu::id();
    if FAULTS[cpu].load(Ordering::SeqCst) != fault as u8 {
        return false;
    }
    while FAULTS[cpu].load(Ordering::SeqCst) == fault as u8 {
        core::hint::spin_loop();
    }
    true
}

/// The end of a dying CPU: its stopper is flushed and parked and it has reported dead.
pub(crate) fn die() -> ! {
    stall_if(Fault::StallOff);
    turn_off()
}

/// Masks everything, quiesces the GIC CPU interface and the timers, and calls PSCI CPU_OFF.
/// Also for a CPU that must not continue booting.
pub(crate) fn turn_off() -> ! {
    // SAFETY: masks all exceptions on this CPU; nothing else is affected.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
    crate::gic::disable_cpu();
    crate::time::init_cpu();
    let e = psci::cpu_off();
    crate::fault::fatal(format_args!(
        "cpu{}: PSCI CPU_OFF returned {} ({e:?}); it must not return",
        crate::cpu::id(),
        psci::error_name(e)
    ))
}
