//! armstop's main job: boot every core, show each one's identity, exercise the SGI path between
//! every pair of cores, the stopper and CPU hotplug, then power off through PSCI.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

use armstop::board::cpu_count;
use armstop::{demo, println};

armstop::entry!(main);

fn main() -> ! {
    println!();
    println!("== armstop: {} CPUs online ==", armstop::smp::online_mask().count_ones());
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
    println!("== done: powering off through PSCI SYSTEM_OFF ==");
    armstop::power::system_off()
}
