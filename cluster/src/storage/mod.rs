//! Storage: the durable half of a Raft peer — log, hard state, latest snapshot.
//!
//! [`Storage`] is what the driver writes through; it also implements raft-rs's read-only
//! [`raft::Storage`], so the same object is handed to `RawNode`. Two implementations:
//! [`memory::MemoryStorage`] (tests and the deterministic simulation; a clone shares the same
//! data so a simulated crash can restart from "the disk") and [`rocks::RocksStorage`]
//! (production; RocksDB with column families and checksummed records).
//!
//! Both keep the uncompacted tail of the log in memory ([`LogState`]): reads by raft-rs never
//! touch the disk, and the memory is bounded by the snapshot threshold (the log is compacted
//! after every snapshot). RocksDB is written through and read only when opening.
//!
//! The conf state is stored with the snapshot: the state machine lives in memory and is
//! rebuilt on restart from the latest snapshot plus the entries after it, so membership must be
//! the one of that snapshot, and conf changes in the replayed entries are applied again.

pub mod memory;
pub mod recovery;
pub mod rocks;

use raft::RaftState;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};

pub use crate::codec::StoreIdentity;
pub use crate::error::StorageError;
use crate::snapshot_body::{SnapshotBody, SnapshotWriter};

/// One Ready's worth of durable writes, applied atomically in this order: snapshot, entries,
/// hard state.
#[derive(Debug, Default)]
pub struct PersistRequest<'a> {
    /// A snapshot received from the leader (metadata, body): replaces the log.
    pub snapshot: Option<(&'a Snapshot, &'a SnapshotBody)>,
    /// Entries to append; any stored entry at or after the first one's index is replaced.
    pub entries: &'a [Entry],
    /// The new hard state, if it changed.
    pub hard_state: Option<&'a HardState>,
    /// Whether the write must reach the disk before returning (fsync).
    pub sync: bool,
}

/// Durable Raft storage. Writes take `&mut self`: the driver owns the storage inside `RawNode`.
pub trait Storage: raft::Storage + Send + 'static {
    /// True when nothing was ever stored: the node must bootstrap or wait to be added.
    fn is_empty(&self) -> bool;
    /// Write the initial snapshot of a new cluster (membership, empty state) and the store's
    /// identity, together and synced. Fails if the store is not empty.
    fn bootstrap(
        &mut self,
        snapshot: &Snapshot,
        body: &SnapshotBody,
        identity: &StoreIdentity,
    ) -> Result<(), StorageError>;
    /// Who the store belongs to; `None` for a store written before identities existed (or
    /// never initialised).
    fn identity(&self) -> Option<StoreIdentity>;
    /// Record who the store belongs to (synced).
    fn set_identity(&mut self, identity: &StoreIdentity) -> Result<(), StorageError>;
    /// Persist one Ready's worth of state (see [`PersistRequest`]).
    fn persist(&mut self, request: PersistRequest<'_>) -> Result<(), StorageError>;
    /// Record the commit index learned after a Ready; not synced (Raft can recover it).
    fn set_commit(&mut self, commit: u64) -> Result<(), StorageError>;
    /// Store a snapshot the local state machine produced, then drop the log before
    /// `keep_from` (clamped to the snapshot's index + 1): the entries between `keep_from` and
    /// the snapshot stay, so a follower lagging by fewer entries is sent entries, not the
    /// snapshot (the compaction lag). Synced: the snapshot and the compaction land together.
    fn save_snapshot(
        &mut self,
        snapshot: &Snapshot,
        body: &SnapshotBody,
        keep_from: u64,
    ) -> Result<(), StorageError>;
    /// The latest snapshot's metadata (bootstrap, received or produced); its `data` is empty:
    /// the bytes are [`Self::latest_snapshot_body`].
    fn latest_snapshot(&self) -> Snapshot;
    /// The latest snapshot's body.
    fn latest_snapshot_body(&self) -> SnapshotBody;
    /// Where to write the body of a snapshot this store will keep (a file beside the store
    /// for RocksDB, memory for the memory store); hand the finished body to
    /// [`Self::save_snapshot`].
    fn snapshot_writer(&mut self, index: u64, term: u64) -> Result<SnapshotWriter, StorageError>;
}

/// The in-memory image of a store: hard state, latest snapshot and the log after it.
#[derive(Debug, Clone, Default)]
pub struct LogState {
    hard_state: HardState,
    /// The latest snapshot's metadata (`data` always empty).
    snapshot: Snapshot,
    /// The latest snapshot's bytes.
    body: SnapshotBody,
    /// Contiguous: `entries[i].index == entries[0].index + i`. They start at or before the
    /// snapshot's index + 1 (entries the snapshot covers may be kept for lagging followers:
    /// the compaction lag) and, when any are kept, reach at least the snapshot's index.
    entries: Vec<Entry>,
    /// Who the store belongs to.
    identity: Option<StoreIdentity>,
}

impl LogState {
    /// Build from parts read back from disk (entries in index order); checks that the log
    /// after the snapshot is contiguous from the snapshot's index + 1. Entries the snapshot
    /// covers are kept if they run contiguously into the rest (the compaction lag) and
    /// dropped otherwise.
    pub fn from_parts(
        hard_state: HardState,
        snapshot: Snapshot,
        body: SnapshotBody,
        mut entries: Vec<Entry>,
    ) -> Result<Self, StorageError> {
        debug_assert!(snapshot.data.is_empty(), "snapshot bytes live in the body");
        let snapshot_index = snapshot.get_metadata().index;
        // Covered entries are kept only as a contiguous run ending at the snapshot's index.
        let covered = entries.partition_point(|entry| entry.index <= snapshot_index);
        let mut run_start = covered;
        while run_start > 0
            && snapshot_index.checked_sub((covered - run_start) as u64)
                == Some(entries[run_start - 1].index)
        {
            run_start -= 1;
        }
        entries.drain(..run_start);
        let first = entries.first().map_or(snapshot_index + 1, |entry| {
            entry.index.min(snapshot_index + 1)
        });
        for (expected, entry) in (first..).zip(entries.iter()) {
            if entry.index != expected {
                return Err(StorageError::Corrupted {
                    column_family: rocks::COLUMN_FAMILY_LOG,
                    key: entry.index.to_string(),
                    reason: format!("log is not contiguous: expected index {expected}"),
                });
            }
        }
        Ok(Self {
            hard_state,
            snapshot,
            body,
            entries,
            identity: None,
        })
    }

    /// Who the store belongs to.
    pub fn identity(&self) -> Option<&StoreIdentity> {
        self.identity.as_ref()
    }

    /// Set who the store belongs to.
    pub fn set_identity(&mut self, identity: &StoreIdentity) {
        self.identity = Some(identity.clone());
    }

    /// True when nothing was ever stored.
    pub fn is_empty(&self) -> bool {
        self.hard_state == HardState::default()
            && self.snapshot.get_metadata().index == 0
            && self.entries.is_empty()
    }

    /// The hard state.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// The latest snapshot's metadata (`data` is empty).
    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    /// The latest snapshot's bytes.
    pub fn snapshot_body(&self) -> &SnapshotBody {
        &self.body
    }

    /// The first index still in the log: one past the snapshot, or earlier when entries the
    /// snapshot covers are kept (the compaction lag).
    pub fn first_index(&self) -> u64 {
        let after_snapshot = self.snapshot.get_metadata().index + 1;
        self.entries
            .first()
            .map_or(after_snapshot, |entry| entry.index.min(after_snapshot))
    }

    /// The last index in the log (the snapshot's when the log is empty).
    pub fn last_index(&self) -> u64 {
        let snapshot_index = self.snapshot.get_metadata().index;
        self.entries
            .last()
            .map_or(snapshot_index, |entry| entry.index.max(snapshot_index))
    }

    /// Apply a received snapshot: the log is replaced by it.
    pub fn apply_snapshot(&mut self, snapshot: &Snapshot, body: &SnapshotBody) {
        let metadata = snapshot.get_metadata();
        self.hard_state.term = self.hard_state.term.max(metadata.term);
        self.hard_state.commit = self.hard_state.commit.max(metadata.index);
        self.entries.clear();
        self.snapshot = metadata_only(snapshot);
        self.body = body.clone();
    }

    /// Append entries, replacing any stored entry at or after the first one's index.
    /// Returns the index from which stored entries were replaced, if any were.
    pub fn append(&mut self, entries: &[Entry]) -> Result<Option<u64>, StorageError> {
        let Some(first) = entries.first() else {
            return Ok(None);
        };
        let first_index = self.first_index();
        // Never at or before the snapshot: what it covers is committed.
        if first.index <= self.snapshot.get_metadata().index || first.index > self.last_index() + 1
        {
            return Err(StorageError::OutOfRange {
                low: first.index,
                high: first.index + entries.len() as u64,
                first: first_index,
                last: self.last_index(),
            });
        }
        let keep = (first.index - first_index) as usize;
        let truncated_from = (keep < self.entries.len()).then_some(first.index);
        self.entries.truncate(keep);
        self.entries.extend_from_slice(entries);
        Ok(truncated_from)
    }

    /// Set the hard state.
    pub fn set_hard_state(&mut self, hard_state: &HardState) {
        self.hard_state = hard_state.clone();
    }

    /// Set the commit index.
    pub fn set_commit(&mut self, commit: u64) {
        self.hard_state.commit = commit;
    }

    /// Store a locally produced snapshot and drop the entries before `keep_from` (clamped
    /// to the snapshot's index + 1; see [`Storage::save_snapshot`]). Returns the new first
    /// index.
    pub fn save_snapshot(
        &mut self,
        snapshot: &Snapshot,
        body: &SnapshotBody,
        keep_from: u64,
    ) -> Result<u64, StorageError> {
        let index = snapshot.get_metadata().index;
        if index < self.snapshot.get_metadata().index || index > self.last_index() {
            return Err(StorageError::OutOfRange {
                low: index,
                high: index + 1,
                first: self.first_index(),
                last: self.last_index(),
            });
        }
        let first_index = self.first_index();
        let compact_to = keep_from.clamp(first_index, index + 1);
        let drop_count = ((compact_to - first_index) as usize).min(self.entries.len());
        self.entries.drain(..drop_count);
        self.snapshot = metadata_only(snapshot);
        self.body = body.clone();
        Ok(self.first_index())
    }

    fn raft_state(&self) -> RaftState {
        RaftState {
            hard_state: self.hard_state.clone(),
            conf_state: self.conf_state().clone(),
        }
    }

    fn conf_state(&self) -> &ConfState {
        self.snapshot.get_metadata().get_conf_state()
    }

    fn entries(&self, low: u64, high: u64, max_size: Option<u64>) -> raft::Result<Vec<Entry>> {
        if low < self.first_index() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        let offset = self.first_index();
        let mut entries = self.entries[(low - offset) as usize..(high - offset) as usize].to_vec();
        raft::util::limit_size(&mut entries, max_size);
        Ok(entries)
    }

    fn term(&self, index: u64) -> raft::Result<u64> {
        let metadata = self.snapshot.get_metadata();
        if index == metadata.index {
            return Ok(metadata.term);
        }
        if index < self.first_index() {
            return Err(raft::Error::Store(raft::StorageError::Compacted));
        }
        if index > self.last_index() {
            return Err(raft::Error::Store(raft::StorageError::Unavailable));
        }
        Ok(self.entries[(index - self.first_index()) as usize].term)
    }
}

/// A snapshot's metadata without its data (the bytes live in a [`SnapshotBody`]).
pub fn metadata_only(snapshot: &Snapshot) -> Snapshot {
    let mut copy = Snapshot::default();
    copy.set_metadata(snapshot.get_metadata().clone());
    copy
}

/// Implements raft-rs's read side for a type that can lend its [`LogState`].
macro_rules! impl_raft_storage {
    ($type:ty, $state:ident => $borrow:expr) => {
        impl raft::Storage for $type {
            fn initial_state(&self) -> raft::Result<raft::RaftState> {
                let $state = self;
                Ok($borrow.raft_state())
            }

            fn entries(
                &self,
                low: u64,
                high: u64,
                max_size: impl Into<Option<u64>>,
                _context: raft::GetEntriesContext,
            ) -> raft::Result<Vec<raft::eraftpb::Entry>> {
                let $state = self;
                $borrow.entries(low, high, max_size.into())
            }

            fn term(&self, index: u64) -> raft::Result<u64> {
                let $state = self;
                $borrow.term(index)
            }

            fn first_index(&self) -> raft::Result<u64> {
                let $state = self;
                Ok($borrow.first_index())
            }

            fn last_index(&self) -> raft::Result<u64> {
                let $state = self;
                Ok($borrow.last_index())
            }

            fn snapshot(
                &self,
                _request_index: u64,
                _to: u64,
            ) -> raft::Result<raft::eraftpb::Snapshot> {
                let $state = self;
                Ok($borrow.snapshot().clone())
            }
        }
    };
}
pub(crate) use impl_raft_storage;
