//! Leader hints: how a member that lags behind a configuration change comes to hear a leader
//! its own configuration does not list.
//!
//! Only members are heard ([`super::admit`]). A member that was down while a node was added
//! (or removed and added back under the same id) still has the older configuration applied;
//! if that node now leads, the lagging member drops everything it sends, never catches up,
//! and campaigns in vain (the others ignore it while they hear their leader). The members it
//! does recognise notice: a vote request from it while they follow a leader. They answer with
//! [`PeerMessage::LeaderHint`], and the lagging member hears that leader in that term — it
//! trusts a voter of its configuration to name the leader as far as it trusts its vote. Once
//! it has applied the newer configuration the leader is a member like any other.

use super::*;

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    /// A vote request from member `from`: if this node follows a leader other than `from`,
    /// tell `from` who it is (at most once per election timeout per campaigner).
    pub(super) fn hint_leader_to_campaigner(&mut self, from: NodeId) {
        let leader = self.raw.raft.leader_id;
        if self.is_leader() || leader == 0 || leader == from || leader == self.config.node_id {
            return;
        }
        let election_ticks = self.config.election_ticks as u64;
        if self
            .hints_sent
            .get(&from)
            .is_some_and(|sent| self.tick < sent + election_ticks)
        {
            return;
        }
        let Some(address) = self.peer_addresses.get(&leader).cloned() else {
            return;
        };
        self.hints_sent.insert(from, self.tick);
        self.output.messages.push((
            from,
            PeerMessage::LeaderHint {
                term: self.raw.raft.term,
                leader,
                address,
            },
        ));
    }

    /// A hint from `from`: believed when `from` is a voter of this node's configuration, the
    /// named leader is not a member here, and the term is not behind this node's. The leader
    /// is then heard in that term only.
    pub(super) fn handle_leader_hint(
        &mut self,
        from: NodeId,
        term: u64,
        leader: NodeId,
        address: String,
    ) {
        if !self.conf_state.voters.contains(&from)
            || leader == self.config.node_id
            || term < self.raw.raft.term
            || self.is_member(leader)
        {
            return;
        }
        let previous = self.vouched.replace((leader, term));
        if let Some((former, _)) = previous
            && former != leader
            && !self.is_member(former)
            && self.peer_addresses.remove(&former).is_some()
        {
            self.output.peer_updates.push(PeerUpdate::Remove(former));
        }
        if previous != Some((leader, term)) {
            tracing::info!(
                node_id = self.config.node_id,
                leader,
                term,
                vouched_by = from,
                "a member names a leader this node's configuration does not list yet: heard \
                 in this term while catching up"
            );
        }
        if self.peer_addresses.get(&leader) != Some(&address) {
            self.peer_addresses.insert(leader, address.clone());
            self.output.peer_updates.push(PeerUpdate::Set {
                id: leader,
                address,
            });
        }
    }

    /// Whether `from` was named leader for `term` by a member ([`Self::handle_leader_hint`]).
    pub(super) fn vouched_for(&self, from: NodeId, term: u64) -> bool {
        self.vouched == Some((from, term))
    }
}
