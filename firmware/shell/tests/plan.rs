//! The harness's plan line: what the runner writes is what the harness reads; anything else
//! is refused with its reason.

use armstop_shell::plan::{ONLY_MAX, Plan, parse_plan};
use proptest::prelude::*;

#[test]
fn an_empty_line_runs_every_test() {
    assert_eq!(parse_plan(""), Ok(Plan::ALL));
    assert_eq!(parse_plan("   "), Ok(Plan::ALL));
    assert_eq!(parse_plan("plan"), Ok(Plan::ALL));
}

#[test]
fn every_word_is_read() {
    assert_eq!(
        parse_plan("plan from=3 only=stop_machine stop-at-failure"),
        Ok(Plan { from: 3, only: "stop_machine", stop_at_failure: true })
    );
    assert_eq!(parse_plan("plan only=x"), Ok(Plan { only: "x", ..Plan::ALL }));
}

#[test]
fn bad_plans_say_what_is_wrong() {
    let long = format!("plan only={}", "x".repeat(ONLY_MAX + 1));
    for (line, why) in [
        ("run everything", "must start with `plan`"),
        ("plan from=", "needs a test index"),
        ("plan from=-1", "needs a test index"),
        ("plan from=1 from=2", "from= given twice"),
        ("plan only=", "1 to 64 bytes"),
        (long.as_str(), "1 to 64 bytes"),
        ("plan only=a only=b", "only= given twice"),
        ("plan stop-at-failure stop-at-failure", "given twice"),
        ("plan fast", "unknown word"),
    ] {
        let e = parse_plan(line).unwrap_err();
        assert!(e.contains(why), "{line:?}: {e}");
    }
}

#[test]
fn selection_is_by_index_and_name() {
    let p = Plan { from: 2, only: "two", stop_at_failure: false };
    assert!(!p.selects(1, "stop_two_cpus_works"), "before from=");
    assert!(p.selects(2, "stop_two_cpus_works"));
    assert!(!p.selects(3, "stop_machine_works"), "name does not match");
    assert!(Plan::ALL.selects(0, "anything"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn what_display_writes_parses_back(
        from in 0usize..100_000,
        only in "[a-z_:0-9]{0,64}",
        stop_at_failure in any::<bool>(),
    ) {
        let plan = Plan { from, only: &only, stop_at_failure };
        let line = plan.to_string();
        prop_assert_eq!(parse_plan(&line), Ok(plan));
    }

    #[test]
    fn any_line_gives_a_plan_or_a_reason(line in "[ -~]{0,140}") {
        let _ = parse_plan(&line);
    }
}
