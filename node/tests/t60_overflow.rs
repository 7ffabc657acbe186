//! Cross-site overflow between two real `callgrid node` processes in one Raft cluster: a site
//! whose line-1 queue has nobody ready sends a waiting call to the peer site once that site's
//! published summary shows an idle agent, and never before; the gateway re-presents the call
//! at the target with `overflowed_from`, where it is offered to the idle agent; both sites
//! count it (out at the source, in at the target), and the source's gateway stream tells
//! where it went, with the hop count to pass on. Invalid `overflowed_from` fields are 400.
//! With the oldest-wait trigger, a call that waits past the threshold is moved by the
//! site's deadline timer, with no other arrival or peer change to wake the rule. Racing
//! re-presentations of one overflowed contact: the ledger's committed claim lets exactly one
//! through (the others 409), and the sites' ledger overflow counts balance.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::{Value, json};

const SPB_API_URL: &str = "http://spb.callgrid.test:8080";

/// The value of a `/metrics` sample whose line starts with `prefix` (name and labels).
fn metric(node: &Node, prefix: &str) -> Option<f64> {
    let (status, body) = node.call("GET", "/metrics", None, None);
    assert_eq!(status, 200);
    body.as_str()?
        .lines()
        .find(|line| line.starts_with(prefix))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

fn arrival(caller: &str, overflowed_from: Option<Value>) -> Value {
    let mut body = json!({"caller": caller, "topic": "order"});
    if let Some(from) = overflowed_from {
        body["overflowed_from"] = from;
    }
    body
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Two sites, msk and spb, in one Raft cluster; `overflow` is the `[overflow]` section of
/// both. Returns the temp dir (it must outlive the nodes) and the nodes, msk first.
fn two_sites(overflow: &str) -> (tempfile::TempDir, Vec<Node>) {
    let directory = tempfile::tempdir().unwrap();
    let certificates = directory.path().join("certs");
    certs(&certificates, &[1, 2]);
    let ports = [free_udp_port(), free_udp_port()];
    let sites = ["msk", "spb"];
    let mut nodes = Vec::new();
    for (index, site) in sites.iter().enumerate() {
        let other = 1 - index;
        let api_url = if sites[other] == "spb" {
            format!("api_url = \"{SPB_API_URL}\"")
        } else {
            String::new()
        };
        let extra = format!(
            "[cluster]\nnode_id = {}\nlisten = \"127.0.0.1:{}\"\ncertificates_dir = \"{}\"\nbootstrap = \"new\"\npeers = [{{ id = {}, address = \"127.0.0.1:{}\" }}]\n\n\
             [overflow]\n{overflow}\n\n\
             [[peer_sites]]\nid = \"{}\"\nnumber = {other}\n{api_url}\n",
            index + 1,
            ports[index],
            certificates.display(),
            other + 1,
            ports[other],
            sites[other],
        );
        let data = directory.path().join(site);
        let path = directory.path().join(format!("{site}.toml"));
        std::fs::write(&path, site_config(site, index as u16, &data, &extra)).unwrap();
        nodes.push(Node::start(&path, &data));
    }
    for node in &nodes {
        eventually("a leader", || {
            let (status, _) = node.call("GET", "/readyz", None, None);
            (status == 200).then_some(())
        });
    }
    (directory, nodes)
}

#[test]
fn a_waiting_call_overflows_only_to_a_site_with_an_idle_agent_and_is_taken_there() {
    // The predicted-wait trigger is above the threshold as soon as nobody is ready for the
    // queue, so the rule is on from the first arrival at msk: whether a call leaves depends
    // only on the peer's idle agents.
    let (_directory, nodes) = two_sites(
        "enabled = true\ntrigger = \"predicted_wait\"\nthreshold_on_ms = 1000\nthreshold_off_ms = 500\nshare_out_max = 1.0\nwindow_s = 600",
    );
    let (msk, spb) = (&nodes[0], &nodes[1]);

    // spb has nobody ready: msk reads spb's summary with no idle line-1 agent.
    let idle_at_spb =
        "callgrid_overflow_peer_agents_idle{site=\"msk\",peer=\"spb\",skill=\"line1\"}";
    eventually("spb's summary at msk", || metric(msk, idle_at_spb));
    assert_eq!(metric(msk, idle_at_spb), Some(0.0));
    let mut gateway = connect(msk, "/api/v1/gateway/stream", Some(GATEWAY)).unwrap();
    let polls_before = metric(msk, "callgrid_overflow_polls_total{site=\"msk\"}").unwrap();
    let (status, created) = msk.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(arrival("+79160003030", None)),
    );
    assert_eq!(status, 201, "{created}");
    let contact = created["contact"]["id"].as_u64().unwrap();
    // The arrival applied the rule (the poll counter moved) and the call stayed: no peer
    // had an idle agent.
    let polls_after = metric(msk, "callgrid_overflow_polls_total{site=\"msk\"}").unwrap();
    assert!(
        polls_after > polls_before,
        "{polls_before} -> {polls_after}"
    );
    assert_eq!(created["contact"]["stage"], "queued", "{created}");
    assert_eq!(
        metric(msk, "callgrid_contacts_overflowed_out_total{site=\"msk\"}"),
        Some(0.0)
    );

    // boris becomes ready at spb: its next summary shows an idle agent, msk's rule sends the
    // waiting call there and tells the gateway where.
    ready(spb, "boris", BORIS);
    let view = eventually("the call to be overflowed", || {
        let (status, view) = msk.call(
            "GET",
            &format!("/api/v1/contacts/{contact}"),
            Some(GATEWAY),
            None,
        );
        assert_eq!(status, 200, "{view}");
        (view["stage"] == "overflowed").then_some(view)
    });
    assert_eq!(view["overflowed_to"]["site"], "spb", "{view}");
    assert_eq!(view["overflowed_to"]["api_url"], SPB_API_URL, "{view}");
    assert_eq!(view["overflowed_to"]["hops"], 1, "{view}");
    let arrived_at_ms = view["arrived_at_ms"].as_u64().unwrap();
    // The gateway's stream says the same, so the telephony side can move the call.
    let event = loop {
        let event = next_event(&mut gateway);
        if event["type"] == "contact" && event["contact"] == contact {
            assert_ne!(event["stage"], "offered", "{event}");
            if event["stage"] == "overflowed" {
                break event;
            }
        }
    };
    assert_eq!(event["overflowed_to"]["site"], "spb", "{event}");
    assert_eq!(event["overflowed_to"]["api_url"], SPB_API_URL, "{event}");
    assert_eq!(event["overflowed_to"]["hops"], 1, "{event}");
    assert_eq!(
        metric(msk, "callgrid_contacts_overflowed_out_total{site=\"msk\"}"),
        Some(1.0)
    );

    // The gateway re-presents it at spb: offered to boris, counted overflowed in.
    let (status, presented) = spb.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(arrival(
            "+79160003030",
            Some(
                json!({"site": "msk", "contact": contact, "arrived_at_ms": arrived_at_ms,
                "hops": event["overflowed_to"]["hops"]}),
            ),
        )),
    );
    assert_eq!(status, 201, "{presented}");
    assert_eq!(presented["contact"]["stage"], "offered", "{presented}");
    assert_eq!(presented["contact"]["agent"], "boris", "{presented}");
    assert_eq!(presented["contact"]["overflowed_from"]["site"], "msk");
    assert_eq!(presented["contact"]["overflowed_from"]["contact"], contact);
    assert_eq!(presented["contact"]["overflowed_from"]["hops"], 1);
    let at_spb = presented["contact"]["id"].as_u64().unwrap();
    let offered: Vec<u64> = agent_contacts(spb, "boris", BORIS)
        .iter()
        .filter_map(|view| view["id"].as_u64())
        .collect();
    assert_eq!(offered, vec![at_spb]);
    assert_eq!(
        metric(spb, "callgrid_contacts_overflowed_in_total{site=\"spb\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(msk, "callgrid_contacts_overflowed_in_total{site=\"msk\"}"),
        Some(0.0)
    );

    // Invalid sources are refused before anything is queued.
    let refused = [
        json!({"site": "nowhere", "contact": 1, "arrived_at_ms": now_ms()}),
        json!({"site": "spb", "contact": 1, "arrived_at_ms": now_ms()}),
        json!({"site": "msk", "contact": 0, "arrived_at_ms": now_ms()}),
        json!({"site": "msk", "contact": 1, "arrived_at_ms": now_ms() + 3_600_000}),
        json!({"site": "msk", "contact": 1, "arrived_at_ms": now_ms(), "hops": 0}),
        json!({"site": "msk", "contact": 1, "arrived_at_ms": now_ms(), "hops": 3}),
        json!({"site": "msk", "contact": 1, "arrived_at_ms": now_ms(), "hops": 300}),
        json!({"site": "msk", "contact": 1, "arrived_at_ms": now_ms(), "hop": 1}),
        json!({"site": "msk", "contact": 1}),
        json!("msk"),
    ];
    for from in refused {
        let (status, body) = spb.call(
            "POST",
            "/api/v1/contacts",
            Some(GATEWAY),
            Some(arrival("+79160004040", Some(from.clone()))),
        );
        assert_eq!(status, 400, "{from}: {body}");
    }
    assert_eq!(
        metric(spb, "callgrid_contacts_overflowed_in_total{site=\"spb\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(spb, "callgrid_contacts_offered_total{site=\"spb\"}"),
        Some(1.0)
    );
}

#[test]
fn a_call_waiting_past_the_oldest_wait_threshold_is_overflowed_by_the_deadline_timer() {
    let (_directory, nodes) = two_sites(
        "enabled = true\ntrigger = \"oldest_wait\"\nthreshold_on_ms = 1000\nthreshold_off_ms = 500\nshare_out_max = 1.0\nwindow_s = 600",
    );
    let (msk, spb) = (&nodes[0], &nodes[1]);

    // boris is ready at spb before the call arrives, and msk has read that.
    ready(spb, "boris", BORIS);
    let idle_at_spb =
        "callgrid_overflow_peer_agents_idle{site=\"msk\",peer=\"spb\",skill=\"line1\"}";
    eventually("spb's idle agent at msk", || {
        (metric(msk, idle_at_spb) == Some(1.0)).then_some(())
    });

    // On arrival the call has waited 0 ms, below the threshold: it is queued at msk.
    let (status, created) = msk.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(arrival("+79160005050", None)),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["contact"]["stage"], "queued", "{created}");
    let contact = created["contact"]["id"].as_u64().unwrap();

    // Nothing else happens at msk (no arrival, no agent change, spb's figures stay the
    // same); the rule runs again only from the timer set at the oldest wait's deadline.
    let view = eventually("the call to be overflowed", || {
        let (status, view) = msk.call(
            "GET",
            &format!("/api/v1/contacts/{contact}"),
            Some(GATEWAY),
            None,
        );
        assert_eq!(status, 200, "{view}");
        assert_ne!(view["stage"], "offered", "{view}");
        (view["stage"] != "queued").then_some(view)
    });
    assert_eq!(view["stage"], "overflowed", "{view}");
    assert_eq!(view["overflowed_to"]["site"], "spb", "{view}");
    assert_eq!(view["overflowed_to"]["hops"], 1, "{view}");
    assert_eq!(
        metric(msk, "callgrid_contacts_overflowed_out_total{site=\"msk\"}"),
        Some(1.0)
    );
    assert_eq!(
        metric(msk, "callgrid_contacts_offered_total{site=\"msk\"}"),
        Some(1.0)
    );
}

/// Concurrent re-presentations of one overflowed contact: the ledger's claim lets exactly
/// one through; the others are 409 and nothing else is queued; the contact's ledger entry
/// names the one owner and the sites' overflow counts (from committed claims) balance. A
/// contact its site never released is not claimable.
#[test]
fn racing_presentations_of_one_overflowed_contact_leave_exactly_one_owner() {
    let (_directory, nodes) = two_sites(
        "enabled = true\ntrigger = \"predicted_wait\"\nthreshold_on_ms = 1000\nthreshold_off_ms = 500\nshare_out_max = 1.0\nwindow_s = 600",
    );
    let (msk, spb) = (&nodes[0], &nodes[1]);
    // A call queued at msk (nobody idle at spb yet) is not released: a claim is refused
    // after the bounded wait, and nothing is queued at spb.
    let (status, kept) = msk.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(arrival("+79160006060", None)),
    );
    assert_eq!(status, 201, "{kept}");
    assert_eq!(kept["contact"]["stage"], "queued", "{kept}");
    let kept_id = kept["contact"]["id"].as_u64().unwrap();
    let (status, body) = spb.call(
        "POST",
        "/api/v1/contacts",
        Some(GATEWAY),
        Some(arrival(
            "+79160006060",
            Some(json!({"site": "msk", "contact": kept_id, "arrived_at_ms": now_ms() - 10})),
        )),
    );
    assert_eq!(status, 409, "{body}");

    ready(spb, "boris", BORIS);
    let view = eventually("the call to be overflowed", || {
        let (_, view) = msk.call(
            "GET",
            &format!("/api/v1/contacts/{kept_id}"),
            Some(GATEWAY),
            None,
        );
        (view["stage"] == "overflowed").then_some(view)
    });
    let from = json!({"site": "msk", "contact": kept_id,
        "arrived_at_ms": view["arrived_at_ms"], "hops": 1});
    let base = spb.base.clone();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let base = base.clone();
            let body = arrival("+79160006060", Some(from.clone()));
            std::thread::spawn(move || {
                common::call(&base, "POST", "/api/v1/contacts", Some(GATEWAY), Some(body))
            })
        })
        .collect();
    let answers: Vec<(u16, Value)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let taken: Vec<&Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(taken.len(), 1, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|(status, _)| *status == 201 || *status == 409),
        "{answers:?}"
    );
    assert_eq!(
        metric(spb, "callgrid_contacts_offered_total{site=\"spb\"}"),
        Some(1.0),
        "one arrival at spb"
    );
    let (status, entry) = msk.call(
        "GET",
        &format!("/api/v1/ledger/contacts/{kept_id}"),
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(status, 200, "{entry}");
    assert_eq!(entry["owner"], "msk", "{entry}");
    assert_eq!(
        entry["stage"],
        json!({"overflowed": {"to": "spb", "claimed": true}}),
        "{entry}"
    );
    let at_spb = taken[0]["contact"]["id"].as_u64().unwrap();
    let entry = eventually("spb's ledger entry", || {
        let (status, entry) = spb.call(
            "GET",
            &format!("/api/v1/ledger/contacts/{at_spb}"),
            Some(SUPERVISOR),
            None,
        );
        (status == 200).then_some(entry)
    });
    assert_eq!(entry["owner"], "spb", "{entry}");
    assert_eq!(entry["moved_from"], kept_id, "{entry}");
    assert_eq!(entry["arrived_at_site"], "msk", "{entry}");
    assert_eq!(entry["hops"], 1, "{entry}");
    // Counted from the one committed claim, at both ends.
    eventually("msk's out count", || {
        (metric(msk, "callgrid_ledger_overflowed_out_total{site=\"msk\"}") == Some(1.0))
            .then_some(())
    });
    eventually("spb's in count", || {
        (metric(spb, "callgrid_ledger_overflowed_in_total{site=\"spb\"}") == Some(1.0))
            .then_some(())
    });
    let (_, open) = spb.call(
        "GET",
        "/api/v1/ledger/sites/msk/open",
        Some(SUPERVISOR),
        None,
    );
    let (_, open_spb) = spb.call(
        "GET",
        "/api/v1/ledger/sites/spb/open",
        Some(SUPERVISOR),
        None,
    );
    assert_eq!(
        (
            open["overflowed_out"].as_u64(),
            open_spb["overflowed_in"].as_u64()
        ),
        (Some(1), Some(1)),
        "{open} {open_spb}"
    );
    // The agent role cannot read the ledger.
    let (status, _) = spb.call("GET", "/api/v1/ledger/sites/msk/open", Some(BORIS), None);
    assert_eq!(status, 403);
}
