//! The OpenAPI 3.1 document served at `/api/v1/openapi.json`, written by hand from one table
//! of endpoints so it cannot drift from itself (a test checks every route is in it).

use serde_json::{Map, Value, json};

mod others;
mod requests;
mod responses;
mod workflows;

pub use others::OTHER_ENDPOINTS;
pub use responses::{LINKS, SUCCESS, operation_id, query_parameters, success};

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
        Some("ReviewCreate"),
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
        if let Some(response) = operation["responses"].get_mut(status) {
            response["headers"] = replayed.clone();
        }
    }
    operation["responses"]["422"] = json!({"description": "The Idempotency-Key was used for a different request (type .../idempotency-key-reused)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
}

/// Adds `Prefer: respond-async` and the 202 pending answer to a create's operation.
fn document_async_create(operation: &mut Value) {
    push_parameter(
        operation,
        json!({"name": "Prefer", "in": "header", "required": false,
            "description": "respond-async (RFC 7240): when the create cannot commit now (this site is cut off from the quorum, or the proposal ends no-quorum or outcome-unknown) the site keeps it in its durable outbox (fsync'd before answering) under the request's Idempotency-Key (generated when absent, returned in the Idempotency-Key header) and answers 202; it commits once after the heal. Without it such a create is a 503, and so it is when the site's outbox already holds 50,000 writes (routes::pending::OUTBOX_DEPTH_FOR_PENDING_MAX).",
            "schema": {"type": "string"}}),
    );
    operation["responses"]["202"] = json!({"description": "Kept until the quorum is back: {\"status\":\"pending\",\"pending_id\",\"kind\",\"idempotency_key\",\"location\"}; follow GET /api/v1/pending/{id}",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PendingAccepted"}}},
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
    operation["responses"]["200"]["headers"] = json!({
        "X-Callgrid-Read": {"description": "how the read was made", "schema": {"type": "string", "enum": ["linearizable", "local"]}},
        "X-Callgrid-Applied-Index": {"description": "the Raft index applied on this node before the read (the data is at least this new)", "schema": {"type": "integer"}},
        "X-Callgrid-Staleness-Ms": {"description": "0 for a linearizable read; for a local one, ms since this node last knew itself in contact with a quorum (absent: never since it started)", "schema": {"type": "integer"}},
        "X-Callgrid-Stale": {"description": "true when a local read may miss what the cluster committed (no quorum contact within an election timeout)", "schema": {"type": "string", "enum": ["true", "false"]}}});
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

fn problem_description() -> String {
    let mut text = String::from(
        "RFC 9457 problem details; `type` is https://callgrid.invalid/problems/<slug>. Slugs a client acts on:",
    );
    for (slug, status, meaning) in PROBLEM_TYPES {
        text.push_str(&format!(" `{slug}` ({status}): {meaning}"));
    }
    text
}

/// The error answers every `/api/v1` operation may give (RFC 9457 problems).
fn error_responses() -> Value {
    let problem = |description: &str| json!({"description": description, "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}});
    let mut unavailable = problem(
        "Retry after Retry-After (seconds): type .../no-quorum (nothing written), .../outcome-unknown (maybe written: retry with the same Idempotency-Key), .../site-draining (the site takes no new contacts) or .../unavailable (shutting down)",
    );
    unavailable["headers"] = json!({"Retry-After": {"schema": {"type": "integer"}}});
    json!({
        "400": problem("Malformed body, unknown field, invalid path or query parameter"),
        "401": problem("No or unknown bearer token (checked before the body is read)"),
        "403": problem("Role not allowed"),
        "404": problem("Not found"),
        "409": problem("State does not allow it"),
        "413": problem("Body too large"),
        "503": unavailable,
    })
}

/// The schema of a path parameter by its name and the path it is in.
fn path_parameter(path: &str, name: &str) -> Value {
    let schema = match name {
        "login" => json!({"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}),
        "site" => json!({"type": "string", "minLength": 1, "maxLength": 64}),
        "id" if path.starts_with("/cluster/sites/") => {
            json!({"type": "string", "minLength": 1, "maxLength": 64, "description": "site id"})
        }
        "id" if path.starts_with("/pending/") => {
            json!({"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$", "description": "pending create id"})
        }
        "id" if path.starts_with("/cluster/tokens/") => {
            json!({"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "the token's hex SHA-256"})
        }
        _ => json!({"type": "integer", "minimum": 0, "maximum": ID_MAX}),
    };
    json!({"name": name, "in": "path", "required": true, "schema": schema})
}

/// Ids are below 2^53 (exact in JSON numbers).
const ID_MAX: u64 = (1 << 53) - 1;

/// One operation: summary, roles, request body, success and error answers, parameters.
fn operation(
    (method, path, summary, roles, body): (&str, &str, &str, &str, Option<&str>),
    (status, response): (u16, &str),
) -> Value {
    let mut operation = json!({
        "summary": summary,
        "description": format!("Roles: {roles} (admin always)."),
        "responses": error_responses(),
    });
    operation["responses"][status.to_string()] = responses::success_response(status, response);
    operation["operationId"] = json!(responses::operation_id(method, path));
    if let Some(links) = responses::links(method, path) {
        operation["responses"][status.to_string()]["links"] = links;
    }
    if let Some(schema) = body {
        // The end of a call may come without a body (its recording reference is optional).
        let required = schema != "Ended";
        operation["requestBody"] = json!({"required": required, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}});
    }
    let mut parameters: Vec<Value> = path
        .split('/')
        .filter_map(|segment| {
            segment
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
        })
        .map(|name| path_parameter(path, name))
        .collect();
    parameters.extend(responses::query_parameters(method, path));
    if !parameters.is_empty() {
        operation["parameters"] = Value::Array(parameters);
    }
    if IDEMPOTENT_CREATES.contains(&(method, path)) {
        document_idempotent_create(&mut operation);
    }
    if method == "post" && ASYNC_CREATES.contains(&path) {
        document_async_create(&mut operation);
    }
    if method == "get" && REPLICATED_READS.contains(&path) {
        document_replicated_read(&mut operation);
    }
    if roles == "anyone" {
        operation["security"] = json!([]);
    }
    operation
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for &(method, path, summary, roles, body) in ENDPOINTS {
        let success = responses::success(method, path).unwrap_or((200, "Done"));
        let entry = paths
            .entry(format!("/api/v1{path}"))
            .or_insert_with(|| json!({}));
        entry[method] = operation((method, path, summary, roles, body), success);
    }
    for &(method, path, summary, roles, body, status, response) in others::OTHER_ENDPOINTS {
        let mut operation = operation((method, path, summary, roles, body), (status, response));
        others::adjust(method, path, &mut operation);
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = operation;
    }
    let mut schemas = match requests::schemas() {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    schemas.extend(responses::schemas());
    schemas.extend(others::schemas());
    schemas.extend(workflows::schemas());
    json!({
        "openapi": "3.1.0",
        "info": {"title": "callgrid site node", "version": env!("CARGO_PKG_VERSION"),
            "description": "Conventions (names, epoch ms, problems, limits, idempotency, consistency): docs/CONVENTIONS.md in the repository."},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": crate::api::session::SESSION_COOKIE,
                    "description": "browser session from POST /session; state changes also need X-CSRF-Token"}
            }
        },
        "security": [{"bearer": []}],
        "paths": paths,
    })
}

/// The role × endpoint matrix (`docs/API-ROLES.md`), generated from [`ENDPOINTS`].
pub fn roles_markdown() -> String {
    let mut text = String::from(
        "# API roles\n\n\
         Generated from `node/src/api/openapi/` (`ENDPOINTS`, `OTHER_ENDPOINTS`); a test checks this page against \
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
    text.push_str(
        "\nMembership changes, the browser session and the operations endpoints (the roles \
         test checks that membership changes refuse every other role and no token; a walk \
         with a valid body would change the cluster):\n\n\
         | Method | Path | Roles (besides admin) |\n|---|---|---|\n",
    );
    for (method, path, _summary, roles, ..) in OTHER_ENDPOINTS {
        text.push_str(&format!(
            "| {} | `{path}` | {roles} |\n",
            method.to_uppercase()
        ));
    }
    text
}

#[cfg(test)]
mod tests;
