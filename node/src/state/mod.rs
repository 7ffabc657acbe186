//! The replicated state of the cluster: what goes through Raft.
//!
//! ```text
//!   API / actors ── Command::validate ── Envelope{at_ms, actor, site} ── encode ──► Raft log
//!                                                                                    │ commit
//!   readers ◄── SharedState (RwLock) ◄── ReplicatedState::apply ◄── decode ◄─────────┘
//! ```
//!
//! - [`model`] — the records (orders, pre-orders, reservations, complaints, callbacks).
//! - [`command`] — commands, their validation, outcomes and errors.
//! - [`machine`] — the deterministic state machine that applies committed commands.
//! - [`ledger`] — the contact ledger's records (where each contact is, at coarse grain).
//! - [`site_writes`] — the batches of a site's durable outbox and their de-duplication mark.
//! - [`quality`] — the checklist and the supervisors' reviews of finished contacts.
//!
//! Encoding is bincode 2 with a version byte, through the cluster crate's codec, so an old log
//! replays on a new binary (see `callgrid_cluster::codec`).

pub mod command;
pub mod ledger;
pub mod machine;
pub mod model;
pub mod quality;
pub mod site_writes;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

pub use command::{ApplyError, Command, Envelope, InvalidCommand, Outcome, Response};
pub use machine::{ReplicatedState, StateCounts, StateEvent};

/// The envelope (log entry) format of this tree's layouts. New commands are only ever
/// appended to [`Command`], so entries of version 1 still decode.
const STATE_FORMAT_BASE: u8 = 1;

/// Version byte of the envelope and response encodings this binary writes. With the
/// `codec-next` feature (the rolling-upgrade drill's "next release", deploy/compose/drill.sh)
/// the binary writes the next version byte — same layout — and still reads the base one, as
/// a release that changes the format must: its nodes replay the old log.
pub const STATE_FORMAT_VERSION: u8 = next_if_upgrading(STATE_FORMAT_BASE);

/// The snapshot format of this tree's layouts. Version 2: callbacks are held by the domain's
/// callback machine, closed records carry a retention schedule, and counts are kept as
/// tallies. Version 3: the state ends with the site control (drained sites, cluster-wide
/// tokens, per-site policies), the idempotency keys' first results, each site's outbox
/// progress (the de-duplication mark of its batches), the contact ledger and the overflow
/// counts. Version 4: ledger entries keep the answering agent and the recording reference,
/// and the state ends with the quality reviews, then the cluster-wide agent roster; a
/// version-3 snapshot is still read (converted by `machine::ReplicatedStateV3`: no reviews,
/// an empty roster that each site seeds again). An older snapshot is refused with
/// `UnknownVersion { found }`: the node then needs the log from the start or a snapshot from
/// an upgraded peer.
const SNAPSHOT_FORMAT_BASE: u8 = 4;
/// The previous snapshot format, still read.
const SNAPSHOT_FORMAT_V3: u8 = 3;

/// Version byte of the snapshot encoding this binary writes (bumped by `codec-next` as
/// [`STATE_FORMAT_VERSION`] is).
pub const SNAPSHOT_FORMAT_VERSION: u8 = next_if_upgrading(SNAPSHOT_FORMAT_BASE);

/// `base`, or the next version under the `codec-next` feature.
const fn next_if_upgrading(base: u8) -> u8 {
    if cfg!(feature = "codec-next") {
        base + 1
    } else {
        base
    }
}

/// `Versioned::decode_other_version` of the state's types: a `codec-next` binary reads the
/// base version's bodies (the layout is the same); any other version is unknown.
fn decode_base_version<T: serde::de::DeserializeOwned>(
    base: u8,
    current: u8,
    version: u8,
    body: &[u8],
) -> Result<T, codec::CodecError> {
    if cfg!(feature = "codec-next") && version == base {
        codec::decode_body(body)
    } else {
        Err(codec::CodecError::UnknownVersion {
            found: version,
            current,
        })
    }
}

/// State events buffered per subscriber before a slow subscriber starts losing the oldest.
pub const STATE_EVENTS_BUFFER: usize = 1_024;

/// Why bytes could not be turned into state types.
#[derive(Debug, thiserror::Error)]
pub enum EncodingError {
    /// The bytes are not a valid encoding (corrupted, truncated, or an unknown version).
    #[error("cannot decode: {0}")]
    Decode(String),
    /// The value could not be encoded (too large).
    #[error("cannot encode: {0}")]
    Encode(String),
}

use callgrid_cluster::codec;

impl codec::Versioned for Envelope {
    const VERSION: u8 = STATE_FORMAT_VERSION;

    fn decode_other_version(version: u8, body: &[u8]) -> Result<Self, codec::CodecError> {
        decode_base_version(STATE_FORMAT_BASE, STATE_FORMAT_VERSION, version, body)
    }
}

/// The snapshot is the state itself, encoded straight from behind the read lock (no copy).
impl codec::Versioned for ReplicatedState {
    const VERSION: u8 = SNAPSHOT_FORMAT_VERSION;

    fn decode_other_version(version: u8, body: &[u8]) -> Result<Self, codec::CodecError> {
        if version == SNAPSHOT_FORMAT_V3 {
            return codec::decode_body::<machine::ReplicatedStateV3>(body).map(Into::into);
        }
        decode_base_version(SNAPSHOT_FORMAT_BASE, SNAPSHOT_FORMAT_VERSION, version, body)
    }
}

/// Responses travel back to the proposer in the same versioned encoding.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResponseRecord(Response);

impl codec::Versioned for ResponseRecord {
    const VERSION: u8 = STATE_FORMAT_VERSION;

    fn decode_other_version(version: u8, body: &[u8]) -> Result<Self, codec::CodecError> {
        decode_base_version(STATE_FORMAT_BASE, STATE_FORMAT_VERSION, version, body)
    }
}

/// Encodes an envelope for a Raft entry.
pub fn encode_envelope(envelope: &Envelope) -> Result<Vec<u8>, EncodingError> {
    codec::encode_versioned(envelope).map_err(|error| EncodingError::Encode(error.to_string()))
}

/// Decodes a Raft entry into an envelope.
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, EncodingError> {
    codec::decode_versioned(bytes).map_err(|error| EncodingError::Decode(error.to_string()))
}

/// Encodes the state machine's response for the proposer.
pub fn encode_response(response: &Response) -> Vec<u8> {
    // A response is small and made of our own types; if it still cannot be encoded, the
    // proposer gets an empty answer and reports it as undecodable rather than the node dying.
    codec::encode_versioned(&ResponseRecord(response.clone())).unwrap_or_default()
}

/// Decodes the state machine's response.
pub fn decode_response(bytes: &[u8]) -> Result<Response, EncodingError> {
    codec::decode_versioned::<ResponseRecord>(bytes)
        .map(|record| record.0)
        .map_err(|error| EncodingError::Decode(error.to_string()))
}

/// The replicated state encoded at one applied index ([`SharedState::encoded`]), to be
/// written elsewhere.
#[derive(Debug)]
pub struct EncodedState {
    applied_index: u64,
    /// The encoding, or why it failed (reported when the snapshot is written).
    bytes: Result<Vec<u8>, String>,
}

impl EncodedState {
    /// The index of the last entry the encoding holds.
    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }

    /// Writes the bytes [`SharedState::snapshot_to`] would have written at that index (or
    /// the error the encoding met).
    pub fn write_to(&self, out: &mut dyn std::io::Write) -> Result<(), EncodingError> {
        let bytes = self
            .bytes
            .as_ref()
            .map_err(|error| EncodingError::Encode(error.clone()))?;
        out.write_all(bytes)
            .map_err(|error| EncodingError::Encode(format!("writing the snapshot: {error}")))
    }
}

/// The state shared between the Raft apply thread (writer) and the API and actors (readers).
/// A `parking_lot::RwLock` rather than an actor: reads are many, short and synchronous, and
/// the apply thread must never wait on an async executor.
#[derive(Debug, Clone)]
pub struct SharedState {
    inner: Arc<RwLock<ReplicatedState>>,
    events: broadcast::Sender<StateEvent>,
}

impl Default for SharedState {
    fn default() -> Self {
        let (events, _) = broadcast::channel(STATE_EVENTS_BUFFER);
        Self {
            inner: Arc::default(),
            events,
        }
    }
}

impl SharedState {
    /// An empty shared state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The events this node's applies produce from now on (reservation expiries, complaint
    /// escalations, callback claims that ran out), for the supervisor stream.
    pub fn subscribe_events(&self) -> broadcast::Receiver<StateEvent> {
        self.events.subscribe()
    }

    /// Runs `read` with the state locked for reading.
    pub fn read<T>(&self, read: impl FnOnce(&ReplicatedState) -> T) -> T {
        read(&self.inner.read())
    }

    /// Applies one committed Raft entry and returns the encoded response. Entries that do not
    /// decode (empty entries Raft appends on leader change, or garbage) are skipped with an
    /// `Undecodable` response, deterministically on every node.
    pub fn apply_entry(&self, index: u64, bytes: &[u8]) -> Vec<u8> {
        let mut events = Vec::new();
        let mut state = self.inner.write();
        let response = match decode_envelope(bytes) {
            Ok(envelope) => {
                let response = state.apply_with_events(index, &envelope, &mut events);
                if let Err(error) = &response {
                    tracing::debug!(index, kind = envelope.command.kind(), %error, "command refused");
                }
                response
            }
            Err(error) => {
                state.skip(index);
                Err(ApplyError::Undecodable(error.to_string()))
            }
        };
        drop(state);
        for event in events {
            // No subscriber is not an error: nobody is watching.
            let _ = self.events.send(event);
        }
        encode_response(&response)
    }

    /// Encodes the whole state for a Raft snapshot, from behind the read lock: readers go on,
    /// the apply thread waits for the encoding, and the state is never copied.
    pub fn snapshot(&self) -> Result<Vec<u8>, EncodingError> {
        let state = self.inner.read();
        codec::encode_snapshot(&*state).map_err(|error| EncodingError::Encode(error.to_string()))
    }

    /// Writes the same bytes as [`Self::snapshot`] straight into `out` (the cluster's
    /// snapshot file), from behind the read lock, without a copy in memory.
    pub fn snapshot_to(&self, out: &mut dyn std::io::Write) -> Result<(), EncodingError> {
        let state = self.inner.read();
        codec::encode_snapshot_to(&*state, out)
            .map_err(|error| EncodingError::Encode(error.to_string()))
    }

    /// The state encoded behind the read lock, for a snapshot written and fsynced on another
    /// thread ([`EncodedState::write_to`]): the apply thread waits for the encoding only,
    /// not for the file. The encoding is held in memory until written (the compact form of
    /// the state, smaller than the maps it comes from; `benches/snapshot_build.rs`).
    pub fn encoded(&self) -> EncodedState {
        let state = self.inner.read();
        EncodedState {
            applied_index: state.applied_index,
            bytes: codec::encode_snapshot(&*state).map_err(|error| error.to_string()),
        }
    }

    /// Replaces the state with the snapshot read from `input` (decoded as it streams in;
    /// the state is replaced only once the whole snapshot decoded).
    pub fn restore_from(&self, input: &mut dyn std::io::Read) -> Result<(), EncodingError> {
        let state: ReplicatedState = codec::decode_snapshot_from(input)
            .map_err(|error| EncodingError::Decode(error.to_string()))?;
        *self.inner.write() = state;
        Ok(())
    }

    /// Replaces the state with a snapshot.
    pub fn restore(&self, bytes: &[u8]) -> Result<(), EncodingError> {
        let state: ReplicatedState = codec::decode_snapshot(bytes)
            .map_err(|error| EncodingError::Decode(error.to_string()))?;
        *self.inner.write() = state;
        Ok(())
    }

    /// Index of the last applied entry.
    pub fn applied_index(&self) -> u64 {
        self.inner.read().applied_index
    }
}
