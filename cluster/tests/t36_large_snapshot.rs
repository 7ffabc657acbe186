//! A large state shipped to a new learner with bounded memory, over real parts (RocksDB, QUIC
//! with mutual TLS, snapshot files and the receiver's spool on disk).
//!
//! The state machine here holds a large state without holding it in memory: its state is a
//! deterministic byte stream of `STATE_BYTES` (defined by the commands applied) that it
//! writes on `snapshot_to` and, on `restore_from`, reads through and fingerprints. So every
//! byte the process holds beyond a few buffers is the cluster's own doing — building,
//! storing, sending, receiving, persisting and restoring the snapshot. The test resets the
//! kernel's peak-resident mark (`/proc/self/clear_refs`), runs both nodes in this process, and
//! asserts the peak (`VmHWM`) stays below `RESIDENT_GROWTH_MAX` over the resident memory
//! before, while a state of `STATE_BYTES` moves from the leader to the learner (snapshot files
//! are read with `pread`, not mapped: the page cache does not count).
//!
//! The leader's state machine offers a point-in-time view, so its snapshot is built on a
//! thread of its own: the test holds that build at a gate and commits more commands
//! meanwhile (the driver is not blocked by the build).
//!
//! `CALLGRID_LARGE_SNAPSHOT_BYTES` sets the state's size (default 1 GiB).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callgrid_cluster::certs::CertificateAuthority;
use callgrid_cluster::storage::rocks::RocksStorage;
use callgrid_cluster::transport::NodeId;
use callgrid_cluster::transport::quic::{QuicConfig, QuicTransport};
use callgrid_cluster::{
    Bootstrap, ClusterConfig, ClusterHandle, ClusterNode, MembershipChange, PeerConfig,
    SnapshotView, StateMachine, StateMachineError,
};
use parking_lot::Mutex;

/// A field of `/proc/self/status` in bytes (`VmRSS`, `VmHWM`: resident now, at the peak).
fn memory(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .unwrap();
    kib * 1024
}

/// The default size of the state shipped.
const STATE_BYTES_DEFAULT: u64 = 1 << 30;
/// What shipping the snapshot may add to the process's resident memory, whatever the
/// state's size: a few chunks of 1 MiB in flight per node (file reads, frames, QUIC's send
/// and receive windows), the allocator's caches, RocksDB's memtables and block cache.
const RESIDENT_GROWTH_MAX: u64 = 160 * 1024 * 1024;
/// Generous bound on the whole transfer; the test fails instead of hanging.
const WAIT_MAX: Duration = Duration::from_secs(600);

/// The state: `len` bytes of a stream seeded by the sum of the commands applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Fingerprint {
    seed: u64,
    len: u64,
    /// crc32 of the stream (0 until written or read).
    crc32: u32,
}

/// Writes the stream for `seed` of `len` bytes into `out` with one 64 KiB buffer; returns
/// its crc32. One pseudo-random block for the seed, each copy stamped with its number, so
/// every block differs (a misplaced or repeated chunk changes the crc32) and generating it
/// costs next to nothing.
fn write_stream(seed: u64, len: u64, out: &mut dyn Write) -> std::io::Result<u32> {
    let mut buffer = vec![0_u8; 64 * 1024];
    let mut state = seed | 1;
    for word in buffer.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes());
    }
    let mut hasher = crc32fast::Hasher::new();
    let mut left = len;
    let mut block = 0_u64;
    while left > 0 {
        buffer[..8].copy_from_slice(&block.to_le_bytes());
        let take = left.min(buffer.len() as u64) as usize;
        out.write_all(&buffer[..take])?;
        hasher.update(&buffer[..take]);
        left -= take as u64;
        block += 1;
    }
    Ok(hasher.finalize())
}

struct LargeMachine {
    len: u64,
    state: Arc<Mutex<Fingerprint>>,
    gate: Gate,
}

/// Holds a background snapshot build until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn open(&self) {
        let (open, changed) = &*self.0;
        *open.lock().unwrap() = true;
        changed.notify_all();
    }

    fn wait(&self) {
        let (open, changed) = &*self.0;
        let mut guard = open.lock().unwrap();
        while !*guard {
            guard = changed.wait(guard).unwrap();
        }
    }
}

/// The state at one index, written on the driver's snapshot thread.
struct LargeView {
    state: Fingerprint,
    gate: Gate,
}

impl SnapshotView for LargeView {
    fn write_to(self: Box<Self>, out: &mut dyn Write) -> Result<(), StateMachineError> {
        self.gate.wait();
        write_state(&self.state, out)
    }
}

fn write_state(state: &Fingerprint, out: &mut dyn Write) -> Result<(), StateMachineError> {
    out.write_all(&state.seed.to_le_bytes())
        .and_then(|()| out.write_all(&state.len.to_le_bytes()))
        .and_then(|()| write_stream(state.seed, state.len, out))
        .map_err(|error| StateMachineError::Write(error.to_string()))?;
    Ok(())
}

impl StateMachine for LargeMachine {
    fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
        let mut state = self.state.lock();
        let value = command
            .iter()
            .fold(0_u64, |sum, byte| sum + u64::from(*byte));
        state.seed = state.seed.wrapping_add(value);
        state.len = self.len;
        state.crc32 = 0;
        Vec::new()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        let mut bytes = Vec::new();
        self.snapshot_to(&mut bytes)?;
        Ok(bytes)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        self.restore_from(&mut &snapshot[..])
    }

    fn snapshot_to(&self, out: &mut dyn Write) -> Result<(), StateMachineError> {
        let state = *self.state.lock();
        write_state(&state, out)
    }

    fn snapshot_view(&self) -> Option<Box<dyn SnapshotView>> {
        Some(Box::new(LargeView {
            state: *self.state.lock(),
            gate: self.gate.clone(),
        }))
    }

    fn restore_from(&mut self, input: &mut dyn Read) -> Result<(), StateMachineError> {
        let decode = |error: std::io::Error| StateMachineError::Decode(error.to_string());
        let mut word = [0_u8; 8];
        input.read_exact(&mut word).map_err(decode)?;
        let seed = u64::from_le_bytes(word);
        input.read_exact(&mut word).map_err(decode)?;
        let len = u64::from_le_bytes(word);
        let mut buffer = vec![0_u8; 64 * 1024];
        let mut hasher = crc32fast::Hasher::new();
        let mut read = 0_u64;
        loop {
            let count = input.read(&mut buffer).map_err(decode)?;
            if count == 0 {
                break;
            }
            hasher.update(&buffer[..count]);
            read += count as u64;
        }
        if read != len {
            return Err(StateMachineError::Decode(format!(
                "{read} bytes of state, {len} announced"
            )));
        }
        *self.state.lock() = Fingerprint {
            seed,
            len,
            crc32: hasher.finalize(),
        };
        Ok(())
    }
}

struct Site {
    handle: ClusterHandle,
    transport: QuicTransport,
    state: Arc<Mutex<Fingerprint>>,
}

impl Drop for Site {
    fn drop(&mut self) {
        self.handle.shutdown();
        self.transport.shutdown();
    }
}

fn start_transport(
    authority: &CertificateAuthority,
    id: NodeId,
    spool: &std::path::Path,
) -> (
    QuicTransport,
    crossbeam_channel::Receiver<callgrid_cluster::transport::Inbound>,
) {
    let mut config = QuicConfig::new(
        id,
        "127.0.0.1:0".parse().unwrap(),
        Vec::new(),
        authority.issue_identity(id).unwrap(),
    );
    config.snapshot_spool = Some(spool.to_owned());
    QuicTransport::start(config).unwrap()
}

fn start_site(
    config: ClusterConfig,
    directory: &std::path::Path,
    transport: QuicTransport,
    inbound: crossbeam_channel::Receiver<callgrid_cluster::transport::Inbound>,
    len: u64,
    gate: Gate,
) -> Site {
    let state = Arc::new(Mutex::new(Fingerprint::default()));
    let machine = LargeMachine {
        len,
        state: Arc::clone(&state),
        gate,
    };
    let storage = RocksStorage::open(&directory.join("raft")).unwrap();
    let handle = ClusterNode::start(config, storage, transport.clone(), inbound, machine).unwrap();
    Site {
        handle,
        transport,
        state,
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < WAIT_MAX, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn config(id: NodeId, voters: Vec<PeerConfig>) -> ClusterConfig {
    let mut config = ClusterConfig::new(id, voters);
    config.tick_interval_ms = 50;
    config.election_ticks = 10;
    config.heartbeat_ticks = 2;
    config.snapshot_threshold_entries = 8;
    config.compaction_lag_entries = 0;
    config.proposal_timeout_ms = 600_000;
    config
}

#[test]
fn a_large_state_reaches_a_new_learner_with_bounded_memory() {
    let len = std::env::var("CALLGRID_LARGE_SNAPSHOT_BYTES")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(STATE_BYTES_DEFAULT);
    let root = tempfile::tempdir().unwrap();
    let authority = CertificateAuthority::generate().unwrap();
    // The peak from here on (if the kernel refuses the reset, the peak since the start).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let baseline = memory("VmRSS:");

    // One voter; eight commands reach the snapshot threshold: the leader streams its state
    // of `len` bytes into its snapshot file.
    let (transport, inbound) = start_transport(&authority, 1, &root.path().join("spool-1"));
    let voters = vec![PeerConfig {
        id: 1,
        address: transport.local_address().to_string(),
    }];
    let gate = Gate::default();
    let leader = start_site(
        config(1, voters.clone()),
        &root.path().join("node-1"),
        transport,
        inbound,
        len,
        gate.clone(),
    );
    wait_for("node 1 leads", || leader.handle.status().leader == Some(1));
    for value in 1..=9_u8 {
        leader.handle.propose_blocking(vec![value]).unwrap();
    }
    // The snapshot is built on a thread of its own (held at the gate): the driver goes on
    // committing and applying meanwhile.
    for value in 10..=14_u8 {
        leader.handle.propose_blocking(vec![value]).unwrap();
    }
    assert_eq!(leader.handle.status().snapshots_created, 0);
    let started = Instant::now();
    gate.open();
    wait_for("the leader's snapshot", || {
        leader.handle.status().snapshots_created >= 1
    });
    let built = started.elapsed();

    // A new node joins empty; the leader ships it the snapshot.
    let (transport, inbound) = start_transport(&authority, 2, &root.path().join("spool-2"));
    let address = transport.local_address().to_string();
    let mut joining = config(2, voters);
    joining.bootstrap = Bootstrap::Join;
    let learner = start_site(
        joining,
        &root.path().join("node-2"),
        transport,
        inbound,
        len,
        gate,
    );
    let shipping = Instant::now();
    leader
        .handle
        .membership_blocking(MembershipChange::AddLearner { id: 2, address })
        .unwrap();
    let expected = *leader.state.lock();
    wait_for("the learner restored the leader's state", || {
        let restored = *learner.state.lock();
        restored.len == len && restored.seed == expected.seed && restored.crc32 != 0
    });
    let shipped = shipping.elapsed();
    // Installed (its status is published after the Ready that restored the state).
    wait_for("the learner counts the installed snapshot", || {
        learner.handle.status().snapshots_installed >= 1
    });

    // The same bytes: the learner's fingerprint is the stream the leader wrote.
    let mut sink = std::io::sink();
    let crc32 = write_stream(expected.seed, len, &mut sink).unwrap();
    assert_eq!(learner.state.lock().crc32, crc32);

    let peak_growth = memory("VmHWM:").saturating_sub(baseline);
    println!(
        "state {len} bytes: snapshot built in {built:?}, shipped and restored in {shipped:?} \
         ({:.0} MB/s); peak resident memory {:.1} MiB over the {:.1} MiB before, both nodes",
        len as f64 / shipped.as_secs_f64() / 1e6,
        peak_growth as f64 / (1024.0 * 1024.0),
        baseline as f64 / (1024.0 * 1024.0),
    );
    assert!(
        peak_growth < RESIDENT_GROWTH_MAX,
        "the snapshot path held {peak_growth} bytes at its peak for a state of {len}"
    );
    // The spool is empty once the learner adopted the snapshot.
    let spooled = std::fs::read_dir(root.path().join("spool-2"))
        .unwrap()
        .count();
    assert_eq!(spooled, 0, "spool files left behind");
}
