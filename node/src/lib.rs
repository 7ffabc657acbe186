//! callgrid-node: the site node a city runs.
//!
//! ```text
//!   gateways, desktops, wallboards ──HTTP/WebSocket──► api ──► actors::site (domain routing)
//!                                                        │            │ callbacks, orders
//!                                                        └──► replicate::Proposer ──► Raft
//!                                                                     (callgrid-cluster)
//!                                      state::SharedState ◄── apply committed commands ◄─┘
//! ```
//!
//! - [`config`] — the site TOML, CLI overrides, the embedded single-site default.
//! - [`state`] — the replicated state machine (orders, pre-orders, reservations, complaints,
//!   callbacks) applied from the Raft log.
//! - [`replicate`] — the boundary to Raft: the `Replicator` trait, the proposer.
//! - [`outbox`] — the durable per-site outbox: writes the site must get committed, fsync'd
//!   in its own RocksDB and proposed in batches until committed, each applied once.
//! - [`clock`] — the routing clock: wall time, or a scaled clock for drills.
//! - [`cluster`] — the Raft replicator: RocksDB in the data dir, QUIC with mutual TLS.
//! - [`actors`] — the actix actors around the routing core: the Site (routing, supervisor) and
//!   its Agent, Call and Queue children (streams, offer timers, transcripts, live views).
//! - [`api`] — HTTP JSON API, WebSocket streams, metrics and health.
//! - [`ui`] — the supervisor wallboard and the agent desktop, embedded static pages.
//! - [`node`] — wiring it all together into a running node.

pub mod actors;
pub mod api;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod node;
pub mod outbox;
pub mod replicate;
pub mod state;
pub mod ui;
