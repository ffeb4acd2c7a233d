//! What an activity LED shows, as a function of time and of whether a stop request is running:
//! a heartbeat (two short blinks a second) while the machine is idle, and a clearly different
//! pattern (solid on) while stop requests run, held for a moment after the last one so that a
//! request of a few microseconds is still seen.
//!
//! Portable and `no_std`, with no notion of hardware or of a clock: time is milliseconds on any
//! monotonic scale shared by every caller, and "a stop request is running" is a `bool` the
//! caller samples. The firmware (`armstop::led`) samples both from a periodic timer interrupt
//! and from the stopper's spin waits, and drives the pin with the level [`Activity::update`]
//! returns.
//!
//! Invariant kept here: the level is a pure function of the time and of the last time busy
//! was seen ([`Activity::is_lit`]), so any caller that samples at the same moment computes the
//! same level, and [`Activity::next_change`] says exactly when, without new samples, that level
//! can next change (the firmware programs its timer with it).
//!
//! Linux's nearest are the `heartbeat` LED trigger (`ledtrig-heartbeat.c`: a double blink
//! whose period follows the load average; here the period is fixed) and the `activity`
//! trigger; neither shows stop requests.
//!
//! ```
//! use armstop_led::{Activity, HOLD_MS};
//!
//! let mut led = Activity::armstop();
//! // Idle: the heartbeat's two blinks, at 0-100 ms and 200-300 ms of each second.
//! assert!(led.update(50, false));
//! assert!(!led.update(150, false));
//! assert_eq!(led.next_change(150), Some(200));
//! // A stop request runs at 400 ms: solid, and still lit for HOLD_MS after the last sample.
//! assert!(led.update(400, true));
//! assert!(led.is_lit(400 + u64::from(HOLD_MS) - 1));
//! assert_eq!(led.next_change(401), Some(400 + u64::from(HOLD_MS)));
//! assert!(!led.is_lit(400 + u64::from(HOLD_MS)), "back to the heartbeat, dark at 500 ms");
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

/// A repeating on/off pattern: lit during the given intervals of each period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pattern {
    period_ms: u32,
    /// `[start, end)` in ms from the start of a period: sorted, disjoint, within the period.
    lit: &'static [(u32, u32)],
}

impl Pattern {
    /// A pattern lit during `lit` (`[start, end)` ms intervals) of every `period_ms`.
    ///
    /// # Panics
    /// If the period is 0 or the intervals are empty, unsorted, overlapping or outside the
    /// period (at compile time for a `const`).
    pub const fn new(period_ms: u32, lit: &'static [(u32, u32)]) -> Self {
        assert!(period_ms > 0, "a pattern needs a period");
        let mut i = 0;
        let mut prev_end = 0;
        while i < lit.len() {
            let (start, end) = lit[i];
            assert!(start < end && end <= period_ms, "interval empty or outside the period");
            assert!(i == 0 || start >= prev_end, "intervals must be sorted and disjoint");
            prev_end = end;
            i += 1;
        }
        Self { period_ms, lit }
    }

    /// The period.
    pub const fn period_ms(&self) -> u32 {
        self.period_ms
    }

    /// Whether the pattern is lit at `t_ms`.
    pub const fn is_lit(&self, t_ms: u64) -> bool {
        let phase = (t_ms % self.period_ms as u64) as u32;
        let mut i = 0;
        while i < self.lit.len() {
            if self.lit[i].0 <= phase && phase < self.lit[i].1 {
                return true;
            }
            i += 1;
        }
        false
    }

    /// The first time after `t_ms` at which the pattern's level differs from its level at
    /// `t_ms`; `None` for a pattern that never changes (always lit, or never).
    pub fn next_edge(&self, t_ms: u64) -> Option<u64> {
        let period = u64::from(self.period_ms);
        let now = self.is_lit(t_ms);
        let base = t_ms - t_ms % period;
        // The level only changes at an interval's start or end; the earliest of those (in this
        // period, or the next for one already past) with a different level is the edge.
        self.lit
            .iter()
            .flat_map(|&(s, e)| [s, e])
            .map(|b| {
                let b = base + u64::from(b);
                if b > t_ms { b } else { b + period }
            })
            .filter(|&b| self.is_lit(b) != now)
            .min()
    }

    /// Fraction of each period that is lit, in thousandths.
    pub fn duty_permille(&self) -> u32 {
        let lit: u32 = self.lit.iter().map(|&(s, e)| e - s).sum();
        lit * 1000 / self.period_ms
    }
}

/// Two 100 ms blinks, 100 ms apart, every second: the idle heartbeat.
pub const HEARTBEAT: Pattern = Pattern::new(1000, &[(0, 100), (200, 300)]);

/// Always lit: stop requests running.
pub const SOLID: Pattern = Pattern::new(1000, &[(0, 1000)]);

/// How long the busy pattern stays after busy was last seen.
pub const HOLD_MS: u32 = 100;

/// An activity LED's state: which pattern it shows, from when busy was last seen.
#[derive(Clone, Copy, Debug)]
pub struct Activity {
    idle: Pattern,
    busy: Pattern,
    hold_ms: u32,
    last_busy_ms: Option<u64>,
}

impl Activity {
    /// `idle` while nothing runs; `busy` while busy is seen and for `hold_ms` after.
    pub const fn new(idle: Pattern, busy: Pattern, hold_ms: u32) -> Self {
        Self { idle, busy, hold_ms, last_busy_ms: None }
    }

    /// armstop's LED: [`HEARTBEAT`] while idle, [`SOLID`] while stop requests run, held for
    /// [`HOLD_MS`].
    pub const fn armstop() -> Self {
        Self::new(HEARTBEAT, SOLID, HOLD_MS)
    }

    /// The idle pattern.
    pub const fn idle(&self) -> Pattern {
        self.idle
    }

    /// Records a sample (`busy`: whether a stop request is running at `now_ms`) and returns
    /// whether the LED is lit now.
    pub fn update(&mut self, now_ms: u64, busy: bool) -> bool {
        if busy {
            // A sample taken a little earlier on another CPU may arrive late: keep the latest.
            self.last_busy_ms = Some(self.last_busy_ms.map_or(now_ms, |b| b.max(now_ms)));
        }
        self.is_lit(now_ms)
    }

    /// Whether the busy pattern is showing at `now_ms`: busy was seen less than the hold time
    /// before (or, from a sample taken on another CPU, after) `now_ms`.
    pub fn showing_busy(&self, now_ms: u64) -> bool {
        self.last_busy_ms.is_some_and(|b| now_ms.saturating_sub(b) < u64::from(self.hold_ms))
    }

    /// Whether the LED is lit at `now_ms`, given the samples so far.
    pub fn is_lit(&self, now_ms: u64) -> bool {
        if self.showing_busy(now_ms) { self.busy.is_lit(now_ms) } else { self.idle.is_lit(now_ms) }
    }

    /// When the level can next change if no new busy sample comes: the busy pattern's next edge
    /// or the end of the hold while busy shows, the idle pattern's next edge otherwise. `None`
    /// if it never changes on its own.
    pub fn next_change(&self, now_ms: u64) -> Option<u64> {
        match self.last_busy_ms {
            Some(b) if self.showing_busy(now_ms) => {
                let hold_end = b.saturating_add(u64::from(self.hold_ms));
                Some(self.busy.next_edge(now_ms).map_or(hold_end, |e| e.min(hold_end)))
            }
            _ => self.idle.next_edge(now_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(p: &Pattern, from: u64, to: u64) -> Vec<(u64, bool)> {
        let mut out = Vec::new();
        let mut last = p.is_lit(from);
        for t in from + 1..to {
            let l = p.is_lit(t);
            if l != last {
                out.push((t, l));
                last = l;
            }
        }
        out
    }

    #[test]
    fn heartbeat_is_two_short_blinks_a_second() {
        let e = edges(&HEARTBEAT, 0, 2000);
        let rising: Vec<u64> = e.iter().filter(|x| x.1).map(|x| x.0).collect();
        assert_eq!(rising, [200, 1000, 1200], "t=0 starts lit");
        assert!(HEARTBEAT.is_lit(0) && HEARTBEAT.is_lit(99) && !HEARTBEAT.is_lit(100));
        assert!(HEARTBEAT.is_lit(250) && !HEARTBEAT.is_lit(300) && !HEARTBEAT.is_lit(999));
        assert_eq!(HEARTBEAT.duty_permille(), 200);
        assert!((0..5000).all(|t| SOLID.is_lit(t)));
        assert_eq!(SOLID.duty_permille(), 1000);
    }

    #[test]
    fn next_edge_is_the_first_change_by_brute_force() {
        const ODD: Pattern = Pattern::new(7, &[(0, 2), (2, 3), (5, 7)]);
        for p in [HEARTBEAT, ODD] {
            for t in 0..3 * u64::from(p.period_ms()) {
                let want = (t + 1..t + 2 * u64::from(p.period_ms()) + 1)
                    .find(|&u| p.is_lit(u) != p.is_lit(t));
                assert_eq!(p.next_edge(t), want, "{p:?} at {t}");
            }
        }
        // Adjacent intervals and the wrap from the last to the first are not edges.
        assert_eq!(ODD.next_edge(0), Some(3));
        assert_eq!(ODD.next_edge(5), Some(7 + 3));
        assert_eq!(SOLID.next_edge(12_345), None);
        assert_eq!(HEARTBEAT.next_edge(u64::MAX / 2), HEARTBEAT.next_edge(u64::MAX / 2));
    }

    #[test]
    #[should_panic(expected = "sorted and disjoint")]
    fn overlapping_intervals_are_refused() {
        let _ = Pattern::new(1000, &[(0, 100), (50, 150)]);
    }

    #[test]
    #[should_panic(expected = "outside the period")]
    fn intervals_past_the_period_are_refused() {
        let _ = Pattern::new(100, &[(50, 101)]);
    }

    #[test]
    fn busy_shows_solid_and_is_held_after_the_last_sample() {
        let mut a = Activity::armstop();
        // Idle: the heartbeat, off in the gap between the blinks.
        assert!(!a.update(1150, false));
        assert_eq!(a.next_change(1150), Some(1200));
        // A stop request: lit at once, in the middle of the heartbeat's dark part.
        assert!(a.update(1500, true));
        assert!(a.showing_busy(1500));
        assert_eq!(a.next_change(1500), Some(1600), "hold end: nothing else changes it");
        // Still running 80 ms later: the hold moves on.
        assert!(a.update(1580, true));
        assert!(a.update(1650, false), "held");
        assert_eq!(a.next_change(1650), Some(1680));
        assert!(!a.update(1680, false), "hold over: back to the heartbeat's dark part");
        assert!(!a.showing_busy(1680));
        assert_eq!(a.next_change(1680), Some(2000));
        assert!(a.update(2000, false), "next heartbeat blink");
    }

    #[test]
    fn a_late_sample_from_another_cpu_keeps_the_latest() {
        let mut a = Activity::armstop();
        a.update(5000, true);
        // Sampled before the previous one (another CPU, which took the lock later).
        a.update(4990, true);
        assert!(a.showing_busy(5099) && !a.showing_busy(5100));
        // A reader whose clock sample is older than the last busy sample sees busy.
        assert!(a.showing_busy(4000));
        assert_eq!(a.next_change(4000), Some(5100));
    }

    #[test]
    fn the_level_follows_the_idle_pattern_after_any_burst() {
        let mut a = Activity::armstop();
        for t in 0..200 {
            a.update(10_000 + t, t % 7 == 0);
        }
        for t in 10_300..12_000 {
            assert_eq!(a.is_lit(t), HEARTBEAT.is_lit(t), "{t}");
        }
    }
}
