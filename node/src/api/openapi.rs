//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, written by hand from one table
//! of endpoints so it cannot drift from itself (a test checks every route is in it).

use serde_json::{Map, Value, json};

/// (method, path, summary, roles allowed besides admin, request body schema name).
pub const ENDPOINTS: &[(&str, &str, &str, &str, Option<&str>)] = &[
    (
        "post",
        "/contacts",
        "Gateway: a contact arrived (IVR topic chosen); with overflowed_from it is routed only on a committed ledger claim to this site (409 otherwise)",
        "gateway",
        Some("ContactArrived"),
    ),
    (
        "get",
        "/contacts/{contact}",
        "A contact (agents: only their own)",
        "gateway, supervisor, agent",
        None,
    ),
    (
        "post",
        "/contacts/{contact}/answered",
        "Gateway: the named agent's leg was answered (409 for another agent); recording_ref (optional) is kept with the contact's ledger entry for quality review",
        "gateway",
        Some("Answered"),
    ),
    (
        "post",
        "/contacts/{contact}/ended",
        "Gateway: the conversation ended; the body is optional, its recording_ref is kept with the contact's ledger entry (also when the agent ended it first)",
        "gateway",
        Some("Ended"),
    ),
    (
        "post",
        "/contacts/{contact}/abandoned",
        "Gateway: the caller hung up while waiting",
        "gateway",
        None,
    ),
    (
        "post",
        "/contacts/{contact}/self-served",
        "Gateway: the self-service bot served the caller while waiting (not an abandonment)",
        "gateway",
        None,
    ),
    (
        "post",
        "/contacts/{contact}/messages",
        "Gateway: a chat message from the customer",
        "gateway",
        Some("ChatMessage"),
    ),
    (
        "post",
        "/contacts/{contact}/reviews",
        "Quality control: score a finished contact (ended after an agent answered it, within the ledger's day of retention) on this site's checklist, with a comment; a second review by the same supervisor replaces the first (replaced: true, same id)",
        "supervisor",
        Some("Review"),
    ),
    (
        "get",
        "/contacts/{contact}/reviews",
        "Quality control: a contact's ledger entry (agent, recording_ref), its reviews with score_percent, and this site's checklist",
        "supervisor",
        None,
    ),
    (
        "get",
        "/reviews",
        "Quality control: reviews newest first (?agent=login&from=YYYY-MM-DD&to=YYYY-MM-DD: local days of the contacts' end, inclusive; &limit=) and per agent the count and mean score in percent",
        "supervisor",
        None,
    ),
    (
        "get",
        "/quality/contacts",
        "Quality control: finished contacts to score (every site's, newest end first, ?limit=) with agent, recording_ref and review count, and this site's checklist",
        "supervisor",
        None,
    ),
    (
        "get",
        "/gateway/stream",
        "WebSocket: dial requests for callbacks, monitoring requests, contact stage changes (type contact: stage, queue position, estimated wait; stage overflowed with overflowed_to {site, api_url, hops}: re-present the call there with overflowed_from, hops included — also when the site is drained; stage callback_scheduled: a drained site with no peer to take the caller scheduled a callback at the caller's place, tell the caller and end the call)",
        "gateway",
        None,
    ),
    (
        "get",
        "/self-service/order-status",
        "Open orders of a caller number (bot)",
        "gateway, agent, supervisor",
        None,
    ),
    (
        "get",
        "/agents/{login}",
        "Agent desktop: state and contacts",
        "agent (self), supervisor",
        None,
    ),
    (
        "post",
        "/agents/{login}/login",
        "Agent logs in",
        "agent (self), supervisor",
        None,
    ),
    (
        "post",
        "/agents/{login}/logout",
        "Agent logs out",
        "agent (self), supervisor",
        None,
    ),
    (
        "post",
        "/agents/{login}/state",
        "Ready / not ready with a reason code",
        "agent (self), supervisor",
        Some("AgentState"),
    ),
    (
        "get",
        "/agents/{login}/contacts/{contact}",
        "One of the agent's contacts",
        "agent (self), supervisor",
        None,
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/accept",
        "Accept an offer",
        "agent (self), supervisor",
        None,
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/reject",
        "Reject an offer",
        "agent (self), supervisor",
        None,
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/end",
        "End the conversation from the desktop",
        "agent (self), supervisor",
        None,
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/wrap-up",
        "Finish wrap-up with a code",
        "agent (self), supervisor",
        Some("WrapUp"),
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/transfer",
        "Transfer to line 2",
        "agent (self), supervisor",
        Some("Transfer"),
    ),
    (
        "post",
        "/agents/{login}/contacts/{contact}/messages",
        "Agent: a chat reply to the customer (also as {type: chat_message, contact, text} on the agent stream)",
        "agent (self), supervisor",
        Some("ChatMessage"),
    ),
    (
        "get",
        "/agents/{login}/stream",
        "WebSocket: the agent's state (on connect and on change), offers, withdrawn offers, chat messages",
        "agent (self), supervisor",
        None,
    ),
    (
        "get",
        "/supervisor/queues",
        "Real time per queue",
        "supervisor",
        None,
    ),
    (
        "get",
        "/supervisor/agents",
        "Real time per agent",
        "supervisor",
        None,
    ),
    (
        "post",
        "/supervisor/monitor",
        "Listen / whisper / barge request for the gateway",
        "supervisor",
        Some("Monitor"),
    ),
    (
        "get",
        "/supervisor/stream",
        "WebSocket: every routing event (type event) and each queue's live view on connect and on change (type queue)",
        "supervisor",
        None,
    ),
    (
        "get",
        "/reports/intervals",
        "One local day of per-interval statistics (?date=YYYY-MM-DD, default today at the site's utc_offset_minutes; 404 for a day not kept, the last 35 are; ?format=json|csv; ?sep=comma|semicolon: CSV with `;` and decimal commas; interval_start in RFC 3339 local time)",
        "supervisor",
        None,
    ),
    (
        "get",
        "/reports/agents",
        "One local day of per-agent workload and quality (?date=YYYY-MM-DD, default today; ?format=json|csv; ?sep=comma|semicolon): counters, AHT, occupancy, reviews of the day's contacts and their mean score in percent",
        "supervisor",
        None,
    ),
    (
        "post",
        "/orders",
        "Create an order",
        "agent, supervisor, gateway",
        Some("OrderCreate"),
    ),
    (
        "get",
        "/orders",
        "Recent orders or a caller's (?caller=&limit=)",
        "agent, supervisor",
        None,
    ),
    (
        "get",
        "/orders/{order}",
        "An order with its audit trail",
        "agent, supervisor, gateway",
        None,
    ),
    (
        "patch",
        "/orders/{order}",
        "Change items, fulfilment, payment or note (before assembly)",
        "agent, supervisor",
        Some("OrderUpdate"),
    ),
    (
        "post",
        "/orders/{order}/status",
        "Move an order to another status",
        "agent, supervisor",
        Some("OrderStatus"),
    ),
    (
        "post",
        "/pre-orders",
        "Put a customer on the defectura list",
        "agent, supervisor, gateway",
        Some("PreOrder"),
    ),
    (
        "get",
        "/pre-orders",
        "Recent pre-orders",
        "agent, supervisor",
        None,
    ),
    (
        "get",
        "/pre-orders/{id}",
        "A pre-order",
        "agent, supervisor, gateway",
        None,
    ),
    (
        "post",
        "/pre-orders/{id}/cancel",
        "Cancel a pre-order",
        "agent, supervisor",
        None,
    ),
    (
        "post",
        "/stock-arrivals",
        "An item arrived: callbacks for waiting pre-orders",
        "agent, supervisor",
        Some("StockArrival"),
    ),
    (
        "post",
        "/reservations",
        "Reserve items at a pharmacy until an expiry",
        "agent, supervisor, gateway",
        Some("Reservation"),
    ),
    (
        "get",
        "/reservations",
        "Recent reservations",
        "agent, supervisor",
        None,
    ),
    (
        "get",
        "/reservations/{id}",
        "A reservation",
        "agent, supervisor, gateway",
        None,
    ),
    (
        "post",
        "/reservations/{id}/collect",
        "Reservation collected",
        "agent, supervisor",
        None,
    ),
    (
        "post",
        "/reservations/{id}/cancel",
        "Cancel a reservation",
        "agent, supervisor",
        None,
    ),
    (
        "post",
        "/complaints",
        "File a complaint (repeats are escalated)",
        "agent, supervisor",
        Some("Complaint"),
    ),
    (
        "get",
        "/complaints",
        "Recent complaints",
        "supervisor",
        None,
    ),
    (
        "get",
        "/complaints/{id}",
        "A complaint",
        "agent, supervisor",
        None,
    ),
    (
        "post",
        "/complaints/{id}/resolve",
        "Resolve a complaint",
        "supervisor",
        Some("Resolve"),
    ),
    (
        "get",
        "/callbacks",
        "Recent callbacks",
        "supervisor, gateway",
        None,
    ),
    (
        "get",
        "/callbacks/{id}",
        "A callback",
        "supervisor, gateway, agent",
        None,
    ),
    (
        "post",
        "/callbacks/{id}/outcome",
        "Record a dial attempt's outcome",
        "gateway, supervisor",
        Some("CallbackOutcome"),
    ),
    (
        "get",
        "/ledger/contacts/{id}",
        "A contact's ledger entry (owner site, queue, original arrival, coarse stage, hops)",
        "supervisor",
        None,
    ),
    (
        "get",
        "/ledger/sites/{site}/open",
        "A site's open ledger entries and its overflow counts from committed claims",
        "supervisor",
        None,
    ),
    (
        "get",
        "/pending",
        "Pending creates kept at this site until the quorum is back (?agent=LOGIN: one principal's, the default for agents and gateways; ?status=pending: only those still waiting; ?limit=), each pending, committed (with the record) or refused",
        "agent (self), supervisor, gateway (self)",
        None,
    ),
    (
        "get",
        "/pending/{id}",
        "A pending create: pending, or committed with the record and its location, or refused with the problem (answered from this site's copy, like ?consistency=local)",
        "agent (self), supervisor, gateway (self)",
        None,
    ),
    ("get", "/cluster/status", "Raft status", "supervisor", None),
    (
        "get",
        "/cluster/overview",
        "Members, leader, lag, each site's load and drain state",
        "admin",
        None,
    ),
    (
        "post",
        "/cluster/sites/{id}/drain",
        "Drain a site (no new contacts, callbacks move away)",
        "admin",
        None,
    ),
    (
        "post",
        "/cluster/sites/{id}/undrain",
        "Undrain a site",
        "admin",
        None,
    ),
    (
        "get",
        "/cluster/tokens",
        "Cluster-wide tokens (hashes)",
        "admin",
        None,
    ),
    (
        "post",
        "/cluster/tokens",
        "Add a token valid at every site",
        "admin",
        Some("TokenAdd"),
    ),
    (
        "delete",
        "/cluster/tokens/{id}",
        "Revoke a token at every site (id: its sha256)",
        "admin",
        None,
    ),
    (
        "get",
        "/cluster/agents",
        "Cluster-wide agent roster (every site's agents; who may log in here)",
        "admin",
        None,
    ),
    ("get", "/openapi.json", "This document", "anyone", None),
    (
        "post",
        "/session",
        "Browser sign-in: the token goes in the body (no Authorization header); answers an HttpOnly session cookie and the CSRF token (gateways may not sign in: 403; unknown token: 401)",
        "agent, supervisor",
        Some("SignIn"),
    ),
    (
        "get",
        "/session",
        "Who the session cookie belongs to, and its CSRF token (401 without a live session)",
        "agent, supervisor",
        None,
    ),
    (
        "delete",
        "/session",
        "Sign out (the session cookie and X-CSRF-Token)",
        "agent, supervisor",
        None,
    ),
    (
        "get",
        "/exports/intervals.xlsx",
        "Interval reports as .xlsx (one sheet per site)",
        "supervisor",
        None,
    ),
    (
        "get",
        "/exports/agents.xlsx",
        "Per-agent workload as .xlsx",
        "supervisor",
        None,
    ),
    (
        "get",
        "/exports/orders.xlsx",
        "The order journal as .xlsx",
        "supervisor",
        None,
    ),
];

/// The creates that take an `Idempotency-Key` (method, path): see `api::routes::replicated`.
pub const IDEMPOTENT_CREATES: &[(&str, &str)] = &[
    ("post", "/orders"),
    ("post", "/pre-orders"),
    ("post", "/reservations"),
    ("post", "/complaints"),
    ("post", "/callbacks/{id}/outcome"),
    ("post", "/contacts/{contact}/reviews"),
];

/// The creates that may wait in the site's outbox with `Prefer: respond-async` (paths, all
/// POST): see `api::routes::pending`.
pub const ASYNC_CREATES: &[&str] = &["/orders", "/pre-orders", "/reservations", "/complaints"];

/// The reads of the replicated state (GET paths): `?consistency=` and the read headers.
pub const REPLICATED_READS: &[&str] = &[
    "/self-service/order-status",
    "/orders",
    "/orders/{order}",
    "/pre-orders",
    "/pre-orders/{id}",
    "/reservations",
    "/reservations/{id}",
    "/complaints",
    "/complaints/{id}",
    "/callbacks",
    "/callbacks/{id}",
    "/ledger/contacts/{id}",
    "/ledger/sites/{site}/open",
    "/contacts/{contact}/reviews",
    "/reviews",
    "/quality/contacts",
];

/// Problem types a client acts on differently (slug, status, meaning).
const PROBLEM_TYPES: &[(&str, u16, &str)] = &[
    (
        "no-quorum",
        503,
        "No leader or no quorum answers: nothing was written (a read: this node cannot prove its copy current; read with ?consistency=local to get it marked with its age). Retry after Retry-After.",
    ),
    (
        "outcome-unknown",
        503,
        "The write may or may not have committed (timed out, leader changed). Retry with the same Idempotency-Key: the retry returns the first result if there was one, and creates nothing twice.",
    ),
    (
        "idempotency-key-reused",
        422,
        "The Idempotency-Key was used before (by this principal, within a day) for a different request body.",
    ),
];

/// Adds the `Idempotency-Key` parameter and the replay answers to a create's operation.
fn document_idempotent_create(operation: &mut Value) {
    let key = json!({"name": "Idempotency-Key", "in": "header", "required": false,
        "description": "Makes the create happen at most once: a retry with the same key and body (also through another site) returns the first result with Idempotent-Replayed: true. Scoped to the principal, remembered for 24 h of log time (the oldest keys beyond 50,000 are forgotten first).",
        "schema": {"type": "string", "minLength": 1, "maxLength": crate::state::command::IDEMPOTENCY_KEY_CHARS_MAX, "pattern": "^[!-~]+$"}});
    push_parameter(operation, key);
    let replayed = json!({"Idempotent-Replayed": {"description": "true when this is the remembered first result of an earlier request with the same key", "schema": {"type": "string", "enum": ["true"]}}});
    for status in ["200", "201"] {
        operation["responses"][status] = json!({"description": "OK", "headers": replayed.clone()});
    }
    operation["responses"]["422"] = json!({"description": "The Idempotency-Key was used for a different request (type .../idempotency-key-reused)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
}

/// Adds `Prefer: respond-async` and the 202 pending answer to a create's operation.
fn document_async_create(operation: &mut Value) {
    push_parameter(
        operation,
        json!({"name": "Prefer", "in": "header", "required": false,
            "description": "respond-async (RFC 7240): when the create cannot commit now (this site is cut off from the quorum, or the proposal ends no-quorum or outcome-unknown) the site keeps it in its durable outbox (fsync'd before answering) under the request's Idempotency-Key (generated when absent, returned in the Idempotency-Key header) and answers 202; it commits once after the heal. Without it such a create is a 503.",
            "schema": {"type": "string"}}),
    );
    operation["responses"]["202"] = json!({"description": "Kept until the quorum is back: {\"status\":\"pending\",\"pending_id\",\"kind\",\"idempotency_key\",\"location\"}; follow GET /api/v1/pending/{id}",
        "headers": {
            "Location": {"description": "/api/v1/pending/{id}", "schema": {"type": "string"}},
            "Preference-Applied": {"description": "respond-async", "schema": {"type": "string"}},
            "Idempotency-Key": {"description": "the key the create commits under", "schema": {"type": "string"}}}});
}

/// Adds `?consistency=` and the read headers to a read's operation.
fn document_replicated_read(operation: &mut Value) {
    push_parameter(
        operation,
        json!({"name": "consistency", "in": "query", "required": false,
            "description": "linearizable (default): current as of the request, or 503 no-quorum; local: this node's copy at once, marked with its age (served when cut off from the quorum)",
            "schema": {"type": "string", "enum": ["linearizable", "local"], "default": "linearizable"}}),
    );
    operation["responses"]["200"] = json!({"description": "OK", "headers": {
        "X-Callgrid-Read": {"description": "how the read was made", "schema": {"type": "string", "enum": ["linearizable", "local"]}},
        "X-Callgrid-Applied-Index": {"description": "the Raft index applied on this node before the read (the data is at least this new)", "schema": {"type": "integer"}},
        "X-Callgrid-Staleness-Ms": {"description": "0 for a linearizable read; for a local one, ms since this node last knew itself in contact with a quorum (absent: never since it started)", "schema": {"type": "integer"}},
        "X-Callgrid-Stale": {"description": "true when a local read may miss what the cluster committed (no quorum contact within an election timeout)", "schema": {"type": "string", "enum": ["true", "false"]}}}});
}

fn push_parameter(operation: &mut Value, parameter: Value) {
    match operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
    {
        Some(parameters) => parameters.push(parameter),
        None => operation["parameters"] = json!([parameter]),
    }
}

fn schemas() -> Value {
    let item = json!({"type": "object", "additionalProperties": false, "required": ["sku", "name", "quantity", "unit_price_minor"],
        "properties": {"sku": {"type": "string"}, "name": {"type": "string"}, "quantity": {"type": "integer", "minimum": 1, "maximum": 10000},
                       "unit_price_minor": {"type": "integer", "minimum": 0, "description": "price of one unit in kopecks"}}});
    let fulfilment = json!({"oneOf": [
        {"type": "object", "additionalProperties": false, "required": ["pickup"], "properties": {"pickup": {"type": "object", "required": ["pharmacy"], "properties": {"pharmacy": {"type": "string"}}}}},
        {"type": "object", "additionalProperties": false, "required": ["delivery"], "properties": {"delivery": {"type": "object", "required": ["address"], "properties": {"address": {"type": "string"}}}}}
    ]});
    let status = json!({"type": "string", "enum": ["created", "confirmed", "assembled", "ready", "collected", "delivered", "cancelled", "returned"]});
    let payment = json!({"type": "string", "enum": ["cash", "card", "online"]});
    let recording_ref = json!({"type": "string", "minLength": 1, "maxLength": crate::state::ledger::RECORDING_REF_CHARS_MAX, "pattern": "^[!-~]+$",
        "description": "the call's recording: an http(s) URL or an opaque id (printable ASCII, no spaces)"});
    let object = |required: Value, properties: Value| json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties});
    json!({
        "Problem": {"type": "object", "description": problem_description(), "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}}},
        "OrderItem": item,
        "Fulfilment": fulfilment,
        "ContactArrived": object(json!(["caller", "topic"]), json!({
            "caller": {"type": "string"}, "channel": {"type": "string", "enum": ["voice", "chat"]},
            "topic": {"type": "string", "enum": ["price_availability", "order", "pre_order", "order_status", "complaint", "consultation", "other"]},
            "skill": {"type": "string"}, "priority": {"type": "integer", "minimum": 0, "maximum": 255},
            "overflowed_from": {"$ref": "#/components/schemas/OverflowedFrom"}})),
        "OverflowedFrom": {"type": "object", "additionalProperties": false, "required": ["site", "contact", "arrived_at_ms"],
            "description": "Cross-site overflow: a site whose queue waits too long sends a contact to a peer site with idle agents (its view and the gateway stream show stage `overflowed` and `overflowed_to` {site, api_url, hops}); the gateway re-presents the call at that site's POST /contacts with this field. The target counts it overflowed in and queues it at the caller's original place (arrived_at_ms); a contact whose hops reached the maximum is never moved again. 400 if the site is not a configured peer, the time is implausible or hops is out of range.",
            "properties": {"site": {"type": "string", "description": "source site id"}, "contact": {"type": "integer", "minimum": 1, "description": "contact id at the source"},
                "arrived_at_ms": {"type": "integer", "minimum": 1, "description": "first arrival, ms since the Unix epoch"},
                "hops": {"type": "integer", "minimum": 1, "maximum": crate::actors::overflow::OVERFLOW_HOPS_MAX, "default": 1, "description": "moves between sites so far, this one included (overflowed_to.hops at the source)"}}},
        "Answered": object(json!(["agent"]), json!({"agent": {"type": "string"}, "recording_ref": recording_ref.clone()})),
        "Ended": object(json!([]), json!({"recording_ref": recording_ref})),
        "Review": object(json!(["scores"]), json!({
            "scores": {"type": "object", "description": "points per checklist item name (every item of the site's checklist, 0 to its max_points)", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": crate::state::quality::ITEM_POINTS_MAX}},
            "comment": {"type": "string", "maxLength": crate::state::quality::REVIEW_COMMENT_CHARS_MAX}})),
        "SignIn": object(json!(["token"]), json!({"token": {"type": "string", "maxLength": crate::api::session::SIGN_IN_TOKEN_CHARS_MAX}})),
        "ChatMessage": object(json!(["text"]), json!({"text": {"type": "string"}})),
        "AgentState": object(json!(["state"]), json!({"state": {"type": "string", "enum": ["ready", "not_ready"]}, "reason": {"type": "integer"}})),
        "WrapUp": object(json!(["code"]), json!({"code": {"type": "string"}, "callback_outcome": {"type": "string", "enum": ["reached", "no_answer", "busy", "cancelled"]}})),
        "Transfer": object(json!([]), json!({"skill": {"type": "string", "default": "line2"}})),
        "Monitor": object(json!(["agent", "mode"]), json!({"agent": {"type": "string"}, "mode": {"type": "string", "enum": ["listen", "whisper", "barge"]}})),
        "OrderCreate": object(json!(["caller", "items", "fulfilment", "payment"]), json!({
            "caller": {"type": "string"}, "items": {"type": "array", "items": {"$ref": "#/components/schemas/OrderItem"}, "maxItems": 100},
            "fulfilment": {"$ref": "#/components/schemas/Fulfilment"}, "payment": payment, "delivery_note": {"type": "string"}})),
        "OrderUpdate": object(json!([]), json!({
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/OrderItem"}},
            "fulfilment": {"$ref": "#/components/schemas/Fulfilment"}, "payment": payment, "delivery_note": {"type": "string"}})),
        "OrderStatus": object(json!(["status"]), json!({"status": status})),
        "PreOrder": object(json!(["caller", "sku", "name", "quantity", "pharmacy"]), json!({
            "caller": {"type": "string"}, "sku": {"type": "string"}, "name": {"type": "string"}, "quantity": {"type": "integer"}, "pharmacy": {"type": "string"}})),
        "StockArrival": object(json!(["sku"]), json!({"sku": {"type": "string"}, "pharmacy": {"type": "string"}})),
        "Reservation": object(json!(["caller", "pharmacy", "items", "expires_at_ms"]), json!({
            "caller": {"type": "string"}, "pharmacy": {"type": "string"},
            "items": {"type": "array", "items": {"$ref": "#/components/schemas/OrderItem"}}, "expires_at_ms": {"type": "integer"}})),
        "Complaint": object(json!(["caller", "text"]), json!({"caller": {"type": "string"}, "order": {"type": "integer"}, "text": {"type": "string"}})),
        "Resolve": object(json!(["resolution"]), json!({"resolution": {"type": "string"}})),
        "CallbackOutcome": object(json!(["outcome"]), json!({"outcome": {"type": "string", "enum": ["reached", "no_answer", "busy", "cancelled"]}})),
        "TokenAdd": object(json!(["name", "role", "sha256"]), json!({"name": {"type": "string"}, "role": {"type": "string", "enum": ["gateway", "agent", "supervisor", "admin"]}, "sha256": {"type": "string", "description": "hex SHA-256 of the token (`callgrid token hash`)"}})),
    })
}

fn problem_description() -> String {
    let mut text = String::from(
        "RFC 9457 problem details; `type` is https://callgrid.invalid/problems/<slug>. Slugs a client acts on:",
    );
    for (slug, status, meaning) in PROBLEM_TYPES {
        text.push_str(&format!(" `{slug}` ({status}): {meaning}"));
    }
    text
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, summary, roles, body) in ENDPOINTS {
        let mut operation = json!({
            "summary": summary,
            "description": format!("Roles: {roles} (admin always)."),
            "responses": {
                "200": {"description": "OK"},
                "400": {"description": "Malformed body, unknown field or invalid path parameter", "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
                "401": {"description": "No or unknown bearer token"},
                "403": {"description": "Role not allowed"},
                "404": {"description": "Not found"},
                "409": {"description": "State does not allow it"},
                "413": {"description": "Body too large"},
                "503": {"description": "Retry after Retry-After (seconds): type .../no-quorum (nothing written), .../outcome-unknown (maybe written: retry with the same Idempotency-Key) or .../unavailable (shutting down)",
                        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
            }
        });
        if let Some(schema) = body {
            // The end of a call may come without a body (its recording reference is optional).
            let required = *schema != "Ended";
            operation["requestBody"] = json!({"required": required, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
        }
        let parameters: Vec<Value> = path
            .split('/')
            .filter_map(|segment| {
                segment
                    .strip_prefix('{')
                    .and_then(|rest| rest.strip_suffix('}'))
            })
            .map(|name| {
                let schema = if name == "login" {
                    json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"})
                } else if path.starts_with("/pending/") {
                    json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"})
                } else {
                    json!({"type": "integer", "minimum": 0})
                };
                json!({"name": name, "in": "path", "required": true, "schema": schema})
            })
            .collect();
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if IDEMPOTENT_CREATES.contains(&(*method, *path)) {
            document_idempotent_create(&mut operation);
        }
        if *method == "post" && ASYNC_CREATES.contains(path) {
            document_async_create(&mut operation);
        }
        if *method == "get" && REPLICATED_READS.contains(path) {
            document_replicated_read(&mut operation);
        }
        if *path == "/session" {
            // Sign-in takes the token in the body; the rest goes by the session cookie.
            operation["security"] = if *method == "post" {
                json!([])
            } else {
                json!([{"session": []}])
            };
        }
        let entry = paths
            .entry(format!("/api/v1{path}"))
            .or_insert_with(|| json!({}));
        entry[*method] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "callgrid site node", "version": env!("CARGO_PKG_VERSION")},
        "components": {
            "schemas": schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::api::session::SESSION_COOKIE,
                    "description": "browser session from POST /session; state changes also need X-CSRF-Token"}}
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

/// The role × endpoint matrix (`docs/API-ROLES.md`), generated from [`ENDPOINTS`].
pub fn roles_markdown() -> String {
    let mut text = String::from(
        "# API roles\n\n\
         Generated from `node/src/api/openapi.rs` (`ENDPOINTS`); a test checks this page against \
         it and walks every route with every role.\n\n\
         - Every `/api/v1` request except `GET /api/v1/openapi.json` needs a valid bearer token; \
         without one the answer is 401 before the body is read.\n\
         - WebSocket streams (browsers cannot set headers) may offer the token as the \
         subprotocols `bearer, <token>`; the server answers with `bearer`.\n\
         - `admin` may use every endpoint. A role not listed gets 403.\n\
         - `agent (self)`: an agent only for its own login.\n\
         - `/healthz` and `/metrics` need no token; `/readyz` answers only ready or not \
         without a supervisor or admin token, and the cluster details with one.\n\
         - `/api/v1/session` is the browser's sign-in: `POST` takes the token in the body (no \
         `Authorization` header) and answers an HttpOnly cookie; `GET` and `DELETE` go by \
         that cookie (`DELETE` also needs `X-CSRF-Token`). Any role but `gateway` may sign in; \
         a session has its token's role.\n\n\
         | Method | Path | Roles (besides admin) |\n|---|---|---|\n",
    );
    for (method, path, _summary, roles, _body) in ENDPOINTS {
        text.push_str(&format!(
            "| {} | `/api/v1{path}` | {roles} |\n",
            method.to_uppercase()
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The idempotent creates and the replicated reads are endpoints of the table, and the
    /// document shows their header, parameter and problem types.
    #[test]
    fn idempotent_creates_and_replicated_reads_are_documented() {
        let document = document();
        for (method, path) in IDEMPOTENT_CREATES {
            let operation = &document["paths"][format!("/api/v1{path}")][*method];
            let text = operation.to_string();
            assert!(text.contains("Idempotency-Key"), "{method} {path}: {text}");
            assert!(text.contains("Idempotent-Replayed"), "{method} {path}");
            assert!(operation["responses"]["422"].is_object(), "{method} {path}");
        }
        for path in REPLICATED_READS {
            let operation = &document["paths"][format!("/api/v1{path}")]["get"];
            let text = operation.to_string();
            assert!(text.contains("X-Callgrid-Staleness-Ms"), "{path}: {text}");
            assert!(text.contains("\"consistency\""), "{path}");
        }
        for path in ASYNC_CREATES {
            let operation = &document["paths"][format!("/api/v1{path}")]["post"];
            assert!(operation["responses"]["202"].is_object(), "{path}");
            assert!(operation.to_string().contains("respond-async"), "{path}");
        }
        let problem = document["components"]["schemas"]["Problem"].to_string();
        for (slug, _, _) in PROBLEM_TYPES {
            assert!(problem.contains(slug), "{slug}");
        }
    }
}
