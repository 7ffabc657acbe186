//! Regressions of issue 8 in the domain: the wrap-up maximum, line 1 finishing wrap-up after a
//! transfer, callback policy per channel, and claims that run out instead of staying stuck.
#![allow(clippy::unwrap_used)]

use callgrid_domain::*;

const LINE1: SkillId = SkillId(0);
const LINE2: SkillId = SkillId(1);
const CHAT: SkillId = SkillId(2);

fn config(wrap_up_max_ms: Option<u64>) -> RoutingConfig {
    let skill = |name: &str, channel, line| SkillConfig {
        name: name.into(),
        channel,
        line,
        handle_time_s_initial: 120,
    };
    let mut config = RoutingConfig::with_skills(vec![
        skill("voice_line1", Channel::Voice, Line::Line1),
        skill("voice_line2", Channel::Voice, Line::Line2),
        skill("chat_line1", Channel::Chat, Line::Line1),
    ]);
    config.wrap_up_max_ms = wrap_up_max_ms;
    config
}

fn call(id: u64, skill: SkillId, now: u64) -> Contact {
    Contact::inbound(
        ContactId(id),
        Channel::Voice,
        Topic::Order,
        skill,
        CallerNumber(79_000_000_000 + id),
        SiteId(0),
        TimeMs(now),
    )
}

fn site(wrap_up_max_ms: Option<u64>, agents: &[(u32, &[SkillId])]) -> Site {
    let mut site = Site::new(SiteId(0), config(wrap_up_max_ms), OverflowConfig::default()).unwrap();
    let mut out = Vec::new();
    for (id, skills) in agents {
        site.add_agent(AgentSpec::new(AgentId(*id), skills))
            .unwrap();
        site.handle_login(TimeMs(0), AgentId(*id), &mut out)
            .unwrap();
    }
    site
}

fn wrap_ups(effects: &[Effect]) -> Vec<(u64, u32, u64)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Event(Event {
                kind:
                    EventKind::WrapUpEnded {
                        contact,
                        agent,
                        wrap_up_ms,
                        ..
                    },
                ..
            }) => Some((contact.0, agent.0, *wrap_up_ms)),
            _ => None,
        })
        .collect()
}

#[test]
fn wrap_up_ends_by_itself_at_the_configured_maximum() {
    let mut site = site(Some(30_000), &[(1, &[LINE1])]);
    let mut out = Vec::new();
    site.handle_arrival(TimeMs(1_000), call(10, LINE1, 1_000), &mut out)
        .unwrap();
    site.handle_accept(TimeMs(2_000), ContactId(10), &mut out)
        .unwrap();
    site.handle_end(TimeMs(60_000), ContactId(10), &mut out)
        .unwrap();
    assert_eq!(site.agent_state(AgentId(1)), Some(AgentState::WrapUp));
    assert_eq!(site.wrap_up_deadline(), Some(TimeMs(90_000)));
    // A second call waits while the agent wraps up.
    site.handle_arrival(TimeMs(70_000), call(11, LINE1, 70_000), &mut out)
        .unwrap();
    out.clear();
    site.handle_timers(TimeMs(89_999), &mut out);
    assert_eq!(site.agent_state(AgentId(1)), Some(AgentState::WrapUp));
    site.handle_timers(TimeMs(90_000), &mut out);
    assert_eq!(wrap_ups(&out), vec![(10, 1, 30_000)]);
    assert!(
        out.iter().any(|effect| matches!(
            effect,
            Effect::Offer {
                contact: ContactId(11),
                ..
            }
        )),
        "the freed agent takes the waiting call"
    );
    assert_eq!(site.agent_state(AgentId(1)), Some(AgentState::Reserved));
    // The agent's own "done" afterwards is refused as not assigned, and changes nothing.
    assert!(
        site.handle_wrap_up_end(TimeMs(95_000), AgentId(1), ContactId(10), &mut out)
            .is_err()
    );
    site.check_invariants().unwrap();
}

#[test]
fn wrap_up_maximum_applies_on_the_next_input_too() {
    let mut site = site(Some(10_000), &[(1, &[LINE1])]);
    let mut out = Vec::new();
    site.handle_arrival(TimeMs(0), call(10, LINE1, 0), &mut out)
        .unwrap();
    site.handle_accept(TimeMs(1_000), ContactId(10), &mut out)
        .unwrap();
    site.handle_end(TimeMs(5_000), ContactId(10), &mut out)
        .unwrap();
    out.clear();
    // No timer fired; the next arrival, long after, finds the agent available.
    site.handle_arrival(TimeMs(100_000), call(11, LINE1, 100_000), &mut out)
        .unwrap();
    assert_eq!(wrap_ups(&out), vec![(10, 1, 10_000)]);
    assert!(out.iter().any(|effect| matches!(
        effect,
        Effect::Offer {
            contact: ContactId(11),
            agent: AgentId(1),
            ..
        }
    )));
    site.check_invariants().unwrap();
}

#[test]
fn without_a_maximum_wrap_up_lasts_until_the_agent_ends_it() {
    let mut site = site(None, &[(1, &[LINE1])]);
    let mut out = Vec::new();
    site.handle_arrival(TimeMs(0), call(10, LINE1, 0), &mut out)
        .unwrap();
    site.handle_accept(TimeMs(1_000), ContactId(10), &mut out)
        .unwrap();
    site.handle_end(TimeMs(5_000), ContactId(10), &mut out)
        .unwrap();
    site.handle_timers(TimeMs(10_000_000), &mut out);
    assert_eq!(site.wrap_up_deadline(), None);
    assert_eq!(site.agent_state(AgentId(1)), Some(AgentState::WrapUp));
    let zero = RoutingConfig {
        wrap_up_max_ms: Some(0),
        ..config(None)
    };
    assert!(zero.validate().is_err());
}

#[test]
fn line1_agent_finishes_wrap_up_after_a_transfer_to_line2() {
    let mut site = site(None, &[(1, &[LINE1]), (2, &[LINE2])]);
    let mut out = Vec::new();
    site.handle_arrival(TimeMs(0), call(10, LINE1, 0), &mut out)
        .unwrap();
    site.handle_accept(TimeMs(1_000), ContactId(10), &mut out)
        .unwrap();
    site.handle_transfer(TimeMs(30_000), ContactId(10), LINE2, &mut out)
        .unwrap();
    site.handle_accept(TimeMs(31_000), ContactId(10), &mut out)
        .unwrap();
    assert_eq!(
        site.contact_phase(ContactId(10)),
        Some(ContactPhase::Talking(AgentId(2)))
    );
    assert_eq!(site.agent_state(AgentId(1)), Some(AgentState::WrapUp));
    out.clear();
    site.handle_wrap_up_end(TimeMs(40_000), AgentId(1), ContactId(10), &mut out)
        .unwrap();
    assert_eq!(wrap_ups(&out), vec![(10, 1, 10_000)]);
    assert_eq!(site.agent_state(AgentId(1)), Some(AgentState::Available));
    site.check_invariants().unwrap();
}

fn request(channel: Channel, skill: SkillId) -> CallbackRequest {
    CallbackRequest {
        site: SiteId(0),
        caller: CallerNumber(79_990_000_001),
        skill,
        channel,
        topic: Topic::Order,
        ordering_time: TimeMs(0),
        abandoned_at: TimeMs(60_000),
        short: false,
    }
}

#[test]
fn an_abandoned_chat_gets_no_callback_by_default() {
    let mut book = CallbackBook::new(CallbackPolicy::default());
    let mut out = Vec::new();
    assert_eq!(
        book.handle_request(TimeMs(60_000), &request(Channel::Chat, CHAT), &mut out),
        None
    );
    assert_eq!(book.open_count(), 0);
    assert_eq!(book.counters().dropped, 1);
    assert!(
        book.handle_request(TimeMs(60_000), &request(Channel::Voice, LINE1), &mut out)
            .is_some()
    );
    // A policy that lists chat gives chats callbacks.
    let mut with_chat = CallbackBook::new(CallbackPolicy {
        channels: vec![Channel::Voice, Channel::Chat],
        ..CallbackPolicy::default()
    });
    assert!(
        with_chat
            .handle_request(TimeMs(60_000), &request(Channel::Chat, CHAT), &mut out)
            .is_some()
    );
}

#[test]
fn a_claim_without_outcome_runs_out_and_never_blocks_the_number() {
    let policy = CallbackPolicy {
        claim_lease_s: Some(600),
        attempts_max: 2,
        ..CallbackPolicy::default()
    };
    let mut book = CallbackBook::new(policy.clone());
    let mut out = Vec::new();
    let id = book
        .handle_request(TimeMs(0), &request(Channel::Voice, LINE1), &mut out)
        .unwrap();
    let due = TimeMs(policy.delay_s * 1_000);
    let task = book.poll_due(due).unwrap();
    assert!(task.in_progress);
    // The driver lost the attempt (its queueing failed): nothing reports an outcome.
    assert_eq!(book.handle_lease_expiry(due.plus_ms(599_999), &mut out), 0);
    assert_eq!(book.handle_lease_expiry(due.plus_ms(600_000), &mut out), 1);
    let task = book.task(id).unwrap();
    assert!(!task.in_progress, "back to waiting, not stuck");
    assert_eq!(task.attempts, 1);
    // The second lost attempt closes it as failed, and the number may get a callback again.
    let retry_at = task.due_at;
    book.poll_due(retry_at).unwrap();
    out.clear();
    assert_eq!(
        book.handle_lease_expiry(retry_at.plus_ms(600_000), &mut out),
        1
    );
    assert_eq!(book.open_count(), 0);
    assert!(out.iter().any(|effect| matches!(
        effect,
        Effect::Event(Event {
            kind: EventKind::CallbackClosed {
                outcome: CallbackOutcome::NoAnswer,
                attempts: 2,
                ..
            },
            ..
        })
    )));
    assert!(
        book.handle_request(
            retry_at.plus_ms(700_000),
            &request(Channel::Voice, LINE1),
            &mut out
        )
        .is_some()
    );
    book.machine().check_invariants().unwrap();
    assert!(
        CallbackPolicy {
            claim_lease_s: Some(0),
            ..CallbackPolicy::default()
        }
        .validate()
        .is_err()
    );
}

#[test]
fn a_call_served_by_the_bot_is_its_own_ending_counted_apart() {
    let mut site = site(None, &[]);
    let mut metrics = Metrics::new(MetricsConfig::default(), 1, 3);
    let mut out = Vec::new();
    site.handle_arrival(TimeMs(1_000), call(10, LINE1, 1_000), &mut out)
        .unwrap();
    site.handle_arrival(TimeMs(2_000), call(11, LINE1, 2_000), &mut out)
        .unwrap();
    assert!(site.handle_self_served(TimeMs(31_000), ContactId(10), &mut out));
    assert!(site.handle_abandon(TimeMs(32_000), ContactId(11), &mut out));
    assert!(
        !site.handle_self_served(TimeMs(33_000), ContactId(10), &mut out),
        "gone"
    );
    let requests = out
        .iter()
        .filter(|effect| matches!(effect, Effect::RequestCallback(_)))
        .count();
    assert_eq!(requests, 1, "only the abandoned caller gets a callback");
    for effect in &out {
        if let Effect::Event(event) = effect {
            metrics.record(event);
        }
    }
    metrics.finish(TimeMs(900_000));
    let totals = metrics.site_totals(SiteId(0));
    assert_eq!(
        (totals.offered, totals.abandoned, totals.self_served),
        (2, 1, 1)
    );
    assert_eq!(totals.abandon_rate(), Some(0.5));
    // The bot's contact leaves the service level's denominator.
    assert_eq!(totals.service_level(ServiceLevelPolicy::Offered), Some(0.0));
    assert_eq!(site.waiting(LINE1), 0);
    site.check_invariants().unwrap();
}
