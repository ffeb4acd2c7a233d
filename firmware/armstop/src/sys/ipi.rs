//! Inter-processor messages carried by one SGI ([`SGI_IPI`]).
//!
//! A sender sets its message bit in the receiver's per-sender mailbox word, then sends the
//! SGI; the receiver's handler swaps each word to zero and acts on every bit. Invariant: a
//! message set before the SGI is sent is seen by the handler that SGI (or an earlier one)
//! runs, because the store is released before the GIC write (`gic::send_sgi` issues
//! `dsb ishst`) and the swap acquires; SGIs that coalesce lose no message, only a wake-up.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use armstop_stopper::CpuSet;

use crate::board::NR_CPUS;

use crate::gic::{self, GicError, SgiEnd, SgiTarget};

/// The SGI that carries these messages.
pub const SGI_IPI: u8 = 0;

/// A message kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Message {
    /// Asks the receiver to answer with [`Message::Pong`].
    Ping = 0,
    /// The answer to a ping.
    Pong = 1,
    /// Wakes the receiver's idle loop to look for posted work.
    Wake = 2,
}

const KINDS: usize = 3;

/// `[receiver][sender]` pending message bits.
static PENDING: [[AtomicU32; NR_CPUS]; NR_CPUS] =
    [const { [const { AtomicU32::new(0) }; NR_CPUS] }; NR_CPUS];
/// `[sender][receiver][kind]` messages handled.
static HANDLED: [[[AtomicU64; KINDS]; NR_CPUS]; NR_CPUS] =
    [const { [const { [const { AtomicU64::new(0) }; KINDS] }; NR_CPUS] }; NR_CPUS];
/// SGIs that found no message (coalesced or already handled): harmless, counted.
static EMPTY: [AtomicU64; NR_CPUS] = [const { AtomicU64::new(0) }; NR_CPUS];

/// Sends `msg` to `cpu`.
pub fn send(cpu: usize, msg: Message) -> Result<(), GicError> {
    if cpu >= crate::board::cpu_count() {
        return Err(GicError::BadTarget);
    }
    PENDING[cpu][crate::cpu::id()].fetch_or(1 << msg as u32, Ordering::Release);
    gic::send_sgi(SGI_IPI, SgiTarget::Cpu(cpu))
}

/// Sends `msg` to every CPU of `cpus` with one SGI.
pub fn send_set(cpus: CpuSet, msg: Message) -> Result<(), GicError> {
    if !cpus.is_subset(&crate::board::all_cpus()) {
        return Err(GicError::BadTarget);
    }
    let me = crate::cpu::id();
    for cpu in cpus {
        PENDING[cpu][me].fetch_or(1 << msg as u32, Ordering::Release);
    }
    gic::send_sgi(SGI_IPI, SgiTarget::Set(cpus))
}

/// Makes [`handle`] the handler of [`SGI_IPI`]. Once, at boot, after the GIC is up.
pub fn init() -> Result<(), GicError> {
    gic::set_sgi_handler(SGI_IPI, handle, SgiEnd::After)
}

/// Handles this CPU's messages; the handler of [`SGI_IPI`].
pub fn handle() {
    let me = crate::cpu::id();
    let mut any = false;
    for src in 0..crate::board::cpu_count() {
        let bits = PENDING[me][src].swap(0, Ordering::Acquire);
        if bits == 0 {
            continue;
        }
        any = true;
        for kind in 0..KINDS {
            if bits & (1 << kind) == 0 {
                continue;
            }
            if kind == Message::Ping as usize {
                // A failed reply can only mean a bad target, which `src` is not.
                let _ = send(src, Message::Pong);
            }
            HANDLED[src][me][kind].fetch_add(1, Ordering::Release);
        }
    }
    if !any {
        EMPTY[me].fetch_add(1, Ordering::Relaxed);
    }
}

/// How many `msg`s from `from` that `to` has handled.
pub fn handled(from: usize, to: usize, msg: Message) -> u64 {
    HANDLED[from][to][msg as usize].load(Ordering::Acquire)
}

/// SGIs on `cpu` that found no message.
pub fn empty_wakeups(cpu: usize) -> u64 {
    EMPTY[cpu].load(Ordering::Relaxed)
}
