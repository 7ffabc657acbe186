//! Peer input checks: what a raft message must satisfy before raft-rs steps it (member
//! sender, a kind peers may send, nothing raft-rs would panic on), and the refusals that keep a
//! store which lost acknowledged entries from voting.

use super::store::REJOIN_ADVICE;
use super::*;

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    /// Whether a raft message from an authenticated peer may be stepped: it must come from
    /// a member (a node with an empty configuration, waiting to be added, hears from the
    /// peers it was told about), be of a kind peers send, and hold nothing raft-rs would
    /// `panic!` on. Also where a store that lost acknowledged entries is detected and kept
    /// from voting. Never panics; a refusal is only dropped (and counted in the log).
    pub(super) fn admit(
        &mut self,
        from: NodeId,
        message: &RaftMessage,
    ) -> Result<(), &'static str> {
        if message.from != from {
            return Err("forged sender");
        }
        if message.to != self.config.node_id {
            return Err("addressed to another node");
        }
        if !self.is_member(from) && !self.vouched_for(from, message.term) {
            return Err("sender is not a member");
        }
        match message.get_msg_type() {
            // Proposals travel as `Forward`s that the leader checks; raft-rs would append a
            // peer's MsgPropose (entries or conf changes) unchecked. Leadership moves only
            // by the leader's own decision.
            MessageType::MsgPropose | MessageType::MsgTransferLeader => {
                Err("peers may not send this kind")
            }
            MessageType::MsgTimeoutNow if self.raw.raft.leader_id != from => {
                Err("campaign order from a node that is not the leader")
            }
            MessageType::MsgHeartbeat => self.admit_heartbeat(from, message),
            MessageType::MsgAppend => self.admit_append(message),
            MessageType::MsgAppendResponse => self.admit_append_response(from, message),
            MessageType::MsgSnapshot => admit_snapshot(message.get_snapshot()),
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote => {
                self.admit_vote_request(from, message)
            }
            _ => Ok(()),
        }
    }

    /// A heartbeat commits up to what the leader knows this node holds; past this node's
    /// last index (raft-rs: "to_commit out of range", a panic) it proves the store lost
    /// entries it had acknowledged.
    pub(super) fn admit_heartbeat(
        &mut self,
        from: NodeId,
        message: &RaftMessage,
    ) -> Result<(), &'static str> {
        let last_index = self.raw.raft.raft_log.last_index();
        if message.commit <= last_index {
            return Ok(());
        }
        if message.commit > self.identity.lost_through {
            if !self.identity.rejoin_required() {
                tracing::error!(
                    node_id = self.config.node_id,
                    leader = from,
                    leader_commit = message.commit,
                    last_index,
                    "{REJOIN_ADVICE}"
                );
            }
            self.identity.lost_through = message.commit;
            self.identity_changed = true;
        }
        Err("heartbeat commits past the last index: this store lost acknowledged entries")
    }

    /// An append must be contiguous from its anchor and must not rewrite what this node
    /// knows committed (raft-rs: "conflict with committed entry", a panic). Entries this node
    /// compacted away are not compared: raft-rs's `term` says 0 for them (not an error), and
    /// it does not look at them either (an append anchored below the commit index is answered
    /// with the commit index). A leader keeping entries behind its snapshot (the compaction
    /// lag) sends such appends to a follower whose acknowledgements it missed.
    pub(super) fn admit_append(&self, message: &RaftMessage) -> Result<(), &'static str> {
        let log = &self.raw.raft.raft_log;
        let first_index = log.first_index();
        for (offset, entry) in message.get_entries().iter().enumerate() {
            let expected = message.index.checked_add(1 + offset as u64);
            if expected != Some(entry.index) {
                return Err("entries are not contiguous from the anchor");
            }
            if entry.index <= log.committed
                && entry.index >= first_index
                && log.term(entry.index).is_ok_and(|term| term != entry.term)
            {
                return Err("rewrites a committed entry");
            }
        }
        Ok(())
    }

    /// A node whose store lost acknowledged entries never votes. A node whose log holds
    /// nothing past the bootstrap snapshot votes only in the cluster's first election (a
    /// candidate at the bootstrap index too): a candidate with more means the cluster has
    /// history this store does not — it was wiped, and its vote could elect a stale node and
    /// lose committed entries.
    pub(super) fn admit_vote_request(
        &mut self,
        from: NodeId,
        message: &RaftMessage,
    ) -> Result<(), &'static str> {
        let fresh = self.raw.raft.raft_log.last_index() <= BOOTSTRAP_INDEX;
        let refusal = if crate::mutations::enabled(crate::mutations::Mutation::WipedVoterVotes) {
            return Ok(());
        } else if self.identity.rejoin_required() {
            "this store lost acknowledged entries: no vote until re-added"
        } else if fresh && message.index > BOOTSTRAP_INDEX {
            "this store holds none of the cluster's history: no vote until re-added"
        } else {
            return Ok(());
        };
        if message.term > self.vote_refusals_logged_term {
            self.vote_refusals_logged_term = message.term;
            tracing::warn!(
                node_id = self.config.node_id,
                candidate = from,
                candidate_last_index = message.index,
                last_index = self.raw.raft.raft_log.last_index(),
                "vote refused: {refusal}. If this node's disk was lost or replaced: on the \
                 leader remove this node, add it back as a learner, then promote it once it \
                 has caught up"
            );
        }
        Err(refusal)
    }

    /// A member of the applied configuration (any role, joint halves included), or — on a
    /// node waiting to be added, whose configuration is empty — a peer it was told about.
    pub(super) fn is_member(&self, id: NodeId) -> bool {
        let members = &self.conf_state;
        let listed = members
            .voters
            .iter()
            .chain(&members.learners)
            .chain(&members.voters_outgoing)
            .chain(&members.learners_next)
            .any(|member| *member == id);
        let waiting_to_be_added = members.voters.is_empty() && members.learners.is_empty();
        listed || (waiting_to_be_added && self.peer_addresses.contains_key(&id))
    }
}

/// A snapshot from the leader must name a valid configuration before it is stepped: raft-rs
/// panics on a configuration it cannot restore. (Its body is checked before, by
/// `handle_snapshot`.)
fn admit_snapshot(snapshot: &Snapshot) -> Result<(), &'static str> {
    let metadata = snapshot.get_metadata();
    if metadata.index == 0 || metadata.term == 0 {
        return Err("snapshot without index or term");
    }
    let conf_state = metadata.get_conf_state();
    let mut seen = BTreeSet::new();
    let all = conf_state.voters.iter().chain(&conf_state.learners);
    if conf_state.voters.is_empty() || all.clone().any(|id| *id == 0 || !seen.insert(*id)) {
        return Err("snapshot with an invalid configuration");
    }
    if !conf_state.voters_outgoing.is_empty() || !conf_state.learners_next.is_empty() {
        // This driver only makes single-step changes (`Auto` leaves joint states at once),
        // and a snapshot is taken after apply: a joint configuration is not ours.
        return Err("snapshot in a joint configuration");
    }
    if !snapshot.data.is_empty() {
        // The bytes travel as a body beside the message (`PeerMessage::Snapshot`), checked
        // by `handle_snapshot`; inline data was moved there already.
        return Err("snapshot data inside the message");
    }
    Ok(())
}
