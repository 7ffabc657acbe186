//! The simulated nodes: open (always configured `bootstrap = "new"`, as a node keeps its
//! first configuration), crash (the store loses what it had not synced), fail an fsync,
//! crash mid-Ready, wipe the disk, and the poll that sends, checks and answers.

use crate::config::CoreConfig;
use crate::core::Completion;
use crate::error::{ClusterError, StorageError};
use crate::storage::memory::MemoryStorage;
use crate::transport::{NodeId, PeerMessage};

use super::clients::ReadView;
use super::machines::KEYS;
use super::{HistoryView, SimCore, Simulation, Violation};

const ELECTION_TICKS: usize = 10;

/// A node's transport address in the simulation.
pub(super) fn address(id: NodeId) -> String {
    format!("sim-{id}")
}

pub(super) struct SimNode {
    pub(super) id: NodeId,
    pub(super) storage: MemoryStorage,
    pub(super) core: Option<SimCore>,
    /// Index of the last put this node applied (or restored), for the order check.
    pub(super) last_applied: u64,
    /// Committed entries of this node's store checked up to here.
    pub(super) checked_commit: u64,
    /// The disk was wiped and the runbook has not re-added the node yet: it may (must)
    /// find out that its store lost acknowledged entries.
    pub(super) awaiting_rejoin: bool,
}

impl SimNode {
    pub(super) fn new(id: NodeId) -> Self {
        Self {
            id,
            storage: MemoryStorage::new(),
            core: None,
            last_applied: 0,
            checked_commit: 0,
            awaiting_rejoin: false,
        }
    }
}

impl Simulation {
    pub(super) fn restart(&mut self, index: usize) -> Result<(), Violation> {
        let id = self.nodes[index].id;
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
            compaction_lag_entries: self.options.compaction_lag_entries,
            command_bytes_max: 1024,
            message_bytes_max: 64 * 1024,
            inflight_messages_max: 64,
            uncommitted_bytes_max: 1 << 20,
        };
        let storage = self.nodes[index].storage.clone();
        let core = SimCore::new(config, storage, Default::default(), &self.initial)
            .map_err(|error| self.violation(format!("node {id} failed to open: {error}")))?;
        let node = &mut self.nodes[index];
        node.core = Some(core);
        node.last_applied = 0;
        node.checked_commit = 0;
        // Opening restored the latest snapshot: check it like any other.
        self.check_applied(index)
    }

    /// The process dies: the store keeps only what was synced, callers lose their answers.
    pub(super) fn crash(&mut self, index: usize) {
        self.retire_counters(index);
        let node = &mut self.nodes[index];
        node.core = None;
        node.storage.crash();
        let id = node.id;
        self.clients.node_crashed(id);
        self.operator.node_crashed(id);
        self.report.crashes += 1;
    }

    /// Keep the counters of a core that goes away.
    pub(super) fn retire_counters(&mut self, index: usize) {
        if let Some(core) = self.nodes[index].core.as_ref() {
            self.report.snapshots_installed += core.status().snapshots_installed;
            self.report.term_max = self.report.term_max.max(core.term());
        }
    }

    /// The disk is lost: crash, wipe, start again on the empty store.
    pub(super) fn wipe(&mut self, index: usize) -> Result<(), Violation> {
        if self.nodes[index].core.is_some() {
            self.crash(index);
        }
        self.nodes[index].storage.wipe();
        self.nodes[index].awaiting_rejoin = true;
        self.report.wipes += 1;
        self.restart(index)
    }

    /// Poll one node (with its faults), send, check, answer.
    pub(super) fn poll_node(&mut self, index: usize, faults: bool) -> Result<(), Violation> {
        if self.nodes[index].core.is_none() {
            return Ok(());
        }
        // A crash here loses what the node received since its last poll, unpersisted.
        if faults && self.rng.chance(self.options.crash) {
            self.crash(index);
            return Ok(());
        }
        if faults && self.rng.chance(self.options.fsync_failure) {
            self.nodes[index].storage.fail_next_persist();
        }
        let crash_mid_ready = faults && self.rng.chance(self.options.crash_mid_ready);
        let id = self.nodes[index].id;
        let link_faults = self.link_faults();
        let step = self.step;
        let mut send_error = None;
        let result = {
            let network = &mut self.network;
            let rng = &mut self.rng;
            let Some(core) = self.nodes[index].core.as_mut() else {
                return Ok(());
            };
            // The leader's appends leave before its own write (Raft thesis §10.2.1).
            let mut send_early = |to: NodeId, message: PeerMessage| {
                if let Err(error) = network.send(rng, link_faults, step, id, to, message) {
                    send_error = Some(error);
                }
                true
            };
            core.poll_sending(Some(&mut send_early))
        };
        if let Some(error) = send_error {
            return Err(self.violation(format!("node {id}: a message failed in transit: {error}")));
        }
        // What the state machine applied during the poll, before anything else: a response
        // must name an index already in the history.
        self.check_applied(index)?;
        let output = match result {
            Ok(output) => output,
            Err(ClusterError::Storage(StorageError::Injected(_))) => {
                self.report.fsync_failures += 1;
                self.crash(index);
                return Ok(());
            }
            Err(error) => return Err(self.violation(format!("node {id} failed: {error}"))),
        };
        if crash_mid_ready {
            // Persisted and applied, but nothing else left the node.
            self.report.crashes_mid_ready += 1;
            self.crash(index);
            return Ok(());
        }
        for (to, message) in output.messages {
            self.network
                .send(&mut self.rng, link_faults, step, id, to, message)
                .map_err(|error| {
                    self.violation(format!("node {id}: a message failed in transit: {error}"))
                })?;
        }
        self.check_commits(index)?;
        self.check_store_kept(index)?;
        let view = match self.nodes[index].core.as_ref() {
            Some(core) => {
                let machine = core.state_machine();
                let mut values = [0; KEYS];
                for (key, value) in values.iter_mut().enumerate() {
                    *value = machine.get(key as u8);
                }
                ReadView {
                    applied: core.applied_index(),
                    values,
                    check_index: self.options.check_read_index,
                }
            }
            None => return Ok(()),
        };
        for completion in output.completions {
            if let Completion::Membership {
                id: request,
                result,
            } = &completion
            {
                let done = self
                    .operator
                    .complete(id, *request, result.is_ok())
                    .map_err(|reason| self.violation(reason))?;
                if done {
                    self.report.membership_changes += 1;
                }
                continue;
            }
            let history = HistoryView {
                history: &self.history,
                value_index: &self.value_index,
            };
            self.clients
                .complete(id, &completion, self.step, &history, &view)
                .map_err(|reason| self.violation(reason))?;
        }
        Ok(())
    }
}
