//! A voter that lost its disk, over real parts (QUIC with mutual TLS, RocksDB): the cluster
//! must not lose committed writes through it, and the node must say how to rejoin.
//!
//! The scenario from the field: in {A, B, C}, C stops; writes are committed by A and B; B's
//! disk is wiped; A stops; B (empty, its configuration still says `bootstrap = "new"`) and the
//! stale C start. Before the fix B bootstrapped a fresh log and voted for C, C was elected
//! with a log missing every write since it stopped, and A, back, had its log overwritten.
//!
//! The only duration here is a window in which nothing may happen (no leader among the
//! wiped and the stale node); a loaded machine can only make such a window easier to pass.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use callgrid_cluster::status::{MemberKind, Role};
use callgrid_cluster::transport::NodeId;
use callgrid_cluster::{ClusterError, MembershipChange};
use common::*;

/// How long the wiped and the stale node are left alone: six of the longest election
/// timeouts (10 ticks of 50 ms, randomised up to twice that), enough for an election to
/// happen when it is allowed to.
const ALONE_FOR: Duration = Duration::from_millis(6 * 2 * 10 * TICK_INTERVAL_MS);

#[test]
fn a_wiped_voter_does_not_elect_a_stale_node_and_no_committed_write_is_lost() {
    let mut cluster = Cluster::start(3, Settings::default());
    let keeper = cluster.wait_for_leader(&[1, 2, 3]);
    let others: Vec<NodeId> = [1, 2, 3].into_iter().filter(|id| *id != keeper).collect();
    let (stale, wiped) = (others[0], others[1]);
    write_keys(&cluster.handle(keeper), 0..10);

    // The stale node misses everything from here on; the keeper and the soon-wiped node
    // commit it (two of three).
    cluster.stop(stale);
    write_keys(&cluster.handle(keeper), 10..200);
    cluster.wipe(wiped);
    cluster.stop(keeper);

    cluster.restart(wiped);
    cluster.restart(stale);
    let alone_until = Instant::now() + ALONE_FOR;
    while Instant::now() < alone_until {
        for id in [wiped, stale] {
            let status = cluster.status(id);
            assert_ne!(
                status.role,
                Role::Leader,
                "node {id} was elected by the wiped and the stale node: {status:#?}"
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    }

    // The keeper comes back: it and the stale node form a quorum, the keeper's log wins.
    cluster.restart(keeper);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    assert_ne!(leader, wiped, "the wiped node cannot win an election");
    write_keys(&cluster.handle(leader), 200..210);
    let expected = registers_with(0..210);
    for id in [keeper, stale] {
        cluster.wait_for_registers(id, &expected);
    }
    assert_eq!(read(&cluster, stale), expected);

    // The wiped node is not fed until the runbook replaces it (it held the log before).
    wait_until("the leader reports the lost store", || {
        let status = cluster.status(leader);
        (status.stores_lost == vec![wiped], status)
    });
    assert!(cluster.status(wiped).last_index <= 1);
    let rest = [keeper, stale];
    remove_member(&cluster, &rest, wiped);
    add_back_as_learner(&cluster, &rest, wiped);
    cluster.wait_for_registers(wiped, &expected);
}

#[test]
fn a_follower_that_lost_its_disk_under_a_live_leader_stops_voting_until_re_added() {
    let mut cluster = Cluster::start(3, Settings::default());
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let wiped = [1, 2, 3].into_iter().find(|id| *id != leader).unwrap();
    write_keys(&cluster.handle(leader), 0..50);

    cluster.wipe(wiped);
    cluster.restart(wiped);
    // The leader's first heartbeat commits past the empty log: proof the store lost
    // acknowledged entries. The node keeps running (it used to panic here) and says so.
    wait_until("the wiped node knows it must rejoin", || {
        let status = cluster.status(wiped);
        (
            status.rejoin_required && status.fatal_error.is_none(),
            status,
        )
    });
    // Restarting does not forget it: the flag is in the store's identity.
    cluster.stop(wiped);
    cluster.restart(wiped);
    assert!(cluster.status(wiped).rejoin_required);
    // The other two keep committing.
    write_keys(&cluster.handle(leader), 50..60);

    // The runbook: remove, re-add as a learner, promote.
    let all = [1, 2, 3];
    let rest: Vec<NodeId> = all.into_iter().filter(|id| *id != wiped).collect();
    remove_member(&cluster, &rest, wiped);
    add_back_as_learner(&cluster, &rest, wiped);
    wait_until("the re-added learner may vote again", || {
        let status = cluster.status(wiped);
        (!status.rejoin_required, status)
    });
    change_membership(
        &cluster,
        &rest,
        MembershipChange::PromoteLearner { id: wiped },
        |status| members_of(status, MemberKind::Voter).contains(&wiped),
    );
    let leader = cluster.wait_for_leader(&all);
    write_keys(&cluster.handle(leader), 60..70);
    cluster.wait_for_registers(wiped, &registers_with(0..70));
}

/// The gap the heartbeat proof leaves: the leader that sees the wiped node come back was
/// elected after the node's acknowledgements, so its progress for the node starts at zero and
/// its heartbeats prove nothing. It must still not feed the node (which would then vote again
/// with a partial log): the cluster replicated that the node's store held the log.
#[test]
fn a_leader_elected_after_the_wipe_does_not_feed_the_wiped_voter() {
    let mut cluster = Cluster::start(3, Settings::default());
    let first = cluster.wait_for_leader(&[1, 2, 3]);
    let wiped = [1, 2, 3].into_iter().find(|id| *id != first).unwrap();
    let next = [1, 2, 3]
        .into_iter()
        .find(|id| *id != first && *id != wiped)
        .unwrap();
    write_keys(&cluster.handle(first), 0..50);
    // Every member acknowledged entries past the bootstrap: the leader replicates that.
    cluster.wait_for_registers(wiped, &registers_with(0..50));
    cluster.stop(wiped);
    cluster.wipe(wiped);
    // A new leader, elected while the wiped node is down: it never saw its acknowledgements.
    wait_until(&format!("leadership moved to {next}"), || {
        let current = cluster.wait_for_leader(&[first, next]);
        if current == next {
            return (true, None);
        }
        let result = futures::executor::block_on(cluster.handle(current).transfer_leader(next));
        (false, Some(result))
    });
    write_keys(&cluster.handle(next), 50..60);
    cluster.restart(wiped);

    let status = wait_until("the leader reports the lost store", || {
        let status = cluster.status(next);
        (status.stores_lost == vec![wiped], status)
    });
    assert_eq!(status.role, Role::Leader, "{status:#?}");
    // Not fed: the wiped node's log stays at the bootstrap, so it keeps refusing votes.
    let window_until = Instant::now() + ALONE_FOR;
    while Instant::now() < window_until {
        let status = cluster.status(wiped);
        assert!(
            status.last_index <= 1,
            "the wiped node was sent the log: {status:#?}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
    write_keys(&cluster.handle(next), 60..70);

    // The runbook: remove, re-add as a learner, promote; then it is fed and counted again.
    let rest = [first, next];
    remove_member(&cluster, &rest, wiped);
    assert!(cluster.status(next).stores_lost.is_empty());
    add_back_as_learner(&cluster, &rest, wiped);
    cluster.wait_for_registers(wiped, &registers_with(0..70));
    change_membership(
        &cluster,
        &rest,
        MembershipChange::PromoteLearner { id: wiped },
        |status| members_of(status, MemberKind::Voter).contains(&wiped),
    );
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    write_keys(&cluster.handle(leader), 70..80);
    cluster.wait_for_registers(wiped, &registers_with(0..80));
    assert!(cluster.status(leader).stores_lost.is_empty());
}

#[test]
fn a_store_of_another_node_is_refused() {
    let mut cluster = Cluster::start(3, Settings::default());
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    write_keys(&cluster.handle(leader), 0..5);
    let (one, two) = (1, 2);
    cluster.stop(one);
    cluster.stop(two);
    // Node 1's data directory mounted where node 2 expects its own.
    let (from, to) = (
        cluster.nodes[&one].directory.clone(),
        cluster.nodes[&two].directory.clone(),
    );
    std::fs::remove_dir_all(&to).unwrap();
    std::fs::rename(&from, &to).unwrap();
    match cluster.try_restart(two) {
        Err(ClusterError::WrongStore(message)) => {
            assert!(message.contains("node 1"), "{message}");
        }
        other => panic!("expected the store to be refused, got {other:?}"),
    }
}

#[test]
fn the_last_city_standing_is_forced_into_a_new_cluster_without_losing_a_write() {
    let mut cluster = Cluster::start(3, Settings::default());
    let survivor = cluster.wait_for_leader(&[1, 2, 3]);
    write_keys(&cluster.handle(survivor), 0..50);
    // Two of three cities are lost for good: no quorum can form again.
    let lost: Vec<NodeId> = [1, 2, 3].into_iter().filter(|id| *id != survivor).collect();
    for id in &lost {
        cluster.wipe(*id);
    }
    cluster.stop(survivor);
    let directory = cluster.nodes[&survivor].directory.clone();
    let other = lost[0];
    assert!(
        callgrid_cluster::storage::rocks::force_new_cluster(&directory, other).is_err(),
        "another node's store is refused"
    );
    let forced = callgrid_cluster::storage::rocks::force_new_cluster(&directory, survivor).unwrap();
    assert_eq!(forced.removed, lost, "{forced:?}");
    assert_eq!(forced.last_after, forced.last_before + 2, "{forced:?}");

    // Started again, it applies the forced changes, leads alone and keeps every write.
    cluster.restart(survivor);
    assert_eq!(cluster.wait_for_leader(&[survivor]), survivor);
    wait_until("the survivor is the only voter", || {
        let status = cluster.status(survivor);
        let voters = members_of(&status, MemberKind::Voter);
        (voters == BTreeSet::from([survivor]), status)
    });
    assert_eq!(read(&cluster, survivor), registers_with(0..50));
    write_keys(&cluster.handle(survivor), 50..60);

    // A new city joins the way the runbook adds one: a learner, then a voter.
    cluster.start_new_node(4);
    add_back_as_learner(&cluster, &[survivor], 4);
    cluster.wait_for_registers(4, &registers_with(0..60));
    change_membership(
        &cluster,
        &[survivor],
        MembershipChange::PromoteLearner { id: 4 },
        |status| members_of(status, MemberKind::Voter).contains(&4),
    );
    write_keys(&cluster.handle(survivor), 60..70);
    cluster.wait_for_registers(4, &registers_with(0..70));
}

/// The runbook's first step for `id`, asked of the nodes in `rest`: remove it.
fn remove_member(cluster: &Cluster, rest: &[NodeId], id: NodeId) {
    change_membership(cluster, rest, MembershipChange::Remove { id }, |status| {
        !members_of(status, MemberKind::Voter).contains(&id)
    });
}

/// The runbook's second step: add `id` back as a learner, at its address.
fn add_back_as_learner(cluster: &Cluster, rest: &[NodeId], id: NodeId) {
    let address = cluster.nodes[&id].address.to_string();
    change_membership(
        cluster,
        rest,
        MembershipChange::AddLearner { id, address },
        |status| members_of(status, MemberKind::Learner).contains(&id),
    );
}
