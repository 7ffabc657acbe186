//! Peer messages and the wire frames that carry them: the two outer layers of the codec
//! (see the parent module's docs). A [`PeerMessage`] becomes a body `[kind u8][...]`, a body
//! becomes a frame `[length u32 big-endian][body]`, and a body above [`CHUNK_BYTES`] travels
//! as chunk frames reassembled by [`ChunkAssembler`]. [`FrameDecoder`] splits a byte stream
//! into frame bodies without IO. Everything public here is re-exported by [`crate::codec`].

use protobuf::Message as _;

use super::{ASSEMBLED_BYTES_MAX, CHUNK_BYTES, CodecError, FRAME_BYTES_MAX, decode_raft_message};
use crate::transport::{PeerMessage, RemoteError};

/// Bytes of the length prefix in front of every frame.
pub const LENGTH_PREFIX_BYTES: usize = 4;

pub(super) const KIND_RAFT: u8 = 1;
pub(super) const KIND_FORWARD: u8 = 2;
pub(super) const KIND_FORWARD_REPLY: u8 = 3;
const KIND_CHUNK: u8 = 4;
/// Longest address a [`PeerMessage::LeaderHint`] may carry.
const LEADER_HINT_ADDRESS_MAX: usize = 256;
/// [`PeerMessage::LeaderHint`]: `[term u64][leader u64][address utf-8…]`.
pub(super) const KIND_LEADER_HINT: u8 = 5;
/// The header of a streamed snapshot ([`super::snapshot_stream`]).
pub(super) const KIND_SNAPSHOT_HEADER: u8 = 6;
/// A piece of a streamed snapshot's body.
pub(super) const KIND_SNAPSHOT_DATA: u8 = 7;

const REPLY_OK: u8 = 0;
const REPLY_NOT_LEADER: u8 = 1;
const REPLY_DROPPED: u8 = 2;
const REPLY_REJECTED: u8 = 3;
const REPLY_STALE_TERM: u8 = 4;

/// kind + message id + total length + offset.
pub(super) const CHUNK_HEADER_BYTES: usize = 1 + 8 + 8 + 8;

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
        PeerMessage::Snapshot { .. } => Err(CodecError::InvalidField(
            "a snapshot streams in frames of its own (snapshot_stream)",
        )),
        PeerMessage::LeaderHint {
            term,
            leader,
            address,
        } => {
            let mut body = Vec::with_capacity(1 + 8 + 8 + address.len());
            body.push(KIND_LEADER_HINT);
            body.extend_from_slice(&term.to_be_bytes());
            body.extend_from_slice(&leader.to_be_bytes());
            body.extend_from_slice(address.as_bytes());
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
    /// The start of a streamed snapshot; feed it and its data to a
    /// [`super::SnapshotReceiver`].
    SnapshotHeader(super::SnapshotHeader),
    /// A piece of a streamed snapshot's body.
    SnapshotData(super::SnapshotData),
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
        Frame::Chunk(_) | Frame::SnapshotHeader(_) | Frame::SnapshotData(_) => Err(
            CodecError::InconsistentChunk("a chunk inside a chunked body"),
        ),
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
        KIND_LEADER_HINT => {
            let term = read_u64(rest, 0)?;
            let leader = read_u64(rest, 8)?;
            let address = std::str::from_utf8(&rest[16..])
                .map_err(|_| CodecError::InvalidField("leader hint address is not UTF-8"))?;
            if leader == 0 || address.is_empty() || address.len() > LEADER_HINT_ADDRESS_MAX {
                return Err(CodecError::InvalidField("leader hint"));
            }
            Ok(Frame::Message(PeerMessage::LeaderHint {
                term,
                leader,
                address: address.to_owned(),
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
        KIND_SNAPSHOT_HEADER => super::snapshot_stream::decode_header(rest),
        KIND_SNAPSHOT_DATA => super::snapshot_stream::decode_data(rest),
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
