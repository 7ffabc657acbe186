//! Endpoints beside the role-walked table [`super::ENDPOINTS`]: the cluster's membership
//! changes (admin only; a walk with a valid body would change the cluster, so the roles test
//! checks only that every other role and no token are refused), the browser session
//! (`/api/v1/session`, a cookie) and the operations endpoints outside `/api/v1`.

use serde_json::{Map, Value, json};

/// (method, full path, summary, roles besides admin, request schema, success status, success
/// body schema).
#[allow(clippy::type_complexity)]
pub const OTHER_ENDPOINTS: &[(&str, &str, &str, &str, Option<&str>, u16, &str)] = &[
    (
        "post",
        "/api/v1/cluster/learners",
        "Add a node as a learner (it catches up, then may be promoted)",
        "admin",
        Some("LearnerAdd"),
        200,
        "MembershipChange",
    ),
    (
        "post",
        "/api/v1/cluster/voters/{id}",
        "Promote a caught-up learner to voter",
        "admin",
        None,
        200,
        "MembershipChange",
    ),
    (
        "delete",
        "/api/v1/cluster/members/{id}",
        "Remove a member (voter or learner)",
        "admin",
        None,
        200,
        "MembershipChange",
    ),
    (
        "post",
        "/api/v1/cluster/leader",
        "Transfer leadership to another voter",
        "admin",
        Some("LeaderTransfer"),
        200,
        "MembershipChange",
    ),
    (
        "post",
        "/api/v1/session",
        "Browser sign-in: exchanges a token (in the body, no Authorization header) for an HttpOnly session cookie and a CSRF token (gateways may not sign in: 403; unknown token: 401)",
        "agent, supervisor",
        Some("SignIn"),
        200,
        "Session",
    ),
    (
        "get",
        "/api/v1/session",
        "Who the session cookie belongs to, and its CSRF token (401 without a live session)",
        "agent, supervisor",
        None,
        200,
        "Session",
    ),
    (
        "delete",
        "/api/v1/session",
        "Sign out (session cookie and the X-CSRF-Token header)",
        "agent, supervisor",
        None,
        204,
        "NoContent",
    ),
    (
        "get",
        "/healthz",
        "Liveness: the process answers",
        "anyone",
        None,
        200,
        "Health",
    ),
    (
        "get",
        "/readyz",
        "Readiness: 200 once Raft has a leader, else 503; the cluster details only with a supervisor or admin token",
        "anyone",
        None,
        200,
        "Health",
    ),
    (
        "get",
        "/metrics",
        "Prometheus text exposition (every metric with HELP and TYPE)",
        "anyone",
        None,
        200,
        "Metrics",
    ),
];

/// Per-endpoint changes to the generated operation: the session's cookie security, the
/// operations endpoints' own answers.
pub(super) fn adjust(method: &str, path: &str, operation: &mut Value) {
    let problem =
        json!({"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}});
    match (method, path) {
        ("post", "/api/v1/session") => operation["security"] = json!([]),
        (_, "/api/v1/session") => {
            operation["security"] = json!([{"session": []}]);
            if method == "delete" {
                operation["responses"]["204"] = json!({"description": "Signed out"});
            }
        }
        ("get", "/healthz") => {
            operation["responses"] = json!({"200": operation["responses"]["200"].clone()});
        }
        ("get", "/readyz") => {
            let ok = operation["responses"]["200"].clone();
            let mut not_ready = ok.clone();
            not_ready["description"] = json!("Not ready (no leader yet)");
            operation["responses"] = json!({"200": ok, "503": not_ready});
        }
        ("get", "/metrics") => {
            operation["responses"] = json!({"200": {"description": "Prometheus text format 0.0.4",
                "content": {"text/plain": {"schema": {"type": "string"}}}}});
        }
        _ => {
            // Membership changes: 409 when this node is not the leader or the change is
            // refused, 503 when the cluster cannot make it now.
            operation["responses"]["409"] = json!({"description": "Not the leader, or the change is refused", "content": problem});
        }
    }
}

/// Request and response schemas of these endpoints.
pub(super) fn schemas() -> Map<String, Value> {
    let object = |required: Value, properties: Value| json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties});
    let mut schemas = Map::new();
    schemas.insert(
        "LearnerAdd".to_string(),
        object(
            json!(["id", "address"]),
            json!({"id": {"type": "integer", "minimum": 1}, "address": {"type": "string", "description": "host:port of the member's cluster listener"}}),
        ),
    );
    schemas.insert(
        "LeaderTransfer".to_string(),
        object(
            json!(["id"]),
            json!({"id": {"type": "integer", "minimum": 1}}),
        ),
    );
    schemas.insert(
        "SignIn".to_string(),
        object(json!(["token"]), json!({"token": {"type": "string"}})),
    );
    schemas
}
