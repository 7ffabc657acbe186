//! Issue 8, one convention everywhere (docs/CONVENTIONS.md), through a real `callgrid`
//! process: an agent's state is a name with the not-ready reason beside it in every view and
//! stream, and the supervisor stream names agents and skills and gives epoch ms.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use serde_json::{Value, json};

fn epoch_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Reads the socket until `found` matches a message.
fn read_until(socket: &mut Socket, mut found: impl FnMut(&Value) -> bool) -> Value {
    loop {
        let event = next_event(socket);
        if found(&event) {
            return event;
        }
    }
}

#[test]
fn an_agent_state_is_a_name_with_the_reason_beside_it() {
    let (_directory, node) = single_site();
    let mut desktop = connect(&node, "/api/v1/agents/boris/stream", Some(BORIS)).unwrap();
    let first = next_event(&mut desktop);
    assert_eq!(first["type"], "state");
    assert_eq!(first["state"], "logged_out", "{first}");
    assert!(first["not_ready_reason"].is_null(), "{first}");

    node.call("POST", "/api/v1/agents/boris/login", Some(BORIS), None);
    let (status, answer) = node.call(
        "POST",
        "/api/v1/agents/boris/state",
        Some(BORIS),
        Some(json!({"state": "not_ready", "reason": "other_work"})),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["state"], "not_ready", "{answer}");
    assert_eq!(answer["not_ready_reason"], "other_work", "{answer}");

    let (_, view) = node.call("GET", "/api/v1/agents/boris", Some(BORIS), None);
    assert_eq!(view["state"], "not_ready", "{view}");
    assert_eq!(view["not_ready_reason"], "other_work", "{view}");
    let (_, agents) = node.call("GET", "/api/v1/supervisor/agents", Some(SUPERVISOR), None);
    let boris = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|agent| agent["login"] == "boris")
        .unwrap();
    assert_eq!(boris["state"], "not_ready", "{boris}");
    assert_eq!(boris["not_ready_reason"], "other_work", "{boris}");
    // Login makes the agent available first, then the state change arrives.
    let streamed = read_until(&mut desktop, |event| {
        event["type"] == "state" && event["state"] == "not_ready"
    });
    assert_eq!(streamed["state"], "not_ready", "{streamed}");
    assert_eq!(streamed["not_ready_reason"], "other_work", "{streamed}");
    assert!(streamed["since_ms"].as_u64().unwrap() > 1_700_000_000_000);

    // The old numeric code still works and reads back by name; an unknown name is a 400.
    let (status, answer) = node.call(
        "POST",
        "/api/v1/agents/boris/state",
        Some(BORIS),
        Some(json!({"state": "not_ready", "reason": 3})),
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["not_ready_reason"], "break", "{answer}");
    let (status, answer) = node.call(
        "POST",
        "/api/v1/agents/boris/state",
        Some(BORIS),
        Some(json!({"state": "not_ready", "reason": "lunch"})),
    );
    assert_eq!(status, 400, "{answer}");

    let (_, answer) = node.call(
        "POST",
        "/api/v1/agents/boris/state",
        Some(BORIS),
        Some(json!({"state": "ready"})),
    );
    assert_eq!(answer["state"], "available", "{answer}");
    assert!(answer["not_ready_reason"].is_null(), "{answer}");
}

#[test]
fn the_supervisor_stream_names_agents_and_skills_and_gives_epoch_ms() {
    let (_directory, node) = single_site();
    let mut wallboard = connect(&node, "/api/v1/supervisor/stream", Some(SUPERVISOR)).unwrap();
    let before = epoch_ms();
    ready(&node, "anna", ANNA);
    let (status, arrived) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79165550901", "topic": "order"})),
    );
    assert_eq!(status, 201, "{arrived}");

    let changed = read_until(&mut wallboard, |message| {
        message["type"] == "event"
            && message["event"]["event"] == "agent_state_changed"
            && message["event"]["to"] == "available"
    });
    let changed = &changed["event"];
    assert_eq!(changed["agent"], "anna", "{changed}");
    assert_eq!(changed["site"], "msk", "{changed}");
    assert!(changed["to_not_ready_reason"].is_null(), "{changed}");

    let offered = read_until(&mut wallboard, |message| {
        message["type"] == "event" && message["event"]["event"] == "offered"
    });
    let offered = &offered["event"];
    assert_eq!(offered["agent"], "anna", "{offered}");
    assert_eq!(offered["skill"], "line1", "{offered}");
    assert_eq!(offered["contact"], arrived["contact"]["id"], "{offered}");
    let at = offered["at_ms"].as_u64().unwrap();
    let after = epoch_ms();
    assert!(
        before.saturating_sub(2_000) <= at && at <= after + 2_000,
        "at_ms {at} is epoch ms (between {before} and {after})"
    );
    assert!(
        offered.get("at").is_none(),
        "no routing-time field: {offered}"
    );
}
