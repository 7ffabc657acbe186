//! Issue 8 defect 9 (monitoring): a listen/whisper/barge request goes to the contact the agent
//! is talking on, never to one ringing or in wrap-up (the first of the agent's contacts was
//! taken before the fix).
#![allow(clippy::unwrap_used)]

use super::*;
use crate::actors::site::SiteError;

/// anna handles two chats at once.
fn two_chat_config(data: &Path) -> Arc<NodeConfig> {
    let text = format!(
        r#"
[site]
id = "msk"
city = "Testgrad"
number = 0
data_dir = "{data}"

[routing]
offer_timeout_ms = 60000
skills = [{{ name = "chat", channel = "chat", line = "line1" }}]

[[agents]]
login = "anna"
id = 1
skills = ["chat"]
chat_slots = 2
"#,
        data = data.display()
    );
    Arc::new(NodeConfig::parse(&text, Path::new("test.toml")).unwrap())
}

async fn monitor(site: &Addr<SiteActor>) -> Result<Value, SiteError> {
    site.send(SiteInput::Monitor {
        supervisor: "olga".to_string(),
        agent: "anna".to_string(),
        mode: "listen".to_string(),
    })
    .await
    .unwrap()
    .map(|reply| serde_json::to_value(reply).unwrap())
}

async fn stages(site: &Addr<SiteActor>) -> Vec<(u64, String)> {
    let view = ask(site, SiteInput::AgentView("anna".to_string())).await;
    view["contacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|contact| {
            (
                contact["id"].as_u64().unwrap(),
                contact["stage"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[actix_rt::test]
async fn monitoring_picks_the_talking_contact_not_a_ringing_or_wrap_up_one() {
    let data = tempfile::tempdir().unwrap();
    let shared = SharedState::new();
    let proposer = Proposer::new(
        Arc::new(LocalReplicator::new(shared.clone())),
        "msk".to_string(),
    );
    let actor = SiteActor::new(two_chat_config(data.path()), proposer, shared).unwrap();
    let site = Supervisor::start(move |_| actor);
    ask(&site, SiteInput::Login("anna".to_string())).await;
    ask(&site, SiteInput::Ready("anna".to_string())).await;

    // Ringing only: nothing to listen to.
    let first = ContactId(arrive(&site, Channel::Chat).await["id"].as_u64().unwrap());
    assert_eq!(stages(&site).await, vec![(first.0, "offered".to_string())]);
    let refused = monitor(&site).await;
    assert!(
        matches!(refused, Err(SiteError::Conflict(_))),
        "a ringing contact is not monitored: {refused:?}"
    );

    // The first chat talked and ended (wrap-up), the second one ringing then talking.
    let login = || "anna".to_string();
    ask(
        &site,
        SiteInput::Accept {
            login: login(),
            contact: first,
        },
    )
    .await;
    ask(
        &site,
        SiteInput::End {
            login: login(),
            contact: first,
        },
    )
    .await;
    let second = ContactId(arrive(&site, Channel::Chat).await["id"].as_u64().unwrap());
    let refused = monitor(&site).await;
    assert!(
        matches!(refused, Err(SiteError::Conflict(_))),
        "wrap-up and ringing are not monitored: {refused:?} ({:?})",
        stages(&site).await
    );
    ask(
        &site,
        SiteInput::Accept {
            login: login(),
            contact: second,
        },
    )
    .await;
    let held = stages(&site).await;
    assert_eq!(
        held.first().map(|(id, stage)| (*id, stage.as_str())),
        Some((first.0, "wrap_up")),
        "the agent's first contact is the one in wrap-up: {held:?}"
    );
    assert!(
        held.contains(&(second.0, "talking".to_string())),
        "{held:?}"
    );
    let request = monitor(&site).await.unwrap();
    assert_eq!(request["contact"], second.0, "{request}");
    assert_eq!(request["mode"], "listen");
    assert_eq!(request["agent"], "anna");
}
