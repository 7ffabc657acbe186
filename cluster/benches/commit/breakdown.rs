//! Where one client's commit goes: the same sequential proposals without the parts the full
//! bench adds one by one, so the 1-client figure can be read against its floor.
//!
//! - three synced RocksDB writes at once, one per store, in lockstep: what the three nodes of
//!   the bench do at the same moment on this machine's one disk (each city has its own disk
//!   in production; here they share one). Per round, the time until the second of the three
//!   is durable: a quorum of three needs two durable copies. Issued together, the device can
//!   cover them with one flush; issued as in a commit — the followers' writes a message's
//!   hop after the leader's, once its flush has begun — they wait for the next flush, so the
//!   staggered line is the floor of a commit on this machine;
//! - one voter on RocksDB: a proposal through the handle, the driver thread, the synced write,
//!   the apply and the answer — the commit without any replication;
//! - three voters on RocksDB over the in-memory transport (a message is a channel send to the
//!   other driver thread, through the real codec): replication without sockets, QUIC or TLS.
//!
//! The full bench then adds QUIC with mutual TLS on loopback (tokio tasks and UDP).

use std::path::Path;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use callgrid_cluster::storage::rocks::RocksStorage;
use callgrid_cluster::transport::NodeId;
use callgrid_cluster::transport::memory::MemoryHub;
use callgrid_cluster::{ClusterConfig, ClusterNode, PeerConfig};
use hdrhistogram::Histogram;

use super::{COMMAND_BYTES, Counter, command, micros, wait_for_leader};

/// Synced writes made by `writers` threads at the same moment, each to a RocksDB store of
/// its own in `directory`: per round, the time until a majority of them is durable (the
/// writes' latencies sorted, the majority's last one).
/// With `stagger`, every writer but the first starts that long after the others were
/// released (latencies are counted from the release).
pub fn concurrent_disk(
    directory: &Path,
    writers: usize,
    writes: usize,
    stagger: Duration,
) -> anyhow::Result<Histogram<u64>> {
    assert!(writers >= 1, "at least one writer");
    let barrier = Arc::new(Barrier::new(writers));
    let mut threads = Vec::new();
    for writer in 0..writers {
        let path = directory.join(format!("fsync-probe-{writers}-{writer}"));
        let delay = if writer == 0 { Duration::ZERO } else { stagger };
        let barrier = Arc::clone(&barrier);
        threads.push(std::thread::spawn(move || -> anyhow::Result<Vec<u64>> {
            let mut options = rocksdb::Options::default();
            options.create_if_missing(true);
            let db = rocksdb::DB::open(&options, &path)?;
            let mut write_options = rocksdb::WriteOptions::default();
            write_options.set_sync(true);
            let mut latencies = Vec::with_capacity(writes);
            let record = [0x5a_u8; COMMAND_BYTES];
            for index in 0..writes as u64 {
                let mut batch = rocksdb::WriteBatch::default();
                batch.put(index.to_be_bytes(), record);
                barrier.wait();
                let start = Instant::now();
                while start.elapsed() < delay {
                    std::hint::spin_loop();
                }
                db.write_opt(batch, &write_options)?;
                latencies.push(micros(start.elapsed()));
            }
            drop(db);
            rocksdb::DB::destroy(&options, &path)?;
            Ok(latencies)
        }));
    }
    let mut by_writer = Vec::new();
    for thread in threads {
        by_writer.push(
            thread
                .join()
                .map_err(|_| anyhow::anyhow!("disk probe thread panicked"))??,
        );
    }
    let majority = writers / 2 + 1;
    let mut quorum = Histogram::<u64>::new(3)?;
    for round in 0..writes {
        let mut latencies: Vec<u64> = by_writer.iter().map(|writer| writer[round]).collect();
        latencies.sort_unstable();
        quorum.record(latencies[majority - 1])?;
    }
    Ok(quorum)
}

/// Sequential proposals to the leader of `voters` nodes on RocksDB in `directory`, joined by
/// the in-memory transport: the latency of each, after a warm-up.
pub fn commit_without_sockets(
    directory: &Path,
    voters: NodeId,
    requests: u64,
) -> anyhow::Result<Histogram<u64>> {
    let hub = MemoryHub::new();
    let peers: Vec<PeerConfig> = (1..=voters)
        .map(|id| PeerConfig {
            id,
            address: format!("memory-{id}"),
        })
        .collect();
    let mut handles = Vec::new();
    for id in 1..=voters {
        let (transport, inbound) = hub.endpoint(id);
        let storage = RocksStorage::open(&directory.join(format!("memory-{voters}-{id}")))?;
        handles.push(ClusterNode::start(
            ClusterConfig::new(id, peers.clone()),
            storage,
            transport,
            inbound,
            Counter::default(),
        )?);
    }
    let leader = wait_for_leader(&handles).and_then(|id| {
        handles
            .iter()
            .find(|handle| handle.node_id() == id)
            .context("the leader is not among the nodes")
    });
    let measured = leader.and_then(|leader| {
        for sequence in 0..requests / 10 {
            leader.propose_blocking(command(0, sequence))?;
        }
        let mut latency = Histogram::<u64>::new(3)?;
        for sequence in 0..requests {
            let sent = Instant::now();
            leader.propose_blocking(command(1, sequence))?;
            latency.record(micros(sent.elapsed()))?;
        }
        Ok(latency)
    });
    for handle in &handles {
        handle.shutdown();
    }
    measured
}
