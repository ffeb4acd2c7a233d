//! Fault test (stops the machine): a data abort on the boot CPU, with no test harness. The
//! runner (`--fault-image`) checks the report (exception class, ESR, FAR, ELR, backtrace), the
//! other CPUs' lines and the failure status.
#![no_std]
#![no_main]

armstop::entry!(main);

fn main() -> ! {
    armstop::println!("fault-test: begin cpus={}", armstop::smp::online_mask().len());
    // Beyond the board's RAM: no translation, so a translation fault.
    let p = core::hint::black_box(0x7_0000_0000u64) as *const u64;
    // SAFETY: none: this read is meant to abort.
    let v = unsafe { p.read_volatile() };
    armstop::println!("fault-test: still running after the fault ({v})");
    armstop::power::exit(0)
}
