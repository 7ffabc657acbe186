//! The sans-IO Raft driver: raft-rs's `RawNode`, the state machine, and the bookkeeping that
//! turns client requests into responses. It has no clock, no threads and no sockets: time is
//! ticks, inputs arrive through `handle_*` methods, and [`RaftCore::poll`] runs the Ready loop
//! and hands back what to send and whom to answer. The runtime ([`crate::runtime`]) and the
//! deterministic simulation (tests/t50_simulation.rs) drive the same code.
//!
//! ```text
//!  handle_tick ───────┐
//!  handle_message ────┤                 ┌─► storage.persist (before anything is sent)
//!  handle_propose ────┼─► RawNode ─poll─┼─► CoreOutput.messages     (to the transport)
//!  handle_read ───────┤   + pending     ├─► state_machine.apply     (committed entries)
//!  handle_membership ─┘     requests    └─► CoreOutput.completions  (to the callers)
//! ```
//!
//! Every request ends in exactly one completion — a response, or an error when a deadline (in
//! ticks) passes, leadership changes under it, or the core shuts down — never silence.
//! Proposals are tracked by (term, index) plus a tag in the entry's context; when a different
//! entry is *committed* at that index the proposal failed ([`ProposeError::Dropped`]). A
//! different entry merely appended there is not enough: the original entry may still be
//! elected back by a later leader and commit, so the proposal waits until its index commits
//! (or its deadline passes: [`ProposeError::TimedOut`], outcome unknown). A proposal forwarded
//! to a leader that another leader (or a later term) replaced ends as soon as this node knows
//! it ([`ProposeError::LeaderChanged`], outcome unknown) instead of at its deadline.
//!
//! A `Forward` names the term of the leader it is sent to; a leader in another term refuses
//! it unproposed (a forward queued for a leader that died and came back cannot apply long
//! after its caller was answered), and within its term the leader ignores a duplicate. The
//! leader answers with the index it applied the command at, and the forwarding node answers
//! its caller once it applied that index too: read-your-writes holds on the proposer.
//!
//! Peer input is checked before raft-rs sees it ([`RaftCore::handle_message`]): only members
//! are heard, peers cannot propose or move leadership through raft messages, and what raft-rs
//! would panic on is dropped. A store that lost acknowledged entries (wiped disk) is kept from
//! voting until it is re-added; see the crate's API.md.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState,
    Entry, EntryType, Message as RaftMessage, MessageType, Snapshot,
};
use raft::{ProgressState, RawNode, ReadState, SnapshotStatus, StateRole};

use crate::codec::{self, EntryTag, ReadContext, SnapshotEnvelope, StoreIdentity};
use crate::config::{Bootstrap, CoreConfig};
use crate::error::{ClusterError, MembershipError, ProposeError, ReadError};
use crate::state_machine::StateMachine;
use crate::status::{ClusterStatus, MemberKind, MemberStatus, Role};
use crate::storage::{PersistRequest, Storage};
use crate::transport::{NodeId, PeerMessage, RemoteError};

/// Identifies a request made to this node, chosen by the caller of the core. Ids must never
/// repeat on a node, not even across restarts: they travel in forwarded proposals, entry tags
/// and read contexts, where a late message from a previous incarnation could otherwise be
/// taken for a new request's answer. The runtime starts them from
/// [`RaftCore::first_request_id`], which counts starts in the store.
pub type RequestId = u64;

/// Ready rounds per poll: a Ready can produce another (commit advanced by the light ready);
/// bounded so one poll cannot spin.
const READY_ROUNDS_MAX: usize = 8;

/// Forwarded proposals remembered by the leader to ignore a duplicate delivery of the same
/// `Forward` (bounded: the oldest are forgotten first).
const RECENT_FORWARDS_MAX: usize = 65_536;

/// Request ids of one incarnation (one start of a node on its store) fit below this; the
/// runtime numbers them from `incarnation << INCARNATION_SHIFT`.
pub const INCARNATION_SHIFT: u32 = 40;
/// Incarnations before the id space would wrap.
const INCARNATIONS_MAX: u64 = 1 << (64 - INCARNATION_SHIFT);

/// The bootstrap snapshot's index and term: a node added later has an empty log, so the
/// leader must send it a snapshot (which carries the membership) instead of entries from 1.
pub const BOOTSTRAP_INDEX: u64 = 1;

/// A membership change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// Add a voting member.
    AddVoter {
        /// Its id.
        id: NodeId,
        /// Its transport address.
        address: String,
    },
    /// Add a non-voting member.
    AddLearner {
        /// Its id.
        id: NodeId,
        /// Its transport address.
        address: String,
    },
    /// Turn a learner into a voter.
    PromoteLearner {
        /// Its id.
        id: NodeId,
    },
    /// Remove a member (voter or learner).
    Remove {
        /// Its id.
        id: NodeId,
    },
}

/// The end of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Completion {
    /// A proposal's outcome: the state machine's response, or why there is none.
    Propose {
        /// The request.
        id: RequestId,
        /// The outcome.
        result: Result<Vec<u8>, ProposeError>,
    },
    /// A read's outcome: the state machine has applied at least this index.
    Read {
        /// The request.
        id: RequestId,
        /// The outcome.
        result: Result<u64, ReadError>,
    },
    /// A membership change's or leadership transfer's outcome.
    Membership {
        /// The request.
        id: RequestId,
        /// The outcome.
        result: Result<(), MembershipError>,
    },
}

/// A change of the transport's peer table, learned from membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerUpdate {
    /// A peer's address became known.
    Set {
        /// The peer.
        id: NodeId,
        /// Its address.
        address: String,
    },
    /// A peer left the cluster.
    Remove(NodeId),
}

/// What one poll produced.
#[derive(Debug, Default)]
pub struct CoreOutput {
    /// Messages to send, in order, already persisted locally.
    pub messages: Vec<(NodeId, PeerMessage)>,
    /// Requests that ended.
    pub completions: Vec<Completion>,
    /// Transport peer table changes.
    pub peer_updates: Vec<PeerUpdate>,
}

/// The initial members, for bootstrapping an empty store, and what to do with one.
#[derive(Debug, Clone, Default)]
pub struct InitialMembers {
    /// The cluster's name (checked against the store's identity).
    pub cluster_id: String,
    /// Bootstrap an empty store as a new cluster, or wait to be added.
    pub bootstrap: Bootstrap,
    /// Voters and their addresses.
    pub voters: Vec<(NodeId, String)>,
    /// Learners and their addresses.
    pub learners: Vec<(NodeId, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Local(RequestId),
    Remote { from: NodeId, request_id: u64 },
}

#[derive(Debug)]
struct WaitingProposal {
    id: RequestId,
    command: Vec<u8>,
    deadline: u64,
    not_before: u64,
    /// The leader and term it was forwarded to (0, 0 while it waits here).
    forwarded_to: NodeId,
    forwarded_term: u64,
}

/// A forwarded proposal the leader answered, waiting for this node to apply its index.
#[derive(Debug)]
struct ParkedReply {
    response: Vec<u8>,
    deadline: u64,
}

#[derive(Debug, Clone, Copy)]
enum AppendedKind {
    Command(Origin),
    Membership(RequestId),
}

#[derive(Debug)]
struct Appended {
    term: u64,
    tag: EntryTag,
    kind: AppendedKind,
    deadline: u64,
}

#[derive(Debug)]
struct ReadBatch {
    ids: Vec<RequestId>,
    deadline: u64,
    next_attempt: u64,
    index: Option<u64>,
}

#[derive(Debug)]
struct Transfer {
    id: RequestId,
    target: NodeId,
    deadline: u64,
}

/// Counters for the status.
#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    snapshots_created: u64,
    snapshots_installed: u64,
    compactions: u64,
    entries_compacted: u64,
}

/// The sans-IO driver; see the module documentation.
pub struct RaftCore<S: Storage, M: StateMachine> {
    config: CoreConfig,
    raw: RawNode<S>,
    state_machine: M,
    tick: u64,
    waiting: VecDeque<WaitingProposal>,
    forwarded: BTreeMap<RequestId, WaitingProposal>,
    /// Answered by the leader, keyed by (index, request): released once applied here.
    parked: BTreeMap<(u64, RequestId), ParkedReply>,
    appended: BTreeMap<u64, Appended>,
    new_reads: Vec<RequestId>,
    read_batches: BTreeMap<u64, ReadBatch>,
    transfers: Vec<Transfer>,
    snapshot_sent_at: BTreeMap<NodeId, u64>,
    recent_forwards: BTreeSet<(NodeId, u64)>,
    recent_forwards_order: VecDeque<(NodeId, u64)>,
    peer_addresses: BTreeMap<NodeId, String>,
    conf_state: ConfState,
    applied: u64,
    snapshot_index: u64,
    /// A member was added since the latest snapshot: take one now, whatever the threshold.
    /// raft-rs refuses to restore a snapshot whose conf state does not list the receiving
    /// node, so until a snapshot taken after the addition exists, a new node (empty log)
    /// cannot be caught up at all — with a large threshold and little traffic, for hours.
    snapshot_for_new_member: bool,
    /// The store's identity; `lost_through` is set once a leader proved this store lost
    /// entries it had acknowledged.
    identity: StoreIdentity,
    /// `identity` changed and must be persisted on the next poll.
    identity_changed: bool,
    /// The last term in which a refused vote was logged (one warning per term, not per
    /// message).
    vote_refusals_logged_term: u64,
    leader_seen: u64,
    counters: Counters,
    output: CoreOutput,
}

impl<S: Storage, M: StateMachine> std::fmt::Debug for RaftCore<S, M> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RaftCore")
            .field("node_id", &self.config.node_id)
            .field("tick", &self.tick)
            .field("applied", &self.applied)
            .finish_non_exhaustive()
    }
}

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    /// Open the core on `storage`: check the store's identity, bootstrap an empty store if
    /// told to start a new cluster, restore the state machine from the latest snapshot, and
    /// let raft-rs replay the entries after it (they come back as committed entries on the
    /// first polls).
    pub fn new(
        config: CoreConfig,
        mut storage: S,
        mut state_machine: M,
        initial: &InitialMembers,
    ) -> Result<Self, ClusterError> {
        let node_id = config.node_id;
        let mut peer_addresses: BTreeMap<NodeId, String> = initial
            .voters
            .iter()
            .chain(&initial.learners)
            .map(|(id, address)| (*id, address.clone()))
            .collect();
        let identity = open_store(&mut storage, &mut state_machine, node_id, initial)?;
        let snapshot = storage.latest_snapshot();
        let metadata = snapshot.get_metadata();
        let snapshot_index = metadata.index;
        let conf_state = metadata.get_conf_state().clone();
        if snapshot_index > 0 {
            let envelope = SnapshotEnvelope::decode(snapshot.get_data())?;
            state_machine.restore(&envelope.state)?;
            peer_addresses.extend(envelope.peer_addresses);
        }
        let raft_config = raft::Config {
            id: node_id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            min_election_tick: config.election_ticks_min,
            max_election_tick: config.election_ticks_max,
            applied: snapshot_index,
            max_size_per_msg: config.message_bytes_max,
            max_inflight_msgs: config.inflight_messages_max,
            check_quorum: true,
            pre_vote: true,
            // One append message carries every entry ready for a follower.
            batch_append: true,
            // Bounded proposals in flight: past it raft-rs drops proposals (`Overloaded`).
            max_uncommitted_size: config.uncommitted_bytes_max,
            read_only_option: raft::ReadOnlyOption::Safe,
            ..raft::Config::default()
        };
        raft_config.validate()?;
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let raw = RawNode::new(&raft_config, storage, &logger)?;
        let mut output = CoreOutput::default();
        for (id, address) in &peer_addresses {
            if *id != node_id {
                output.peer_updates.push(PeerUpdate::Set {
                    id: *id,
                    address: address.clone(),
                });
            }
        }
        Ok(Self {
            config,
            raw,
            state_machine,
            tick: 0,
            waiting: VecDeque::new(),
            forwarded: BTreeMap::new(),
            parked: BTreeMap::new(),
            appended: BTreeMap::new(),
            new_reads: Vec::new(),
            read_batches: BTreeMap::new(),
            transfers: Vec::new(),
            snapshot_sent_at: BTreeMap::new(),
            recent_forwards: BTreeSet::new(),
            recent_forwards_order: VecDeque::new(),
            peer_addresses,
            conf_state,
            applied: snapshot_index,
            snapshot_index,
            snapshot_for_new_member: false,
            identity,
            identity_changed: false,
            vote_refusals_logged_term: 0,
            leader_seen: 0,
            counters: Counters::default(),
            output,
        })
    }

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

    /// One tick of logical time: raft-rs timers, request deadlines, read retries.
    pub fn handle_tick(&mut self) {
        self.tick += 1;
        self.raw.tick();
        let now = self.tick;

        let mut kept = VecDeque::with_capacity(self.waiting.len());
        for proposal in self.waiting.drain(..) {
            if proposal.deadline <= now {
                self.output.completions.push(Completion::Propose {
                    id: proposal.id,
                    result: Err(ProposeError::NoLeader),
                });
            } else {
                kept.push_back(proposal);
            }
        }
        self.waiting = kept;

        // Committed on the leader but this node is too far behind to apply it by the
        // deadline: the caller still learns it committed (not a timeout that invites a
        // retry), without the read-your-writes guarantee.
        let late: Vec<(u64, RequestId)> = self
            .parked
            .iter()
            .filter(|(_, parked)| parked.deadline <= now)
            .map(|(key, _)| *key)
            .collect();
        for key in late {
            if let Some(parked) = self.parked.remove(&key) {
                tracing::debug!(request_id = key.1, index = key.0, "answered before local apply");
                self.output.completions.push(Completion::Propose {
                    id: key.1,
                    result: Ok(parked.response),
                });
            }
        }

        let expired: Vec<RequestId> = self
            .forwarded
            .iter()
            .filter(|(_, proposal)| proposal.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.forwarded.remove(&id);
            self.output.completions.push(Completion::Propose {
                id,
                result: Err(ProposeError::TimedOut),
            });
        }

        let expired: Vec<u64> = self
            .appended
            .iter()
            .filter(|(_, appended)| appended.deadline <= now)
            .map(|(index, _)| *index)
            .collect();
        for index in expired {
            if let Some(appended) = self.appended.remove(&index) {
                self.fail_appended(appended.kind, Failure::TimedOut);
            }
        }

        let expired: Vec<u64> = self
            .read_batches
            .iter()
            .filter(|(_, batch)| batch.deadline <= now)
            .map(|(sequence, _)| *sequence)
            .collect();
        for sequence in expired {
            if let Some(batch) = self.read_batches.remove(&sequence) {
                for id in batch.ids {
                    self.output.completions.push(Completion::Read {
                        id,
                        result: Err(ReadError::TimedOut),
                    });
                }
            }
        }
        // raft-rs drops a read index silently (no leader yet, or a leader that has not
        // committed in its term): ask again until the deadline.
        let node_id = self.config.node_id;
        let retry = self.config.read_retry_ticks;
        let mut retries = Vec::new();
        for (sequence, batch) in &mut self.read_batches {
            if batch.index.is_none() && batch.next_attempt <= now {
                batch.next_attempt = now + retry;
                retries.push(*sequence);
            }
        }
        for sequence in retries {
            self.raw.read_index(
                ReadContext {
                    node: node_id,
                    sequence,
                }
                .encode(),
            );
        }

        let mut kept = Vec::with_capacity(self.transfers.len());
        for transfer in self.transfers.drain(..) {
            if transfer.deadline <= now {
                self.output.completions.push(Completion::Membership {
                    id: transfer.id,
                    result: Err(MembershipError::TimedOut),
                });
            } else {
                kept.push(transfer);
            }
        }
        self.transfers = kept;

        // A snapshot lost on the way leaves the follower's progress paused in the Snapshot
        // state forever; after two election timeouts without news, report it failed so
        // raft-rs probes again (and sends a new snapshot if needed).
        let snapshot_timeout = 2 * self.config.election_ticks as u64;
        let stale: Vec<NodeId> = self
            .snapshot_sent_at
            .iter()
            .filter(|(_, sent)| **sent + snapshot_timeout <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            self.snapshot_sent_at.remove(&id);
            let still_pending = self
                .raw
                .raft
                .prs()
                .get(id)
                .is_some_and(|progress| progress.state == ProgressState::Snapshot);
            if still_pending {
                self.raw.report_snapshot(id, SnapshotStatus::Failure);
            }
        }
    }

    /// A message from an authenticated peer.
    pub fn handle_message(&mut self, from: NodeId, message: PeerMessage) {
        match message {
            PeerMessage::Raft(message) => {
                if let Err(reason) = self.admit(from, &message) {
                    tracing::debug!(
                        node_id = self.config.node_id,
                        from,
                        message_type = ?message.get_msg_type(),
                        reason,
                        "raft message dropped"
                    );
                    return;
                }
                if let Err(error) = self.raw.step(*message) {
                    tracing::debug!(from, %error, "raft message refused");
                }
            }
            PeerMessage::Forward {
                request_id,
                term,
                payload,
            } => self.handle_forward(from, request_id, term, payload),
            PeerMessage::ForwardReply {
                request_id,
                index,
                result,
            } => {
                let Some(mut proposal) = self.forwarded.remove(&request_id) else {
                    return;
                };
                let result = match result {
                    Ok(response) if index > self.applied => {
                        // Applied on the leader, not yet here: answer once this node has
                        // applied it too, so the caller reads its own write here.
                        self.parked.insert(
                            (index, request_id),
                            ParkedReply {
                                response,
                                deadline: proposal.deadline,
                            },
                        );
                        return;
                    }
                    Ok(response) => Ok(response),
                    Err(RemoteError::NotLeader { .. } | RemoteError::StaleTerm { .. }) => {
                        // Not proposed there: safe to route again once a leader is known,
                        // but not before the next tick so two confused nodes cannot bounce
                        // it back and forth at network speed.
                        proposal.not_before = self.tick + 1;
                        self.waiting.push_back(proposal);
                        return;
                    }
                    Err(RemoteError::Dropped) => Err(ProposeError::Dropped),
                    Err(RemoteError::Rejected(reason)) => Err(ProposeError::Rejected(reason)),
                };
                self.output.completions.push(Completion::Propose {
                    id: request_id,
                    result,
                });
            }
        }
    }

    /// The transport could not queue a message for `to`.
    pub fn handle_send_failure(&mut self, to: NodeId, message_type: MessageType) {
        self.raw.report_unreachable(to);
        if message_type == MessageType::MsgSnapshot {
            self.snapshot_sent_at.remove(&to);
            self.raw.report_snapshot(to, SnapshotStatus::Failure);
        }
    }

    /// A client proposal. It is routed on the next poll: proposed here if this node leads,
    /// forwarded to the leader otherwise, kept until a leader is known or the deadline passes.
    pub fn handle_propose(&mut self, id: RequestId, command: Vec<u8>) {
        if command.is_empty() {
            self.output.completions.push(Completion::Propose {
                id,
                result: Err(ProposeError::Rejected("empty command".to_owned())),
            });
            return;
        }
        if command.len() > self.config.command_bytes_max {
            self.output.completions.push(Completion::Propose {
                id,
                result: Err(ProposeError::Rejected(format!(
                    "command of {} bytes exceeds the {}-byte limit",
                    command.len(),
                    self.config.command_bytes_max
                ))),
            });
            return;
        }
        self.waiting.push_back(WaitingProposal {
            id,
            command,
            deadline: self.tick + self.config.proposal_timeout_ticks,
            not_before: 0,
            forwarded_to: 0,
            forwarded_term: 0,
        });
    }

    /// A linearizable read: completes with an index once the state machine has applied it.
    /// Reads arriving before the same poll share one ReadIndex round.
    pub fn handle_read(&mut self, id: RequestId) {
        self.new_reads.push(id);
    }

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
        let mut single = ConfChangeSingle::default();
        single.set_change_type(change_type);
        single.node_id = node;
        let mut conf_change = ConfChangeV2::default();
        conf_change.set_transition(ConfChangeTransition::Auto);
        conf_change.mut_changes().push(single);
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
                self.appended.insert(
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

    /// Fail every pending request with `ShuttingDown` (the driver is stopping).
    pub fn handle_shutdown(&mut self) -> CoreOutput {
        for ((_, id), parked) in std::mem::take(&mut self.parked) {
            // Committed: say so, even though it will not be applied here.
            self.output.completions.push(Completion::Propose {
                id,
                result: Ok(parked.response),
            });
        }
        for proposal in self
            .waiting
            .drain(..)
            .chain(std::mem::take(&mut self.forwarded).into_values())
        {
            self.output.completions.push(Completion::Propose {
                id: proposal.id,
                result: Err(ProposeError::ShuttingDown),
            });
        }
        for (_, appended) in std::mem::take(&mut self.appended) {
            self.fail_appended(appended.kind, Failure::ShuttingDown);
        }
        let read_ids = self.new_reads.drain(..).chain(
            std::mem::take(&mut self.read_batches)
                .into_values()
                .flat_map(|b| b.ids),
        );
        let completions: Vec<Completion> = read_ids
            .map(|id| Completion::Read {
                id,
                result: Err(ReadError::ShuttingDown),
            })
            .collect();
        self.output.completions.extend(completions);
        for transfer in self.transfers.drain(..) {
            self.output.completions.push(Completion::Membership {
                id: transfer.id,
                result: Err(MembershipError::ShuttingDown),
            });
        }
        std::mem::take(&mut self.output)
    }

    /// Route waiting proposals, start read rounds, run the Ready loop (persist, send, apply,
    /// advance), finish reads and transfers, snapshot if due. Returns what to send and whom to
    /// answer. An error is fatal: storage or state machine failed.
    pub fn poll(&mut self) -> Result<CoreOutput, ClusterError> {
        self.poll_sending(None)
    }

    /// [`Self::poll`], handing the messages raft-rs allows out before the local write (the
    /// leader's appends and heartbeats: Raft thesis §10.2.1) to `send_early` before the
    /// fsync, so the followers write in parallel with the leader. `send_early` returns false
    /// when the message could not be queued (reported to raft-rs after the Ready).
    pub fn poll_sending(
        &mut self,
        mut send_early: Option<&mut dyn FnMut(NodeId, PeerMessage) -> bool>,
    ) -> Result<CoreOutput, ClusterError> {
        self.route_waiting();
        if let Some(&sequence) = self.new_reads.first() {
            // The batch is named after its first request id: ids never repeat, not even
            // across restarts, so a late answer to a previous incarnation's read cannot be
            // taken for this one's.
            self.read_batches.insert(
                sequence,
                ReadBatch {
                    ids: std::mem::take(&mut self.new_reads),
                    deadline: self.tick + self.config.read_timeout_ticks,
                    next_attempt: self.tick + self.config.read_retry_ticks,
                    index: None,
                },
            );
            let context = ReadContext {
                node: self.config.node_id,
                sequence,
            };
            self.raw.read_index(context.encode());
        }
        let mut rounds = 0;
        let mut unsent = Vec::new();
        while self.raw.has_ready() && rounds < READY_ROUNDS_MAX {
            self.handle_ready(&mut send_early, &mut unsent)?;
            rounds += 1;
        }
        for (to, message_type) in unsent {
            self.handle_send_failure(to, message_type);
        }
        if self.identity_changed {
            self.raw.mut_store().set_identity(&self.identity)?;
            self.identity_changed = false;
        }
        self.release_parked();
        self.finish_reads();
        self.finish_transfers();
        self.end_forwards_to_former_leaders();
        self.maybe_snapshot()?;
        let leader = self.raw.raft.leader_id;
        if leader != self.leader_seen {
            tracing::info!(
                node_id = self.config.node_id,
                leader,
                term = self.raw.raft.term,
                "leader changed"
            );
            self.leader_seen = leader;
        }
        Ok(std::mem::take(&mut self.output))
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
            rejoin_required: self.identity.rejoin_required(),
            fatal_error: None,
        }
    }

    /// Whether a raft message from an authenticated peer may be stepped: it must come from
    /// a member (a node with an empty configuration, waiting to be added, hears from the
    /// peers it was told about), be of a kind peers send, and hold nothing raft-rs would
    /// `panic!` on. Also where a store that lost acknowledged entries is detected and kept
    /// from voting. Never panics; a refusal is only dropped (and counted in the log).
    fn admit(&mut self, from: NodeId, message: &RaftMessage) -> Result<(), &'static str> {
        if message.from != from {
            return Err("forged sender");
        }
        if message.to != self.config.node_id {
            return Err("addressed to another node");
        }
        let members = &self.conf_state;
        let is_member = members
            .voters
            .iter()
            .chain(&members.learners)
            .chain(&members.voters_outgoing)
            .chain(&members.learners_next)
            .any(|id| *id == from);
        let waiting_to_be_added = members.voters.is_empty() && members.learners.is_empty();
        if !is_member && !(waiting_to_be_added && self.peer_addresses.contains_key(&from)) {
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
            MessageType::MsgAppendResponse
                if !message.reject && message.index > self.raw.raft.raft_log.last_index() =>
            {
                Err("acknowledges entries this node never sent")
            }
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
    fn admit_heartbeat(&mut self, from: NodeId, message: &RaftMessage) -> Result<(), &'static str> {
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
    /// knows committed (raft-rs: "conflict with committed entry", a panic).
    fn admit_append(&self, message: &RaftMessage) -> Result<(), &'static str> {
        let log = &self.raw.raft.raft_log;
        for (offset, entry) in message.get_entries().iter().enumerate() {
            let expected = message.index.checked_add(1 + offset as u64);
            if expected != Some(entry.index) {
                return Err("entries are not contiguous from the anchor");
            }
            if entry.index <= log.committed
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
    fn admit_vote_request(
        &mut self,
        from: NodeId,
        message: &RaftMessage,
    ) -> Result<(), &'static str> {
        let fresh = self.raw.raft.raft_log.last_index() <= BOOTSTRAP_INDEX;
        let refusal = if self.identity.rejoin_required() {
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

    fn handle_forward(&mut self, from: NodeId, request_id: u64, term: u64, payload: Vec<u8>) {
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
            tracing::debug!(from, request_id, term, current_term, "stale forward refused");
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

    fn route_waiting(&mut self) {
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
    fn end_forwards_to_former_leaders(&mut self) {
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

    fn propose_on_leader(
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
        self.appended.insert(
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

    fn handle_ready(
        &mut self,
        send_early: &mut Option<&mut dyn FnMut(NodeId, PeerMessage) -> bool>,
        unsent: &mut Vec<(NodeId, MessageType)>,
    ) -> Result<(), ClusterError> {
        let mut ready = self.raw.ready();

        // 1. What may leave before the local write (a leader's appends), then persist:
        // nothing else leaves this node before its own log and vote are durable.
        let early = ready.take_messages();
        match send_early {
            Some(send) => {
                for message in early {
                    let message_type = message.get_msg_type();
                    if let Some((to, message)) = self.outgoing(message)
                        && !send(to, message)
                    {
                        unsent.push((to, message_type));
                    }
                }
            }
            None => self.queue_raft_messages(early),
        }
        let snapshot = (!ready.snapshot().is_empty()).then(|| ready.snapshot().clone());
        self.raw.mut_store().persist(PersistRequest {
            snapshot: snapshot.as_ref(),
            entries: ready.entries(),
            hard_state: ready.hs(),
            sync: ready.must_sync(),
        })?;
        if let Some(snapshot) = &snapshot {
            self.install_snapshot(snapshot)?;
        }

        // 2. Send what needed the write.
        let messages = ready.take_persisted_messages();
        self.queue_raft_messages(messages);

        // 3. Apply.
        let committed = ready.take_committed_entries();
        self.apply_entries(committed)?;
        for read_state in ready.take_read_states() {
            self.handle_read_state(read_state);
        }

        // 4. Advance, then the light ready.
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        let messages = light.take_messages();
        self.queue_raft_messages(messages);
        let committed = light.take_committed_entries();
        self.apply_entries(committed)?;
        self.raw.advance_apply();
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), ClusterError> {
        let metadata = snapshot.get_metadata();
        let envelope = SnapshotEnvelope::decode(snapshot.get_data())?;
        self.state_machine.restore(&envelope.state)?;
        for (id, address) in envelope.peer_addresses {
            if id != self.config.node_id && self.peer_addresses.get(&id) != Some(&address) {
                self.output.peer_updates.push(PeerUpdate::Set {
                    id,
                    address: address.clone(),
                });
            }
            self.peer_addresses.insert(id, address);
        }
        self.conf_state = metadata.get_conf_state().clone();
        self.note_readded(metadata.index);
        self.applied = metadata.index;
        self.snapshot_index = metadata.index;
        self.counters.snapshots_installed += 1;
        // Our own entries up to the snapshot may or may not be in it: the outcome is unknown.
        let covered: Vec<u64> = self
            .appended
            .range(..=metadata.index)
            .map(|(i, _)| *i)
            .collect();
        for index in covered {
            if let Some(appended) = self.appended.remove(&index) {
                self.fail_appended(appended.kind, Failure::TimedOut);
            }
        }
        tracing::info!(
            node_id = self.config.node_id,
            index = metadata.index,
            "installed a snapshot from the leader"
        );
        Ok(())
    }

    fn queue_raft_messages(&mut self, messages: Vec<RaftMessage>) {
        for message in messages {
            if let Some(outgoing) = self.outgoing(message) {
                self.output.messages.push(outgoing);
            }
        }
    }

    /// A raft message on its way out, or `None` when it must not leave.
    fn outgoing(&mut self, message: RaftMessage) -> Option<(NodeId, PeerMessage)> {
        let message_type = message.get_msg_type();
        if self.identity.rejoin_required()
            && matches!(
                message_type,
                MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
            )
        {
            // A store that lost acknowledged entries must not lead either.
            return None;
        }
        if message_type == MessageType::MsgSnapshot {
            self.snapshot_sent_at.insert(message.to, self.tick);
        }
        Some((message.to, PeerMessage::Raft(Box::new(message))))
    }

    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<(), ClusterError> {
        for entry in entries {
            let index = entry.index;
            if index <= self.applied {
                continue;
            }
            let (ours, replaced) = match self.appended.remove(&index) {
                Some(appended)
                    if entry.term == appended.term
                        && EntryTag::decode(&entry.context) == Some(appended.tag) =>
                {
                    (Some(appended), None)
                }
                other => (None, other),
            };
            if let Some(appended) = replaced {
                self.fail_appended(appended.kind, Failure::Dropped);
            }
            match entry.get_entry_type() {
                EntryType::EntryNormal => {
                    let response = (!entry.data.is_empty())
                        .then(|| self.state_machine.apply(index, &entry.data));
                    if let Some(appended) = ours {
                        self.complete_appended(index, appended.kind, response);
                    }
                }
                EntryType::EntryConfChange | EntryType::EntryConfChangeV2 => {
                    let result = self.apply_conf_change(&entry);
                    if let Some(appended) = ours {
                        match (appended.kind, result) {
                            (AppendedKind::Membership(id), result) => {
                                self.output
                                    .completions
                                    .push(Completion::Membership { id, result });
                            }
                            (kind, _) => self.fail_appended(kind, Failure::Dropped),
                        }
                    }
                }
            }
            self.applied = index;
        }
        Ok(())
    }

    fn apply_conf_change(&mut self, entry: &Entry) -> Result<(), MembershipError> {
        let conf_change = if entry.get_entry_type() == EntryType::EntryConfChangeV2 {
            ConfChangeV2::parse_from_bytes(&entry.data)
        } else {
            // Never written by this driver; understood for logs from other tools.
            ConfChange::parse_from_bytes(&entry.data).map(|old| {
                let mut single = ConfChangeSingle::default();
                single.set_change_type(old.get_change_type());
                single.node_id = old.node_id;
                let mut conf_change = ConfChangeV2::default();
                conf_change.mut_changes().push(single);
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
                self.note_readded(entry.index);
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
    fn note_readded(&mut self, index: u64) {
        let node_id = self.config.node_id;
        if self.identity.rejoin_required()
            && index > self.identity.lost_through
            && self.conf_state.learners.contains(&node_id)
        {
            tracing::info!(node_id, index, "re-added as a learner: the store may vote again once promoted");
            self.identity.lost_through = 0;
            self.identity_changed = true;
        }
    }

    fn complete_appended(&mut self, index: u64, kind: AppendedKind, response: Option<Vec<u8>>) {
        match (kind, response) {
            (AppendedKind::Command(Origin::Local(id)), Some(response)) => {
                self.output.completions.push(Completion::Propose {
                    id,
                    result: Ok(response),
                });
            }
            (AppendedKind::Command(Origin::Remote { from, request_id }), Some(response)) => {
                self.output.messages.push((
                    from,
                    PeerMessage::ForwardReply {
                        request_id,
                        index,
                        result: Ok(response),
                    },
                ));
            }
            // An empty normal entry where a conf change was expected: raft-rs replaced it
            // because another membership change was still pending.
            (AppendedKind::Membership(id), _) => {
                self.output.completions.push(Completion::Membership {
                    id,
                    result: Err(MembershipError::Rejected(
                        "another membership change is still in progress".to_owned(),
                    )),
                });
            }
            (kind, None) => self.fail_appended(kind, Failure::Dropped),
        }
    }

    fn fail_appended(&mut self, kind: AppendedKind, failure: Failure) {
        match kind {
            AppendedKind::Command(Origin::Local(id)) => {
                self.output.completions.push(Completion::Propose {
                    id,
                    result: Err(failure.propose_error()),
                });
            }
            AppendedKind::Command(Origin::Remote { from, request_id }) => {
                // The forwarder times out on its own; only a certain drop is worth a message.
                if failure == Failure::Dropped {
                    self.output.messages.push((
                        from,
                        PeerMessage::ForwardReply {
                            request_id,
                            index: 0,
                            result: Err(RemoteError::Dropped),
                        },
                    ));
                }
            }
            AppendedKind::Membership(id) => {
                self.output.completions.push(Completion::Membership {
                    id,
                    result: Err(failure.membership_error()),
                });
            }
        }
    }

    fn handle_read_state(&mut self, read_state: ReadState) {
        let Some(context) = ReadContext::decode(&read_state.request_ctx) else {
            return;
        };
        if context.node != self.config.node_id {
            return;
        }
        if let Some(batch) = self.read_batches.get_mut(&context.sequence) {
            batch.index.get_or_insert(read_state.index);
        }
    }

    fn finish_reads(&mut self) {
        let applied = self.applied;
        let done: Vec<u64> = self
            .read_batches
            .iter()
            .filter(|(_, batch)| batch.index.is_some_and(|index| index <= applied))
            .map(|(sequence, _)| *sequence)
            .collect();
        for sequence in done {
            if let Some(batch) = self.read_batches.remove(&sequence) {
                let index = batch.index.unwrap_or(applied);
                for id in batch.ids {
                    self.output.completions.push(Completion::Read {
                        id,
                        result: Ok(index),
                    });
                }
            }
        }
    }

    /// Answer forwarded proposals whose index this node has applied.
    fn release_parked(&mut self) {
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

    fn finish_transfers(&mut self) {
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

    fn maybe_snapshot(&mut self) -> Result<(), ClusterError> {
        let threshold_reached =
            self.applied >= self.snapshot_index + self.config.snapshot_threshold_entries;
        if !threshold_reached && !self.snapshot_for_new_member {
            return Ok(());
        }
        self.snapshot_for_new_member = false;
        let index = self.applied;
        let term = self.raw.raft.raft_log.term(index)?;
        let envelope = SnapshotEnvelope {
            peer_addresses: self.peer_addresses.clone(),
            state: self.state_machine.snapshot()?,
        };
        let mut snapshot = Snapshot {
            data: envelope.encode().into(),
            ..Default::default()
        };
        let metadata = snapshot.mut_metadata();
        metadata.index = index;
        metadata.term = term;
        metadata.set_conf_state(self.conf_state.clone());
        let first_index = self.raw.store().first_index()?;
        self.raw.mut_store().save_snapshot(&snapshot)?;
        self.snapshot_index = index;
        self.counters.snapshots_created += 1;
        self.counters.compactions += 1;
        self.counters.entries_compacted += (index + 1).saturating_sub(first_index);
        tracing::debug!(
            node_id = self.config.node_id,
            index,
            "snapshot taken, log compacted"
        );
        Ok(())
    }
}

/// Check the store's identity, and initialise an empty store as `initial.bootstrap` says:
/// bootstrap a new cluster, or only record the identity and wait to be added.
fn open_store<S: Storage, M: StateMachine>(
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
            tracing::error!(node_id, lost_through = found.lost_through, "{REJOIN_ADVICE}");
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
            let envelope = SnapshotEnvelope {
                peer_addresses: initial
                    .voters
                    .iter()
                    .chain(&initial.learners)
                    .map(|(id, address)| (*id, address.clone()))
                    .collect(),
                state: state_machine.snapshot()?,
            };
            let mut snapshot = Snapshot {
                data: envelope.encode().into(),
                ..Default::default()
            };
            let metadata = snapshot.mut_metadata();
            metadata.index = BOOTSTRAP_INDEX;
            metadata.term = BOOTSTRAP_INDEX;
            metadata.set_conf_state(conf_state);
            storage.bootstrap(&snapshot, &expected)?;
            tracing::info!(node_id, "bootstrapped a new cluster store");
        }
    }
    Ok(expected)
}

/// A snapshot from the leader must be decodable and name a valid configuration before it
/// is stepped: raft-rs panics on a configuration it cannot restore, and the driver would
/// persist undecodable bytes and then stop on them.
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
    if SnapshotEnvelope::decode(snapshot.get_data()).is_err() {
        return Err("snapshot data cannot be decoded");
    }
    Ok(())
}

/// What an operator must do for a node whose store lost acknowledged entries.
const REJOIN_ADVICE: &str = "this node's store lost log entries it had acknowledged (wiped or \
    restored disk); it will not vote or campaign. To rejoin, on the leader: remove this node, \
    add it back as a learner, and promote it once it has caught up";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    TimedOut,
    Dropped,
    ShuttingDown,
}

impl Failure {
    fn propose_error(self) -> ProposeError {
        match self {
            Failure::TimedOut => ProposeError::TimedOut,
            Failure::Dropped => ProposeError::Dropped,
            Failure::ShuttingDown => ProposeError::ShuttingDown,
        }
    }

    fn membership_error(self) -> MembershipError {
        match self {
            Failure::TimedOut => MembershipError::TimedOut,
            Failure::Dropped => MembershipError::Dropped,
            Failure::ShuttingDown => MembershipError::ShuttingDown,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::simulation::RecordingStateMachine;
    use crate::storage::memory::MemoryStorage;

    /// Generous: the assertions are about the mechanism (the error comes from the leader
    /// change), not about speed.
    const PROPOSAL_TIMEOUT_TICKS: u64 = 600;
    /// Upper bound on the rounds of a test loop, to fail instead of hang.
    const ROUNDS_MAX: u64 = 2_000;

    type TestCore = RaftCore<MemoryStorage, RecordingStateMachine>;

    /// Three cores over memory storage, wired by hand: every round delivers every message
    /// between connected nodes, ticks everyone once and polls.
    struct Cluster {
        cores: BTreeMap<NodeId, TestCore>,
        cut_off: BTreeSet<NodeId>,
        in_flight: Vec<(NodeId, NodeId, PeerMessage)>,
        completions: Vec<(NodeId, Completion)>,
        rounds: u64,
    }

    impl Cluster {
        fn new() -> Self {
            let initial = InitialMembers {
                cluster_id: "test".to_owned(),
                bootstrap: Bootstrap::New,
                voters: (1..=3).map(|id| (id, format!("node-{id}"))).collect(),
                learners: Vec::new(),
            };
            let cores = (1..=3)
                .map(|id: NodeId| {
                    // Distinct pinned election timeouts: node 1 campaigns first.
                    let election_ticks_min = 10 + 5 * (id as usize - 1);
                    let config = CoreConfig {
                        node_id: id,
                        election_ticks: 10,
                        heartbeat_ticks: 2,
                        election_ticks_min,
                        election_ticks_max: election_ticks_min + 1,
                        proposal_timeout_ticks: PROPOSAL_TIMEOUT_TICKS,
                        read_timeout_ticks: PROPOSAL_TIMEOUT_TICKS,
                        read_retry_ticks: 2,
                        snapshot_threshold_entries: 1_000,
                        command_bytes_max: 1024,
                        message_bytes_max: 64 * 1024,
                        inflight_messages_max: 64,
                        uncommitted_bytes_max: 1 << 20,
                    };
                    let core = RaftCore::new(
                        config,
                        MemoryStorage::new(),
                        RecordingStateMachine::default(),
                        &initial,
                    )
                    .unwrap();
                    (id, core)
                })
                .collect();
            Self {
                cores,
                cut_off: BTreeSet::new(),
                in_flight: Vec::new(),
                completions: Vec::new(),
                rounds: 0,
            }
        }

        fn poll_all(&mut self) {
            for (id, core) in &mut self.cores {
                let output = core.poll().unwrap();
                for (to, message) in output.messages {
                    self.in_flight.push((*id, to, message));
                }
                for completion in output.completions {
                    self.completions.push((*id, completion));
                }
            }
        }

        fn deliver_all(&mut self) {
            for (from, to, message) in std::mem::take(&mut self.in_flight) {
                if self.cut_off.contains(&from) || self.cut_off.contains(&to) {
                    continue;
                }
                if let Some(core) = self.cores.get_mut(&to) {
                    core.handle_message(from, message);
                }
            }
        }

        fn round(&mut self) {
            self.rounds += 1;
            self.deliver_all();
            for core in self.cores.values_mut() {
                core.handle_tick();
            }
            self.poll_all();
        }

        /// The leader that the connected nodes agree on, once there is one.
        fn agreed_leader(&self) -> Option<NodeId> {
            let mut leaders = self
                .cores
                .iter()
                .filter(|(id, _)| !self.cut_off.contains(id))
                .map(|(_, core)| core.leader());
            let first = leaders.next().flatten()?;
            leaders
                .all(|leader| leader == Some(first))
                .then_some(first)
                .filter(|leader| !self.cut_off.contains(leader))
        }

        fn run_until(&mut self, mut done: impl FnMut(&Self) -> bool) {
            let start = self.rounds;
            while !done(self) {
                assert!(self.rounds - start < ROUNDS_MAX, "no progress");
                self.round();
            }
        }

        fn take_proposal_result(
            &mut self,
            node: NodeId,
            request: RequestId,
        ) -> Option<Result<Vec<u8>, ProposeError>> {
            let position = self.completions.iter().position(|(from, completion)| {
                *from == node
                    && matches!(completion, Completion::Propose { id, .. } if *id == request)
            })?;
            match self.completions.remove(position) {
                (_, Completion::Propose { result, .. }) => Some(result),
                _ => None,
            }
        }
    }

    #[test]
    fn a_forwarded_proposal_ends_when_another_leader_is_elected() {
        let mut cluster = Cluster::new();
        cluster.run_until(|cluster| cluster.agreed_leader().is_some());
        let leader = cluster.agreed_leader().unwrap();
        let follower = (1..=3).find(|id| *id != leader).unwrap();

        // A first forwarded proposal commits: the path works while the leader lives.
        cluster
            .cores
            .get_mut(&follower)
            .unwrap()
            .handle_propose(1, b"first".to_vec());
        cluster.run_until(|cluster| {
            cluster.completions.iter().any(|(node, completion)| {
                *node == follower && matches!(completion, Completion::Propose { id: 1, .. })
            })
        });
        assert!(cluster.take_proposal_result(follower, 1).unwrap().is_ok());

        // The second reaches the leader (appended there), then the leader is cut off before
        // it can replicate or answer.
        cluster
            .cores
            .get_mut(&follower)
            .unwrap()
            .handle_propose(2, b"second".to_vec());
        cluster.poll_all();
        assert!(
            cluster
                .in_flight
                .iter()
                .any(|(from, to, message)| *from == follower
                    && *to == leader
                    && matches!(message, PeerMessage::Forward { request_id: 2, .. })),
            "the follower forwards to the leader"
        );
        cluster.deliver_all();
        cluster.poll_all();
        cluster.cut_off.insert(leader);
        let cut_at = cluster.rounds;

        cluster.run_until(|cluster| {
            cluster.completions.iter().any(|(node, completion)| {
                *node == follower && matches!(completion, Completion::Propose { id: 2, .. })
            })
        });
        let result = cluster.take_proposal_result(follower, 2).unwrap();
        assert_eq!(result, Err(ProposeError::LeaderChanged));
        // Ended by the leader change, not by the deadline.
        assert!(cluster.rounds - cut_at < PROPOSAL_TIMEOUT_TICKS);
        let follower_knows = cluster.cores[&follower].leader();
        assert!(follower_knows.is_some_and(|known| known != leader));
    }

    fn raft_message(kind: MessageType, from: NodeId, to: NodeId, term: u64) -> PeerMessage {
        let mut message = RaftMessage::default();
        message.set_msg_type(kind);
        message.from = from;
        message.to = to;
        message.term = term;
        PeerMessage::Raft(Box::new(message))
    }

    fn with_raft(message: PeerMessage, change: impl FnOnce(&mut RaftMessage)) -> PeerMessage {
        match message {
            PeerMessage::Raft(mut raft) => {
                change(&mut raft);
                PeerMessage::Raft(raft)
            }
            other => other,
        }
    }

    #[test]
    fn peer_input_raft_rs_would_panic_on_is_dropped_and_only_members_are_heard() {
        let mut cluster = Cluster::new();
        cluster.run_until(|cluster| cluster.agreed_leader().is_some());
        let leader = cluster.agreed_leader().unwrap();
        let follower = (1..=3).find(|id| *id != leader).unwrap();
        cluster
            .cores
            .get_mut(&leader)
            .unwrap()
            .handle_propose(1, b"first".to_vec());
        cluster.run_until(|cluster| {
            cluster.cores.values().all(|core| core.applied_index() >= 3)
        });
        let term = cluster.cores[&leader].term();
        let leader_last = cluster.cores[&leader].raw.raft.raft_log.last_index();

        // A peer's MsgPropose (raft-rs would append it unchecked) and MsgTransferLeader.
        let propose = with_raft(
            raft_message(MessageType::MsgPropose, follower, leader, 0),
            |raft| {
                raft.entries = vec![Entry {
                    data: b"injected".to_vec().into(),
                    ..Default::default()
                }]
                .into();
            },
        );
        let transfer = raft_message(MessageType::MsgTransferLeader, follower, leader, term);
        // A node that is not a member, with a huge term.
        let stranger = raft_message(MessageType::MsgRequestVote, 9, leader, term + 100);
        let core = cluster.cores.get_mut(&leader).unwrap();
        core.handle_message(follower, propose);
        core.handle_message(follower, transfer);
        core.handle_message(9, stranger);
        core.poll().unwrap();
        assert_eq!(core.raw.raft.raft_log.last_index(), leader_last);
        assert_eq!(core.term(), term);
        assert!(core.is_leader());

        // On the follower: an append whose entries jump back over committed ones ("conflict
        // with committed entry"), an undecodable snapshot, and a heartbeat committing past
        // the log ("to_commit out of range") — each a raft-rs panic if stepped.
        let committed = cluster.cores[&follower].commit_index();
        let committed_term = cluster.cores[&follower].raw.raft.raft_log.term(committed).unwrap();
        let rewrite = with_raft(
            raft_message(MessageType::MsgAppend, leader, follower, term),
            |raft| {
                raft.index = committed;
                raft.log_term = committed_term;
                raft.commit = committed;
                raft.entries = vec![Entry {
                    index: 2,
                    term: term + 7,
                    ..Default::default()
                }]
                .into();
            },
        );
        let snapshot = with_raft(
            raft_message(MessageType::MsgSnapshot, leader, follower, term),
            |raft| {
                let snapshot = raft.mut_snapshot();
                snapshot.data = vec![9, 9, 9].into();
                snapshot.mut_metadata().index = committed + 10;
                snapshot.mut_metadata().term = term;
                snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
            },
        );
        let heartbeat = with_raft(
            raft_message(MessageType::MsgHeartbeat, leader, follower, term),
            |raft| raft.commit = committed + 1_000,
        );
        let core = cluster.cores.get_mut(&follower).unwrap();
        core.handle_message(leader, rewrite);
        core.handle_message(leader, snapshot);
        core.poll().unwrap();
        assert_eq!(core.commit_index(), committed);
        assert!(!core.status().rejoin_required);
        core.handle_message(leader, heartbeat);
        core.poll().unwrap();
        // The heartbeat is the leader's proof that this store lost acknowledged entries.
        let status = core.status();
        assert!(status.rejoin_required);
        assert_eq!(core.storage().identity().unwrap().lost_through, committed + 1_000);

        // The cluster keeps working.
        cluster
            .cores
            .get_mut(&leader)
            .unwrap()
            .handle_propose(2, b"second".to_vec());
        cluster.run_until(|cluster| {
            cluster.completions.iter().any(|(node, completion)| {
                *node == leader && matches!(completion, Completion::Propose { id: 2, .. })
            })
        });
        assert!(cluster.take_proposal_result(leader, 2).unwrap().is_ok());
    }

    #[test]
    fn request_ids_of_a_restart_start_above_every_earlier_start() {
        let storage = MemoryStorage::new();
        let config = || CoreConfig {
            node_id: 1,
            election_ticks: 10,
            heartbeat_ticks: 2,
            election_ticks_min: 0,
            election_ticks_max: 0,
            proposal_timeout_ticks: 10,
            read_timeout_ticks: 10,
            read_retry_ticks: 2,
            snapshot_threshold_entries: 100,
            command_bytes_max: 1024,
            message_bytes_max: 1024,
            inflight_messages_max: 8,
            uncommitted_bytes_max: 1 << 20,
        };
        let initial = InitialMembers {
            cluster_id: "test".to_owned(),
            bootstrap: Bootstrap::New,
            voters: vec![(1, "node-1".to_owned())],
            learners: Vec::new(),
        };
        let open = || {
            RaftCore::new(
                config(),
                storage.clone(),
                RecordingStateMachine::default(),
                &initial,
            )
            .unwrap()
            .first_request_id()
        };
        let first = open();
        let second = open();
        assert!(second >= first + (1 << INCARNATION_SHIFT), "{first} {second}");
        // Another cluster's name on the same store is refused.
        let other = InitialMembers {
            cluster_id: "other".to_owned(),
            ..initial.clone()
        };
        let refused = RaftCore::new(
            config(),
            storage.clone(),
            RecordingStateMachine::default(),
            &other,
        );
        assert!(matches!(refused, Err(ClusterError::WrongStore(_))));
    }


    fn hold_raft_to(cluster: &mut Cluster, node: NodeId) {
        cluster
            .in_flight
            .retain(|(_, to, message)| !(*to == node && matches!(message, PeerMessage::Raft(_))));
    }

    #[test]
    fn a_forwarded_proposal_is_answered_after_the_proposer_applied_it() {
        let mut cluster = Cluster::new();
        cluster.run_until(|cluster| cluster.agreed_leader().is_some());
        let leader = cluster.agreed_leader().unwrap();
        let follower = (1..=3).find(|id| *id != leader).unwrap();
        cluster
            .cores
            .get_mut(&follower)
            .unwrap()
            .handle_propose(1, b"mine".to_vec());
        // The follower hears nothing of the log: the leader commits with the third node and
        // answers the forward.
        let mut rounds = 0;
        let reply_index = loop {
            assert!(rounds < ROUNDS_MAX, "the leader never answered");
            rounds += 1;
            hold_raft_to(&mut cluster, follower);
            let reply = cluster.in_flight.iter().find_map(|(_, to, message)| match message {
                PeerMessage::ForwardReply {
                    request_id: 1,
                    index,
                    result: Ok(_),
                } if *to == follower => Some(*index),
                _ => None,
            });
            if let Some(index) = reply {
                break index;
            }
            cluster.round();
        };
        cluster.deliver_all();
        cluster.poll_all();
        let core = &cluster.cores[&follower];
        assert!(core.applied_index() < reply_index);
        assert!(cluster.take_proposal_result(follower, 1).is_none(), "answered before apply");
        assert_eq!(cluster.cores[&follower].pending_requests(), 1);

        // Once the log flows again the follower applies the entry, then answers.
        cluster.run_until(|cluster| {
            cluster.completions.iter().any(|(node, completion)| {
                *node == follower && matches!(completion, Completion::Propose { id: 1, .. })
            })
        });
        assert!(cluster.take_proposal_result(follower, 1).unwrap().is_ok());
        let core = &cluster.cores[&follower];
        assert!(core.applied_index() >= reply_index);
        assert!(core
            .state_machine()
            .applied
            .iter()
            .any(|(index, command)| *index == reply_index && command == b"mine"));
    }

    #[test]
    fn a_forward_for_another_term_is_refused_unproposed() {
        let mut cluster = Cluster::new();
        cluster.run_until(|cluster| cluster.agreed_leader().is_some());
        let leader = cluster.agreed_leader().unwrap();
        let follower = (1..=3).find(|id| *id != leader).unwrap();
        let core = cluster.cores.get_mut(&leader).unwrap();
        let term = core.term();
        let last = core.raw.raft.raft_log.last_index();
        core.handle_message(
            follower,
            PeerMessage::Forward {
                request_id: 5,
                term: term - 1,
                payload: b"queued for a dead leader".to_vec(),
            },
        );
        let output = core.poll().unwrap();
        assert_eq!(core.raw.raft.raft_log.last_index(), last);
        assert!(output.messages.iter().any(|(to, message)| *to == follower
            && *message
                == PeerMessage::ForwardReply {
                    request_id: 5,
                    index: 0,
                    result: Err(RemoteError::StaleTerm { term }),
                }));
    }

}
