//! Snapshots on the wire: a [`PeerMessage::Snapshot`] travels on a stream of its own as one
//! header frame (the raft message with its metadata, the body's length and crc32) and then
//! data frames of at most [`CHUNK_BYTES`] read from the body one at a time — never the whole
//! body in memory. [`SnapshotReceiver`] checks each frame against the header and writes the
//! data into a [`SnapshotWriter`] (a spool file), so the receiver's memory is one frame too.
//!
//! ```text
//!   [len][6][message id u64][body length u64][crc32 u32][raft message, snapshot data empty]
//!   [len][7][message id u64][offset u64][data…]   × ceil(body length / CHUNK_BYTES)
//! ```
//!
//! A body of no byte sends the header alone. Integers are big-endian like the other frames.

use protobuf::Message as _;
use raft::eraftpb::{Message as RaftMessage, MessageType};

use super::wire::{Frame, KIND_SNAPSHOT_DATA, KIND_SNAPSHOT_HEADER, LENGTH_PREFIX_BYTES};
use super::{CHUNK_BYTES, CodecError, SNAPSHOT_BYTES_MAX, SNAPSHOT_MESSAGE_OVERHEAD_MAX};
use crate::snapshot_body::{SnapshotBody, SnapshotWriter};
use crate::transport::PeerMessage;

/// kind + message id + body length + crc32.
const HEADER_FIXED_BYTES: usize = 1 + 8 + 8 + 4;
/// kind + message id + offset.
const DATA_FIXED_BYTES: usize = 1 + 8 + 8;

/// The first frame of a streamed snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotHeader {
    /// Chosen by the sender, the same in every frame of one snapshot.
    pub message_id: u64,
    /// Length of the body that follows.
    pub body_len: u64,
    /// crc32 of the body.
    pub crc32: u32,
    /// The `MsgSnapshot`, its snapshot's data empty.
    pub message: Box<RaftMessage>,
}

/// A piece of a streamed snapshot's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotData {
    /// The header's message id.
    pub message_id: u64,
    /// Where the data starts in the body.
    pub offset: u64,
    /// The data.
    pub data: Vec<u8>,
}

/// The header frame (length prefix included) of `message` carrying `body`.
pub fn encode_snapshot_header_frame(
    message_id: u64,
    message: &RaftMessage,
    body: &SnapshotBody,
) -> Result<Vec<u8>, CodecError> {
    if message.get_msg_type() != MessageType::MsgSnapshot || !message.get_snapshot().data.is_empty()
    {
        return Err(CodecError::InvalidField(
            "a streamed snapshot's message is a MsgSnapshot without data",
        ));
    }
    let message_bytes = message
        .write_to_bytes()
        .map_err(|error| CodecError::Protobuf(error.to_string()))?;
    let body_bytes = HEADER_FIXED_BYTES + message_bytes.len();
    if body_bytes > SNAPSHOT_MESSAGE_OVERHEAD_MAX {
        return Err(CodecError::TooLarge {
            what: "snapshot header",
            size: body_bytes,
            limit: SNAPSHOT_MESSAGE_OVERHEAD_MAX,
        });
    }
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + body_bytes);
    frame.extend_from_slice(&(body_bytes as u32).to_be_bytes());
    frame.push(KIND_SNAPSHOT_HEADER);
    frame.extend_from_slice(&message_id.to_be_bytes());
    frame.extend_from_slice(&body.len().to_be_bytes());
    frame.extend_from_slice(&body.crc32().to_be_bytes());
    frame.extend_from_slice(&message_bytes);
    Ok(frame)
}

/// A data frame (length prefix included); `data` is at most [`CHUNK_BYTES`].
pub fn encode_snapshot_data_frame(message_id: u64, offset: u64, data: &[u8]) -> Vec<u8> {
    debug_assert!(data.len() <= CHUNK_BYTES);
    let body_bytes = DATA_FIXED_BYTES + data.len();
    let mut frame = Vec::with_capacity(LENGTH_PREFIX_BYTES + body_bytes);
    frame.extend_from_slice(&(body_bytes as u32).to_be_bytes());
    frame.push(KIND_SNAPSHOT_DATA);
    frame.extend_from_slice(&message_id.to_be_bytes());
    frame.extend_from_slice(&offset.to_be_bytes());
    frame.extend_from_slice(data);
    frame
}

fn read_array<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], CodecError> {
    let field = bytes.get(at..at + N).ok_or(CodecError::Truncated {
        needed: at + N,
        available: bytes.len(),
    })?;
    let mut array = [0_u8; N];
    array.copy_from_slice(field);
    Ok(array)
}

/// Decode a header frame's body after its kind byte.
pub(super) fn decode_header(rest: &[u8]) -> Result<Frame, CodecError> {
    let message_id = u64::from_be_bytes(read_array(rest, 0)?);
    let body_len = u64::from_be_bytes(read_array(rest, 8)?);
    let crc32 = u32::from_be_bytes(read_array(rest, 16)?);
    let message = super::decode_raft_message(&rest[20..])?;
    if message.get_msg_type() != MessageType::MsgSnapshot || !message.get_snapshot().data.is_empty()
    {
        return Err(CodecError::InvalidField(
            "a streamed snapshot's message is a MsgSnapshot without data",
        ));
    }
    if body_len > SNAPSHOT_BYTES_MAX as u64 {
        return Err(CodecError::TooLarge {
            what: "snapshot",
            size: usize::try_from(body_len).unwrap_or(usize::MAX),
            limit: SNAPSHOT_BYTES_MAX,
        });
    }
    Ok(Frame::SnapshotHeader(SnapshotHeader {
        message_id,
        body_len,
        crc32,
        message: Box::new(message),
    }))
}

/// Decode a data frame's body after its kind byte.
pub(super) fn decode_data(rest: &[u8]) -> Result<Frame, CodecError> {
    Ok(Frame::SnapshotData(SnapshotData {
        message_id: u64::from_be_bytes(read_array(rest, 0)?),
        offset: u64::from_be_bytes(read_array(rest, 8)?),
        data: rest[16..].to_vec(),
    }))
}

/// Receives one streamed snapshot: checks every data frame against the header (same id, the
/// next offset, not past the length) and writes it into its writer.
#[derive(Debug)]
pub struct SnapshotReceiver {
    header: SnapshotHeader,
    writer: SnapshotWriter,
}

impl SnapshotReceiver {
    /// Start receiving what `header` announces into `writer`.
    pub fn new(header: SnapshotHeader, writer: SnapshotWriter) -> Self {
        let writer = writer.with_limit(header.body_len);
        Self { header, writer }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.writer.len()
    }

    /// True once the whole body is in.
    pub fn is_complete(&self) -> bool {
        self.writer.len() == self.header.body_len
    }

    /// Take one data frame (blocking file IO when the writer is a file).
    pub fn handle_data(&mut self, data: &SnapshotData) -> Result<(), CodecError> {
        if data.message_id != self.header.message_id {
            return Err(CodecError::InconsistentChunk(
                "snapshot data of another message",
            ));
        }
        if data.offset != self.writer.len() {
            return Err(CodecError::InconsistentChunk("snapshot data out of order"));
        }
        if data.offset + data.data.len() as u64 > self.header.body_len {
            return Err(CodecError::InconsistentChunk(
                "snapshot data past its length",
            ));
        }
        std::io::Write::write_all(&mut self.writer, &data.data)
            .map_err(|error| CodecError::Io(error.to_string()))
    }

    /// The received message, once complete: its body's crc32 must match the header's.
    pub fn finish(self) -> Result<PeerMessage, CodecError> {
        if !self.is_complete() {
            return Err(CodecError::InconsistentChunk("snapshot body incomplete"));
        }
        let body = self
            .writer
            .finish()
            .map_err(|error| CodecError::Io(error.to_string()))?;
        if body.crc32() != self.header.crc32 {
            return Err(CodecError::ChecksumMismatch);
        }
        Ok(PeerMessage::Snapshot {
            message: self.header.message,
            body,
        })
    }
}

/// Every frame of `message` with `body`, in order — for tests and the simulation (the QUIC
/// transport reads the body one chunk at a time instead).
pub fn encode_snapshot_frames(
    message_id: u64,
    message: &RaftMessage,
    body: &SnapshotBody,
) -> Result<Vec<Vec<u8>>, CodecError> {
    let mut frames = vec![encode_snapshot_header_frame(message_id, message, body)?];
    let mut offset = 0;
    while offset < body.len() {
        let data = body
            .read_at(offset, CHUNK_BYTES)
            .map_err(|error| CodecError::Io(error.to_string()))?;
        frames.push(encode_snapshot_data_frame(message_id, offset, &data));
        offset += data.len() as u64;
    }
    Ok(frames)
}

/// A snapshot through its frames and back, into memory: what the memory hub and the
/// simulation deliver, so they carry only what the QUIC stream could.
pub fn snapshot_round_trip(
    message_id: u64,
    message: &RaftMessage,
    body: &SnapshotBody,
) -> Result<PeerMessage, CodecError> {
    let mut receiver = None;
    for frame in encode_snapshot_frames(message_id, message, body)? {
        match super::decode_frame_body(&frame[LENGTH_PREFIX_BYTES..])? {
            Frame::SnapshotHeader(header) if receiver.is_none() => {
                receiver = Some(SnapshotReceiver::new(header, SnapshotWriter::memory()));
            }
            Frame::SnapshotData(data) => receiver
                .as_mut()
                .ok_or(CodecError::InconsistentChunk(
                    "snapshot data before its header",
                ))?
                .handle_data(&data)?,
            _ => return Err(CodecError::InconsistentChunk("not a snapshot frame")),
        }
    }
    receiver
        .ok_or(CodecError::InconsistentChunk("no snapshot header"))?
        .finish()
}
