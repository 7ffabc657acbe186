//! What the endpoints answer: the success status and body schema of each ([`SUCCESS`]), the
//! query parameters each takes ([`query_parameters`]), and the response body schemas.
//!
//! Schemas list the fields a client relies on as `required` and type every field the server
//! writes; they leave `additionalProperties` open, so a field added later is not a breaking
//! change. `scripts/schemathesis.sh` checks a running node against them.

use serde_json::{Map, Value, json};

/// Success answers: (method, path, status, body). The body is a component schema name, or
/// one of `WebSocket` (101, a stream), `Xlsx` (a workbook), `IntervalReport` (JSON, or CSV with
/// `?format=csv`).
pub const SUCCESS: &[(&str, &str, u16, &str)] = &[
    ("post", "/contacts", 201, "ContactArrivedReply"),
    ("get", "/contacts/{contact}", 200, "Contact"),
    ("post", "/contacts/{contact}/answered", 200, "Contact"),
    ("post", "/contacts/{contact}/ended", 200, "Contact"),
    ("post", "/contacts/{contact}/abandoned", 200, "Contact"),
    ("post", "/contacts/{contact}/self-served", 200, "Contact"),
    ("post", "/contacts/{contact}/messages", 200, "Accepted"),
    ("get", "/gateway/stream", 101, "WebSocket"),
    ("get", "/self-service/order-status", 200, "OpenOrders"),
    ("get", "/agents/{login}", 200, "Agent"),
    ("post", "/agents/{login}/login", 200, "Agent"),
    ("post", "/agents/{login}/logout", 200, "Agent"),
    ("post", "/agents/{login}/state", 200, "Agent"),
    ("get", "/agents/{login}/contacts/{contact}", 200, "Contact"),
    (
        "post",
        "/agents/{login}/contacts/{contact}/accept",
        200,
        "Contact",
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/reject",
        200,
        "Contact",
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/end",
        200,
        "Contact",
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/wrap-up",
        200,
        "WrapUpReply",
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/transfer",
        200,
        "Contact",
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/messages",
        200,
        "Accepted",
    ),
    ("get", "/agents/{login}/stream", 101, "WebSocket"),
    ("get", "/supervisor/queues", 200, "Queues"),
    ("get", "/supervisor/agents", 200, "Agents"),
    ("post", "/supervisor/monitor", 202, "MonitorRequest"),
    ("get", "/supervisor/stream", 101, "WebSocket"),
    ("get", "/reports/intervals", 200, "IntervalReport"),
    ("get", "/reports/agents", 200, "AgentReportOrCsv"),
    ("post", "/contacts/{contact}/reviews", 201, "ReviewRecorded"),
    ("get", "/contacts/{contact}/reviews", 200, "ContactReviews"),
    ("get", "/reviews", 200, "ReviewList"),
    ("get", "/quality/contacts", 200, "FinishedContacts"),
    ("get", "/pending", 200, "PendingList"),
    ("get", "/pending/{id}", 200, "Pending"),
    ("get", "/cluster/agents", 200, "Roster"),
    ("post", "/orders", 201, "OrderCreated"),
    ("get", "/orders", 200, "OrderList"),
    ("get", "/orders/{order}", 200, "Order"),
    ("patch", "/orders/{order}", 200, "Done"),
    ("post", "/orders/{order}/status", 200, "Done"),
    ("post", "/pre-orders", 201, "PreOrderCreated"),
    ("get", "/pre-orders", 200, "PreOrderList"),
    ("get", "/pre-orders/{id}", 200, "PreOrder"),
    ("post", "/pre-orders/{id}/cancel", 200, "Done"),
    ("post", "/stock-arrivals", 200, "CallbacksCreated"),
    ("post", "/reservations", 201, "ReservationCreated"),
    ("get", "/reservations", 200, "ReservationList"),
    ("get", "/reservations/{id}", 200, "Reservation"),
    ("post", "/reservations/{id}/collect", 200, "Done"),
    ("post", "/reservations/{id}/cancel", 200, "Done"),
    ("post", "/complaints", 201, "ComplaintFiled"),
    ("get", "/complaints", 200, "ComplaintList"),
    ("get", "/complaints/{id}", 200, "Complaint"),
    ("post", "/complaints/{id}/resolve", 200, "Done"),
    ("get", "/callbacks", 200, "CallbackList"),
    ("get", "/callbacks/{id}", 200, "Callback"),
    ("post", "/callbacks/{id}/outcome", 200, "Done"),
    ("get", "/ledger/contacts/{id}", 200, "LedgerEntry"),
    ("get", "/ledger/sites/{site}/open", 200, "LedgerOpen"),
    ("get", "/cluster/status", 200, "ClusterHealth"),
    ("get", "/cluster/overview", 200, "ClusterOverview"),
    ("post", "/cluster/sites/{id}/drain", 200, "SiteDrain"),
    ("post", "/cluster/sites/{id}/undrain", 200, "SiteDrain"),
    ("get", "/cluster/tokens", 200, "TokenList"),
    ("post", "/cluster/tokens", 201, "TokenAdded"),
    ("delete", "/cluster/tokens/{id}", 200, "TokenRevoked"),
    ("get", "/openapi.json", 200, "OpenApi"),
    ("get", "/exports/intervals.xlsx", 200, "Xlsx"),
    ("get", "/exports/agents.xlsx", 200, "Xlsx"),
    ("get", "/exports/orders.xlsx", 200, "Xlsx"),
];

/// The success answer of `method path`, if the table has one.
pub fn success(method: &str, path: &str) -> Option<(u16, &'static str)> {
    SUCCESS
        .iter()
        .find(|(m, p, _, _)| *m == method && *p == path)
        .map(|(_, _, status, body)| (*status, *body))
}

/// The `responses` entry of a success answer.
pub(super) fn success_response(status: u16, body: &str) -> Value {
    let json_body = |schema: &str| json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
    match body {
        "WebSocket" => {
            json!({"description": "Switching Protocols: the WebSocket stream (a plain GET without the upgrade headers is a 400)"})
        }
        "Xlsx" => json!({"description": "The workbook", "content": {
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {"schema": {"type": "string", "format": "binary"}}}}),
        "AgentReportOrCsv" => {
            let mut content = json_body("AgentReport");
            content["text/csv"] = json!({"schema": {"type": "string"}});
            json!({"description": format!("{status}: the day's per-agent report (JSON, or CSV with ?format=csv)"), "content": content})
        }
        "IntervalReport" => {
            let mut content = json_body(body);
            content["text/csv"] = json!({"schema": {"type": "string"}});
            json!({"description": format!("{status}: the day's report (JSON, or CSV with ?format=csv)"), "content": content})
        }
        "Done" => {
            json!({"description": "Done (an empty object)", "content": json_body(body)})
        }
        schema => json!({"description": "OK", "content": json_body(schema)}),
    }
}

/// Links from a create's answer to the operations on what it created (source method and
/// path, target method and path, target parameter, runtime expression): clients and
/// schemathesis's stateful phase follow them.
pub const LINKS: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "post",
        "/contacts",
        "get",
        "/contacts/{contact}",
        "contact",
        "$response.body#/contact/id",
    ),
    (
        "post",
        "/contacts",
        "post",
        "/contacts/{contact}/answered",
        "contact",
        "$response.body#/contact/id",
    ),
    (
        "post",
        "/contacts",
        "post",
        "/contacts/{contact}/ended",
        "contact",
        "$response.body#/contact/id",
    ),
    (
        "post",
        "/contacts",
        "post",
        "/contacts/{contact}/abandoned",
        "contact",
        "$response.body#/contact/id",
    ),
    (
        "post",
        "/contacts",
        "post",
        "/contacts/{contact}/self-served",
        "contact",
        "$response.body#/contact/id",
    ),
    (
        "post",
        "/contacts",
        "post",
        "/contacts/{contact}/messages",
        "contact",
        "$response.body#/contact/id",
    ),
    (
        "post",
        "/contacts",
        "get",
        "/ledger/contacts/{id}",
        "id",
        "$response.body#/contact/id",
    ),
    (
        "post",
        "/orders",
        "get",
        "/orders/{order}",
        "order",
        "$response.body#/order",
    ),
    (
        "post",
        "/orders",
        "patch",
        "/orders/{order}",
        "order",
        "$response.body#/order",
    ),
    (
        "post",
        "/orders",
        "post",
        "/orders/{order}/status",
        "order",
        "$response.body#/order",
    ),
    (
        "post",
        "/pre-orders",
        "get",
        "/pre-orders/{id}",
        "id",
        "$response.body#/pre_order",
    ),
    (
        "post",
        "/pre-orders",
        "post",
        "/pre-orders/{id}/cancel",
        "id",
        "$response.body#/pre_order",
    ),
    (
        "post",
        "/reservations",
        "get",
        "/reservations/{id}",
        "id",
        "$response.body#/reservation",
    ),
    (
        "post",
        "/reservations",
        "post",
        "/reservations/{id}/collect",
        "id",
        "$response.body#/reservation",
    ),
    (
        "post",
        "/reservations",
        "post",
        "/reservations/{id}/cancel",
        "id",
        "$response.body#/reservation",
    ),
    (
        "post",
        "/complaints",
        "get",
        "/complaints/{id}",
        "id",
        "$response.body#/complaint",
    ),
    (
        "post",
        "/complaints",
        "post",
        "/complaints/{id}/resolve",
        "id",
        "$response.body#/complaint",
    ),
    (
        "post",
        "/cluster/tokens",
        "delete",
        "/cluster/tokens/{id}",
        "id",
        "$response.body#/sha256",
    ),
];

/// An operation's id: the method and the path's words (`post_contacts_contact_answered`).
pub fn operation_id(method: &str, path: &str) -> String {
    let words: Vec<String> = path
        .split(|character: char| !character.is_ascii_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect();
    format!("{method}_{}", words.join("_"))
}

/// The `links` of the success answer of `method path`.
pub(super) fn links(method: &str, path: &str) -> Option<Value> {
    let mut links = Map::new();
    for (from_method, from_path, to_method, to_path, parameter, expression) in LINKS {
        if *from_method == method && *from_path == path {
            let id = operation_id(to_method, to_path);
            links.insert(
                id.clone(),
                json!({"operationId": id, "parameters": {*parameter: expression}}),
            );
        }
    }
    (!links.is_empty()).then_some(Value::Object(links))
}

/// Query parameters of `method path` besides `consistency` (added to every replicated read).
pub fn query_parameters(method: &str, path: &str) -> Vec<Value> {
    let limit = |maximum: usize, default: usize| {
        json!({"name": "limit", "in": "query", "required": false,
            "description": "records at most (newest first); outside the range is a 400",
            "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default}})
    };
    let caller = |required: bool| {
        json!({"name": "caller", "in": "query", "required": required,
            "description": "the customer's phone number (normalized to +7…; an invalid number is a 400)",
            "schema": {"type": "string", "minLength": 1, "maxLength": 32}})
    };
    let list = crate::api::routes::LIST_LIMIT_MAX;
    match (method, path) {
        ("get", "/self-service/order-status") => vec![caller(true)],
        ("get", "/orders") => vec![caller(false), limit(list, 100)],
        ("get", "/pre-orders" | "/reservations" | "/complaints" | "/callbacks") => {
            vec![limit(list, 100)]
        }
        ("get", "/ledger/sites/{site}/open") => {
            let maximum = crate::state::ledger::LEDGER_LIST_MAX;
            vec![limit(maximum, 100)]
        }
        ("get", "/reports/intervals") => report_parameters(),
        ("get", "/reports/agents") => report_parameters()
            .into_iter()
            .filter(|parameter| parameter["name"] != "rows")
            .collect(),
        _ => super::workflows::query_parameters(method, path),
    }
}

fn report_parameters() -> Vec<Value> {
    let parameter = |name: &str, description: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema});
    vec![
        parameter(
            "date",
            "the site's local day, YYYY-MM-DD (default today); a day not kept is a 404",
            json!({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}),
        ),
        parameter(
            "format",
            "json (default) or csv",
            json!({"type": "string", "enum": ["json", "csv"]}),
        ),
        parameter(
            "rows",
            "CSV only: intervals (interval × site/queue rows, default) or agents (one row per agent)",
            json!({"type": "string", "enum": ["intervals", "agents"]}),
        ),
        parameter(
            "sep",
            "CSV only: field separator",
            json!({"type": "string", "enum": ["comma", "semicolon", ",", ";"]}),
        ),
        parameter(
            "decimal",
            "CSV only: decimal mark (default: comma with sep=semicolon, else point); a decimal comma needs sep=semicolon",
            json!({"type": "string", "enum": ["point", "comma", ".", ","]}),
        ),
        parameter(
            "locale",
            "CSV only: ru = `;` and decimal commas, en = `,` and points (sep and decimal win)",
            json!({"type": "string", "enum": ["ru", "en"]}),
        ),
    ]
}

fn nullable(kind: &str) -> Value {
    json!({"type": [kind, "null"]})
}

fn object(required: Value, properties: Value) -> Value {
    json!({"type": "object", "required": required, "properties": properties})
}

fn reference(schema: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{schema}")})
}

fn list_of(key: &str, schema: &str) -> Value {
    object(
        json!([key]),
        json!({key: {"type": "array", "items": reference(schema)}}),
    )
}

/// The response body schemas (components), by name.
pub(super) fn schemas() -> Map<String, Value> {
    let mut schemas = Map::new();
    for (name, schema) in routing_schemas().into_iter().chain(record_schemas()) {
        schemas.insert(name.to_string(), schema);
    }
    schemas
}

/// Contacts, agents, queues, monitoring and the interval report.
fn routing_schemas() -> Vec<(&'static str, Value)> {
    let stage = json!({"type": "string", "enum": ["queued", "offered", "talking", "wrap_up", "finished", "abandoned", "self_served", "blocked", "overflowed", "callback_scheduled"]});
    let state = json!({"type": "string", "enum": ["logged_out", "available", "reserved", "busy", "wrap_up", "not_ready"]});
    let row = object(
        json!(["site", "counters"]),
        json!({"site": {"type": "string", "description": "site id"},
            "skill": {"type": ["string", "null"], "description": "skill name; null on a site row"},
            "service_level": nullable("number"), "abandon_rate": nullable("number"),
            "asa_ms": nullable("number"), "aht_ms": nullable("number"),
            "abandon_wait_ms_average": nullable("number"), "queue_length_average": nullable("number"),
            "occupancy": nullable("number"), "counters": {"type": "object"}}),
    );
    vec![
        (
            "Contact",
            object(
                json!([
                    "id",
                    "caller",
                    "channel",
                    "topic",
                    "skill",
                    "direction",
                    "stage",
                    "arrived_at_ms"
                ]),
                json!({"id": {"type": "integer"}, "caller": {"type": "string"},
                "channel": {"type": "string", "enum": ["voice", "chat"]}, "topic": {"type": "string"},
                "skill": {"type": "string"}, "direction": {"type": "string"},
                "callback": nullable("integer"), "agent": nullable("string"), "stage": stage,
                "arrived_at_ms": {"type": "integer", "description": "ms since the Unix epoch"},
                "queue_position": nullable("integer"), "wait_ms_estimated": nullable("integer"),
                "wrap_up_code": nullable("string"), "transferred_from": nullable("string"),
                "overflowed_from": {"type": ["object", "null"]}, "overflowed_to": {"type": ["object", "null"]},
                "messages": {"type": "array", "items": {"type": "object", "required": ["from", "text", "at_ms"]}}}),
            ),
        ),
        (
            "ContactArrivedReply",
            object(
                json!(["contact", "open_orders"]),
                json!({"contact": reference("Contact"), "open_orders": {"type": "array", "items": {"type": "object", "required": ["order", "status"]}}}),
            ),
        ),
        (
            "OpenOrders",
            object(
                json!(["caller", "open_orders"]),
                json!({"caller": {"type": "string"}, "open_orders": {"type": "array", "items": {"type": "object", "required": ["order", "status", "total_minor", "created_at_ms"]}}}),
            ),
        ),
        (
            "Accepted",
            object(
                json!(["accepted"]),
                json!({"accepted": {"type": "boolean"}}),
            ),
        ),
        (
            "Agent",
            object(
                json!(["login", "id", "state", "not_ready_reason", "contacts"]),
                json!({"login": {"type": "string"}, "id": {"type": "integer"}, "state": state,
                "not_ready_reason": {"type": ["string", "null"], "description": "in not_ready: break, other_work, no_answer, rejected or code_<n>; null otherwise"},
                "state_since_ms": nullable("integer"), "time_in_state_ms": nullable("integer"),
                "contacts": {"type": "array", "items": reference("Contact")},
                "changed": {"type": "boolean", "description": "in answers to login, logout and state: whether the state changed now"}}),
            ),
        ),
        (
            "WrapUpReply",
            json!({"description": "The finished contact; after a transfer (the contact is with line 2) the agent, now free",
            "oneOf": [reference("Contact"), reference("Agent")]}),
        ),
        (
            "Agents",
            object(
                json!(["site", "agents"]),
                json!({"site": {"type": "string"}, "agents": {"type": "array", "items": reference("Agent")}}),
            ),
        ),
        (
            "Queue",
            object(
                json!([
                    "skill",
                    "channel",
                    "line",
                    "in_queue",
                    "agents_staffed",
                    "agents_available"
                ]),
                json!({"skill": {"type": "string"}, "channel": {"type": "string"}, "line": {"type": "string"},
                "in_queue": {"type": "integer"}, "oldest_age_ms": nullable("integer"), "newest_age_ms": nullable("integer"),
                "wait_ms_estimated": nullable("integer"), "agents_staffed": {"type": "integer"},
                "agents_available": {"type": "integer"}, "agents_on_contact": {"type": "integer"},
                "agents_wrap_up": {"type": "integer"}, "agents_not_ready": {"type": "integer"}}),
            ),
        ),
        (
            "Queues",
            object(
                json!(["site", "queues"]),
                json!({"site": {"type": "string"}, "queues": {"type": "array", "items": reference("Queue")}}),
            ),
        ),
        (
            "MonitorRequest",
            object(
                json!(["type", "mode", "supervisor", "agent", "contact", "at_ms"]),
                json!({"type": {"const": "monitor"}, "mode": {"type": "string", "enum": ["listen", "whisper", "barge"]},
                "supervisor": {"type": "string"}, "agent": {"type": "string"}, "contact": {"type": "integer"}, "at_ms": {"type": "integer"}}),
            ),
        ),
        ("ReportRow", row),
        (
            "IntervalReport",
            object(
                json!([
                    "date",
                    "utc_offset_minutes",
                    "interval_ms",
                    "totals",
                    "intervals",
                    "sites",
                    "queues",
                    "agents"
                ]),
                json!({"date": {"type": "string", "description": "the site's local day"},
                "utc_offset_minutes": {"type": "integer"}, "interval_ms": {"type": "integer"},
                "service_level_target_ms": {"type": "integer"}, "totals": reference("ReportRow"),
                "intervals": {"type": "array", "items": object(
                    json!(["index", "start_ms", "start_at_ms", "interval_start", "sites", "queues"]),
                    json!({"index": {"type": "integer"}, "start_ms": {"type": "integer", "description": "ms since the local midnight"},
                        "start_at_ms": {"type": "integer", "description": "ms since the Unix epoch"},
                        "interval_start": {"type": "string", "description": "RFC 3339 in the site's offset"},
                        "sites": {"type": "array", "items": reference("ReportRow")},
                        "queues": {"type": "array", "items": reference("ReportRow")}}))},
                "sites": {"type": "array", "items": reference("ReportRow")},
                "queues": {"type": "array", "items": reference("ReportRow")},
                "agents": {"type": "array", "items": object(json!(["agent", "site", "counters"]),
                    json!({"agent": {"type": "string", "description": "login"}, "site": {"type": "string"},
                        "occupancy": nullable("number"), "aht_ms": nullable("number"), "counters": {"type": "object"}}))}}),
            ),
        ),
        (
            "OpenApi",
            json!({"type": "object", "required": ["openapi", "paths"]}),
        ),
    ]
}

/// Records of the replicated state, their lists and the answers of writes.
fn record_schemas() -> Vec<(&'static str, Value)> {
    let record = |required: &[&str], extra: Value| {
        let mut properties = json!({"id": {"type": "integer"}, "site": {"type": "string"},
            "caller": {"type": "string"}, "created_at_ms": {"type": "integer"}, "status": {"type": "string"}});
        if let (Some(properties), Value::Object(extra)) = (properties.as_object_mut(), extra) {
            properties.extend(extra);
        }
        let mut all = vec!["id", "site", "caller", "status", "created_at_ms"];
        all.extend_from_slice(required);
        object(json!(all), properties)
    };
    let items = json!({"type": "array", "items": {"type": "object", "required": ["sku", "name", "quantity", "unit_price_minor"]}});
    let health = object(
        json!(["node_id", "term", "commit_index", "applied_index"]),
        json!({"node_id": {"type": "integer"}, "leader": nullable("integer"), "term": {"type": "integer"},
            "commit_index": {"type": "integer"}, "applied_index": {"type": "integer"},
            "voters": {"type": "array", "items": {"type": "integer"}}, "learners": {"type": "array", "items": {"type": "integer"}}}),
    );
    let token = object(
        json!(["sha256", "name", "role"]),
        json!({"sha256": {"type": "string"}, "name": {"type": "string"}, "role": {"type": "string"}}),
    );
    vec![
        (
            "Order",
            record(
                &["items", "fulfilment", "payment", "total_minor", "history"],
                json!({
            "items": items, "fulfilment": {"type": "object"}, "payment": {"type": "string"},
            "delivery_note": {"type": "string"}, "total_minor": {"type": "integer"},
            "history": {"type": "array", "items": {"type": "object", "required": ["at_ms", "actor", "change"]}}}),
            ),
        ),
        (
            "PreOrder",
            record(
                &["sku", "quantity", "pharmacy"],
                json!({
            "sku": {"type": "string"}, "name": {"type": "string"}, "quantity": {"type": "integer"},
            "pharmacy": {"type": "string"}, "callback": nullable("integer")}),
            ),
        ),
        (
            "Reservation",
            record(
                &["pharmacy", "items", "expires_at_ms"],
                json!({
            "pharmacy": {"type": "string"}, "items": items, "expires_at_ms": {"type": "integer"}}),
            ),
        ),
        (
            "Complaint",
            record(
                &["text", "repeat_of"],
                json!({
            "order": nullable("integer"), "text": {"type": "string"},
            "repeat_of": {"type": "array", "items": {"type": "integer"}}, "resolution": {"type": "string"}}),
            ),
        ),
        (
            "Callback",
            object(
                json!([
                    "id",
                    "site",
                    "caller",
                    "reason",
                    "due_at_ms",
                    "attempts",
                    "status",
                    "created_at_ms"
                ]),
                json!({"id": {"type": "integer"}, "site": {"type": "string"}, "caller": {"type": "string"},
                "reason": {"type": "object"}, "due_at_ms": {"type": "integer"}, "attempts": {"type": "integer"},
                "attempts_max": {"type": "integer"}, "status": {"type": "string", "enum": ["pending", "queued", "completed", "failed", "cancelled"]},
                "claimed_by": nullable("string"), "last_outcome": nullable("string"), "created_at_ms": {"type": "integer"}}),
            ),
        ),
        ("OrderList", list_of("orders", "Order")),
        ("PreOrderList", list_of("pre_orders", "PreOrder")),
        ("ReservationList", list_of("reservations", "Reservation")),
        ("ComplaintList", list_of("complaints", "Complaint")),
        ("CallbackList", list_of("callbacks", "Callback")),
        (
            "OrderCreated",
            object(json!(["order"]), json!({"order": {"type": "integer"}})),
        ),
        (
            "PreOrderCreated",
            object(
                json!(["pre_order"]),
                json!({"pre_order": {"type": "integer"}}),
            ),
        ),
        (
            "ReservationCreated",
            object(
                json!(["reservation"]),
                json!({"reservation": {"type": "integer"}}),
            ),
        ),
        (
            "ComplaintFiled",
            object(
                json!(["complaint", "escalated"]),
                json!({"complaint": {"type": "integer"}, "escalated": {"type": "boolean"}}),
            ),
        ),
        (
            "CallbacksCreated",
            object(
                json!(["callbacks"]),
                json!({"callbacks": {"type": "array", "items": {"type": "integer"}}}),
            ),
        ),
        ("Done", json!({"type": "object"})),
        (
            "LedgerEntry",
            object(
                json!([
                    "contact",
                    "owner",
                    "skill",
                    "arrived_at_ms",
                    "stage",
                    "hops",
                    "updated_at_ms"
                ]),
                json!({"contact": {"type": "integer"}, "owner": {"type": "string"}, "caller": {"type": "string"},
                "skill": {"type": "string"}, "arrived_at_ms": {"type": "integer"}, "arrived_at_site": {"type": "string"},
                "stage": {"type": ["string", "object"]}, "hops": {"type": "integer"}, "moved_from": nullable("integer"),
                "updated_at_ms": {"type": "integer"}, "sequence": {"type": "integer"}}),
            ),
        ),
        (
            "LedgerOpen",
            object(
                json!([
                    "site",
                    "open",
                    "overflowed_out",
                    "overflowed_in",
                    "applied_index"
                ]),
                json!({"site": {"type": "string"}, "last_summary_at_ms": nullable("integer"),
                "open": {"type": "array", "items": reference("LedgerEntry")},
                "overflowed_out": {"type": "integer"}, "overflowed_in": {"type": "integer"}, "applied_index": {"type": "integer"}}),
            ),
        ),
        ("ClusterHealth", health),
        (
            "ClusterOverview",
            object(
                json!([
                    "node_id",
                    "site",
                    "term",
                    "commit_index",
                    "applied_index",
                    "members",
                    "sites"
                ]),
                json!({"node_id": {"type": "integer"}, "site": {"type": "string"}, "leader": nullable("integer"),
                "term": {"type": "integer"}, "commit_index": {"type": "integer"}, "applied_index": {"type": "integer"},
                "members": {"type": "array"}, "sites": {"type": "array", "items": {"type": "object", "required": ["site", "drained"]}}}),
            ),
        ),
        (
            "SiteDrain",
            object(
                json!(["site", "drained"]),
                json!({"site": {"type": "string"}, "drained": {"type": "boolean"}}),
            ),
        ),
        (
            "TokenList",
            object(
                json!(["tokens"]),
                json!({"tokens": {"type": "array", "items": token.clone()}}),
            ),
        ),
        ("TokenAdded", token),
        (
            "TokenRevoked",
            object(
                json!(["sha256", "revoked"]),
                json!({"sha256": {"type": "string"}, "revoked": {"type": "boolean"}}),
            ),
        ),
        (
            "MembershipChange",
            object(
                json!(["done", "cluster"]),
                json!({"done": {"type": "string"}, "cluster": reference("ClusterHealth")}),
            ),
        ),
        (
            "Session",
            object(
                json!(["name", "role", "csrf"]),
                json!({"name": {"type": "string"}, "role": {"type": "string"}, "csrf": {"type": "string"}}),
            ),
        ),
        (
            "Health",
            object(
                json!(["status"]),
                json!({"status": {"type": "string"}, "cluster": reference("ClusterHealth")}),
            ),
        ),
    ]
}
