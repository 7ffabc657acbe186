//! Metrics on hand-computed scenarios: every figure below was worked out on paper from the
//! timeline in the test's comment.
#![allow(clippy::unwrap_used)]

use callgrid_domain::*;

const SKILL: SkillId = SkillId(0);
const LINE2: SkillId = SkillId(1);
const AGENT: AgentId = AgentId(1);

fn s(seconds: u64) -> TimeMs {
    TimeMs(seconds * 1000)
}

struct Harness {
    site: Site,
    metrics: Metrics,
    book: CallbackBook,
    effects: Vec<Effect>,
}

impl Harness {
    fn new(agents: &[(AgentId, &[SkillId])]) -> Harness {
        let skills = vec![
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
                handle_time_s_initial: 120,
            },
        ];
        let mut site = Site::new(
            SiteId(0),
            RoutingConfig::with_skills(skills),
            OverflowConfig::default(),
        )
        .unwrap();
        for (agent, skills) in agents {
            site.add_agent(AgentSpec::new(*agent, skills)).unwrap();
        }
        Harness {
            site,
            metrics: Metrics::new(MetricsConfig::default(), 1, 2),
            book: CallbackBook::new(CallbackPolicy::default()),
            effects: Vec::new(),
        }
    }

    fn flush(&mut self, now: TimeMs) {
        let mut index = 0;
        while index < self.effects.len() {
            match self.effects[index] {
                Effect::Event(event) => self.metrics.record(&event),
                Effect::RequestCallback(request) => {
                    let mut more = Vec::new();
                    self.book.handle_request(now, &request, &mut more);
                    self.effects.extend(more);
                }
                _ => {}
            }
            index += 1;
        }
        self.effects.clear();
    }

    fn arrive(&mut self, id: u64, at: TimeMs) {
        let contact = Contact::inbound(
            ContactId(id),
            Channel::Voice,
            Topic::Order,
            SKILL,
            CallerNumber(id),
            SiteId(0),
            at,
        );
        self.site
            .handle_arrival(at, contact, &mut self.effects)
            .unwrap();
        self.flush(at);
    }

    fn step(&mut self, at: TimeMs, action: impl FnOnce(&mut Site, &mut Vec<Effect>)) {
        action(&mut self.site, &mut self.effects);
        self.flush(at);
    }
}

fn close(actual: Option<f64>, expected: f64) {
    let actual = actual.unwrap();
    assert!(
        (actual - expected).abs() < 1e-9,
        "expected {expected}, got {actual}"
    );
}

/// Timeline (seconds): agent logs in at 0.
/// c1 arrives 10, offered 10, accepted 15 (wait 5), hold 50–70, ends 115 (talk 80, hold 20),
///   wrap-up ends 125.
/// c2 arrives 20, waits, abandons 60 (wait 40: after T, not short) → callback.
/// c3 arrives 100, c4 arrives 112; c4 abandons 114 (wait 2: short, no callback by default).
/// c3 offered 125, accepted 130 (wait 30 > T), ends 190 (talk 60), wrap-up ends 200.
/// Finish at 300.
#[test]
fn single_agent_day_matches_hand_computation() {
    let mut harness = Harness::new(&[(AGENT, &[SKILL])]);
    harness.step(s(0), |site, out| {
        site.handle_login(s(0), AGENT, out).unwrap()
    });
    harness.arrive(1, s(10));
    harness.step(s(15), |site, out| {
        site.handle_accept(s(15), ContactId(1), out).unwrap()
    });
    harness.arrive(2, s(20));
    harness.step(s(50), |site, out| {
        site.handle_hold(s(50), ContactId(1), out).unwrap()
    });
    harness.step(s(60), |site, out| {
        assert!(site.handle_abandon(s(60), ContactId(2), out))
    });
    harness.step(s(70), |site, out| {
        site.handle_resume(s(70), ContactId(1), out).unwrap()
    });
    harness.arrive(3, s(100));
    harness.arrive(4, s(112));
    harness.step(s(114), |site, out| {
        assert!(site.handle_abandon(s(114), ContactId(4), out))
    });
    harness.step(s(115), |site, out| {
        site.handle_end(s(115), ContactId(1), out).unwrap()
    });
    harness.step(s(125), |site, out| {
        site.handle_wrap_up_end(s(125), AGENT, ContactId(1), out)
            .unwrap()
    });
    harness.step(s(130), |site, out| {
        site.handle_accept(s(130), ContactId(3), out).unwrap()
    });
    harness.step(s(190), |site, out| {
        site.handle_end(s(190), ContactId(3), out).unwrap()
    });
    harness.step(s(200), |site, out| {
        site.handle_wrap_up_end(s(200), AGENT, ContactId(3), out)
            .unwrap()
    });
    harness.metrics.finish(s(300));

    let site = harness.metrics.site_totals(SiteId(0));
    assert_eq!(site.offered, 4);
    assert_eq!(site.answered, 2);
    assert_eq!(site.answered_within_target, 1);
    assert_eq!(site.abandoned, 2);
    assert_eq!(site.abandoned_short, 1);
    assert_eq!(site.abandoned_after_target, 1);
    assert_eq!(site.answer_wait_ms_sum, 35_000);
    assert_eq!(site.abandon_wait_ms_sum, 42_000);
    assert_eq!(site.handled, 2);
    assert_eq!(site.talk_ms_sum, 140_000);
    assert_eq!(site.hold_ms_sum, 20_000);
    assert_eq!(site.wrap_up_ms_sum, 20_000);
    assert_eq!(site.callbacks_created, 1);
    // Queue: 1 waiting 20–60, 1 at 100–112, 2 at 112–114, 1 at 114–125.
    assert_eq!(site.queue_length_ms_sum, 67_000);
    assert_eq!(site.queue_length_max, 2);
    assert_eq!(site.busy_ms, 160_000);
    assert_eq!(site.wrap_up_state_ms, 20_000);
    assert_eq!(site.staffed_ms, 300_000);

    close(site.service_level(ServiceLevelPolicy::Offered), 0.25);
    close(
        site.service_level(ServiceLevelPolicy::OfferedExcludingShortAbandons),
        1.0 / 3.0,
    );
    close(
        site.service_level(ServiceLevelPolicy::AnsweredPlusAbandonedAfterTarget),
        1.0 / 3.0,
    );
    close(site.asa_ms(), 17_500.0);
    close(site.aht_ms(), 90_000.0);
    close(site.abandon_wait_ms_average(), 21_000.0);
    close(site.abandon_rate(), 0.5);
    close(site.occupancy(), 0.6);
    close(site.queue_length_average(300_000), 67.0 / 300.0);

    let queue = harness.metrics.queue_totals(SiteId(0), SKILL);
    assert_eq!(queue.offered, 4);
    assert_eq!(queue.answered, 2);
    assert_eq!(queue.queue_length_ms_sum, 67_000);

    let agent = harness.metrics.agent_totals(AGENT).unwrap();
    assert_eq!(agent.offered, 2);
    assert_eq!(agent.answered, 2);
    assert_eq!(agent.handled, 2);
    assert_eq!(agent.available_ms, 10_000 + 100_000);
    assert_eq!(agent.reserved_ms, 5_000 + 5_000);
    assert_eq!(agent.busy_ms, 160_000);
    assert_eq!(agent.wrap_up_state_ms, 20_000);
    assert_eq!(agent.staffed_ms, 300_000);
    close(agent.occupancy(), 0.6);

    assert_eq!(harness.book.open_count(), 1);
    assert_eq!(harness.book.counters().dropped, 1);

    let report = harness.metrics.report();
    assert_eq!(report.intervals.len(), 1);
    assert_eq!(report.totals.counters, site);
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.contains("\"service_level_policy\":\"offered\""));
}

/// A contact arriving at 890 s and answered at 910 s counts in interval 0 (15-minute
/// intervals), and an agent logged in 800–1000 s is staffed 100 s in each interval.
#[test]
fn outcomes_count_in_the_arrival_interval_and_state_time_is_split() {
    let mut harness = Harness::new(&[(AGENT, &[SKILL]), (AgentId(2), &[SKILL])]);
    harness.step(s(800), |site, out| {
        site.handle_login(s(800), AGENT, out).unwrap()
    });
    harness.step(s(800), |site, out| {
        site.handle_not_ready(s(800), AGENT, NotReadyReason::BREAK, out)
            .unwrap()
    });
    harness.arrive(1, s(890));
    harness.step(s(905), |site, out| {
        site.handle_login(s(905), AgentId(2), out).unwrap()
    });
    harness.step(s(910), |site, out| {
        site.handle_accept(s(910), ContactId(1), out).unwrap()
    });
    harness.step(s(1000), |site, out| {
        site.handle_logout(s(1000), AGENT, out).unwrap()
    });
    harness.metrics.finish(s(1000));

    let first = harness.metrics.site_interval(0, SiteId(0));
    let second = harness.metrics.site_interval(1, SiteId(0));
    assert_eq!(first.offered, 1);
    assert_eq!(first.answered, 1);
    assert_eq!(first.answered_within_target, 1);
    assert_eq!(first.answer_wait_ms_sum, 20_000);
    assert_eq!(second.offered, 0);
    assert_eq!(second.answered, 0);
    // Waiting 890–905 (until agent 2 logged in and got the offer): 10 s in interval 0, 5 s in 1.
    assert_eq!(first.queue_length_ms_sum, 10_000);
    assert_eq!(second.queue_length_ms_sum, 5_000);
    // Agent 1: 100 s + 100 s; agent 2: 95 s in interval 1 (Reserved 905–910, then Busy).
    assert_eq!(first.staffed_ms, 100_000);
    assert_eq!(second.staffed_ms, 100_000 + 95_000);
    assert_eq!(second.busy_ms, 90_000);
    assert_eq!(harness.metrics.interval_count(), 2);
}

/// Line 1 → line 2: the site counts one offered and one answered contact; the line-1 queue
/// counts a transfer out, the line-2 queue an offer (transfer in) and its own answer.
#[test]
fn transfer_counts_once_at_the_site_and_once_per_queue() {
    let mut harness = Harness::new(&[(AGENT, &[SKILL]), (AgentId(2), &[LINE2])]);
    harness.step(s(0), |site, out| {
        site.handle_login(s(0), AGENT, out).unwrap();
        site.handle_login(s(0), AgentId(2), out).unwrap();
    });
    harness.arrive(1, s(10));
    harness.step(s(12), |site, out| {
        site.handle_accept(s(12), ContactId(1), out).unwrap()
    });
    harness.step(s(60), |site, out| {
        site.handle_transfer(s(60), ContactId(1), LINE2, out)
            .unwrap()
    });
    harness.step(s(90), |site, out| {
        site.handle_accept(s(90), ContactId(1), out).unwrap()
    });
    harness.step(s(200), |site, out| {
        site.handle_end(s(200), ContactId(1), out).unwrap()
    });
    harness.metrics.finish(s(300));

    let site = harness.metrics.site_totals(SiteId(0));
    assert_eq!(site.offered, 1);
    assert_eq!(site.answered, 1);
    assert_eq!(site.answer_wait_ms_sum, 2_000);
    assert_eq!(site.transferred_out, 1);
    assert_eq!(site.transferred_in, 1);
    assert_eq!(site.handled, 2);
    let line1 = harness.metrics.queue_totals(SiteId(0), SKILL);
    assert_eq!(
        (line1.offered, line1.answered, line1.transferred_out),
        (1, 1, 1)
    );
    let line2 = harness.metrics.queue_totals(SiteId(0), LINE2);
    assert_eq!(
        (line2.offered, line2.answered, line2.transferred_in),
        (1, 1, 1)
    );
    // Line-2 wait: transferred at 60, ringing from 60 (agent 2 idle), accepted at 90.
    assert_eq!(line2.answer_wait_ms_sum, 30_000);
    assert_eq!(line2.answered_within_target, 0);
}

#[test]
fn a_zero_interval_horizon_folds_everything_into_one_interval() {
    let config = MetricsConfig {
        intervals_max: 0,
        ..MetricsConfig::default()
    };
    let mut metrics = Metrics::new(config, 1, 1);
    for at in [0, 5_000_000, 90_000_000] {
        metrics.record(&Event {
            at: TimeMs(at),
            site: SiteId(0),
            kind: EventKind::Arrived {
                contact: ContactId(at),
                skill: SkillId(0),
                channel: Channel::Voice,
                topic: Topic::Order,
                direction: Direction::Inbound,
            },
        });
    }
    assert_eq!(metrics.interval_count(), 1);
    assert_eq!(metrics.site_interval(0, SiteId(0)).offered, 3);
}

/// A cyclic accumulator's cell `i` equals the merge of cells `i`, `i + n`, `i + 2n`, … of a
/// plain one fed the same events — including state times and queue lengths split at
/// boundaries — so the totals agree too.
#[test]
fn cyclic_cells_sum_the_same_clock_interval_over_all_cycles() {
    const CYCLE: u32 = 4; // four 15-minute intervals: a one-hour "day"
    let mut harness = Harness::new(&[(AGENT, &[SKILL])]);
    let mut cyclic = Metrics::new_cyclic(MetricsConfig::default(), 1, 2, CYCLE);
    harness
        .site
        .handle_login(TimeMs::ZERO, AGENT, &mut harness.effects)
        .unwrap();
    // Pending actions of a tiny event loop: (time, order, contact, what).
    let mut pending: std::collections::BTreeSet<(u64, u64, u64, u8)> = Default::default();
    let mut order = 0;
    for contact in 0..40u64 {
        // Arrivals every 7.5 minutes over five hours; conversations 2–20 minutes, so a queue
        // builds and spans cross interval and cycle boundaries.
        pending.insert((contact * 450_000, order, contact, 0));
        order += 1;
    }
    while let Some((at, _, contact, what)) = pending.pop_first() {
        let now = TimeMs(at);
        let id = ContactId(contact);
        match what {
            0 => {
                let inbound = Contact::inbound(
                    id,
                    Channel::Voice,
                    Topic::Order,
                    SKILL,
                    CallerNumber(contact),
                    SiteId(0),
                    now,
                );
                harness
                    .site
                    .handle_arrival(now, inbound, &mut harness.effects)
                    .unwrap();
            }
            1 => harness
                .site
                .handle_accept(now, id, &mut harness.effects)
                .unwrap(),
            2 => harness
                .site
                .handle_end(now, id, &mut harness.effects)
                .unwrap(),
            _ => harness
                .site
                .handle_wrap_up_end(now, AGENT, id, &mut harness.effects)
                .unwrap(),
        }
        for effect in &harness.effects {
            match *effect {
                Effect::Event(ref event) => cyclic.record(event),
                Effect::Offer { contact, .. } => {
                    order += 1;
                    pending.insert((at + 3_000, order, contact.0, 1));
                }
                _ => {}
            }
        }
        match what {
            1 => {
                order += 1;
                pending.insert((at + 120_000 + contact % 7 * 160_000, order, contact, 2));
            }
            2 => {
                order += 1;
                pending.insert((at + 30_000, order, contact, 3));
            }
            _ => {}
        }
        harness.flush(now);
    }
    let end = TimeMs(6 * 3_600_000);
    harness.metrics.finish(end);
    cyclic.finish(end);
    let plain = &harness.metrics;
    assert!(plain.interval_count() > 2 * CYCLE as usize);
    assert_eq!(cyclic.interval_count(), CYCLE as usize);
    let mut some_queue = false;
    for cell in 0..CYCLE as usize {
        let mut site = Counters::default();
        let mut queue = Counters::default();
        for interval in (cell..plain.interval_count()).step_by(CYCLE as usize) {
            site.merge(&plain.site_interval(interval, SiteId(0)));
            queue.merge(&plain.queue_interval(interval, SiteId(0), SKILL));
        }
        assert_eq!(
            cyclic.site_interval(cell, SiteId(0)),
            site,
            "site cell {cell}"
        );
        assert_eq!(
            cyclic.queue_interval(cell, SiteId(0), SKILL),
            queue,
            "queue cell {cell}"
        );
        some_queue |= queue.queue_length_ms_sum > 0 && queue.answered > 0;
    }
    assert!(
        some_queue,
        "the stream never queued: the test would prove nothing"
    );
    assert_eq!(cyclic.totals(), plain.totals());
    assert_eq!(cyclic.agent_totals(AGENT), plain.agent_totals(AGENT));
}
