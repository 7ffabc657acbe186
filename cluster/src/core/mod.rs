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
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message as RaftMessage,
    MessageType, Snapshot,
};
use raft::{ProgressState, RawNode, ReadState, SnapshotStatus, StateRole};

use crate::codec::{self, DriverEntry, EntryTag, ReadContext, SnapshotEnvelope, StoreIdentity};
use crate::config::{Bootstrap, CoreConfig};
use crate::error::{ClusterError, MembershipError, ProposeError, ReadError};
use crate::snapshot_body::SnapshotBody;
use crate::state_machine::StateMachine;
use crate::status::{ClusterStatus, MemberKind, MemberStatus, Role};
use crate::storage::{PersistRequest, Storage};
use crate::transport::{NodeId, PeerMessage, RemoteError};

mod admit;
mod contact;
mod forward;
mod hints;
mod known_stores;
mod membership;
mod reads;
mod ready;
mod report;
mod sessions;
mod snapshots;
mod store;
mod tick;

use known_stores::KnownStores;
use sessions::Sessions;
use snapshots::SnapshotSend;
pub use snapshots::{BuiltSnapshot, SnapshotJob};

use store::open_store;

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
    /// Snapshots to build on another thread; hand each result to
    /// [`RaftCore::handle_snapshot_built`].
    pub snapshot_jobs: Vec<SnapshotJob>,
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
    /// Snapshots not taken because they would exceed the one snapshot size limit.
    snapshots_refused: u64,
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
    /// Snapshots on their way, per follower: failed when they stop making progress.
    snapshot_sends: BTreeMap<NodeId, SnapshotSend>,
    /// Bodies of snapshots received from the leader and stepped, by (index, term), until the
    /// Ready after the step (a few at most: see [`snapshots::RECEIVED_BODIES_MAX`]).
    received_bodies: VecDeque<((u64, u64), SnapshotBody)>,
    /// Followers whose snapshot message named a snapshot the store has replaced since:
    /// reported failed after the Ready.
    stale_snapshot_sends: Vec<NodeId>,
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
    /// A snapshot too large to ship was refused: the next attempt waits for this applied
    /// index.
    snapshot_retry_at: u64,
    /// Snapshots may be built on another thread ([`Self::enable_background_snapshots`]).
    background_snapshots: bool,
    /// The index of the snapshot being built on another thread, if one is.
    snapshot_building: Option<u64>,
    /// This node leads and applied its own removal: step down after the Ready loop.
    /// raft-rs keeps a removed leader leading (`post_conf_change`: "untested"), and its next
    /// commit advance unwraps its own, removed, progress — a panic.
    step_down_removed: bool,
    /// Applied proposal tags (replicated at-most-once).
    sessions: Sessions,
    /// Members known to hold the log (replicated), so a leader recognises a lost store.
    known_stores: KnownStores,
    /// The leader a member named in a [`PeerMessage::LeaderHint`], and the term it is heard
    /// in (see `hints`): one at a time, so hints cannot grow state or the dialled peers.
    vouched: Option<(NodeId, u64)>,
    /// Campaigners sent a leader hint, with the tick it was sent at.
    hints_sent: BTreeMap<NodeId, u64>,
    /// Local proposals forwarded to a leader at least once. A copy may have been proposed
    /// there (a forward delivered twice, one copy proposed and the other answered "not
    /// proposed"), so a later copy's certain failure (`Dropped`, `Overloaded`) does not say
    /// that the command did not commit: it is answered `TimedOut` (outcome unknown) instead.
    forwarded_before: BTreeSet<RequestId>,
    /// The store's identity; `lost_through` is set once a leader proved this store lost
    /// entries it had acknowledged.
    identity: StoreIdentity,
    /// `identity` changed and must be persisted on the next poll.
    identity_changed: bool,
    /// The last term in which a refused vote was logged (one warning per term, not per
    /// message).
    vote_refusals_logged_term: u64,
    leader_seen: u64,
    /// When a quorum (or the leader) was last heard from.
    contact: contact::QuorumContact,
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
        let mut sessions = Sessions::default();
        let mut known_stores = BTreeSet::new();
        if snapshot_index > 0 {
            let envelope =
                snapshots::restore_from_body(&mut state_machine, &storage.latest_snapshot_body())?;
            sessions = Sessions::from_table(envelope.sessions);
            known_stores = envelope.known_stores;
            peer_addresses.extend(envelope.peer_addresses);
            // Members only: a peer of the initial configuration that was removed since is
            // not dialled again (conf changes replayed after the snapshot add back the
            // addresses of members added later).
            let members: BTreeSet<NodeId> = conf_state
                .voters
                .iter()
                .chain(&conf_state.learners)
                .copied()
                .collect();
            if !members.is_empty() {
                peer_addresses.retain(|id, _| members.contains(id));
            }
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
            snapshot_sends: BTreeMap::new(),
            received_bodies: VecDeque::new(),
            stale_snapshot_sends: Vec::new(),
            recent_forwards: BTreeSet::new(),
            recent_forwards_order: VecDeque::new(),
            peer_addresses,
            conf_state,
            applied: snapshot_index,
            snapshot_index,
            snapshot_for_new_member: false,
            snapshot_retry_at: 0,
            background_snapshots: false,
            snapshot_building: None,
            step_down_removed: false,
            sessions,
            known_stores: KnownStores::from_set(known_stores),
            vouched: None,
            hints_sent: BTreeMap::new(),
            forwarded_before: BTreeSet::new(),
            identity,
            identity_changed: false,
            vote_refusals_logged_term: 0,
            leader_seen: 0,
            contact: contact::QuorumContact::default(),
            counters: Counters::default(),
            output,
        })
    }

    /// The output gathered since the last one, with every local proposal that was forwarded
    /// before and now fails "certainly" answered as of unknown outcome (see
    /// `forwarded_before`; found by the simulation: seed 1953, 5 nodes).
    fn take_output(&mut self) -> CoreOutput {
        let mut output = std::mem::take(&mut self.output);
        for completion in &mut output.completions {
            if let Completion::Propose { id, result } = completion
                && self.forwarded_before.remove(id)
                && matches!(
                    result,
                    Err(ProposeError::Dropped | ProposeError::Overloaded)
                )
            {
                *result = Err(ProposeError::TimedOut);
            }
        }
        output
    }

    fn complete_proposal(&mut self, id: RequestId, result: Result<Vec<u8>, ProposeError>) {
        self.output
            .completions
            .push(Completion::Propose { id, result });
    }

    /// A message from an authenticated peer.
    pub fn handle_message(&mut self, from: NodeId, message: PeerMessage) {
        match message {
            PeerMessage::Raft(mut message)
                if message.get_msg_type() == MessageType::MsgSnapshot =>
            {
                // Inline, as older peers send it: its data becomes a body in memory.
                let data = std::mem::take(&mut message.mut_snapshot().data);
                self.handle_snapshot(from, message, SnapshotBody::from_bytes(data));
            }
            PeerMessage::Raft(message) => self.step_raft(from, message),
            PeerMessage::Snapshot { message, body } => self.handle_snapshot(from, message, body),
            PeerMessage::Forward {
                request_id,
                term,
                payload,
            } => self.handle_forward(from, request_id, term, payload),
            PeerMessage::ForwardReply {
                request_id,
                index,
                result,
            } => self.handle_forward_reply(from, request_id, index, result),
            PeerMessage::LeaderHint {
                term,
                leader,
                address,
            } => self.handle_leader_hint(from, term, leader, address),
        }
    }

    /// Check a raft message and step it.
    fn step_raft(&mut self, from: NodeId, message: Box<RaftMessage>) {
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
        if matches!(
            message.get_msg_type(),
            MessageType::MsgRequestPreVote | MessageType::MsgRequestVote
        ) {
            self.hint_leader_to_campaigner(from);
        }
        if let Err(error) = self.raw.step(*message) {
            tracing::debug!(from, %error, "raft message refused");
        } else {
            self.note_heard(from);
        }
    }

    /// The transport could not queue a message for `to`.
    pub fn handle_send_failure(&mut self, to: NodeId, message_type: MessageType) {
        self.raw.report_unreachable(to);
        if message_type == MessageType::MsgSnapshot {
            self.snapshot_sends.remove(&to);
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
        self.take_output()
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
        self.propose_known_stores();
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
        self.step_down_if_removed();
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
        Ok(self.take_output())
    }

    /// A leader that applied its own removal steps down at once, before raft-rs's `advance`
    /// of the same Ready: raft-rs keeps a removed leader leading (`post_conf_change`:
    /// "untested"), and its next persisted-entries or commit step unwraps its own, removed,
    /// progress — a panic (found by the simulation, twice: after the Ready loop was not soon
    /// enough when the Ready that applied the removal also appended new entries).
    pub(super) fn step_down_if_removed(&mut self) {
        if std::mem::take(&mut self.step_down_removed) && self.is_leader() {
            tracing::info!(
                node_id = self.config.node_id,
                term = self.raw.raft.term,
                "removed from the voters while leading: stepping down"
            );
            let term = self.raw.raft.term;
            self.raw.raft.become_follower(term, raft::INVALID_ID);
        }
    }
}

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
mod tests;
