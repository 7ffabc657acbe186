//! The harness of the whole-cluster tests (t30, t35): a cluster of [`ClusterNode`]s in one
//! process, each with a real [`QuicTransport`] on 127.0.0.1 (mutual TLS from one test CA) and a
//! real [`RocksStorage`] in a temporary directory, applying a small register machine encoded
//! with the codec; and the client helpers the cases share.
//!
//! Nothing here asserts a duration: every wait is bounded polling ([`WAIT_MAX`]) that fails a
//! test only when the awaited thing never happens, so a loaded machine makes the tests slower,
//! not red.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use callgrid_cluster::certs::CertificateAuthority;
use callgrid_cluster::codec::{self, CodecError, Versioned};
use callgrid_cluster::status::{MemberKind, Role};
use callgrid_cluster::storage::rocks::RocksStorage;
use callgrid_cluster::transport::NodeId;
use callgrid_cluster::transport::quic::{QuicConfig, QuicTransport};
use callgrid_cluster::{
    ClusterConfig, ClusterError, ClusterHandle, ClusterNode, ClusterStatus, MembershipChange,
    MembershipError, PeerConfig, ProposeError, ReadError, StateMachine, StateMachineError,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// Upper bound on waiting for something that must happen eventually (a leader, a catch-up,
/// a commit). A bound to fail instead of hang, not a speed target.
pub const WAIT_MAX: Duration = Duration::from_secs(60);
/// Pause between two looks at a condition being awaited.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Attempts at binding a restarted node's old UDP port (the previous socket may still be
/// closing).
pub const BIND_ATTEMPTS_MAX: usize = 100;
/// Short ticks keep elections quick; 10 ticks to elect leaves room for a loaded machine.
pub const TICK_INTERVAL_MS: u64 = 50;

// ---------------------------------------------------------------------------------------
// The register machine: write-once registers, a map from key to value
// ---------------------------------------------------------------------------------------

/// The test command: set register `key` to `value` unless it is already set (first write
/// wins), so a retried proposal is harmless and a lost one is visible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Write {
    pub key: u64,
    pub value: u64,
}

impl Versioned for Write {
    const VERSION: u8 = 1;
}

/// The answer to a [`Write`]: the register's value after it (the first write's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Written {
    pub index: u64,
    pub stored: u64,
}

impl Versioned for Written {
    const VERSION: u8 = 1;
}

/// The whole state; also the snapshot format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registers {
    pub values: BTreeMap<u64, u64>,
}

impl Versioned for Registers {
    const VERSION: u8 = 1;
}

/// Applies [`Write`]s; the registers are shared so the test can read them from outside the
/// driver thread (after a `read_index`, that read is linearizable).
pub struct RegisterMachine {
    pub registers: Arc<Mutex<Registers>>,
}

impl StateMachine for RegisterMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        let write: Write = match codec::decode_versioned(command) {
            Ok(write) => write,
            // Never written by these tests; an empty response makes a proposer fail loudly.
            Err(_) => return Vec::new(),
        };
        let stored = *self
            .registers
            .lock()
            .values
            .entry(write.key)
            .or_insert(write.value);
        codec::encode_versioned(&Written { index, stored }).unwrap_or_default()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        codec::encode_snapshot(&*self.registers.lock())
            .map_err(|error| StateMachineError::Encode(error.to_string()))
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        // The bootstrap snapshot of an empty machine is taken before anything was written;
        // it is the empty map too.
        let registers = codec::decode_snapshot(snapshot)
            .map_err(|error: CodecError| StateMachineError::Decode(error.to_string()))?;
        *self.registers.lock() = registers;
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// The harness
// ---------------------------------------------------------------------------------------

pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Wait until `condition` holds; panics with `what` (and the last observation) after
/// [`WAIT_MAX`].
pub fn wait_until<T: std::fmt::Debug>(what: &str, mut condition: impl FnMut() -> (bool, T)) -> T {
    let deadline = Instant::now() + WAIT_MAX;
    loop {
        let (done, observed) = condition();
        if done {
            return observed;
        }
        assert!(
            Instant::now() < deadline,
            "never happened: {what}; last seen: {observed:#?}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A node's parts while it runs.
pub struct Running {
    pub handle: ClusterHandle,
    pub transport: QuicTransport,
    pub registers: Arc<Mutex<Registers>>,
}

/// One node of the test cluster: its identity, port and data directory outlive restarts.
pub struct Node {
    pub address: SocketAddr,
    pub directory: PathBuf,
    pub running: Option<Running>,
}

/// Per-cluster settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub snapshot_threshold_entries: u64,
    pub compaction_lag_entries: u64,
    pub inflight_messages_max: usize,
    /// Proposal and read timeout.
    pub request_timeout_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            snapshot_threshold_entries: 10_000,
            compaction_lag_entries: 1_000,
            inflight_messages_max: 256,
            request_timeout_ms: 5_000,
        }
    }
}

pub struct Cluster {
    pub authority: CertificateAuthority,
    pub settings: Settings,
    /// The initial voters with their addresses: the bootstrap configuration of the first
    /// members, and the peers a later node is told about (without being listed itself).
    pub voters: Vec<PeerConfig>,
    pub nodes: BTreeMap<NodeId, Node>,
    // Dropped last (fields drop in order): the nodes are stopped first, in `Drop`.
    pub root: tempfile::TempDir,
}

impl Cluster {
    /// Start `voter_count` voters, ids 1..=voter_count, bootstrapped together.
    pub fn start(voter_count: u64, settings: Settings) -> Self {
        init_logs();
        let authority = CertificateAuthority::generate().unwrap();
        let root = tempfile::tempdir().unwrap();
        let mut cluster = Self {
            authority,
            settings,
            voters: Vec::new(),
            nodes: BTreeMap::new(),
            root,
        };
        // Every transport first: its port is known only once bound, and the bootstrap
        // configuration lists every voter's address.
        let mut transports = Vec::new();
        for id in 1..=voter_count {
            let (transport, inbound) = cluster.start_transport(id, "127.0.0.1:0".parse().unwrap());
            cluster.voters.push(PeerConfig {
                id,
                address: transport.local_address().to_string(),
            });
            transports.push((id, transport, inbound));
        }
        for (id, transport, inbound) in transports {
            let node = Node {
                address: transport.local_address(),
                directory: cluster.root.path().join(format!("node-{id}")),
                running: None,
            };
            cluster.nodes.insert(id, node);
            cluster.start_driver(id, transport, inbound).unwrap();
        }
        cluster
    }

    pub fn start_transport(
        &self,
        id: NodeId,
        listen: SocketAddr,
    ) -> (
        QuicTransport,
        crossbeam_channel::Receiver<callgrid_cluster::transport::Inbound>,
    ) {
        let identity = self.authority.issue_identity(id).unwrap();
        let mut attempts = 0;
        loop {
            let mut config = QuicConfig::new(id, listen, Vec::new(), identity.clone());
            config.worker_threads = 1;
            config.connect_timeout = Duration::from_secs(2);
            config.reconnect_backoff_max = Duration::from_millis(500);
            match QuicTransport::start(config) {
                Ok(started) => return started,
                Err(error) => {
                    attempts += 1;
                    assert!(
                        attempts < BIND_ATTEMPTS_MAX,
                        "node {id} cannot listen on {listen}: {error}"
                    );
                    std::thread::sleep(POLL_INTERVAL);
                }
            }
        }
    }

    pub fn cluster_config(&self, id: NodeId) -> ClusterConfig {
        let mut config = ClusterConfig::new(id, self.voters.clone());
        if !self.voters.iter().any(|voter| voter.id == id) {
            // Not an initial member: an empty store waits to be added.
            config.bootstrap = callgrid_cluster::Bootstrap::Join;
        }
        config.tick_interval_ms = TICK_INTERVAL_MS;
        config.election_ticks = 10;
        config.heartbeat_ticks = 2;
        config.snapshot_threshold_entries = self.settings.snapshot_threshold_entries;
        config.compaction_lag_entries = self.settings.compaction_lag_entries;
        config.inflight_messages_max = self.settings.inflight_messages_max;
        config.proposal_timeout_ms = self.settings.request_timeout_ms;
        config.read_timeout_ms = self.settings.request_timeout_ms;
        config
    }

    /// Open the node's store and start its driver on `transport`.
    pub fn start_driver(
        &mut self,
        id: NodeId,
        transport: QuicTransport,
        inbound: crossbeam_channel::Receiver<callgrid_cluster::transport::Inbound>,
    ) -> Result<(), ClusterError> {
        let config = self.cluster_config(id);
        let node = self.nodes.get_mut(&id).unwrap();
        let registers = Arc::new(Mutex::new(Registers::default()));
        let machine = RegisterMachine {
            registers: Arc::clone(&registers),
        };
        let started = RocksStorage::open(&node.directory)
            .map_err(ClusterError::from)
            .and_then(|storage| {
                ClusterNode::start(config, storage, transport.clone(), inbound, machine)
            });
        match started {
            Ok(handle) => {
                node.running = Some(Running {
                    handle,
                    transport,
                    registers,
                });
                Ok(())
            }
            Err(error) => {
                transport.shutdown();
                Err(error)
            }
        }
    }

    /// A node that is not in the bootstrap configuration: an empty store that waits to be
    /// added. It is told the initial voters' addresses, as its config file would.
    pub fn start_new_node(&mut self, id: NodeId) {
        let (transport, inbound) = self.start_transport(id, "127.0.0.1:0".parse().unwrap());
        let node = Node {
            address: transport.local_address(),
            directory: self.root.path().join(format!("node-{id}")),
            running: None,
        };
        self.nodes.insert(id, node);
        self.start_driver(id, transport, inbound).unwrap();
    }

    /// Stop a node: its driver (which closes the store) and its transport.
    pub fn stop(&mut self, id: NodeId) {
        if let Some(running) = self.nodes.get_mut(&id).and_then(|node| node.running.take()) {
            running.handle.shutdown();
            running.transport.shutdown();
        }
    }

    /// Stop a node and delete its data directory, as a lost disk does.
    pub fn wipe(&mut self, id: NodeId) {
        self.stop(id);
        let directory = &self.nodes[&id].directory;
        if directory.exists() {
            std::fs::remove_dir_all(directory).unwrap();
        }
    }

    /// Restart a stopped node from its data directory, on its old port.
    pub fn try_restart(&mut self, id: NodeId) -> Result<(), ClusterError> {
        let address = self.nodes[&id].address;
        let (transport, inbound) = self.start_transport(id, address);
        self.start_driver(id, transport, inbound)
    }

    pub fn restart(&mut self, id: NodeId) {
        self.try_restart(id).unwrap();
    }

    pub fn running(&self, id: NodeId) -> &Running {
        self.nodes[&id]
            .running
            .as_ref()
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    pub fn handle(&self, id: NodeId) -> ClusterHandle {
        self.running(id).handle.clone()
    }

    pub fn status(&self, id: NodeId) -> ClusterStatus {
        self.running(id).handle.status()
    }

    pub fn registers(&self, id: NodeId) -> Registers {
        self.running(id).registers.lock().clone()
    }

    pub fn running_ids(&self) -> Vec<NodeId> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.running.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Wait until every node in `among` names the same leader, one of `among`, and that
    /// leader says it leads. Returns it.
    pub fn wait_for_leader(&self, among: &[NodeId]) -> NodeId {
        wait_until(&format!("one leader agreed on by {among:?}"), || {
            let statuses: Vec<ClusterStatus> = among.iter().map(|id| self.status(*id)).collect();
            let leader = statuses[0].leader;
            let agreed = leader.is_some_and(|leader| {
                among.contains(&leader)
                    && statuses.iter().all(|status| status.leader == Some(leader))
                    && self.status(leader).role == Role::Leader
            });
            (agreed, (leader, statuses))
        })
        .0
        .unwrap()
    }

    /// Wait until node `id`'s registers equal `expected` after a linearizable read on it.
    pub fn wait_for_registers(&self, id: NodeId, expected: &Registers) {
        let handle = self.handle(id);
        let _ = wait_until(&format!("node {id} holds the expected registers"), || {
            let read = handle.read_index_blocking();
            let registers = self.registers(id);
            let missing = expected
                .values
                .iter()
                .filter(|(key, value)| registers.values.get(key) != Some(value))
                .count();
            (
                read.is_ok() && registers == *expected,
                (read, missing, handle.status()),
            )
        });
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for id in self.nodes.keys().copied().collect::<Vec<_>>() {
            self.stop(id);
        }
    }
}

/// Errors after which the same write may be proposed again: it either did not commit, or
/// committed and the retry is absorbed (first write wins).
pub fn is_retryable(error: &ProposeError) -> bool {
    matches!(
        error,
        ProposeError::NoLeader
            | ProposeError::TimedOut
            | ProposeError::LeaderChanged
            | ProposeError::Dropped
            | ProposeError::Overloaded
    )
}

/// Propose `key = value` through `handle` until it is acknowledged; returns the response.
pub fn write(handle: &ClusterHandle, key: u64, value: u64) -> Written {
    let command = codec::encode_versioned(&Write { key, value }).unwrap();
    wait_until(&format!("write {key} acknowledged"), || {
        match handle.propose_blocking(command.clone()) {
            Ok(response) => (
                true,
                Some(codec::decode_versioned::<Written>(&response).unwrap()),
            ),
            Err(error) if is_retryable(&error) => (false, None),
            Err(error) => panic!("write {key} refused: {error}"),
        }
    })
    .unwrap()
}

/// A linearizable read on `id`: the registers once its read index is applied.
pub fn read(cluster: &Cluster, id: NodeId) -> Registers {
    let handle = cluster.handle(id);
    wait_until(&format!("read index on node {id}"), || {
        match handle.read_index_blocking() {
            Ok(index) => {
                // The status is published before answers are sent.
                let status = handle.status();
                assert!(status.applied_index >= index, "read {index}: {status:#?}");
                (true, Some(cluster.registers(id)))
            }
            Err(ReadError::TimedOut | ReadError::Overloaded) => (false, None),
            Err(error) => panic!("read on node {id} failed: {error}"),
        }
    })
    .unwrap()
}

pub fn registers_with(keys: impl IntoIterator<Item = u64>) -> Registers {
    Registers {
        values: keys.into_iter().map(|key| (key, value_of(key))).collect(),
    }
}

/// The value the tests write to register `key`.
pub fn value_of(key: u64) -> u64 {
    key * 10 + 7
}

pub fn write_keys(handle: &ClusterHandle, keys: impl IntoIterator<Item = u64>) {
    for key in keys {
        let written = write(handle, key, value_of(key));
        assert_eq!(written.stored, value_of(key));
    }
}

/// A thread writing new registers one after the other through one node, as a client would,
/// until stopped; it remembers every write acknowledged to it.
pub struct Client {
    pub stop: Arc<AtomicBool>,
    pub acknowledged: Arc<Mutex<Vec<u64>>>,
    pub thread: Option<std::thread::JoinHandle<()>>,
}

impl Client {
    pub fn start(handle: ClusterHandle, first_key: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = Arc::clone(&stop);
            let acknowledged = Arc::clone(&acknowledged);
            std::thread::spawn(move || {
                let mut key = first_key;
                while !stop.load(Ordering::Acquire) {
                    // Retried through elections until acknowledged (first write wins).
                    let written = write(&handle, key, value_of(key));
                    assert_eq!(written.stored, value_of(key));
                    acknowledged.lock().push(key);
                    key += 1;
                }
            })
        };
        Self {
            stop,
            acknowledged,
            thread: Some(thread),
        }
    }

    /// Wait until `count` more writes than now are acknowledged.
    pub fn wait_for_more(&self, count: usize) {
        let target = self.acknowledged.lock().len() + count;
        wait_until(&format!("{target} writes acknowledged"), || {
            let acknowledged = self.acknowledged.lock().len();
            (acknowledged >= target, acknowledged)
        });
    }

    /// Stop after the write in progress; returns every acknowledged key.
    pub fn stop(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("client thread");
        }
        self.acknowledged.lock().clone()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // A failing test stops here: the thread ends after its current write (or when
        // the cluster's shutdown fails it).
        self.stop.store(true, Ordering::Release);
    }
}

/// Run a membership change on whoever leads, retrying through elections and "another change
/// in progress", until `done` holds on the leader's status.
pub fn change_membership(
    cluster: &Cluster,
    among: &[NodeId],
    change: MembershipChange,
    done: impl Fn(&ClusterStatus) -> bool,
) {
    wait_until(&format!("membership change {change:?} applied"), || {
        let leader = cluster.wait_for_leader(among);
        let status = cluster.status(leader);
        if done(&status) {
            return (true, (None, status));
        }
        let result = cluster.handle(leader).membership_blocking(change.clone());
        match &result {
            // Applied on the leader. Do not ask `among` again: a leader that removed itself
            // steps down and, no longer a member, never learns who leads after it.
            Ok(()) => return (true, (Some(result), status)),
            Err(MembershipError::NotLeader { .. })
            | Err(MembershipError::TimedOut)
            | Err(MembershipError::Dropped)
            | Err(MembershipError::Overloaded)
            | Err(MembershipError::Rejected(_)) => {}
            Err(MembershipError::ShuttingDown) => panic!("leader {leader} is shutting down"),
        }
        (false, (Some(result), status))
    });
}

pub fn members_of(status: &ClusterStatus, kind: MemberKind) -> BTreeSet<NodeId> {
    status
        .members
        .iter()
        .filter(|member| member.kind == kind)
        .map(|member| member.id)
        .collect()
}
