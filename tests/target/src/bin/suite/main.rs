//! armstop's on-target suite: boot, memory map, timer, GIC and SGIs, PSCI, console and
//! cross-CPU calls, on every machine of the runner's matrix.
#![no_std]
#![no_main]

armstop::test_main!("suite");

mod board_io;
mod boot;
mod console;
mod gic;
mod hits;
mod mm;
mod own_psci;
mod psci;
mod smp;
mod stopper;
mod time;
mod waits;
