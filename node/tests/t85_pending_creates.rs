//! Pending creates through the HTTP API (issue 9 item 5), in process: the node runs on a
//! replicator the test cuts off from the "quorum" (proposals fail `no quorum`, no quorum
//! contact) and heals.
//! - cut off, a create with `Prefer: respond-async` is 202 pending with a Location, kept on
//!   disk; without the header it is the 503 `no-quorum` it always was;
//! - the pending create is visible to its agent only, listed by `?agent=`;
//! - healed, it commits once: one order, the pending id resolves to it, and a client retry
//!   with the key it was given replays the same order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use callgrid_node::api::auth::TokenTable;
use callgrid_node::config::NodeConfig;
use callgrid_node::replicate::{
    BoxFuture, LocalReplicator, ReplicaHealth, ReplicateError, Replicator,
};
use callgrid_node::state::SharedState;
use serde_json::{Value, json};
use sha2::Digest as _;

const ANNA: &str = "anna-token-for-pending-tests";
const BORIS: &str = "boris-token-for-pending-tests";

/// A [`LocalReplicator`] that can be cut off: proposals and read barriers fail "no quorum" and
/// the health says no quorum contact.
struct Cuttable {
    inner: LocalReplicator,
    cut: AtomicBool,
}

impl Replicator for Cuttable {
    fn propose(&self, command: Vec<u8>) -> BoxFuture<Result<Vec<u8>, ReplicateError>> {
        if self.cut.load(Ordering::SeqCst) {
            return Box::pin(async { Err(ReplicateError::Unavailable("cut off".into())) });
        }
        self.inner.propose(command)
    }

    fn read_barrier(&self) -> BoxFuture<Result<(), ReplicateError>> {
        if self.cut.load(Ordering::SeqCst) {
            return Box::pin(async { Err(ReplicateError::Unavailable("cut off".into())) });
        }
        self.inner.read_barrier()
    }

    fn health(&self) -> ReplicaHealth {
        let mut health = self.inner.health();
        if self.cut.load(Ordering::SeqCst) {
            health.quorum_contact_age_ms = None;
            health.leader = None;
        }
        health.stale_after_ms = 1_000;
        health
    }

    fn shutdown(&self) {}
}

fn sha256_hex(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

fn config(data: &Path) -> NodeConfig {
    let text = format!(
        "[site]\nid = \"msk\"\ncity = \"Moscow\"\nnumber = 1\ndata_dir = \"{}\"\n\n\
         [http]\nlisten = \"127.0.0.1:0\"\ndrain_s = 1\n\n\
         [[agents]]\nlogin = \"anna\"\nid = 1\nskills = [\"line1\"]\n\n\
         [[agents]]\nlogin = \"boris\"\nid = 2\nskills = [\"line1\"]\n\n\
         [[tokens]]\nname = \"anna\"\nrole = \"agent\"\nsha256 = \"{}\"\n\n\
         [[tokens]]\nname = \"boris\"\nrole = \"agent\"\nsha256 = \"{}\"\n",
        data.display(),
        sha256_hex(ANNA),
        sha256_hex(BORIS)
    );
    NodeConfig::parse(&text, Path::new("site.toml")).unwrap()
}

fn order_body(caller: &str) -> Value {
    json!({
        "caller": caller,
        "items": [{"sku": "NUR-200", "name": "Nurofen 200 mg", "quantity": 1, "unit_price_minor": 25050}],
        "fulfilment": {"pickup": {"pharmacy": "apteka-7"}},
        "payment": "cash"
    })
}

struct Answer {
    status: u16,
    location: Option<String>,
    key: Option<String>,
    replayed: bool,
    body: Value,
}

fn call(
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Answer {
    let mut request = ureq::request(method, &format!("{base}{path}"))
        .set("Authorization", &format!("Bearer {token}"))
        .timeout(Duration::from_secs(20));
    for (name, value) in headers {
        request = request.set(name, value);
    }
    let result = match body {
        Some(body) => request.send_json(body.clone()),
        None => request.call(),
    };
    let response = match result {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("{method} {path}: {error}"),
    };
    Answer {
        status: response.status(),
        location: response.header("Location").map(str::to_string),
        key: response.header("Idempotency-Key").map(str::to_string),
        replayed: response.header("Idempotent-Replayed") == Some("true"),
        body: serde_json::from_str(&response.into_string().unwrap_or_default())
            .unwrap_or(Value::Null),
    }
}

fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The drill, against the node's HTTP API at `base`, cutting and healing through `cut`.
fn drill(base: &str, cut: &AtomicBool, shared: &SharedState) {
    let async_header = [("Prefer", "respond-async")];
    // Without the header: the 503 no-quorum problem, nothing kept.
    let refused = call(
        base,
        "POST",
        "/api/v1/orders",
        ANNA,
        &[],
        Some(&order_body("+79160008001")),
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body["type"]
            .as_str()
            .unwrap()
            .ends_with("/no-quorum")
    );

    let accepted = call(
        base,
        "POST",
        "/api/v1/orders",
        ANNA,
        &async_header,
        Some(&order_body("+79160008002")),
    );
    assert_eq!(accepted.status, 202, "{}", accepted.body);
    assert_eq!(accepted.body["status"], "pending");
    assert_eq!(accepted.body["kind"], "order");
    let id = accepted.body["pending_id"].as_str().unwrap().to_string();
    assert_eq!(
        accepted.location.as_deref(),
        Some(format!("/api/v1/pending/{id}").as_str())
    );
    let key = accepted.key.clone().expect("the key the site generated");
    // An invalid create is refused at once, never kept.
    let mut invalid = order_body("+79160008003");
    invalid["items"] = json!([]);
    let bad = call(
        base,
        "POST",
        "/api/v1/orders",
        ANNA,
        &async_header,
        Some(&invalid),
    );
    assert_eq!(bad.status, 400, "{}", bad.body);

    let shown = call(
        base,
        "GET",
        &format!("/api/v1/pending/{id}"),
        ANNA,
        &[],
        None,
    );
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(shown.body["status"], "pending");
    assert_eq!(shown.body["request"]["caller"], "+79160008002");
    let foreign = call(
        base,
        "GET",
        &format!("/api/v1/pending/{id}"),
        BORIS,
        &[],
        None,
    );
    assert_eq!(foreign.status, 403, "another agent: {}", foreign.body);
    let listed = call(base, "GET", "/api/v1/pending?agent=boris", ANNA, &[], None);
    assert_eq!(listed.status, 403, "{}", listed.body);
    let listed = call(
        base,
        "GET",
        "/api/v1/pending?status=pending",
        ANNA,
        &[],
        None,
    );
    assert_eq!(
        listed.body["pending"].as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.body
    );
    let listed = call(base, "GET", "/api/v1/pending", BORIS, &[], None);
    assert_eq!(
        listed.body["pending"].as_array().map(Vec::len),
        Some(0),
        "{}",
        listed.body
    );
    let unknown = call(base, "GET", "/api/v1/pending/p-unknown", ANNA, &[], None);
    assert_eq!(unknown.status, 404);
    assert_eq!(shared.read(|state| state.orders_recent(10).len()), 0);

    cut.store(false, Ordering::SeqCst);
    let committed = eventually("the pending order to commit", || {
        let answer = call(
            base,
            "GET",
            &format!("/api/v1/pending/{id}"),
            ANNA,
            &[],
            None,
        );
        (answer.body["status"] == "committed").then_some(answer)
    });
    let order = committed.body["result"]["order"].as_u64().unwrap();
    assert_eq!(committed.body["record"]["caller"], "+79160008002");
    assert_eq!(
        committed.body["location"],
        format!("/api/v1/orders/{order}").as_str()
    );
    // The client retries with the key it was given: the same order, replayed.
    let retried = call(
        base,
        "POST",
        "/api/v1/orders",
        ANNA,
        &[("Prefer", "respond-async"), ("Idempotency-Key", &key)],
        Some(&order_body("+79160008002")),
    );
    assert_eq!(retried.status, 201, "{}", retried.body);
    assert!(retried.replayed);
    assert_eq!(retried.body["order"].as_u64(), Some(order));
    // Healed, an async create commits at once: 201 as usual.
    let direct = call(
        base,
        "POST",
        "/api/v1/orders",
        ANNA,
        &async_header,
        Some(&order_body("+79160008004")),
    );
    assert_eq!(direct.status, 201, "{}", direct.body);
    let callers: Vec<String> = shared.read(|state| {
        state
            .orders_recent(10)
            .iter()
            .map(|order| order.caller.clone())
            .collect()
    });
    assert_eq!(
        callers
            .iter()
            .filter(|caller| *caller == "+79160008002")
            .count(),
        1,
        "{callers:?}"
    );
    assert_eq!(callers.len(), 2, "{callers:?}");
}

#[test]
fn a_create_that_cannot_commit_waits_as_pending_and_commits_once_after_the_heal() {
    let directory = tempfile::tempdir().unwrap();
    let config = Arc::new(config(directory.path()));
    let shared = SharedState::new();
    let replicator = Arc::new(Cuttable {
        inner: LocalReplicator::new(shared.clone()),
        cut: AtomicBool::new(true),
    });
    let tokens = TokenTable::from_config(&config.tokens);
    actix_rt::System::new().block_on(async move {
        let running =
            callgrid_node::node::start(config, tokens, replicator.clone(), shared.clone()).unwrap();
        let base = format!("http://{}", running.http_address);
        let handle = running.handle.clone();
        actix_rt::spawn(running.server);
        let result = tokio::task::spawn_blocking(move || {
            drill(&base, &replicator.cut, &shared);
        })
        .await;
        handle.stop(false).await;
        result.unwrap();
    });
}
