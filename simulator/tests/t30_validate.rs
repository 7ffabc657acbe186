//! The engine agrees with Erlang C and Erlang A on long fixed-seed runs: within 1 percentage
//! point of SL, and 5% of ASA where ASA exceeds 2 s.
#![allow(clippy::unwrap_used)]

use callgrid_sim::validate::{self, CASES};

/// Long enough for the bounds, short enough for CI (the crate is built with opt-level 3).
const CONTACTS: u64 = 1_000_000;

#[test]
fn every_case_agrees_with_its_closed_form() {
    let comparisons = validate::run(CONTACTS).unwrap();
    println!("{}", validate::render(&comparisons));
    assert_eq!(comparisons.len(), CASES.len());
    for comparison in &comparisons {
        assert!(
            comparison.contacts as f64 > CONTACTS as f64 * 0.9,
            "{comparison:?}"
        );
        assert!(
            comparison.service_level_difference_pp <= 1.0,
            "{comparison:?}"
        );
        if let Some(difference) = comparison.answer_speed_difference {
            assert!(difference <= 0.05, "{comparison:?}");
        }
        let wait_difference =
            (comparison.simulated.wait_probability - comparison.closed_form.wait_probability).abs();
        assert!(wait_difference < 0.015, "P(wait) {comparison:?}");
        let abandon_difference =
            (comparison.simulated.abandonment - comparison.closed_form.abandonment).abs();
        assert!(abandon_difference < 0.005, "abandonment {comparison:?}");
        assert!(comparison.agrees);
    }
}
