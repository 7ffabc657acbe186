//! Site loss on real processes: three sites in one cluster, 50 callers waiting at one of them
//! (no agent logged in there); the site is killed with SIGKILL. The lowest-numbered live site
//! adopts its open contacts from the replicated contact ledger: every one of the 50 callers
//! ends with a callback task at their original place, the others keep serving, and the site
//! returns and catches up (its ledger shows nothing open).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;

use callgrid_tests::*;
use serde_json::{Value, json};

const CALLERS: usize = 50;

/// Three sites `site1..3` (numbers 1..3) that name each other as peer sites, so each
/// publishes its summary and sees the others'.
fn three_peered_sites(directory: &std::path::Path) -> Vec<Site> {
    let certs = directory.join("certs");
    certificates(&certs, &[1, 2, 3]);
    let addresses: Vec<String> = (0..3)
        .map(|_| format!("127.0.0.1:{}", free_udp_port()))
        .collect();
    (1..=3u64)
        .map(|id| {
            let peers: Vec<(u64, String)> = (1..=3u64)
                .filter(|other| *other != id)
                .map(|other| (other, addresses[other as usize - 1].clone()))
                .collect();
            let site = Site::write(
                directory,
                &format!("site{id}"),
                id,
                &addresses[id as usize - 1],
                &peers,
                Some(&certs),
            );
            let mut config = std::fs::OpenOptions::new()
                .append(true)
                .open(&site.config)
                .unwrap();
            for other in (1..=3u64).filter(|other| *other != id) {
                writeln!(
                    config,
                    "\n[[peer_sites]]\nid = \"site{other}\"\nnumber = {other}"
                )
                .unwrap();
            }
            site
        })
        .collect()
}

fn open_at(node: &Node, site: &str) -> Vec<Value> {
    let (status, body) = node.call(
        "GET",
        &format!("/api/v1/ledger/sites/{site}/open?limit=1000"),
        None,
    );
    assert_eq!(status, 200, "{body}");
    body["open"].as_array().unwrap().clone()
}

#[test]
fn callers_waiting_at_a_killed_site_all_get_callbacks_from_a_live_one() {
    let directory = tempfile::tempdir().unwrap();
    let sites = three_peered_sites(directory.path());
    let mut nodes: Vec<Node> = sites.iter().map(Node::start).collect();
    for node in &nodes {
        eventually("a leader", || {
            (node.call("GET", "/readyz", None).0 == 200).then_some(())
        });
    }
    let lost = &nodes[2];
    let mut callers = Vec::new();
    for index in 0..CALLERS {
        let caller = format!("+7916555{index:04}");
        let (status, body) = lost.call(
            "POST",
            "/api/v1/contacts",
            Some(json!({"caller": caller, "topic": "order"})),
        );
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["contact"]["stage"], "queued", "{body}");
        callers.push(caller);
    }
    // The ledger (every site's replica) holds the 50 waiting callers before the loss, and
    // site3 has published its summary (what its peers watch).
    eventually("50 open ledger entries at site3", || {
        (open_at(&nodes[0], "site3").len() == CALLERS).then_some(())
    });
    eventually("site3's summary", || {
        let (_, body) = nodes[0].call("GET", "/api/v1/ledger/sites/site3/open?limit=1", None);
        body["last_summary_at_ms"].as_u64()
    });
    let killed_at = std::time::Instant::now();
    nodes[2].kill();

    // site1, the lowest-numbered live site, adopts them: a callback per caller.
    let callbacks = eventually("the callers' callbacks", || {
        let (status, body) = nodes[0].call("GET", "/api/v1/callbacks?limit=500", None);
        assert_eq!(status, 200, "{body}");
        let callbacks: Vec<Value> = body["callbacks"].as_array().unwrap().clone();
        (callbacks.len() >= CALLERS).then_some(callbacks)
    });
    let adopted_after = killed_at.elapsed();
    println!("adopted {CALLERS} waiting callers {adopted_after:?} after the kill");
    for caller in &callers {
        let callback = callbacks
            .iter()
            .find(|callback| callback["caller"] == caller.as_str())
            .unwrap_or_else(|| panic!("no callback for {caller}"));
        assert_eq!(callback["site"], "site1", "{callback}");
        assert!(
            callback["reason"]["abandoned"]["ordering_time_ms"]
                .as_u64()
                .unwrap()
                > 0,
            "{callback}"
        );
    }
    assert!(open_at(&nodes[0], "site3").is_empty());
    // The others keep serving.
    let (status, body) = nodes[1].call(
        "POST",
        "/api/v1/contacts",
        Some(json!({"caller": "+79167770000", "topic": "order"})),
    );
    assert_eq!(status, 201, "{body}");

    // site3 returns and catches up: nothing open of its own, the callbacks replicated.
    nodes[2] = Node::start(&sites[2]);
    eventually("site3 caught up", || {
        let (status, body) = nodes[2].call("GET", "/api/v1/callbacks?limit=500", None);
        (status == 200
            && body["callbacks"]
                .as_array()
                .is_some_and(|all| all.len() >= CALLERS))
        .then_some(())
    });
    assert!(open_at(&nodes[2], "site3").is_empty());
}

/// A site killed and restarted at once (its peers never see it stale): the callers it had
/// waiting are gone from its memory; it recovers them from the ledger as callbacks itself.
#[test]
fn callers_waiting_at_a_site_that_restarts_at_once_get_callbacks_from_it() {
    let directory = tempfile::tempdir().unwrap();
    let sites = three_peered_sites(directory.path());
    let mut nodes: Vec<Node> = sites.iter().map(Node::start).collect();
    for node in &nodes {
        eventually("a leader", || {
            (node.call("GET", "/readyz", None).0 == 200).then_some(())
        });
    }
    let callers: Vec<String> = (0..10).map(|index| format!("+7916444{index:04}")).collect();
    for caller in &callers {
        let (status, body) = nodes[2].call(
            "POST",
            "/api/v1/contacts",
            Some(json!({"caller": caller, "topic": "order"})),
        );
        assert_eq!(status, 201, "{body}");
    }
    eventually("10 open ledger entries at site3", || {
        (open_at(&nodes[0], "site3").len() == callers.len()).then_some(())
    });
    nodes[2].kill();
    nodes[2] = Node::start(&sites[2]);
    let callbacks = eventually("the callers' callbacks", || {
        let (status, body) = nodes[0].call("GET", "/api/v1/callbacks?limit=500", None);
        assert_eq!(status, 200, "{body}");
        let callbacks: Vec<Value> = body["callbacks"].as_array().unwrap().clone();
        (callbacks.len() >= callers.len()).then_some(callbacks)
    });
    for caller in &callers {
        let callback = callbacks
            .iter()
            .find(|callback| callback["caller"] == caller.as_str())
            .unwrap_or_else(|| panic!("no callback for {caller}"));
        assert_eq!(callback["site"], "site3", "{callback}");
    }
    assert!(open_at(&nodes[0], "site3").is_empty());
}
