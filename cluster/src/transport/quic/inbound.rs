//! Inbound: accept, authenticate, read. Every incoming connection must complete mutual TLS
//! and name a node in its certificate before any stream is read; each uni stream gets a
//! reader that splits frames, reassembles chunked messages and hands them to the driver.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::TrySendError;
use quinn::{Connection, Endpoint, VarInt};
use rustls::pki_types::CertificateDer;

use super::{
    CLOSE_MALFORMED, CLOSE_NO_IDENTITY, CLOSE_REVOKED, CLOSE_TOO_MANY_CONNECTIONS,
    CONNECTIONS_PER_PEER_MAX, INBOUND_FULL_RETRY, INBOUND_SNAPSHOTS_MAX, INCOMING_CONNECTIONS_MAX,
    READ_CHUNK_BYTES, REVOCATION_RECHECK, SPOOL_SUFFIX, Shared, increment,
};
use crate::certs;
use crate::codec::{
    self, ChunkAssembler, CodecError, Frame, FrameDecoder, SnapshotHeader, SnapshotReceiver,
};
use crate::snapshot_body::SnapshotWriter;
use crate::transport::{Inbound, NodeId, PeerMessage};

/// QUIC stream stop code: this node receives as many snapshots as it may at once.
const STOP_SNAPSHOTS_BUSY: u32 = 1;

/// One of the [`INBOUND_SNAPSHOTS_MAX`] snapshots received at once; given back when dropped.
struct SnapshotSlot(Arc<Shared>);

impl SnapshotSlot {
    fn take(shared: &Arc<Shared>) -> Option<Self> {
        shared
            .inbound_snapshots
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |count| {
                (count < INBOUND_SNAPSHOTS_MAX).then_some(count + 1)
            })
            .ok()
            .map(|_| Self(Arc::clone(shared)))
    }
}

impl Drop for SnapshotSlot {
    fn drop(&mut self) {
        self.0.inbound_snapshots.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A snapshot streaming in.
struct InboundSnapshot {
    _slot: SnapshotSlot,
    /// Taken when the snapshot is complete.
    receiver: Option<SnapshotReceiver>,
}

impl InboundSnapshot {
    /// Start receiving what `header` announces: into a spool file when the transport has a
    /// spool, else into memory. `Ok(None)`: as many snapshots as allowed are already coming.
    fn start(
        shared: &Arc<Shared>,
        peer_id: NodeId,
        header: SnapshotHeader,
    ) -> Result<Option<Self>, CodecError> {
        let Some(slot) = SnapshotSlot::take(shared) else {
            return Ok(None);
        };
        let writer = match &shared.snapshot_spool {
            Some(spool) => {
                let id = shared.next_spool_id.fetch_add(1, Ordering::Relaxed);
                let name = format!("from-{peer_id}-{}-{id}{SPOOL_SUFFIX}", header.message_id);
                SnapshotWriter::spool(&spool.join(name))
                    .map_err(|error| CodecError::Io(error.to_string()))?
            }
            None => SnapshotWriter::memory(),
        };
        Ok(Some(Self {
            _slot: slot,
            receiver: Some(SnapshotReceiver::new(header, writer)),
        }))
    }
}

/// What a frame on a stream led to.
enum Step {
    Nothing,
    Deliver(PeerMessage),
    /// Stop reading the stream without closing the connection (too many snapshots at once).
    StopStream,
}

/// One accepted connection counted against its peer's cap; uncounted when dropped.
struct ConnectionSlot {
    shared: Arc<Shared>,
    peer_id: NodeId,
}

impl ConnectionSlot {
    fn take(shared: &Arc<Shared>, peer_id: NodeId) -> Option<Self> {
        let mut connections = shared.connections.lock();
        let count = connections.entry(peer_id).or_insert(0);
        if *count >= CONNECTIONS_PER_PEER_MAX {
            return None;
        }
        *count += 1;
        Some(Self {
            shared: Arc::clone(shared),
            peer_id,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut connections = self.shared.connections.lock();
        if let Some(count) = connections.get_mut(&self.peer_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                connections.remove(&self.peer_id);
            }
        }
    }
}

pub(super) async fn accept_loop(shared: Arc<Shared>, endpoint: Endpoint) {
    let limit = Arc::new(tokio::sync::Semaphore::new(INCOMING_CONNECTIONS_MAX));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            tracing::warn!(node = shared.node_id, remote = %incoming.remote_address(), "too many connections; refused");
            incoming.refuse();
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            handle_incoming(shared, incoming).await;
            drop(permit);
        });
    }
}

/// The node id and leaf certificate of an established connection's verified peer.
pub(super) fn authenticated_peer(
    connection: &Connection,
) -> Result<(NodeId, CertificateDer<'static>), String> {
    let identity = connection
        .peer_identity()
        .ok_or("no peer certificate")?
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| "peer identity is not a certificate chain")?;
    let leaf = identity.first().ok_or("empty certificate chain")?;
    let node_id = certs::node_id_from_certificate(leaf).map_err(|error| error.to_string())?;
    Ok((node_id, leaf.clone()))
}

async fn handle_incoming(shared: Arc<Shared>, incoming: quinn::Incoming) {
    let remote = incoming.remote_address();
    // The handshake completes only if the client presented a certificate chaining to the
    // cluster CA; before that, no stream is readable.
    let connection = match tokio::time::timeout(shared.handshake_timeout, incoming).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            increment(&shared.counters.handshakes_refused);
            tracing::warn!(node = shared.node_id, %remote, %error, "handshake refused");
            return;
        }
        Err(_) => {
            increment(&shared.counters.handshakes_refused);
            tracing::warn!(node = shared.node_id, %remote, "handshake timed out");
            return;
        }
    };
    let (peer_id, certificate) = match authenticated_peer(&connection) {
        Ok(peer) => peer,
        Err(reason) => {
            increment(&shared.counters.handshakes_refused);
            tracing::warn!(node = shared.node_id, %remote, %reason, "peer has no node identity");
            connection.close(VarInt::from_u32(CLOSE_NO_IDENTITY), b"no node identity");
            return;
        }
    };
    let refuse_if_revoked = || {
        let revoked = shared.is_revoked(&certificate);
        if revoked {
            increment(&shared.counters.handshakes_refused);
            tracing::warn!(node = shared.node_id, peer = peer_id, %remote, "certificate revoked; connection closed");
            connection.close(VarInt::from_u32(CLOSE_REVOKED), b"certificate revoked");
        }
        revoked
    };
    if refuse_if_revoked() {
        return;
    }
    let Some(_slot) = ConnectionSlot::take(&shared, peer_id) else {
        increment(&shared.counters.handshakes_refused);
        tracing::warn!(node = shared.node_id, peer = peer_id, %remote, "too many connections from this peer; refused");
        connection.close(
            VarInt::from_u32(CLOSE_TOO_MANY_CONNECTIONS),
            b"too many connections",
        );
        return;
    };
    tracing::info!(node = shared.node_id, peer = peer_id, %remote, "peer connected");
    // Checked again every second: a list reloaded while connected takes effect.
    let mut recheck = tokio::time::interval(REVOCATION_RECHECK);
    recheck.tick().await;
    loop {
        let stream = tokio::select! {
            biased;
            _ = recheck.tick() => {
                if refuse_if_revoked() {
                    return;
                }
                continue;
            }
            stream = connection.accept_uni() => stream,
        };
        match stream {
            Ok(stream) => {
                tokio::spawn(read_stream(
                    Arc::clone(&shared),
                    connection.clone(),
                    peer_id,
                    stream,
                ));
            }
            Err(error) => {
                tracing::debug!(node = shared.node_id, peer = peer_id, %error, "peer connection ended");
                return;
            }
        }
    }
}

enum Delivery {
    Delivered,
    ReceiverGone,
}

/// Hand a message to the driver. When the inbound queue is full the reader waits, which
/// stops reading the stream, which lets QUIC flow control slow the sender down.
async fn deliver(shared: &Shared, inbound: Inbound) -> Delivery {
    let mut inbound = inbound;
    loop {
        match shared.inbound.try_send(inbound) {
            Ok(()) => return Delivery::Delivered,
            Err(TrySendError::Full(back)) => {
                inbound = back;
                tokio::time::sleep(INBOUND_FULL_RETRY).await;
            }
            Err(TrySendError::Disconnected(_)) => return Delivery::ReceiverGone,
        }
    }
}

async fn read_stream(
    shared: Arc<Shared>,
    connection: Connection,
    peer_id: NodeId,
    mut stream: quinn::RecvStream,
) {
    let mut decoder = FrameDecoder::default();
    let mut assembler = ChunkAssembler::default();
    let mut snapshot: Option<InboundSnapshot> = None;
    loop {
        let chunk = match stream.read_chunk(READ_CHUNK_BYTES, true).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                if decoder.buffered_bytes() > 0 || assembler.is_in_progress() || snapshot.is_some()
                {
                    tracing::debug!(
                        node = shared.node_id,
                        peer = peer_id,
                        "stream ended inside a frame"
                    );
                }
                return;
            }
            Err(error) => {
                tracing::debug!(node = shared.node_id, peer = peer_id, %error, "stream read failed");
                return;
            }
        };
        shared
            .counters
            .bytes_received
            .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
        decoder.handle_bytes(&chunk.bytes);
        loop {
            let message = match decoder.poll_frame() {
                Ok(None) => break,
                Ok(Some(body)) => {
                    increment(&shared.counters.frames_received);
                    match codec::decode_frame_body(&body) {
                        Ok(Frame::Message(message)) => Ok(Step::Deliver(message)),
                        Ok(Frame::Chunk(chunk)) => assembler
                            .handle_chunk(chunk)
                            .map(|message| message.map_or(Step::Nothing, Step::Deliver)),
                        Ok(Frame::SnapshotHeader(header)) => {
                            snapshot_header(&shared, peer_id, header, &mut snapshot)
                        }
                        Ok(Frame::SnapshotData(data)) => snapshot_data(&data, &mut snapshot),
                        Err(error) => Err(error),
                    }
                }
                Err(error) => Err(error),
            };
            match message {
                Ok(Step::Nothing) => {}
                Ok(Step::StopStream) => {
                    tracing::info!(
                        node = shared.node_id,
                        peer = peer_id,
                        "snapshot refused: as many as allowed are being received"
                    );
                    let _ = stream.stop(VarInt::from_u32(STOP_SNAPSHOTS_BUSY));
                    return;
                }
                Ok(Step::Deliver(message)) => {
                    let inbound = Inbound {
                        from: peer_id,
                        message,
                    };
                    if let Delivery::ReceiverGone = deliver(&shared, inbound).await {
                        return;
                    }
                }
                Err(error) => {
                    increment(&shared.counters.frames_malformed);
                    tracing::warn!(node = shared.node_id, peer = peer_id, %error, "malformed frame; closing the connection");
                    connection.close(VarInt::from_u32(CLOSE_MALFORMED), b"malformed frame");
                    return;
                }
            }
        }
    }
}

/// A snapshot's header: start receiving it (one per stream).
fn snapshot_header(
    shared: &Arc<Shared>,
    peer_id: NodeId,
    header: SnapshotHeader,
    snapshot: &mut Option<InboundSnapshot>,
) -> Result<Step, CodecError> {
    if snapshot.is_some() {
        return Err(CodecError::InconsistentChunk(
            "a snapshot header inside a snapshot",
        ));
    }
    let Some(started) = InboundSnapshot::start(shared, peer_id, header)? else {
        return Ok(Step::StopStream);
    };
    *snapshot = Some(started);
    snapshot_complete(snapshot)
}

/// A piece of the snapshot being received: written to the spool (file IO off the async
/// workers' schedule: `block_in_place`).
fn snapshot_data(
    data: &codec::SnapshotData,
    snapshot: &mut Option<InboundSnapshot>,
) -> Result<Step, CodecError> {
    let receiving = snapshot.as_mut().ok_or(CodecError::InconsistentChunk(
        "snapshot data without a header",
    ))?;
    let receiver = receiving
        .receiver
        .as_mut()
        .ok_or(CodecError::InconsistentChunk("snapshot already complete"))?;
    tokio::task::block_in_place(|| receiver.handle_data(data))?;
    snapshot_complete(snapshot)
}

/// The snapshot as a message once all of it is in.
fn snapshot_complete(snapshot: &mut Option<InboundSnapshot>) -> Result<Step, CodecError> {
    if !snapshot
        .as_ref()
        .and_then(|receiving| receiving.receiver.as_ref())
        .is_some_and(SnapshotReceiver::is_complete)
    {
        return Ok(Step::Nothing);
    }
    let Some(mut done) = snapshot.take() else {
        return Ok(Step::Nothing);
    };
    // The slot is given back when `done` drops, after the finish.
    let receiver = done
        .receiver
        .take()
        .ok_or(CodecError::InconsistentChunk("snapshot finished twice"))?;
    tokio::task::block_in_place(|| receiver.finish()).map(Step::Deliver)
}
