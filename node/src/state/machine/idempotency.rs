//! Exactly-once creates: the first result of every `Command::Idempotent`, remembered per
//! (principal, Idempotency-Key) for [`IDEMPOTENCY_KEY_TTL_MS`] of log time.
//!
//! - A key is scoped to the principal (`Actor::name`), not to the site that proposed it: a
//!   client whose site failed retries through another site with the same key and must get the
//!   same answer.
//! - The request's fingerprint is SHA-256 over the command's bincode encoding, computed here
//!   (never taken from the log): the same key with another body is refused, not replayed.
//! - Expiry runs on the log's time (`Envelope::at_ms`), never on the applying node's clock, so
//!   every replica forgets a key at the same entry. The sweep is amortised
//!   ([`IDEMPOTENCY_EXPIRIES_PER_APPLY_MAX`] per applied command).
//! - At most [`IDEMPOTENCY_KEYS_MAX`] keys are kept; beyond that the one that expires first is
//!   forgotten early (deterministically, by (expiry, log index)) and counted. State memory per
//!   key: the principal and the key twice (map and expiry index), a 32-byte fingerprint and the
//!   first response — measured ~600 bytes resident and ~184 snapshot bytes per UUID-sized key,
//!   ~29 MiB at the cap (`node/tests/t80_issue9_idempotency_memory.rs`). A 17,000-contact day
//!   makes a few thousand creates, so the table normally holds a tenth of the cap.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use super::super::command::{ApplyError, Command, Envelope, Outcome, Response};
use super::super::model::{DAY_MS, TimestampMs};
use super::{ReplicatedState, StateEvent};

/// How long a key's first result is remembered, in log time.
pub const IDEMPOTENCY_KEY_TTL_MS: u64 = DAY_MS;
/// Keys remembered at most (the oldest is forgotten first beyond it).
pub const IDEMPOTENCY_KEYS_MAX: usize = 50_000;
/// Expired keys forgotten per applied command.
pub const IDEMPOTENCY_EXPIRIES_PER_APPLY_MAX: usize = 1_000;

/// SHA-256 of a request's canonical form.
pub type Fingerprint = [u8; 32];

/// (principal, key).
type Scope = (String, String);

/// What is remembered of a key's first request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Remembered {
    fingerprint: Fingerprint,
    response: Response,
    /// (expires_at_ms, log index of the first request): this entry's place in `expiries`.
    expiry: (TimestampMs, u64),
}

/// The remembered keys, in the replicated state (and so in snapshots).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct IdempotencyTable {
    entries: BTreeMap<Scope, Remembered>,
    /// Keys by (expiry, log index): unique, since one entry remembers at most one key.
    expiries: BTreeMap<(TimestampMs, u64), Scope>,
    /// Keys forgotten before their expiry because the table was full.
    evicted: u64,
}

/// What the table says of a request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Seen {
    /// The key is new (or expired): execute the request and remember its result.
    New,
    /// The same request was made before: this is its first result.
    Replay(Response),
    /// The key was used for another request.
    Mismatch,
}

/// The fingerprint of `command` (its bincode encoding, which the log's format fixes).
pub(super) fn fingerprint(command: &Command) -> Fingerprint {
    // Encoding our own command into a Vec cannot fail; should it ever, the empty input
    // still yields a deterministic fingerprint on every replica.
    let bytes =
        bincode::serde::encode_to_vec(command, bincode::config::standard()).unwrap_or_default();
    sha2::Sha256::digest(&bytes).into()
}

impl IdempotencyTable {
    /// Looks `key` of `principal` up at log time `at_ms` (an expired key counts as new).
    pub(super) fn seen(
        &self,
        principal: &str,
        key: &str,
        fingerprint: &Fingerprint,
        at_ms: TimestampMs,
    ) -> Seen {
        let scope = (principal.to_string(), key.to_string());
        match self.entries.get(&scope) {
            Some(found) if found.expiry.0 > at_ms => {
                if &found.fingerprint == fingerprint {
                    Seen::Replay(found.response.clone())
                } else {
                    Seen::Mismatch
                }
            }
            _ => Seen::New,
        }
    }

    /// Remembers the first `response` to `key` of `principal`, applied at `index` and `at_ms`;
    /// forgets the earliest-expiring key when the table is full.
    pub(super) fn remember(
        &mut self,
        principal: &str,
        key: &str,
        fingerprint: Fingerprint,
        response: Response,
        at_ms: TimestampMs,
        index: u64,
    ) {
        let scope = (principal.to_string(), key.to_string());
        if let Some(previous) = self.entries.remove(&scope) {
            // An expired entry the sweep has not reached yet.
            self.expiries.remove(&previous.expiry);
        }
        while self.entries.len() >= IDEMPOTENCY_KEYS_MAX {
            let Some((_, oldest)) = self.expiries.pop_first() else {
                break;
            };
            self.entries.remove(&oldest);
            self.evicted += 1;
        }
        let expiry = (at_ms.saturating_add(IDEMPOTENCY_KEY_TTL_MS), index);
        self.expiries.insert(expiry, scope.clone());
        self.entries.insert(
            scope,
            Remembered {
                fingerprint,
                response,
                expiry,
            },
        );
        debug_assert_eq!(self.entries.len(), self.expiries.len());
    }

    /// Forgets keys whose time ran out by `at_ms` (at most
    /// [`IDEMPOTENCY_EXPIRIES_PER_APPLY_MAX`]).
    pub(super) fn expire(&mut self, at_ms: TimestampMs) {
        for _ in 0..IDEMPOTENCY_EXPIRIES_PER_APPLY_MAX {
            let Some(entry) = self.expiries.first_entry() else {
                return;
            };
            if entry.key().0 > at_ms {
                return;
            }
            let scope = entry.remove();
            self.entries.remove(&scope);
        }
    }

    /// Keys remembered now.
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Keys forgotten early because the table was full.
    pub(super) fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Checks that the map and its expiry index agree (debug assertions and tests).
    pub(super) fn check_invariants(&self) -> Result<(), String> {
        if self.entries.len() != self.expiries.len() || self.entries.len() > IDEMPOTENCY_KEYS_MAX {
            return Err(format!(
                "idempotency table: {} keys, {} expiries (max {IDEMPOTENCY_KEYS_MAX})",
                self.entries.len(),
                self.expiries.len()
            ));
        }
        for (expiry, scope) in &self.expiries {
            if self.entries.get(scope).map(|entry| entry.expiry) != Some(*expiry) {
                return Err(format!(
                    "idempotency key {scope:?} not indexed at {expiry:?}"
                ));
            }
        }
        Ok(())
    }
}

impl ReplicatedState {
    /// What the table remembers of `key` of `principal` for the create `command`, if it still
    /// holds the key (whether or not its time ran out by the log's clock): the first result
    /// when `command` was the request made under the key, `IdempotencyKeyReused` when another
    /// was. How a site learns what became of a create that waited in its outbox.
    pub fn idempotent_result(
        &self,
        principal: &str,
        key: &str,
        command: &Command,
    ) -> Option<Response> {
        let remembered = self
            .idempotency
            .entries
            .get(&(principal.to_string(), key.to_string()))?;
        Some(if remembered.fingerprint == fingerprint(command) {
            remembered.response.clone()
        } else {
            Err(ApplyError::IdempotencyKeyReused {
                key: key.to_string(),
            })
        })
    }

    /// Applies the create `command` under `key` (the envelope's `Command::Idempotent`, already
    /// validated): the first time it runs and its result is remembered, whatever it was; a
    /// retry of the same request gets that result back, another request under the key is
    /// refused. Nothing but the table changes on a retry.
    pub(super) fn apply_once(
        &mut self,
        index: u64,
        envelope: &Envelope,
        key: &str,
        command: &Command,
        events: &mut Vec<StateEvent>,
    ) -> Response {
        let principal = envelope.actor.name.as_str();
        let fingerprint = fingerprint(command);
        match self
            .idempotency
            .seen(principal, key, &fingerprint, envelope.at_ms)
        {
            Seen::Replay(first) => Ok(Outcome::Replayed(Box::new(first))),
            Seen::Mismatch => Err(ApplyError::IdempotencyKeyReused {
                key: key.to_string(),
            }),
            Seen::New => {
                let inner = Envelope {
                    at_ms: envelope.at_ms,
                    actor: envelope.actor.clone(),
                    site: envelope.site.clone(),
                    command: command.clone(),
                };
                let response = self.apply_command(&inner, events);
                debug_assert!(!matches!(response, Ok(Outcome::Replayed(_))));
                self.idempotency.remember(
                    principal,
                    key,
                    fingerprint,
                    response.clone(),
                    envelope.at_ms,
                    index,
                );
                response
            }
        }
    }
}
