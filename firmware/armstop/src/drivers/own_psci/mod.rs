//! armstop's own PSCI provider on the target: the glue between the EL2 code in
//! [`el2`] and the portable provider (`armstop-psci-provider`), for boards whose
//! boot firmware leaves the secondaries on spin tables and offers no PSCI (`BOARD.own_psci`).
//!
//! At boot, the boot CPU (still at EL2, MMU off, `.bss` zeroed) starts the provider's
//! bookkeeping and writes the pen's address into every secondary's spin-table slot; the
//! secondaries wait in the pen at EL2 from then on. The EL1 firmware then uses PSCI over HVC as
//! on any other board ([`crate::psci`]); `CPU_OFF` returns a CPU to the pen, so a later
//! `CPU_ON` works again.
//!
//! Invariant: everything here that runs at EL2 (the `el2_*` functions and what they call) uses
//! no lock, no read-modify-write atomic and no EL1 state: the MMU is off there, and EL1 may be
//! doing anything on other CPUs. The provider's state and stacks live in `.el2_bss`, which the
//! EL1 identity map leaves unmapped.

pub mod el2;

use armstop_boards::{MPIDR_AFFINITY_MASK, MemoryKind};
use armstop_psci_provider::{Action, Platform, Provider, Start};
use smccc::psci::error::NOT_SUPPORTED;

use crate::board::{BOARD, NR_CPUS};

/// The provider's state (zeroed with `.bss`; [`el2_boot`] sets every CPU's power state).
#[unsafe(link_section = ".el2_bss")]
static PROVIDER: Provider<NR_CPUS> = Provider::new();

/// The board's MPIDR affinity values by logical id, padded with values no CPU has; the pen's
/// assembly searches it to find its own logical id before it has a stack.
#[unsafe(no_mangle)]
pub static ARMSTOP_EL2_MPIDRS: [u64; NR_CPUS] = {
    let mut t = [u64::MAX; NR_CPUS];
    let mut i = 0;
    while i < BOARD.cpus.len() {
        t[i] = BOARD.cpus[i];
        i += 1;
    }
    t
};

/// Non-zero when this board's image provides PSCI itself; `_start` reads it to decide whether to
/// start the provider before leaving EL2.
#[unsafe(no_mangle)]
pub static ARMSTOP_OWN_PSCI: u8 = BOARD.own_psci.is_some() as u8;

/// Whether this image provides PSCI itself.
pub const fn enabled() -> bool {
    BOARD.own_psci.is_some()
}

/// The board, as the provider sees it.
struct El2Board;

impl Platform for El2Board {
    fn cpu_of(&self, affinity: u64) -> Option<usize> {
        BOARD.cpus.iter().position(|&m| m == affinity)
    }

    fn is_valid_entry(&self, entry: u64) -> bool {
        BOARD.memory.iter().any(|r| r.kind == MemoryKind::Normal && r.contains(entry, 4))
    }

    fn wake(&self, _cpu: usize) {
        // SAFETY: completes the state update, then signals an event to every CPU; no memory
        // effects of its own.
        unsafe { core::arch::asm!("dsb sy", "sev", options(nostack)) };
    }

    fn standby(&self) {
        // SAFETY: waits for an interrupt (which ends the wait even while masked here); no
        // memory effects.
        unsafe { core::arch::asm!("dsb sy", "wfi", options(nostack)) };
    }

    fn system_off(&self) -> ! {
        // SAFETY: the board's PM block (validated board data), reachable with the MMU off.
        unsafe { crate::pm::halt(pm_base()) }
    }

    fn system_reset(&self) -> ! {
        // SAFETY: as for `system_off`.
        unsafe { crate::pm::reset(pm_base()) }
    }
}

fn pm_base() -> u64 {
    // Board validation: a board with its own PSCI provider has a PM watchdog.
    BOARD.pm_watchdog.unwrap_or(0)
}

/// This CPU's logical id, from MPIDR (the pen found it the same way).
fn this_cpu() -> usize {
    let mpidr = crate::cpu::mpidr() & MPIDR_AFFINITY_MASK;
    match BOARD.cpus.iter().position(|&m| m == mpidr) {
        Some(cpu) => cpu,
        None => el2_fatal(format_args!("MPIDR {mpidr:#x} is not in the board's CPU table")),
    }
}

/// The boot CPU at EL2 (from `_start`, MMU off, `.bss` zeroed): every secondary off, then
/// released from its spin table into the pen.
pub(crate) extern "C" fn el2_boot() {
    let Some(own) = BOARD.own_psci else { return };
    PROVIDER.boot(0);
    let pen = el2::armstop_el2_secondary_pen as *const () as u64;
    for &slot in &own.spin_table[1..] {
        // SAFETY: a spin-table slot from the validated board data: an aligned word in RAM
        // below the image, which only the boot firmware's pen reads. The MMU is off, so the
        // store goes to memory, where that pen (also MMU off) reads it.
        unsafe { (slot as *mut u64).write_volatile(pen) };
    }
    // SAFETY: completes the stores, then wakes the CPUs waiting in `wfe` on their slots.
    unsafe { core::arch::asm!("dsb sy", "sev", options(nostack)) };
}

/// What the HVC entry does next: `power_down == 0`: return `value` in `x0`; otherwise `value`
/// is this CPU's EL2 stack top and it goes to the pen.
#[repr(C)]
pub(crate) struct El2Result {
    value: u64,
    power_down: u64,
}

/// A synchronous exception from EL1, taken to EL2: a PSCI call if it is `hvc #0`.
pub(crate) extern "C" fn el2_sync(
    fid: u64,
    a1: u64,
    a2: u64,
    a3: u64,
    esr: u64,
    elr: u64,
) -> El2Result {
    const EC_HVC64: u64 = 0x16;
    if (esr >> 26) & 0x3f != EC_HVC64 {
        // Nothing else is trapped to EL2; returning would re-run the instruction forever.
        el2_fatal(format_args!("unexpected trap from EL1: ESR_EL2={esr:#x} ELR_EL2={elr:#x}"));
    }
    if esr & 0xffff != 0 {
        // `hvc #imm` with imm != 0 is not an SMCCC call.
        return El2Result { value: NOT_SUPPORTED as i64 as u64, power_down: 0 };
    }
    let me = this_cpu();
    match PROVIDER.call(&El2Board, me, fid as u32, [a1, a2, a3]) {
        Action::Return(v) => El2Result { value: v as u64, power_down: 0 },
        Action::PowerDown => El2Result { value: el2::stack_top(me), power_down: 1 },
    }
}

/// The pen, on this CPU's EL2 stack: returns where to start once a CPU_ON was accepted.
pub(crate) extern "C" fn el2_pen() -> Start {
    let me = this_cpu();
    loop {
        if let Some(start) = PROVIDER.pen_poll(me) {
            return start;
        }
        // SAFETY: waits for an event (CPU_ON's `sev`); no memory effects.
        unsafe { core::arch::asm!("wfe", options(nomem, nostack)) };
    }
}

/// An exception the EL2 vectors do not expect (one taken from EL2 itself).
pub(crate) extern "C" fn el2_unexpected(esr: u64, elr: u64, far: u64) -> ! {
    el2_fatal(format_args!("exception at EL2: ESR_EL2={esr:#x} ELR_EL2={elr:#x} FAR_EL2={far:#x}"))
}

/// Reports a fatal error from EL2 on the console (no lock: the MMU is off) and parks the CPU.
fn el2_fatal(args: core::fmt::Arguments<'_>) -> ! {
    use core::fmt::Write;
    let mut line = crate::console::LineBuf::<160>::new();
    let _ = write!(line, "armstop: PSCI provider (EL2): {args}\n");
    crate::console::early_write(line.as_str());
    crate::power::halt()
}

/// How the EL1 firmware describes where PSCI comes from, for the boot log.
pub fn describe() -> &'static str {
    if enabled() {
        "armstop's own provider at EL2 (secondaries released from their spin tables)"
    } else {
        "the boot firmware"
    }
}
