//! Regression tests for the defects of issue 8 in the replicated state (each failed before
//! its fix): callbacks never dialled, repeated order statuses, callers phoning again, claims
//! that never get an outcome, state events for supervisors, retention and O(1) counts.
#![allow(clippy::unwrap_used)]

use super::{CALLER, Harness, created_id, envelope, pickup_order, status};
use crate::state::command::{ApplyError, Command, Outcome};
use crate::state::machine::{CALLBACK_CLAIM_LEASE_MS, CLOSED_RECORD_RETENTION_MS, StateEvent};
use crate::state::model::{
    CallbackOutcome, CallbackStatus, ComplaintStatus, OrderStatus, ReservationStatus, StatePolicy,
};
use crate::state::{SNAPSHOT_FORMAT_VERSION, SharedState};

fn abandoned(caller: &str) -> Command {
    Command::CreateAbandonedCallback {
        caller: caller.to_string(),
        skill: "line1".to_string(),
        ordering_time_ms: 0,
    }
}

fn callback_id(outcome: Result<Outcome, ApplyError>) -> u64 {
    match outcome.unwrap() {
        Outcome::CallbacksCreated(ids) => ids[0],
        other => panic!("unexpected outcome {other:?}"),
    }
}

#[test]
fn callback_outcome_for_a_callback_never_dialled_is_refused() {
    let mut harness = Harness::new();
    let id = callback_id(harness.run(0, abandoned(CALLER)));
    let due = StatePolicy::default().abandoned_callback_delay_ms;
    let answer = harness.run(
        due,
        Command::RecordCallbackAttempt {
            callback: id,
            outcome: CallbackOutcome::NoAnswer,
        },
    );
    assert!(matches!(answer, Err(ApplyError::Conflict(_))), "{answer:?}");
    let record = harness.state.callback(id).unwrap();
    assert_eq!(
        (record.status, record.attempts, record.due_at_ms),
        (CallbackStatus::Pending, 0, due)
    );
    // Cancelling a callback that waits is allowed: it closes it.
    harness
        .run(
            due,
            Command::RecordCallbackAttempt {
                callback: id,
                outcome: CallbackOutcome::Cancelled,
            },
        )
        .unwrap();
    assert_eq!(
        harness.state.callback(id).unwrap().status,
        CallbackStatus::Cancelled
    );
}

#[test]
fn repeating_the_current_order_status_is_a_no_op() {
    let mut harness = Harness::new();
    let order = created_id(harness.run(0, pickup_order()));
    harness
        .run(10, status(order, OrderStatus::Confirmed))
        .unwrap();
    let history = harness.state.order(order).unwrap().history.len();
    assert_eq!(
        harness.run(20, status(order, OrderStatus::Confirmed)),
        Ok(Outcome::Done),
        "a retried status change succeeds"
    );
    assert_eq!(
        harness.state.order(order).unwrap().history.len(),
        history,
        "nothing changed"
    );
    // A status that does not follow is still a conflict.
    assert!(matches!(
        harness.run(30, status(order, OrderStatus::Collected)),
        Err(ApplyError::Conflict(_))
    ));
}

#[test]
fn caller_phoning_again_cancels_the_waiting_abandoned_callback_only() {
    let mut harness = Harness::new();
    let id = callback_id(harness.run(0, abandoned(CALLER)));
    let other = callback_id(harness.run(0, abandoned("+79990001122")));
    harness
        .run(
            1_000,
            Command::CallerCalledIn {
                caller: CALLER.to_string(),
            },
        )
        .unwrap();
    assert_eq!(
        harness.state.callback(id).unwrap().status,
        CallbackStatus::Cancelled
    );
    assert_eq!(
        harness.state.callback(other).unwrap().status,
        CallbackStatus::Pending
    );
    assert!(harness.state.abandoned_callback_for(CALLER).is_none());
    // A claimed (being dialled) callback is not cancelled by a call in.
    let due = StatePolicy::default().abandoned_callback_delay_ms;
    harness
        .run(due, Command::ClaimCallback { callback: other })
        .unwrap();
    harness
        .run(
            due,
            Command::CallerCalledIn {
                caller: "+79990001122".to_string(),
            },
        )
        .unwrap();
    assert_eq!(
        harness.state.callback(other).unwrap().status,
        CallbackStatus::Queued
    );
}

#[test]
fn a_claim_without_outcome_runs_out_and_the_callback_is_retried() {
    let mut harness = Harness::new();
    let id = callback_id(harness.run(0, abandoned(CALLER)));
    let due = StatePolicy::default().abandoned_callback_delay_ms;
    harness
        .run(due, Command::ClaimCallback { callback: id })
        .unwrap();
    let expired_at = due + CALLBACK_CLAIM_LEASE_MS;
    harness
        .run(expired_at - 1, Command::SetPolicy(StatePolicy::default()))
        .unwrap();
    assert_eq!(
        harness.state.callback(id).unwrap().status,
        CallbackStatus::Queued
    );
    let mut produced = Vec::new();
    harness.index += 1;
    harness
        .state
        .apply_with_events(
            harness.index,
            &envelope(expired_at, Command::SetPolicy(StatePolicy::default())),
            &mut produced,
        )
        .unwrap();
    assert_eq!(
        produced,
        vec![StateEvent::CallbackClaimExpired {
            callback: id,
            site: Some("msk".to_string())
        }]
    );
    let record = harness.state.callback(id).unwrap();
    assert_eq!(
        record.status,
        CallbackStatus::Pending,
        "not stuck in queued"
    );
    assert_eq!(record.claimed_by, None);
    assert_eq!(record.attempts, 1);
    assert_eq!(record.last_outcome, Some(CallbackOutcome::NoAnswer));
    assert_eq!(
        record.due_at_ms,
        expired_at + StatePolicy::default().callback_retry_interval_ms
    );
}

#[test]
fn reservation_expiry_and_complaint_escalation_reach_subscribers() {
    let shared = SharedState::new();
    let mut events = shared.subscribe_events();
    let commands = [
        Command::CreateReservation {
            caller: CALLER.to_string(),
            pharmacy: "p1".into(),
            items: vec![super::item("A", 1, 10)],
            expires_at_ms: 1_000,
        },
        Command::FileComplaint {
            caller: CALLER.into(),
            order: None,
            text: "rude".into(),
        },
        Command::FileComplaint {
            caller: CALLER.into(),
            order: None,
            text: "rude again".into(),
        },
    ];
    for (index, (at_ms, command)) in [
        (100, &commands[0]),
        (200, &commands[1]),
        (2_000, &commands[2]),
    ]
    .into_iter()
    .enumerate()
    {
        let bytes = crate::state::encode_envelope(&envelope(at_ms, command.clone())).unwrap();
        shared.apply_entry(index as u64 + 1, &bytes);
    }
    let expired = events.try_recv().unwrap();
    assert!(
        matches!(expired, StateEvent::ReservationExpired { reservation: 1, ref pharmacy, expires_at_ms: 1_000, .. } if pharmacy == "p1"),
        "{expired:?}"
    );
    let escalated = events.try_recv().unwrap();
    assert_eq!(
        escalated,
        StateEvent::ComplaintEscalated {
            complaint: 3,
            site: "msk".into(),
            caller: CALLER.into(),
            repeat_of: vec![2],
        }
    );
    assert!(events.try_recv().is_err(), "nothing else");
    shared.read(|state| {
        assert_eq!(
            state.reservation(1).unwrap().status,
            ReservationStatus::Expired
        );
        assert_eq!(
            state.complaint(3).unwrap().status,
            ComplaintStatus::Escalated
        );
        assert_eq!(state.counts().complaints_escalated, 1);
    });
}

#[test]
fn closed_records_are_dropped_after_retention_and_open_ones_kept() {
    let mut harness = Harness::new();
    let closed = created_id(harness.run(0, pickup_order()));
    let open = created_id(harness.run(0, pickup_order()));
    harness
        .run(10, status(closed, OrderStatus::Cancelled))
        .unwrap();
    let callback = callback_id(harness.run(10, abandoned(CALLER)));
    harness
        .run(
            20,
            Command::RecordCallbackAttempt {
                callback,
                outcome: CallbackOutcome::Cancelled,
            },
        )
        .unwrap();
    assert_eq!(harness.state.retained_closed_records(), 2);
    let later = 20 + CLOSED_RECORD_RETENTION_MS;
    harness
        .run(later - 11, Command::SetPolicy(StatePolicy::default()))
        .unwrap();
    assert!(
        harness.state.order(closed).is_some(),
        "kept for the retention period"
    );
    harness
        .run(later, Command::SetPolicy(StatePolicy::default()))
        .unwrap();
    assert!(harness.state.order(closed).is_none());
    assert!(harness.state.callback(callback).is_none());
    assert!(harness.state.order(open).is_some(), "open records stay");
    assert_eq!(harness.state.orders_by_caller(CALLER, false).len(), 1);
    assert_eq!(harness.state.retained_closed_records(), 0);
    // Counts are of orders taken, not of orders kept.
    assert_eq!(harness.state.counts().orders, 2);
    assert_eq!(harness.state.counts().orders_open, 1);
    assert_eq!(harness.state.check_tallies(), Ok(()));
}

#[test]
fn counts_are_kept_as_tallies_that_match_the_records() {
    let mut harness = Harness::new();
    for round in 0..20_u64 {
        let order = created_id(harness.run(round, pickup_order()));
        if round % 3 == 0 {
            harness
                .run(round, status(order, OrderStatus::Cancelled))
                .unwrap();
        }
        let complaint = created_id(harness.run(
            round,
            Command::FileComplaint {
                caller: CALLER.into(),
                order: None,
                text: "x".into(),
            },
        ));
        if round % 2 == 0 {
            harness
                .run(
                    round,
                    Command::ResolveComplaint {
                        complaint,
                        resolution: "ok".into(),
                    },
                )
                .unwrap();
        }
        let pre_order = created_id(harness.run(
            round,
            Command::CreatePreOrder {
                caller: CALLER.into(),
                sku: format!("S{}", round % 4),
                name: "n".into(),
                quantity: 1,
                pharmacy: "p".into(),
            },
        ));
        if round % 5 == 0 {
            harness
                .run(round, Command::CancelPreOrder { pre_order })
                .unwrap();
        }
        assert_eq!(harness.state.check_tallies(), Ok(()), "round {round}");
    }
    harness
        .run(
            100,
            Command::MarkInStock {
                sku: "S1".into(),
                pharmacy: None,
            },
        )
        .unwrap();
    assert_eq!(harness.state.check_tallies(), Ok(()));
    let counts = harness.state.counts();
    assert_eq!(
        (counts.orders, counts.orders_open, counts.complaints),
        (20, 13, 20)
    );
    assert_eq!(
        counts.complaints_escalated, 10,
        "19 repeats, 9 of them resolved"
    );
}

#[test]
fn a_snapshot_of_the_first_format_is_refused_clearly() {
    let shared = SharedState::new();
    let bytes = crate::state::encode_envelope(&envelope(0, pickup_order())).unwrap();
    shared.apply_entry(1, &bytes);
    let mut snapshot = shared.snapshot().unwrap();
    assert_eq!(snapshot[0], SNAPSHOT_FORMAT_VERSION);
    snapshot[0] = 1;
    let error = SharedState::new()
        .restore(&snapshot)
        .unwrap_err()
        .to_string();
    assert!(error.contains("version"), "{error}");
}
