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
//! | 3 [`app`] | [`demo`], [`testing`], [`bench`](mod@bench), [`load`], [`shell`] (the operator's console) |
//!
//! The crate root re-exports each module under its short name (`armstop::stop`,
//! `armstop::gic`): those are the public paths. An image is a binary crate that names its main
//! function with [`entry!`], or runs its registered tests with [`test_main!`].
//!
//! ## What a firmware of your own uses
//!
//! `templates/app` (`just new-app DIR`) uses this, and it is kept working by `just test`:
//!
//! | path | for |
//! |---|---|
//! | [`entry!`], [`test_main!`], [`target_test`] | naming the image's main, or making it a test image |
//! | [`stop`]: `STOPPERS`, `CpuSet`, `StopError`, `NowaitWork` | stop requests: `stop_one_cpu`, `stop_one_cpu_nowait`, `stop_two_cpus`, `stop_cpus`, `stop_machine` |
//! | [`call`]: `run_on`, `post` | running a plain function on another core in thread context (IRQs on) |
//! | [`smp`], [`hotplug`]: `cpu_up`, `cpu_down` | which cores are online; taking one down and up |
//! | [`testing`] | the harness: `require_cpus`, `ignore`, `figure` |
//! | [`board`]: `cpu_count`, `NR_CPUS`, `BOARD`; [`cpu`]: `id` | the machine |
//! | [`time`], [`power`]: `exit`, `system_off`; [`println!`], [`console`] | time, the end of the run, output |
//! | [`fault`]: `set_on_fault` | what a fault does to the machine (stop or reset) |
//! | [`load`] | the hotplug storm and the soak, for a firmware's own load tests |
//!
//! The rest ([`gic`], [`psci`], [`own_psci`], [`pm`], [`gpio`], [`led`], [`ipi`], [`mm`],
//! [`arch`], [`demo`], [`bench`](mod@bench), [`shell`]) is public because armstop's own images and test
//! images drive the hardware through it; it may change with the hardware support, and a
//! firmware that uses it takes that on.
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
