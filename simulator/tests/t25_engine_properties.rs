//! Property tests of the engine on random small scenarios: it never fails, it conserves
//! contacts per site (the routing core's identity), and the same seed gives the same report.
#![allow(clippy::unwrap_used)]

use callgrid_sim::engine;
use callgrid_sim::scenario::{Distribution, OutageConfig, Scenario, StaffingConfig};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Shape {
    sites: usize,
    contacts_per_day: f64,
    line1_agents: Vec<u32>,
    line2_agents: u32,
    chat_share: f64,
    transfer_share: f64,
    patience_s_mean: Option<f64>,
    overflow: bool,
    outage: bool,
    seed: u64,
}

fn shapes() -> impl Strategy<Value = Shape> {
    (1usize..=3).prop_flat_map(|sites| {
        (
            Just(sites),
            500.0..4_000.0f64,
            proptest::collection::vec(1u32..12, sites),
            1u32..4,
            0.0..0.4f64,
            0.0..0.3f64,
            proptest::option::of(20.0..400.0f64),
            any::<bool>(),
            any::<bool>(),
            any::<u64>(),
        )
            .prop_map(
                |(
                    sites,
                    contacts_per_day,
                    line1_agents,
                    line2_agents,
                    chat_share,
                    transfer_share,
                    patience_s_mean,
                    overflow,
                    outage,
                    seed,
                )| Shape {
                    sites,
                    contacts_per_day,
                    line1_agents,
                    line2_agents,
                    chat_share,
                    transfer_share,
                    patience_s_mean,
                    overflow,
                    outage,
                    seed,
                },
            )
    })
}

fn scenario(shape: &Shape) -> Scenario {
    let mut scenario = Scenario::built_in().unwrap();
    scenario.seed = shape.seed;
    scenario.volume.contacts_per_day = shape.contacts_per_day;
    scenario.channels.chat_share = shape.chat_share;
    if let Some(transfer) = scenario.transfer.as_mut() {
        transfer.share = shape.transfer_share;
    }
    scenario.patience = match shape.patience_s_mean {
        Some(mean_s) => Distribution::Exponential { mean_s },
        None => Distribution::None,
    };
    scenario.overflow.enabled = shape.overflow;
    let template = scenario.sites[0].clone();
    scenario.sites = (0..shape.sites)
        .map(|index| {
            let mut site = template.clone();
            site.name = format!("site{index}");
            site.volume_share = 1.0 / shape.sites as f64;
            site.staffing = vec![
                StaffingConfig {
                    skills: vec!["line1".to_owned()],
                    start: "08:00".to_owned(),
                    end: Some("22:00".to_owned()),
                    agents: Some(shape.line1_agents[index]),
                    per_interval: None,
                },
                StaffingConfig {
                    skills: vec!["complaints".to_owned(), "line2".to_owned()],
                    start: "08:00".to_owned(),
                    end: Some("22:00".to_owned()),
                    agents: Some(shape.line2_agents),
                    per_interval: None,
                },
            ];
            site
        })
        .collect();
    let last = scenario.sites.len() - 1;
    if let Some(site) = scenario.sites.last_mut() {
        site.volume_share = 1.0 - (last as f64) / shape.sites as f64;
    }
    if shape.outage {
        scenario.outages = vec![OutageConfig {
            site: "site0".to_owned(),
            day: 0,
            start: "12:00".to_owned(),
            end: "13:30".to_owned(),
        }];
    }
    scenario
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn engine_conserves_contacts_and_is_deterministic(shape in shapes()) {
        let scenario = scenario(&shape);
        prop_assert!(scenario.check().is_empty(), "{:?}", scenario.check());
        let report = engine::simulate(&scenario, scenario.seed, None).unwrap();
        for site in &report.sites {
            prop_assert_eq!(
                site.offered,
                site.answered + site.abandoned + site.overflowed_out_unanswered + site.still_waiting_at_end,
                "{:?}", site
            );
            prop_assert!(site.answered_within_threshold <= site.answered);
        }
        let total_out: u64 = report.sites.iter().map(|site| site.overflowed_out).sum();
        let total_in: u64 = report.sites.iter().map(|site| site.overflowed_in).sum();
        prop_assert!(total_in <= total_out, "in {} out {}", total_in, total_out);
        if !shape.overflow && !shape.outage {
            prop_assert_eq!(total_out, 0);
        }
        let again = engine::simulate(&scenario, scenario.seed, None).unwrap();
        prop_assert_eq!(serde_json::to_string(&report).unwrap(), serde_json::to_string(&again).unwrap());
    }
}
