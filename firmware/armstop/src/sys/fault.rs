//! Fault reporting: panics, aborts and unexpected exceptions, on any CPU.
//!
//! Every fault is printed with the CPU, the exception class and syndrome, FAR and ELR, and
//! ends in exactly one of two ways: the registered hook takes it over (the test harness makes
//! it the current test's failure and carries on, [`set_hook`]); otherwise the run stops with a
//! failure status.
//! Nothing hangs silently. A fault while handling a fault stops the run at once.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};

use armstop_sync::FnSlot;

use crate::board::NR_CPUS;

use crate::arch::exception::Frame;
use crate::console::LineBuf;

static DEPTH: [AtomicU32; NR_CPUS] = [const { AtomicU32::new(0) }; NR_CPUS];

/// Longest fault message kept.
pub const MESSAGE_MAX: usize = 240;

/// Reports a fatal condition on this CPU and never returns.
pub fn fatal(args: fmt::Arguments<'_>) -> ! {
    // SAFETY: masks all exceptions on this CPU; no memory effects.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
    let cpu = crate::cpu::id();
    if DEPTH[cpu].fetch_add(1, Ordering::Relaxed) > 0 {
        crate::console::force_line(format_args!("cpu{cpu}: fault while handling a fault: {args}"));
        crate::power::fail_stop();
    }
    let mut msg = LineBuf::<MESSAGE_MAX>::new();
    let _ = write!(msg, "cpu{cpu}: {args}");
    crate::console::force_line(format_args!("FAULT {}", msg.as_str()));
    crate::console::release_if_owner();
    crate::gic::end_in_flight();
    if let Some(hook) = HOOK.get() {
        DEPTH[cpu].store(0, Ordering::Relaxed);
        let _taken_over = hook(cpu, msg.as_str());
    }
    crate::power::fail_stop()
}

/// What takes a fault over instead of stopping the machine (the test harness: the fault is
/// the running test's failure). Called with the CPU and the message; returns `false` to let
/// the machine stop after all, and never returns if it takes the fault.
pub type Hook = fn(usize, &str) -> bool;

// SAFETY: `Hook` is a function pointer type.
static HOOK: FnSlot<Hook> = unsafe { FnSlot::new() };

/// Makes `hook` the fault hook (see [`Hook`]); `None` removes it.
pub fn set_hook(hook: Option<Hook>) {
    HOOK.set(hook);
}

/// Makes this module the handler of every exception vector but the IRQ (the GIC driver's).
pub fn install() {
    use crate::arch::exception::{Vector, set_handler};
    set_handler(Vector::Sync, |f, _| synchronous(f));
    set_handler(Vector::Fiq, |f, _| fatal(format_args!("unexpected FIQ at ELR={:#x}", f.elr)));
    set_handler(Vector::SError, |f, _| serror(f));
    set_handler(Vector::Nested, |f, _| nested(f));
    set_handler(Vector::Lower, |f, _| {
        fatal(format_args!(
            "exception from a lower EL (nothing runs there): ELR={:#x} SPSR={:#x}",
            f.elr, f.spsr
        ))
    });
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(l) => fatal(format_args!(
            "panicked at {}:{}:{}: {}",
            l.file(),
            l.line(),
            l.column(),
            info.message()
        )),
        None => fatal(format_args!("panicked: {}", info.message())),
    }
}

fn read_esr_far() -> (u64, u64) {
    use aarch64_cpu::registers::{ESR_EL1, FAR_EL1, Readable};
    (ESR_EL1.get(), FAR_EL1.get())
}

/// The exception class's name, as the Arm ARM calls it.
pub fn class_name(ec: u64) -> &'static str {
    match ec {
        0x00 => "Unknown reason (undefined instruction)",
        0x01 => "WFI/WFE trap",
        0x07 => "SIMD/FP access trap",
        0x0e => "Illegal Execution state",
        0x15 => "SVC",
        0x16 => "HVC",
        0x17 => "SMC",
        0x18 => "System register trap",
        0x20 => "Instruction Abort (lower EL)",
        0x21 => "Instruction Abort",
        0x22 => "PC alignment fault",
        0x24 => "Data Abort (lower EL)",
        0x25 => "Data Abort",
        0x26 => "SP alignment fault",
        0x2f => "SError",
        0x30 | 0x31 => "Breakpoint",
        0x32 | 0x33 => "Software step",
        0x34 | 0x35 => "Watchpoint",
        0x3c => "BRK instruction",
        _ => "Unrecognised exception class",
    }
}

/// What an abort's fault status code says.
fn fault_status(iss: u64) -> &'static str {
    match iss & 0x3f {
        0b000100..=0b000111 => "translation fault",
        0b001001..=0b001011 => "access flag fault",
        0b001101..=0b001111 => "permission fault",
        0b000000..=0b000011 => "address size fault",
        0b100001 => "alignment fault",
        0b010000 => "synchronous external abort",
        _ => "other fault",
    }
}

/// A synchronous exception at EL1 on the thread stack.
pub fn synchronous(frame: &mut Frame) -> ! {
    let (esr, far) = read_esr_far();
    let ec = esr >> 26;
    let iss = esr & 0x1ff_ffff;
    let is_abort = matches!(ec, 0x20 | 0x21 | 0x24 | 0x25);
    if is_abort && let Some((cpu, kind)) = crate::mm::guard_page_owner(far) {
        fatal(format_args!(
            "stack overflow: {kind:?} stack of cpu{cpu} hit its guard page: {} ({}, level {}) FAR={far:#x} ELR={:#x} ESR={esr:#x}",
            class_name(ec),
            fault_status(iss),
            iss & 3,
            frame.elr
        ));
    }
    if is_abort {
        let access = if ec == 0x25 && iss & (1 << 6) != 0 { "write" } else { "read" };
        fatal(format_args!(
            "{} ({access}, {}, level {}) FAR={far:#x} ELR={:#x} ESR={esr:#x} EC={ec:#x}",
            class_name(ec),
            fault_status(iss),
            iss & 3,
            frame.elr
        ));
    }
    fatal(format_args!(
        "{}: ELR={:#x} ESR={esr:#x} EC={ec:#x} ISS={iss:#x} FAR={far:#x}",
        class_name(ec),
        frame.elr
    ))
}

/// An SError.
pub fn serror(frame: &mut Frame) -> ! {
    let (esr, _) = read_esr_far();
    fatal(format_args!("SError: ESR={esr:#x} ELR={:#x}", frame.elr))
}

/// An exception taken while already on the exception stack.
pub fn nested(frame: &mut Frame) -> ! {
    let (esr, far) = read_esr_far();
    let ec = esr >> 26;
    let overflow = crate::mm::guard_page_owner(far)
        .map(|(cpu, kind)| (cpu, kind))
        .filter(|_| matches!(ec, 0x21 | 0x25));
    match overflow {
        Some((cpu, kind)) => fatal(format_args!(
            "stack overflow: {kind:?} stack of cpu{cpu} hit its guard page in an exception handler: FAR={far:#x} ELR={:#x} ESR={esr:#x}",
            frame.elr
        )),
        None => fatal(format_args!(
            "exception in an exception handler: {} ELR={:#x} ESR={esr:#x} FAR={far:#x}",
            class_name(ec),
            frame.elr
        )),
    }
}
