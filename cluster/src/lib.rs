//! callgrid-cluster: a replicated state machine over Raft (tikv raft-rs), QUIC and RocksDB.
//!
//! Generic over the state machine: it knows nothing of calls or orders.
//!
//! Modules (owners in parentheses while the crate is being built):
//! - [`transport`] — the `Transport` trait, QUIC with mutual TLS, and an in-memory hub.
//! - [`codec`] — every byte format: frames, raft protobuf, versioned bincode for entries and
//!   snapshots.
//! - [`certs`] — the cluster CA and node certificates (rcgen), loaded into rustls configs.

pub mod certs;
pub mod codec;
pub mod transport;
