//! Browser sessions and the embedded pages: sign-in → HttpOnly cookie + CSRF token, the same
//! roles as the API, CSRF on state changes, WebSocket by cookie, strict CSP on the pages.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::TcpStream;

use common::*;
use serde_json::{Value, json};
use tungstenite::client::IntoClientRequest;

struct Browser {
    base: String,
    cookie: String,
    csrf: String,
}

fn sign_in(node: &Node, token: &str) -> (u16, Value, Option<String>) {
    let result =
        ureq::post(&format!("{}/api/v1/session", node.base)).send_json(json!({"token": token}));
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{error}"),
    };
    let status = response.status();
    let cookie = response.header("Set-Cookie").map(str::to_string);
    let body: Value = serde_json::from_str(&response.into_string().unwrap()).unwrap();
    (status, body, cookie)
}

fn browser(node: &Node, token: &str) -> Browser {
    let (status, body, cookie) = sign_in(node, token);
    assert_eq!(status, 200, "{body}");
    let cookie = cookie.unwrap();
    let pair = cookie.split(';').next().unwrap().to_string();
    Browser {
        base: node.base.clone(),
        cookie: pair,
        csrf: body["csrf"].as_str().unwrap().to_string(),
    }
}

impl Browser {
    fn call(&self, method: &str, path: &str, csrf: bool, body: Option<Value>) -> (u16, Value) {
        let mut request =
            ureq::request(method, &format!("{}{path}", self.base)).set("Cookie", &self.cookie);
        if csrf {
            request = request.set("X-CSRF-Token", &self.csrf);
        }
        let result = match body {
            Some(body) => request.send_json(body),
            None => request.call(),
        };
        let response = match result {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{error}"),
        };
        let status = response.status();
        let text = response.into_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

#[test]
fn sign_in_sets_an_http_only_strict_cookie_and_keeps_the_roles() {
    let (_directory, node) = single_site();
    let (status, body, cookie) = sign_in(&node, ANNA);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["name"], "anna");
    assert_eq!(body["role"], "agent");
    let cookie = cookie.unwrap();
    assert!(cookie.starts_with("cg_session="), "{cookie}");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(ANNA), "the token is not the cookie");

    let anna = browser(&node, ANNA);
    let (status, body) = anna.call("GET", "/api/v1/agents/anna", false, None);
    assert_eq!(status, 200, "{body}");
    // Same roles as the API: an agent sees only its own desktop, no supervisor views.
    let (status, _) = anna.call("GET", "/api/v1/agents/boris", false, None);
    assert_eq!(status, 403);
    let (status, _) = anna.call("GET", "/api/v1/supervisor/queues", false, None);
    assert_eq!(status, 403);
    let olga = browser(&node, SUPERVISOR);
    let (status, body) = olga.call("GET", "/api/v1/supervisor/queues", false, None);
    assert_eq!(status, 200, "{body}");
    let (status, body) = olga.call("GET", "/api/v1/session", false, None);
    assert_eq!((status, body["name"].as_str()), (200, Some("olga")));
    assert_eq!(body["csrf"].as_str(), Some(olga.csrf.as_str()));
}

#[test]
fn unknown_tokens_gateways_and_bad_bodies_are_refused() {
    let (_directory, node) = single_site();
    assert_eq!(sign_in(&node, "no-such-token").0, 401);
    assert_eq!(
        sign_in(&node, GATEWAY).0,
        403,
        "gateways keep bearer tokens"
    );
    assert_eq!(sign_in(&node, "").0, 400);
    let (status, _) = node.call(
        "POST",
        "/api/v1/session",
        None,
        Some(json!({"token": ANNA, "x": 1})),
    );
    assert_eq!(status, 400);
    let (status, _) = node.call("GET", "/api/v1/session", None, None);
    assert_eq!(status, 401);
    // A forged cookie is nobody.
    let forged = Browser {
        base: node.base.clone(),
        cookie: format!("cg_session={}", "ab".repeat(32)),
        csrf: String::new(),
    };
    assert_eq!(
        forged.call("GET", "/api/v1/agents/anna", false, None).0,
        401
    );
}

#[test]
fn state_changes_by_cookie_need_the_csrf_token() {
    let (_directory, node) = single_site();
    let anna = browser(&node, ANNA);
    let (status, body) = anna.call("POST", "/api/v1/agents/anna/login", false, None);
    assert_eq!(status, 403, "{body}");
    let (_, view) = node.call("GET", "/api/v1/agents/anna", Some(ANNA), None);
    assert_eq!(
        view["state"], "logged_out",
        "the refused request changed nothing"
    );
    let mut wrong = Browser {
        csrf: "0".repeat(64),
        ..anna
    };
    assert_eq!(
        wrong
            .call("POST", "/api/v1/agents/anna/login", true, None)
            .0,
        403
    );
    wrong.csrf = browser(&node, BORIS).csrf;
    assert_eq!(
        wrong
            .call("POST", "/api/v1/agents/anna/login", true, None)
            .0,
        403,
        "another session's CSRF token does not fit"
    );
    let anna = browser(&node, ANNA);
    let (status, body) = anna.call("POST", "/api/v1/agents/anna/login", true, None);
    assert_eq!(status, 200, "{body}");
    // Signing out ends the session.
    assert_eq!(anna.call("DELETE", "/api/v1/session", false, None).0, 403);
    assert_eq!(anna.call("DELETE", "/api/v1/session", true, None).0, 204);
    assert_eq!(anna.call("GET", "/api/v1/agents/anna", false, None).0, 401);
}

fn stream_by_cookie(node: &Node, browser: &Browser, origin: Option<&str>) -> Result<Socket, u16> {
    let url = format!(
        "{}/api/v1/supervisor/stream",
        node.base.replacen("http://", "ws://", 1)
    );
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Cookie", browser.cookie.parse().unwrap());
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("Origin", origin.parse().unwrap());
    }
    let stream = TcpStream::connect(node.base.trim_start_matches("http://")).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    match tungstenite::client(request, stream) {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
            Err(response.status().as_u16())
        }
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn websocket_streams_open_by_cookie_from_the_same_origin_only() {
    let (_directory, node) = single_site();
    let olga = browser(&node, SUPERVISOR);
    let own = node.base.clone();
    let mut socket = stream_by_cookie(&node, &olga, Some(&own)).unwrap();
    let (status, _) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(json!({"caller": "+79160001122", "topic": "order"})),
    );
    assert_eq!(status, 201);
    let event = next_event(&mut socket);
    assert!(event["type"].is_string(), "{event}");
    assert_eq!(
        stream_by_cookie(&node, &olga, Some("http://evil.example")).err(),
        Some(403),
        "cross-site WebSocket hijacking is refused"
    );
    let anna = browser(&node, ANNA);
    assert_eq!(stream_by_cookie(&node, &anna, Some(&own)).err(), Some(403));
}

#[test]
fn pages_and_assets_are_served_with_a_strict_csp() {
    let (_directory, node) = single_site();
    for path in [
        "/ui/",
        "/ui/agent",
        "/ui/assets/wallboard.js",
        "/ui/assets/style.css",
    ] {
        let response = ureq::get(&format!("{}{path}", node.base)).call().unwrap();
        let csp = response
            .header("Content-Security-Policy")
            .unwrap()
            .to_string();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(response.header("X-Content-Type-Options"), Some("nosniff"));
    }
    let page = ureq::get(&format!("{}/ui/", node.base)).call().unwrap();
    assert!(page.content_type().starts_with("text/html"));
    assert!(
        page.into_string()
            .unwrap()
            .contains("/ui/assets/wallboard.js")
    );
    let missing = ureq::get(&format!("{}/ui/assets/../../etc/passwd", node.base)).call();
    assert!(matches!(missing, Err(ureq::Error::Status(404, _))));
    let missing = ureq::get(&format!("{}/ui/assets/nope.js", node.base)).call();
    assert!(matches!(missing, Err(ureq::Error::Status(404, _))));
}
