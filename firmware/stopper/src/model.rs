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

/// The watchdog's hand-over with a CPU inside a request's callback (`Stoppers::claim_stuck`
/// against the exit of `Stoppers::call_user`), for the loom test `claim_vs_callback_return`:
/// cpu1 enters a callback that returns at once and then goes back into the request's memory;
/// cpu0, the requester whose watchdog ran out, tries to claim it. Whenever the claim succeeds,
/// cpu1 must be inside the callback and stay there until given back (on the target it would
/// be halted there). Returns whether the claim succeeded; both outcomes are legal.
pub fn claim_vs_callback_return() -> bool {
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, Ordering};
    // Only compared, never dereferenced: stands for the requester's work.
    const WORK: usize = 0x1000;
    let s: Arc<crate::Stoppers<LoomPlatform, 2>> = Arc::new(stoppers());
    let back = Arc::new(AtomicBool::new(false));
    let (s1, back1) = (s.clone(), back.clone());
    let cpu1 = loom::thread::spawn(move || {
        set_cpu(1);
        let st = &s1.cpus[1];
        // As `run_works` does when it pops the work, before the callback.
        st.current.store(WORK, Ordering::Relaxed);
        s1.call_user(st, &|| 0);
        back1.store(true, Ordering::SeqCst);
        st.current.store(0, Ordering::Release);
    });
    set_cpu(0);
    let claimed = s.claim_stuck(1, WORK as *const crate::Work<'static>);
    if claimed {
        for _ in 0..2 {
            assert!(!back.load(Ordering::SeqCst), "a claimed CPU left the callback");
            loom::thread::yield_now();
        }
        s.unclaim(1);
    }
    cpu1.join().unwrap();
    claimed
}
