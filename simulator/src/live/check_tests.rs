//! Doctored histories: each must fail the check; the honest one must pass.

use serde_json::{Value, json};

use super::*;

#[allow(clippy::too_many_arguments)]
fn request(
    seq: u64,
    actor: &str,
    site: usize,
    class: &str,
    status: u16,
    plan: Option<usize>,
    contact: Option<u64>,
    body: Value,
) -> Request {
    Request {
        seq,
        actor: actor.to_string(),
        site,
        class: class.to_string(),
        method: "POST".to_string(),
        path: String::new(),
        start_us: seq * 1_000,
        end_us: seq * 1_000 + 500,
        status,
        plan,
        contact,
        body,
        idempotency_key: None,
        retry: 0,
    }
}

fn info() -> RunInfo {
    RunInfo {
        speed: 600.0,
        short_abandon_ms: 5_000,
        callbacks_enabled: true,
    }
}

/// Two callers: caller 0 answered by anna who took order 7 (read back at site 1); caller 1
/// abandoned after 60 s (routing time) and got a callback.
fn honest() -> (Vec<Request>, Vec<Replica>) {
    let voice = |id: u64| json!({"contact": {"id": id, "channel": "voice"}});
    let mut read = request(
        6,
        "gateway",
        1,
        "order_read",
        200,
        Some(0),
        Some(11),
        json!({"id": 7}),
    );
    read.method = "GET".to_string();
    read.path = "/api/v1/orders/7".to_string();
    let mut abandon = request(
        200,
        "gateway",
        0,
        "abandon",
        200,
        Some(1),
        Some(12),
        json!({}),
    );
    abandon.start_us = 2_000 + 100_000; // 100 ms of wall time = 60 s at 600×
    let requests = vec![
        request(1, "gateway", 0, "arrive", 201, Some(0), None, voice(11)),
        request(2, "gateway", 0, "arrive", 201, Some(1), None, voice(12)),
        request(3, "anna", 0, "accept", 200, Some(0), Some(11), json!({})),
        request(
            4,
            "gateway",
            0,
            "answered",
            200,
            Some(0),
            Some(11),
            json!({}),
        ),
        request(
            5,
            "anna",
            0,
            "order",
            201,
            Some(0),
            Some(11),
            json!({"order": 7}),
        ),
        read,
        abandon,
    ];
    let mut requests = requests;
    requests[4].idempotency_key = Some("live-1-order-0".to_string());
    let replica = |site: &str| Replica {
        site: site.to_string(),
        reachable: true,
        orders: [(7, json!({"id": 7}))].into_iter().collect(),
        orders_by_caller: [("+79000000000".to_string(), vec![7])]
            .into_iter()
            .collect(),
        callbacks: vec![json!({"id": 1, "caller": "+79000000001"})],
        ..Replica::default()
    };
    (
        requests,
        vec![replica("msk"), replica("ekb"), replica("nsk")],
    )
}

#[test]
fn an_honest_history_passes_and_says_what_it_checked() {
    let (requests, replicas) = honest();
    let verdict = check(&requests, &replicas, &info());
    assert!(verdict.passed(), "{}", verdict.render());
    assert_eq!(verdict.checked["acknowledged order on every replica"], 1);
    assert_eq!(verdict.checked["abandoned callers with a callback"], 1);
    assert_eq!(verdict.checked["order reads after the write"], 1);
    assert_eq!(verdict.checked["contacts answered by one agent"], 1);
}

#[test]
fn a_lost_order_fails() {
    let (requests, mut replicas) = honest();
    replicas[2].orders.clear();
    let verdict = check(&requests, &replicas, &info());
    assert!(!verdict.passed());
    assert_eq!(
        verdict.failure_counts["acknowledged order on every replica"],
        1,
        "{}",
        verdict.render()
    );
}

#[test]
fn a_double_answer_fails() {
    let (mut requests, replicas) = honest();
    requests.push(request(
        7,
        "boris",
        0,
        "accept",
        200,
        Some(0),
        Some(11),
        json!({}),
    ));
    let verdict = check(&requests, &replicas, &info());
    assert_eq!(
        verdict.failure_counts["contacts answered by one agent"],
        1,
        "{}",
        verdict.render()
    );
    // A transfer makes the second agent legitimate.
    requests.push(request(
        8,
        "anna",
        0,
        "transfer",
        200,
        Some(0),
        Some(11),
        json!({}),
    ));
    assert!(check(&requests, &replicas, &info()).passed());
}

#[test]
fn a_caller_answered_and_abandoned_fails() {
    let (mut requests, replicas) = honest();
    requests.push(request(
        9,
        "gateway",
        0,
        "abandon",
        200,
        Some(0),
        Some(11),
        json!({}),
    ));
    let verdict = check(&requests, &replicas, &info());
    assert_eq!(
        verdict.failure_counts["callers answered once"],
        1,
        "{}",
        verdict.render()
    );
}

#[test]
fn an_abandon_without_a_callback_fails() {
    let (requests, mut replicas) = honest();
    replicas[1].callbacks.clear();
    let verdict = check(&requests, &replicas, &info());
    assert_eq!(
        verdict.failure_counts["abandoned callers with a callback"],
        1,
        "{}",
        verdict.render()
    );
}

#[test]
fn a_stale_order_read_fails() {
    let (mut requests, replicas) = honest();
    requests[5].status = 404;
    requests[5].body = json!({"title": "order 7 not found"});
    let verdict = check(&requests, &replicas, &info());
    assert_eq!(
        verdict.failure_counts["order reads after the write"],
        1,
        "{}",
        verdict.render()
    );
}

#[test]
fn an_empty_history_is_not_a_pass() {
    let verdict = check(&[], &[], &info());
    assert!(!verdict.passed());
}

#[test]
fn a_retried_create_that_made_a_second_record_fails() {
    let (mut requests, mut replicas) = honest();
    // The first attempt's answer was lost; the retry with the same key is replayed: one record.
    let mut lost = requests[4].clone();
    lost.seq = 20;
    lost.status = 0;
    lost.body = json!("connection reset");
    let mut replayed = requests[4].clone();
    replayed.seq = 21;
    replayed.retry = 1;
    requests.extend([lost, replayed.clone()]);
    let verdict = check(&requests, &replicas, &info());
    assert!(verdict.passed(), "{}", verdict.render());
    assert_eq!(verdict.checked["creates once per idempotency key"], 1);
    // A retry acknowledged with another record: the key made two orders.
    let mut doubled = replayed;
    doubled.seq = 22;
    doubled.retry = 2;
    doubled.body = json!({"order": 8});
    requests.push(doubled);
    for replica in &mut replicas {
        replica.orders.insert(8, json!({"id": 8}));
    }
    let verdict = check(&requests, &replicas, &info());
    assert_eq!(
        verdict.failure_counts["creates once per idempotency key"],
        1,
        "{}",
        verdict.render()
    );
}

#[test]
fn a_request_refused_as_malformed_fails() {
    let (mut requests, replicas) = honest();
    requests.push(request(
        30,
        "gateway",
        1,
        "represent",
        400,
        Some(1),
        None,
        json!({"detail": "overflowed_from.arrived_at_ms: must be a past time"}),
    ));
    let verdict = check(&requests, &replicas, &info());
    assert_eq!(
        verdict.failure_counts["requests the node found well-formed"],
        1,
        "{}",
        verdict.render()
    );
}

#[test]
fn a_caller_with_two_orders_on_a_replica_fails() {
    let (requests, mut replicas) = honest();
    assert_eq!(
        check(&requests, &replicas, &info()).checked["callers with one order on every replica"],
        1
    );
    // The first attempt committed but its answer was lost; a retry without the key made
    // another: only the replicas show it.
    replicas[1]
        .orders_by_caller
        .insert("+79000000000".to_string(), vec![7, 9]);
    let verdict = check(&requests, &replicas, &info());
    assert_eq!(
        verdict.failure_counts["callers with one order on every replica"],
        1,
        "{}",
        verdict.render()
    );
}
