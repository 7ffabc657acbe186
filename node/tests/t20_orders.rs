//! Orders and the records around them through a real `callgrid` process: lifecycle across a
//! kill -9 and restart, pre-order callbacks on stock arrival, repeat complaints.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn order_lifecycle_survives_kill_and_restart() {
    let (_directory, mut node) = single_site();
    let (status, created) = node.call(
        "POST",
        "/api/v1/orders",
        Some(ANNA),
        Some(order_body("+7 (916) 555-00-01")),
    );
    assert_eq!(status, 201, "{created}");
    let order = created["order"].as_u64().unwrap();
    for next in ["confirmed", "assembled"] {
        let (status, body) = node.call(
            "POST",
            &format!("/api/v1/orders/{order}/status"),
            Some(ANNA),
            Some(json!({"status": next})),
        );
        assert_eq!(status, 200, "{body}");
    }
    // Acknowledged → durable: SIGKILL right after the answer.
    node.kill();
    node.restart();
    let (status, view) = node.call("GET", &format!("/api/v1/orders/{order}"), Some(ANNA), None);
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "assembled");
    assert_eq!(view["caller"], "+79165550001");
    assert_eq!(view["total_minor"], 50100);
    assert_eq!(view["history"].as_array().unwrap().len(), 3);
    assert_eq!(view["history"][1]["actor"]["name"], "anna");

    // Not allowed from assembled.
    let (status, problem) = node.call(
        "POST",
        &format!("/api/v1/orders/{order}/status"),
        Some(ANNA),
        Some(json!({"status": "collected"})),
    );
    assert_eq!(status, 409, "{problem}");
    let (status, ready) = node.call(
        "POST",
        &format!("/api/v1/orders/{order}/status"),
        Some(ANNA),
        Some(json!({"status": "ready"})),
    );
    assert_eq!(status, 200);
    assert_eq!(
        ready["callbacks"].as_array().unwrap().len(),
        1,
        "order ready at pickup → callback"
    );
    let (_, lookup) = node.call(
        "GET",
        "/api/v1/self-service/order-status?caller=%2B79165550001",
        Some(GATEWAY),
        None,
    );
    assert_eq!(lookup["open_orders"][0]["status"], "ready");
    node.call(
        "POST",
        &format!("/api/v1/orders/{order}/status"),
        Some(ANNA),
        Some(json!({"status": "collected"})),
    );

    node.restart();
    let (_, view) = node.call(
        "GET",
        &format!("/api/v1/orders/{order}"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(view["status"], "collected");
    let (_, lookup) = node.call(
        "GET",
        "/api/v1/self-service/order-status?caller=%2B79165550001",
        Some(GATEWAY),
        None,
    );
    assert!(lookup["open_orders"].as_array().unwrap().is_empty());
}

#[test]
fn pre_order_callback_appears_when_item_is_in_stock() {
    let (_directory, node) = single_site();
    let (status, created) = node.call(
        "POST",
        "/api/v1/pre-orders",
        Some(ANNA),
        Some(json!({"caller": "+79160000777", "sku": "MEX-1", "name": "Mexidol", "quantity": 1, "pharmacy": "apteka-7"})),
    );
    assert_eq!(status, 201, "{created}");
    let pre_order = created["pre_order"].as_u64().unwrap();
    let (_, callbacks) = node.call("GET", "/api/v1/callbacks", Some(SUPERVISOR), None);
    assert!(callbacks["callbacks"].as_array().unwrap().is_empty());

    let (status, arrived) = node.call(
        "POST",
        "/api/v1/stock-arrivals",
        Some(ANNA),
        Some(json!({"sku": "MEX-1"})),
    );
    assert_eq!(status, 200, "{arrived}");
    let callback = arrived["callbacks"][0].as_u64().unwrap();
    let (_, view) = node.call(
        "GET",
        &format!("/api/v1/callbacks/{callback}"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(view["caller"], "+79160000777");
    assert_eq!(
        view["reason"]["pre_order_arrived"]["pre_order"].as_u64(),
        Some(pre_order)
    );
    let (_, pre) = node.call(
        "GET",
        &format!("/api/v1/pre-orders/{pre_order}"),
        Some(ANNA),
        None,
    );
    assert_eq!(pre["status"], "notified");
}

#[test]
fn repeat_complaint_is_escalated() {
    let (_directory, node) = single_site();
    let complaint = json!({"caller": "+79160000999", "text": "the pharmacist was rude"});
    let (status, first) = node.call(
        "POST",
        "/api/v1/complaints",
        Some(ANNA),
        Some(complaint.clone()),
    );
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["escalated"], false);
    let (_, second) = node.call("POST", "/api/v1/complaints", Some(ANNA), Some(complaint));
    assert_eq!(second["escalated"], true);
    let id = second["complaint"].as_u64().unwrap();
    let (_, view) = node.call(
        "GET",
        &format!("/api/v1/complaints/{id}"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(view["status"], "escalated");
    assert_eq!(view["repeat_of"].as_array().unwrap().len(), 1);
}

#[test]
fn sigterm_stops_cleanly_and_keeps_acknowledged_orders() {
    let (_directory, mut node) = single_site();
    let (status, created) = node.call(
        "POST",
        "/api/v1/orders",
        Some(ANNA),
        Some(order_body("+79160003030")),
    );
    assert_eq!(status, 201, "{created}");
    let order = created["order"].as_u64().unwrap();
    let exit = node.terminate().expect("the node stops on SIGTERM");
    assert!(exit.success(), "clean exit after SIGTERM: {exit:?}");
    node.restart();
    let (status, view) = node.call("GET", &format!("/api/v1/orders/{order}"), Some(ANNA), None);
    assert_eq!(status, 200, "{view}");
}
