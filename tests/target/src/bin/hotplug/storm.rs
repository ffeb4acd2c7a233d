//! The seed's guarantee under fire, through the load engine (`armstop::load`): thousands of
//! random cpu_down/cpu_up cycles while the other secondary cores hammer the moving target with
//! every request kind. Every request is accounted for: an accepted work ran exactly once, on
//! its target, before the target was off; a refused one never ran; nothing hangs (the stopper
//! watchdog names a stuck CPU, the runner's timeout ends the run); the park-with-works counter
//! stays 0. And the engine on every machine size: on 1 and 2 CPUs it says what it leaves out
//! and still ends, with every request accounted for.

use armstop::load::{self, Kind, Length, Totals};
use armstop::target_test;
use armstop::testing::{figure, require_all_cpus, require_cpus};

use crate::fresh;

/// Random down/up cycles (the issue asks for at least 2,000). Not scaled down with the CPU
/// count, though a cycle costs about n^2 on n CPUs (n - 2 CPUs hammer, and the stop_machine
/// of each cpu_down, like each hammering stop_machine, waits for every CPU): under QEMU on a
/// 2-CPU host shared with other builds the storm took 18-31 s on 4 CPUs (the storm before the
/// load engine, without `stop_cpus`, 35-39 s back to back with it) and 42 s on 8. The hotplug image is not run
/// on bigger machines; one that is would need this bounded.
const CYCLES: u32 = 2000;

/// Ends anything an earlier, failed test left running here.
pub fn open_gates() {
    load::abandon();
}

/// The totals as the test's figures, which the runner prints under its result.
fn figures(t: &Totals) {
    load::for_each_line(t, &mut |l| figure(format_args!("{l}")));
}

#[target_test]
fn hotplug_storm_every_request_is_accounted_for() {
    fresh();
    // A controller (cpu0), a target and at least one hammering CPU.
    require_cpus(3);
    let t = load::storm(Length::Cycles(CYCLES), &mut |p| load::print(p));
    figures(&t);
    assert_eq!(t.errors, 0, "{}", t.first_error.as_str());
    assert_eq!(t.wrong, 0, "a work ran off its CPU, after its CPU died, twice, or not at all");
    assert_eq!((t.cycles, t.downs, t.ups), (CYCLES.into(), CYCLES.into(), CYCLES.into()));
    for k in load::KINDS {
        let c = t.kind(k);
        assert_eq!(c.lost, 0, "{}: accepted requests that never ran", k.name());
        assert_eq!(c.run, c.accepted, "{}: every accepted request ran exactly once", k.name());
        assert!(c.accepted > 0, "{}: never accepted", k.name());
    }
    // Every kind that can name the moving target alone was refused while it was down.
    for k in [Kind::One, Kind::Nowait, Kind::Two, Kind::Cpus] {
        assert!(t.kind(k).refused > 0, "{}: the storm never hit a down CPU", k.name());
    }
    assert!(t.kind(Kind::Machine).target_runs > 0, "stop_machine never ran on the target");
    assert_eq!(t.bad_refusals, 0, "a request was refused though every CPU it named was online");
    assert_eq!(t.park_with_works, 0);
    assert_eq!(t.bad_transitions, 0);
    assert!(t.ok());
}

/// The engine on any CPU count: a short storm and a short soak end, account for every request
/// and say what the machine's size leaves out (nothing from 3 CPUs up).
#[target_test]
fn load_engine_fits_every_cpu_count() {
    fresh();
    require_all_cpus();
    let n = armstop::board::cpu_count();
    let storm = load::storm(Length::Cycles(20), &mut |p| load::print(p));
    let soak = load::soak(2, &mut |p| load::print(p));
    figures(&storm);
    figures(&soak);
    for t in [&storm, &soak] {
        assert!(
            t.ok(),
            "{}: lost {}, wrong {}, bad refusals {}, park-with-works {}, bad transitions {}, \
             errors {} {}",
            t.what,
            t.lost(),
            t.wrong,
            t.bad_refusals,
            t.park_with_works,
            t.bad_transitions,
            t.errors,
            t.first_error.as_str()
        );
        assert_eq!(t.note.is_some(), n < 3, "{}: note {:?} on {n} CPUs", t.what, t.note);
    }
    assert_eq!(storm.cycles, if n == 1 { 0 } else { 20 });
    assert!(soak.senders.contains(0), "the boot CPU made no request in the soak");
    assert!(soak.accepted() > 0);
    for k in load::KINDS {
        // stop_two_cpus needs two CPUs.
        if k != Kind::Two || n >= 2 {
            assert!(soak.kind(k).accepted > 0, "soak: no {} accepted", k.name());
        }
    }
    if n >= 3 {
        assert_eq!(soak.senders, armstop::board::all_cpus(), "a CPU made no request in the soak");
    }
}
