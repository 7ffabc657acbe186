//! Error types of the cluster: what a proposer, a reader, an operator or the node's start-up
//! code can be told. Fatal errors (storage, state machine) are kept apart from the API errors a
//! caller is expected to handle by retrying.

use crate::transport::NodeId;

/// Why the storage could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The RocksDB engine reported an error.
    #[error("rocksdb: {0}")]
    Rocks(#[from] rocksdb::Error),
    /// A record's checksum did not match its content: the data on disk is corrupted.
    #[error("corrupted record in column family {column_family} at key {key}: {reason}")]
    Corrupted {
        /// The column family holding the record.
        column_family: &'static str,
        /// The key of the record, printed for the operator.
        key: String,
        /// What did not match.
        reason: String,
    },
    /// A protobuf record could not be encoded or decoded.
    #[error("protobuf: {0}")]
    Protobuf(#[from] protobuf::ProtobufError),
    /// A column family the store needs is missing (the directory is not a cluster store).
    #[error("missing column family {0}")]
    MissingColumnFamily(&'static str),
    /// The requested entries are not in the log (compacted or not yet written).
    #[error("entries {low}..{high} are outside the log {first}..={last}")]
    OutOfRange {
        /// First requested index.
        low: u64,
        /// One past the last requested index.
        high: u64,
        /// First index in the log.
        first: u64,
        /// Last index in the log.
        last: u64,
    },
    /// The store was already initialised with a different cluster membership.
    #[error("store already holds state; refusing to bootstrap it again")]
    AlreadyInitialized,
    /// A snapshot file could not be written, read or removed.
    #[error("snapshot file: {0}")]
    Io(String),
    /// A fault injected by a test store ([`crate::storage::memory::MemoryStorage`]): the
    /// write did not happen.
    #[error("injected storage fault: {0}")]
    Injected(&'static str),
}

/// Why the state machine could not produce or restore a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum StateMachineError {
    /// The snapshot bytes could not be decoded.
    #[error("snapshot could not be decoded: {0}")]
    Decode(String),
    /// The state could not be encoded.
    #[error("state could not be encoded: {0}")]
    Encode(String),
    /// The snapshot could not be written (too large, disk full).
    #[error("snapshot could not be written: {0}")]
    Write(String),
}

impl StateMachineError {
    /// A snapshot's bytes could not be written (the size limit, a full disk): the driver
    /// refuses that snapshot and keeps its log.
    pub fn write(error: std::io::Error) -> Self {
        StateMachineError::Write(error.to_string())
    }
}

/// Why the cluster node could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The storage failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// The state machine failed to snapshot or restore.
    #[error("state machine: {0}")]
    StateMachine(#[from] StateMachineError),
    /// raft-rs refused an operation or its state.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// A layout the driver wrote (snapshot envelope) could not be decoded.
    #[error("codec: {0}")]
    Codec(#[from] crate::codec::CodecError),
    /// The store belongs to another node or another cluster (a data directory mounted in
    /// the wrong place): refused instead of replayed.
    #[error("store identity: {0}")]
    WrongStore(String),
    /// The driver thread could not be spawned.
    #[error("driver thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Why a proposal did not produce a response.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProposeError {
    /// No leader was known before the proposal timed out.
    #[error("no leader is known")]
    NoLeader,
    /// The proposal was appended but did not commit in time (no quorum?); it may still commit.
    #[error("timed out waiting for the proposal to commit; it may still commit")]
    TimedOut,
    /// Leadership changed and another entry took the proposal's place; it did not commit.
    #[error("dropped: leadership changed before the proposal committed")]
    Dropped,
    /// The proposal was forwarded to a leader that lost its leadership before answering;
    /// outcome unknown: the command may or may not be applied; retry only if it is idempotent.
    #[error("leader changed before the forwarded proposal was answered; it may still commit")]
    LeaderChanged,
    /// The leader refused the proposal.
    #[error("rejected: {0}")]
    Rejected(String),
    /// Too many requests are waiting in the driver; retry later.
    #[error("the driver is overloaded")]
    Overloaded,
    /// The node is shutting down (or has stopped because of a fatal error).
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// Why a linearizable read could not be served.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// No leader confirmed the read index before the timeout.
    #[error("timed out waiting for the read index (no leader or no quorum)")]
    TimedOut,
    /// Too many requests are waiting in the driver; retry later.
    #[error("the driver is overloaded")]
    Overloaded,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}

/// Why a membership change or leadership transfer failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MembershipError {
    /// Membership changes are made on the leader; this node is not it.
    #[error("not the leader (leader: {leader_hint:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader_hint: Option<NodeId>,
    },
    /// raft-rs refused the change (another change pending, invalid change…).
    #[error("rejected: {0}")]
    Rejected(String),
    /// The change did not commit (or the transfer did not finish) in time.
    #[error("timed out")]
    TimedOut,
    /// Leadership changed before the change committed.
    #[error("dropped: leadership changed before the change committed")]
    Dropped,
    /// Too many requests are waiting in the driver; retry later.
    #[error("the driver is overloaded")]
    Overloaded,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    ShuttingDown,
}
