//! The Raft replicator: the replicated state machine on `callgrid-cluster` with RocksDB in the
//! data directory and QUIC with mutual TLS between sites.
//!
//! ```text
//!   Proposer ── ClusterReplicator::propose ── ClusterHandle::propose ──► raft thread
//!                                                                         │ commit
//!   SharedState ◄── NodeStateMachine::apply (on the raft thread) ◄────────┘
//! ```
//!
//! A node without peers runs a one-voter cluster (RocksDB, no network): the embedded default.
//! With peers it listens on `cluster.listen` with its certificate from `cluster.certificates_dir`
//! (`ca.pem`, `node-N.pem`, `node-N.key`, see `callgrid certs`).

use std::path::PathBuf;

use callgrid_cluster::certs::TlsIdentity;
use callgrid_cluster::storage::rocks::RocksStorage;
use callgrid_cluster::transport::memory::MemoryHub;
use callgrid_cluster::transport::quic::{QuicConfig, QuicTransport};
use callgrid_cluster::{
    ClusterConfig, ClusterHandle, ClusterNode, MembershipError, PeerConfig, ProposeError,
    ReadError, SnapshotView, StateMachine, StateMachineError,
};
use parking_lot::Mutex;

use crate::config::NodeConfig;
use crate::replicate::{
    BoxFuture, MembershipFailure, MembershipRequest, ReplicaHealth, ReplicateError, Replicator,
};
use crate::state::{EncodedState, SharedState};

/// Directory under the data dir holding the RocksDB store.
pub const RAFT_DIRECTORY: &str = "raft";
/// Where snapshots from the leader are spooled while they stream in (inside the data
/// directory, so on the store's disk).
pub const SNAPSHOT_SPOOL_DIRECTORY: &str = "snapshot-spool";
/// Directory under the data dir for generated certificates of a one-node cluster.
pub const CERTIFICATES_DIRECTORY: &str = "certs";

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterStartError {
    /// RocksDB could not be opened.
    #[error("storage at {path}: {message}")]
    Storage {
        /// The directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Certificates could not be loaded or created.
    #[error("certificates in {path}: {message}")]
    Certificates {
        /// The directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The QUIC transport could not start.
    #[error("transport on {listen}: {message}")]
    Transport {
        /// The listen address.
        listen: std::net::SocketAddr,
        /// Why.
        message: String,
    },
    /// Raft could not start.
    #[error("raft: {0}")]
    Raft(String),
}

/// The node's state machine as the cluster sees it: applies into the shared state.
#[derive(Debug)]
pub struct NodeStateMachine {
    shared: SharedState,
}

impl StateMachine for NodeStateMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        self.shared.apply_entry(index, command)
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        self.shared
            .snapshot()
            .map_err(|error| StateMachineError::Encode(error.to_string()))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        self.shared
            .restore(snapshot)
            .map_err(|error| StateMachineError::Decode(error.to_string()))
    }

    fn snapshot_to(&self, out: &mut dyn std::io::Write) -> Result<(), StateMachineError> {
        // A write error (the snapshot limit, a full disk) or an encoding one: the driver
        // keeps its log and tries again later.
        self.shared
            .snapshot_to(out)
            .map_err(|error| StateMachineError::Write(error.to_string()))
    }

    fn snapshot_view(&self) -> Option<Box<dyn SnapshotView>> {
        // Encoded behind the read lock on the driver thread; written and fsynced on the
        // cluster's snapshot thread while the driver goes on committing.
        Some(Box::new(self.shared.encoded()))
    }

    fn restore_from(&mut self, input: &mut dyn std::io::Read) -> Result<(), StateMachineError> {
        self.shared
            .restore_from(input)
            .map_err(|error| StateMachineError::Decode(error.to_string()))
    }
}

impl SnapshotView for EncodedState {
    fn write_to(self: Box<Self>, out: &mut dyn std::io::Write) -> Result<(), StateMachineError> {
        EncodedState::write_to(&self, out)
            .map_err(|error| StateMachineError::Write(error.to_string()))
    }
}

/// Replication through Raft.
pub struct ClusterReplicator {
    handle: ClusterHandle,
    transport: Mutex<Option<QuicTransport>>,
    /// Duration of a Raft tick (the unit of the cluster's quorum-contact age).
    tick_interval_ms: u64,
    /// The election timeout: past it without quorum contact, local reads are stale.
    election_timeout_ms: u64,
}

impl std::fmt::Debug for ClusterReplicator {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClusterReplicator")
            .field("handle", &self.handle)
            .finish()
    }
}

fn propose_error(error: ProposeError) -> ReplicateError {
    match error {
        ProposeError::NoLeader | ProposeError::Overloaded => {
            ReplicateError::Unavailable(error.to_string())
        }
        ProposeError::TimedOut | ProposeError::Dropped | ProposeError::LeaderChanged => {
            ReplicateError::Indeterminate(error.to_string())
        }
        ProposeError::Rejected(reason) => ReplicateError::Refused(reason),
        ProposeError::ShuttingDown => ReplicateError::ShuttingDown,
    }
}

fn membership_failure(error: MembershipError) -> MembershipFailure {
    match error {
        MembershipError::NotLeader { leader_hint } => MembershipFailure::NotLeader {
            leader: leader_hint,
        },
        MembershipError::Rejected(reason) => MembershipFailure::Refused(reason),
        MembershipError::TimedOut
        | MembershipError::Dropped
        | MembershipError::Overloaded
        | MembershipError::ShuttingDown => MembershipFailure::Unavailable(error.to_string()),
    }
}

fn read_error(error: ReadError) -> ReplicateError {
    match error {
        ReadError::TimedOut | ReadError::Overloaded => {
            ReplicateError::Unavailable(error.to_string())
        }
        ReadError::ShuttingDown => ReplicateError::ShuttingDown,
    }
}

impl Replicator for ClusterReplicator {
    fn propose(&self, command: Vec<u8>) -> BoxFuture<Result<Vec<u8>, ReplicateError>> {
        let handle = self.handle.clone();
        Box::pin(async move { handle.propose(command).await.map_err(propose_error) })
    }

    fn read_barrier(&self) -> BoxFuture<Result<(), ReplicateError>> {
        let handle = self.handle.clone();
        // `read_index` returns once this node's state machine applied the read index. Do not
        // compare that index with the commands applied into the shared state: the log also
        // holds entries without a command (a new leader's empty entry, membership changes),
        // so after a leader change the read index can lie past the last command forever.
        Box::pin(async move {
            handle.read_index().await.map_err(read_error)?;
            Ok(())
        })
    }

    fn health(&self) -> ReplicaHealth {
        let status = self.handle.status();
        let kind = |kind: callgrid_cluster::status::MemberKind| {
            status
                .members
                .iter()
                .filter(|member| member.kind == kind)
                .map(|member| member.id)
                .collect::<Vec<_>>()
        };
        ReplicaHealth {
            node_id: status.node_id,
            leader: status.leader,
            term: status.term,
            commit_index: status.commit_index,
            applied_index: status.applied_index,
            voters: kind(callgrid_cluster::status::MemberKind::Voter),
            learners: kind(callgrid_cluster::status::MemberKind::Learner),
            quorum_contact_age_ms: status
                .quorum_contact_ticks
                .map(|ticks| ticks.saturating_mul(self.tick_interval_ms)),
            stale_after_ms: self.election_timeout_ms,
            details: serde_json::to_value(&status).unwrap_or_default(),
        }
    }

    fn change_membership(
        &self,
        request: MembershipRequest,
    ) -> BoxFuture<Result<(), MembershipFailure>> {
        let handle = self.handle.clone();
        let networked = self.transport.lock().is_some();
        Box::pin(async move {
            if !networked {
                return Err(MembershipFailure::Refused(
                    "a one-node site has no cluster transport: configure [[cluster.peers]]"
                        .to_string(),
                ));
            }
            let result = match request {
                MembershipRequest::AddLearner { id, address } => {
                    handle.add_learner(id, address).await
                }
                MembershipRequest::Promote { id } => handle.promote_learner(id).await,
                MembershipRequest::Remove { id } => handle.remove_node(id).await,
                MembershipRequest::TransferLeader { to } => handle.transfer_leader(to).await,
            };
            result.map_err(membership_failure)
        })
    }

    fn hand_over_leadership(
        &self,
        wait: std::time::Duration,
    ) -> BoxFuture<Result<Option<u64>, MembershipFailure>> {
        let handle = self.handle.clone();
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + wait;
            let status = handle.status();
            let me = status.node_id;
            if status.leader != Some(me) {
                return Ok(None);
            }
            let Some(target) = most_caught_up_voter(&status) else {
                return Ok(None);
            };
            tracing::info!(to = target, "handing leadership over before stopping");
            match tokio::time::timeout_at(deadline, handle.transfer_leader(target)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::warn!(%error, to = target, "leadership transfer failed"),
                Err(_) => tracing::warn!(to = target, "leadership transfer timed out"),
            }
            // Whoever won (the target, or another voter after a failed transfer): a leader
            // other than this node is what lets the cluster go on writing.
            loop {
                let leader = handle.status().leader;
                if let Some(leader) = leader.filter(|leader| *leader != me) {
                    return Ok(Some(leader));
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(MembershipFailure::Unavailable(
                        "no other leader within the hand-over wait".to_string(),
                    ));
                }
                tokio::time::sleep(HAND_OVER_POLL_INTERVAL).await;
            }
        })
    }

    fn shutdown(&self) {
        self.handle.shutdown();
        if let Some(transport) = self.transport.lock().take() {
            transport.shutdown();
        }
    }
}

/// How often a leader handing over checks whether another node leads.
pub const HAND_OVER_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// The voter other than this node with the highest match index (ties: the lowest id).
fn most_caught_up_voter(status: &callgrid_cluster::ClusterStatus) -> Option<u64> {
    status
        .members
        .iter()
        .filter(|member| {
            member.kind == callgrid_cluster::status::MemberKind::Voter
                && member.id != status.node_id
        })
        .max_by_key(|member| {
            (
                member.match_index.unwrap_or(0),
                std::cmp::Reverse(member.id),
            )
        })
        .map(|member| member.id)
}

/// Opens RocksDB in the data directory, starts the transport and the Raft thread.
pub fn start(
    config: &NodeConfig,
    shared: SharedState,
) -> Result<ClusterReplicator, ClusterStartError> {
    let raft_path = config.site.data_dir.join(RAFT_DIRECTORY);
    let storage = RocksStorage::open(&raft_path).map_err(|error| ClusterStartError::Storage {
        path: raft_path.clone(),
        message: error.to_string(),
    })?;
    let node_id = config.cluster.node_id;
    let mut voters = vec![PeerConfig {
        id: node_id,
        address: config.cluster.listen.to_string(),
    }];
    voters.extend(config.cluster.peers.iter().map(|peer| PeerConfig {
        id: peer.id,
        address: peer.address.clone(),
    }));
    let (learners, voters): (Vec<PeerConfig>, Vec<PeerConfig>) = voters
        .into_iter()
        .partition(|peer| config.cluster.learners.contains(&peer.id));
    let mut cluster_config = ClusterConfig::new(node_id, voters);
    cluster_config.learners = learners;
    // Validated: required with peers; a node alone starts its own cluster.
    cluster_config.bootstrap = config
        .cluster
        .bootstrap
        .unwrap_or(callgrid_cluster::Bootstrap::New);
    cluster_config.proposal_timeout_ms = config.cluster.proposal_timeout_ms;
    cluster_config.read_timeout_ms = config.cluster.proposal_timeout_ms;
    let state_machine = NodeStateMachine { shared };
    let tick_interval_ms = cluster_config.tick_interval_ms;
    let election_timeout_ms = tick_interval_ms.saturating_mul(cluster_config.election_ticks as u64);

    if config.cluster.peers.is_empty() {
        // One voter: nothing to talk to, so no listener and no certificates are needed.
        let hub = MemoryHub::new();
        let (transport, inbound) = hub.endpoint(node_id);
        let handle = ClusterNode::start(cluster_config, storage, transport, inbound, state_machine)
            .map_err(|error| ClusterStartError::Raft(error.to_string()))?;
        spawn_watchdog(handle.clone());
        return Ok(ClusterReplicator {
            handle,
            transport: Mutex::new(None),
            tick_interval_ms,
            election_timeout_ms,
        });
    }

    let directory = config
        .cluster
        .certificates_dir
        .clone()
        .unwrap_or_else(|| config.site.data_dir.join(CERTIFICATES_DIRECTORY));
    let certificates_error = |error: &dyn std::fmt::Display| ClusterStartError::Certificates {
        path: directory.clone(),
        message: error.to_string(),
    };
    let identity =
        TlsIdentity::load(&directory, node_id).map_err(|error| certificates_error(&error))?;
    let peers = config
        .cluster
        .peers
        .iter()
        .map(|peer| (peer.id, peer.address.clone()))
        .collect();
    let mut quic = QuicConfig::new(node_id, config.cluster.listen, peers, identity);
    // Serials of certificates no longer accepted, reread when the file changes.
    quic.revoked = Some(std::sync::Arc::new(
        callgrid_cluster::certs::RevocationList::new(
            &directory.join(callgrid_cluster::certs::REVOKED_FILE),
        ),
    ));
    // Received snapshots stream to disk beside the store, one chunk of memory at a time.
    quic.snapshot_spool = Some(config.site.data_dir.join(SNAPSHOT_SPOOL_DIRECTORY));
    let (transport, inbound) =
        QuicTransport::start(quic).map_err(|error| ClusterStartError::Transport {
            listen: config.cluster.listen,
            message: error.to_string(),
        })?;
    let handle = ClusterNode::start(
        cluster_config,
        storage,
        transport.clone(),
        inbound,
        state_machine,
    )
    .map_err(|error| ClusterStartError::Raft(error.to_string()))?;
    spawn_watchdog(handle.clone());
    Ok(ClusterReplicator {
        handle,
        transport: Mutex::new(Some(transport)),
        tick_interval_ms,
        election_timeout_ms,
    })
}

/// Exit status when the Raft driver failed (EX_SOFTWARE): the supervisor restarts the node.
pub const EXIT_DRIVER_FAILED: i32 = 70;

/// A failed Raft driver (storage error, panic) cannot recover in-process, and a node that
/// keeps serving without it only looks alive: log and exit so the supervisor restarts it.
/// `/readyz` already answers 503 (the failed status names no leader).
fn spawn_watchdog(handle: ClusterHandle) {
    let spawned = std::thread::Builder::new()
        .name("raft-watchdog".to_owned())
        .spawn(move || {
            if let Some(error) = handle.wait_stopped_blocking() {
                tracing::error!(%error, code = EXIT_DRIVER_FAILED, "raft driver failed; exiting so the supervisor restarts this node");
                std::process::exit(EXIT_DRIVER_FAILED);
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "raft watchdog thread not started");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use callgrid_cluster::status::ClusterStatus;

    use super::*;
    use crate::state::command::{Command, Envelope};
    use crate::state::encode_envelope;
    use crate::state::model::{Actor, Fulfilment, OrderItem, PaymentForm, Role};

    fn order(index: u64) -> Vec<u8> {
        let envelope = Envelope {
            at_ms: 1_700_000_000_000 + index,
            actor: Actor {
                name: "anna".to_string(),
                role: Role::Agent,
            },
            site: "msk".to_string(),
            command: Command::CreateOrder {
                caller: format!("+7916{index:07}"),
                items: vec![OrderItem {
                    sku: "NUR-200".to_string(),
                    name: "Nurofen 200 mg".to_string(),
                    quantity: 1,
                    unit_price_minor: 25_050,
                }],
                fulfilment: Fulfilment::Pickup {
                    pharmacy: "apteka-7".to_string(),
                },
                payment: PaymentForm::Card,
                delivery_note: String::new(),
            },
        };
        encode_envelope(&envelope).unwrap()
    }

    /// One voter over RocksDB in `directory`, snapshotting every 40 entries.
    fn start(directory: &std::path::Path, shared: SharedState) -> ClusterHandle {
        let mut config = ClusterConfig::new(
            1,
            vec![PeerConfig {
                id: 1,
                address: "memory-1".to_string(),
            }],
        );
        config.tick_interval_ms = 10;
        config.snapshot_threshold_entries = 40;
        config.compaction_lag_entries = 5;
        let hub = MemoryHub::new();
        let (transport, inbound) = hub.endpoint(1);
        let storage = RocksStorage::open(directory).unwrap();
        let state_machine = NodeStateMachine { shared };
        ClusterNode::start(config, storage, transport, inbound, state_machine).unwrap()
    }

    fn wait_for(handle: &ClusterHandle, what: &str, until: impl Fn(&ClusterStatus) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !until(&handle.status()) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn snapshots_of_the_node_state_are_built_in_the_background_and_restore_it() {
        let directory = tempfile::tempdir().unwrap();
        let shared = SharedState::new();
        let handle = start(directory.path(), shared.clone());
        wait_for(&handle, "leadership", |status| status.leader == Some(1));
        for index in 0..120 {
            let answer = handle.propose_blocking(order(index)).unwrap();
            assert!(crate::state::decode_response(&answer).unwrap().is_ok());
        }
        // The snapshot is encoded on the driver thread and written on the snapshot thread;
        // the log behind it is compacted once it is stored.
        wait_for(&handle, "a snapshot and a compaction", |status| {
            status.snapshots_created >= 1 && status.first_index > 1
        });
        let status = handle.status();
        assert_eq!(status.snapshots_refused, 0, "{status:?}");
        handle.shutdown();

        // Started again on the same store: the state comes back from the snapshot's file
        // and the entries after it.
        let restored = SharedState::new();
        let handle = start(directory.path(), restored.clone());
        wait_for(&handle, "the log replayed", |status| {
            status.applied_index >= status.commit_index && status.leader == Some(1)
        });
        shared.read(|before| restored.read(|after| assert_eq!(before.counts(), after.counts())));
        assert_eq!(restored.read(|state| state.counts().orders), 120);
        handle.shutdown();
    }
}
