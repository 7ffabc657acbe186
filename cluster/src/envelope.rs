//! Byte layouts the driver puts inside Raft entries and snapshots, each behind a version byte
//! so a newer binary can still replay an older log (rolling upgrades).
//!
//! - snapshot data: `[version][peer count u32][(id u64, address length u32, address)…][state
//!   machine bytes…]` — peer addresses travel with the snapshot because the conf change
//!   entries that carried them may have been compacted away;
//! - conf change context: `[version][address utf-8…]` — the address of an added node, applied
//!   to the transport by every member when the change is applied;
//! - entry context: `[version][origin node u64][proposal id u64]` — identifies a proposal so
//!   the proposer recognises its own entry at apply time.
//!
//! All integers are little-endian. Decoding never panics on malformed input.

use std::collections::BTreeMap;

use crate::transport::NodeId;

/// The only layout version written today.
pub const VERSION: u8 = 1;

/// Why a byte layout could not be decoded.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EnvelopeError {
    /// The version byte is not one this binary understands.
    #[error("unknown envelope version {0}")]
    UnknownVersion(u8),
    /// The bytes end before the layout does.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// An address is not utf-8.
    #[error("address is not utf-8")]
    InvalidAddress,
}

/// The driver's part of a snapshot plus the state machine's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SnapshotEnvelope {
    /// Known peer addresses at the snapshot's index.
    pub peer_addresses: BTreeMap<NodeId, String>,
    /// The state machine's snapshot.
    pub state: Vec<u8>,
}

impl SnapshotEnvelope {
    /// Encode.
    pub fn encode(&self) -> Vec<u8> {
        let addresses_length: usize = self.peer_addresses.values().map(|a| 12 + a.len()).sum();
        let mut bytes = Vec::with_capacity(5 + addresses_length + self.state.len());
        bytes.push(VERSION);
        bytes.extend_from_slice(&(self.peer_addresses.len() as u32).to_le_bytes());
        for (id, address) in &self.peer_addresses {
            bytes.extend_from_slice(&id.to_le_bytes());
            bytes.extend_from_slice(&(address.len() as u32).to_le_bytes());
            bytes.extend_from_slice(address.as_bytes());
        }
        bytes.extend_from_slice(&self.state);
        bytes
    }

    /// Decode; an empty slice is an empty envelope (a node that has no snapshot yet).
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let mut reader = Reader {
            bytes,
            what: "snapshot envelope",
        };
        let version = reader.u8()?;
        if version != VERSION {
            return Err(EnvelopeError::UnknownVersion(version));
        }
        let count = reader.u32()?;
        let mut peer_addresses = BTreeMap::new();
        for _ in 0..count {
            let id = reader.u64()?;
            let length = reader.u32()? as usize;
            let address = reader.take(length)?;
            let address =
                std::str::from_utf8(address).map_err(|_| EnvelopeError::InvalidAddress)?;
            peer_addresses.insert(id, address.to_owned());
        }
        Ok(Self {
            peer_addresses,
            state: reader.bytes.to_vec(),
        })
    }
}

/// Encode the address carried by a conf change.
pub fn encode_address(address: &str) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(1 + address.len());
    bytes.push(VERSION);
    bytes.extend_from_slice(address.as_bytes());
    bytes
}

/// Decode the address carried by a conf change; `None` when the change carries none.
pub fn decode_address(bytes: &[u8]) -> Result<Option<String>, EnvelopeError> {
    let Some((&version, rest)) = bytes.split_first() else {
        return Ok(None);
    };
    if version != VERSION {
        return Err(EnvelopeError::UnknownVersion(version));
    }
    if rest.is_empty() {
        return Ok(None);
    }
    let address = std::str::from_utf8(rest).map_err(|_| EnvelopeError::InvalidAddress)?;
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
        let mut bytes = Vec::with_capacity(17);
        bytes.push(VERSION);
        bytes.extend_from_slice(&self.origin.to_le_bytes());
        bytes.extend_from_slice(&self.proposal.to_le_bytes());
        bytes
    }

    /// Decode; `None` for entries without a tag (raft-rs's own empty entries).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let mut reader = Reader {
            bytes,
            what: "entry tag",
        };
        if reader.u8().ok()? != VERSION {
            return None;
        }
        Some(Self {
            origin: reader.u64().ok()?,
            proposal: reader.u64().ok()?,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn take(&mut self, length: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.bytes.len() < length {
            return Err(EnvelopeError::Truncated(self.what));
        }
        let (head, tail) = self.bytes.split_at(length);
        self.bytes = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, EnvelopeError> {
        let mut buffer = [0; 4];
        buffer.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(buffer))
    }

    fn u64(&mut self) -> Result<u64, EnvelopeError> {
        let mut buffer = [0; 8];
        buffer.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(buffer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_envelope_round_trips_and_rejects_garbage() {
        let envelope = SnapshotEnvelope {
            peer_addresses: [(1, "a:1".to_owned()), (7, "b:2".to_owned())].into(),
            state: vec![9, 8, 7],
        };
        let bytes = envelope.encode();
        assert_eq!(SnapshotEnvelope::decode(&bytes), Ok(envelope));
        assert_eq!(
            SnapshotEnvelope::decode(&bytes[..8]),
            Err(EnvelopeError::Truncated("snapshot envelope"))
        );
        assert_eq!(
            SnapshotEnvelope::decode(&[9]),
            Err(EnvelopeError::UnknownVersion(9))
        );
    }

    #[test]
    fn tags_and_addresses_round_trip() {
        let tag = EntryTag {
            origin: 3,
            proposal: 42,
        };
        assert_eq!(EntryTag::decode(&tag.encode()), Some(tag));
        assert_eq!(EntryTag::decode(&[]), None);
        assert_eq!(
            decode_address(&encode_address("h:9")),
            Ok(Some("h:9".to_owned()))
        );
        assert_eq!(decode_address(&[]), Ok(None));
    }
}
