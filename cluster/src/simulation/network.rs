//! The simulated network: messages in flight, delivered in random order, lost, duplicated,
//! held back for hundreds of steps (a message queued behind a dead connection and delivered
//! when the peer returns: a stale forward), and cut by partitions. Snapshots travel through
//! the transport's chunked framing (encoded, split into chunk frames, decoded and
//! reassembled), as they do over QUIC.

use std::collections::{BTreeMap, BTreeSet};

use raft::eraftpb::MessageType;

use crate::codec::{self, ChunkAssembler, CodecError, Frame};
use crate::transport::{NodeId, PeerMessage};

use super::SimulationRng;

/// A message on its way.
pub(super) struct InFlight {
    pub(super) from: NodeId,
    pub(super) to: NodeId,
    pub(super) message: PeerMessage,
    /// A second copy made by the network.
    pub(super) duplicate: bool,
    /// Held back before delivery.
    pub(super) delayed: bool,
}

/// Faults of the network, per message.
#[derive(Debug, Clone, Copy)]
pub(super) struct LinkFaults {
    pub(super) loss: f64,
    pub(super) duplication: f64,
    /// Probability that a message is held back, for up to `delay_steps_max` steps.
    pub(super) delay: f64,
    pub(super) delay_steps_max: u64,
}

/// Messages in flight beyond this are dropped, oldest first (a bounded queue).
const IN_FLIGHT_MAX: usize = 20_000;

#[derive(Default)]
pub(super) struct Network {
    in_flight: Vec<InFlight>,
    /// Held back: (release step, message id) → message.
    delayed: BTreeMap<(u64, u64), InFlight>,
    /// Blocked links (both directions are stored).
    partition: BTreeSet<(NodeId, NodeId)>,
    next_message_id: u64,
    /// Snapshots that went through the chunked framing.
    pub(super) snapshots_chunked: u64,
}

impl Network {
    /// Send `message`, subject to loss and duplication. A snapshot goes through the
    /// transport's chunk framing; an error there is a bug (returned).
    pub(super) fn send(
        &mut self,
        rng: &mut SimulationRng,
        faults: LinkFaults,
        step: u64,
        from: NodeId,
        to: NodeId,
        message: PeerMessage,
    ) -> Result<(), CodecError> {
        let message = match &message {
            PeerMessage::Raft(raft) if raft.get_msg_type() == MessageType::MsgSnapshot => {
                self.next_message_id += 1;
                self.snapshots_chunked += 1;
                through_chunks(self.next_message_id, &message)?
            }
            PeerMessage::Snapshot { message, body } => {
                self.next_message_id += 1;
                self.snapshots_chunked += 1;
                codec::snapshot_round_trip(self.next_message_id, message, body)?
            }
            _ => message,
        };
        if rng.chance(faults.loss) {
            return Ok(());
        }
        // Raft tolerates duplicates, and forwards apply at most once (term check, replicated
        // sessions), so every kind is duplicated: a duplicate delivered late is a stale
        // forward.
        if rng.chance(faults.duplication) {
            let copy = InFlight {
                from,
                to,
                message: message.clone(),
                duplicate: true,
                delayed: false,
            };
            self.push(rng, faults, step, copy);
        }
        let original = InFlight {
            from,
            to,
            message,
            duplicate: false,
            delayed: false,
        };
        self.push(rng, faults, step, original);
        Ok(())
    }

    fn push(
        &mut self,
        rng: &mut SimulationRng,
        faults: LinkFaults,
        step: u64,
        mut in_flight: InFlight,
    ) {
        if rng.chance(faults.delay) {
            self.next_message_id += 1;
            let release = step + 1 + rng.below(faults.delay_steps_max);
            in_flight.delayed = true;
            self.delayed
                .insert((release, self.next_message_id), in_flight);
            return;
        }
        self.in_flight.push(in_flight);
        if self.in_flight.len() > IN_FLIGHT_MAX {
            let excess = self.in_flight.len() - IN_FLIGHT_MAX;
            self.in_flight.drain(..excess);
        }
    }

    /// Put the held-back messages due by `step` back in flight.
    pub(super) fn release_delayed(&mut self, step: u64) {
        while let Some(entry) = self.delayed.first_entry() {
            if entry.key().0 > step {
                break;
            }
            self.in_flight.push(entry.remove());
        }
    }

    /// A random message in flight, taken off the network; `None` when it was cut by the
    /// partition (lost) or nothing is in flight.
    pub(super) fn take_random(&mut self, rng: &mut SimulationRng) -> Option<InFlight> {
        if self.in_flight.is_empty() {
            return None;
        }
        let pick = rng.below(self.in_flight.len() as u64) as usize;
        let in_flight = self.in_flight.swap_remove(pick);
        (!self.partition.contains(&(in_flight.from, in_flight.to))).then_some(in_flight)
    }

    /// Whether a partition is in place.
    pub(super) fn is_partitioned(&self) -> bool {
        !self.partition.is_empty()
    }

    /// Cut every link between `side` and the other nodes of `all`.
    pub(super) fn partition(&mut self, all: &[NodeId], side: &BTreeSet<NodeId>) {
        for a in all {
            for b in all {
                if side.contains(a) != side.contains(b) {
                    self.partition.insert((*a, *b));
                }
            }
        }
    }

    /// Heal every link.
    pub(super) fn heal(&mut self) {
        self.partition.clear();
    }
}

/// Encode `message`, split it into chunk frames, decode and reassemble them: what the QUIC
/// transport does with a large message.
fn through_chunks(message_id: u64, message: &PeerMessage) -> Result<PeerMessage, CodecError> {
    let body = codec::encode_message_body(message)?;
    let frames = codec::encode_chunk_frames(message_id, &body)?;
    let mut assembler = ChunkAssembler::default();
    let mut assembled = None;
    for frame in frames {
        let frame_body = frame
            .get(4..)
            .ok_or(CodecError::InconsistentChunk("short frame"))?;
        let Frame::Chunk(chunk) = codec::decode_frame_body(frame_body)? else {
            return Err(CodecError::InconsistentChunk("not a chunk"));
        };
        assembled = assembler.handle_chunk(chunk)?;
    }
    assembled.ok_or(CodecError::InconsistentChunk("message never completed"))
}
