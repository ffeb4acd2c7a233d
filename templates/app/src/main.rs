//! The main image of a firmware built on armstop: every core is up (armstop brought them up
//! through PSCI CPU_ON) when `main` runs on the boot core. It stops the machine to run a
//! callback of its own on every core, then one core at a time, prints what it saw and ends
//! with status 0 if all of it was right.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicUsize, Ordering};

use armstop::println;
use armstop::stop::{CpuSet, STOPPERS};

armstop::entry!(main);

/// The cores that ran the stop_machine callback, one bit each.
static SEEN: AtomicUsize = AtomicUsize::new(0);

/// A stopper callback: runs on a stopped core with IRQs masked, so it must be short and must
/// not wait for another core.
fn note_this_core() -> i32 {
    SEEN.fetch_or(1 << armstop::cpu::id(), Ordering::Relaxed);
    0
}

fn main() -> ! {
    let n = armstop::board::cpu_count();
    println!("my-firmware: {n} cores online");
    let all = CpuSet::first_n(n);
    let mut ok = STOPPERS.stop_machine(note_this_core, Some(all)) == Ok(0);
    let seen = SEEN.load(Ordering::Relaxed);
    println!("my-firmware: stop_machine ran my callback on cores {seen:#b}");
    ok &= seen == (1 << n) - 1;
    for cpu in 0..n {
        let r = STOPPERS.stop_one_cpu(cpu, || armstop::cpu::id() as i32);
        println!("my-firmware: stop_one_cpu({cpu}) -> {r:?}");
        ok &= r == Ok(cpu as i32);
    }
    println!("my-firmware: {}", if ok { "all done" } else { "FAILED" });
    armstop::power::exit(if ok { 0 } else { 1 })
}
