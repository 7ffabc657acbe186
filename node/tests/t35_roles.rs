//! Access, route by route: every endpoint of the OpenAPI table is called with no token, with a
//! garbage body and no token, and with every role's token and a valid body. Without a token
//! the answer is 401 before anything reads the body; a role the table does not list gets 403;
//! a listed role is never refused for who it is. The table is also the role matrix of
//! `docs/API-ROLES.md`, which must match it.
#![allow(clippy::unwrap_used)]

mod common;

use callgrid_node::api::openapi::ENDPOINTS;
use common::*;
use serde_json::{Value, json};

/// A valid body for each request schema of the table.
fn valid_body(schema: &str) -> Value {
    match schema {
        "ContactArrived" => json!({"caller": "+79160005050", "topic": "order"}),
        "Answered" => json!({"agent": "anna"}),
        "Ended" => json!({"recording_ref": "rec-1"}),
        "ReviewCreate" => json!({"scores": {"greeting": 5, "identification": 5,
            "drug_information": 10, "order_correctness": 10}, "comment": "fine"}),
        "ChatMessage" => json!({"text": "hello"}),
        "AgentState" => json!({"state": "not_ready", "reason": 1}),
        "WrapUp" => json!({"code": "done"}),
        "Transfer" => json!({"skill": "line2"}),
        "Monitor" => json!({"agent": "anna", "mode": "listen"}),
        "OrderCreate" => order_body("+79160005051"),
        "OrderUpdate" => json!({"delivery_note": "ring twice"}),
        "OrderStatus" => json!({"status": "confirmed"}),
        "PreOrder" => json!({"caller": "+79160005052", "sku": "NUR-200", "name": "Nurofen",
            "quantity": 1, "pharmacy": "apteka-7"}),
        "StockArrival" => json!({"sku": "NUR-200", "pharmacy": "apteka-7"}),
        "Reservation" => json!({"caller": "+79160005053", "pharmacy": "apteka-7",
            "items": [{"sku": "NUR-200", "name": "Nurofen", "quantity": 1, "unit_price_minor": 100}],
            "expires_at_ms": 4_102_444_800_000_u64}),
        "Complaint" => json!({"caller": "+79160005054", "text": "late"}),
        "Resolve" => json!({"resolution": "refunded"}),
        "CallbackOutcome" => json!({"outcome": "reached"}),
        "TokenAdd" => json!({"name": "ivr-2", "role": "gateway",
            "sha256": sha256_hex("a-token-added-by-the-roles-test")}),
        other => panic!("no sample body for schema {other}: add one"),
    }
}

/// The concrete path: agent paths are anna's, ids are 1.
fn concrete(path: &str) -> String {
    path.replace("{login}", "anna")
        .replace("{contact}", "1")
        .replace("{order}", "1")
        .replace("{id}", "1")
}

fn send(
    node: &Node,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut request = ureq::request(&method.to_uppercase(), &format!("{}{path}", node.base))
        .timeout(std::time::Duration::from_secs(20));
    if let Some(token) = token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let result = match body {
        Some(body) => request
            .set("Content-Type", "application/json")
            .send_string(body),
        None => request.call(),
    };
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("transport error on {method} {path}: {error}"),
    };
    (
        response.status(),
        response.into_string().unwrap_or_default(),
    )
}

/// Roles of the test site: (role name in the table, token).
const ROLES: [(&str, &str); 4] = [
    ("admin", ADMIN),
    ("gateway", GATEWAY),
    ("supervisor", SUPERVISOR),
    ("agent", ANNA),
];

fn allowed(roles: &str, role: &str) -> bool {
    role == "admin"
        || roles == "anyone"
        || roles
            .split(',')
            .map(|entry| entry.trim().trim_end_matches(" (self)"))
            .any(|entry| entry == role)
}

#[test]
fn every_route_with_every_role_with_and_without_a_token() {
    let (_directory, node) = single_site();
    let mut failures = Vec::new();
    for (method, path, _summary, roles, schema) in ENDPOINTS {
        let url = format!("/api/v1{}", concrete(path));
        let body = schema.map(|schema| valid_body(schema).to_string());
        if *roles != "anyone" {
            let (status, text) = send(&node, method, &url, None, body.as_deref());
            if status != 401 {
                failures.push(format!("{method} {url} without token: {status} {text}"));
            }
            let (status, text) = send(&node, method, &url, None, Some("garbage"));
            if status != 401 {
                failures.push(format!(
                    "{method} {url} without token, garbage body: {status} {text}"
                ));
            }
        }
        for (role, token) in ROLES {
            let (status, text) = send(&node, method, &url, Some(token), body.as_deref());
            let expected_allowed = allowed(roles, role);
            let refused = status == 401 || status == 403;
            if expected_allowed == refused {
                failures.push(format!(
                    "{method} {url} as {role} (table: {roles}): {status} {text}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The browser sign-in: the token in the body instead of a header, then a cookie (in
/// `OTHER_ENDPOINTS`, not a bearer endpoint).
const SESSION_PATH: &str = "/api/v1/session";

/// A request with the session cookie (and the CSRF token for a state change).
fn with_session(
    node: &Node,
    method: &str,
    cookie: Option<&str>,
    csrf: Option<&str>,
) -> (u16, String) {
    let mut request = ureq::request(method, &format!("{}/api/v1/session", node.base))
        .timeout(std::time::Duration::from_secs(20));
    if let Some(cookie) = cookie {
        request = request.set("Cookie", cookie);
    }
    if let Some(csrf) = csrf {
        request = request.set("X-CSRF-Token", csrf);
    }
    match request.call() {
        Ok(response) => (
            response.status(),
            response.into_string().unwrap_or_default(),
        ),
        Err(ureq::Error::Status(status, response)) => {
            (status, response.into_string().unwrap_or_default())
        }
        Err(error) => panic!("transport error on {method} /session: {error}"),
    }
}

/// `/session` by the table: every role the table lists signs in (token in the body) and then
/// reads and closes its session by cookie; a role it does not list gets 403 at sign-in; no
/// or an unknown token is 401 everywhere; a sign-out without the CSRF token is 403.
#[test]
fn the_session_endpoint_with_every_role() {
    let (_directory, node) = single_site();
    let roles_of = |method: &str| {
        callgrid_node::api::openapi::OTHER_ENDPOINTS
            .iter()
            .find(|(m, path, ..)| *m == method && *path == SESSION_PATH)
            .map(|(_, _, _, roles, ..)| *roles)
            .unwrap_or_else(|| panic!("{method} /session is in the table"))
    };
    let mut failures = Vec::new();
    let url = "/api/v1/session";
    for (body, expected) in [
        (json!({"token": "no-such-token"}).to_string(), 401),
        ("garbage".to_string(), 400),
    ] {
        let (status, text) = send(&node, "post", url, None, Some(&body));
        if status != expected {
            failures.push(format!("POST {url} with {body}: {status} {text}"));
        }
    }
    for method in ["GET", "DELETE"] {
        let (status, text) = with_session(&node, method, None, None);
        if status != 401 {
            failures.push(format!("{method} {url} without a session: {status} {text}"));
        }
        let (status, text) = send(&node, method, url, Some(SUPERVISOR), None);
        if status != 401 {
            failures.push(format!(
                "{method} {url} with a bearer token only: {status} {text}"
            ));
        }
    }
    for (role, token) in ROLES {
        let response =
            ureq::post(&format!("{}{url}", node.base)).send_json(json!({"token": token}));
        let expected_allowed = allowed(roles_of("post"), role);
        let response = match response {
            Ok(response) if expected_allowed => response,
            Ok(response) => {
                failures.push(format!(
                    "POST {url} as {role}: {} (table refuses)",
                    response.status()
                ));
                continue;
            }
            Err(ureq::Error::Status(403, _)) if !expected_allowed => continue,
            Err(error) => {
                failures.push(format!("POST {url} as {role}: {error}"));
                continue;
            }
        };
        let cookie = response
            .header("Set-Cookie")
            .and_then(|value| value.split(';').next())
            .unwrap()
            .to_string();
        let session: Value = response.into_json().unwrap();
        let csrf = session["csrf"].as_str().unwrap().to_string();
        let (status, text) = with_session(&node, "GET", Some(&cookie), None);
        if status != 200 || !text.contains(&format!("\"role\":\"{role}\"")) {
            failures.push(format!("GET {url} as {role}: {status} {text}"));
        }
        let (status, text) = with_session(&node, "DELETE", Some(&cookie), None);
        if status != 403 {
            failures.push(format!(
                "DELETE {url} as {role} without CSRF: {status} {text}"
            ));
        }
        let (status, text) = with_session(&node, "DELETE", Some(&cookie), Some(&csrf));
        let expected = allowed(roles_of("delete"), role);
        if (status == 204) != expected {
            failures.push(format!("DELETE {url} as {role}: {status} {text}"));
        }
        let (status, _) = with_session(&node, "GET", Some(&cookie), None);
        if status != 401 {
            failures.push(format!("GET {url} as {role} after sign-out: {status}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The membership changes (documented apart: a walk with a valid body would change the
/// cluster) refuse every role but admin, and no token, before reading the body.
#[test]
fn membership_changes_refuse_every_other_role() {
    let (_directory, node) = single_site();
    let mut failures = Vec::new();
    for (method, path, _summary, roles, schema, ..) in callgrid_node::api::openapi::OTHER_ENDPOINTS
    {
        if *roles != "admin" {
            continue;
        }
        let url = path.replace("{id}", "2");
        let body = match schema {
            Some("LearnerAdd") => Some(json!({"id": 2, "address": "127.0.0.1:9"}).to_string()),
            Some("LeaderTransfer") => Some(json!({"id": 2}).to_string()),
            _ => None,
        };
        for (token, expected) in [
            (None, 401),
            (Some(GATEWAY), 403),
            (Some(SUPERVISOR), 403),
            (Some(ANNA), 403),
        ] {
            let (status, text) = send(&node, method, &url, token, body.as_deref());
            if status != expected {
                failures.push(format!("{method} {url} with {token:?}: {status} {text}"));
            }
        }
        let (status, text) = send(&node, method, &url, None, Some("garbage"));
        if status != 401 {
            failures.push(format!(
                "{method} {url} garbage body, no token: {status} {text}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn readyz_tells_anyone_only_ready_or_not() {
    let (_directory, node) = single_site();
    let (status, body) = node.call("GET", "/readyz", None, None);
    assert!(status == 200 || status == 503, "{status}");
    assert!(
        body.get("cluster").is_none(),
        "no details without a role: {body}"
    );
    let (_, body) = node.call("GET", "/readyz", Some(ANNA), None);
    assert!(
        body.get("cluster").is_none(),
        "agents see no details: {body}"
    );
    let (_, body) = node.call("GET", "/readyz", Some(SUPERVISOR), None);
    assert!(body["cluster"].is_object(), "supervisors do: {body}");
}

#[test]
fn the_role_matrix_in_the_docs_is_the_table() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/API-ROLES.md");
    let generated = callgrid_node::api::openapi::roles_markdown();
    if std::env::var_os("CALLGRID_WRITE_DOCS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        text == generated,
        "docs/API-ROLES.md is generated from api::openapi::ENDPOINTS: rerun this test with \
         CALLGRID_WRITE_DOCS=1 and commit the file"
    );
}
