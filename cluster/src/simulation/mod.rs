//! Deterministic cluster simulation (in the spirit of TigerBeetle's VOPR): whole clusters of
//! [`RaftCore`]s over [`MemoryStorage`] and a simulated network, driven by one seeded RNG.
//!
//! By concern: `network` (loss, duplication, reordering, partitions, snapshots through the
//! chunked framing), `nodes` (crash, restart, failed fsync, crash mid-Ready, wiped disks),
//! `operator` (membership changes — remove, add learner, promote — and leadership transfer
//! as client operations; the replace-a-disk runbook), `clients` (puts and gets on a
//! key-value model and their history), `checks` (invariants after every step),
//! [`linearizability`] (the whole history, at the end) and [`machines`] (state machines).
//!
//! Faults the simulation injects: message loss, duplication, reordering, messages held back
//! for hundreds of steps (so duplicate forwards, and stale forwards delivered to a leader of a
//! later term or a restarted node), partitions; crashes that lose what the store had not synced
//! (an fsync boundary: [`MemoryStorage::crash`]); failed fsyncs (the node must stop);
//! crashes mid-Ready (after the leader's early sends, or after persisting but before
//! sending and answering); a voter's disk wiped (it restarts still configured as
//! `bootstrap = "new"`, and must refuse to vote); a removed member that keeps running and
//! sending (it must be ignored); membership changes and leadership transfers.
//!
//! Checked after every step, incrementally (each node from where its last check stopped):
//! at most one leader per term; a committed entry in any store never changes; every node
//! applies the same value at the same index, with the same state digest after it (so a
//! skipped, reordered or doubled command, or a snapshot with another state, shows); a put's
//! answer names the index its value was applied at; a failed put is never applied; a read is
//! answered at an index the node applied, not below an earlier acknowledged put. At the end,
//! after healing everything and a quiet phase: every member converged, every request got its
//! answer, and the whole client history is linearizable (reads included: the report counts
//! them, and a run without a successful read fails).
//!
//! The same seed replays the same run: time is steps and ticks, and raft-rs's own random
//! election timeout is pinned per node (`election_ticks_max = min + 1`) with the minimum drawn
//! from the seeded RNG.

mod checks;
mod clients;
pub mod linearizability;
pub mod machines;
mod network;
mod nodes;
mod operator;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::core::{InitialMembers, RaftCore};
use crate::storage::memory::MemoryStorage;
use crate::transport::{NodeId, PeerMessage};

pub use linearizability::Coverage;
pub use machines::{KvStateMachine, RecordingStateMachine};

use clients::Clients;
use network::{LinkFaults, Network};
use nodes::SimNode;
use operator::Operator;

/// The core as the simulation runs it.
pub type SimCore = RaftCore<MemoryStorage, KvStateMachine>;

/// How a run is shaped. Probabilities are per step (or per message).
#[derive(Debug, Clone)]
pub struct SimulationOptions {
    /// The seed: the same seed and options replay the same run.
    pub seed: u64,
    /// Voters in the cluster (3 or 5).
    pub nodes: usize,
    /// Steps with faults.
    pub steps: u64,
    /// Quiet steps at the end (no faults, no new requests).
    pub quiet_steps: u64,
    /// Loss probability per message.
    pub loss: f64,
    /// Duplication probability per message.
    pub duplication: f64,
    /// Probability per message (and per copy) of being held back for up to
    /// `delay_steps_max` steps: delivered late, possibly to a restarted node or a leader of a
    /// later term (stale forwards, late duplicates).
    pub delay: f64,
    /// Longest hold-back, in steps.
    pub delay_steps_max: u64,
    /// Crash probability per node per step.
    pub crash: f64,
    /// Probability per node per step that its next persist fails (the node must stop).
    pub fsync_failure: f64,
    /// Probability per node per step of a crash right after a poll: persisted, but nothing
    /// sent (beyond the leader's early appends) or answered.
    pub crash_mid_ready: f64,
    /// Restart probability per down node per step.
    pub restart: f64,
    /// Probability of a new partition per step.
    pub partition: f64,
    /// Probability of healing the partition per step.
    pub heal: f64,
    /// Probability per step of starting the replace-a-disk runbook on a voter.
    pub replace: f64,
    /// Probability per step of a leadership transfer.
    pub transfer: f64,
    /// Snapshot threshold (small, so compaction and snapshot catch-up happen).
    pub snapshot_threshold_entries: u64,
    /// Entries kept behind a snapshot (so lagging followers are caught up by entries or by
    /// a snapshot, depending on how far behind they are).
    pub compaction_lag_entries: u64,
    /// Check each read's index as it is answered (not below an acknowledged put, applied
    /// by the node). Off, only the linearizability check judges reads (the mutation test
    /// of a read answered before apply uses that to show the checker bites on its own).
    pub check_read_index: bool,
}

impl SimulationOptions {
    /// The options of the runs in the test suite.
    pub fn new(seed: u64, nodes: usize, steps: u64) -> Self {
        Self {
            seed,
            nodes,
            steps,
            quiet_steps: 3_000,
            loss: 0.05,
            duplication: 0.02,
            delay: 0.01,
            delay_steps_max: 200,
            crash: 0.002,
            fsync_failure: 0.0005,
            crash_mid_ready: 0.0005,
            restart: 0.02,
            partition: 0.004,
            heal: 0.01,
            replace: 0.0003,
            transfer: 0.001,
            snapshot_threshold_entries: 40,
            compaction_lag_entries: 10,
            check_read_index: true,
        }
    }
}

/// What a run did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulationReport {
    /// Commands applied (cluster-wide history length).
    pub commands_applied: u64,
    /// Puts answered with success.
    pub proposals_succeeded: u64,
    /// Puts answered with a certain failure.
    pub proposals_failed: u64,
    /// Puts whose outcome is unknown (timed out, node crashed, leader changed).
    pub proposals_unknown: u64,
    /// Reads answered with a value.
    pub reads_succeeded: u64,
    /// Reads that failed.
    pub reads_failed: u64,
    /// Crashes injected (all kinds).
    pub crashes: u64,
    /// Of which: failed fsyncs that stopped the node.
    pub fsync_failures: u64,
    /// Of which: crashes mid-Ready.
    pub crashes_mid_ready: u64,
    /// Disks wiped.
    pub wipes: u64,
    /// Forced reconfigurations: the operator made the most up-to-date node the only voter
    /// of a cluster that could not elect a leader any more (a lost majority).
    pub forced_reconfigurations: u64,
    /// Membership changes that completed (remove, add learner, promote).
    pub membership_changes: u64,
    /// Leadership transfers asked for.
    pub transfers: u64,
    /// Partitions injected.
    pub partitions: u64,
    /// Highest term reached.
    pub term_max: u64,
    /// Snapshots installed from a leader across all nodes.
    pub snapshots_installed: u64,
    /// Snapshots sent through the chunked framing.
    pub snapshots_chunked: u64,
    /// Forwarded proposals delivered to a node whose term is not the one they were
    /// forwarded in (stale forwards: the node must not propose them).
    pub forwards_stale: u64,
    /// Second copies of forwarded proposals delivered (duplicates: applied at most once).
    pub forwards_duplicated: u64,
    /// Messages delivered from a removed member that kept running (it must be ignored).
    pub messages_from_removed: u64,
    /// Messages delivered after being held back.
    pub messages_delayed: u64,
    /// What the linearizability check covered.
    pub linearizability: Coverage,
}

/// A seeded generator (SplitMix64): small, fast, and the same on every platform.
#[derive(Debug, Clone)]
pub struct SimulationRng(u64);

impl SimulationRng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
}

/// An invariant violation, with the seed and step to replay it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seed {seed}, step {step}: {reason}")]
pub struct Violation {
    /// The run's seed.
    pub seed: u64,
    /// The step where the check failed.
    pub step: u64,
    /// What failed.
    pub reason: String,
}

/// A put applied somewhere: its value and the state digest after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct AppliedPut {
    key: u8,
    value: u64,
    digest: u64,
}

/// A running simulation.
pub struct Simulation {
    options: SimulationOptions,
    rng: SimulationRng,
    nodes: Vec<SimNode>,
    initial: InitialMembers,
    network: Network,
    step: u64,
    next_request: u64,
    clients: Clients,
    operator: Operator,
    leaders: BTreeMap<u64, NodeId>,
    /// index → (term, data hash, type) of entries seen committed in some node's storage.
    committed: BTreeMap<u64, (u64, u64, i32)>,
    /// index → the put applied there (the cluster's applied history).
    history: BTreeMap<u64, AppliedPut>,
    /// value → index in the history.
    value_index: HashMap<u64, u64>,
    report: SimulationReport,
}

const DELIVERIES_PER_STEP_MAX: u64 = 12;
const TICK_PROBABILITY: f64 = 0.25;
const PROPOSE_PROBABILITY: f64 = 0.3;
const READ_PROBABILITY: f64 = 0.1;

impl Simulation {
    /// A new cluster of `options.nodes` voters, all bootstrapped.
    pub fn new(options: SimulationOptions) -> Result<Self, Violation> {
        let ids: Vec<NodeId> = (1..=options.nodes as u64).collect();
        let initial = InitialMembers {
            cluster_id: "simulation".to_owned(),
            bootstrap: crate::config::Bootstrap::New,
            voters: ids.iter().map(|id| (*id, nodes::address(*id))).collect(),
            learners: Vec::new(),
        };
        let mut simulation = Self {
            rng: SimulationRng::new(options.seed),
            options,
            nodes: Vec::new(),
            initial,
            network: Network::default(),
            step: 0,
            next_request: 0,
            clients: Clients::default(),
            operator: Operator::default(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            history: BTreeMap::new(),
            value_index: HashMap::new(),
            report: SimulationReport::default(),
        };
        for id in ids {
            simulation.nodes.push(SimNode::new(id));
            let index = simulation.nodes.len() - 1;
            simulation.restart(index)?;
        }
        Ok(simulation)
    }

    /// Run all steps, then the quiet phase and the final checks.
    pub fn run(mut self) -> Result<SimulationReport, Violation> {
        for _ in 0..self.options.steps {
            self.step(true)?;
        }
        self.network.heal();
        for index in 0..self.nodes.len() {
            // A failed fsync armed in the last faulty steps would otherwise fire in the
            // quiet phase and leave the node down at the end.
            self.nodes[index].storage.cancel_failed_persist();
            if self.nodes[index].core.is_none() {
                self.restart(index)?;
            }
        }
        for _ in 0..self.options.quiet_steps {
            self.step(false)?;
        }
        self.check_converged()?;
        let coverage = self
            .clients
            .check_linearizable()
            .map_err(|reason| self.violation(reason))?;
        if coverage.reads == 0 {
            return Err(self.violation("no read succeeded: the check would be vacuous".into()));
        }
        for index in 0..self.nodes.len() {
            self.retire_counters(index);
        }
        let clients = &self.clients;
        self.report.commands_applied = self.history.len() as u64;
        self.report.proposals_succeeded = clients.puts_succeeded;
        self.report.proposals_failed = clients.puts_failed;
        self.report.proposals_unknown = clients.puts_unknown;
        self.report.reads_succeeded = clients.reads_succeeded;
        self.report.reads_failed = clients.reads_failed;
        self.report.snapshots_chunked = self.network.snapshots_chunked;
        self.report.linearizability = coverage;
        Ok(self.report)
    }

    fn violation(&self, reason: String) -> Violation {
        Violation {
            seed: self.options.seed,
            step: self.step,
            reason,
        }
    }

    fn link_faults(&self) -> LinkFaults {
        LinkFaults {
            loss: self.options.loss,
            duplication: self.options.duplication,
            delay: self.options.delay,
            delay_steps_max: self.options.delay_steps_max.max(1),
        }
    }

    /// One step: faults, client and operator requests, deliveries, ticks, polls, checks.
    pub fn step(&mut self, faults: bool) -> Result<(), Violation> {
        self.step += 1;
        let node_count = self.nodes.len();
        if faults {
            self.inject_faults()?;
            if self.rng.chance(PROPOSE_PROBABILITY) {
                let index = self.rng.below(node_count as u64) as usize;
                self.propose(index);
            }
            if self.rng.chance(READ_PROBABILITY) {
                let index = self.rng.below(node_count as u64) as usize;
                self.read(index);
            }
        }
        self.operate(faults)?;

        self.network.release_delayed(self.step);
        let deliveries = self.rng.below(DELIVERIES_PER_STEP_MAX + 1);
        for _ in 0..deliveries {
            let Some(in_flight) = self.network.take_random(&mut self.rng) else {
                continue;
            };
            self.deliver(in_flight);
        }

        for index in 0..node_count {
            if self.rng.chance(TICK_PROBABILITY)
                && let Some(core) = self.nodes[index].core.as_mut()
            {
                core.handle_tick();
            }
        }

        for index in 0..node_count {
            self.poll_node(index, faults)?;
        }
        self.check_leaders()
    }

    fn inject_faults(&mut self) -> Result<(), Violation> {
        for index in 0..self.nodes.len() {
            if self.nodes[index].core.is_none() && self.rng.chance(self.options.restart) {
                self.restart(index)?;
            }
        }
        if !self.network.is_partitioned() && self.rng.chance(self.options.partition) {
            let ids: Vec<NodeId> = self.nodes.iter().map(|node| node.id).collect();
            let side: BTreeSet<NodeId> = ids
                .iter()
                .filter(|_| self.rng.next_u64() % 2 == 0)
                .copied()
                .collect();
            self.network.partition(&ids, &side);
            self.report.partitions += 1;
        } else if self.network.is_partitioned() && self.rng.chance(self.options.heal) {
            self.network.heal();
        }
        Ok(())
    }

    /// Hand a message to its recipient (if it is up), counting the kinds of delivery the
    /// report promises.
    fn deliver(&mut self, in_flight: network::InFlight) {
        let removed = self.operator.lingering();
        let Some(core) = self.core_mut(in_flight.to) else {
            return;
        };
        let mut counted = SimulationReport::default();
        if let PeerMessage::Forward { term, .. } = &in_flight.message {
            counted.forwards_stale = u64::from(*term != core.term());
            counted.forwards_duplicated = u64::from(in_flight.duplicate);
        }
        counted.messages_from_removed = u64::from(removed == Some(in_flight.from));
        counted.messages_delayed = u64::from(in_flight.delayed);
        core.handle_message(in_flight.from, in_flight.message);
        let report = &mut self.report;
        report.forwards_stale += counted.forwards_stale;
        report.forwards_duplicated += counted.forwards_duplicated;
        report.messages_from_removed += counted.messages_from_removed;
        report.messages_delayed += counted.messages_delayed;
    }

    fn core_mut(&mut self, id: NodeId) -> Option<&mut SimCore> {
        self.nodes
            .iter_mut()
            .find(|node| node.id == id)
            .and_then(|node| node.core.as_mut())
    }

    fn new_request(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    fn propose(&mut self, index: usize) {
        if self.nodes[index].core.is_none() {
            return;
        }
        let request = self.new_request();
        let key = self.rng.below(machines::KEYS as u64) as u8;
        let id = self.nodes[index].id;
        let value = self.clients.new_put(id, request, key, self.step);
        if let Some(core) = self.nodes[index].core.as_mut() {
            core.handle_propose(request, machines::encode_put(key, value));
        }
    }

    fn read(&mut self, index: usize) {
        if self.nodes[index].core.is_none() {
            return;
        }
        let request = self.new_request();
        let key = self.rng.below(machines::KEYS as u64) as u8;
        let id = self.nodes[index].id;
        self.clients.new_read(id, request, key, self.step);
        if let Some(core) = self.nodes[index].core.as_mut() {
            core.handle_read(request);
        }
    }
}

/// The applied history as the clients' checks see it.
struct HistoryView<'a> {
    history: &'a BTreeMap<u64, AppliedPut>,
    value_index: &'a HashMap<u64, u64>,
}

impl clients::AppliedHistory for HistoryView<'_> {
    fn value_at(&self, index: u64) -> Option<u64> {
        self.history.get(&index).map(|put| put.value)
    }

    fn index_of(&self, value: u64) -> Option<u64> {
        self.value_index.get(&value).copied()
    }
}
