//! The test harness's plan line: which of an image's tests a run runs, typed on the console
//! by the host runner right after the image's `armstop-test: begin` (see the firmware's
//! `armstop::testing`). Shared by the firmware, which reads it, and the runner, which writes
//! it ([`Plan`]'s `Display`), so the two cannot drift apart.
//!
//! Invariant: [`parse_plan`] accepts exactly what `Display` writes (and an empty line, which
//! is every test), and names what is wrong with anything else.

use core::fmt;

/// Longest `only=` text of a plan.
pub const ONLY_MAX: usize = 64;

/// Which tests this run runs ([`parse_plan`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan<'a> {
    /// The first test's index.
    pub from: usize,
    /// Only tests whose names contain this (empty: every test).
    pub only: &'a str,
    /// End the run after the first failure, with `next=`.
    pub stop_at_failure: bool,
}

impl Plan<'_> {
    /// Every test, going on after failures: what a run with no plan does.
    pub const ALL: Plan<'static> = Plan { from: 0, only: "", stop_at_failure: false };

    /// Whether test `i`, named `name`, runs.
    pub fn selects(&self, i: usize, name: &str) -> bool {
        i >= self.from && name.contains(self.only)
    }
}

/// Reads a plan line: `plan [from=<i>] [only=<text>] [stop-at-failure]`, each at most once;
/// an empty line is [`Plan::ALL`]. The error names what was wrong.
pub fn parse_plan(line: &str) -> Result<Plan<'_>, &'static str> {
    let mut words = line.split_ascii_whitespace();
    match words.next() {
        None => return Ok(Plan::ALL),
        Some("plan") => {}
        Some(_) => return Err("not a plan: it must start with `plan`"),
    }
    let mut plan = Plan::ALL;
    let (mut from, mut only) = (false, false);
    for w in words {
        if let Some(v) = w.strip_prefix("from=") {
            if core::mem::replace(&mut from, true) {
                return Err("from= given twice");
            }
            plan.from = v.parse().map_err(|_| "from= needs a test index (0, 1, ...)")?;
        } else if let Some(v) = w.strip_prefix("only=") {
            if core::mem::replace(&mut only, true) {
                return Err("only= given twice");
            }
            if v.is_empty() || v.len() > ONLY_MAX {
                return Err("only= needs a text of 1 to 64 bytes");
            }
            plan.only = v;
        } else if w == "stop-at-failure" {
            if core::mem::replace(&mut plan.stop_at_failure, true) {
                return Err("stop-at-failure given twice");
            }
        } else {
            return Err("unknown word: a plan has from=, only= and stop-at-failure");
        }
    }
    Ok(plan)
}

impl fmt::Display for Plan<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "plan from={}", self.from)?;
        if !self.only.is_empty() {
            write!(f, " only={}", self.only)?;
        }
        if self.stop_at_failure {
            f.write_str(" stop-at-failure")?;
        }
        Ok(())
    }
}
