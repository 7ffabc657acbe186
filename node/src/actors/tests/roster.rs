//! The Site actor takes logins of the cluster-wide roster: an agent another site defined
//! joins with the skills this site has; with none of them, or with an id taken here, the
//! login is refused clearly.

use super::*;
use crate::actors::site::SiteError;
use crate::state::command::{AgentDefinition, Command, Envelope};
use crate::state::model::Actor;

fn defined(login: &str, id: u32, skills: &[&str]) -> AgentDefinition {
    AgentDefinition {
        login: login.to_string(),
        id,
        skills: skills.iter().map(|skill| skill.to_string()).collect(),
        certificate_valid_until: None,
        chat_slots: 1,
    }
}

/// A msk site whose shared state holds ekb's seeded agents.
fn msk_with_ekb_roster(data: &Path) -> Addr<SiteActor> {
    let shared = SharedState::new();
    let seed = Envelope {
        at_ms: now_ms(),
        actor: Actor::system(),
        site: "ekb".to_string(),
        command: Command::SeedAgents {
            skills: vec!["line1".to_string(), "surgery".to_string()],
            agents: vec![
                defined("kira", 42, &["line1", "surgery"]),
                defined("zoya", 43, &["surgery"]),
                defined("clash", 1, &["line1"]),
            ],
        },
    };
    let bytes = crate::state::encode_envelope(&seed).unwrap();
    shared.apply_entry(1, &bytes);
    assert!(shared.read(|state| state.roster_agent("kira").is_some()));
    let proposer = Proposer::new(
        Arc::new(LocalReplicator::new(shared.clone())),
        "msk".to_string(),
    );
    let actor = SiteActor::new(site_config(60_000, data), proposer, shared).unwrap();
    Supervisor::start(move |_| actor)
}

#[actix_rt::test]
async fn an_agent_of_another_site_logs_in_with_the_skills_this_site_has() {
    let data = tempfile::tempdir().unwrap();
    let site = msk_with_ekb_roster(data.path());

    let kira = ask(&site, SiteInput::Login("kira".to_string())).await;
    assert_eq!(
        (kira["login"].as_str(), kira["id"].as_u64()),
        (Some("kira"), Some(42))
    );
    // Logged in again (already on this site's roster now): the same agent.
    ask(&site, SiteInput::Logout("kira".to_string())).await;
    ask(&site, SiteInput::Login("kira".to_string())).await;
    // Its line1 skill routes here (surgery, unknown here, was left out).
    ask(&site, SiteInput::Ready("kira".to_string())).await;
    let arrived = arrive(&site, Channel::Voice).await;
    assert_eq!(arrived["agent"], "kira", "{arrived}");

    let refused = site
        .send(SiteInput::Login("zoya".to_string()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&refused, SiteError::Conflict(text) if text.contains("none of this site's skills")),
        "{refused:?}"
    );
    let clash = site
        .send(SiteInput::Login("clash".to_string()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(&clash, SiteError::Conflict(text) if text.contains("anna")),
        "{clash:?}"
    );
    let unknown = site
        .send(SiteInput::Login("nobody".to_string()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(unknown, SiteError::NotFound(_)), "{unknown:?}");
}
