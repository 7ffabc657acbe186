//! Members known to hold the log: the leader's half of the defence against a voter whose disk
//! was lost.
//!
//! A voter that lost its store restarts empty (still configured `bootstrap = "new"`, or
//! `"join"`). While empty it refuses votes to candidates with history ([`super::admit`]), but
//! once a leader has fed it entries or a snapshot it holds data again and would vote — and if
//! that leader fails before the entries the wiped store had acknowledged are on a quorum
//! again, its vote can elect a stale node and replace committed entries. A leader that saw the
//! acknowledgements proves the loss with its heartbeat; a leader elected later did not see
//! them and cannot.
//!
//! So the acknowledgement itself is replicated: when the leader sees a member's match index
//! past the bootstrap, it proposes [`DriverEntry::StoreKnown`] for it. Every later leader has
//! that entry (a committed entry is in every later leader's log). An append answer from a
//! known member whose log ends at the bootstrap (or is empty) is then proof that the store was
//! lost: the leader drops the answer, so it never sends that member entries or a snapshot,
//! reports it in `status().stores_lost`, and the member — holding nothing — keeps refusing
//! votes. The runbook clears it: removing the member forgets the mark, and the new store is
//! marked once it acknowledges as a learner.
//!
//! An intact known store never answers that way: it persisted entries past the bootstrap that
//! match the committed ones, so a rejection hints at least index 2.
//!
//! Limit: a store wiped before its first `StoreKnown` committed (its first milliseconds as a
//! member) is not recognised; the vote refusal of an empty store still applies.

use super::*;

/// The replicated set of known stores, and the leader's bookkeeping around it.
#[derive(Debug, Default)]
pub(super) struct KnownStores {
    /// Replicated: applied from [`DriverEntry::StoreKnown`] entries, carried in snapshots.
    known: BTreeSet<NodeId>,
    /// On the leader: members proposed as known, with the term of the proposal (proposed
    /// again in a later term if the entry was lost with a leadership change).
    proposed: BTreeMap<NodeId, u64>,
    /// On the leader: known members that answered from an empty store, with the term in
    /// which that was logged (once per term).
    lost: BTreeMap<NodeId, u64>,
}

impl KnownStores {
    /// The set restored from a snapshot.
    pub(super) fn from_set(known: BTreeSet<NodeId>) -> Self {
        Self {
            known,
            ..Self::default()
        }
    }

    /// The replicated set (for snapshots).
    pub(super) fn set(&self) -> &BTreeSet<NodeId> {
        &self.known
    }

    /// Known members that answered from an empty store (on the leader).
    pub(super) fn lost(&self) -> Vec<NodeId> {
        self.lost.keys().copied().collect()
    }
}

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    /// On the leader: propose [`DriverEntry::StoreKnown`] for every member whose match index
    /// is past the bootstrap and is not known yet (once per term while it is in flight).
    pub(super) fn propose_known_stores(&mut self) {
        if !self.is_leader() {
            return;
        }
        let term = self.raw.raft.term;
        let known = &self.known_stores;
        let due: Vec<NodeId> = self
            .raw
            .raft
            .prs()
            .iter()
            .filter(|(id, progress)| {
                progress.matched > BOOTSTRAP_INDEX
                    && !known.known.contains(id)
                    && known.proposed.get(id) != Some(&term)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            match self
                .raw
                .propose(DriverEntry::StoreKnown(id).encode(), Vec::new())
            {
                Ok(()) => {
                    self.known_stores.proposed.insert(id, term);
                }
                Err(error) => {
                    // A transfer in progress or the uncommitted limit: the next poll tries.
                    tracing::debug!(node_id = self.config.node_id, member = id, %error,
                        "store-known entry not proposed yet");
                    return;
                }
            }
        }
    }

    /// Apply a committed driver entry. A member removed since the entry was proposed stays
    /// unknown (its next store is marked when it acknowledges).
    pub(super) fn apply_driver_entry(&mut self, entry: DriverEntry) {
        match entry {
            DriverEntry::StoreKnown(id) => {
                let conf_state = &self.conf_state;
                let member = conf_state.voters.contains(&id) || conf_state.learners.contains(&id);
                self.known_stores.proposed.remove(&id);
                if member {
                    self.known_stores.known.insert(id);
                }
            }
        }
    }

    /// A member was removed: its next store (the runbook's re-added learner) is a new one.
    pub(super) fn forget_known_store(&mut self, id: NodeId) {
        self.known_stores.known.remove(&id);
        self.known_stores.proposed.remove(&id);
        self.known_stores.lost.remove(&id);
    }

    /// Restore the set from a snapshot's envelope.
    pub(super) fn restore_known_stores(&mut self, known: BTreeSet<NodeId>) {
        self.known_stores = KnownStores::from_set(known);
    }

    /// An append answer must not acknowledge entries this node never had, and on the leader
    /// a known member answering from an empty store lost it: the answer is dropped, so the
    /// member is not fed until the runbook re-adds it.
    pub(super) fn admit_append_response(
        &mut self,
        from: NodeId,
        message: &RaftMessage,
    ) -> Result<(), &'static str> {
        if !message.reject {
            if message.index > self.raw.raft.raft_log.last_index() {
                return Err("acknowledges entries this node never sent");
            }
            return Ok(());
        }
        let empty = message.reject_hint <= BOOTSTRAP_INDEX;
        if !empty
            || !self.is_leader()
            || !self.known_stores.known.contains(&from)
            || crate::mutations::enabled(crate::mutations::Mutation::WipedVoterVotes)
        {
            return Ok(());
        }
        let term = self.raw.raft.term;
        if self.known_stores.lost.insert(from, term) != Some(term) {
            tracing::error!(
                node_id = self.config.node_id,
                member = from,
                "member {from} held the log and now answers from an empty store: its disk \
                 was lost or replaced. It is not sent the log and cannot vote. Replace it by \
                 the runbook: remove it, add it back as a learner, promote it once caught up"
            );
        }
        Err("a member known to hold the log answers from an empty store: not fed until re-added")
    }
}
