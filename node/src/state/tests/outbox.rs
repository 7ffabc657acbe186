//! Outbox batches: each entry applied once per site, whatever the retries.

use super::{CALLER, Harness};
use crate::state::command::{ApplyError, Command, Outcome};
use crate::state::model::{CallbackOutcome, StatePolicy};
use crate::state::site_writes::{OutboxBatch, OutboxEntry, SiteWrite};

fn batch(incarnation: u64, entries: &[(u64, SiteWrite)]) -> Command {
    Command::Outbox(OutboxBatch {
        incarnation,
        entries: entries
            .iter()
            .map(|(sequence, write)| OutboxEntry {
                sequence: *sequence,
                write: write.clone(),
            })
            .collect(),
    })
}

fn applied(applied: u32, duplicates: u32, refused: u32) -> Result<Outcome, ApplyError> {
    Ok(Outcome::OutboxApplied {
        applied,
        duplicates,
        refused,
    })
}

/// A callback created, due and claimed; returns its id and when it is due.
fn claimed_callback(harness: &mut Harness) -> (u64, u64) {
    let Outcome::CallbacksCreated(created) = harness
        .run(
            1_000,
            Command::CreateAbandonedCallback {
                caller: CALLER.into(),
                skill: "line1".into(),
                ordering_time_ms: 900,
            },
        )
        .unwrap()
    else {
        panic!("created")
    };
    let due = 1_000 + StatePolicy::default().abandoned_callback_delay_ms;
    harness
        .run(
            due,
            Command::ClaimCallback {
                callback: created[0],
            },
        )
        .unwrap();
    (created[0], due)
}

#[test]
fn a_retried_batch_applies_each_entry_once() {
    let mut harness = Harness::new();
    let (callback, due) = claimed_callback(&mut harness);
    let attempt = SiteWrite::CallbackAttempt {
        callback,
        outcome: CallbackOutcome::NoAnswer,
    };
    let first = batch(7, &[(1, attempt.clone())]);
    assert_eq!(harness.run(due, first.clone()), applied(1, 0, 0));
    let after_first = harness.state.clone();
    // The proposer heard "outcome unknown" and proposes the same batch again, with a new entry.
    let called_in = SiteWrite::CallerCalledIn {
        caller: CALLER.into(),
    };
    assert_eq!(harness.run(due, first), applied(0, 1, 0));
    let mut expected = after_first;
    expected.applied_index = harness.state.applied_index;
    assert_eq!(harness.state, expected, "a duplicate changes nothing");
    assert_eq!(harness.state.callback(callback).unwrap().attempts, 1);
    assert_eq!(
        harness.run(due, batch(7, &[(1, attempt), (2, called_in)])),
        applied(1, 1, 0)
    );
    assert_eq!(harness.state.outbox_progress("msk").sequence, 2);
    assert_eq!(harness.state.outbox_progress("ekb").sequence, 0, "per site");
}

#[test]
fn a_refused_entry_is_consumed_and_a_new_incarnation_starts_over() {
    let mut harness = Harness::new();
    let stale_attempt = SiteWrite::CallbackAttempt {
        callback: 999,
        outcome: CallbackOutcome::Reached,
    };
    let called_in = SiteWrite::CallerCalledIn {
        caller: CALLER.into(),
    };
    assert_eq!(
        harness.run(10, batch(5, &[(1, stale_attempt), (2, called_in.clone())])),
        applied(1, 0, 1)
    );
    assert_eq!(harness.state.outbox_progress("msk").sequence, 2);
    // The store was lost and recreated: sequences start again under a newer incarnation.
    assert_eq!(
        harness.run(20, batch(6, &[(1, called_in.clone())])),
        applied(1, 0, 0)
    );
    // A late batch of the old store is skipped whole.
    assert_eq!(
        harness.run(30, batch(5, &[(3, called_in)])),
        applied(0, 1, 0)
    );
    let progress = harness.state.outbox_progress("msk");
    assert_eq!((progress.incarnation, progress.sequence), (6, 1));
}

#[test]
fn malformed_batches_are_refused_by_the_machine() {
    let mut harness = Harness::new();
    let called_in = SiteWrite::CallerCalledIn {
        caller: CALLER.into(),
    };
    for command in [
        batch(1, &[]),
        batch(0, &[(1, called_in.clone())]),
        batch(1, &[(2, called_in.clone()), (2, called_in.clone())]),
        batch(
            1,
            &[(
                1,
                SiteWrite::CallerCalledIn {
                    caller: "8 (916) 000".into(),
                },
            )],
        ),
    ] {
        assert!(
            matches!(harness.run(1, command), Err(ApplyError::Invalid(_))),
            "refused"
        );
    }
    assert_eq!(harness.state.outbox_progress("msk").sequence, 0);
}

/// A pending create as the outbox carries it: made by `principal` under `key`.
fn pending_create(principal: &str, key: &str, command: Command) -> SiteWrite {
    SiteWrite::IdempotentCreate {
        pending: format!("p-{key}"),
        actor: crate::state::model::Actor {
            name: principal.to_string(),
            role: crate::state::model::Role::Agent,
        },
        key: key.to_string(),
        command: Box::new(command),
    }
}

/// Orders taken while cut off commit once each after the heal: a batch retried after
/// "outcome unknown", a store replaced (new incarnation) that proposes the same create again,
/// and the client retrying directly with the same key all find the first result.
#[test]
fn a_pending_create_commits_once_under_its_key_whoever_retries_it() {
    let mut harness = Harness::new();
    let order = super::pickup_order();
    let write = pending_create("boris", "k-1", order.clone());
    let first = batch(7, &[(1, write.clone())]);
    assert_eq!(harness.run(1_000, first.clone()), applied(1, 0, 0));
    let orders = |harness: &Harness| harness.state.orders_recent(usize::MAX).len();
    assert_eq!(orders(&harness), 1);
    let created = harness.state.orders_recent(1)[0].clone();
    assert_eq!(
        created.history[0].actor.name, "boris",
        "the principal who took it, not the system"
    );
    let remembered = harness
        .state
        .idempotent_result("boris", "k-1", &order)
        .expect("the key is remembered");
    assert_eq!(remembered, Ok(Outcome::OrderCreated(created.id)));

    // The same batch again (outcome unknown): skipped by the outbox mark.
    assert_eq!(harness.run(1_100, first), applied(0, 1, 0));
    // A new store (incarnation) proposes the same create: the key replays it.
    assert_eq!(
        harness.run(1_200, batch(8, &[(1, write)])),
        applied(1, 0, 0)
    );
    // The client retries directly with the same key: the first result.
    harness.index += 1;
    let mut direct = super::envelope(
        1_300,
        Command::Idempotent {
            key: "k-1".into(),
            command: Box::new(order.clone()),
        },
    );
    direct.actor.name = "boris".into();
    assert_eq!(
        harness.state.apply(harness.index, &direct),
        Ok(Outcome::Replayed(Box::new(Ok(Outcome::OrderCreated(
            created.id
        )))))
    );
    assert_eq!(orders(&harness), 1, "one order for one key");
    // Another principal's key of the same name is another create.
    assert_eq!(
        harness.run(
            1_400,
            batch(8, &[(2, pending_create("anna", "k-1", order.clone()))])
        ),
        applied(1, 0, 0)
    );
    assert_eq!(orders(&harness), 2);
    harness.state.check_tallies().unwrap();
}

#[test]
fn a_pending_create_under_a_reused_key_is_refused_and_says_so() {
    let mut harness = Harness::new();
    let order = super::pickup_order();
    assert_eq!(
        harness.run(
            1_000,
            batch(7, &[(1, pending_create("boris", "k-2", order))])
        ),
        applied(1, 0, 0)
    );
    let other = super::delivery_order();
    assert_eq!(
        harness.run(
            1_100,
            batch(7, &[(2, pending_create("boris", "k-2", other.clone()))])
        ),
        applied(0, 0, 1)
    );
    assert_eq!(harness.state.orders_recent(usize::MAX).len(), 1);
    assert!(matches!(
        harness.state.idempotent_result("boris", "k-2", &other),
        Some(Err(ApplyError::IdempotencyKeyReused { .. }))
    ));
    assert_eq!(
        harness.state.idempotent_result("boris", "k-3", &other),
        None
    );
}

#[test]
fn a_batch_carries_one_create_at_most_and_only_creates() {
    let mut harness = Harness::new();
    let order = super::pickup_order();
    let two = batch(
        7,
        &[
            (1, pending_create("boris", "k-4", order.clone())),
            (2, pending_create("boris", "k-5", order.clone())),
        ],
    );
    assert!(matches!(
        harness.run(1_000, two),
        Err(ApplyError::Invalid(_))
    ));
    let not_a_create = pending_create("boris", "k-6", Command::CancelPreOrder { pre_order: 1 });
    assert!(matches!(
        harness.run(1_000, batch(7, &[(1, not_a_create)])),
        Err(ApplyError::Invalid(_))
    ));
    let mut bad_id = pending_create("boris", "k-7", order);
    if let SiteWrite::IdempotentCreate { pending, .. } = &mut bad_id {
        *pending = "has spaces".into();
    }
    assert!(matches!(
        harness.run(1_000, batch(7, &[(1, bad_id)])),
        Err(ApplyError::Invalid(_))
    ));
    assert_eq!(harness.state.orders_recent(usize::MAX).len(), 0);
}
