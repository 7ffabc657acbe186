//! Snapshots: taking our own (streamed from the state machine into the store's snapshot
//! file), receiving the leader's (body checked before stepping, restored before persisting),
//! and sending: a send that stops making progress is reported failed, so raft-rs probes
//! again; the transport's byte count tells progress apart.

use std::io::Write as _;

use crate::snapshot_body::SnapshotWriter;
use crate::state_machine::SnapshotView;

use super::tick::take_expired;
use super::*;

/// Received snapshot bodies kept between a step and the Ready after it (one is usual; a
/// bound all the same).
pub(super) const RECEIVED_BODIES_MAX: usize = 4;

/// A snapshot to build on another thread: the state machine's view written after the
/// driver's header (already in `writer`).
pub struct SnapshotJob {
    index: u64,
    term: u64,
    conf_state: ConfState,
    writer: SnapshotWriter,
    view: Box<dyn SnapshotView>,
}

impl std::fmt::Debug for SnapshotJob {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SnapshotJob")
            .field("index", &self.index)
            .field("term", &self.term)
            .finish_non_exhaustive()
    }
}

impl SnapshotJob {
    /// Write the view into the writer and finish the body (blocking file IO: run it on a
    /// thread of its own).
    pub fn run(self) -> BuiltSnapshot {
        let SnapshotJob {
            index,
            term,
            conf_state,
            mut writer,
            view,
        } = self;
        let result = view
            .write_to(&mut writer)
            .and_then(|()| writer.finish().map_err(crate::StateMachineError::write));
        BuiltSnapshot {
            index,
            term,
            conf_state,
            result,
        }
    }
}

/// What a [`SnapshotJob`] produced.
#[derive(Debug)]
pub struct BuiltSnapshot {
    index: u64,
    term: u64,
    conf_state: ConfState,
    result: Result<SnapshotBody, crate::StateMachineError>,
}

/// Restore `state_machine` from a snapshot body: the driver's header is decoded first, then
/// the state machine reads its state from the rest of the stream (one buffer of memory
/// beyond what the state machine keeps); the whole body is read, so its crc32 is checked.
pub(super) fn restore_from_body<M: StateMachine>(
    state_machine: &mut M,
    body: &SnapshotBody,
) -> Result<SnapshotEnvelope, ClusterError> {
    let mut reader = body.reader();
    let envelope = SnapshotEnvelope::decode_header(&mut reader)?;
    state_machine.restore_from(&mut reader)?;
    // What the state machine left unread still counts towards the crc32 check.
    std::io::copy(&mut reader, &mut std::io::sink())
        .map_err(|error| crate::StateMachineError::Decode(error.to_string()))?;
    Ok(envelope)
}

/// Whether a received body can be a snapshot: not empty, and its driver header decodes.
fn check_body(body: &SnapshotBody) -> Result<(), &'static str> {
    if body.is_empty() {
        return Err("snapshot without a body");
    }
    SnapshotEnvelope::decode_header(&mut body.reader())
        .map(|_| ())
        .map_err(|_| "snapshot body cannot be decoded")
}

/// A snapshot on its way to a follower.
#[derive(Debug, Clone, Copy)]
pub(super) struct SnapshotSend {
    /// The tick of the send, or of the last progress the transport reported.
    pub(super) progress_tick: u64,
    /// The transport's byte count for the peer at that report (`None`: none yet).
    pub(super) bytes_sent: Option<u64>,
}

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
    /// A snapshot from a peer: its body is checked and kept, then the message is stepped.
    pub(super) fn handle_snapshot(
        &mut self,
        from: NodeId,
        message: Box<RaftMessage>,
        body: SnapshotBody,
    ) {
        if message.get_msg_type() != MessageType::MsgSnapshot {
            tracing::debug!(from, "a snapshot body beside another kind: dropped");
            return;
        }
        if let Err(reason) = check_body(&body) {
            tracing::warn!(
                node_id = self.config.node_id,
                from,
                reason,
                "snapshot dropped"
            );
            return;
        }
        let metadata = message.get_snapshot().get_metadata();
        let key = (metadata.index, metadata.term);
        self.received_bodies.retain(|(kept, _)| *kept != key);
        if self.received_bodies.len() == RECEIVED_BODIES_MAX {
            self.received_bodies.pop_front();
        }
        self.received_bodies.push_back((key, body));
        self.step_raft(from, message);
    }

    /// After a Ready: sends of a snapshot the store replaced are reported failed, and the
    /// received bodies not installed are dropped (raft-rs installs a snapshot it accepts in
    /// the Ready right after stepping it; the others were stale). Dropping a spool file's
    /// last handle removes it.
    pub(super) fn after_ready_snapshots(&mut self) {
        for to in std::mem::take(&mut self.stale_snapshot_sends) {
            self.raw.report_snapshot(to, SnapshotStatus::Failure);
        }
        self.received_bodies.clear();
    }

    /// The body of the snapshot raft-rs asks to install.
    pub(super) fn take_received_body(
        &mut self,
        snapshot: &Snapshot,
    ) -> Result<SnapshotBody, ClusterError> {
        let metadata = snapshot.get_metadata();
        let key = (metadata.index, metadata.term);
        let position = self
            .received_bodies
            .iter()
            .position(|(kept, _)| *kept == key);
        position
            .and_then(|position| self.received_bodies.remove(position))
            .map(|(_, body)| body)
            .ok_or_else(|| {
                ClusterError::Storage(crate::StorageError::Io(format!(
                    "the body of the snapshot at index {} term {} was not kept",
                    key.0, key.1
                )))
            })
    }

    /// A `MsgSnapshot` raft-rs made for a follower, with the body of the store's snapshot it
    /// names; `None` when the store moved on to a newer snapshot meanwhile (the send is then
    /// reported failed and raft-rs sends the newer one).
    pub(super) fn snapshot_message(&mut self, message: RaftMessage) -> Option<PeerMessage> {
        let to = message.to;
        let store = self.raw.store();
        let latest = store.latest_snapshot();
        let named = message.get_snapshot().get_metadata();
        if latest.get_metadata().index != named.index || latest.get_metadata().term != named.term {
            // Reported once the Ready is advanced: raft-rs then probes and sends the newer.
            self.stale_snapshot_sends.push(to);
            return None;
        }
        debug_assert!(message.get_snapshot().data.is_empty());
        Some(PeerMessage::Snapshot {
            body: store.latest_snapshot_body(),
            message: Box::new(message),
        })
    }

    /// Take a snapshot of the applied state when the threshold is reached (or a new member
    /// needs one): the driver's header and then the state machine's state are streamed into
    /// the store's snapshot writer (a file for RocksDB), and the log is compacted behind it.
    /// A snapshot that cannot be written (larger than [`codec::SNAPSHOT_BYTES_MAX`], disk
    /// full) is not taken: the log is kept and it is tried again a threshold later.
    pub(super) fn maybe_snapshot(&mut self) -> Result<(), ClusterError> {
        let threshold_reached = self.applied
            >= (self.snapshot_index + self.config.snapshot_threshold_entries)
                .max(self.snapshot_retry_at);
        if !threshold_reached && !self.snapshot_for_new_member {
            return Ok(());
        }
        if self.snapshot_building.is_some() {
            // One at a time; the threshold is checked again once it is in.
            return Ok(());
        }
        self.snapshot_for_new_member = false;
        let index = self.applied;
        let term = self.raw.raft.raft_log.term(index)?;
        let header = SnapshotEnvelope {
            peer_addresses: self.peer_addresses.clone(),
            sessions: self.sessions.table().clone(),
            known_stores: self.known_stores.set().clone(),
            state: Vec::new(),
        }
        .encode_header();
        let mut writer = self.raw.mut_store().snapshot_writer(index, term)?;
        let header_written = writer
            .write_all(&header)
            .map_err(crate::StateMachineError::write);
        if self.background_snapshots
            && header_written.is_ok()
            && let Some(view) = self.state_machine.snapshot_view()
        {
            self.snapshot_building = Some(index);
            self.output.snapshot_jobs.push(SnapshotJob {
                index,
                term,
                conf_state: self.conf_state.clone(),
                writer,
                view,
            });
            return Ok(());
        }
        let written = header_written.and_then(|()| self.state_machine.snapshot_to(&mut writer));
        let body = written.and_then(|()| writer.finish().map_err(crate::StateMachineError::write));
        self.save_built_snapshot(index, term, self.conf_state.clone(), body)
    }

    /// Snapshots may be built on another thread when the state machine offers a view
    /// ([`StateMachine::snapshot_view`]): the runtime runs the [`SnapshotJob`]s of the output
    /// and hands their results to [`Self::handle_snapshot_built`]. The simulation does not
    /// (it builds in line, deterministically).
    pub fn enable_background_snapshots(&mut self) {
        self.background_snapshots = true;
    }

    /// A snapshot built on another thread is in: stored and the log compacted behind it,
    /// unless a snapshot at a later index was installed meanwhile.
    pub fn handle_snapshot_built(&mut self, built: BuiltSnapshot) -> Result<(), ClusterError> {
        debug_assert_eq!(self.snapshot_building, Some(built.index));
        self.snapshot_building = None;
        if built.index <= self.snapshot_index {
            tracing::debug!(
                node_id = self.config.node_id,
                index = built.index,
                "snapshot built after a later one was installed: dropped"
            );
            return Ok(());
        }
        self.save_built_snapshot(built.index, built.term, built.conf_state, built.result)
    }

    /// Store a snapshot built here (in line or on another thread) and compact the log; a
    /// write error refuses it (the log is kept and it is tried again a threshold later).
    fn save_built_snapshot(
        &mut self,
        index: u64,
        term: u64,
        conf_state: ConfState,
        body: Result<SnapshotBody, crate::StateMachineError>,
    ) -> Result<(), ClusterError> {
        let body = match body {
            Ok(body) => body,
            Err(crate::StateMachineError::Write(error)) => {
                // It could never be shipped to a follower, or not be kept: keep the log
                // instead (it grows) and try again a threshold later.
                tracing::error!(
                    node_id = self.config.node_id,
                    index,
                    %error,
                    "snapshot not taken; the log is not compacted"
                );
                self.snapshot_retry_at = index + self.config.snapshot_threshold_entries;
                self.counters.snapshots_refused += 1;
                return Ok(());
            }
            Err(error) => return Err(error.into()),
        };
        let mut snapshot = Snapshot::default();
        let metadata = snapshot.mut_metadata();
        metadata.index = index;
        metadata.term = term;
        metadata.set_conf_state(conf_state);
        let first_index = self.raw.store().first_index()?;
        // Keep the last `compaction_lag_entries` entries the snapshot covers: a follower
        // that lags by fewer is sent them, not the whole state.
        let keep_from = (index + 1).saturating_sub(self.config.compaction_lag_entries);
        self.raw
            .mut_store()
            .save_snapshot(&snapshot, &body, keep_from)?;
        let first_index_after = self.raw.store().first_index()?;
        self.snapshot_index = index;
        self.counters.snapshots_created += 1;
        self.counters.compactions += 1;
        self.counters.entries_compacted += first_index_after.saturating_sub(first_index);
        tracing::debug!(
            node_id = self.config.node_id,
            index,
            bytes = body.len(),
            "snapshot taken, log compacted"
        );
        Ok(())
    }
    /// A snapshot lost on the way leaves the follower's progress paused in the Snapshot state
    /// forever: once it has made no progress for two election timeouts (no bytes written by
    /// the transport, see [`Self::handle_snapshot_progress`]), report it failed so raft-rs
    /// probes again (and sends a new snapshot if needed). A large snapshot that keeps moving
    /// is never declared failed, however long it takes.
    pub(super) fn expire_snapshot_sends(&mut self, now: u64) {
        let snapshot_timeout = 2 * self.config.election_ticks as u64;
        for (id, _) in take_expired(&mut self.snapshot_sends, now, |send| {
            send.progress_tick + snapshot_timeout
        }) {
            let still_pending = self
                .raw
                .raft
                .prs()
                .get(id)
                .is_some_and(|progress| progress.state == ProgressState::Snapshot);
            if still_pending {
                tracing::info!(
                    node_id = self.config.node_id,
                    to = id,
                    "snapshot made no progress for two election timeouts: failed"
                );
                self.raw.report_snapshot(id, SnapshotStatus::Failure);
            }
        }
    }

    /// Followers a snapshot is on its way to: the runtime asks the transport how far each
    /// got and reports it with [`Self::handle_snapshot_progress`].
    pub fn snapshot_sends(&self) -> Vec<NodeId> {
        self.snapshot_sends.keys().copied().collect()
    }

    /// The transport has written `bytes_sent` bytes of large messages to `to` so far (a
    /// count that only grows): if it grew since the last report, the snapshot on its way
    /// there is making progress and its failure timeout starts again.
    pub fn handle_snapshot_progress(&mut self, to: NodeId, bytes_sent: u64) {
        let tick = self.tick;
        if let Some(send) = self.snapshot_sends.get_mut(&to) {
            if send.bytes_sent.is_some_and(|before| bytes_sent > before) {
                send.progress_tick = tick;
            }
            send.bytes_sent = Some(bytes_sent);
        }
    }
}
