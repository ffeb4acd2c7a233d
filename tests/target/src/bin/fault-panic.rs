//! Fault test (stops the machine): a panic on a secondary CPU, with no test harness to take it
//! over. The runner (`--fault-image`) checks for one report with a backtrace, one line for each
//! other CPU saying where it stopped, and a failure status; nothing may run after it.
#![no_std]
#![no_main]

armstop::entry!(main);

fn boom(_: usize) -> usize {
    panic!("deliberate panic on a secondary CPU")
}

fn main() -> ! {
    armstop::println!("fault-test: begin cpus={}", armstop::smp::online_mask().len());
    let r = armstop::smp::run_on(1, boom, 0);
    // Never reached: the panic halts this CPU too.
    armstop::println!("fault-test: still running after the fault ({r:?})");
    armstop::power::exit(0)
}
