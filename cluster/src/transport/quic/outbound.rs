//! Outbound: one task per peer. It dials the peer (reconnecting with capped, jittered
//! backoff), batches small frames onto one long-lived uni stream, and hands each chunked
//! message to a task that sends it on a uni stream of its own at a lower priority.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, Endpoint, VarInt};
use tokio::sync::{mpsc, watch};

use super::inbound::authenticated_peer;
use super::{
    CLOSE_REVOKED, CLOSE_SHUTDOWN, CONNECTION_HEALTHY_AFTER, LARGE_MESSAGES_IN_FLIGHT_MAX, Large,
    Outbound, Shared, WRITE_BATCH_BYTES_MAX, increment,
};
use crate::codec;
use crate::snapshot_body::SnapshotBody;
use crate::transport::NodeId;

/// Take a message off a peer's queue, releasing its share of the bounds.
fn dequeued(queued_bytes: &AtomicUsize, outbound: &Outbound) {
    queued_bytes.fetch_sub(outbound.bytes(), Ordering::AcqRel);
}

fn backoff_with_jitter(backoff: Duration) -> Duration {
    // Up to +50%, so peers that lost the same node do not retry in lockstep.
    let jitter = rand::random::<f64>() * 0.5;
    backoff.mul_f64(1.0 + jitter)
}

async fn connect(
    shared: &Shared,
    endpoint: &Endpoint,
    peer_id: NodeId,
    address: &str,
) -> Result<Connection, String> {
    let attempt = async {
        let socket_address = tokio::net::lookup_host(address)
            .await
            .map_err(|error| format!("resolve {address}: {error}"))?
            .next()
            .ok_or_else(|| format!("resolve {address}: no address"))?;
        let server_name = codec::node_server_name(peer_id);
        let connecting = endpoint
            .connect_with(shared.client_config.clone(), socket_address, &server_name)
            .map_err(|error| format!("connect {socket_address}: {error}"))?;
        let connection = connecting
            .await
            .map_err(|error| format!("handshake with {socket_address}: {error}"))?;
        let (_, certificate) = authenticated_peer(&connection)?;
        if shared.is_revoked(&certificate) {
            connection.close(VarInt::from_u32(CLOSE_REVOKED), b"certificate revoked");
            return Err(format!("{socket_address} presented a revoked certificate"));
        }
        Ok(connection)
    };
    tokio::time::timeout(shared.connect_timeout, attempt)
        .await
        .map_err(|_| format!("connect {address}: timed out"))?
}

pub(super) async fn run_peer(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    peer_id: NodeId,
    mut address: watch::Receiver<String>,
    mut queue: mpsc::Receiver<Outbound>,
    queued_bytes: Arc<AtomicUsize>,
    large_bytes_sent: Arc<AtomicU64>,
) {
    let mut backoff = shared.reconnect_backoff_initial;
    let mut connected_before = false;
    loop {
        let target = address.borrow_and_update().clone();
        // Messages stay in the queue while there is no connection: the queue bound, not
        // this loop, decides what a dead peer costs.
        let connection = match connect(&shared, &endpoint, peer_id, &target).await {
            Ok(connection) => connection,
            Err(reason) => {
                increment(&shared.counters.connect_failures);
                tracing::debug!(node = shared.node_id, peer = peer_id, %reason, ?backoff, "connect failed");
                let delay = backoff_with_jitter(backoff);
                backoff = (backoff * 2).min(shared.reconnect_backoff_max);
                // A new address is tried at once.
                let _ = tokio::time::timeout(delay, address.changed()).await;
                continue;
            }
        };
        if connected_before {
            increment(&shared.counters.reconnects);
        }
        connected_before = true;
        let connected_at = tokio::time::Instant::now();
        tracing::info!(node = shared.node_id, peer = peer_id, address = %target, "connected");
        match serve_connection(
            &shared,
            &connection,
            &mut address,
            &mut queue,
            &queued_bytes,
            &large_bytes_sent,
        )
        .await
        {
            ConnectionEnd::QueueClosed => {
                connection.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"peer removed");
                return;
            }
            ConnectionEnd::AddressChanged => {
                connection.close(VarInt::from_u32(CLOSE_SHUTDOWN), b"address changed");
            }
            ConnectionEnd::Lost(reason) => {
                tracing::info!(node = shared.node_id, peer = peer_id, %reason, "connection lost");
            }
        }
        // With TLS 1.3 the client sees the handshake succeed before the server checks its
        // certificate; a peer refusing us (expired or foreign certificate) thus looks like
        // a connection that dies at once. Only a connection that lived resets the backoff,
        // so such a refusal is retried at the capped rate, not in a tight loop.
        if connected_at.elapsed() >= CONNECTION_HEALTHY_AFTER {
            backoff = shared.reconnect_backoff_initial;
        } else {
            tokio::time::sleep(backoff_with_jitter(backoff)).await;
            backoff = (backoff * 2).min(shared.reconnect_backoff_max);
        }
    }
}

enum ConnectionEnd {
    QueueClosed,
    AddressChanged,
    Lost(String),
}

async fn serve_connection(
    shared: &Arc<Shared>,
    connection: &Connection,
    address: &mut watch::Receiver<String>,
    queue: &mut mpsc::Receiver<Outbound>,
    queued_bytes: &AtomicUsize,
    large_bytes_sent: &Arc<AtomicU64>,
) -> ConnectionEnd {
    let mut main = match connection.open_uni().await {
        Ok(stream) => stream,
        Err(error) => return ConnectionEnd::Lost(error.to_string()),
    };
    let (large_sender, large_receiver) = mpsc::channel(LARGE_MESSAGES_IN_FLIGHT_MAX);
    let large_task = tokio::spawn(send_large_messages(
        Arc::clone(shared),
        connection.clone(),
        large_receiver,
        Arc::clone(large_bytes_sent),
    ));
    // Aborts the large-message task however this function returns.
    let _large_guard = AbortOnDrop(large_task);
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BATCH_BYTES_MAX);
    loop {
        let first = tokio::select! {
            next = queue.recv() => match next {
                Some(outbound) => outbound,
                None => return ConnectionEnd::QueueClosed,
            },
            changed = address.changed() => {
                return match changed {
                    Ok(()) => ConnectionEnd::AddressChanged,
                    Err(_) => ConnectionEnd::QueueClosed,
                };
            }
            error = connection.closed() => return ConnectionEnd::Lost(error.to_string()),
        };
        dequeued(queued_bytes, &first);
        batch.clear();
        let mut frames_in_batch = 0_u64;
        let mut large = Vec::new();
        let mut next = Some(first);
        while let Some(outbound) = next.take() {
            match outbound {
                Outbound::Frame(frame) => {
                    batch.extend_from_slice(&frame);
                    frames_in_batch += 1;
                }
                Outbound::Large(message) => large.push(message),
            }
            if batch.len() >= WRITE_BATCH_BYTES_MAX || large.len() >= LARGE_MESSAGES_IN_FLIGHT_MAX {
                break;
            }
            if let Ok(outbound) = queue.try_recv() {
                dequeued(queued_bytes, &outbound);
                next = Some(outbound);
            }
        }
        if !batch.is_empty() {
            if let Err(error) = main.write_all(&batch).await {
                shared
                    .counters
                    .messages_dropped_connection_lost
                    .fetch_add(frames_in_batch + large.len() as u64, Ordering::Relaxed);
                return ConnectionEnd::Lost(error.to_string());
            }
            let counters = &shared.counters;
            counters
                .frames_sent
                .fetch_add(frames_in_batch, Ordering::Relaxed);
            counters
                .bytes_sent
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        for frames in large {
            // Waits only when LARGE_MESSAGES_IN_FLIGHT_MAX snapshots are already pending.
            if large_sender.send(frames).await.is_err() {
                increment(&shared.counters.messages_dropped_connection_lost);
                return ConnectionEnd::Lost("large-message stream ended".into());
            }
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Send each large message on a uni stream of its own, below the main stream's
/// priority, so heartbeats and appends overtake a snapshot in transit. A snapshot's body is
/// read from its file one chunk at a time (on the blocking pool) as the stream takes it.
async fn send_large_messages(
    shared: Arc<Shared>,
    connection: Connection,
    mut messages: mpsc::Receiver<Large>,
    large_bytes_sent: Arc<AtomicU64>,
) {
    while let Some(message) = messages.recv().await {
        let mut stream = match connection.open_uni().await {
            Ok(stream) => stream,
            Err(error) => {
                increment(&shared.counters.messages_dropped_connection_lost);
                tracing::debug!(node = shared.node_id, %error, "large message: no stream");
                return;
            }
        };
        let _ = stream.set_priority(-1);
        let mut frames = LargeFrames::new(message);
        loop {
            let frame = match frames.next().await {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(error) => {
                    // The body's file could not be read: the snapshot is not sent (the
                    // driver declares it failed when no progress shows, and sends again).
                    tracing::warn!(node = shared.node_id, %error, "snapshot body unreadable");
                    let _ = stream.reset(VarInt::from_u32(0));
                    break;
                }
            };
            let length = frame.len() as u64;
            if let Err(error) = stream.write_chunk(Bytes::from(frame)).await {
                increment(&shared.counters.messages_dropped_connection_lost);
                tracing::debug!(node = shared.node_id, %error, "large message: write failed");
                return;
            }
            increment(&shared.counters.frames_sent);
            shared
                .counters
                .bytes_sent
                .fetch_add(length, Ordering::Relaxed);
            large_bytes_sent.fetch_add(length, Ordering::Relaxed);
        }
        let _ = stream.finish();
    }
}

/// The frames of one large message, produced one at a time.
enum LargeFrames {
    Chunks(std::vec::IntoIter<Vec<u8>>),
    Snapshot {
        message_id: u64,
        header: Option<Vec<u8>>,
        body: SnapshotBody,
        offset: u64,
    },
}

impl LargeFrames {
    fn new(message: Large) -> Self {
        match message {
            Large::Chunks(frames) => LargeFrames::Chunks(frames.into_iter()),
            Large::Snapshot {
                message_id,
                header,
                body,
            } => LargeFrames::Snapshot {
                message_id,
                header: Some(header),
                body,
                offset: 0,
            },
        }
    }

    async fn next(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        match self {
            LargeFrames::Chunks(frames) => Ok(frames.next()),
            LargeFrames::Snapshot {
                message_id,
                header,
                body,
                offset,
            } => {
                if let Some(header) = header.take() {
                    return Ok(Some(header));
                }
                if *offset >= body.len() {
                    return Ok(None);
                }
                let (reading, at) = (body.clone(), *offset);
                let data =
                    tokio::task::spawn_blocking(move || reading.read_at(at, codec::CHUNK_BYTES))
                        .await
                        .map_err(std::io::Error::other)??;
                if data.is_empty() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "snapshot body shorter than recorded",
                    ));
                }
                *offset += data.len() as u64;
                Ok(Some(codec::encode_snapshot_data_frame(
                    *message_id,
                    at,
                    &data,
                )))
            }
        }
    }
}
