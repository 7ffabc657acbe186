//! Quorum contact: how long ago this node last heard from a quorum or from its leader, so
//! readers of its local state can tell how old that state may be. A node is in contact while
//! a quorum of voters (itself included) is heard from, or while it hears from its leader
//! (who, with check-quorum, steps down after an election timeout without a quorum). A leader
//! cut off from the others thus ages from its last answer from the majority, also after it
//! stepped down. Counted in ticks of this node, like every other time in the core.

use std::collections::BTreeMap;

use super::*;

/// When each peer, and the leader, were last heard from.
#[derive(Debug, Default)]
pub(super) struct QuorumContact {
    /// Tick of the last admitted raft message from each member that sent one.
    last_heard: BTreeMap<NodeId, u64>,
    /// Tick of the last admitted raft message from the node that was then the leader.
    leader_heard: Option<u64>,
}

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    /// Notes an admitted raft message from `from` (after raft-rs stepped it, so a message
    /// from a new leader is already known as the leader's).
    pub(super) fn note_heard(&mut self, from: NodeId) {
        self.contact.last_heard.insert(from, self.tick);
        if self.raw.raft.leader_id == from {
            self.contact.leader_heard = Some(self.tick);
        }
    }

    /// Ticks since this node last heard from a quorum of voters (itself included) or from its
    /// leader; `None` if neither ever happened since it started.
    pub fn quorum_contact_ticks(&self) -> Option<u64> {
        let heard = self.contact.leader_heard.max(self.quorum_heard());
        heard.map(|tick| self.tick.saturating_sub(tick))
    }

    /// The latest tick by which a quorum of voters (this node counts as heard now, when it is
    /// a voter) had been heard from.
    fn quorum_heard(&self) -> Option<u64> {
        let voters = &self.conf_state.voters;
        let quorum = voters.len() / 2 + 1;
        let mut ticks: Vec<u64> = voters
            .iter()
            .filter_map(|id| {
                if *id == self.config.node_id {
                    Some(self.tick)
                } else {
                    self.contact.last_heard.get(id).copied()
                }
            })
            .collect();
        ticks.sort_unstable_by(|a, b| b.cmp(a));
        ticks.get(quorum - 1).copied()
    }

    /// Forgets members no longer in the configuration (bounded by the members).
    pub(super) fn forget_former_members(&mut self) {
        let voters = &self.conf_state.voters;
        let learners = &self.conf_state.learners;
        self.contact
            .last_heard
            .retain(|id, _| voters.contains(id) || learners.contains(id));
    }
}
