//! The platform the loom models run on (only under `--cfg loom`), shared by every crate that
//! models code layered on the stopper.
//!
//! Each modelled CPU is a loom thread that says which CPU it is with [`set_cpu`]. A kick wakes
//! nothing (each thread runs its own stopper), `relax` yields to loom's scheduler, time stands
//! still (the watchdog never fires), and a report fails the model: in a model, anything the
//! stopper would print is a bug.

extern crate std;

use core::fmt;

use crate::Platform;

loom::thread_local! {
    static CPU: core::cell::Cell<usize> = core::cell::Cell::new(usize::MAX);
}

/// Makes the calling loom thread modelled CPU `cpu`.
pub fn set_cpu(cpu: usize) {
    CPU.with(|c| c.set(cpu));
}

/// The loom platform (see the module docs).
pub struct LoomPlatform;

impl Platform for LoomPlatform {
    fn cpu_id(&self) -> usize {
        CPU.with(|c| c.get())
    }
    fn kick(&self, _: usize) {}
    fn irq_save(&self) -> usize {
        0
    }
    fn irq_restore(&self, _: usize) {}
    fn relax(&self) {
        loom::thread::yield_now();
    }
    fn now_ns(&self) -> u64 {
        0
    }
    fn report(&self, args: fmt::Arguments<'_>) {
        panic!("reported: {args}");
    }
}
