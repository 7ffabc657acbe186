//! callgrid-domain: the routing core of callgrid — pure, deterministic, sans-IO.
//!
//! Both the live site node and the capacity planner's simulator run this code, so what a
//! planner simulates is what production does. No IO, no clock (`now` is passed in as
//! [`TimeMs`]), no randomness, no iteration over hash maps.
//!
//! ```text
//!             handle_*(now, input, &mut Vec<Effect>)
//!   driver ───────────────────────────────────────────▶ Site ──┐
//!  (node or   ◀─── Effect::Offer / CancelOffer / Overflow ─────┤ routing, queues, agents,
//!  simulator) ◀─── Effect::RequestCallback ──▶ CallbackBook    │ overflow, outage
//!             ◀─── Effect::Event ──▶ Metrics::record ◀─────────┘
//! ```
//!
//! Modules:
//! - [`ids`]: compact ids, [`TimeMs`], the [`SkillSet`] bitset.
//! - [`contact`]: the [`Contact`] value (channel, topic, skill, caller, priority, ordering time).
//! - [`agent`]: [`AgentSpec`], skill grants with certificate validity, [`AgentState`].
//! - [`site`]: [`Site`], one site's routing state machine.
//! - [`queue`] (private): priority-then-FIFO contact heaps and longest-idle agent heaps.
//! - [`overflow`]: [`SiteSummary`] snapshots, target choice, the share cap window.
//! - [`callback`]: [`CallbackBook`], callback tasks for abandoned callers.
//! - [`event`]: [`Effect`], [`Event`], [`EventKind`].
//! - [`metrics`]: [`Metrics`], per-interval/site/queue/agent counters from events.
//! - [`config`]: serde configuration with validation.
//! - [`error`]: the handlers' error type, [`DomainError`].
//!
//! See `API.md` beside this crate for how a driver calls it.

#![warn(missing_docs)]

pub mod agent;
pub mod callback;
pub mod config;
pub mod contact;
pub mod error;
pub mod event;
pub mod ids;
pub mod metrics;
pub mod overflow;
mod queue;
pub mod site;

pub use agent::{AgentSpec, AgentState, CHAT_SLOTS_MAX, NotReadyReason, SkillGrant};
pub use callback::{CallbackBook, CallbackCounters, CallbackError, CallbackTask};
pub use config::{
    CallbackPolicy, ConfigError, Line, MetricsConfig, OverflowConfig, OverflowTrigger,
    RoutingConfig, ServiceLevelPolicy, SkillConfig,
};
pub use contact::{Channel, Contact, Direction, Priority, Topic};
pub use error::DomainError;
pub use event::{CallbackOutcome, CallbackRequest, Effect, Event, EventKind, OverflowReason};
pub use ids::{
    AgentId, CallbackId, CallerNumber, ContactId, SKILLS_MAX, SiteId, SkillId, SkillSet, TimeMs,
};
pub use metrics::{AgentCounters, AgentRow, Counters, IntervalReport, Metrics, MetricsReport, Row};
pub use overflow::{SHARE_WINDOW_BUCKETS, SiteSummary, SkillSummary};
pub use site::{CONTACT_DENSE_IDS_MAX, ContactPhase, OVERFLOW_HOPS_MAX, QueuePosition, Site};
