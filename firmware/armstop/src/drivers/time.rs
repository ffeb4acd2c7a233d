//! Monotonic time from the Arm generic timer, and an `embedded-hal` delay on it.
//!
//! The counter frequency is read from `CNTFRQ_EL0` (firmware programs it: 62.5 MHz on QEMU,
//! 54 MHz on a Pi 4), never assumed. The physical counter is used; at EL2 entry the boot code
//! grants EL1 access to it (`CNTHCTL_EL2.EL1PCTEN`).

use core::ops::{Add, Sub};
use core::time::Duration;

use aarch64_cpu::registers::{CNTFRQ_EL0, CNTPCT_EL0, Readable};

/// Per-CPU set-up, on every (re)start and before CPU_OFF: both EL1 timers disabled with their
/// interrupts masked, so a timer left running by earlier code cannot fire into armstop.
pub fn init_cpu() {
    use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTV_CTL_EL0, Writeable};
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::CLEAR + CNTP_CTL_EL0::IMASK::SET);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::CLEAR + CNTV_CTL_EL0::IMASK::SET);
}

/// Counter frequency in Hz.
pub fn frequency() -> u64 {
    CNTFRQ_EL0.get()
}

/// Raw counter value; the `isb` keeps the read from being hoisted before earlier code.
pub fn ticks() -> u64 {
    aarch64_cpu::asm::barrier::isb(aarch64_cpu::asm::barrier::SY);
    CNTPCT_EL0.get()
}

/// A point on the generic timer's count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Instant(u64);

impl Instant {
    /// Now.
    pub fn now() -> Self {
        Self(ticks())
    }

    /// Time since the counter started (about: since power-on).
    pub fn since_boot(self) -> Duration {
        ticks_to_duration(self.0)
    }

    /// Time elapsed since `self`.
    pub fn elapsed(self) -> Duration {
        Self::now() - self
    }

    /// The instant `d` after the counter started ([`Instant::since_boot`]'s inverse, rounded
    /// up to a tick).
    pub fn from_boot(d: Duration) -> Self {
        Self(duration_to_ticks(d))
    }

    /// Raw ticks.
    pub fn ticks(self) -> u64 {
        self.0
    }

    /// The instant a raw tick count (from [`Instant::ticks`] or [`ticks`]) stands for.
    pub const fn from_ticks(ticks: u64) -> Self {
        Self(ticks)
    }
}

fn ticks_to_duration(t: u64) -> Duration {
    let f = frequency().max(1);
    let secs = t / f;
    let nanos = ((t % f) as u128 * 1_000_000_000 / f as u128) as u32;
    Duration::new(secs, nanos)
}

fn duration_to_ticks(d: Duration) -> u64 {
    (d.as_nanos() * frequency() as u128).div_ceil(1_000_000_000) as u64
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        Instant(self.0.saturating_add(duration_to_ticks(d)))
    }
}

impl Sub for Instant {
    type Output = Duration;
    fn sub(self, earlier: Instant) -> Duration {
        ticks_to_duration(self.0.saturating_sub(earlier.0))
    }
}

/// Busy-waits on the counter; waits at least the requested time, rounded up to a tick.
#[derive(Clone, Copy, Debug, Default)]
pub struct Delay;

impl embedded_hal::delay::DelayNs for Delay {
    fn delay_ns(&mut self, ns: u32) {
        let end = Instant::now() + Duration::from_nanos(u64::from(ns));
        while Instant::now() < end {
            core::hint::spin_loop();
        }
    }
}

/// Spins until `cond` holds or `timeout` passes; true if it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > end {
            return cond();
        }
        core::hint::spin_loop();
    }
}
