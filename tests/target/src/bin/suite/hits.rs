//! Where callbacks ran: one counter per CPU, for any number of CPUs (a `u64` with a byte per
//! CPU holds 8 at most).

use core::sync::atomic::{AtomicU64, Ordering};

use armstop::board::{NR_CPUS, cpu_count};

/// Runs counted per CPU.
pub struct Hits([AtomicU64; NR_CPUS]);

impl Hits {
    /// No runs anywhere.
    pub const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; NR_CPUS])
    }

    /// Counts one run on the calling CPU.
    pub fn hit(&self) {
        self.0[armstop::cpu::id()].fetch_add(1, Ordering::SeqCst);
    }

    /// Runs on `cpu` so far.
    pub fn on(&self, cpu: usize) -> u64 {
        self.0[cpu].load(Ordering::SeqCst)
    }

    /// Back to no runs.
    pub fn clear(&self) {
        for c in &self.0 {
            c.store(0, Ordering::SeqCst);
        }
    }

    /// Asserts that every CPU of the machine ran `want(cpu)` times (naming the first that did
    /// not) and that no id past the machine's CPUs ran anything.
    #[track_caller]
    pub fn assert_each(&self, want: impl Fn(usize) -> u64, what: &str) {
        for cpu in 0..cpu_count() {
            assert_eq!(self.on(cpu), want(cpu), "{what}: runs on cpu{cpu}");
        }
        for cpu in cpu_count()..NR_CPUS {
            assert_eq!(self.on(cpu), 0, "{what}: runs on cpu{cpu}, which this machine lacks");
        }
    }
}
