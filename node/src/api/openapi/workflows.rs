//! Quality reviews, the per-agent report, pending creates and the cluster roster in the
//! OpenAPI document: their query parameters and response body schemas (open objects, like
//! [`super::responses`]).

use serde_json::{Map, Value, json};

/// Query parameters of `method path` among these endpoints (besides `consistency`).
pub(super) fn query_parameters(method: &str, path: &str) -> Vec<Value> {
    let parameter = |name: &str, description: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema});
    let limit = |maximum: usize, default: usize| {
        parameter(
            "limit",
            "at most this many (newest first); outside the range is a 400",
            json!({"type": "integer", "minimum": 1, "maximum": maximum, "default": default}),
        )
    };
    let day = json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"});
    let login = json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"});
    match (method, path) {
        ("get", "/reviews") => vec![
            parameter("agent", "only this agent's reviews (login)", login),
            parameter(
                "from",
                "first local day of the contacts' end, YYYY-MM-DD, inclusive",
                day.clone(),
            ),
            parameter("to", "last local day, inclusive", day),
            limit(crate::state::quality::REVIEWS_LIST_MAX, 100),
        ],
        ("get", "/quality/contacts") => vec![limit(crate::state::ledger::LEDGER_LIST_MAX, 50)],
        ("get", "/pending") => vec![
            parameter(
                "agent",
                "whose pending creates (a principal's name); agents and gateways see their own",
                json!({"type": "string", "minLength": 1, "maxLength": 64}),
            ),
            parameter(
                "status",
                "pending: only the ones still waiting",
                json!({"type": "string", "enum": ["pending"]}),
            ),
            limit(crate::api::routes::pending::PENDING_LIST_LIMIT_MAX, 100),
        ],
        _ => Vec::new(),
    }
}

fn object(required: Value, properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

/// The response body schemas (components), by name.
pub(super) fn schemas() -> Map<String, Value> {
    let checklist = json!({"type": "array", "items": object(json!(["name", "max_points"]),
        json!({"name": {"type": "string"}, "max_points": {"type": "integer"}, "weight": {"type": "number"}}))});
    let review = object(
        json!([
            "id",
            "contact",
            "site",
            "agent",
            "reviewer",
            "scores",
            "score_percent"
        ]),
        json!({"id": {"type": "integer"}, "contact": {"type": "integer"}, "site": {"type": "string"},
            "agent": {"type": "string"}, "skill": {"type": "string"},
            "arrived_at_ms": {"type": "integer"}, "ended_at_ms": {"type": "integer"},
            "recording_ref": nullable("string"), "reviewer": {"type": "string"},
            "reviewed_at_ms": {"type": "integer"}, "checklist": checklist.clone(),
            "scores": {"type": "array"}, "comment": {"type": "string"},
            "revision": {"type": "integer"}, "score_percent": {"type": "number"}}),
    );
    let pending = object(
        json!(["pending_id", "kind", "status", "idempotency_key"]),
        json!({"pending_id": {"type": "string"}, "kind": {"type": "string"},
            "status": {"type": "string", "enum": ["pending", "committed", "refused"]},
            "principal": {"type": "string"}, "idempotency_key": {"type": "string"},
            "taken_at_ms": {"type": "integer"}, "resolved_at_ms": {"type": "integer"},
            "request": {}, "result": {}, "location": nullable("string"), "record": {},
            "problem": {"type": "object"}}),
    );
    let roster_agent = object(
        json!([
            "login",
            "id",
            "skills",
            "defined_by_site",
            "may_log_in_here"
        ]),
        json!({"login": {"type": "string"}, "id": {"type": "integer"},
            "skills": {"type": "array", "items": {"type": "string"}},
            "certificate_valid_until": nullable("string"), "chat_slots": {"type": "integer"},
            "defined_by_site": {"type": "string"}, "changed_at_ms": {"type": "integer"},
            "may_log_in_here": {"type": "boolean"}}),
    );
    let mut schemas = Map::new();
    let mut put = |name: &str, schema: Value| {
        schemas.insert(name.to_string(), schema);
    };
    put(
        "ReviewRecorded",
        object(
            json!(["review", "replaced"]),
            json!({"review": {"type": "integer"}, "replaced": {"type": "boolean"}}),
        ),
    );
    put("Review", review.clone());
    put(
        "ContactReviews",
        object(
            json!(["contact", "reviews", "checklist"]),
            json!({"contact": {"type": "integer"}, "ledger": {"type": ["object", "null"]},
                "reviews": {"type": "array", "items": review.clone()}, "checklist": checklist.clone()}),
        ),
    );
    put(
        "ReviewList",
        object(
            json!(["reviews", "total", "agents"]),
            json!({"reviews": {"type": "array", "items": review}, "total": {"type": "integer"},
                "agents": {"type": "array", "items": object(json!(["agent", "reviews"]),
                    json!({"agent": {"type": "string"}, "reviews": {"type": "integer"},
                        "score_percent_mean": nullable("number")}))}}),
        ),
    );
    put(
        "FinishedContacts",
        object(
            json!(["contacts", "checklist"]),
            json!({"contacts": {"type": "array", "items": object(json!(["contact", "site", "reviews"]),
                json!({"contact": {"type": "integer"}, "site": {"type": "string"}, "skill": {"type": "string"},
                    "agent": nullable("string"), "arrived_at_ms": {"type": "integer"},
                    "ended_at_ms": {"type": "integer"}, "recording_ref": nullable("string"),
                    "reviews": {"type": "integer"}, "score_percent_mean": nullable("number")}))},
                "checklist": checklist}),
        ),
    );
    put(
        "AgentReport",
        object(
            json!(["date", "site", "agents"]),
            json!({"date": {"type": "string"}, "site": {"type": "string"},
                "utc_offset_minutes": {"type": "integer"},
                "agents": {"type": "array", "items": object(json!(["login", "reviews"]),
                    json!({"login": {"type": "string"}, "reviews": {"type": "integer"},
                        "review_score_percent_mean": nullable("number"),
                        "counters": {"type": ["object", "null"]}, "aht_ms": nullable("number"),
                        "occupancy": nullable("number")}))}}),
        ),
    );
    put("Pending", pending.clone());
    put(
        "PendingList",
        object(
            json!(["pending"]),
            json!({"pending": {"type": "array", "items": pending}}),
        ),
    );
    put(
        "PendingAccepted",
        object(
            json!([
                "status",
                "pending_id",
                "kind",
                "idempotency_key",
                "location"
            ]),
            json!({"status": {"type": "string", "enum": ["pending"]}, "pending_id": {"type": "string"},
                "kind": {"type": "string"}, "idempotency_key": {"type": "string"}, "location": {"type": "string"}}),
        ),
    );
    put(
        "Roster",
        object(
            json!(["site", "agents"]),
            json!({"site": {"type": "string"}, "agents": {"type": "array", "items": roster_agent}}),
        ),
    );
    schemas
}
