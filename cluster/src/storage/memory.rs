//! In-memory [`Storage`]: for tests and the deterministic simulation.
//!
//! Clones share the same data (an `Arc` inside), so a test keeps a clone as "the disk" and
//! restarts a crashed driver from it. The store models an fsync boundary: a write made with
//! `sync` (and every write the [`Storage`] contract says is synced) is durable at once; a write
//! without it (the commit index, a persist raft-rs did not ask to sync) is only in the page
//! cache until the next synced write. [`MemoryStorage::crash`] drops what was not durable, as
//! a power loss does. [`MemoryStorage::fail_next_persist`] makes the next persist fail without
//! writing anything (a failed fsync): the driver must stop, not continue.

use std::sync::Arc;

use parking_lot::Mutex;
use raft::eraftpb::{Entry, HardState, Snapshot};

use super::{LogState, PersistRequest, Storage, StorageError, StoreIdentity, impl_raft_storage};
use crate::snapshot_body::{SnapshotBody, SnapshotWriter};

/// In-memory storage; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<Disk>>,
}

/// A write not yet made durable, replayed onto the durable image at the next sync.
#[derive(Debug, Clone)]
enum Unsynced {
    Persist {
        snapshot: Option<(Snapshot, SnapshotBody)>,
        entries: Vec<Entry>,
        hard_state: Option<HardState>,
    },
    Commit(u64),
}

#[derive(Debug, Default)]
struct Disk {
    /// What readers see (the page cache).
    current: LogState,
    /// What survives a crash.
    durable: LogState,
    /// Writes in `current` but not in `durable`, in order.
    unsynced: Vec<Unsynced>,
    /// The next persist fails (and writes nothing).
    fail_next_persist: bool,
}

impl Disk {
    /// Make everything written so far durable (an fsync covers all earlier writes).
    fn sync(&mut self) -> Result<(), StorageError> {
        for write in self.unsynced.drain(..) {
            match write {
                Unsynced::Persist {
                    snapshot,
                    entries,
                    hard_state,
                } => apply_persist(
                    &mut self.durable,
                    snapshot.as_ref().map(|(snapshot, body)| (snapshot, body)),
                    &entries,
                    hard_state.as_ref(),
                )?,
                Unsynced::Commit(commit) => self.durable.set_commit(commit),
            }
        }
        Ok(())
    }
}

fn apply_persist(
    state: &mut LogState,
    snapshot: Option<(&Snapshot, &SnapshotBody)>,
    entries: &[Entry],
    hard_state: Option<&HardState>,
) -> Result<(), StorageError> {
    if let Some((snapshot, body)) = snapshot {
        state.apply_snapshot(snapshot, body);
    }
    state.append(entries)?;
    if let Some(hard_state) = hard_state {
        state.set_hard_state(hard_state);
    }
    Ok(())
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the stored state (as readers see it), for checks in tests.
    pub fn log_state(&self) -> LogState {
        self.state.lock().current.clone()
    }

    /// Lose everything, as a wiped disk does (the simulation's fault; clones see it too).
    pub fn wipe(&self) {
        *self.state.lock() = Disk::default();
    }

    /// A power loss: what was not synced is gone.
    pub fn crash(&self) {
        let mut disk = self.state.lock();
        disk.unsynced.clear();
        disk.current = disk.durable.clone();
        disk.fail_next_persist = false;
    }

    /// The next [`Storage::persist`] fails and writes nothing (an fsync error).
    pub fn fail_next_persist(&self) {
        self.state.lock().fail_next_persist = true;
    }

    /// Take back a failure armed by [`Self::fail_next_persist`] that has not fired yet.
    pub fn cancel_failed_persist(&self) {
        self.state.lock().fail_next_persist = false;
    }

    /// Writes not yet durable (for tests).
    pub fn unsynced_writes(&self) -> usize {
        self.state.lock().unsynced.len()
    }
}

impl_raft_storage!(MemoryStorage, storage => storage.state.lock().current);

impl Storage for MemoryStorage {
    fn is_empty(&self) -> bool {
        self.state.lock().current.is_empty()
    }

    fn bootstrap(
        &mut self,
        snapshot: &Snapshot,
        body: &SnapshotBody,
        identity: &StoreIdentity,
    ) -> Result<(), StorageError> {
        let mut disk = self.state.lock();
        if !disk.current.is_empty() {
            return Err(StorageError::AlreadyInitialized);
        }
        disk.sync()?;
        let disk = &mut *disk;
        for state in [&mut disk.current, &mut disk.durable] {
            state.apply_snapshot(snapshot, body);
            state.set_identity(identity);
        }
        Ok(())
    }

    fn identity(&self) -> Option<StoreIdentity> {
        self.state.lock().current.identity().cloned()
    }

    fn set_identity(&mut self, identity: &StoreIdentity) -> Result<(), StorageError> {
        let mut disk = self.state.lock();
        disk.sync()?;
        disk.current.set_identity(identity);
        disk.durable.set_identity(identity);
        Ok(())
    }

    fn persist(&mut self, request: PersistRequest<'_>) -> Result<(), StorageError> {
        let mut disk = self.state.lock();
        if std::mem::take(&mut disk.fail_next_persist) {
            return Err(StorageError::Injected("fsync failed"));
        }
        apply_persist(
            &mut disk.current,
            request.snapshot,
            request.entries,
            request.hard_state,
        )?;
        let skip_fsync = crate::mutations::enabled(crate::mutations::Mutation::SkipFsync);
        if request.sync && !skip_fsync {
            disk.sync()?;
            apply_persist(
                &mut disk.durable,
                request.snapshot,
                request.entries,
                request.hard_state,
            )?;
        } else {
            disk.unsynced.push(Unsynced::Persist {
                snapshot: request
                    .snapshot
                    .map(|(snapshot, body)| (snapshot.clone(), body.clone())),
                entries: request.entries.to_vec(),
                hard_state: request.hard_state.cloned(),
            });
        }
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), StorageError> {
        let mut disk = self.state.lock();
        disk.current.set_commit(commit);
        disk.unsynced.push(Unsynced::Commit(commit));
        Ok(())
    }

    fn save_snapshot(
        &mut self,
        snapshot: &Snapshot,
        body: &SnapshotBody,
        keep_from: u64,
    ) -> Result<(), StorageError> {
        let mut disk = self.state.lock();
        disk.current.save_snapshot(snapshot, body, keep_from)?;
        disk.sync()?;
        disk.durable.save_snapshot(snapshot, body, keep_from)?;
        Ok(())
    }

    fn latest_snapshot(&self) -> Snapshot {
        self.state.lock().current.snapshot().clone()
    }

    fn latest_snapshot_body(&self) -> SnapshotBody {
        self.state.lock().current.snapshot_body().clone()
    }

    fn snapshot_writer(&mut self, _index: u64, _term: u64) -> Result<SnapshotWriter, StorageError> {
        Ok(SnapshotWriter::memory())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    #[test]
    fn a_crash_loses_what_was_not_synced_and_keeps_what_was() {
        let mut storage = MemoryStorage::new();
        let synced = [entry(1, 1), entry(2, 1)];
        storage
            .persist(PersistRequest {
                entries: &synced,
                sync: true,
                ..Default::default()
            })
            .expect("persist");
        storage.set_commit(2).expect("commit");
        let unsynced = [entry(3, 1)];
        storage
            .persist(PersistRequest {
                entries: &unsynced,
                sync: false,
                ..Default::default()
            })
            .expect("persist");
        assert_eq!(storage.log_state().last_index(), 3);
        assert_eq!(storage.unsynced_writes(), 2);
        storage.crash();
        let state = storage.log_state();
        assert_eq!(state.last_index(), 2);
        assert_eq!(
            state.hard_state().commit,
            0,
            "the commit index was not synced"
        );
    }

    #[test]
    fn a_failed_persist_writes_nothing() {
        let mut storage = MemoryStorage::new();
        storage.fail_next_persist();
        let entries = [entry(1, 1)];
        let request = || PersistRequest {
            entries: &entries,
            sync: true,
            ..Default::default()
        };
        assert!(storage.persist(request()).is_err());
        assert_eq!(storage.log_state().last_index(), 0);
        storage.persist(request()).expect("the fault fires once");
        storage.crash();
        assert_eq!(storage.log_state().last_index(), 1);
    }
}
