//! What-if comparisons: confidence intervals, paired differences, the SL plot.
#![allow(clippy::unwrap_used)]

use callgrid_sim::compare;
use callgrid_sim::scenario::Scenario;

#[test]
fn a_scenario_compared_with_itself_differs_by_exactly_zero() {
    let scenario = Scenario::built_in().unwrap();
    let comparison = compare::compare(&scenario, &scenario, 3).unwrap();
    for figure in &comparison.figures {
        assert_eq!(figure.difference.mean, 0.0, "{}", figure.figure);
        assert_eq!(figure.difference.half_width_95, 0.0, "{}", figure.figure);
        assert!(figure.a.half_width_95 > 0.0, "{}", figure.figure);
    }
}

#[test]
fn more_volume_lowers_the_service_level_with_a_significant_difference() {
    let a = Scenario::built_in().unwrap();
    let mut b = a.clone();
    b.name = "more volume".to_owned();
    b.volume.contacts_per_day *= 1.06;
    let comparison = compare::compare(&a, &b, 8).unwrap();
    println!("{}", compare::render(&comparison));
    let figure = |name: &str| {
        comparison
            .figures
            .iter()
            .find(|figure| figure.figure == name)
            .unwrap()
            .clone()
    };
    let offered = figure("contacts offered");
    let ratio = offered.b.mean / offered.a.mean;
    assert!((ratio - 1.06).abs() < 0.01, "{ratio}");
    let level = figure("service level %");
    assert!(level.difference.mean < 0.0);
    assert!(level.difference.mean + level.difference.half_width_95 < 0.0);
    // Paired by seed: the difference is known better than either level alone.
    assert!(level.difference.half_width_95 < level.a.half_width_95 + level.b.half_width_95);
    let svg = compare::service_level_svg(&comparison);
    assert!(svg.starts_with("<svg") && svg.contains("more volume"));
    assert!(svg.matches("<polyline").count() >= 3, "A, B and the target");
    assert!(!svg.contains("NaN"));
    // After closing there are no contacts: no service level, not 0.
    let closed = comparison
        .intervals
        .iter()
        .find(|level| level.scenario == "a" && level.start_minutes == 22 * 60)
        .unwrap();
    assert_eq!(closed.service_level, None);
}
