//! [`ClusterConfig`]: a node's Raft settings (TOML, `deny_unknown_fields`), and the derived
//! [`CoreConfig`] in ticks that the sans-IO core uses.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ClusterError;
use crate::transport::NodeId;

/// A member of the initial configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// The peer's id (never 0).
    pub id: NodeId,
    /// How the transport reaches it (`host:port` for QUIC).
    pub address: String,
}

/// What a node does with an empty store (as etcd's `initial-cluster-state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Bootstrap {
    /// Start a new cluster: an empty store is initialised with `voters` and `learners` (this
    /// node must be listed). A store that is not empty is opened as it is.
    New,
    /// Join an existing cluster: an empty store stays empty until the leader adds this node
    /// (as a learner, then promoted) and sends it a snapshot.
    #[default]
    Join,
}

/// A node's cluster settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's id (never 0).
    pub node_id: NodeId,
    /// The cluster's name, kept in the store's identity record and checked on every start.
    #[serde(default = "defaults::cluster_id")]
    pub cluster_id: String,
    /// What to do with an empty store; required, so a node never bootstraps by accident.
    pub bootstrap: Bootstrap,
    /// Voters of the initial configuration. Used only to bootstrap an empty store with
    /// `bootstrap = "new"`; with `"join"`, only the addresses of peers to reach.
    #[serde(default)]
    pub voters: Vec<PeerConfig>,
    /// Learners of the initial configuration (see `voters`).
    #[serde(default)]
    pub learners: Vec<PeerConfig>,
    /// Duration of one Raft tick.
    #[serde(default = "defaults::tick_interval_ms")]
    pub tick_interval_ms: u64,
    /// Ticks without a leader before a follower campaigns (randomised up to 1.5 × this).
    #[serde(default = "defaults::election_ticks")]
    pub election_ticks: usize,
    /// Ticks between a leader's heartbeats.
    #[serde(default = "defaults::heartbeat_ticks")]
    pub heartbeat_ticks: usize,
    /// Requests taken from the queue per driver iteration: they go into one Ready, one append.
    #[serde(default = "defaults::batch_max")]
    pub batch_max: usize,
    /// Requests waiting for the driver before callers get `Overloaded`.
    #[serde(default = "defaults::pending_requests_max")]
    pub pending_requests_max: usize,
    /// How long a proposal may wait for its response.
    #[serde(default = "defaults::proposal_timeout_ms")]
    pub proposal_timeout_ms: u64,
    /// How long a linearizable read may wait for its read index.
    #[serde(default = "defaults::read_timeout_ms")]
    pub read_timeout_ms: u64,
    /// Applied entries between two snapshots (then the log is compacted).
    #[serde(default = "defaults::snapshot_threshold_entries")]
    pub snapshot_threshold_entries: u64,
    /// Entries kept in the log behind a snapshot when it is compacted, so a follower lagging
    /// by fewer entries is sent them instead of the whole snapshot. The log held (in memory
    /// and on disk) is at most `snapshot_threshold_entries + compaction_lag_entries`.
    #[serde(default = "defaults::compaction_lag_entries")]
    pub compaction_lag_entries: u64,
    /// Largest command accepted.
    #[serde(default = "defaults::command_bytes_max")]
    pub command_bytes_max: usize,
    /// Largest append message raft-rs builds.
    #[serde(default = "defaults::message_bytes_max")]
    pub message_bytes_max: u64,
    /// Append messages in flight per follower.
    #[serde(default = "defaults::inflight_messages_max")]
    pub inflight_messages_max: usize,
    /// Bytes of entries the leader has appended but not committed before it refuses new
    /// proposals with `Overloaded` (raft-rs `max_uncommitted_size`).
    #[serde(default = "defaults::uncommitted_bytes_max")]
    pub uncommitted_bytes_max: u64,
}

/// Largest `compaction_lag_entries` accepted (the log it keeps lives in memory).
const COMPACTION_LAG_ENTRIES_MAX: u64 = 1_000_000;

mod defaults {
    pub fn cluster_id() -> String {
        "callgrid".to_owned()
    }
    pub fn tick_interval_ms() -> u64 {
        100
    }
    pub fn election_ticks() -> usize {
        10
    }
    pub fn heartbeat_ticks() -> usize {
        2
    }
    pub fn batch_max() -> usize {
        1024
    }
    pub fn pending_requests_max() -> usize {
        16_384
    }
    pub fn proposal_timeout_ms() -> u64 {
        5_000
    }
    pub fn read_timeout_ms() -> u64 {
        5_000
    }
    pub fn snapshot_threshold_entries() -> u64 {
        10_000
    }
    pub fn compaction_lag_entries() -> u64 {
        1_000
    }
    pub fn command_bytes_max() -> usize {
        1 << 20
    }
    pub fn message_bytes_max() -> u64 {
        1 << 20
    }
    pub fn inflight_messages_max() -> usize {
        256
    }
    pub fn uncommitted_bytes_max() -> u64 {
        64 << 20
    }
}

impl ClusterConfig {
    /// A configuration that bootstraps a new cluster of `voters` (see [`Bootstrap::New`]),
    /// with defaults for everything else.
    pub fn new(node_id: NodeId, voters: Vec<PeerConfig>) -> Self {
        Self {
            node_id,
            cluster_id: defaults::cluster_id(),
            bootstrap: Bootstrap::New,
            voters,
            learners: Vec::new(),
            tick_interval_ms: defaults::tick_interval_ms(),
            election_ticks: defaults::election_ticks(),
            heartbeat_ticks: defaults::heartbeat_ticks(),
            batch_max: defaults::batch_max(),
            pending_requests_max: defaults::pending_requests_max(),
            proposal_timeout_ms: defaults::proposal_timeout_ms(),
            read_timeout_ms: defaults::read_timeout_ms(),
            snapshot_threshold_entries: defaults::snapshot_threshold_entries(),
            compaction_lag_entries: defaults::compaction_lag_entries(),
            command_bytes_max: defaults::command_bytes_max(),
            message_bytes_max: defaults::message_bytes_max(),
            inflight_messages_max: defaults::inflight_messages_max(),
            uncommitted_bytes_max: defaults::uncommitted_bytes_max(),
        }
    }

    /// The tick as a duration.
    pub fn tick_interval(&self) -> Duration {
        Duration::from_millis(self.tick_interval_ms)
    }

    /// Check the values and derive the core's settings.
    pub fn core_config(&self) -> Result<CoreConfig, ClusterError> {
        let invalid = |reason: &str| Err(ClusterError::Config(reason.to_owned()));
        if self.node_id == 0 {
            return invalid("node_id must not be 0");
        }
        if self
            .voters
            .iter()
            .chain(&self.learners)
            .any(|peer| peer.id == 0)
        {
            return invalid("peer ids must not be 0");
        }
        if self.tick_interval_ms == 0 {
            return invalid("tick_interval_ms must be positive");
        }
        if self.cluster_id.is_empty()
            || self.cluster_id.len() > crate::codec::CLUSTER_ID_BYTES_MAX
            || self.cluster_id.chars().any(char::is_control)
        {
            return invalid("cluster_id must be 1 to 64 bytes without control characters");
        }
        let listed = self
            .voters
            .iter()
            .chain(&self.learners)
            .any(|peer| peer.id == self.node_id);
        if self.bootstrap == Bootstrap::New && !listed {
            return invalid("bootstrap = \"new\" needs this node among voters or learners");
        }
        if self.heartbeat_ticks == 0 || self.election_ticks <= self.heartbeat_ticks {
            return invalid("need 0 < heartbeat_ticks < election_ticks");
        }
        if self.batch_max == 0 || self.pending_requests_max == 0 {
            return invalid("batch_max and pending_requests_max must be positive");
        }
        if self.uncommitted_bytes_max < self.command_bytes_max as u64 {
            return invalid("uncommitted_bytes_max must hold at least one command");
        }
        if self.snapshot_threshold_entries == 0 {
            return invalid("snapshot_threshold_entries must be positive");
        }
        if self.compaction_lag_entries > COMPACTION_LAG_ENTRIES_MAX {
            return invalid("compaction_lag_entries must be at most 1,000,000");
        }
        let ticks = |ms: u64| ms.div_ceil(self.tick_interval_ms).max(1);
        Ok(CoreConfig {
            node_id: self.node_id,
            election_ticks: self.election_ticks,
            heartbeat_ticks: self.heartbeat_ticks,
            // Randomised in [election, 1.5 × election): wide enough to split candidates,
            // and the longest failover stays near 1.5 election timeouts (raft-rs's default
            // range reaches twice).
            election_ticks_min: self.election_ticks,
            election_ticks_max: self.election_ticks + (self.election_ticks / 2).max(1),
            proposal_timeout_ticks: ticks(self.proposal_timeout_ms),
            read_timeout_ticks: ticks(self.read_timeout_ms),
            read_retry_ticks: (self.heartbeat_ticks as u64).max(1),
            snapshot_threshold_entries: self.snapshot_threshold_entries,
            compaction_lag_entries: self.compaction_lag_entries,
            command_bytes_max: self.command_bytes_max,
            message_bytes_max: self.message_bytes_max,
            inflight_messages_max: self.inflight_messages_max,
            uncommitted_bytes_max: self.uncommitted_bytes_max,
        })
    }
}

/// The core's settings, in ticks (the core has no clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreConfig {
    /// This node.
    pub node_id: NodeId,
    /// Base election timeout.
    pub election_ticks: usize,
    /// Heartbeat interval.
    pub heartbeat_ticks: usize,
    /// Lower bound of the randomised election timeout (0: `election_ticks`).
    pub election_ticks_min: usize,
    /// Upper bound, exclusive (0: twice `election_ticks`). The simulation sets
    /// `max = min + 1` per node because raft-rs draws the timeout from the thread's RNG.
    pub election_ticks_max: usize,
    /// Ticks before a proposal fails with a timeout.
    pub proposal_timeout_ticks: u64,
    /// Ticks before a read fails with a timeout.
    pub read_timeout_ticks: u64,
    /// Ticks between two attempts of an unanswered read index.
    pub read_retry_ticks: u64,
    /// Applied entries between two snapshots.
    pub snapshot_threshold_entries: u64,
    /// Entries kept behind a snapshot when the log is compacted.
    pub compaction_lag_entries: u64,
    /// Largest command accepted.
    pub command_bytes_max: usize,
    /// Largest append message.
    pub message_bytes_max: u64,
    /// Append messages in flight per follower.
    pub inflight_messages_max: usize,
    /// Uncommitted bytes before proposals are refused.
    pub uncommitted_bytes_max: u64,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn toml_with_defaults_parses_and_unknown_fields_are_refused() {
        let text = r#"
            node_id = 1
            bootstrap = "new"
            voters = [{ id = 1, address = "127.0.0.1:7001" }]
        "#;
        let config: ClusterConfig = toml_from_str(text).unwrap();
        assert_eq!(config, ClusterConfig::new(1, config.voters.clone()));
        // `bootstrap` is required: a node never starts a cluster by accident.
        assert!(toml_from_str(&text.replace("bootstrap = \"new\"", "")).is_err());
        let join: ClusterConfig = toml_from_str(&text.replace("\"new\"", "\"join\"")).unwrap();
        assert_eq!(join.bootstrap, Bootstrap::Join);
        let mut not_listed = config.clone();
        not_listed.node_id = 2;
        assert!(not_listed.core_config().is_err());
        let core = config.core_config().unwrap();
        assert_eq!(core.proposal_timeout_ticks, 50);
        assert!(toml_from_str("node_id = 1\nvoterz = []").is_err());
        let zero = ClusterConfig::new(0, Vec::new());
        assert!(zero.core_config().is_err());
    }

    fn toml_from_str(text: &str) -> Result<ClusterConfig, String> {
        toml::from_str(text).map_err(|error| error.to_string())
    }
}
