//! Basic routing: longest idle, FIFO, offer lifecycle, wrap-up, transfer, abandonment.
#![allow(clippy::unwrap_used)]

use callgrid_domain::*;

fn config() -> RoutingConfig {
    RoutingConfig::with_skills(vec![
        SkillConfig {
            name: "voice_line1".into(),
            channel: Channel::Voice,
            line: Line::Line1,
            handle_time_s_initial: 120,
        },
        SkillConfig {
            name: "voice_line2".into(),
            channel: Channel::Voice,
            line: Line::Line2,
            handle_time_s_initial: 300,
        },
        SkillConfig {
            name: "chat_line1".into(),
            channel: Channel::Chat,
            line: Line::Line1,
            handle_time_s_initial: 240,
        },
    ])
}

const LINE1: SkillId = SkillId(0);
const LINE2: SkillId = SkillId(1);

fn call(id: u64, skill: SkillId, now: u64) -> Contact {
    Contact::inbound(
        ContactId(id),
        Channel::Voice,
        Topic::PriceAvailability,
        skill,
        CallerNumber(79_000_000_000 + id),
        SiteId(0),
        TimeMs(now),
    )
}

fn offers(effects: &[Effect]) -> Vec<(u64, u32)> {
    effects
        .iter()
        .filter_map(|effect| match effect {
            Effect::Offer { contact, agent, .. } => Some((contact.0, agent.0)),
            _ => None,
        })
        .collect()
}

fn site_with_agents(agents: &[(u32, &[SkillId])]) -> (Site, Vec<Effect>) {
    let mut site = Site::new(SiteId(0), config(), OverflowConfig::default()).unwrap();
    let mut out = Vec::new();
    for (index, (id, skills)) in agents.iter().enumerate() {
        site.add_agent(AgentSpec::new(AgentId(*id), skills))
            .unwrap();
        site.handle_login(TimeMs(index as u64), AgentId(*id), &mut out)
            .unwrap();
    }
    out.clear();
    (site, out)
}

#[test]
fn arrival_goes_to_longest_idle_agent() {
    let (mut site, mut out) = site_with_agents(&[(1, &[LINE1]), (2, &[LINE1])]);
    site.handle_arrival(TimeMs(100), call(10, LINE1, 100), &mut out)
        .unwrap();
    assert_eq!(offers(&out), vec![(10, 1)]);
    out.clear();
    site.handle_arrival(TimeMs(101), call(11, LINE1, 101), &mut out)
        .unwrap();
    assert_eq!(offers(&out), vec![(11, 2)]);
    site.check_invariants().unwrap();
}

#[test]
fn freed_agent_takes_oldest_waiting_contact_after_wrap_up() {
    let (mut site, mut out) = site_with_agents(&[(1, &[LINE1])]);
    site.handle_arrival(TimeMs(0), call(1, LINE1, 0), &mut out)
        .unwrap();
    site.handle_arrival(TimeMs(5), call(2, LINE1, 5), &mut out)
        .unwrap();
    site.handle_arrival(TimeMs(6), call(3, LINE1, 6), &mut out)
        .unwrap();
    site.handle_accept(TimeMs(10), ContactId(1), &mut out)
        .unwrap();
    assert_eq!(site.waiting(LINE1), 2);
    assert_eq!(site.queue_position(ContactId(3)).unwrap().position, 2);
    site.handle_end(TimeMs(100), ContactId(1), &mut out)
        .unwrap();
    assert_eq!(site.agent_state(AgentId(1)), Some(AgentState::WrapUp));
    out.clear();
    site.handle_wrap_up_end(TimeMs(130), AgentId(1), ContactId(1), &mut out)
        .unwrap();
    assert_eq!(offers(&out), vec![(2, 1)]);
    site.check_invariants().unwrap();
}

#[test]
fn timeout_returns_contact_to_its_old_place_and_agent_to_not_ready() {
    let (mut site, mut out) = site_with_agents(&[(1, &[LINE1])]);
    site.handle_arrival(TimeMs(0), call(1, LINE1, 0), &mut out)
        .unwrap();
    site.handle_arrival(TimeMs(5), call(2, LINE1, 5), &mut out)
        .unwrap();
    let timeout = site.config().offer_timeout_ms;
    assert!(!site.handle_offer_timeout(TimeMs(timeout - 1), ContactId(1), AgentId(1), &mut out));
    assert!(site.handle_offer_timeout(TimeMs(timeout), ContactId(1), AgentId(1), &mut out));
    assert_eq!(
        site.agent_state(AgentId(1)),
        Some(AgentState::NotReady(NotReadyReason::NO_ANSWER))
    );
    assert_eq!(site.queue_position(ContactId(1)).unwrap().position, 1);
    out.clear();
    site.handle_ready(TimeMs(timeout + 1), AgentId(1), &mut out)
        .unwrap();
    assert_eq!(offers(&out), vec![(1, 1)]);
    site.check_invariants().unwrap();
}

#[test]
fn transfer_moves_contact_to_line2_and_agent_to_wrap_up() {
    let (mut site, mut out) = site_with_agents(&[(1, &[LINE1]), (2, &[LINE2])]);
    site.handle_arrival(TimeMs(0), call(1, LINE1, 0), &mut out)
        .unwrap();
    site.handle_accept(TimeMs(1), ContactId(1), &mut out)
        .unwrap();
    out.clear();
    site.handle_transfer(TimeMs(60_000), ContactId(1), LINE2, &mut out)
        .unwrap();
    assert_eq!(offers(&out), vec![(1, 2)]);
    assert_eq!(site.agent_state(AgentId(1)), Some(AgentState::WrapUp));
    site.handle_accept(TimeMs(60_500), ContactId(1), &mut out)
        .unwrap();
    let answered_before: Vec<bool> = out
        .iter()
        .filter_map(|effect| match effect {
            Effect::Event(Event {
                kind:
                    EventKind::Answered {
                        answered_before, ..
                    },
                ..
            }) => Some(*answered_before),
            _ => None,
        })
        .collect();
    assert_eq!(answered_before, vec![true]);
    site.check_invariants().unwrap();
}

#[test]
fn abandon_requests_a_callback_with_the_original_place() {
    let (mut site, mut out) = site_with_agents(&[]);
    site.handle_arrival(TimeMs(1_000), call(1, LINE1, 1_000), &mut out)
        .unwrap();
    out.clear();
    assert!(site.handle_abandon(TimeMs(31_000), ContactId(1), &mut out));
    let request = out
        .iter()
        .find_map(|effect| match effect {
            Effect::RequestCallback(request) => Some(*request),
            _ => None,
        })
        .unwrap();
    assert_eq!(request.ordering_time, TimeMs(1_000));
    assert!(!request.short);
    assert!(!site.handle_abandon(TimeMs(31_001), ContactId(1), &mut out));
    assert_eq!(site.waiting(LINE1), 0);
}

#[test]
fn renewed_certificate_restores_line2_work() {
    let mut site = Site::new(SiteId(0), config(), OverflowConfig::default()).unwrap();
    let mut out = Vec::new();
    let expiring = AgentSpec {
        id: AgentId(5),
        skills: vec![SkillGrant {
            skill: LINE2,
            valid_until: Some(TimeMs(1_000)),
        }],
        chat_slots: 1,
    };
    site.add_agent(expiring).unwrap();
    site.handle_login(TimeMs(0), AgentId(5), &mut out).unwrap();
    out.clear();
    site.handle_arrival(TimeMs(1_000), call(1, LINE2, 1_000), &mut out)
        .unwrap();
    assert!(offers(&out).is_empty(), "certificate ended at 1000");
    assert_eq!(site.summary(TimeMs(1_000)).skill(LINE2).idle_agents, 0);
    site.handle_skills_changed(
        TimeMs(2_000),
        AgentId(5),
        vec![SkillGrant {
            skill: LINE2,
            valid_until: Some(TimeMs(10_000)),
        }],
        &mut out,
    )
    .unwrap();
    assert_eq!(offers(&out), vec![(1, 5)]);
    site.check_invariants().unwrap();
}

#[test]
fn position_and_estimated_wait_follow_the_documented_estimator() {
    // Two voice agents busy; handle time seeded at 120 s: position p waits p x 120 s / 2.
    let (mut site, mut out) = site_with_agents(&[(1, &[LINE1]), (2, &[LINE1])]);
    for id in 1..=4 {
        site.handle_arrival(TimeMs(id), call(id, LINE1, id), &mut out)
            .unwrap();
    }
    let position = site.queue_position(ContactId(4)).unwrap();
    assert_eq!(position.position, 2);
    assert_eq!(position.estimated_wait_ms, 120_000);
    assert_eq!(site.estimate_wait_ms(LINE1, 3), 180_000);
    assert_eq!(
        site.queue_position(ContactId(1)),
        None,
        "ringing, not queued"
    );
    let summary = site.summary(TimeMs(10));
    assert_eq!(summary.skill(LINE1).waiting, 2);
    assert_eq!(summary.skill(LINE1).estimated_wait_ms, 180_000);
    assert_eq!(summary.skill(LINE1).oldest_wait_ms, 7);
    // Nobody ready for line 2: unknown.
    assert_eq!(site.estimate_wait_ms(LINE2, 1), u64::MAX);
    // The routing summary carries the same availability, without the wait figures.
    let mut routing = SiteSummary::default();
    site.fill_routing_summary(TimeMs(10), &mut routing);
    let mut expected = summary.clone();
    for skill in &mut expected.skills {
        skill.oldest_wait_ms = 0;
        skill.estimated_wait_ms = 0;
    }
    assert_eq!(routing, expected);
    assert_eq!(routing.skill(LINE1).waiting, 2);
}

#[test]
fn inputs_that_do_not_fit_are_refused_without_effects() {
    let (mut site, mut out) = site_with_agents(&[(1, &[LINE1])]);
    let chat_on_voice = Contact::inbound(
        ContactId(1),
        Channel::Chat,
        Topic::Order,
        LINE1,
        CallerNumber(1),
        SiteId(0),
        TimeMs(0),
    );
    assert!(matches!(
        site.handle_arrival(TimeMs(0), chat_on_voice, &mut out),
        Err(DomainError::ChannelMismatch { .. })
    ));
    assert!(matches!(
        site.handle_accept(TimeMs(0), ContactId(9), &mut out),
        Err(DomainError::UnknownContact(_))
    ));
    site.handle_arrival(TimeMs(0), call(2, LINE1, 0), &mut out)
        .unwrap();
    out.clear();
    assert!(matches!(
        site.handle_arrival(TimeMs(0), call(2, LINE1, 0), &mut out),
        Err(DomainError::DuplicateContact(_))
    ));
    assert!(matches!(
        site.handle_end(TimeMs(1), ContactId(2), &mut out),
        Err(DomainError::ContactState { .. })
    ));
    assert!(matches!(
        site.handle_login(TimeMs(1), AgentId(1), &mut out),
        Err(DomainError::AgentState { .. })
    ));
    assert!(matches!(
        site.add_agent(AgentSpec::new(AgentId(1), &[LINE1])),
        Err(DomainError::DuplicateAgent(_))
    ));
    assert!(matches!(
        site.add_agent(AgentSpec::new(AgentId(3), &[SkillId(9)])),
        Err(DomainError::UnknownSkill(_))
    ));
    assert!(out.is_empty());
    site.check_invariants().unwrap();
}

/// A site whose queue holds one contact behind two busy agents, with the overflow rule on.
fn site_with_one_waiting(trigger: OverflowTrigger) -> Site {
    let overflow = OverflowConfig {
        enabled: true,
        trigger,
        // Above the predicted wait (120 s for a second waiting contact), so the predicted-wait
        // rule does not overflow this queue.
        threshold_on_ms: 200_000,
        threshold_off_ms: 100_000,
        ..OverflowConfig::default()
    };
    let mut site = Site::new(SiteId(0), config(), overflow).unwrap();
    let mut out = Vec::new();
    for id in 1..=2 {
        site.add_agent(AgentSpec::new(AgentId(id), &[LINE1]))
            .unwrap();
        site.handle_login(TimeMs(0), AgentId(id), &mut out).unwrap();
    }
    for id in 1..=3 {
        site.handle_arrival(TimeMs(id), call(id, LINE1, id), &mut out)
            .unwrap();
    }
    assert_eq!(site.waiting_total(), 1);
    site
}

#[test]
fn overflow_deadline_is_armed_only_for_the_oldest_wait_trigger() {
    // Oldest wait: the queue could start overflowing 1 ms after the head waited threshold_on.
    let mut site = site_with_one_waiting(OverflowTrigger::OldestWait);
    assert_eq!(site.overflow_deadline(), Some(TimeMs(3 + 200_001)));
    // Predicted wait depends on arrivals and agent states, not on the clock: no deadline to
    // poll at. Before the fix the head's deadline was returned and, once past, re-armed every
    // millisecond by the simulator.
    let mut site = site_with_one_waiting(OverflowTrigger::PredictedWait);
    assert_eq!(site.overflow_deadline(), None);
    // Past the head's threshold the predicted wait still keeps the queue from overflowing.
    let mut out = Vec::new();
    site.poll_overflow(TimeMs(400_000), &[], &mut out);
    assert_eq!(site.waiting_total(), 1);
    assert_eq!(site.overflow_deadline(), None);
}
