//! Entry points (boot CPU and secondaries), the EL2 → EL1 drop and the stack reset
//! used to recover a CPU after a fault.
//!
//! Invariants: every CPU reaches Rust at EL1 with DAIF masked, `TPIDR_EL1` = logical id,
//! `SP_EL1` = its exception stack and `SP_EL0` (selected, `SPSel = 0`) = its thread stack, so an
//! exception always switches to a stack that a thread-stack overflow cannot have corrupted.
//! Secondaries enable the MMU in assembly before any Rust runs: exclusives (and so every lock)
//! are only architecturally reliable on cacheable memory.
//!
//! Entry contract with the layers above (symbols they define, as an image defines
//! `__armstop_main`): the boot CPU continues in `armstop_primary_entry(boot_el, x0 at entry)`,
//! a CPU started by CPU_ON in `armstop_secondary_main(&BootArgs, boot_el)`; boards with their
//! own PSCI provider also define `armstop_el2_boot` and `ARMSTOP_OWN_PSCI`.

use crate::board::NR_CPUS;
use crate::mm::{EMERGENCY_TOP, EXCEPTION_TOP, STACK_SLOT, THREAD_TOP};

core::arch::global_asm!(
    r#"
.section .text.boot, "ax"
.global _start
_start:
    mov     x19, x0                 // DTB pointer, if the loader gave one (unused)
    mrs     x20, CurrentEL
    lsr     x20, x20, #2            // boot EL, reported by Rust
    msr     daifset, #0xf
    // .bss (and .el2_bss within it) is zeroed first, at the entry EL with the MMU off: the EL2
    // PSCI provider keeps its state there and starts before the drop to EL1.
    adrp    x0, __bss_start
    add     x0, x0, :lo12:__bss_start
    adrp    x1, __bss_end
    add     x1, x1, :lo12:__bss_end
1:  cmp     x0, x1
    b.hs    2f
    stp     xzr, xzr, [x0], #16
    b       1b
    // Boards without PSCI firmware: start armstop's own provider while still at EL2 (an image
    // for such a board entered at EL1 is reported by Rust).
2:  cmp     x20, #2
    b.ne    3f
    adrp    x9, ARMSTOP_OWN_PSCI
    ldrb    w9, [x9, :lo12:ARMSTOP_OWN_PSCI]
    cbz     w9, 3f
    bl      armstop_el2_boot
3:  bl      armstop_to_el1
    msr     tpidr_el1, xzr          // the boot CPU is logical CPU 0 (checked in Rust)
    bl      armstop_cpu_early
    adrp    x2, {stacks}
    add     x2, x2, :lo12:{stacks}
    add     x0, x2, #{exc_top}
    add     x1, x2, #{thread_top}
    bl      armstop_set_stacks
    mov     x0, x20
    mov     x1, x19
    bl      armstop_primary_entry
    b       armstop_halt

// x0 = &BootArgs, as PSCI CPU_ON's context id. The MMU is off: BootArgs was cleaned to the
// point of coherency by the boot CPU before CPU_ON.
.global armstop_secondary_entry
armstop_secondary_entry:
    mov     x19, x0
    mrs     x20, CurrentEL
    lsr     x20, x20, #2
    bl      armstop_to_el1
    ldr     x0, [x19, #{args_cpu}]
    msr     tpidr_el1, x0
    bl      armstop_cpu_early
    ldr     x0, [x19, #{args_exc}]
    ldr     x1, [x19, #{args_thread}]
    bl      armstop_set_stacks
    ldr     x0, [x19, #{args_ttbr}]
    ldr     x1, [x19, #{args_tcr}]
    ldr     x2, [x19, #{args_mair}]
    bl      armstop_enable_mmu
    mov     x0, x19
    mov     x1, x20
    bl      armstop_secondary_main
    b       armstop_halt

// Drops from EL2 to EL1 (returning to the caller at EL1h with DAIF masked); at EL1 it only
// masks DAIF and puts SCTLR_EL1 in a known state. Clobbers x9, x10. (The EL2 PSCI provider's
// pen enters a CPU_ON's entry point through it too, with x30 = entry, x0 = context id.)
.global armstop_to_el1
armstop_to_el1:
    msr     daifset, #0xf
    mrs     x9, CurrentEL
    lsr     x9, x9, #2
    cmp     x9, #1
    b.eq    5f
    cmp     x9, #2
    b.ne    armstop_halt            // EL3 or EL0: not a supported entry
    mov     x9, #(1 << 31)          // HCR_EL2.RW: EL1 is AArch64; IMO/FMO clear: IRQs to EL1
    msr     hcr_el2, x9
    mrs     x9, cnthctl_el2
    orr     x9, x9, #3              // EL1PCTEN | EL1PCEN: EL1 may use the physical timer
    msr     cnthctl_el2, x9
    msr     cntvoff_el2, xzr
    mov     x9, #0x33ff             // CPTR_EL2: no FP/SIMD traps
    msr     cptr_el2, x9
    msr     hstr_el2, xzr
    msr     vttbr_el2, xzr
    mrs     x9, midr_el1
    msr     vpidr_el2, x9
    mrs     x9, mpidr_el1
    msr     vmpidr_el2, x9
    // With a GICv3 system-register interface, EL1 may only use it if EL2 allows (ICC_SRE_EL2
    // SRE | Enable). Without one the register does not exist, so look first.
    mrs     x9, id_aa64pfr0_el1
    ubfx    x9, x9, #24, #4
    cbz     x9, 4f
    mrs     x9, s3_4_c12_c9_5       // ICC_SRE_EL2
    mov     x10, #0x9
    orr     x9, x9, x10
    msr     s3_4_c12_c9_5, x9
    isb
    msr     s3_4_c12_c11_0, xzr     // ICH_HCR_EL2: no virtual CPU interface
4:  ldr     x9, ={sctlr_el1_off}
    msr     sctlr_el1, x9
    mov     x9, #0x3c5              // EL1h, DAIF masked
    msr     spsr_el2, x9
    msr     elr_el2, x30
    isb
    eret
5:  ldr     x9, ={sctlr_el1_off}
    msr     sctlr_el1, x9
    isb
    ret

// FP/SIMD enabled (the firmware is soft-float, but a callback may use it), vectors installed.
armstop_cpu_early:
    mov     x9, #(3 << 20)
    msr     cpacr_el1, x9
    adrp    x9, armstop_vectors
    add     x9, x9, :lo12:armstop_vectors
    msr     vbar_el1, x9
    isb
    ret

// x0 = exception stack top (SP_EL1), x1 = thread stack top (SP_EL0, selected).
.global armstop_set_stacks
armstop_set_stacks:
    msr     spsel, #1
    mov     sp, x0
    msr     spsel, #0
    mov     sp, x1
    ret

// x0 = exception stack top, x1 = thread stack top, x2 = function to continue in (never
// returns). Abandons whatever ran on this CPU: used only after a fault.
.global armstop_restart_on
armstop_restart_on:
    msr     daifset, #0xf
    msr     spsel, #1
    mov     sp, x0
    msr     spsel, #0
    mov     sp, x1
    mov     x29, xzr
    mov     x30, xzr
    br      x2

.global armstop_halt
armstop_halt:
    msr     daifset, #0xf
6:  wfe
    b       6b
"#,
    stacks = sym crate::mm::STACKS,
    exc_top = const EXCEPTION_TOP,
    thread_top = const THREAD_TOP,
    args_cpu = const core::mem::offset_of!(BootArgs, cpu),
    args_exc = const core::mem::offset_of!(BootArgs, exception_stack_top),
    args_thread = const core::mem::offset_of!(BootArgs, thread_stack_top),
    args_ttbr = const core::mem::offset_of!(BootArgs, ttbr0),
    args_tcr = const core::mem::offset_of!(BootArgs, tcr),
    args_mair = const core::mem::offset_of!(BootArgs, mair),
    // SCTLR_EL1 RES1 bits (29, 28, 23, 22, 20, 11) with MMU and caches off, little-endian.
    sctlr_el1_off = const 0x30d0_0800u64,
);

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

/// Fills `cpu`'s boot arguments (its stacks, the MMU configuration) for a CPU_ON and cleans
/// them to the point of coherency, where the CPU reads them with its MMU off; returns their
/// address, the CPU_ON context id. Only for a CPU that PSCI reports off (hotplug's invariant).
pub fn prepare_boot_args(cpu: usize) -> u64 {
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

// Size checks the assembly depends on.
const _: () = assert!(STACK_SLOT % 4096 == 0 && EMERGENCY_TOP < EXCEPTION_TOP);

unsafe extern "C" {
    /// Entry point for CPUs started by PSCI CPU_ON.
    pub fn armstop_secondary_entry() -> !;
    fn armstop_restart_on(exception_top: usize, thread_top: usize, f: extern "C" fn() -> !) -> !;
}

/// Address to pass to PSCI CPU_ON (identity mapped, so also the physical address).
pub fn secondary_entry_address() -> u64 {
    armstop_secondary_entry as *const () as u64
}

/// Abandons everything running on this CPU and continues in `f` on fresh stacks.
///
/// Used after a fault (panic, abort) so that a test harness can go on: nothing that was on the
/// old stacks is dropped, and locks the abandoned code held stay held.
pub fn restart_on(cpu: usize, f: extern "C" fn() -> !) -> ! {
    let slot = crate::mm::stack_slot(cpu);
    // SAFETY: the stacks are this CPU's own (per-CPU slots), IRQs are masked by the routine
    // before the switch, and `f` never returns into the abandoned frames.
    unsafe { armstop_restart_on(slot + EXCEPTION_TOP, slot + THREAD_TOP, f) }
}
