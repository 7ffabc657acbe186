//! The deterministic state machine: applies committed commands to the replicated records.
//!
//! Rules that hold for every command:
//! - time comes only from the envelope (`at_ms`), never from a clock;
//! - a command is checked completely before anything is changed, so a refused command leaves
//!   the state exactly as it was (nothing half-applied);
//! - collections are `BTreeMap`s so iteration order, snapshots and responses are the same on
//!   every site;
//! - what happened that supervisors must hear of (a reservation expired, a complaint escalated)
//!   comes out as [`StateEvent`]s of the apply, in log order.
//!
//! One file per record kind: [`orders`], [`pre_orders`], [`reservations`], [`complaints`],
//! [`callbacks`] (the domain's callback machine with the node's payloads); [`retention`] drops
//! closed records after [`CLOSED_RECORD_RETENTION_MS`]; [`idempotency`] remembers the first
//! result of each idempotent create for [`IDEMPOTENCY_KEY_TTL_MS`]; [`outbox`] applies a
//! site's outbox batches, each entry once; [`ledger`] keeps the contact ledger and overflow
//! claims; [`adoption`] hands a lost site's open contacts to a live one; [`quality`] keeps
//! supervisors' reviews of finished contacts; [`snapshot_v3`] reads the snapshots of format 3.

mod adoption;
mod agents;
mod callbacks;
mod complaints;
mod idempotency;
mod ledger;
mod orders;
mod outbox;
mod pre_orders;
mod quality;
mod reservations;
mod retention;
mod site_control;
mod snapshot_v3;

use std::collections::{BTreeMap, BTreeSet};

use callgrid_domain::{CallbackMachine, TimeMs};
use serde::{Deserialize, Serialize};

pub use adoption::{ADOPTIONS_PER_COMMAND_MAX, SITE_LOST_AFTER_MS};
pub use agents::{
    AgentRecord, AgentRoster, LOGIN_CHARS_MAX, ROSTER_AGENTS_MAX,
    describe as describe_refused_agents, login_is_valid,
};
pub use callbacks::{CALLBACK_CLAIM_LEASE_MS, CALLBACKS_OPEN_MAX, NodeCallback};
use idempotency::IdempotencyTable;
pub use idempotency::{
    IDEMPOTENCY_EXPIRIES_PER_APPLY_MAX, IDEMPOTENCY_KEY_TTL_MS, IDEMPOTENCY_KEYS_MAX,
};
pub use ledger::OVERFLOW_HOPS_MAX;
use quality::QualityBook;
pub use retention::CLOSED_RECORD_RETENTION_MS;
use retention::RecordKind;
pub use site_control::{SiteControl, TOKENS_MAX, TokenRecord};
pub(crate) use snapshot_v3::ReplicatedStateV3;

use super::command::{ApplyError, Command, Envelope, Outcome, Response, normalize_phone};
use super::ledger::{LedgerEntry, OverflowCounts};
use super::model::{
    Callback, CallbackId, Complaint, ComplaintId, Order, OrderId, PreOrder, PreOrderId,
    Reservation, ReservationId, SiteSummary, StatePolicy, TimestampMs,
};
use super::site_writes::OutboxProgress;

/// Audit entries kept per order; older ones are dropped first (transitions are few, updates
/// are what could grow it).
pub const AUDIT_ENTRIES_MAX: usize = 256;
/// Callbacks created per `MarkInStock` command; further waiting customers are notified by the
/// next `MarkInStock` for the same item.
pub const CALLBACKS_PER_STOCK_ARRIVAL_MAX: usize = 1_000;
/// Reservations expired per applied command (the sweep is amortised over commands).
pub const RESERVATION_EXPIRIES_PER_APPLY_MAX: usize = 1_000;

/// Something a committed command (or the time it carried) did that supervisors are told of.
/// Produced identically on every replica; each node broadcasts what its own apply produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum StateEvent {
    /// A reservation was not collected before its expiry.
    ReservationExpired {
        /// The reservation.
        reservation: ReservationId,
        /// Site that took it.
        site: String,
        /// Pharmacy that held the items.
        pharmacy: String,
        /// When it expired.
        expires_at_ms: TimestampMs,
    },
    /// A repeat complaint was escalated to the complaints line supervisor.
    ComplaintEscalated {
        /// The complaint.
        complaint: ComplaintId,
        /// Site that took it.
        site: String,
        /// Customer's number.
        caller: String,
        /// The earlier complaints it repeats.
        repeat_of: Vec<ComplaintId>,
    },
    /// A claimed callback got no outcome before its lease ran out; it counts as unanswered.
    CallbackClaimExpired {
        /// The callback.
        callback: CallbackId,
        /// Site that had claimed it.
        site: Option<String>,
    },
}

/// Counters kept as records change, so reading them is O(1) (every `/metrics` scrape).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Tallies {
    orders_taken: u64,
    orders_open: u64,
    complaints_filed: u64,
    complaints_escalated: u64,
    pre_orders_waiting: u64,
}

/// Everything replicated through Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicatedState {
    /// Raft index of the last applied entry.
    pub applied_index: u64,
    /// Replicated policy.
    pub policy: StatePolicy,
    orders: BTreeMap<OrderId, Order>,
    pre_orders: BTreeMap<PreOrderId, PreOrder>,
    reservations: BTreeMap<ReservationId, Reservation>,
    complaints: BTreeMap<ComplaintId, Complaint>,
    /// The callback rules (open tasks, due times, claims, retries): the domain's machine.
    callback_machine: CallbackMachine<NodeCallback>,
    /// Every callback's record, open or closed (until retention), as readers see it.
    callbacks: BTreeMap<CallbackId, Callback>,
    site_summaries: BTreeMap<String, SiteSummary>,
    next_id: u64,
    orders_by_caller: BTreeMap<String, BTreeSet<OrderId>>,
    complaints_by_caller: BTreeMap<String, BTreeSet<ComplaintId>>,
    pre_orders_waiting_by_sku: BTreeMap<String, BTreeSet<PreOrderId>>,
    reservation_expiries: BTreeSet<(TimestampMs, ReservationId)>,
    /// The open "order ready" reminder of each order waiting at its pickup point.
    order_ready_callbacks: BTreeMap<OrderId, CallbackId>,
    /// Closed records by when they may be dropped.
    retention: BTreeSet<(TimestampMs, RecordKind, u64)>,
    tallies: Tallies,
    /// Drained sites, cluster-wide tokens, per-site policies (snapshot format 3).
    control: SiteControl,
    /// The first result of each idempotent create, per (principal, key), until it expires.
    idempotency: IdempotencyTable,
    /// Per site, how far its outbox has been applied (de-duplication of retried batches).
    outbox_progress: BTreeMap<String, OutboxProgress>,
    /// The contact ledger: every contact's entry, by its id at its site.
    ledger: BTreeMap<u64, LedgerEntry>,
    /// Open ledger entries by owner site.
    ledger_open_by_site: BTreeMap<String, BTreeSet<u64>>,
    /// Overflow moves per site, from committed claims.
    overflow_counts: BTreeMap<String, OverflowCounts>,
    /// Quality reviews of finished contacts (snapshot format 4).
    quality: QualityBook,
    /// The cluster-wide agent roster (snapshot format 4; last, see `state::SNAPSHOT_FORMAT_BASE`).
    agents: AgentRoster,
}

impl Default for ReplicatedState {
    fn default() -> Self {
        let policy = StatePolicy::default();
        Self {
            applied_index: 0,
            callback_machine: CallbackMachine::new(callbacks::rules(&policy)),
            policy,
            orders: BTreeMap::new(),
            pre_orders: BTreeMap::new(),
            reservations: BTreeMap::new(),
            complaints: BTreeMap::new(),
            callbacks: BTreeMap::new(),
            site_summaries: BTreeMap::new(),
            next_id: 0,
            orders_by_caller: BTreeMap::new(),
            complaints_by_caller: BTreeMap::new(),
            pre_orders_waiting_by_sku: BTreeMap::new(),
            reservation_expiries: BTreeSet::new(),
            order_ready_callbacks: BTreeMap::new(),
            retention: BTreeSet::new(),
            tallies: Tallies::default(),
            control: SiteControl::default(),
            idempotency: IdempotencyTable::default(),
            outbox_progress: BTreeMap::new(),
            ledger: BTreeMap::new(),
            ledger_open_by_site: BTreeMap::new(),
            overflow_counts: BTreeMap::new(),
            quality: QualityBook::default(),
            agents: AgentRoster::default(),
        }
    }
}

impl ReplicatedState {
    /// An empty state with the default policy.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one committed envelope at Raft index `index`.
    pub fn apply(&mut self, index: u64, envelope: &Envelope) -> Response {
        self.apply_with_events(index, envelope, &mut Vec::new())
    }

    /// Applies one committed envelope at Raft index `index`, appending the [`StateEvent`]s it
    /// produced (also those of the time sweeps it ran, whether or not the command succeeded).
    pub fn apply_with_events(
        &mut self,
        index: u64,
        envelope: &Envelope,
        events: &mut Vec<StateEvent>,
    ) -> Response {
        self.applied_index = index;
        self.expire_reservations(envelope.at_ms, events);
        self.expire_callback_claims(envelope.at_ms, events);
        self.drop_expired_records(envelope.at_ms);
        self.idempotency.expire(envelope.at_ms);
        if let Err(invalid) = envelope.command.validate() {
            return Err(ApplyError::Invalid(invalid));
        }
        if let Command::Idempotent { key, command } = &envelope.command {
            return self.apply_once(index, envelope, key, command, events);
        }
        self.apply_command(envelope, events)
    }

    /// Records that an entry at `index` was applied without a command (e.g. an undecodable or
    /// empty entry), so the applied index stays exact.
    pub fn skip(&mut self, index: u64) {
        self.applied_index = index;
    }

    fn allocate_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn apply_command(&mut self, envelope: &Envelope, events: &mut Vec<StateEvent>) -> Response {
        let at_ms = envelope.at_ms;
        let actor = &envelope.actor;
        let site = &envelope.site;
        match &envelope.command {
            Command::CreateOrder {
                caller,
                items,
                fulfilment,
                payment,
                delivery_note,
            } => self.create_order(
                envelope,
                orders::NewOrder {
                    caller,
                    items,
                    fulfilment,
                    payment: *payment,
                    delivery_note,
                },
            ),
            Command::UpdateOrder {
                order,
                items,
                fulfilment,
                payment,
                delivery_note,
            } => self.update_order(
                at_ms,
                actor,
                *order,
                orders::OrderChanges {
                    items: items.as_deref(),
                    fulfilment: fulfilment.as_ref(),
                    payment: *payment,
                    delivery_note: delivery_note.as_deref(),
                },
            ),
            Command::ChangeOrderStatus { order, status } => {
                self.change_order_status(at_ms, actor, *order, *status)
            }
            Command::CreatePreOrder {
                caller,
                sku,
                name,
                quantity,
                pharmacy,
            } => self.create_pre_order(
                envelope,
                pre_orders::NewPreOrder {
                    caller,
                    sku,
                    name,
                    quantity: *quantity,
                    pharmacy,
                },
            ),
            Command::CancelPreOrder { pre_order } => self.cancel_pre_order(at_ms, *pre_order),
            Command::MarkInStock { sku, pharmacy } => {
                self.mark_in_stock(at_ms, sku, pharmacy.as_deref())
            }
            Command::CreateReservation {
                caller,
                pharmacy,
                items,
                expires_at_ms,
            } => self.create_reservation(envelope, caller, pharmacy, items, *expires_at_ms),
            Command::CollectReservation { reservation } => {
                self.finish_reservation(at_ms, *reservation, true)
            }
            Command::CancelReservation { reservation } => {
                self.finish_reservation(at_ms, *reservation, false)
            }
            Command::FileComplaint {
                caller,
                order,
                text,
            } => self.file_complaint(envelope, caller, *order, text, events),
            Command::ResolveComplaint {
                complaint,
                resolution,
            } => self.resolve_complaint(at_ms, *complaint, resolution),
            Command::CreateAbandonedCallback {
                caller,
                skill,
                ordering_time_ms,
            } => self.create_abandoned_callback(at_ms, site, caller, skill, *ordering_time_ms),
            Command::ClaimCallback { callback } => self.claim_callback(at_ms, site, *callback),
            Command::ReleaseCallback { callback } => self.release_callback(*callback),
            Command::RecordCallbackAttempt { callback, outcome } => {
                self.record_attempt(at_ms, *callback, *outcome)
            }
            Command::CallerCalledIn { caller } => self.caller_called_in(at_ms, caller),
            Command::Outbox(batch) => self.apply_outbox_batch(at_ms, site, batch, events),
            Command::ClaimOverflow { contact, from, to } => {
                if to != site {
                    return Err(ApplyError::Conflict(format!(
                        "site {site} cannot claim for {to}"
                    )));
                }
                self.claim_overflow(at_ms, site, *contact, from)
            }
            Command::SeedAgents { skills, agents } => self.seed_agents(at_ms, site, skills, agents),
            Command::AdoptSite { site: lost } => self.adopt_site(at_ms, site, lost),
            Command::RecoverOwnContacts { before_ms } => {
                self.recover_own_contacts(at_ms, site, *before_ms)
            }
            Command::ReviewContact {
                contact,
                checklist,
                scores,
                comment,
            } => self.review_contact(
                at_ms,
                actor,
                quality::NewReview {
                    contact: *contact,
                    checklist,
                    scores,
                    comment,
                },
            ),
            Command::PublishSiteSummary(summary) => {
                self.site_summaries
                    .insert(summary.site.clone(), summary.clone());
                Ok(Outcome::Done)
            }
            Command::SetPolicy(policy) => {
                self.policy = policy.clone();
                self.callback_machine.set_rules(callbacks::rules(policy));
                Ok(Outcome::Done)
            }
            Command::SetSiteDrained { site, drained } => self.set_site_drained(site, *drained),
            Command::GrantTokens { tokens, seed } => self.grant_tokens(at_ms, site, tokens, *seed),
            Command::RevokeToken { sha256 } => self.revoke_token(at_ms, site, sha256),
            Command::SetSitePolicy { site, policy } => self.set_site_policy(site, policy),
            // Unwrapped by `apply_with_events`; validation refuses one inside another.
            Command::Idempotent { .. } => Err(ApplyError::Invalid(
                super::command::InvalidCommand::new("command", "nested idempotency key"),
            )),
        }
    }

    /// An order by id.
    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.orders.get(&id)
    }

    /// Orders, newest first, at most `limit`.
    pub fn orders_recent(&self, limit: usize) -> Vec<&Order> {
        self.orders.values().rev().take(limit).collect()
    }

    /// Orders of a caller (any number format), newest first; `open_only` keeps unfinished ones.
    pub fn orders_by_caller(&self, caller: &str, open_only: bool) -> Vec<&Order> {
        let Ok(normalized) = normalize_phone(caller) else {
            return Vec::new();
        };
        self.orders_by_caller
            .get(&normalized)
            .map(|ids| {
                ids.iter()
                    .rev()
                    .filter_map(|id| self.orders.get(id))
                    .filter(|order| !open_only || order.status.is_open())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A pre-order by id.
    pub fn pre_order(&self, id: PreOrderId) -> Option<&PreOrder> {
        self.pre_orders.get(&id)
    }

    /// Pre-orders, newest first, at most `limit`.
    pub fn pre_orders_recent(&self, limit: usize) -> Vec<&PreOrder> {
        self.pre_orders.values().rev().take(limit).collect()
    }

    /// A reservation by id.
    pub fn reservation(&self, id: ReservationId) -> Option<&Reservation> {
        self.reservations.get(&id)
    }

    /// Reservations, newest first, at most `limit`.
    pub fn reservations_recent(&self, limit: usize) -> Vec<&Reservation> {
        self.reservations.values().rev().take(limit).collect()
    }

    /// A complaint by id.
    pub fn complaint(&self, id: ComplaintId) -> Option<&Complaint> {
        self.complaints.get(&id)
    }

    /// Complaints, newest first, at most `limit`.
    pub fn complaints_recent(&self, limit: usize) -> Vec<&Complaint> {
        self.complaints.values().rev().take(limit).collect()
    }

    /// Published site summaries.
    pub fn site_summaries(&self) -> impl Iterator<Item = &SiteSummary> {
        self.site_summaries.values()
    }

    /// Counts of records, for metrics. O(1).
    pub fn counts(&self) -> StateCounts {
        let count = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
        StateCounts {
            orders: count(self.tallies.orders_taken),
            orders_open: count(self.tallies.orders_open),
            pre_orders_waiting: count(self.tallies.pre_orders_waiting),
            reservations_active: self.reservation_expiries.len(),
            complaints: count(self.tallies.complaints_filed),
            complaints_escalated: count(self.tallies.complaints_escalated),
            callbacks_open: self.callback_machine.open_count(),
            idempotency_keys: self.idempotency.len(),
            idempotency_keys_evicted: self.idempotency.evicted(),
        }
    }

    /// Recounts the tallies the slow way and compares (debug assertions and tests). O(records).
    pub fn check_tallies(&self) -> Result<(), String> {
        let orders_open = self.orders.values().filter(|o| o.status.is_open()).count();
        let escalated = self
            .complaints
            .values()
            .filter(|c| c.status == super::model::ComplaintStatus::Escalated)
            .count();
        let waiting: usize = self
            .pre_orders_waiting_by_sku
            .values()
            .map(BTreeSet::len)
            .sum();
        let recounted = (orders_open as u64, escalated as u64, waiting as u64);
        let kept = (
            self.tallies.orders_open,
            self.tallies.complaints_escalated,
            self.tallies.pre_orders_waiting,
        );
        if recounted != kept {
            return Err(format!("tallies {kept:?} but records say {recounted:?}"));
        }
        self.idempotency.check_invariants()?;
        self.callback_machine.check_invariants()
    }
}

/// Record counts of the replicated state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Orders ever taken.
    pub orders: usize,
    /// Orders not yet finished.
    pub orders_open: usize,
    /// Pre-orders waiting for stock.
    pub pre_orders_waiting: usize,
    /// Active reservations.
    pub reservations_active: usize,
    /// Complaints ever filed.
    pub complaints: usize,
    /// Complaints currently escalated.
    pub complaints_escalated: usize,
    /// Callbacks pending or queued.
    pub callbacks_open: usize,
    /// Idempotency keys remembered (at most `IDEMPOTENCY_KEYS_MAX`).
    pub idempotency_keys: usize,
    /// Idempotency keys forgotten before their expiry because the table was full.
    pub idempotency_keys_evicted: u64,
}

fn time(at_ms: TimestampMs) -> TimeMs {
    TimeMs(at_ms)
}

fn remove_from_index(index: &mut BTreeMap<String, BTreeSet<u64>>, key: &str, id: u64) {
    if let Some(set) = index.get_mut(key) {
        set.remove(&id);
        if set.is_empty() {
            index.remove(key);
        }
    }
}
