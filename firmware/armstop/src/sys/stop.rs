//! The stopper on the target: `armstop-stopper` over the GIC, IRQ masking and the timer.
//!
//! Every CPU's stopper is kicked by [`SGI_STOPPER`]. The SGI handler runs the CPU's pending
//! works ([`on_kick`]), which is how a stopper preempts whatever thread code the CPU was
//! running (Linux's stopper thread has the highest priority); secondaries' idle loops also run
//! them. Works run with IRQs masked, so a handler never nests inside a work, and a stopper lock
//! is only taken with IRQs masked, so the handler never finds one held by its own CPU.
//!
//! Waits that sleep (once the stoppers' spin budget is spent): `wfi` with IRQs masked, ended
//! by any pending interrupt. A waiter is woken by [`SGI_WAKE`], which is never taken as an
//! interrupt on purpose: the sleeper clears it on its own CPU before it announces itself (so a
//! stale one does not end the sleep at once), and one sent after that stays pending and ends
//! the `wfi`. One that is still pending when IRQs are unmasked is taken and ended like any SGI,
//! with no action. A deadline (the watchdog, hotplug's timeouts and polls) arms the EL1
//! physical timer, whose PPI is enabled on the sleeping CPU but never taken: the sleeper turns
//! the timer off again before it unmasks IRQs. The kick handler ends its SGI before it runs
//! works, so a participant sleeping inside it is not held off by the running priority.
//!
//! A request's callback runs with IRQs *unmasked* behind the GIC priority mask
//! [`gic::URGENT_ONLY`], which only the halt SGI ([`crate::fault::SGI_HALT`], the urgent one)
//! passes: every ordinary interrupt stays pending as if IRQs were masked, but a requester whose
//! watchdog ran out can halt a CPU whose callback never returns (Linux's pseudo-NMI idea,
//! applied only around callbacks). This works on every GIC the boards have: QEMU's GICv2 and
//! GICv3, and the Pi's GIC-400 (the priority mask is a non-secure register; with Security
//! Extensions the non-secure view of priorities and mask is shifted alike). A CPU spinning with
//! IRQs masked *outside* a callback (in the stopper's own code, an IRQ handler, a lock) cannot be
//! reached: that is the limit of the watchdog's recovery ([`armstop_stopper::Platform::halt`]).
//! A sleep inside a callback opens the mask for its `wfi` (IRQs are masked by then), so the
//! wake SGI and the timer still end it.

use core::fmt;

use armstop_stopper::{Platform, Stoppers};

use crate::board::NR_CPUS;

use crate::gic::{self, SgiTarget};

pub use armstop_stopper::{Caller, CpuSet, DEFAULT_SPIN_NS, NowaitWork, SPIN_ONLY, StopError};

/// The SGI that kicks a stopper.
pub const SGI_STOPPER: u8 = 1;
/// The SGI that wakes a CPU sleeping in a stopper wait (see the module docs).
pub const SGI_WAKE: u8 = 2;

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

    fn kick_set(&self, cpus: CpuSet) {
        if gic::send_sgi(SGI_STOPPER, SgiTarget::Set(cpus)).is_err() {
            log::error!("stopper kick to CPUs {cpus} refused by the GIC");
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

    fn wake(&self, cpus: CpuSet) {
        if gic::send_sgi(SGI_WAKE, SgiTarget::Set(cpus)).is_err() {
            log::error!("stopper wake to CPUs {cpus} refused by the GIC");
        }
    }

    fn clear_wake(&self) {
        gic::clear_sgi_pending(SGI_WAKE);
    }

    fn sleep(&self, deadline_ns: u64) {
        use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTP_CVAL_EL0, Writeable};
        let timed = deadline_ns != u64::MAX;
        if timed {
            // Re-enabled if a GIC re-initialisation (or a test) turned the PPI off since.
            if !gic::ppi_enabled(gic::PPI_PHYSICAL_TIMER) {
                let _ = gic::enable_ppi(gic::PPI_PHYSICAL_TIMER, on_sleep_timer);
            }
            let at = crate::time::Instant::from_boot(core::time::Duration::from_nanos(deadline_ns));
            CNTP_CVAL_EL0.set(at.ticks());
            CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
        }
        // Inside a callback, the mask would keep the wake SGI and the timer from ending the
        // `wfi`; IRQs are masked here, so opening it lets nothing be taken.
        let pmr = gic::priority_mask();
        if pmr != gic::ALL_PRIORITIES {
            gic::set_priority_mask(gic::ALL_PRIORITIES);
        }
        crate::cpu::wait_for_interrupt();
        if pmr != gic::ALL_PRIORITIES {
            gic::set_priority_mask(pmr);
        }
        if timed {
            // Off before IRQs are unmasked again, so the timer's PPI is never taken.
            CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::CLEAR + CNTP_CTL_EL0::IMASK::SET);
            aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
        }
    }

    fn now_ns(&self) -> u64 {
        crate::time::Instant::now().since_boot().as_nanos() as u64
    }

    fn run_callback(&self, f: &mut dyn FnMut() -> i32) -> i32 {
        let pmr = gic::priority_mask();
        gic::set_priority_mask(gic::URGENT_ONLY);
        // SAFETY: unmasks IRQs with the priority mask raised first (and complete, see
        // `set_priority_mask`), so the halt SGI is the only interrupt that can be taken; its
        // handler never returns into the callback.
        unsafe { core::arch::asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
        let ret = f();
        // SAFETY: masks IRQs again before the ordinary priorities are let through.
        unsafe { core::arch::asm!("msr daifset, #2", options(nostack, preserves_flags)) };
        gic::set_priority_mask(pmr);
        ret
    }

    fn halt(&self, cpu: usize) -> bool {
        crate::fault::halt_cpu(cpu, crate::fault::HALT_ACK_NS)
    }

    fn report(&self, args: fmt::Arguments<'_>) {
        crate::console::force_line(args);
    }
}

/// The stopper watchdog set at boot: a stop request that has not finished after this long
/// gets what each stopper it waits for is running printed (it keeps waiting).
pub const WATCHDOG_NS: u64 = 5_000_000_000;

/// Every CPU's stopper: room for the image's `NR_CPUS`, of which the boot CPU makes the
/// machine's own count valid (`set_nr_cpu_ids`) before any is enabled.
pub static STOPPERS: Stoppers<Firmware, NR_CPUS> = Stoppers::new(Firmware);

/// The sleep timer's PPI handler, for the case the sleeper's own order rules out (the PPI
/// taken while the timer is armed): stops the timer, so its PPI is not taken again at once.
fn on_sleep_timer() {
    use aarch64_cpu::registers::{CNTP_CTL_EL0, Writeable};
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::CLEAR + CNTP_CTL_EL0::IMASK::SET);
}

/// Makes [`on_kick`] the handler of [`SGI_STOPPER`], ended before it runs: the works may run
/// long (a `stop_machine`), and a new kick that arrives meanwhile must stay pending rather than
/// be merged into this one. Once, at boot, after the GIC is up.
pub fn init() -> Result<(), gic::GicError> {
    gic::set_sgi_handler(SGI_STOPPER, on_kick, gic::SgiEnd::First)
}

/// Whether ordinary interrupts are kept off this CPU: IRQs masked, or (inside a request's
/// callback) the priority mask raised so that only the halt SGI passes.
pub fn ordinary_irqs_masked() -> bool {
    crate::cpu::irqs_masked() || gic::priority_mask() <= gic::URGENT_ONLY
}

/// Runs this CPU's pending works; the kick's handler, and called by the idle loop.
pub fn on_kick() {
    STOPPERS.run_works();
}
