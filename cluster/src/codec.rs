//! Codec: every byte format of the cluster, in one place — the application's versioned
//! bincode, the driver's own layouts inside entries and snapshots, raft protobuf and the wire
//! frames — so a format change is reviewed here and nowhere else.
//!
//! Three layers, from the inside out, plus the driver's layouts beside the first:
//!
//! ```text
//!   application command / snapshot ── encode_versioned ──► [version u8][bincode 2 body]
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

use crate::transport::{NodeId, PeerMessage, RemoteError};

mod driver;
mod record;

pub use driver::{
    CLUSTER_ID_BYTES_MAX, DRIVER_LAYOUT_VERSION, EntryTag, ReadContext, SnapshotEnvelope,
    StoreIdentity, decode_address, encode_address,
};
pub use record::{
    RECORD_CHECKSUM_BYTES, decode_applied_index, encode_applied_index, log_index, log_key,
    open_record, seal_record,
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
/// The one size limit of a snapshot, derived from the wire's: the driver's snapshot data (the
/// envelope with the state machine's bytes inside) is never built larger than this, and an
/// application snapshot is neither encoded nor decoded larger, so every snapshot that can be
/// built can be shipped to a follower ([`ASSEMBLED_BYTES_MAX`]) — no state in between.
pub const SNAPSHOT_BYTES_MAX: usize = ASSEMBLED_BYTES_MAX - SNAPSHOT_MESSAGE_OVERHEAD_MAX;
/// Bytes of the length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

const KIND_RAFT: u8 = 1;
const KIND_FORWARD: u8 = 2;
const KIND_FORWARD_REPLY: u8 = 3;
const KIND_CHUNK: u8 = 4;

const REPLY_OK: u8 = 0;
const REPLY_NOT_LEADER: u8 = 1;
const REPLY_DROPPED: u8 = 2;
const REPLY_REJECTED: u8 = 3;
const REPLY_STALE_TERM: u8 = 4;

/// kind + message id + total length + offset.
const CHUNK_HEADER_BYTES: usize = 1 + 8 + 8 + 8;

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
// Peer messages and frames
// ---------------------------------------------------------------------------------------

/// Encode a peer message as a frame body (no length prefix): `[kind][...]`.
pub fn encode_message_body(message: &PeerMessage) -> Result<Vec<u8>, CodecError> {
    match message {
        PeerMessage::Raft(raft_message) => {
            let mut body = Vec::with_capacity(1 + raft_message.compute_size() as usize);
            body.push(KIND_RAFT);
            raft_message
                .write_to_vec(&mut body)
                .map_err(|error| CodecError::Protobuf(error.to_string()))?;
            Ok(body)
        }
        PeerMessage::Forward {
            request_id,
            term,
            payload,
        } => {
            let mut body = Vec::with_capacity(1 + 8 + 8 + payload.len());
            body.push(KIND_FORWARD);
            body.extend_from_slice(&request_id.to_be_bytes());
            body.extend_from_slice(&term.to_be_bytes());
            body.extend_from_slice(payload);
            Ok(body)
        }
        PeerMessage::ForwardReply {
            request_id,
            index,
            result,
        } => {
            let mut body = Vec::with_capacity(32);
            body.push(KIND_FORWARD_REPLY);
            body.extend_from_slice(&request_id.to_be_bytes());
            body.extend_from_slice(&index.to_be_bytes());
            match result {
                Ok(response) => {
                    body.push(REPLY_OK);
                    body.extend_from_slice(response);
                }
                Err(RemoteError::NotLeader { leader_hint }) => {
                    body.push(REPLY_NOT_LEADER);
                    // 0 is never a node id, so it stands for "no hint".
                    body.extend_from_slice(&leader_hint.unwrap_or(0).to_be_bytes());
                }
                Err(RemoteError::Dropped) => body.push(REPLY_DROPPED),
                Err(RemoteError::Rejected(reason)) => {
                    body.push(REPLY_REJECTED);
                    body.extend_from_slice(reason.as_bytes());
                }
                Err(RemoteError::StaleTerm { term }) => {
                    body.push(REPLY_STALE_TERM);
                    body.extend_from_slice(&term.to_be_bytes());
                }
            }
            Ok(body)
        }
    }
}

/// One decoded frame body.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A whole message.
    Message(PeerMessage),
    /// A piece of a large message; feed it to a [`ChunkAssembler`].
    Chunk(Chunk),
}

/// A piece of a large message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Chosen by the sender, the same for all chunks of one message.
    pub message_id: u64,
    /// Length of the whole message body.
    pub total_bytes: u64,
    /// Where this chunk's data starts in the whole body.
    pub offset: u64,
    /// The data.
    pub data: Vec<u8>,
}

fn read_u64(bytes: &[u8], at: usize) -> Result<u64, CodecError> {
    let end = at + 8;
    let field = bytes.get(at..end).ok_or(CodecError::Truncated {
        needed: end,
        available: bytes.len(),
    })?;
    let mut array = [0_u8; 8];
    array.copy_from_slice(field);
    Ok(u64::from_be_bytes(array))
}

/// Decode a message body (not a chunk). Only for bytes from an mTLS-authenticated peer.
pub fn decode_message_body(body: &[u8]) -> Result<PeerMessage, CodecError> {
    match decode_frame_body(body)? {
        Frame::Message(message) => Ok(message),
        Frame::Chunk(_) => Err(CodecError::InconsistentChunk(
            "a chunk inside a chunked body",
        )),
    }
}

/// Decode one frame body (without its length prefix).
pub fn decode_frame_body(body: &[u8]) -> Result<Frame, CodecError> {
    let (&kind, rest) = body.split_first().ok_or(CodecError::Empty)?;
    match kind {
        KIND_RAFT => Ok(Frame::Message(PeerMessage::Raft(Box::new(
            decode_raft_message(rest)?,
        )))),
        KIND_FORWARD => {
            let request_id = read_u64(rest, 0)?;
            let term = read_u64(rest, 8)?;
            Ok(Frame::Message(PeerMessage::Forward {
                request_id,
                term,
                payload: rest[16..].to_vec(),
            }))
        }
        KIND_FORWARD_REPLY => {
            let request_id = read_u64(rest, 0)?;
            let index = read_u64(rest, 8)?;
            let status = *rest.get(16).ok_or(CodecError::Truncated {
                needed: 17,
                available: rest.len(),
            })?;
            let tail = &rest[17..];
            let result = match status {
                REPLY_OK => Ok(tail.to_vec()),
                REPLY_NOT_LEADER => {
                    let hint = read_u64(tail, 0)?;
                    if tail.len() != 8 {
                        return Err(CodecError::TrailingBytes(tail.len() - 8));
                    }
                    Err(RemoteError::NotLeader {
                        leader_hint: (hint != 0).then_some(hint),
                    })
                }
                REPLY_DROPPED => {
                    if !tail.is_empty() {
                        return Err(CodecError::TrailingBytes(tail.len()));
                    }
                    Err(RemoteError::Dropped)
                }
                REPLY_REJECTED => {
                    let reason = std::str::from_utf8(tail)
                        .map_err(|_| CodecError::InvalidField("rejection reason is not UTF-8"))?;
                    Err(RemoteError::Rejected(reason.to_owned()))
                }
                REPLY_STALE_TERM => {
                    let term = read_u64(tail, 0)?;
                    if tail.len() != 8 {
                        return Err(CodecError::TrailingBytes(tail.len() - 8));
                    }
                    Err(RemoteError::StaleTerm { term })
                }
                _ => return Err(CodecError::InvalidField("forward reply status")),
            };
            Ok(Frame::Message(PeerMessage::ForwardReply {
                request_id,
                index,
                result,
            }))
        }
        KIND_CHUNK => {
            let message_id = read_u64(rest, 0)?;
            let total_bytes = read_u64(rest, 8)?;
            let offset = read_u64(rest, 16)?;
            Ok(Frame::Chunk(Chunk {
                message_id,
                total_bytes,
                offset,
                data: rest[24..].to_vec(),
            }))
        }
        other => Err(CodecError::UnknownKind(other)),
    }
}

/// Put the length prefix in front of a body: `[len u32 BE][body]`.
pub fn encode_frame(body: &[u8]) -> Result<Vec<u8>, CodecError> {
    if body.len() > FRAME_BYTES_MAX {
        return Err(CodecError::TooLarge {
            what: "frame",
            size: body.len(),
            limit: FRAME_BYTES_MAX,
        });
    }
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + body.len());
    // Fits: FRAME_BYTES_MAX < u32::MAX.
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(body);
    Ok(frame)
}

/// Split a large message body into length-prefixed chunk frames of at most [`CHUNK_BYTES`]
/// of data each. The body must not exceed [`ASSEMBLED_BYTES_MAX`].
pub fn encode_chunk_frames(message_id: u64, body: &[u8]) -> Result<Vec<Vec<u8>>, CodecError> {
    if body.len() > ASSEMBLED_BYTES_MAX {
        return Err(CodecError::TooLarge {
            what: "chunked message",
            size: body.len(),
            limit: ASSEMBLED_BYTES_MAX,
        });
    }
    let total_bytes = body.len() as u64;
    let mut frames = Vec::with_capacity(body.len().div_ceil(CHUNK_BYTES).max(1));
    let mut offset = 0_usize;
    loop {
        let end = (offset + CHUNK_BYTES).min(body.len());
        let data = &body[offset..end];
        let frame_body_bytes = CHUNK_HEADER_BYTES + data.len();
        let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + frame_body_bytes);
        frame.extend_from_slice(&(frame_body_bytes as u32).to_be_bytes());
        frame.push(KIND_CHUNK);
        frame.extend_from_slice(&message_id.to_be_bytes());
        frame.extend_from_slice(&total_bytes.to_be_bytes());
        frame.extend_from_slice(&(offset as u64).to_be_bytes());
        frame.extend_from_slice(data);
        frames.push(frame);
        offset = end;
        if offset >= body.len() {
            return Ok(frames);
        }
    }
}

/// Sans-IO splitter of a byte stream into frame bodies.
///
/// The length prefix is checked against the limit as soon as its 4 bytes are in, so an
/// oversized announcement is refused before any of its body is buffered.
#[derive(Debug)]
pub struct FrameDecoder {
    buffer: Vec<u8>,
    /// Where the unread bytes start: frames are taken by moving this index, and the
    /// buffer is compacted once per `handle_bytes`, not once per frame.
    start: usize,
    frame_bytes_max: usize,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new(FRAME_BYTES_MAX)
    }
}

impl FrameDecoder {
    /// A decoder refusing frames above `frame_bytes_max`.
    pub fn new(frame_bytes_max: usize) -> Self {
        Self {
            buffer: Vec::new(),
            start: 0,
            frame_bytes_max,
        }
    }

    /// Append bytes received from the stream.
    pub fn handle_bytes(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buffer.drain(..self.start);
            self.start = 0;
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes buffered but not yet returned as frames.
    pub fn buffered_bytes(&self) -> usize {
        self.buffer.len() - self.start
    }

    /// The next complete frame body, `None` if more bytes are needed, or an error if the
    /// stream announced a frame above the limit (the stream must then be dropped).
    pub fn poll_frame(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        let unread = &self.buffer[self.start..];
        let Some(prefix) = unread.get(..LENGTH_PREFIX_BYTES) else {
            return Ok(None);
        };
        let mut array = [0_u8; LENGTH_PREFIX_BYTES];
        array.copy_from_slice(prefix);
        let length = u32::from_be_bytes(array) as usize;
        if length > self.frame_bytes_max {
            return Err(CodecError::TooLarge {
                what: "frame",
                size: length,
                limit: self.frame_bytes_max,
            });
        }
        if length == 0 {
            return Err(CodecError::Empty);
        }
        let end = LENGTH_PREFIX_BYTES + length;
        if unread.len() < end {
            return Ok(None);
        }
        let body = unread[LENGTH_PREFIX_BYTES..end].to_vec();
        self.start += end;
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        Ok(Some(body))
    }
}

/// Reassembles one chunked message at a time (chunks of a message travel in order on one
/// stream, so one message in progress per stream is enough).
#[derive(Debug)]
pub struct ChunkAssembler {
    in_progress: Option<InProgress>,
    total_bytes_max: usize,
}

#[derive(Debug)]
struct InProgress {
    message_id: u64,
    total_bytes: usize,
    body: Vec<u8>,
}

impl Default for ChunkAssembler {
    fn default() -> Self {
        Self::new(ASSEMBLED_BYTES_MAX)
    }
}

impl ChunkAssembler {
    /// An assembler refusing messages above `total_bytes_max`.
    pub fn new(total_bytes_max: usize) -> Self {
        Self {
            in_progress: None,
            total_bytes_max,
        }
    }

    /// Take one chunk; returns the whole message once its last chunk is in.
    pub fn handle_chunk(&mut self, chunk: Chunk) -> Result<Option<PeerMessage>, CodecError> {
        let total_bytes = usize::try_from(chunk.total_bytes)
            .ok()
            .filter(|total| *total <= self.total_bytes_max)
            .ok_or(CodecError::TooLarge {
                what: "chunked message",
                size: usize::try_from(chunk.total_bytes).unwrap_or(usize::MAX),
                limit: self.total_bytes_max,
            })?;
        let in_progress = match &mut self.in_progress {
            Some(in_progress) => in_progress,
            None => {
                if chunk.offset != 0 {
                    return Err(CodecError::InconsistentChunk("first chunk not at offset 0"));
                }
                // Grow with the data actually received rather than trusting the announced
                // total for one big allocation.
                self.in_progress.insert(InProgress {
                    message_id: chunk.message_id,
                    total_bytes,
                    body: Vec::with_capacity(total_bytes.min(CHUNK_BYTES)),
                })
            }
        };
        if in_progress.message_id != chunk.message_id {
            return Err(CodecError::InconsistentChunk("chunk of another message"));
        }
        if in_progress.total_bytes != total_bytes {
            return Err(CodecError::InconsistentChunk("total length changed"));
        }
        if chunk.offset != in_progress.body.len() as u64 {
            return Err(CodecError::InconsistentChunk("chunk out of order"));
        }
        if in_progress.body.len() + chunk.data.len() > total_bytes {
            return Err(CodecError::InconsistentChunk(
                "chunk past the announced end",
            ));
        }
        if chunk.data.is_empty() && total_bytes != 0 {
            return Err(CodecError::InconsistentChunk("empty chunk"));
        }
        in_progress.body.extend_from_slice(&chunk.data);
        if in_progress.body.len() < total_bytes {
            return Ok(None);
        }
        let body = std::mem::take(&mut in_progress.body);
        self.in_progress = None;
        decode_message_body(&body).map(Some)
    }

    /// Whether a message is partly received.
    pub fn is_in_progress(&self) -> bool {
        self.in_progress.is_some()
    }
}

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
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use raft::eraftpb::{Entry, MessageType, Snapshot};
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct OrderV2 {
        id: u64,
        items: Vec<String>,
        note: Option<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct OrderV1 {
        id: u64,
        items: Vec<String>,
    }

    impl Versioned for OrderV1 {
        const VERSION: u8 = 1;
    }

    impl Versioned for OrderV2 {
        const VERSION: u8 = 2;
        fn decode_other_version(version: u8, body: &[u8]) -> Result<Self, CodecError> {
            match version {
                1 => {
                    let old: OrderV1 = decode_body(body)?;
                    Ok(OrderV2 {
                        id: old.id,
                        items: old.items,
                        note: None,
                    })
                }
                other => Err(CodecError::UnknownVersion {
                    found: other,
                    current: Self::VERSION,
                }),
            }
        }
    }

    fn sample_raft_message() -> RaftMessage {
        let mut message = RaftMessage::default();
        message.set_msg_type(MessageType::MsgAppend);
        message.from = 1;
        message.to = 2;
        message.term = 7;
        message.index = 41;
        message.log_term = 6;
        message.commit = 40;
        let mut entry = Entry::default();
        entry.term = 7;
        entry.index = 42;
        entry.data = b"command".to_vec().into();
        message.entries = vec![entry].into();
        message
    }

    #[test]
    fn versioned_round_trip_puts_version_byte_first() {
        let order = OrderV2 {
            id: 9,
            items: vec!["aspirin".into()],
            note: Some("pickup".into()),
        };
        let bytes = encode_versioned(&order).unwrap();
        assert_eq!(bytes[0], 2);
        assert_eq!(decode_versioned::<OrderV2>(&bytes).unwrap(), order);
        let snapshot = encode_snapshot(&order).unwrap();
        assert_eq!(decode_snapshot::<OrderV2>(&snapshot).unwrap(), order);
    }

    #[test]
    fn older_version_is_replayed_through_dispatch() {
        let old = OrderV1 {
            id: 3,
            items: vec!["ibuprofen".into(), "zinc".into()],
        };
        let bytes = encode_versioned(&old).unwrap();
        assert_eq!(bytes[0], 1);
        let upgraded = decode_versioned::<OrderV2>(&bytes).unwrap();
        assert_eq!(upgraded.id, 3);
        assert_eq!(upgraded.items, old.items);
        assert_eq!(upgraded.note, None);
    }

    #[test]
    fn unknown_and_zero_versions_are_clear_errors() {
        let order = OrderV1 {
            id: 1,
            items: vec![],
        };
        let mut bytes = encode_versioned(&order).unwrap();
        bytes[0] = 9;
        assert_eq!(
            decode_versioned::<OrderV1>(&bytes),
            Err(CodecError::UnknownVersion {
                found: 9,
                current: 1
            })
        );
        bytes[0] = 0;
        assert!(matches!(
            decode_versioned::<OrderV2>(&bytes),
            Err(CodecError::UnknownVersion { found: 0, .. })
        ));
        assert_eq!(decode_versioned::<OrderV1>(&[]), Err(CodecError::Empty));
    }

    #[test]
    fn versioned_decoding_rejects_trailing_and_huge_claims() {
        let order = OrderV1 {
            id: 1,
            items: vec!["a".into()],
        };
        let mut bytes = encode_versioned(&order).unwrap();
        bytes.push(0);
        assert_eq!(
            decode_versioned::<OrderV1>(&bytes),
            Err(CodecError::TrailingBytes(1))
        );
        // id = 1, then a vector claiming u64::MAX strings: must fail on the limit, not
        // try to allocate.
        let mut hostile = vec![1_u8, 1, 253];
        hostile.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(
            decode_versioned::<OrderV1>(&hostile),
            Err(CodecError::Bincode(_))
        ));
    }

    #[test]
    fn versioned_entry_above_limit_is_refused() {
        #[derive(Serialize, Deserialize)]
        struct Blob(#[serde(with = "serde_bytes_like")] Vec<u8>);
        mod serde_bytes_like {
            pub fn serialize<S: serde::Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(v)
            }
            pub fn deserialize<'de, D: serde::Deserializer<'de>>(
                d: D,
            ) -> Result<Vec<u8>, D::Error> {
                <Vec<u8> as serde::Deserialize>::deserialize(d)
            }
        }
        impl Versioned for Blob {
            const VERSION: u8 = 1;
        }
        let blob = Blob(vec![7; ENTRY_BYTES_MAX + 1]);
        assert!(matches!(
            encode_versioned(&blob),
            Err(CodecError::Bincode(_)) | Err(CodecError::TooLarge { .. })
        ));
        assert!(encode_snapshot(&blob).is_ok());
    }

    #[test]
    fn every_snapshot_that_can_be_built_can_be_shipped() {
        // One limit: the snapshot's, derived from the wire's, with room for the message.
        const { assert!(SNAPSHOT_BYTES_MAX + SNAPSHOT_MESSAGE_OVERHEAD_MAX <= ASSEMBLED_BYTES_MAX) };
        // The room is enough: a snapshot message around `data` bytes, with a large
        // membership and the largest term and index, costs less than the overhead allowed.
        let data_bytes = 4096;
        let mut message = RaftMessage::default();
        message.set_msg_type(MessageType::MsgSnapshot);
        (message.from, message.to, message.term) = (u64::MAX, u64::MAX, u64::MAX);
        let mut snapshot = Snapshot::default();
        snapshot.data = vec![1_u8; data_bytes].into();
        let metadata = snapshot.mut_metadata();
        (metadata.index, metadata.term) = (u64::MAX, u64::MAX);
        metadata.mut_conf_state().voters = (u64::MAX - 1_000..u64::MAX).collect();
        metadata.mut_conf_state().learners = (u64::MAX - 2_000..u64::MAX - 1_000).collect();
        message.set_snapshot(snapshot);
        let body = encode_message_body(&PeerMessage::Raft(Box::new(message))).unwrap();
        assert!(
            body.len() - data_bytes <= SNAPSHOT_MESSAGE_OVERHEAD_MAX,
            "{} bytes around the data",
            body.len() - data_bytes
        );
        // An envelope over the limit is refused when built, and when received.
        let envelope = SnapshotEnvelope {
            state: vec![0; 100],
            ..Default::default()
        };
        assert!(matches!(
            envelope.encode_within(108),
            Err(CodecError::TooLarge { size: 109, .. })
        ));
        assert_eq!(
            SnapshotEnvelope::decode(&envelope.encode_within(109).unwrap()).unwrap(),
            envelope
        );
    }

    #[test]
    fn every_peer_message_variant_round_trips() {
        let mut snapshot_message = RaftMessage::default();
        snapshot_message.set_msg_type(MessageType::MsgSnapshot);
        let mut snapshot = Snapshot::default();
        snapshot.data = vec![5_u8; 1000].into();
        snapshot.mut_metadata().index = 10;
        snapshot.mut_metadata().term = 2;
        snapshot_message.set_snapshot(snapshot);
        let messages = vec![
            PeerMessage::Raft(Box::new(sample_raft_message())),
            PeerMessage::Raft(Box::new(snapshot_message)),
            PeerMessage::Forward {
                request_id: 77,
                term: 5,
                payload: b"order".to_vec(),
            },
            PeerMessage::Forward {
                request_id: 0,
                term: 0,
                payload: vec![],
            },
            PeerMessage::ForwardReply {
                request_id: 77,
                index: 12,
                result: Ok(b"ok".to_vec()),
            },
            PeerMessage::ForwardReply {
                request_id: 82,
                index: 0,
                result: Err(RemoteError::StaleTerm { term: 9 }),
            },
            PeerMessage::ForwardReply {
                request_id: 78,
                index: 0,
                result: Err(RemoteError::NotLeader {
                    leader_hint: Some(3),
                }),
            },
            PeerMessage::ForwardReply {
                request_id: 79,
                index: 0,
                result: Err(RemoteError::NotLeader { leader_hint: None }),
            },
            PeerMessage::ForwardReply {
                request_id: 80,
                index: 0,
                result: Err(RemoteError::Dropped),
            },
            PeerMessage::ForwardReply {
                request_id: 81,
                index: 0,
                result: Err(RemoteError::Rejected("too large ✗".into())),
            },
        ];
        for message in messages {
            let body = encode_message_body(&message).unwrap();
            assert_eq!(decode_message_body(&body).unwrap(), message);
        }
    }

    #[test]
    fn frames_split_across_reads_are_reassembled() {
        let first = encode_frame(b"\x02\0\0\0\0\0\0\0\x01\0\0\0\0\0\0\0\x01abc").unwrap();
        let second = encode_frame(b"\x02\0\0\0\0\0\0\0\x02\0\0\0\0\0\0\0\x01").unwrap();
        let stream: Vec<u8> = [first.clone(), second].concat();
        let mut decoder = FrameDecoder::default();
        let mut bodies = Vec::new();
        for byte in &stream {
            decoder.handle_bytes(std::slice::from_ref(byte));
            while let Some(body) = decoder.poll_frame().unwrap() {
                bodies.push(body);
            }
        }
        assert_eq!(bodies.len(), 2);
        assert_eq!(bodies[0], first[4..]);
        assert_eq!(decoder.buffered_bytes(), 0);
    }

    #[test]
    fn oversized_length_prefix_is_refused_before_buffering_the_body() {
        let mut decoder = FrameDecoder::default();
        decoder.handle_bytes(&u32::MAX.to_be_bytes());
        assert!(matches!(
            decoder.poll_frame(),
            Err(CodecError::TooLarge { what: "frame", .. })
        ));
        let mut decoder = FrameDecoder::default();
        decoder.handle_bytes(&((FRAME_BYTES_MAX + 1) as u32).to_be_bytes());
        assert!(decoder.poll_frame().is_err());
        assert!(encode_frame(&vec![0; FRAME_BYTES_MAX + 1]).is_err());
    }

    #[test]
    fn large_message_travels_in_chunks() {
        let mut message = RaftMessage::default();
        message.set_msg_type(MessageType::MsgSnapshot);
        let mut snapshot = Snapshot::default();
        snapshot.data = (0..(3 * CHUNK_BYTES + 17))
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>()
            .into();
        message.set_snapshot(snapshot);
        let message = PeerMessage::Raft(Box::new(message));
        let body = encode_message_body(&message).unwrap();
        let frames = encode_chunk_frames(5, &body).unwrap();
        assert_eq!(frames.len(), 4);
        let mut decoder = FrameDecoder::default();
        let mut assembler = ChunkAssembler::default();
        let mut delivered = Vec::new();
        for frame in &frames {
            assert!(frame.len() <= LENGTH_PREFIX_BYTES + CHUNK_HEADER_BYTES + CHUNK_BYTES);
            decoder.handle_bytes(frame);
            let frame_body = decoder.poll_frame().unwrap().unwrap();
            let Frame::Chunk(chunk) = decode_frame_body(&frame_body).unwrap() else {
                panic!("expected a chunk");
            };
            if let Some(whole) = assembler.handle_chunk(chunk).unwrap() {
                delivered.push(whole);
            }
        }
        assert_eq!(delivered, vec![message]);
        assert!(!assembler.is_in_progress());
    }

    #[test]
    fn inconsistent_chunks_are_refused() {
        let body = encode_message_body(&PeerMessage::Forward {
            request_id: 1,
            term: 1,
            payload: vec![1; 100],
        })
        .unwrap();
        let chunk = |message_id, total_bytes, offset, data: &[u8]| Chunk {
            message_id,
            total_bytes,
            offset,
            data: data.to_vec(),
        };
        let total = body.len() as u64;
        let mut assembler = ChunkAssembler::default();
        assert!(
            assembler
                .handle_chunk(chunk(1, total, 5, &body[5..]))
                .is_err()
        );
        let mut assembler = ChunkAssembler::default();
        assert_eq!(
            assembler.handle_chunk(chunk(1, total, 0, &body[..10])),
            Ok(None)
        );
        assert!(
            assembler
                .handle_chunk(chunk(2, total, 10, &body[10..]))
                .is_err()
        );
        let mut assembler = ChunkAssembler::new(50);
        assert!(matches!(
            assembler.handle_chunk(chunk(1, total, 0, &body[..10])),
            Err(CodecError::TooLarge { .. })
        ));
        let mut assembler = ChunkAssembler::default();
        assert!(
            assembler
                .handle_chunk(chunk(1, u64::MAX, 0, &body[..10]))
                .is_err()
        );
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert_eq!(decode_frame_body(&[]), Err(CodecError::Empty));
        assert_eq!(decode_frame_body(&[99]), Err(CodecError::UnknownKind(99)));
        assert!(decode_frame_body(&[KIND_FORWARD, 1, 2]).is_err());
        assert!(decode_frame_body(&[KIND_RAFT, 0xff, 0xff, 0xff]).is_err());
        let mut bad_reply = vec![KIND_FORWARD_REPLY];
        bad_reply.extend_from_slice(&1_u64.to_be_bytes());
        bad_reply.push(42);
        assert!(decode_frame_body(&bad_reply).is_err());
    }

    #[test]
    fn server_names_map_to_node_ids_one_to_one() {
        assert_eq!(node_server_name(3), "node-3.callgrid");
        assert_eq!(node_id_from_server_name("node-3.callgrid"), Some(3));
        assert_eq!(node_id_from_server_name("node-0.callgrid"), None);
        assert_eq!(node_id_from_server_name("node-03.callgrid"), None);
        assert_eq!(node_id_from_server_name("node-+3.callgrid"), None);
        assert_eq!(node_id_from_server_name("node-3.evil"), None);
        assert_eq!(
            node_id_from_server_name("node-99999999999999999999.callgrid"),
            None
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let _ = decode_frame_body(&bytes);
                let _ = decode_versioned::<OrderV2>(&bytes);
                let _ = SnapshotEnvelope::decode(&bytes);
                let _ = decode_address(&bytes);
                let _ = EntryTag::decode(&bytes);
                let _ = ReadContext::decode(&bytes);
                let _ = StoreIdentity::decode(&bytes);
                let _ = open_record(b"key", &bytes);
                let _ = decode_applied_index(&bytes);
                let mut decoder = FrameDecoder::new(4096);
                let mut assembler = ChunkAssembler::new(1 << 20);
                decoder.handle_bytes(&bytes);
                while let Ok(Some(body)) = decoder.poll_frame() {
                    if let Ok(Frame::Chunk(chunk)) = decode_frame_body(&body) {
                        let _ = assembler.handle_chunk(chunk);
                    }
                }
            }

            #[test]
            fn forward_frames_round_trip(request_id in any::<u64>(), term in any::<u64>(), payload in proptest::collection::vec(any::<u8>(), 0..512)) {
                let message = PeerMessage::Forward { request_id, term, payload };
                let frame = encode_frame(&encode_message_body(&message).unwrap()).unwrap();
                let mut decoder = FrameDecoder::default();
                decoder.handle_bytes(&frame);
                let body = decoder.poll_frame().unwrap().unwrap();
                prop_assert_eq!(decode_message_body(&body).unwrap(), message);
            }
        }
    }
}
