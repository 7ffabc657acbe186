//! The cluster-wide agent roster: every site's `[[agents]]`, so an agent defined at one site
//! can log in at another (e.g. while its own site is drained).
//!
//! Each site seeds its configured agents once it has caught up (`Command::SeedAgents`); the
//! merge is idempotent and checks each agent on its own:
//! - the login is 1 to [`LOGIN_CHARS_MAX`] characters of `A-Z a-z 0-9 . _ - @`;
//! - its skills are among the proposing site's skills, at least one;
//! - its id is not another login's, its chat slots and certificate date are well formed;
//! - a login the roster holds with the same content is left as it is; with other content it
//!   is replaced only when the same site defined it (its configuration changed) — a login
//!   another site defined differently is refused (and logged by the proposer), never
//!   silently overwritten.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::super::command::{AgentDefinition, ApplyError, Outcome, Response};
use super::super::model::TimestampMs;
use super::ReplicatedState;

/// Agents the cluster roster holds at most.
pub const ROSTER_AGENTS_MAX: usize = 100_000;
/// Characters a login may have.
pub const LOGIN_CHARS_MAX: usize = 64;

/// An agent of the cluster roster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// The definition.
    pub agent: AgentDefinition,
    /// Site whose configuration defined it.
    pub defined_by_site: String,
    /// When it last changed (proposer's clock).
    pub changed_at_ms: TimestampMs,
}

/// The cluster-wide roster, by login (snapshot format 4).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRoster {
    by_login: BTreeMap<String, AgentRecord>,
}

/// Whether `login` is 1 to [`LOGIN_CHARS_MAX`] characters of `A-Z a-z 0-9 . _ - @`.
pub fn login_is_valid(login: &str) -> bool {
    !login.is_empty()
        && login.len() <= LOGIN_CHARS_MAX
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Why `agent` cannot be on the roster whatever the roster holds, if it cannot.
fn definition_problem(agent: &AgentDefinition, skills: &BTreeSet<&str>) -> Option<String> {
    if !login_is_valid(&agent.login) {
        return Some(format!(
            "login must be 1 to {LOGIN_CHARS_MAX} characters of A-Z a-z 0-9 . _ - @"
        ));
    }
    if agent.skills.is_empty() {
        return Some("no skill".to_string());
    }
    if let Some(unknown) = agent
        .skills
        .iter()
        .find(|skill| !skills.contains(skill.as_str()))
    {
        return Some(format!("unknown skill `{unknown}`"));
    }
    if agent.chat_slots == 0 || agent.chat_slots > callgrid_domain::CHAT_SLOTS_MAX {
        return Some(format!(
            "chat_slots must be between 1 and {}",
            callgrid_domain::CHAT_SLOTS_MAX
        ));
    }
    if let Some(date) = &agent.certificate_valid_until {
        if crate::config::parse_date_end_ms(date).is_none() {
            return Some("certificate_valid_until must be YYYY-MM-DD".to_string());
        }
    }
    None
}

impl ReplicatedState {
    /// The roster's agent with `login`, if any.
    pub fn roster_agent(&self, login: &str) -> Option<&AgentRecord> {
        self.agents.by_login.get(login)
    }

    /// The roster itself (the snapshot tests encode it alone).
    #[cfg(test)]
    pub(crate) fn agent_roster(&self) -> &AgentRoster {
        &self.agents
    }

    /// Every agent of the cluster roster, by login.
    pub fn roster_agents(&self) -> impl Iterator<Item = &AgentRecord> {
        self.agents.by_login.values()
    }

    pub(super) fn seed_agents(
        &mut self,
        at_ms: TimestampMs,
        site: &str,
        skills: &[String],
        agents: &[AgentDefinition],
    ) -> Response {
        let skills: BTreeSet<&str> = skills.iter().map(String::as_str).collect();
        let mut ids: BTreeMap<u32, String> = self
            .agents
            .by_login
            .values()
            .map(|record| (record.agent.id, record.agent.login.clone()))
            .collect();
        let mut seen = BTreeSet::new();
        let (mut added, mut unchanged, mut refused) = (0_u32, 0_u32, Vec::new());
        for agent in agents {
            let problem = if !seen.insert(agent.login.as_str()) {
                Some("defined twice in one seed".to_string())
            } else {
                definition_problem(agent, &skills)
                    .or_else(|| self.roster_conflict(site, agent, &ids))
            };
            if let Some(reason) = problem {
                refused.push((agent.login.clone(), reason));
                continue;
            }
            if self
                .agents
                .by_login
                .get(&agent.login)
                .is_some_and(|record| record.agent == *agent)
            {
                unchanged += 1;
                continue;
            }
            if !self.agents.by_login.contains_key(&agent.login)
                && self.agents.by_login.len() >= ROSTER_AGENTS_MAX
            {
                refused.push((
                    agent.login.clone(),
                    format!("the roster holds at most {ROSTER_AGENTS_MAX} agents"),
                ));
                continue;
            }
            if let Some(old) = self.agents.by_login.get(&agent.login) {
                ids.remove(&old.agent.id);
            }
            ids.insert(agent.id, agent.login.clone());
            self.agents.by_login.insert(
                agent.login.clone(),
                AgentRecord {
                    agent: agent.clone(),
                    defined_by_site: site.to_string(),
                    changed_at_ms: at_ms,
                },
            );
            added += 1;
        }
        if added == 0 && unchanged == 0 && !refused.is_empty() {
            return Err(ApplyError::Conflict(format!(
                "no agent of the seed was accepted: {}",
                describe(&refused)
            )));
        }
        Ok(Outcome::AgentsSeeded {
            added,
            unchanged,
            refused,
        })
    }

    /// Why `agent` (valid in itself) conflicts with the roster, if it does.
    fn roster_conflict(
        &self,
        site: &str,
        agent: &AgentDefinition,
        ids: &BTreeMap<u32, String>,
    ) -> Option<String> {
        if let Some(record) = self.agents.by_login.get(&agent.login) {
            if record.agent != *agent && record.defined_by_site != site {
                return Some(format!(
                    "already defined by site {} with other content",
                    record.defined_by_site
                ));
            }
        }
        match ids.get(&agent.id) {
            Some(other) if *other != agent.login => {
                Some(format!("id {} is agent `{other}`'s", agent.id))
            }
            _ => None,
        }
    }
}

/// `login: reason; ...` for an error text.
pub fn describe(refused: &[(String, String)]) -> String {
    refused
        .iter()
        .map(|(login, reason)| format!("{login}: {reason}"))
        .collect::<Vec<_>>()
        .join("; ")
}
