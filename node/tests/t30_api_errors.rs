//! Bad input against a real `callgrid` process: auth, roles, malformed and oversized bodies,
//! unknown fields, bad path parameters — each a problem document, none changing anything.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

/// POSTs headers that declare `length` bytes of JSON, sends none of them, and returns the
/// status code and the raw response the node answered with.
fn declared_oversized_post(node: &Node, path: &str, length: usize) -> (u16, String) {
    use std::io::{Read, Write};
    let address = node.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {ANNA}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let mut buffer = [0_u8; 4096];
    // Read until the head of the answer is in (the node closes or keeps waiting for the body).
    while !response.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => response.extend_from_slice(&buffer[..read]),
            Err(error) => panic!("reading the answer: {error}"),
        }
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn order_count(node: &Node) -> usize {
    let (status, body) = node.call("GET", "/api/v1/orders", Some(SUPERVISOR), None);
    assert_eq!(status, 200, "{body}");
    body["orders"].as_array().unwrap().len()
}

#[test]
fn tokens_and_roles_are_enforced() {
    let (_directory, node) = single_site();
    let (status, problem) = node.call("GET", "/api/v1/orders", None, None);
    assert_eq!(status, 401);
    assert_eq!(problem["status"], 401);
    let (status, _) = node.call(
        "GET",
        "/api/v1/orders",
        Some("not-a-token-at-all-0000"),
        None,
    );
    assert_eq!(status, 401);
    let (status, problem) = node.call("GET", "/api/v1/supervisor/queues", Some(ANNA), None);
    assert_eq!(status, 403, "{problem}");
    assert!(problem["type"].as_str().unwrap().ends_with("forbidden"));
    let (status, _) = node.call(
        "POST",
        "/api/v1/contacts",
        Some(ANNA),
        Some(json!({"caller": "+79160000001", "topic": "order"})),
    );
    assert_eq!(status, 403, "agents do not report contacts");
    let (status, _) = node.call("POST", "/api/v1/agents/anna/login", Some(GATEWAY), None);
    assert_eq!(status, 403);
    let (status, _) = node.call("POST", "/api/v1/agents/boris/login", Some(ANNA), None);
    assert_eq!(status, 403, "an agent acts only for itself");
    let (status, _) = node.call("GET", "/api/v1/supervisor/queues", Some(ADMIN), None);
    assert_eq!(status, 200);
    let (status, document) = node.call("GET", "/api/v1/openapi.json", None, None);
    assert_eq!(status, 200);
    assert!(document["paths"]["/api/v1/orders"]["post"].is_object());
}

#[test]
fn malformed_oversized_and_unknown_input_is_refused_without_change() {
    let (_directory, node) = single_site();
    assert_eq!(order_count(&node), 0);

    let (status, problem) = node.raw(
        "POST",
        "/api/v1/orders",
        ANNA,
        "application/json",
        "{\"caller\": ",
    );
    assert_eq!(status, 400, "{problem}");
    assert_eq!(problem["status"], 400);

    let mut body = order_body("+79160000001");
    body["discount"] = json!(50);
    let (status, problem) = node.call("POST", "/api/v1/orders", Some(ANNA), Some(body));
    assert_eq!(status, 400, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("discount"),
        "{problem}"
    );

    // An oversized body is refused from its declared length, before it is read. (Sending the
    // whole body with a client that writes it all first races the node's early 413 and close:
    // the client may see a broken pipe instead of the answer.)
    let (status, response) = declared_oversized_post(&node, "/api/v1/orders", 64 * 1024);
    assert_eq!(status, 413, "{response}");

    let mut body = order_body("+79160000001");
    body["items"][0]["quantity"] = json!(0);
    let (status, problem) = node.call("POST", "/api/v1/orders", Some(ANNA), Some(body));
    assert_eq!(status, 400, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("quantity"));

    let (status, _) = node.call(
        "POST",
        "/api/v1/orders",
        Some(ANNA),
        Some(order_body("not a phone")),
    );
    assert_eq!(status, 400);
    let (status, _) = node.raw("POST", "/api/v1/orders", ANNA, "text/plain", "hello");
    assert_eq!(status, 400);
    let (status, _) = node.call("GET", "/api/v1/orders/not-a-number", Some(ANNA), None);
    assert_eq!(status, 400);
    let (status, _) = node.call("POST", "/api/v1/agents/an%20na/login", Some(ADMIN), None);
    assert_eq!(status, 400);
    let (status, _) = node.call("GET", "/api/v1/orders?limit=100000", Some(ANNA), None);
    assert_eq!(status, 400);
    assert_eq!(order_count(&node), 0, "nothing was applied");

    // Unknown paths are answered as problems, inside a collection's scope and outside any;
    // a method a path does not have is an unknown endpoint too.
    for (method, path) in [
        ("GET", "/api/v1/orders/1/teleport"),
        ("GET", "/api/v1/contacts/1/x/y"),
        ("DELETE", "/api/v1/orders/1"),
        ("GET", "/api/v1/nowhere"),
        ("GET", "/api/v1/cluster/nowhere"),
        ("GET", "/api/v1/exports/a/b"),
    ] {
        let (status, problem) = node.call(method, path, Some(ANNA), None);
        assert_eq!(status, 404, "{method} {path}: {problem}");
        assert_eq!(problem["status"], 404, "{method} {path}: {problem}");
    }
    // The cluster's endpoints: authenticated before anything else, a resource each.
    let (status, _) = node.call("GET", "/api/v1/cluster/learners", Some(ADMIN), None);
    assert_eq!(status, 405);
    for path in [
        "/api/v1/cluster/learners",
        "/api/v1/cluster/sites/msk/drain",
    ] {
        let (status, problem) = node.raw("POST", path, "cg_not_a_token", "application/json", "{");
        assert_eq!(status, 401, "{path}: {problem}");
    }

    // A refused transition leaves the order as it was.
    let (_, created) = node.call(
        "POST",
        "/api/v1/orders",
        Some(ANNA),
        Some(order_body("+79160000001")),
    );
    let order = created["order"].as_u64().unwrap();
    let (_, before) = node.call("GET", &format!("/api/v1/orders/{order}"), Some(ANNA), None);
    let (status, _) = node.call(
        "POST",
        &format!("/api/v1/orders/{order}/status"),
        Some(ANNA),
        Some(json!({"status": "delivered"})),
    );
    assert_eq!(status, 409);
    let (status, _) = node.call(
        "POST",
        &format!("/api/v1/orders/{order}/status"),
        Some(ANNA),
        Some(json!({"status": "teleported"})),
    );
    assert_eq!(status, 400);
    let (_, after) = node.call("GET", &format!("/api/v1/orders/{order}"), Some(ANNA), None);
    assert_eq!(before, after);
    assert_eq!(order_count(&node), 1);
}

/// Section 4: a first start that fails (here: the HTTP port is taken) does not use up the
/// one-time admin token, and logs written to a pipe carry no colour codes.
#[test]
fn a_failed_first_start_keeps_the_admin_token_and_piped_logs_have_no_colour() {
    let directory = tempfile::tempdir().unwrap();
    let data = directory.path().join("data");
    let cluster = format!(
        "[cluster]\nnode_id = 1\nlisten = \"127.0.0.1:{}\"\ncertificates_dir = \"{}\"\n",
        free_udp_port(),
        directory.path().join("certs").display()
    );
    let path = directory.path().join("site.toml");
    std::fs::write(&path, site_config("msk", 0, &data, &cluster)).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_callgrid"))
        .args(["node", "--config"])
        .arg(&path)
        .arg("--http")
        .arg(taken.local_addr().unwrap().to_string())
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert!(!output.status.success(), "the start must fail");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stdout.contains("admin token"), "no token shown: {stdout}");
    assert!(
        !data.join("admin-token.sha256").exists(),
        "the one-time admin token was used up by a failed start"
    );
    assert!(!stderr.is_empty(), "the failure is logged");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in piped logs: {stderr:?}"
    );
}

/// Section 4: `callgrid config example` prints a sample `callgrid config check` accepts; a
/// file with a plaintext token is refused, naming the key.
#[test]
fn config_example_passes_config_check_and_a_plaintext_token_does_not() {
    let directory = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_callgrid");
    let example = std::process::Command::new(binary)
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(example.status.success());
    let path = directory.path().join("site.toml");
    std::fs::write(&path, &example.stdout).unwrap();
    let check = std::process::Command::new(binary)
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let text = String::from_utf8_lossy(&example.stdout).replacen(
        "sha256 = \"60884ede15c5969e309509559b56ed221399ffe500c58fd2bcc12f1e661e160e\"",
        "token = \"a-plaintext-token-of-some-length\"",
        1,
    );
    std::fs::write(&path, text).unwrap();
    let refused = std::process::Command::new(binary)
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("tokens[0].token"), "{stderr}");
}
