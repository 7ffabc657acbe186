//! RocksDB [`Storage`]: the production store.
//!
//! Column families:
//! - `raft_log`: key = index (u64 big-endian, so keys sort by index), value = entry;
//! - `raft_state`: `hard_state`, `conf_state` and `applied_index` (the conf state and index of
//!   the latest snapshot — the point the state machine is restored to on restart), and
//!   `identity` (cluster id, node id, rejoin flag: [`StoreIdentity`]);
//! - `snapshot`: `metadata` of the latest snapshot and `body`, the record of its bytes: the
//!   file name (in `snapshots/` inside the store's directory), length and crc32;
//! - `state_machine`: `snapshot_data`, the snapshot's bytes as stores written before
//!   snapshot files kept them (still read; removed by the next snapshot).
//!
//! A snapshot's bytes live in a file of their own, `snapshots/snapshot-<index>-<term>.bin`,
//! written and fsynced before the record that names it; the file of the snapshot before
//! stays until the next one (a running checkpoint may still be copying it), older ones and
//! unfinished `.partial` files are removed.
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
use crate::snapshot_body::{SnapshotBody, SnapshotWriter, copy_body};
use crate::transport::NodeId;

/// The directory of snapshot files, inside the store's.
pub const SNAPSHOT_DIRECTORY: &str = "snapshots";

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
const KEY_SNAPSHOT_BODY: &[u8] = b"body";

/// RocksDB storage; see the module documentation.
pub struct RocksStorage {
    db: DB,
    state: LogState,
    path: PathBuf,
    /// The file the snapshot record names.
    recorded_body: Option<PathBuf>,
    /// The file of the snapshot before the latest, kept until the next one.
    previous_body: Option<PathBuf>,
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
        std::fs::create_dir_all(path.join(SNAPSHOT_DIRECTORY))
            .map_err(|error| StorageError::Io(format!("{}: {error}", path.display())))?;

        let hard_state = match read_record(&db, COLUMN_FAMILY_STATE, KEY_HARD_STATE)? {
            Some(bytes) => decode::<HardState>(COLUMN_FAMILY_STATE, KEY_HARD_STATE, &bytes)?,
            None => HardState::default(),
        };
        let mut snapshot = Snapshot::default();
        let mut body = SnapshotBody::default();
        if let Some(bytes) = read_record(&db, COLUMN_FAMILY_SNAPSHOT, KEY_SNAPSHOT_METADATA)? {
            let metadata =
                decode::<SnapshotMetadata>(COLUMN_FAMILY_SNAPSHOT, KEY_SNAPSHOT_METADATA, &bytes)?;
            body = read_body(&db, path)?;
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
        let mut state = LogState::from_parts(hard_state, snapshot, body, entries)?;
        if let Some(bytes) = read_record(&db, COLUMN_FAMILY_STATE, KEY_IDENTITY)? {
            let identity = StoreIdentity::decode(&bytes).map_err(|error| {
                corrupted(COLUMN_FAMILY_STATE, KEY_IDENTITY, &error.to_string())
            })?;
            state.set_identity(&identity);
        }
        let recorded_body = state.snapshot_body().path().map(Path::to_path_buf);
        let storage = Self {
            db,
            state,
            path: path.to_owned(),
            recorded_body,
            previous_body: None,
        };
        storage.remove_stale_snapshot_files();
        Ok(storage)
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

    /// The directory of snapshot files.
    fn snapshot_directory(&self) -> PathBuf {
        self.path.join(SNAPSHOT_DIRECTORY)
    }

    /// `body` as a file of this store: itself when it is one already, else a copy (a
    /// snapshot received from the leader, streamed from the spool with one buffer of memory).
    fn own_body(
        &mut self,
        snapshot: &Snapshot,
        body: &SnapshotBody,
    ) -> Result<SnapshotBody, StorageError> {
        let directory = self.snapshot_directory();
        if body.path().and_then(Path::parent) == Some(directory.as_path()) {
            return Ok(body.clone());
        }
        let metadata = snapshot.get_metadata();
        if let Some(adopted) = adopt_spooled(body, &directory, metadata.index, metadata.term) {
            return Ok(adopted);
        }
        let mut writer = self.snapshot_writer(metadata.index, metadata.term)?;
        copy_body(body, &mut writer).map_err(|error| io_error(&directory, &error))?;
        writer
            .finish()
            .map_err(|error| io_error(&directory, &error))
    }

    /// Record `body` as the latest snapshot's bytes in `batch` (the old file stays until the
    /// batch is written: see [`Self::snapshot_written`]).
    fn put_snapshot(
        &self,
        batch: &mut WriteBatch,
        snapshot: &Snapshot,
        body: &SnapshotBody,
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
        let name = body
            .path()
            .and_then(Path::file_name)
            .and_then(|name| name.to_str())
            .ok_or_else(|| {
                StorageError::Io("a snapshot body to record must be a file of the store".into())
            })?;
        batch.put_cf(
            snapshots,
            KEY_SNAPSHOT_BODY,
            seal(
                KEY_SNAPSHOT_BODY,
                &encode_body_record(name, body.len(), body.crc32()),
            ),
        );
        batch.delete_cf(data, KEY_SNAPSHOT_DATA);
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
        body: &SnapshotBody,
        identity: &StoreIdentity,
    ) -> Result<(), StorageError> {
        if !self.state.is_empty() {
            return Err(StorageError::AlreadyInitialized);
        }
        let body = self.own_body(snapshot, body)?;
        self.state.apply_snapshot(snapshot, &body);
        self.state.set_identity(identity);
        let mut batch = WriteBatch::default();
        self.put_snapshot(&mut batch, snapshot, &body)?;
        self.put_hard_state(&mut batch)?;
        self.put_identity(&mut batch, identity)?;
        self.write(batch, true)?;
        self.snapshot_written(&body);
        Ok(())
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
        // A received body becomes a file of this store (copied and synced) before the
        // record naming it is written.
        let owned = match request.snapshot {
            Some((snapshot, body)) => Some((snapshot, self.own_body(snapshot, body)?)),
            None => None,
        };
        let log = column_family(&self.db, COLUMN_FAMILY_LOG)?;
        let mut batch = WriteBatch::default();
        let mut hard_state_changed = request.hard_state.is_some();
        let mut new_body = None;
        if let Some((snapshot, body)) = owned {
            self.state.apply_snapshot(snapshot, &body);
            batch.delete_range_cf(log, log_key(0), log_key(u64::MAX));
            self.put_snapshot(&mut batch, snapshot, &body)?;
            hard_state_changed = true;
            new_body = Some(body);
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
        self.write(batch, request.sync || new_body.is_some())?;
        if let Some(body) = new_body {
            self.snapshot_written(&body);
        }
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), StorageError> {
        self.state.set_commit(commit);
        let mut batch = WriteBatch::default();
        self.put_hard_state(&mut batch)?;
        self.write(batch, false)
    }

    fn save_snapshot(
        &mut self,
        snapshot: &Snapshot,
        body: &SnapshotBody,
        keep_from: u64,
    ) -> Result<(), StorageError> {
        let body = self.own_body(snapshot, body)?;
        let first_index = self.state.save_snapshot(snapshot, &body, keep_from)?;
        let log = column_family(&self.db, COLUMN_FAMILY_LOG)?;
        let mut batch = WriteBatch::default();
        self.put_snapshot(&mut batch, snapshot, &body)?;
        batch.delete_range_cf(log, log_key(0), log_key(first_index));
        self.write(batch, true)?;
        self.snapshot_written(&body);
        Ok(())
    }

    fn latest_snapshot(&self) -> Snapshot {
        self.state.snapshot().clone()
    }

    fn latest_snapshot_body(&self) -> SnapshotBody {
        self.state.snapshot_body().clone()
    }

    fn snapshot_writer(&mut self, index: u64, term: u64) -> Result<SnapshotWriter, StorageError> {
        let directory = self.snapshot_directory();
        SnapshotWriter::file(&directory.join(snapshot_file_name(index, term)))
            .map_err(|error| io_error(&directory, &error))
    }
}

impl RocksStorage {
    /// The record naming `body` is written: the file before it is kept (a checkpoint may be
    /// copying it), the older ones go.
    fn snapshot_written(&mut self, body: &SnapshotBody) {
        let current = body.path().map(Path::to_path_buf);
        if current != self.recorded_body {
            self.previous_body = std::mem::replace(&mut self.recorded_body, current);
        }
        self.remove_stale_snapshot_files();
    }

    /// Remove snapshot files that are neither the recorded one nor the one before it, and
    /// unfinished `.partial` files. Best effort: a file that cannot be removed is logged and
    /// tried again after the next snapshot.
    fn remove_stale_snapshot_files(&self) {
        let directory = self.snapshot_directory();
        let Ok(entries) = std::fs::read_dir(&directory) else {
            return;
        };
        let keep: Vec<&Path> = [self.recorded_body.as_deref(), self.previous_body.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        for entry in entries.flatten() {
            let path = entry.path();
            if keep.contains(&path.as_path()) {
                continue;
            }
            if let Err(error) = std::fs::remove_file(&path) {
                tracing::warn!(path = %path.display(), %error, "stale snapshot file not removed");
            }
        }
    }
}

/// A spooled body (a snapshot received from the leader, on the same file system) becomes a
/// store file by a hard link, made durable (the file and the directory fsynced) — no second
/// write of the whole state. `None` when it cannot (another file system, not spooled): the
/// caller copies.
fn adopt_spooled(
    body: &SnapshotBody,
    directory: &Path,
    index: u64,
    term: u64,
) -> Option<SnapshotBody> {
    let source = body.path().filter(|_| body.is_spooled())?;
    let target = directory.join(snapshot_file_name(index, term));
    let _ = std::fs::remove_file(&target);
    std::fs::hard_link(source, &target).ok()?;
    let durable = std::fs::File::open(&target)
        .and_then(|file| file.sync_all())
        .and_then(|()| std::fs::File::open(directory))
        .and_then(|directory| directory.sync_all());
    match durable.and_then(|()| SnapshotBody::open_file(&target, body.len(), body.crc32())) {
        Ok(adopted) => Some(adopted),
        Err(error) => {
            tracing::warn!(path = %target.display(), %error, "spooled snapshot not adopted; copying");
            let _ = std::fs::remove_file(&target);
            None
        }
    }
}

/// The file name of the snapshot at `index` in `term`.
fn snapshot_file_name(index: u64, term: u64) -> String {
    format!("snapshot-{index:020}-{term:020}.bin")
}

fn io_error(path: &Path, error: &std::io::Error) -> StorageError {
    StorageError::Io(format!("{}: {error}", path.display()))
}

/// `[name length u32][name utf-8][length u64][crc32 u32]`, little-endian.
fn encode_body_record(name: &str, len: u64, crc32: u32) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(4 + name.len() + 8 + 4);
    bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
    bytes.extend_from_slice(name.as_bytes());
    bytes.extend_from_slice(&len.to_le_bytes());
    bytes.extend_from_slice(&crc32.to_le_bytes());
    bytes
}

/// The file name, length and crc32 of a body record; `None` if malformed.
fn decode_body_record(bytes: &[u8]) -> Option<(String, u64, u32)> {
    let name_len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let name = std::str::from_utf8(bytes.get(4..4 + name_len)?).ok()?;
    let rest = bytes.get(4 + name_len..)?;
    if rest.len() != 12 || name.contains('/') || name.contains("..") || name.is_empty() {
        return None;
    }
    let len = u64::from_le_bytes(rest[..8].try_into().ok()?);
    let crc32 = u32::from_le_bytes(rest[8..].try_into().ok()?);
    Some((name.to_owned(), len, crc32))
}

/// The latest snapshot's body: the file its record names (its length checked now, its
/// crc32 as it is read), or the bytes an older store kept in RocksDB.
fn read_body(db: &DB, path: &Path) -> Result<SnapshotBody, StorageError> {
    if let Some(record) = read_record(db, COLUMN_FAMILY_SNAPSHOT, KEY_SNAPSHOT_BODY)? {
        let (name, len, crc32) = decode_body_record(&record).ok_or_else(|| {
            corrupted(
                COLUMN_FAMILY_SNAPSHOT,
                KEY_SNAPSHOT_BODY,
                "malformed body record",
            )
        })?;
        let file = path.join(SNAPSHOT_DIRECTORY).join(&name);
        return SnapshotBody::open_file(&file, len, crc32).map_err(|error| {
            corrupted(
                COLUMN_FAMILY_SNAPSHOT,
                KEY_SNAPSHOT_BODY,
                &format!("snapshot file {}: {error}", file.display()),
            )
        });
    }
    let data = read_record(db, COLUMN_FAMILY_STATE_MACHINE, KEY_SNAPSHOT_DATA)?
        .ok_or_else(|| corrupted(COLUMN_FAMILY_STATE_MACHINE, KEY_SNAPSHOT_DATA, "missing"))?;
    Ok(SnapshotBody::from_bytes(data))
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
    // The snapshot file the checkpoint's record names: a hard link where the file system
    // allows (files are never changed once written), a copy otherwise. The store keeps the
    // file before its latest, so a snapshot taken meanwhile does not remove it.
    let copies = to.join(SNAPSHOT_DIRECTORY);
    std::fs::create_dir_all(&copies).map_err(|error| io_error(&copies, &error))?;
    if let Some(record) = read_record(&source, COLUMN_FAMILY_SNAPSHOT, KEY_SNAPSHOT_BODY)? {
        let (name, _, _) = decode_body_record(&record).ok_or_else(|| {
            corrupted(
                COLUMN_FAMILY_SNAPSHOT,
                KEY_SNAPSHOT_BODY,
                "malformed body record",
            )
        })?;
        let from = path.join(SNAPSHOT_DIRECTORY).join(&name);
        let copy = copies.join(&name);
        if std::fs::hard_link(&from, &copy).is_err() {
            std::fs::copy(&from, &copy).map_err(|error| io_error(&from, &error))?;
        }
    }
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
    // The snapshot file is read through once: its crc32 must match its record.
    std::io::copy(
        &mut store.latest_snapshot_body().reader(),
        &mut std::io::sink(),
    )
    .map_err(|error| {
        corrupted(
            COLUMN_FAMILY_SNAPSHOT,
            KEY_SNAPSHOT_BODY,
            &error.to_string(),
        )
    })?;
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

/// Disaster recovery when a majority of voters is lost for good: [`super::recovery`]'s
/// surgery on the stopped node's store in `path` (a running node's store is refused by
/// RocksDB's lock).
pub fn force_new_cluster(
    path: &Path,
    node_id: NodeId,
) -> Result<super::recovery::ForcedCluster, StorageError> {
    let mut store = RocksStorage::open(path)?;
    super::recovery::force_new_cluster(&mut store, node_id)
}
