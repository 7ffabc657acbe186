//! Unit tests of the codec: round trips of every layer, the size limits, malformed input,
//! and a proptest feeding arbitrary bytes to every decoder (here and in the submodules).
#![allow(clippy::unwrap_used)]

use super::wire::{CHUNK_HEADER_BYTES, KIND_FORWARD, KIND_FORWARD_REPLY, KIND_RAFT};
use super::*;
use crate::snapshot_body::{SnapshotBody, SnapshotWriter};
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
    // Streamed: the same bytes, read back as they stream; trailing bytes are refused, and
    // another version is handed to its decoder.
    let mut streamed = Vec::new();
    encode_snapshot_to(&order, &mut streamed).unwrap();
    assert_eq!(streamed, snapshot);
    assert_eq!(
        decode_snapshot_from::<OrderV2>(&mut streamed.as_slice()).unwrap(),
        order
    );
    streamed.push(0);
    assert!(matches!(
        decode_snapshot_from::<OrderV2>(&mut streamed.as_slice()),
        Err(CodecError::TrailingBytes(1))
    ));
    let old = encode_snapshot(&OrderV1 {
        id: 1,
        items: Vec::new(),
    })
    .unwrap();
    assert_eq!(
        decode_snapshot_from::<OrderV2>(&mut old.as_slice())
            .unwrap()
            .id,
        1
    );
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

fn large_snapshot_message() -> RaftMessage {
    let mut message = RaftMessage::default();
    message.set_msg_type(MessageType::MsgSnapshot);
    (message.from, message.to, message.term) = (u64::MAX, u64::MAX, u64::MAX);
    let mut snapshot = Snapshot::default();
    let metadata = snapshot.mut_metadata();
    (metadata.index, metadata.term) = (u64::MAX, u64::MAX);
    metadata.mut_conf_state().voters = (u64::MAX - 1_000..u64::MAX).collect();
    metadata.mut_conf_state().learners = (u64::MAX - 2_000..u64::MAX - 1_000).collect();
    message.set_snapshot(snapshot);
    message
}

#[test]
fn every_snapshot_that_can_be_built_can_be_shipped() {
    // One limit: a body is never written past SNAPSHOT_BYTES_MAX, and the stream's header
    // (the message around it, with a large membership and the largest term and index) fits
    // the room it has.
    let body = SnapshotBody::from_bytes(vec![1_u8; 4096]);
    let header = encode_snapshot_header_frame(9, &large_snapshot_message(), &body).unwrap();
    assert!(
        header.len() <= SNAPSHOT_MESSAGE_OVERHEAD_MAX,
        "{} bytes",
        header.len()
    );
    let mut writer = SnapshotWriter::memory();
    assert_eq!(writer.with_limit(u64::MAX).len(), 0);
    writer = SnapshotWriter::memory().with_limit(10);
    assert!(std::io::Write::write_all(&mut writer, &[0; 11]).is_err());
    // A header announcing more than the limit is refused when received.
    let mut frame = header.clone();
    let too_large = (SNAPSHOT_BYTES_MAX as u64 + 1).to_be_bytes();
    frame[LENGTH_PREFIX_BYTES + 9..LENGTH_PREFIX_BYTES + 17].copy_from_slice(&too_large);
    assert!(matches!(
        decode_frame_body(&frame[LENGTH_PREFIX_BYTES..]),
        Err(CodecError::TooLarge { .. })
    ));
}

#[test]
fn a_snapshot_streams_in_frames_and_is_checked_on_the_way() {
    let mut message = large_snapshot_message();
    message.mut_snapshot().mut_metadata().index = 42;
    let bytes: Vec<u8> = (0..(2 * CHUNK_BYTES + 5))
        .map(|i| (i % 253) as u8)
        .collect();
    let body = SnapshotBody::from_bytes(bytes.clone());
    let received = snapshot_round_trip(3, &message, &body).unwrap();
    let PeerMessage::Snapshot {
        message: received_message,
        body: received_body,
    } = received
    else {
        panic!("not a snapshot");
    };
    assert_eq!(*received_message, message);
    assert_eq!(received_body.to_vec().unwrap(), bytes);
    // An empty body is the header alone.
    let frames = encode_snapshot_frames(4, &message, &SnapshotBody::default()).unwrap();
    assert_eq!(frames.len(), 1);
    assert!(snapshot_round_trip(4, &message, &SnapshotBody::default()).is_ok());

    // Data frames out of order, of another message, past the length, or a wrong crc32.
    let frames = encode_snapshot_frames(5, &message, &body).unwrap();
    assert_eq!(frames.len(), 4);
    let decode = |frame: &Vec<u8>| decode_frame_body(&frame[LENGTH_PREFIX_BYTES..]).unwrap();
    let header = |frame: &Vec<u8>| match decode(frame) {
        Frame::SnapshotHeader(header) => header,
        other => panic!("not a header: {other:?}"),
    };
    let data = |frame: &Vec<u8>| match decode(frame) {
        Frame::SnapshotData(data) => data,
        other => panic!("not data: {other:?}"),
    };
    let mut receiver = SnapshotReceiver::new(header(&frames[0]), SnapshotWriter::memory());
    assert!(
        receiver.handle_data(&data(&frames[2])).is_err(),
        "out of order"
    );
    let mut other = data(&frames[1]);
    other.message_id = 6;
    assert!(receiver.handle_data(&other).is_err(), "another message");
    receiver.handle_data(&data(&frames[1])).unwrap();
    receiver.handle_data(&data(&frames[2])).unwrap();
    let mut long = data(&frames[3]);
    long.data.push(0);
    assert!(receiver.handle_data(&long).is_err(), "past the length");
    let mut corrupted = data(&frames[3]);
    corrupted.data[0] ^= 1;
    receiver.handle_data(&corrupted).unwrap();
    assert_eq!(receiver.finish(), Err(CodecError::ChecksumMismatch));
    // A message with data inside is not a streamed snapshot's.
    let mut inline = message.clone();
    inline.mut_snapshot().data = vec![1].into();
    assert!(encode_snapshot_header_frame(1, &inline, &body).is_err());
}

#[test]
fn the_snapshot_header_streams_and_leaves_the_state_to_read() {
    let header = SnapshotEnvelope {
        peer_addresses: [(1, "a:1".to_owned())].into(),
        sessions: [(1, [3_u64, 4].into())].into(),
        known_stores: [1].into(),
        state: Vec::new(),
    };
    let mut bytes = header.encode_header();
    bytes.extend_from_slice(b"the state");
    let mut reader = std::io::Cursor::new(bytes.clone());
    assert_eq!(
        SnapshotEnvelope::decode_header(&mut reader).unwrap(),
        header
    );
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut reader, &mut rest).unwrap();
    assert_eq!(rest, b"the state");
    // An empty body is an empty envelope; a truncated header is an error, not a panic.
    assert_eq!(
        SnapshotEnvelope::decode_header(&mut std::io::Cursor::new(Vec::new())).unwrap(),
        SnapshotEnvelope::default()
    );
    for cut in 1..header.encode_header().len() {
        let result = SnapshotEnvelope::decode_header(&mut std::io::Cursor::new(&bytes[..cut]));
        assert!(result.is_err(), "cut at {cut}");
    }
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
            let _ = SnapshotEnvelope::decode_header(&mut bytes.as_slice());
            for kind in [6_u8, 7] {
                let mut frame = vec![kind];
                frame.extend_from_slice(&bytes);
                let _ = decode_frame_body(&frame);
            }
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
