//! callgrid-cluster: a replicated state machine over Raft (tikv raft-rs), QUIC and RocksDB.
//!
//! Generic over the state machine: it knows nothing of calls or orders. The map:
//!
//! - [`state_machine`] — the [`StateMachine`] trait the application implements;
//! - [`core`] — the sans-IO driver around raft-rs's `RawNode` (ticks, messages, proposals,
//!   reads in; persisted state, messages, responses out); the simulation drives it directly.
//!   By concern: `admit` (peer input checks), `forward`, `membership`, `reads`, `ready` (the
//!   Ready loop), `store` (identity and bootstrap);
//! - [`runtime`] — [`ClusterNode`]: the core on a dedicated OS thread with a [`Storage`] and
//!   a [`transport::Transport`], and the [`ClusterHandle`] callers use (async and blocking);
//! - [`storage`] — the [`Storage`] trait, in-memory and RocksDB implementations;
//! - [`transport`] — the `Transport` trait, QUIC with mutual TLS, and an in-memory hub;
//! - [`codec`] — every byte format, and only there: wire frames and chunks, raft protobuf,
//!   versioned bincode for application commands and snapshots, and the versioned layouts the
//!   driver puts in entries, conf changes and snapshots;
//! - [`certs`] — the cluster CA and node certificates (rcgen), loaded into rustls configs, and
//!   the revocation list;
//! - [`config`], [`status`], [`error`] — settings, operator view, error enums;
//! - [`mutations`] — deliberately broken rules for the simulation's mutation tests (only
//!   with the test-only feature `sim-mutations`);
//! - [`simulation`] — the seeded deterministic cluster simulation (tests and `examples/vopr`).

pub mod certs;
pub mod codec;
pub mod config;
pub mod core;
pub mod error;
pub mod mutations;
pub mod runtime;
pub mod simulation;
pub mod snapshot_body;
pub mod state_machine;
pub mod status;
pub mod storage;
pub mod transport;

pub use crate::config::{Bootstrap, ClusterConfig, PeerConfig};
pub use crate::core::MembershipChange;
pub use crate::error::{
    ClusterError, MembershipError, ProposeError, ReadError, StateMachineError, StorageError,
};
pub use crate::runtime::{ClusterHandle, ClusterNode};
pub use crate::state_machine::{SnapshotView, StateMachine};
pub use crate::status::ClusterStatus;
pub use crate::storage::Storage;
