//! Membership: conf change proposals, their application (peer addresses, snapshots for new
//! members, a lost store re-added as a learner), and leadership transfers.

use super::*;

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    /// A membership change (leader only).
    pub fn handle_membership(&mut self, id: RequestId, change: MembershipChange) {
        if !self.is_leader() {
            self.output.completions.push(Completion::Membership {
                id,
                result: Err(MembershipError::NotLeader {
                    leader_hint: self.leader(),
                }),
            });
            return;
        }
        let (change_type, node, address) = match change {
            MembershipChange::AddVoter { id, address } => {
                (ConfChangeType::AddNode, id, Some(address))
            }
            MembershipChange::AddLearner { id, address } => {
                (ConfChangeType::AddLearnerNode, id, Some(address))
            }
            MembershipChange::PromoteLearner { id } => (ConfChangeType::AddNode, id, None),
            MembershipChange::Remove { id } => (ConfChangeType::RemoveNode, id, None),
        };
        let mut conf_change = codec::one_member_change(change_type, node);
        if let Some(address) = address {
            conf_change.context = codec::encode_address(&address).into();
        }
        let tag = EntryTag {
            origin: self.config.node_id,
            proposal: id,
        };
        match self.raw.propose_conf_change(tag.encode(), conf_change) {
            Ok(()) => {
                let index = self.raw.raft.raft_log.last_index();
                self.record_appended(
                    index,
                    Appended {
                        term: self.raw.raft.term,
                        tag,
                        kind: AppendedKind::Membership(id),
                        deadline: self.tick + self.config.proposal_timeout_ticks,
                    },
                );
            }
            Err(error) => self.output.completions.push(Completion::Membership {
                id,
                result: Err(MembershipError::Rejected(error.to_string())),
            }),
        }
    }

    /// Hand leadership to `target` (leader only); completes when `target` leads.
    pub fn handle_transfer_leader(&mut self, id: RequestId, target: NodeId) {
        if !self.is_leader() {
            self.output.completions.push(Completion::Membership {
                id,
                result: Err(MembershipError::NotLeader {
                    leader_hint: self.leader(),
                }),
            });
            return;
        }
        if target == self.config.node_id {
            self.output
                .completions
                .push(Completion::Membership { id, result: Ok(()) });
            return;
        }
        self.raw.transfer_leader(target);
        self.transfers.push(Transfer {
            id,
            target,
            deadline: self.tick + 2 * self.config.election_ticks as u64,
        });
    }

    pub(super) fn apply_conf_change(&mut self, entry: &Entry) -> Result<(), MembershipError> {
        let conf_change = if entry.get_entry_type() == EntryType::EntryConfChangeV2 {
            ConfChangeV2::parse_from_bytes(&entry.data)
        } else {
            // Never written by this driver; understood for logs from other tools.
            ConfChange::parse_from_bytes(&entry.data).map(|old| {
                let mut conf_change = codec::one_member_change(old.get_change_type(), old.node_id);
                conf_change.context = old.context;
                conf_change
            })
        };
        let conf_change = match conf_change {
            Ok(conf_change) => conf_change,
            Err(error) => {
                tracing::error!(index = entry.index, %error, "undecodable conf change skipped");
                return Err(MembershipError::Rejected(error.to_string()));
            }
        };
        match self.raw.apply_conf_change(&conf_change) {
            Ok(conf_state) => {
                let is_member = |conf_state: &ConfState, id: NodeId| {
                    conf_state.voters.contains(&id) || conf_state.learners.contains(&id)
                };
                if conf_state
                    .voters
                    .iter()
                    .chain(&conf_state.learners)
                    .any(|id| !is_member(&self.conf_state, *id))
                {
                    self.snapshot_for_new_member = true;
                }
                self.conf_state = conf_state;
                self.forget_former_members();
                self.note_readded(entry.index);
                if self.is_leader() && !self.conf_state.voters.contains(&self.config.node_id) {
                    self.step_down_removed = true;
                }
            }
            Err(error) => {
                tracing::warn!(index = entry.index, %error, "conf change refused");
                return Err(MembershipError::Rejected(error.to_string()));
            }
        }
        let address = codec::decode_address(&conf_change.context).ok().flatten();
        for change in conf_change.get_changes() {
            let id = change.node_id;
            match change.get_change_type() {
                ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                    if let Some(address) = &address {
                        self.peer_addresses.insert(id, address.clone());
                        if id != self.config.node_id {
                            self.output.peer_updates.push(PeerUpdate::Set {
                                id,
                                address: address.clone(),
                            });
                        }
                    }
                }
                ConfChangeType::RemoveNode => {
                    self.forget_known_store(id);
                    self.peer_addresses.remove(&id);
                    if id != self.config.node_id {
                        self.output.peer_updates.push(PeerUpdate::Remove(id));
                    }
                }
            }
        }
        tracing::info!(node_id = self.config.node_id, index = entry.index, voters = ?self.conf_state.voters, learners = ?self.conf_state.learners, "membership changed");
        Ok(())
    }

    /// A store that lost acknowledged entries may vote again once a membership change made
    /// after the loss (at `index`) lists this node as a learner: the runbook's remove,
    /// re-add as a learner, promote. Replaying the node's original addition does not count.
    pub(super) fn note_readded(&mut self, index: u64) {
        let node_id = self.config.node_id;
        if self.identity.rejoin_required()
            && index > self.identity.lost_through
            && self.conf_state.learners.contains(&node_id)
        {
            tracing::info!(
                node_id,
                index,
                "re-added as a learner: the store may vote again once promoted"
            );
            self.identity.lost_through = 0;
            self.identity_changed = true;
        }
    }

    pub(super) fn finish_transfers(&mut self) {
        let leader = self.raw.raft.leader_id;
        let mut kept = Vec::with_capacity(self.transfers.len());
        for transfer in self.transfers.drain(..) {
            if transfer.target == leader {
                self.output.completions.push(Completion::Membership {
                    id: transfer.id,
                    result: Ok(()),
                });
            } else {
                kept.push(transfer);
            }
        }
        self.transfers = kept;
    }
}
