//! Regression tests for the defects of issue 8 found in review (each failed before its fix).
#![allow(clippy::unwrap_used)]

use super::*;

/// An input about a contact the site never saw is "not found", not a state conflict.
#[actix_rt::test]
async fn an_unknown_contact_is_not_found_not_a_conflict() {
    let (site, _data) = start_site(60_000);
    for input in [
        SiteInput::ContactAnswered {
            contact: ContactId(424_242),
            agent: "anna".to_string(),
        },
        SiteInput::ContactEnded(ContactId(424_242)),
        SiteInput::ContactAbandoned(ContactId(424_242)),
    ] {
        let error = site.send(input).await.unwrap().unwrap_err();
        assert!(
            matches!(error, crate::actors::site::SiteError::NotFound(_)),
            "{error:?}"
        );
    }
}

/// Defect 3: contact ids go on above the old ones when the Site actor (or the node) starts
/// again, so a late gateway event for an old contact cannot hit a new one.
#[actix_rt::test]
async fn contact_ids_stay_unique_across_a_restart_of_the_site() {
    let (first, _first_data) = start_site(60_000);
    let before = arrive(&first, Channel::Voice).await["id"].as_u64().unwrap();
    drop(first);
    // A new process starts (a real restart takes far longer than the counter's millisecond).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (second, _second_data) = start_site(60_000);
    let after = arrive(&second, Channel::Voice).await["id"]
        .as_u64()
        .unwrap();
    assert!(after > before, "new id {after} after old id {before}");
    assert!(after < 1 << 53, "exact in JSON");
}

/// Defect 5: the gateway names the agent whose leg was answered; a stale answer for another
/// agent (the contact was re-offered) is refused and changes nothing.
#[actix_rt::test]
async fn answered_names_the_agent_and_is_refused_for_another_one() {
    let (site, _data) = start_site(60_000);
    ask(&site, SiteInput::Login("anna".to_string())).await;
    ask(&site, SiteInput::Ready("anna".to_string())).await;
    ask(&site, SiteInput::Login("boris".to_string())).await;
    let arrived = arrive(&site, Channel::Voice).await;
    assert_eq!(arrived["agent"], "anna");
    let contact = ContactId(arrived["id"].as_u64().unwrap());
    let refused = site
        .send(SiteInput::ContactAnswered {
            contact,
            agent: "boris".to_string(),
        })
        .await
        .unwrap();
    assert!(
        matches!(refused, Err(crate::actors::site::SiteError::Conflict(_))),
        "{refused:?}"
    );
    let view = ask(&site, SiteInput::AgentView("anna".to_string())).await;
    assert_eq!(view["contacts"][0]["stage"], "offered", "nothing changed");
    let answered = ask(
        &site,
        SiteInput::ContactAnswered {
            contact,
            agent: "anna".to_string(),
        },
    )
    .await;
    assert_eq!(answered["stage"], "talking");
    assert_eq!(answered["agent"], "anna");
}

fn transfer_config(data: &Path) -> Arc<NodeConfig> {
    let text = r#"
[site]
id = "msk"
number = 0
data_dir = "DATA_DIR"

[routing]
offer_timeout_ms = 60000
skills = [
  { name = "line1", channel = "voice", line = "line1" },
  { name = "line2", channel = "voice", line = "line2" },
]

[[agents]]
login = "anna"
id = 1
skills = ["line1"]

[[agents]]
login = "vera"
id = 3
skills = ["line2"]
certificate_valid_until = "2099-12-31"
"#;
    let text = text.replace("DATA_DIR", &data.display().to_string());
    Arc::new(NodeConfig::parse(&text, Path::new("test.toml")).unwrap())
}

/// Defect 13: the consultant's offer after a line-1 → line-2 transfer names the new skill and
/// where it came from; a transfer to the skill the contact is on is refused.
#[actix_rt::test]
async fn a_transfer_offers_the_new_skill_and_refuses_the_same_skill() {
    let shared = SharedState::new();
    let proposer = Proposer::new(
        Arc::new(LocalReplicator::new(shared.clone())),
        "msk".to_string(),
    );
    let data = tempfile::tempdir().unwrap();
    let actor = SiteActor::new(transfer_config(data.path()), proposer, shared).unwrap();
    let site = Supervisor::start(move |_| actor);
    for login in ["anna", "vera"] {
        ask(&site, SiteInput::Login(login.to_string())).await;
        ask(&site, SiteInput::Ready(login.to_string())).await;
    }
    let (stream, mut desktop) = mpsc::channel(PROBE_BUFFER);
    site.send(Subscribe {
        audience: Audience::Agent("vera".to_string()),
        sender: stream,
    })
    .await
    .unwrap()
    .unwrap();
    let arrived = arrive(&site, Channel::Voice).await;
    let contact = ContactId(arrived["id"].as_u64().unwrap());
    ask(
        &site,
        SiteInput::Accept {
            login: "anna".to_string(),
            contact,
        },
    )
    .await;
    let same = site
        .send(SiteInput::Transfer {
            login: "anna".to_string(),
            contact,
            skill: "line1".to_string(),
        })
        .await
        .unwrap();
    assert!(same.is_err(), "a transfer to the same skill: {same:?}");
    ask(
        &site,
        SiteInput::Transfer {
            login: "anna".to_string(),
            contact,
            skill: "line2".to_string(),
        },
    )
    .await;
    loop {
        let event: Value = serde_json::from_str(&next(&mut desktop).await).unwrap();
        if event["type"] == "offer" {
            assert_eq!(event["contact"]["skill"], "line2", "{event}");
            assert_eq!(event["contact"]["transferred_from"], "line1", "{event}");
            break;
        }
    }
}

/// A replicator whose state is still replaying at start: its read barrier resolves only
/// once the test says the replay is done.
#[derive(Debug, Clone)]
struct ReplayingReplicator {
    inner: LocalReplicator,
    replayed: tokio::sync::watch::Receiver<bool>,
}

impl crate::replicate::Replicator for ReplayingReplicator {
    fn propose(
        &self,
        command: Vec<u8>,
    ) -> futures::future::BoxFuture<'static, Result<Vec<u8>, crate::replicate::ReplicateError>>
    {
        self.inner.propose(command)
    }

    fn read_barrier(
        &self,
    ) -> futures::future::BoxFuture<'static, Result<(), crate::replicate::ReplicateError>> {
        let mut replayed = self.replayed.clone();
        Box::pin(async move {
            replayed
                .wait_for(|done| *done)
                .await
                .map_err(|_| crate::replicate::ReplicateError::ShuttingDown)?;
            Ok(())
        })
    }

    fn health(&self) -> crate::replicate::ReplicaHealth {
        self.inner.health()
    }

    fn shutdown(&self) {}
}

/// Defect 12: a callback this site had queued as a call before a restart is queued again
/// even when the replicated state is still replaying as the Site actor starts.
#[actix_rt::test]
async fn claimed_callbacks_are_requeued_after_the_state_is_reloaded() {
    use crate::state::model::{Actor as Principal, StatePolicy};
    use crate::state::{Command, Outcome};

    let data = tempfile::tempdir().unwrap();
    let config = site_config(60_000, data.path());
    let shared = SharedState::new();
    let inner = LocalReplicator::new(shared.clone());
    let (replay_done, replayed) = tokio::sync::watch::channel(false);
    let replicator = ReplayingReplicator {
        inner: inner.clone(),
        replayed,
    };
    let proposer = Proposer::new(Arc::new(replicator.clone()), "msk".to_string());
    let actor = SiteActor::new(config.clone(), proposer.clone(), shared).unwrap();
    let site = Supervisor::start(move |_| actor);
    assert_eq!(queue_length(&site).await, 0, "started on an empty state");

    // The replay: what the log held before the restart (the callback claimed by msk).
    let replay = Proposer::new(Arc::new(inner), "msk".to_string());
    let policy = StatePolicy {
        abandoned_callback_delay_ms: 0,
        ..config.state_policy()
    };
    replay
        .propose(Principal::system(), Command::SetPolicy(policy))
        .await
        .unwrap();
    let created = replay
        .propose(
            Principal::system(),
            Command::CreateAbandonedCallback {
                caller: "+79160006060".to_string(),
                skill: "line1".to_string(),
                ordering_time_ms: now_ms().saturating_sub(60_000),
            },
        )
        .await
        .unwrap();
    let Outcome::CallbacksCreated(ids) = created else {
        panic!("unexpected {created:?}");
    };
    replay
        .propose(
            Principal::system(),
            Command::ClaimCallback { callback: ids[0] },
        )
        .await
        .unwrap();
    replay_done.send(true).unwrap();

    let deadline = tokio::time::Instant::now() + PATIENCE;
    while queue_length(&site).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the claimed callback was never queued again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Defect 13: a presence input that changes nothing says so (200 with `changed: false`).
#[actix_rt::test]
async fn a_presence_input_that_changes_nothing_says_so() {
    let (site, _data) = start_site(60_000);
    let login = ask(&site, SiteInput::Login("anna".to_string())).await;
    assert_eq!(login["changed"], true, "{login}");
    let paused = ask(
        &site,
        SiteInput::NotReady {
            login: "anna".to_string(),
            reason: 3,
        },
    )
    .await;
    assert_eq!(paused["changed"], true, "{paused}");
    let ready = ask(&site, SiteInput::Ready("anna".to_string())).await;
    assert_eq!(ready["changed"], true, "{ready}");
    let again = ask(&site, SiteInput::Ready("anna".to_string())).await;
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["state"], "available");
    let view = ask(&site, SiteInput::AgentView("anna".to_string())).await;
    assert!(
        view.get("changed").is_none(),
        "views carry no `changed`: {view}"
    );
}

/// Defect 10: the agent answers a chat; the line goes to the gateways (which deliver it) and
/// joins the transcript kept with the contact; another agent may not write into it.
#[actix_rt::test]
async fn an_agent_replies_to_a_chat_and_the_transcript_keeps_both_sides() {
    let (site, _data) = start_site(60_000);
    ask(&site, SiteInput::Login("anna".to_string())).await;
    ask(&site, SiteInput::Ready("anna".to_string())).await;
    let (stream, mut gateway) = mpsc::channel(PROBE_BUFFER);
    site.send(Subscribe {
        audience: Audience::Gateway,
        sender: stream,
    })
    .await
    .unwrap()
    .unwrap();
    let arrived = arrive(&site, Channel::Chat).await;
    let contact = ContactId(arrived["id"].as_u64().unwrap());
    ask(
        &site,
        SiteInput::Accept {
            login: "anna".to_string(),
            contact,
        },
    )
    .await;
    ask(
        &site,
        SiteInput::ChatMessage {
            contact,
            text: "do you have aspirin?".to_string(),
        },
    )
    .await;
    let refused = site
        .send(SiteInput::AgentChat {
            login: "boris".to_string(),
            contact,
            text: "not mine".to_string(),
        })
        .await
        .unwrap();
    assert!(refused.is_err(), "{refused:?}");
    ask(
        &site,
        SiteInput::AgentChat {
            login: "anna".to_string(),
            contact,
            text: "yes, 12 packs".to_string(),
        },
    )
    .await;
    loop {
        let event: Value = serde_json::from_str(&next(&mut gateway).await).unwrap();
        if event["type"] == "chat_message" {
            assert_eq!(event["message"]["text"], "yes, 12 packs");
            assert_eq!(event["message"]["from"], "agent");
            break;
        }
    }
    let view = site
        .send(LookupContact {
            contact,
            agent: Some("anna".to_string()),
        })
        .await
        .unwrap()
        .unwrap();
    let lines: Vec<(String, String)> = view
        .messages
        .unwrap()
        .iter()
        .map(|line| (format!("{:?}", line.from), line.text.clone()))
        .collect();
    assert_eq!(
        lines,
        [
            ("Customer".to_string(), "do you have aspirin?".to_string()),
            ("Agent".to_string(), "yes, 12 packs".to_string()),
        ]
    );
}

/// Section 4: a logged-out agent's desktop stream gets the state snapshot on connect.
#[actix_rt::test]
async fn a_logged_out_agents_stream_gets_its_state_on_connect() {
    let (site, _data) = start_site(60_000);
    let (stream, mut desktop) = mpsc::channel(PROBE_BUFFER);
    site.send(Subscribe {
        audience: Audience::Agent("anna".to_string()),
        sender: stream,
    })
    .await
    .unwrap()
    .unwrap();
    let first: Value = serde_json::from_str(&next(&mut desktop).await).unwrap();
    assert_eq!(first["type"], "state", "{first}");
    assert_eq!(first["state"], "logged_out", "{first}");
}
