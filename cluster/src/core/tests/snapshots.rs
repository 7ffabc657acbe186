//! Snapshots: the compaction lag, decode-before-persist, and failure by lack of progress.

use super::*;

/// Propose `command` on `node` and run until it is answered; returns the answer.
fn propose_and_wait(cluster: &mut Cluster, node: NodeId, id: RequestId) -> Vec<u8> {
    cluster
        .cores
        .get_mut(&node)
        .unwrap()
        .handle_propose(id, format!("command {id}").into_bytes());
    cluster.run_until(|cluster| {
        cluster.completions.iter().any(|(from, completion)| {
            *from == node
                && matches!(completion, Completion::Propose { id: done, .. } if *done == id)
        })
    });
    cluster.take_proposal_result(node, id).unwrap().unwrap()
}

struct CatchUp {
    /// The leader's first log index when the follower came back.
    leader_first_index: u64,
    /// The follower's last index when it was cut off.
    follower_last_index: u64,
    /// Snapshots the follower installed to catch up.
    snapshots_installed: u64,
}

/// A follower misses 18 entries while the leader takes a snapshot (threshold 20, so exactly
/// at index 21), then comes back and catches up.
fn catch_up_after_a_short_absence(lag: u64) -> CatchUp {
    let mut cluster = Cluster::with_snapshots(20, lag);
    cluster.run_until(|cluster| cluster.agreed_leader().is_some());
    let leader = cluster.agreed_leader().unwrap();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    // One at a time, so the snapshot is taken exactly when the threshold is reached.
    for id in 1..=10 {
        propose_and_wait(&mut cluster, leader, id);
    }
    cluster.run_until(|cluster| {
        cluster.cores[&follower].applied_index() == cluster.cores[&leader].applied_index()
    });
    let follower_last_index = cluster.cores[&follower].status().last_index;
    cluster.cut_off.insert(follower);
    for id in 11..=28 {
        propose_and_wait(&mut cluster, leader, id);
    }
    let status = cluster.cores[&leader].status();
    assert_eq!(status.snapshots_created, 1, "{status:#?}");
    assert_eq!(status.snapshot_index, 21, "{status:#?}");
    assert!(status.entries_compacted > 0, "{status:#?}");
    assert!(status.last_index > status.snapshot_index, "{status:#?}");
    cluster.cut_off.remove(&follower);
    cluster.run_until(|cluster| {
        cluster.cores[&follower].applied_index() == cluster.cores[&leader].applied_index()
    });
    assert_eq!(
        cluster.cores[&follower].state_machine().applied.len(),
        cluster.cores[&leader].state_machine().applied.len()
    );
    CatchUp {
        leader_first_index: status.first_index,
        follower_last_index,
        snapshots_installed: cluster.cores[&follower].status().snapshots_installed,
    }
}

#[test]
fn a_slightly_lagging_follower_gets_entries_not_a_snapshot() {
    // 15 entries kept behind the snapshot at 21: the log still starts at 7.
    let kept = catch_up_after_a_short_absence(15);
    assert_eq!(kept.leader_first_index, 7);
    assert!(kept.leader_first_index <= kept.follower_last_index);
    assert_eq!(kept.snapshots_installed, 0, "caught up by entries");

    // Without the lag the same absence needs the whole state.
    let compacted = catch_up_after_a_short_absence(0);
    assert_eq!(compacted.leader_first_index, 22);
    assert!(compacted.leader_first_index > compacted.follower_last_index + 1);
    assert_eq!(compacted.snapshots_installed, 1);
}

#[test]
fn a_received_snapshot_the_state_machine_cannot_restore_is_not_persisted() {
    let mut cluster = Cluster::new();
    cluster.run_until(|cluster| cluster.agreed_leader().is_some());
    let leader = cluster.agreed_leader().unwrap();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    propose_and_wait(&mut cluster, leader, 1);
    cluster.run_until(|cluster| cluster.cores.values().all(|core| core.applied_index() >= 3));
    let term = cluster.cores[&leader].term();
    let core = cluster.cores.get_mut(&follower).unwrap();
    let committed = core.commit_index();
    let before = core.storage().log_state();

    // A well-formed envelope (the peer input check lets it through) whose state the
    // recording state machine cannot decode.
    let envelope = SnapshotEnvelope {
        state: vec![1, 2, 3],
        ..Default::default()
    };
    let snapshot = with_raft(
        raft_message(MessageType::MsgSnapshot, leader, follower, term),
        |raft| {
            let snapshot = raft.mut_snapshot();
            snapshot.data = envelope.encode().into();
            snapshot.mut_metadata().index = committed + 10;
            snapshot.mut_metadata().term = term;
            snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
        },
    );
    core.handle_message(leader, snapshot);
    let error = core.poll().unwrap_err();
    assert!(matches!(error, ClusterError::StateMachine(_)), "{error}");
    // The store is as it was: a restart opens it and the leader sends a good snapshot.
    let after = core.storage().log_state();
    assert_eq!(
        after.snapshot().get_metadata().index,
        before.snapshot().get_metadata().index
    );
    assert_eq!(after.last_index(), before.last_index());
    assert_eq!(after.hard_state(), before.hard_state());
}

/// Take the snapshots in flight from `leader` to `follower` off the network (lost, or still
/// streaming: the follower never answers them); returns how many.
fn hold_snapshots(cluster: &mut Cluster, leader: NodeId, follower: NodeId) -> usize {
    let before = cluster.in_flight.len();
    cluster.in_flight.retain(|(from, to, message)| {
        !(*from == leader && *to == follower && matches!(message, PeerMessage::Snapshot { .. }))
    });
    before - cluster.in_flight.len()
}

#[test]
fn a_snapshot_send_fails_on_lack_of_progress_not_after_a_fixed_time() {
    const ELECTION_TICKS: u64 = 10;
    let mut cluster = Cluster::with_snapshots(20, 0);
    cluster.run_until(|cluster| cluster.agreed_leader().is_some());
    let leader = cluster.agreed_leader().unwrap();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    cluster.cut_off.insert(follower);
    for id in 1..=25 {
        propose_and_wait(&mut cluster, leader, id);
    }
    assert!(cluster.cores[&leader].status().first_index > 3);
    cluster.cut_off.remove(&follower);

    // The leader sends a snapshot; it stays "on its way" for ten times the failure timeout
    // while the transport reports bytes moving: no failure, no second snapshot.
    let mut sent = 0;
    let mut rounds = 0;
    while sent == 0 {
        assert!(rounds < ROUNDS_MAX, "no snapshot sent");
        rounds += 1;
        cluster.round();
        sent += hold_snapshots(&mut cluster, leader, follower);
    }
    assert_eq!(cluster.cores[&leader].snapshot_sends(), vec![follower]);
    let mut bytes_sent = 0;
    for _ in 0..10 * 2 * ELECTION_TICKS {
        bytes_sent += 1024 * 1024;
        let core = cluster.cores.get_mut(&leader).unwrap();
        core.handle_snapshot_progress(follower, bytes_sent);
        cluster.round();
        sent += hold_snapshots(&mut cluster, leader, follower);
    }
    assert_eq!(sent, 1, "a snapshot still moving was declared failed");
    assert_eq!(cluster.cores[&leader].snapshot_sends(), vec![follower]);

    // The bytes stop: within the timeout (and a heartbeat) it fails and a new one leaves.
    let stalled_at = cluster.rounds;
    while sent == 1 {
        assert!(
            cluster.rounds - stalled_at <= 2 * ELECTION_TICKS + 5,
            "a stalled snapshot was never declared failed"
        );
        let core = cluster.cores.get_mut(&leader).unwrap();
        core.handle_snapshot_progress(follower, bytes_sent);
        cluster.round();
        sent += hold_snapshots(&mut cluster, leader, follower);
    }
    assert!(cluster.rounds - stalled_at >= 2 * ELECTION_TICKS);

    // Delivered, it is installed and the follower catches up.
    cluster.run_until(|cluster| {
        cluster.cores[&follower].applied_index() == cluster.cores[&leader].applied_index()
    });
    assert_eq!(cluster.cores[&follower].status().snapshots_installed, 1);
}

#[test]
fn an_append_reaching_below_the_followers_compaction_is_answered_not_dropped() {
    // The follower compacted up to 21; a leader that missed its acknowledgements (and keeps
    // entries behind its own snapshot) sends entries from 11 again.
    let mut cluster = Cluster::with_snapshots(20, 0);
    cluster.run_until(|cluster| cluster.agreed_leader().is_some());
    let leader = cluster.agreed_leader().unwrap();
    let follower = (1..=3).find(|id| *id != leader).unwrap();
    for id in 1..=25 {
        propose_and_wait(&mut cluster, leader, id);
    }
    cluster.run_until(|cluster| {
        cluster.cores[&follower].applied_index() == cluster.cores[&leader].applied_index()
    });
    let term = cluster.cores[&leader].term();
    let core = cluster.cores.get_mut(&follower).unwrap();
    let committed = core.commit_index();
    assert!(core.status().first_index > 11, "{:#?}", core.status());
    let first_index = core.status().first_index;
    assert!(
        (first_index..=committed)
            .all(|index| core.raw.raft.raft_log.term(index).ok() == Some(term)),
        "one leader, one term"
    );
    // What the drop was about: raft-rs calls a compacted entry's term 0.
    assert_eq!(core.raw.raft.raft_log.term(11).ok(), Some(0));
    let append = with_raft(
        raft_message(MessageType::MsgAppend, leader, follower, term),
        |raft| {
            raft.index = 10;
            raft.log_term = term;
            raft.commit = committed;
            raft.entries = (11..=committed)
                .map(|index| Entry {
                    index,
                    term,
                    ..Default::default()
                })
                .collect::<Vec<_>>()
                .into();
        },
    );
    core.handle_message(leader, append);
    let output = core.poll().unwrap();
    let answered = output.messages.iter().any(|(to, message)| {
        *to == leader
            && matches!(message, PeerMessage::Raft(raft)
                if raft.get_msg_type() == MessageType::MsgAppendResponse
                    && !raft.reject
                    && raft.index == committed)
    });
    assert!(answered, "{:?}", output.messages);
}
