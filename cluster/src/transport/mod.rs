//! Transport: how Raft peers reach each other.
//!
//! The contract between the Raft driver (which only knows [`Transport`] and [`Inbound`]) and
//! the implementations: QUIC with mutual TLS for production ([`quic`]), and an in-memory hub
//! for tests ([`memory`]).
//!
//! ```text
//!   driver thread ── Transport::send(to, PeerMessage) ──► bounded per-peer queue ──► wire
//!   driver thread ◄── crossbeam Receiver<Inbound> ◄── decode (only after mTLS) ◄── wire
//! ```
//!
//! `send` never blocks and never does IO on the caller's thread: a full queue or an unknown
//! peer is reported as an error and the message is dropped (Raft retries on its own).

use raft::eraftpb::Message as RaftMessage;

use crate::snapshot_body::SnapshotBody;

pub mod memory;
pub mod quic;

/// A node's identity in the cluster (raft-rs peer id). Never 0.
pub type NodeId = u64;

/// What peers say to each other.
#[derive(Debug, Clone, PartialEq)]
pub enum PeerMessage {
    /// A raft-rs message. A `MsgSnapshot` with its data inside (what older peers send) is
    /// still understood: the transport splits a large one into chunks on the wire and
    /// reassembles it before delivery.
    Raft(Box<RaftMessage>),
    /// A `MsgSnapshot` (its snapshot's data empty) and the snapshot's bytes: the transport
    /// streams the body from its file on a stream of its own and the receiver spools it to
    /// a file, one chunk of memory at a time ([`crate::codec::SnapshotReceiver`]).
    Snapshot {
        /// The raft message; `message.get_snapshot().data` is empty.
        message: Box<RaftMessage>,
        /// The snapshot's bytes.
        body: SnapshotBody,
    },
    /// A proposal made on a follower, forwarded to the node it believes is the leader.
    Forward {
        /// Chosen by the forwarding node; echoed in the reply.
        request_id: u64,
        /// The term of the leader it was forwarded to: a leader in another term refuses it
        /// (a forward queued for a leader that died and came back is stale).
        term: u64,
        /// The application command, opaque to the cluster.
        payload: Vec<u8>,
    },
    /// The leader's answer to a [`PeerMessage::Forward`].
    ForwardReply {
        /// The `request_id` of the forwarded proposal.
        request_id: u64,
        /// The log index the command was applied at (0 with an error): the forwarder answers
        /// its caller once it applied this index itself (read-your-writes on the proposer).
        index: u64,
        /// The state machine's response, or why the proposal did not commit.
        result: Result<Vec<u8>, RemoteError>,
    },
    /// From a follower to a voter that campaigns while the follower has a leader: the
    /// campaigner may not hear that leader because its applied configuration predates the
    /// leader's (re-)addition, and it drops messages from non-members. A member of the
    /// campaigner's configuration vouches for the leader, as far as it trusts its votes.
    LeaderHint {
        /// The follower's term.
        term: u64,
        /// The leader it follows.
        leader: NodeId,
        /// The leader's cluster address, as the follower knows it.
        address: String,
    },
}

/// Why a forwarded proposal failed on the remote side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteError {
    /// The receiver is not the leader; it names the leader it knows of, if any.
    NotLeader {
        /// The leader the receiver knows of.
        leader_hint: Option<NodeId>,
    },
    /// The leader lost leadership before the entry committed; the entry may or may not commit.
    Dropped,
    /// The proposal was refused (too large, malformed, shutting down).
    Rejected(String),
    /// The forward names another term than the leader's: it was not proposed.
    StaleTerm {
        /// The leader's term.
        term: u64,
    },
}

/// A message received from an authenticated peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    /// The peer's id, taken from its certificate (QUIC) or the hub (memory) — never from the
    /// message itself.
    pub from: NodeId,
    /// What it said.
    pub message: PeerMessage,
}

/// Why a message could not be queued.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TransportError {
    /// No address is known for the peer.
    #[error("unknown peer {0}")]
    UnknownPeer(NodeId),
    /// The peer's outbound queue is full (slow or dead peer); the message was dropped.
    #[error("queue to peer {0} is full")]
    QueueFull(NodeId),
    /// The message encodes to more than the frame limit.
    #[error("message of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The transport is shut down.
    #[error("transport is closed")]
    Closed,
    /// The message could not be encoded (a bug in the message or the codec).
    #[error("message could not be encoded: {0}")]
    Encoding(String),
}

/// Encode `message` for the wire, refusing a body no receiver would reassemble: the one
/// check every transport makes before queueing (the memory hub too, so it carries only what
/// the wire could carry).
pub(crate) fn encode_for_wire(message: &PeerMessage) -> Result<Vec<u8>, TransportError> {
    if let PeerMessage::Snapshot { message, body } = message {
        // The header frame is what is encoded now; the body streams from its file.
        return crate::codec::encode_snapshot_header_frame(0, message, body)
            .map_err(|error| TransportError::Encoding(error.to_string()));
    }
    let body = crate::codec::encode_message_body(message)
        .map_err(|error| TransportError::Encoding(error.to_string()))?;
    if body.len() > crate::codec::ASSEMBLED_BYTES_MAX {
        return Err(TransportError::TooLarge {
            size: body.len(),
            limit: crate::codec::ASSEMBLED_BYTES_MAX,
        });
    }
    Ok(body)
}

/// Sends messages to peers. Implementations are cheap to share (`Arc` inside).
pub trait Transport: Send + Sync + 'static {
    /// Queue `message` for `to`. Never blocks, never does IO on the caller's thread.
    fn send(&self, to: NodeId, message: PeerMessage) -> Result<(), TransportError>;
    /// Learn or change a peer's address (`host:port` for QUIC, ignored by the memory hub).
    fn set_peer(&self, id: NodeId, address: String);
    /// Forget a peer: close its connection and drop its queue. Synchronous for the caller:
    /// once it returns, `send` to the peer fails with `UnknownPeer` (until `set_peer`) and
    /// the peer's queue no longer counts in [`Transport::stats`]; only the closing of the
    /// connection itself may finish in the background.
    fn remove_peer(&self, id: NodeId);
    /// Counters for status and metrics. Implementations without counters return zeros.
    fn stats(&self) -> TransportStats {
        TransportStats::default()
    }
    /// Bytes of large (chunked) messages — snapshots — written towards `to` so far; only
    /// grows. The driver takes growth as progress of a snapshot on its way, so a large one
    /// is not declared failed while it still moves. Implementations that deliver at once
    /// return 0 (a snapshot is then failed by time alone).
    fn large_message_progress(&self, _to: NodeId) -> u64 {
        0
    }
}

/// Counters of a transport since it started, for status and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportStats {
    /// Frames written to peers (a chunked message counts one frame per chunk).
    pub frames_sent: u64,
    /// Frames read from authenticated peers.
    pub frames_received: u64,
    /// Bytes written to peers, length prefixes included.
    pub bytes_sent: u64,
    /// Bytes read from authenticated peers.
    pub bytes_received: u64,
    /// Messages refused by `send` because the peer's queue was full.
    pub messages_dropped_queue_full: u64,
    /// Messages lost because a connection failed while they were being written.
    pub messages_dropped_connection_lost: u64,
    /// Frames from authenticated peers that failed to decode (the stream was dropped).
    pub frames_malformed: u64,
    /// Connections to peers established after the first one (reconnections).
    pub reconnects: u64,
    /// Connection attempts to peers that failed (refused, timed out, TLS error).
    pub connect_failures: u64,
    /// Incoming connections refused during the handshake (no or wrong certificate).
    pub handshakes_refused: u64,
    /// Messages waiting in all per-peer outbound queues right now.
    pub queued_messages: u64,
    /// Bytes waiting in all per-peer outbound queues right now.
    pub queued_bytes: u64,
}
