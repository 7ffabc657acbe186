//! Writes a site must get committed, carried in batches from its durable outbox
//! (`crate::outbox`) by one [`Command::Outbox`](super::Command::Outbox) each.
//!
//! Every entry carries the site's outbox sequence. The state machine remembers, per site, the
//! highest sequence it applied (replicated, in snapshots) and skips entries at or below it, so a
//! batch proposed again after "outcome unknown" applies once. The `incarnation` names the
//! outbox's on-disk store (its creation time): a store that was lost and recreated starts its
//! sequences again under a newer incarnation, and a batch of an older incarnation is skipped.

use serde::{Deserialize, Serialize};

use super::command::{InvalidCommand, SHORT_TEXT_CHARS_MAX, validate_phone, validate_text};
use super::ledger::LedgerUpdate;
use super::model::{CallbackId, CallbackOutcome, TimestampMs};

/// Entries allowed in one batch (one Raft entry). At the 17k day's peak a site appends a few
/// entries a second, so a batch rarely holds more than a handful; the cap bounds the entry a
/// site emptying a long backlog proposes (about 100 bytes an entry: ~50 KB).
pub const OUTBOX_BATCH_ENTRIES_MAX: usize = 512;

/// One write of a site, as its outbox holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteWrite {
    /// A caller abandoned: create a callback unless one is already open for the number
    /// (as `Command::CreateAbandonedCallback`).
    AbandonedCallback {
        /// Number to dial (normalized).
        caller: String,
        /// Queue the caller waited in.
        skill: String,
        /// Caller's original queue ordering time.
        ordering_time_ms: TimestampMs,
    },
    /// The number phoned in: its waiting abandoned-call callback is cancelled (as
    /// `Command::CallerCalledIn`).
    CallerCalledIn {
        /// The caller's number (normalized).
        caller: String,
    },
    /// The outcome of a dial attempt (as `Command::RecordCallbackAttempt`).
    CallbackAttempt {
        /// The callback.
        callback: CallbackId,
        /// What happened.
        outcome: CallbackOutcome,
    },
    /// A contact's coarse stage for the contact ledger.
    Ledger(LedgerUpdate),
}

impl SiteWrite {
    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SiteWrite::AbandonedCallback { .. } => "abandoned_callback",
            SiteWrite::CallerCalledIn { .. } => "caller_called_in",
            SiteWrite::CallbackAttempt { .. } => "callback_attempt",
            SiteWrite::Ledger(_) => "ledger",
        }
    }

    /// Checks everything that can be checked without the state.
    pub fn validate(&self) -> Result<(), InvalidCommand> {
        match self {
            SiteWrite::AbandonedCallback { caller, skill, .. } => {
                validate_phone("caller", caller)?;
                validate_text("skill", skill, SHORT_TEXT_CHARS_MAX, false)
            }
            SiteWrite::CallerCalledIn { caller } => validate_phone("caller", caller),
            SiteWrite::CallbackAttempt { .. } => Ok(()),
            SiteWrite::Ledger(update) => update.validate(),
        }
    }
}

/// One outbox entry: the write and its place in the site's outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Position in the site's outbox (from 1, increasing by one per entry).
    pub sequence: u64,
    /// What to write.
    pub write: SiteWrite,
}

/// Entries of one site's outbox, oldest first; the site is the envelope's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxBatch {
    /// The outbox store's incarnation (its creation time in ms).
    pub incarnation: u64,
    /// The entries, by increasing sequence.
    pub entries: Vec<OutboxEntry>,
}

impl OutboxBatch {
    /// Checks the batch's shape and every entry.
    pub fn validate(&self) -> Result<(), InvalidCommand> {
        if self.entries.is_empty() || self.entries.len() > OUTBOX_BATCH_ENTRIES_MAX {
            return Err(InvalidCommand::new(
                "entries",
                &format!("must hold 1 to {OUTBOX_BATCH_ENTRIES_MAX} entries"),
            ));
        }
        if self.incarnation == 0 {
            return Err(InvalidCommand::new("incarnation", "must be positive"));
        }
        let mut previous = 0;
        for entry in &self.entries {
            if entry.sequence <= previous {
                return Err(InvalidCommand::new(
                    "entries.sequence",
                    "sequences must be positive and increasing",
                ));
            }
            previous = entry.sequence;
            entry.write.validate()?;
        }
        Ok(())
    }
}

/// How far a site's outbox has been applied: the replicated de-duplication mark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxProgress {
    /// The incarnation of the store the sequence counts in.
    pub incarnation: u64,
    /// The highest sequence applied.
    pub sequence: u64,
}
