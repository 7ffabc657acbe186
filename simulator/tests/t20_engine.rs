//! The engine on the built-in day: determinism, conservation, plausibility.
#![allow(clippy::unwrap_used)]

use callgrid_sim::engine;
use callgrid_sim::report::render_table;
use callgrid_sim::scenario::Scenario;

#[test]
fn same_seed_gives_identical_json_and_another_seed_differs() {
    let scenario = Scenario::built_in().unwrap();
    let first = engine::simulate(&scenario, 7, None).unwrap();
    let second = engine::simulate(&scenario, 7, None).unwrap();
    let third = engine::simulate(&scenario, 8, None).unwrap();
    let json = |report| serde_json::to_string(report).unwrap();
    assert_eq!(json(&first), json(&second));
    assert_ne!(json(&first), json(&third));
}

#[test]
fn default_day_is_realistic_and_conserves_contacts() {
    let scenario = Scenario::built_in().unwrap();
    let report = engine::simulate(&scenario, scenario.seed, None).unwrap();
    println!("{}", render_table(&report));
    let total = &report.total;
    // 17,000 arrivals less the bot's share of order-status voice calls (0.5 × 0.85 × 0.25).
    let expected = 17_000.0 * (1.0 - 0.5 * 0.85 * 0.25);
    let inbound = (total.offered - total.overflowed_in) as f64;
    assert!(
        (inbound - expected).abs() < 0.05 * expected + 400.0,
        "inbound {inbound}"
    );
    assert!(
        report.bot_handled > 1_300 && report.bot_handled < 2_300,
        "bot {}",
        report.bot_handled
    );
    for site in &report.sites {
        // The domain's site identity (API.md "Counting"): every contact offered to a site was
        // answered, abandoned, sent away unanswered, or is still waiting unanswered (callbacks
        // queued after the last shift ended).
        assert_eq!(
            site.offered,
            site.answered
                + site.abandoned
                + site.overflowed_out_unanswered
                + site.still_waiting_at_end,
            "{site:?}"
        );
        assert!(site.still_waiting_at_end < 20);
    }
    assert!(
        total.service_level > 0.70 && total.service_level < 0.95,
        "SL {}",
        total.service_level
    );
    assert!(
        total.abandonment < 0.06,
        "abandonment {}",
        total.abandonment
    );
    assert!(total.transferred > 0 && total.callbacks_created > 0);
}
