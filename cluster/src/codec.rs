//! Codec: every byte format of the cluster, in one place — the application's versioned
//! bincode, the driver's own layouts inside entries and snapshots, raft protobuf and the wire
//! frames — so a format change is reviewed here and nowhere else.
//!
//! Three layers, from the inside out, plus the driver's layouts beside the first:
//!
//! ```text
//!   application command / snapshot ── encode_versioned ──► [version u8][bincode 2 body]
//!
//!   peer messages and frames ([`wire`], re-exported here):
//!   PeerMessage ── encode_message_body ──► [kind u8][kind-specific body]
//!                                              Raft: raft-rs protobuf (protobuf 2)
//!                                              Forward / ForwardReply: fixed big-endian fields
//!   message body ── encode_frame ──► [length u32 big-endian][body]    (≤ FRAME_BYTES_MAX)
//!   large body   ── encode_chunk_frames ──► frames of kind CHUNK (≤ CHUNK_BYTES each),
//!                                           reassembled by ChunkAssembler (≤ ASSEMBLED_BYTES_MAX)
//!
//!   driver layouts ([`driver`], re-exported here): SnapshotEnvelope (peer addresses + the
//!   application snapshot), conf change address, EntryTag (who proposed an entry),
//!   ReadContext (who asked for a read index) — fixed little-endian fields, version byte first
//!
//!   store records ([`record`], re-exported here): [crc32 u32][payload] for every RocksDB
//!   value, big-endian log keys
//! ```
//!
//! Where each part lives: this module holds the size limits, [`CodecError`], the versioned
//! application data, the raft protobuf helpers and the node names of certificates; `wire`
//! the peer message bodies, frames and chunks; `driver` and `record` the layouts above; the
//! unit tests (with the proptest over every decoder) are in `tests`. Everything public is
//! re-exported here, so every item is reached as `crate::codec::X`.
//!
//! Decoding is sans-IO: [`FrameDecoder`] takes bytes as they arrive and yields whole frame
//! bodies, refusing a length prefix above the limit before buffering anything, so a peer can
//! never make us allocate more than the limit. Every decoder returns [`CodecError`] instead
//! of panicking on any input (a proptest checks this).
//!
//! # Versioned application data and rolling upgrades
//! Every Raft entry and snapshot the node writes starts with one version byte
//! ([`Versioned::VERSION`], never 0). Logs are replayed long after they were written, so a
//! binary must read every version still present in any log or snapshot:
//! - [`decode_versioned`] decodes the body directly when the byte equals `T::VERSION`, and
//!   otherwise hands the byte and the body to [`Versioned::decode_other_version`]. A type
//!   that changed keeps its old shape as a private struct, decodes it there with
//!   [`decode_body`], and converts it to the current one.
//! - A rolling upgrade happens in two releases: release N+1 learns to *read* version V+1
//!   (through `decode_other_version`) while still *writing* V; once every node runs N+1,
//!   release N+2 writes V+1. A node never meets a byte it cannot read, and an unknown byte
//!   is a clear [`CodecError::UnknownVersion`], never a misparse.

use bincode::config::{Configuration, Limit};
use protobuf::Message as _;
use raft::eraftpb::Message as RaftMessage;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::transport::NodeId;

mod driver;
mod record;
mod snapshot_stream;
mod wire;

pub use driver::{
    CLUSTER_ID_BYTES_MAX, DRIVER_LAYOUT_VERSION, DriverEntry, EntryTag, ReadContext,
    SNAPSHOT_HEADER_BYTES_MAX, SnapshotEnvelope, StoreIdentity, decode_address, encode_address,
    one_member_change,
};
pub use record::{
    RECORD_CHECKSUM_BYTES, decode_applied_index, encode_applied_index, log_index, log_key,
    open_record, seal_record,
};
pub use snapshot_stream::{
    SnapshotData, SnapshotHeader, SnapshotReceiver, encode_snapshot_data_frame,
    encode_snapshot_frames, encode_snapshot_header_frame, snapshot_round_trip,
};
pub use wire::{
    Chunk, ChunkAssembler, Frame, FrameDecoder, LENGTH_PREFIX_BYTES, decode_frame_body,
    decode_message_body, encode_chunk_frames, encode_frame, encode_message_body,
};

/// Largest frame body accepted on the wire (the length prefix is checked against it before
/// any byte of the body is buffered).
pub const FRAME_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Size of the data in one chunk of a large message (a `MsgSnapshot` usually).
pub const CHUNK_BYTES: usize = 1024 * 1024;
/// Largest message body reassembled from chunks; bounds the memory one stream can claim.
pub const ASSEMBLED_BYTES_MAX: usize = 512 * 1024 * 1024;
/// Decoding limit for one versioned application command (a Raft entry).
pub const ENTRY_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Room a snapshot message needs on the wire beyond the snapshot's data: the raft-rs
/// message and snapshot metadata (term, index, membership lists) and the body's header.
pub const SNAPSHOT_MESSAGE_OVERHEAD_MAX: usize = 64 * 1024;
/// The one size limit of a snapshot body (the envelope with the state machine's bytes
/// inside): a body is never written larger (building, receiving) — so every snapshot that
/// can be built can be shipped. Bodies stream between files in chunks
/// ([`crate::snapshot_body`]), so the limit is one of disk, not of memory.
pub const SNAPSHOT_BYTES_MAX: usize = 16 * 1024 * 1024 * 1024;

/// Why bytes could not be encoded or decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The input ended before the structure it announced.
    #[error("truncated input: needed {needed} bytes, had {available}")]
    Truncated {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes that were there.
        available: usize,
    },
    /// The input was empty where a version or kind byte was expected.
    #[error("empty input")]
    Empty,
    /// The version byte is not one this binary knows how to read.
    #[error("unknown version {found} (this binary writes version {current})")]
    UnknownVersion {
        /// The byte found in the data.
        found: u8,
        /// The version this binary writes.
        current: u8,
    },
    /// The frame kind byte is not a known kind.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// A length prefix or a total announces more than the limit.
    #[error("{what} of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// What was too large (frame, snapshot, entry, assembled message).
        what: &'static str,
        /// Announced or actual size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes were left over after a complete structure.
    #[error("{0} trailing bytes after the structure")]
    TrailingBytes(usize),
    /// raft-rs protobuf refused the bytes.
    #[error("invalid raft message: {0}")]
    Protobuf(String),
    /// bincode refused the bytes or the value.
    #[error("invalid application data: {0}")]
    Bincode(String),
    /// A field holds a value outside its domain (bad status byte, bad UTF-8, zero id).
    #[error("invalid field: {0}")]
    InvalidField(&'static str),
    /// Chunks of a large message arrived out of order or inconsistent with each other.
    #[error("inconsistent chunk: {0}")]
    InconsistentChunk(&'static str),
    /// A stored record's crc32 does not match its key and payload.
    #[error("crc32 mismatch")]
    ChecksumMismatch,
    /// Reading a stream (a snapshot body) failed.
    #[error("reading failed: {0}")]
    Io(String),
}

// ---------------------------------------------------------------------------------------
// Versioned application data (bincode 2)
// ---------------------------------------------------------------------------------------

/// An application type stored in Raft entries or snapshots, with a version byte.
pub trait Versioned: Serialize + DeserializeOwned {
    /// The version this binary writes. Never 0 (0 is kept invalid so zeroed bytes never
    /// decode).
    const VERSION: u8;

    /// Decode a body written with another `version` (older, or newer if this release was
    /// taught to read it ahead of writing it). The default knows no other version.
    fn decode_other_version(version: u8, body: &[u8]) -> Result<Self, CodecError> {
        let _ = body;
        Err(CodecError::UnknownVersion {
            found: version,
            current: Self::VERSION,
        })
    }
}

type LimitedConfig<const LIMIT: usize> =
    Configuration<bincode::config::LittleEndian, bincode::config::Varint, Limit<LIMIT>>;

const fn limited_config<const LIMIT: usize>() -> LimitedConfig<LIMIT> {
    bincode::config::standard().with_limit::<LIMIT>()
}

fn encode_with_version<T: Versioned, const LIMIT: usize>(
    value: &T,
    what: &'static str,
) -> Result<Vec<u8>, CodecError> {
    let mut bytes = vec![T::VERSION];
    bincode::serde::encode_into_std_write(value, &mut bytes, limited_config::<LIMIT>())
        .map_err(|error| CodecError::Bincode(error.to_string()))?;
    if bytes.len() > LIMIT {
        return Err(CodecError::TooLarge {
            what,
            size: bytes.len(),
            limit: LIMIT,
        });
    }
    Ok(bytes)
}

fn decode_with_limit<T: DeserializeOwned, const LIMIT: usize>(
    body: &[u8],
    what: &'static str,
) -> Result<T, CodecError> {
    if body.len() > LIMIT {
        return Err(CodecError::TooLarge {
            what,
            size: body.len(),
            limit: LIMIT,
        });
    }
    let (value, read) = bincode::serde::decode_from_slice::<T, _>(body, limited_config::<LIMIT>())
        .map_err(|error| CodecError::Bincode(error.to_string()))?;
    if read != body.len() {
        return Err(CodecError::TrailingBytes(body.len() - read));
    }
    Ok(value)
}

fn decode_with_version<T: Versioned, const LIMIT: usize>(
    bytes: &[u8],
    what: &'static str,
) -> Result<T, CodecError> {
    let (&version, body) = bytes.split_first().ok_or(CodecError::Empty)?;
    if version == T::VERSION {
        decode_with_limit::<T, LIMIT>(body, what)
    } else if version == 0 {
        Err(CodecError::UnknownVersion {
            found: 0,
            current: T::VERSION,
        })
    } else {
        T::decode_other_version(version, body)
    }
}

/// Encode an application command for a Raft entry: `[T::VERSION][bincode body]`.
pub fn encode_versioned<T: Versioned>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_with_version::<T, ENTRY_BYTES_MAX>(value, "entry")
}

/// Decode an application command written by [`encode_versioned`] (this or another version,
/// see the module docs). Decoding is bounded by [`ENTRY_BYTES_MAX`].
pub fn decode_versioned<T: Versioned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_with_version::<T, ENTRY_BYTES_MAX>(bytes, "entry")
}

/// Encode an application snapshot: `[T::VERSION][bincode body]`, up to [`SNAPSHOT_BYTES_MAX`].
pub fn encode_snapshot<T: Versioned>(value: &T) -> Result<Vec<u8>, CodecError> {
    encode_with_version::<T, SNAPSHOT_BYTES_MAX>(value, "snapshot")
}

/// Decode an application snapshot written by [`encode_snapshot`].
pub fn decode_snapshot<T: Versioned>(bytes: &[u8]) -> Result<T, CodecError> {
    decode_with_version::<T, SNAPSHOT_BYTES_MAX>(bytes, "snapshot")
}

/// Encode an application snapshot straight into `out` (a snapshot file): the same bytes as
/// [`encode_snapshot`], without a copy in memory. The writer bounds the size (the driver's
/// refuses more than [`SNAPSHOT_BYTES_MAX`]).
pub fn encode_snapshot_to<T: Versioned>(
    value: &T,
    out: &mut dyn std::io::Write,
) -> Result<(), CodecError> {
    out.write_all(&[T::VERSION])
        .map_err(|error| CodecError::Io(error.to_string()))?;
    let mut out = out;
    bincode::serde::encode_into_std_write(value, &mut out, limited_config::<SNAPSHOT_BYTES_MAX>())
        .map_err(|error| CodecError::Bincode(error.to_string()))?;
    Ok(())
}

/// Decode an application snapshot from a stream that ends where the snapshot ends. The
/// current version is decoded as it is read; another is read whole and handed to
/// [`Versioned::decode_other_version`].
pub fn decode_snapshot_from<T: Versioned>(input: &mut dyn std::io::Read) -> Result<T, CodecError> {
    let mut version = [0_u8; 1];
    input
        .read_exact(&mut version)
        .map_err(|_| CodecError::Empty)?;
    if version[0] != T::VERSION {
        let mut bytes = version.to_vec();
        input
            .read_to_end(&mut bytes)
            .map_err(|error| CodecError::Io(error.to_string()))?;
        return decode_with_version::<T, SNAPSHOT_BYTES_MAX>(&bytes, "snapshot");
    }
    let mut input = input;
    let value: T =
        bincode::serde::decode_from_std_read(&mut input, limited_config::<SNAPSHOT_BYTES_MAX>())
            .map_err(|error| CodecError::Bincode(error.to_string()))?;
    let mut trailing = Vec::new();
    input
        .read_to_end(&mut trailing)
        .map_err(|error| CodecError::Io(error.to_string()))?;
    if !trailing.is_empty() {
        return Err(CodecError::TrailingBytes(trailing.len()));
    }
    Ok(value)
}

/// Decode a bincode body without version byte, bounded by [`SNAPSHOT_BYTES_MAX`]: for
/// [`Versioned::decode_other_version`] implementations that decode an old shape.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, CodecError> {
    decode_with_limit::<T, SNAPSHOT_BYTES_MAX>(body, "versioned body")
}

// ---------------------------------------------------------------------------------------
// Raft messages (protobuf 2)
// ---------------------------------------------------------------------------------------

/// Encode a raft-rs message with its protobuf encoding.
pub fn encode_raft_message(message: &RaftMessage) -> Result<Vec<u8>, CodecError> {
    message
        .write_to_bytes()
        .map_err(|error| CodecError::Protobuf(error.to_string()))
}

/// Decode a raft-rs message. protobuf 2 is not hardened against hostile input
/// (RUSTSEC-2024-0437): call this only on bytes from a peer authenticated by mutual TLS.
pub fn decode_raft_message(bytes: &[u8]) -> Result<RaftMessage, CodecError> {
    RaftMessage::parse_from_bytes(bytes).map_err(|error| CodecError::Protobuf(error.to_string()))
}

// ---------------------------------------------------------------------------------------
// Node names (certificates and TLS server names)
// ---------------------------------------------------------------------------------------

/// The DNS name in a node's certificate and the TLS server name used to reach it.
pub fn node_server_name(node_id: NodeId) -> String {
    format!("node-{node_id}.callgrid")
}

/// The node id in a name made by [`node_server_name`]; `None` for anything else.
pub fn node_id_from_server_name(name: &str) -> Option<NodeId> {
    let digits = name.strip_prefix("node-")?.strip_suffix(".callgrid")?;
    // Canonical decimal only: no sign, no leading zeros, so one id has exactly one name.
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<NodeId>().ok().filter(|id| *id != 0)
}

#[cfg(test)]
mod tests;
