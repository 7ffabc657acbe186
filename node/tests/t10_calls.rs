//! Calls through a real `callgrid` process: arrival to wrap-up, transfer to line 2, and the
//! callback for an abandoned caller at the caller's old place.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn call_from_arrival_to_wrap_up() {
    let (_directory, node) = single_site();
    ready(&node, "anna", ANNA);
    let (status, arrived) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+7 916 000-11-22", "topic": "price_availability"})),
    );
    assert_eq!(status, 201, "{arrived}");
    let contact = arrived["contact"]["id"].as_u64().unwrap();
    assert_eq!(
        arrived["contact"]["stage"], "offered",
        "a ready agent gets the offer at once"
    );
    assert_eq!(arrived["contact"]["agent"], "anna");

    // Another agent may not touch it.
    let (status, _) = node.call(
        "POST",
        &format!("/api/v1/agents/boris/contacts/{contact}/accept"),
        Some(BORIS),
        None,
    );
    assert_eq!(status, 403);
    let (status, _) = node.call(
        "GET",
        &format!("/api/v1/contacts/{contact}"),
        Some(BORIS),
        None,
    );
    assert_eq!(status, 403, "an agent sees only its own contacts");

    let (status, accepted) = node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/accept"),
        Some(ANNA),
        None,
    );
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["stage"], "talking");
    let (_, agents) = node.call("GET", "/api/v1/supervisor/agents", Some(SUPERVISOR), None);
    let anna = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|agent| agent["login"] == "anna")
        .unwrap()
        .clone();
    assert_eq!(anna["state"], "busy");
    assert_eq!(anna["contacts"][0]["id"].as_u64(), Some(contact));

    let (status, ended) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/ended"),
        Some(GATEWAY),
        None,
    );
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["stage"], "wrap_up");
    let (status, wrapped) = node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/wrap-up"),
        Some(ANNA),
        Some(json!({"code": "price-given"})),
    );
    assert_eq!(status, 200, "{wrapped}");
    assert_eq!(wrapped["stage"], "finished");
    assert_eq!(wrapped["wrap_up_code"], "price-given");
    // A late hang-up from the gateway changes nothing and gets the final view.
    let (status, late) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/ended"),
        Some(GATEWAY),
        None,
    );
    assert_eq!(status, 200, "{late}");
    assert_eq!(late["stage"], "finished");
    assert_eq!(late["wrap_up_code"], "price-given");
    let (_, view) = node.call("GET", "/api/v1/agents/anna", Some(ANNA), None);
    assert_eq!(view["state"], "available");

    let (status, metrics) = node.call("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    assert!(
        text.contains("callgrid_contacts_answered_total{site=\"msk\"} 1"),
        "{text}"
    );
    let (status, report) = node.call(
        "GET",
        "/api/v1/reports/intervals?format=csv",
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 200);
    assert!(
        report
            .as_str()
            .unwrap()
            .starts_with("interval_start,site,skill,offered")
    );
}

#[test]
fn transfer_to_line_two_reaches_only_a_certified_consultant() {
    let (_directory, node) = single_site();
    ready(&node, "vera", VERA);
    ready(&node, "anna", ANNA);
    let (_, arrived) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79160001133", "topic": "order"})),
    );
    let contact = arrived["contact"]["id"].as_u64().unwrap();
    assert_eq!(arrived["contact"]["agent"], "anna");
    node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/accept"),
        Some(ANNA),
        None,
    );

    let (status, transferred) = node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/transfer"),
        Some(ANNA),
        Some(json!({"skill": "line2"})),
    );
    assert_eq!(status, 200, "{transferred}");
    assert_eq!(transferred["skill"], "line2");
    assert_eq!(transferred["transferred_from"], "line1");
    // Vera's certificate expired: the contact waits for a certified consultant.
    assert_eq!(transferred["stage"], "queued");
    assert!(agent_contacts(&node, "vera", VERA).is_empty());

    ready(&node, "boris", BORIS);
    let offered = agent_contacts(&node, "boris", BORIS);
    assert_eq!(offered.len(), 1);
    assert_eq!(offered[0]["id"].as_u64(), Some(contact));
    let (status, accepted) = node.call(
        "POST",
        &format!("/api/v1/agents/boris/contacts/{contact}/accept"),
        Some(BORIS),
        None,
    );
    assert_eq!(status, 200, "{accepted}");
    assert_eq!(accepted["agent"], "boris");
}

#[test]
fn abandoned_caller_gets_a_callback_at_the_old_place() {
    let (_directory, node) = single_site();
    // Anna is logged in but not ready: contacts wait.
    node.call("POST", "/api/v1/agents/anna/login", Some(ANNA), None);
    let (status, _) = node.call(
        "POST",
        "/api/v1/agents/anna/state",
        Some(ANNA),
        Some(json!({"state": "not_ready", "reason": 3})),
    );
    assert_eq!(status, 200);
    let (_, first) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79161110001", "topic": "order"})),
    );
    let first = first["contact"]["id"].as_u64().unwrap();
    let (status, abandoned) = node.call(
        "POST",
        &format!("/api/v1/contacts/{first}/abandoned"),
        Some(GATEWAY),
        None,
    );
    assert_eq!(status, 200, "{abandoned}");
    assert_eq!(abandoned["stage"], "abandoned");

    // A later caller queues behind where the first one was.
    let (_, second) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79161110002", "topic": "order"})),
    );
    let second = second["contact"]["id"].as_u64().unwrap();

    let callback = eventually("the callback to be created", || {
        let (_, callbacks) = node.call("GET", "/api/v1/callbacks", Some(SUPERVISOR), None);
        callbacks["callbacks"].as_array().and_then(|list| {
            list.iter()
                .find(|callback| callback["caller"] == "+79161110001")
                .cloned()
        })
    });
    assert!(callback["reason"]["abandoned"].is_object(), "{callback}");
    eventually("the callback to be queued", || {
        let (_, queues) = node.call("GET", "/api/v1/supervisor/queues", Some(SUPERVISOR), None);
        (queues["queues"][0]["in_queue"].as_u64() == Some(2)).then_some(())
    });

    let (status, _) = node.call(
        "POST",
        "/api/v1/agents/anna/state",
        Some(ANNA),
        Some(json!({"state": "ready"})),
    );
    assert_eq!(status, 200);
    let offered = agent_contacts(&node, "anna", ANNA);
    assert_eq!(offered.len(), 1);
    let outbound = &offered[0];
    assert_eq!(
        outbound["direction"], "outbound_callback",
        "the callback is ahead of the later caller"
    );
    assert_eq!(outbound["caller"], "+79161110001");
    assert_ne!(outbound["id"].as_u64(), Some(second));
    let contact = outbound["id"].as_u64().unwrap();
    node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/accept"),
        Some(ANNA),
        None,
    );
    node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/ended"),
        Some(GATEWAY),
        None,
    );
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/wrap-up"),
        Some(ANNA),
        Some(json!({"code": "called-back", "callback_outcome": "reached"})),
    );
    assert_eq!(status, 200, "{body}");
    let id = callback["id"].as_u64().unwrap();
    eventually("the outcome to be recorded", || {
        let (_, callback) = node.call(
            "GET",
            &format!("/api/v1/callbacks/{id}"),
            Some(SUPERVISOR),
            None,
        );
        (callback["status"] == "completed").then_some(())
    });
}

#[test]
fn unanswered_offer_returns_to_the_queue_and_the_agent_goes_not_ready() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let config = site_config("msk", 0, &data, "")
        .replace("offer_timeout_ms = 60000", "offer_timeout_ms = 300");
    let path = directory.path().join("site.toml");
    std::fs::write(&path, config).unwrap();
    let node = Node::start(&path, &data);
    ready(&node, "anna", ANNA);
    let (_, arrived) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79160004040", "topic": "order"})),
    );
    assert_eq!(arrived["contact"]["agent"], "anna");
    let contact = arrived["contact"]["id"].as_u64().unwrap();
    eventually("the offer to time out", || {
        let (_, view) = node.call("GET", "/api/v1/agents/anna", Some(ANNA), None);
        (view["state"] == "not_ready" && view["not_ready_reason"] == "no_answer").then_some(())
    });
    let (_, view) = node.call(
        "GET",
        &format!("/api/v1/contacts/{contact}"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(view["stage"], "queued");
    assert_eq!(view["queue_position"], 1, "back at the head of the queue");
    ready(&node, "boris", BORIS);
    let offered = agent_contacts(&node, "boris", BORIS);
    assert_eq!(offered[0]["id"].as_u64(), Some(contact));
}
