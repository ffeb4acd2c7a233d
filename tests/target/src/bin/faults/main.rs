//! armstop's on-target fault suite: stop requests that the watchdog fails. Each test makes a
//! callback that never returns on purpose, checks that the caller gets `Err(TimedOut)`, that the
//! stuck CPU is halted (shown `HALTED` in its `cpus` line, excluded from later requests), and
//! that the CPUs left still serve requests. Every halt costs the machine a CPU for good, so the
//! tests run in this order, on machines of 4 CPUs or more, and none of them brings CPUs back.
#![no_std]
#![no_main]

armstop::test_main!("faults");

mod watchdog;
