//! The synchronisation primitives armstop's portable crates (stopper, hotplug, PSCI provider)
//! are written against: `core`'s atomics and `spin`'s mutex normally, loom's under
//! `--cfg loom`, so the loom models check the very same code. One crate, so that every layer
//! switches to loom together.
#![no_std]
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
