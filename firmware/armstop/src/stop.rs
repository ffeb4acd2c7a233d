//! The stopper on the target: `armstop-stopper` over the GIC, IRQ masking and the timer.
//!
//! Every CPU's stopper is kicked by [`SGI_STOPPER`]. The SGI handler runs the CPU's pending
//! works ([`on_kick`]), which is how a stopper preempts whatever thread code the CPU was
//! running (Linux's stopper thread has the highest priority); secondaries' idle loops also run
//! them. Works run with IRQs masked, so a handler never nests inside a work, and a stopper lock
//! is only taken with IRQs masked, so the handler never finds one held by its own CPU.

use core::fmt;

use armstop_boards::MAX_CPUS;
use armstop_stopper::{Platform, Stoppers};

use crate::gic::{self, SgiTarget};

pub use armstop_stopper::{Caller, CpuMask, NowaitWork, StopError};

/// The SGI that kicks a stopper.
pub const SGI_STOPPER: u8 = 1;

/// The target platform for the stopper.
pub struct Firmware;

impl Platform for Firmware {
    fn cpu_id(&self) -> usize {
        crate::cpu::id()
    }

    fn kick(&self, cpu: usize) {
        if gic::send_sgi(SGI_STOPPER, SgiTarget::Cpu(cpu)).is_err() {
            log::error!("stopper kick to cpu{cpu} refused by the GIC");
        }
    }

    fn irq_save(&self) -> usize {
        let daif: u64;
        // SAFETY: reads DAIF and masks IRQs on this CPU; no memory effects beyond that.
        unsafe {
            core::arch::asm!("mrs {}, daif", "msr daifset, #2", out(reg) daif, options(nomem, nostack))
        };
        daif as usize
    }

    fn irq_restore(&self, saved: usize) {
        // SAFETY: writes back a DAIF value read by `irq_save` on this CPU.
        unsafe { core::arch::asm!("msr daif, {}", in(reg) saved as u64, options(nostack)) };
    }

    fn relax(&self) {
        // The activity LED shows a running stop request even while every CPU has IRQs masked.
        crate::led::on_relax();
        core::hint::spin_loop();
    }

    fn now_ns(&self) -> u64 {
        crate::time::Instant::now().since_boot().as_nanos() as u64
    }

    fn report(&self, args: fmt::Arguments<'_>) {
        crate::console::force_line(args);
    }
}

/// CPUs on this board: the stoppers' size, so a CPU id past the board's is `InvalidCpu`.
pub const NR_CPUS: usize = crate::board::cpu_count();
const _: () = assert!(NR_CPUS <= MAX_CPUS);

/// The stopper watchdog set at boot: a stop request that has not finished after this long
/// gets what each stopper it waits for is running printed (it keeps waiting).
pub const WATCHDOG_NS: u64 = 5_000_000_000;

/// Every CPU's stopper.
pub static STOPPERS: Stoppers<Firmware, NR_CPUS> = Stoppers::new(Firmware);

/// Runs this CPU's pending works; called by the SGI handler and the idle loop.
pub fn on_kick() {
    STOPPERS.run_works();
}
