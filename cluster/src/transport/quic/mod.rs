//! QUIC transport (quinn) with mutual TLS: how Raft peers reach each other in production.
//!
//! ```text
//!  driver thread                         tokio runtime owned by the transport
//!  ─────────────                         ─────────────────────────────────────
//!  send(to, msg) ─ encode ─► per-peer bounded queue ─► peer task ─► connection to `to`
//!                 (codec)    (messages + bytes bound)   ├ main uni stream: small frames,
//!                                                       │   batched, in order
//!                                                       └ large-message task: one uni stream
//!                                                           per snapshot (header, then 1 MiB
//!                                                           read from its file at a time) or
//!                                                           chunked message
//!  Receiver<Inbound> ◄─ bounded crossbeam ◄─ stream reader ◄─ accept: mTLS handshake,
//!                                             (FrameDecoder,      node id from the verified
//!                                              ChunkAssembler,     certificate
//!                                              SnapshotReceiver
//!                                              → spool file)
//! ```
//!
//! Design choices, and why:
//! - **Connections are one-way.** Each node dials every peer it sends to and only reads
//!   from connections it accepted. There is no tie-break between two connections of one
//!   pair, and the sender's identity on an accepted connection is always the certificate
//!   the server verified.
//! - **One long-lived uni stream per connection for ordinary messages.** Raft messages of
//!   one peer arrive in order, no per-message stream setup, and small frames are batched
//!   into one write. Snapshots (and messages above [`codec::CHUNK_BYTES`]) each go on their
//!   own uni stream with a lower priority, so a large snapshot never holds heartbeats back
//!   behind it (that would trigger elections on a slow link). A snapshot streams from its
//!   file into the receiver's spool one chunk at a time: memory stays bounded by chunks in
//!   flight whatever the state's size.
//! - **Nothing is decoded before mutual TLS authenticated the peer**: the server requires a
//!   client certificate chaining to the cluster CA (rustls `WebPkiClientVerifier`), the
//!   client pins the server name `node-<id>.callgrid`, and streams are accepted only on an
//!   established connection, whose verified certificate gives `Inbound.from`
//!   (RUSTSEC-2024-0437: protobuf 2 must not see unauthenticated bytes).
//! - **Everything is bounded**: per-peer queue in messages and bytes (`send` returns
//!   `QueueFull`), frame size ([`codec::FRAME_BYTES_MAX`]), reassembled size
//!   ([`codec::ASSEMBLED_BYTES_MAX`]), streams per connection, the inbound queue (when it is
//!   full the readers wait, so QUIC flow control pushes back on the senders), reconnect
//!   backoff (capped exponential with jitter).
//! - **A malformed frame** is logged and counted, and the connection carrying it is closed;
//!   the sender reconnects, other peers are not affected.
//!
//! Threading: [`QuicTransport::start`] builds its own multi-thread tokio runtime, so it can
//! be called from a plain thread (the Raft driver's) or from inside another runtime; `send`
//! never blocks and does no IO on the caller's thread. [`QuicTransport::shutdown`] (also run
//! when the last clone is dropped) closes connections and stops the runtime.
//!
//! Layout, by concern: this module holds the bounds and timers, the public types and the
//! [`Transport`] implementation (encoding and queueing on the caller's thread), and what the
//! tasks share; `config` the settings and the quinn/rustls configs built from them;
//! `outbound` the per-peer sender task (connect, reconnect with backoff, the main stream and
//! the large-message streams); `inbound` the accept loop, peer authentication and the stream
//! readers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;
use quinn::{Endpoint, VarInt};
use rustls::pki_types::CertificateDer;
use tokio::sync::{mpsc, watch};

use crate::certs::{CertsError, RevocationList};
use crate::codec;
use crate::snapshot_body::SnapshotBody;
use crate::transport::{Inbound, NodeId, PeerMessage, Transport, TransportError, TransportStats};

mod config;
mod inbound;
mod outbound;

pub use config::{QuicConfig, quinn_client_config};

use config::{quinn_server_config, transport_config};
use inbound::accept_loop;
use outbound::run_peer;

/// ALPN protocol of cluster connections; a new wire format gets a new ALPN.
pub const ALPN: &[u8] = b"callgrid-raft/2";
/// Default bound of each peer's outbound queue, in messages.
pub const PEER_QUEUE_MESSAGES_MAX: usize = 4096;
/// Default bound of each peer's outbound queue, in encoded bytes (a single message larger
/// than this is still accepted into an empty queue, so a big snapshot can always go).
pub const PEER_QUEUE_BYTES_MAX: usize = 64 * 1024 * 1024;
/// Default bound of the inbound queue shared by all peers, in messages.
pub const INBOUND_MESSAGES_MAX: usize = 4096;
/// Default keep-alive interval; must stay below the idle timeout.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Default idle timeout: a silent connection is declared dead after this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default first reconnect delay.
pub const RECONNECT_BACKOFF_INITIAL: Duration = Duration::from_millis(50);
/// Default cap of the reconnect delay.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Default bound on one connection attempt (resolution and handshake).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection that lived this long resets the reconnect backoff.
pub const CONNECTION_HEALTHY_AFTER: Duration = Duration::from_secs(5);
/// Default number of tokio worker threads of the transport's runtime.
pub const WORKER_THREADS: usize = 2;
/// Small frames gathered into one write on the main stream, at most this many bytes.
pub const WRITE_BATCH_BYTES_MAX: usize = 256 * 1024;
/// Chunked messages waiting for the large-message stream of one connection.
pub const LARGE_MESSAGES_IN_FLIGHT_MAX: usize = 2;
/// Snapshots received at once (from all peers); a stream announcing one more is stopped and
/// the leader sends it again later.
pub const INBOUND_SNAPSHOTS_MAX: usize = 2;
/// The ending of spool file names.
const SPOOL_SUFFIX: &str = ".snapshot-spool";
/// Concurrent uni streams a peer may open on one connection (main + large messages).
pub const UNI_STREAMS_MAX: u32 = 8;
/// Incoming connections handled at once (handshakes included).
pub const INCOMING_CONNECTIONS_MAX: usize = 256;
/// Bytes read from a stream at a time.
pub const READ_CHUNK_BYTES: usize = 64 * 1024;
/// How long shutdown waits for connections to close cleanly.
pub const SHUTDOWN_WAIT: Duration = Duration::from_millis(500);
/// How long a stream reader waits between attempts when the inbound queue is full.
const INBOUND_FULL_RETRY: Duration = Duration::from_millis(1);

/// QUIC application close code: the peer sent a malformed frame.
pub const CLOSE_MALFORMED: u32 = 1;
/// QUIC application close code: the peer's certificate names no node.
pub const CLOSE_NO_IDENTITY: u32 = 2;
/// QUIC application close code: the transport shuts down or forgot the peer.
pub const CLOSE_SHUTDOWN: u32 = 3;
/// QUIC application close code: the peer's certificate is on the revocation list.
pub const CLOSE_REVOKED: u32 = 4;
/// QUIC application close code: the peer already holds the most connections allowed.
pub const CLOSE_TOO_MANY_CONNECTIONS: u32 = 5;
/// Incoming connections one authenticated peer may hold at once (one is normal; a second
/// covers a reconnect racing the old connection's close). The rest of the
/// [`INCOMING_CONNECTIONS_MAX`] stay for the other peers.
pub const CONNECTIONS_PER_PEER_MAX: usize = 2;
/// How often an established peer's certificate is checked against the revocation list.
const REVOCATION_RECHECK: Duration = Duration::from_secs(1);
/// Default bound on an incoming handshake: a slow or silent client cannot hold one of the
/// [`INCOMING_CONNECTIONS_MAX`] permits longer than this.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the QUIC transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The configuration is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The TLS material could not be turned into configs.
    #[error(transparent)]
    Certs(#[from] CertsError),
    /// rustls configs do not suit QUIC (no TLS 1.3 suite).
    #[error("TLS config unusable for QUIC: {0}")]
    QuicTls(String),
    /// The tokio runtime could not be built.
    #[error("runtime: {0}")]
    Runtime(std::io::Error),
    /// The UDP socket could not be bound.
    #[error("bind {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The QUIC transport. Cheap to clone; the last clone dropped shuts it down.
#[derive(Clone)]
pub struct QuicTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("QuicTransport")
            .field("node_id", &self.inner.node_id)
            .field("local_address", &self.inner.local_address)
            .finish_non_exhaustive()
    }
}

struct Inner {
    node_id: NodeId,
    local_address: SocketAddr,
    runtime: Mutex<Option<tokio::runtime::Runtime>>,
    handle: tokio::runtime::Handle,
    endpoint: Endpoint,
    shared: Arc<Shared>,
    peers: Mutex<HashMap<NodeId, PeerHandle>>,
    next_message_id: AtomicU64,
    peer_queue_messages_max: usize,
    peer_queue_bytes_max: usize,
}

/// What the async tasks share; they never hold `Inner`, so dropping the last
/// `QuicTransport` really shuts down.
struct Shared {
    node_id: NodeId,
    inbound: Sender<Inbound>,
    counters: Counters,
    client_config: quinn::ClientConfig,
    reconnect_backoff_initial: Duration,
    reconnect_backoff_max: Duration,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    revoked: Option<Arc<RevocationList>>,
    /// Accepted connections per authenticated peer.
    connections: Mutex<HashMap<NodeId, usize>>,
    /// Where received snapshots stream to (`None`: memory).
    snapshot_spool: Option<PathBuf>,
    /// Snapshots being received right now (bounded by [`INBOUND_SNAPSHOTS_MAX`]).
    inbound_snapshots: AtomicUsize,
    /// Names spool files apart.
    next_spool_id: AtomicU64,
}

impl Shared {
    fn is_revoked(&self, certificate: &CertificateDer<'_>) -> bool {
        self.revoked
            .as_ref()
            .is_some_and(|list| list.is_revoked(certificate))
    }
}

#[derive(Default)]
struct Counters {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    messages_dropped_queue_full: AtomicU64,
    messages_dropped_connection_lost: AtomicU64,
    frames_malformed: AtomicU64,
    reconnects: AtomicU64,
    connect_failures: AtomicU64,
    handshakes_refused: AtomicU64,
}

fn increment(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

struct PeerHandle {
    queue: mpsc::Sender<Outbound>,
    queued_bytes: Arc<AtomicUsize>,
    /// Bytes of large messages written to the peer's streams (flow control lets them
    /// through only as the peer reads): a snapshot's progress.
    large_bytes_sent: Arc<AtomicU64>,
    address: watch::Sender<String>,
    task: tokio::task::JoinHandle<()>,
}

/// An encoded message waiting for its peer's connection.
enum Outbound {
    /// One length-prefixed frame for the main stream.
    Frame(Vec<u8>),
    /// A message for a stream of its own.
    Large(Large),
}

/// What travels on a stream of its own, below the main stream's priority.
enum Large {
    /// The chunk frames of one large message.
    Chunks(Vec<Vec<u8>>),
    /// A snapshot: its header frame, then its body read one chunk at a time.
    Snapshot {
        message_id: u64,
        header: Vec<u8>,
        body: SnapshotBody,
    },
}

impl Outbound {
    /// Bytes it holds in memory (a snapshot's body is read as it is sent).
    fn bytes(&self) -> usize {
        match self {
            Outbound::Frame(frame) => frame.len(),
            Outbound::Large(Large::Chunks(frames)) => frames.iter().map(Vec::len).sum(),
            Outbound::Large(Large::Snapshot { header, .. }) => header.len(),
        }
    }
}

/// Create the spool directory and remove what a crash left in it.
fn prepare_spool(spool: &Path) -> Result<(), QuicError> {
    let failed = |error: std::io::Error| {
        QuicError::Config(format!("snapshot spool {}: {error}", spool.display()))
    };
    std::fs::create_dir_all(spool).map_err(failed)?;
    for entry in std::fs::read_dir(spool).map_err(failed)?.flatten() {
        if entry.file_name().to_string_lossy().ends_with(SPOOL_SUFFIX) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

impl QuicTransport {
    /// Bind `config.listen`, start accepting authenticated peers, and start a sender task
    /// per known peer. Runs on a tokio runtime owned by the transport, so any thread may
    /// call it. Returns the transport and the receiver of everything peers send.
    pub fn start(config: QuicConfig) -> Result<(QuicTransport, Receiver<Inbound>), QuicError> {
        if config.node_id == 0 {
            return Err(QuicError::Config("node id 0 is reserved".into()));
        }
        if config.tls.node_id != config.node_id {
            return Err(QuicError::Config(format!(
                "certificate names node {}, config says node {}",
                config.tls.node_id, config.node_id
            )));
        }
        if config.peer_queue_messages_max == 0 || config.inbound_messages_max == 0 {
            return Err(QuicError::Config("queue bounds must be at least 1".into()));
        }
        if let Some(spool) = &config.snapshot_spool {
            prepare_spool(spool)?;
        }
        let server_config = quinn_server_config(&config)?;
        let mut client_config = quinn_client_config(&config.tls)?;
        client_config.transport_config(Arc::new(transport_config(&config)?));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.worker_threads.max(1))
            .thread_name(format!("quic-node-{}", config.node_id))
            .enable_all()
            .build()
            .map_err(QuicError::Runtime)?;
        let handle = runtime.handle().clone();
        let endpoint = {
            let _context = runtime.enter();
            Endpoint::server(server_config, config.listen).map_err(|source| QuicError::Bind {
                address: config.listen,
                source,
            })?
        };
        let local_address = endpoint.local_addr().map_err(|source| QuicError::Bind {
            address: config.listen,
            source,
        })?;
        let (inbound, receiver) = crossbeam_channel::bounded(config.inbound_messages_max);
        let shared = Arc::new(Shared {
            node_id: config.node_id,
            inbound,
            counters: Counters::default(),
            client_config,
            reconnect_backoff_initial: config.reconnect_backoff_initial,
            reconnect_backoff_max: config
                .reconnect_backoff_max
                .max(config.reconnect_backoff_initial),
            connect_timeout: config.connect_timeout,
            handshake_timeout: config.handshake_timeout,
            revoked: config.revoked.clone(),
            connections: Mutex::new(HashMap::new()),
            snapshot_spool: config.snapshot_spool.clone(),
            inbound_snapshots: AtomicUsize::new(0),
            next_spool_id: AtomicU64::new(0),
        });
        handle.spawn(accept_loop(Arc::clone(&shared), endpoint.clone()));
        let transport = QuicTransport {
            inner: Arc::new(Inner {
                node_id: config.node_id,
                local_address,
                runtime: Mutex::new(Some(runtime)),
                handle,
                endpoint,
                shared,
                peers: Mutex::new(HashMap::new()),
                next_message_id: AtomicU64::new(1),
                peer_queue_messages_max: config.peer_queue_messages_max,
                peer_queue_bytes_max: config.peer_queue_bytes_max,
            }),
        };
        for (id, address) in config.peers {
            transport.set_peer(id, address);
        }
        tracing::info!(node = config.node_id, address = %local_address, "QUIC transport listening");
        Ok((transport, receiver))
    }

    /// The UDP address actually bound (the port chosen when listening on port 0).
    pub fn local_address(&self) -> SocketAddr {
        self.inner.local_address
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.inner.node_id
    }

    /// Close every connection and stop the runtime. Idempotent. From a plain thread it
    /// waits up to [`SHUTDOWN_WAIT`] for connections to close cleanly, so that the port
    /// is free when it returns; from inside an async context it cannot wait and stops the
    /// runtime in the background.
    pub fn shutdown(&self) {
        self.inner.shutdown();
    }
}

impl Inner {
    fn shutdown(&self) {
        let Some(runtime) = self.runtime.lock().take() else {
            return;
        };
        for (_, peer) in self.peers.lock().drain() {
            peer.task.abort();
        }
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutting down");
        if tokio::runtime::Handle::try_current().is_ok() {
            runtime.shutdown_background();
            return;
        }
        let endpoint = self.endpoint.clone();
        runtime.block_on(async move {
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, endpoint.wait_idle()).await;
        });
        runtime.shutdown_timeout(SHUTDOWN_WAIT);
        tracing::info!(node = self.node_id, "QUIC transport stopped");
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl Transport for QuicTransport {
    fn send(&self, to: NodeId, message: PeerMessage) -> Result<(), TransportError> {
        let inner = &self.inner;
        if inner.runtime.lock().is_none() {
            return Err(TransportError::Closed);
        }
        // Encoding happens here, on the caller's thread: it is CPU only, and it lets the
        // queue bound count real bytes and refuse an oversized message at once.
        let encoding = |error: codec::CodecError| TransportError::Encoding(error.to_string());
        let outbound = if let PeerMessage::Snapshot { message, body } = message {
            // Only the header is encoded now; the body streams from its file.
            let message_id = inner.next_message_id.fetch_add(1, Ordering::Relaxed);
            let header = codec::encode_snapshot_header_frame(message_id, &message, &body)
                .map_err(encoding)?;
            Outbound::Large(Large::Snapshot {
                message_id,
                header,
                body,
            })
        } else {
            let body = super::encode_for_wire(&message)?;
            if body.len() <= codec::CHUNK_BYTES {
                Outbound::Frame(codec::encode_frame(&body).map_err(encoding)?)
            } else {
                let message_id = inner.next_message_id.fetch_add(1, Ordering::Relaxed);
                Outbound::Large(Large::Chunks(
                    codec::encode_chunk_frames(message_id, &body).map_err(encoding)?,
                ))
            }
        };
        let size = outbound.bytes();
        let peers = inner.peers.lock();
        let peer = peers.get(&to).ok_or(TransportError::UnknownPeer(to))?;
        let bytes_max = inner.peer_queue_bytes_max;
        let reserved = peer
            .queued_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |queued| {
                (queued == 0 || queued + size <= bytes_max).then_some(queued + size)
            })
            .is_ok();
        let counters = &inner.shared.counters;
        if !reserved {
            increment(&counters.messages_dropped_queue_full);
            return Err(TransportError::QueueFull(to));
        }
        match peer.queue.try_send(outbound) {
            Ok(()) => Ok(()),
            Err(error) => {
                peer.queued_bytes.fetch_sub(size, Ordering::AcqRel);
                match error {
                    mpsc::error::TrySendError::Full(_) => {
                        increment(&counters.messages_dropped_queue_full);
                        Err(TransportError::QueueFull(to))
                    }
                    mpsc::error::TrySendError::Closed(_) => Err(TransportError::Closed),
                }
            }
        }
    }

    fn set_peer(&self, id: NodeId, address: String) {
        let inner = &self.inner;
        if id == inner.node_id {
            return;
        }
        let mut peers = inner.peers.lock();
        if let Some(peer) = peers.get(&id) {
            if *peer.address.borrow() != address {
                tracing::info!(node = inner.node_id, peer = id, %address, "peer address changed");
                peer.address.send_replace(address);
            }
            return;
        }
        if inner.runtime.lock().is_none() {
            return;
        }
        let (queue, receiver) = mpsc::channel(inner.peer_queue_messages_max);
        let (address_sender, address_receiver) = watch::channel(address);
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let large_bytes_sent = Arc::new(AtomicU64::new(0));
        let task = inner.handle.spawn(run_peer(
            Arc::clone(&inner.shared),
            inner.endpoint.clone(),
            id,
            address_receiver,
            receiver,
            Arc::clone(&queued_bytes),
            Arc::clone(&large_bytes_sent),
        ));
        peers.insert(
            id,
            PeerHandle {
                queue,
                queued_bytes,
                large_bytes_sent,
                address: address_sender,
                task,
            },
        );
    }

    fn remove_peer(&self, id: NodeId) {
        // Taking the peer out of the table under the lock is what makes removal synchronous:
        // `send` and `stats` look only at the table, so neither sees the peer once this
        // returns, whenever the aborted task actually ends.
        if let Some(peer) = self.inner.peers.lock().remove(&id) {
            // Aborting drops the connection, which closes it; queued messages are released.
            peer.task.abort();
        }
    }

    fn stats(&self) -> TransportStats {
        let counters = &self.inner.shared.counters;
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let peers = self.inner.peers.lock();
        TransportStats {
            frames_sent: load(&counters.frames_sent),
            frames_received: load(&counters.frames_received),
            bytes_sent: load(&counters.bytes_sent),
            bytes_received: load(&counters.bytes_received),
            messages_dropped_queue_full: load(&counters.messages_dropped_queue_full),
            messages_dropped_connection_lost: load(&counters.messages_dropped_connection_lost),
            frames_malformed: load(&counters.frames_malformed),
            reconnects: load(&counters.reconnects),
            connect_failures: load(&counters.connect_failures),
            handshakes_refused: load(&counters.handshakes_refused),
            // Summed over the peers now known, so a removed peer's queue stops counting.
            queued_messages: peers
                .values()
                .map(|peer| (self.inner.peer_queue_messages_max - peer.queue.capacity()) as u64)
                .sum(),
            queued_bytes: peers
                .values()
                .map(|peer| peer.queued_bytes.load(Ordering::Acquire) as u64)
                .sum(),
        }
    }

    fn large_message_progress(&self, to: NodeId) -> u64 {
        self.inner
            .peers
            .lock()
            .get(&to)
            .map_or(0, |peer| peer.large_bytes_sent.load(Ordering::Relaxed))
    }
}
