//! The activity LED: a heartbeat (two short blinks a second) while the machine is idle, solid on
//! while stop requests run, on the board's `gpio.activity_led` pin (active high) through the
//! GPIO driver's `embedded-hal` output. The pattern itself is `armstop-led`'s, host-tested
//! there; this module samples the time and "a stop request is running"
//! (the source [`set_busy_source`] names: the stoppers' running set not empty) and drives the pin. A board without an LED compiles all of
//! it to nothing: the pin is a constant.
//!
//! Driven from two places, neither of which the stopper's work can notice:
//! - The boot CPU's EL1 virtual timer, which no other part of armstop uses. Its PPI handler
//!   updates the LED and re-arms the timer for the pattern's next change, at most [`POLL`]
//!   ahead (so a request that starts and ends on other CPUs is still seen).
//! - The stoppers' spin waits ([`on_relax`], from `Platform::relax`), which act only when a
//!   stop request runs and the LED does not show it yet: a `stop_machine` masks IRQs on every
//!   CPU, the boot CPU included, so the timer cannot show it, but its spinning participants
//!   (and a waiting requester) can. Once lit, the LED stays lit until the timer runs again.
//!   The busy pattern is held for [`HOLD_MS`] after the last sample that saw a request; in a
//!   long `stop_machine` that is the one its participants took at the start, so the heartbeat
//!   comes back as soon as the timer runs after it.
//!
//! Invariant: the LED's state (the pattern, the last busy sample and the level on the pin) is
//! only read or changed under `STATE`'s lock, which is only ever *tried*, never waited for
//! (except by [`start`], in thread context with IRQs masked, behind holders that never wait).
//! So an interrupt handler, a spinning stopper and the timer may all call in, on any CPU,
//! without deadlock, and the level on the pin is always the one last computed.
//!
//! `gic::init_cpu` disables every PPI of the CPU it runs on; on the boot CPU only the GIC tests
//! run it again, after which the heartbeat stops until [`start`] runs again.

use core::sync::atomic::{AtomicBool, Ordering};

use armstop_sync::FnSlot;
use core::time::Duration;

use armstop_led::Activity;
use embedded_hal::digital::{OutputPin as _, PinState};

pub use armstop_led::{HEARTBEAT, HOLD_MS, Pattern, SOLID};

use crate::board::BOARD;
use crate::gic;
use crate::gpio::{self, OutputPin, PinId};
use crate::time::Instant;

/// The LED's pin, from the board data.
const LED_PIN: Option<u8> = match BOARD.gpio {
    Some(g) => g.activity_led,
    None => None,
};

/// The PPI of the timer that drives the LED: the boot CPU's EL1 virtual timer.
pub const TIMER_PPI: u32 = gic::PPI_VIRTUAL_TIMER;

/// Longest time between two timer updates.
pub const POLL: Duration = Duration::from_millis(50);

/// Retry delay when the timer finds the state locked by another caller.
const RETRY: Duration = Duration::from_millis(1);

struct Led {
    pin: OutputPin,
    activity: Activity,
    lit: bool,
}

static STATE: spin::Mutex<Option<Led>> = spin::Mutex::new(None);
/// Whether the LED shows the busy pattern (written under `STATE`'s lock, read without it by
/// [`on_relax`]'s fast path).
static SHOWING_BUSY: AtomicBool = AtomicBool::new(false);

/// The LED's pin, if the board has an activity LED.
pub fn pin() -> Option<PinId> {
    LED_PIN.and_then(PinId::new)
}

/// Milliseconds since the counter started: the time the pattern runs on.
pub fn now_ms() -> u64 {
    let (t, f) = (Instant::now().ticks(), crate::time::frequency().max(1));
    // Split so that nothing overflows: `t % f < f`, a frequency far below 2^54.
    t / f * 1000 + t % f * 1000 / f
}

/// What says "a stop request is running" (none: nothing runs). The stopper's glue registers
/// it, so that this module needs nothing above the drivers.
// SAFETY: a function pointer type.
static BUSY: FnSlot<fn() -> bool> = unsafe { FnSlot::new() };

/// Makes `busy` what the LED asks whether a stop request runs: read-only, lock-free, callable
/// from interrupt handlers and from a waiter's relax hook (the stoppers' `running_mask`).
pub fn set_busy_source(busy: fn() -> bool) {
    BUSY.set(Some(busy));
}

fn busy() -> bool {
    BUSY.get().is_some_and(|busy| busy())
}

/// Starts the LED: makes its pin an output (dark), enables the timer's PPI on the calling CPU
/// and shows the first level. Boot CPU, at boot before the other CPUs run (it sets a pin
/// function, see [`crate::gpio`]); again after a `gic::init_cpu` there, to re-arm. Nothing
/// on a board without an LED.
pub fn start() {
    let (Some(pin), Some(gpio)) = (pin(), gpio::block()) else { return };
    let _irq = crate::cpu::mask_irqs();
    {
        let mut state = STATE.lock();
        if state.is_none() {
            *state = Some(Led {
                pin: gpio.output(pin, false),
                activity: Activity::armstop(),
                lit: false,
            });
        }
    }
    gic::enable_ppi(TIMER_PPI, on_timer).expect("the timer's PPI is a PPI");
    on_timer();
}

/// Whether [`start`] has run (the LED is driven).
pub fn started() -> bool {
    STATE.try_lock().is_none_or(|s| s.is_some())
}

/// Whether the LED shows the busy pattern now (a stop request ran within the hold time).
pub fn showing_busy() -> bool {
    SHOWING_BUSY.load(Ordering::Relaxed)
}

/// Samples and drives the LED if the state is free; returns the sample's time and the time at
/// which the level can next change on its own (`None`: never), both in ms, or `None` if the
/// state was locked or the LED not started.
fn refresh() -> Option<(u64, Option<u64>)> {
    let mut state = STATE.try_lock()?;
    let led = state.as_mut()?;
    // Sampled under the lock, so the samples reach the pattern in the order they were taken.
    let now = now_ms();
    let busy = busy();
    let lit = led.activity.update(now, busy);
    if lit != led.lit {
        let Ok(()) = led.pin.set_state(PinState::from(lit));
        led.lit = lit;
    }
    SHOWING_BUSY.store(led.activity.showing_busy(now), Ordering::Relaxed);
    Some((now, led.activity.next_change(now)))
}

/// The timer's PPI handler (and [`start`]'s first update): updates the LED and re-arms the
/// timer, which also stops it asserting the PPI.
fn on_timer() {
    let after_ms = match refresh() {
        None => RETRY.as_millis() as u64,
        Some((now, next)) => {
            let poll = POLL.as_millis() as u64;
            next.map_or(poll, |t| t.saturating_sub(now).clamp(1, poll))
        }
    };
    let ticks = (u128::from(after_ms) * u128::from(crate::time::frequency())).div_ceil(1000);
    use aarch64_cpu::registers::{CNTV_CTL_EL0, CNTV_TVAL_EL0, Writeable};
    // TVAL counts from now, whatever CNTVOFF is; at most POLL ahead, well within its 32 bits.
    CNTV_TVAL_EL0.set(ticks.min(u128::from(i32::MAX as u32)) as u64);
    CNTV_CTL_EL0.write(CNTV_CTL_EL0::ENABLE::SET + CNTV_CTL_EL0::IMASK::CLEAR);
}

/// From the stoppers' spin waits (`Platform::relax`): lights the LED as soon as a stop request
/// runs and it does not show it yet. Otherwise one relaxed load (and one per CPU while it shows
/// no stop request); nothing at all on a board without an LED.
#[inline]
pub fn on_relax() {
    if LED_PIN.is_some() && !SHOWING_BUSY.load(Ordering::Relaxed) && busy() {
        let _ = refresh();
    }
}
