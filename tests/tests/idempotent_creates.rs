//! Exactly-once creates on a three-site cluster of real processes (issue 9, item 4):
//! - one order create retried 100 times with the same `Idempotency-Key` — 50 in sequence and
//!   50 at once, alternating between two sites — makes one order; every answer names it;
//! - the same key with another body is a 422 problem, a malformed key a 400;
//! - every create (order, pre-order, reservation, complaint, callback outcome) replays its
//!   first answer, a refusal included.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use callgrid_tests::http::{Answer, send};
use callgrid_tests::*;
use serde_json::{Value, json};

fn order_body(caller: &str) -> Value {
    json!({
        "caller": caller,
        "items": [{"sku": "NUR-200", "name": "Nurofen 200 mg", "quantity": 2, "unit_price_minor": 25050}],
        "fulfilment": {"pickup": {"pharmacy": "apteka-7"}},
        "payment": "card"
    })
}

/// Posts with the key until the cluster answers with something else than 503 (a client's
/// retry loop: "no quorum" and "outcome unknown" both say retry with the same key).
fn post_with_key(base: &str, path: &str, key: &str, body: &Value) -> Answer {
    eventually("an answer other than 503", || {
        let answer = send(
            base,
            "POST",
            path,
            ADMIN,
            &[("Idempotency-Key", key)],
            Some(body),
        );
        (answer.status != 503 && answer.status != 0).then_some(answer)
    })
}

fn replayed(answer: &Answer) -> bool {
    answer.header("Idempotent-Replayed") == Some("true")
}

fn orders_of(node: &Node, caller: &str) -> usize {
    let caller = caller.replace('+', "%2B");
    let (status, body) = node.call("GET", &format!("/api/v1/orders?caller={caller}"), None);
    assert_eq!(status, 200, "{body}");
    body["orders"].as_array().unwrap().len()
}

#[test]
fn a_hundred_retries_of_one_create_make_one_order_across_two_sites() {
    let directory = tempfile::tempdir().unwrap();
    let (nodes, _certs) = cluster(directory.path(), &[1, 2, 3], &[]);
    nodes[0].take_order("+79160000001");
    let caller = "+79165550100";
    let body = order_body(caller);
    let key = "order-7f3a-0001";
    let bases = [nodes[0].base.clone(), nodes[1].base.clone()];

    let mut answers: Vec<Answer> = (0..50)
        .map(|attempt| post_with_key(&bases[attempt % 2], "/api/v1/orders", key, &body))
        .collect();
    let concurrent: Vec<_> = (0..50)
        .map(|attempt| {
            let base = bases[attempt % 2].clone();
            let body = body.clone();
            std::thread::spawn(move || post_with_key(&base, "/api/v1/orders", key, &body))
        })
        .collect();
    answers.extend(concurrent.into_iter().map(|thread| thread.join().unwrap()));

    let order = answers[0].body["order"].as_u64().expect("an order id");
    for answer in &answers {
        assert_eq!(answer.status, 201, "{:?}", answer.body);
        assert_eq!(
            answer.body["order"].as_u64(),
            Some(order),
            "{:?}",
            answer.body
        );
    }
    let first_answers = answers.iter().filter(|answer| !replayed(answer)).count();
    assert!(
        first_answers <= 1,
        "{first_answers} answers claim to be the first"
    );
    for node in &nodes {
        assert_eq!(orders_of(node, caller), 1, "one order at {}", node.site.id);
    }

    // The third site answers the same.
    let third = post_with_key(&nodes[2].base, "/api/v1/orders", key, &body);
    assert_eq!(
        (third.status, third.body["order"].as_u64()),
        (201, Some(order))
    );
    assert!(replayed(&third));

    // Another body under the key is refused; a malformed key is a bad request.
    let reused = post_with_key(
        &bases[1],
        "/api/v1/orders",
        key,
        &order_body("+79165550199"),
    );
    assert_eq!(reused.status, 422, "{:?}", reused.body);
    assert_eq!(reused.problem(), Some("idempotency-key-reused"));
    for bad in ["has space", &"k".repeat(129)] {
        let answer = send(
            &bases[0],
            "POST",
            "/api/v1/orders",
            ADMIN,
            &[("Idempotency-Key", bad)],
            Some(&body),
        );
        assert_eq!(answer.status, 400, "{bad:?}: {:?}", answer.body);
    }
    assert_eq!(orders_of(&nodes[0], caller), 1);
    assert_eq!(orders_of(&nodes[0], "+79165550199"), 0);
}

#[test]
fn every_create_replays_its_first_answer() {
    let directory = tempfile::tempdir().unwrap();
    let (nodes, _certs) = cluster(directory.path(), &[1, 2, 3], &[]);
    nodes[0].take_order("+79160000002");
    let item =
        json!({"sku": "ASP-100", "name": "Aspirin", "quantity": 1, "unit_price_minor": 9900});
    let creates = [
        ("/api/v1/orders", order_body("+79165550200"), 201),
        (
            "/api/v1/pre-orders",
            json!({"caller": "+79165550201", "sku": "ASP-100", "name": "Aspirin", "quantity": 1, "pharmacy": "apteka-7"}),
            201,
        ),
        (
            "/api/v1/reservations",
            json!({"caller": "+79165550202", "pharmacy": "apteka-7", "items": [item], "expires_at_ms": 4_102_444_800_000_u64}),
            201,
        ),
        (
            "/api/v1/complaints",
            json!({"caller": "+79165550203", "text": "the courier was late"}),
            201,
        ),
        // A refusal is a first answer too: the callback does not exist.
        (
            "/api/v1/callbacks/987654/outcome",
            json!({"outcome": "reached"}),
            404,
        ),
    ];
    for (number, (path, body, status)) in creates.iter().enumerate() {
        let key = format!("create-{number}");
        let first = post_with_key(&nodes[0].base, path, &key, body);
        assert_eq!(first.status, *status, "{path}: {:?}", first.body);
        assert!(!replayed(&first), "{path}");
        let again = post_with_key(&nodes[1].base, path, &key, body);
        assert_eq!(again.status, *status, "{path}: {:?}", again.body);
        assert!(replayed(&again), "{path}: {:?}", again.headers);
        assert_eq!(again.body, first.body, "{path}");
    }
}
