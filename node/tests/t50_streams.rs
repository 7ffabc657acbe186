//! WebSocket streams of a real `callgrid` process: an agent's desktop gets its own offers and
//! nobody else's, supervisors get queue updates, gateways get the dial request of a callback,
//! and an upgrade without the right token, or an oversized frame, is refused.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};
use tungstenite::Message;

/// Reads events until `found` matches one; returns the events before it and the match.
fn read_until(socket: &mut Socket, mut found: impl FnMut(&Value) -> bool) -> (Vec<Value>, Value) {
    let mut before = Vec::new();
    loop {
        let event = next_event(socket);
        if found(&event) {
            return (before, event);
        }
        before.push(event);
    }
}

fn arrive(node: &Node, caller: &str) -> u64 {
    let (status, arrived) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": caller, "topic": "order"})),
    );
    assert_eq!(status, 201, "{arrived}");
    arrived["contact"]["id"].as_u64().unwrap()
}

fn offers_in(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .filter(|event| event["type"] == "offer")
        .filter_map(|event| event["contact"]["id"].as_u64())
        .collect()
}

#[test]
fn an_agent_stream_gets_its_own_offers_and_nobody_elses() {
    let (_directory, node) = single_site();
    let mut anna = connect(&node, "/api/v1/agents/anna/stream", Some(ANNA)).unwrap();
    let mut boris = connect(&node, "/api/v1/agents/boris/stream", Some(BORIS)).unwrap();
    ready(&node, "anna", ANNA);
    // Boris is logged in but not ready: the first contact can only go to anna.
    node.call("POST", "/api/v1/agents/boris/login", Some(BORIS), None);
    let (status, _) = node.call(
        "POST",
        "/api/v1/agents/boris/state",
        Some(BORIS),
        Some(json!({"state": "not_ready", "reason": 3})),
    );
    assert_eq!(status, 200);

    let first = arrive(&node, "+79165550001");
    let (_, offer) = read_until(&mut anna, |event| event["type"] == "offer");
    assert_eq!(offer["contact"]["id"].as_u64(), Some(first));
    assert_eq!(offer["contact"]["agent"], "anna");
    assert!(offer["timeout_at_ms"].is_u64(), "{offer}");

    // Boris becomes available; anything sent to him before that comes first on his stream.
    let (status, _) = node.call(
        "POST",
        "/api/v1/agents/boris/state",
        Some(BORIS),
        Some(json!({"state": "ready"})),
    );
    assert_eq!(status, 200);
    let (before, _) = read_until(&mut boris, |event| {
        event["type"] == "state" && event["state"] == "available"
    });
    assert!(offers_in(&before).is_empty(), "boris saw {before:?}");

    let second = arrive(&node, "+79165550002");
    let (_, offer) = read_until(&mut boris, |event| event["type"] == "offer");
    assert_eq!(offer["contact"]["id"].as_u64(), Some(second));

    // Anna accepts hers; everything sent to her before that is on her stream by then.
    let (status, _) = node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{first}/accept"),
        Some(ANNA),
        None,
    );
    assert_eq!(status, 200);
    let (before, _) = read_until(&mut anna, |event| {
        event["type"] == "state" && event["state"] == "busy"
    });
    assert!(
        !offers_in(&before).contains(&second),
        "anna saw boris's offer: {before:?}"
    );

    // A desktop may not open another agent's stream.
    assert_eq!(
        connect(&node, "/api/v1/agents/boris/stream", Some(ANNA)).err(),
        Some(403)
    );
}

#[test]
fn the_supervisor_stream_gets_queue_updates() {
    let (_directory, node) = single_site();
    let mut wallboard = connect(&node, "/api/v1/supervisor/stream", Some(SUPERVISOR)).unwrap();
    // Nobody is logged in: contacts wait in line 1.
    arrive(&node, "+79165550011");
    arrive(&node, "+79165550012");
    let (_, update) = read_until(&mut wallboard, |event| {
        event["type"] == "queue"
            && event["queue"]["skill"] == "line1"
            && event["queue"]["in_queue"] == 2
    });
    assert!(update["queue"]["oldest_age_ms"].is_u64(), "{update}");
    assert_eq!(update["queue"]["agents_staffed"], 0);

    // Staffing shows on the wallboard too.
    ready(&node, "anna", ANNA);
    read_until(&mut wallboard, |event| {
        event["type"] == "queue"
            && event["queue"]["skill"] == "line1"
            && event["queue"]["agents_staffed"] == 1
            && event["queue"]["in_queue"] == 1
    });
}

#[test]
fn the_gateway_stream_gets_the_dial_request_for_a_callback() {
    let (_directory, node) = single_site();
    let mut gateway = connect(&node, "/api/v1/gateway/stream", Some(GATEWAY)).unwrap();
    // Anna is logged in but not ready: contacts wait.
    node.call("POST", "/api/v1/agents/anna/login", Some(ANNA), None);
    let (status, _) = node.call(
        "POST",
        "/api/v1/agents/anna/state",
        Some(ANNA),
        Some(json!({"state": "not_ready", "reason": 3})),
    );
    assert_eq!(status, 200);
    let contact = arrive(&node, "+79165550021");
    let (status, _) = node.call(
        "POST",
        &format!("/api/v1/contacts/{contact}/abandoned"),
        Some(GATEWAY),
        None,
    );
    assert_eq!(status, 200);
    // The callback is created, claimed and queued; it rings at anna once she is ready.
    eventually("the callback to be queued", || {
        let (_, queues) = node.call("GET", "/api/v1/supervisor/queues", Some(SUPERVISOR), None);
        (queues["queues"][0]["in_queue"].as_u64() == Some(1)).then_some(())
    });
    let (status, _) = node.call(
        "POST",
        "/api/v1/agents/anna/state",
        Some(ANNA),
        Some(json!({"state": "ready"})),
    );
    assert_eq!(status, 200);
    let (before, dial) = read_until(&mut gateway, |event| event["type"] == "dial");
    assert_eq!(dial["number"], "+79165550021");
    assert_eq!(dial["agent"], "anna");
    assert!(dial["callback"].is_u64(), "{dial}");
    // The gateway also saw the inbound contact abandon.
    assert!(
        before.iter().any(|event| event["type"] == "contact"
            && event["contact"].as_u64() == Some(contact)
            && event["stage"] == "abandoned"),
        "{before:?}"
    );
}

#[test]
fn upgrades_without_the_right_token_and_oversized_frames_are_refused() {
    let (_directory, node) = single_site();
    assert_eq!(
        connect(&node, "/api/v1/supervisor/stream", None).err(),
        Some(401)
    );
    assert_eq!(
        connect(&node, "/api/v1/supervisor/stream", Some("not-a-token")).err(),
        Some(401)
    );
    assert_eq!(
        connect(&node, "/api/v1/supervisor/stream", Some(ANNA)).err(),
        Some(403)
    );
    assert_eq!(
        connect(&node, "/api/v1/gateway/stream", Some(SUPERVISOR)).err(),
        Some(403)
    );
    assert_eq!(
        connect(&node, "/api/v1/agents/anna/stream", Some(GATEWAY)).err(),
        Some(403)
    );

    let mut socket = connect(&node, "/api/v1/gateway/stream", Some(GATEWAY)).unwrap();
    // A small frame is fine: the stream answers a ping.
    socket.send(Message::Ping(vec![1, 2, 3].into())).unwrap();
    loop {
        match socket.read().unwrap() {
            Message::Pong(payload) => {
                assert_eq!(payload.as_ref(), &[1, 2, 3]);
                break;
            }
            Message::Close(frame) => panic!("closed early: {frame:?}"),
            _ => continue,
        }
    }
    // A frame over the limit (16 KiB) ends the stream.
    socket.send(Message::text("x".repeat(64 * 1024))).unwrap();
    let closed = loop {
        match socket.read() {
            Ok(Message::Close(_)) => break true,
            Ok(_) => continue,
            Err(tungstenite::Error::Io(error))
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false;
            }
            Err(_) => break true,
        }
    };
    assert!(
        closed,
        "the node kept a stream that sent an oversized frame"
    );
}

/// Defect 10: an agent answers a chat on its desktop stream; the line reaches the gateway
/// stream (which delivers it) and the contact's transcript.
#[test]
fn an_agent_replies_to_a_chat_on_its_stream() {
    let (_directory, node) = single_site();
    let mut gateway = connect(&node, "/api/v1/gateway/stream", Some(GATEWAY)).unwrap();
    let mut anna = connect(&node, "/api/v1/agents/anna/stream", Some(ANNA)).unwrap();
    ready(&node, "anna", ANNA);
    let (status, arrived) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79165550077", "channel": "chat", "topic": "order"})),
    );
    assert_eq!(status, 201, "{arrived}");
    let contact = arrived["contact"]["id"].as_u64().unwrap();
    let (status, body) = node.call(
        "POST",
        &format!("/api/v1/agents/anna/contacts/{contact}/accept"),
        Some(ANNA),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let frame = json!({"type": "chat_message", "contact": contact, "text": "hello from anna"});
    anna.send(Message::text(frame.to_string())).unwrap();
    let (_, sent) = read_until(&mut anna, |event| {
        event["type"] == "sent" || event["type"] == "error"
    });
    assert_eq!(sent["type"], "sent", "{sent}");
    let (_, delivered) = read_until(&mut gateway, |event| event["type"] == "chat_message");
    assert_eq!(delivered["contact"], contact);
    assert_eq!(delivered["message"]["text"], "hello from anna");
    let (status, view) = node.call(
        "GET",
        &format!("/api/v1/agents/anna/contacts/{contact}"),
        Some(ANNA),
        None,
    );
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["messages"][0]["from"], "agent", "{view}");
    assert_eq!(view["messages"][0]["agent"], "anna", "{view}");
}

/// Section 4: a browser cannot set headers on a WebSocket; it offers the token as a
/// subprotocol (`bearer`, token) and the server accepts `bearer`.
#[test]
fn a_stream_accepts_the_token_as_a_websocket_subprotocol() {
    use tungstenite::client::IntoClientRequest;
    let (_directory, node) = single_site();
    let url = format!(
        "{}/api/v1/agents/anna/stream",
        node.base.replacen("http://", "ws://", 1)
    );
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        format!("bearer, {ANNA}").parse().unwrap(),
    );
    let stream = std::net::TcpStream::connect(node.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let (mut socket, response) = tungstenite::client(request, stream).unwrap();
    assert_eq!(
        response.headers()["Sec-WebSocket-Protocol"],
        "bearer",
        "the server names the accepted subprotocol"
    );
    let first = next_event(&mut socket);
    assert_eq!(first["type"], "state", "{first}");
}
