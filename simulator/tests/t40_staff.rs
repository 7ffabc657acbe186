//! The staffing search on a flat single-queue day lands next to the closed form.
#![allow(clippy::unwrap_used)]

use callgrid_sim::staff;
use callgrid_sim::validate::{CASES, scenario_for};

#[test]
fn flat_erlang_a_day_is_staffed_near_the_closed_form_and_meets_targets() {
    // M/M/11+M at 10 erlangs for one day; the search may move every hour independently.
    let case = CASES[3];
    let mut scenario = scenario_for(&case, 1);
    scenario.service_level.target = 0.8;
    scenario.service_level.abandonment_target = 0.05;
    let plan = staff::search(&scenario, 4).unwrap();
    println!("{}", staff::render(&plan));
    assert!(plan.all_targets_met);
    assert_eq!(plan.rows.len(), 24);
    for row in &plan.rows {
        let erlang = row.agents_erlang.unwrap();
        assert!(row.agents.abs_diff(erlang) <= 2, "{row:?}");
        assert!(
            row.service_level >= 0.8 && row.abandonment <= 0.05,
            "{row:?}"
        );
    }
    // The plan is written back as per-interval staffing that validates.
    assert!(plan.scenario.check().is_empty());
}
