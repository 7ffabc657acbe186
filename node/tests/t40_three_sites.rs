//! Three `callgrid node` processes configured as three sites form one Raft cluster over QUIC
//! with mutual TLS: an order taken at one site is readable at the others and survives kill -9
//! of the site that took it.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use serde_json::json;

#[test]
fn order_taken_at_one_site_is_read_at_the_others_and_survives_its_loss() {
    let directory = tempfile::tempdir().unwrap();
    let certificates = directory.path().join("certs");
    certs(&certificates, &[1, 2, 3]);
    let ports = [free_udp_port(), free_udp_port(), free_udp_port()];
    let sites = ["msk", "spb", "kzn"];
    let mut nodes = Vec::new();
    for (index, site) in sites.iter().enumerate() {
        let id = index as u64 + 1;
        let peers: Vec<String> = (0..3)
            .filter(|other| *other != index)
            .map(|other| {
                format!(
                    "{{ id = {}, address = \"127.0.0.1:{}\" }}",
                    other + 1,
                    ports[other]
                )
            })
            .collect();
        let cluster = format!(
            "[cluster]\nnode_id = {id}\nlisten = \"127.0.0.1:{}\"\ncertificates_dir = \"{}\"\nbootstrap = \"new\"\npeers = [{}]\n",
            ports[index],
            certificates.display(),
            peers.join(", ")
        );
        let data = directory.path().join(site);
        let path = directory.path().join(format!("{site}.toml"));
        std::fs::write(&path, site_config(site, index as u16, &data, &cluster)).unwrap();
        nodes.push(Node::start(&path, &data));
    }
    for node in &nodes {
        eventually("a leader", || {
            let (status, _) = node.call("GET", "/readyz", None, None);
            (status == 200).then_some(())
        });
    }

    // The order is taken at the leader's site, so losing that site forces an election: reads
    // and writes must work again under the new leader (its first entry carries no command).
    let taker = eventually("a leader known to the first site", || {
        let (_, ready) = nodes[0].call("GET", "/readyz", Some(SUPERVISOR), None);
        ready["cluster"]["leader"].as_u64()
    }) as usize
        - 1;
    let others: Vec<usize> = (0..3).filter(|index| *index != taker).collect();
    let (status, created) = eventually("the order to be acknowledged", || {
        let (status, body) = nodes[taker].call(
            "POST",
            "/api/v1/orders",
            Some(ANNA),
            Some(order_body("+79160002020")),
        );
        (status != 503).then_some((status, body))
    });
    assert_eq!(status, 201, "{created}");
    let order = created["order"].as_u64().unwrap();
    for node in others.iter().map(|index| &nodes[*index]) {
        let (status, view) = node.call(
            "GET",
            &format!("/api/v1/orders/{order}"),
            Some(SUPERVISOR),
            None,
        );
        assert_eq!(status, 200, "{view}");
        assert_eq!(view["site"], sites[taker]);
        assert_eq!(view["caller"], "+79160002020");
    }

    nodes[taker].kill();
    // The remaining two keep a quorum: the order is there and the cluster still commits.
    let (status, view) = eventually("a read after the loss", || {
        let (status, body) = nodes[others[0]].call(
            "GET",
            &format!("/api/v1/orders/{order}"),
            Some(SUPERVISOR),
            None,
        );
        (status != 503).then_some((status, body))
    });
    assert_eq!(status, 200, "{view}");
    let (status, changed) = eventually("a change after the loss", || {
        let (status, body) = nodes[others[1]].call(
            "POST",
            &format!("/api/v1/orders/{order}/status"),
            Some(BORIS),
            Some(json!({"status": "confirmed"})),
        );
        (status != 503).then_some((status, body))
    });
    assert_eq!(status, 200, "{changed}");

    // The lost site comes back and catches up from the log.
    nodes[taker].restart();
    eventually("the restarted site to catch up", || {
        let (status, body) = nodes[taker].call(
            "GET",
            &format!("/api/v1/orders/{order}"),
            Some(SUPERVISOR),
            None,
        );
        (status == 200 && body["status"] == "confirmed").then_some(())
    });
}
