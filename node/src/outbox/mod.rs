//! The durable per-site outbox: writes the site must get committed (abandoned-call callbacks,
//! callback attempt outcomes, callers who phoned again) survive the quorum being away and the
//! node restarting, and are committed once each.
//!
//! ```text
//!   Site actor ── append (bounded channel, no wait for disk) ──► writer thread
//!                                     group commit: one fsync'd RocksDB batch per group
//!                                                       │ wake
//!   state machine ◄── Command::Outbox(batch) ◄── drainer thread (own tokio runtime)
//!        skips (site, sequence) applied before         retries with bounded backoff
//! ```
//!
//! - The Site actor never waits for the disk or for Raft: [`Outbox::append`] hands the write
//!   to the writer thread. It waits only when [`OUTBOX_APPEND_QUEUE_MAX`] writes are queued
//!   (the disk cannot keep up), which is back-pressure, never loss.
//! - The writer fsyncs each group before the drainer may see it; on restart the drainer
//!   resumes from the oldest entry on disk.
//! - The drainer proposes up to [`OUTBOX_BATCH_ENTRIES_MAX`] entries as one replicated
//!   command and retries `Unavailable` and `Indeterminate` alike (backoff from
//!   [`OUTBOX_RETRY_BACKOFF_MIN`] doubling to [`OUTBOX_RETRY_BACKOFF_MAX`]) until committed:
//!   the state machine skips entries it applied before, so a retry applies once.
//! - A batch the state machine refuses as a whole (never expected: entries are validated on
//!   append) is retried entry by entry; an entry refused alone is logged and counted dropped.
//!
//! Answers that acknowledge a write (an abandoned caller's callback, an attempt's outcome)
//! wait for [`Outbox::durable`] — one group commit, milliseconds — so what was acknowledged
//! survives a crash of the node; the arrival → offer path never waits for it.
//!
//! **Pending creates.** An order (pre-order, reservation, complaint) its site could not
//! commit — cut off from the quorum, or its proposal's outcome unknown — waits here as a
//! [`SiteWrite::IdempotentCreate`] carrying the principal, the `Idempotency-Key` and the
//! create; the store keeps a [`PendingRecord`] beside it (same fsync'd batch). The drainer
//! proposes at most one create per batch (each remembers its key at its batch's log index)
//! and, once committed, records what became of it ([`Resolved`]: the record's id, or why the
//! state refused it) from the replicated idempotency table; [`Outbox::pending_status`] answers
//! `GET /api/v1/pending/{id}`. Resolved records are forgotten after
//! [`PENDING_RESOLVED_RETENTION_MS`].

mod store;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

pub use store::{OutboxStore, PendingEntry, PendingRecord, Resolved, StoreError};

use crate::replicate::{ProposeFailure, Proposer, ReplicateError, now_ms};
use crate::state::model::Actor as Principal;
use crate::state::site_writes::{OUTBOX_BATCH_ENTRIES_MAX, OutboxBatch, SiteWrite};
use crate::state::{Command, InvalidCommand, Outcome, SharedState};

/// Directory under the data dir holding the outbox's RocksDB.
pub const OUTBOX_DIRECTORY: &str = "outbox";
/// Writes queued for the writer thread before [`Outbox::append`] waits.
pub const OUTBOX_APPEND_QUEUE_MAX: usize = 16_384;
/// Writes fsync'd together at most (one group commit).
pub const OUTBOX_GROUP_MAX: usize = 1_024;
/// First wait before proposing a batch again.
pub const OUTBOX_RETRY_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between attempts (the quorum is away: keep asking, gently).
pub const OUTBOX_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A proposal still unanswered this long while the cluster commits other writes went to a
/// leader that is gone (it would wait out the cluster's proposal timeout, 5 s): the drainer
/// proposes the batch again (the state machine applies each entry once).
pub const OUTBOX_PROPOSAL_STALL: Duration = Duration::from_secs(1);
/// How often the drainer looks at the replicated state's applied index while it waits for a
/// stalled proposal or backs off (the quorum is back when it moves).
pub const OUTBOX_PROGRESS_POLL: Duration = Duration::from_millis(50);
/// Wait between disk retries when the store fails.
pub const OUTBOX_DISK_RETRY: Duration = Duration::from_secs(1);
/// How long [`Outbox::durable`] waits for the disk before giving up.
pub const OUTBOX_DURABLE_WAIT: Duration = Duration::from_secs(5);
/// The drainer looks at the store at least this often even without a wake-up.
pub const OUTBOX_IDLE_POLL: Duration = Duration::from_secs(1);
/// A resolved pending create is remembered this long after it resolved (a day: what an
/// agent's desktop or a client needs to turn "pending" into the record).
pub const PENDING_RESOLVED_RETENTION_MS: u64 = 24 * 60 * 60 * 1_000;
/// How often the drainer resolves and forgets pending records when idle.
pub const PENDING_SWEEP_INTERVAL: Duration = Duration::from_secs(30);

/// Why the outbox could not take a write or start.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// The write is invalid; it would never commit.
    #[error("{0}")]
    Invalid(#[from] InvalidCommand),
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The writer thread is gone (the node is stopping).
    #[error("outbox closed")]
    Closed,
    /// The writes were not fsync'd within the wait (the disk is failing or very slow).
    #[error("outbox writes not durable within {0:?}")]
    NotDurable(Duration),
    /// A thread could not be started.
    #[error("cannot start the outbox {what} thread: {source}")]
    Thread {
        /// Which thread.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// Counters and gauges of the outbox (`/metrics`).
#[derive(Debug, Default)]
struct Stats {
    /// Writes taken by [`Outbox::append`].
    accepted: AtomicU64,
    /// The last sequence fsync'd.
    durable: AtomicU64,
    /// The last sequence committed (applied by the cluster).
    committed: AtomicU64,
    /// Writes committed since start.
    committed_total: AtomicU64,
    /// Batches committed since start.
    batches_total: AtomicU64,
    /// Proposals that failed and were retried.
    retries_total: AtomicU64,
    /// Of those, proposals given up as stalled (see [`OUTBOX_PROPOSAL_STALL`]).
    stalled_total: AtomicU64,
    /// Entries dropped because the state machine refused them alone.
    dropped_total: AtomicU64,
    /// Disk errors of the writer or the drainer.
    store_errors_total: AtomicU64,
    /// When the oldest pending entry was appended (0: none pending).
    oldest_pending_at_ms: AtomicU64,
    /// Append-to-commit time of the oldest entry of the last committed batch.
    commit_lag_ms: AtomicU64,
}

/// A point-in-time view of the outbox for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxSnapshot {
    /// Writes accepted but not yet committed (queued for the disk or waiting for Raft).
    pub depth: u64,
    /// Age of the oldest pending entry (0 when none).
    pub oldest_age_ms: u64,
    /// Append-to-commit time of the oldest entry of the last committed batch.
    pub commit_lag_ms: u64,
    /// Writes committed since start.
    pub committed_total: u64,
    /// Batches committed since start.
    pub batches_total: u64,
    /// Proposals retried since start.
    pub retries_total: u64,
    /// Of those, proposals given up as stalled behind a leader that was gone.
    pub stalled_total: u64,
    /// Entries dropped (refused alone by the state machine) since start.
    pub dropped_total: u64,
    /// Disk errors since start.
    pub store_errors_total: u64,
}

struct Shared {
    store: OutboxStore,
    stats: Stats,
    /// Writes taken by [`Outbox::append`] since this process opened the store.
    appended_total: AtomicU64,
    /// Of those, written and fsync'd (the writer publishes after each group).
    written_total: tokio::sync::watch::Sender<u64>,
    wake: tokio::sync::Notify,
    stop: AtomicBool,
    /// The replicated state, where the drainer reads what became of a pending create.
    resolver: Option<SharedState>,
}

/// Stops the threads when the last [`Outbox`] handle goes (without waiting for them:
/// a drainer inside a proposal finishes it first).
struct StopOnDrop {
    shared: Arc<Shared>,
    threads: parking_lot::Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl StopOnDrop {
    fn signal(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
    }
}

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.signal();
    }
}

/// A handle to the site's outbox; clones share it.
#[derive(Clone)]
pub struct Outbox {
    shared: Arc<Shared>,
    appends: SyncSender<SiteWrite>,
    _stop: Arc<StopOnDrop>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Outbox")
            .field("store", &self.shared.store)
            .finish()
    }
}

impl Outbox {
    /// Opens the store in `data_dir/outbox` and starts the writer and the drainer, which
    /// proposes through `proposer` (resuming with what the store still holds).
    pub fn open(data_dir: &Path, proposer: Proposer) -> Result<Self, OutboxError> {
        Self::open_with(data_dir, proposer, None)
    }

    /// [`Outbox::open`], resolving pending creates from `resolver` (the replicated state the
    /// proposer's commands are applied to) once they commit.
    pub fn open_with(
        data_dir: &Path,
        proposer: Proposer,
        resolver: Option<SharedState>,
    ) -> Result<Self, OutboxError> {
        let store = OutboxStore::open(&data_dir.join(OUTBOX_DIRECTORY), now_ms())?;
        let last = store.last_sequence()?;
        let first_pending = store.first_pending()?;
        let committed = first_pending.map_or(last, |first| first.saturating_sub(1));
        let shared = Arc::new(Shared {
            store,
            stats: Stats::default(),
            appended_total: AtomicU64::new(0),
            written_total: tokio::sync::watch::Sender::new(0),
            wake: tokio::sync::Notify::new(),
            stop: AtomicBool::new(false),
            resolver,
        });
        shared.stats.durable.store(last, Ordering::SeqCst);
        shared.stats.committed.store(committed, Ordering::SeqCst);
        shared
            .stats
            .accepted
            .store(last.saturating_sub(committed), Ordering::SeqCst);
        if last > committed {
            tracing::info!(
                pending = last - committed,
                "outbox resumes with pending writes"
            );
        }
        let (appends, receiver) = sync_channel(OUTBOX_APPEND_QUEUE_MAX);
        let stop = Arc::new(StopOnDrop {
            shared: shared.clone(),
            threads: parking_lot::Mutex::new(Vec::new()),
        });
        let writer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("outbox-writer".to_string())
            .spawn(move || write_loop(&writer, &receiver, last))
            .map_err(|source| OutboxError::Thread {
                what: "writer",
                source,
            })?;
        stop.threads.lock().push(thread);
        let drainer = shared.clone();
        let thread = std::thread::Builder::new()
            .name("outbox-drainer".to_string())
            .spawn(move || drain_thread(drainer, proposer, committed))
            .map_err(|source| OutboxError::Thread {
                what: "drainer",
                source,
            })?;
        stop.threads.lock().push(thread);
        Ok(Self {
            _stop: stop,
            shared,
            appends,
        })
    }

    /// Stops the threads and waits for them (at most a proposal and a poll interval): on the
    /// last handle, the store is closed when this returns. Writes still queued are made
    /// durable first; what is not committed stays on disk for the next [`Outbox::open`].
    pub fn close(self) {
        let Outbox {
            shared,
            appends,
            _stop: stop,
        } = self;
        drop(appends);
        stop.signal();
        let threads = std::mem::take(&mut *stop.threads.lock());
        drop(stop);
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("an outbox thread panicked");
            }
        }
        drop(shared);
    }

    /// Queues `write` to be made durable and committed. Never waits for the disk or Raft;
    /// waits only while [`OUTBOX_APPEND_QUEUE_MAX`] writes are already queued.
    pub fn append(&self, write: SiteWrite) -> Result<(), OutboxError> {
        write.validate()?;
        let kind = write.kind();
        let write = match self.appends.try_send(write) {
            Ok(()) => None,
            Err(TrySendError::Full(write)) => Some(write),
            Err(TrySendError::Disconnected(_)) => return Err(OutboxError::Closed),
        };
        if let Some(write) = write {
            tracing::warn!(kind, "outbox append queue full; waiting for the disk");
            self.appends.send(write).map_err(|_| OutboxError::Closed)?;
        }
        self.shared.stats.accepted.fetch_add(1, Ordering::SeqCst);
        self.shared.appended_total.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// Resolves once every write appended before the call is fsync'd (not committed: the
    /// drainer commits it later, whatever happens to this process), or fails after
    /// [`OUTBOX_DURABLE_WAIT`]. What a site acknowledges after this survives a crash.
    pub async fn durable(&self) -> Result<(), OutboxError> {
        let target = self.shared.appended_total.load(Ordering::SeqCst);
        let mut written = self.shared.written_total.subscribe();
        match tokio::time::timeout(
            OUTBOX_DURABLE_WAIT,
            written.wait_for(|written| *written >= target),
        )
        .await
        {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(OutboxError::Closed),
            Err(_) => Err(OutboxError::NotDurable(OUTBOX_DURABLE_WAIT)),
        }
    }

    /// The incarnation of the store (its creation time in ms).
    pub fn incarnation(&self) -> u64 {
        self.shared.store.incarnation()
    }

    /// Depth, age, lag and counters, for `/metrics`.
    pub fn snapshot(&self) -> OutboxSnapshot {
        let stats = &self.shared.stats;
        let oldest = stats.oldest_pending_at_ms.load(Ordering::SeqCst);
        let accepted = stats.accepted.load(Ordering::SeqCst);
        let committed_total = stats.committed_total.load(Ordering::SeqCst);
        let dropped_total = stats.dropped_total.load(Ordering::SeqCst);
        OutboxSnapshot {
            depth: accepted.saturating_sub(committed_total + dropped_total),
            oldest_age_ms: if oldest == 0 {
                0
            } else {
                now_ms().saturating_sub(oldest)
            },
            commit_lag_ms: stats.commit_lag_ms.load(Ordering::SeqCst),
            committed_total,
            batches_total: stats.batches_total.load(Ordering::SeqCst),
            retries_total: stats.retries_total.load(Ordering::SeqCst),
            stalled_total: stats.stalled_total.load(Ordering::SeqCst),
            dropped_total,
            store_errors_total: stats.store_errors_total.load(Ordering::SeqCst),
        }
    }

    /// The pending create `id` as this site knows it, resolved from `state` when it committed
    /// meanwhile (the resolution is then stored). `None`: no such pending create here.
    pub fn pending_status(
        &self,
        id: &str,
        state: &SharedState,
    ) -> Result<Option<PendingRecord>, OutboxError> {
        let Some(record) = self.shared.store.pending(id)? else {
            return Ok(None);
        };
        Ok(Some(resolve_record(&self.shared, record, state)))
    }

    /// The pending creates this site remembers, newest first, optionally only `principal`'s,
    /// each resolved from `state` as [`Outbox::pending_status`] does; at most `limit`.
    pub fn pending_list(
        &self,
        principal: Option<&str>,
        state: &SharedState,
        limit: usize,
    ) -> Result<Vec<PendingRecord>, OutboxError> {
        let mut records: Vec<PendingRecord> = self
            .shared
            .store
            .pending_all()?
            .into_iter()
            .filter(|record| principal.is_none_or(|principal| record.principal == principal))
            .collect();
        records.sort_by(|one, other| {
            (other.taken_at_ms, other.sequence).cmp(&(one.taken_at_ms, one.sequence))
        });
        records.truncate(limit);
        Ok(records
            .into_iter()
            .map(|record| resolve_record(&self.shared, record, state))
            .collect())
    }

    /// The waiting (unresolved) pending create of `principal` under `key`, if any: a client
    /// retrying an async create gets the same pending id, not a second entry.
    pub fn pending_by_key(
        &self,
        principal: &str,
        key: &str,
    ) -> Result<Option<PendingRecord>, OutboxError> {
        Ok(self.shared.store.pending_all()?.into_iter().find(|record| {
            record.principal == principal && record.key == key && record.resolved.is_none()
        }))
    }

    /// The last sequence committed (tests and drills).
    pub fn committed_sequence(&self) -> u64 {
        self.shared.stats.committed.load(Ordering::SeqCst)
    }

    /// The last sequence fsync'd (tests and drills).
    pub fn durable_sequence(&self) -> u64 {
        self.shared.stats.durable.load(Ordering::SeqCst)
    }
}

/// The writer: takes what is queued (up to a group), fsyncs it as one batch, wakes the drainer.
fn write_loop(shared: &Shared, receiver: &Receiver<SiteWrite>, mut last: u64) {
    loop {
        let first = match receiver.recv_timeout(OUTBOX_IDLE_POLL) {
            Ok(write) => write,
            Err(RecvTimeoutError::Timeout) if shared.stop.load(Ordering::SeqCst) => return,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let mut group = vec![first];
        while group.len() < OUTBOX_GROUP_MAX {
            match receiver.try_recv() {
                Ok(write) => group.push(write),
                Err(_) => break,
            }
        }
        loop {
            match shared.store.append(last, group.clone(), now_ms()) {
                Ok(new_last) => {
                    debug_assert_eq!(new_last, last + group.len() as u64);
                    last = new_last;
                    shared.stats.durable.store(last, Ordering::SeqCst);
                    shared
                        .written_total
                        .send_modify(|written| *written += group.len() as u64);
                    shared.wake.notify_one();
                    break;
                }
                Err(error) => {
                    // Never dropped: the Site waits (queue full) rather than lose writes.
                    shared
                        .stats
                        .store_errors_total
                        .fetch_add(1, Ordering::SeqCst);
                    tracing::error!(%error, writes = group.len(), "outbox append failed; retrying");
                    if shared.stop.load(Ordering::SeqCst) {
                        return;
                    }
                    std::thread::sleep(OUTBOX_DISK_RETRY);
                }
            }
        }
    }
}

/// The drainer thread: its own single-threaded runtime, so proposing never runs on the
/// Site actor's thread.
fn drain_thread(shared: Arc<Shared>, proposer: Proposer, committed: u64) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "outbox drainer runtime did not start; writes stay on disk");
            return;
        }
    };
    runtime.block_on(drain_loop(&shared, &proposer, committed));
}

/// Proposes the pending entries batch after batch until stopped.
async fn drain_loop(shared: &Shared, proposer: &Proposer, mut committed: u64) {
    let mut backoff = OUTBOX_RETRY_BACKOFF_MIN;
    let mut limit = OUTBOX_BATCH_ENTRIES_MAX;
    // Resolve what a previous run left unresolved at the first idle moment.
    let mut last_sweep = tokio::time::Instant::now()
        .checked_sub(PENDING_SWEEP_INTERVAL)
        .unwrap_or_else(tokio::time::Instant::now);
    while !shared.stop.load(Ordering::SeqCst) {
        let pending = match shared.store.read_from(committed.saturating_add(1), limit) {
            Ok(pending) => pending,
            Err(error) => {
                shared
                    .stats
                    .store_errors_total
                    .fetch_add(1, Ordering::SeqCst);
                tracing::error!(%error, "outbox read failed; retrying");
                wait(shared, OUTBOX_DISK_RETRY).await;
                continue;
            }
        };
        let mut pending = pending;
        if let Some(create) = pending
            .iter()
            .position(|entry| entry.entry.write.is_create())
        {
            // One create per batch: the idempotency table keeps one key per log index.
            pending.truncate(create + 1);
        }
        let Some(first) = pending.first() else {
            shared.stats.oldest_pending_at_ms.store(0, Ordering::SeqCst);
            if last_sweep.elapsed() >= PENDING_SWEEP_INTERVAL {
                sweep_pending(shared, committed);
                last_sweep = tokio::time::Instant::now();
            }
            wait(shared, OUTBOX_IDLE_POLL).await;
            continue;
        };
        let oldest_at_ms = first.appended_at_ms;
        shared
            .stats
            .oldest_pending_at_ms
            .store(oldest_at_ms.max(1), Ordering::SeqCst);
        let last = pending
            .last()
            .map_or(committed, |entry| entry.entry.sequence);
        let count = pending.len() as u64;
        let creates: Vec<String> = pending
            .iter()
            .filter_map(|entry| match &entry.entry.write {
                SiteWrite::IdempotentCreate { pending, .. } => Some(pending.clone()),
                _ => None,
            })
            .collect();
        let batch = OutboxBatch {
            incarnation: shared.store.incarnation(),
            entries: pending.into_iter().map(|pending| pending.entry).collect(),
        };
        match propose_unless_stalled(shared, proposer, batch).await {
            Ok(outcome) => {
                if let Outcome::OutboxApplied {
                    refused,
                    duplicates,
                    ..
                } = outcome
                    && (refused > 0 || duplicates > 0)
                {
                    tracing::info!(refused, duplicates, "outbox batch committed with skips");
                }
                committed = last;
                commit_through(shared, committed, count, oldest_at_ms);
                resolve_committed(shared, &creates);
                backoff = OUTBOX_RETRY_BACKOFF_MIN;
                limit = OUTBOX_BATCH_ENTRIES_MAX;
            }
            Err(ProposeFailure::Replication(ReplicateError::ShuttingDown)) => return,
            Err(ProposeFailure::Replication(
                error @ (ReplicateError::Unavailable(_) | ReplicateError::Indeterminate(_)),
            )) => {
                shared.stats.retries_total.fetch_add(1, Ordering::SeqCst);
                tracing::debug!(%error, entries = count, "outbox batch not committed; retrying");
                back_off(shared, backoff).await;
                backoff = (backoff * 2).min(OUTBOX_RETRY_BACKOFF_MAX);
            }
            Err(error) if limit > 1 => {
                tracing::warn!(%error, "outbox batch refused; retrying entry by entry");
                limit = 1;
            }
            Err(error) => {
                // One entry refused alone, deterministically: it can never commit.
                tracing::error!(%error, sequence = last, "outbox entry refused; dropped");
                shared.stats.dropped_total.fetch_add(1, Ordering::SeqCst);
                committed = last;
                commit_through(shared, committed, 0, oldest_at_ms);
                resolve_committed(shared, &creates);
            }
        }
    }
}

/// Resolves a pending record from the replicated state, if it can: the idempotency table's
/// answer to its key (stored once found). An unresolved record stays as it is.
fn resolve_record(
    shared: &Shared,
    mut record: PendingRecord,
    state: &SharedState,
) -> PendingRecord {
    if record.resolved.is_some() {
        return record;
    }
    let Some(response) = state
        .read(|state| state.idempotent_result(&record.principal, &record.key, &record.command))
    else {
        return record;
    };
    record.resolved = Some(Resolved {
        at_ms: now_ms(),
        response: Some(response),
    });
    if let Err(error) = shared.store.put_pending(&record) {
        // Harmless: resolved again from the state next time.
        shared
            .stats
            .store_errors_total
            .fetch_add(1, Ordering::SeqCst);
        tracing::warn!(%error, pending = %record.id, "pending create resolution not stored");
    }
    record
}

/// After a batch with the pending creates `ids` committed: records what became of them.
fn resolve_committed(shared: &Shared, ids: &[String]) {
    for id in ids {
        let record = match shared.store.pending(id) {
            Ok(Some(record)) => record,
            Ok(None) => continue,
            Err(error) => {
                tracing::warn!(%error, pending = %id, "pending record unreadable");
                continue;
            }
        };
        let record = match &shared.resolver {
            Some(state) => resolve_record(shared, record, state),
            None => record,
        };
        if record.resolved.is_none() {
            // Committed, but the key's memory is gone (or no state to read): say so.
            mark_committed_unknown(shared, record);
        } else {
            tracing::info!(pending = %id, "pending create committed");
        }
    }
}

fn mark_committed_unknown(shared: &Shared, mut record: PendingRecord) {
    record.resolved = Some(Resolved {
        at_ms: now_ms(),
        response: None,
    });
    if let Err(error) = shared.store.put_pending(&record) {
        tracing::warn!(%error, pending = %record.id, "pending create resolution not stored");
    }
}

/// Resolves the pending records whose entries committed (a restart between the commit and the
/// resolution) and forgets those resolved more than [`PENDING_RESOLVED_RETENTION_MS`] ago.
fn sweep_pending(shared: &Shared, committed: u64) {
    let records = match shared.store.pending_all() {
        Ok(records) => records,
        Err(error) => {
            tracing::warn!(%error, "pending records unreadable");
            return;
        }
    };
    let now = now_ms();
    let mut forget = Vec::new();
    for record in records {
        match &record.resolved {
            Some(resolved)
                if now.saturating_sub(resolved.at_ms) > PENDING_RESOLVED_RETENTION_MS =>
            {
                forget.push(record.id);
            }
            Some(_) => {}
            None if record.sequence <= committed => {
                let id = record.id.clone();
                resolve_committed(shared, &[id]);
            }
            None => {}
        }
    }
    if !forget.is_empty()
        && let Err(error) = shared.store.forget_pending(&forget)
    {
        tracing::warn!(%error, "resolved pending records not forgotten");
    }
}

/// Records that everything through `sequence` is done and deletes it from the store.
fn commit_through(shared: &Shared, sequence: u64, committed: u64, oldest_at_ms: u64) {
    let stats = &shared.stats;
    debug_assert!(
        sequence <= stats.durable.load(Ordering::SeqCst),
        "only durable entries are proposed"
    );
    stats.committed.store(sequence, Ordering::SeqCst);
    if committed > 0 {
        stats.committed_total.fetch_add(committed, Ordering::SeqCst);
        stats.batches_total.fetch_add(1, Ordering::SeqCst);
        stats
            .commit_lag_ms
            .store(now_ms().saturating_sub(oldest_at_ms), Ordering::SeqCst);
    }
    if let Err(error) = shared.store.remove_through(sequence) {
        // Harmless: the entries are proposed again and skipped as duplicates.
        stats.store_errors_total.fetch_add(1, Ordering::SeqCst);
        tracing::warn!(%error, "outbox could not delete committed entries");
    }
}

/// Sleeps `duration`, or less when the outbox stops (new entries do not cut it short).
async fn back_off(shared: &Shared, duration: Duration) {
    let deadline = tokio::time::Instant::now() + duration;
    let applied = applied_index(shared);
    while !shared.stop.load(Ordering::SeqCst) && tokio::time::Instant::now() < deadline {
        if shared.resolver.is_some() && applied_index(shared) > applied {
            // The cluster commits again: the quorum is back, try now.
            return;
        }
        let poll = (tokio::time::Instant::now() + OUTBOX_PROGRESS_POLL).min(deadline);
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep_until(poll) => {}
        }
    }
}

/// The replicated state's applied index (0 without a state to read).
fn applied_index(shared: &Shared) -> u64 {
    shared
        .resolver
        .as_ref()
        .map_or(0, SharedState::applied_index)
}

/// Proposes `batch`; gives up on the answer (as `Indeterminate`: the caller proposes again at
/// once, and the state machine skips what committed) when it is unanswered after
/// [`OUTBOX_PROPOSAL_STALL`] while the cluster went on applying other entries — the proposal
/// went to a leader that is gone, and waiting for the cluster's proposal timeout would leave
/// the site's acknowledged writes unreplicated for seconds after every leader change.
async fn propose_unless_stalled(
    shared: &Shared,
    proposer: &Proposer,
    batch: OutboxBatch,
) -> Result<Outcome, ProposeFailure> {
    let proposal = proposer.propose(Principal::system(), Command::Outbox(batch));
    let started = applied_index(shared);
    let stalled = async {
        tokio::time::sleep(OUTBOX_PROPOSAL_STALL).await;
        while applied_index(shared) <= started {
            tokio::time::sleep(OUTBOX_PROGRESS_POLL).await;
        }
    };
    tokio::select! {
        result = proposal => result,
        () = stalled, if shared.resolver.is_some() => {
            shared.stats.stalled_total.fetch_add(1, Ordering::SeqCst);
            Err(ProposeFailure::Replication(ReplicateError::Indeterminate(
                "no answer while the cluster committed other writes: proposing again".to_string(),
            )))
        }
    }
}

/// Sleeps `duration` or until woken (new entries, or the outbox stopping).
async fn wait(shared: &Shared, duration: Duration) {
    tokio::select! {
        () = shared.wake.notified() => {}
        () = tokio::time::sleep(duration) => {}
    }
}
