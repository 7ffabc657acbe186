//! The contact ledger: updates through outbox batches, overflow claims (first wins, hop cap
//! from the ledger), retention of closed entries.

use super::Harness;
use crate::state::command::{ApplyError, Command, Envelope, Outcome};
use crate::state::ledger::{LEDGER_ENDED_RETENTION_MS, LedgerChange, LedgerStage, LedgerUpdate};
use crate::state::machine::OVERFLOW_HOPS_MAX;
use crate::state::model::Actor;
use crate::state::site_writes::{OutboxBatch, OutboxEntry, SiteWrite};

/// Runs `command` as proposed by `site`.
fn run_at(
    harness: &mut Harness,
    site: &str,
    at_ms: u64,
    command: Command,
) -> Result<Outcome, ApplyError> {
    harness.index += 1;
    let envelope = Envelope {
        at_ms,
        actor: Actor::system(),
        site: site.to_string(),
        command,
    };
    harness.state.apply(harness.index, &envelope)
}

/// `site` reports `changes` (contact, change) as outbox entries from `first_sequence` on.
fn report(
    harness: &mut Harness,
    site: &str,
    first_sequence: u64,
    at_ms: u64,
    changes: Vec<(u64, LedgerChange)>,
) -> Outcome {
    let entries = changes
        .into_iter()
        .enumerate()
        .map(|(offset, (contact, change))| OutboxEntry {
            sequence: first_sequence + offset as u64,
            write: SiteWrite::Ledger(LedgerUpdate {
                contact,
                at_ms,
                change,
            }),
        })
        .collect();
    let batch = Command::Outbox(OutboxBatch {
        incarnation: 1,
        entries,
    });
    run_at(harness, site, at_ms, batch).unwrap()
}

fn opened(skill: &str, arrived_at_ms: u64, moved_from: Option<u64>) -> LedgerChange {
    LedgerChange::Opened {
        caller: "+79160001234".to_string(),
        skill: skill.to_string(),
        arrived_at_ms,
        moved_from,
    }
}

fn released(to: &str) -> LedgerChange {
    LedgerChange::Stage(LedgerStage::Overflowed {
        to: to.to_string(),
        claimed: false,
    })
}

fn claim(contact: u64, from: &str, to: &str) -> Command {
    Command::ClaimOverflow {
        contact,
        from: from.to_string(),
        to: to.to_string(),
    }
}

fn refused(outcome: &Outcome) -> u32 {
    match outcome {
        Outcome::OutboxApplied { refused, .. } => *refused,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_contact_is_followed_from_arrival_to_its_end() {
    let mut harness = Harness::new();
    report(
        &mut harness,
        "msk",
        1,
        1_000,
        vec![(10, opened("line1", 1_000, None))],
    );
    let entry = harness.state.ledger_entry(10).unwrap();
    assert_eq!(
        (
            entry.owner.as_str(),
            entry.arrived_at_site.as_str(),
            &entry.stage,
            entry.hops
        ),
        ("msk", "msk", &LedgerStage::Queued, 0)
    );
    assert_eq!(harness.state.ledger_open("msk", 10).len(), 1);
    let answered = LedgerChange::Stage(LedgerStage::Answered {
        agent: "anna".into(),
    });
    report(&mut harness, "msk", 2, 2_000, vec![(10, answered)]);
    // Another site cannot report on msk's contact.
    let foreign = report(
        &mut harness,
        "ekb",
        1,
        2_500,
        vec![(10, LedgerChange::Stage(LedgerStage::Ended))],
    );
    assert_eq!(refused(&foreign), 1);
    report(
        &mut harness,
        "msk",
        3,
        3_000,
        vec![(10, LedgerChange::Stage(LedgerStage::Ended))],
    );
    let entry = harness.state.ledger_entry(10).unwrap();
    assert_eq!((&entry.stage, entry.sequence), (&LedgerStage::Ended, 3));
    assert!(harness.state.ledger_open("msk", 10).is_empty());
    // Closed: later reports are refused, and the entry goes after its retention.
    let late = report(
        &mut harness,
        "msk",
        4,
        3_500,
        vec![(10, LedgerChange::Stage(LedgerStage::Abandoned))],
    );
    assert_eq!(refused(&late), 1);
    run_at(
        &mut harness,
        "msk",
        3_000 + LEDGER_ENDED_RETENTION_MS - 1,
        Command::CallerCalledIn {
            caller: "+79990001122".into(),
        },
    )
    .unwrap();
    assert!(harness.state.ledger_entry(10).is_some());
    run_at(
        &mut harness,
        "msk",
        3_000 + LEDGER_ENDED_RETENTION_MS,
        Command::CallerCalledIn {
            caller: "+79990001122".into(),
        },
    )
    .unwrap();
    assert!(
        harness.state.ledger_entry(10).is_none(),
        "dropped after retention"
    );
}

#[test]
fn racing_claims_for_one_contact_leave_exactly_one_owner() {
    let mut harness = Harness::new();
    report(
        &mut harness,
        "msk",
        1,
        1_000,
        vec![(10, opened("line1", 900, None))],
    );
    // Not released yet: a claim is refused (the target retries).
    assert!(run_at(&mut harness, "spb", 1_100, claim(10, "msk", "spb")).is_err());
    report(&mut harness, "msk", 2, 1_200, vec![(10, released("spb"))]);
    // A site claims only for itself.
    assert!(run_at(&mut harness, "ekb", 1_250, claim(10, "msk", "spb")).is_err());
    let first = run_at(&mut harness, "spb", 1_300, claim(10, "msk", "spb")).unwrap();
    assert_eq!(
        first,
        Outcome::OverflowClaimed {
            hops: 1,
            arrived_at_ms: 900,
            arrived_at_site: "msk".into()
        }
    );
    for (claimer, at_ms) in [("ekb", 1_301), ("spb", 1_302)] {
        let second = run_at(&mut harness, claimer, at_ms, claim(10, "msk", claimer));
        assert!(matches!(second, Err(ApplyError::Conflict(_))), "{second:?}");
    }
    assert_eq!(
        harness.state.ledger_entry(10).unwrap().stage,
        LedgerStage::Overflowed {
            to: "spb".into(),
            claimed: true
        }
    );
    let (msk, spb, ekb) = (
        harness.state.overflow_counts("msk"),
        harness.state.overflow_counts("spb"),
        harness.state.overflow_counts("ekb"),
    );
    assert_eq!(
        (msk.out, msk.into, spb.out, spb.into, ekb.out, ekb.into),
        (1, 0, 0, 1, 0, 0)
    );
    // The source's own late reports on it are refused: spb owns the contact now.
    let late = report(
        &mut harness,
        "msk",
        3,
        1_400,
        vec![(10, LedgerChange::Stage(LedgerStage::Abandoned))],
    );
    assert_eq!(refused(&late), 1);
    // spb opens it on its claim, with the ledger's arrival and hops (not the gateway's).
    report(
        &mut harness,
        "spb",
        1,
        1_500,
        vec![(77, opened("line1", 5, Some(10)))],
    );
    let at_spb = harness.state.ledger_entry(77).unwrap();
    assert_eq!(
        (
            at_spb.arrived_at_ms,
            at_spb.arrived_at_site.as_str(),
            at_spb.hops,
            at_spb.moved_from
        ),
        (900, "msk", 1, Some(10))
    );
    // ekb cannot open it: no claim to ekb.
    let stolen = report(
        &mut harness,
        "ekb",
        1,
        1_600,
        vec![(78, opened("line1", 5, Some(10)))],
    );
    assert_eq!(refused(&stolen), 1);
}

#[test]
fn the_hop_cap_is_the_ledgers() {
    let mut harness = Harness::new();
    let sites = ["s0", "s1", "s2", "s3", "s4", "s5"];
    report(
        &mut harness,
        sites[0],
        1,
        1_000,
        vec![(100, opened("line1", 1_000, None))],
    );
    let mut contact = 100;
    for hop in 1..=usize::from(OVERFLOW_HOPS_MAX) + 1 {
        let (from, to) = (sites[hop - 1], sites[hop]);
        report(
            &mut harness,
            from,
            2,
            1_000 + hop as u64,
            vec![(contact, released(to))],
        );
        let claimed = run_at(
            &mut harness,
            to,
            1_000 + hop as u64,
            claim(contact, from, to),
        );
        if hop > usize::from(OVERFLOW_HOPS_MAX) {
            assert!(
                matches!(claimed, Err(ApplyError::Conflict(ref reason)) if reason.contains("cap")),
                "{claimed:?}"
            );
            return;
        }
        assert!(
            matches!(claimed, Ok(Outcome::OverflowClaimed { hops, .. }) if usize::from(hops) == hop)
        );
        let next = contact + 1;
        report(
            &mut harness,
            to,
            1,
            1_000 + hop as u64,
            vec![(next, opened("line1", 1, Some(contact)))],
        );
        contact = next;
    }
    panic!("the cap was never reached");
}

#[test]
fn a_lost_sites_callers_get_callbacks_at_their_place_and_its_claims_are_released() {
    use crate::state::machine::SITE_LOST_AFTER_MS;
    use crate::state::model::{SiteSummary, StatePolicy};
    let mut harness = Harness::new();
    let summary = |site: &str, at_ms| {
        Command::PublishSiteSummary(SiteSummary {
            site: site.to_string(),
            at_ms,
            skills: Vec::new(),
        })
    };
    run_at(&mut harness, "msk", 1_000, summary("msk", 1_000)).unwrap();
    let waiting = |caller: &str| LedgerChange::Opened {
        caller: caller.to_string(),
        skill: "line1".into(),
        arrived_at_ms: 900,
        moved_from: None,
    };
    let talking = LedgerChange::Stage(LedgerStage::Answered {
        agent: "anna".into(),
    });
    report(
        &mut harness,
        "msk",
        1,
        1_000,
        vec![
            (1, waiting("+79160000001")),
            (2, waiting("+79160000002")),
            (2, talking),
            (3, waiting("+79160000003")),
            (3, LedgerChange::Stage(LedgerStage::Ended)),
        ],
    );
    // A callback msk had claimed (it dialled it when it died).
    let Outcome::CallbacksCreated(ids) = run_at(
        &mut harness,
        "msk",
        1_000,
        Command::CreateAbandonedCallback {
            caller: "+79160000009".into(),
            skill: "line1".into(),
            ordering_time_ms: 10,
        },
    )
    .unwrap() else {
        panic!()
    };
    let due = 1_000 + StatePolicy::default().abandoned_callback_delay_ms;
    run_at(
        &mut harness,
        "msk",
        due,
        Command::ClaimCallback { callback: ids[0] },
    )
    .unwrap();
    let adopt = || Command::AdoptSite { site: "msk".into() };
    // Not lost yet: msk published recently.
    assert!(run_at(&mut harness, "ekb", 1_000 + SITE_LOST_AFTER_MS - 1, adopt()).is_err());
    let at = due + SITE_LOST_AFTER_MS;
    let Outcome::SiteAdopted {
        contacts,
        callbacks,
        released,
    } = run_at(&mut harness, "ekb", at, adopt()).unwrap()
    else {
        panic!()
    };
    assert_eq!((contacts, callbacks.len(), released), (2, 2, 1));
    for callback in &callbacks {
        let callback = harness.state.callback(*callback).unwrap();
        assert_eq!(callback.site, "ekb");
        assert_eq!(
            callback.reason,
            crate::state::model::CallbackReason::Abandoned {
                skill: "line1".into(),
                ordering_time_ms: 900
            },
            "at the caller's original place"
        );
    }
    assert!(harness.state.ledger_open("msk", 10).is_empty());
    assert_eq!(
        harness.state.ledger_entry(1).unwrap().stage,
        LedgerStage::Adopted { by: "ekb".into() }
    );
    assert_eq!(harness.state.callback(ids[0]).unwrap().claimed_by, None);
    // Adopted once: a second adoption finds nothing open.
    let again = run_at(&mut harness, "spb", at + 1, adopt()).unwrap();
    assert!(
        matches!(again, Outcome::SiteAdopted { contacts: 0, .. }),
        "{again:?}"
    );
    // A late report of the lost site changes nothing...
    let late = report(
        &mut harness,
        "msk",
        6,
        at + 2,
        vec![(1, LedgerChange::Stage(LedgerStage::Abandoned))],
    );
    assert_eq!(refused(&late), 1);
    // ...unless it says the caller was served after all (msk was cut off, not lost): the
    // adoption's callback for that caller is withdrawn.
    assert!(
        harness
            .state
            .abandoned_callback_for("+79160000002")
            .is_some()
    );
    let served = report(
        &mut harness,
        "msk",
        7,
        at + 3,
        vec![(2, LedgerChange::Stage(LedgerStage::Ended))],
    );
    assert_eq!(refused(&served), 0);
    assert!(
        harness
            .state
            .abandoned_callback_for("+79160000002")
            .is_none()
    );
    assert!(
        harness
            .state
            .abandoned_callback_for("+79160000001")
            .is_some()
    );
    assert_eq!(
        harness.state.ledger_entry(2).unwrap().stage,
        LedgerStage::Ended
    );
}

#[test]
fn a_restarted_site_recovers_only_the_contacts_open_before_its_start() {
    let mut harness = Harness::new();
    let open = |caller: &str, at_ms| LedgerChange::Opened {
        caller: caller.to_string(),
        skill: "line1".into(),
        arrived_at_ms: at_ms,
        moved_from: None,
    };
    report(
        &mut harness,
        "msk",
        1,
        1_000,
        vec![(1, open("+79160000001", 1_000))],
    );
    // msk restarted at 3,000; contact 2 arrived after the restart.
    report(
        &mut harness,
        "msk",
        2,
        5_000,
        vec![(2, open("+79160000002", 5_000))],
    );
    let recover = Command::RecoverOwnContacts { before_ms: 3_000 };
    assert!(
        run_at(&mut harness, "msk", 2_000, recover.clone()).is_err(),
        "from the future"
    );
    let outcome = run_at(&mut harness, "msk", 6_000, recover).unwrap();
    assert!(
        matches!(&outcome, Outcome::SiteAdopted { contacts: 1, callbacks, released: 0 } if callbacks.len() == 1),
        "{outcome:?}"
    );
    assert!(
        harness
            .state
            .abandoned_callback_for("+79160000001")
            .is_some()
    );
    assert!(
        harness
            .state
            .abandoned_callback_for("+79160000002")
            .is_none()
    );
    let still_open: Vec<u64> = harness
        .state
        .ledger_open("msk", 10)
        .iter()
        .map(|entry| entry.contact)
        .collect();
    assert_eq!(still_open, vec![2]);
}
