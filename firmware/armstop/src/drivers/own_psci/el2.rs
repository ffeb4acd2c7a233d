//! EL2 code for armstop's own PSCI provider (boards with `own_psci`): the EL2 vector table, the
//! holding pen secondaries wait in at EL2, the boot CPU's provider start, and the HVC entry.
//!
//! Everything here runs at EL2 with the MMU and caches off, on the provider's own per-CPU EL2
//! stacks (in `.el2_bss`, which the EL1 identity map leaves unmapped, so EL1 can neither corrupt
//! them nor pull stale copies of them into its caches). The EL1 firmware reaches this code only
//! through `hvc #0`.
//!
//! Register contract of the HVC entry: `x0` = function id, `x1..x3` = arguments; `x0` = result
//! on return; every other general register is preserved (SMCCC 1.1 and later).

use crate::board::NR_CPUS;

/// Bytes of EL2 stack per CPU: the provider's call path is shallow (no formatting except on a
/// fatal error).
pub const EL2_STACK: usize = 8 * 1024;

/// CPUs with an EL2 stack: every CPU where the image is its board's PSCI provider, one
/// otherwise (the table is then never used, and a board found with many CPUs does not pay for
/// it).
const EL2_CPUS: usize = if super::enabled() { NR_CPUS } else { 1 };

/// The provider's per-CPU EL2 stacks, zeroed with `.bss` before use.
#[repr(C, align(4096))]
pub struct El2Stacks(pub [[u8; EL2_STACK]; EL2_CPUS]);

/// EL2 stacks (in `.el2_bss`, unmapped at EL1).
#[unsafe(no_mangle)]
#[unsafe(link_section = ".el2_bss")]
pub static mut ARMSTOP_EL2_STACKS: El2Stacks = El2Stacks([[0; EL2_STACK]; EL2_CPUS]);

/// Top of `cpu`'s EL2 stack.
pub fn stack_top(cpu: usize) -> u64 {
    (&raw const ARMSTOP_EL2_STACKS) as u64 + ((cpu + 1) * EL2_STACK) as u64
}

core::arch::global_asm!(
    r#"
// This CPU's EL2 state for the provider: MMU and caches off, its vectors, SP_EL2 selected.
// Clobbers x9.
.macro ARMSTOP_EL2_SETUP
    ldr     x9, ={sctlr_el2}
    msr     sctlr_el2, x9
    adrp    x9, armstop_el2_vectors
    add     x9, x9, :lo12:armstop_el2_vectors
    msr     vbar_el2, x9
    msr     spsel, #1
    isb
.endm

.section .text.el2, "ax"
.balign 2048
.global armstop_el2_vectors
armstop_el2_vectors:
.rept 8
.balign 0x80
    b       armstop_el2_unexpected
.endr
.balign 0x80
    b       armstop_el2_hvc
.rept 7
.balign 0x80
    b       armstop_el2_unexpected
.endr
.balign 0x80

// A synchronous exception from EL1 (the only kind routed here). Saves what the Rust handler
// may clobber, except x0, which carries the result.
armstop_el2_hvc:
    sub     sp, sp, #160
    stp     x1, x2, [sp, #0]
    stp     x3, x4, [sp, #16]
    stp     x5, x6, [sp, #32]
    stp     x7, x8, [sp, #48]
    stp     x9, x10, [sp, #64]
    stp     x11, x12, [sp, #80]
    stp     x13, x14, [sp, #96]
    stp     x15, x16, [sp, #112]
    stp     x17, x18, [sp, #128]
    stp     x29, x30, [sp, #144]
    mrs     x4, esr_el2
    mrs     x5, elr_el2
    bl      {sync}
    cbnz    x1, 1f
    ldp     x1, x2, [sp, #0]
    ldp     x3, x4, [sp, #16]
    ldp     x5, x6, [sp, #32]
    ldp     x7, x8, [sp, #48]
    ldp     x9, x10, [sp, #64]
    ldp     x11, x12, [sp, #80]
    ldp     x13, x14, [sp, #96]
    ldp     x15, x16, [sp, #112]
    ldp     x17, x18, [sp, #128]
    ldp     x29, x30, [sp, #144]
    add     sp, sp, #160
    eret
    // CPU_OFF: x0 = this CPU's EL2 stack top; nothing of the EL1 context is kept.
1:  mov     sp, x0
    b       armstop_el2_pen_loop

armstop_el2_unexpected:
    mrs     x0, esr_el2
    mrs     x1, elr_el2
    mrs     x2, far_el2
    bl      {unexpected}
    b       armstop_halt

// The pen, on this CPU's EL2 stack: waits for a CPU_ON, then enters its entry point at EL1h
// with x0 = its context id (armstop_to_el1 returns to x30 at EL1).
armstop_el2_pen_loop:
    bl      {pen}
    mov     x30, x0
    mov     x0, x1
    b       armstop_to_el1

// Where a secondary released from its spin table arrives: EL2, MMU off. Finds its logical id
// in the board's MPIDR table (a CPU not in it parks for good), takes its EL2 stack and waits.
.global armstop_el2_secondary_pen
armstop_el2_secondary_pen:
    msr     daifset, #0xf
    ARMSTOP_EL2_SETUP
    mrs     x10, mpidr_el1
    ldr     x11, ={aff_mask}
    and     x10, x10, x11
    adrp    x12, {mpidrs}
    add     x12, x12, :lo12:{mpidrs}
    mov     x13, #0
2:  ldr     x14, [x12, x13, lsl #3]
    cmp     x14, x10
    b.eq    3f
    add     x13, x13, #1
    cmp     x13, #{max_cpus}
    b.lo    2b
    b       armstop_halt
3:  add     x13, x13, #1
    mov     x14, #{el2_stack}
    adrp    x12, {stacks}
    add     x12, x12, :lo12:{stacks}
    madd    x12, x13, x14, x12
    mov     sp, x12
    b       armstop_el2_pen_loop

// The boot CPU, at EL2 with the MMU off and .bss zeroed: EL2 vectors and stack (logical CPU 0's),
// then the provider's start, which releases the secondaries into the pen. Returns; preserves
// x19 and x20.
.global armstop_el2_boot
armstop_el2_boot:
    mov     x21, x30
    ARMSTOP_EL2_SETUP
    adrp    x9, {stacks}
    add     x9, x9, :lo12:{stacks}
    add     x9, x9, #{el2_stack}
    mov     sp, x9
    bl      {boot}
    mov     x30, x21
    ret
"#,
    sync = sym super::el2_sync,
    unexpected = sym super::el2_unexpected,
    pen = sym super::el2_pen,
    boot = sym super::el2_boot,
    mpidrs = sym super::ARMSTOP_EL2_MPIDRS,
    stacks = sym ARMSTOP_EL2_STACKS,
    max_cpus = const EL2_CPUS,
    el2_stack = const EL2_STACK,
    aff_mask = const armstop_boards::MPIDR_AFFINITY_MASK,
    // SCTLR_EL2 RES1 bits (29, 28, 23, 22, 18, 16, 11, 5, 4) with MMU, caches and alignment
    // checks off, little-endian: the provider runs with the MMU off.
    sctlr_el2 = const 0x30c5_0830u64,
);

unsafe extern "C" {
    /// Where secondaries released from their spin tables start (EL2, MMU off).
    pub fn armstop_el2_secondary_pen() -> !;
}
