//! What the core tells about itself: accessors, the operator's status and the leader's
//! progress report for the simulation.

use super::*;

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.config.node_id
    }

    /// The first request id of this incarnation: ids from here on never repeat an id of an
    /// earlier start on the same store (the counter is in the store's identity).
    pub fn first_request_id(&self) -> RequestId {
        self.identity.incarnation << INCARNATION_SHIFT
    }

    /// The state machine (for checks in tests and the simulation).
    pub fn state_machine(&self) -> &M {
        &self.state_machine
    }

    /// True once a leader proved this store lost entries it had acknowledged (a wiped or
    /// restored disk): it will not vote until re-added.
    pub fn rejoin_required(&self) -> bool {
        self.identity.rejoin_required()
    }

    /// The state machine, mutable (the simulation drains what its recording machine saw).
    /// Changing the replicated state through it breaks replication: tests only.
    pub fn state_machine_mut(&mut self) -> &mut M {
        &mut self.state_machine
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        self.raw.store()
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<NodeId> {
        let leader = self.raw.raft.leader_id;
        (leader != 0).then_some(leader)
    }

    /// True when this node is the leader.
    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    /// The current term.
    pub fn term(&self) -> u64 {
        self.raw.raft.term
    }

    /// The commit index.
    pub fn commit_index(&self) -> u64 {
        self.raw.raft.raft_log.committed
    }

    /// The applied index.
    pub fn applied_index(&self) -> u64 {
        self.applied
    }

    /// Requests still waiting for a completion (for tests: nothing may be forgotten).
    pub fn pending_requests(&self) -> usize {
        let appended_local = self
            .appended
            .values()
            .filter(|appended| {
                !matches!(appended.kind, AppendedKind::Command(Origin::Remote { .. }))
            })
            .count();
        self.waiting.len()
            + self.forwarded.len()
            + self.parked.len()
            + appended_local
            + self.new_reads.len()
            + self
                .read_batches
                .values()
                .map(|batch| batch.ids.len())
                .sum::<usize>()
            + self.transfers.len()
    }

    /// The leader's view of each follower's replication, for the simulation's reports.
    pub(crate) fn progress_report(&self) -> String {
        let mut report: Vec<String> = self
            .raw
            .raft
            .prs()
            .iter()
            .map(|(id, progress)| {
                format!(
                    "{id}: {:?} matched {} next {} paused {} pending snapshot {}",
                    progress.state,
                    progress.matched,
                    progress.next_idx,
                    progress.is_paused(),
                    progress.pending_snapshot
                )
            })
            .collect();
        report.sort();
        format!("{report:?} snapshot sends {:?}", self.snapshot_sends)
    }

    /// The node's status.
    pub fn status(&self) -> ClusterStatus {
        let raft = &self.raw.raft;
        let role = match raft.state {
            StateRole::Follower => Role::Follower,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Candidate => Role::Candidate,
            StateRole::Leader => Role::Leader,
        };
        let last_index = raft.raft_log.last_index();
        let is_leader = raft.state == StateRole::Leader;
        let member = |id: NodeId, kind: MemberKind| {
            let progress = if is_leader { raft.prs().get(id) } else { None };
            MemberStatus {
                id,
                kind,
                address: self.peer_addresses.get(&id).cloned(),
                match_index: progress.map(|progress| progress.matched),
                lag: progress.map(|progress| last_index.saturating_sub(progress.matched)),
            }
        };
        let mut members: Vec<MemberStatus> = self
            .conf_state
            .voters
            .iter()
            .map(|id| member(*id, MemberKind::Voter))
            .chain(
                self.conf_state
                    .learners
                    .iter()
                    .map(|id| member(*id, MemberKind::Learner)),
            )
            .collect();
        members.sort_by_key(|member| member.id);
        ClusterStatus {
            node_id: self.config.node_id,
            role,
            leader: self.leader(),
            term: raft.term,
            commit_index: raft.raft_log.committed,
            applied_index: self.applied,
            first_index: self.raw.store().first_index().unwrap_or(0),
            last_index,
            members,
            snapshot_index: self.snapshot_index,
            snapshots_created: self.counters.snapshots_created,
            snapshots_installed: self.counters.snapshots_installed,
            compactions: self.counters.compactions,
            entries_compacted: self.counters.entries_compacted,
            snapshots_refused: self.counters.snapshots_refused,
            rejoin_required: self.identity.rejoin_required(),
            stores_lost: if self.is_leader() {
                self.known_stores.lost()
            } else {
                Vec::new()
            },
            quorum_contact_ticks: self.quorum_contact_ticks(),
            fatal_error: None,
        }
    }
}
