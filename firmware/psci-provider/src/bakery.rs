//! Lamport's bakery lock: mutual exclusion from plain loads and stores.
//!
//! The PSCI provider runs at EL2 with the MMU off, where every data access is Device-nGnRnE
//! and load/store-exclusive (so `spin`'s locks, and every read-modify-write atomic on an
//! ARMv8.0 core such as the Pi 4's Cortex-A72) is not architecturally reliable: there may be
//! no global exclusive monitor for non-cacheable memory. The bakery lock needs none: each CPU
//! writes only its own `choosing` and `number` slots and reads the others', and the
//! sequentially consistent loads and stores (`ldar`/`stlr`, which are valid on Device memory)
//! order those accesses.
//!
//! Invariant: at most one CPU is between [`Bakery::lock`] and [`Bakery::unlock`]; CPUs enter
//! in ticket order (ties broken by the lower CPU index), so none starves.
//!
//! Tickets grow only while the lock is contended without a break; a CPU takes `max + 1`, and
//! the counter returns to 0 whenever nobody holds or waits for the lock. A `u32` cannot wrap
//! in any run this firmware can have (it would need four billion back-to-back acquisitions
//! with the lock never idle).

use armstop_sync::{AtomicU32, Ordering::SeqCst, fence, relax};

/// A bakery lock for `N` CPUs, indexed `0..N`.
pub struct Bakery<const N: usize> {
    choosing: [AtomicU32; N],
    number: [AtomicU32; N],
}

impl<const N: usize> Bakery<N> {
    armstop_sync::loom_const_fn! {
        /// An unlocked lock.
        pub fn new() -> Self {
            Self {
                choosing: armstop_sync::array_of!(AtomicU32::new(0); N),
                number: armstop_sync::array_of!(AtomicU32::new(0); N),
            }
        }
    }

    /// Waits until CPU `me` holds the lock. Must not be called by a CPU that holds it already.
    pub fn lock(&self, me: usize) {
        // The algorithm needs every CPU's stores and loads in one total order. `SeqCst`
        // accesses give that on AArch64 (`stlr` then `ldar` are ordered), but the fences make
        // it explicit at the two store→load points, which is also what loom (which models
        // `SeqCst` accesses as acquire/release only) needs to check it.
        self.choosing[me].store(1, SeqCst);
        fence(SeqCst);
        let max = self.number.iter().map(|n| n.load(SeqCst)).max().unwrap_or(0);
        let ticket = max + 1;
        self.number[me].store(ticket, SeqCst);
        self.choosing[me].store(0, SeqCst);
        fence(SeqCst);
        for other in (0..N).filter(|&j| j != me) {
            // Wait until `other` has finished choosing, so its ticket is final...
            while self.choosing[other].load(SeqCst) != 0 {
                relax();
            }
            // ...then until it holds no ticket, or a later one (ties: lower index first).
            loop {
                let theirs = self.number[other].load(SeqCst);
                if theirs == 0 || (theirs, other) > (ticket, me) {
                    break;
                }
                relax();
            }
        }
    }

    /// Releases the lock CPU `me` holds.
    pub fn unlock(&self, me: usize) {
        self.number[me].store(0, SeqCst);
    }

    /// Runs `f` with the lock held by CPU `me`.
    pub fn with<R>(&self, me: usize, f: impl FnOnce() -> R) -> R {
        self.lock(me);
        let r = f();
        self.unlock(me);
        r
    }
}

#[cfg(not(loom))]
impl<const N: usize> Default for Bakery<N> {
    fn default() -> Self {
        Self::new()
    }
}
