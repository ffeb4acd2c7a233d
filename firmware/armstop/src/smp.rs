//! Bringing CPUs up at boot, the idle (stopper) loop every secondary CPU runs, and cross-CPU
//! calls.
//!
//! CPU states and hotplug are in [`crate::hotplug`]; at boot the secondaries are started with
//! `cpu_up`, like any later hotplug. A CPU is online only after its MMU, vectors, GIC interface,
//! timer and stacks are set up and its stopper is enabled, so anything may be asked of it from
//! then on.
//!
//! Lost wake-ups: the idle loop checks for work with IRQs masked and then executes `wfi`, which
//! returns on a pending IRQ even while masked; a post + SGI that lands between the check and
//! the `wfi` therefore ends the wait instead of being slept through.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use core::time::Duration;

use armstop_boards::{DeviceTree, MemoryKind};
use armstop_stopper::CpuSet;

use crate::board::{BOARD, NR_CPUS, cpu_count};
use crate::console;
use crate::hotplug::Step;
use crate::ipi::{self, Message};
use crate::psci;
use crate::time::wait_until;

/// How long [`run_on`] waits for a call to finish.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What a CPU started by CPU_ON finds at the context id. Read with the MMU off, so the boot
/// CPU cleans it to the point of coherency before CPU_ON.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default)]
pub struct BootArgs {
    /// Logical CPU id.
    pub cpu: u64,
    /// Top of the exception stack (SP_EL1).
    pub exception_stack_top: u64,
    /// Top of the thread stack (SP_EL0).
    pub thread_stack_top: u64,
    /// TTBR0_EL1.
    pub ttbr0: u64,
    /// TCR_EL1.
    pub tcr: u64,
    /// MAIR_EL1.
    pub mair: u64,
}

static mut BOOT_ARGS: [BootArgs; NR_CPUS] =
    [BootArgs { cpu: 0, exception_stack_top: 0, thread_stack_top: 0, ttbr0: 0, tcr: 0, mair: 0 };
        NR_CPUS];

static BOOT_EL: [AtomicU32; NR_CPUS] = [const { AtomicU32::new(0) }; NR_CPUS];
static SEEN_MPIDR: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(u64::MAX) }; NR_CPUS];

pub use crate::hotplug::{CpuState, state};

/// Whether `cpu` is online.
pub fn is_online(cpu: usize) -> bool {
    crate::hotplug::HOTPLUG.is_online(cpu)
}

/// The online CPUs.
pub fn online_mask() -> CpuSet {
    crate::hotplug::HOTPLUG.online_mask()
}

/// The EL `cpu` was entered at (0 if it never ran).
pub fn boot_el(cpu: usize) -> u8 {
    BOOT_EL[cpu].load(Ordering::Relaxed) as u8
}

/// The MPIDR `cpu` read from its own register when it came up.
pub fn seen_mpidr(cpu: usize) -> Option<u64> {
    match SEEN_MPIDR[cpu].load(Ordering::Relaxed) {
        u64::MAX => None,
        m => Some(m),
    }
}

/// The boot CPU's Rust entry, from `_start`: MMU, console, GIC, PSCI, secondaries, then the
/// image's main function.
pub extern "C" fn primary_entry(boot_el: u64, dtb: u64) -> ! {
    console::init();
    if let Err(e) = BOARD.validate() {
        console::early_write("armstop: invalid board description\n");
        let _ = e;
        crate::power::fail_stop();
    }
    // SAFETY: first thing on the boot CPU, once, before any other CPU runs.
    if let Err(e) = unsafe { crate::mm::init_primary() } {
        console::early_write("armstop: cannot build the identity map: ");
        match e {
            crate::mm::MmError::Map(what, _) => console::early_write(what),
            crate::mm::MmError::ImageOutsideRam(..) => console::early_write("image outside RAM"),
        }
        console::early_write("\n");
        crate::power::fail_stop();
    }
    console::init_logger(log::LevelFilter::Info);
    let mpidr = crate::cpu::mpidr();
    discover_cpus(dtb, mpidr);
    if crate::board::logical_id(mpidr) != Some(0) {
        crate::fault::fatal(format_args!(
            "boot CPU has MPIDR {mpidr:#x}, but board {} lists {:#x} as logical CPU 0",
            BOARD.name,
            crate::board::mpidr(0).unwrap_or(u64::MAX)
        ));
    }
    BOOT_EL[0].store(boot_el as u32, Ordering::Relaxed);
    SEEN_MPIDR[0].store(mpidr, Ordering::Relaxed);
    log::info!(
        "armstop {} on {}: boot CPU MPIDR {:#x}, entered at EL{}, timer {} Hz",
        env!("CARGO_PKG_VERSION"),
        BOARD.name,
        mpidr,
        boot_el,
        crate::time::frequency()
    );
    match crate::gic::init_primary() {
        Ok(v) => log::info!("GIC: {v:?}"),
        Err(e) => crate::fault::fatal(format_args!("GIC: {e}")),
    }
    // The activity LED (boards with one): its pin is set up before the other CPUs run.
    crate::led::start();
    if crate::own_psci::enabled() && boot_el != 2 {
        crate::fault::fatal(format_args!(
            "board {} needs armstop's own PSCI provider, which runs at EL2, but the image was \
             entered at EL{boot_el}",
            BOARD.name
        ));
    }
    let conduit = psci::init(boot_el as u8);
    match psci::version() {
        Ok(v) => log::info!("PSCI {v} over {conduit:?}, from {}", crate::own_psci::describe()),
        Err(e) => crate::fault::fatal(format_args!(
            "PSCI_VERSION over {conduit:?} failed: {} ({e:?})",
            psci::error_name(e)
        )),
    }
    // The stopper is enabled before the CPU counts as online, so it cannot be taken down
    // before its stopper has run once. The boot CPU runs the main program and never returns
    // to a stopper loop, so it can never power off: pinned.
    crate::stop::STOPPERS.set_watchdog(crate::stop::WATCHDOG_NS);
    crate::hotplug::HOTPLUG.boot_cpu_online();
    crate::hotplug::HOTPLUG.pin(0);
    crate::cpu::unmask_irqs();
    bring_up_secondaries();
    unsafe extern "Rust" {
        safe fn __armstop_main() -> !;
    }
    __armstop_main()
}

/// Starts every secondary CPU in turn with `cpu_up`; a CPU that fails is reported and skipped.
fn bring_up_secondaries() {
    for cpu in 1..cpu_count() {
        match crate::hotplug::cpu_up(cpu) {
            Ok(t) => log::info!(
                "cpu{cpu} online: MPIDR {:#x}, entered at EL{}, in {} us",
                seen_mpidr(cpu).unwrap_or(0),
                boot_el(cpu),
                t.total_ns() / 1000
            ),
            Err(e) => log::error!(
                "cpu{cpu} (MPIDR {:#x}) FAILED to start: {e}",
                crate::board::mpidr(cpu).unwrap_or(u64::MAX)
            ),
        }
    }
    let online = online_mask();
    log::info!("{} of {} CPUs online: {online}", online.len(), cpu_count());
}

/// Where a device tree may be: `addr`, if the whole blob lies in the board's RAM. Never reads
/// outside RAM, so a stray `x0` cannot fault.
fn blob_in_ram(addr: u64) -> Result<&'static [u8], armstop_devicetree::DtError> {
    let ram = BOARD
        .memory
        .iter()
        .find(|r| r.kind == MemoryKind::Normal && addr >= r.base && addr < r.end())
        .ok_or(armstop_devicetree::DtError::NotInRam(addr))?;
    // SAFETY: `addr..ram.end()` is normal memory the identity map covers, and nothing writes
    // it while the boot CPU parses (no other CPU runs yet; the image does not overlap it, as
    // QEMU and the Pi's firmware place the blob outside the loaded image).
    unsafe { armstop_devicetree::blob_at(addr as usize, (ram.end() - addr) as usize) }
}

/// Sets the machine's CPU list (see [`crate::board::set_cpus`]) from the device tree or from
/// the board, as the board's [`DeviceTree`] policy says, and makes it the stoppers' CPU count.
/// Stops the boot, naming both values, when a device tree and the board data disagree, and
/// when a required device tree is missing or malformed.
fn discover_cpus(x0: u64, boot_mpidr: u64) {
    use armstop_devicetree as dt;
    let fatal = |args: core::fmt::Arguments<'_>| -> ! { crate::fault::fatal(args) };
    let from_board = || {
        if let Err(e) = crate::board::set_cpus(BOARD.cpus, boot_mpidr) {
            fatal(format_args!("board {}: {e}", BOARD.name));
        }
    };
    match BOARD.device_tree {
        DeviceTree::None => from_board(),
        DeviceTree::Optional => {
            match blob_in_ram(x0).and_then(dt::parse) {
                Ok(m) => match dt::check_board(&BOARD, &m) {
                    Ok(()) => log::info!(
                        "device tree at {x0:#x} agrees with board {} ({} CPUs)",
                        BOARD.name,
                        m.cpus().len()
                    ),
                    Err(e) => fatal(format_args!(
                        "device tree at {x0:#x} and board {} disagree: {e}",
                        BOARD.name
                    )),
                },
                Err(e) if x0 != 0 => {
                    log::info!("x0 = {x0:#x} holds no device tree ({e}); using board data")
                }
                Err(_) => {}
            }
            from_board();
        }
        DeviceTree::Required { fallback } => {
            let (at, blob) = match (blob_in_ram(x0), fallback) {
                (Ok(b), _) => (x0, b),
                (Err(e), None) => fatal(format_args!(
                    "board {} needs a device tree, and x0 = {x0:#x} holds none: {e}",
                    BOARD.name
                )),
                (Err(e0), Some(f)) => match blob_in_ram(f) {
                    Ok(b) => (f, b),
                    Err(e) => fatal(format_args!(
                        "board {} needs a device tree: none in x0 ({x0:#x}: {e0}), none at \
                         {f:#x} ({e})",
                        BOARD.name
                    )),
                },
            };
            let m = match dt::parse(blob) {
                Ok(m) => m,
                Err(e) => fatal(format_args!("device tree at {at:#x}: {e}")),
            };
            if let Err(e) = dt::check_board_devices(&BOARD, &m) {
                fatal(format_args!(
                    "device tree at {at:#x} and board {} disagree: {e}",
                    BOARD.name
                ));
            }
            if let Err(e) = crate::board::set_cpus(m.cpus(), boot_mpidr) {
                fatal(format_args!("device tree at {at:#x}: {e}"));
            }
            log::info!("device tree at {at:#x}: {} CPUs", m.cpus().len());
        }
    }
    crate::stop::STOPPERS.set_nr_cpu_ids(cpu_count());
}

/// Fills `cpu`'s boot arguments (its stacks, the MMU configuration) for a CPU_ON and cleans
/// them to the point of coherency, where the CPU reads them with its MMU off; returns their
/// address, the CPU_ON context id. Only for a CPU that PSCI reports off (hotplug's invariant).
pub(crate) fn prepare_boot_args(cpu: usize) -> u64 {
    let slot = crate::mm::stack_slot(cpu) as u64;
    let mmu = crate::mm::config();
    let args = BootArgs {
        cpu: cpu as u64,
        exception_stack_top: slot + crate::mm::EXCEPTION_TOP as u64,
        thread_stack_top: slot + crate::mm::THREAD_TOP as u64,
        ttbr0: mmu.ttbr0,
        tcr: mmu.tcr,
        mair: mmu.mair,
    };
    // SAFETY: only the controlling CPU of a cpu_up (serialised by hotplug's lock) writes this
    // slot, while `cpu` is off; `cpu` reads it only after CPU_ON.
    let p = unsafe {
        let p = &raw mut BOOT_ARGS[cpu];
        p.write(args);
        p
    };
    crate::mm::clean_dcache_range(p as usize, core::mem::size_of::<BootArgs>());
    p as u64
}

/// A secondary CPU's Rust entry: MMU and stacks are already set up by the assembly.
pub extern "C" fn secondary_entry(args: &BootArgs, boot_el: u64) -> ! {
    let cpu = args.cpu as usize;
    let mpidr = crate::cpu::mpidr();
    if crate::board::logical_id(mpidr) != Some(cpu) {
        crate::fault::fatal(format_args!(
            "started as logical CPU {cpu} but MPIDR is {mpidr:#x} (the CPU list says {:#x})",
            crate::board::mpidr(cpu).unwrap_or(u64::MAX)
        ));
    }
    BOOT_EL[cpu].store(boot_el as u32, Ordering::Relaxed);
    SEEN_MPIDR[cpu].store(mpidr, Ordering::Relaxed);
    if let Err(e) = crate::gic::init_cpu() {
        // It stays BOOTING; cpu_up times out and marks it FAILED.
        log::error!("cpu{cpu}: GIC CPU interface: {e}; turning off");
        crate::hotplug::turn_off();
    }
    crate::time::init_cpu();
    if crate::hotplug::stall_if(crate::hotplug::Fault::StallBoot) {
        crate::hotplug::turn_off();
    }
    if crate::hotplug::HOTPLUG.cpu_online().is_err() {
        crate::hotplug::turn_off();
    }
    idle_loop()
}

/// Where a secondary CPU resumes after a fault (fresh stacks, IRQs masked).
pub extern "C" fn idle_entry() -> ! {
    idle_loop()
}

fn idle_loop() -> ! {
    let me = crate::cpu::id();
    loop {
        let guard = crate::cpu::mask_irqs();
        if crate::stop::STOPPERS.has_work(me) {
            crate::cpu::unmask_irqs();
            crate::stop::STOPPERS.run_works();
            continue;
        }
        match crate::hotplug::HOTPLUG.dying_step() {
            // Flushed, parked and reported dead: CPU_OFF.
            Step::PowerOff => crate::hotplug::die(),
            // Parked outside hotplug: waits to be enabled again; calls still run.
            Step::Parked => log::info!("cpu{me}: stopper parked"),
            Step::Run => {}
        }
        if CALLS[me].state.load(Ordering::Acquire) == CALL_POSTED {
            crate::cpu::unmask_irqs();
            CALLS[me].run();
            continue;
        }
        crate::cpu::wait_for_interrupt();
        // The pending IRQ (if that is what ended the wait) is taken here.
        crate::cpu::unmask_irqs();
        drop(guard);
    }
}

const CALL_IDLE: u32 = 0;
const CALL_POSTED: u32 = 1;
const CALL_RUNNING: u32 = 2;
const CALL_DONE: u32 = 3;
const CALL_FAULTED: u32 = 4;
const CALL_REFUSED: u32 = 5;

/// One CPU's call mailbox. Callers serialise on `lock`; the state word hands the call over.
struct CallSlot {
    lock: spin::Mutex<()>,
    state: AtomicU32,
    func: AtomicUsize,
    arg: AtomicUsize,
    ret: AtomicUsize,
}

static CALLS: [CallSlot; NR_CPUS] = [const {
    CallSlot {
        lock: spin::Mutex::new(()),
        state: AtomicU32::new(CALL_IDLE),
        func: AtomicUsize::new(0),
        arg: AtomicUsize::new(0),
        ret: AtomicUsize::new(0),
    }
}; NR_CPUS];

impl CallSlot {
    fn run(&self) {
        if self
            .state
            .compare_exchange(CALL_POSTED, CALL_RUNNING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return; // withdrawn by a caller that timed out
        }
        let f = self.func.load(Ordering::Relaxed);
        // SAFETY: `func` was stored from a `fn(usize) -> usize` by `post`, before the
        // Release store of POSTED that the Acquire above synchronises with.
        let f: fn(usize) -> usize = unsafe { core::mem::transmute::<usize, fn(usize) -> usize>(f) };
        let r = f(self.arg.load(Ordering::Relaxed));
        self.ret.store(r, Ordering::Relaxed);
        self.state.store(CALL_DONE, Ordering::Release);
    }
}

/// Why a cross-CPU call did not return a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallError {
    /// No such CPU.
    InvalidCpu,
    /// The CPU is not online.
    Offline(CpuState),
    /// The call did not finish within [`CALL_TIMEOUT`].
    Timeout,
    /// The function faulted (panicked or aborted) on that CPU; the fault was reported.
    Faulted,
    /// Another caller held the CPU's call mailbox for longer than [`CALL_TIMEOUT`].
    MailboxBusy,
}

impl core::fmt::Display for CallError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::InvalidCpu => write!(f, "no such CPU"),
            Self::Offline(s) => write!(f, "CPU is {s:?}"),
            Self::Timeout => {
                write!(f, "call did not finish within {} ms", CALL_TIMEOUT.as_millis())
            }
            Self::Faulted => write!(f, "call faulted on the target CPU"),
            Self::MailboxBusy => write!(
                f,
                "another caller held the CPU's call mailbox for over {} ms",
                CALL_TIMEOUT.as_millis()
            ),
        }
    }
}

/// A call posted to another CPU, to be waited for with [`Pending::wait`].
#[must_use = "a posted call must be waited for"]
pub struct Pending {
    cpu: usize,
    guard: Option<spin::MutexGuard<'static, ()>>,
    local: Option<usize>,
}

/// Posts `f(arg)` to run on `cpu` in its idle loop (thread context, IRQs enabled), without
/// waiting. On the calling CPU itself, runs it at once.
pub fn post(cpu: usize, f: fn(usize) -> usize, arg: usize) -> Result<Pending, CallError> {
    if cpu >= cpu_count() {
        return Err(CallError::InvalidCpu);
    }
    if cpu == crate::cpu::id() {
        return Ok(Pending { cpu, guard: None, local: Some(f(arg)) });
    }
    if !is_online(cpu) {
        return Err(CallError::Offline(state(cpu)));
    }
    let slot = &CALLS[cpu];
    // Callers queue for the mailbox; one that waits longer than a call may take is told so
    // rather than left spinning (a caller that faulted may never release it).
    let mut guard = None;
    if !wait_until(CALL_TIMEOUT, || {
        guard = slot.lock.try_lock();
        guard.is_some()
    }) {
        return Err(CallError::MailboxBusy);
    }
    let guard = guard.expect("taken above");
    slot.func.store(f as usize, Ordering::Relaxed);
    slot.arg.store(arg, Ordering::Relaxed);
    slot.state.store(CALL_POSTED, Ordering::SeqCst);
    // Against `refuse_calls`: either the CPU going down sees POSTED and refuses the call, or
    // we see it no longer online here and withdraw it (or find it refused).
    if !is_online(cpu) {
        let r =
            slot.state.compare_exchange(CALL_POSTED, CALL_IDLE, Ordering::SeqCst, Ordering::SeqCst);
        if matches!(r, Ok(_) | Err(CALL_REFUSED)) {
            slot.state.store(CALL_IDLE, Ordering::Release);
            return Err(CallError::Offline(state(cpu)));
        }
    }
    ipi::send(cpu, Message::Wake).map_err(|_| CallError::InvalidCpu)?;
    Ok(Pending { cpu, guard: Some(guard), local: None })
}

impl Pending {
    /// Waits for the call's result, up to [`CALL_TIMEOUT`].
    pub fn wait(self) -> Result<usize, CallError> {
        self.wait_timeout(CALL_TIMEOUT)
    }

    /// Waits for the call's result, up to `timeout` (for calls known to run long).
    pub fn wait_timeout(mut self, timeout: Duration) -> Result<usize, CallError> {
        if let Some(r) = self.local {
            return Ok(r);
        }
        let slot = &CALLS[self.cpu];
        let finished = wait_until(timeout, || {
            matches!(slot.state.load(Ordering::Acquire), CALL_DONE | CALL_FAULTED | CALL_REFUSED)
        });
        let result = if finished {
            match slot.state.load(Ordering::Acquire) {
                CALL_DONE => Ok(slot.ret.load(Ordering::Relaxed)),
                CALL_REFUSED => Err(CallError::Offline(state(self.cpu))),
                _ => Err(CallError::Faulted),
            }
        } else {
            // Withdraw it if it has not started; a running call is left to finish on its own
            // (it borrows nothing: a plain `fn` and a `usize`).
            let _ = slot.state.compare_exchange(
                CALL_POSTED,
                CALL_IDLE,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            return Err(CallError::Timeout);
        };
        slot.state.store(CALL_IDLE, Ordering::Release);
        drop(self.guard.take());
        result
    }
}

/// Runs `f(arg)` on `cpu` and waits for its result.
pub fn run_on(cpu: usize, f: fn(usize) -> usize, arg: usize) -> Result<usize, CallError> {
    post(cpu, f, arg)?.wait()
}

/// Runs `f(arg)` on every online CPU at the same time (the caller's own share last), and
/// returns each CPU's result, `None` for CPUs that are not online.
pub fn run_everywhere(
    f: fn(usize) -> usize,
    arg: usize,
) -> [Option<Result<usize, CallError>>; NR_CPUS] {
    let me = crate::cpu::id();
    let mut pending: [Option<Result<Pending, CallError>>; NR_CPUS] = [const { None }; NR_CPUS];
    for (cpu, p) in pending.iter_mut().enumerate().take(cpu_count()) {
        if cpu != me && is_online(cpu) {
            *p = Some(post(cpu, f, arg));
        }
    }
    let mine = f(arg);
    let mut out: [Option<Result<usize, CallError>>; NR_CPUS] = [None; NR_CPUS];
    out[me] = Some(Ok(mine));
    for (cpu, p) in pending.into_iter().enumerate() {
        if let Some(p) = p {
            out[cpu] = Some(p.and_then(Pending::wait));
        }
    }
    out
}

/// Fault hook for secondary CPUs: a call in progress is marked faulted so its caller stops
/// waiting.
pub fn on_secondary_fault(cpu: usize) {
    let _ = CALLS[cpu].state.compare_exchange(
        CALL_RUNNING,
        CALL_FAULTED,
        Ordering::AcqRel,
        Ordering::Relaxed,
    );
}

/// On a CPU going down, after its stopper is parked: a call still posted to it will never run,
/// so its caller gets [`CallError::Offline`] instead of a timeout.
pub(crate) fn refuse_calls(cpu: usize) {
    let _ = CALLS[cpu].state.compare_exchange(
        CALL_POSTED,
        CALL_REFUSED,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
}
