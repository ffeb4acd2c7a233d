//! Fault reporting: panics, aborts and unexpected exceptions, on any CPU.
//!
//! Every fault is first printed as one `FAULT cpuN: ...` line, then ends in exactly one of two
//! ways: the registered hook takes it over (the test harness makes it the current test's
//! failure and carries on, [`set_hook`]), or the machine stops:
//!
//! 1. The first CPU to get here wins `WINNER`; a CPU that faults at the same time loses,
//!    records where it was and parks (it shows in the winner's report), so two faults give one
//!    report.
//! 2. The winner halts every other online CPU with [`SGI_HALT`], which needs no stopper: its
//!    handler records the interrupted ELR and a frame-pointer backtrace, acknowledges in the
//!    CPU's [`Stopped`] slot and parks the CPU for good (everything masked, CPU interface off,
//!    `wfi`). It is the GIC's highest priority, and stop request callbacks run with IRQs
//!    unmasked behind a priority mask only it passes (`stop::Firmware::run_callback`), so it
//!    reaches a CPU stuck in a callback too. A CPU that does not acknowledge within
//!    [`HALT_ACK_NS`] (IRQs masked outside a callback) is named "did not stop".
//! 3. One report: CPU, message (with its location), exception class, ESR, FAR, ELR, the
//!    backtrace, then one line per other CPU saying where it stopped.
//! 4. The machine stops or resets, as [`set_on_fault`] says (default: stop with a failure
//!    status; QEMU exits 1, a Pi halts the SoC through PSCI SYSTEM_OFF / its PM watchdog).
//!
//! Never a half-alive machine: nothing runs after the report. A fault while handling a fault
//! stops the run at once.

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use armstop_stopper::CpuSet;
use armstop_sync::FnSlot;

use crate::board::NR_CPUS;

use crate::arch::exception::Frame;
use crate::console::LineBuf;

static DEPTH: [AtomicU32; NR_CPUS] = [const { AtomicU32::new(0) }; NR_CPUS];

/// Longest fault message kept.
pub const MESSAGE_MAX: usize = 240;

/// The SGI that halts a CPU for good (see the module docs). Free of the stopper's (1, 2) and
/// the IPI's (0).
pub const SGI_HALT: u8 = 3;

/// How long the fault path (and a watchdog's halt) waits for a CPU to acknowledge the halt.
pub const HALT_ACK_NS: u64 = 100_000_000;

/// Frames a backtrace keeps.
pub const BACKTRACE_MAX: usize = 16;

/// What a fault carries besides its message: the exception, if it was one.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exception {
    /// ESR_EL1.
    pub esr: u64,
    /// FAR_EL1.
    pub far: u64,
    /// Where it was taken.
    pub elr: u64,
    /// The link register (x30) then: in a function that calls nothing (whose frame the
    /// backtrace cannot see), where it returns to.
    pub lr: u64,
    /// The faulting code's frame pointer (x29), where its backtrace starts.
    pub fp: u64,
}

/// A frame-pointer backtrace: return addresses, innermost first.
#[derive(Clone, Copy)]
pub struct Backtrace {
    pcs: [u64; BACKTRACE_MAX],
    len: usize,
}

impl Backtrace {
    /// Walks the frame records (x29 chain: `[fp]` the caller's fp, `[fp + 8]` the return
    /// address) of code running on `cpu` from `fp`, reading only inside `cpu`'s stack slot and
    /// only upwards (a record is always above the one it links from), so a corrupt chain ends
    /// the walk instead of faulting. The images are built with `-C force-frame-pointers=yes`.
    pub fn walk(cpu: usize, mut fp: u64) -> Self {
        let mut bt = Self { pcs: [0; BACKTRACE_MAX], len: 0 };
        if cpu >= NR_CPUS {
            return bt;
        }
        let lo = crate::mm::stack_slot(cpu) as u64;
        let hi = lo + crate::mm::STACK_SLOT as u64;
        while bt.len < BACKTRACE_MAX && fp % 8 == 0 && fp >= lo && fp + 16 <= hi {
            // SAFETY: `fp..fp + 16` lies inside `cpu`'s stack slot, mapped normal memory.
            let (next, lr) =
                unsafe { ((fp as *const u64).read(), ((fp + 8) as *const u64).read()) };
            if lr == 0 {
                break;
            }
            bt.pcs[bt.len] = lr;
            bt.len += 1;
            if next <= fp {
                break;
            }
            fp = next;
        }
        bt
    }

    /// The return addresses found.
    pub fn pcs(&self) -> &[u64] {
        &self.pcs[..self.len]
    }
}

impl fmt::Display for Backtrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.len == 0 {
            return f.write_str("(no frames)");
        }
        for (i, pc) in self.pcs().iter().enumerate() {
            write!(f, "{}{pc:#x}", if i == 0 { "" } else { " <- " })?;
        }
        Ok(())
    }
}

/// How a CPU other than the fault's winner ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum StopKind {
    /// Running: not halted.
    Running = 0,
    /// Halted by [`SGI_HALT`].
    Halted = 1,
    /// Faulted itself while another CPU's fault was being reported.
    Faulted = 2,
}

/// Where one CPU was stopped: written by that CPU before it acknowledges (`kind`, Release).
pub struct Stopped {
    kind: AtomicU32,
    elr: AtomicU64,
    pcs: [AtomicU64; BACKTRACE_MAX],
    len: AtomicUsize,
}

static STOPPED: [Stopped; NR_CPUS] = [const {
    Stopped {
        kind: AtomicU32::new(StopKind::Running as u32),
        elr: AtomicU64::new(0),
        pcs: [const { AtomicU64::new(0) }; BACKTRACE_MAX],
        len: AtomicUsize::new(0),
    }
}; NR_CPUS];

fn record_stop(cpu: usize, kind: StopKind, elr: u64, bt: &Backtrace) {
    let s = &STOPPED[cpu];
    s.elr.store(elr, Ordering::Relaxed);
    for (slot, pc) in s.pcs.iter().zip(bt.pcs()) {
        slot.store(*pc, Ordering::Relaxed);
    }
    s.len.store(bt.len, Ordering::Relaxed);
    // The acknowledgement: everything above is visible to whoever sees it.
    s.kind.store(kind as u32, Ordering::Release);
}

/// How `cpu` was stopped, with its ELR and backtrace then (`None` while it runs).
pub fn stopped(cpu: usize) -> Option<(StopKind, u64, Backtrace)> {
    let s = STOPPED.get(cpu)?;
    let kind = match s.kind.load(Ordering::Acquire) {
        1 => StopKind::Halted,
        2 => StopKind::Faulted,
        _ => return None,
    };
    let mut bt = Backtrace { pcs: [0; BACKTRACE_MAX], len: s.len.load(Ordering::Relaxed) };
    for (pc, slot) in bt.pcs.iter_mut().zip(&s.pcs) {
        *pc = slot.load(Ordering::Relaxed);
    }
    Some((kind, s.elr.load(Ordering::Relaxed), bt))
}

/// The halt SGI's handler: records where this CPU was and parks it for good.
fn on_halt() {
    let cpu = crate::cpu::id();
    let (elr, fp) = crate::arch::exception::interrupted().unwrap_or((0, 0));
    record_stop(cpu, StopKind::Halted, elr, &Backtrace::walk(cpu, fp));
    park()
}

/// Parks this CPU for good: everything masked, its GIC CPU interface off (so nothing pending
/// keeps ending the `wfi`), nothing touched again.
fn park() -> ! {
    // SAFETY: masks every exception on this CPU; no memory effects.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
    if crate::gic::is_ready() {
        crate::gic::disable_cpu();
    }
    loop {
        crate::cpu::wait_for_interrupt();
    }
}

/// Sends the halt SGI to `cpu` and waits up to `timeout_ns` for it to acknowledge. `true`:
/// it is parked for good and never touches memory again (also if it was halted before).
pub fn halt_cpu(cpu: usize, timeout_ns: u64) -> bool {
    if stopped(cpu).is_some() {
        return true;
    }
    if crate::gic::send_sgi(SGI_HALT, crate::gic::SgiTarget::Cpu(cpu)).is_err() {
        return false;
    }
    let deadline = crate::time::Instant::now() + core::time::Duration::from_nanos(timeout_ns);
    while stopped(cpu).is_none() {
        if crate::time::Instant::now() > deadline {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// Registers the halt SGI's handler and makes it the GIC's urgent SGI. Once, at boot, after
/// the GIC is up and before the secondaries start.
pub fn init_halt() -> Result<(), crate::gic::GicError> {
    crate::gic::set_sgi_handler(SGI_HALT, on_halt, crate::gic::SgiEnd::First)?;
    crate::gic::set_urgent_sgi(SGI_HALT)
}

/// What the machine does after a fault's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum OnFault {
    /// End the run with a failure status (QEMU exits 1; a Pi halts through SYSTEM_OFF).
    Stop = 0,
    /// PSCI SYSTEM_RESET (a Pi reboots; QEMU with `-no-reboot` exits 0, so tests keep `Stop`).
    Reset = 1,
}

static ON_FAULT: AtomicU8 = AtomicU8::new(OnFault::Stop as u8);

/// Sets what a fault that stops the machine ends in (default [`OnFault::Stop`]).
pub fn set_on_fault(action: OnFault) {
    ON_FAULT.store(action as u8, Ordering::Relaxed);
}

/// Which CPUs the fault path halts: registered by the SMP layer (the online CPUs).
// SAFETY: a function pointer type.
static ALIVE: FnSlot<fn() -> CpuSet> = unsafe { FnSlot::new() };

/// Makes `f` what says which CPUs run (and so must be halted when the machine stops).
pub fn set_alive_source(f: fn() -> CpuSet) {
    ALIVE.set(Some(f));
}

const NO_WINNER: usize = usize::MAX;
/// The CPU whose fault stops the machine.
static WINNER: AtomicUsize = AtomicUsize::new(NO_WINNER);

/// Reports a fatal condition on this CPU and never returns.
pub fn fatal(args: fmt::Arguments<'_>) -> ! {
    let fp: u64;
    // SAFETY: reads this function's frame pointer; no memory effects.
    unsafe { core::arch::asm!("mov {}, x29", out(reg) fp, options(nomem, nostack)) };
    fatal_in(None, fp, args)
}

/// [`fatal`] for an exception, with its registers.
pub fn fatal_exception(e: Exception, args: fmt::Arguments<'_>) -> ! {
    fatal_in(Some(e), e.fp, args)
}

fn fatal_in(exception: Option<Exception>, fp: u64, args: fmt::Arguments<'_>) -> ! {
    // SAFETY: masks all exceptions on this CPU; no memory effects.
    unsafe { core::arch::asm!("msr daifset, #0xf", options(nomem, nostack)) };
    let cpu = crate::cpu::id();
    if DEPTH[cpu].fetch_add(1, Ordering::Relaxed) > 0 {
        crate::console::force_line(format_args!("cpu{cpu}: fault while handling a fault: {args}"));
        crate::power::fail_stop();
    }
    let mut msg = LineBuf::<MESSAGE_MAX>::new();
    let _ = write!(msg, "cpu{cpu}: {args}");
    // A CPU that faults while another's fault stops the machine: one report, the winner's.
    if WINNER.load(Ordering::Acquire) != NO_WINNER {
        lose(cpu, exception, fp);
    }
    crate::console::release_if_owner();
    crate::gic::end_in_flight();
    let mut printed = false;
    if let Some(hook) = HOOK.get() {
        crate::console::force_line(format_args!("FAULT {}", msg.as_str()));
        printed = true;
        if crate::gic::is_ready() {
            // A callback runs behind a raised priority mask; the harness goes on with this CPU.
            crate::gic::set_priority_mask(crate::gic::ALL_PRIORITIES);
        }
        DEPTH[cpu].store(0, Ordering::Relaxed);
        let _taken_over = hook(cpu, msg.as_str());
        DEPTH[cpu].store(1, Ordering::Relaxed);
    }
    stop_machine_after(cpu, exception, fp, (!printed).then_some(msg.as_str()))
}

/// This CPU lost the claim: records where it was, and parks for the winner's report.
fn lose(cpu: usize, exception: Option<Exception>, fp: u64) -> ! {
    let elr = exception.map_or(0, |e| e.elr);
    record_stop(cpu, StopKind::Faulted, elr, &Backtrace::walk(cpu, fp));
    park()
}

/// Steps 1-4 of the module docs.
fn stop_machine_after(
    cpu: usize,
    exception: Option<Exception>,
    fp: u64,
    unprinted: Option<&str>,
) -> ! {
    if WINNER.compare_exchange(NO_WINNER, cpu, Ordering::AcqRel, Ordering::Acquire).is_err() {
        lose(cpu, exception, fp);
    }
    if let Some(m) = unprinted {
        crate::console::force_line(format_args!("FAULT {m}"));
    }
    let me = CpuSet::single(cpu);
    let others = ALIVE.get().map_or(CpuSet::EMPTY, |f| f()) - me;
    let mut not_stopped = CpuSet::EMPTY;
    if crate::gic::is_ready() {
        for c in others {
            if !halt_cpu(c, HALT_ACK_NS) {
                not_stopped.insert(c);
            }
        }
    }
    let line = |args: fmt::Arguments<'_>| crate::console::force_line(args);
    line(format_args!("FAULT REPORT cpu{cpu} (stopping the machine)"));
    match exception {
        Some(e) => {
            let ec = e.esr >> 26;
            line(format_args!(
                "  exception: {} (EC {ec:#x}) ESR={:#x} FAR={:#x} ELR={:#x} LR={:#x}",
                class_name(ec),
                e.esr,
                e.far,
                e.elr,
                e.lr
            ))
        }
        None => line(format_args!("  exception: none (a panic or fatal error)")),
    }
    line(format_args!("  backtrace: {}", Backtrace::walk(cpu, fp)));
    for c in 0..crate::board::cpu_count().min(NR_CPUS) {
        if c == cpu {
            continue;
        }
        match stopped(c) {
            Some((StopKind::Faulted, elr, bt)) => {
                line(format_args!("  cpu{c} faulted too, stopped at ELR={elr:#x} (backtrace {bt})"))
            }
            Some((_, elr, bt)) => {
                line(format_args!("  cpu{c} stopped at ELR={elr:#x} (backtrace {bt})"))
            }
            None if not_stopped.contains(c) => {
                line(format_args!("  cpu{c} did not stop (IRQs masked outside a callback?)"))
            }
            None => line(format_args!("  cpu{c} was not running")),
        }
    }
    match ON_FAULT.load(Ordering::Relaxed) {
        1 => {
            line(format_args!("FAULT END: resetting"));
            let e = crate::psci::system_reset();
            line(format_args!("armstop: SYSTEM_RESET failed ({e:?}); stopping"));
            crate::power::fail_stop()
        }
        _ => {
            line(format_args!("FAULT END: machine stopped"));
            crate::power::fail_stop()
        }
    }
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
    set_handler(Vector::Fiq, |f, _| {
        fatal_exception(exception_of(f), format_args!("unexpected FIQ at ELR={:#x}", f.elr))
    });
    set_handler(Vector::SError, |f, _| serror(f));
    set_handler(Vector::Nested, |f, _| nested(f));
    set_handler(Vector::Lower, |f, _| {
        fatal_exception(
            exception_of(f),
            format_args!(
                "exception from a lower EL (nothing runs there): ELR={:#x} SPSR={:#x}",
                f.elr, f.spsr
            ),
        )
    });
}

fn exception_of(f: &Frame) -> Exception {
    let (esr, far) = read_esr_far();
    Exception { esr, far, elr: f.elr, lr: f.x[30], fp: f.x[29] }
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
        fatal_exception(
            exception_of(frame),
            format_args!(
                "stack overflow: {kind:?} stack of cpu{cpu} hit its guard page: {} ({}, level {}) FAR={far:#x} ELR={:#x} LR={:#x} ESR={esr:#x}",
                class_name(ec),
                fault_status(iss),
                iss & 3,
                frame.elr,
                frame.x[30]
            ),
        );
    }
    if is_abort {
        let access = if ec == 0x25 && iss & (1 << 6) != 0 { "write" } else { "read" };
        fatal_exception(
            exception_of(frame),
            format_args!(
                "{} ({access}, {}, level {}) FAR={far:#x} ELR={:#x} LR={:#x} ESR={esr:#x} EC={ec:#x}",
                class_name(ec),
                fault_status(iss),
                iss & 3,
                frame.elr,
                frame.x[30]
            ),
        );
    }
    fatal_exception(
        exception_of(frame),
        format_args!(
            "{}: ELR={:#x} LR={:#x} ESR={esr:#x} EC={ec:#x} ISS={iss:#x} FAR={far:#x}",
            class_name(ec),
            frame.elr,
            frame.x[30]
        ),
    )
}

/// An SError.
pub fn serror(frame: &mut Frame) -> ! {
    let (esr, _) = read_esr_far();
    fatal_exception(exception_of(frame), format_args!("SError: ESR={esr:#x} ELR={:#x}", frame.elr))
}

/// An exception taken while already on the exception stack.
pub fn nested(frame: &mut Frame) -> ! {
    let (esr, far) = read_esr_far();
    let ec = esr >> 26;
    let overflow = crate::mm::guard_page_owner(far)
        .map(|(cpu, kind)| (cpu, kind))
        .filter(|_| matches!(ec, 0x21 | 0x25));
    match overflow {
        Some((cpu, kind)) => fatal_exception(
            exception_of(frame),
            format_args!(
                "stack overflow: {kind:?} stack of cpu{cpu} hit its guard page in an exception handler: FAR={far:#x} ELR={:#x} ESR={esr:#x}",
                frame.elr
            ),
        ),
        None => fatal_exception(
            exception_of(frame),
            format_args!(
                "exception in an exception handler: {} ELR={:#x} ESR={esr:#x} FAR={far:#x}",
                class_name(ec),
                frame.elr
            ),
        ),
    }
}
