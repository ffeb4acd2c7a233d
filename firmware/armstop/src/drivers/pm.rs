//! Reset and halt through the BCM2711 power-management watchdog: what armstop's own PSCI
//! provider does for SYSTEM_RESET and SYSTEM_OFF on a board whose boot firmware offers no PSCI
//! (`BOARD.own_psci`; the block is `BOARD.pm_watchdog`). The words written are computed, and
//! host-tested, in `armstop-bcm2711`'s `pm` module.
//!
//! Invariant: [`reset`] and [`halt`] work in any state the provider can be in: at EL2 or EL1,
//! MMU on or off, on a small stack, with other CPUs in any state. So they take the block's
//! address as a parameter, make plain volatile 32-bit accesses, and use no lock, atomic,
//! console output or heap; they mask every exception and wait for the watchdog to fire.

use armstop_bcm2711::pm;

pub use armstop_bcm2711::pm::{RSTC, RSTS, WDOG};

/// The writes a watchdog reset makes, in order, as `(offset, word)`: the timeout, then the
/// reset configuration (computed from `rstc`, the value read from `PM_RSTC`).
pub const fn reset_writes(rstc: u32) -> [(usize, u32); 2] {
    [(pm::WDOG, pm::wdog(pm::RESET_TICKS)), (pm::RSTC, pm::rstc_full_reset(rstc))]
}

/// The `PM_RSTS` write that makes the next boot a halt (partition 63), from the value `rsts`
/// read there; a halt is this, then [`reset_writes`].
pub const fn halt_write(rsts: u32) -> (usize, u32) {
    (pm::RSTS, pm::rsts_halt(rsts))
}

/// Reads the PM register at `offset`, for the tests' read-only look at the block.
///
/// # Safety
/// `pm_base` is the address of a BCM2711 PM block, accessible as device memory (or the MMU is
/// off); reading its registers has no side effects.
pub unsafe fn read(pm_base: u64, offset: usize) -> u32 {
    // SAFETY: the caller guarantees a PM block at `pm_base`; the offsets used are its 32-bit
    // registers.
    unsafe { core::ptr::read_volatile((pm_base as usize + offset) as *const u32) }
}

/// # Safety
/// As for [`reset`].
unsafe fn write(pm_base: u64, (offset, word): (usize, u32)) {
    // SAFETY: forwarded from the caller: a PM block at `pm_base`; `offset` is one of its
    // 32-bit registers.
    unsafe { core::ptr::write_volatile((pm_base as usize + offset) as *mut u32, word) }
}

/// Resets the SoC with the watchdog (full reset, about 150 us later) and never returns.
///
/// # Safety
/// `pm_base` is the address of a BCM2711 PM block, accessible as device memory (or the MMU is
/// off). Everything running on every CPU is lost: the caller has finished whatever must be
/// finished first.
pub unsafe fn reset(pm_base: u64) -> ! {
    // SAFETY: masks every exception on this CPU: nothing may run on it until the reset.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
    // SAFETY: the caller guarantees a PM block at `pm_base`.
    let writes = reset_writes(unsafe { read(pm_base, pm::RSTC) });
    for w in writes {
        // SAFETY: as above; the words carry the PM password.
        unsafe { write(pm_base, w) };
    }
    wait_for_the_watchdog()
}

/// Halts the SoC (the Pi's power-off: the boot firmware stops when it finds partition 63 after
/// the watchdog reset) and never returns.
///
/// # Safety
/// As for [`reset`].
pub unsafe fn halt(pm_base: u64) -> ! {
    // SAFETY: masks every exception on this CPU: nothing may run on it until the reset.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
    // SAFETY: the caller guarantees a PM block at `pm_base`.
    let w = halt_write(unsafe { read(pm_base, pm::RSTS) });
    // SAFETY: as above; the word carries the PM password.
    unsafe { write(pm_base, w) };
    // SAFETY: forwarded from the caller.
    unsafe { reset(pm_base) }
}

fn wait_for_the_watchdog() -> ! {
    loop {
        // SAFETY: completes the writes above, then waits; no memory effects of its own.
        unsafe { core::arch::asm!("dsb sy", "wfe", options(nostack)) };
    }
}
