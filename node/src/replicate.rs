//! Replication boundary: how the node gets a command committed and applied.
//!
//! ```text
//!   API handler / actor ── Proposer::propose(actor, command) ──► Replicator::propose(bytes)
//!                                                                 │  ClusterReplicator: Raft
//!   Outcome / ProposeFailure ◄── decode_response ◄────────────────┘  LocalReplicator: in-memory
//! ```
//!
//! The caller is answered only after the command committed and was applied, with the state
//! machine's own response: an acknowledged order is in the log of a quorum.
//! [`LocalReplicator`] is the in-memory implementation for unit tests of the API and actors;
//! the `callgrid` binary always runs the Raft one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;

use crate::state::model::Actor;
use crate::state::{
    ApplyError, Command, Envelope, InvalidCommand, Outcome, SharedState, decode_response,
    encode_envelope,
};

/// A boxed future, so the trait stays object-safe.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Why replication failed. The command may be retried; nothing was acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplicateError {
    /// No leader is known or no quorum answers (site cut off from the others).
    #[error("no quorum: {0}")]
    Unavailable(String),
    /// The entry may or may not have committed (leader changed, timeout).
    #[error("outcome unknown: {0}")]
    Indeterminate(String),
    /// The node is shutting down.
    #[error("shutting down")]
    ShuttingDown,
    /// The command was refused before entering the log (too large).
    #[error("refused: {0}")]
    Refused(String),
}

/// Replication health for `/readyz` and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReplicaHealth {
    /// This node's id.
    pub node_id: u64,
    /// The leader this node knows of.
    pub leader: Option<u64>,
    /// Current term.
    pub term: u64,
    /// Highest committed index known.
    pub commit_index: u64,
    /// Highest applied index.
    pub applied_index: u64,
    /// Voters.
    pub voters: Vec<u64>,
    /// Learners.
    pub learners: Vec<u64>,
    /// Milliseconds since this node last heard from a quorum of voters (itself included) or
    /// from its leader. `None` when it never did since it started.
    pub quorum_contact_age_ms: Option<u64>,
    /// Past this age (the election timeout) a node's local reads are stale: it may be cut
    /// off, and the others may have committed what it has not seen.
    pub stale_after_ms: u64,
    /// Free-form details from the cluster crate (JSON).
    pub details: serde_json::Value,
}

impl ReplicaHealth {
    /// Whether this node's local reads are stale: no contact with a quorum within
    /// [`Self::stale_after_ms`], or never.
    pub fn is_stale(&self) -> bool {
        self.quorum_contact_age_ms
            .is_none_or(|age_ms| age_ms > self.stale_after_ms)
    }
}

/// Gets commands committed and applied.
pub trait Replicator: Send + Sync + 'static {
    /// Proposes an encoded envelope; resolves with the state machine's encoded response after
    /// the entry committed and was applied on this node.
    fn propose(&self, command: Vec<u8>) -> BoxFuture<Result<Vec<u8>, ReplicateError>>;
    /// Resolves when this node has applied everything committed before the call
    /// (linearizable reads).
    fn read_barrier(&self) -> BoxFuture<Result<(), ReplicateError>>;
    /// Current health.
    fn health(&self) -> ReplicaHealth;
    /// Stops replication (idempotent).
    fn shutdown(&self);
    /// On the leader: hands leadership to the most caught-up voter and waits (at most
    /// `wait`) until another node leads; resolves with the new leader. Resolves with `None`
    /// at once when this node does not lead or has no other voter (the default).
    fn hand_over_leadership(
        &self,
        wait: std::time::Duration,
    ) -> BoxFuture<Result<Option<u64>, MembershipFailure>> {
        let _ = wait;
        Box::pin(async { Ok(None) })
    }
    /// Changes the cluster's membership or leadership (operators, on the leader). A
    /// replicator without a cluster refuses.
    fn change_membership(
        &self,
        request: MembershipRequest,
    ) -> BoxFuture<Result<(), MembershipFailure>> {
        let _ = request;
        Box::pin(async {
            Err(MembershipFailure::Refused(
                "this node does not run a cluster".to_string(),
            ))
        })
    }
}

/// A membership or leadership change an operator asks for (`/api/v1/cluster/...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipRequest {
    /// Add a node as a learner: it receives the log but does not vote.
    AddLearner {
        /// Its Raft id (never 0, never one the cluster had).
        id: u64,
        /// `host:port` of its cluster listener.
        address: String,
    },
    /// Make a caught-up learner a voter.
    Promote {
        /// The learner's id.
        id: u64,
    },
    /// Remove a voter or learner.
    Remove {
        /// Its id.
        id: u64,
    },
    /// Hand leadership to another voter.
    TransferLeader {
        /// The voter to lead.
        to: u64,
    },
}

/// Why a membership change did not happen.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MembershipFailure {
    /// Changes are made on the leader.
    #[error("this node is not the leader (leader: {leader:?}); ask the leader")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<u64>,
    },
    /// The change is not possible (invalid, another change pending, no cluster).
    #[error("refused: {0}")]
    Refused(String),
    /// The cluster could not complete it now (timeout, leadership changed, shutting down).
    #[error("not completed: {0}")]
    Unavailable(String),
}

/// Applies commands directly to the shared state, in call order: a single-process stand-in
/// for Raft in unit tests.
#[derive(Debug, Clone)]
pub struct LocalReplicator {
    state: SharedState,
    index: Arc<Mutex<u64>>,
}

impl LocalReplicator {
    /// A replicator over `state`.
    pub fn new(state: SharedState) -> Self {
        Self {
            state,
            index: Arc::new(Mutex::new(0)),
        }
    }
}

impl Replicator for LocalReplicator {
    fn propose(&self, command: Vec<u8>) -> BoxFuture<Result<Vec<u8>, ReplicateError>> {
        // The lock serialises index allocation and apply, as the Raft log would.
        let mut index = self.index.lock();
        *index += 1;
        let response = self.state.apply_entry(*index, &command);
        Box::pin(async move { Ok(response) })
    }

    fn read_barrier(&self) -> BoxFuture<Result<(), ReplicateError>> {
        Box::pin(async { Ok(()) })
    }

    fn health(&self) -> ReplicaHealth {
        let index = *self.index.lock();
        ReplicaHealth {
            node_id: 1,
            leader: Some(1),
            term: 1,
            commit_index: index,
            applied_index: index,
            voters: vec![1],
            learners: Vec::new(),
            quorum_contact_age_ms: Some(0),
            stale_after_ms: 0,
            details: serde_json::Value::Null,
        }
    }

    fn shutdown(&self) {}
}

/// Why a proposal did not produce an outcome.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ProposeFailure {
    /// The command is invalid; it was not proposed.
    #[error("{0}")]
    Invalid(InvalidCommand),
    /// The state machine refused it (not found, conflict); the state is unchanged.
    #[error("{0}")]
    Refused(ApplyError),
    /// Replication failed.
    #[error("{0}")]
    Replication(ReplicateError),
}

/// The answer to an idempotent proposal ([`Proposer::propose_once`]).
#[derive(Debug)]
pub struct Once {
    /// The outcome, or why there is none.
    pub result: Result<Outcome, ProposeFailure>,
    /// Whether `result` is the remembered first result of an earlier request with the same
    /// key (nothing was changed by this one).
    pub replayed: bool,
}

/// Recent proposal latencies kept for the metrics (a window, oldest dropped first).
pub const PROPOSE_LATENCY_SAMPLES_MAX: usize = 2_048;

/// Stamps, validates, encodes and proposes commands for one site.
#[derive(Clone)]
pub struct Proposer {
    replicator: Arc<dyn Replicator>,
    site: String,
    /// Microseconds from handing a command to the replicator to its answer, of the recent
    /// proposals that were answered (committed and applied here, or refused by the state).
    latencies: Arc<parking_lot::Mutex<std::collections::VecDeque<u64>>>,
}

impl std::fmt::Debug for Proposer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Proposer")
            .field("site", &self.site)
            .finish()
    }
}

impl Proposer {
    /// A proposer for `site` over `replicator`.
    pub fn new(replicator: Arc<dyn Replicator>, site: String) -> Self {
        Self {
            replicator,
            site,
            latencies: Arc::default(),
        }
    }

    /// Quantiles of the recent proposals' latencies (replication and apply, as the API waits
    /// for them); `None` before the first.
    pub fn propose_latency(&self) -> Option<crate::actors::site::views::LatencySummary> {
        crate::actors::site::views::LatencySummary::of(&self.latencies.lock())
    }

    fn record_latency(&self, started: std::time::Instant) {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        crate::actors::site::views::push_sample(
            &mut self.latencies.lock(),
            micros,
            PROPOSE_LATENCY_SAMPLES_MAX,
        );
    }

    /// The replicator.
    pub fn replicator(&self) -> &Arc<dyn Replicator> {
        &self.replicator
    }

    /// Validates `command`, stamps it with the wall clock, and waits for its outcome.
    pub async fn propose(&self, actor: Actor, command: Command) -> Result<Outcome, ProposeFailure> {
        command.validate().map_err(ProposeFailure::Invalid)?;
        let envelope = Envelope {
            at_ms: now_ms(),
            actor,
            site: self.site.clone(),
            command,
        };
        let bytes = encode_envelope(&envelope).map_err(|error| {
            ProposeFailure::Replication(ReplicateError::Refused(error.to_string()))
        })?;
        let started = std::time::Instant::now();
        let response = self
            .replicator
            .propose(bytes)
            .await
            .map_err(ProposeFailure::Replication)?;
        self.record_latency(started);
        match decode_response(&response) {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(error)) => Err(ProposeFailure::Refused(error)),
            Err(error) => Err(ProposeFailure::Replication(ReplicateError::Indeterminate(
                error.to_string(),
            ))),
        }
    }

    /// Proposes the create `command` at most once per (`actor`, `key`): wrapped in
    /// `Command::Idempotent`, so a retry with the same key and the same command gets the
    /// first result back (`replayed`), and the same key with another command is refused with
    /// `ApplyError::IdempotencyKeyReused`.
    pub async fn propose_once(&self, actor: Actor, key: String, command: Command) -> Once {
        let wrapped = Command::Idempotent {
            key,
            command: Box::new(command),
        };
        match self.propose(actor, wrapped).await {
            Ok(Outcome::Replayed(first)) => Once {
                result: (*first).map_err(ProposeFailure::Refused),
                replayed: true,
            },
            result => Once {
                result,
                replayed: false,
            },
        }
    }
}

/// Wall clock in Unix milliseconds. Read by proposers only, never while applying.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
