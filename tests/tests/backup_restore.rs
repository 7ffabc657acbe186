//! `callgrid backup` / `callgrid restore` on real processes:
//! - a three-site cluster: a live backup of one site, that site's disk lost, the backup
//!   restored as a new member (new node id, added as learner from the leader, promoted) —
//!   its orders equal the leader's, including one taken after the backup;
//! - a one-node site restored under its own id serves the same orders;
//! - a backup whose files changed is refused before anything is written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use callgrid_tests::*;
use serde_json::json;

fn backup(site: &Site, to: &std::path::Path) {
    callgrid(&[
        "backup",
        "--config",
        site.config.to_str().unwrap(),
        "--to",
        to.to_str().unwrap(),
    ]);
}

fn restore(
    from: &std::path::Path,
    data: &std::path::Path,
    node_id: Option<u64>,
) -> std::process::Output {
    let mut command = std::process::Command::new(binary());
    command.args([
        "restore",
        "--from",
        from.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ]);
    if let Some(node_id) = node_id {
        command.args(["--node-id", &node_id.to_string()]);
    }
    command.output().unwrap()
}

#[test]
fn a_lost_site_comes_back_from_its_backup_as_a_new_member() {
    let directory = tempfile::tempdir().unwrap();
    let (mut nodes, certs) = cluster(directory.path(), &[1, 2, 3], &[4]);
    let before: Vec<u64> = (0..3)
        .map(|index| nodes[index % 3].take_order(&format!("+7916000100{index}")))
        .collect();

    // Live backup of site 2 while the cluster takes orders.
    let backup_dir = directory.path().join("backup-site2");
    backup(&nodes[1].site, &backup_dir);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(backup_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["node_id"], 2);
    assert_eq!(manifest["site"], "site2");
    assert!(manifest["cluster"]["ca_sha256"].is_string(), "{manifest}");
    assert!(
        manifest["files"]
            .as_array()
            .unwrap()
            .iter()
            .any(|file| file["path"] == "store/CURRENT"),
        "{manifest}"
    );

    // Site 2's disk is lost; an order is taken after the backup.
    nodes[1].kill();
    std::fs::remove_dir_all(&nodes[1].site.data).unwrap();
    let after = nodes[0].take_order("+79160001999");

    // The runbook's path: remove the lost member, restore, start as node 4, add as learner,
    // promote once caught up.
    let leader_id = leader(&nodes[0]);
    let leader_node = nodes
        .iter()
        .find(|node| node.site.node_id == leader_id)
        .unwrap();
    // Membership changes are made on the leader: a follower refuses and names it.
    let follower = nodes
        .iter()
        .find(|node| node.site.node_id != leader_id && node.site.node_id != 2)
        .unwrap();
    let (status, body) = follower.call("DELETE", "/api/v1/cluster/members/2", None);
    assert_eq!(status, 409, "{body}");
    assert!(body.to_string().contains("not the leader"), "{body}");
    let (status, body) = leader_node.call("DELETE", "/api/v1/cluster/members/2", None);
    assert_eq!(status, 200, "{body}");

    let address = format!("127.0.0.1:{}", free_udp_port());
    let peers: Vec<(u64, String)> = [&nodes[0], &nodes[2]]
        .iter()
        .map(|node| (node.site.node_id, node.site.cluster_address.clone()))
        .collect();
    let site4 = Site::write(directory.path(), "site4", 4, &address, &peers, Some(&certs));
    // The backed-up member's own id is refused: the copy joins as a new member.
    let refused = restore(&backup_dir, &site4.data, Some(2));
    assert!(!refused.status.success(), "{refused:?}");
    assert!(!site4.data.join("raft").exists());
    let restored = restore(&backup_dir, &site4.data, Some(4));
    assert!(restored.status.success(), "{restored:?}");
    assert!(
        String::from_utf8_lossy(&restored.stdout).contains("cluster.node_id = 4"),
        "{restored:?}"
    );
    let node4 = Node::start(&site4);
    let (status, body) = leader_node.call(
        "POST",
        "/api/v1/cluster/learners",
        Some(json!({"id": 4, "address": address})),
    );
    assert_eq!(status, 200, "{body}");
    let commit = leader_node.status()["commit_index"].as_u64().unwrap();
    eventually("the learner to catch up", || {
        (node4.status()["applied_index"].as_u64()? >= commit).then_some(())
    });
    let (status, body) = leader_node.call("POST", "/api/v1/cluster/voters/4", None);
    assert_eq!(status, 200, "{body}");
    let voters = eventually("node 4 to be a voter", || {
        let status = node4.status();
        let voters = status["voters"].as_array()?.clone();
        voters.contains(&json!(4)).then_some(voters)
    });
    assert!(!voters.contains(&json!(2)), "{voters:?}");

    // Same orders as the leader, including the one taken after the backup.
    let expected = leader_node.orders();
    assert_eq!(node4.orders(), expected);
    let ids: Vec<u64> = expected["orders"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|order| order["id"].as_u64())
        .collect();
    for id in before.iter().chain([&after]) {
        assert!(ids.contains(id), "order {id} missing from {expected}");
    }
}

#[test]
fn a_one_node_site_restarts_from_its_backup_with_the_same_orders() {
    let directory = tempfile::tempdir().unwrap();
    let site = Site::write(directory.path(), "solo", 1, "127.0.0.1:0", &[], None);
    let mut node = Node::start(&site);
    for index in 0..5 {
        node.take_order(&format!("+7916000200{index}"));
    }
    let expected = node.orders();
    let backup_dir = directory.path().join("backup");
    backup(&site, &backup_dir);
    node.kill();

    let mut moved = site.clone();
    moved.data = directory.path().join("restored-data");
    let text = std::fs::read_to_string(&site.config).unwrap().replace(
        &format!("data_dir = \"{}\"", site.data.display()),
        &format!("data_dir = \"{}\"", moved.data.display()),
    );
    moved.config = directory.path().join("restored.toml");
    std::fs::write(&moved.config, text).unwrap();
    let restored = restore(&backup_dir, &moved.data, None);
    assert!(restored.status.success(), "{restored:?}");
    let node = Node::start(&moved);
    eventually("the restored site to be ready", || {
        (node.call("GET", "/readyz", None).0 == 200).then_some(())
    });
    assert_eq!(node.orders(), expected);
    assert_eq!(expected["orders"].as_array().unwrap().len(), 5);
    // It keeps taking orders.
    node.take_order("+79160002999");
}

#[test]
fn a_backup_that_changed_is_refused_before_anything_is_written() {
    let directory = tempfile::tempdir().unwrap();
    let site = Site::write(directory.path(), "solo", 1, "127.0.0.1:0", &[], None);
    let node = Node::start(&site);
    node.take_order("+79160003001");
    let backup_dir = directory.path().join("backup");
    backup(&site, &backup_dir);
    drop(node);

    // One byte of the store's CURRENT file changes.
    let current = backup_dir.join("store/CURRENT");
    let original = std::fs::read(&current).unwrap();
    let mut bytes = original.clone();
    bytes[0] ^= 1;
    std::fs::write(&current, bytes).unwrap();
    let data = directory.path().join("restored");
    let output = restore(&backup_dir, &data, None);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("store/CURRENT does not match"),
        "{output:?}"
    );
    assert!(!data.exists(), "restore wrote into {}", data.display());

    // A file added after the backup is refused too; so is a second restore into a store.
    std::fs::write(&current, original).unwrap();
    std::fs::write(backup_dir.join("extra"), b"x").unwrap();
    let output = restore(&backup_dir, &data, None);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("extra is not in the manifest"));
}
