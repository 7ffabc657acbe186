//! In-memory transport: a hub that connects endpoints of one process, for tests.
//!
//! Delivery is synchronous: `send` puts the message straight into the receiver's bounded
//! queue, in call order, so a test driving nodes from one thread is deterministic. Every
//! message goes through the real [`codec`](crate::codec) on the way (encode, then decode),
//! so what crosses the hub is exactly what could cross the wire.
//!
//! Switches for fault tests, all reversible with [`MemoryHub::heal`] / `reconnect`:
//! - [`MemoryHub::partition`]: groups of nodes that only hear their own group;
//! - [`MemoryHub::block_link`]: one direction of one link;
//! - [`MemoryHub::disconnect`]: a node neither sends nor receives (a crashed or unplugged
//!   node; a new [`MemoryHub::endpoint`] for the same id replaces the old receiver, for a
//!   restart).
//!
//! Messages cut by a switch are dropped silently (`send` returns `Ok`), as a network would:
//! Raft must cope with loss, and the counters tell the test what happened.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;

use crate::codec;
use crate::transport::{Inbound, NodeId, PeerMessage, Transport, TransportError, TransportStats};

/// Default bound of each endpoint's inbound queue (messages).
pub const INBOUND_MESSAGES_MAX: usize = 4096;

/// A switchboard connecting in-memory endpoints.
#[derive(Clone, Default)]
pub struct MemoryHub {
    shared: Arc<Hub>,
}

impl std::fmt::Debug for MemoryHub {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("MemoryHub").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Hub {
    state: Mutex<HubState>,
    delivered: AtomicU64,
    dropped_by_switch: AtomicU64,
    dropped_queue_full: AtomicU64,
}

#[derive(Default)]
struct HubState {
    endpoints: HashMap<NodeId, Sender<Inbound>>,
    inbound_messages_max: Option<usize>,
    /// Node → group number; nodes in different groups cannot talk. Empty: no partition.
    groups: HashMap<NodeId, usize>,
    blocked_links: HashSet<(NodeId, NodeId)>,
    disconnected: HashSet<NodeId>,
}

impl HubState {
    fn can_deliver(&self, from: NodeId, to: NodeId) -> bool {
        if self.disconnected.contains(&from) || self.disconnected.contains(&to) {
            return false;
        }
        if self.blocked_links.contains(&(from, to)) {
            return false;
        }
        if self.groups.is_empty() {
            return true;
        }
        // A node named in no group is alone.
        match (self.groups.get(&from), self.groups.get(&to)) {
            (Some(a), Some(b)) => a == b,
            _ => from == to,
        }
    }
}

/// Counters of a hub, for test assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HubStats {
    /// Messages put into a receiver's queue.
    pub delivered: u64,
    /// Messages cut by a partition, blocked link or disconnected node.
    pub dropped_by_switch: u64,
    /// Messages refused because the receiver's queue was full.
    pub dropped_queue_full: u64,
}

impl MemoryHub {
    /// An empty hub; endpoints' inbound queues hold [`INBOUND_MESSAGES_MAX`] messages.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty hub whose endpoints' inbound queues hold `inbound_messages_max` messages.
    pub fn with_inbound_messages_max(inbound_messages_max: usize) -> Self {
        let hub = Self::default();
        hub.shared.state.lock().inbound_messages_max = Some(inbound_messages_max.max(1));
        hub
    }

    /// Create (or replace, for a restart) the endpoint of node `id`. The previous receiver
    /// of that id, if any, gets no more messages.
    pub fn endpoint(&self, id: NodeId) -> (MemoryTransport, Receiver<Inbound>) {
        let mut state = self.shared.state.lock();
        let bound = state.inbound_messages_max.unwrap_or(INBOUND_MESSAGES_MAX);
        let (sender, receiver) = crossbeam_channel::bounded(bound);
        state.endpoints.insert(id, sender);
        let transport = MemoryTransport {
            id,
            hub: Arc::clone(&self.shared),
            counters: Arc::default(),
        };
        (transport, receiver)
    }

    /// Split the cluster: each slice is a group that only hears itself; nodes in no group
    /// are isolated. Replaces any previous partition.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        let mut state = self.shared.state.lock();
        state.groups.clear();
        for (number, group) in groups.iter().enumerate() {
            for id in *group {
                state.groups.insert(*id, number);
            }
        }
    }

    /// Cut node `id` from every other node (both directions).
    pub fn isolate(&self, id: NodeId) {
        let mut state = self.shared.state.lock();
        let others: Vec<NodeId> = state
            .endpoints
            .keys()
            .copied()
            .filter(|o| *o != id)
            .collect();
        for other in others {
            state.blocked_links.insert((id, other));
            state.blocked_links.insert((other, id));
        }
    }

    /// Drop every message from `from` to `to` (one direction).
    pub fn block_link(&self, from: NodeId, to: NodeId) {
        self.shared.state.lock().blocked_links.insert((from, to));
    }

    /// Deliver messages from `from` to `to` again.
    pub fn unblock_link(&self, from: NodeId, to: NodeId) {
        self.shared.state.lock().blocked_links.remove(&(from, to));
    }

    /// Node `id` neither sends nor receives until [`MemoryHub::reconnect`].
    pub fn disconnect(&self, id: NodeId) {
        self.shared.state.lock().disconnected.insert(id);
    }

    /// Undo [`MemoryHub::disconnect`].
    pub fn reconnect(&self, id: NodeId) {
        self.shared.state.lock().disconnected.remove(&id);
    }

    /// Remove every partition, blocked link and disconnection.
    pub fn heal(&self) {
        let mut state = self.shared.state.lock();
        state.groups.clear();
        state.blocked_links.clear();
        state.disconnected.clear();
    }

    /// Counters since the hub was created.
    pub fn stats(&self) -> HubStats {
        HubStats {
            delivered: self.shared.delivered.load(Ordering::Relaxed),
            dropped_by_switch: self.shared.dropped_by_switch.load(Ordering::Relaxed),
            dropped_queue_full: self.shared.dropped_queue_full.load(Ordering::Relaxed),
        }
    }
}

/// One node's handle on a [`MemoryHub`].
#[derive(Clone)]
pub struct MemoryTransport {
    id: NodeId,
    hub: Arc<Hub>,
    counters: Arc<EndpointCounters>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("MemoryTransport")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct EndpointCounters {
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    messages_dropped_queue_full: AtomicU64,
}

impl MemoryTransport {
    /// The node this endpoint belongs to.
    pub fn id(&self) -> NodeId {
        self.id
    }
}

impl Transport for MemoryTransport {
    fn send(&self, to: NodeId, message: PeerMessage) -> Result<(), TransportError> {
        let sender = {
            let state = self.hub.state.lock();
            let sender = state
                .endpoints
                .get(&to)
                .cloned()
                .ok_or(TransportError::UnknownPeer(to))?;
            if !state.can_deliver(self.id, to) {
                self.hub.dropped_by_switch.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            sender
        };
        // Through the real codec, so the hub carries only what the wire could carry.
        let body = super::encode_for_wire(&message)?;
        let decoded = match &message {
            PeerMessage::Snapshot { message, body } => codec::snapshot_round_trip(0, message, body),
            _ => codec::decode_message_body(&body),
        };
        let message = match decoded {
            Ok(message) => message,
            Err(error) => {
                // Our own encoder produced bytes our decoder refuses: a codec bug, loud.
                tracing::error!(%error, from = self.id, to, "memory hub: codec round trip failed");
                return Err(TransportError::Encoding(error.to_string()));
            }
        };
        let inbound = Inbound {
            from: self.id,
            message,
        };
        match sender.try_send(inbound) {
            Ok(()) => {
                self.hub.delivered.fetch_add(1, Ordering::Relaxed);
                self.counters.frames_sent.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .bytes_sent
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.hub.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .messages_dropped_queue_full
                    .fetch_add(1, Ordering::Relaxed);
                Err(TransportError::QueueFull(to))
            }
            // The receiver was dropped: the node is down, like a dead host.
            Err(TrySendError::Disconnected(_)) => {
                self.hub.dropped_by_switch.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        }
    }

    fn set_peer(&self, id: NodeId, _address: String) {
        // Addresses mean nothing here; learning a peer again undoes `remove_peer`.
        self.hub.state.lock().blocked_links.remove(&(self.id, id));
    }

    fn remove_peer(&self, id: NodeId) {
        // Only this node forgets the link; the hub still knows the endpoint for others.
        self.hub.state.lock().blocked_links.insert((self.id, id));
    }

    fn stats(&self) -> TransportStats {
        TransportStats {
            frames_sent: self.counters.frames_sent.load(Ordering::Relaxed),
            bytes_sent: self.counters.bytes_sent.load(Ordering::Relaxed),
            messages_dropped_queue_full: self
                .counters
                .messages_dropped_queue_full
                .load(Ordering::Relaxed),
            ..TransportStats::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn forward(request_id: u64) -> PeerMessage {
        PeerMessage::Forward {
            request_id,
            term: 1,
            payload: vec![request_id as u8],
        }
    }

    fn drain(receiver: &Receiver<Inbound>) -> Vec<(NodeId, u64)> {
        receiver
            .try_iter()
            .map(|inbound| match inbound.message {
                PeerMessage::Forward { request_id, .. } => (inbound.from, request_id),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn delivers_in_order_with_sender_id() {
        let hub = MemoryHub::new();
        let (one, _r1) = hub.endpoint(1);
        let (two, r2) = hub.endpoint(2);
        let (_three, r3) = hub.endpoint(3);
        one.send(2, forward(1)).unwrap();
        one.send(2, forward(2)).unwrap();
        two.send(3, forward(3)).unwrap();
        assert_eq!(drain(&r2), vec![(1, 1), (1, 2)]);
        assert_eq!(drain(&r3), vec![(2, 3)]);
        assert_eq!(one.send(9, forward(4)), Err(TransportError::UnknownPeer(9)));
        assert_eq!(hub.stats().delivered, 3);
        assert_eq!(one.stats().frames_sent, 2);
    }

    #[test]
    fn partition_cuts_between_groups_and_heal_restores() {
        let hub = MemoryHub::new();
        let (one, r1) = hub.endpoint(1);
        let (two, r2) = hub.endpoint(2);
        let (three, r3) = hub.endpoint(3);
        hub.partition(&[&[1, 2], &[3]]);
        one.send(2, forward(1)).unwrap();
        one.send(3, forward(2)).unwrap();
        three.send(1, forward(3)).unwrap();
        assert_eq!(drain(&r2), vec![(1, 1)]);
        assert!(drain(&r3).is_empty());
        assert!(drain(&r1).is_empty());
        assert_eq!(hub.stats().dropped_by_switch, 2);
        hub.heal();
        three.send(1, forward(4)).unwrap();
        two.send(3, forward(5)).unwrap();
        assert_eq!(drain(&r1), vec![(3, 4)]);
        assert_eq!(drain(&r3), vec![(2, 5)]);
    }

    #[test]
    fn isolate_block_and_disconnect() {
        let hub = MemoryHub::new();
        let (one, r1) = hub.endpoint(1);
        let (two, r2) = hub.endpoint(2);
        hub.block_link(1, 2);
        one.send(2, forward(1)).unwrap();
        two.send(1, forward(2)).unwrap();
        assert!(drain(&r2).is_empty());
        assert_eq!(drain(&r1), vec![(2, 2)]);
        hub.unblock_link(1, 2);
        hub.disconnect(2);
        one.send(2, forward(3)).unwrap();
        two.send(1, forward(4)).unwrap();
        assert!(drain(&r1).is_empty() && drain(&r2).is_empty());
        hub.reconnect(2);
        hub.isolate(1);
        one.send(2, forward(5)).unwrap();
        assert!(drain(&r2).is_empty());
        hub.heal();
        one.send(2, forward(6)).unwrap();
        assert_eq!(drain(&r2), vec![(1, 6)]);
        one.remove_peer(2);
        one.send(2, forward(7)).unwrap();
        assert!(drain(&r2).is_empty());
        one.set_peer(2, String::new());
        one.send(2, forward(8)).unwrap();
        assert_eq!(drain(&r2), vec![(1, 8)]);
    }

    #[test]
    fn full_queue_reports_queue_full_and_restart_replaces_receiver() {
        let hub = MemoryHub::with_inbound_messages_max(2);
        let (one, _r1) = hub.endpoint(1);
        let (_two, r2) = hub.endpoint(2);
        one.send(2, forward(1)).unwrap();
        one.send(2, forward(2)).unwrap();
        assert_eq!(one.send(2, forward(3)), Err(TransportError::QueueFull(2)));
        assert_eq!(one.stats().messages_dropped_queue_full, 1);
        drop(r2);
        // Receiver gone (node down): silently dropped like a dead host.
        one.send(2, forward(4)).unwrap();
        let (_two, r2) = hub.endpoint(2);
        one.send(2, forward(5)).unwrap();
        assert_eq!(drain(&r2), vec![(1, 5)]);
    }
}
