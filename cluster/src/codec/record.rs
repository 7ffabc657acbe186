//! The RocksDB store's record layout: what [`crate::storage::rocks`] writes to disk besides
//! raft-rs's protobuf messages (which it stores as payloads).
//!
//! - every value: `[crc32 of key and payload, u32 little-endian][payload]` — the key is in
//!   the checksum so a value copied or misplaced under another key is caught too;
//! - raft log keys: the entry index as u64 big-endian, so RocksDB's byte order is index order;
//! - the applied index: u64 big-endian.
//!
//! Opening never trusts a payload whose checksum does not match ([`CodecError::ChecksumMismatch`]).

use super::CodecError;

/// Bytes of the checksum in front of every record.
pub const RECORD_CHECKSUM_BYTES: usize = 4;

fn checksum(key: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(key);
    hasher.update(payload);
    hasher.finalize()
}

/// The stored value of `payload` under `key`: checksum, then payload.
pub fn seal_record(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(RECORD_CHECKSUM_BYTES + payload.len());
    value.extend_from_slice(&checksum(key, payload).to_le_bytes());
    value.extend_from_slice(payload);
    value
}

/// The payload of a value stored under `key`, once its checksum matched.
pub fn open_record<'a>(key: &[u8], value: &'a [u8]) -> Result<&'a [u8], CodecError> {
    if value.len() < RECORD_CHECKSUM_BYTES {
        return Err(CodecError::Truncated {
            needed: RECORD_CHECKSUM_BYTES,
            available: value.len(),
        });
    }
    let (stored, payload) = value.split_at(RECORD_CHECKSUM_BYTES);
    let mut stored_bytes = [0; RECORD_CHECKSUM_BYTES];
    stored_bytes.copy_from_slice(stored);
    if checksum(key, payload) != u32::from_le_bytes(stored_bytes) {
        return Err(CodecError::ChecksumMismatch);
    }
    Ok(payload)
}

/// The key of the log entry at `index`.
pub fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// The index in a log key; `None` when the key is not one.
pub fn log_index(key: &[u8]) -> Option<u64> {
    <[u8; 8]>::try_from(key).ok().map(u64::from_be_bytes)
}

/// Encode the applied index record's payload.
pub fn encode_applied_index(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

/// Decode the applied index record's payload.
pub fn decode_applied_index(payload: &[u8]) -> Result<u64, CodecError> {
    let bytes = <[u8; 8]>::try_from(payload)
        .map_err(|_| CodecError::InvalidField("applied index is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_any_flipped_bit_or_moved_value_is_caught() {
        let value = seal_record(b"hard_state", b"payload");
        assert_eq!(open_record(b"hard_state", &value), Ok(&b"payload"[..]));
        assert_eq!(
            open_record(b"conf_state", &value),
            Err(CodecError::ChecksumMismatch)
        );
        for position in 0..value.len() {
            let mut flipped = value.clone();
            flipped[position] ^= 1;
            assert_eq!(
                open_record(b"hard_state", &flipped),
                Err(CodecError::ChecksumMismatch)
            );
        }
        assert!(matches!(
            open_record(b"k", &[1, 2]),
            Err(CodecError::Truncated { .. })
        ));
        assert_eq!(open_record(b"k", &seal_record(b"k", b"")), Ok(&b""[..]));
    }

    #[test]
    fn log_keys_sort_by_index() {
        assert!(log_key(255) < log_key(256));
        assert_eq!(log_index(&log_key(42)), Some(42));
        assert_eq!(log_index(b"hard_state"), None);
        assert_eq!(decode_applied_index(&encode_applied_index(7)), Ok(7));
        assert!(decode_applied_index(&[1, 2, 3]).is_err());
    }
}
