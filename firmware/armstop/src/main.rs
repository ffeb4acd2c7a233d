//! armstop's main job: boot every core, show each one's identity, exercise the SGI path between
//! every pair of cores, the stopper and CPU hotplug, then hand the UART to the operator's
//! console (`help` there; `poweroff` ends the run, with a non-zero status if any check of the
//! report failed).
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use armstop::board::cpu_count;
use armstop::{demo, println};

armstop::entry!(main);

fn main() -> ! {
    println!();
    let online = armstop::smp::online_mask();
    println!("== armstop: {} of {} CPUs online ({online}) ==", online.len(), cpu_count());
    for cpu in 0..cpu_count() {
        println!(
            "  cpu{cpu}: {:?}, MPIDR {:#x}, entered at EL{}",
            armstop::smp::state(cpu),
            armstop::smp::seen_mpidr(cpu).unwrap_or(u64::MAX),
            armstop::smp::boot_el(cpu)
        );
    }
    demo::sgi_matrix();
    demo::ping_pong();
    demo::stopper();
    demo::hotplug();
    match demo::failures() {
        0 => println!("== done: every check passed =="),
        n => println!("== done: {n} checks FAILED =="),
    }
    armstop::shell::run()
}
