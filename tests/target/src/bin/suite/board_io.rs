//! Board I/O: the GPIO pins set up at boot, the activity LED's patterns (sampled on its pin
//! through `GPLEV`), the timer PPIs that drive it, and the PM watchdog's words read from the live
//! registers (never written: a reset would end the run). Tests of hardware a board does not
//! have are ignored with the reason.

use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use core::time::Duration;

use armstop::board::{BOARD, cpu_count};
use armstop::gic;
use armstop::gpio::{self, Gpio, PinId};
use armstop::led::{self, HEARTBEAT, HOLD_MS};
use armstop::smp;
use armstop::stop::{CpuSet, STOPPERS};
use armstop::target_test;
use armstop::testing::{figure, ignore, require_all_cpus};
use armstop::time::{Instant, wait_until};

fn gpio_or_ignore() -> Gpio {
    match gpio::block() {
        Some(g) => g,
        None => ignore(format_args!("board {} has no GPIO block", BOARD.name)),
    }
}

fn led_or_ignore() -> (Gpio, PinId) {
    let g = gpio_or_ignore();
    match led::pin() {
        Some(p) => (g, p),
        None => ignore(format_args!("board {} has no activity LED", BOARD.name)),
    }
}

#[target_test]
fn boot_pins_read_back_as_the_board_sets_them() {
    let g = gpio_or_ignore();
    let pins = BOARD.gpio.expect("a GPIO block").boot_pins;
    assert!(!pins.is_empty(), "a GPIO block with no boot pins");
    for s in pins {
        let pin = PinId::new(s.pin).expect("validated pin");
        assert_eq!(g.function(pin), s.function, "GPIO{} function", s.pin);
        assert_eq!(g.pull(pin), Some(s.pull), "GPIO{} pull", s.pin);
    }
}

#[target_test]
fn activity_led_pin_is_an_output_driven_by_the_timer() {
    let (g, pin) = led_or_ignore();
    assert!(led::started(), "the LED was not started at boot");
    assert_eq!(g.function(pin), gpio::Function::Output, "GPIO{}", pin.number());
    // The GIC tests re-initialise the boot CPU's interface, which disables its PPIs: re-arm.
    led::start();
    assert!(gic::ppi_enabled(led::TIMER_PPI), "the LED's timer PPI is not enabled");
}

/// Samples the LED's pin every ~100 us for `d`: (samples, lit samples, rising edges, samples
/// that match the heartbeat at their time).
fn sample(g: Gpio, pin: PinId, d: Duration) -> (u64, u64, u64, u64) {
    let (mut n, mut lit, mut rises, mut agree) = (0, 0, 0, 0);
    let mut last = g.is_high(pin);
    let end = Instant::now() + d;
    while Instant::now() < end {
        let t = led::now_ms();
        let l = g.is_high(pin);
        n += 1;
        lit += u64::from(l);
        rises += u64::from(l && !last);
        agree += u64::from(l == HEARTBEAT.is_lit(t));
        last = l;
        armstop::time::wait_until(Duration::from_micros(100), || false);
    }
    (n, lit, rises, agree)
}

#[target_test]
fn activity_led_heartbeats_while_idle() {
    let (g, pin) = led_or_ignore();
    led::start();
    // Whatever ran before has finished; let the hold run out.
    assert!(
        wait_until(Duration::from_secs(2), || !led::showing_busy()),
        "the LED still shows a stop request after 2 s"
    );
    let (n, lit, rises, agree) = sample(g, pin, Duration::from_secs(2));
    figure(format_args!(
        "LED heartbeat: {rises} blinks in 2 s, lit {}% of {n} samples (pattern {}%), {}% match it",
        lit * 100 / n,
        HEARTBEAT.duty_permille() / 10,
        agree * 100 / n
    ));
    assert!((3..=5).contains(&rises), "{rises} blinks in 2 s; the heartbeat has 4");
    let pct = lit * 100 / n;
    assert!((10..=30).contains(&pct), "lit {pct}% of the time; the heartbeat is lit 20%");
    assert!(agree * 100 >= n * 90, "only {agree} of {n} samples match the heartbeat");
}

#[target_test]
fn activity_led_is_solid_while_stop_requests_run() {
    let (g, pin) = led_or_ignore();
    require_all_cpus();
    led::start();
    // The LED lights at the first look at the stoppers after the request's function starts:
    // a waiting CPU's relax hook, or the timer within `led::POLL`. From then on it must stay
    // lit for the whole request. The sampler counts the time until the first lit sample and
    // every dark sample after it.
    let samples = AtomicU64::new(0);
    let dark_after_lit = AtomicU64::new(0);
    let first_lit_us = AtomicU64::new(u64::MAX);
    let sampler = || {
        let start = Instant::now();
        let end = start + Duration::from_millis(300);
        let mut lit_seen = false;
        while Instant::now() < end {
            samples.fetch_add(1, Ordering::Relaxed);
            let lit = g.is_high(pin);
            if lit && !lit_seen {
                lit_seen = true;
                first_lit_us.store(start.elapsed().as_micros() as u64, Ordering::Relaxed);
            }
            dark_after_lit.fetch_add(u64::from(lit_seen && !lit), Ordering::Relaxed);
        }
        0
    };
    let check = |what: &str| -> (u64, u64) {
        let n = samples.swap(0, Ordering::Relaxed);
        let d = dark_after_lit.swap(0, Ordering::Relaxed);
        let first = first_lit_us.swap(u64::MAX, Ordering::Relaxed);
        assert!(n > 0, "{what}: no samples");
        assert!(
            first <= led::POLL.as_micros() as u64,
            "{what}: first lit after {first} us (at most {} ms)",
            led::POLL.as_millis()
        );
        assert_eq!(d, 0, "{what}: dark in {d} of {n} samples after it was lit");
        (n, first)
    };
    // A long stop_machine: every CPU has IRQs masked (the boot CPU's LED timer too); the
    // spinning participants' relax hooks light it.
    assert_eq!(STOPPERS.stop_machine(sampler, Some(CpuSet::single(0))), Ok(0));
    let (n, first) = check("300 ms stop_machine");
    // (Whether the busy pattern is still held now depends on whether the timer, masked
    // during the stop, has run yet: the hold counts from the last sample that saw a request,
    // here the spinning CPUs' one at the start. So no check of it here.)
    // A long stop_one_cpu on another CPU: its requester waits (and the timer runs).
    let last = cpu_count() - 1;
    assert_eq!(STOPPERS.stop_one_cpu(last, sampler), Ok(0));
    let (n2, first2) = check("300 ms stop_one_cpu");
    // Back to the heartbeat once the hold is over.
    let hold = Duration::from_millis(u64::from(HOLD_MS));
    assert!(
        wait_until(hold + led::POLL * 2, || !led::showing_busy()),
        "still busy {} ms after the last stop request",
        (hold + led::POLL * 2).as_millis()
    );
    figure(format_args!(
        "LED during stop requests: lit {first} us into a stop_machine and {first2} us into a \
         stop_one_cpu({last}), then in all of {n} and {n2} samples"
    ));
}

static PPI_TAKEN: [AtomicU32; armstop::boards::MAX_CPUS] =
    [const { AtomicU32::new(0) }; armstop::boards::MAX_CPUS];

/// The physical timer's PPI handler: counts, and stops the timer (so it stops asserting).
fn on_physical_timer() {
    use aarch64_cpu::registers::{CNTP_CTL_EL0, Writeable};
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::CLEAR + CNTP_CTL_EL0::IMASK::SET);
    PPI_TAKEN[armstop::cpu::id()].fetch_add(1, Ordering::SeqCst);
}

/// On the calling CPU: one physical-timer PPI through `gic::enable_ppi`; returns 1 if it was
/// taken exactly once, and the PPI is disabled again afterwards.
fn one_timer_ppi(_: usize) -> usize {
    use aarch64_cpu::registers::{CNTP_CTL_EL0, CNTP_TVAL_EL0, Writeable};
    let me = armstop::cpu::id();
    let before = PPI_TAKEN[me].load(Ordering::SeqCst);
    gic::enable_ppi(gic::PPI_PHYSICAL_TIMER, on_physical_timer).expect("a PPI");
    assert!(gic::ppi_enabled(gic::PPI_PHYSICAL_TIMER));
    CNTP_TVAL_EL0.set(armstop::time::frequency() / 1000); // 1 ms
    CNTP_CTL_EL0.write(CNTP_CTL_EL0::ENABLE::SET + CNTP_CTL_EL0::IMASK::CLEAR);
    let taken =
        wait_until(Duration::from_millis(500), || PPI_TAKEN[me].load(Ordering::SeqCst) > before);
    armstop::time::wait_until(Duration::from_millis(2), || false);
    gic::disable_ppi(gic::PPI_PHYSICAL_TIMER).expect("a PPI");
    let once = PPI_TAKEN[me].load(Ordering::SeqCst) == before + 1;
    usize::from(taken && once && !gic::ppi_enabled(gic::PPI_PHYSICAL_TIMER))
}

#[target_test]
fn a_timer_ppi_reaches_its_handler_on_every_cpu() {
    require_all_cpus();
    let unexpected = gic::unexpected_count();
    for cpu in 0..cpu_count() {
        assert_eq!(smp::run_on(cpu, one_timer_ppi, 0), Ok(1), "cpu{cpu}");
    }
    assert_eq!(gic::enable_ppi(15, on_physical_timer), Err(gic::GicError::BadTarget), "an SGI");
    assert_eq!(gic::disable_ppi(32), Err(gic::GicError::BadTarget), "an SPI");
    assert_eq!(gic::unexpected_count(), unexpected);
}

#[target_test]
fn pm_watchdog_words_from_the_live_registers() {
    use armstop::pm::{self, RSTC, RSTS};
    let Some(pm_base) = BOARD.pm_watchdog else {
        ignore(format_args!("board {} has no PM watchdog", BOARD.name))
    };
    // Reads only: writing the words would reset the machine.
    // SAFETY: the board's PM block, in a device region of its memory map; reads have no effect.
    let (rstc, rsts) = unsafe { (pm::read(pm_base, RSTC), pm::read(pm_base, RSTS)) };
    let [(wdog_at, wdog), (rstc_at, rstc_word)] = pm::reset_writes(rstc);
    assert_eq!((wdog_at, rstc_at), (0x24, 0x1c), "PM_WDOG first, then PM_RSTC");
    assert_eq!(wdog, 0x5a00_0000 | 10);
    assert_eq!(rstc_word >> 24, 0x5a, "password");
    assert_eq!(rstc_word & 0x30, 0x20, "full reset");
    assert_eq!(rstc_word & 0x00ff_ffcf, rstc & 0x00ff_ffcf, "other RSTC bits kept");
    let (rsts_at, rsts_word) = pm::halt_write(rsts);
    assert_eq!(rsts_at, 0x20, "PM_RSTS");
    assert_eq!(rsts_word >> 24, 0x5a, "password");
    assert_eq!(rsts_word & 0x555, 0x555, "partition 63: halt");
    assert_eq!(rsts_word & 0x00ff_faaa, rsts & 0x00ff_faaa, "other RSTS bits kept");
    figure(format_args!(
        "PM at {:#x}: RSTC {rstc:#010x} -> {rstc_word:#010x}, RSTS {rsts:#010x} -> {rsts_word:#010x}",
        pm_base
    ));
}
