//! The callback book: de-duplication by number, due times, retries up to the maximum,
//! outcomes, cancellation, and a serialized book that replays identically.
#![allow(clippy::unwrap_used)]

use callgrid_domain::*;

fn request(caller: u64, abandoned_at: u64, short: bool) -> CallbackRequest {
    CallbackRequest {
        site: SiteId(1),
        caller: CallerNumber(caller),
        skill: SkillId(0),
        channel: Channel::Voice,
        topic: Topic::OrderStatus,
        ordering_time: TimeMs(abandoned_at - 30_000),
        abandoned_at: TimeMs(abandoned_at),
        short,
    }
}

fn policy() -> CallbackPolicy {
    CallbackPolicy {
        enabled: true,
        delay_s: 60,
        retry_interval_s: 600,
        attempts_max: 2,
        include_short_abandons: false,
        open_max: 3,
        channels: vec![Channel::Voice],
        claim_lease_s: None,
    }
}

fn closed(effects: &[Effect]) -> Vec<(CallbackId, CallbackOutcome, u8)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Event(Event {
                kind:
                    EventKind::CallbackClosed {
                        callback,
                        outcome,
                        attempts,
                    },
                ..
            }) => Some((*callback, *outcome, *attempts)),
            _ => None,
        })
        .collect()
}

#[test]
fn one_open_task_per_number_and_short_abandons_excluded() {
    let mut book = CallbackBook::new(policy());
    let mut effects = Vec::new();
    let first = book
        .handle_request(TimeMs(100_000), &request(555, 100_000, false), &mut effects)
        .unwrap();
    assert_eq!(
        book.handle_request(TimeMs(200_000), &request(555, 200_000, false), &mut effects),
        None
    );
    assert_eq!(
        book.handle_request(TimeMs(200_000), &request(556, 200_000, true), &mut effects),
        None
    );
    assert_eq!(book.open_count(), 1);
    assert_eq!(book.open_for(CallerNumber(555)).unwrap().id, first);
    let counters = book.counters();
    assert_eq!(
        (counters.created, counters.deduplicated, counters.dropped),
        (1, 1, 1)
    );
    let created = effects
        .iter()
        .filter(|effect| {
            matches!(
                effect,
                Effect::Event(Event {
                    kind: EventKind::CallbackCreated { .. },
                    site: SiteId(1),
                    ..
                })
            )
        })
        .count();
    assert_eq!(created, 1);
}

#[test]
fn due_after_delay_keeps_original_place_and_retries_until_the_maximum() {
    let mut book = CallbackBook::new(policy());
    let mut effects = Vec::new();
    let id = book
        .handle_request(TimeMs(100_000), &request(555, 100_000, false), &mut effects)
        .unwrap();
    assert_eq!(book.next_due_at(), Some(TimeMs(160_000)));
    assert!(book.poll_due(TimeMs(159_999)).is_none());
    let task = book.poll_due(TimeMs(160_000)).unwrap();
    assert_eq!(task.attempts, 1);
    let contact = task.to_contact(ContactId(9), TimeMs(160_000));
    assert_eq!(contact.direction, Direction::OutboundCallback);
    assert_eq!(contact.ordering_time, TimeMs(70_000));
    assert_eq!(contact.callback, Some(id));
    // In progress: not handed out twice.
    assert!(book.poll_due(TimeMs(10_000_000)).is_none());

    book.handle_outcome(TimeMs(170_000), id, CallbackOutcome::NoAnswer, &mut effects)
        .unwrap();
    assert!(closed(&effects).is_empty());
    assert_eq!(book.next_due_at(), Some(TimeMs(770_000)));
    let task = book.poll_due(TimeMs(770_000)).unwrap();
    assert_eq!(task.attempts, 2);
    book.handle_outcome(TimeMs(780_000), id, CallbackOutcome::Busy, &mut effects)
        .unwrap();
    assert_eq!(closed(&effects), vec![(id, CallbackOutcome::Busy, 2)]);
    assert_eq!(book.open_count(), 0);
    assert_eq!(book.counters().failed, 1);
    // A closed number may get a new task.
    assert!(
        book.handle_request(TimeMs(800_000), &request(555, 800_000, false), &mut effects)
            .is_some()
    );
}

#[test]
fn reached_closes_and_outcomes_need_an_attempt() {
    let mut book = CallbackBook::new(policy());
    let mut effects = Vec::new();
    let id = book
        .handle_request(TimeMs(100_000), &request(555, 100_000, false), &mut effects)
        .unwrap();
    assert_eq!(
        book.handle_outcome(TimeMs(100_001), id, CallbackOutcome::Reached, &mut effects),
        Err(CallbackError::NoAttemptInProgress(id))
    );
    book.poll_due(TimeMs(160_000)).unwrap();
    book.handle_outcome(TimeMs(200_000), id, CallbackOutcome::Reached, &mut effects)
        .unwrap();
    assert_eq!(closed(&effects), vec![(id, CallbackOutcome::Reached, 1)]);
    assert_eq!(
        book.handle_outcome(TimeMs(200_001), id, CallbackOutcome::Reached, &mut effects),
        Err(CallbackError::UnknownTask(id))
    );
}

#[test]
fn caller_calling_again_cancels_a_waiting_task_and_capacity_is_bounded() {
    let mut book = CallbackBook::new(policy());
    let mut effects = Vec::new();
    for caller in 1..=4 {
        book.handle_request(
            TimeMs(1_000),
            &request(caller, 100_000, false),
            &mut effects,
        );
    }
    assert_eq!(book.open_count(), 3, "open_max bounds the book");
    assert_eq!(book.counters().dropped, 1);
    let cancelled = book.handle_inbound_from(TimeMs(2_000), CallerNumber(2), &mut effects);
    assert!(cancelled.is_some());
    assert_eq!(book.open_count(), 2);
    assert_eq!(
        book.handle_inbound_from(TimeMs(2_000), CallerNumber(99), &mut effects),
        None
    );
    assert_eq!(book.reassign_site(SiteId(1), SiteId(2)), 2);
    assert!(book.tasks().all(|task| task.site == SiteId(2)));
}

#[test]
fn serialized_book_replays_identically() {
    let mut book = CallbackBook::new(policy());
    let mut effects = Vec::new();
    for caller in [30, 10, 20] {
        book.handle_request(
            TimeMs(caller * 1_000),
            &request(caller, 100_000, false),
            &mut effects,
        );
    }
    let json = serde_json::to_string(&book).unwrap();
    let mut restored: CallbackBook = serde_json::from_str(&json).unwrap();
    restored.rebuild_index();
    assert_eq!(serde_json::to_string(&restored).unwrap(), json);
    let mut original_order = Vec::new();
    let mut restored_order = Vec::new();
    while let Some(task) = book.poll_due(TimeMs(u64::MAX)) {
        original_order.push(task.caller);
    }
    while let Some(task) = restored.poll_due(TimeMs(u64::MAX)) {
        restored_order.push(task.caller);
    }
    assert_eq!(original_order, restored_order);
    assert_eq!(
        original_order,
        vec![CallerNumber(10), CallerNumber(20), CallerNumber(30)]
    );
}
