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
//! - `queue` (private): priority-then-FIFO contact heaps and longest-idle agent heaps.
//! - [`overflow`]: [`SiteSummary`] snapshots, target choice, the share cap window.
//! - [`callback`]: [`CallbackBook`], callback tasks for abandoned callers.
//! - [`event`]: [`Effect`], [`Event`], [`EventKind`].
//! - [`metrics`]: [`Metrics`], per-interval/site/queue/agent counters from events.
//! - [`config`]: serde configuration with validation.
//! - [`error`]: the handlers' error type, [`DomainError`].
//!
//! See `API.md` beside this crate for how a driver calls it. The smallest driver:
//!
//! ```
//! use callgrid_domain::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let skills = vec![SkillConfig {
//!     name: "voice_line1".into(),
//!     channel: Channel::Voice,
//!     line: Line::Line1,
//!     handle_time_s_initial: 180,
//! }];
//! let mut site = Site::new(SiteId(0), RoutingConfig::with_skills(skills), OverflowConfig::default())?;
//! let mut metrics = Metrics::new(MetricsConfig::default(), 1, 1);
//! let mut effects = Vec::new();
//! site.add_agent(AgentSpec::new(AgentId(7), &[SkillId(0)]))?;
//! site.handle_login(TimeMs(0), AgentId(7), &mut effects)?;
//! let call = Contact::inbound(ContactId(1), Channel::Voice, Topic::Order, SkillId(0),
//!     CallerNumber(79_990_000_000), SiteId(0), TimeMs(1_000));
//! site.handle_arrival(TimeMs(1_000), call, &mut effects)?;
//! site.handle_accept(TimeMs(4_000), ContactId(1), &mut effects)?;
//! site.handle_end(TimeMs(100_000), ContactId(1), &mut effects)?;
//! site.handle_wrap_up_end(TimeMs(110_000), AgentId(7), ContactId(1), &mut effects)?;
//! for effect in effects.drain(..) {
//!     match effect {
//!         Effect::Event(event) => metrics.record(&event),
//!         Effect::Offer { .. } => { /* ring the agent, arm the offer timeout */ }
//!         Effect::CancelOffer { .. } | Effect::Overflow { .. } | Effect::RequestCallback(_) => {}
//!     }
//! }
//! metrics.finish(TimeMs(900_000));
//! let totals = metrics.site_totals(SiteId(0));
//! assert_eq!((totals.offered, totals.answered, totals.answered_within_target), (1, 1, 1));
//! assert_eq!(totals.aht_ms(), Some(106_000.0));
//! # Ok(())
//! # }
//! ```

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
pub use callback::{
    AbandonedCallback, AttemptResult, CallbackBook, CallbackCounters, CallbackEntry, CallbackError,
    CallbackMachine, CallbackPayload, CallbackRules, CallbackTask, ClosedCallback,
};
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
pub use site::{ContactPhase, DIRECT_TABLE_ENTRIES, OVERFLOW_HOPS_MAX, QueuePosition, Site};
