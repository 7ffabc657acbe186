//! RocksDB [`Storage`]: the production store.
//!
//! Column families:
//! - `raft_log`: key = index (u64 big-endian, so keys sort by index), value = entry;
//! - `raft_state`: `hard_state`, `conf_state` and `applied_index` (the conf state and index of
//!   the latest snapshot — the point the state machine is restored to on restart), and
//!   `identity` (cluster id, node id, rejoin flag: [`StoreIdentity`]);
//! - `snapshot`: `metadata` of the latest snapshot;
//! - `state_machine`: `snapshot_data`, the state machine's bytes of that snapshot.
//!
//! Every value is `[crc32 of key and payload, u32 little-endian][payload]` (the layout lives in
//! [`crate::codec`], with every other byte format); a mismatch on open is reported as
//! [`StorageError::Corrupted`] naming the record, never a panic or silent use.
//! Each Ready is one `WriteBatch`, synced when raft-rs says it must be (new entries, vote or
//! term change, snapshot). The whole uncompacted log is read and verified on open and then
//! served from memory ([`LogState`]).

use std::path::{Path, PathBuf};

use protobuf::Message as _;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use rocksdb::{ColumnFamilyDescriptor, DB, IteratorMode, Options, WriteBatch, WriteOptions};

use super::{LogState, PersistRequest, Storage, StorageError, StoreIdentity, impl_raft_storage};
use crate::codec::{self, log_key};
use crate::transport::NodeId;

/// Column family of the raft log.
pub const COLUMN_FAMILY_LOG: &str = "raft_log";
/// Column family of the hard state, conf state and applied index.
pub const COLUMN_FAMILY_STATE: &str = "raft_state";
/// Column family of the latest snapshot's metadata.
pub const COLUMN_FAMILY_SNAPSHOT: &str = "snapshot";
/// Column family of the state machine's snapshot bytes.
pub const COLUMN_FAMILY_STATE_MACHINE: &str = "state_machine";

const COLUMN_FAMILIES: [&str; 4] = [
    COLUMN_FAMILY_LOG,
    COLUMN_FAMILY_STATE,
    COLUMN_FAMILY_SNAPSHOT,
    COLUMN_FAMILY_STATE_MACHINE,
];

const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
const KEY_APPLIED_INDEX: &[u8] = b"applied_index";
const KEY_IDENTITY: &[u8] = b"identity";
const KEY_SNAPSHOT_METADATA: &[u8] = b"metadata";
const KEY_SNAPSHOT_DATA: &[u8] = b"snapshot_data";

/// RocksDB storage; see the module documentation.
pub struct RocksStorage {
    db: DB,
    state: LogState,
    path: PathBuf,
}

impl std::fmt::Debug for RocksStorage {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RocksStorage")
            .field("path", &self.path)
            .field("first_index", &self.state.first_index())
            .field("last_index", &self.state.last_index())
            .finish_non_exhaustive()
    }
}

impl RocksStorage {
    /// Open (or create) the store in `path`, reading and verifying everything in it.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        let descriptors = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
        let db = DB::open_cf_descriptors(&options, path, descriptors)?;

        let hard_state = match read_record(&db, COLUMN_FAMILY_STATE, KEY_HARD_STATE)? {
            Some(bytes) => decode::<HardState>(COLUMN_FAMILY_STATE, KEY_HARD_STATE, &bytes)?,
            None => HardState::default(),
        };
        let mut snapshot = Snapshot::default();
        if let Some(bytes) = read_record(&db, COLUMN_FAMILY_SNAPSHOT, KEY_SNAPSHOT_METADATA)? {
            let metadata =
                decode::<SnapshotMetadata>(COLUMN_FAMILY_SNAPSHOT, KEY_SNAPSHOT_METADATA, &bytes)?;
            let data = read_record(&db, COLUMN_FAMILY_STATE_MACHINE, KEY_SNAPSHOT_DATA)?
                .ok_or_else(|| {
                    corrupted(COLUMN_FAMILY_STATE_MACHINE, KEY_SNAPSHOT_DATA, "missing")
                })?;
            let applied = read_record(&db, COLUMN_FAMILY_STATE, KEY_APPLIED_INDEX)?
                .ok_or_else(|| corrupted(COLUMN_FAMILY_STATE, KEY_APPLIED_INDEX, "missing"))?;
            let applied = codec::decode_applied_index(&applied).map_err(|error| {
                corrupted(COLUMN_FAMILY_STATE, KEY_APPLIED_INDEX, &error.to_string())
            })?;
            if applied != metadata.index {
                return Err(corrupted(
                    COLUMN_FAMILY_STATE,
                    KEY_APPLIED_INDEX,
                    "does not match the snapshot's index",
                ));
            }
            snapshot.set_metadata(metadata);
            snapshot.data = data.into();
        }

        let log = column_family(&db, COLUMN_FAMILY_LOG)?;
        let mut entries = Vec::new();
        for item in db.iterator_cf(log, IteratorMode::Start) {
            let (key, value) = item?;
            let payload = verify(COLUMN_FAMILY_LOG, &key, &value)?;
            let entry = decode::<Entry>(COLUMN_FAMILY_LOG, &key, payload)?;
            if key.as_ref() != log_key(entry.index) {
                return Err(corrupted(
                    COLUMN_FAMILY_LOG,
                    &key,
                    "key does not match the entry",
                ));
            }
            entries.push(entry);
        }
        // Entries the snapshot covers stay if they run into it (the compaction lag).
        let mut state = LogState::from_parts(hard_state, snapshot, entries)?;
        if let Some(bytes) = read_record(&db, COLUMN_FAMILY_STATE, KEY_IDENTITY)? {
            let identity = StoreIdentity::decode(&bytes).map_err(|error| {
                corrupted(COLUMN_FAMILY_STATE, KEY_IDENTITY, &error.to_string())
            })?;
            state.set_identity(&identity);
        }
        Ok(Self {
            db,
            state,
            path: path.to_owned(),
        })
    }

    /// The directory of the store.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), StorageError> {
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        self.db.write_opt(batch, &options)?;
        Ok(())
    }

    fn put_snapshot(
        &self,
        batch: &mut WriteBatch,
        snapshot: &Snapshot,
    ) -> Result<(), StorageError> {
        let metadata = snapshot.get_metadata();
        let state = column_family(&self.db, COLUMN_FAMILY_STATE)?;
        let snapshots = column_family(&self.db, COLUMN_FAMILY_SNAPSHOT)?;
        let data = column_family(&self.db, COLUMN_FAMILY_STATE_MACHINE)?;
        batch.put_cf(
            snapshots,
            KEY_SNAPSHOT_METADATA,
            seal(KEY_SNAPSHOT_METADATA, &metadata.write_to_bytes()?),
        );
        batch.put_cf(
            data,
            KEY_SNAPSHOT_DATA,
            seal(KEY_SNAPSHOT_DATA, snapshot.get_data()),
        );
        batch.put_cf(
            state,
            KEY_CONF_STATE,
            seal(KEY_CONF_STATE, &metadata.get_conf_state().write_to_bytes()?),
        );
        batch.put_cf(
            state,
            KEY_APPLIED_INDEX,
            seal(
                KEY_APPLIED_INDEX,
                &codec::encode_applied_index(metadata.index),
            ),
        );
        Ok(())
    }

    fn put_identity(
        &self,
        batch: &mut WriteBatch,
        identity: &StoreIdentity,
    ) -> Result<(), StorageError> {
        let state = column_family(&self.db, COLUMN_FAMILY_STATE)?;
        batch.put_cf(state, KEY_IDENTITY, seal(KEY_IDENTITY, &identity.encode()));
        Ok(())
    }

    fn put_hard_state(&self, batch: &mut WriteBatch) -> Result<(), StorageError> {
        let state = column_family(&self.db, COLUMN_FAMILY_STATE)?;
        batch.put_cf(
            state,
            KEY_HARD_STATE,
            seal(KEY_HARD_STATE, &self.state.hard_state().write_to_bytes()?),
        );
        Ok(())
    }
}

impl_raft_storage!(RocksStorage, storage => storage.state);

impl Storage for RocksStorage {
    fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    fn bootstrap(
        &mut self,
        snapshot: &Snapshot,
        identity: &StoreIdentity,
    ) -> Result<(), StorageError> {
        if !self.state.is_empty() {
            return Err(StorageError::AlreadyInitialized);
        }
        self.state.apply_snapshot(snapshot);
        self.state.set_identity(identity);
        let mut batch = WriteBatch::default();
        self.put_snapshot(&mut batch, snapshot)?;
        self.put_hard_state(&mut batch)?;
        self.put_identity(&mut batch, identity)?;
        self.write(batch, true)
    }

    fn identity(&self) -> Option<StoreIdentity> {
        self.state.identity().cloned()
    }

    fn set_identity(&mut self, identity: &StoreIdentity) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        self.put_identity(&mut batch, identity)?;
        self.write(batch, true)?;
        self.state.set_identity(identity);
        Ok(())
    }

    fn persist(&mut self, request: PersistRequest<'_>) -> Result<(), StorageError> {
        let log = column_family(&self.db, COLUMN_FAMILY_LOG)?;
        let mut batch = WriteBatch::default();
        let mut hard_state_changed = request.hard_state.is_some();
        if let Some(snapshot) = request.snapshot {
            self.state.apply_snapshot(snapshot);
            batch.delete_range_cf(log, log_key(0), log_key(u64::MAX));
            self.put_snapshot(&mut batch, snapshot)?;
            hard_state_changed = true;
        }
        let last_before = self.state.last_index();
        if let Some(truncated_from) = self.state.append(request.entries)? {
            batch.delete_range_cf(log, log_key(truncated_from), log_key(last_before + 1));
        }
        for entry in request.entries {
            let key = log_key(entry.index);
            batch.put_cf(log, key, seal(&key, &entry.write_to_bytes()?));
        }
        if let Some(hard_state) = request.hard_state {
            self.state.set_hard_state(hard_state);
        }
        if hard_state_changed {
            self.put_hard_state(&mut batch)?;
        }
        self.write(batch, request.sync)
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), StorageError> {
        self.state.set_commit(commit);
        let mut batch = WriteBatch::default();
        self.put_hard_state(&mut batch)?;
        self.write(batch, false)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot, keep_from: u64) -> Result<(), StorageError> {
        let first_index = self.state.save_snapshot(snapshot, keep_from)?;
        let log = column_family(&self.db, COLUMN_FAMILY_LOG)?;
        let mut batch = WriteBatch::default();
        self.put_snapshot(&mut batch, snapshot)?;
        batch.delete_range_cf(log, log_key(0), log_key(first_index));
        self.write(batch, true)
    }

    fn latest_snapshot(&self) -> Snapshot {
        self.state.snapshot().clone()
    }
}

/// The stored conf state (of the latest snapshot), for operators and tests.
pub fn read_conf_state(storage: &RocksStorage) -> Result<Option<ConfState>, StorageError> {
    read_record(&storage.db, COLUMN_FAMILY_STATE, KEY_CONF_STATE)?
        .map(|bytes| decode::<ConfState>(COLUMN_FAMILY_STATE, KEY_CONF_STATE, &bytes))
        .transpose()
}

/// What a checkpoint holds: its log range and the membership of its latest snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// First log index after the latest snapshot.
    pub first_index: u64,
    /// Last log index.
    pub last_index: u64,
    /// Voters of the latest snapshot's configuration.
    pub voters: Vec<u64>,
    /// Learners of the latest snapshot's configuration.
    pub learners: Vec<u64>,
}

/// Writes a consistent RocksDB checkpoint of the store in `path` to `to` (which must not
/// exist yet), while the node that owns the store may keep running: the store is opened
/// read-only — a point-in-time view (the SST files plus the write-ahead log replayed into
/// memory), which takes no lock — and the checkpoint holds exactly that view: hard links to
/// the immutable SST files where the file system allows, copies otherwise, and the log
/// records not yet flushed. The checkpoint is then opened as a store and verified (every
/// record's crc32, see [`checkpoint_info`]) so a backup that cannot be restored is refused
/// here, not on restore day.
pub fn checkpoint(path: &Path, to: &Path) -> Result<CheckpointInfo, StorageError> {
    let descriptors = COLUMN_FAMILIES
        .iter()
        .map(|name| ColumnFamilyDescriptor::new(*name, Options::default()));
    let source = DB::open_cf_descriptors_read_only(&Options::default(), path, descriptors, false)?;
    for name in COLUMN_FAMILIES {
        column_family(&source, name)?;
    }
    rocksdb::checkpoint::Checkpoint::new(&source)?.create_checkpoint(to)?;
    drop(source);
    checkpoint_info(to)
}

/// Gives the (restored, closed) store in `path` to node `node_id`: its identity records the
/// new node id, with no lost-entries mark and the incarnation kept (request ids keep rising).
/// A restored copy joins as a new member, so it must not open as the node it was copied from
/// (that node's store would then exist twice). A store without an identity is left as it is:
/// the node adopts it when it opens it.
pub fn adopt_store(path: &Path, node_id: NodeId) -> Result<(), StorageError> {
    let mut store = RocksStorage::open(path)?;
    let Some(mut identity) = store.identity() else {
        return Ok(());
    };
    identity.node_id = node_id;
    identity.lost_through = 0;
    store.set_identity(&identity)?;
    debug_assert_eq!(store.identity().map(|found| found.node_id), Some(node_id));
    Ok(())
}

/// Opens the store in `path` (verifying every record) and describes it.
pub fn checkpoint_info(path: &Path) -> Result<CheckpointInfo, StorageError> {
    let store = RocksStorage::open(path)?;
    let conf_state = read_conf_state(&store)?.unwrap_or_default();
    let info = CheckpointInfo {
        first_index: store.state.first_index(),
        last_index: store.state.last_index(),
        voters: conf_state.voters.clone(),
        learners: conf_state.learners.clone(),
    };
    debug_assert!(info.first_index <= info.last_index + 1);
    Ok(info)
}

fn column_family<'a>(
    db: &'a DB,
    name: &'static str,
) -> Result<&'a rocksdb::ColumnFamily, StorageError> {
    db.cf_handle(name)
        .ok_or(StorageError::MissingColumnFamily(name))
}

fn seal(key: &[u8], payload: &[u8]) -> Vec<u8> {
    codec::seal_record(key, payload)
}

fn verify<'a>(
    column_family: &'static str,
    key: &[u8],
    value: &'a [u8],
) -> Result<&'a [u8], StorageError> {
    codec::open_record(key, value)
        .map_err(|error| corrupted(column_family, key, &error.to_string()))
}

/// Read and verify one record; returns its payload.
fn read_record(
    db: &DB,
    column_family_name: &'static str,
    key: &[u8],
) -> Result<Option<Vec<u8>>, StorageError> {
    let handle = column_family(db, column_family_name)?;
    let Some(value) = db.get_cf(handle, key)? else {
        return Ok(None);
    };
    Ok(Some(verify(column_family_name, key, &value)?.to_vec()))
}

fn decode<T: protobuf::Message>(
    column_family: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StorageError> {
    T::parse_from_bytes(bytes).map_err(|error| corrupted(column_family, key, &error.to_string()))
}

fn corrupted(column_family: &'static str, key: &[u8], reason: &str) -> StorageError {
    let key = match codec::log_index(key) {
        Some(index) if column_family == COLUMN_FAMILY_LOG => format!("index {index}"),
        _ => String::from_utf8_lossy(key).into_owned(),
    };
    StorageError::Corrupted {
        column_family,
        key,
        reason: reason.to_owned(),
    }
}
