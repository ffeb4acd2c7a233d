//! Per-CPU identity and interrupt masking.
//!
//! Invariant: `TPIDR_EL1` holds the logical CPU id from the moment a core enters Rust (the boot
//! assembly writes it), so [`id`] is one register read and works inside exception handlers.

use aarch64_cpu::registers::{DAIF, MPIDR_EL1, Readable, TPIDR_EL1};

/// Logical id of the calling CPU (an index into the board's MPIDR table).
#[inline]
pub fn id() -> usize {
    TPIDR_EL1.get() as usize
}

/// This CPU's MPIDR affinity value.
pub fn mpidr() -> u64 {
    MPIDR_EL1.get() & armstop_boards::MPIDR_AFFINITY_MASK
}

/// Whether IRQs are masked on this CPU.
pub fn irqs_masked() -> bool {
    DAIF.matches_all(DAIF::I::Masked)
}

/// Masks IRQs and returns a guard that restores the previous state when dropped.
pub fn mask_irqs() -> IrqGuard {
    let was = irqs_masked();
    // SAFETY: masking IRQs has no memory effects; the guard restores the previous state.
    unsafe { core::arch::asm!("msr daifset, #2", options(nomem, nostack, preserves_flags)) };
    IrqGuard { was_masked: was }
}

/// Unmasks IRQs on this CPU.
pub fn unmask_irqs() {
    // SAFETY: IRQ handlers save and restore all state they touch; callers decide when to
    // allow them. The memory clobber keeps accesses from moving across the unmask.
    unsafe { core::arch::asm!("msr daifclr, #2", options(nostack, preserves_flags)) };
}

/// Restores the IRQ mask state on drop. Not `Send`: it belongs to the CPU that made it.
pub struct IrqGuard {
    was_masked: bool,
    // Keep it on its CPU.
}

impl Drop for IrqGuard {
    fn drop(&mut self) {
        if !self.was_masked {
            unmask_irqs();
        }
    }
}

/// Waits for an interrupt. With IRQs masked, a pending IRQ still ends the wait, which is what
/// makes "mask, check for work, wait" free of lost wake-ups.
#[inline]
pub fn wait_for_interrupt() {
    // SAFETY: `wfi` only suspends the core until an interrupt is pending.
    unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack, preserves_flags)) };
}

/// The exception level the firmware runs at now (1, or 2 for an EL2 board in future).
pub fn current_el() -> u8 {
    use aarch64_cpu::registers::CurrentEL;
    CurrentEL.read(CurrentEL::EL) as u8
}
