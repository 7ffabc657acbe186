//! Quality reviews: each refusal of the apply rules, replacement by the same reviewer, the
//! recording reference in the ledger, retention, idempotent retries and the snapshot (format 4,
//! and format 3 still read).

use super::Harness;
use super::snapshot_v3::apply_v3_log;
use crate::state::command::{ApplyError, Command, Envelope, Outcome};
use crate::state::ledger::{LedgerChange, LedgerStage, LedgerUpdate};
use crate::state::model::{Actor, Role};
use crate::state::quality::{ChecklistItem, ItemScore, REVIEW_RETENTION_MS, default_checklist};
use crate::state::site_writes::{OutboxBatch, OutboxEntry, SiteWrite};
use crate::state::{SNAPSHOT_FORMAT_VERSION, SharedState};

fn supervisor(name: &str) -> Actor {
    Actor {
        name: name.to_string(),
        role: Role::Supervisor,
    }
}

fn run_as(
    harness: &mut Harness,
    actor: &Actor,
    site: &str,
    at_ms: u64,
    command: Command,
) -> Result<Outcome, ApplyError> {
    harness.index += 1;
    let envelope = Envelope {
        at_ms,
        actor: actor.clone(),
        site: site.to_string(),
        command,
    };
    harness.state.apply(harness.index, &envelope)
}

/// `site` reports `changes` through its outbox (sequences from `first`); every one applied.
fn report(harness: &mut Harness, site: &str, first: u64, changes: Vec<(u64, LedgerChange)>) {
    let count = changes.len() as u32;
    let entries = changes
        .into_iter()
        .enumerate()
        .map(|(offset, (contact, change))| OutboxEntry {
            sequence: first + offset as u64,
            write: SiteWrite::Ledger(LedgerUpdate {
                contact,
                at_ms: 10_000 + first + offset as u64,
                change,
            }),
        })
        .collect();
    let batch = Command::Outbox(OutboxBatch {
        incarnation: 1,
        entries,
    });
    let outcome = run_as(harness, &Actor::system(), site, 20_000, batch).unwrap();
    assert_eq!(
        outcome,
        Outcome::OutboxApplied {
            applied: count,
            duplicates: 0,
            refused: 0
        }
    );
}

fn opened() -> LedgerChange {
    LedgerChange::Opened {
        caller: "+79160001234".to_string(),
        skill: "line1".to_string(),
        arrived_at_ms: 10_000,
        moved_from: None,
    }
}

fn answered(agent: &str) -> LedgerChange {
    LedgerChange::Stage(LedgerStage::Answered {
        agent: agent.to_string(),
    })
}

fn ended() -> LedgerChange {
    LedgerChange::Stage(LedgerStage::Ended)
}

fn full_scores() -> Vec<ItemScore> {
    default_checklist()
        .iter()
        .map(|item| ItemScore {
            item: item.name.clone(),
            points: item.max_points,
        })
        .collect()
}

fn review(contact: u64, scores: Vec<ItemScore>) -> Command {
    Command::ReviewContact {
        contact,
        checklist: default_checklist(),
        scores,
        comment: "polite, correct dose".to_string(),
    }
}

/// msk: contact 10 answered by anna and ended (with a recording), 11 waiting, 12 abandoned,
/// 13 ended without an answer (queue full).
fn ledger() -> Harness {
    let mut harness = Harness::new();
    report(
        &mut harness,
        "msk",
        1,
        vec![
            (10, opened()),
            (11, opened()),
            (12, opened()),
            (13, opened()),
            (10, answered("anna")),
            (
                10,
                LedgerChange::Recording {
                    reference: "https://pbx.example/rec/10.ogg".to_string(),
                },
            ),
            (10, ended()),
            (12, LedgerChange::Stage(LedgerStage::Abandoned)),
            (13, ended()),
        ],
    );
    harness
}

#[test]
fn a_supervisor_scores_a_finished_contact_and_a_second_review_replaces_the_first() {
    let mut harness = ledger();
    let entry = harness.state.ledger_entry(10).unwrap();
    assert_eq!(entry.agent.as_deref(), Some("anna"), "kept after the end");
    assert_eq!(
        entry.recording_ref.as_deref(),
        Some("https://pbx.example/rec/10.ogg")
    );
    let olga = supervisor("olga");
    let first = run_as(
        &mut harness,
        &olga,
        "msk",
        30_000,
        review(10, full_scores()),
    )
    .unwrap();
    let Outcome::ReviewRecorded {
        review: id,
        replaced: false,
    } = first
    else {
        panic!("{first:?}");
    };
    let stored = harness.state.review(id).unwrap();
    assert_eq!(
        (
            stored.agent.as_str(),
            stored.reviewer.as_str(),
            stored.site.as_str()
        ),
        ("anna", "olga", "msk")
    );
    assert_eq!(
        stored.recording_ref.as_deref(),
        Some("https://pbx.example/rec/10.ogg")
    );
    assert!((stored.score_percent() - 100.0).abs() < 1e-9);

    let mut lower = full_scores();
    lower[2].points = 0; // drug information: weight 3 of 7
    let second = run_as(&mut harness, &olga, "spb", 31_000, review(10, lower)).unwrap();
    assert_eq!(
        second,
        Outcome::ReviewRecorded {
            review: id,
            replaced: true
        }
    );
    let stored = harness.state.review(id).unwrap();
    assert_eq!((stored.revision, stored.reviewed_at_ms), (1, 31_000));
    assert!((stored.score_percent() - 400.0 / 7.0).abs() < 1e-9);
    assert_eq!(harness.state.reviews_len(), 1, "replaced, not added");

    // Another supervisor's review stands beside it.
    let ivan = supervisor("ivan");
    let third = run_as(
        &mut harness,
        &ivan,
        "msk",
        32_000,
        review(10, full_scores()),
    )
    .unwrap();
    assert!(matches!(third, Outcome::ReviewRecorded { replaced: false, review } if review != id));
    assert_eq!(harness.state.reviews_of_contact(10).len(), 2);
    harness.state.check_tallies().unwrap();
}

#[test]
fn each_apply_rule_refuses_and_changes_nothing() {
    let mut harness = ledger();
    let olga = supervisor("olga");
    let before = harness.state.clone();
    let mut refuse = |actor: &Actor, command: Command| {
        let error = run_as(&mut harness, actor, "msk", 30_000, command).unwrap_err();
        let mut after = harness.state.clone();
        after.applied_index = before.applied_index;
        assert_eq!(after, before, "refused ({error}) without a change");
        error
    };
    // Not a supervisor.
    let anna = Actor {
        name: "anna".to_string(),
        role: Role::Agent,
    };
    let error = refuse(&anna, review(10, full_scores()));
    assert!(
        matches!(&error, ApplyError::Conflict(text) if text.contains("only supervisors")),
        "{error}"
    );
    // Unknown contact.
    let error = refuse(&olga, review(99, full_scores()));
    assert!(
        matches!(error, ApplyError::NotFound { id: 99, .. }),
        "{error}"
    );
    // Not finished: waiting, abandoned.
    for contact in [11, 12] {
        let error = refuse(&olga, review(contact, full_scores()));
        assert!(
            matches!(&error, ApplyError::Conflict(text) if text.contains("has not ended")),
            "{error}"
        );
    }
    // Ended without an agent (refused at arrival).
    let error = refuse(&olga, review(13, full_scores()));
    assert!(
        matches!(&error, ApplyError::Conflict(text) if text.contains("not answered by an agent")),
        "{error}"
    );
    // An item the checklist lacks.
    let mut unknown = full_scores();
    unknown[0].item = "smile".to_string();
    let error = refuse(&olga, review(10, unknown));
    assert!(
        matches!(&error, ApplyError::Invalid(invalid) if invalid.field == "scores.item"),
        "{error}"
    );
    // Points out of range.
    let mut too_many = full_scores();
    too_many[0].points = 6;
    let error = refuse(&olga, review(10, too_many));
    assert!(
        matches!(&error, ApplyError::Invalid(invalid) if invalid.field == "scores.points"),
        "{error}"
    );
    // An item not scored.
    let mut missing = full_scores();
    missing.pop();
    let error = refuse(&olga, review(10, missing));
    assert!(
        matches!(&error, ApplyError::Invalid(invalid) if invalid.field == "scores"),
        "{error}"
    );
    // An invalid checklist carried in the command.
    let error = refuse(
        &olga,
        Command::ReviewContact {
            contact: 10,
            checklist: vec![ChecklistItem {
                name: "greeting".to_string(),
                max_points: 0,
                weight: 1,
            }],
            scores: vec![ItemScore {
                item: "greeting".to_string(),
                points: 0,
            }],
            comment: String::new(),
        },
    );
    assert!(
        matches!(&error, ApplyError::Invalid(invalid) if invalid.field == "checklist[0].max_points"),
        "{error}"
    );
    // A comment with control characters.
    let error = refuse(
        &olga,
        Command::ReviewContact {
            contact: 10,
            checklist: default_checklist(),
            scores: full_scores(),
            comment: "bad\u{0}".to_string(),
        },
    );
    assert!(
        matches!(&error, ApplyError::Invalid(invalid) if invalid.field == "comment"),
        "{error}"
    );
}

#[test]
fn recording_references_are_validated_and_only_the_owner_sets_them() {
    let mut harness = ledger();
    for bad in [
        "",
        "has space",
        "javascript://alert(1)",
        "ftp://x/y",
        "caf\u{e9}",
        &"x".repeat(513),
    ] {
        let update = LedgerUpdate {
            contact: 10,
            at_ms: 1,
            change: LedgerChange::Recording {
                reference: bad.to_string(),
            },
        };
        assert!(update.validate().is_err(), "{bad:?}");
    }
    // Another site's report on msk's contact is refused (consumed as refused).
    let batch = Command::Outbox(OutboxBatch {
        incarnation: 1,
        entries: vec![OutboxEntry {
            sequence: 1,
            write: SiteWrite::Ledger(LedgerUpdate {
                contact: 10,
                at_ms: 1,
                change: LedgerChange::Recording {
                    reference: "rec-42".to_string(),
                },
            }),
        }],
    });
    let outcome = run_as(&mut harness, &Actor::system(), "spb", 40_000, batch).unwrap();
    assert!(
        matches!(outcome, Outcome::OutboxApplied { refused: 1, .. }),
        "{outcome:?}"
    );
    // The owner may set it after the end; the stage and its time stay.
    let before = harness.state.ledger_entry(13).unwrap().clone();
    report(
        &mut harness,
        "msk",
        10,
        vec![(
            13,
            LedgerChange::Recording {
                reference: "rec:2026/12/04/13".to_string(),
            },
        )],
    );
    let after = harness.state.ledger_entry(13).unwrap();
    assert_eq!(after.recording_ref.as_deref(), Some("rec:2026/12/04/13"));
    assert_eq!(
        (&after.stage, after.updated_at_ms),
        (&before.stage, before.updated_at_ms)
    );
}

#[test]
fn reviews_are_dropped_after_their_retention() {
    let mut harness = ledger();
    let olga = supervisor("olga");
    let Ok(Outcome::ReviewRecorded { review: id, .. }) = run_as(
        &mut harness,
        &olga,
        "msk",
        30_000,
        review(10, full_scores()),
    ) else {
        panic!("recorded");
    };
    let later = 30_000 + REVIEW_RETENTION_MS;
    run_as(
        &mut harness,
        &Actor::system(),
        "msk",
        later - 1,
        Command::RecoverOwnContacts { before_ms: 0 },
    )
    .unwrap();
    assert!(harness.state.review(id).is_some());
    run_as(
        &mut harness,
        &Actor::system(),
        "msk",
        later,
        Command::RecoverOwnContacts { before_ms: 0 },
    )
    .unwrap();
    assert!(harness.state.review(id).is_none());
    assert!(harness.state.reviews_of_contact(10).is_empty());
}

#[test]
fn a_retried_review_with_its_key_is_recorded_once() {
    let mut harness = ledger();
    let olga = supervisor("olga");
    let keyed = |command| Command::Idempotent {
        key: "review-10".to_string(),
        command: Box::new(command),
    };
    let first = run_as(
        &mut harness,
        &olga,
        "msk",
        30_000,
        keyed(review(10, full_scores())),
    )
    .unwrap();
    let again = run_as(
        &mut harness,
        &olga,
        "spb",
        30_500,
        keyed(review(10, full_scores())),
    )
    .unwrap();
    assert_eq!(again, Outcome::Replayed(Box::new(Ok(first))));
    assert_eq!(harness.state.reviews_len(), 1);
    assert_eq!(
        harness.state.reviews().next().unwrap().revision,
        0,
        "not replaced by the retry"
    );
}

#[test]
fn reviews_and_recordings_survive_a_snapshot() {
    let mut harness = ledger();
    run_as(
        &mut harness,
        &supervisor("olga"),
        "msk",
        30_000,
        review(10, full_scores()),
    )
    .unwrap();
    let shared = SharedState::new();
    let bytes = {
        use callgrid_cluster::codec;
        codec::encode_snapshot(&harness.state).unwrap()
    };
    assert_eq!(bytes[0], SNAPSHOT_FORMAT_VERSION);
    shared.restore(&bytes).unwrap();
    shared.read(|restored| assert_eq!(restored, &harness.state));
}

#[test]
fn a_format_3_snapshot_written_by_the_previous_release_is_still_read() {
    let bytes = include_bytes!("snapshot-v3.bin");
    assert_eq!(bytes[0], 3, "the fixture is format 3");
    let restored = SharedState::new();
    restored.restore(bytes).unwrap();
    let replayed = apply_v3_log();
    restored.read(|old| {
        replayed.read(|new| {
            assert_eq!(old.applied_index, new.applied_index);
            assert_eq!(old.counts(), new.counts());
            assert_eq!(old.order(1), new.order(1));
            assert_eq!(old.complaint(3), new.complaint(3));
            assert_eq!(old.callbacks_recent(10), new.callbacks_recent(10));
            assert_eq!(old.is_drained("spb"), new.is_drained("spb"));
            assert_eq!(old.outbox_progress("msk"), new.outbox_progress("msk"));
            let (before, after) = (old.ledger_entry(10).unwrap(), new.ledger_entry(10).unwrap());
            assert_eq!(
                (&before.stage, before.updated_at_ms),
                (&after.stage, after.updated_at_ms)
            );
            assert_eq!(before.agent, None, "format 3 did not keep the agent");
            assert_eq!(after.agent.as_deref(), Some("anna"));
            assert_eq!(old.ledger_open("msk", 10), new.ledger_open("msk", 10));
            assert_eq!(old.reviews_len(), 0);
            assert_eq!(old.roster_agents().count(), 0, "format 3 had no roster");
            old.check_tallies().unwrap();
        });
    });
    // The next snapshot is written in the current format.
    assert_eq!(restored.snapshot().unwrap()[0], SNAPSHOT_FORMAT_VERSION);
}
