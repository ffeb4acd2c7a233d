//! Exception vectors and the frame they save.
//!
//! Threads run on `SP_EL0` (`SPSel = 0`), so the "current EL with SP0" vectors are the normal
//! path and their handlers run on the per-CPU exception stack (`SP_EL1`). An exception taken
//! while already on `SP_EL1` (the "current EL with SPx" group) means a handler faulted or the
//! exception stack overflowed; those vectors switch to the per-CPU emergency stack before
//! saving anything and only report — with one exception, the IRQ: a stop request's callback may
//! run inside an IRQ handler (a stopper kick) with IRQs unmasked so that the halt SGI alone
//! reaches it (`stop::Firmware::run_callback`), so an IRQ on `SP_EL1` is taken on the stack in
//! use, as a normal IRQ ([`Vector::Irq`]). Exceptions from lower ELs cannot happen (nothing runs
//! at EL0) and are reported as such.
//!
//! Invariant: while a handler runs, [`interrupted`] gives the innermost exception's ELR and
//! frame pointer on this CPU (what the fault path and the halt SGI report as "where it was").
//!
//! This layer knows nothing of what handles an exception: each vector calls the handler its
//! owner registered ([`set_handler`]): the GIC driver the IRQ, the fault service the others.

use core::sync::atomic::{AtomicUsize, Ordering};

use armstop_sync::FnSlot;

use crate::board::NR_CPUS;
use crate::mm::{EMERGENCY_TOP, STACK_SLOT};

/// Per CPU: the frame of the exception being handled, innermost first (0: none).
static INTERRUPTED: [AtomicUsize; NR_CPUS] = [const { AtomicUsize::new(0) }; NR_CPUS];

/// Where the exception this CPU handles now was taken: its ELR and the interrupted code's
/// frame pointer (x29). `None` outside exception handlers.
pub fn interrupted() -> Option<(u64, u64)> {
    let f = INTERRUPTED.get(crate::cpu::id())?.load(Ordering::Relaxed) as *const Frame;
    // SAFETY: a non-zero entry is the frame `exception_entry` is handling on this CPU, which
    // lives on this CPU's stack until that handler returns (and this CPU is running it now).
    (!f.is_null()).then(|| unsafe { ((*f).elr, (*f).x[29]) })
}

/// Registers saved on exception entry.
#[repr(C)]
#[derive(Debug)]
pub struct Frame {
    /// x0..x30.
    pub x: [u64; 31],
    /// Exception link register: where the exception was taken.
    pub elr: u64,
    /// Saved program status.
    pub spsr: u64,
    _pad: u64,
}

core::arch::global_asm!(
    r#"
.macro ARMSTOP_SAVE_AND_CALL vector
    sub     sp, sp, #{frame}
    stp     x0, x1, [sp, #0]
    stp     x2, x3, [sp, #16]
    stp     x4, x5, [sp, #32]
    stp     x6, x7, [sp, #48]
    stp     x8, x9, [sp, #64]
    stp     x10, x11, [sp, #80]
    stp     x12, x13, [sp, #96]
    stp     x14, x15, [sp, #112]
    stp     x16, x17, [sp, #128]
    stp     x18, x19, [sp, #144]
    stp     x20, x21, [sp, #160]
    stp     x22, x23, [sp, #176]
    stp     x24, x25, [sp, #192]
    stp     x26, x27, [sp, #208]
    stp     x28, x29, [sp, #224]
    mrs     x0, elr_el1
    mrs     x1, spsr_el1
    stp     x30, x0, [sp, #240]
    str     x1, [sp, #256]
    mov     x0, sp
    mov     x1, #\vector
    bl      {handler}
    ldp     x30, x0, [sp, #240]
    ldr     x1, [sp, #256]
    msr     elr_el1, x0
    msr     spsr_el1, x1
    ldp     x0, x1, [sp, #0]
    ldp     x2, x3, [sp, #16]
    ldp     x4, x5, [sp, #32]
    ldp     x6, x7, [sp, #48]
    ldp     x8, x9, [sp, #64]
    ldp     x10, x11, [sp, #80]
    ldp     x12, x13, [sp, #96]
    ldp     x14, x15, [sp, #112]
    ldp     x16, x17, [sp, #128]
    ldp     x18, x19, [sp, #144]
    ldp     x20, x21, [sp, #160]
    ldp     x22, x23, [sp, #176]
    ldp     x24, x25, [sp, #192]
    ldp     x26, x27, [sp, #208]
    ldp     x28, x29, [sp, #224]
    add     sp, sp, #{frame}
    eret
.endm

// The SPx group cannot trust SP_EL1: move to this CPU's emergency stack first. x17 is lost
// (reported as its old value is not needed: the handler only reports and stops).
.macro ARMSTOP_EMERGENCY
    mrs     x17, tpidr_el1
    ldr     x16, ={slot}
    mul     x17, x17, x16
    adrp    x16, {stacks}
    add     x16, x16, :lo12:{stacks}
    add     x17, x17, x16
    add     x17, x17, #{emergency_top}
    mov     sp, x17
.endm

.section .text.vectors, "ax"
.balign 2048
.global armstop_vectors
armstop_vectors:
.balign 0x80
    b       armstop_vec_sync
.balign 0x80
    b       armstop_vec_irq
.balign 0x80
    b       armstop_vec_fiq
.balign 0x80
    b       armstop_vec_serror
.balign 0x80
    b       armstop_vec_nested
.balign 0x80
    b       armstop_vec_irq_spx
.balign 0x80
    b       armstop_vec_nested
.balign 0x80
    b       armstop_vec_nested
.rept 8
.balign 0x80
    b       armstop_vec_lower
.endr
.balign 0x80

armstop_vec_sync:
    ARMSTOP_SAVE_AND_CALL 0
armstop_vec_irq:
    ARMSTOP_SAVE_AND_CALL 1
armstop_vec_fiq:
    ARMSTOP_SAVE_AND_CALL 2
armstop_vec_serror:
    ARMSTOP_SAVE_AND_CALL 3
armstop_vec_irq_spx:
    ARMSTOP_SAVE_AND_CALL 1
armstop_vec_nested:
    ARMSTOP_EMERGENCY
    ARMSTOP_SAVE_AND_CALL 4
armstop_vec_lower:
    ARMSTOP_SAVE_AND_CALL 5
"#,
    frame = const core::mem::size_of::<Frame>(),
    handler = sym exception_entry,
    slot = const STACK_SLOT,
    stacks = sym crate::mm::STACKS,
    emergency_top = const EMERGENCY_TOP,
);

const _: () = assert!(core::mem::size_of::<Frame>() == 272);

/// Which vector an exception came through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Vector {
    /// Synchronous exception on the thread stack (a fault, an `svc`, a `brk`).
    Sync = 0,
    /// IRQ.
    Irq = 1,
    /// FIQ (armstop routes none).
    Fiq = 2,
    /// SError.
    SError = 3,
    /// Any exception taken on the exception stack: a handler faulted, or it overflowed.
    Nested = 4,
    /// From a lower EL, where nothing runs.
    Lower = 5,
}

const VECTORS: usize = 6;

/// A handler of one kind of exception. Runs on the exception stack with IRQs masked; may
/// return (an IRQ) or not (a fault).
pub type Handler = fn(&mut Frame, Vector);

/// Each vector's handler.
// SAFETY: `Handler` is a function pointer type.
static HANDLERS: [FnSlot<Handler>; VECTORS] = [const { unsafe { FnSlot::new() } }; VECTORS];

/// Makes `handler` what `vector` calls, on every CPU. The owners register: the interrupt
/// controller's driver the IRQ, the fault service the rest. A later call replaces it.
pub fn set_handler(vector: Vector, handler: Handler) {
    HANDLERS[vector as usize].set(Some(handler));
}

extern "C" fn exception_entry(frame: &mut Frame, vector: u64) {
    let v = match vector {
        0 => Vector::Sync,
        1 => Vector::Irq,
        2 => Vector::Fiq,
        3 => Vector::SError,
        4 => Vector::Nested,
        _ => Vector::Lower,
    };
    let slot = INTERRUPTED.get(crate::cpu::id());
    let outer = slot.map(|s| s.swap(frame as *mut Frame as usize, Ordering::Relaxed));
    match HANDLERS[v as usize].get() {
        Some(handler) => {
            handler(frame, v);
            if let (Some(s), Some(o)) = (slot, outer) {
                s.store(o, Ordering::Relaxed);
            }
        }
        // Nothing to report with before the fault service registered: stop this CPU here,
        // where a debugger finds it (ELR and ESR are intact).
        None => loop {
            aarch64_cpu::asm::wfe();
        },
    }
}

/// Address of the vector table, for tests that check every CPU installed it.
pub fn vectors_address() -> u64 {
    unsafe extern "C" {
        static armstop_vectors: u8;
    }
    (&raw const armstop_vectors) as u64
}
