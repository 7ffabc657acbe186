//! [`ClusterNode`]: the sans-IO core on its own OS thread, wired to a [`Storage`], a
//! [`Transport`] and the inbound queue; [`ClusterHandle`]: how the application talks to it.
//!
//! ```text
//!  ClusterHandle ──bounded requests──┐
//!                                    ├─► driver thread: select (wakes on every request or
//!  transport ──bounded Inbound───────┘    message, or at the next tick) → drain up to
//!                                          batch_max → tick if due → core.poll (fsync here,
//!                                          never on an async worker) → transport.send →
//!                                          answer callers through one-shot channels
//! ```
//!
//! The thread wakes on every proposal and message instead of sleeping a fixed tick: a fixed
//! sleep would add up to a tick of latency to every commit. Requests that arrive while the
//! thread works are drained together, so they share one append and one fsync.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::{Condvar, Mutex, RwLock};
use tokio::sync::oneshot;

use crate::config::ClusterConfig;
use crate::core::{
    BuiltSnapshot, Completion, CoreOutput, InitialMembers, MembershipChange, PeerUpdate, RaftCore,
};
use crate::error::{ClusterError, MembershipError, ProposeError, ReadError};
use crate::state_machine::StateMachine;
use crate::status::ClusterStatus;
use crate::storage::Storage;
use crate::transport::{Inbound, NodeId, PeerMessage, Transport};

enum Request {
    Propose {
        command: Vec<u8>,
        reply: oneshot::Sender<Result<Vec<u8>, ProposeError>>,
    },
    Read {
        reply: oneshot::Sender<Result<u64, ReadError>>,
    },
    Membership {
        change: MembershipChange,
        reply: oneshot::Sender<Result<(), MembershipError>>,
    },
    TransferLeader {
        target: NodeId,
        reply: oneshot::Sender<Result<(), MembershipError>>,
    },
}

enum Waiter {
    Propose(oneshot::Sender<Result<Vec<u8>, ProposeError>>),
    Read(oneshot::Sender<Result<u64, ReadError>>),
    Membership(oneshot::Sender<Result<(), MembershipError>>),
}

struct Shared {
    requests: Sender<Request>,
    shutdown: Sender<()>,
    status: Arc<RwLock<ClusterStatus>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    stopped: Arc<Stopped>,
}

/// Set once when the driver thread ends, with the fatal error if it ended on one.
#[derive(Default)]
struct Stopped {
    outcome: Mutex<Option<Option<String>>>,
    changed: Condvar,
}

impl Stopped {
    fn set(&self, fatal: Option<String>) {
        *self.outcome.lock() = Some(fatal);
        self.changed.notify_all();
    }
}

/// Starts the driver thread.
#[derive(Debug)]
pub struct ClusterNode;

impl ClusterNode {
    /// Open the core on `storage` (bootstrapping it if this node is an initial member), then
    /// run it on a new thread named `raft-<id>`. `inbound` is the receiving end the transport
    /// feeds; the driver is its only consumer.
    pub fn start<S, T, M>(
        config: ClusterConfig,
        storage: S,
        transport: T,
        inbound: Receiver<Inbound>,
        state_machine: M,
    ) -> Result<ClusterHandle, ClusterError>
    where
        S: Storage,
        T: Transport,
        M: StateMachine,
    {
        let core_config = config.core_config()?;
        let members = |peers: &[crate::config::PeerConfig]| {
            peers
                .iter()
                .map(|peer| (peer.id, peer.address.clone()))
                .collect()
        };
        let initial = InitialMembers {
            cluster_id: config.cluster_id.clone(),
            bootstrap: config.bootstrap,
            voters: members(&config.voters),
            learners: members(&config.learners),
        };
        let mut core = RaftCore::new(core_config, storage, state_machine, &initial)?;
        core.enable_background_snapshots();
        // One snapshot is built at a time (the core waits for its result before the next).
        let (built_sender, built_receiver) = crossbeam_channel::bounded(1);
        let (request_sender, request_receiver) =
            crossbeam_channel::bounded(config.pending_requests_max);
        let (shutdown_sender, shutdown_receiver) = crossbeam_channel::bounded(1);
        let shared = Arc::new(Shared {
            requests: request_sender,
            shutdown: shutdown_sender,
            status: Arc::new(RwLock::new(core.status())),
            thread: Mutex::new(None),
            stopped: Arc::new(Stopped::default()),
        });
        let first_request_id = core.first_request_id();
        let driver = Driver {
            core,
            transport,
            inbound,
            requests: request_receiver,
            shutdown: shutdown_receiver,
            status: Arc::clone(&shared.status),
            waiters: HashMap::new(),
            next_request_id: first_request_id,
            tick_interval: config.tick_interval(),
            batch_max: config.batch_max,
            built_sender,
            built_receiver,
            failure: None,
        };
        let status = Arc::clone(&shared.status);
        let stopped = Arc::clone(&shared.stopped);
        let node_id = config.node_id;
        let thread = std::thread::Builder::new()
            .name(format!("raft-{node_id}"))
            .spawn(move || {
                // A panic (raft-rs's `fatal!`, a state machine bug) must not leave a status
                // that still says "Leader": the node is marked failed and the application
                // told, so it can exit and be restarted by its supervisor.
                let outcome = std::panic::catch_unwind(AssertUnwindSafe(move || driver.run()));
                if let Err(payload) = outcome {
                    let message = panic_message(payload.as_ref());
                    tracing::error!(node_id, %message, "raft driver thread panicked; node failed");
                    mark_failed(&status, format!("driver thread panicked: {message}"));
                }
                stopped.set(status.read().fatal_error.clone());
            })?;
        *shared.thread.lock() = Some(thread);
        Ok(ClusterHandle {
            shared,
            node_id: config.node_id,
        })
    }
}

/// How the application talks to its node. Cheap to clone, usable from any thread.
///
/// The `async` methods may be awaited on any runtime (tokio, actix). The `*_blocking` variants
/// are for plain threads; they must not be called from inside an async task.
#[derive(Clone)]
pub struct ClusterHandle {
    shared: Arc<Shared>,
    node_id: NodeId,
}

impl std::fmt::Debug for ClusterHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ClusterHandle")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ClusterHandle {
    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// Replicate `command`; returns the state machine's response once it is applied here
    /// (on the node that proposed), or why it could not be.
    pub async fn propose(&self, command: Vec<u8>) -> Result<Vec<u8>, ProposeError> {
        let receiver = self.submit_propose(command)?;
        receiver.await.unwrap_or(Err(ProposeError::ShuttingDown))
    }

    /// [`Self::propose`] for plain threads.
    pub fn propose_blocking(&self, command: Vec<u8>) -> Result<Vec<u8>, ProposeError> {
        let receiver = self.submit_propose(command)?;
        receiver
            .blocking_recv()
            .unwrap_or(Err(ProposeError::ShuttingDown))
    }

    /// A linearizable read barrier: once it returns `Ok(index)`, this node's state machine
    /// has applied at least `index`, and reading it reflects every write committed before
    /// the call.
    pub async fn read_index(&self) -> Result<u64, ReadError> {
        let receiver = self.submit_read()?;
        receiver.await.unwrap_or(Err(ReadError::ShuttingDown))
    }

    /// [`Self::read_index`] for plain threads.
    pub fn read_index_blocking(&self) -> Result<u64, ReadError> {
        let receiver = self.submit_read()?;
        receiver
            .blocking_recv()
            .unwrap_or(Err(ReadError::ShuttingDown))
    }

    /// Add a voter (call on the leader).
    pub async fn add_voter(&self, id: NodeId, address: String) -> Result<(), MembershipError> {
        self.membership(MembershipChange::AddVoter { id, address })
            .await
    }

    /// Add a learner (call on the leader).
    pub async fn add_learner(&self, id: NodeId, address: String) -> Result<(), MembershipError> {
        self.membership(MembershipChange::AddLearner { id, address })
            .await
    }

    /// Promote a learner to voter (call on the leader).
    pub async fn promote_learner(&self, id: NodeId) -> Result<(), MembershipError> {
        self.membership(MembershipChange::PromoteLearner { id })
            .await
    }

    /// Remove a member (call on the leader).
    pub async fn remove_node(&self, id: NodeId) -> Result<(), MembershipError> {
        self.membership(MembershipChange::Remove { id }).await
    }

    /// Apply a membership change (call on the leader); completes when it is applied here.
    pub async fn membership(&self, change: MembershipChange) -> Result<(), MembershipError> {
        let receiver = self.submit_membership(change)?;
        receiver.await.unwrap_or(Err(MembershipError::ShuttingDown))
    }

    /// [`Self::membership`] for plain threads.
    pub fn membership_blocking(&self, change: MembershipChange) -> Result<(), MembershipError> {
        let receiver = self.submit_membership(change)?;
        receiver
            .blocking_recv()
            .unwrap_or(Err(MembershipError::ShuttingDown))
    }

    /// Hand leadership to `target` (call on the leader); completes when `target` leads.
    pub async fn transfer_leader(&self, target: NodeId) -> Result<(), MembershipError> {
        let (reply, receiver) = oneshot::channel();
        self.submit(Request::TransferLeader { target, reply })
            .map_err(|error| error.membership())?;
        receiver.await.unwrap_or(Err(MembershipError::ShuttingDown))
    }

    /// The node's latest status (updated after every driver iteration).
    pub fn status(&self) -> ClusterStatus {
        self.shared.status.read().clone()
    }

    /// Block until the driver thread has ended; returns the fatal error (a storage or state
    /// machine failure, or a panic) if it ended on one, `None` after [`Self::shutdown`].
    /// For a watchdog thread that exits the process on failure; not for async tasks.
    pub fn wait_stopped_blocking(&self) -> Option<String> {
        let mut outcome = self.shared.stopped.outcome.lock();
        loop {
            if let Some(fatal) = outcome.as_ref() {
                return fatal.clone();
            }
            self.shared.stopped.changed.wait(&mut outcome);
        }
    }

    /// Stop the driver thread and wait for it; pending requests fail with `ShuttingDown`.
    /// Idempotent; callable from any handle clone.
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.try_send(());
        let thread = self.shared.thread.lock().take();
        if let Some(thread) = thread
            && thread.join().is_err()
        {
            tracing::error!(node_id = self.node_id, "raft driver thread panicked");
        }
    }

    fn submit_propose(
        &self,
        command: Vec<u8>,
    ) -> Result<oneshot::Receiver<Result<Vec<u8>, ProposeError>>, ProposeError> {
        let (reply, receiver) = oneshot::channel();
        self.submit(Request::Propose { command, reply })
            .map_err(|error| match error {
                SubmitError::Full => ProposeError::Overloaded,
                SubmitError::Closed => ProposeError::ShuttingDown,
            })?;
        Ok(receiver)
    }

    fn submit_read(&self) -> Result<oneshot::Receiver<Result<u64, ReadError>>, ReadError> {
        let (reply, receiver) = oneshot::channel();
        self.submit(Request::Read { reply })
            .map_err(|error| match error {
                SubmitError::Full => ReadError::Overloaded,
                SubmitError::Closed => ReadError::ShuttingDown,
            })?;
        Ok(receiver)
    }

    fn submit_membership(
        &self,
        change: MembershipChange,
    ) -> Result<oneshot::Receiver<Result<(), MembershipError>>, MembershipError> {
        let (reply, receiver) = oneshot::channel();
        self.submit(Request::Membership { change, reply })
            .map_err(|error| error.membership())?;
        Ok(receiver)
    }

    fn submit(&self, request: Request) -> Result<(), SubmitError> {
        self.shared
            .requests
            .try_send(request)
            .map_err(|error| match error {
                TrySendError::Full(_) => SubmitError::Full,
                TrySendError::Disconnected(_) => SubmitError::Closed,
            })
    }
}

enum SubmitError {
    Full,
    Closed,
}

impl SubmitError {
    fn membership(self) -> MembershipError {
        match self {
            SubmitError::Full => MembershipError::Overloaded,
            SubmitError::Closed => MembershipError::ShuttingDown,
        }
    }
}

struct Driver<S: Storage, T: Transport, M: StateMachine> {
    core: RaftCore<S, M>,
    transport: T,
    inbound: Receiver<Inbound>,
    requests: Receiver<Request>,
    shutdown: Receiver<()>,
    status: Arc<RwLock<ClusterStatus>>,
    waiters: HashMap<u64, Waiter>,
    next_request_id: u64,
    tick_interval: Duration,
    batch_max: usize,
    /// Snapshots built on their own threads come back here (one at a time).
    built_sender: Sender<BuiltSnapshot>,
    built_receiver: Receiver<BuiltSnapshot>,
    /// A failure found outside the core (no thread for a snapshot): stops the driver.
    failure: Option<ClusterError>,
}

impl<S: Storage, T: Transport, M: StateMachine> Driver<S, T, M> {
    fn run(mut self) {
        let node_id = self.core.node_id();
        let mut next_tick = Instant::now() + self.tick_interval;
        let never = crossbeam_channel::never();
        let mut inbound_open = true;
        let outcome: Result<(), ClusterError> = loop {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            let mut handled = 0;
            crossbeam_channel::select! {
                recv(self.shutdown) -> _ => break Ok(()),
                recv(self.requests) -> request => match request {
                    Ok(request) => { self.handle_request(request); handled += 1; }
                    // Every handle is gone: nobody can ask anything any more.
                    Err(_) => break Ok(()),
                },
                recv(if inbound_open { &self.inbound } else { &never }) -> message => match message {
                    Ok(message) => { self.core.handle_message(message.from, message.message); handled += 1; }
                    Err(_) => inbound_open = false,
                },
                default(timeout) => {}
            }
            // Drain what else is queued (bounded): these share one Ready, one fsync.
            while handled < self.batch_max {
                let mut progressed = false;
                if let Ok(request) = self.requests.try_recv() {
                    self.handle_request(request);
                    progressed = true;
                    handled += 1;
                }
                if let Ok(message) = self.inbound.try_recv() {
                    self.core.handle_message(message.from, message.message);
                    progressed = true;
                    handled += 1;
                }
                if !progressed {
                    break;
                }
            }
            if let Some(error) = self.failure.take() {
                break Err(error);
            }
            if let Ok(built) = self.built_receiver.try_recv()
                && let Err(error) = self.core.handle_snapshot_built(built)
            {
                break Err(error);
            }
            let now = Instant::now();
            if now >= next_tick {
                for to in self.core.snapshot_sends() {
                    let bytes_sent = self.transport.large_message_progress(to);
                    self.core.handle_snapshot_progress(to, bytes_sent);
                }
                self.core.handle_tick();
                next_tick += self.tick_interval;
                // After a stall (a long fsync), skip the missed ticks instead of firing them
                // in a burst that would trigger elections.
                if next_tick < now {
                    next_tick = now + self.tick_interval;
                }
            }
            let transport = &self.transport;
            let mut send_early =
                |to: NodeId, message: PeerMessage| match transport.send(to, message) {
                    Ok(()) => true,
                    Err(error) => {
                        tracing::debug!(to, %error, "message not sent");
                        false
                    }
                };
            match self.core.poll_sending(Some(&mut send_early)) {
                Ok(output) => {
                    // Status before answers: a caller woken by its answer must find the status
                    // at least as new (after `read_index` returns `index`, `applied_index` ≥
                    // `index`). A send failure handled in `dispatch` shows up next iteration.
                    *self.status.write() = self.core.status();
                    self.dispatch(output);
                }
                Err(error) => break Err(error),
            }
        };
        let output = self.core.handle_shutdown();
        self.dispatch(output);
        for (_, waiter) in self.waiters.drain() {
            fail_waiter(waiter);
        }
        if let Err(error) = outcome {
            tracing::error!(node_id, %error, "raft driver stopped on a fatal error");
            mark_failed(&self.status, error.to_string());
        } else {
            tracing::info!(node_id, "raft driver stopped");
        }
        // Refuse requests that were queued after the loop ended.
        while let Ok(request) = self.requests.try_recv() {
            fail_request(request);
        }
    }

    fn handle_request(&mut self, request: Request) {
        let id = self.next_request_id;
        self.next_request_id += 1;
        match request {
            Request::Propose { command, reply } => {
                self.waiters.insert(id, Waiter::Propose(reply));
                self.core.handle_propose(id, command);
            }
            Request::Read { reply } => {
                self.waiters.insert(id, Waiter::Read(reply));
                self.core.handle_read(id);
            }
            Request::Membership { change, reply } => {
                self.waiters.insert(id, Waiter::Membership(reply));
                self.core.handle_membership(id, change);
            }
            Request::TransferLeader { target, reply } => {
                self.waiters.insert(id, Waiter::Membership(reply));
                self.core.handle_transfer_leader(id, target);
            }
        }
    }

    fn dispatch(&mut self, output: CoreOutput) {
        for job in output.snapshot_jobs {
            // Blocking file IO for as long as the state takes to write: a thread of its own,
            // so the driver keeps ticking. Left to finish on shutdown (its file is then not
            // recorded and is removed at the next start).
            let built = self.built_sender.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("snapshot-{}", self.core.node_id()))
                .spawn(move || {
                    let _ = built.send(job.run());
                });
            if let Err(error) = spawned {
                // The job is gone with the closure: the node cannot snapshot any more.
                self.failure = Some(ClusterError::Storage(crate::StorageError::Io(format!(
                    "no thread to build a snapshot: {error}"
                ))));
            }
        }
        for update in output.peer_updates {
            match update {
                PeerUpdate::Set { id, address } => self.transport.set_peer(id, address),
                PeerUpdate::Remove(id) => self.transport.remove_peer(id),
            }
        }
        // Answers first: a completion means committed and applied here, whatever is still
        // to be sent (a leader's commit notices), so the caller need not wait for the sends.
        for completion in output.completions {
            let (id, waiter) = match &completion {
                Completion::Propose { id, .. }
                | Completion::Read { id, .. }
                | Completion::Membership { id, .. } => (*id, self.waiters.remove(id)),
            };
            let Some(waiter) = waiter else {
                tracing::warn!(id, "completion for an unknown request");
                continue;
            };
            // A caller that gave up dropped its receiver; nothing to tell it.
            match (waiter, completion) {
                (Waiter::Propose(reply), Completion::Propose { result, .. }) => {
                    let _ = reply.send(result);
                }
                (Waiter::Read(reply), Completion::Read { result, .. }) => {
                    let _ = reply.send(result);
                }
                (Waiter::Membership(reply), Completion::Membership { result, .. }) => {
                    let _ = reply.send(result);
                }
                (waiter, _) => {
                    tracing::error!(id, "completion of the wrong kind");
                    fail_waiter(waiter);
                }
            }
        }
        for (to, message) in output.messages {
            let message_type = match &message {
                PeerMessage::Raft(raft_message) => Some(raft_message.get_msg_type()),
                PeerMessage::Snapshot { .. } => Some(raft::eraftpb::MessageType::MsgSnapshot),
                _ => None,
            };
            if let Err(error) = self.transport.send(to, message) {
                tracing::debug!(to, %error, "message not sent");
                if let Some(message_type) = message_type {
                    self.core.handle_send_failure(to, message_type);
                }
            }
        }
    }
}

/// The node stopped for good: no leader to offer, the error for operators.
fn mark_failed(status: &RwLock<ClusterStatus>, error: String) {
    let mut status = status.write();
    status.fatal_error = Some(error);
    status.leader = None;
    status.role = crate::status::Role::Follower;
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(message) = payload.downcast_ref::<&str>() {
        (*message).to_owned()
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message.clone()
    } else {
        "non-text panic payload".to_owned()
    }
}

fn fail_waiter(waiter: Waiter) {
    match waiter {
        Waiter::Propose(reply) => {
            let _ = reply.send(Err(ProposeError::ShuttingDown));
        }
        Waiter::Read(reply) => {
            let _ = reply.send(Err(ReadError::ShuttingDown));
        }
        Waiter::Membership(reply) => {
            let _ = reply.send(Err(MembershipError::ShuttingDown));
        }
    }
}

fn fail_request(request: Request) {
    match request {
        Request::Propose { reply, .. } => {
            let _ = reply.send(Err(ProposeError::ShuttingDown));
        }
        Request::Read { reply } => {
            let _ = reply.send(Err(ReadError::ShuttingDown));
        }
        Request::Membership { reply, .. } | Request::TransferLeader { reply, .. } => {
            let _ = reply.send(Err(MembershipError::ShuttingDown));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::PeerConfig;
    use crate::error::StateMachineError;
    use crate::status::Role;
    use crate::storage::memory::MemoryStorage;
    use crate::transport::memory::MemoryHub;

    /// Applies anything but `boom`, on which it panics (a bug in application code, or a
    /// raft-rs `fatal!`: both unwind the driver thread).
    struct Fragile;

    impl StateMachine for Fragile {
        fn apply(&mut self, _index: u64, command: &[u8]) -> Vec<u8> {
            assert!(command != b"boom", "state machine bug");
            command.to_vec()
        }

        fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
            Ok(Vec::new())
        }

        fn restore(&mut self, _snapshot: &[u8]) -> Result<(), StateMachineError> {
            Ok(())
        }
    }

    #[test]
    fn a_panic_on_the_driver_thread_marks_the_node_failed_and_is_reported() {
        let hub = MemoryHub::new();
        let (transport, inbound) = hub.endpoint(1);
        let mut config = ClusterConfig::new(
            1,
            vec![PeerConfig {
                id: 1,
                address: "memory-1".to_owned(),
            }],
        );
        config.tick_interval_ms = 10;
        let handle =
            ClusterNode::start(config, MemoryStorage::new(), transport, inbound, Fragile).unwrap();
        assert_eq!(
            handle.propose_blocking(b"fine".to_vec()),
            Ok(b"fine".to_vec())
        );
        assert_eq!(handle.status().role, Role::Leader);

        assert_eq!(
            handle.propose_blocking(b"boom".to_vec()),
            Err(ProposeError::ShuttingDown)
        );
        let fatal = handle.wait_stopped_blocking().unwrap();
        assert!(fatal.contains("panicked: state machine bug"), "{fatal}");
        let status = handle.status();
        assert_eq!(status.fatal_error.as_deref(), Some(fatal.as_str()));
        assert_eq!((status.leader, status.role), (None, Role::Follower));
        assert_eq!(
            handle.propose_blocking(b"after".to_vec()),
            Err(ProposeError::ShuttingDown)
        );
        handle.shutdown();
    }
}
