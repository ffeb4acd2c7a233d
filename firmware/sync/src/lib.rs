//! The synchronisation primitives armstop's portable crates (stopper, hotplug, PSCI provider)
//! are written against: `core`'s atomics and `spin`'s mutex normally, loom's under
//! `--cfg loom`, so the loom models check the very same code. One crate, so that every layer
//! switches to loom together.
//!
//! What a crate built on it writes: types whose constructors are `const` (so that they can be
//! statics on the target) and plain functions under loom ([`loom_const_fn!`]), arrays of
//! atomics ([`array_of!`]), and the atomics, [`Mutex`] and [`relax`] from here rather than from
//! `core` or `spin`.
//!
//! | here | Linux |
//! |---|---|
//! | [`Mutex`] | `raw_spinlock_t`: it spins and never sleeps (the callers mask IRQs around it) |
//! | [`relax`] | `cpu_relax` |
//! | `fence(SeqCst)` | `smp_mb` |
//! | [`FnSlot`] | a function pointer published with `smp_store_release` / `smp_load_acquire` |
//!
//! ```
//! use armstop_sync::{AtomicU64, Mutex, Ordering, array_of, loom_const_fn};
//!
//! /// Per-CPU counters, and a lock for the rest.
//! pub struct Counters<const N: usize> {
//!     per_cpu: [AtomicU64; N],
//!     log: Mutex<u32>,
//! }
//!
//! impl<const N: usize> Counters<N> {
//!     loom_const_fn! {
//!         /// All zero (a `const fn`, except under loom).
//!         pub fn new() -> Self {
//!             Self { per_cpu: array_of![AtomicU64::new(0); N], log: Mutex::new(0) }
//!         }
//!     }
//! }
//!
//! static COUNTERS: Counters<4> = Counters::new();
//! COUNTERS.per_cpu[2].fetch_add(1, Ordering::Relaxed);
//! *COUNTERS.log.lock() += 1;
//! assert_eq!(COUNTERS.per_cpu[2].load(Ordering::Relaxed), 1);
//! assert_eq!(*COUNTERS.log.try_lock().unwrap(), 1);
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

/// Spin-wait hint: `core`'s normally, a yield to loom's scheduler under loom (a model that spins
/// without yielding never ends).
#[inline]
pub fn relax() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    core::hint::spin_loop();
}

#[cfg(loom)]
pub use loom::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, fence};

#[cfg(not(loom))]
pub use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicUsize, fence};

pub use core::sync::atomic::Ordering;

/// A mutex: `spin::Mutex` on the target and host, loom's under loom.
pub struct Mutex<T> {
    #[cfg(not(loom))]
    inner: spin::Mutex<T>,
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
}

/// The guard [`Mutex::lock`] returns.
#[cfg(not(loom))]
pub type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;
/// The guard [`Mutex::lock`] returns.
#[cfg(loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A mutex holding `v`.
    #[cfg(not(loom))]
    pub const fn new(v: T) -> Self {
        Self { inner: spin::Mutex::new(v) }
    }

    /// A mutex holding `v`.
    #[cfg(loom)]
    pub fn new(v: T) -> Self {
        Self { inner: loom::sync::Mutex::new(v) }
    }

    /// Spins until the lock is free.
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(not(loom))]
        return self.inner.lock();
        #[cfg(loom)]
        return self.inner.lock().expect("loom mutex poisoned");
    }

    /// Takes the lock if it is free.
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(not(loom))]
        return self.inner.try_lock();
        #[cfg(loom)]
        return self.inner.try_lock().ok();
    }
}

/// Defines a constructor once: a `const fn` normally (so stoppers can be statics), a plain `fn`
/// under loom, whose atomics and mutexes have no `const` constructors.
#[macro_export]
macro_rules! loom_const_fn {
    ($(#[$attr:meta])* $vis:vis fn $($rest:tt)*) => {
        $(#[$attr])* #[cfg(not(loom))] $vis const fn $($rest)*
        $(#[$attr])* #[cfg(loom)] $vis fn $($rest)*
    };
}

/// `[value; N]` for a value that is not `Copy` (an atomic): an inline-`const` repeat normally,
/// built element by element under loom (see [`loom_const_fn!`]).
#[macro_export]
macro_rules! array_of {
    ($value:expr; $n:expr) => {{
        #[cfg(not(loom))]
        let a = [const { $value }; $n];
        #[cfg(loom)]
        let a = core::array::from_fn(|_| $value);
        a
    }};
}

/// A function pointer that any CPU may set and read at any time: a handler or hook registered
/// by its owner (an interrupt's handler, the fault hook), read where the event is taken.
///
/// Invariant: the slot holds 0 (nothing set) or the address of a function of type `F`, so
/// [`FnSlot::get`] gives back exactly what [`FnSlot::set`] stored. Always `core`'s atomics,
/// also under loom: the slots belong to the target firmware, never to a model.
pub struct FnSlot<F> {
    addr: core::sync::atomic::AtomicUsize,
    _f: core::marker::PhantomData<F>,
}

impl<F: Copy> FnSlot<F> {
    /// An empty slot.
    ///
    /// # Safety
    /// `F` must be a function pointer type (`fn(..) -> ..`, any signature): the slot keeps its
    /// value as an address.
    pub const unsafe fn new() -> Self {
        assert!(core::mem::size_of::<F>() == core::mem::size_of::<usize>());
        Self { addr: core::sync::atomic::AtomicUsize::new(0), _f: core::marker::PhantomData }
    }

    /// Stores `f` (`None` empties the slot). Release: what was written before is visible to
    /// whoever [`FnSlot::get`]s it.
    pub fn set(&self, f: Option<F>) {
        // SAFETY: `F` is a function pointer type (`new`'s contract), the size of a `usize`.
        let addr = f.map_or(0, |f| unsafe { core::mem::transmute_copy::<F, usize>(&f) });
        self.addr.store(addr, Ordering::Release);
    }

    /// What was last stored, if anything.
    pub fn get(&self) -> Option<F> {
        match self.addr.load(Ordering::Acquire) {
            0 => None,
            // SAFETY: a non-zero value was stored by `set` from an `F` (the type's invariant),
            // and a function pointer is never 0.
            addr => Some(unsafe { core::mem::transmute_copy::<usize, F>(&addr) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FnSlot;

    fn double(x: usize) -> usize {
        2 * x
    }

    fn square(x: usize) -> usize {
        x * x
    }

    #[test]
    fn a_slot_gives_back_what_was_set() {
        // SAFETY: a function pointer type.
        let s: FnSlot<fn(usize) -> usize> = unsafe { FnSlot::new() };
        assert!(s.get().is_none());
        s.set(Some(double));
        assert_eq!(s.get().map(|f| f(21)), Some(42));
        s.set(Some(square));
        assert_eq!(s.get().map(|f| f(5)), Some(25), "a later set replaces it");
        s.set(None);
        assert!(s.get().is_none());
        // SAFETY: a function pointer type, with a reference argument of any lifetime.
        let h: FnSlot<fn(&str) -> usize> = unsafe { FnSlot::new() };
        h.set(Some(str::len));
        assert_eq!(h.get().map(|f| f("four")), Some(4));
    }
}
