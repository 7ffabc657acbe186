//! The cluster-wide agent roster: seeds merge idempotently, each agent is checked on apply,
//! a login another site defined differently is refused (never overwritten), snapshots.

use super::*;
use crate::state::command::AgentDefinition;

fn agent_def(login: &str, id: u32, skills: &[&str]) -> AgentDefinition {
    AgentDefinition {
        login: login.to_string(),
        id,
        skills: skills.iter().map(|skill| skill.to_string()).collect(),
        certificate_valid_until: None,
        chat_slots: 1,
    }
}

fn skills() -> Vec<String> {
    ["pharmacy", "orders", "complaints"]
        .iter()
        .map(|skill| skill.to_string())
        .collect()
}

fn seed_at(
    harness: &mut Harness,
    site: &str,
    agents: Vec<AgentDefinition>,
) -> Result<Outcome, ApplyError> {
    harness.index += 1;
    let envelope = Envelope {
        at_ms: harness.index * 1_000,
        actor: Actor::system(),
        site: site.to_string(),
        command: Command::SeedAgents {
            skills: skills(),
            agents,
        },
    };
    harness.state.apply(harness.index, &envelope)
}

fn seeded(outcome: Result<Outcome, ApplyError>) -> (u32, u32, Vec<String>) {
    match outcome {
        Ok(Outcome::AgentsSeeded {
            added,
            unchanged,
            refused,
        }) => (
            added,
            unchanged,
            refused.into_iter().map(|(login, _)| login).collect(),
        ),
        other => panic!("not a seed outcome: {other:?}"),
    }
}

#[test]
fn a_seed_is_idempotent_and_records_the_defining_site() {
    let mut harness = Harness::new();
    let agents = vec![
        agent_def("anna", 1, &["pharmacy"]),
        agent_def("boris", 2, &["orders", "complaints"]),
    ];
    assert_eq!(
        seeded(seed_at(&mut harness, "msk", agents.clone())),
        (2, 0, vec![])
    );
    let before = harness.state.clone();
    assert_eq!(seeded(seed_at(&mut harness, "msk", agents)), (0, 2, vec![]));
    // Same content from another site is no conflict either.
    assert_eq!(
        seeded(seed_at(
            &mut harness,
            "ekb",
            vec![agent_def("anna", 1, &["pharmacy"])]
        )),
        (0, 1, vec![])
    );
    let anna = harness.state.roster_agent("anna").unwrap();
    assert_eq!(anna.defined_by_site, "msk");
    assert_eq!(
        anna,
        before.roster_agent("anna").unwrap(),
        "an unchanged agent keeps its record"
    );
    assert_eq!(harness.state.roster_agents().count(), 2);
}

#[test]
fn a_login_another_site_defined_differently_is_refused_not_overwritten() {
    let mut harness = Harness::new();
    seed_at(
        &mut harness,
        "msk",
        vec![agent_def("anna", 1, &["pharmacy"])],
    )
    .unwrap();
    // ekb defines anna with other skills, plus its own vera: anna is refused, vera taken.
    let outcome = seed_at(
        &mut harness,
        "ekb",
        vec![
            agent_def("anna", 1, &["orders"]),
            agent_def("vera", 7, &["orders"]),
        ],
    );
    assert_eq!(seeded(outcome), (1, 0, vec!["anna".to_string()]));
    let anna = harness.state.roster_agent("anna").unwrap();
    assert_eq!(anna.defined_by_site, "msk");
    assert_eq!(anna.agent.skills, vec!["pharmacy".to_string()]);
    // A seed with nothing acceptable is refused whole; the state is unchanged.
    let before = harness.state.clone();
    let error = seed_at(&mut harness, "ekb", vec![agent_def("anna", 1, &["orders"])]).unwrap_err();
    assert!(
        matches!(&error, ApplyError::Conflict(text) if text.contains("defined by site msk")),
        "{error:?}"
    );
    assert_eq!(
        harness.state.roster_agent("anna"),
        before.roster_agent("anna")
    );
    // The defining site may change its own agent (its configuration changed).
    assert_eq!(
        seeded(seed_at(
            &mut harness,
            "msk",
            vec![agent_def("anna", 1, &["pharmacy", "orders"])]
        )),
        (1, 0, vec![])
    );
    assert_eq!(
        harness
            .state
            .roster_agent("anna")
            .unwrap()
            .agent
            .skills
            .len(),
        2
    );
}

#[test]
fn each_agent_is_checked_on_apply() {
    let mut harness = Harness::new();
    seed_at(
        &mut harness,
        "msk",
        vec![agent_def("anna", 1, &["pharmacy"])],
    )
    .unwrap();
    let mut bad_date = agent_def("dora", 4, &["orders"]);
    bad_date.certificate_valid_until = Some("next week".to_string());
    let mut no_slots = agent_def("egor", 5, &["orders"]);
    no_slots.chat_slots = 0;
    let outcome = seed_at(
        &mut harness,
        "ekb",
        vec![
            agent_def("bad login", 2, &["orders"]),
            agent_def("", 3, &["orders"]),
            agent_def("boris", 9, &["surgery"]),
            agent_def("zoya", 10, &[]),
            agent_def("ivan", 1, &["orders"]),
            bad_date,
            no_slots,
            agent_def("olga", 6, &["orders"]),
            agent_def("olga", 8, &["orders"]),
        ],
    );
    let (added, unchanged, refused) = seeded(outcome);
    assert_eq!((added, unchanged), (1, 0));
    assert_eq!(
        refused,
        [
            "bad login",
            "",
            "boris",
            "zoya",
            "ivan",
            "dora",
            "egor",
            "olga"
        ]
    );
    assert_eq!(harness.state.roster_agents().count(), 2, "anna and olga");
    assert!(
        harness.state.roster_agent("ivan").is_none(),
        "id 1 is anna's"
    );
}

#[test]
fn an_empty_or_oversized_seed_is_invalid() {
    let mut harness = Harness::new();
    let error = seed_at(&mut harness, "msk", Vec::new()).unwrap_err();
    assert!(matches!(error, ApplyError::Invalid(_)), "{error:?}");
}

#[test]
fn the_roster_survives_a_snapshot_and_a_format_3_snapshot_is_read_with_an_empty_roster() {
    let shared = SharedState::new();
    let order = encode_envelope(&envelope(1_000, pickup_order())).unwrap();
    shared.apply_entry(1, &order);
    let seed = encode_envelope(&Envelope {
        at_ms: 2_000,
        actor: Actor::system(),
        site: "msk".to_string(),
        command: Command::SeedAgents {
            skills: skills(),
            agents: vec![agent_def("anna", 1, &["pharmacy"])],
        },
    })
    .unwrap();
    shared.apply_entry(2, &seed);
    let snapshot = shared.snapshot().unwrap();
    assert_eq!(snapshot[0], crate::state::SNAPSHOT_FORMAT_VERSION);
    let restored = SharedState::new();
    restored.restore(&snapshot).unwrap();
    shared.read(|one| restored.read(|two| assert_eq!(one, two)));
    assert!(restored.read(|state| state.roster_agent("anna").is_some()));

    // The roster is the body's last field (a format 3 snapshot, without it, reads as an
    // empty roster: see `snapshot_v3`).
    let config = bincode::config::standard();
    let roster =
        shared.read(|state| bincode::serde::encode_to_vec(state.agent_roster(), config).unwrap());
    assert!(snapshot.ends_with(&roster));
    let mut old = snapshot.clone();
    // A format 2 snapshot is still refused.
    old[0] = 2;
    assert!(SharedState::new().restore(&old).is_err());
}
