//! Request body schemas of the OpenAPI document (and the `Problem` answer).

use serde_json::{Value, json};

/// The request body schemas (components), by name.
pub(super) fn schemas() -> Value {
    // The normalized form; the server also takes spaces, dashes and brackets and normalizes.
    let phone = json!({"type": "string", "pattern": "^\\+?[0-9]{5,16}$"});
    // Not blank, no control characters but the newline (the server's text rule).
    let text = "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$";
    let short = json!({"type": "string", "minLength": 1, "maxLength": crate::state::command::SHORT_TEXT_CHARS_MAX, "pattern": text});
    let long = json!({"type": "string", "minLength": 1, "maxLength": crate::state::command::LONG_TEXT_CHARS_MAX, "pattern": text});
    let item = json!({"type": "object", "additionalProperties": false, "required": ["sku", "name", "quantity", "unit_price_minor"],
        "properties": {"sku": short.clone(), "name": short.clone(), "quantity": {"type": "integer", "minimum": 1, "maximum": 10000},
                       "unit_price_minor": {"type": "integer", "minimum": 0, "maximum": crate::state::command::UNIT_PRICE_MINOR_MAX, "description": "price of one unit in kopecks"}}});
    let fulfilment = json!({"oneOf": [
        {"type": "object", "additionalProperties": false, "required": ["pickup"], "properties": {"pickup": {"type": "object", "required": ["pharmacy"], "properties": {"pharmacy": short.clone()}}}},
        {"type": "object", "additionalProperties": false, "required": ["delivery"], "properties": {"delivery": {"type": "object", "required": ["address"], "properties": {"address": short.clone()}}}}
    ]});
    let status = json!({"type": "string", "enum": ["created", "confirmed", "assembled", "ready", "collected", "delivered", "cancelled", "returned"]});
    let payment = json!({"type": "string", "enum": ["cash", "card", "online"]});
    let items = json!({"type": "array", "items": {"$ref": "#/components/schemas/OrderItem"}, "minItems": 1, "maxItems": crate::state::command::ITEMS_PER_ORDER_MAX});
    let note = json!({"type": "string", "maxLength": crate::state::command::LONG_TEXT_CHARS_MAX});
    let recording_ref = json!({"type": "string", "minLength": 1, "maxLength": crate::state::ledger::RECORDING_REF_CHARS_MAX, "pattern": "^[!-~]+$",
        "description": "the call's recording: an http(s) URL or an opaque id (printable ASCII, no spaces)"});
    let object = |required: Value, properties: Value| json!({"type": "object", "additionalProperties": false, "required": required, "properties": properties});
    json!({
        "Problem": {"type": "object", "description": super::problem_description(), "properties": {
            "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"}, "detail": {"type": "string"}}},
        "OrderItem": item,
        "Fulfilment": fulfilment,
        "ContactArrived": object(json!(["caller", "topic"]), json!({
            "caller": phone.clone(), "channel": {"type": "string", "enum": ["voice", "chat"]},
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
        "ReviewCreate": object(json!(["scores"]), json!({
            "scores": {"type": "object", "description": "points per checklist item name (every item of the site's checklist, 0 to its max_points)", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": crate::state::quality::ITEM_POINTS_MAX}},
            "comment": {"type": "string", "maxLength": crate::state::quality::REVIEW_COMMENT_CHARS_MAX}})),
        "ChatMessage": object(json!(["text"]), json!({"text": long.clone()})),
        "AgentState": object(json!(["state"]), json!({"state": {"type": "string", "enum": ["ready", "not_ready"]},
            "reason": {"description": "not_ready only: the reason by name (default break), or its bare code",
                "oneOf": [{"type": "string", "pattern": "^(break|other_work|no_answer|rejected|code_[0-9]{1,5})$"}, {"type": "integer", "minimum": 0, "maximum": 65535}]}})),
        "WrapUp": object(json!(["code"]), json!({"code": {"type": "string"}, "callback_outcome": {"type": "string", "enum": ["reached", "no_answer", "busy", "cancelled"]}})),
        "Transfer": object(json!([]), json!({"skill": {"type": "string", "default": "line2"}})),
        "Monitor": object(json!(["agent", "mode"]), json!({"agent": {"type": "string"}, "mode": {"type": "string", "enum": ["listen", "whisper", "barge"]}})),
        "OrderCreate": object(json!(["caller", "items", "fulfilment", "payment"]), json!({
            "caller": phone.clone(), "items": items.clone(),
            "fulfilment": {"$ref": "#/components/schemas/Fulfilment"}, "payment": payment, "delivery_note": note.clone()})),
        "OrderUpdate": object(json!([]), json!({
            "items": items.clone(),
            "fulfilment": {"$ref": "#/components/schemas/Fulfilment"}, "payment": payment, "delivery_note": note.clone()})),
        "OrderStatus": object(json!(["status"]), json!({"status": status})),
        "PreOrder": object(json!(["caller", "sku", "name", "quantity", "pharmacy"]), json!({
            "caller": phone.clone(), "sku": short.clone(), "name": short.clone(), "quantity": {"type": "integer", "minimum": 1, "maximum": crate::state::command::QUANTITY_MAX}, "pharmacy": short.clone()})),
        "StockArrival": object(json!(["sku"]), json!({"sku": short.clone(), "pharmacy": short.clone()})),
        "Reservation": object(json!(["caller", "pharmacy", "items", "expires_at_ms"]), json!({
            "caller": phone.clone(), "pharmacy": short.clone(),
            "items": items.clone(), "expires_at_ms": {"type": "integer"}})),
        "Complaint": object(json!(["caller", "text"]), json!({"caller": phone.clone(), "order": {"type": "integer"}, "text": long.clone()})),
        "Resolve": object(json!(["resolution"]), json!({"resolution": long.clone()})),
        "CallbackOutcome": object(json!(["outcome"]), json!({"outcome": {"type": "string", "enum": ["reached", "no_answer", "busy", "cancelled"]}})),
        "TokenAdd": object(json!(["name", "role", "sha256"]), json!({"name": {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "[^\\s]"}, "role": {"type": "string", "enum": ["gateway", "agent", "supervisor", "admin"]}, "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$", "description": "hex SHA-256 of the token (`callgrid token hash`)"}})),
    })
}
