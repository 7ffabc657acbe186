//! Unit tests of the replicated state machine: transitions, callbacks, complaints, reservations,
//! determinism and the encodings.
#![allow(clippy::unwrap_used)]

mod agents;
mod defects;
mod idempotency;
mod ledger;
mod outbox;
mod quality;
mod site_control;
mod snapshot_v3;

use crate::state::command::{ApplyError, Command, Envelope, Outcome};
use crate::state::model::{
    Actor, CallbackOutcome, CallbackReason, CallbackStatus, ComplaintStatus, DAY_MS, Fulfilment,
    OrderItem, OrderStatus, PaymentForm, PreOrderStatus, ReservationStatus, Role, StatePolicy,
};
use crate::state::{
    ReplicatedState, SharedState, decode_envelope, decode_response, encode_envelope,
};

const CALLER: &str = "+79161234567";

fn agent() -> Actor {
    Actor {
        name: "anna".to_string(),
        role: Role::Agent,
    }
}

fn envelope(at_ms: u64, command: Command) -> Envelope {
    Envelope {
        at_ms,
        actor: agent(),
        site: "msk".to_string(),
        command,
    }
}

struct Harness {
    state: ReplicatedState,
    index: u64,
}

impl Harness {
    fn new() -> Self {
        Self {
            state: ReplicatedState::new(),
            index: 0,
        }
    }

    fn run(&mut self, at_ms: u64, command: Command) -> Result<Outcome, ApplyError> {
        self.index += 1;
        self.state.apply(self.index, &envelope(at_ms, command))
    }
}

fn item(sku: &str, quantity: u32, price: u64) -> OrderItem {
    OrderItem {
        sku: sku.to_string(),
        name: format!("drug {sku}"),
        quantity,
        unit_price_minor: price,
    }
}

fn pickup_order() -> Command {
    Command::CreateOrder {
        caller: CALLER.to_string(),
        items: vec![item("A1", 2, 15_050), item("B2", 1, 9_900)],
        fulfilment: Fulfilment::Pickup {
            pharmacy: "apteka-12".to_string(),
        },
        payment: PaymentForm::Card,
        delivery_note: String::new(),
    }
}

fn delivery_order() -> Command {
    Command::CreateOrder {
        caller: CALLER.to_string(),
        items: vec![item("A1", 1, 100)],
        fulfilment: Fulfilment::Delivery {
            address: "Tverskaya 1".to_string(),
        },
        payment: PaymentForm::Cash,
        delivery_note: "ring twice".to_string(),
    }
}

fn created_id(outcome: Result<Outcome, ApplyError>) -> u64 {
    match outcome.unwrap() {
        Outcome::OrderCreated(id)
        | Outcome::PreOrderCreated(id)
        | Outcome::ReservationCreated(id) => id,
        Outcome::ComplaintFiled { complaint, .. } => complaint,
        other => panic!("unexpected outcome {other:?}"),
    }
}

fn status(id: u64, status: OrderStatus) -> Command {
    Command::ChangeOrderStatus { order: id, status }
}

#[test]
fn order_total_and_audit_trail() {
    let mut harness = Harness::new();
    let id = created_id(harness.run(1_000, pickup_order()));
    harness
        .run(2_000, status(id, OrderStatus::Confirmed))
        .unwrap();
    let order = harness.state.order(id).unwrap();
    assert_eq!(order.total_minor, 2 * 15_050 + 9_900);
    assert_eq!(order.status, OrderStatus::Confirmed);
    assert_eq!(order.history.len(), 2);
    assert_eq!(order.history[1].at_ms, 2_000);
    assert_eq!(order.history[1].actor.name, "anna");
    assert!(order.history[1].change.contains("Confirmed"));
}

#[test]
fn pickup_lifecycle_and_ready_callback() {
    let mut harness = Harness::new();
    let id = created_id(harness.run(1_000, pickup_order()));
    for next in [OrderStatus::Confirmed, OrderStatus::Assembled] {
        assert_eq!(harness.run(2_000, status(id, next)).unwrap(), Outcome::Done);
    }
    let Outcome::CallbacksCreated(callbacks) =
        harness.run(3_000, status(id, OrderStatus::Ready)).unwrap()
    else {
        panic!("ready at pickup must create a callback");
    };
    assert_eq!(callbacks.len(), 1);
    let callback = harness.state.callback(callbacks[0]).unwrap();
    assert_eq!(callback.reason, CallbackReason::OrderReady { order: id });
    assert_eq!(callback.due_at_ms, 3_000);
    // Delivery-only transition refused for a pickup order.
    assert!(matches!(
        harness.run(4_000, status(id, OrderStatus::Delivered)),
        Err(ApplyError::Conflict(_))
    ));
    harness
        .run(5_000, status(id, OrderStatus::Collected))
        .unwrap();
    // Collected: the ready reminder is no longer needed.
    assert_eq!(
        harness.state.callback(callbacks[0]).unwrap().status,
        CallbackStatus::Cancelled
    );
    harness
        .run(6_000, status(id, OrderStatus::Returned))
        .unwrap();
    assert!(
        harness
            .run(7_000, status(id, OrderStatus::Created))
            .is_err()
    );
}

#[test]
fn order_ready_reminder_repeats_daily_while_waiting() {
    let mut harness = Harness::new();
    let id = created_id(harness.run(0, pickup_order()));
    harness.run(1, status(id, OrderStatus::Confirmed)).unwrap();
    harness.run(2, status(id, OrderStatus::Assembled)).unwrap();
    let Outcome::CallbacksCreated(first) = harness.run(10, status(id, OrderStatus::Ready)).unwrap()
    else {
        panic!()
    };
    harness
        .run(20, Command::ClaimCallback { callback: first[0] })
        .unwrap();
    let Outcome::CallbacksCreated(next) = harness
        .run(
            30,
            Command::RecordCallbackAttempt {
                callback: first[0],
                outcome: CallbackOutcome::Reached,
            },
        )
        .unwrap()
    else {
        panic!("a reached ready-reminder must schedule tomorrow's")
    };
    let tomorrow = harness.state.callback(next[0]).unwrap();
    assert_eq!(tomorrow.due_at_ms, 30 + DAY_MS);
    assert_eq!(
        harness.state.callback(first[0]).unwrap().status,
        CallbackStatus::Completed
    );
}

#[test]
fn delivery_creates_follow_up() {
    let mut harness = Harness::new();
    let id = created_id(harness.run(0, delivery_order()));
    for next in [
        OrderStatus::Confirmed,
        OrderStatus::Assembled,
        OrderStatus::Ready,
    ] {
        assert_eq!(
            harness.run(1, status(id, next)).unwrap(),
            Outcome::Done,
            "no pickup reminder for delivery"
        );
    }
    assert!(harness.run(2, status(id, OrderStatus::Collected)).is_err());
    let Outcome::CallbacksCreated(created) = harness
        .run(100, status(id, OrderStatus::Delivered))
        .unwrap()
    else {
        panic!()
    };
    let follow_up = harness.state.callback(created[0]).unwrap();
    assert_eq!(follow_up.reason, CallbackReason::FollowUp { order: id });
    assert_eq!(
        follow_up.due_at_ms,
        100 + StatePolicy::default().follow_up_delay_ms
    );
}

#[test]
fn update_only_before_assembly_and_refusal_changes_nothing() {
    let mut harness = Harness::new();
    let id = created_id(harness.run(0, pickup_order()));
    harness
        .run(
            1,
            Command::UpdateOrder {
                order: id,
                items: Some(vec![item("C3", 3, 1_000)]),
                fulfilment: None,
                payment: None,
                delivery_note: Some("after 18:00".to_string()),
            },
        )
        .unwrap();
    assert_eq!(harness.state.order(id).unwrap().total_minor, 3_000);
    harness.run(2, status(id, OrderStatus::Confirmed)).unwrap();
    harness.run(3, status(id, OrderStatus::Assembled)).unwrap();
    let before = harness.state.order(id).unwrap().clone();
    let refused = harness.run(
        4,
        Command::UpdateOrder {
            order: id,
            items: Some(vec![item("D4", 1, 1)]),
            fulfilment: None,
            payment: None,
            delivery_note: None,
        },
    );
    assert!(matches!(refused, Err(ApplyError::Conflict(_))));
    assert_eq!(harness.state.order(id).unwrap(), &before);
}

#[test]
fn invalid_commands_are_refused_by_the_machine() {
    let mut harness = Harness::new();
    let bad_phone = Command::CreateOrder {
        caller: "call me".to_string(),
        items: vec![item("A", 1, 1)],
        fulfilment: Fulfilment::Pickup {
            pharmacy: "p".into(),
        },
        payment: PaymentForm::Cash,
        delivery_note: String::new(),
    };
    assert!(matches!(
        harness.run(0, bad_phone),
        Err(ApplyError::Invalid(_))
    ));
    let no_items = Command::CreateOrder {
        caller: CALLER.to_string(),
        items: vec![],
        fulfilment: Fulfilment::Pickup {
            pharmacy: "p".into(),
        },
        payment: PaymentForm::Cash,
        delivery_note: String::new(),
    };
    let Err(ApplyError::Invalid(invalid)) = harness.run(0, no_items) else {
        panic!()
    };
    assert_eq!(invalid.field, "items");
    let zero_quantity = Command::CreatePreOrder {
        caller: CALLER.to_string(),
        sku: "A".into(),
        name: "a".into(),
        quantity: 0,
        pharmacy: "p".into(),
    };
    assert!(harness.run(0, zero_quantity).is_err());
    assert_eq!(harness.state.counts().orders, 0);
    assert!(matches!(
        harness.run(0, status(99, OrderStatus::Confirmed)),
        Err(ApplyError::NotFound { .. })
    ));
}

#[test]
fn stock_arrival_creates_callbacks_for_waiting_pre_orders() {
    let mut harness = Harness::new();
    let pre_order = |caller: &str, sku: &str, pharmacy: &str| Command::CreatePreOrder {
        caller: caller.to_string(),
        sku: sku.to_string(),
        name: "Nurofen".to_string(),
        quantity: 1,
        pharmacy: pharmacy.to_string(),
    };
    let first = created_id(harness.run(0, pre_order("+79160000001", "NUR", "p1")));
    let second = created_id(harness.run(0, pre_order("+79160000002", "NUR", "p2")));
    let other = created_id(harness.run(0, pre_order("+79160000003", "ASP", "p1")));
    let cancelled = created_id(harness.run(0, pre_order("+79160000004", "NUR", "p1")));
    harness
        .run(
            1,
            Command::CancelPreOrder {
                pre_order: cancelled,
            },
        )
        .unwrap();

    let Outcome::CallbacksCreated(created) = harness
        .run(
            50,
            Command::MarkInStock {
                sku: "NUR".into(),
                pharmacy: Some("p1".into()),
            },
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(created.len(), 1);
    let callback = harness.state.callback(created[0]).unwrap();
    assert_eq!(callback.caller, "+79160000001");
    assert_eq!(
        callback.reason,
        CallbackReason::PreOrderArrived { pre_order: first }
    );
    assert_eq!(
        harness.state.pre_order(first).unwrap().status,
        PreOrderStatus::Notified
    );
    assert_eq!(
        harness.state.pre_order(second).unwrap().status,
        PreOrderStatus::Waiting
    );
    assert_eq!(
        harness.state.pre_order(other).unwrap().status,
        PreOrderStatus::Waiting
    );
    assert_eq!(
        harness.state.pre_order(cancelled).unwrap().status,
        PreOrderStatus::Cancelled
    );

    // All pharmacies; a second arrival does not notify twice.
    let Outcome::CallbacksCreated(created) = harness
        .run(
            60,
            Command::MarkInStock {
                sku: "NUR".into(),
                pharmacy: None,
            },
        )
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(created.len(), 1);
    assert_eq!(
        harness.state.pre_order(second).unwrap().status,
        PreOrderStatus::Notified
    );
    assert_eq!(
        harness
            .run(
                70,
                Command::MarkInStock {
                    sku: "NUR".into(),
                    pharmacy: None
                }
            )
            .unwrap(),
        Outcome::CallbacksCreated(vec![])
    );
}

#[test]
fn reservations_expire_by_command_time() {
    let mut harness = Harness::new();
    let reservation = |expires| Command::CreateReservation {
        caller: CALLER.to_string(),
        pharmacy: "p1".into(),
        items: vec![item("A", 1, 10)],
        expires_at_ms: expires,
    };
    assert!(
        harness.run(100, reservation(50)).is_err(),
        "expiry in the past"
    );
    let early = created_id(harness.run(100, reservation(1_000)));
    let late = created_id(harness.run(100, reservation(5_000)));
    let collected = created_id(harness.run(100, reservation(1_000)));
    harness
        .run(
            200,
            Command::CollectReservation {
                reservation: collected,
            },
        )
        .unwrap();
    // Any later command carries a time past the first expiry.
    harness
        .run(2_000, Command::SetPolicy(StatePolicy::default()))
        .unwrap();
    assert_eq!(
        harness.state.reservation(early).unwrap().status,
        ReservationStatus::Expired
    );
    assert_eq!(
        harness.state.reservation(late).unwrap().status,
        ReservationStatus::Active
    );
    assert_eq!(
        harness.state.reservation(collected).unwrap().status,
        ReservationStatus::Collected
    );
    assert!(
        harness
            .run(2_100, Command::CollectReservation { reservation: early })
            .is_err()
    );
    assert_eq!(harness.state.counts().reservations_active, 1);
}

#[test]
fn repeat_complaint_within_window_is_escalated() {
    let mut harness = Harness::new();
    let complaint = |caller: &str| Command::FileComplaint {
        caller: caller.to_string(),
        order: None,
        text: "rude pharmacist".to_string(),
    };
    let first = harness.run(0, complaint(CALLER)).unwrap();
    assert!(matches!(
        first,
        Outcome::ComplaintFiled {
            escalated: false,
            ..
        }
    ));
    let other_caller = harness.run(DAY_MS, complaint("+79990000000")).unwrap();
    assert!(matches!(
        other_caller,
        Outcome::ComplaintFiled {
            escalated: false,
            ..
        }
    ));
    let Outcome::ComplaintFiled {
        complaint: repeat,
        escalated,
    } = harness.run(2 * DAY_MS, complaint(CALLER)).unwrap()
    else {
        panic!()
    };
    assert!(escalated);
    assert_eq!(
        harness.state.complaint(repeat).unwrap().status,
        ComplaintStatus::Escalated
    );
    assert_eq!(harness.state.complaint(repeat).unwrap().repeat_of.len(), 1);
    // Outside the 30-day window: not a repeat.
    let window = u64::from(StatePolicy::default().complaint_repeat_window_days) * DAY_MS;
    let late = harness
        .run(2 * DAY_MS + window + 1, complaint(CALLER))
        .unwrap();
    assert!(matches!(
        late,
        Outcome::ComplaintFiled {
            escalated: false,
            ..
        }
    ));
    // A complaint about an unknown order is refused.
    let unknown = Command::FileComplaint {
        caller: CALLER.into(),
        order: Some(404),
        text: "x".into(),
    };
    assert!(matches!(
        harness.run(0, unknown),
        Err(ApplyError::NotFound { .. })
    ));
}

#[test]
fn abandoned_callback_keeps_place_dedups_and_retries_by_policy() {
    let mut harness = Harness::new();
    let abandoned = || Command::CreateAbandonedCallback {
        caller: CALLER.to_string(),
        skill: "line1".to_string(),
        ordering_time_ms: 900,
    };
    let Outcome::CallbacksCreated(created) = harness.run(1_000, abandoned()).unwrap() else {
        panic!()
    };
    let id = created[0];
    assert_eq!(
        harness.run(1_500, abandoned()).unwrap(),
        Outcome::CallbacksCreated(vec![]),
        "deduplicated"
    );
    let policy = StatePolicy::default();
    let due = 1_000 + policy.abandoned_callback_delay_ms;
    let callback = harness.state.callback(id).unwrap();
    assert_eq!(callback.due_at_ms, due);
    assert_eq!(
        callback.reason,
        CallbackReason::Abandoned {
            skill: "line1".into(),
            ordering_time_ms: 900
        }
    );
    assert!(harness.state.callbacks_due(due - 1, 10).is_empty());
    assert!(
        harness
            .run(due - 1, Command::ClaimCallback { callback: id })
            .is_err(),
        "not due yet"
    );
    assert_eq!(harness.state.callbacks_due(due, 10).len(), 1);

    let mut now = due;
    for attempt in 1..=policy.callback_attempts_max {
        harness
            .run(now, Command::ClaimCallback { callback: id })
            .unwrap();
        assert!(
            harness.state.callbacks_due(now, 10).is_empty(),
            "claimed callbacks are not due"
        );
        assert!(
            harness
                .run(now, Command::ClaimCallback { callback: id })
                .is_err(),
            "claimed once"
        );
        harness
            .run(
                now,
                Command::RecordCallbackAttempt {
                    callback: id,
                    outcome: CallbackOutcome::NoAnswer,
                },
            )
            .unwrap();
        let callback = harness.state.callback(id).unwrap();
        assert_eq!(callback.attempts, attempt);
        now += policy.callback_retry_interval_ms;
    }
    let callback = harness.state.callback(id).unwrap();
    assert_eq!(callback.status, CallbackStatus::Failed);
    assert!(harness.state.callbacks_due(u64::MAX, 10).is_empty());
    // Closed: a new abandonment creates a new callback.
    assert!(
        matches!(harness.run(now, abandoned()).unwrap(), Outcome::CallbacksCreated(ids) if ids.len() == 1)
    );
}

#[test]
fn release_returns_a_claimed_callback() {
    let mut harness = Harness::new();
    let Outcome::CallbacksCreated(created) = harness
        .run(
            0,
            Command::CreateAbandonedCallback {
                caller: CALLER.into(),
                skill: "line1".into(),
                ordering_time_ms: 0,
            },
        )
        .unwrap()
    else {
        panic!()
    };
    let at = StatePolicy::default().abandoned_callback_delay_ms;
    harness
        .run(
            at,
            Command::ClaimCallback {
                callback: created[0],
            },
        )
        .unwrap();
    assert_eq!(harness.state.callbacks_claimed_by("msk").len(), 1);
    harness
        .run(
            at,
            Command::ReleaseCallback {
                callback: created[0],
            },
        )
        .unwrap();
    assert_eq!(harness.state.callbacks_due(at, 10).len(), 1);
    assert!(harness.state.callbacks_claimed_by("msk").is_empty());
}

#[test]
fn lookup_by_caller_normalizes_and_filters_open() {
    let mut harness = Harness::new();
    let first = created_id(harness.run(0, pickup_order()));
    let second = created_id(harness.run(1, delivery_order()));
    harness
        .run(2, status(first, OrderStatus::Cancelled))
        .unwrap();
    let open: Vec<u64> = harness
        .state
        .orders_by_caller("+7 (916) 123-45-67", true)
        .iter()
        .map(|order| order.id)
        .collect();
    assert_eq!(open, vec![second]);
    assert_eq!(harness.state.orders_by_caller(CALLER, false).len(), 2);
    assert!(
        harness
            .state
            .orders_by_caller("not a number", false)
            .is_empty()
    );
}

#[test]
fn same_log_same_state_and_snapshot_round_trip() {
    let commands = [
        pickup_order(),
        delivery_order(),
        status(1, OrderStatus::Confirmed),
        Command::FileComplaint {
            caller: CALLER.into(),
            order: Some(1),
            text: "late".into(),
        },
        Command::CreateAbandonedCallback {
            caller: "+79990001122".into(),
            skill: "line1".into(),
            ordering_time_ms: 5,
        },
    ];
    let first = SharedState::new();
    let second = SharedState::new();
    for (index, command) in commands.iter().enumerate() {
        let bytes = encode_envelope(&envelope(index as u64 * 10, command.clone())).unwrap();
        let index = index as u64 + 1;
        let answer_first = first.apply_entry(index, &bytes);
        let answer_second = second.apply_entry(index, &bytes);
        assert_eq!(answer_first, answer_second);
        assert!(decode_response(&answer_first).unwrap().is_ok());
    }
    first.read(|one| second.read(|two| assert_eq!(one, two)));

    let snapshot = first.snapshot().unwrap();
    let restored = SharedState::new();
    restored.restore(&snapshot).unwrap();
    first.read(|one| restored.read(|two| assert_eq!(one, two)));
    assert_eq!(restored.applied_index(), commands.len() as u64);
    assert!(restored.restore(&snapshot[..snapshot.len() / 2]).is_err());

    // The encoding a background snapshot writes holds the state at the index it was taken
    // at: what is applied after it does not reach its bytes.
    let encoded = first.encoded();
    assert_eq!(encoded.applied_index(), commands.len() as u64);
    let later = encode_envelope(&envelope(99, status(1, OrderStatus::Cancelled))).unwrap();
    let index = encoded.applied_index() + 1;
    assert!(
        decode_response(&first.apply_entry(index, &later))
            .unwrap()
            .is_ok()
    );
    let mut written = Vec::new();
    encoded.write_to(&mut written).unwrap();
    assert_eq!(
        written, snapshot,
        "the bytes are the state's when it was encoded"
    );
    assert_ne!(first.snapshot().unwrap(), snapshot);
}

#[test]
fn undecodable_entries_are_skipped_deterministically() {
    let shared = SharedState::new();
    let answer = decode_response(&shared.apply_entry(7, b"\x01garbage")).unwrap();
    assert!(matches!(answer, Err(ApplyError::Undecodable(_))));
    assert!(matches!(
        decode_response(&shared.apply_entry(8, &[])).unwrap(),
        Err(ApplyError::Undecodable(_))
    ));
    assert_eq!(shared.applied_index(), 8);
    let bytes = encode_envelope(&envelope(1, pickup_order())).unwrap();
    assert_eq!(
        decode_envelope(&bytes).unwrap(),
        envelope(1, pickup_order())
    );
    assert!(decode_envelope(&[99, 1, 2]).is_err(), "unknown version");
}
