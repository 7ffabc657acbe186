//! Shift plans: least cost over the shipped patterns, cheaper than staffing every interval at
//! the peak, and meeting the targets in simulation.
#![allow(clippy::unwrap_used)]

use callgrid_sim::scenario::Scenario;
use callgrid_sim::shifts::{self, ShiftsConfig};
use callgrid_sim::{engine, staff};

#[test]
fn the_default_day_shift_plan_is_cheaper_than_peak_staffing_and_meets_the_targets() {
    let scenario = Scenario::built_in().unwrap();
    let config = ShiftsConfig::from_file(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/shifts.toml"
    )))
    .unwrap();
    let plan = shifts::plan(&scenario, &config, 8).unwrap();
    println!("{}", shifts::render(&plan));
    assert!(
        plan.cost < plan.cost_peak_staffing,
        "{} vs {}",
        plan.cost,
        plan.cost_peak_staffing
    );
    // A shift plan cannot beat the per-interval minimum it covers.
    assert!(plan.cost >= plan.cost_per_interval_minimum);
    // Every group-interval meets both targets in the verification with fresh seeds.
    assert_eq!(plan.cells_met, plan.cells);
    for row in &plan.intervals {
        assert!(row.slack >= 0, "{row:?}");
        assert!(row.scheduled >= row.minimum);
    }
    // The staffed scenario validates and, simulated on its own seed, meets the day's targets.
    assert!(plan.scenario.check().is_empty());
    let report = engine::simulate(&plan.scenario, plan.scenario.seed + 7, None).unwrap();
    assert!(
        report.total.service_level >= scenario.service_level.target,
        "{}",
        report.total.service_level
    );
    assert!(report.total.abandonment <= scenario.service_level.abandonment_target);
    // The per-interval search it started from is the `staff` answer (its misses, if any,
    // were raised by the verification rounds above).
    assert_eq!(plan.minimum.replications, 8);
    assert!(staff::render(&plan.minimum).contains("agent-hours per day"));
    // The page: self-contained, one chart per group (9 groups), the plan's tables.
    let page = callgrid_sim::html::render_shift_plan(&plan, &scenario);
    assert!(page.starts_with("<!DOCTYPE html>") && !page.contains("<script"));
    assert_eq!(page.matches("<svg").count(), 9);
    assert!(page.contains("line1 8h") && page.contains("Per interval"));
}

#[test]
fn a_pattern_for_an_unknown_group_is_named() {
    let scenario = Scenario::built_in().unwrap();
    let config: ShiftsConfig = toml::from_str(
        r#"
        hourly_cost = 5.0
        [[patterns]]
        name = "typo"
        site = "moscow"
        skills = ["line3"]
        starts = ["08:00"]
        length_h = 8.0
        "#,
    )
    .unwrap();
    let error = shifts::plan(&scenario, &config, 2).unwrap_err().to_string();
    assert!(
        error.contains("patterns[0] (typo)") && error.contains("line3"),
        "{error}"
    );
}
