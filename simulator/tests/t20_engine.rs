//! The engine on the built-in day: determinism, conservation, plausibility.
#![allow(clippy::unwrap_used)]

use callgrid_sim::engine;
use callgrid_sim::report::render_table;
use callgrid_sim::scenario::{OverflowTrigger, Scenario};

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

#[test]
fn naive_staffing_swap_inflates_service_level_and_the_engine_rule_does_not() {
    // M/M/12 at 10 erlangs, 180 s calls, 15-minute intervals, constant staffing: the engine's
    // rule (keep the logged-in count; leavers finish their call, take no new one) changes
    // nothing at boundaries, so SL matches Erlang C. Swapping the whole crew at every boundary
    // lets the new crew answer while the old one finishes: about a fifth more capacity.
    let case = callgrid_sim::validate::CASES[0];
    let mut scenario = callgrid_sim::validate::scenario_for(&case, 300_000);
    scenario.interval_minutes = 15;
    scenario.profile.shares = vec![1.0 / 96.0; 96];
    let closed_form = callgrid_sim::erlang::Queue {
        arrival_rate_per_s: case.load_erlangs / case.handle_time_s_mean,
        handle_time_s_mean: case.handle_time_s_mean,
        agents: case.agents,
        patience_s_mean: None,
    }
    .figures(20.0)
    .unwrap();
    let run = |naive: bool| {
        let mut engine = engine::Engine::new(&scenario, scenario.seed).unwrap();
        if naive {
            engine.use_naive_staffing_swap();
        }
        engine.run(None).unwrap();
        engine.report(&scenario, scenario.seed).total.service_level
    };
    let rule = run(false);
    let naive = run(true);
    println!(
        "SL: engine rule {rule:.4}, naive swap {naive:.4}, Erlang C {:.4}",
        closed_form.service_level
    );
    assert!(
        (rule - closed_form.service_level).abs() < 0.015,
        "rule {rule} vs Erlang C {}",
        closed_form.service_level
    );
    assert!(naive > rule + 0.10, "naive {naive} vs rule {rule}");
}

#[test]
fn per_interval_queue_rows_add_up_to_the_queue_totals() {
    let scenario = Scenario::built_in().unwrap();
    let report = engine::simulate(&scenario, scenario.seed, None).unwrap();
    assert!(!report.queue_intervals.is_empty());
    for queue in &report.queues {
        let by_interval: u64 = report
            .queue_intervals
            .iter()
            .filter(|row| row.site == queue.site && row.queue == queue.queue)
            .map(|row| row.offered)
            .sum();
        // Contacts entering after closing (late callbacks) fall after the reported day.
        assert!(
            by_interval <= queue.offered && by_interval + 20 >= queue.offered,
            "{queue:?}: {by_interval}"
        );
    }
    let site_by_interval: u64 = report.site_intervals.iter().map(|row| row.offered).sum();
    let site_offered: u64 = report.sites.iter().map(|row| row.offered).sum();
    assert!(site_by_interval <= site_offered && site_by_interval + 20 >= site_offered);
    // The chain's interval rows count each inbound contact once, in its arrival interval.
    let chain_by_interval: u64 = report.intervals.iter().map(|row| row.offered).sum();
    assert_eq!(chain_by_interval, report.total.offered);
}

#[test]
fn chain_totals_count_an_overflowed_contact_once() {
    // Overflow on and callbacks off: every site offer is an arrival or an overflow-in.
    let mut scenario = Scenario::built_in().unwrap();
    scenario.callbacks.enabled = false;
    scenario.volume.contacts_per_day = 19_000.0;
    let report = engine::simulate(&scenario, scenario.seed, None).unwrap();
    let overflowed_in: u64 = report.sites.iter().map(|row| row.overflowed_in).sum();
    assert!(
        overflowed_in > 100,
        "the day must overflow: {overflowed_in}"
    );
    let arrivals: u64 = report
        .sites
        .iter()
        .map(|row| row.offered - row.overflowed_in)
        .sum();
    assert_eq!(report.total.offered, arrivals);
    // Every arrival ends once: answered, abandoned, or still in progress at the end.
    let total = &report.total;
    assert!(total.answered + total.abandoned <= total.offered);
    assert!(total.answered + total.abandoned + total.still_waiting_at_end + 5 >= total.offered);
    // The chain's wait runs from the first arrival, so its service level is not above the
    // sites' pooled one (an overflowed contact has already waited at its entry site).
    let site_within: u64 = report
        .sites
        .iter()
        .map(|row| row.answered_within_threshold)
        .sum();
    let site_answered: u64 = report.sites.iter().map(|row| row.answered).sum();
    assert!(total.answered_within_threshold <= site_within);
    assert!(total.answered <= site_answered);
    // No interval without contacts has a service level.
    for row in &report.intervals {
        assert_eq!(row.offered == 0, row.service_level.is_nan(), "{row:?}");
    }
}

#[test]
fn predicted_wait_overflow_on_a_busy_day_keeps_events_per_contact_bounded() {
    // A busy day with the predicted-wait trigger. Its overflow deadline used to be the head's
    // wait deadline: once past, the engine re-polled overflow every simulated millisecond
    // (8.4 M events here, 108 per contact; about 2.6 per contact once fixed).
    let mut scenario = Scenario::built_in().unwrap();
    scenario.volume.contacts_per_day = 40_000.0;
    scenario.overflow.enabled = true;
    scenario.overflow.trigger = OverflowTrigger::PredictedWait;
    let report = engine::simulate(&scenario, scenario.seed, None).unwrap();
    let offered = report.total.offered;
    let per_contact = report.events as f64 / offered as f64;
    println!(
        "{} events for {offered} contacts ({} offered, {} overflowed in): {per_contact:.2} per contact",
        report.events, report.total.offered, report.total.overflowed_in
    );
    assert!(per_contact < 30.0, "{per_contact:.2} events per contact");
    // The rule still sends contacts away, now evaluated on arrivals.
    assert!(report.total.overflowed_in > 0);
}
