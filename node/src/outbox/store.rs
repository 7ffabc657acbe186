//! The outbox's on-disk queue: its own RocksDB in `data_dir/outbox`.
//!
//! ```text
//!   m:incarnation → u64 BE   when the store was created (ms); names its sequence space
//!   m:last        → u64 BE   the last sequence appended (never goes back)
//!   e:<seq BE>    → StoredEntry (versioned bincode): when appended, what to write
//!   p:<pending>   → PendingRecord (versioned bincode): an idempotent create waiting in the
//!                   outbox, and once committed what became of it (`GET /api/v1/pending/{id}`)
//! ```
//! An append writes its entries (with the pending record of each idempotent create) and
//! `m:last` in one write batch with `sync` (fsync'd before it returns). A committed prefix is deleted with one range delete (not synced: if the delete
//! is lost in a crash the entries are proposed again and the state machine skips them).

use std::path::{Path, PathBuf};

use callgrid_cluster::codec;
use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};
use serde::{Deserialize, Serialize};

use crate::state::Response;
use crate::state::command::Command;
use crate::state::site_writes::{OutboxEntry, SiteWrite};

const KEY_INCARNATION: &[u8] = b"m:incarnation";
const KEY_LAST: &[u8] = b"m:last";
const ENTRY_PREFIX: &[u8] = b"e:";
const PENDING_PREFIX: &[u8] = b"p:";

/// Why the outbox store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// RocksDB failed.
    #[error("outbox store at {path}: {source}")]
    Rocks {
        /// The store's directory.
        path: PathBuf,
        /// The RocksDB error.
        source: rocksdb::Error,
    },
    /// A stored value does not decode (corruption or an unknown version).
    #[error("outbox store at {path}: {what} does not decode: {message}")]
    Corrupt {
        /// The store's directory.
        path: PathBuf,
        /// Which value.
        what: String,
        /// Why.
        message: String,
    },
}

/// An entry as stored: the write and when it was appended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredEntry {
    appended_at_ms: u64,
    write: SiteWrite,
}

impl codec::Versioned for StoredEntry {
    const VERSION: u8 = 1;
}

/// An idempotent create that waited (or waits) in the outbox, as the site remembers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    /// The site's id for it.
    pub id: String,
    /// Its outbox sequence (in the store's incarnation).
    pub sequence: u64,
    /// When the site took it (ms since the Unix epoch).
    pub taken_at_ms: u64,
    /// The principal who made it (the key's scope).
    pub principal: String,
    /// Its `Idempotency-Key`.
    pub key: String,
    /// The create.
    pub command: Command,
    /// What became of it, once committed and seen by this site.
    pub resolved: Option<Resolved>,
}

/// What became of a pending create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// When the site saw it committed (ms since the Unix epoch).
    pub at_ms: u64,
    /// The state machine's first answer to the create (a record's id, or why it was refused);
    /// `None` when the site learnt only that it committed (the key's memory had expired).
    pub response: Option<Response>,
}

impl codec::Versioned for PendingRecord {
    const VERSION: u8 = 1;
}

/// A pending entry read back for proposing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    /// When it was appended (ms since the Unix epoch).
    pub appended_at_ms: u64,
    /// The entry.
    pub entry: OutboxEntry,
}

/// The RocksDB queue.
pub struct OutboxStore {
    db: DB,
    path: PathBuf,
    incarnation: u64,
}

impl std::fmt::Debug for OutboxStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("OutboxStore")
            .field("path", &self.path)
            .field("incarnation", &self.incarnation)
            .finish()
    }
}

impl OutboxStore {
    /// Opens (or creates, stamping a new incarnation `now_ms`) the store in `path`.
    pub fn open(path: &Path, now_ms: u64) -> Result<Self, StoreError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, path).map_err(|source| StoreError::Rocks {
            path: path.to_path_buf(),
            source,
        })?;
        let mut store = Self {
            db,
            path: path.to_path_buf(),
            incarnation: 0,
        };
        store.incarnation = match store.read_u64(KEY_INCARNATION)? {
            Some(incarnation) => incarnation,
            None => {
                let incarnation = now_ms.max(1);
                let mut batch = WriteBatch::default();
                batch.put(KEY_INCARNATION, incarnation.to_be_bytes());
                store.write_synced(batch)?;
                incarnation
            }
        };
        Ok(store)
    }

    /// The incarnation (creation time in ms) the sequences count in.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The last sequence appended (0 when none ever was).
    pub fn last_sequence(&self) -> Result<u64, StoreError> {
        Ok(self.read_u64(KEY_LAST)?.unwrap_or(0))
    }

    /// The first pending sequence, if any (after a restart: where proposing resumes).
    pub fn first_pending(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .read_from(1, 1)?
            .first()
            .map(|pending| pending.entry.sequence))
    }

    /// Appends `writes` after sequence `last` and fsyncs; returns the new last sequence.
    pub fn append(
        &self,
        last: u64,
        writes: Vec<SiteWrite>,
        appended_at_ms: u64,
    ) -> Result<u64, StoreError> {
        let mut batch = WriteBatch::default();
        let mut sequence = last;
        for write in writes {
            sequence += 1;
            if let SiteWrite::IdempotentCreate {
                pending,
                actor,
                key,
                command,
            } = &write
            {
                let record = PendingRecord {
                    id: pending.clone(),
                    sequence,
                    taken_at_ms: appended_at_ms,
                    principal: actor.name.clone(),
                    key: key.clone(),
                    command: (**command).clone(),
                    resolved: None,
                };
                let value = codec::encode_versioned(&record)
                    .map_err(|error| self.corrupt("pending record", error))?;
                batch.put(pending_key(pending), value);
            }
            let stored = StoredEntry {
                appended_at_ms,
                write,
            };
            let value =
                codec::encode_versioned(&stored).map_err(|error| self.corrupt("entry", error))?;
            batch.put(entry_key(sequence), value);
        }
        batch.put(KEY_LAST, sequence.to_be_bytes());
        self.write_synced(batch)?;
        Ok(sequence)
    }

    /// Up to `limit` pending entries from sequence `from` on, oldest first.
    pub fn read_from(&self, from: u64, limit: usize) -> Result<Vec<PendingEntry>, StoreError> {
        let start = entry_key(from);
        let mut entries = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(&start, Direction::Forward))
        {
            if entries.len() >= limit {
                break;
            }
            let (key, value) = item.map_err(|source| self.rocks(source))?;
            let Some(sequence) = key
                .strip_prefix(ENTRY_PREFIX)
                .and_then(|bytes| <[u8; 8]>::try_from(bytes).ok())
                .map(u64::from_be_bytes)
            else {
                break;
            };
            let stored: StoredEntry = codec::decode_versioned(&value)
                .map_err(|error| self.corrupt(&format!("entry {sequence}"), error))?;
            entries.push(PendingEntry {
                appended_at_ms: stored.appended_at_ms,
                entry: OutboxEntry {
                    sequence,
                    write: stored.write,
                },
            });
        }
        Ok(entries)
    }

    /// Deletes every entry up to and including `sequence` (committed).
    pub fn remove_through(&self, sequence: u64) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.delete_range(entry_key(0), entry_key(sequence.saturating_add(1)));
        self.db.write(batch).map_err(|source| self.rocks(source))
    }

    /// The pending create `id`, if the site has it.
    pub fn pending(&self, id: &str) -> Result<Option<PendingRecord>, StoreError> {
        match self
            .db
            .get(pending_key(id))
            .map_err(|source| self.rocks(source))?
        {
            None => Ok(None),
            Some(value) => codec::decode_versioned(&value)
                .map(Some)
                .map_err(|error| self.corrupt(&format!("pending record {id}"), error)),
        }
    }

    /// Every pending create the site remembers (waiting, or resolved and not yet forgotten).
    pub fn pending_all(&self) -> Result<Vec<PendingRecord>, StoreError> {
        let mut records = Vec::new();
        for item in self
            .db
            .iterator(IteratorMode::From(PENDING_PREFIX, Direction::Forward))
        {
            let (key, value) = item.map_err(|source| self.rocks(source))?;
            if !key.starts_with(PENDING_PREFIX) {
                break;
            }
            let record: PendingRecord = codec::decode_versioned(&value).map_err(|error| {
                self.corrupt(
                    &format!("pending record {}", String::from_utf8_lossy(&key)),
                    error,
                )
            })?;
            records.push(record);
        }
        Ok(records)
    }

    /// Stores `record` (its resolution), fsync'd.
    pub fn put_pending(&self, record: &PendingRecord) -> Result<(), StoreError> {
        let value = codec::encode_versioned(record)
            .map_err(|error| self.corrupt("pending record", error))?;
        let mut batch = WriteBatch::default();
        batch.put(pending_key(&record.id), value);
        self.write_synced(batch)
    }

    /// Forgets the pending creates `ids` (resolved long ago).
    pub fn forget_pending(&self, ids: &[String]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        for id in ids {
            batch.delete(pending_key(id));
        }
        self.db.write(batch).map_err(|source| self.rocks(source))
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut options = WriteOptions::default();
        options.set_sync(true);
        self.db
            .write_opt(batch, &options)
            .map_err(|source| self.rocks(source))
    }

    fn read_u64(&self, key: &[u8]) -> Result<Option<u64>, StoreError> {
        match self.db.get(key).map_err(|source| self.rocks(source))? {
            None => Ok(None),
            Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
                .map(|bytes| Some(u64::from_be_bytes(bytes)))
                .map_err(|_| StoreError::Corrupt {
                    path: self.path.clone(),
                    what: String::from_utf8_lossy(key).into_owned(),
                    message: format!("{} bytes, not 8", bytes.len()),
                }),
        }
    }

    fn rocks(&self, source: rocksdb::Error) -> StoreError {
        StoreError::Rocks {
            path: self.path.clone(),
            source,
        }
    }

    fn corrupt(&self, what: &str, error: codec::CodecError) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            what: what.to_string(),
            message: error.to_string(),
        }
    }
}

fn entry_key(sequence: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(ENTRY_PREFIX.len() + 8);
    key.extend_from_slice(ENTRY_PREFIX);
    key.extend_from_slice(&sequence.to_be_bytes());
    key
}

fn pending_key(id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(PENDING_PREFIX.len() + id.len());
    key.extend_from_slice(PENDING_PREFIX);
    key.extend_from_slice(id.as_bytes());
    key
}
