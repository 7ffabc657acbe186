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
