//! Deterministic cluster simulation (in the spirit of TigerBeetle's VOPR): whole clusters of
//! [`RaftCore`]s over [`MemoryStorage`] and a simulated network, driven by one seeded RNG.
//!
//! The network loses, duplicates and reorders messages and partitions nodes; nodes crash
//! (losing everything not persisted: raft's in-memory state, queued messages, the state
//! machine, pending requests) and restart from their storage. Clients propose unique commands
//! and ask for linearizable reads. After every step [`Simulation::check`] verifies:
//!
//! - at most one leader per term;
//! - a committed entry is never lost or changed (every node's stored committed entries and
//!   every node's applied sequence agree with the history seen so far);
//! - all state machines apply the same sequence;
//! - a proposal's response names the index where its command was applied; a proposal
//!   reported `Dropped` never appears in the applied sequence;
//! - a read completes with an index at least as high as every write acknowledged before it
//!   was asked, and the node has applied that index;
//!
//! and at the end, after healing everything and running quietly: every node converges to the
//! same state and every request got its answer.
//!
//! The same seed replays the same run: time is steps and ticks, and raft-rs's own random
//! election timeout is pinned per node (`election_ticks_max = min + 1`) with the minimum drawn
//! from the seeded RNG.

use std::collections::{BTreeMap, BTreeSet};

use raft::eraftpb::Entry;

use crate::config::CoreConfig;
use crate::core::{Completion, InitialMembers, RaftCore};
use crate::error::{ProposeError, StateMachineError};
use crate::state_machine::StateMachine;
use crate::storage::memory::MemoryStorage;
use crate::transport::{NodeId, PeerMessage};

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
    /// Crash probability per node per step.
    pub crash: f64,
    /// Restart probability per down node per step.
    pub restart: f64,
    /// Probability of a new partition per step.
    pub partition: f64,
    /// Probability of healing the partition per step.
    pub heal: f64,
    /// Snapshot threshold (small, so compaction and snapshot catch-up happen).
    pub snapshot_threshold_entries: u64,
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
            crash: 0.002,
            restart: 0.02,
            partition: 0.004,
            heal: 0.01,
            snapshot_threshold_entries: 40,
        }
    }
}

/// What a run did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimulationReport {
    /// Commands applied (cluster-wide history length).
    pub commands_applied: u64,
    /// Proposals answered with a response.
    pub proposals_succeeded: u64,
    /// Proposals answered with an error.
    pub proposals_failed: u64,
    /// Reads answered with an index.
    pub reads_succeeded: u64,
    /// Crashes injected.
    pub crashes: u64,
    /// Partitions injected.
    pub partitions: u64,
    /// Highest term reached.
    pub term_max: u64,
    /// Snapshots installed from a leader across all nodes.
    pub snapshots_installed: u64,
}

/// The state machine of the simulation: the applied sequence itself.
#[derive(Debug, Default, Clone)]
pub struct RecordingStateMachine {
    /// (index, command) in apply order.
    pub applied: Vec<(u64, Vec<u8>)>,
}

impl StateMachine for RecordingStateMachine {
    fn apply(&mut self, index: u64, command: &[u8]) -> Vec<u8> {
        self.applied.push((index, command.to_vec()));
        index.to_le_bytes().to_vec()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        let mut bytes = Vec::new();
        for (index, command) in &self.applied {
            bytes.extend_from_slice(&index.to_le_bytes());
            bytes.extend_from_slice(&(command.len() as u32).to_le_bytes());
            bytes.extend_from_slice(command);
        }
        Ok(bytes)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), StateMachineError> {
        let mut applied = Vec::new();
        let mut rest = snapshot;
        let truncated = || StateMachineError::Decode("truncated".to_owned());
        while !rest.is_empty() {
            let index = u64::from_le_bytes(
                rest.get(..8)
                    .ok_or_else(truncated)?
                    .try_into()
                    .map_err(|_| truncated())?,
            );
            let length = u32::from_le_bytes(
                rest.get(8..12)
                    .ok_or_else(truncated)?
                    .try_into()
                    .map_err(|_| truncated())?,
            ) as usize;
            let command = rest.get(12..12 + length).ok_or_else(truncated)?;
            applied.push((index, command.to_vec()));
            rest = &rest[12 + length..];
        }
        self.applied = applied;
        Ok(())
    }
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

struct InFlight {
    from: NodeId,
    to: NodeId,
    message: PeerMessage,
}

struct SimNode {
    id: NodeId,
    storage: MemoryStorage,
    core: Option<RaftCore<MemoryStorage, RecordingStateMachine>>,
    /// How far this node's applied sequence was checked (reset on restart).
    checked_applied: usize,
}

/// A running simulation.
pub struct Simulation {
    options: SimulationOptions,
    rng: SimulationRng,
    nodes: Vec<SimNode>,
    initial: InitialMembers,
    network: Vec<InFlight>,
    /// Blocked links (both directions are stored).
    partition: BTreeSet<(NodeId, NodeId)>,
    step: u64,
    next_request: u64,
    next_command: u64,
    /// (node, request) → command.
    proposals: BTreeMap<(NodeId, u64), Vec<u8>>,
    /// (node, request) → highest acknowledged write index when the read was asked.
    reads: BTreeMap<(NodeId, u64), u64>,
    acknowledged_index_max: u64,
    leaders: BTreeMap<u64, NodeId>,
    /// index → (term, data, type) of entries seen committed in some node's storage.
    committed: BTreeMap<u64, (u64, Vec<u8>, i32)>,
    /// index → command, the applied history.
    history: BTreeMap<u64, Vec<u8>>,
    /// command → index in the history.
    command_index: BTreeMap<Vec<u8>, u64>,
    dropped: BTreeSet<Vec<u8>>,
    report: SimulationReport,
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

const IN_FLIGHT_MAX: usize = 20_000;
const DELIVERIES_PER_STEP_MAX: u64 = 12;
const TICK_PROBABILITY: f64 = 0.25;
const PROPOSE_PROBABILITY: f64 = 0.3;
const READ_PROBABILITY: f64 = 0.1;
const ELECTION_TICKS: usize = 10;

impl Simulation {
    /// A new cluster of `options.nodes` voters, all bootstrapped.
    pub fn new(options: SimulationOptions) -> Result<Self, Violation> {
        let ids: Vec<NodeId> = (1..=options.nodes as u64).collect();
        let initial = InitialMembers {
            cluster_id: "simulation".to_owned(),
            bootstrap: crate::config::Bootstrap::New,
            voters: ids.iter().map(|id| (*id, format!("sim-{id}"))).collect(),
            learners: Vec::new(),
        };
        let mut simulation = Self {
            rng: SimulationRng::new(options.seed),
            options,
            nodes: Vec::new(),
            initial,
            network: Vec::new(),
            partition: BTreeSet::new(),
            step: 0,
            next_request: 0,
            next_command: 0,
            proposals: BTreeMap::new(),
            reads: BTreeMap::new(),
            acknowledged_index_max: 0,
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            history: BTreeMap::new(),
            command_index: BTreeMap::new(),
            dropped: BTreeSet::new(),
            report: SimulationReport::default(),
        };
        for id in ids {
            let storage = MemoryStorage::new();
            let core = simulation.open_core(id, storage.clone())?;
            simulation.nodes.push(SimNode {
                id,
                storage,
                core: Some(core),
                checked_applied: 0,
            });
        }
        Ok(simulation)
    }

    /// Run all steps, then the quiet phase and the final checks.
    pub fn run(mut self) -> Result<SimulationReport, Violation> {
        for _ in 0..self.options.steps {
            self.step(true)?;
        }
        self.partition.clear();
        for index in 0..self.nodes.len() {
            if self.nodes[index].core.is_none() {
                self.restart(index)?;
            }
        }
        for _ in 0..self.options.quiet_steps {
            self.step(false)?;
        }
        self.check_converged()?;
        self.report.commands_applied = self.history.len() as u64;
        Ok(self.report)
    }

    fn violation(&self, reason: String) -> Violation {
        Violation {
            seed: self.options.seed,
            step: self.step,
            reason,
        }
    }

    fn open_core(
        &mut self,
        id: NodeId,
        storage: MemoryStorage,
    ) -> Result<RaftCore<MemoryStorage, RecordingStateMachine>, Violation> {
        let election_ticks_min = ELECTION_TICKS + self.rng.below(ELECTION_TICKS as u64) as usize;
        let config = CoreConfig {
            node_id: id,
            election_ticks: ELECTION_TICKS,
            heartbeat_ticks: 2,
            election_ticks_min,
            election_ticks_max: election_ticks_min + 1,
            proposal_timeout_ticks: 60,
            read_timeout_ticks: 60,
            read_retry_ticks: 4,
            snapshot_threshold_entries: self.options.snapshot_threshold_entries,
            command_bytes_max: 1024,
            message_bytes_max: 64 * 1024,
            inflight_messages_max: 64,
            uncommitted_bytes_max: 1 << 20,
        };
        RaftCore::new(
            config,
            storage,
            RecordingStateMachine::default(),
            &self.initial,
        )
        .map_err(|error| self.violation(format!("node {id} failed to open: {error}")))
    }

    fn restart(&mut self, index: usize) -> Result<(), Violation> {
        let id = self.nodes[index].id;
        let storage = self.nodes[index].storage.clone();
        let core = self.open_core(id, storage)?;
        let node = &mut self.nodes[index];
        node.core = Some(core);
        node.checked_applied = 0;
        Ok(())
    }

    fn crash(&mut self, index: usize) {
        let id = self.nodes[index].id;
        self.nodes[index].core = None;
        // The process died: its callers lost their connection; nothing to check for them.
        self.proposals.retain(|(node, _), _| *node != id);
        self.reads.retain(|(node, _), _| *node != id);
        self.report.crashes += 1;
    }

    /// One step: faults, client requests, deliveries, ticks, polls, checks.
    pub fn step(&mut self, faults: bool) -> Result<(), Violation> {
        self.step += 1;
        let node_count = self.nodes.len();
        if faults {
            for index in 0..node_count {
                if self.nodes[index].core.is_none() && self.rng.chance(self.options.restart) {
                    self.restart(index)?;
                }
            }
            if self.partition.is_empty() && self.rng.chance(self.options.partition) {
                let side: Vec<NodeId> = self
                    .nodes
                    .iter()
                    .filter(|_| self.rng.next_u64() % 2 == 0)
                    .map(|node| node.id)
                    .collect();
                let side: BTreeSet<NodeId> = side.into_iter().collect();
                for a in &self.nodes {
                    for b in &self.nodes {
                        if side.contains(&a.id) != side.contains(&b.id) {
                            self.partition.insert((a.id, b.id));
                        }
                    }
                }
                self.report.partitions += 1;
            } else if !self.partition.is_empty() && self.rng.chance(self.options.heal) {
                self.partition.clear();
            }
            if self.rng.chance(PROPOSE_PROBABILITY) {
                let index = self.rng.below(node_count as u64) as usize;
                self.propose(index);
            }
            if self.rng.chance(READ_PROBABILITY) {
                let index = self.rng.below(node_count as u64) as usize;
                self.read(index);
            }
        }

        let deliveries = self.rng.below(DELIVERIES_PER_STEP_MAX + 1);
        for _ in 0..deliveries {
            if self.network.is_empty() {
                break;
            }
            let pick = self.rng.below(self.network.len() as u64) as usize;
            let in_flight = self.network.swap_remove(pick);
            if self.partition.contains(&(in_flight.from, in_flight.to)) {
                continue;
            }
            if let Some(core) = self.core_mut(in_flight.to) {
                core.handle_message(in_flight.from, in_flight.message);
            }
        }

        for index in 0..node_count {
            if self.nodes[index].core.is_some() && self.rng.chance(TICK_PROBABILITY) {
                if let Some(core) = self.nodes[index].core.as_mut() {
                    core.handle_tick();
                }
            }
        }

        for index in 0..node_count {
            if self.nodes[index].core.is_none() {
                continue;
            }
            // A crash here loses what the node received since its last poll, unpersisted.
            if faults && self.rng.chance(self.options.crash) {
                self.crash(index);
                continue;
            }
            let id = self.nodes[index].id;
            let output = match self.nodes[index].core.as_mut().map(RaftCore::poll) {
                Some(Ok(output)) => output,
                Some(Err(error)) => {
                    return Err(self.violation(format!("node {id} failed: {error}")));
                }
                None => continue,
            };
            for (to, message) in output.messages {
                if self.rng.chance(self.options.loss) {
                    continue;
                }
                // Raft tolerates duplicates, and forwards are applied at most once (term
                // check, replicated sessions), so every kind is duplicated: a duplicate
                // delivered late is a stale forward.
                if self.rng.chance(self.options.duplication) {
                    self.network.push(InFlight {
                        from: id,
                        to,
                        message: message.clone(),
                    });
                }
                self.network.push(InFlight {
                    from: id,
                    to,
                    message,
                });
            }
            if self.network.len() > IN_FLIGHT_MAX {
                let excess = self.network.len() - IN_FLIGHT_MAX;
                self.network.drain(..excess);
            }
            // Check the node's applied history before its answers: a response must name an
            // index already in the history.
            self.check_node(index)?;
            for completion in output.completions {
                self.handle_completion(id, completion)?;
            }
        }
        self.check_leaders()
    }

    fn core_mut(
        &mut self,
        id: NodeId,
    ) -> Option<&mut RaftCore<MemoryStorage, RecordingStateMachine>> {
        self.nodes
            .iter_mut()
            .find(|node| node.id == id)
            .and_then(|node| node.core.as_mut())
    }

    fn propose(&mut self, index: usize) {
        let request = self.next_request;
        let command = format!("command-{}", self.next_command).into_bytes();
        let node = &mut self.nodes[index];
        let Some(core) = node.core.as_mut() else {
            return;
        };
        self.next_request += 1;
        self.next_command += 1;
        core.handle_propose(request, command.clone());
        self.proposals.insert((node.id, request), command);
    }

    fn read(&mut self, index: usize) {
        let request = self.next_request;
        let node = &mut self.nodes[index];
        let Some(core) = node.core.as_mut() else {
            return;
        };
        self.next_request += 1;
        core.handle_read(request);
        self.reads
            .insert((node.id, request), self.acknowledged_index_max);
    }

    fn handle_completion(&mut self, node: NodeId, completion: Completion) -> Result<(), Violation> {
        match completion {
            Completion::Propose { id, result } => {
                let Some(command) = self.proposals.remove(&(node, id)) else {
                    return Err(self
                        .violation(format!("node {node}: completion for unknown proposal {id}")));
                };
                match result {
                    Ok(response) => {
                        let index =
                            u64::from_le_bytes(response.as_slice().try_into().map_err(|_| {
                                self.violation(format!("node {node}: malformed response"))
                            })?);
                        if self.history.get(&index) != Some(&command) {
                            return Err(self.violation(format!(
                                "node {node}: proposal {id} answered with index {index}, which holds {:?}",
                                self.history.get(&index).map(|c| String::from_utf8_lossy(c).into_owned())
                            )));
                        }
                        self.acknowledged_index_max = self.acknowledged_index_max.max(index);
                        self.report.proposals_succeeded += 1;
                    }
                    Err(error) => {
                        if error == ProposeError::Dropped {
                            if let Some(index) = self.command_index.get(&command) {
                                return Err(self.violation(format!(
                                    "node {node}: proposal {id} reported dropped but applied at {index}"
                                )));
                            }
                            self.dropped.insert(command);
                        }
                        self.report.proposals_failed += 1;
                    }
                }
            }
            Completion::Read { id, result } => {
                let Some(acknowledged) = self.reads.remove(&(node, id)) else {
                    return Err(
                        self.violation(format!("node {node}: completion for unknown read {id}"))
                    );
                };
                if let Ok(index) = result {
                    let applied = self.core_mut(node).map_or(0, |core| core.applied_index());
                    if index < acknowledged || applied < index {
                        return Err(self.violation(format!(
                            "node {node}: read {id} at index {index}, but {acknowledged} was acknowledged before it and {applied} is applied"
                        )));
                    }
                    self.report.reads_succeeded += 1;
                }
            }
            Completion::Membership { .. } => {}
        }
        Ok(())
    }

    fn check_node(&mut self, index: usize) -> Result<(), Violation> {
        let id = self.nodes[index].id;
        let Some(core) = self.nodes[index].core.as_ref() else {
            return Ok(());
        };
        let applied = core.state_machine().applied.clone();
        let checked = self.nodes[index].checked_applied;
        let commit = core.commit_index();
        let log = self.nodes[index].storage.log_state();
        // Sequence: commands apply in strictly increasing index order, same as everyone's.
        let mut previous = if checked > 0 {
            applied[checked - 1].0
        } else {
            0
        };
        for (position, (entry_index, command)) in applied.iter().enumerate().skip(checked) {
            if *entry_index <= previous && position > 0 {
                return Err(self.violation(format!(
                    "node {id}: applied index {entry_index} after {previous}"
                )));
            }
            previous = *entry_index;
            match self.history.get(entry_index) {
                Some(known) if known != command => {
                    return Err(self.violation(format!(
                        "node {id}: applied {:?} at {entry_index}, history has {:?}",
                        String::from_utf8_lossy(command),
                        String::from_utf8_lossy(known)
                    )));
                }
                Some(_) => {}
                None => {
                    if self.dropped.contains(command) {
                        return Err(self.violation(format!(
                            "node {id}: applied {:?}, which was reported dropped",
                            String::from_utf8_lossy(command)
                        )));
                    }
                    if let Some(other) = self.command_index.get(command) {
                        return Err(self.violation(format!(
                            "node {id}: command applied twice, at {other} and {entry_index}"
                        )));
                    }
                    self.history.insert(*entry_index, command.clone());
                    self.command_index.insert(command.clone(), *entry_index);
                }
            }
        }
        // Gaps: between two applied commands of this node the history must hold no command
        // (it would mean this node skipped one).
        if let (Some(first), Some(last)) = (applied.get(checked), applied.last()) {
            let own: BTreeSet<u64> = applied[checked..].iter().map(|(i, _)| *i).collect();
            if let Some(missing) = self
                .history
                .range(first.0..=last.0)
                .map(|(i, _)| *i)
                .find(|i| !own.contains(i))
            {
                return Err(self.violation(format!("node {id}: skipped the command at {missing}")));
            }
        }
        self.nodes[index].checked_applied = applied.len();
        // Stored committed entries never change.
        let first_index = log.first_index();
        let entries: Vec<Entry> = (first_index..=commit.min(log.last_index()))
            .filter_map(|i| {
                raft::Storage::entries(
                    &self.nodes[index].storage,
                    i,
                    i + 1,
                    None,
                    raft::GetEntriesContext::empty(false),
                )
                .ok()
                .and_then(|mut entries| entries.pop())
            })
            .collect();
        for entry in entries {
            let record = (
                entry.term,
                entry.data.to_vec(),
                protobuf::ProtobufEnum::value(&entry.entry_type),
            );
            match self.committed.get(&entry.index) {
                Some(known) if *known != record => {
                    return Err(self.violation(format!(
                        "node {id}: committed entry {} changed (term {} → {})",
                        entry.index, known.0, record.0
                    )));
                }
                Some(_) => {}
                None => {
                    self.committed.insert(entry.index, record);
                }
            }
        }
        Ok(())
    }

    fn check_leaders(&mut self) -> Result<(), Violation> {
        let mut installed = 0;
        for node in &self.nodes {
            let Some(core) = node.core.as_ref() else {
                continue;
            };
            installed += core.status().snapshots_installed;
            self.report.term_max = self.report.term_max.max(core.term());
            if core.is_leader() {
                let term = core.term();
                match self.leaders.get(&term) {
                    Some(leader) if *leader != node.id => {
                        return Err(self.violation(format!(
                            "two leaders in term {term}: {leader} and {}",
                            node.id
                        )));
                    }
                    Some(_) => {}
                    None => {
                        self.leaders.insert(term, node.id);
                    }
                }
            }
        }
        self.report.snapshots_installed = self.report.snapshots_installed.max(installed);
        Ok(())
    }

    fn check_converged(&mut self) -> Result<(), Violation> {
        let mut applied_indexes = BTreeSet::new();
        for node in &self.nodes {
            let Some(core) = node.core.as_ref() else {
                return Err(
                    self.violation(format!("node {} is down after the quiet phase", node.id))
                );
            };
            if core.pending_requests() > 0 {
                return Err(self.violation(format!(
                    "node {}: {} requests never answered",
                    node.id,
                    core.pending_requests()
                )));
            }
            let last = core.state_machine().applied.last().map(|(index, _)| *index);
            applied_indexes.insert(last);
        }
        if applied_indexes.len() != 1 {
            return Err(self.violation(format!(
                "nodes did not converge: last applied commands at {applied_indexes:?}"
            )));
        }
        if !self.proposals.is_empty() || !self.reads.is_empty() {
            return Err(self.violation(format!(
                "{} proposals and {} reads never answered",
                self.proposals.len(),
                self.reads.len()
            )));
        }
        if self.report.proposals_succeeded == 0 {
            return Err(self.violation("no proposal ever succeeded".to_owned()));
        }
        Ok(())
    }
}
