//! Memory: the image layout, per-CPU stacks with guard pages, and the identity map.
//!
//! Each CPU owns one [`StackSlot`]: `guard | emergency | guard | exception | guard | thread`,
//! growing down. The guard pages are unmapped, so an overflow of the thread stack or of the
//! exception stack is a translation fault that [`crate::fault`] names as a stack overflow
//! instead of silent corruption of a neighbour. Invariant: the translation tables are built
//! once by the boot CPU before its MMU is on and never change afterwards.

use armstop_boards::MemoryKind;

use crate::board::NR_CPUS;
use armstop_idmap::{IdMap, Kind, MAIR, Table};

use crate::board::BOARD;

const PAGE: usize = 4096;
/// Bytes of the stack used while reporting a fault in an exception handler.
pub const EMERGENCY_STACK: usize = 4 * 1024;
/// Bytes of the stack exception handlers (IRQs included) run on. Stopper works kicked by an
/// SGI run here too, so it is as large as a thread stack.
pub const EXCEPTION_STACK: usize = 64 * 1024;
/// Bytes of the stack each CPU's threads run on.
pub const THREAD_STACK: usize = 64 * 1024;

/// Offset of the emergency stack's top in a slot.
pub const EMERGENCY_TOP: usize = PAGE + EMERGENCY_STACK;
/// Offset of the exception stack's top in a slot.
pub const EXCEPTION_TOP: usize = EMERGENCY_TOP + PAGE + EXCEPTION_STACK;
/// Offset of the thread stack's top in a slot (= slot size).
pub const THREAD_TOP: usize = EXCEPTION_TOP + PAGE + THREAD_STACK;
/// Bytes per CPU.
pub const STACK_SLOT: usize = THREAD_TOP;

/// One CPU's stacks and their guard pages.
#[repr(C, align(4096))]
pub struct StackSlot([u8; STACK_SLOT]);

/// Every CPU's stacks (in `.stacks`, not loaded, not zeroed).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".stacks")]
pub static mut STACKS: [StackSlot; NR_CPUS] = [const { StackSlot([0; STACK_SLOT]) }; NR_CPUS];

/// Which stack a guard page protects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackKind {
    /// Below the emergency stack.
    Emergency,
    /// Below the exception stack.
    Exception,
    /// Below the thread stack.
    Thread,
}

/// Base address of `cpu`'s stack slot.
pub fn stack_slot(cpu: usize) -> usize {
    assert!(cpu < NR_CPUS);
    (&raw const STACKS) as usize + cpu * STACK_SLOT
}

/// The guard pages of `cpu`, lowest first.
pub fn guard_pages(cpu: usize) -> [(usize, StackKind); 3] {
    let s = stack_slot(cpu);
    [
        (s, StackKind::Emergency),
        (s + EMERGENCY_TOP, StackKind::Exception),
        (s + EXCEPTION_TOP, StackKind::Thread),
    ]
}

/// If `addr` is in a guard page, whose and of which stack.
pub fn guard_page_owner(addr: u64) -> Option<(usize, StackKind)> {
    (0..NR_CPUS).find_map(|cpu| {
        guard_pages(cpu)
            .into_iter()
            .find(|&(g, _)| (g as u64..g as u64 + PAGE as u64).contains(&addr))
            .map(|(_, kind)| (cpu, kind))
    })
}

/// Translation settings every CPU loads.
#[derive(Clone, Copy, Debug, Default)]
#[repr(C)]
pub struct MmuConfig {
    /// TTBR0_EL1.
    pub ttbr0: u64,
    /// TCR_EL1.
    pub tcr: u64,
    /// MAIR_EL1.
    pub mair: u64,
}

/// Translation tables for the identity map: a fixed few for the levels above and for the image,
/// plus one last-level table per 2 MiB of stacks (their guard pages split every block), so an
/// image with room for more CPUs has the tables to map them.
const TABLE_POOL: usize = 24 + (NR_CPUS * STACK_SLOT).div_ceil(2 << 20);
static mut TABLES: [Table; TABLE_POOL] = [Table::EMPTY; TABLE_POOL];
static mut CONFIG: MmuConfig = MmuConfig { ttbr0: 0, tcr: 0, mair: 0 };

unsafe extern "C" {
    static __text_start: u8;
    static __text_end: u8;
    static __rodata_start: u8;
    static __rodata_end: u8;
    static __image_start: u8;
    static __image_end: u8;
    static __el2_start: u8;
    static __el2_end: u8;
}

fn symbol(s: &'static u8) -> u64 {
    s as *const u8 as u64
}

/// The image's extent `[start, end)`.
pub fn image_range() -> (u64, u64) {
    // SAFETY: linker-script symbols; only their addresses are taken.
    unsafe { (symbol(&__image_start), symbol(&__image_end)) }
}

/// Why the identity map could not be built.
#[derive(Debug)]
pub enum MmError {
    /// A range could not be mapped.
    Map(&'static str, armstop_idmap::MapError),
    /// The image is not inside a normal memory region of the board.
    ImageOutsideRam(u64, u64),
}

/// Builds the identity map and turns the MMU on. Boot CPU only, once, with the MMU off.
///
/// # Safety
/// Must run exactly once, on the boot CPU, before any other CPU is started.
pub unsafe fn init_primary() -> Result<MmuConfig, MmError> {
    // SAFETY: the boot CPU is the only one running and this runs once, so nothing else
    // references the pool.
    let pool = unsafe { &mut *(&raw mut TABLES) };
    let mut map = IdMap::new(pool).map_err(|e| MmError::Map("tables", e))?;
    for r in BOARD.memory {
        let kind = match r.kind {
            MemoryKind::Normal => Kind::Data,
            MemoryKind::Device => Kind::Device,
        };
        map.set(r.base, r.size, kind).map_err(|e| MmError::Map(r.name, e))?;
    }
    let (start, end) = image_range();
    if !BOARD.memory.iter().any(|r| r.kind == MemoryKind::Normal && r.contains(start, end - start))
    {
        return Err(MmError::ImageOutsideRam(start, end));
    }
    // SAFETY: linker-script symbols; only their addresses are taken.
    let (text, rodata) = unsafe {
        (
            (symbol(&__text_start), symbol(&__text_end)),
            (symbol(&__rodata_start), symbol(&__rodata_end)),
        )
    };
    map.set(text.0, text.1 - text.0, Kind::Code).map_err(|e| MmError::Map(".text", e))?;
    if rodata.1 > rodata.0 {
        map.set(rodata.0, rodata.1 - rodata.0, Kind::ReadOnly)
            .map_err(|e| MmError::Map(".rodata", e))?;
    }
    // The EL2 PSCI provider's pages: EL2 uses them with the MMU off, so EL1 must neither write
    // them nor hold cached copies of them.
    // SAFETY: linker-script symbols; only their addresses are taken.
    let el2 = unsafe { (symbol(&__el2_start), symbol(&__el2_end)) };
    map.set(el2.0, el2.1 - el2.0, Kind::Unmapped).map_err(|e| MmError::Map(".el2_bss", e))?;
    for cpu in 0..NR_CPUS {
        for (guard, _) in guard_pages(cpu) {
            map.set(guard as u64, PAGE as u64, Kind::Unmapped)
                .map_err(|e| MmError::Map("guard page", e))?;
        }
    }
    use aarch64_cpu::registers::{ID_AA64MMFR0_EL1, Readable};
    let config = MmuConfig {
        ttbr0: map.root_address(),
        tcr: armstop_idmap::tcr(ID_AA64MMFR0_EL1.read(ID_AA64MMFR0_EL1::PARange)),
        mair: MAIR,
    };
    // The tables were written with the MMU (and so the data cache) off: drop any stale lines
    // that could shadow them once walks and loads become cacheable.
    invalidate_dcache_range(
        (&raw const TABLES) as usize,
        core::mem::size_of::<[Table; TABLE_POOL]>(),
    );
    // SAFETY: single CPU, once (see above).
    unsafe { CONFIG = config };
    // SAFETY: the map covers the board's memory and the image with the attributes the code
    // expects (code executable, data writable, devices nGnRE) and is never changed.
    unsafe { enable_mmu(config.ttbr0, config.tcr, config.mair) };
    Ok(config)
}

/// The settings the boot CPU enabled the MMU with (for secondaries and tests).
pub fn config() -> MmuConfig {
    // SAFETY: written once by the boot CPU before any other CPU runs; read-only afterwards.
    unsafe { CONFIG }
}

/// Size of the smallest data cache line (CTR_EL0.DminLine).
fn dcache_line() -> usize {
    let ctr: u64;
    // SAFETY: reading CTR_EL0 has no side effects.
    unsafe { core::arch::asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Runs `op` on the address of every data cache line overlapping `[start, start + len)`,
/// then waits for the maintenance to complete.
fn for_each_dcache_line(start: usize, len: usize, op: impl Fn(usize)) {
    let line = dcache_line();
    let mut a = start & !(line - 1);
    while a < start + len {
        op(a);
        a += line;
    }
    // SAFETY: barrier only.
    unsafe { core::arch::asm!("dsb sy", options(nostack)) };
}

/// Invalidates (discards) data cache lines over a range.
fn invalidate_dcache_range(start: usize, len: usize) {
    for_each_dcache_line(start, len, |a| {
        // SAFETY: `dc ivac` discards cached copies only; the range holds nothing that was
        // written through the cache (the MMU is off here).
        unsafe { core::arch::asm!("dc ivac, {}", in(reg) a, options(nostack)) }
    });
}

/// Cleans data cache lines over a range to the point of coherency, so that a CPU with its MMU
/// (and caches) still off reads what this CPU wrote.
pub fn clean_dcache_range(start: usize, len: usize) {
    for_each_dcache_line(start, len, |a| {
        // SAFETY: `dc cvac` writes dirty lines back; it does not change memory contents as
        // seen through the cache.
        unsafe { core::arch::asm!("dc cvac, {}", in(reg) a, options(nostack)) }
    });
}

fn at(va: u64, write: bool) -> u64 {
    let par: u64;
    let _irq = crate::cpu::mask_irqs();
    // SAFETY: address translation instructions only write PAR_EL1, which is per-CPU; IRQs
    // are masked so no handler overwrites it between the two instructions.
    unsafe {
        if write {
            core::arch::asm!("at s1e1w, {va}", "isb", "mrs {par}, par_el1", va = in(reg) va, par = out(reg) par, options(nostack));
        } else {
            core::arch::asm!("at s1e1r, {va}", "isb", "mrs {par}, par_el1", va = in(reg) va, par = out(reg) par, options(nostack));
        }
    }
    par
}

/// Translates `va` for an EL1 read (`write == false`) or write, as the MMU does now: the
/// physical address, or `None` if that access would fault. Tests use it to check the map the
/// hardware actually walks.
pub fn translate(va: u64, write: bool) -> Option<u64> {
    let par = at(va, write);
    if par & 1 != 0 { None } else { Some((par & 0x0000_ffff_ffff_f000) | (va & 0xfff)) }
}

/// The memory attribute (MAIR byte) the MMU uses for `va`, if it is mapped.
pub fn attribute_of(va: u64) -> Option<u8> {
    let par = at(va, false);
    if par & 1 != 0 { None } else { Some((par >> 56) as u8) }
}

core::arch::global_asm!(
    r#"
// x0 = TTBR0_EL1, x1 = TCR_EL1, x2 = MAIR_EL1. Uses no stack, so nothing read back across
// the switch to cacheable memory can be stale. Also called by a secondary's entry, with its
// MMU still off.
.global armstop_enable_mmu
armstop_enable_mmu:
    msr     mair_el1, x2
    msr     tcr_el1, x1
    msr     ttbr0_el1, x0
    isb
    tlbi    vmalle1
    ic      iallu
    dsb     nsh
    isb
    mrs     x9, sctlr_el1
    ldr     x10, ={sctlr_on}
    orr     x9, x9, x10
    msr     sctlr_el1, x9
    isb
    ret
"#,
    // M | C | SA | I | WXN: MMU, data cache, SP alignment check, instruction cache, and no
    // writable mapping is executable.
    sctlr_on = const (1u64 << 0) | (1 << 2) | (1 << 3) | (1 << 12) | (1 << 19),
);

unsafe extern "C" {
    fn armstop_enable_mmu(ttbr0: u64, tcr: u64, mair: u64);
}

/// Turns the MMU and caches on with the given translation settings.
///
/// # Safety
/// The tables must identity-map all code, data and stacks this CPU uses, with the attributes
/// the code expects, and must not change while the MMU is on.
pub unsafe fn enable_mmu(ttbr0: u64, tcr: u64, mair: u64) {
    // SAFETY: forwarded to the caller; the routine uses no stack and preserves callee-saved
    // registers.
    unsafe { armstop_enable_mmu(ttbr0, tcr, mair) }
}
