//! Snapshots on their way to followers: a send that stops making progress is reported
//! failed, so raft-rs probes again; the transport's byte count tells progress apart.

use super::tick::take_expired;
use super::*;

/// A snapshot on its way to a follower.
#[derive(Debug, Clone, Copy)]
pub(super) struct SnapshotSend {
    /// The tick of the send, or of the last progress the transport reported.
    pub(super) progress_tick: u64,
    /// The transport's byte count for the peer at that report (`None`: none yet).
    pub(super) bytes_sent: Option<u64>,
}

impl<S: Storage, M: StateMachine> RaftCore<S, M> {
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
