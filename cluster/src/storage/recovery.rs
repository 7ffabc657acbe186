//! Disaster recovery on a store: when a majority of voters is lost for good, the survivor's
//! store becomes a one-voter cluster ([`force_new_cluster`]; the node's
//! `callgrid cluster force-new-cluster`, RUNBOOK §13). Store surgery on a stopped node, not
//! a Raft operation: it gives up whatever only the lost nodes had.

use std::collections::BTreeSet;

use protobuf::Message as _;
use raft::eraftpb::{ConfChangeType, ConfChangeV2, Entry, EntryType};

use super::{PersistRequest, Storage, StorageError};
use crate::transport::NodeId;

/// What [`force_new_cluster`] did to a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForcedCluster {
    /// The commit index the store had (entries after it were not known to be committed).
    pub commit_before: u64,
    /// The last index of the log before the forced changes: every entry up to it is now
    /// committed, whether or not a majority had it.
    pub last_before: u64,
    /// The members removed from the configuration.
    pub removed: Vec<NodeId>,
    /// The last index after: the forced membership changes end here, committed.
    pub last_after: u64,
}

/// Disaster recovery when a majority of voters is lost for good (two of three cities): make
/// the stopped node `node_id`'s store (at `path`) the only voter of the cluster. Every entry
/// of its log is declared committed (entries no majority acknowledged become permanent —
/// pick the surviving node with the highest last index), and membership changes are
/// appended, committed, that promote the node if it was a learner and remove every other
/// member; its lost-entries mark is cleared. Started again, the node applies them, leads
/// alone, and the other cities join back as new members (empty stores: add as learners,
/// promote) — their old stores must not come back.
///
/// Refuses a store of another node, a store that holds nothing, and a running node's store
/// (RocksDB's lock).
pub fn force_new_cluster<S: Storage>(
    store: &mut S,
    node_id: NodeId,
) -> Result<ForcedCluster, StorageError> {
    let mut identity = store.identity();
    if let Some(found) = &identity
        && found.node_id != node_id
    {
        return Err(StorageError::Io(format!(
            "the store belongs to node {}, not {node_id}",
            found.node_id
        )));
    }
    if store.is_empty() {
        return Err(StorageError::Io(
            "the store holds nothing to recover".into(),
        ));
    }
    // The membership after every change in the log, committed or not: they all become
    // committed now.
    let snapshot = store.latest_snapshot();
    let conf_state = snapshot.get_metadata().get_conf_state().clone();
    let mut voters: BTreeSet<NodeId> = conf_state.voters.iter().copied().collect();
    let mut learners: BTreeSet<NodeId> = conf_state.learners.iter().copied().collect();
    let unreadable = |error: raft::Error| StorageError::Io(format!("reading the log: {error}"));
    let first = snapshot.get_metadata().index + 1;
    let last_before = store.last_index().map_err(unreadable)?;
    let entries = store
        .entries(
            first,
            last_before + 1,
            None,
            raft::GetEntriesContext::empty(false),
        )
        .map_err(unreadable)?;
    for entry in entries
        .iter()
        .filter(|entry| entry.get_entry_type() == EntryType::EntryConfChangeV2)
    {
        let Ok(change) = ConfChangeV2::parse_from_bytes(&entry.data) else {
            continue;
        };
        for single in change.get_changes() {
            let id = single.node_id;
            match single.get_change_type() {
                ConfChangeType::AddNode => {
                    learners.remove(&id);
                    voters.insert(id);
                }
                ConfChangeType::AddLearnerNode => {
                    voters.remove(&id);
                    learners.insert(id);
                }
                ConfChangeType::RemoveNode => {
                    voters.remove(&id);
                    learners.remove(&id);
                }
            }
        }
    }
    let mut changes = Vec::new();
    if !voters.contains(&node_id) {
        changes.push((ConfChangeType::AddNode, node_id));
    }
    let removed: Vec<NodeId> = voters
        .iter()
        .chain(&learners)
        .copied()
        .filter(|id| *id != node_id)
        .collect();
    changes.extend(removed.iter().map(|id| (ConfChangeType::RemoveNode, *id)));
    let hard_state = store.initial_state().map_err(unreadable)?.hard_state;
    let term = hard_state.term.max(store.term(last_before).unwrap_or(0));
    let mut appended = Vec::with_capacity(changes.len());
    for (offset, (change_type, id)) in changes.into_iter().enumerate() {
        let change = crate::codec::one_member_change(change_type, id);
        let mut entry = Entry::default();
        entry.set_entry_type(EntryType::EntryConfChangeV2);
        entry.index = last_before + 1 + offset as u64;
        entry.term = term;
        entry.data = change.write_to_bytes()?.into();
        appended.push(entry);
    }
    let last_after = last_before + appended.len() as u64;
    let mut forced = hard_state.clone();
    forced.term = term;
    forced.commit = last_after;
    store.persist(PersistRequest {
        snapshot: None,
        entries: &appended,
        hard_state: Some(&forced),
        sync: true,
    })?;
    if let Some(found) = identity.as_mut() {
        found.lost_through = 0;
        store.set_identity(found)?;
    }
    debug_assert_eq!(store.last_index().ok(), Some(last_after));
    Ok(ForcedCluster {
        commit_before: hard_state.commit,
        last_before,
        removed,
        last_after,
    })
}
