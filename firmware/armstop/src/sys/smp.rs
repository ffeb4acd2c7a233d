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

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use armstop_boards::{DeviceTree, MemoryKind};
use armstop_stopper::CpuSet;

use crate::arch::boot::BootArgs;
use crate::board::{BOARD, NR_CPUS, cpu_count};
use crate::console;
use crate::hotplug::Step;
use crate::psci;

pub use crate::call::{
    CALL_TIMEOUT, CallError, Pending, on_secondary_fault, post, run_everywhere, run_on,
};

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

/// The boot CPU's Rust entry, from `_start` (the architecture layer's entry contract): MMU,
/// console, GIC, PSCI, secondaries, then the image's main function.
#[unsafe(no_mangle)]
pub extern "C" fn armstop_primary_entry(boot_el: u64, dtb: u64) -> ! {
    console::init();
    crate::fault::install();
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
    crate::fault::set_alive_source(online_mask);
    if let Err(e) = crate::ipi::init()
        .and_then(|()| crate::stop::init())
        .and_then(|()| crate::fault::init_halt())
    {
        crate::fault::fatal(format_args!("GIC: registering the SGI handlers: {e}"));
    }
    // The activity LED (boards with one): its pin is set up before the other CPUs run.
    crate::led::set_busy_source(|| !crate::stop::STOPPERS.running_mask().is_empty());
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
        // A board's table is in its logical order, which its spin tables and its own PSCI
        // provider share: the boot CPU must already be first (`set_cpus` would move it).
        let boot = boot_mpidr & armstop_boards::MPIDR_AFFINITY_MASK;
        if BOARD.cpus.first() != Some(&boot) {
            fatal(format_args!(
                "boot CPU has MPIDR {boot:#x}, but board {} lists {:#x} as logical CPU 0",
                BOARD.name,
                BOARD.cpus.first().copied().unwrap_or(u64::MAX)
            ));
        }
        if let Err(e) = crate::board::set_cpus(BOARD.cpus, boot_mpidr) {
            fatal(format_args!("board {}: {e}", BOARD.name));
        }
    };
    match BOARD.device_tree {
        DeviceTree::None => from_board(),
        DeviceTree::Optional => {
            match blob_in_ram(x0).map(dt::parse) {
                Ok(Ok(m)) => match dt::check_board(&BOARD, &m) {
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
                // A tree, but not one this reader can check (the Pi's own puts its GIC under
                // a bus, behind `ranges`, which it does not translate): the board data stands,
                // unchecked, and the log says so.
                Ok(Err(e)) => log::warn!(
                    "device tree at {x0:#x} not checked against board {} ({e}); using board data",
                    BOARD.name
                ),
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
            // The board maps the first redistributor region only (QEMU `virt` puts the frames
            // of CPUs past the 123rd in a second one, above 256 GiB).
            if let dt::Gic::V3 { redistributors, .. } = &m.gic
                && let [first, second, ..] = redistributors.regions()
            {
                fatal(format_args!(
                    "device tree at {at:#x}: {} CPUs need a second GICv3 redistributor region, \
                     at {:#x}, which board {} does not map: armstop supports the {} CPUs of the \
                     first ({:#x} + {:#x})",
                    m.cpus().len(),
                    second.base,
                    BOARD.name,
                    first.size / 0x2_0000,
                    first.base,
                    first.size
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

/// A secondary CPU's Rust entry, from `armstop_secondary_entry` (the architecture layer's entry
/// contract): MMU and stacks are already set up by the assembly.
#[unsafe(no_mangle)]
pub extern "C" fn armstop_secondary_main(args: &BootArgs, boot_el: u64) -> ! {
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
            Step::PowerOff => {
                // A call still posted here would never run: its caller gets `Offline`.
                crate::call::refuse_calls(me);
                crate::hotplug::die()
            }
            // Parked outside hotplug: waits to be enabled again; calls still run.
            Step::Parked => log::info!("cpu{me}: stopper parked"),
            Step::Run => {}
        }
        if crate::call::is_posted(me) {
            crate::cpu::unmask_irqs();
            crate::call::run_posted(me);
            continue;
        }
        crate::cpu::wait_for_interrupt();
        // The pending IRQ (if that is what ended the wait) is taken here.
        crate::cpu::unmask_irqs();
        drop(guard);
    }
}

/// One CPU as the operator console's `cpus` command shows it ([`cpu_report`]).
#[derive(Clone, Copy, Debug)]
pub struct CpuReport {
    /// Logical id.
    pub cpu: usize,
    /// Hotplug state: `FAILED` for a core that did not start or stop as asked, `HALTED` for
    /// one a stopper watchdog halted inside a callback that never returned.
    pub state: CpuState,
    /// The MPIDR it read from its own register when it last came up (the board's value if it
    /// never did).
    pub mpidr: Option<u64>,
    /// Whether `mpidr` is the CPU's own reading (`false`: the board's table).
    pub mpidr_seen: bool,
    /// The EL it was entered at (0: never ran).
    pub boot_el: u8,
    /// Stopper works it has run.
    pub works: u64,
    /// How long its last successful `cpu_up`/`cpu_down` took.
    pub last_latency_ns: Option<u64>,
    /// For a halted CPU: where the halt found it (its ELR).
    pub halted_at: Option<u64>,
}

/// What is known about `cpu` now, for the console's `cpus` (one line each, see the Display).
pub fn cpu_report(cpu: usize) -> CpuReport {
    let seen = seen_mpidr(cpu);
    CpuReport {
        cpu,
        state: state(cpu),
        mpidr: seen.or_else(|| crate::board::mpidr(cpu)),
        mpidr_seen: seen.is_some(),
        boot_el: boot_el(cpu),
        works: if cpu < NR_CPUS { crate::stop::STOPPERS.runs(cpu) } else { 0 },
        last_latency_ns: crate::hotplug::last_latency_ns(cpu),
        halted_at: crate::fault::stopped(cpu).map(|(_, elr, _)| elr),
    }
}

impl core::fmt::Display for CpuReport {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "cpu{:<3} {:<7}", self.cpu, self.state.name())?;
        match self.mpidr {
            Some(m) => write!(f, " MPIDR {m:#x}{}", if self.mpidr_seen { "" } else { " (board)" })?,
            None => write!(f, " MPIDR ?")?,
        }
        match self.boot_el {
            0 => write!(f, " EL-")?,
            el => write!(f, " EL{el}")?,
        }
        write!(f, " works {}", self.works)?;
        match self.last_latency_ns {
            Some(ns) => write!(f, " last hotplug {} us", ns / 1000)?,
            None => write!(f, " last hotplug -")?,
        }
        if let Some(elr) = self.halted_at {
            write!(f, " halted at ELR={elr:#x}")?;
        }
        Ok(())
    }
}
