//! armstop firmware: boot on every core, SMP bring-up through PSCI, GIC SGIs, console, timer,
//! fault reporting and the on-target test harness.
//!
//! Layers, as in the tree, each using only those below it (checked by `tools/layers` in
//! `just test`):
//!
//! | layer | modules |
//! |---|---|
//! | 0 [`arch`], and [`board`] | entry, vectors, system registers ([`cpu`]), identity map and stacks ([`mm`]); the board data and the CPU list found at boot |
//! | 1 [`drivers`] | [`gic`], [`console`], [`time`], [`psci`], [`power`], [`gpio`], [`pm`], [`led`], [`own_psci`] |
//! | 2 [`sys`] | [`fault`], [`ipi`], [`stop`], [`hotplug`], [`call`], [`smp`] |
//! | 3 [`app`] | [`demo`], [`testing`], [`bench`], [`load`], [`shell`] (the operator's console) |
//!
//! The crate root re-exports each module under its short name (`armstop::stop`,
//! `armstop::gic`): those are the public paths. An image is a binary crate that names its main
//! function with [`entry!`], or runs its registered tests with [`test_main!`].
//!
//! Boot contract: the boot CPU enters `_start` at EL2 or EL1 with the MMU off; every other CPU
//! is started by the boot CPU through PSCI CPU_ON at `armstop_secondary_entry` with a pointer
//! to its [`arch::boot::BootArgs`] as the context id. Nothing runs with the MMU off except the
//! assembly in `arch::boot`, the page-table builder and the EL2 provider (no atomics, no locks,
//! no console there).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod app;
pub mod arch;
pub mod board;
pub mod drivers;
pub mod sys;

pub use app::{bench, demo, load, shell, testing};
pub use arch::{cpu, mm};
pub use drivers::{console, gic, gpio, led, own_psci, pm, power, psci, time};
pub use sys::{call, fault, hotplug, ipi, smp, stop};

pub use armstop_boards as boards;
pub use armstop_macros::target_test;

/// Names the function an image runs on the boot CPU once every core is up.
///
/// ```ignore
/// armstop::entry!(main);
/// fn main() -> ! { armstop::power::system_off() }
/// ```
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(no_mangle)]
        extern "Rust" fn __armstop_main() -> ! {
            let f: fn() -> ! = $main;
            f()
        }
    };
}

/// Makes this image a test image: it runs every `#[target_test]` linked into it, prints one
/// line per test and exits with status 0 only if all passed.
#[macro_export]
macro_rules! test_main {
    ($suite:expr) => {
        $crate::entry!(__armstop_test_main);
        fn __armstop_test_main() -> ! {
            $crate::testing::run($suite)
        }
    };
}
