//! Routing events as the supervisor stream shows them (docs/CONVENTIONS.md): the domain's
//! [`Event`] counts in routing time from the Site's epoch and names agents, skills and sites
//! by index; the stream names them by login, skill name and site id, and gives every time as
//! ms since the Unix epoch.
//!
//! ```text
//! {"type": "event", "event": {"event": "answered", "at_ms": 1764840000123, "site": "msk",
//!   "contact": 17, "agent": "anna", "skill": "line1", "wait_ms": 4200, ...}}
//! ```

use callgrid_domain::{AgentId, AgentState, Event, EventKind, SiteId, SkillId};
use serde_json::{Map, Value, json};

use super::SiteActor;
use super::views::not_ready_reason;

impl SiteActor {
    /// The supervisor stream's message for one routing event.
    pub(super) fn event_message(&self, event: &Event) -> Value {
        json!({"type": "event", "event": self.event_view(event)})
    }

    /// One routing event with names and epoch times: `event` (the kind, snake case),
    /// `at_ms`, `site`, then the kind's own fields (`agent`, `skill`, `from_skill`,
    /// `to_skill` by name; `target` and an overflow's `from` by site id; `*_at` fields as
    /// `*_at_ms`; an agent state change's `from` and `to` by name with their not-ready
    /// reasons).
    pub(super) fn event_view(&self, event: &Event) -> Value {
        let mut view = Map::new();
        let (kind, fields) = match serde_json::to_value(event.kind) {
            Ok(Value::Object(map)) => match map.into_iter().next() {
                Some((kind, Value::Object(fields))) => (kind, fields),
                Some((kind, _)) => (kind, Map::new()),
                None => (String::new(), Map::new()),
            },
            Ok(Value::String(kind)) => (kind, Map::new()),
            _ => (String::new(), Map::new()),
        };
        view.insert("event".to_string(), Value::String(kind.clone()));
        view.insert("at_ms".to_string(), json!(self.epoch_ms_of(event.at.0)));
        view.insert("site".to_string(), json!(self.site_name(event.site)));
        for (key, value) in fields {
            self.name_field(&kind, &key, value, &mut view);
        }
        if let EventKind::AgentStateChanged { from, to, .. } = event.kind {
            insert_state(&mut view, "from", from);
            insert_state(&mut view, "to", to);
        }
        Value::Object(view)
    }

    /// One field of an event's kind, named (see [`SiteActor::event_view`]).
    fn name_field(&self, kind: &str, key: &str, value: Value, view: &mut Map<String, Value>) {
        let number = value.as_u64();
        match (key, number) {
            ("agent", Some(agent)) => {
                let login = u32::try_from(agent)
                    .ok()
                    .and_then(|agent| self.roster.logins.get(&AgentId(agent)).cloned());
                view.insert(key.to_string(), json!(login));
            }
            ("skill" | "from_skill" | "to_skill", Some(skill)) => {
                let name = u16::try_from(skill)
                    .ok()
                    .map(|skill| self.skill_name(SkillId(skill)));
                view.insert(key.to_string(), json!(name));
            }
            ("target", Some(site)) => {
                view.insert(key.to_string(), json!(self.site_name_of(site)));
            }
            ("from", Some(site)) if kind == "overflow_in" => {
                view.insert(key.to_string(), json!(self.site_name_of(site)));
            }
            // An agent state change's states are named from the typed event.
            ("from" | "to", _) if kind == "agent_state_changed" => {}
            (_, Some(at)) if key.ends_with("_at") => {
                view.insert(format!("{key}_ms"), json!(self.epoch_ms_of(at)));
            }
            _ => {
                view.insert(key.to_string(), value);
            }
        }
    }

    /// Routing time as ms since the Unix epoch.
    fn epoch_ms_of(&self, routing_ms: u64) -> u64 {
        self.epoch_ms.saturating_add(routing_ms)
    }

    /// A site number's id (this site or a configured peer; the number itself otherwise).
    fn site_name_of(&self, number: u64) -> String {
        u16::try_from(number)
            .map(|number| self.site_name(SiteId(number)))
            .unwrap_or_else(|_| number.to_string())
    }

    /// A site's id by its routing number.
    fn site_name(&self, site: SiteId) -> String {
        if site.0 == self.config.site.number {
            return self.config.site.id.clone();
        }
        self.config
            .peer_site_by_number(site.0)
            .map_or_else(|| site.0.to_string(), |peer| peer.id.clone())
    }
}

/// `from` / `to` of an agent state change: the state's name and its not-ready reason.
fn insert_state(view: &mut Map<String, Value>, key: &str, state: AgentState) {
    view.insert(key.to_string(), json!(state.name()));
    view.insert(
        format!("{key}_not_ready_reason"),
        json!(not_ready_reason(state)),
    );
}
