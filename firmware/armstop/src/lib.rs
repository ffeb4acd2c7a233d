//! armstop firmware: boot on every core, SMP bring-up through PSCI, GIC SGIs, console, timer,
//! fault reporting and the on-target test harness.
//!
//! Layers, as in the tree: board data comes from `armstop-boards` (never branched on by name);
//! hardware drivers sit behind small types here (`gic`, `console`, `psci`, `time`); the boot and
//! exception code for AArch64 is in `arch`. An image is a binary crate that names its main
//! function with [`entry!`], or runs its registered tests with [`test_main!`].
//!
//! Boot contract: the boot CPU enters `_start` at EL2 or EL1 with the MMU off; every other CPU
//! is started by the boot CPU through PSCI CPU_ON at `armstop_secondary_entry` with a pointer
//! to its [`smp::BootArgs`] as the context id. Nothing runs with the MMU off except the assembly
//! in `arch::boot` and the page-table builder (no atomics, no locks, no console there).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod arch;
pub mod bench;
pub mod board;
pub mod console;
pub mod cpu;
pub mod demo;
pub mod fault;
pub mod gic;
pub mod gpio;
pub mod hotplug;
pub mod ipi;
pub mod led;
pub mod mm;
pub mod own_psci;
pub mod pm;
pub mod power;
pub mod psci;
pub mod smp;
pub mod stop;
pub mod testing;
pub mod time;

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
