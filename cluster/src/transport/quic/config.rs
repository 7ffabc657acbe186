//! Settings of the QUIC transport and the quinn configs built from them: QUIC transport
//! parameters (timers, stream and window limits) and the rustls client and server configs
//! with the cluster's ALPN.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use quinn::VarInt;

use super::{
    ALPN, CONNECT_TIMEOUT, HANDSHAKE_TIMEOUT, IDLE_TIMEOUT, INBOUND_MESSAGES_MAX,
    KEEP_ALIVE_INTERVAL, PEER_QUEUE_BYTES_MAX, PEER_QUEUE_MESSAGES_MAX, QuicError,
    RECONNECT_BACKOFF_INITIAL, RECONNECT_BACKOFF_MAX, UNI_STREAMS_MAX, WORKER_THREADS,
};
use crate::certs::{self, RevocationList, TlsIdentity};
use crate::transport::NodeId;

/// Settings of a [`QuicTransport`](super::QuicTransport). [`QuicConfig::new`] fills the defaults.
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// This node's id; must be the id in `tls`'s certificate.
    pub node_id: NodeId,
    /// UDP address to listen on (`127.0.0.1:0` picks a free port; see
    /// [`QuicTransport::local_address`](super::QuicTransport::local_address)).
    pub listen: SocketAddr,
    /// Known peers and their `host:port`.
    pub peers: Vec<(NodeId, String)>,
    /// This node's certificate, key and the cluster CA.
    pub tls: TlsIdentity,
    /// Bound of each peer's outbound queue, in messages.
    pub peer_queue_messages_max: usize,
    /// Bound of each peer's outbound queue, in bytes.
    pub peer_queue_bytes_max: usize,
    /// Bound of the inbound queue, in messages.
    pub inbound_messages_max: usize,
    /// QUIC keep-alive interval (below `idle_timeout`).
    pub keep_alive_interval: Duration,
    /// QUIC idle timeout.
    pub idle_timeout: Duration,
    /// First reconnect delay; doubles on each failure.
    pub reconnect_backoff_initial: Duration,
    /// Cap of the reconnect delay.
    pub reconnect_backoff_max: Duration,
    /// Bound on one connection attempt.
    pub connect_timeout: Duration,
    /// Worker threads of the transport's own tokio runtime.
    pub worker_threads: usize,
    /// Bound on an incoming handshake.
    pub handshake_timeout: Duration,
    /// Certificates no longer accepted (checked at every handshake and new stream, in both
    /// directions); `None`: none revoked.
    pub revoked: Option<Arc<RevocationList>>,
    /// Where received snapshots are spooled while they stream in (a directory on the same
    /// disk as the store: the store copies the finished file into its own). Files left by a
    /// crash are removed at start. `None`: in memory (tests, small states).
    pub snapshot_spool: Option<PathBuf>,
}

impl QuicConfig {
    /// A config with the default bounds and timers.
    pub fn new(
        node_id: NodeId,
        listen: SocketAddr,
        peers: Vec<(NodeId, String)>,
        tls: TlsIdentity,
    ) -> Self {
        Self {
            node_id,
            listen,
            peers,
            tls,
            peer_queue_messages_max: PEER_QUEUE_MESSAGES_MAX,
            peer_queue_bytes_max: PEER_QUEUE_BYTES_MAX,
            inbound_messages_max: INBOUND_MESSAGES_MAX,
            keep_alive_interval: KEEP_ALIVE_INTERVAL,
            idle_timeout: IDLE_TIMEOUT,
            reconnect_backoff_initial: RECONNECT_BACKOFF_INITIAL,
            reconnect_backoff_max: RECONNECT_BACKOFF_MAX,
            connect_timeout: CONNECT_TIMEOUT,
            worker_threads: WORKER_THREADS,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            revoked: None,
            snapshot_spool: None,
        }
    }
}

pub(super) fn transport_config(config: &QuicConfig) -> Result<quinn::TransportConfig, QuicError> {
    if config.keep_alive_interval >= config.idle_timeout {
        return Err(QuicError::Config(format!(
            "keep_alive_interval {:?} must be below idle_timeout {:?}",
            config.keep_alive_interval, config.idle_timeout
        )));
    }
    let idle_timeout = quinn::IdleTimeout::try_from(config.idle_timeout)
        .map_err(|error| QuicError::Config(format!("idle_timeout: {error}")))?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_idle_timeout(Some(idle_timeout))
        .keep_alive_interval(Some(config.keep_alive_interval))
        .max_concurrent_bidi_streams(VarInt::from_u32(0))
        .max_concurrent_uni_streams(VarInt::from_u32(UNI_STREAMS_MAX))
        // Room for a whole snapshot chunk and more in flight, for throughput on fast links.
        .stream_receive_window(VarInt::from_u32(8 * 1024 * 1024))
        .receive_window(VarInt::from_u32(32 * 1024 * 1024))
        .send_window(32 * 1024 * 1024);
    Ok(transport)
}

/// A quinn client config presenting `identity` and trusting only its cluster CA, with
/// this transport's ALPN. Public so tests and tools can speak to a node directly.
pub fn quinn_client_config(identity: &TlsIdentity) -> Result<quinn::ClientConfig, QuicError> {
    let mut tls = certs::client_config(identity)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
        .map_err(|error| QuicError::QuicTls(error.to_string()))?;
    Ok(quinn::ClientConfig::new(Arc::new(crypto)))
}

pub(super) fn quinn_server_config(config: &QuicConfig) -> Result<quinn::ServerConfig, QuicError> {
    let mut tls = certs::server_config(&config.tls)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    // 0-RTT data could be replayed and would arrive before the client is authenticated.
    tls.max_early_data_size = 0;
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)
        .map_err(|error| QuicError::QuicTls(error.to_string()))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    server.transport_config(Arc::new(transport_config(config)?));
    Ok(server)
}
