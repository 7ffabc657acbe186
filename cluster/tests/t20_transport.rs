//! Transport over real QUIC on loopback: delivery of every message kind with the
//! authenticated sender, chunked snapshots, refusal of foreign and missing certificates,
//! malformed and oversized frames, reconnection to a restarted peer, and bounded queues
//! towards a dead peer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callgrid_cluster::certs::{self, CertificateAuthority, TlsIdentity};
use callgrid_cluster::codec;
use callgrid_cluster::snapshot_body::SnapshotWriter;
use callgrid_cluster::transport::quic::{self, QuicConfig, QuicTransport};
use callgrid_cluster::transport::{
    Inbound, NodeId, PeerMessage, RemoteError, Transport, TransportError, TransportStats,
};
use crossbeam_channel::Receiver;
use raft::eraftpb::{Entry, Message as RaftMessage, MessageType, Snapshot};

/// Upper bound on waiting for something that should happen promptly; a bound, not a
/// speed assertion: tests only fail on it when the thing never happens.
const WAIT_MAX: Duration = Duration::from_secs(30);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config(identity: TlsIdentity, listen: SocketAddr, peers: Vec<(NodeId, String)>) -> QuicConfig {
    let mut config = QuicConfig::new(identity.node_id, listen, peers, identity);
    config.connect_timeout = Duration::from_secs(2);
    config.reconnect_backoff_max = Duration::from_millis(500);
    config.worker_threads = 1;
    config
}

fn start(
    authority: &CertificateAuthority,
    id: NodeId,
    peers: Vec<(NodeId, String)>,
) -> (QuicTransport, Receiver<Inbound>) {
    let identity = authority.issue_identity(id).unwrap();
    QuicTransport::start(config(identity, loopback(), peers)).unwrap()
}

fn address(transport: &QuicTransport) -> String {
    transport.local_address().to_string()
}

fn receive(receiver: &Receiver<Inbound>) -> Inbound {
    receiver.recv_timeout(WAIT_MAX).unwrap()
}

fn wait_for(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT_MAX;
    while !condition() {
        assert!(Instant::now() < deadline, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn forward(request_id: u64) -> PeerMessage {
    PeerMessage::Forward {
        request_id,
        term: 1,
        payload: format!("command {request_id}").into_bytes(),
    }
}

fn raft_append() -> RaftMessage {
    let mut message = RaftMessage::default();
    message.set_msg_type(MessageType::MsgAppend);
    message.from = 1;
    message.to = 2;
    message.term = 3;
    message.index = 10;
    message.log_term = 3;
    message.commit = 9;
    message.entries = (11..14)
        .map(|index| Entry {
            term: 3,
            index,
            data: vec![index as u8; 100].into(),
            ..Default::default()
        })
        .collect::<Vec<_>>()
        .into();
    message
}

fn raft_snapshot(data_bytes: usize) -> RaftMessage {
    let mut message = RaftMessage::default();
    message.set_msg_type(MessageType::MsgSnapshot);
    message.from = 1;
    message.to = 2;
    message.term = 4;
    let mut snapshot = Snapshot::default();
    snapshot.mut_metadata().index = 500;
    snapshot.mut_metadata().term = 4;
    snapshot.mut_metadata().mut_conf_state().voters = vec![1, 2, 3];
    snapshot.data = (0..data_bytes)
        .map(|i| (i % 253) as u8)
        .collect::<Vec<u8>>()
        .into();
    message.set_snapshot(snapshot);
    message
}

fn every_variant() -> Vec<PeerMessage> {
    let mut heartbeat = RaftMessage::default();
    heartbeat.set_msg_type(MessageType::MsgHeartbeat);
    heartbeat.from = 1;
    heartbeat.to = 2;
    heartbeat.term = 3;
    vec![
        PeerMessage::Raft(Box::new(raft_append())),
        PeerMessage::Raft(Box::new(heartbeat)),
        PeerMessage::Raft(Box::new(raft_snapshot(1000))),
        forward(1),
        PeerMessage::Forward {
            request_id: 2,
            term: 4,
            payload: vec![],
        },
        PeerMessage::ForwardReply {
            request_id: 1,
            index: 17,
            result: Ok(b"order 17 confirmed".to_vec()),
        },
        PeerMessage::ForwardReply {
            request_id: 2,
            index: 0,
            result: Err(RemoteError::NotLeader {
                leader_hint: Some(3),
            }),
        },
        PeerMessage::ForwardReply {
            request_id: 3,
            index: 0,
            result: Err(RemoteError::NotLeader { leader_hint: None }),
        },
        PeerMessage::ForwardReply {
            request_id: 4,
            index: 0,
            result: Err(RemoteError::Dropped),
        },
        PeerMessage::ForwardReply {
            request_id: 5,
            index: 0,
            result: Err(RemoteError::Rejected("shutting down".into())),
        },
    ]
}

/// Send `marker` from a well-behaved peer and check it is the first thing `receiver`
/// gets: proves nothing else was delivered before, and that the node still works.
fn assert_only_marker_delivered(
    sender: &QuicTransport,
    receiver: &Receiver<Inbound>,
    to: NodeId,
    marker: u64,
) {
    sender.send(to, forward(marker)).unwrap();
    let inbound = receive(receiver);
    assert_eq!(inbound.from, sender.node_id());
    assert_eq!(inbound.message, forward(marker));
}

#[test]
fn every_message_variant_arrives_intact_with_the_authenticated_sender() {
    init_logs();
    let authority = CertificateAuthority::generate().unwrap();
    let (two, two_inbound) = start(&authority, 2, vec![]);
    let (one, one_inbound) = start(&authority, 1, vec![(2, address(&two))]);
    two.set_peer(1, address(&one));
    for message in every_variant() {
        one.send(2, message).unwrap();
    }
    for expected in every_variant() {
        let inbound = receive(&two_inbound);
        assert_eq!(inbound.from, 1);
        assert_eq!(inbound.message, expected);
    }
    two.send(1, forward(99)).unwrap();
    let reply = receive(&one_inbound);
    assert_eq!((reply.from, reply.message), (2, forward(99)));
    assert_eq!(one.send(5, forward(1)), Err(TransportError::UnknownPeer(5)));
    // Counted just after each write; the peer may have read before the count moved.
    wait_for("every frame counted as sent", || {
        one.stats().frames_sent == every_variant().len() as u64
    });
    let stats: TransportStats = one.stats();
    assert_eq!(stats.messages_dropped_queue_full, 0);
    assert!(two.stats().frames_received >= every_variant().len() as u64);
    one.shutdown();
    two.shutdown();
    assert_eq!(one.send(2, forward(1)), Err(TransportError::Closed));
}

#[test]
fn a_snapshot_streams_from_its_file_into_the_receivers_spool() {
    init_logs();
    let authority = CertificateAuthority::generate().unwrap();
    let files = tempfile::tempdir().unwrap();
    let spool = files.path().join("spool");
    let mut two_config = config(authority.issue_identity(2).unwrap(), loopback(), vec![]);
    two_config.snapshot_spool = Some(spool.clone());
    // A file a crash left in the spool is removed at start.
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(spool.join("from-1-1-1.snapshot-spool"), b"left over").unwrap();
    let (two, two_inbound) = QuicTransport::start(two_config).unwrap();
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    let (one, _one_inbound) = start(&authority, 1, vec![(2, address(&two))]);

    let bytes: Vec<u8> = (0..(5 * codec::CHUNK_BYTES + 123))
        .map(|i| (i % 241) as u8)
        .collect();
    let mut writer = SnapshotWriter::file(&files.path().join("snapshot.bin")).unwrap();
    std::io::Write::write_all(&mut writer, &bytes).unwrap();
    let body = writer.finish().unwrap();
    let mut message = raft_snapshot(0);
    message.mut_snapshot().data = Vec::new().into();
    // The sender's file may go once the send started: it is held open.
    one.send(
        2,
        PeerMessage::Snapshot {
            message: Box::new(message.clone()),
            body: body.clone(),
        },
    )
    .unwrap();
    std::fs::remove_file(files.path().join("snapshot.bin")).unwrap();
    one.send(2, forward(1)).unwrap();
    let mut received = [receive(&two_inbound), receive(&two_inbound)];
    received.sort_by_key(|inbound| matches!(inbound.message, PeerMessage::Forward { .. }));
    let PeerMessage::Snapshot {
        message: received_message,
        body: received_body,
    } = &received[0].message
    else {
        panic!("not a snapshot: {:?}", received[0].message);
    };
    assert_eq!(**received_message, message);
    assert_eq!(
        received_body.path().map(|path| path.parent()),
        Some(Some(spool.as_path()))
    );
    assert_eq!(received_body.to_vec().unwrap(), bytes);
    assert_eq!(received[1].message, forward(1));
    wait_for("snapshot progress counted", || {
        one.large_message_progress(2) >= bytes.len() as u64
    });
    // The spool file goes with its last handle.
    drop(received);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
    one.shutdown();
    two.shutdown();
}

#[test]
fn large_snapshot_arrives_in_chunks_without_holding_back_small_messages() {
    init_logs();
    let authority = CertificateAuthority::generate().unwrap();
    let (two, two_inbound) = start(&authority, 2, vec![]);
    let (one, _one_inbound) = start(&authority, 1, vec![(2, address(&two))]);
    let snapshot = PeerMessage::Raft(Box::new(raft_snapshot(20 * 1024 * 1024)));
    one.send(2, snapshot.clone()).unwrap();
    one.send(2, forward(1)).unwrap();
    let mut received = [receive(&two_inbound), receive(&two_inbound)];
    // The snapshot travels on its own stream: the small message may overtake it.
    received.sort_by_key(|inbound| matches!(inbound.message, PeerMessage::Forward { .. }));
    assert_eq!(received[0].from, 1);
    assert!(
        received[0].message == snapshot,
        "snapshot altered in transit"
    );
    assert_eq!(received[1].message, forward(1));
    let chunks_expected = (20 * 1024 * 1024) / codec::CHUNK_BYTES as u64;
    wait_for("snapshot sent as chunks", || {
        one.stats().frames_sent > chunks_expected
    });
    assert!(two.stats().bytes_received > 20 * 1024 * 1024);
    // The snapshot's progress, as the driver sees it to decide a send has not failed.
    wait_for("large-message progress counted", || {
        one.large_message_progress(2) >= 20 * 1024 * 1024
    });
    assert_eq!(one.large_message_progress(3), 0, "no such peer");
    one.shutdown();
    two.shutdown();
}

/// An identity trusting the real cluster CA but holding a certificate for `node_id`
/// signed by a foreign CA.
fn foreign_identity(authority: &CertificateAuthority, node_id: NodeId) -> TlsIdentity {
    let foreign = CertificateAuthority::generate_named("not the cluster CA").unwrap();
    let mut identity = foreign.issue_identity(node_id).unwrap();
    identity.ca_certificate = authority.certificate_der();
    identity
}

#[test]
fn peer_with_certificate_from_another_ca_is_refused_both_ways() {
    init_logs();
    let authority = CertificateAuthority::generate().unwrap();
    let (one, one_inbound) = start(&authority, 1, vec![]);
    // The rogue trusts the real CA (so its own check of node 1 passes) but presents a
    // certificate from another CA, claiming to be node 2.
    let (rogue, rogue_inbound) = QuicTransport::start(config(
        foreign_identity(&authority, 2),
        loopback(),
        vec![(1, address(&one))],
    ))
    .unwrap();
    for request_id in 0..20 {
        let _ = rogue.send(1, forward(request_id));
    }
    wait_for("node 1 refuses the rogue's handshake", || {
        one.stats().handshakes_refused >= 1
    });
    // Node 1 dialing the rogue refuses the rogue's server certificate.
    one.set_peer(2, address(&rogue));
    one.send(2, forward(7)).unwrap();
    wait_for("node 1 refuses the rogue as a server", || {
        one.stats().connect_failures >= 1
    });
    assert!(rogue_inbound.try_recv().is_err());
    assert_eq!(rogue.stats().frames_received, 0);
    let (three, _three_inbound) = start(&authority, 3, vec![(1, address(&one))]);
    assert_only_marker_delivered(&three, &one_inbound, 1, 1234);
    assert_eq!(one.stats().frames_malformed, 0);
    rogue.shutdown();
    one.shutdown();
    three.shutdown();
}

fn client_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn raw_client_endpoint(client_config: quinn::ClientConfig) -> quinn::Endpoint {
    let mut endpoint = quinn::Endpoint::client(loopback()).unwrap();
    endpoint.set_default_client_config(client_config);
    endpoint
}

#[test]
fn client_without_certificate_cannot_send_anything() {
    init_logs();
    let authority = CertificateAuthority::generate().unwrap();
    let (one, one_inbound) = start(&authority, 1, vec![]);
    let target = one.local_address();
    let runtime = client_runtime();
    runtime.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(authority.certificate_der()).unwrap();
        let mut tls = rustls::ClientConfig::builder_with_provider(certs::crypto_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![quic::ALPN.to_vec()];
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let endpoint = raw_client_endpoint(quinn::ClientConfig::new(Arc::new(crypto)));
        // With TLS 1.3 the client may believe the handshake finished before the server
        // checked (and refused) its missing certificate; whatever it writes must go nowhere.
        if let Ok(connection) = endpoint.connect(target, "node-1.callgrid").unwrap().await {
            if let Ok(mut stream) = connection.open_uni().await {
                let frame =
                    codec::encode_frame(&codec::encode_message_body(&forward(5)).unwrap()).unwrap();
                let _ = stream.write_all(&frame).await;
                let _ = stream.finish();
            }
            let _ = connection.closed().await;
        }
        endpoint.close(0_u32.into(), b"");
    });
    wait_for("node 1 refuses the anonymous handshake", || {
        one.stats().handshakes_refused >= 1
    });
    assert_eq!(one.stats().frames_received, 0);
    let (two, _two_inbound) = start(&authority, 2, vec![(1, address(&one))]);
    assert_only_marker_delivered(&two, &one_inbound, 1, 77);
    one.shutdown();
    two.shutdown();
}

/// Connect with a valid certificate for node 9, write `bytes` on a uni stream, and return
/// the close code node 1 answered with.
async fn write_raw(endpoint: &quinn::Endpoint, target: SocketAddr, bytes: Vec<u8>) -> u64 {
    let connection = endpoint
        .connect(target, "node-1.callgrid")
        .unwrap()
        .await
        .unwrap();
    let mut stream = connection.open_uni().await.unwrap();
    // The write may fail once the server closed the connection; the close code tells why.
    let _ = stream.write_all(&bytes).await;
    let _ = stream.finish();
    match connection.closed().await {
        quinn::ConnectionError::ApplicationClosed(close) => close.error_code.into_inner(),
        other => panic!("expected an application close, got {other}"),
    }
}

#[test]
fn malformed_and_oversized_frames_are_rejected_and_the_node_keeps_working() {
    init_logs();
    let authority = CertificateAuthority::generate().unwrap();
    let (one, one_inbound) = start(&authority, 1, vec![]);
    let target = one.local_address();
    let identity = authority.issue_identity(9).unwrap();
    let mut unknown_kind = 5_u32.to_be_bytes().to_vec();
    unknown_kind.extend_from_slice(&[99, 1, 2, 3, 4]);
    let mut bad_protobuf = 4_u32.to_be_bytes().to_vec();
    bad_protobuf.extend_from_slice(&[1, 0xff, 0xff, 0xff]);
    let mut oversized = ((codec::FRAME_BYTES_MAX + 1) as u32).to_be_bytes().to_vec();
    oversized.extend_from_slice(&[0; 1024]);
    let huge = u32::MAX.to_be_bytes().to_vec();
    let mut chunk_beyond_limit = Vec::new();
    let mut chunk_body = vec![4_u8];
    chunk_body.extend_from_slice(&1_u64.to_be_bytes());
    chunk_body.extend_from_slice(&u64::MAX.to_be_bytes());
    chunk_body.extend_from_slice(&0_u64.to_be_bytes());
    chunk_body.extend_from_slice(b"data");
    chunk_beyond_limit.extend_from_slice(&(chunk_body.len() as u32).to_be_bytes());
    chunk_beyond_limit.extend_from_slice(&chunk_body);
    let cases = vec![
        unknown_kind,
        bad_protobuf,
        oversized,
        huge,
        chunk_beyond_limit,
    ];
    let case_count = cases.len() as u64;
    let runtime = client_runtime();
    runtime.block_on(async {
        let endpoint = raw_client_endpoint(quic::quinn_client_config(&identity).unwrap());
        for bytes in cases {
            assert_eq!(
                write_raw(&endpoint, target, bytes).await,
                u64::from(quic::CLOSE_MALFORMED)
            );
        }
        endpoint.close(0_u32.into(), b"");
    });
    assert_eq!(one.stats().frames_malformed, case_count);
    assert!(one_inbound.try_recv().is_err());
    let (two, _two_inbound) = start(&authority, 2, vec![(1, address(&one))]);
    assert_only_marker_delivered(&two, &one_inbound, 1, 4321);
    one.shutdown();
    two.shutdown();
}

#[test]
fn peer_restarted_on_the_same_port_is_reconnected_to() {
    init_logs();
    let authority = CertificateAuthority::generate().unwrap();
    let (two, two_inbound) = start(&authority, 2, vec![]);
    let two_address = two.local_address();
    let (one, _one_inbound) = start(&authority, 1, vec![(2, two_address.to_string())]);
    one.send(2, forward(1)).unwrap();
    assert_eq!(receive(&two_inbound).message, forward(1));
    two.shutdown();
    drop(two);
    drop(two_inbound);
    let identity = authority.issue_identity(2).unwrap();
    let (two, two_inbound) = QuicTransport::start(config(identity, two_address, vec![])).unwrap();
    // Messages sent while the old connection is being torn down may be lost (Raft
    // retries); keep sending until one arrives through a new connection.
    let deadline = Instant::now() + WAIT_MAX;
    let mut request_id = 100;
    loop {
        assert!(
            Instant::now() < deadline,
            "never reconnected: {:?}",
            one.stats()
        );
        let _ = one.send(2, forward(request_id));
        if let Ok(inbound) = two_inbound.recv_timeout(Duration::from_millis(100)) {
            assert_eq!(inbound.from, 1);
            assert!(matches!(inbound.message, PeerMessage::Forward { .. }));
            break;
        }
        request_id += 1;
    }
    assert!(one.stats().reconnects >= 1, "{:?}", one.stats());
    one.shutdown();
    two.shutdown();
}

#[test]
fn dead_peer_fills_its_bounded_queue_and_send_returns_queue_full() {
    init_logs();
    let authority = CertificateAuthority::generate().unwrap();
    // A bound UDP socket that never answers: a peer that died without a word.
    let black_hole = UdpSocket::bind(loopback()).unwrap();
    let identity = authority.issue_identity(1).unwrap();
    let mut settings = config(
        identity,
        loopback(),
        vec![(2, black_hole.local_addr().unwrap().to_string())],
    );
    settings.peer_queue_messages_max = 32;
    let (one, _inbound) = QuicTransport::start(settings).unwrap();
    let message = PeerMessage::Forward {
        request_id: 1,
        term: 1,
        payload: vec![0; 1024],
    };
    let mut accepted = 0;
    for _ in 0..1000 {
        match one.send(2, message.clone()) {
            Ok(()) => accepted += 1,
            Err(error) => assert_eq!(error, TransportError::QueueFull(2)),
        }
    }
    assert_eq!(accepted, 32);
    let stats = one.stats();
    assert_eq!(stats.messages_dropped_queue_full, 1000 - 32);
    assert_eq!(stats.queued_messages, 32);
    assert!(stats.queued_bytes <= 32 * 1100, "{stats:?}");
    // remove_peer is synchronous for the caller (no waiting here): the queue stops counting
    // and sends are refused as soon as it returns, while the peer task ends in the
    // background. (It once was asynchronous, and this saw 32 queued messages.)
    one.remove_peer(2);
    let stats = one.stats();
    assert_eq!(stats.queued_messages, 0, "{stats:?}");
    assert_eq!(stats.queued_bytes, 0, "{stats:?}");
    assert_eq!(
        one.send(2, message.clone()),
        Err(TransportError::UnknownPeer(2))
    );
    // Learning the peer again starts from an empty queue.
    one.set_peer(2, black_hole.local_addr().unwrap().to_string());
    assert_eq!(one.stats().queued_messages, 0);
    one.send(2, message.clone()).unwrap();
    assert_eq!(one.stats().queued_messages, 1);
    one.shutdown();

    // The byte bound holds too, whatever the message count bound.
    let identity = authority.issue_identity(1).unwrap();
    let mut settings = config(
        identity,
        loopback(),
        vec![(2, black_hole.local_addr().unwrap().to_string())],
    );
    settings.peer_queue_bytes_max = 10 * 1024;
    let (one, _inbound) = QuicTransport::start(settings).unwrap();
    let accepted = (0..1000)
        .filter(|_| one.send(2, message.clone()).is_ok())
        .count();
    assert!((1..=10).contains(&accepted), "accepted {accepted}");
    assert!(one.stats().queued_bytes <= 10 * 1024);
    one.shutdown();
}

#[test]
fn inconsistent_configuration_is_refused() {
    let authority = CertificateAuthority::generate().unwrap();
    let identity = authority.issue_identity(1).unwrap();
    let mut wrong_id = config(identity.clone(), loopback(), vec![]);
    wrong_id.node_id = 2;
    assert!(matches!(
        QuicTransport::start(wrong_id),
        Err(quic::QuicError::Config(_))
    ));
    let mut keep_alive_too_slow = config(identity, loopback(), vec![]);
    keep_alive_too_slow.keep_alive_interval = keep_alive_too_slow.idle_timeout;
    assert!(matches!(
        QuicTransport::start(keep_alive_too_slow),
        Err(quic::QuicError::Config(_))
    ));
}

#[test]
fn a_revoked_certificate_is_refused_and_cut_off_when_the_list_changes() {
    init_logs();
    let authority = CertificateAuthority::generate().unwrap();
    let directory = tempfile::tempdir().unwrap();
    let list_path = directory.path().join(certs::REVOKED_FILE);
    let revoked_identity = authority.issue_identity(2).unwrap();
    let serial = certs::certificate_serial(&revoked_identity.certificate_chain[0]).unwrap();

    let mut one_config = config(authority.issue_identity(1).unwrap(), loopback(), vec![]);
    one_config.revoked = Some(Arc::new(certs::RevocationList::new(&list_path)));
    let (one, one_inbound) = QuicTransport::start(one_config).unwrap();
    let (two, _two_inbound) = QuicTransport::start(config(
        revoked_identity,
        loopback(),
        vec![(1, address(&one))],
    ))
    .unwrap();

    // Not yet listed: accepted.
    assert_only_marker_delivered(&two, &one_inbound, 1, 1);

    // Listed while connected: the connection is closed and nothing more arrives.
    std::fs::write(&list_path, format!("# node 2, decommissioned\n{serial}\n")).unwrap();
    wait_for("node 1 cuts the revoked peer off", || {
        one.stats().handshakes_refused >= 1
    });
    for request_id in 10..20 {
        let _ = two.send(1, forward(request_id));
    }
    wait_for("node 2 fails to reconnect", || {
        one.stats().handshakes_refused >= 2
    });
    assert!(one_inbound.try_recv().is_err(), "a revoked peer delivered");

    // Another node of the same CA is unaffected.
    let (three, _three_inbound) = start(&authority, 3, vec![(1, address(&one))]);
    assert_only_marker_delivered(&three, &one_inbound, 1, 3);
    one.shutdown();
    two.shutdown();
    three.shutdown();
}

/// Open a connection as the holder of `endpoint`'s certificate and prove node 1 accepted it:
/// a forward with `marker` written on it arrives.
async fn open_accepted(
    endpoint: &quinn::Endpoint,
    target: SocketAddr,
    inbound: &Receiver<Inbound>,
    marker: u64,
) -> quinn::Connection {
    let connection = endpoint
        .connect(target, "node-1.callgrid")
        .unwrap()
        .await
        .unwrap();
    let mut stream = connection.open_uni().await.unwrap();
    let frame =
        codec::encode_frame(&codec::encode_message_body(&forward(marker)).unwrap()).unwrap();
    stream.write_all(&frame).await.unwrap();
    let inbound = inbound.clone();
    let received = tokio::task::spawn_blocking(move || receive(&inbound))
        .await
        .unwrap();
    assert_eq!((received.from, received.message), (9, forward(marker)));
    connection
}

#[test]
fn one_peer_cannot_hold_more_than_its_share_of_connections() {
    init_logs();
    let authority = CertificateAuthority::generate().unwrap();
    let (one, one_inbound) = start(&authority, 1, vec![]);
    let target = one.local_address();
    let identity = authority.issue_identity(9).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let endpoint = raw_client_endpoint(quic::quinn_client_config(&identity).unwrap());
        let mut held = Vec::new();
        for marker in 0..quic::CONNECTIONS_PER_PEER_MAX as u64 {
            held.push(open_accepted(&endpoint, target, &one_inbound, marker).await);
        }
        // One more from the same peer is closed at once.
        let extra = endpoint
            .connect(target, "node-1.callgrid")
            .unwrap()
            .await
            .unwrap();
        let closed = tokio::time::timeout(WAIT_MAX, extra.closed()).await;
        match closed.expect("the extra connection was never closed") {
            quinn::ConnectionError::ApplicationClosed(close) => {
                assert_eq!(close.error_code, quic::CLOSE_TOO_MANY_CONNECTIONS.into());
            }
            other => panic!("expected a close for too many connections, got {other}"),
        }
        // A freed slot can be used again.
        let freed = held.pop().unwrap();
        freed.close(0_u32.into(), b"done");
        let deadline = Instant::now() + WAIT_MAX;
        loop {
            let connection = endpoint
                .connect(target, "node-1.callgrid")
                .unwrap()
                .await
                .unwrap();
            let mut stream = connection.open_uni().await.unwrap();
            let frame =
                codec::encode_frame(&codec::encode_message_body(&forward(100)).unwrap()).unwrap();
            let _ = stream.write_all(&frame).await;
            let inbound = one_inbound.clone();
            let received = tokio::task::spawn_blocking(move || {
                inbound.recv_timeout(Duration::from_millis(500)).ok()
            })
            .await
            .unwrap();
            if let Some(received) = received {
                assert_eq!((received.from, received.message), (9, forward(100)));
                break;
            }
            assert!(Instant::now() < deadline, "the freed slot was never reused");
        }
        endpoint.close(0_u32.into(), b"");
    });
    one.shutdown();
}
