//! Data-driven routing tables (in the spirit of raft-rs datadriven): each file in
//! `tests/fixtures/` is a list of commands, each followed by `----` and the effects it must
//! produce. Set `UPDATE_FIXTURES=1` to rewrite the expected blocks after a deliberate change
//! (then review the diff: the files are the specification).
//!
//! Commands (times in ms; `site` defaults to 0):
//! ```text
//! config skills=voice_line1:voice,voice_line2:voice,chat_line1:chat [sites=N]
//!        [offer_timeout_ms=N] [overflow=oldest|predicted] [on=MS] [off=MS] [share=F] [waiting_max=N]
//! agent id=N skills=0,1 [site=S] [slots=N] [cert=SKILL@UNTIL]
//! T login|logout|ready|notready AGENT [site=S]
//! T arrive ID skill=K [site=S] [prio=P] [ordering=T] [chat]
//! T accept|reject|end|hold|resume|abandon ID [site=S]
//! T timeout ID AGENT [site=S]
//! T wrapup AGENT ID [site=S]
//! T transfer ID SKILL [site=S]
//! T poll SITE            (overflow rule with fresh summaries of all sites)
//! T down SITE | T up SITE
//! T show [site=S]        (agent states, loads, queue positions and estimated waits)
//! ```
#![allow(clippy::unwrap_used)]

use callgrid_domain::*;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

struct Fixture {
    sites: Vec<Site>,
    effects: Vec<Effect>,
    /// Contacts known by id, so `show` can list queues in a stable order.
    contacts: BTreeMap<u64, usize>,
}

fn parse_args(words: &[&str]) -> (Vec<String>, BTreeMap<String, String>) {
    let mut positional = Vec::new();
    let mut named = BTreeMap::new();
    for word in words {
        match word.split_once('=') {
            Some((key, value)) => {
                named.insert(key.to_string(), value.to_string());
            }
            None => positional.push(word.to_string()),
        }
    }
    (positional, named)
}

fn number(text: &str) -> u64 {
    text.parse()
        .unwrap_or_else(|_| panic!("not a number: {text}"))
}

fn render(effect: &Effect, output: &mut String) {
    let line = match effect {
        Effect::Offer {
            contact,
            agent,
            timeout_at,
        } => format!("offer c{contact} -> a{agent} until {}", timeout_at.0),
        Effect::CancelOffer { contact, agent } => format!("cancel-offer c{contact} -> a{agent}"),
        Effect::Overflow { contact, target } => format!(
            "overflow c{} -> site {target} (ordering {}, hops {})",
            contact.id, contact.ordering_time.0, contact.overflow_count
        ),
        Effect::RequestCallback(request) => format!(
            "callback-request caller {} skill {} ordering {} short {}",
            request.caller, request.skill, request.ordering_time.0, request.short
        ),
        Effect::Event(event) => {
            let site = event.site;
            let text = match event.kind {
                EventKind::Arrived { contact, skill, .. } => {
                    format!("arrived c{contact} skill {skill}")
                }
                EventKind::Blocked { contact, skill } => {
                    format!("blocked c{contact} skill {skill}")
                }
                EventKind::Queued {
                    contact,
                    skill,
                    waiting,
                } => format!("queued c{contact} skill {skill} waiting {waiting}"),
                EventKind::Offered {
                    contact,
                    agent,
                    skill,
                    dequeued,
                } => format!(
                    "offered c{contact} -> a{agent} skill {skill}{}",
                    if dequeued { " from queue" } else { " direct" }
                ),
                EventKind::OfferRejected { contact, agent, .. } => {
                    format!("rejected c{contact} by a{agent}")
                }
                EventKind::OfferTimedOut { contact, agent, .. } => {
                    format!("timed-out c{contact} at a{agent}")
                }
                EventKind::Answered {
                    contact,
                    agent,
                    wait_ms,
                    answered_before,
                    ..
                } => format!(
                    "answered c{contact} by a{agent} wait {wait_ms}{}",
                    if answered_before { " (again)" } else { "" }
                ),
                EventKind::Abandoned {
                    contact,
                    wait_ms,
                    short,
                    in_queue,
                    ..
                } => format!(
                    "abandoned c{contact} wait {wait_ms}{}{}",
                    if short { " short" } else { "" },
                    if in_queue { "" } else { " while ringing" }
                ),
                EventKind::SelfServed {
                    contact,
                    wait_ms,
                    in_queue,
                    ..
                } => format!(
                    "self-served c{contact} wait {wait_ms}{}",
                    if in_queue { "" } else { " while ringing" }
                ),
                EventKind::TransferredOut {
                    contact,
                    agent,
                    to_skill,
                    ..
                } => format!("transferred-out c{contact} from a{agent} to skill {to_skill}"),
                EventKind::TransferredIn { contact, skill } => {
                    format!("transferred-in c{contact} skill {skill}")
                }
                EventKind::OverflowOut {
                    contact,
                    target,
                    reason,
                    wait_ms,
                    ..
                } => format!("overflow-out c{contact} -> site {target} {reason:?} wait {wait_ms}"),
                EventKind::OverflowIn { contact, from, .. } => {
                    format!("overflow-in c{contact} from site {from}")
                }
                EventKind::Ended {
                    contact,
                    agent,
                    talk_ms,
                    hold_ms,
                    ..
                } => format!("ended c{contact} at a{agent} talk {talk_ms} hold {hold_ms}"),
                EventKind::WrapUpEnded {
                    contact,
                    agent,
                    wrap_up_ms,
                    ..
                } => format!("wrap-up-ended c{contact} at a{agent} after {wrap_up_ms}"),
                EventKind::AgentStateChanged { agent, from, to } => {
                    format!("a{agent} {from:?} -> {to:?}")
                }
                EventKind::CallbackCreated { callback, .. } => {
                    format!("callback-created {callback}")
                }
                EventKind::CallbackClosed { callback, .. } => format!("callback-closed {callback}"),
            };
            format!("site {site}: {text}")
        }
    };
    output.push_str(&line);
    output.push('\n');
}

impl Fixture {
    fn configure(named: &BTreeMap<String, String>) -> Fixture {
        let skills = named["skills"]
            .split(',')
            .map(|entry| {
                let (name, channel) = entry.split_once(':').unwrap();
                SkillConfig {
                    name: name.to_string(),
                    channel: if channel == "chat" {
                        Channel::Chat
                    } else {
                        Channel::Voice
                    },
                    line: Line::Line1,
                    handle_time_s_initial: 100,
                }
            })
            .collect();
        let mut routing = RoutingConfig::with_skills(skills);
        if let Some(value) = named.get("offer_timeout_ms") {
            routing.offer_timeout_ms = number(value);
        }
        if let Some(value) = named.get("waiting_max") {
            routing.waiting_max = number(value) as u32;
        }
        let mut overflow = OverflowConfig::default();
        if let Some(trigger) = named.get("overflow") {
            overflow.enabled = true;
            overflow.trigger = if trigger == "predicted" {
                OverflowTrigger::PredictedWait
            } else {
                OverflowTrigger::OldestWait
            };
        }
        if let Some(value) = named.get("on") {
            overflow.threshold_on_ms = number(value);
        }
        if let Some(value) = named.get("off") {
            overflow.threshold_off_ms = number(value);
        }
        if let Some(value) = named.get("share") {
            overflow.share_out_max = value.parse().unwrap();
        }
        let site_count = named.get("sites").map_or(1, |value| number(value) as u16);
        Fixture {
            sites: (0..site_count)
                .map(|site| Site::new(SiteId(site), routing.clone(), overflow.clone()).unwrap())
                .collect(),
            effects: Vec::new(),
            contacts: BTreeMap::new(),
        }
    }

    fn summaries(&mut self, now: TimeMs) -> Vec<SiteSummary> {
        self.sites
            .iter_mut()
            .map(|site| site.summary(now))
            .collect()
    }

    /// Runs one command; returns its rendered output.
    fn run(&mut self, line: &str) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let mut output = String::new();
        if words[0] == "config" || words[0] == "agent" {
            let (_, named) = parse_args(&words[1..]);
            if words[0] == "agent" {
                let site = named.get("site").map_or(0, |value| number(value) as usize);
                let mut spec = AgentSpec::new(
                    AgentId(number(&named["id"]) as u32),
                    &named["skills"]
                        .split(',')
                        .map(|skill| SkillId(number(skill) as u16))
                        .collect::<Vec<_>>(),
                );
                if let Some(slots) = named.get("slots") {
                    spec.chat_slots = number(slots) as u8;
                }
                if let Some(certificate) = named.get("cert") {
                    let (skill, until) = certificate.split_once('@').unwrap();
                    for grant in &mut spec.skills {
                        if grant.skill == SkillId(number(skill) as u16) {
                            grant.valid_until = Some(TimeMs(number(until)));
                        }
                    }
                }
                match self.sites[site].add_agent(spec) {
                    Ok(()) => output.push_str("ok\n"),
                    Err(error) => writeln!(output, "error: {error}").unwrap(),
                }
            } else {
                *self = Fixture::configure(&named);
                output.push_str("ok\n");
            }
            return output;
        }
        let now = TimeMs(number(words[0]));
        let command = words[1];
        let (positional, named) = parse_args(&words[2..]);
        let site = named.get("site").map_or(0, |value| number(value) as usize);
        let mut effects = std::mem::take(&mut self.effects);
        let result: Result<(), String> = match command {
            "login" | "logout" | "ready" | "notready" => {
                let agent = AgentId(number(&positional[0]) as u32);
                let target = &mut self.sites[site];
                match command {
                    "login" => target.handle_login(now, agent, &mut effects),
                    "logout" => target.handle_logout(now, agent, &mut effects),
                    "ready" => target.handle_ready(now, agent, &mut effects),
                    _ => target.handle_not_ready(now, agent, NotReadyReason::BREAK, &mut effects),
                }
                .map_err(|error| error.to_string())
            }
            "arrive" => {
                let id = number(&positional[0]);
                let skill = SkillId(number(&named["skill"]) as u16);
                let channel = if positional.iter().any(|word| word == "chat") {
                    Channel::Chat
                } else {
                    Channel::Voice
                };
                let mut contact = Contact::inbound(
                    ContactId(id),
                    channel,
                    Topic::Order,
                    skill,
                    CallerNumber(7_000 + id),
                    SiteId(site as u16),
                    now,
                );
                if let Some(priority) = named.get("prio") {
                    contact.priority = Priority(number(priority) as u8);
                }
                if let Some(ordering) = named.get("ordering") {
                    contact.ordering_time = TimeMs(number(ordering));
                }
                self.contacts.insert(id, site);
                self.sites[site]
                    .handle_arrival(now, contact, &mut effects)
                    .map_err(|error| error.to_string())
            }
            "accept" | "reject" | "end" | "hold" | "resume" => {
                let contact = ContactId(number(&positional[0]));
                let target = &mut self.sites[site];
                match command {
                    "accept" => target.handle_accept(now, contact, &mut effects),
                    "reject" => target.handle_reject(now, contact, &mut effects),
                    "end" => target.handle_end(now, contact, &mut effects),
                    "hold" => target.handle_hold(now, contact, &mut effects),
                    _ => target.handle_resume(now, contact, &mut effects),
                }
                .map_err(|error| error.to_string())
            }
            "abandon" => {
                let contact = ContactId(number(&positional[0]));
                let abandoned = self.sites[site].handle_abandon(now, contact, &mut effects);
                writeln!(output, "abandoned: {abandoned}").unwrap();
                Ok(())
            }
            "timeout" => {
                let contact = ContactId(number(&positional[0]));
                let agent = AgentId(number(&positional[1]) as u32);
                let timed_out =
                    self.sites[site].handle_offer_timeout(now, contact, agent, &mut effects);
                writeln!(output, "timed out: {timed_out}").unwrap();
                Ok(())
            }
            "wrapup" => {
                let agent = AgentId(number(&positional[0]) as u32);
                let contact = ContactId(number(&positional[1]));
                self.sites[site]
                    .handle_wrap_up_end(now, agent, contact, &mut effects)
                    .map_err(|error| error.to_string())
            }
            "transfer" => {
                let contact = ContactId(number(&positional[0]));
                let skill = SkillId(number(&positional[1]) as u16);
                self.sites[site]
                    .handle_transfer(now, contact, skill, &mut effects)
                    .map_err(|error| error.to_string())
            }
            "poll" | "down" | "up" => {
                let target = number(&positional[0]) as usize;
                let peers = self.summaries(now);
                match command {
                    "poll" => self.sites[target].poll_overflow(now, &peers, &mut effects),
                    "down" => self.sites[target].handle_site_down(now, &peers, &mut effects),
                    _ => self.sites[target].handle_site_up(now, &mut effects),
                }
                Ok(())
            }
            "show" => {
                self.show(now, site, &mut output);
                Ok(())
            }
            other => panic!("unknown command {other}"),
        };
        if let Err(error) = result {
            writeln!(output, "error: {error}").unwrap();
        }
        // Deliver overflows like a driver would, rendering what the target does.
        let mut cursor = 0;
        while cursor < effects.len() {
            let effect = effects[cursor];
            render(&effect, &mut output);
            if let Effect::Overflow { contact, target } = effect {
                let from = self.contacts[&contact.id.0];
                self.contacts.insert(contact.id.0, target.index());
                let mut more = Vec::new();
                self.sites[target.index()]
                    .handle_overflow_in(now, contact, SiteId(from as u16), &mut more)
                    .unwrap();
                effects.extend(more);
            }
            cursor += 1;
        }
        for site in &self.sites {
            site.check_invariants().unwrap();
        }
        effects.clear();
        self.effects = effects;
        output
    }

    fn show(&mut self, now: TimeMs, site: usize, output: &mut String) {
        let target = &mut self.sites[site];
        let agents: Vec<AgentId> = target.agent_ids().collect();
        for agent in agents {
            writeln!(
                output,
                "a{agent}: {:?} load {} idle since {}",
                target.agent_state(agent).unwrap(),
                target.agent_load(agent).unwrap(),
                target.agent_idle_since(agent).unwrap().0
            )
            .unwrap();
        }
        for (&id, &contact_site) in &self.contacts {
            if contact_site != site {
                continue;
            }
            if let Some(position) = target.queue_position(ContactId(id)) {
                let estimate = if position.estimated_wait_ms == u64::MAX {
                    "unknown".to_string()
                } else {
                    position.estimated_wait_ms.to_string()
                };
                writeln!(
                    output,
                    "c{id}: position {} estimated wait {estimate}",
                    position.position
                )
                .unwrap();
            }
        }
        let summary = target.summary(now);
        for (skill, cell) in summary.skills.iter().enumerate() {
            writeln!(
                output,
                "skill {skill}: idle {} serving {} waiting {} oldest {}",
                cell.idle_agents, cell.serving_agents, cell.waiting, cell.oldest_wait_ms
            )
            .unwrap();
        }
    }
}

fn run_file(path: &Path) -> (String, String) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut fixture = Fixture {
        sites: Vec::new(),
        effects: Vec::new(),
        contacts: BTreeMap::new(),
    };
    let mut rewritten = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() || line.starts_with('#') {
            rewritten.push_str(line);
            rewritten.push('\n');
            continue;
        }
        let actual = fixture.run(line);
        rewritten.push_str(line);
        rewritten.push_str("\n----\n");
        rewritten.push_str(&actual);
        // Skip the old expected block: `----` then lines up to a blank line.
        if lines.peek() == Some(&"----") {
            lines.next();
            while let Some(expected) = lines.peek() {
                if expected.is_empty() {
                    break;
                }
                lines.next();
            }
        }
        rewritten.push('\n');
        while lines.peek() == Some(&"") {
            lines.next();
        }
    }
    (text, rewritten)
}

#[test]
fn routing_fixtures() {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut paths: Vec<_> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "txt"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", directory.display());
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let mut failures = Vec::new();
    for path in paths {
        let (expected, actual) = run_file(&path);
        if update {
            std::fs::write(&path, &actual).unwrap();
        } else if expected.trim_end() != actual.trim_end() {
            failures.push(format!(
                "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
