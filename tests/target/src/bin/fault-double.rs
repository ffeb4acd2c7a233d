//! Fault test (stops the machine): two CPUs panic at the same moment. The runner
//! (`--fault-image`) checks that there is exactly one report, and that the CPU that lost shows
//! in it as "faulted too".
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicUsize, Ordering};

armstop::entry!(main);

static ARRIVED: AtomicUsize = AtomicUsize::new(0);

/// Both CPUs get here, wait for each other, and panic together. IRQs masked, so that the
/// winner's halt SGI cannot take the other CPU away before it faults too.
fn meet_and_panic(_: usize) -> usize {
    let _masked = armstop::cpu::mask_irqs();
    ARRIVED.fetch_add(1, Ordering::SeqCst);
    while ARRIVED.load(Ordering::SeqCst) < 2 {
        core::hint::spin_loop();
    }
    panic!("deliberate simultaneous panic on cpu{}", armstop::cpu::id())
}

fn main() -> ! {
    armstop::println!("fault-test: begin cpus={}", armstop::smp::online_mask().len());
    let pending = armstop::smp::post(1, meet_and_panic, 0);
    meet_and_panic(0);
    // Never reached.
    armstop::println!("fault-test: still running after the fault ({})", pending.is_ok());
    armstop::power::exit(0)
}
