//! Unit tests of the codec: round trips of every layer, the size limits, malformed input,
//! and a proptest feeding arbitrary bytes to every decoder (here and in the submodules).
#![allow(clippy::unwrap_used)]

use super::wire::{CHUNK_HEADER_BYTES, KIND_FORWARD, KIND_FORWARD_REPLY, KIND_RAFT};
use super::*;
use crate::transport::{PeerMessage, RemoteError};
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
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
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
        envelope.encode_within(112),
        Err(CodecError::TooLarge { size: 113, .. })
    ));
    assert_eq!(
        SnapshotEnvelope::decode(&envelope.encode_within(113).unwrap()).unwrap(),
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
        PeerMessage::LeaderHint {
            term: 9,
            leader: 5,
            address: "10.0.0.5:7001".to_owned(),
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
