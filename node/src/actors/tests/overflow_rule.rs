//! Cross-site overflow at the Site actor: a queued callback stays, an inbound call goes, and a
//! contact that moved the maximum number of times is not moved again.
#![allow(clippy::unwrap_used)]

use super::*;

fn overflow_config(data: &Path) -> Arc<NodeConfig> {
    let text = r#"
[site]
id = "msk"
number = 0
data_dir = "DATA_DIR"

[routing]
offer_timeout_ms = 60000
skills = [{ name = "line1", channel = "voice", line = "line1" }]

[overflow]
enabled = true
trigger = "predicted_wait"
threshold_on_ms = 1000
threshold_off_ms = 500
share_out_max = 1.0

[[peer_sites]]
id = "spb"
number = 1

[[agents]]
login = "anna"
id = 1
skills = ["line1"]
"#;
    let text = text.replace("DATA_DIR", &data.display().to_string());
    Arc::new(NodeConfig::parse(&text, Path::new("test.toml")).unwrap())
}

/// A queued callback is this site's claimed task, dialled from here: the overflow rule must
/// not send it to a peer, even one with an idle agent; an inbound call ahead of it goes.
#[actix_rt::test]
async fn a_queued_callback_is_never_overflowed_but_an_inbound_call_is() {
    use crate::state::Command;
    use crate::state::model::{Actor as Principal, SiteSummary, SkillSummary, StatePolicy};

    let data = tempfile::tempdir().unwrap();
    let config = overflow_config(data.path());
    let shared = SharedState::new();
    let replicator = Arc::new(LocalReplicator::new(shared.clone()));
    let at_msk = Proposer::new(replicator.clone(), "msk".to_string());
    let at_spb = Proposer::new(replicator, "spb".to_string());
    let policy = StatePolicy {
        abandoned_callback_delay_ms: 0,
        ..config.state_policy()
    };
    at_msk
        .propose(Principal::system(), Command::SetPolicy(policy))
        .await
        .unwrap();
    at_msk
        .propose(
            Principal::system(),
            Command::CreateAbandonedCallback {
                caller: "+79160007070".to_string(),
                skill: "line1".to_string(),
                ordering_time_ms: now_ms().saturating_sub(60_000),
            },
        )
        .await
        .unwrap();
    let actor = SiteActor::new(config, at_msk, shared).unwrap();
    let site = Supervisor::start(move |_| actor);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while queue_length(&site).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "callback not queued"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // spb publishes an idle line-1 agent; msk's next summary tick reads it and polls.
    at_spb
        .propose(
            Principal::system(),
            Command::PublishSiteSummary(SiteSummary {
                site: "spb".to_string(),
                at_ms: now_ms(),
                skills: vec![SkillSummary {
                    skill: "line1".to_string(),
                    agents_idle: 3,
                    contacts_waiting: 0,
                    wait_ms_estimated: 0,
                }],
            }),
        )
        .await
        .unwrap();
    let idle = "callgrid_overflow_peer_agents_idle{site=\"msk\",peer=\"spb\",skill=\"line1\"} 3";
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(&site, idle).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "peer summary not read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(queue_length(&site).await, 1, "the callback stays queued");

    // An urgent inbound call goes to the head of the queue: the rule sends it to spb.
    let arrived = ask(
        &site,
        SiteInput::ContactArrived(Arrival {
            caller: "+79160008080".to_string(),
            channel: Channel::Voice,
            topic: Topic::Order,
            skill: None,
            priority: 9,
            overflowed_from: None,
        }),
    )
    .await;
    assert_eq!(arrived["stage"], "overflowed", "{arrived}");
    assert_eq!(arrived["overflowed_to"]["site"], "spb", "{arrived}");
    assert_eq!(queue_length(&site).await, 1, "the callback stays queued");
    assert_eq!(
        metric(&site, "callgrid_contacts_overflowed_out_total")
            .await
            .as_deref(),
        Some("callgrid_contacts_overflowed_out_total{site=\"msk\"} 1")
    );
}

/// A contact that already moved the domain's maximum number of times (`hops` in
/// `overflowed_from`) stays at this site although the rule would move it; one that moved
/// once (`hops` left out, as old gateways send) moves again, and its `overflowed_to`
/// carries the next hop count.
#[actix_rt::test]
async fn a_contact_that_moved_the_maximum_number_of_times_is_not_moved_again() {
    use crate::actors::overflow::{OVERFLOW_HOPS_MAX, OverflowedFrom};
    use crate::state::Command;
    use crate::state::model::{Actor as Principal, SiteSummary, SkillSummary};

    let data = tempfile::tempdir().unwrap();
    let config = overflow_config(data.path());
    let shared = SharedState::new();
    let replicator = Arc::new(LocalReplicator::new(shared.clone()));
    let at_msk = Proposer::new(replicator.clone(), "msk".to_string());
    let at_spb = Proposer::new(replicator, "spb".to_string());
    let actor = SiteActor::new(config, at_msk, shared).unwrap();
    let site = Supervisor::start(move |_| actor);
    at_spb
        .propose(
            Principal::system(),
            Command::PublishSiteSummary(SiteSummary {
                site: "spb".to_string(),
                at_ms: now_ms(),
                skills: vec![SkillSummary {
                    skill: "line1".to_string(),
                    agents_idle: 3,
                    contacts_waiting: 0,
                    wait_ms_estimated: 0,
                }],
            }),
        )
        .await
        .unwrap();
    let idle = "callgrid_overflow_peer_agents_idle{site=\"msk\",peer=\"spb\",skill=\"line1\"} 3";
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(&site, idle).await.is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "peer summary not read"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let from: OverflowedFrom = serde_json::from_value(json!({
        "site": "spb", "contact": 7, "arrived_at_ms": now_ms() - 1_000, "hops": OVERFLOW_HOPS_MAX,
    }))
    .unwrap();
    let arrived = ask(
        &site,
        SiteInput::ContactArrived(Arrival {
            caller: "+79160009090".to_string(),
            channel: Channel::Voice,
            topic: Topic::Order,
            skill: None,
            priority: 0,
            overflowed_from: Some(from),
        }),
    )
    .await;
    assert_eq!(arrived["stage"], "queued", "{arrived}");
    assert_eq!(queue_length(&site).await, 1);

    // Ahead of it (urgent), a contact from an old gateway: hops defaults to 1.
    let from: OverflowedFrom = serde_json::from_value(json!({
        "site": "spb", "contact": 8, "arrived_at_ms": now_ms() - 1_000,
    }))
    .unwrap();
    assert_eq!(from.hops, 1);
    let arrived = ask(
        &site,
        SiteInput::ContactArrived(Arrival {
            caller: "+79160009191".to_string(),
            channel: Channel::Voice,
            topic: Topic::Order,
            skill: None,
            priority: 9,
            overflowed_from: Some(from),
        }),
    )
    .await;
    assert_eq!(arrived["stage"], "overflowed", "{arrived}");
    assert_eq!(arrived["overflowed_to"]["site"], "spb", "{arrived}");
    assert_eq!(arrived["overflowed_to"]["hops"], 2, "{arrived}");
    assert_eq!(
        queue_length(&site).await,
        1,
        "the contact with no hops left stays"
    );
    assert_eq!(
        metric(&site, "callgrid_contacts_overflowed_out_total")
            .await
            .as_deref(),
        Some("callgrid_contacts_overflowed_out_total{site=\"msk\"} 1")
    );
}
