//! Idempotent creates in the state machine: replay of the first result, a different body
//! refused, the key scoped to the principal, expiry by log time, the cap, snapshots.

use super::*;
use crate::state::machine::{IDEMPOTENCY_KEY_TTL_MS, IDEMPOTENCY_KEYS_MAX};

const T0: u64 = 1_700_000_000_000;

fn once(key: &str, command: Command) -> Command {
    Command::Idempotent {
        key: key.to_string(),
        command: Box::new(command),
    }
}

fn replayed(outcome: Result<Outcome, ApplyError>) -> Result<Outcome, ApplyError> {
    match outcome {
        Ok(Outcome::Replayed(first)) => *first,
        other => panic!("expected a replay, got {other:?}"),
    }
}

fn orders(harness: &Harness) -> usize {
    harness.state.orders_recent(usize::MAX).len()
}

fn as_principal(
    harness: &mut Harness,
    name: &str,
    at_ms: u64,
    command: Command,
) -> Result<Outcome, ApplyError> {
    harness.index += 1;
    let mut envelope = envelope(at_ms, command);
    envelope.actor.name = name.to_string();
    harness.state.apply(harness.index, &envelope)
}

#[test]
fn a_retry_gets_the_first_result_and_a_different_body_is_refused() {
    let mut harness = Harness::new();
    let first = created_id(harness.run(T0, once("order-1", pickup_order())));
    for retry in 1..=5 {
        let again = replayed(harness.run(T0 + retry * 1_000, once("order-1", pickup_order())));
        assert_eq!(created_id(again), first);
    }
    assert_eq!(orders(&harness), 1, "retries create nothing");

    let refused = harness.run(T0 + 10_000, once("order-1", delivery_order()));
    assert_eq!(
        refused,
        Err(ApplyError::IdempotencyKeyReused {
            key: "order-1".to_string()
        })
    );
    assert_eq!(orders(&harness), 1);

    // Another principal's key of the same name is another key.
    let other = created_id(as_principal(
        &mut harness,
        "boris",
        T0,
        once("order-1", pickup_order()),
    ));
    assert_ne!(other, first);
    // Another key is another create.
    let second = created_id(harness.run(T0, once("order-2", pickup_order())));
    assert_ne!(second, first);
    assert_eq!(orders(&harness), 3);
    assert_eq!(harness.state.counts().idempotency_keys, 3);
    harness.state.check_tallies().unwrap();
}

#[test]
fn a_refused_first_request_is_replayed_as_refused() {
    let mut harness = Harness::new();
    let attempt = Command::RecordCallbackAttempt {
        callback: 42,
        outcome: CallbackOutcome::Reached,
    };
    let first = harness.run(T0, once("attempt-42", attempt.clone()));
    assert_eq!(first, Err(ApplyError::not_found("callback", 42)));
    assert_eq!(
        replayed(harness.run(T0 + 1, once("attempt-42", attempt))),
        first
    );
}

#[test]
fn a_key_expires_by_log_time_and_is_then_new() {
    let mut harness = Harness::new();
    let first = created_id(harness.run(T0, once("k", pickup_order())));
    let just_before = T0 + IDEMPOTENCY_KEY_TTL_MS - 1;
    assert_eq!(
        created_id(replayed(
            harness.run(just_before, once("k", pickup_order()))
        )),
        first
    );
    // Any command carrying a later time sweeps the expired key out.
    harness
        .run(
            T0 + IDEMPOTENCY_KEY_TTL_MS,
            status(first, OrderStatus::Confirmed),
        )
        .unwrap();
    assert_eq!(harness.state.counts().idempotency_keys, 0);
    let later = created_id(harness.run(T0 + IDEMPOTENCY_KEY_TTL_MS, once("k", pickup_order())));
    assert_ne!(later, first, "an expired key is a new request");
    assert_eq!(orders(&harness), 2);
    harness.state.check_tallies().unwrap();
}

#[test]
fn the_table_is_capped_and_forgets_the_oldest_key_first() {
    let mut harness = Harness::new();
    let attempt = |callback: u64| Command::RecordCallbackAttempt {
        callback,
        outcome: CallbackOutcome::NoAnswer,
    };
    for number in 0..=IDEMPOTENCY_KEYS_MAX as u64 {
        let _refused = harness.run(T0 + number, once(&format!("key-{number}"), attempt(number)));
    }
    let counts = harness.state.counts();
    assert_eq!(counts.idempotency_keys, IDEMPOTENCY_KEYS_MAX);
    assert_eq!(counts.idempotency_keys_evicted, 1);
    harness.state.check_tallies().unwrap();
    // key-0 was forgotten: a request under it runs again (and is remembered anew);
    // key-1 is still remembered.
    assert!(!matches!(
        harness.run(T0 + 1_000_000, once("key-0", attempt(0))),
        Ok(Outcome::Replayed(_))
    ));
    assert!(matches!(
        harness.run(T0 + 1_000_001, once("key-2", attempt(2))),
        Ok(Outcome::Replayed(_))
    ));
}

#[test]
fn keys_are_validated_and_only_creates_take_one() {
    let mut harness = Harness::new();
    let too_long = "k".repeat(129);
    for key in ["", "with space", "tab\there", "ключ", too_long.as_str()] {
        assert!(
            matches!(
                harness.run(T0, once(key, pickup_order())),
                Err(ApplyError::Invalid(_))
            ),
            "{key:?}"
        );
    }
    assert!(
        harness
            .run(T0, once(&"k".repeat(128), pickup_order()))
            .is_ok()
    );
    assert!(matches!(
        harness.run(T0, once("nested", once("inner", pickup_order()))),
        Err(ApplyError::Invalid(_))
    ));
    assert!(matches!(
        harness.run(T0, once("status", status(1, OrderStatus::Confirmed))),
        Err(ApplyError::Invalid(_))
    ));
    assert_eq!(orders(&harness), 1);
}

#[test]
fn remembered_keys_survive_a_snapshot() {
    let shared = SharedState::new();
    let bytes = encode_envelope(&envelope(T0, once("snap", pickup_order()))).unwrap();
    let first = decode_response(&shared.apply_entry(1, &bytes)).unwrap();
    let restored = SharedState::new();
    restored.restore(&shared.snapshot().unwrap()).unwrap();
    shared.read(|one| restored.read(|two| assert_eq!(one, two)));
    let again = decode_response(&restored.apply_entry(2, &bytes)).unwrap();
    assert_eq!(replayed(again), first);
}
