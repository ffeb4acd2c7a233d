//! The platform the loom models run on (only under `--cfg loom`), shared by every crate that
//! models code layered on the stopper.
//!
//! Each modelled CPU is a loom thread that says which CPU it is with [`set_cpu`]. `relax` yields
//! to loom's scheduler, time stands still (the watchdog never fires), and a report fails the
//! model: in a model, anything the stopper would print is a bug.
//!
//! Sleeping is modelled as the target does it, with loom's park tokens for the pending SGI: a
//! wake or a kick unparks the CPU's thread (a token left before the park ends it at once, as a
//! pending SGI ends `wfi`), and a sleep with no deadline parks until then. There is no clearing
//! a token, so a stale one makes a sleep return early, which the stopper must tolerate anyway.
//! A sleep that nobody ends leaves its thread blocked for good, which loom reports as a
//! deadlock: that is how a lost wake-up fails a model. A sleep with a deadline only yields,
//! since time stands still.

extern crate std;

use core::fmt;

use crate::Platform;

loom::thread_local! {
    static CPU: core::cell::Cell<usize> = core::cell::Cell::new(usize::MAX);
}

/// CPUs a model may have.
const MAX_MODELLED: usize = 8;

loom::lazy_static! {
    /// Each modelled CPU's thread, for wakes and kicks. Loom runs one thread at a time, so a
    /// plain mutex serves (it is not part of what is modelled).
    static ref THREADS: std::sync::Mutex<[Option<loom::thread::Thread>; MAX_MODELLED]> =
        std::sync::Mutex::new([const { None }; MAX_MODELLED]);
}

/// Makes the calling loom thread modelled CPU `cpu` (the one its wakes and kicks reach).
pub fn set_cpu(cpu: usize) {
    CPU.with(|c| c.set(cpu));
    THREADS.lock().unwrap()[cpu] = Some(loom::thread::current());
}

fn unpark(cpu: usize) {
    if let Some(t) = &THREADS.lock().unwrap()[cpu] {
        t.unpark();
    }
}

/// The loom platform (see the module docs).
pub struct LoomPlatform;

impl Platform for LoomPlatform {
    fn cpu_id(&self) -> usize {
        CPU.with(|c| c.get())
    }
    fn kick(&self, cpu: usize) {
        unpark(cpu);
    }
    fn irq_save(&self) -> usize {
        0
    }
    fn irq_restore(&self, _: usize) {}
    fn relax(&self) {
        loom::thread::yield_now();
    }
    fn wake(&self, cpus: crate::CpuSet) {
        for cpu in cpus.iter().filter(|&c| c < MAX_MODELLED) {
            unpark(cpu);
        }
    }
    fn sleep(&self, deadline_ns: u64) {
        if deadline_ns == u64::MAX {
            loom::thread::park();
        } else {
            loom::thread::yield_now();
        }
    }
    fn now_ns(&self) -> u64 {
        0
    }
    fn report(&self, args: fmt::Arguments<'_>) {
        panic!("reported: {args}");
    }
}

/// Stoppers on the loom platform, all disabled, whose waits sleep at once: with time standing
/// still, a spin budget never runs out, so the sleep path is only modelled with a budget of 0.
/// `ARMSTOP_SPIN_NS=spin` in the environment models the spin-only waits instead.
pub fn stoppers<const N: usize>() -> crate::Stoppers<LoomPlatform, N> {
    let s = crate::Stoppers::new(LoomPlatform);
    let spin = std::env::var("ARMSTOP_SPIN_NS").is_ok_and(|v| v == "spin");
    s.set_spin_ns(if spin { crate::SPIN_ONLY } else { 0 });
    s
}
