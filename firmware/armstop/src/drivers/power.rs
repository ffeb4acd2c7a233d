//! Ending a run: power off, or hand a status to whoever started the image.

use armstop_boards::ExitMethod;

use crate::board::BOARD;

/// PSCI SYSTEM_OFF. If the firmware refuses, or the boot stops before PSCI is set up, says
/// why and parks this CPU.
pub fn system_off() -> ! {
    if !crate::psci::is_ready() {
        if let Some(pm) = BOARD.pm_watchdog {
            crate::console::force_line(format_args!(
                "armstop: PSCI not set up yet; halting the SoC with the PM watchdog"
            ));
            // SAFETY: the board's PM block, device memory in its map (or the MMU is still
            // off); nothing is left to finish: the run has failed.
            unsafe { crate::pm::halt(pm) }
        }
        crate::console::force_line(format_args!("armstop: PSCI not set up yet; halting"));
        halt()
    }
    let e = crate::psci::system_off();
    crate::console::force_line(format_args!(
        "armstop: PSCI SYSTEM_OFF returned {} ({e:?}); halting",
        crate::psci::error_name(e)
    ));
    halt()
}

/// Ends the run with `status` (0 = success) by the board's exit method.
pub fn exit(status: u8) -> ! {
    match BOARD.exit {
        ExitMethod::Semihosting => {
            use qemu_exit::QEMUExit;
            qemu_exit::AArch64::new().exit(u32::from(status))
        }
        ExitMethod::PsciSystemOff => {
            crate::console::force_line(format_args!("armstop: exit status {status}"));
            system_off()
        }
    }
}

/// Ends the run as a failure.
pub fn fail_stop() -> ! {
    exit(1)
}

/// Parks this CPU for good with everything masked.
pub fn halt() -> ! {
    loop {
        // SAFETY: masks interrupts and waits for an event; no memory effects.
        unsafe { core::arch::asm!("msr daifset, #0xf", "wfe", options(nomem, nostack)) };
    }
}
