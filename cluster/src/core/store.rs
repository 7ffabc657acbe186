//! Opening the store: its identity (cluster, node, incarnation, lost-entries mark) checked
//! or recorded, and an empty store bootstrapped or left to be added, as configured.

use super::*;

/// Check the store's identity, and initialise an empty store as `initial.bootstrap` says:
/// bootstrap a new cluster, or only record the identity and wait to be added.
pub(super) fn open_store<S: Storage, M: StateMachine>(
    storage: &mut S,
    state_machine: &mut M,
    node_id: NodeId,
    initial: &InitialMembers,
) -> Result<StoreIdentity, ClusterError> {
    let expected = StoreIdentity {
        cluster_id: initial.cluster_id.clone(),
        node_id,
        lost_through: 0,
        incarnation: 1,
    };
    if let Some(mut found) = storage.identity() {
        if found.cluster_id != expected.cluster_id || found.node_id != node_id {
            return Err(ClusterError::WrongStore(format!(
                "the store belongs to node {} of cluster {:?}, this is node {node_id} of {:?}",
                found.node_id, found.cluster_id, expected.cluster_id
            )));
        }
        if found.rejoin_required() {
            tracing::error!(
                node_id,
                lost_through = found.lost_through,
                "{REJOIN_ADVICE}"
            );
        }
        found.incarnation = found
            .incarnation
            .checked_add(1)
            .filter(|incarnation| *incarnation < INCARNATIONS_MAX)
            .ok_or_else(|| ClusterError::WrongStore("incarnation counter exhausted".into()))?;
        storage.set_identity(&found)?;
        return Ok(found);
    }
    if !storage.is_empty() {
        // Written before stores had an identity: adopt it.
        storage.set_identity(&expected)?;
        tracing::info!(node_id, "store identity recorded");
        return Ok(expected);
    }
    match initial.bootstrap {
        Bootstrap::Join => {
            storage.set_identity(&expected)?;
            tracing::info!(
                node_id,
                "empty store: waiting for the leader to add this node and send a snapshot"
            );
        }
        Bootstrap::New => {
            let listed = initial
                .voters
                .iter()
                .chain(&initial.learners)
                .any(|(id, _)| *id == node_id);
            if !listed {
                return Err(ClusterError::Config(
                    "bootstrap = \"new\" needs this node among the initial members".to_owned(),
                ));
            }
            let conf_state = ConfState {
                voters: initial.voters.iter().map(|(id, _)| *id).collect(),
                learners: initial.learners.iter().map(|(id, _)| *id).collect(),
                ..Default::default()
            };
            let header = SnapshotEnvelope {
                peer_addresses: initial
                    .voters
                    .iter()
                    .chain(&initial.learners)
                    .map(|(id, address)| (*id, address.clone()))
                    .collect(),
                sessions: BTreeMap::new(),
                known_stores: BTreeSet::new(),
                state: Vec::new(),
            }
            .encode_header();
            let mut writer = storage.snapshot_writer(BOOTSTRAP_INDEX, BOOTSTRAP_INDEX)?;
            std::io::Write::write_all(&mut writer, &header)
                .map_err(crate::StateMachineError::write)?;
            state_machine.snapshot_to(&mut writer)?;
            let body = writer
                .finish()
                .map_err(|error| crate::StorageError::Io(error.to_string()))?;
            let mut snapshot = Snapshot::default();
            let metadata = snapshot.mut_metadata();
            metadata.index = BOOTSTRAP_INDEX;
            metadata.term = BOOTSTRAP_INDEX;
            metadata.set_conf_state(conf_state);
            storage.bootstrap(&snapshot, &body, &expected)?;
            tracing::info!(node_id, "bootstrapped a new cluster store");
        }
    }
    Ok(expected)
}

/// What an operator must do for a node whose store lost acknowledged entries.
pub(super) const REJOIN_ADVICE: &str = "this node's store lost log entries it had acknowledged (wiped or \
    restored disk); it will not vote or campaign. To rejoin, on the leader: remove this node, \
    add it back as a learner, and promote it once it has caught up";
