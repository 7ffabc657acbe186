//! Snapshot format 3, read by this binary (which writes format 4): the state as it was before
//! quality reviews — ledger entries without the answering agent and the recording reference,
//! and no reviews. A node that restarts from a format-3 snapshot, or receives one from a peer
//! not yet upgraded, converts it here; the missing fields start empty (an entry answered
//! before the upgrade has no agent, so it cannot be reviewed).

use std::collections::{BTreeMap, BTreeSet};

use callgrid_domain::CallbackMachine;
use serde::{Deserialize, Serialize};

use super::super::ledger::{LedgerEntry, LedgerStage, OverflowCounts};
use super::super::model::{
    Callback, CallbackId, Complaint, ComplaintId, Order, OrderId, PreOrder, PreOrderId,
    Reservation, ReservationId, SiteSummary, StatePolicy, TimestampMs,
};
use super::super::site_writes::OutboxProgress;
use super::agents::AgentRoster;
use super::callbacks::NodeCallback;
use super::idempotency::IdempotencyTable;
use super::quality::QualityBook;
use super::retention::RecordKind;
use super::{ReplicatedState, SiteControl, Tallies};

/// A ledger entry of format 3 (the same fields, in order, without the last two).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LedgerEntryV3 {
    contact: u64,
    owner: String,
    caller: String,
    skill: String,
    arrived_at_ms: TimestampMs,
    arrived_at_site: String,
    stage: LedgerStage,
    hops: u8,
    moved_from: Option<u64>,
    updated_at_ms: TimestampMs,
    sequence: u64,
}

/// The replicated state of format 3: every field of [`ReplicatedState`] in order, with
/// format-3 ledger entries and without the quality reviews.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReplicatedStateV3 {
    applied_index: u64,
    policy: StatePolicy,
    orders: BTreeMap<OrderId, Order>,
    pre_orders: BTreeMap<PreOrderId, PreOrder>,
    reservations: BTreeMap<ReservationId, Reservation>,
    complaints: BTreeMap<ComplaintId, Complaint>,
    callback_machine: CallbackMachine<NodeCallback>,
    callbacks: BTreeMap<CallbackId, Callback>,
    site_summaries: BTreeMap<String, SiteSummary>,
    next_id: u64,
    orders_by_caller: BTreeMap<String, BTreeSet<OrderId>>,
    complaints_by_caller: BTreeMap<String, BTreeSet<ComplaintId>>,
    pre_orders_waiting_by_sku: BTreeMap<String, BTreeSet<PreOrderId>>,
    reservation_expiries: BTreeSet<(TimestampMs, ReservationId)>,
    order_ready_callbacks: BTreeMap<OrderId, CallbackId>,
    retention: BTreeSet<(TimestampMs, RecordKind, u64)>,
    tallies: Tallies,
    control: SiteControl,
    idempotency: IdempotencyTable,
    outbox_progress: BTreeMap<String, OutboxProgress>,
    ledger: BTreeMap<u64, LedgerEntryV3>,
    ledger_open_by_site: BTreeMap<String, BTreeSet<u64>>,
    overflow_counts: BTreeMap<String, OverflowCounts>,
}

impl From<LedgerEntryV3> for LedgerEntry {
    fn from(old: LedgerEntryV3) -> Self {
        LedgerEntry {
            contact: old.contact,
            owner: old.owner,
            caller: old.caller,
            skill: old.skill,
            arrived_at_ms: old.arrived_at_ms,
            arrived_at_site: old.arrived_at_site,
            stage: old.stage,
            hops: old.hops,
            moved_from: old.moved_from,
            updated_at_ms: old.updated_at_ms,
            sequence: old.sequence,
            agent: None,
            recording_ref: None,
        }
    }
}

impl From<ReplicatedStateV3> for ReplicatedState {
    fn from(old: ReplicatedStateV3) -> Self {
        ReplicatedState {
            applied_index: old.applied_index,
            policy: old.policy,
            orders: old.orders,
            pre_orders: old.pre_orders,
            reservations: old.reservations,
            complaints: old.complaints,
            callback_machine: old.callback_machine,
            callbacks: old.callbacks,
            site_summaries: old.site_summaries,
            next_id: old.next_id,
            orders_by_caller: old.orders_by_caller,
            complaints_by_caller: old.complaints_by_caller,
            pre_orders_waiting_by_sku: old.pre_orders_waiting_by_sku,
            reservation_expiries: old.reservation_expiries,
            order_ready_callbacks: old.order_ready_callbacks,
            retention: old.retention,
            tallies: old.tallies,
            control: old.control,
            idempotency: old.idempotency,
            outbox_progress: old.outbox_progress,
            ledger: old
                .ledger
                .into_iter()
                .map(|(contact, entry)| (contact, entry.into()))
                .collect(),
            ledger_open_by_site: old.ledger_open_by_site,
            overflow_counts: old.overflow_counts,
            quality: QualityBook::default(),
            agents: AgentRoster::default(),
        }
    }
}
