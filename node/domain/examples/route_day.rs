//! Routes a synthetic day through `Site` and `Metrics` to measure the routing core's cost per
//! contact, without the simulator's sampling and scenario machinery (the simulator's bench
//! measures the whole day).
//!
//! ```text
//! cargo run --release -p callgrid-domain --example route_day -- [sites] [contacts] [agents_per_site]
//! ROUTE_DAY_NO_METRICS=1 ...   # routing alone
//! valgrind --tool=callgrind target/release/examples/route_day 3 100000 60   # instructions
//! ```
//! Calls arrive as a Poisson stream over 12 hours per 17,000 contacts (scaled), ring 3 s,
//! talk exponential with mean 160 s, wrap-up 20 s, patience exponential with mean 120 s.
//! Agents have line 1; every tenth also line 2.

use callgrid_domain::{
    AgentId, AgentSpec, CallerNumber, Channel, Contact, ContactId, Effect, EventKind, Line,
    Metrics, MetricsConfig, OverflowConfig, RoutingConfig, ServiceLevelPolicy, Site, SiteId,
    SkillConfig, SkillId, TimeMs, Topic,
};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// xorshift64: a tiny deterministic generator, enough for a load shape.
struct Generator(u64);

impl Generator {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    fn exponential_ms(&mut self, mean_ms: f64) -> u64 {
        (-(1.0 - self.uniform()).ln() * mean_ms) as u64
    }
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Arrive { site: u16, contact: u64 },
    Accept { site: u16, contact: u64 },
    Abandon { site: u16, contact: u64 },
    End { site: u16, contact: u64 },
    WrapUpEnd { site: u16, agent: u32, contact: u64 },
}

const AGENT_IDS_PER_SITE: u32 = 10_000;

fn argument(position: usize, default: u64) -> u64 {
    std::env::args()
        .nth(position)
        .and_then(|text| text.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let site_count = argument(1, 3) as usize;
    let contacts = argument(2, 17_000);
    let agents_per_site = argument(3, 60) as u32;
    let with_metrics = std::env::var_os("ROUTE_DAY_NO_METRICS").is_none();

    let skill = |name: &str, line| SkillConfig {
        name: name.into(),
        channel: Channel::Voice,
        line,
        handle_time_s_initial: 180,
    };
    let skills = vec![
        skill("voice_line1", Line::Line1),
        skill("voice_line2", Line::Line2),
    ];
    let mut sites = Vec::with_capacity(site_count);
    let mut effects = Vec::with_capacity(64);
    for site_index in 0..site_count {
        let mut site = Site::new(
            SiteId(site_index as u16),
            RoutingConfig::with_skills(skills.clone()),
            OverflowConfig::default(),
        )?;
        for number in 0..agents_per_site {
            let agent = AgentId(site_index as u32 * AGENT_IDS_PER_SITE + number);
            let granted: &[SkillId] = if number % 10 == 0 {
                &[SkillId(0), SkillId(1)]
            } else {
                &[SkillId(0)]
            };
            site.add_agent(AgentSpec::new(agent, granted))?;
            site.handle_login(TimeMs::ZERO, agent, &mut effects)?;
        }
        sites.push(site);
    }
    effects.clear();
    let metrics_config = MetricsConfig {
        intervals_max: 35_000,
        ..MetricsConfig::default()
    };
    let mut metrics = Metrics::new(metrics_config, site_count, skills.len());
    let mut generator = Generator(0x9E37_79B9_7F4A_7C15);
    let mut heap: BinaryHeap<Reverse<(u64, Action)>> = BinaryHeap::new();
    let span_ms = (12 * 3_600_000 * contacts / 17_000 * 3 / site_count as u64).max(1);
    let gap_ms = span_ms as f64 / contacts as f64;
    let mut next_arrival_ms = 8 * 3_600_000;
    heap.push(Reverse((
        next_arrival_ms,
        Action::Arrive {
            site: 0,
            contact: 0,
        },
    )));

    let started = std::time::Instant::now();
    let mut domain_events = 0u64;
    while let Some(Reverse((at_ms, action))) = heap.pop() {
        let now = TimeMs(at_ms);
        match action {
            Action::Arrive { site, contact } => {
                let call = Contact::inbound(
                    ContactId(contact),
                    Channel::Voice,
                    Topic::Order,
                    SkillId(0),
                    CallerNumber(contact),
                    SiteId(site),
                    now,
                );
                sites[usize::from(site)].handle_arrival(now, call, &mut effects)?;
                let patience_ms = generator.exponential_ms(120_000.0);
                heap.push(Reverse((
                    at_ms + patience_ms,
                    Action::Abandon { site, contact },
                )));
                if contact + 1 < contacts {
                    next_arrival_ms += generator.exponential_ms(gap_ms);
                    let next_site = ((contact + 1) % site_count as u64) as u16;
                    heap.push(Reverse((
                        next_arrival_ms,
                        Action::Arrive {
                            site: next_site,
                            contact: contact + 1,
                        },
                    )));
                }
            }
            Action::Accept { site, contact } => {
                // The caller may have hung up while ringing: then the accept is refused.
                if sites[usize::from(site)]
                    .handle_accept(now, ContactId(contact), &mut effects)
                    .is_ok()
                {
                    let talk_ms = generator.exponential_ms(160_000.0);
                    heap.push(Reverse((at_ms + talk_ms, Action::End { site, contact })));
                }
            }
            Action::Abandon { site, contact } => {
                sites[usize::from(site)].handle_abandon(now, ContactId(contact), &mut effects);
            }
            Action::End { site, contact } => {
                sites[usize::from(site)].handle_end(now, ContactId(contact), &mut effects)?;
            }
            Action::WrapUpEnd {
                site,
                agent,
                contact,
            } => {
                sites[usize::from(site)].handle_wrap_up_end(
                    now,
                    AgentId(agent),
                    ContactId(contact),
                    &mut effects,
                )?;
            }
        }
        for effect in effects.drain(..) {
            match effect {
                Effect::Event(event) => {
                    domain_events += 1;
                    if with_metrics {
                        metrics.record(&event);
                    }
                    if let EventKind::Ended { contact, agent, .. } = event.kind {
                        heap.push(Reverse((
                            at_ms + 20_000,
                            Action::WrapUpEnd {
                                site: event.site.0,
                                agent: agent.0,
                                contact: contact.0,
                            },
                        )));
                    }
                }
                Effect::Offer { contact, agent, .. } => {
                    let site = (agent.0 / AGENT_IDS_PER_SITE) as u16;
                    heap.push(Reverse((
                        at_ms + 3_000,
                        Action::Accept {
                            site,
                            contact: contact.0,
                        },
                    )));
                }
                Effect::CancelOffer { .. }
                | Effect::Overflow { .. }
                | Effect::RequestCallback(_) => {}
            }
        }
    }
    metrics.finish(TimeMs(next_arrival_ms + 24 * 3_600_000));
    let elapsed = started.elapsed();
    let totals = metrics.totals();
    println!(
        "sites {site_count}, contacts {contacts}, agents per site {agents_per_site}, metrics {with_metrics}: \
         {elapsed:?}, {:.0} ns per contact, {domain_events} domain events",
        elapsed.as_nanos() as f64 / contacts as f64
    );
    if with_metrics {
        println!(
            "offered {} answered {} abandoned {} service level {:.3} ASA {:.0} ms",
            totals.offered,
            totals.answered,
            totals.abandoned,
            totals
                .service_level(ServiceLevelPolicy::Offered)
                .unwrap_or(0.0),
            totals.asa_ms().unwrap_or(0.0)
        );
    }
    Ok(())
}
