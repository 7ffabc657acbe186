//! Call quality control through the API of a real node (issue 12, item 7): the gateway's
//! recording reference reaches the contact ledger, a supervisor scores the finished contact
//! (refusals, replacement, idempotent retry), and the review shows in `/reviews` and in the
//! per-agent reports (JSON, CSV, xlsx).
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Read as _;

use common::*;
use serde_json::{Value, json};

const RECORDING: &str = "https://pbx.example/recordings/2026-12-04/call-77.ogg";

/// anna answers a call, the gateway names its recording and ends it, anna wraps up; the
/// contact's ledger entry has ended with anna and the recording. Returns the contact id.
fn finished_call(node: &Node, caller: &str) -> u64 {
    ready(node, "anna", ANNA);
    let (status, body) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": caller, "topic": "order"})),
    );
    assert_eq!(status, 201, "{body}");
    let contact = body["contact"]["id"].as_u64().unwrap();
    let agent = format!("/api/v1/agents/anna/contacts/{contact}");
    let (status, body) = node.call("POST", &format!("{agent}/accept"), Some(ANNA), None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/answered"),
        Some(GATEWAY),
        Some(json!({"agent": "anna", "recording_ref": "rec-77"})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/ended"),
        Some(GATEWAY),
        Some(json!({"recording_ref": RECORDING})),
    );
    assert_eq!(status, 200, "{body}");
    let (status, body) = node.call(
        "POST",
        &format!("{agent}/wrap-up"),
        Some(ANNA),
        Some(json!({"code": "order-taken"})),
    );
    assert_eq!(status, 200, "{body}");
    eventually("the ledger to show the call ended", || {
        let (_, entry) = node.call(
            "GET",
            &format!("/api/v1/ledger/contacts/{contact}"),
            Some(SUPERVISOR),
            None,
        );
        (entry["stage"] == "ended" && entry["recording_ref"] == RECORDING).then_some(())
    });
    contact
}

fn scores(drug_information: u32) -> Value {
    json!({"greeting": 5, "identification": 5, "drug_information": drug_information,
           "order_correctness": 10})
}

fn review(node: &Node, contact: u64, token: &str, body: Value) -> (u16, Value) {
    node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/reviews"),
        Some(token),
        Some(body),
    )
}

#[test]
fn recording_refs_are_validated_at_the_gateway() {
    let (_directory, node) = single_site();
    let (_, body) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79160000077", "topic": "order"})),
    );
    let contact = body["contact"]["id"].as_u64().unwrap();
    for bad in [
        json!("javascript://alert(1)"),
        json!("has a space"),
        json!(""),
        json!("x".repeat(600)),
        json!(7),
    ] {
        let (status, body) = node.call(
            "POST",
            &format!("/api/v1/contacts/{contact}/ended"),
            Some(GATEWAY),
            Some(json!({"recording_ref": bad})),
        );
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/ended"),
        Some(GATEWAY),
        Some(json!({"recording": "rec-1"})),
    );
    assert_eq!(status, 400, "unknown field: {body}");
    // Without a body, as before.
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/ended"),
        Some(GATEWAY),
        None,
    );
    assert_eq!(status, 200, "{body}");
}

#[test]
fn a_supervisor_scores_a_finished_call_and_sees_it_in_the_agent_reports() {
    let (_directory, node) = single_site();
    let contact = finished_call(&node, "+79160000078");

    // The QA list offers it, with its recording and the checklist.
    let (status, list) = node.call("GET", "/api/v1/quality/contacts", Some(SUPERVISOR), None);
    assert_eq!(status, 200, "{list}");
    let offered = &list["contacts"][0];
    assert_eq!(offered["contact"], contact, "{list}");
    assert_eq!(offered["agent"], "anna");
    assert_eq!(offered["recording_ref"], RECORDING);
    assert_eq!(list["checklist"].as_array().unwrap().len(), 4, "{list}");

    // Refusals: role, body, unknown item, points out of range, unknown contact.
    assert_eq!(
        review(&node, contact, ANNA, json!({"scores": scores(10)})).0,
        403
    );
    assert_eq!(
        review(&node, contact, GATEWAY, json!({"scores": scores(10)})).0,
        403
    );
    let mut unknown = scores(10);
    unknown["smile"] = json!(1);
    let (status, body) = review(&node, contact, SUPERVISOR, json!({"scores": unknown}));
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].as_str().unwrap().contains("smile"), "{body}");
    let (status, body) = review(&node, contact, SUPERVISOR, json!({"scores": scores(11)}));
    assert_eq!(status, 400, "{body}");
    let (status, body) = review(&node, 424_242, SUPERVISOR, json!({"scores": scores(10)}));
    assert_eq!(status, 404, "{body}");
    let (status, body) = review(
        &node,
        contact,
        SUPERVISOR,
        json!({"scores": scores(10), "rating": 5}),
    );
    assert_eq!(status, 400, "unknown field: {body}");

    // The review, retried with its key: recorded once.
    let keyed = |body: Value| {
        ureq::post(&format!("{}/api/v1/contacts/{contact}/reviews", node.base))
            .set("Authorization", &format!("Bearer {SUPERVISOR}"))
            .set("Idempotency-Key", "qa-review-1")
            .send_json(body)
            .unwrap()
    };
    let first = keyed(json!({"scores": scores(0), "comment": "wrong analogue offered"}));
    assert_eq!(first.status(), 201);
    let first: Value = first.into_json().unwrap();
    assert_eq!(first["replaced"], false, "{first}");
    let again = keyed(json!({"scores": scores(0), "comment": "wrong analogue offered"}));
    assert_eq!(again.header("Idempotent-Replayed"), Some("true"));
    assert_eq!(
        again.into_json::<Value>().unwrap()["review"],
        first["review"]
    );

    // A second review by the same supervisor replaces the first.
    let (status, second) = review(
        &node,
        contact,
        SUPERVISOR,
        json!({"scores": scores(10), "comment": "listened again: fine"}),
    );
    assert_eq!(status, 201, "{second}");
    assert_eq!(
        (&second["review"], &second["replaced"]),
        (&first["review"], &json!(true))
    );
    let (status, reviews) = node.call(
        "GET",
        &format!("/api/v1/contacts/{contact}/reviews"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 200, "{reviews}");
    assert_eq!(reviews["ledger"]["recording_ref"], RECORDING);
    let only = &reviews["reviews"].as_array().unwrap()[..];
    assert_eq!(only.len(), 1, "{reviews}");
    assert_eq!(only[0]["revision"], 1);
    assert_eq!(only[0]["score_percent"], 100.0);
    assert_eq!(only[0]["reviewer"], "olga");
    assert_eq!(only[0]["comment"], "listened again: fine");

    // The list by agent and day, and the per-agent reports.
    let (status, listed) = node.call("GET", "/api/v1/reviews?agent=anna", Some(SUPERVISOR), None);
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["total"], 1, "{listed}");
    assert_eq!(listed["agents"][0]["score_percent_mean"], 100.0, "{listed}");
    let (_, none) = node.call(
        "GET",
        "/api/v1/reviews?agent=anna&from=2001-01-01&to=2001-01-02",
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(none["total"], 0, "{none}");
    let (status, bad) = node.call(
        "GET",
        "/api/v1/reviews?from=yesterday",
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 400, "{bad}");

    let (status, report) = node.call("GET", "/api/v1/reports/agents", Some(SUPERVISOR), None);
    assert_eq!(status, 200, "{report}");
    let anna = report["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["login"] == "anna")
        .unwrap_or_else(|| panic!("anna in {report}"));
    assert_eq!(
        (
            anna["reviews"].as_u64(),
            anna["review_score_percent_mean"].as_f64()
        ),
        (Some(1), Some(100.0)),
        "{report}"
    );
    let (_, intervals) = node.call("GET", "/api/v1/reports/intervals", Some(SUPERVISOR), None);
    assert!(
        intervals["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|row| row["login"] == "anna" && row["reviews"] == 1),
        "{intervals}"
    );
    let csv = ureq::get(&format!("{}/api/v1/reports/agents?format=csv", node.base))
        .set("Authorization", &format!("Bearer {SUPERVISOR}"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let header = csv.lines().next().unwrap();
    assert!(
        header.ends_with("reviews,review_score_percent_mean"),
        "{csv}"
    );
    assert!(
        csv.lines()
            .any(|line| line.contains(",anna,") && line.ends_with(",1,100.0000")),
        "{csv}"
    );
    let strings = xlsx_part(&download_agents(&node), "xl/sharedStrings.xml");
    assert!(
        strings.contains("QA mean score") && strings.contains("anna"),
        "{strings}"
    );
}

fn download_agents(node: &Node) -> Vec<u8> {
    let response = ureq::get(&format!("{}/api/v1/exports/agents.xlsx", node.base))
        .set("Authorization", &format!("Bearer {SUPERVISOR}"))
        .call()
        .unwrap();
    let mut bytes = Vec::new();
    response.into_reader().read_to_end(&mut bytes).unwrap();
    bytes
}

/// One part of an `.xlsx` (a zip): found by its local file header, inflated (a deflate stream
/// ends itself, so the sizes a streaming writer leaves out are not needed).
fn xlsx_part(bytes: &[u8], name: &str) -> String {
    let mut at = 0;
    while let Some(offset) = bytes[at..]
        .windows(4)
        .position(|window| window == b"PK\x03\x04")
    {
        let header = at + offset;
        let field = |position: usize| {
            usize::from(u16::from_le_bytes([
                bytes[header + position],
                bytes[header + position + 1],
            ]))
        };
        let (method, name_length, extra_length) = (field(8), field(26), field(28));
        let start = header + 30;
        if &bytes[start..start + name_length] == name.as_bytes() {
            let data = &bytes[start + name_length + extra_length..];
            let mut text = String::new();
            if method == 0 {
                return String::from_utf8_lossy(data).into_owned();
            }
            flate2::read::DeflateDecoder::new(data)
                .read_to_string(&mut text)
                .unwrap();
            return text;
        }
        at = header + 4;
    }
    panic!("no part {name} in the workbook");
}
