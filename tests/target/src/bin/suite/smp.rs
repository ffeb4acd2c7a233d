//! Cross-CPU calls and memory ordering between CPUs with the MMU and caches on.

use core::sync::atomic::{AtomicU64, Ordering};

use armstop::board::cpu_count;
use armstop::smp::{self, CallError};
use armstop::target_test;
use armstop::testing::{require_all_cpus, require_cpus};

fn times_ten_plus_cpu(arg: usize) -> usize {
    arg * 10 + armstop::cpu::id()
}

#[target_test]
fn run_on_returns_each_cpus_result() {
    for cpu in 0..cpu_count() {
        assert_eq!(smp::run_on(cpu, times_ten_plus_cpu, 7), Ok(70 + cpu));
    }
}

#[target_test]
fn run_on_refuses_bad_targets() {
    require_all_cpus();
    // The machine's last id is taken, the next one refused.
    let last = cpu_count() - 1;
    assert_eq!(smp::run_on(last, times_ten_plus_cpu, 0), Ok(last), "cpu{last}");
    assert_eq!(smp::run_on(cpu_count(), times_ten_plus_cpu, 0), Err(CallError::InvalidCpu));
    assert_eq!(smp::run_on(usize::MAX, times_ten_plus_cpu, 0), Err(CallError::InvalidCpu));
}

#[target_test]
fn run_everywhere_runs_once_per_online_cpu() {
    require_all_cpus();
    let r = smp::run_everywhere(times_ten_plus_cpu, 1);
    for (cpu, v) in r.iter().enumerate() {
        if cpu < cpu_count() {
            assert_eq!(*v, Some(Ok(10 + cpu)), "cpu{cpu}");
        } else {
            assert_eq!(*v, None);
        }
    }
}

const ROUNDS: u64 = 20_000;
static LOCKED: spin::Mutex<u64> = spin::Mutex::new(0);
static ATOMIC: AtomicU64 = AtomicU64::new(0);

fn hammer(_: usize) -> usize {
    for _ in 0..ROUNDS {
        *LOCKED.lock() += 1;
        ATOMIC.fetch_add(1, Ordering::Relaxed);
    }
    0
}

#[target_test]
fn spinlock_and_atomic_counts_are_exact_under_contention() {
    require_cpus(2);
    *LOCKED.lock() = 0;
    ATOMIC.store(0, Ordering::Relaxed);
    for r in smp::run_everywhere(hammer, 0).into_iter().flatten() {
        r.expect("call");
    }
    let n = cpu_count() as u64 * ROUNDS;
    assert_eq!(*LOCKED.lock(), n, "lost updates under the spinlock");
    assert_eq!(ATOMIC.load(Ordering::Relaxed), n, "lost atomic increments");
}

/// The message: four words (not one per CPU), written before the flag.
static MESSAGE: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static FLAG: AtomicU64 = AtomicU64::new(0);
static ACK: AtomicU64 = AtomicU64::new(0);

fn consume(rounds: usize) -> usize {
    let mut bad = 0;
    for round in 1..=rounds as u64 {
        while FLAG.load(Ordering::Acquire) < round {
            core::hint::spin_loop();
        }
        if MESSAGE.iter().any(|w| w.load(Ordering::Relaxed) != round) {
            bad += 1;
        }
        ACK.store(round, Ordering::Release);
    }
    bad
}

#[target_test]
fn release_acquire_publishes_data_between_cpus() {
    require_cpus(2);
    const N: usize = 2_000;
    FLAG.store(0, Ordering::Relaxed);
    ACK.store(0, Ordering::Relaxed);
    let pending = smp::post(cpu_count() - 1, consume, N).expect("post");
    for round in 1..=N as u64 {
        for w in &MESSAGE {
            w.store(round, Ordering::Relaxed);
        }
        FLAG.store(round, Ordering::Release);
        while ACK.load(Ordering::Acquire) != round {
            core::hint::spin_loop();
        }
    }
    assert_eq!(pending.wait(), Ok(0), "the consumer saw the flag before the data");
}
