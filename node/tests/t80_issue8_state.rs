//! Issue 8 through a real `callgrid` process: the line-1 agent finishes wrap-up after a
//! transfer to line 2, an abandoned chat gets no voice callback, and a caller who phones again
//! cancels the callback waiting for them (the rules of the domain's callback machine).
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

/// The standard single site with one line of its configuration replaced.
fn single_site_with(line: &str, replacement: &str) -> (tempfile::TempDir, Node) {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let port = free_udp_port();
    let cluster = format!(
        "[cluster]\nnode_id = 1\nlisten = \"127.0.0.1:{port}\"\ncertificates_dir = \"{}\"\n",
        directory.path().join("certs").display()
    );
    let config = site_config("msk", 0, &data, &cluster);
    assert!(config.contains(line), "the test config has `{line}`");
    let path = directory.path().join("site.toml");
    std::fs::write(&path, config.replacen(line, replacement, 1)).unwrap();
    let node = Node::start(&path, &data);
    (directory, node)
}

#[test]
fn line1_agent_finishes_wrap_up_after_a_transfer_to_line2() {
    let (_directory, node) = single_site();
    ready(&node, "anna", ANNA);
    let (_, arrived) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79160002244", "topic": "order"})),
    );
    let contact = arrived["contact"]["id"].as_u64().unwrap();
    assert_eq!(arrived["contact"]["agent"], "anna");
    node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/accept"),
        Some(ANNA),
        None,
    );
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/transfer"),
        Some(ANNA),
        Some(json!({"skill": "line2"})),
    );
    assert_eq!(status, 200, "{body}");
    ready(&node, "boris", BORIS);
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/agents/boris/contacts/{contact}/accept"),
        Some(BORIS),
        None,
    );
    assert_eq!(status, 200, "{body}");
    // The contact is Boris's now; Anna still has her wrap-up of it, and can finish it.
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/wrap-up"),
        Some(ANNA),
        Some(json!({"code": "transferred"})),
    );
    assert_eq!(status, 200, "{body}");
    let (_, view) = node.call("GET", "/api/v1/agents/anna", Some(ANNA), None);
    assert!(
        view["state"] == "available" || view["state"]["state"] == "available",
        "{view}"
    );
    // Boris's conversation goes on.
    let (_, view) = node.call("GET", "/api/v1/agents/boris", Some(BORIS), None);
    assert!(view.to_string().contains(&contact.to_string()), "{view}");
}

fn callbacks_for(node: &Node, caller: &str) -> Vec<serde_json::Value> {
    let (_, callbacks) = node.call("GET", "/api/v1/callbacks", Some(SUPERVISOR), None);
    callbacks["callbacks"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter(|callback| callback["caller"] == caller)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

fn abandon_waiting(node: &Node, caller: &str, channel: &str) {
    let (status, arrived) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": caller, "topic": "order", "channel": channel})),
    );
    assert_eq!(status, 201, "{arrived}");
    let contact = arrived["contact"]["id"].as_u64().unwrap();
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/abandoned"),
        Some(GATEWAY),
        None,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn an_abandoned_chat_gets_no_callback_and_a_caller_phoning_again_cancels_theirs() {
    // Callbacks wait ten minutes, so the one below is still waiting (not being dialled) when
    // its caller phones again.
    let (_directory, node) = single_site_with("delay_s = 0", "delay_s = 600");
    // Nobody is ready: contacts wait, and leave.
    abandon_waiting(&node, "+79161113301", "chat");
    abandon_waiting(&node, "+79161113302", "voice");
    let voice = eventually("the voice callback", || {
        callbacks_for(&node, "+79161113302").into_iter().next()
    });
    assert_eq!(voice["status"], "pending", "{voice}");
    assert!(
        callbacks_for(&node, "+79161113301").is_empty(),
        "an abandoned chat has no callback"
    );
    // The voice caller phones again: the callback waiting for them is cancelled.
    let (status, _) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79161113302", "topic": "order"})),
    );
    assert_eq!(status, 201);
    eventually("the callback to be cancelled", || {
        let list = callbacks_for(&node, "+79161113302");
        (list.len() == 1 && list[0]["status"] == "cancelled").then_some(())
    });
}

#[test]
fn reservation_expiry_and_complaint_escalation_reach_the_supervisor_stream() {
    let (_directory, node) = single_site();
    let mut wallboard = connect(&node, "/api/v1/supervisor/stream", Some(SUPERVISOR)).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (status, body) = node.call(
        "POST",
        "/api/v1/reservations",
        Some(ANNA),
        Some(json!({
            "caller": "+79160007788",
            "pharmacy": "apteka-12",
            "items": [{"sku": "A1", "name": "aspirin", "quantity": 1, "unit_price_minor": 100}],
            "expires_at_ms": now_ms + 1_000,
        })),
    );
    assert_eq!(status, 201, "{body}");
    std::thread::sleep(std::time::Duration::from_millis(1_200));
    // The next committed command carries a time past the expiry; a repeat complaint follows.
    for text in ["rude", "rude again"] {
        let (status, body) = node.call(
            "POST",
            "/api/v1/complaints",
            Some(ANNA),
            Some(json!({"caller": "+79160007788", "text": text})),
        );
        assert_eq!(status, 201, "{body}");
    }
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = next_event(&mut wallboard);
        if event["type"] == "state_event" {
            seen.push(event["event"]["event"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, vec!["reservation_expired", "complaint_escalated"]);
}

#[test]
fn a_wrap_up_ends_by_itself_at_the_configured_maximum() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let port = free_udp_port();
    let cluster = format!(
        "[cluster]\nnode_id = 1\nlisten = \"127.0.0.1:{port}\"\ncertificates_dir = \"{}\"\n",
        directory.path().join("certs").display()
    );
    let config = site_config("msk", 0, &data, &cluster).replacen(
        "[routing]\n",
        "[routing]\nwrap_up_max_ms = 1500\n",
        1,
    );
    let path = directory.path().join("site.toml");
    std::fs::write(&path, config).unwrap();
    let node = Node::start(&path, &data);
    ready(&node, "anna", ANNA);
    let (_, arrived) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79160005566", "topic": "order"})),
    );
    let contact = arrived["contact"]["id"].as_u64().unwrap();
    node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/accept"),
        Some(ANNA),
        None,
    );
    let (status, ended) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/ended"),
        Some(GATEWAY),
        None,
    );
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["stage"], "wrap_up");
    // Anna never presses "done": after the maximum she is available and the contact finished.
    eventually("the wrap-up maximum", || {
        let (_, view) = node.call("GET", "/api/v1/agents/anna", Some(ANNA), None);
        let state = if view["state"].is_string() {
            view["state"].clone()
        } else {
            view["state"]["state"].clone()
        };
        (state == "available").then_some(())
    });
    let (_, view) = node.call(
        "GET",
        &format!("/api/v1/contacts/{contact}"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(view["stage"], "finished", "{view}");
}

#[test]
fn a_call_served_by_the_bot_ends_as_self_served_without_abandon_or_callback() {
    let (_directory, node) = single_site();
    let (status, arrived) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79160003311", "topic": "order_status"})),
    );
    assert_eq!(status, 201, "{arrived}");
    let contact = arrived["contact"]["id"].as_u64().unwrap();
    let (status, served) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/self-served"),
        Some(GATEWAY),
        None,
    );
    assert_eq!(status, 200, "{served}");
    assert_eq!(served["stage"], "self_served", "{served}");
    let (_, metrics) = node.call("GET", "/metrics", None, None);
    let metrics = metrics
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| metrics.to_string());
    assert!(
        metrics.contains("callgrid_contacts_self_served_total{site=\"msk\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("callgrid_contacts_abandoned_total{site=\"msk\"} 0"),
        "{metrics}"
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        callbacks_for(&node, "+79160003311").is_empty(),
        "no callback"
    );
}
