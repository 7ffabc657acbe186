//! In-memory [`Storage`]: for tests and the deterministic simulation.
//!
//! Clones share the same data (an `Arc` inside), so a test keeps a clone as "the disk" and
//! restarts a crashed driver from it: what the driver persisted survives, everything else (its
//! in-memory raft state, queued messages, the state machine) is lost.

use std::sync::Arc;

use parking_lot::Mutex;
use raft::eraftpb::Snapshot;

use super::{LogState, PersistRequest, Storage, StorageError, StoreIdentity, impl_raft_storage};

/// In-memory storage; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct MemoryStorage {
    state: Arc<Mutex<LogState>>,
}

impl MemoryStorage {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the stored state, for checks in tests.
    pub fn log_state(&self) -> LogState {
        self.state.lock().clone()
    }

    /// Lose everything, as a wiped disk does (the simulation's fault; clones see it too).
    pub fn wipe(&self) {
        *self.state.lock() = LogState::default();
    }
}

impl_raft_storage!(MemoryStorage, storage => storage.state.lock());

impl Storage for MemoryStorage {
    fn is_empty(&self) -> bool {
        self.state.lock().is_empty()
    }

    fn bootstrap(
        &mut self,
        snapshot: &Snapshot,
        identity: &StoreIdentity,
    ) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        if !state.is_empty() {
            return Err(StorageError::AlreadyInitialized);
        }
        state.apply_snapshot(snapshot);
        state.set_identity(identity);
        Ok(())
    }

    fn identity(&self) -> Option<StoreIdentity> {
        self.state.lock().identity().cloned()
    }

    fn set_identity(&mut self, identity: &StoreIdentity) -> Result<(), StorageError> {
        self.state.lock().set_identity(identity);
        Ok(())
    }

    fn persist(&mut self, request: PersistRequest<'_>) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        if let Some(snapshot) = request.snapshot {
            state.apply_snapshot(snapshot);
        }
        state.append(request.entries)?;
        if let Some(hard_state) = request.hard_state {
            state.set_hard_state(hard_state);
        }
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), StorageError> {
        self.state.lock().set_commit(commit);
        Ok(())
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StorageError> {
        self.state.lock().save_snapshot(snapshot)
    }

    fn latest_snapshot(&self) -> Snapshot {
        self.state.lock().snapshot().clone()
    }
}
