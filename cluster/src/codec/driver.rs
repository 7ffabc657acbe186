//! Byte layouts the Raft driver itself puts inside entries, conf changes, snapshots and read
//! requests, next to the application's bytes. The persisted ones carry a version byte
//! ([`DRIVER_LAYOUT_VERSION`]) so a newer binary can still replay an older log (rolling
//! upgrades); an unknown byte is a [`CodecError::UnknownVersion`], never a misparse.
//!
//! - snapshot data: `[version][peer count u32][(id u64, address length u32, address)…]`, then
//!   from version 2 `[origin count u32][(origin u64, id count u32, ids u64…)…]` (the applied
//!   proposal ids per proposing node), from version 3 `[count u32][member u64…]` (the members
//!   known to hold the log, see [`DriverEntry`]), then `[state machine bytes…]` — peer
//!   addresses, sessions and known stores travel with the snapshot because the entries that
//!   made them may have been compacted away;
//! - conf change context: `[version][address utf-8…]` — the address of an added node, applied
//!   to the transport by every member when the change is applied;
//! - entry context: `[version][origin node u64][proposal id u64]` — identifies a proposal so
//!   the proposer recognises its own entry at apply time;
//! - driver entry context: `[version][kind u8][member u64]` on an entry with empty data — a
//!   record the driver replicates for itself ([`DriverEntry`]); a binary that does not know
//!   it sees an empty entry and skips it;
//! - read request context: `[node u64][sequence u64]` — not persisted, only echoed back by the
//!   leader to the node that asked, so it carries no version.
//!
//! All integers are little-endian. Decoding never panics on malformed input (a proptest in
//! the parent module feeds arbitrary bytes to every decoder here).

use std::collections::{BTreeMap, BTreeSet};

use super::{CodecError, SNAPSHOT_BYTES_MAX};
use crate::transport::NodeId;

/// The only driver layout version written today.
pub const DRIVER_LAYOUT_VERSION: u8 = 1;

/// Bytes of an encoded [`EntryTag`].
const ENTRY_TAG_BYTES: usize = 1 + 8 + 8;
/// Bytes of an encoded [`ReadContext`].
const READ_CONTEXT_BYTES: usize = 8 + 8;

fn check_version(version: u8) -> Result<(), CodecError> {
    if version == DRIVER_LAYOUT_VERSION {
        Ok(())
    } else {
        Err(CodecError::UnknownVersion {
            found: version,
            current: DRIVER_LAYOUT_VERSION,
        })
    }
}

/// The snapshot layout written today; versions 1 (no sessions) and 2 (no known stores) are
/// still read.
const SNAPSHOT_LAYOUT_VERSION: u8 = 3;
/// The first snapshot layout with sessions.
const SNAPSHOT_LAYOUT_SESSIONS: u8 = 2;

/// The driver's part of a snapshot plus the state machine's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotEnvelope {
    /// Known peer addresses at the snapshot's index.
    pub peer_addresses: BTreeMap<NodeId, String>,
    /// Per proposing node, the proposal ids applied in the window kept (replicated
    /// at-most-once; see `core::sessions`).
    pub sessions: BTreeMap<NodeId, BTreeSet<u64>>,
    /// Members whose store is known to have acknowledged entries past the bootstrap
    /// ([`DriverEntry::StoreKnown`]).
    pub known_stores: BTreeSet<NodeId>,
    /// The state machine's snapshot.
    pub state: Vec<u8>,
}

impl SnapshotEnvelope {
    /// The size of [`Self::encode`]'s output, without encoding.
    pub fn encoded_len(&self) -> usize {
        let addresses_bytes: usize = self
            .peer_addresses
            .values()
            .map(|address| 8 + 4 + address.len())
            .sum();
        let sessions_bytes: usize = self
            .sessions
            .values()
            .map(|ids| 8 + 4 + 8 * ids.len())
            .sum();
        1 + 4
            + addresses_bytes
            + 4
            + sessions_bytes
            + 4
            + 8 * self.known_stores.len()
            + self.state.len()
    }

    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.encoded_len());
        bytes.push(SNAPSHOT_LAYOUT_VERSION);
        bytes.extend_from_slice(&(self.peer_addresses.len() as u32).to_le_bytes());
        for (id, address) in &self.peer_addresses {
            bytes.extend_from_slice(&id.to_le_bytes());
            bytes.extend_from_slice(&(address.len() as u32).to_le_bytes());
            bytes.extend_from_slice(address.as_bytes());
        }
        bytes.extend_from_slice(&(self.sessions.len() as u32).to_le_bytes());
        for (origin, ids) in &self.sessions {
            bytes.extend_from_slice(&origin.to_le_bytes());
            bytes.extend_from_slice(&(ids.len() as u32).to_le_bytes());
            for id in ids {
                bytes.extend_from_slice(&id.to_le_bytes());
            }
        }
        bytes.extend_from_slice(&(self.known_stores.len() as u32).to_le_bytes());
        for id in &self.known_stores {
            bytes.extend_from_slice(&id.to_le_bytes());
        }
        bytes.extend_from_slice(&self.state);
        bytes
    }

    /// Decode; an empty slice is an empty envelope (a node that has no snapshot yet).
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        if bytes.len() > SNAPSHOT_BYTES_MAX {
            return Err(CodecError::TooLarge {
                what: "snapshot",
                size: bytes.len(),
                limit: SNAPSHOT_BYTES_MAX,
            });
        }
        let mut reader = Reader::new(bytes);
        let mut envelope = Self::decode_fields(&mut reader)?;
        envelope.state = reader.rest().to_vec();
        Ok(envelope)
    }

    /// Encode all but the state machine's bytes: what goes before them in a snapshot body
    /// (the state machine then writes its state straight after, see
    /// [`crate::StateMachine::snapshot_to`]). `self.state` must be empty.
    pub fn encode_header(&self) -> Vec<u8> {
        debug_assert!(self.state.is_empty(), "the header carries no state");
        self.encode()
    }

    /// Decode the driver's part of a snapshot body from a stream, leaving `input` at the first
    /// byte of the state machine's state; `state` stays empty. A body of no byte is an empty
    /// envelope. The header is read field by field (never more than
    /// [`SNAPSHOT_HEADER_BYTES_MAX`]), so a lying count ends in an error, not an allocation.
    pub fn decode_header(input: &mut dyn std::io::Read) -> Result<Self, CodecError> {
        let mut first = [0_u8; 1];
        if read_fully(input, &mut first)? == 0 {
            return Ok(Self::default());
        }
        let mut rest = std::io::Read::chain(&first[..], input);
        Self::decode_fields(&mut StreamReader {
            input: &mut rest,
            consumed: 0,
        })
    }

    /// The fields before the state; `state` is left empty.
    fn decode_fields(reader: &mut impl FieldSource) -> Result<Self, CodecError> {
        let version = reader.u8()?;
        if !(DRIVER_LAYOUT_VERSION..=SNAPSHOT_LAYOUT_VERSION).contains(&version) {
            return Err(CodecError::UnknownVersion {
                found: version,
                current: SNAPSHOT_LAYOUT_VERSION,
            });
        }
        let count = reader.u32()?;
        let mut peer_addresses = BTreeMap::new();
        // No capacity from `count`: it is untrusted; each peer consumes at least 12 bytes,
        // so a lying count runs into `Truncated` after at most len / 12 iterations.
        for _ in 0..count {
            let id = reader.u64()?;
            let length = reader.u32()? as usize;
            let address = String::from_utf8(reader.bytes(length)?)
                .map_err(|_| CodecError::InvalidField("peer address is not UTF-8"))?;
            peer_addresses.insert(id, address);
        }
        let mut sessions = BTreeMap::new();
        if version >= SNAPSHOT_LAYOUT_SESSIONS {
            // Counts are untrusted: every id consumes 8 bytes, so a lying count runs into
            // `Truncated` instead of allocating.
            for _ in 0..reader.u32()? {
                let origin = reader.u64()?;
                // Written in order: collected into a vector and built in bulk (a node
                // restarting or installing a snapshot decodes thousands of ids).
                let mut ids = Vec::new();
                for _ in 0..reader.u32()? {
                    ids.push(reader.u64()?);
                }
                sessions.insert(origin, ids.into_iter().collect::<BTreeSet<u64>>());
            }
        }
        let mut known_stores = BTreeSet::new();
        if version >= SNAPSHOT_LAYOUT_VERSION {
            for _ in 0..reader.u32()? {
                known_stores.insert(reader.u64()?);
            }
        }
        Ok(Self {
            peer_addresses,
            sessions,
            known_stores,
            state: Vec::new(),
        })
    }
}

/// Largest driver part of a snapshot read from a stream: peer addresses, sessions (4,096 ids
/// a node) and known stores of a cluster far larger than any chain's.
pub const SNAPSHOT_HEADER_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Fields of a driver layout, read from a slice or a stream.
trait FieldSource {
    fn bytes(&mut self, length: usize) -> Result<Vec<u8>, CodecError>;
    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError>;

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

impl FieldSource for Reader<'_> {
    fn bytes(&mut self, length: usize) -> Result<Vec<u8>, CodecError> {
        Ok(self.take(length)?.to_vec())
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut buffer = [0; N];
        buffer.copy_from_slice(self.take(N)?);
        Ok(buffer)
    }
}

/// Reads fields from a stream, at most [`SNAPSHOT_HEADER_BYTES_MAX`] bytes in all.
struct StreamReader<'a> {
    input: &'a mut dyn std::io::Read,
    consumed: usize,
}

impl StreamReader<'_> {
    fn fill(&mut self, buffer: &mut [u8]) -> Result<(), CodecError> {
        let needed = self.consumed.saturating_add(buffer.len());
        if needed > SNAPSHOT_HEADER_BYTES_MAX {
            return Err(CodecError::TooLarge {
                what: "snapshot header",
                size: needed,
                limit: SNAPSHOT_HEADER_BYTES_MAX,
            });
        }
        let read = read_fully(self.input, buffer)?;
        self.consumed += read;
        if read < buffer.len() {
            return Err(CodecError::Truncated {
                needed,
                available: self.consumed,
            });
        }
        Ok(())
    }
}

impl FieldSource for StreamReader<'_> {
    fn bytes(&mut self, length: usize) -> Result<Vec<u8>, CodecError> {
        // Bounded before allocating: the header limit caps what a lying length can claim.
        let needed = self.consumed.saturating_add(length);
        if needed > SNAPSHOT_HEADER_BYTES_MAX {
            return Err(CodecError::TooLarge {
                what: "snapshot header",
                size: needed,
                limit: SNAPSHOT_HEADER_BYTES_MAX,
            });
        }
        let mut buffer = vec![0; length];
        self.fill(&mut buffer)?;
        Ok(buffer)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut buffer = [0; N];
        self.fill(&mut buffer)?;
        Ok(buffer)
    }
}

/// Read until `buffer` is full or the input ends; returns the bytes read. An IO error is a
/// [`CodecError::Io`].
fn read_fully(input: &mut dyn std::io::Read, buffer: &mut [u8]) -> Result<usize, CodecError> {
    let mut filled = 0;
    while filled < buffer.len() {
        match input.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(CodecError::Io(error.to_string())),
        }
    }
    Ok(filled)
}

/// A conf change of one member (`Auto` transition: joint consensus left at once), as the
/// driver proposes them and as a forced reconfiguration appends them.
pub fn one_member_change(
    change_type: raft::eraftpb::ConfChangeType,
    node: NodeId,
) -> raft::eraftpb::ConfChangeV2 {
    let mut single = raft::eraftpb::ConfChangeSingle::default();
    single.set_change_type(change_type);
    single.node_id = node;
    let mut change = raft::eraftpb::ConfChangeV2::default();
    change.set_transition(raft::eraftpb::ConfChangeTransition::Auto);
    change.mut_changes().push(single);
    change
}

/// Encode the address carried by a conf change.
pub fn encode_address(address: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + address.len());
    bytes.push(DRIVER_LAYOUT_VERSION);
    bytes.extend_from_slice(address.as_bytes());
    bytes
}

/// Decode the address carried by a conf change; `None` when the change carries none.
pub fn decode_address(bytes: &[u8]) -> Result<Option<String>, CodecError> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Ok(None);
    };
    check_version(version)?;
    if rest.is_empty() {
        return Ok(None);
    }
    let address = std::str::from_utf8(rest)
        .map_err(|_| CodecError::InvalidField("conf change address is not UTF-8"))?;
    Ok(Some(address.to_owned()))
}

/// Who proposed an entry: the node and its proposal id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryTag {
    /// The node whose driver proposed the entry.
    pub origin: NodeId,
    /// The proposal id on that node.
    pub proposal: u64,
}

impl EntryTag {
    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(ENTRY_TAG_BYTES);
        bytes.push(DRIVER_LAYOUT_VERSION);
        bytes.extend_from_slice(&self.origin.to_le_bytes());
        bytes.extend_from_slice(&self.proposal.to_le_bytes());
        bytes
    }

    /// Decode; `None` for entries without a (known) tag: raft-rs's own empty entries, or a
    /// tag of another version — either way not a proposal this binary is waiting for.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader::new(bytes);
        check_version(reader.u8().ok()?).ok()?;
        Some(Self {
            origin: reader.u64().ok()?,
            proposal: reader.u64().ok()?,
        })
    }
}

/// A record the driver replicates for itself: an entry with empty data (the state machine
/// never sees it, and a binary that does not know the kind skips it as raft-rs's own empty
/// entries) and this context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverEntry {
    /// The member's store acknowledged entries past the bootstrap (the leader saw its match
    /// index there): from now on an answer from an empty store under this id means the store
    /// was lost, and the leader does not feed it — it must be re-added by the runbook.
    StoreKnown(NodeId),
}

/// [`DriverEntry::StoreKnown`]'s kind byte.
const DRIVER_ENTRY_STORE_KNOWN: u8 = 1;
/// Bytes of an encoded [`DriverEntry`].
const DRIVER_ENTRY_BYTES: usize = 1 + 1 + 8;

impl DriverEntry {
    /// Encode (the entry's context; its data stays empty).
    pub fn encode(&self) -> Vec<u8> {
        let Self::StoreKnown(id) = self;
        let mut bytes = Vec::with_capacity(DRIVER_ENTRY_BYTES);
        bytes.push(DRIVER_LAYOUT_VERSION);
        bytes.push(DRIVER_ENTRY_STORE_KNOWN);
        bytes.extend_from_slice(&id.to_le_bytes());
        bytes
    }

    /// Decode; `None` for any context that is not exactly one driver entry (an [`EntryTag`]
    /// is longer, raft-rs's own entries have none).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != DRIVER_ENTRY_BYTES {
            return None;
        }
        let mut reader = Reader::new(bytes);
        check_version(reader.u8().ok()?).ok()?;
        match reader.u8().ok()? {
            DRIVER_ENTRY_STORE_KNOWN => Some(Self::StoreKnown(reader.u64().ok()?)),
            _ => None,
        }
    }
}

/// The context of a ReadIndex request: which node asked, and which of its read batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadContext {
    /// The node that asked.
    pub node: NodeId,
    /// The batch on that node.
    pub sequence: u64,
}

impl ReadContext {
    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(READ_CONTEXT_BYTES);
        bytes.extend_from_slice(&self.node.to_le_bytes());
        bytes.extend_from_slice(&self.sequence.to_le_bytes());
        bytes
    }

    /// Decode; `None` for anything that is not exactly one encoded context.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != READ_CONTEXT_BYTES {
            return None;
        }
        let mut reader = Reader::new(bytes);
        Some(Self {
            node: reader.u64().ok()?,
            sequence: reader.u64().ok()?,
        })
    }
}

/// Who a store belongs to, written when the store is first initialised (bootstrapped as a new
/// cluster, or opened empty to join one) and checked on every start: a data directory mounted
/// under the wrong node id or from another cluster is refused instead of replayed.
///
/// Layout: `[version][node id u64][lost_through u64][incarnation u64][cluster id utf-8…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreIdentity {
    /// The cluster's name (from the configuration).
    pub cluster_id: String,
    /// The node the store belongs to.
    pub node_id: NodeId,
    /// 0, or the log index up to which a leader proved this store acknowledged entries it no
    /// longer has (its disk was wiped or restored from an old copy): the node must not vote
    /// until a membership change after that index re-added it as a learner.
    pub lost_through: u64,
    /// How many times the store was opened by a driver: request ids start from it, so they
    /// never repeat across restarts whatever the wall clock does.
    pub incarnation: u64,
}

/// Longest cluster id accepted.
pub const CLUSTER_ID_BYTES_MAX: usize = 64;

impl StoreIdentity {
    /// True while the node must not vote (see `lost_through`).
    pub fn rejoin_required(&self) -> bool {
        self.lost_through > 0
    }

    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 + 8 + 8 + 8 + self.cluster_id.len());
        bytes.push(DRIVER_LAYOUT_VERSION);
        bytes.extend_from_slice(&self.node_id.to_le_bytes());
        bytes.extend_from_slice(&self.lost_through.to_le_bytes());
        bytes.extend_from_slice(&self.incarnation.to_le_bytes());
        bytes.extend_from_slice(self.cluster_id.as_bytes());
        bytes
    }

    /// Decode.
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(bytes);
        check_version(reader.u8()?)?;
        let node_id = reader.u64()?;
        let lost_through = reader.u64()?;
        let incarnation = reader.u64()?;
        let rest = reader.rest();
        if rest.is_empty() || rest.len() > CLUSTER_ID_BYTES_MAX {
            return Err(CodecError::InvalidField("cluster id length"));
        }
        let cluster_id = std::str::from_utf8(rest)
            .map_err(|_| CodecError::InvalidField("cluster id is not UTF-8"))?;
        Ok(Self {
            cluster_id: cluster_id.to_owned(),
            node_id,
            lost_through,
            incarnation,
        })
    }
}

/// Little-endian reader over a slice; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    consumed: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, consumed: 0 }
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], CodecError> {
        if self.bytes.len() < length {
            return Err(CodecError::Truncated {
                needed: self.consumed.saturating_add(length),
                available: self.consumed + self.bytes.len(),
            });
        }
        let (head, tail) = self.bytes.split_at(length);
        self.bytes = tail;
        self.consumed += length;
        Ok(head)
    }

    fn rest(self) -> &'a [u8] {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_envelope_round_trips_and_rejects_garbage() {
        let envelope = SnapshotEnvelope {
            peer_addresses: [(1, "a:1".to_owned()), (7, "b:2".to_owned())].into(),
            sessions: [(1, BTreeSet::from([5, 9])), (7, BTreeSet::new())].into(),
            known_stores: BTreeSet::from([1, 7]),
            state: vec![9, 8, 7],
        };
        let bytes = envelope.encode();
        assert_eq!(bytes.len(), envelope.encoded_len());
        assert_eq!(SnapshotEnvelope::decode(&bytes), Ok(envelope));
        // Version 2 (before known stores) is still read.
        let mut version_two = vec![SNAPSHOT_LAYOUT_SESSIONS];
        version_two.extend_from_slice(&0_u32.to_le_bytes());
        version_two.extend_from_slice(&0_u32.to_le_bytes());
        version_two.extend_from_slice(&[4, 2]);
        assert_eq!(
            SnapshotEnvelope::decode(&version_two),
            Ok(SnapshotEnvelope {
                state: vec![4, 2],
                ..Default::default()
            })
        );
        assert_eq!(
            SnapshotEnvelope::decode(&[]),
            Ok(SnapshotEnvelope::default())
        );
        // Version 1 (before sessions) is still read.
        let mut version_one = vec![DRIVER_LAYOUT_VERSION];
        version_one.extend_from_slice(&0_u32.to_le_bytes());
        version_one.extend_from_slice(&[4, 2]);
        assert_eq!(
            SnapshotEnvelope::decode(&version_one),
            Ok(SnapshotEnvelope {
                state: vec![4, 2],
                ..Default::default()
            })
        );
        // Version, count, then only 3 of the first peer's 8 id bytes.
        assert_eq!(
            SnapshotEnvelope::decode(&bytes[..8]),
            Err(CodecError::Truncated {
                needed: 13,
                available: 8
            })
        );
        assert_eq!(
            SnapshotEnvelope::decode(&[9]),
            Err(CodecError::UnknownVersion {
                found: 9,
                current: SNAPSHOT_LAYOUT_VERSION
            })
        );
        // A count of u32::MAX peers in a few bytes: an error, not an allocation.
        let mut lying = vec![DRIVER_LAYOUT_VERSION];
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        lying.extend_from_slice(&[0; 20]);
        assert!(matches!(
            SnapshotEnvelope::decode(&lying),
            Err(CodecError::Truncated { .. })
        ));
        let mut bad_address = vec![DRIVER_LAYOUT_VERSION];
        bad_address.extend_from_slice(&1_u32.to_le_bytes());
        bad_address.extend_from_slice(&1_u64.to_le_bytes());
        bad_address.extend_from_slice(&2_u32.to_le_bytes());
        bad_address.extend_from_slice(&[0xff, 0xfe]);
        assert!(matches!(
            SnapshotEnvelope::decode(&bad_address),
            Err(CodecError::InvalidField(_))
        ));
    }

    #[test]
    fn tags_addresses_and_read_contexts_round_trip() {
        let tag = EntryTag {
            origin: 3,
            proposal: 42,
        };
        assert_eq!(EntryTag::decode(&tag.encode()), Some(tag));
        assert_eq!(EntryTag::decode(&[]), None);
        let mut other_version = tag.encode();
        other_version[0] = 2;
        assert_eq!(EntryTag::decode(&other_version), None);
        assert_eq!(
            decode_address(&encode_address("h:9")),
            Ok(Some("h:9".to_owned()))
        );
        assert_eq!(decode_address(&[]), Ok(None));
        assert_eq!(decode_address(&[DRIVER_LAYOUT_VERSION]), Ok(None));
        assert!(decode_address(&[7, b'x']).is_err());
        let context = ReadContext {
            node: 5,
            sequence: u64::MAX,
        };
        assert_eq!(ReadContext::decode(&context.encode()), Some(context));
        assert_eq!(ReadContext::decode(&context.encode()[..15]), None);
        assert_eq!(ReadContext::decode(&[0; 17]), None);
        // A driver entry and a proposal's tag never pass for each other.
        let known = DriverEntry::StoreKnown(9);
        assert_eq!(DriverEntry::decode(&known.encode()), Some(known));
        assert_eq!(EntryTag::decode(&known.encode()), None);
        assert_eq!(DriverEntry::decode(&tag.encode()), None);
        let mut unknown_kind = known.encode();
        unknown_kind[1] = 77;
        assert_eq!(DriverEntry::decode(&unknown_kind), None);
        assert_eq!(DriverEntry::decode(&[]), None);
    }

    #[test]
    fn store_identity_round_trips_and_rejects_garbage() {
        let identity = StoreIdentity {
            cluster_id: "pharmacies".to_owned(),
            node_id: 7,
            lost_through: 42,
            incarnation: 3,
        };
        assert_eq!(
            StoreIdentity::decode(&identity.encode()),
            Ok(identity.clone())
        );
        let mut bytes = identity.encode();
        bytes[0] = 9;
        assert!(StoreIdentity::decode(&bytes).is_err());
        assert!(StoreIdentity::decode(&identity.encode()[..25]).is_err());
        let mut bad_utf8 = identity.encode();
        bad_utf8.truncate(25);
        bad_utf8.extend_from_slice(&[0xff]);
        assert!(StoreIdentity::decode(&bad_utf8).is_err());
        assert!(StoreIdentity::decode(&[]).is_err());
    }
}
