//! Proposals on their way to the leader: routing, `Forward`s (stamped with the leader's term)
//! and their replies, answers held until this node applied the entry, and the leader's side.

use super::*;

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    pub(super) fn handle_forward(
        &mut self,
        from: NodeId,
        request_id: u64,
        term: u64,
        payload: Vec<u8>,
    ) {
        let refuse = |core: &mut Self, error: RemoteError| {
            core.output.messages.push((
                from,
                PeerMessage::ForwardReply {
                    request_id,
                    index: 0,
                    result: Err(error),
                },
            ));
        };
        // Authenticated is not authorized: a removed member's certificate still chains to
        // the CA. Only members propose.
        if !self.is_member(from) {
            tracing::warn!(
                from,
                request_id,
                "forward from a node that is not a member dropped"
            );
            return;
        }
        if !self.is_leader() || self.raw.raft.lead_transferee.is_some() {
            let leader_hint = self
                .leader()
                .filter(|leader| *leader != self.config.node_id);
            refuse(self, RemoteError::NotLeader { leader_hint });
            return;
        }
        // Forwarded to this node in another term: queued while it was down or cut off, and
        // its forwarder has moved on (told its caller, or routes it again). Not proposed.
        let current_term = self.raw.raft.term;
        if term != current_term {
            tracing::debug!(
                from,
                request_id,
                term,
                current_term,
                "stale forward refused"
            );
            refuse(self, RemoteError::StaleTerm { term: current_term });
            return;
        }
        if payload.is_empty() || payload.len() > self.config.command_bytes_max {
            refuse(
                self,
                RemoteError::Rejected(format!("command of {} bytes refused", payload.len())),
            );
            return;
        }
        // A transport that delivered the same Forward twice must not get it proposed twice.
        // Only a bounded window is remembered, in memory: the transport contract is that a
        // Forward is delivered at most once (QUIC streams do not duplicate).
        if !self.recent_forwards.insert((from, request_id)) {
            tracing::debug!(from, request_id, "duplicate forwarded proposal ignored");
            return;
        }
        self.recent_forwards_order.push_back((from, request_id));
        if self.recent_forwards_order.len() > RECENT_FORWARDS_MAX
            && let Some(oldest) = self.recent_forwards_order.pop_front()
        {
            self.recent_forwards.remove(&oldest);
        }
        let origin = Origin::Remote { from, request_id };
        let deadline = self.tick + self.config.proposal_timeout_ticks;
        if let Err(error) = self.propose_on_leader(origin, payload, deadline) {
            refuse(self, RemoteError::Rejected(error.to_string()));
        }
    }

    pub(super) fn route_waiting(&mut self) {
        let leader = self.raw.raft.leader_id;
        if leader == 0 || self.waiting.is_empty() {
            return;
        }
        let node_id = self.config.node_id;
        let transferring = self.raw.raft.lead_transferee.is_some();
        let mut kept = VecDeque::new();
        while let Some(proposal) = self.waiting.pop_front() {
            if proposal.not_before > self.tick || (leader == node_id && transferring) {
                kept.push_back(proposal);
            } else if leader == node_id {
                let id = proposal.id;
                if let Err(error) =
                    self.propose_on_leader(Origin::Local(id), proposal.command, proposal.deadline)
                {
                    let error = match error {
                        // Past `uncommitted_bytes_max`: not appended, safe to retry later.
                        raft::Error::ProposalDropped => ProposeError::Overloaded,
                        other => ProposeError::Rejected(other.to_string()),
                    };
                    self.output.completions.push(Completion::Propose {
                        id,
                        result: Err(error),
                    });
                }
            } else {
                self.output.messages.push((
                    leader,
                    PeerMessage::Forward {
                        request_id: proposal.id,
                        term: self.raw.raft.term,
                        payload: proposal.command.clone(),
                    },
                ));
                self.forwarded_before.insert(proposal.id);
                let proposal = WaitingProposal {
                    forwarded_to: leader,
                    forwarded_term: self.raw.raft.term,
                    ..proposal
                };
                self.forwarded.insert(proposal.id, proposal);
            }
        }
        self.waiting = kept;
    }

    /// A proposal forwarded to a leader this node no longer follows (another node leads now,
    /// or the same node in a later term, possibly after a restart that forgot the proposal)
    /// gets no reply it can rely on: end it now with [`ProposeError::LeaderChanged`] instead
    /// of letting it wait for its deadline. Its outcome is unknown — the former leader may
    /// have replicated the entry, and the new leader may commit it — so it is not `Dropped`.
    /// While no leader is known the proposal keeps waiting: the former leader may come back
    /// in its term (a short partition) and answer.
    pub(super) fn end_forwards_to_former_leaders(&mut self) {
        let leader = self.raw.raft.leader_id;
        if leader == 0 || self.forwarded.is_empty() {
            return;
        }
        let term = self.raw.raft.term;
        let former: Vec<RequestId> = self
            .forwarded
            .iter()
            .filter(|(_, proposal)| {
                proposal.forwarded_to != leader || proposal.forwarded_term != term
            })
            .map(|(id, _)| *id)
            .collect();
        for id in former {
            if let Some(proposal) = self.forwarded.remove(&id) {
                tracing::debug!(
                    node_id = self.config.node_id,
                    request_id = id,
                    former_leader = proposal.forwarded_to,
                    former_term = proposal.forwarded_term,
                    leader,
                    term,
                    "forwarded proposal ended: leader changed"
                );
                self.output.completions.push(Completion::Propose {
                    id,
                    result: Err(ProposeError::LeaderChanged),
                });
            }
        }
    }

    pub(super) fn propose_on_leader(
        &mut self,
        origin: Origin,
        command: Vec<u8>,
        deadline: u64,
    ) -> Result<(), raft::Error> {
        let tag = match origin {
            Origin::Local(id) => EntryTag {
                origin: self.config.node_id,
                proposal: id,
            },
            Origin::Remote { from, request_id } => EntryTag {
                origin: from,
                proposal: request_id,
            },
        };
        self.raw.propose(tag.encode(), command)?;
        let index = self.raw.raft.raft_log.last_index();
        self.record_appended(
            index,
            Appended {
                term: self.raw.raft.term,
                tag,
                kind: AppendedKind::Command(origin),
                deadline,
            },
        );
        Ok(())
    }

    /// Answer forwarded proposals whose index this node has applied.
    pub(super) fn release_parked(&mut self) {
        while let Some(entry) = self.parked.first_entry() {
            if entry.key().0 > self.applied {
                break;
            }
            let ((_, id), parked) = entry.remove_entry();
            self.output.completions.push(Completion::Propose {
                id,
                result: Ok(parked.response),
            });
        }
    }

    /// The leader's answer to a proposal this node forwarded.
    pub(super) fn handle_forward_reply(
        &mut self,
        from: NodeId,
        request_id: u64,
        index: u64,
        result: Result<Vec<u8>, RemoteError>,
    ) {
        // Only the node it was forwarded to answers it.
        if self
            .forwarded
            .get(&request_id)
            .is_none_or(|proposal| proposal.forwarded_to != from)
        {
            return;
        }
        let Some(mut proposal) = self.forwarded.remove(&request_id) else {
            return;
        };
        let result = match result {
            Ok(response) if index > self.applied => {
                // Applied on the leader, not yet here: answer once this node has applied it
                // too, so the caller reads its own write here.
                let parked = ParkedReply {
                    response,
                    deadline: proposal.deadline,
                };
                self.parked.insert((index, request_id), parked);
                return;
            }
            Ok(response) => Ok(response),
            Err(RemoteError::NotLeader { .. } | RemoteError::StaleTerm { .. }) => {
                // Not proposed there: safe to route again once a leader is known, but not
                // before the next tick so two confused nodes cannot bounce it back and forth
                // at network speed.
                proposal.not_before = self.tick + 1;
                self.waiting.push_back(proposal);
                return;
            }
            Err(RemoteError::Dropped) => Err(ProposeError::Dropped),
            Err(RemoteError::Rejected(reason)) => Err(ProposeError::Rejected(reason)),
        };
        self.complete_proposal(request_id, result);
    }
}
