//! Invariants checked after every step, incrementally: each node from where its previous
//! check stopped (the applied events it has not reported yet, the committed entries past the
//! last checked index), so a step costs the same at step 20,000 as at step 1.

use std::hash::{Hash, Hasher};

use raft::GetEntriesContext;

use super::machines::AppliedEvent;
use super::{AppliedPut, Simulation, Violation};

impl Simulation {
    /// The puts and snapshot restores the node's state machine reported since the last check:
    /// strictly increasing indexes, the same value and state digest as every other node at
    /// each index, no value applied at two indexes or after its put was reported failed, and
    /// a restored state equal to the history's at the snapshot's index.
    pub(super) fn check_applied(&mut self, index: usize) -> Result<(), Violation> {
        let id = self.nodes[index].id;
        let Some(core) = self.nodes[index].core.as_mut() else {
            return Ok(());
        };
        let events = core.state_machine_mut().take_events();
        for event in events {
            match event {
                AppliedEvent::Put {
                    index: entry_index,
                    key,
                    value,
                    digest,
                } => {
                    let previous = self.nodes[index].last_applied;
                    if entry_index <= previous {
                        return Err(self.violation(format!(
                            "node {id}: applied index {entry_index} after {previous}"
                        )));
                    }
                    let put = AppliedPut { key, value, digest };
                    match self.history.get(&entry_index) {
                        Some(known) if *known != put => {
                            return Err(self.violation(format!(
                                "node {id}: applied {put:?} at {entry_index}, history has {known:?} \
                                 (a different value, or the same after a different state)"
                            )));
                        }
                        Some(_) => {}
                        None => {
                            if self.clients.failed(value) {
                                return Err(self.violation(format!(
                                    "node {id}: applied put {value}, which was reported failed"
                                )));
                            }
                            if let Some(other) = self.value_index.insert(value, entry_index) {
                                return Err(self.violation(format!(
                                    "node {id}: put {value} applied twice, at {other} and {entry_index}"
                                )));
                            }
                            self.history.insert(entry_index, put);
                        }
                    }
                    self.nodes[index].last_applied = entry_index;
                }
                AppliedEvent::Restored {
                    index: entry_index,
                    digest,
                } => {
                    let expected = if entry_index == 0 {
                        Some(super::machines::KvStateMachine::default().digest())
                    } else {
                        self.history.get(&entry_index).map(|put| put.digest)
                    };
                    if expected != Some(digest) {
                        return Err(self.violation(format!(
                            "node {id}: restored a state after index {entry_index} that the \
                             history does not have (digest {digest:x}, history {expected:?})"
                        )));
                    }
                    self.nodes[index].last_applied = entry_index;
                }
            }
        }
        Ok(())
    }

    /// Entries this node's store holds at or below its commit index never change: each is
    /// compared with the first copy any store showed at that index.
    pub(super) fn check_commits(&mut self, index: usize) -> Result<(), Violation> {
        let node = &self.nodes[index];
        let id = node.id;
        let Some(core) = node.core.as_ref() else {
            return Ok(());
        };
        let storage = &node.storage;
        let (first, last) = match (
            raft::Storage::first_index(storage),
            raft::Storage::last_index(storage),
        ) {
            (Ok(first), Ok(last)) => (first, last),
            _ => return Ok(()),
        };
        let low = (node.checked_commit + 1).max(first);
        let high = core.commit_index().min(last);
        if low > high {
            return Ok(());
        }
        let entries = raft::Storage::entries(
            storage,
            low,
            high + 1,
            None,
            GetEntriesContext::empty(false),
        )
        .map_err(|error| {
            self.violation(format!("node {id}: committed entries unreadable: {error}"))
        })?;
        for entry in entries {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            entry.data[..].hash(&mut hasher);
            let record = (
                entry.term,
                hasher.finish(),
                protobuf::ProtobufEnum::value(&entry.entry_type),
            );
            match self.committed.get(&entry.index) {
                Some(known) if *known != record => {
                    return Err(self.violation(format!(
                        "node {id}: committed entry {} changed (term {} → {})",
                        entry.index, known.0, record.0
                    )));
                }
                Some(_) => {}
                None => {
                    self.committed.insert(entry.index, record);
                }
            }
        }
        self.nodes[index].checked_commit = high;
        Ok(())
    }

    /// A store whose disk was not wiped never loses what it acknowledged: the core finds
    /// out when a leader's commit index passes its log (and stops voting), so a node that
    /// says so without a wiped disk lost synced writes (or acknowledged before syncing).
    pub(super) fn check_store_kept(&self, index: usize) -> Result<(), Violation> {
        let node = &self.nodes[index];
        match node.core.as_ref() {
            Some(core) if core.rejoin_required() && !node.awaiting_rejoin => {
                Err(self.violation(format!(
                    "node {}: its store lost entries it had acknowledged, but its disk was \
                     never wiped (a write acknowledged before it was durable)",
                    node.id
                )))
            }
            _ => Ok(()),
        }
    }

    /// At most one leader per term.
    pub(super) fn check_leaders(&mut self) -> Result<(), Violation> {
        for node in &self.nodes {
            let Some(core) = node.core.as_ref() else {
                continue;
            };
            if core.is_leader() {
                let term = core.term();
                match self.leaders.get(&term) {
                    Some(leader) if *leader != node.id => {
                        return Err(self.violation(format!(
                            "two leaders in term {term}: {leader} and {}",
                            node.id
                        )));
                    }
                    Some(_) => {}
                    None => {
                        self.leaders.insert(term, node.id);
                    }
                }
            }
        }
        Ok(())
    }

    /// After the quiet phase: every member is up, applied the same state, and has no request
    /// left unanswered; no client waits.
    pub(super) fn check_converged(&mut self) -> Result<(), Violation> {
        let members = self.members();
        let mut states = std::collections::BTreeSet::new();
        for node in &self.nodes {
            let Some(core) = node.core.as_ref() else {
                return Err(
                    self.violation(format!("node {} is down after the quiet phase", node.id))
                );
            };
            if core.pending_requests() > 0 {
                return Err(self.violation(format!(
                    "node {}: {} requests never answered",
                    node.id,
                    core.pending_requests()
                )));
            }
            if members.contains(&node.id) {
                let machine = core.state_machine();
                states.insert((machine.last_index(), machine.digest()));
            }
        }
        if states.len() != 1 {
            let nodes: Vec<String> = self
                .nodes
                .iter()
                .filter_map(|node| node.core.as_ref())
                .map(|core| {
                    let status = core.status();
                    let progress = if core.is_leader() {
                        core.progress_report()
                    } else {
                        String::new()
                    };
                    format!(
                        "{}: {:?} term {} leader {:?} commit {} applied {} first {} last {} \
                         rejoin {} members {:?} {progress}",
                        status.node_id,
                        status.role,
                        status.term,
                        status.leader,
                        status.commit_index,
                        status.applied_index,
                        status.first_index,
                        status.last_index,
                        status.rejoin_required,
                        status
                            .members
                            .iter()
                            .map(|member| (member.id, member.kind))
                            .collect::<Vec<_>>()
                    )
                })
                .collect();
            return Err(self.violation(format!(
                "members {members:?} did not converge: (last put index, digest) {states:?}; \
                 nodes: {nodes:?}"
            )));
        }
        if self.clients.pending() > 0 {
            return Err(self.violation(format!(
                "{} requests never answered: (node, request) {:?}",
                self.clients.pending(),
                self.clients.pending_list()
            )));
        }
        if self.clients.puts_succeeded == 0 {
            return Err(self.violation("no put ever succeeded".to_owned()));
        }
        Ok(())
    }
}
